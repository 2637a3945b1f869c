// policy_parser.cc: YAML tree -> CompiledPolicy, with every check of the
// policy v0 language (docs/policy.md). Each check reports the position of
// the offending node and what to write instead.

#include <algorithm>
#include <optional>
#include <unordered_map>

#include <date/tz.h>

#include <fmt/format.h>

#include "core/names.h"
#include "policy/compiled_policy.h"
#include "policy/topic.h"

namespace warden::policy {
namespace {

std::string_view shortened(std::string_view s) { return s.substr(0, 80); }

class PolicyCompiler {
 public:
  explicit PolicyCompiler(std::string_view filename) : filename_(filename) {}

  core::Status error(const YamlNode& at, std::string_view message) const {
    return yamlError(filename_, at.pos, message);
  }

  core::Status compileDocument(const YamlNode& root, CompiledPolicy& out) {
    if (root.type == YamlNode::Type::kNull) {
      return error(root, "the policy is empty: write a 'rules:' list (see docs/policy.md)");
    }
    if (root.type != YamlNode::Type::kMap) {
      return error(root, fmt::format("the policy must be a mapping with a 'rules:' key, not a {}", root.typeName()));
    }
    const YamlNode* timezone = nullptr;
    const YamlNode* segments = nullptr;
    const YamlNode* services = nullptr;
    const YamlNode* flows = nullptr;
    const YamlNode* rules = nullptr;
    for (const auto& [key, value] : root.entries) {
      if (key.scalar == "rules") {
        rules = &value;
      } else if (key.scalar == "timezone") {
        timezone = &value;
      } else if (key.scalar == "segments") {
        segments = &value;
      } else if (key.scalar == "services") {
        services = &value;
      } else if (key.scalar == "flows") {
        flows = &value;
      } else {
        return error(key, fmt::format("unknown top-level key '{}': use timezone, segments, services, flows and rules",
                                      shortened(key.scalar)));
      }
    }
    if (rules == nullptr) return error(root, "the policy has no 'rules:' list: add one (see docs/policy.md)");
    out_ = &out;
    out.zone = locateZone("UTC");
    if (timezone != nullptr) {
      WARDEN_RETURN_IF_ERROR(compileZone(*timezone, out.zone));
      out.has_timezone = true;
    }
    Segment quarantine;
    quarantine.name = "quarantine";
    out.segments.push_back(std::move(quarantine));
    if (segments != nullptr) WARDEN_RETURN_IF_ERROR(compileSegments(*segments, out));
    if (services != nullptr) WARDEN_RETURN_IF_ERROR(compileServices(*services, out));
    if (flows != nullptr) WARDEN_RETURN_IF_ERROR(compileFlows(*flows, out));
    WARDEN_RETURN_IF_ERROR(compileRules(*rules, out));
    buildIndex(out);
    return core::Status::ok();
  }

 private:
  core::Status compileRules(const YamlNode& rules, CompiledPolicy& out) {
    if (rules.type != YamlNode::Type::kSequence) {
      return error(rules, fmt::format("'rules' must be a list of rules ('- id: ...'), not a {}", rules.typeName()));
    }
    if (rules.items.size() > kMaxRules) {
      return error(rules, fmt::format("{} rules is over the limit of {}", rules.items.size(), kMaxRules));
    }
    std::unordered_map<std::string, YamlPosition> seen_ids;
    for (const YamlNode& item : rules.items) {
      CompiledRule rule;
      WARDEN_RETURN_IF_ERROR(compileRule(item, rule));
      auto [it, inserted] = seen_ids.emplace(rule.id, item.pos);
      if (!inserted) {
        return error(item, fmt::format("duplicate rule id '{}' (first used at line {}): give each rule its own id",
                                       rule.id, it->second.line));
      }
      out.rules.push_back(std::move(rule));
    }
    return core::Status::ok();
  }

