#include "policy/policy_impact.h"

#include <set>

#include "policy/compiled_policy.h"

namespace warden::policy {
namespace {

// concreteTopic turns a filter into a topic it matches: '+' and '#' become
// one sample level ("a/#" also matches "a", but a deeper topic exercises more
// rules). A '$' first level is kept.
std::string concreteTopic(std::string_view filter) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t slash = filter.find('/', start);
    std::string_view level = filter.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!out.empty() || start > 0) out.push_back('/');
    out += (level == "+" || level == "#") ? std::string_view("x") : level;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

void addPatterns(const CompiledPolicy& c, const Principal& p, Action a, std::set<std::string>& out) {
  const ActionFamily family = actionFamily(a);
  std::string expanded;
  for (const CompiledRule& rule : c.rules) {
    if ((rule.actions & actionBit(a)) == 0) continue;
    for (const ResourcePattern& pattern : rule.resources) {
      if (pattern.expand(p, family, /*fail_closed=*/true, expanded) == Expansion::kMatchAny) expanded.assign(1, '*');
      out.insert(expanded);
    }
  }
  if (family == ActionFamily::kTopic) {
    for (const Service& s : c.services) out.insert(s.mqtt.begin(), s.mqtt.end());
  }
}

bool sameOutcome(const Decision& a, const Decision& b) { return a.permit == b.permit && a.reason == b.reason; }

}  // namespace

PolicyImpact comparePolicies(const Policy& before, const Policy& after, const std::vector<Principal>& principals,
                             const Context& ctx, size_t max_changes) {
  PolicyImpact impact;
  for (const Principal& p : principals) {
    ++impact.principals_checked;
    std::vector<std::pair<Action, std::string>> probes;
    if (p.kind != core::PrincipalKind::kUser) probes.emplace_back(Action::kMqttConnect, p.id);
    for (Action a : {Action::kMqttPublish, Action::kMqttSubscribe, Action::kMqttReceive, Action::kMqttRetain}) {
      std::set<std::string> patterns;
      addPatterns(before.compiled(), p, a, patterns);
      addPatterns(after.compiled(), p, a, patterns);
      for (const std::string& pattern : patterns) {
        probes.emplace_back(a, a == Action::kMqttSubscribe ? pattern : concreteTopic(pattern));
      }
    }
    if (p.kind == core::PrincipalKind::kUser) {
      for (size_t i = 0; i < kActionCount; ++i) {
        if ((kAdminActions & actionBit(static_cast<Action>(i))) != 0) probes.emplace_back(static_cast<Action>(i), "*");
      }
    }
    bool changed = false;
    for (const auto& [action, resource] : probes) {
      ++impact.requests_checked;
      std::string_view name = actionName(action);
      Decision b = before.authorize(p, name, resource, ctx);
      Decision a = after.authorize(p, name, resource, ctx);
      if (sameOutcome(b, a)) continue;
      changed = true;
      if (impact.changes.size() < max_changes) {
        impact.changes.push_back(DecisionChange{p.id, std::string(name), resource, std::move(b), std::move(a)});
      } else {
        impact.truncated = true;
      }
    }
    if (changed) impact.changed_principals.push_back(p.id);
  }
  return impact;
}

}  // namespace warden::policy
