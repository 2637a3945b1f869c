#include "policy/policy_lint.h"

#include <algorithm>

#include <fmt/format.h>

#include "policy/compiled_policy.h"
#include "policy/topic.h"

namespace warden::policy {
namespace {

// selectorCovers reports whether every principal |narrow| selects is also
// selected by |broad| (conservatively: false when unsure).
bool selectorCovers(const PrincipalSelector& broad, const PrincipalSelector& narrow) {
  if ((broad.kinds & narrow.kinds) != narrow.kinds) return false;
  auto covers = [](const std::optional<ValueSet>& b, const std::optional<ValueSet>& n) {
    if (!b) return true;
    if (!n) return false;
    if (b->any) return true;
    if (n->any) return false;
    return std::all_of(n->values.begin(), n->values.end(), [&](const std::string& v) {
      return std::find(b->values.begin(), b->values.end(), v) != b->values.end();
    });
  };
  if (!covers(broad.ids, narrow.ids) || !covers(broad.roles, narrow.roles)) return false;
  for (const auto& label : broad.labels) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one.
    const std::string& key = label.first;
    auto it = std::find_if(narrow.labels.begin(), narrow.labels.end(), [&key](const auto& l) { return l.first == key; });
    if (it == narrow.labels.end() || !covers(label.second, it->second)) return false;
  }
  if (!broad.segments.empty()) {
    auto b = broad.segments;
    auto n = narrow.segments;
    std::sort(b.begin(), b.end());
    std::sort(n.begin(), n.end());
    if (n.empty() || !std::includes(b.begin(), b.end(), n.begin(), n.end())) return false;
  }
  return true;
}

bool isTopicPattern(const ResourcePattern& p) { return !p.hasSubstitutions(); }

// impossibleCondition finds a condition no value can satisfy.
const Condition* impossibleCondition(const CompiledRule& rule) {
  for (const Condition& c : rule.conditions) {
    if (c.type != ValueType::kInteger) continue;
    if ((c.op == ConditionOp::kGt && c.number >= 100) || (c.op == ConditionOp::kGe && c.number > 100) ||
        (c.op == ConditionOp::kLt && c.number <= 0) || (c.op == ConditionOp::kEq && c.number > 100)) {
      return &c;
    }
  }
  return nullptr;
}

}  // namespace

