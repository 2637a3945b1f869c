#include "unit/policy/reference_evaluator.h"

#include "policy/compiled_policy.h"
#include "policy/rule_eval.h"

namespace warden::policy::reference {
namespace {

class NaiveSegments final : public SegmentLookup {
 public:
  NaiveSegments(const CompiledPolicy& c, const Principal& p) : c_(c), p_(p) {}
  bool inSegment(uint32_t s) override { return p_.quarantined ? s == 0 : s != 0 && selectorSegment(s); }
  bool selectorSegment(uint32_t s) override {
    if (s == 0) return p_.quarantined;
    return s < c_.segments.size() && c_.segments[s].selector.matches(p_, *this);
  }
  std::string segmentNames() override {
    std::string out;
    for (uint32_t s = 0; s < c_.segments.size(); ++s) {
      if (!inSegment(s)) continue;
      if (!out.empty()) out += ", ";
      out += c_.segments[s].name;
    }
    return out;
  }
  std::string first() {
    for (uint32_t s = 0; s < c_.segments.size(); ++s) {
      if (inSegment(s)) return c_.segments[s].name;
    }
    return "";
  }

 private:
  const CompiledPolicy& c_;
  const Principal& p_;
};

}  // namespace

Decision decide(const Policy& policy, const Principal& p, std::string_view action, std::string_view resource,
                const Context& ctx) {
  Request r;
  if (auto bad = parseRequest(action, resource, r)) return Decision{false, "default-deny", std::string(*bad)};
  const CompiledPolicy& c = policy.compiled();
  NaiveSegments segments(c, p);
  Deadline deadline;
  const ActionSet bit = actionBit(r.action);
  for (const CompiledRule& rule : c.rules) {
    if (rule.effect != Effect::kForbid || (rule.actions & bit) == 0) continue;
    if (evaluateRule(rule, p, ctx, r, segments, deadline) == RuleOutcome::kMatched) {
      Decision d{false, rule.id, "forbidden"};
      d.valid_until = deadline;
      return d;
    }
  }
  std::string used_flow;
  if (needsFlowCheck(r.action)) {
    std::vector<MissingFlow> missing;
    for (const Service& s : c.services) {
      if (!serviceReached(s, r) || segments.inSegment(s.segment)) continue;
      const Flow* found = nullptr;
      for (const Flow& f : c.flows) {
        bool into = f.to_service ? c.services[f.to].name == s.name : f.to == s.segment;
        if (into && (f.actions & bit) != 0 && segments.inSegment(f.from)) {
          found = &f;
          break;
        }
      }
      if (found == nullptr) {
        missing.push_back(MissingFlow{segments.first(), s.name, std::string(action)});
      } else if (used_flow.empty()) {
        used_flow = found->name;
      }
    }
    if (!missing.empty()) {
      Decision d{false, "default-deny", "no_flow"};
      d.missing_flows = missing;
      d.valid_until = deadline;
      return d;
    }
  }
  bool blocked = false;
  for (const CompiledRule& rule : c.rules) {
    if (rule.effect != Effect::kPermit || (rule.actions & bit) == 0) continue;
    RuleOutcome o = evaluateRule(rule, p, ctx, r, segments, deadline);
    if (o == RuleOutcome::kMatched) {
      Decision d{true, rule.id, "permitted"};
      d.flow = used_flow;
      d.valid_until = deadline;
      return d;
    }
    blocked = blocked || o == RuleOutcome::kQuarantineBlocked;
  }
  Decision d{false, "default-deny", blocked ? "quarantined" : "no_permit"};
  d.valid_until = deadline;
  return d;
}

Explanation explain(const Policy& policy, const Principal& p, std::string_view action, std::string_view resource,
                    const Context& ctx) {
  Explanation e;
  e.decision = decide(policy, p, action, resource, ctx);
  Request r;
  if (parseRequest(action, resource, r)) return e;
  const CompiledPolicy& c = policy.compiled();
  NaiveSegments segments(c, p);
  for (const CompiledRule& rule : c.rules) {
    if ((rule.actions & actionBit(r.action)) == 0) continue;
    Deadline ignored;
    RuleExplanation line;
    line.id = rule.id;
    line.effect = rule.effect == Effect::kForbid ? "forbid" : "permit";
    line.matched = evaluateRule(rule, p, ctx, r, segments, ignored) == RuleOutcome::kMatched;
    e.rules.push_back(line);
  }
  return e;
}

}  // namespace warden::policy::reference
