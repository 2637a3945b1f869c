#pragma once

// compiled_policy.h (private to src/policy): the immutable form of a policy
// that Policy::authorize reads.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "policy/action.h"
#include "policy/principal_selector.h"
#include "policy/resource_pattern.h"
#include "policy/yaml_tree.h"

namespace warden::policy {

enum class Effect : uint8_t { kPermit, kForbid };

struct CompiledRule {
  std::string id;
  Effect effect = Effect::kPermit;
  std::string description;
  PrincipalSelector principals;
  ActionSet actions = 0;
  std::vector<ResourcePattern> resources;
  YamlPosition pos;  // of the rule's mapping
};

struct CompiledPolicy {
  std::string text;
  std::vector<CompiledRule> rules;  // file order
  // Per action, the indexes into |rules| of its forbids and permits, in file
  // order, so a request looks only at the rules naming its action.
  std::array<std::vector<uint32_t>, kActionCount> forbids;
  std::array<std::vector<uint32_t>, kActionCount> permits;
};

// Limits that keep a hostile policy from costing more than a large real one.
inline constexpr size_t kMaxRules = 10000;
inline constexpr size_t kMaxListItems = 1000;
inline constexpr size_t kMaxRuleIdLength = 128;

// compilePolicy validates |yaml| and builds its CompiledPolicy. Errors are
// kInvalidArgument "FILE:LINE:COL: message".
core::Result<std::unique_ptr<CompiledPolicy>> compilePolicy(std::string_view yaml, std::string_view filename);

}  // namespace warden::policy