std::vector<LintFinding> lintPolicy(const Policy& policy) {
  const CompiledPolicy& c = policy.compiled();
  std::vector<LintFinding> out;
  auto add = [&](std::string code, const std::string& id, YamlPosition pos, std::string message) {
    out.push_back(LintFinding{std::move(code), id, c.filename, pos.line, pos.column, std::move(message)});
  };
  constexpr ActionSet kFlowActions =
      actionBit(Action::kMqttPublish) | actionBit(Action::kMqttSubscribe) | actionBit(Action::kMqttReceive);

  for (const CompiledRule& rule : c.rules) {
    // never-matches: an impossible condition, or a permit whose every topic
    // lies in services no selected segment may reach.
    if (const Condition* bad = impossibleCondition(rule)) {
      add("never-matches", rule.id, bad->pos, fmt::format("rule '{}' never matches: '{}' cannot hold", rule.id, bad->text));
    } else if (rule.effect == Effect::kPermit && !rule.principals.segments.empty() && !c.services.empty() &&
               (rule.actions & ~kFlowActions) == 0) {
      bool all_blocked = true;
      for (const ResourcePattern& p : rule.resources) {
        if (!isTopicPattern(p)) {
          all_blocked = false;
          break;
        }
        bool inside_blocked = false;
        for (uint32_t s = 0; s < c.services.size() && !inside_blocked; ++s) {
          const Service& svc = c.services[s];
          bool inside = std::any_of(svc.mqtt.begin(), svc.mqtt.end(),
                                    [&](const std::string& sp) { return filterIsSubset(p.text(), sp); });
          if (!inside) continue;
          bool reachable = false;
          for (uint32_t seg : rule.principals.segments) {
            if (seg == svc.segment) reachable = true;
            for (uint32_t f : c.flows_into[s]) {
              if (c.flows[f].from == seg && (c.flows[f].actions & rule.actions) != 0) reachable = true;
            }
          }
          inside_blocked = !reachable;
        }
        if (!inside_blocked) {
          all_blocked = false;
          break;
        }
      }
      if (all_blocked) {
        add("never-matches", rule.id, rule.pos,
            fmt::format("rule '{}' never matches: its topics belong to services its segments have no flow to",
                        rule.id));
      }
    }

    if (rule.effect != Effect::kPermit) continue;
    // shadowed-by-forbid: an unconditional forbid covers the whole permit.
    for (const CompiledRule& forbid : c.rules) {
      if (forbid.effect != Effect::kForbid || !forbid.conditions.empty()) continue;
      if ((forbid.actions & rule.actions) != rule.actions) continue;
      if (!selectorCovers(forbid.principals, rule.principals)) continue;
      bool all = std::all_of(rule.resources.begin(), rule.resources.end(), [&](const ResourcePattern& p) {
        return std::any_of(forbid.resources.begin(), forbid.resources.end(), [&](const ResourcePattern& f) {
          if (f.text() == p.text() || f.isAny()) return true;
          if ((rule.actions & kTopicActions) != rule.actions) return false;
          return isTopicPattern(p) && isTopicPattern(f) && filterIsSubset(p.text(), f.text());
        });
      });
      if (all) {
        add("shadowed-by-forbid", rule.id, rule.pos,
            fmt::format("permit '{}' never applies: forbid '{}' (line {}) covers every principal, action and "
                        "resource of it",
                        rule.id, forbid.id, forbid.pos.line));
        break;
      }
    }

    // broader-than-segment: a publish/subscribe permit whose pattern starts
    // with a wildcard, or spans services of several segments.
    if ((rule.actions & (actionBit(Action::kMqttPublish) | actionBit(Action::kMqttSubscribe))) != 0) {
      for (const ResourcePattern& p : rule.resources) {
        if (!isTopicPattern(p)) continue;
        std::string_view first = std::string_view(p.text()).substr(0, p.text().find('/'));
        std::vector<uint32_t> segs;
        for (const Service& svc : c.services) {
          for (const std::string& sp : svc.mqtt) {
            if (filtersOverlap(p.text(), sp) && std::find(segs.begin(), segs.end(), svc.segment) == segs.end()) {
              segs.push_back(svc.segment);
            }
          }
        }
        if (first == "#" || first == "+" || segs.size() > 1) {
          add("broader-than-segment", rule.id, rule.resources_pos,
              fmt::format("'{}' in rule '{}' reaches {}: narrow it to the topics of one segment", p.text(), rule.id,
                          segs.size() > 1 ? fmt::format("services of {} segments", segs.size())
                                          : std::string("every topic")));
          break;
        }
      }
    }
  }

  // unused-segment: named by no selector, service, flow or condition.
  for (uint32_t s = 1; s < c.segments.size(); ++s) {
    bool used = false;
    auto names = [&](const PrincipalSelector& sel) {
      return std::find(sel.segments.begin(), sel.segments.end(), s) != sel.segments.end();
    };
    for (const CompiledRule& rule : c.rules) {
      used = used || names(rule.principals);
      for (const Condition& cond : rule.conditions) used = used || (cond.type == ValueType::kSegments && cond.segment == s);
    }
    for (const Segment& other : c.segments) used = used || names(other.selector);
    for (const Service& svc : c.services) used = used || svc.segment == s;
    for (const Flow& f : c.flows) used = used || f.from == s || (!f.to_service && f.to == s);
    if (!used) {
      add("unused-segment", c.segments[s].name, c.segments[s].pos,
          fmt::format("segment '{}' is named by no rule, service, flow or condition", c.segments[s].name));
    }
  }

  // unused-flow: no permit of its actions reaches the services it opens.
  for (const Flow& f : c.flows) {
    bool used = false;
    for (uint32_t s = 0; s < c.services.size() && !used; ++s) {
      const Service& svc = c.services[s];
      if (f.to_service ? f.to != s : f.to != svc.segment) continue;
      for (const CompiledRule& rule : c.rules) {
        if (rule.effect != Effect::kPermit || (rule.actions & f.actions) == 0) continue;
        for (const ResourcePattern& p : rule.resources) {
          // A pattern with placeholders reaches at most its literal prefix's subtree.
          std::string text = p.hasSubstitutions()
                                 ? (p.literalPrefix().empty() ? std::string("#") : std::string(p.literalPrefix()) + "/#")
                                 : p.text();
          for (const std::string& sp : svc.mqtt) used = used || filtersOverlap(text, sp);
        }
      }
    }
    if (!used) {
      add("unused-flow", f.name, f.pos,
          fmt::format("flow '{}' opens topics that no permit of its actions reaches", f.name));
    }
  }

  std::stable_sort(out.begin(), out.end(), [](const LintFinding& a, const LintFinding& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  return out;
}

}  // namespace warden::policy
