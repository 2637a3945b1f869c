#pragma once

// compiled_policy.h (private to src/policy): the immutable form of a policy
// that Policy::authorize reads.

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "policy/action.h"
#include "policy/condition.h"
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
  std::vector<Condition> conditions;  // `when:`, all must hold
  YamlPosition pos;                   // of the rule's mapping
  YamlPosition resources_pos;         // of its `resources:` list
};

// Segment 0 is the built-in `quarantine`; the others follow in file order.
struct Segment {
  std::string name;
  PrincipalSelector selector;  // unused for quarantine
  YamlPosition pos;
  std::optional<AttestationRequirement> attestation;  // its `attestation:` block
};

// Service owns MQTT topic patterns and belongs to one segment. Later issues
// add HTTP paths and Modbus units next to |mqtt|.
struct Service {
  std::string name;
  uint32_t segment = 0;
  std::vector<std::string> mqtt;
  YamlPosition pos;
};

struct Flow {
  std::string name;  // its `id:`, else "FROM->TO"
  uint32_t from = 0;    // segment
  bool to_service = true;
  uint32_t to = 0;      // service or segment index
  ActionSet actions = 0;
  YamlPosition pos;
};

// TopicIndex is a trie over the literal leading levels of topic patterns:
// a request visits only the entries whose literal prefix is a prefix of its
// topic (or, for overlap queries, could meet its filter).
class TopicIndex {
 public:
  void insert(std::string_view literal_prefix, uint32_t entry);
  // candidates appends to |out| every entry whose pattern may match topic
  // |topic| (publish) or contain filter |filter| (subset: stops at the first
  // wildcard level), or overlap it (|overlap|: a wildcard level takes the
  // whole subtree). Entries may repeat.
  void candidates(std::string_view topic_or_filter, bool overlap, std::vector<uint32_t>& out) const;
  // collect is candidates without the copy when it can: if exactly one trie
  // node contributes entries, it returns that node's list (unique and in
  // insertion order); otherwise it appends everything to |out| and returns
  // &out (possibly unsorted, with repeats). Never overlap mode.
  const std::vector<uint32_t>* collect(std::string_view topic_or_filter, std::vector<uint32_t>& out) const;
  bool empty() const { return nodes_.size() <= 1 && (nodes_.empty() || nodes_[0].entries.empty()); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Node {
    std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> children;
    std::vector<uint32_t> entries;
  };
  void subtree(uint32_t node, std::vector<uint32_t>& out) const;
  std::vector<Node> nodes_;
};

// RoleIndex lists items (segments, rules) by the principal role they
// require: an item whose selector lists roles (or, for a rule, selects only
// segments that all list roles) is filed under each of those roles; every
// other item under |any|. A principal can only match the items of its role
// and |any|. All lists are in file order.
struct RoleIndex {
  std::vector<std::pair<std::string, std::vector<uint32_t>>> by_role;  // sorted by role
  std::vector<uint32_t> any;

  // add files |item| under |roles| (nullptr: any role). Items come in
  // increasing order.
  void add(const std::vector<std::string>* roles, uint32_t item) {
    if (roles == nullptr) {
      any.push_back(item);
      return;
    }
    for (const std::string& role : *roles) {
      auto it = std::lower_bound(by_role.begin(), by_role.end(), role,
                                 [](const auto& entry, const std::string& r) { return entry.first < r; });
      if (it == by_role.end() || it->first != role) it = by_role.insert(it, {role, {}});
      if (it->second.empty() || it->second.back() != item) it->second.push_back(item);
    }
  }

  // forEach calls |f(item)| in file order for the items a principal with
  // |role| may match, until |f| returns true.
  template <typename F>
  void forEach(std::string_view role, F&& f) const {
    static const std::vector<uint32_t> kNone;
    const std::vector<uint32_t>* mine = &kNone;
    auto it = std::lower_bound(by_role.begin(), by_role.end(), role,
                               [](const auto& entry, std::string_view r) { return std::string_view(entry.first) < r; });
    if (it != by_role.end() && it->first == role) mine = &it->second;
    auto a = mine->begin();
    auto b = any.begin();
    while (a != mine->end() || b != any.end()) {
      const uint32_t item = (b == any.end() || (a != mine->end() && *a < *b)) ? *a++ : *b++;
      if (f(item)) return;
    }
  }
};

struct CompiledPolicy {
  std::string text;
  std::string filename;
  std::vector<CompiledRule> rules;  // file order
  std::vector<Segment> segments;    // [0] = quarantine
  std::vector<Service> services;
  std::vector<Flow> flows;
  const date::time_zone* zone = nullptr;  // top-level `timezone:` (nullptr = UTC)
  bool has_timezone = false;
  // Per action, the indexes into |rules| of its forbids and permits, in file
  // order, so a request looks only at the rules naming its action.
  std::array<std::vector<uint32_t>, kActionCount> forbids;
  std::array<std::vector<uint32_t>, kActionCount> permits;
  // Per topic action, tries over the rules' patterns (entries: rule index).
  std::array<TopicIndex, kActionCount> forbid_index;
  std::array<TopicIndex, kActionCount> permit_index;
  // Service patterns (entries: service index) and, per service, the flows
  // into it or into its segment.
  TopicIndex service_index;
  std::vector<std::vector<uint32_t>> flows_into;
  // The principal-attribute index: segments and, per action, rules by the
  // role they require (see RoleIndex).
  RoleIndex segment_roles;
  std::array<RoleIndex, kActionCount> forbid_roles;
  std::array<RoleIndex, kActionCount> permit_roles;
};


// Limits that keep a hostile policy from costing more than a large real one.
inline constexpr size_t kMaxRules = 10000;
inline constexpr size_t kMaxListItems = 1000;
inline constexpr size_t kMaxRuleIdLength = 128;
inline constexpr size_t kMaxSegments = 256;  // quarantine included
inline constexpr size_t kMaxServices = 1000;
inline constexpr size_t kMaxServicePatterns = 2000;  // in the whole policy: overlap checks are pairwise
inline constexpr size_t kMaxFlows = 10000;
inline constexpr size_t kMaxConditions = 32;  // per rule

// compilePolicy validates |yaml| and builds its CompiledPolicy. Errors are
// kInvalidArgument "FILE:LINE:COL: message".
core::Result<std::unique_ptr<CompiledPolicy>> compilePolicy(std::string_view yaml, std::string_view filename);

}  // namespace warden::policy
