#include "policy/policy_diff.h"

#include <algorithm>
#include <map>

#include <date/tz.h>
#include <fmt/format.h>

#include "policy/compiled_policy.h"

namespace warden::policy {
namespace {

constexpr size_t kMaxDiffLines = 3000;

std::string valueSet(const std::optional<ValueSet>& v) {
  if (!v) return "-";
  if (v->any) return "*";
  std::vector<std::string> sorted = v->values;
  std::sort(sorted.begin(), sorted.end());
  return fmt::format("[{}]", fmt::join(sorted, ","));
}

std::string selector(const CompiledPolicy& c, const PrincipalSelector& s) {
  std::vector<std::string> labels;
  for (const auto& [k, v] : s.labels) labels.push_back(k + "=" + valueSet(v));
  std::sort(labels.begin(), labels.end());
  std::vector<std::string> segments;
  for (uint32_t seg : s.segments) segments.push_back(c.segments[seg].name);
  std::sort(segments.begin(), segments.end());
  return fmt::format("kinds={} id={} role={} labels={} segments={}", s.kinds, valueSet(s.ids), valueSet(s.roles),
                     fmt::join(labels, ","), fmt::join(segments, ","));
}

std::string zoneName(const date::time_zone* z) { return z == nullptr ? "UTC" : z->name(); }

std::string ruleSignature(const CompiledPolicy& c, const CompiledRule& r) {
  std::string s = fmt::format("{}|{}|{}|{}|", static_cast<int>(r.effect), r.actions, selector(c, r.principals),
                              r.description);
  // Appended piece by piece: g++ 12 -O3 reports a false -Wrestrict on
  // string concatenations here.
  for (const ResourcePattern& p : r.resources) {
    s += p.text();
    s += '\n';
  }
  for (const Condition& cond : r.conditions) {
    s += cond.text;
    s += '@';
    s += zoneName(cond.zone);
    for (const TimeWindow& w : cond.windows) {
      s += ',';
      s += zoneName(w.zone);
    }
    s += '\n';
  }
  return s;
}

template <typename T, typename Name, typename Sig>
NameDiff compare(const std::vector<T>& a, const std::vector<T>& b, Name name, Sig sig) {
  std::map<std::string, std::string> old_items;
  for (const T& x : a) old_items[name(x)] = sig(x);
  NameDiff d;
  std::map<std::string, bool> seen;
  for (const T& x : b) {
    std::string n = name(x);
    seen[n] = true;
    auto it = old_items.find(n);
    if (it == old_items.end()) {
      d.added.push_back(n);
    } else if (it->second != sig(x)) {
      d.changed.push_back(n);
    }
  }
  for (const T& x : a) {
    if (!seen.count(name(x))) d.removed.push_back(name(x));
  }
  return d;
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

std::string lineDiff(std::string_view a, std::string_view b) {
  if (a == b) return "";
  auto x = lines(a);
  auto y = lines(b);
  if (x.size() > kMaxDiffLines || y.size() > kMaxDiffLines) {
    return fmt::format("(the texts differ; {} and {} lines are too many for a line diff)\n", x.size(), y.size());
  }
  // Longest common subsequence, then a walk that prints it.
  std::vector<std::vector<uint16_t>> lcs(x.size() + 1, std::vector<uint16_t>(y.size() + 1, 0));
  for (size_t i = x.size(); i-- > 0;) {
    for (size_t j = y.size(); j-- > 0;) {
      lcs[i][j] = x[i] == y[j] ? static_cast<uint16_t>(lcs[i + 1][j + 1] + 1) : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::string out;
  size_t i = 0;
  size_t j = 0;
  while (i < x.size() || j < y.size()) {
    if (i < x.size() && j < y.size() && x[i] == y[j]) {
      out += fmt::format(" {}\n", x[i]);
      ++i;
      ++j;
    } else if (j < y.size() && (i == x.size() || lcs[i][j + 1] >= lcs[i + 1][j])) {
      out += fmt::format("+{}\n", y[j++]);
    } else {
      out += fmt::format("-{}\n", x[i++]);
    }
  }
  return out;
}

}  // namespace

PolicyDiff diffPolicies(const Policy& pa, const Policy& pb) {
  const CompiledPolicy& a = pa.compiled();
  const CompiledPolicy& b = pb.compiled();
  PolicyDiff d;
  d.rules = compare(
      a.rules, b.rules, [](const CompiledRule& r) { return r.id; },
      [&](const CompiledRule& r) { return ruleSignature(&r >= b.rules.data() && &r < b.rules.data() + b.rules.size() ? b : a, r); });
  std::vector<Segment> sa(a.segments.begin() + 1, a.segments.end());
  std::vector<Segment> sb(b.segments.begin() + 1, b.segments.end());
  d.segments = compare(
      sa, sb, [](const Segment& s) { return s.name; },
      [&](const Segment& s) {
        bool in_b = std::any_of(sb.begin(), sb.end(), [&](const Segment& x) { return &x == &s; });
        return selector(in_b ? b : a, s.selector);
      });
  auto service_sig = [](const CompiledPolicy& c, const Service& s) {
    return c.segments[s.segment].name + "|" + fmt::format("{}", fmt::join(s.mqtt, ","));
  };
  d.services = compare(
      a.services, b.services, [](const Service& s) { return s.name; },
      [&](const Service& s) {
        bool in_b = &s >= b.services.data() && &s < b.services.data() + b.services.size();
        return service_sig(in_b ? b : a, s);
      });
  auto flow_sig = [](const CompiledPolicy& c, const Flow& f) {
    return fmt::format("{}|{}|{}", c.segments[f.from].name,
                       f.to_service ? c.services[f.to].name : c.segments[f.to].name, f.actions);
  };
  d.flows = compare(
      a.flows, b.flows, [](const Flow& f) { return f.name; },
      [&](const Flow& f) {
        bool in_b = &f >= b.flows.data() && &f < b.flows.data() + b.flows.size();
        return flow_sig(in_b ? b : a, f);
      });
  d.timezone_changed = zoneName(a.zone) != zoneName(b.zone);
  d.text = lineDiff(a.text, b.text);
  return d;
}

}  // namespace warden::policy
