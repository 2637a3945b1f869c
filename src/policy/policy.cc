#include "policy/policy.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "policy/compiled_policy.h"
#include "policy/rule_eval.h"
#include "policy/topic.h"

namespace warden::policy {
namespace {

// The gateway applies its configured topic limits before it asks; here
// only the structure of the request is checked.
constexpr size_t kNoLimit = 65535;

Decision deny(std::string_view rule, std::string_view reason) {
  return Decision{false, std::string(rule), std::string(reason)};
}

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


// candidateBuffer returns a per-thread buffer for trie candidates; it
// allocates only until it has grown once.
std::vector<uint32_t>& candidateBuffer(int which) {
  thread_local std::vector<uint32_t> buffers[3];
  std::vector<uint32_t>& b = buffers[which];
  b.clear();
  return b;
}

void sortUnique(std::vector<uint32_t>& v) {
  // Entries of one trie node are already in file order; most requests
  // collect from one node, so sorting is usually skipped.
  if (!std::is_sorted(v.begin(), v.end())) std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// ruleCandidates returns the rules of |effect| naming r.action that might
// match |r| for principal |p|, in file order: from the topic trie for topic
// actions, else from the per-action role index (the rules |p|'s role can
// match).
const std::vector<uint32_t>& ruleCandidates(const CompiledPolicy& c, const Request& r, const Principal& p,
                                            Effect effect, int buffer) {
  const size_t index = static_cast<size_t>(r.action);
  const auto& list = (effect == Effect::kForbid ? c.forbids : c.permits)[index];
  // A short list is cheaper to scan than an index is to consult; every
  // path yields the rules that can match, in file order.
  constexpr size_t kLinearScanMax = 16;
  if (list.size() <= kLinearScanMax) return list;
  std::vector<uint32_t>& out = candidateBuffer(buffer);
  if (r.family != ActionFamily::kTopic) {
    (effect == Effect::kForbid ? c.forbid_roles : c.permit_roles)[index].forEach(p.role, [&](uint32_t rule) {
      out.push_back(rule);
      return false;
    });
    return out;
  }
  const TopicIndex& trie = (effect == Effect::kForbid ? c.forbid_index : c.permit_index)[index];
  if (r.action != Action::kMqttSubscribe || effect == Effect::kPermit) {
    const std::vector<uint32_t>* found = trie.collect(r.resource, out);
    if (found != &out) return *found;  // one trie node: already unique and in file order
  } else {
    trie.candidates(r.filter, true, out);
    if (!r.share_group.empty()) trie.candidates(r.resource, true, out);
  }
  sortUnique(out);
  return out;
}

}  // namespace

std::optional<std::string_view> parseRequest(std::string_view action, std::string_view resource, Request& r) {
  std::optional<Action> a = lookupAction(action);
  if (!a) return "unknown_action";
  r = Request{*a, actionFamily(*a), resource, resource, {}};
  if (*a == Action::kMqttSubscribe) {
    auto shared = parseSharedSubscription(resource);
    if (!shared.isOk()) return "invalid_filter";
    if (shared->has_value()) {
      // Views into |resource|: "$share/" + group + "/" + filter.
      const SharedSubscription& s = **shared;
      r.share_group = resource.substr(7, s.group.size());
      r.filter = resource.substr(7 + s.group.size() + 1);
    } else if (!validateTopicFilter(resource, kNoLimit, kNoLimit).isOk()) {
      return "invalid_filter";
    }
  } else if (r.family == ActionFamily::kTopic) {
    if (!validateTopicName(resource, kNoLimit, kNoLimit).isOk()) return "invalid_topic";
  }
  return std::nullopt;
}

std::string Membership::segmentNames() {
  std::string out;
  for (uint32_t s = 0; s < c_.segments.size(); ++s) {
    if (!inSegment(s)) continue;
    if (!out.empty()) out += ", ";
    out += c_.segments[s].name;
  }
  return out;
}

std::string_view Membership::firstSegment() {
  if (p_.quarantined) return c_.segments[0].name;
  std::string_view first;
  c_.segment_roles.forEach(p_.role, [&](uint32_t s) {
    if (!inSegment(s)) return false;
    first = c_.segments[s].name;
    return true;
  });
  return first;
}

RuleOutcome evaluateRule(const CompiledRule& rule, const Principal& p, const Context& ctx, const Request& r,
                         SegmentLookup& segments, Deadline& deadline, const Condition** unmet) {
  if (!rule.principals.matches(p, segments)) return RuleOutcome::kSelectorMismatch;
  const bool forbid = rule.effect == Effect::kForbid;
  bool resource = false;
  for (const ResourcePattern& pattern : rule.resources) {
    if (forbid ? forbidMatches(pattern, p, r) : permitMatches(pattern, p, r)) {
      resource = true;
      break;
    }
  }
  if (!resource) return RuleOutcome::kResourceMismatch;
  for (const Condition& cond : rule.conditions) {
    Truth t = evaluateCondition(cond, p, ctx, segments, deadline);
    bool holds = t == Truth::kTrue || (forbid && t == Truth::kAbsent);
    if (!holds) {
      if (unmet != nullptr) *unmet = &cond;
      return RuleOutcome::kConditionUnmet;
    }
  }
  if (!forbid && p.quarantined && !rule.principals.quarantine) return RuleOutcome::kQuarantineBlocked;
  return RuleOutcome::kMatched;
}

bool serviceReached(const Service& s, const Request& r) {
  for (const std::string& pattern : s.mqtt) {
    if (r.action == Action::kMqttSubscribe ? filtersOverlap(pattern, r.filter) : topicMatchesFilter(pattern, r.resource)) {
      return true;
    }
  }
  return false;
}

void TopicIndex::insert(std::string_view literal_prefix, uint32_t entry) {
  if (nodes_.empty()) nodes_.emplace_back();
  uint32_t node = 0;
  std::string_view rest = literal_prefix;
  while (!literal_prefix.empty()) {
    size_t slash = rest.find('/');
    std::string_view level = rest.substr(0, slash);
    auto it = nodes_[node].children.find(level);
    if (it == nodes_[node].children.end()) {
      nodes_.emplace_back();
      uint32_t child = static_cast<uint32_t>(nodes_.size() - 1);
      nodes_[node].children.emplace(std::string(level), child);
      node = child;
    } else {
      node = it->second;
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  auto& entries = nodes_[node].entries;
  if (entries.empty() || entries.back() != entry) entries.push_back(entry);
}

void TopicIndex::subtree(uint32_t node, std::vector<uint32_t>& out) const {
  const Node& n = nodes_[node];
  out.insert(out.end(), n.entries.begin(), n.entries.end());
  for (const auto& [level, child] : n.children) subtree(child, out);
}

const std::vector<uint32_t>* TopicIndex::collect(std::string_view text, std::vector<uint32_t>& out) const {
  static const std::vector<uint32_t> kNone;
  const std::vector<uint32_t>* only = &kNone;
  int contributing = 0;
  auto take = [&](const std::vector<uint32_t>& entries) {
    if (entries.empty()) return;
    if (++contributing == 1) {
      only = &entries;
      return;
    }
    if (contributing == 2) out.insert(out.end(), only->begin(), only->end());
    out.insert(out.end(), entries.begin(), entries.end());
  };
  if (!nodes_.empty()) {
    uint32_t node = 0;
    std::string_view rest = text;
    while (true) {
      const Node& n = nodes_[node];
      take(n.entries);
      size_t slash = rest.find('/');
      std::string_view level = rest.substr(0, slash);
      if (level == "+" || level == "#") break;
      auto it = n.children.find(level);
      if (it == n.children.end()) break;
      node = it->second;
      if (slash == std::string_view::npos) {
        take(nodes_[node].entries);
        break;
      }
      rest.remove_prefix(slash + 1);
    }
  }
  return contributing >= 2 ? &out : only;
}

void TopicIndex::candidates(std::string_view text, bool overlap, std::vector<uint32_t>& out) const {
  if (nodes_.empty()) return;
  uint32_t node = 0;
  std::string_view rest = text;
  while (true) {
    const Node& n = nodes_[node];
    size_t slash = rest.find('/');
    std::string_view level = rest.substr(0, slash);
    if (level == "+" || level == "#") {
      if (overlap) {
        subtree(node, out);
      } else {
        out.insert(out.end(), n.entries.begin(), n.entries.end());
      }
      return;
    }
    out.insert(out.end(), n.entries.begin(), n.entries.end());
    auto it = n.children.find(level);
    if (it == n.children.end()) return;
    node = it->second;
    if (slash == std::string_view::npos) {
      // The request ends here: patterns whose literal prefix is exactly the
      // request, and (for overlap) deeper ones, which "a/#"-style requests
      // could not reach anyway but a prefilter may keep.
      out.insert(out.end(), nodes_[node].entries.begin(), nodes_[node].entries.end());
      return;
    }
    rest.remove_prefix(slash + 1);
  }
}

Policy::Policy(std::unique_ptr<const CompiledPolicy> compiled) : compiled_(std::move(compiled)) {}
Policy::~Policy() = default;

const std::string& Policy::text() const { return compiled_->text; }

core::Result<std::shared_ptr<const Policy>> Policy::parse(std::string_view yaml, std::string_view filename) {
  WARDEN_ASSIGN_OR_RETURN(std::unique_ptr<CompiledPolicy> compiled, compilePolicy(yaml, filename));
  return std::shared_ptr<const Policy>(new Policy(std::move(compiled)));
}

Decision Policy::authorize(const Principal& principal, std::string_view action, std::string_view resource) const {
  Context ctx;
  ctx.time = std::chrono::system_clock::now();
  return authorize(principal, action, resource, ctx);
}

Decision Policy::authorize(const Principal& principal, std::string_view action, std::string_view resource,
                           const Context& ctx) const {
  Request r;
  if (auto bad = parseRequest(action, resource, r)) return deny("default-deny", *bad);
  const CompiledPolicy& c = *compiled_;
  Membership segments(c, principal);
  Deadline deadline;

  // 1-2. A matching forbid beats every permit, quarantined or not.
  for (uint32_t i : ruleCandidates(c, r, principal, Effect::kForbid, 0)) {
    const CompiledRule& rule = c.rules[i];
    if (evaluateRule(rule, principal, ctx, r, segments, deadline) == RuleOutcome::kMatched) {
      Decision d = deny(rule.id, "forbidden");
      d.valid_until = deadline;
      return d;
    }
  }

  // 3. Every service the request reaches outside the principal's segments
  // needs a flow from one of them listing the action.
  const Flow* used_flow = nullptr;
  if (needsFlowCheck(r.action) && !c.services.empty()) {
    std::vector<uint32_t>& buffer = candidateBuffer(1);
    const std::vector<uint32_t>* reached = &buffer;
    if (r.action == Action::kMqttSubscribe) {
      c.service_index.candidates(r.filter, /*overlap=*/true, buffer);
    } else {
      reached = c.service_index.collect(r.resource, buffer);
    }
    if (reached == &buffer) sortUnique(buffer);
    std::vector<MissingFlow> missing;  // allocates only when a flow is missing
    for (uint32_t s : *reached) {
      const Service& service = c.services[s];
      if (segments.inSegment(service.segment) || !serviceReached(service, r)) continue;
      const Flow* found = nullptr;
      for (uint32_t f : c.flows_into[s]) {
        const Flow& flow = c.flows[f];
        if ((flow.actions & actionBit(r.action)) != 0 && segments.inSegment(flow.from)) {
          found = &flow;
          break;
        }
      }
      if (found == nullptr) {
        missing.push_back(MissingFlow{std::string(segments.firstSegment()), service.name,
                                      std::string(actionName(r.action))});
      } else if (used_flow == nullptr) {
        used_flow = found;
      }
    }
    if (!missing.empty()) {
      Decision d = deny("default-deny", "no_flow");
      d.missing_flows = std::move(missing);
      d.valid_until = deadline;  // a forbid's window may open: the reason would change
      return d;
    }
  }

  // 4. The first matching permit in file order. A quarantined principal
  // gets only permits that select `segment: quarantine`.
  bool blocked_by_quarantine = false;
  for (uint32_t i : ruleCandidates(c, r, principal, Effect::kPermit, 2)) {
    const CompiledRule& rule = c.rules[i];
    RuleOutcome o = evaluateRule(rule, principal, ctx, r, segments, deadline);
    if (o == RuleOutcome::kMatched) {
      Decision d{true, rule.id, "permitted"};
      if (used_flow != nullptr) d.flow = used_flow->name;
      d.valid_until = deadline;
      return d;
    }
    if (o == RuleOutcome::kQuarantineBlocked) blocked_by_quarantine = true;
  }

  // Nothing decided: deny.
  Decision d = deny("default-deny", blocked_by_quarantine ? "quarantined" : "no_permit");
  d.valid_until = deadline;
  return d;
}

Explanation Policy::explain(const Principal& principal, std::string_view action, std::string_view resource,
                            const Context& ctx) const {
  Explanation e;
  e.decision = authorize(principal, action, resource, ctx);
  Request r;
  if (parseRequest(action, resource, r)) return e;
  const CompiledPolicy& c = *compiled_;
  Membership segments(c, principal);
  const size_t index = static_cast<size_t>(r.action);
  std::vector<uint32_t> rules = c.forbids[index];
  rules.insert(rules.end(), c.permits[index].begin(), c.permits[index].end());
  std::sort(rules.begin(), rules.end());
  for (uint32_t i : rules) {
    const CompiledRule& rule = c.rules[i];
    Deadline ignored;
    const Condition* unmet = nullptr;
    RuleOutcome o = evaluateRule(rule, principal, ctx, r, segments, ignored, &unmet);
    RuleExplanation line;
    line.id = rule.id;
    line.effect = rule.effect == Effect::kForbid ? "forbid" : "permit";
    line.matched = o == RuleOutcome::kMatched;
    switch (o) {
      case RuleOutcome::kSelectorMismatch:
        line.why_not = fmt::format("the principal is not selected ({} does not match)",
                                   rule.principals.failedKey(principal, segments));
        break;
      case RuleOutcome::kResourceMismatch:
        line.why_not = fmt::format("the resource '{}' matches none of its resources", resource);
        break;
      case RuleOutcome::kConditionUnmet:
        line.why_not = fmt::format("condition '{}' does not hold ({})", unmet->text,
                                   describeValue(*unmet, principal, ctx, segments));
        break;
      case RuleOutcome::kQuarantineBlocked:
        line.why_not = "the principal is quarantined and this permit does not select segment: quarantine";
        break;
      case RuleOutcome::kMatched: break;
    }
    e.rules.push_back(std::move(line));
  }
  return e;
}

std::optional<AttestationRequirement> Policy::attestationFor(const Principal& principal) const {
  if (!hasAttestation()) return std::nullopt;
  Principal unquarantined = principal;
  unquarantined.quarantined = false;
  Membership segments(*compiled_, unquarantined);
  std::optional<AttestationRequirement> out;
  for (uint32_t s = 1; s < compiled_->segments.size(); ++s) {
    const auto& block = compiled_->segments[s].attestation;
    if (!block || !segments.inSegment(s)) continue;
    if (!out) out.emplace();
    if (block->required) {
      out->interval = out->required ? std::min(out->interval, block->interval) : block->interval;
      out->grace = out->required ? std::min(out->grace, block->grace) : block->grace;
      out->required = true;
    }
    if (block->min_assurance && (!out->min_assurance || *block->min_assurance > *out->min_assurance)) {
      out->min_assurance = block->min_assurance;
    }
  }
  return out;
}

bool Policy::hasAttestation() const {
  for (const Segment& s : compiled_->segments) {
    if (s.attestation) return true;
  }
  return false;
}

bool Policy::readsAttestationAge() const {
  for (const CompiledRule& r : compiled_->rules) {
    for (const Condition& c : r.conditions) {
      if (c.path == AttributePath::kAttestationAge) return true;
    }
  }
  return false;
}

std::vector<std::string> Policy::segmentsOf(const Principal& principal) const {
  Membership segments(*compiled_, principal);
  std::vector<std::string> out;
  for (uint32_t s = 0; s < compiled_->segments.size(); ++s) {
    if (segments.inSegment(s)) out.push_back(compiled_->segments[s].name);
  }
  return out;
}

}  // namespace warden::policy