  core::Status compileRule(const YamlNode& node, CompiledRule& rule) {
    if (node.type != YamlNode::Type::kMap) {
      return error(node, fmt::format("a rule must be a mapping with id, effect, principals, actions and resources, "
                                     "not a {}",
                                     node.typeName()));
    }
    rule.pos = node.pos;
    const YamlNode* id = nullptr;
    const YamlNode* effect = nullptr;
    const YamlNode* principals = nullptr;
    const YamlNode* actions = nullptr;
    const YamlNode* resources = nullptr;
    const YamlNode* when = nullptr;
    const YamlNode* timezone = nullptr;
    for (const auto& [key, value] : node.entries) {
      const std::string& k = key.scalar;
      if (k == "id") {
        id = &value;
      } else if (k == "effect") {
        effect = &value;
      } else if (k == "principals") {
        principals = &value;
      } else if (k == "actions") {
        actions = &value;
      } else if (k == "resources") {
        resources = &value;
      } else if (k == "description") {
        if (value.type != YamlNode::Type::kScalar) {
          return error(value, fmt::format("'description' must be a string, not a {}", value.typeName()));
        }
        rule.description = value.scalar;
      } else if (k == "when") {
        when = &value;
      } else if (k == "timezone") {
        timezone = &value;
      } else {
        return error(key, fmt::format("unknown key '{}' in a rule: use id, effect, description, principals, "
                                      "actions, resources, when and timezone",
                                      shortened(k)));
      }
    }
    if (id == nullptr) return error(node, "this rule has no 'id': add one, e.g. id: sensors-publish-telemetry");
    WARDEN_RETURN_IF_ERROR(compileId(*id, rule));
    auto missing = [&](std::string_view key, std::string_view example) {
      return error(node, fmt::format("rule '{}' has no '{}': add it, e.g. {}", rule.id, key, example));
    };
    if (effect == nullptr) return missing("effect", "effect: permit");
    if (principals == nullptr) return missing("principals", "principals: {kind: device}");
    if (actions == nullptr) return missing("actions", "actions: [mqtt:publish]");
    if (resources == nullptr) return missing("resources", "resources: [\"factory/${principal.id}/#\"]");
    WARDEN_RETURN_IF_ERROR(compileEffect(*effect, rule));
    WARDEN_RETURN_IF_ERROR(compileSelector(*principals, rule.principals));
    WARDEN_RETURN_IF_ERROR(compileActions(*actions, rule));
    WARDEN_RETURN_IF_ERROR(compileResources(*resources, rule));
    rule.resources_pos = resources->pos;
    const date::time_zone* zone = out_->zone;
    if (timezone != nullptr) WARDEN_RETURN_IF_ERROR(compileZone(*timezone, zone));
    if (when != nullptr) WARDEN_RETURN_IF_ERROR(compileWhen(*when, zone, rule));
    return core::Status::ok();
  }

  core::Status compileZone(const YamlNode& node, const date::time_zone*& zone) {
    if (node.type != YamlNode::Type::kScalar) {
      return error(node, fmt::format("'timezone' must be an IANA zone name such as Europe/Berlin, not a {}",
                                     node.typeName()));
    }
    zone = locateZone(node.scalar);
    if (zone == nullptr) {
      return error(node, fmt::format("unknown time zone '{}': use an IANA name such as Europe/Berlin or UTC",
                                     shortened(node.scalar)));
    }
    return core::Status::ok();
  }

  core::Status compileWhen(const YamlNode& node, const date::time_zone* zone, CompiledRule& rule) {
    if (node.type != YamlNode::Type::kSequence) {
      return error(node, fmt::format("'when' must be a list of conditions such as [\"principal.trust >= 70\"], "
                                     "not a {}",
                                     node.typeName()));
    }
    if (node.items.empty()) return error(node, "'when' is an empty list: list at least one condition or remove it");
    if (node.items.size() > kMaxConditions) {
      return error(node, fmt::format("{} conditions is over the limit of {} per rule", node.items.size(),
                                     kMaxConditions));
    }
    SegmentResolver resolve = [this](std::string_view name) { return segmentIndex(name); };
    for (const YamlNode& item : node.items) {
      WARDEN_ASSIGN_OR_RETURN(Condition c, parseCondition(item, filename_, zone, resolve));
      rule.conditions.push_back(std::move(c));
    }
    return core::Status::ok();
  }

  std::optional<uint32_t> segmentIndex(std::string_view name) const {
    for (uint32_t i = 0; i < out_->segments.size(); ++i) {
      if (out_->segments[i].name == name) return i;
    }
    return std::nullopt;
  }

  std::optional<uint32_t> serviceIndex(std::string_view name) const {
    for (uint32_t i = 0; i < out_->services.size(); ++i) {
      if (out_->services[i].name == name) return i;
    }
    return std::nullopt;
  }

