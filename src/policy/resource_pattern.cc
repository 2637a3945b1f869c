#include "policy/resource_pattern.h"

#include <fmt/format.h>

#include "core/names.h"
#include "policy/topic.h"

namespace warden::policy {
namespace {

// Topic patterns are checked against generous limits: the gateway applies
// its configured topic limits to requests, and a pattern longer than those
// simply never matches.
constexpr size_t kMaxPatternBytes = 1024;
constexpr size_t kMaxPatternLevels = 32;

const std::string* lookupValue(const Principal& p, SubstitutionSource source, const std::string& key) {
  switch (source) {
    case SubstitutionSource::kId: return &p.id;
    case SubstitutionSource::kRole: return &p.role;
    case SubstitutionSource::kLabel: {
      auto it = p.labels.find(key);
      return it == p.labels.end() ? nullptr : &it->second;
    }
  }
  return nullptr;
}

std::string_view shortened(std::string_view s) { return s.substr(0, 120); }

}  // namespace

bool isSafeSubstitutionValue(std::string_view v) {
  if (v.empty() || v.front() == '$') return false;
  for (char c : v) {
    if (c == '/' || c == '+' || c == '#' || c == '\0') return false;
  }
  return true;
}

core::Result<ResourcePattern> ResourcePattern::parse(std::string_view text) {
  ResourcePattern p;
  p.text_.assign(text);
  if (text.empty()) return core::invalidArgument("empty resource: write a topic pattern, a client id, a name or \"*\"");
  if (text.find('\0') != std::string_view::npos) return core::invalidArgument("resource contains a NUL character");
  size_t i = 0;
  std::string literal;
  while (i < text.size()) {
    if (text.compare(i, 2, "${") != 0) {
      literal.push_back(text[i++]);
      continue;
    }
    size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return core::invalidArgument(fmt::format(
          "unterminated '${{' in resource '{}': close it with '}}', e.g. ${{principal.id}}", shortened(text)));
    }
    std::string_view inner = text.substr(i + 2, close - i - 2);
    Piece piece;
    piece.substitution = true;
    constexpr std::string_view kLabels = "principal.labels.";
    if (inner == "principal.id") {
      piece.source = SubstitutionSource::kId;
    } else if (inner == "principal.role") {
      piece.source = SubstitutionSource::kRole;
    } else if (inner.substr(0, kLabels.size()) == kLabels && core::isValidLabelKey(inner.substr(kLabels.size()))) {
      piece.source = SubstitutionSource::kLabel;
      piece.text.assign(inner.substr(kLabels.size()));
    } else {
      return core::invalidArgument(
          fmt::format("unknown substitution '${{{}}}': use ${{principal.id}}, ${{principal.role}} or "
                      "${{principal.labels.KEY}} with a valid label key",
                      shortened(inner)));
    }
    if (!literal.empty()) p.pieces_.push_back(Piece{false, SubstitutionSource::kId, std::move(literal)});
    literal.clear();
    p.pieces_.push_back(std::move(piece));
    p.has_substitutions_ = true;
    i = close + 1;
  }
  if (!literal.empty()) p.pieces_.push_back(Piece{false, SubstitutionSource::kId, std::move(literal)});

  // literal_prefix_: leading levels without wildcard or placeholder.
  std::string_view rest = text;
  while (true) {
    size_t slash = rest.find('/');
    std::string_view level = rest.substr(0, slash);
    if (level == "+" || level == "#" || level.find("${") != std::string_view::npos) break;
    if (level.find_first_of("+#") != std::string_view::npos) break;
    size_t end = static_cast<size_t>(level.data() - text.data()) + level.size();
    p.literal_prefix_.assign(text.substr(0, end));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return p;
}

std::string ResourcePattern::probe(std::string_view stand_in) const {
  std::string out;
  for (const Piece& piece : pieces_) {
    if (piece.substitution) {
      out.append(stand_in);
    } else {
      out.append(piece.text);
    }
  }
  return out;
}

core::Status ResourcePattern::validateFor(ActionFamily family, std::string_view action, bool forbid) const {
  switch (family) {
    case ActionFamily::kTopic: {
      if (text_ == "*") {
        return core::invalidArgument(fmt::format(
            "'*' is not an MQTT wildcard (this rule has {}): use '#' for every topic or '+' for one level", action));
      }
      std::string p = probe("x");
      std::string_view rest = p;
      while (true) {
        size_t slash = rest.find('/');
        if (rest.substr(0, slash) == "*") {
          return core::invalidArgument(fmt::format(
              "topic level '*' in '{}' is a literal star in MQTT, not a wildcard: use '+' for one level or '#' for "
              "the rest",
              shortened(text_)));
        }
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
      }
      core::Status st = validateTopicFilter(p, kMaxPatternBytes, kMaxPatternLevels);
      if (!st.isOk()) {
        return core::invalidArgument(
            fmt::format("'{}' is not a valid topic pattern for {}: {}", shortened(text_), action, st.message()));
      }
      if (!forbid && (p.rfind("$share/", 0) == 0 || p == "$share")) {
        auto shared = parseSharedSubscription(p);
        if (!shared.isOk()) {
          return core::invalidArgument(fmt::format("'{}' is not a valid shared subscription pattern: {} (write $share/GROUP/FILTER)",
                                                   shortened(text_), shared.status().message()));
        }
      }
      return core::Status::ok();
    }
    case ActionFamily::kClientId: {
      if (text_ == "*") return core::Status::ok();
      if (text_.find('*') != std::string::npos) {
        return core::invalidArgument(fmt::format(
            "'{}' for {}: '*' matches only on its own (no globs); write \"*\" or a literal client id such as "
            "${{principal.id}}",
            shortened(text_), action));
      }
      if (probe("x").size() > 256) {
        return core::invalidArgument(fmt::format("client id pattern for {} is longer than 256 bytes", action));
      }
      return core::Status::ok();
    }
    case ActionFamily::kAdmin: {
      if (text_ == "*") return core::Status::ok();
      if (!core::isValidName(probe("x"))) {
        return core::invalidArgument(fmt::format(
            "'{}' is not a name pattern for {}: write \"*\" for every name, or a device name such as sensor-1 "
            "(placeholders allowed)",
            shortened(text_), action));
      }
      return core::Status::ok();
    }
  }
  return core::internalError("unknown action family");
}

Expansion ResourcePattern::expand(const Principal& principal, ActionFamily family, bool fail_closed,
                                  std::string& out) const {
  out.clear();
  size_t level_start = 0;
  bool level_failed = false;
  // finishLevel replaces a level holding a failed substitution by '+'.
  auto finishLevel = [&] {
    if (level_failed) {
      out.resize(level_start);
      out.push_back('+');
    }
    level_failed = false;
  };
  for (const Piece& piece : pieces_) {
    if (piece.substitution) {
      const std::string* value = lookupValue(principal, piece.source, piece.text);
      if (value != nullptr && isSafeSubstitutionValue(*value)) {
        out.append(*value);
        continue;
      }
      if (!fail_closed) return Expansion::kNoMatch;
      if (family != ActionFamily::kTopic) return Expansion::kMatchAny;
      level_failed = true;
      continue;
    }
    if (family != ActionFamily::kTopic) {
      out.append(piece.text);
      continue;
    }
    for (char c : piece.text) {
      if (c == '/') {
        finishLevel();
        out.push_back('/');
        level_start = out.size();
      } else {
        out.push_back(c);
      }
    }
  }
  if (family == ActionFamily::kTopic) finishLevel();
  return Expansion::kExpanded;
}

}  // namespace warden::policy
