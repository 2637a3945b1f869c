#include "policy/policy_lint.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>

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

// NeverHolds says why a permit's conditions cannot all hold: the condition
// that emptied the set of possible values, and the one it contradicts (or
// nullptr when it cannot hold on its own).
struct NeverHolds {
  const Condition* condition;
  const Condition* contradicts;
};

// impossibleConditions finds, for a permit (absent values fail a permit),
// conditions on one attribute that no value satisfies together: numeric
// ranges (trust 0-100, assurance none..tpm, ages >= 0) that become empty,
// equalities and `in` lists on one string attribute or weekday sets with no
// common value, a boolean required both true and false.
std::optional<NeverHolds> impossibleConditions(const CompiledRule& rule) {
  auto pathKey = [](AttributePath path) { return std::to_string(static_cast<int>(path)) + "/"; };
  struct Range {
    int64_t lo, hi;
    const Condition* last = nullptr;
  };
  std::vector<std::pair<std::string, Range>> ranges;  // key: path (+ label key)
  std::vector<std::pair<std::string, std::pair<std::vector<std::string>, const Condition*>>> allowed;
  std::vector<std::pair<std::string, std::pair<uint8_t, const Condition*>>> days;
  std::vector<std::pair<std::string, std::pair<bool, const Condition*>>> booleans;
  auto slot = [](auto& table, const std::string& key) -> auto* {
    for (auto& entry : table) {
      if (entry.first == key) return &entry.second;
    }
    return static_cast<decltype(&table.front().second)>(nullptr);
  };
  // The selector's own kind, id and role lists bound what those attributes
  // can be (a condition outside them "cannot hold" on its own).
  std::vector<std::string> kinds;
  for (core::PrincipalKind k : {core::PrincipalKind::kDevice, core::PrincipalKind::kUser, core::PrincipalKind::kService}) {
    if ((rule.principals.kinds & kindBit(k)) != 0) kinds.emplace_back(core::principalKindName(k));
  }
  std::sort(kinds.begin(), kinds.end());
  allowed.push_back({pathKey(AttributePath::kPrincipalKind), {std::move(kinds), nullptr}});
  if (rule.principals.ids && !rule.principals.ids->any) {
    allowed.push_back({pathKey(AttributePath::kPrincipalId), {rule.principals.ids->values, nullptr}});
  }
  if (rule.principals.roles && !rule.principals.roles->any) {
    allowed.push_back({pathKey(AttributePath::kPrincipalRole), {rule.principals.roles->values, nullptr}});
  }
  for (const Condition& c : rule.conditions) {
    const std::string key = pathKey(c.path) + c.label_key;
    switch (c.type) {
      case ValueType::kInteger:
      case ValueType::kAssurance:
      case ValueType::kDuration: {
        Range* r = slot(ranges, key);
        if (r == nullptr) {
          int64_t hi = c.type == ValueType::kInteger ? 100 : c.type == ValueType::kAssurance ? 2 : INT64_MAX;
          ranges.push_back({key, Range{0, hi}});
          r = &ranges.back().second;
        }
        switch (c.op) {
          case ConditionOp::kEq: r->lo = std::max(r->lo, c.number); r->hi = std::min(r->hi, c.number); break;
          case ConditionOp::kLt: r->hi = std::min(r->hi, c.number - 1); break;
          case ConditionOp::kLe: r->hi = std::min(r->hi, c.number); break;
          case ConditionOp::kGt: r->lo = std::max(r->lo, c.number == INT64_MAX ? c.number : c.number + 1); break;
          case ConditionOp::kGe: r->lo = std::max(r->lo, c.number); break;
          default: continue;
        }
        if (r->lo > r->hi) return NeverHolds{&c, r->last};
        r->last = &c;
        break;
      }
      case ValueType::kString:
      case ValueType::kKind: {
        if (c.op != ConditionOp::kEq && c.op != ConditionOp::kIn) continue;
        std::vector<std::string> values = c.strings;
        std::sort(values.begin(), values.end());
        auto* a = slot(allowed, key);
        if (a == nullptr) {
          allowed.push_back({key, {std::move(values), &c}});
          continue;
        }
        std::vector<std::string> common;
        std::set_intersection(a->first.begin(), a->first.end(), values.begin(), values.end(), std::back_inserter(common));
        if (common.empty()) return NeverHolds{&c, a->second};
        *a = {std::move(common), &c};
        break;
      }
      case ValueType::kWeekday: {
        if (c.op != ConditionOp::kIn && c.op != ConditionOp::kEq && c.op != ConditionOp::kNotIn && c.op != ConditionOp::kNe) continue;
        uint8_t set = (c.op == ConditionOp::kIn || c.op == ConditionOp::kEq) ? c.weekdays : static_cast<uint8_t>(~c.weekdays & 0x7f);
        auto* d = slot(days, key);
        if (d == nullptr) {
          if (set == 0) return NeverHolds{&c, nullptr};
          days.push_back({key, {set, &c}});
          continue;
        }
        if ((d->first & set) == 0) return NeverHolds{&c, d->second};
        *d = {static_cast<uint8_t>(d->first & set), &c};
        break;
      }
      case ValueType::kBoolean: {
        bool want;
        if (c.op == ConditionOp::kTrue) want = true;
        else if (c.op == ConditionOp::kEq) want = c.boolean;
        else if (c.op == ConditionOp::kNe) want = !c.boolean;
        else continue;
        auto* b = slot(booleans, key);
        if (b == nullptr) {
          booleans.push_back({key, {want, &c}});
          continue;
        }
        if (b->first != want) return NeverHolds{&c, b->second};
        break;
      }
      default: break;
    }
  }
  return std::nullopt;
}