  core::Status checkNewName(const YamlNode& key, std::string_view what) {
    if (!core::isValidName(key.scalar)) {
      return error(key, fmt::format("invalid {} name '{}': use lowercase letters, digits and '-'", what,
                                    shortened(key.scalar)));
    }
    if (key.scalar == "quarantine") return error(key, "'quarantine' is the built-in segment: pick another name");
    if (segmentIndex(key.scalar) || serviceIndex(key.scalar)) {
      return error(key, fmt::format("'{}' is already a segment or service name: segments and services share one "
                                    "namespace",
                                    key.scalar));
    }
    return core::Status::ok();
  }

  core::Status compileSegments(const YamlNode& node, CompiledPolicy& out) {
    if (node.type != YamlNode::Type::kMap) {
      return error(node, fmt::format("'segments' must be a mapping NAME: SELECTOR such as edge: {{role: sensor}}, "
                                     "not a {}",
                                     node.typeName()));
    }
    if (node.entries.size() + 1 > kMaxSegments) {
      return error(node, fmt::format("{} segments is over the limit of {}", node.entries.size(), kMaxSegments - 1));
    }
    for (const auto& [key, value] : node.entries) {
      WARDEN_RETURN_IF_ERROR(checkNewName(key, "segment"));
      Segment seg;
      seg.name = key.scalar;
      seg.pos = key.pos;
      // Selectors may name only segments defined above, which rules out cycles.
      // An `attestation:` block sits next to the selector keys.
      YamlNode selector = value;
      if (value.type == YamlNode::Type::kMap) {
        selector.entries.clear();
        for (const auto& [k, v] : value.entries) {
          if (k.scalar == "attestation") {
            AttestationRequirement block;
            WARDEN_RETURN_IF_ERROR(compileAttestation(v, key.scalar, block));
            seg.attestation = block;
          } else {
            selector.entries.push_back(YamlEntry{k, v});
          }
        }
        if (selector.entries.empty() && seg.attestation) {
          return error(value, fmt::format("segment '{}' has an attestation block but no selector: add e.g. "
                                          "role: controller next to it",
                                          key.scalar));
        }
      }
      WARDEN_RETURN_IF_ERROR(compileSelector(selector, seg.selector, /*in_segment=*/true));
      out.segments.push_back(std::move(seg));
    }
    return core::Status::ok();
  }

  // compileAttestation reads `attestation: {required: BOOL, interval: DUR,
  // grace: DUR, min_assurance: tpm|software}` (docs/policy.md).
  core::Status compileAttestation(const YamlNode& node, const std::string& segment, AttestationRequirement& out) {
    if (node.type != YamlNode::Type::kMap) {
      return error(node, fmt::format("'attestation' of segment '{}' must be a mapping such as {{required: true, "
                                     "interval: 60s, grace: 120s, min_assurance: tpm}}, not a {}",
                                     segment, node.typeName()));
    }
    const YamlNode* required = nullptr;
    const YamlNode* interval = nullptr;
    const YamlNode* grace = nullptr;
    for (const auto& [k, v] : node.entries) {
      if (k.scalar == "required") {
        required = &v;
      } else if (k.scalar == "interval") {
        interval = &v;
      } else if (k.scalar == "grace") {
        grace = &v;
      } else if (k.scalar == "min_assurance") {
        if (v.type != YamlNode::Type::kScalar || (v.scalar != "tpm" && v.scalar != "software")) {
          return error(v, "'min_assurance' must be tpm or software");
        }
        out.min_assurance = v.scalar == "tpm" ? AttestationAssurance::kTpm : AttestationAssurance::kSoftware;
      } else {
        return error(k, fmt::format("unknown key '{}' in attestation: use required, interval, grace and "
                                    "min_assurance",
                                    shortened(k.scalar)));
      }
    }
    if (required == nullptr) return error(node, "the attestation block needs 'required: true' (or false)");
    if (required->type != YamlNode::Type::kScalar || (required->scalar != "true" && required->scalar != "false")) {
      return error(*required, "'required' must be true or false");
    }
    out.required = required->scalar == "true";
    auto duration = [&](const YamlNode* n, const char* what, std::chrono::seconds min, std::chrono::seconds max,
                        std::chrono::seconds& into) -> core::Status {
      if (n->type != YamlNode::Type::kScalar) {
        return error(*n, fmt::format("'{}' must be a duration such as 60s, 5m or 1h", what));
      }
      auto secs = core::parseDuration(n->scalar);
      if (!secs.isOk()) {
        return error(*n, fmt::format("'{}': {} (write e.g. 60s, 5m or 1h)", what, secs.status().message()));
      }
      if (std::chrono::seconds(*secs) < min || std::chrono::seconds(*secs) > max) {
        return error(*n, fmt::format("'{}' {} is out of range: use {} to {}", what, shortened(n->scalar),
                                     core::formatDuration(min.count()), core::formatDuration(max.count())));
      }
      into = std::chrono::seconds(*secs);
      return core::Status::ok();
    };
    if (!out.required) {
      if (interval != nullptr || grace != nullptr) {
        return error(interval != nullptr ? *interval : *grace,
                     "'interval' and 'grace' apply only with required: true (deadlines); remove them or require "
                     "attestation");
      }
      return core::Status::ok();
    }
    if (interval == nullptr || grace == nullptr) {
      return error(node, "required: true needs 'interval' (how often, e.g. 60s) and 'grace' (how late before "
                         "quarantine, e.g. 120s)");
    }
    WARDEN_RETURN_IF_ERROR(duration(interval, "interval", kMinAttestationInterval, kMaxAttestationInterval,
                                    out.interval));
    WARDEN_RETURN_IF_ERROR(duration(grace, "grace", std::chrono::seconds(1), kMaxAttestationGrace, out.grace));
    return core::Status::ok();
  }

