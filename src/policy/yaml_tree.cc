#include "policy/yaml_tree.h"

#include <exception>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

namespace warden::policy {
namespace {

YamlPosition toPosition(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

// TreeBuilder turns yaml-cpp parser events into a YamlNode tree. It records
// the first violation of the policy's YAML subset and ignores every event
// after it; yaml-cpp keeps parsing only to find the end of the document.
class TreeBuilder : public YAML::EventHandler {
 public:
  bool failed() const { return error_.has_value(); }
  const std::pair<YamlPosition, std::string>& error() const { return *error_; }
  bool hasRoot() const { return root_.has_value(); }
  YamlNode takeRoot() { return std::move(*root_); }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (failed() || !checkAnchor(mark, anchor)) return;
    YamlNode node;
    node.pos = toPosition(mark);
    attach(std::move(node));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    fail(toPosition(mark), "YAML aliases (*name) are not allowed in a policy: write the value out in full");
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (failed() || !checkAnchor(mark, anchor) || !checkTag(mark, tag)) return;
    YamlNode node;
    node.type = YamlNode::Type::kScalar;
    node.pos = toPosition(mark);
    node.scalar = value;
    node.quoted = tag == "!";
    attach(std::move(node));
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, YamlNode::Type::kSequence);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, YamlNode::Type::kMap);
  }
  void OnMapEnd() override { close(); }

  void OnAnchor(const YAML::Mark& mark, const std::string&) override {
    fail(toPosition(mark), "YAML anchors (&name) are not allowed in a policy: write the value out in full");
  }

 private:
  struct Frame {
    YamlNode node;
    std::optional<YamlNode> pending_key;  // maps: the key awaiting its value
    std::set<std::string, std::less<>> keys;
  };

  void fail(YamlPosition pos, std::string message) {
    if (!error_) error_.emplace(pos, std::move(message));
  }

  bool checkAnchor(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor == YAML::NullAnchor) return true;
    fail(toPosition(mark), "YAML anchors (&name) are not allowed in a policy: write the value out in full");
    return false;
  }

  // checkTag accepts only the implicit tags: "?" (plain) and "!" (quoted).
  bool checkTag(const YAML::Mark& mark, const std::string& tag) {
    if (tag.empty() || tag == "?" || tag == "!") return true;
    fail(toPosition(mark), fmt::format("YAML tags ('{}') are not allowed in a policy: remove the tag",
                                       tag.substr(0, 40)));
    return false;
  }

  void open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, YamlNode::Type type) {
    if (failed() || !checkAnchor(mark, anchor) || !checkTag(mark, tag)) return;
    if (stack_.size() >= static_cast<size_t>(kMaxYamlDepth)) {
      fail(toPosition(mark), fmt::format("nesting deeper than {} levels: a policy needs far fewer", kMaxYamlDepth));
      return;
    }
    Frame frame;
    frame.node.type = type;
    frame.node.pos = toPosition(mark);
    stack_.push_back(std::move(frame));
  }

  void close() {
    if (failed() || stack_.empty()) return;
    YamlNode node = std::move(stack_.back().node);
    stack_.pop_back();
    attach(std::move(node));
  }

  void attach(YamlNode node) {
    if (stack_.empty()) {
      root_.emplace(std::move(node));
      return;
    }
    Frame& parent = stack_.back();
    if (parent.node.type == YamlNode::Type::kSequence) {
      parent.node.items.push_back(std::move(node));
      return;
    }
    if (!parent.pending_key) {
      if (node.type != YamlNode::Type::kScalar) {
        fail(node.pos, fmt::format("a mapping key must be a plain string, not a {}", node.typeName()));
        return;
      }
      // yaml-cpp's Node API keeps one of two equal keys without a word; a
      // policy must never mean something other than what it says.
      if (!parent.keys.insert(node.scalar).second) {
        fail(node.pos, fmt::format("duplicate key '{}' in this mapping: keep only one", node.scalar.substr(0, 80)));
        return;
      }
      parent.pending_key.emplace(std::move(node));
      return;
    }
    parent.node.entries.push_back(YamlEntry{std::move(*parent.pending_key), std::move(node)});
    parent.pending_key.reset();
  }

  std::vector<Frame> stack_;
  std::optional<YamlNode> root_;
  std::optional<std::pair<YamlPosition, std::string>> error_;
};

// NullHandler swallows the events of a document after the first one.
class NullHandler : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = toPosition(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  YamlPosition start;
};

}  // namespace

std::string_view YamlNode::typeName() const {
  switch (type) {
    case Type::kNull: return "null";
    case Type::kScalar: return "string";
    case Type::kSequence: return "list";
    case Type::kMap: return "mapping";
  }
  return "value";
}

core::Status yamlError(std::string_view filename, YamlPosition pos, std::string_view message) {
  return core::invalidArgument(fmt::format("{}:{}:{}: {}", filename, pos.line, pos.column, message));
}

core::Result<YamlNode> parseStrictYaml(std::string_view text, std::string_view filename) {
  if (text.size() > kMaxPolicyBytes) {
    return yamlError(filename, {},
                     fmt::format("policy is {} bytes, over the limit of {} bytes (1 MiB): split or shorten it",
                                 text.size(), kMaxPolicyBytes));
  }
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    // yaml-cpp would stop reading at the NUL; report it instead.
    int line = 1, column = 1;
    for (size_t i = 0; i < nul; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return yamlError(filename, {line, column}, "the policy contains a NUL byte: save it as UTF-8 text");
  }
  TreeBuilder builder;
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    bool have_document = parser.HandleNextDocument(builder);
    if (builder.failed()) return yamlError(filename, builder.error().first, builder.error().second);
    if (!have_document || !builder.hasRoot()) return YamlNode{};
    NullHandler rest;
    if (parser.HandleNextDocument(rest)) {
      return yamlError(filename, rest.start,
                       "a policy is one YAML document: remove the second document (after '---')");
    }
    return builder.takeRoot();
  } catch (const YAML::Exception& e) {
    // An error recorded before yaml-cpp gave up comes first in the text.
    if (builder.failed()) return yamlError(filename, builder.error().first, builder.error().second);
    std::string hint;
    if (e.msg.find("alias") != std::string::npos || e.msg.find("anchor") != std::string::npos) {
      // A plain * starts an alias in YAML; "any value" needs quotes.
      hint = " (aliases are not allowed in a policy; to mean any value, write \"*\" in quotes)";
    }
    return yamlError(filename, toPosition(e.mark), fmt::format("invalid YAML: {}{}", e.msg, hint));
  } catch (const std::exception& e) {
    return yamlError(filename, {}, fmt::format("could not read the policy: {}", e.what()));
  }
}

}  // namespace warden::policy
