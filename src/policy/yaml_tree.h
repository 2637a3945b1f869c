#pragma once

// yaml_tree.h (private to src/policy): a strict YAML reader for policy files.
// yaml-cpp's Node API silently keeps one of two duplicate keys and expands
// aliases, so the policy parser reads the raw event stream instead and builds
// this small tree, keeping every node's position for error messages.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace warden::policy {

// YamlPosition is a 1-based line and column.
struct YamlPosition {
  int line = 1;
  int column = 1;
};

struct YamlEntry;

struct YamlNode {
  enum class Type { kNull, kScalar, kSequence, kMap };
  Type type = Type::kNull;
  YamlPosition pos;
  std::string scalar;  // kScalar only
  bool quoted = false;  // kScalar only: written in quotes (column points at the quote)
  std::vector<YamlNode> items;  // kSequence only
  std::vector<YamlEntry> entries;  // kMap only, in file order

  std::string_view typeName() const;  // "null", "string", "list", "mapping"
};

// YamlEntry is one key: value pair of a mapping; keys are kScalar and unique.
struct YamlEntry {
  YamlNode key;
  YamlNode value;
};

// kMaxPolicyBytes is the largest policy file accepted.
inline constexpr size_t kMaxPolicyBytes = 1 << 20;
// kMaxYamlDepth bounds nesting; a policy needs about 5 levels.
inline constexpr int kMaxYamlDepth = 32;

// parseStrictYaml parses |text| as exactly one YAML document and returns its
// tree. It returns kInvalidArgument "FILE:LINE:COL: message" for input over
// kMaxPolicyBytes, YAML syntax errors, anchors, aliases, tags, duplicate or
// non-string mapping keys, nesting deeper than kMaxYamlDepth and more than
// one document. An empty document yields a kNull root. No exception escapes.
core::Result<YamlNode> parseStrictYaml(std::string_view text, std::string_view filename);

// yamlError formats "FILE:LINE:COL: message" as kInvalidArgument.
core::Status yamlError(std::string_view filename, YamlPosition pos, std::string_view message);

}  // namespace warden::policy