  core::Status compileServices(const YamlNode& node, CompiledPolicy& out) {
    if (node.type != YamlNode::Type::kMap) {
      return error(node, fmt::format("'services' must be a mapping NAME: {{segment: S, mqtt: [PATTERNS]}}, not a {}",
                                     node.typeName()));
    }
    if (node.entries.size() > kMaxServices) {
      return error(node, fmt::format("{} services is over the limit of {}", node.entries.size(), kMaxServices));
    }
    struct Owned {
      uint32_t service;
      const YamlNode* node;
    };
    std::vector<Owned> patterns;
    for (const auto& [key, value] : node.entries) {
      WARDEN_RETURN_IF_ERROR(checkNewName(key, "service"));
      if (value.type != YamlNode::Type::kMap) {
        return error(value, fmt::format("service '{}' must be a mapping {{segment: S, mqtt: [PATTERNS]}}, not a {}",
                                        key.scalar, value.typeName()));
      }
      Service svc;
      svc.name = key.scalar;
      svc.pos = key.pos;
      const YamlNode* segment = nullptr;
      const YamlNode* mqtt = nullptr;
      for (const auto& [k, v] : value.entries) {
        if (k.scalar == "segment") {
          segment = &v;
        } else if (k.scalar == "mqtt") {
          mqtt = &v;
        } else if (k.scalar == "description") {
          if (v.type != YamlNode::Type::kScalar) return error(v, "'description' must be a string");
        } else {
          return error(k, fmt::format("unknown key '{}' in service '{}': use segment, mqtt and description",
                                      shortened(k.scalar), key.scalar));
        }
      }
      if (segment == nullptr) return error(value, fmt::format("service '{}' has no 'segment:'", key.scalar));
      if (mqtt == nullptr) return error(value, fmt::format("service '{}' has no 'mqtt:' patterns", key.scalar));
      if (segment->type != YamlNode::Type::kScalar) return error(*segment, "'segment' must be a segment name");
      auto index = segmentIndex(segment->scalar);
      if (!index) {
        return error(*segment, fmt::format("unknown segment '{}': define it under 'segments:'",
                                           shortened(segment->scalar)));
      }
      svc.segment = *index;
      std::vector<const YamlNode*> values;
      WARDEN_RETURN_IF_ERROR(scalarList(*mqtt, "mqtt", values));
      for (const YamlNode* v : values) {
        const std::string& p = v->scalar;
        if (p.find("${") != std::string::npos) {
          return error(*v, "service patterns are fixed topic filters: placeholders belong in rules");
        }
        if (p.rfind("$share", 0) == 0) return error(*v, "a service pattern names topics, not a $share subscription");
        core::Status st = validateTopicFilter(p, 1024, 32);
        if (!st.isOk()) {
          return error(*v, fmt::format("'{}' is not a valid topic filter: {}", shortened(p), st.message()));
        }
        if (patterns.size() >= kMaxServicePatterns) {
          return error(*v, fmt::format("more than {} service patterns in one policy", kMaxServicePatterns));
        }
        patterns.push_back(Owned{static_cast<uint32_t>(out.services.size()), v});
        svc.mqtt.push_back(p);
      }
      out.services.push_back(std::move(svc));
    }
    // Services of different segments must not share a topic: otherwise a
    // topic's segment (and so the flows it needs) would be ambiguous.
    for (size_t i = 0; i < patterns.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        const Service& a = out.services[patterns[i].service];
        const Service& b = out.services[patterns[j].service];
        if (a.segment == b.segment) continue;
        if (filtersOverlap(patterns[i].node->scalar, patterns[j].node->scalar)) {
          return error(*patterns[i].node,
                       fmt::format("'{}' of service '{}' (segment {}) overlaps '{}' of service '{}' (segment {}): "
                                   "services of different segments must not share topics",
                                   shortened(patterns[i].node->scalar), a.name, out.segments[a.segment].name,
                                   shortened(patterns[j].node->scalar), b.name, out.segments[b.segment].name));
        }
      }
    }
    return core::Status::ok();
  }

