#include "core/names.h"

#include <charconv>
#include <fmt/format.h>

namespace warden::core {
namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool isNameLike(std::string_view s, bool allow_dot_underscore) {
  if (s.empty() || s.size() > 63) return false;
  if (!isLowerAlnum(s.front()) || !isLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (isLowerAlnum(c) || c == '-') continue;
    if (allow_dot_underscore && (c == '.' || c == '_')) continue;
    return false;
  }
  return true;
}

}  // namespace

bool isValidName(std::string_view s) { return isNameLike(s, false); }
bool isValidLabelKey(std::string_view s) { return isNameLike(s, true); }

bool isValidLabelValue(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

bool isValidTrustDomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!isValidName(label)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

Status checkName(std::string_view what, std::string_view s) {
  if (isValidName(s)) return Status::ok();
  return invalidArgument(fmt::format(
      "invalid {} '{}': use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", what,
      s.substr(0, 80)));
}

Status parseLabel(std::string_view text, std::string& key, std::string& value) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    return invalidArgument(fmt::format("invalid label '{}': expected KEY=VALUE", text.substr(0, 80)));
  }
  std::string_view k = text.substr(0, eq), v = text.substr(eq + 1);
  if (!isValidLabelKey(k)) {
    return invalidArgument(fmt::format(
        "invalid label key '{}': use 1-63 lowercase letters, digits, '-', '.', '_', starting and ending alphanumeric",
        k.substr(0, 80)));
  }
  if (!isValidLabelValue(v)) {
    return invalidArgument(
        fmt::format("invalid label value '{}' for key '{}': use 1-63 of A-Z a-z 0-9 . _ -", v.substr(0, 80), k));
  }
  key.assign(k);
  value.assign(v);
  return Status::ok();
}

Result<int64_t> parseDuration(std::string_view text) {
  auto bad = [&] {
    return invalidArgument(
        fmt::format("invalid duration '{}': use a positive number and a unit s, m, h or d (e.g. 30s, 5m, 24h, 7d)",
                    text.substr(0, 40)));
  };
  if (text.size() < 2 || text.size() > 12) return bad();
  char unit = text.back();
  int64_t mult = 0;
  switch (unit) {
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    default: return bad();
  }
  std::string_view digits = text.substr(0, text.size() - 1);
  for (char c : digits) {
    if (c < '0' || c > '9') return bad();
  }
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || n <= 0) return bad();
  if (n > (int64_t{1} << 40) / mult) return bad();
  return n * mult;
}

std::string formatDuration(int64_t seconds) {
  if (seconds > 0 && seconds % 86400 == 0) return fmt::format("{}d", seconds / 86400);
  if (seconds > 0 && seconds % 3600 == 0) return fmt::format("{}h", seconds / 3600);
  if (seconds > 0 && seconds % 60 == 0) return fmt::format("{}m", seconds / 60);
  return fmt::format("{}s", seconds);
}

}  // namespace warden::core
