#include "policy/policy.h"

#include <optional>

#include "policy/compiled_policy.h"
#include "policy/topic.h"

namespace warden::policy {
namespace {

// The gateway applies its configured topic limits before it asks; here
// only the structure of the request is checked.
constexpr size_t kNoLimit = 65535;

Decision deny(std::string_view rule, std::string_view reason) {
  return Decision{false, std::string(rule), std::string(reason)};
}

// Request is the resource of one authorize call, parsed once.
struct Request {
  Action action;
  ActionFamily family;
  std::string_view resource;  // as given: topic, filter, client id or name
  // Subscribe only: the filter to compare (the inner filter of a share) and
  // the share group ("" if not shared).
  std::string_view filter;
  std::string_view share_group;
};

// scratch holds the expanded pattern; thread_local so the hot path
// allocates only until the buffer has grown once.
std::string& scratch() {
  thread_local std::string buffer;
  return buffer;
}

// patternText returns the pattern to match for |p|, or nullopt when the
// pattern matches nothing; |any| is set when it matches everything.
std::optional<std::string_view> patternText(const ResourcePattern& pattern, const Principal& p, ActionFamily family,
                                            bool forbid, bool& any) {
  any = false;
  if (!pattern.hasSubstitutions()) return std::string_view(pattern.text());
  std::string& out = scratch();
  switch (pattern.expand(p, family, forbid, out)) {
    case Expansion::kExpanded: return std::string_view(out);
    case Expansion::kNoMatch: return std::nullopt;
    case Expansion::kMatchAny: any = true; return std::string_view(out);
  }
  return std::nullopt;
}

bool startsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// literalLevelsDiffer reports whether filter |f| has, at some level where
// |prefix| (a pattern's literal leading levels) is literal, a different
// literal: then no topic matches both and the full overlap test is skipped.
bool literalLevelsDiffer(std::string_view prefix, std::string_view f) {
  while (!prefix.empty() && !f.empty()) {
    size_t ps = prefix.find('/');
    size_t fs = f.find('/');
    std::string_view pl = prefix.substr(0, ps);
    std::string_view fl = f.substr(0, fs);
    if (fl == "+" || fl == "#") return false;
    if (pl != fl) return true;
    if (ps == std::string_view::npos || fs == std::string_view::npos) return false;
    prefix.remove_prefix(ps + 1);
    f.remove_prefix(fs + 1);
  }
  return false;
}

bool forbidMatches(const ResourcePattern& pattern, const Principal& p, const Request& r) {
  if (r.family != ActionFamily::kTopic) {
    if (pattern.isAny()) return true;
    bool any = false;
    auto text = patternText(pattern, p, r.family, /*forbid=*/true, any);
    return any || (text && *text == r.resource);
  }
  if (r.action != Action::kMqttSubscribe && !startsWith(r.resource, pattern.literalPrefix())) return false;
  bool any = false;
  auto text = patternText(pattern, p, r.family, /*forbid=*/true, any);
  if (!text) return false;  // unreachable: a forbid never yields kNoMatch
  if (r.action != Action::kMqttSubscribe) return topicMatchesFilter(*text, r.resource);
  // A forbid applies to a subscription that could receive any topic it
  // forbids (issue 2: "overlaps no forbid pattern").
  std::string_view prefix = pattern.literalPrefix();
  if (!literalLevelsDiffer(prefix, r.filter) && filtersOverlap(*text, r.filter)) return true;
  return !r.share_group.empty() && !literalLevelsDiffer(prefix, r.resource) && filtersOverlap(*text, r.resource);
}

bool permitMatches(const ResourcePattern& pattern, const Principal& p, const Request& r) {
  if (r.family != ActionFamily::kTopic) {
    if (pattern.isAny()) return true;
    bool any = false;
    auto text = patternText(pattern, p, r.family, /*forbid=*/false, any);
    return text && *text == r.resource;
  }
  // Every topic a pattern matches, and every filter it contains, starts with
  // the pattern's literal leading levels: a cheap rejection first.
  if (!startsWith(r.resource, pattern.literalPrefix())) return false;
  bool any = false;
  auto text = patternText(pattern, p, r.family, /*forbid=*/false, any);
  if (!text) return false;
  if (r.action != Action::kMqttSubscribe) return topicMatchesFilter(*text, r.resource);
  if (r.share_group.empty()) return filterIsSubset(r.filter, *text);
  // $share/<group>/<f> needs a permit naming "$share/<group>/" literally
  // with f inside the rest (issue 2, SUBSCRIBE).
  std::string_view t = *text;
  constexpr std::string_view kShare = "$share/";
  if (!startsWith(t, kShare)) return false;
  t.remove_prefix(kShare.size());
  if (!startsWith(t, r.share_group) || t.size() <= r.share_group.size() || t[r.share_group.size()] != '/') {
    return false;
  }
  t.remove_prefix(r.share_group.size() + 1);
  return filterIsSubset(r.filter, t);
}

}  // namespace

Policy::Policy(std::unique_ptr<const CompiledPolicy> compiled) : compiled_(std::move(compiled)) {}
Policy::~Policy() = default;

const std::string& Policy::text() const { return compiled_->text; }

core::Result<std::shared_ptr<const Policy>> Policy::parse(std::string_view yaml, std::string_view filename) {
  WARDEN_ASSIGN_OR_RETURN(std::unique_ptr<CompiledPolicy> compiled, compilePolicy(yaml, filename));
  return std::shared_ptr<const Policy>(new Policy(std::move(compiled)));
}

Decision Policy::authorize(const Principal& principal, std::string_view action, std::string_view resource) const {
  std::optional<Action> a = lookupAction(action);
  if (!a) return deny("default-deny", "unknown_action");
  Request r{*a, actionFamily(*a), resource, resource, {}};

  if (*a == Action::kMqttSubscribe) {
    auto shared = parseSharedSubscription(resource);
    if (!shared.isOk()) return deny("default-deny", "invalid_filter");
    if (shared->has_value()) {
      // Views into |resource|: "$share/" + group + "/" + filter.
      const SharedSubscription& s = **shared;
      r.share_group = resource.substr(7, s.group.size());
      r.filter = resource.substr(7 + s.group.size() + 1);
    } else if (!validateTopicFilter(resource, kNoLimit, kNoLimit).isOk()) {
      return deny("default-deny", "invalid_filter");
    }
  } else if (r.family == ActionFamily::kTopic) {
    if (!validateTopicName(resource, kNoLimit, kNoLimit).isOk()) return deny("default-deny", "invalid_topic");
  }

  const CompiledPolicy& c = *compiled_;
  const size_t index = static_cast<size_t>(*a);

  // 1. A matching forbid beats every permit, quarantined or not.
  for (uint32_t i : c.forbids[index]) {
    const CompiledRule& rule = c.rules[i];
    if (!rule.principals.matches(principal)) continue;
    for (const ResourcePattern& pattern : rule.resources) {
      if (forbidMatches(pattern, principal, r)) return deny(rule.id, "forbidden");
    }
  }

  // 2. The first matching permit in file order. A quarantined principal
  // gets only permits that select `segment: quarantine`.
  bool blocked_by_quarantine = false;
  for (uint32_t i : c.permits[index]) {
    const CompiledRule& rule = c.rules[i];
    if (!rule.principals.matches(principal)) continue;
    bool applies = !principal.quarantined || rule.principals.quarantine;
    if (!applies && blocked_by_quarantine) continue;
    for (const ResourcePattern& pattern : rule.resources) {
      if (!permitMatches(pattern, principal, r)) continue;
      if (applies) return Decision{true, rule.id, "permitted"};
      blocked_by_quarantine = true;
      break;
    }
  }

  // 3. Nothing decided: deny.
  return deny("default-deny", blocked_by_quarantine ? "quarantined" : "no_permit");
}

}  // namespace warden::policy