  core::Status compileFlows(const YamlNode& node, CompiledPolicy& out) {
    if (node.type != YamlNode::Type::kSequence) {
      return error(node, fmt::format("'flows' must be a list of {{from: SEGMENT, to: SERVICE, actions: [...]}}, not "
                                     "a {}",
                                     node.typeName()));
    }
    if (node.items.size() > kMaxFlows) {
      return error(node, fmt::format("{} flows is over the limit of {}", node.items.size(), kMaxFlows));
    }
    for (const YamlNode& item : node.items) {
      if (item.type != YamlNode::Type::kMap) {
        return error(item, fmt::format("a flow must be a mapping {{from: SEGMENT, to: SERVICE, actions: [...]}}, not "
                                       "a {}",
                                       item.typeName()));
      }
      Flow flow;
      flow.pos = item.pos;
      const YamlNode* from = nullptr;
      const YamlNode* to = nullptr;
      const YamlNode* actions = nullptr;
      const YamlNode* id = nullptr;
      for (const auto& [k, v] : item.entries) {
        if (k.scalar == "from") {
          from = &v;
        } else if (k.scalar == "to") {
          to = &v;
        } else if (k.scalar == "actions") {
          actions = &v;
        } else if (k.scalar == "id") {
          id = &v;
        } else if (k.scalar == "description") {
          if (v.type != YamlNode::Type::kScalar) return error(v, "'description' must be a string");
        } else {
          return error(k, fmt::format("unknown key '{}' in a flow: use id, from, to, actions and description",
                                      shortened(k.scalar)));
        }
      }
      if (from == nullptr || to == nullptr || actions == nullptr) {
        return error(item, "a flow needs 'from' (a segment), 'to' (a service or segment) and 'actions'");
      }
      if (from->type != YamlNode::Type::kScalar) return error(*from, "'from' must be a segment name");
      if (to->type != YamlNode::Type::kScalar) return error(*to, "'to' must be a service or segment name");
      auto f = segmentIndex(from->scalar);
      if (!f) {
        return error(*from, fmt::format("unknown segment '{}' in 'from': {}", shortened(from->scalar),
                                        serviceIndex(from->scalar) ? "a flow starts at a segment, not a service"
                                                                    : "define it under 'segments:'"));
      }
      flow.from = *f;
      if (auto s = serviceIndex(to->scalar)) {
        flow.to_service = true;
        flow.to = *s;
      } else if (auto g = segmentIndex(to->scalar)) {
        flow.to_service = false;
        flow.to = *g;
      } else {
        return error(*to, fmt::format("unknown service or segment '{}' in 'to'", shortened(to->scalar)));
      }
      if (actions->type != YamlNode::Type::kSequence) {
        return error(*actions, "'actions' must be a list such as [mqtt:publish]");
      }
      std::vector<const YamlNode*> values;
      WARDEN_RETURN_IF_ERROR(scalarList(*actions, "actions", values));
      constexpr ActionSet kFlowActions = actionBit(Action::kMqttPublish) | actionBit(Action::kMqttSubscribe) |
                                         actionBit(Action::kMqttReceive);
      for (const YamlNode* v : values) {
        std::optional<ActionSet> set;
        if (v->scalar == "mqtt:*" || v->scalar == "*") {
          set = kFlowActions;
        } else {
          set = parseActionPattern(v->scalar);
        }
        if (!set || (*set & ~kFlowActions) != 0) {
          return error(*v, fmt::format("'{}' is not a flow action: flows list mqtt:publish, mqtt:subscribe, "
                                       "mqtt:receive or mqtt:*",
                                       shortened(v->scalar)));
        }
        flow.actions |= *set;
      }
      if (id != nullptr) {
        if (id->type != YamlNode::Type::kScalar || !core::isValidName(id->scalar)) {
          return error(*id, "a flow id is a name: lowercase letters, digits and '-'");
        }
        flow.name = id->scalar;
      } else {
        flow.name = from->scalar + "->" + to->scalar;
      }
      out.flows.push_back(std::move(flow));
    }
    return core::Status::ok();
  }

