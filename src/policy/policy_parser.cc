// policy_parser.cc: YAML tree -> CompiledPolicy, with every check of the
// policy v0 language (docs/policy.md). Each check reports the position of
// the offending node and what to write instead.

#include <unordered_map>

#include <fmt/format.h>

#include "core/names.h"
#include "policy/compiled_policy.h"

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
    bool have_rules = false;
    for (const auto& [key, value] : root.entries) {
      // Top-level sections. The full language (issue "Policy engine and
      // micro-segmentation") adds `segments`, `services`, `flows` and
      // `timezone` here; until then they are unknown keys.
      if (key.scalar == "rules") {
        WARDEN_RETURN_IF_ERROR(compileRules(value, out));
        have_rules = true;
      } else {
        return error(key, fmt::format("unknown top-level key '{}': a v0 policy has only 'rules:'",
                                      shortened(key.scalar)));
      }
    }
    if (!have_rules) return error(root, "the policy has no 'rules:' list: add one (see docs/policy.md)");
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
      } else {
        // The full language adds `when:` (conditions) here.
        return error(key, fmt::format("unknown key '{}' in a rule: use id, effect, description, principals, "
                                      "actions and resources",
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
    return core::Status::ok();
  }

  core::Status compileSelector(const YamlNode& node, PrincipalSelector& sel) {
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
          if (v->scalar != "quarantine") {
            return error(*v, fmt::format("unknown segment '{}': policy v0 has only the segment 'quarantine'",
                                         shortened(v->scalar)));
          }
        }
        sel.quarantine = true;
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

  static void buildIndex(CompiledPolicy& out) {
    for (uint32_t r = 0; r < out.rules.size(); ++r) {
      const CompiledRule& rule = out.rules[r];
      for (size_t i = 0; i < kActionCount; ++i) {
        if ((rule.actions & actionBit(static_cast<Action>(i))) == 0) continue;
        (rule.effect == Effect::kForbid ? out.forbids : out.permits)[i].push_back(r);
      }
    }
  }

  std::string filename_;
};

}  // namespace

core::Result<std::unique_ptr<CompiledPolicy>> compilePolicy(std::string_view yaml, std::string_view filename) {
  WARDEN_ASSIGN_OR_RETURN(YamlNode root, parseStrictYaml(yaml, filename));
  auto compiled = std::make_unique<CompiledPolicy>();
  PolicyCompiler compiler(filename);
  WARDEN_RETURN_IF_ERROR(compiler.compileDocument(root, *compiled));
  compiled->text.assign(yaml);
  return compiled;
}

}  // namespace warden::policy