// valueSetsMeet reports whether two selector values can select a common
// value (absent: no constraint).
bool valueSetsMeet(const std::optional<ValueSet>& a, const std::optional<ValueSet>& b) {
  if (!a || !b || a->any || b->any) return true;
  return std::any_of(a->values.begin(), a->values.end(), [&](const std::string& v) { return b->matches(v); });
}

// selectorsMeet reports whether some principal could be selected by both
// (conservatively true; segment keys inside |b| are not followed).
bool selectorsMeet(const PrincipalSelector& a, const PrincipalSelector& b) {
  if ((a.kinds & b.kinds) == 0) return false;
  if (!valueSetsMeet(a.ids, b.ids) || !valueSetsMeet(a.roles, b.roles)) return false;
  for (const auto& label : a.labels) {
    const std::string& key = label.first;
    auto it = std::find_if(b.labels.begin(), b.labels.end(), [&key](const auto& l) { return l.first == key; });
    if (it != b.labels.end() && !valueSetsMeet(label.second, it->second)) return false;
  }
  return true;
}

// unreachableSegments reports whether a rule's selector names segments and
// its own keys (kind, id, role, labels) exclude every member of each of
// them, e.g. {role: sensor, segment: plant} where plant is {role: controller}.
bool unreachableSegments(const CompiledPolicy& c, const PrincipalSelector& selector) {
  if (selector.segments.empty()) return false;
  for (uint32_t s : selector.segments) {
    if (s == 0 || s >= c.segments.size()) return false;  // quarantine: anyone may land there
    if (selectorsMeet(selector, c.segments[s].selector)) return false;
  }
  return true;
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
    std::optional<NeverHolds> never;
    if (rule.effect == Effect::kPermit) never = impossibleConditions(rule);
    if (never && never->contradicts == nullptr) {
      add("never-matches", rule.id, never->condition->pos,
          fmt::format("rule '{}' never matches: '{}' cannot hold for the principals it selects", rule.id,
                      never->condition->text));
    } else if (never) {
      add("never-matches", rule.id, never->condition->pos,
          fmt::format("rule '{}' never matches: '{}' contradicts '{}'", rule.id, never->condition->text,
                      never->contradicts->text));
    } else if (unreachableSegments(c, rule.principals)) {
      add("never-matches", rule.id, rule.pos,
          fmt::format("rule '{}' never matches: its principals' kind, id, role or labels exclude every member of "
                      "the segments it names",
                      rule.id));
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
    used = used || c.segments[s].attestation.has_value();  // it sets its devices' attestation requirement
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