  core::Status compileId(const YamlNode& node, CompiledRule& rule) {
    if (node.type != YamlNode::Type::kScalar) {
      return error(node, fmt::format("'id' must be a string, not a {}", node.typeName()));
    }
    const std::string& s = node.scalar;
    auto ok_char = [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    };
    bool valid = !s.empty() && s.size() <= kMaxRuleIdLength && ok_char(s[0]) && s[0] != '-' && s[0] != '_' &&
                 s[0] != '.';
    for (char c : s) valid = valid && ok_char(c);
    if (!valid) {
      return error(node, fmt::format("invalid rule id '{}': use 1-{} of a-z 0-9 - _ . starting with a letter or "
                                     "digit",
                                     shortened(s), kMaxRuleIdLength));
    }
    if (s == "default-deny") {
      return error(node, "rule id 'default-deny' is reserved for denials no rule decided: pick another id");
    }
    rule.id = s;
    return core::Status::ok();
  }

  core::Status compileEffect(const YamlNode& node, CompiledRule& rule) {
    if (node.type == YamlNode::Type::kScalar && node.scalar == "permit") {
      rule.effect = Effect::kPermit;
    } else if (node.type == YamlNode::Type::kScalar && node.scalar == "forbid") {
      rule.effect = Effect::kForbid;
    } else {
      return error(node, "'effect' must be permit or forbid");
    }
    return core::Status::ok();
  }

  // scalarList reads a string or a non-empty list of strings.
  core::Status scalarList(const YamlNode& node, std::string_view what,
                          std::vector<const YamlNode*>& out) const {
    if (node.type == YamlNode::Type::kScalar) {
      out.push_back(&node);
      return core::Status::ok();
    }
    if (node.type != YamlNode::Type::kSequence) {
      return error(node, fmt::format("'{}' must be a string or a list of strings, not a {}", what, node.typeName()));
    }
    if (node.items.empty()) {
      return error(node, fmt::format("'{}' is an empty list: it would match nothing; list at least one value", what));
    }
    if (node.items.size() > kMaxListItems) {
      return error(node, fmt::format("'{}' has {} items, over the limit of {}", what, node.items.size(),
                                     kMaxListItems));
    }
    for (const YamlNode& item : node.items) {
      if (item.type != YamlNode::Type::kScalar) {
        return error(item, fmt::format("each item of '{}' must be a string, not a {}", what, item.typeName()));
      }
      out.push_back(&item);
    }
    return core::Status::ok();
  }

  // valueSet reads a selector value: "*" or a string or list of strings, each
  // accepted by |valid| (|hint| tells what a valid value looks like).
  template <typename Valid>
  core::Status valueSet(const YamlNode& node, std::string_view what, Valid valid, std::string_view hint,
                        ValueSet& out) const {
    std::vector<const YamlNode*> values;
    WARDEN_RETURN_IF_ERROR(scalarList(node, what, values));
    for (const YamlNode* v : values) {
      if (v->scalar == "*") {
        if (values.size() > 1) {
          return error(*v, fmt::format("'*' in '{}' means any value and must stand alone, not in a list", what));
        }
        out.any = true;
        continue;
      }
      if (!valid(v->scalar)) {
        return error(*v, fmt::format("invalid {} '{}': {}", what, shortened(v->scalar), hint));
      }
      out.values.push_back(v->scalar);
    }
    // Sorted once here so that matching is a binary search (selectors may
    // list thousands of device ids).
    std::sort(out.values.begin(), out.values.end());
    out.values.erase(std::unique(out.values.begin(), out.values.end()), out.values.end());
    return core::Status::ok();
  }

  core::Status compileSelector(const YamlNode& node, PrincipalSelector& sel, bool in_segment = false) {
    if (node.type != YamlNode::Type::kMap) {
      return error(node, fmt::format("'principals' must be a mapping such as {{kind: device}} or {{role: sensor}}, "
                                     "not a {}",
                                     node.typeName()));
    }
    if (node.entries.empty()) {
      return error(node, "empty selector: write principals: {kind: device} for every device, {role: sensor} for a "
                         "role, or {kind: \"*\"} for every principal");
    }
    for (const auto& [key, value] : node.entries) {
      const std::string& k = key.scalar;
      if (k == "id") {
        ValueSet set;
        WARDEN_RETURN_IF_ERROR(valueSet(value, "id", core::isValidName,
                                        "a device or user name (lowercase letters, digits, '-')", set));
        sel.ids = std::move(set);
      } else if (k == "role") {
        ValueSet set;
        WARDEN_RETURN_IF_ERROR(
            valueSet(value, "role", core::isValidName, "a role name (lowercase letters, digits, '-')", set));
        sel.roles = std::move(set);
      } else if (k == "kind") {
        ValueSet set;
        auto valid = [](const std::string& s) { return s == "device" || s == "user" || s == "service"; };
        WARDEN_RETURN_IF_ERROR(valueSet(value, "kind", valid, "use device, user or service", set));
        if (!set.any) {
          sel.kinds = 0;
          for (const std::string& s : set.values) {
            sel.kinds |= kindBit(s == "device" ? core::PrincipalKind::kDevice
                                 : s == "user" ? core::PrincipalKind::kUser
                                               : core::PrincipalKind::kService);
          }
        }
      } else if (k == "segment") {
        std::vector<const YamlNode*> values;
        WARDEN_RETURN_IF_ERROR(scalarList(value, "segment", values));
        for (const YamlNode* v : values) {
          auto index = segmentIndex(v->scalar);
          if (!index && serviceIndex(v->scalar)) {
            return error(*v, fmt::format("'{}' is a service, not a segment: select principals by segment",
                                         shortened(v->scalar)));
          }
          if (!index) {
            return error(*v, fmt::format("unknown segment '{}': {}", shortened(v->scalar),
                                         in_segment ? "a segment's selector may name only segments defined above it"
                                                    : "define it under 'segments:' (quarantine is built in)"));
          }
          if (*index == 0) sel.quarantine = true;
          sel.segments.push_back(*index);
        }
      } else if (k == "labels") {
        WARDEN_RETURN_IF_ERROR(compileLabels(value, sel));
      } else {
        return error(key, fmt::format("unknown selector key '{}': use id, kind, role, labels or segment",
                                      shortened(k)));
      }
    }
    return core::Status::ok();
  }

  core::Status compileLabels(const YamlNode& node, PrincipalSelector& sel) {
    if (node.type != YamlNode::Type::kMap) {
      return error(node, fmt::format("'labels' must be a mapping such as {{site: plant1}}, not a {}",
                                     node.typeName()));
    }
    if (node.entries.empty()) {
      return error(node, "'labels' is empty: name at least one label, e.g. labels: {site: plant1}, or remove it");
    }
    for (const auto& [key, value] : node.entries) {
      if (!core::isValidLabelKey(key.scalar)) {
        return error(key, fmt::format("invalid label key '{}': use 1-63 lowercase letters, digits, '-', '.', '_'",
                                      shortened(key.scalar)));
      }
      ValueSet set;
      WARDEN_RETURN_IF_ERROR(valueSet(
          value, "label value",
          [](const std::string& s) { return core::isValidLabelValue(s); }, "use 1-63 of A-Z a-z 0-9 . _ -", set));
      sel.labels.emplace_back(key.scalar, std::move(set));
    }
    return core::Status::ok();
  }

  core::Status compileActions(const YamlNode& node, CompiledRule& rule) {
    if (node.type != YamlNode::Type::kSequence) {
      return error(node, fmt::format("'actions' must be a list such as [mqtt:publish], not a {}", node.typeName()));
    }
    std::vector<const YamlNode*> values;
    WARDEN_RETURN_IF_ERROR(scalarList(node, "actions", values));
    for (const YamlNode* v : values) {
      auto set = parseActionPattern(v->scalar);
      if (!set) {
        return error(*v, fmt::format("unknown action '{}': use mqtt:connect, mqtt:publish, mqtt:subscribe, "
                                     "mqtt:receive, mqtt:retain, mqtt:*, admin:* or an admin: action listed in "
                                     "docs/policy.md",
                                     shortened(v->scalar)));
      }
      rule.actions |= *set;
    }
    return core::Status::ok();
  }

  core::Status compileResources(const YamlNode& node, CompiledRule& rule) {
    if (node.type != YamlNode::Type::kSequence) {
      return error(node, fmt::format("'resources' must be a list such as [\"factory/${{principal.id}}/#\"], not a "
                                     "{}",
                                     node.typeName()));
    }
    std::vector<const YamlNode*> values;
    WARDEN_RETURN_IF_ERROR(scalarList(node, "resources", values));
    for (const YamlNode* v : values) {
      auto pattern = ResourcePattern::parse(v->scalar);
      if (!pattern.isOk()) return error(*v, pattern.status().message());
      // A rule mixing action families reads each pattern once per family;
      // it must make sense for every one of them.
      for (size_t i = 0; i < kActionCount; ++i) {
        Action a = static_cast<Action>(i);
        if ((rule.actions & actionBit(a)) == 0) continue;
        core::Status st = pattern->validateFor(actionFamily(a), actionName(a), rule.effect == Effect::kForbid);
        if (!st.isOk()) return error(*v, st.message());
      }
      rule.resources.push_back(std::move(pattern).value());
    }
    return core::Status::ok();
  }

  // requiredRoles: the roles a principal must have to match |selector|, or
  // nullptr when any role may (no role key, "*", or a segment that takes
  // any role). Computed from segments before rules, so |out.segments|'
  // selectors are final.
  static std::optional<std::vector<std::string>> requiredRoles(const CompiledPolicy& out,
                                                               const PrincipalSelector& selector) {
    if (selector.roles) {
      if (selector.roles->any) return std::nullopt;
      return selector.roles->values;
    }
    if (selector.segments.empty()) return std::nullopt;
    std::vector<std::string> roles;
    for (uint32_t s : selector.segments) {
      if (s == 0 || s >= out.segments.size()) return std::nullopt;  // quarantine: any role
      const std::optional<ValueSet>& seg_roles = out.segments[s].selector.roles;
      if (!seg_roles || seg_roles->any) return std::nullopt;
      roles.insert(roles.end(), seg_roles->values.begin(), seg_roles->values.end());
    }
    return roles;
  }

  static void buildIndex(CompiledPolicy& out) {
    for (uint32_t r = 0; r < out.rules.size(); ++r) {
      const CompiledRule& rule = out.rules[r];
      bool forbid = rule.effect == Effect::kForbid;
      const auto required = requiredRoles(out, rule.principals);
      const std::vector<std::string>* roles = required ? &*required : nullptr;
      for (size_t i = 0; i < kActionCount; ++i) {
        Action a = static_cast<Action>(i);
        if ((rule.actions & actionBit(a)) == 0) continue;
        (forbid ? out.forbids : out.permits)[i].push_back(r);
        (forbid ? out.forbid_roles : out.permit_roles)[i].add(roles, r);
        if (actionFamily(a) != ActionFamily::kTopic) continue;
        for (const ResourcePattern& p : rule.resources) {
          (forbid ? out.forbid_index : out.permit_index)[i].insert(p.literalPrefix(), r);
        }
      }
    }
    for (uint32_t s = 1; s < out.segments.size(); ++s) {
      auto roles = requiredRoles(out, out.segments[s].selector);
      out.segment_roles.add(roles ? &*roles : nullptr, s);
    }
    out.flows_into.resize(out.services.size());
    for (uint32_t s = 0; s < out.services.size(); ++s) {
      for (const std::string& pattern : out.services[s].mqtt) {
        auto parsed = ResourcePattern::parse(pattern);
        out.service_index.insert(parsed.isOk() ? parsed->literalPrefix() : std::string_view(), s);
      }
      for (uint32_t f = 0; f < out.flows.size(); ++f) {
        const Flow& flow = out.flows[f];
        if (flow.to_service ? flow.to == s : flow.to == out.services[s].segment) out.flows_into[s].push_back(f);
      }
    }
  }

  std::string filename_;
  CompiledPolicy* out_ = nullptr;
};

}  // namespace

core::Result<std::unique_ptr<CompiledPolicy>> compilePolicy(std::string_view yaml, std::string_view filename) {
  WARDEN_ASSIGN_OR_RETURN(YamlNode root, parseStrictYaml(yaml, filename));
  auto compiled = std::make_unique<CompiledPolicy>();
  PolicyCompiler compiler(filename);
  WARDEN_RETURN_IF_ERROR(compiler.compileDocument(root, *compiled));
  compiled->text.assign(yaml);
  compiled->filename.assign(filename);
  return compiled;
}

}  // namespace warden::policy
