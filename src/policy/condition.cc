#include "policy/condition.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include <date/date.h>
#include <date/tz.h>
#include <fmt/format.h>

#include "core/names.h"
#include "policy/compiled_policy.h"

namespace warden::policy {
namespace {

using std::chrono::seconds;
using SysSeconds = std::chrono::time_point<std::chrono::system_clock, seconds>;

constexpr size_t kMaxConditionBytes = 1024;
constexpr int64_t kMaxDurationSeconds = int64_t{100} * 365 * 86400;  // a century

constexpr std::string_view kAttributeNames =
    "principal.id, principal.kind, principal.role, principal.segments, principal.labels.KEY, principal.trust, "
    "principal.firmware.approved, principal.attestation.assurance, principal.attestation.age, principal.cert.age, "
    "context.time, context.weekday, context.source_ip, context.protocol, context.mfa";

constexpr std::array<std::string_view, 7> kWeekdayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

bool isSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

struct PathInfo {
  AttributePath path;
  ValueType type;
};

std::optional<PathInfo> lookupPath(std::string_view p, std::string& label_key) {
  struct Entry {
    std::string_view name;
    AttributePath path;
    ValueType type;
  };
  static constexpr Entry kPaths[] = {
      {"principal.id", AttributePath::kPrincipalId, ValueType::kString},
      {"principal.kind", AttributePath::kPrincipalKind, ValueType::kKind},
      {"principal.role", AttributePath::kPrincipalRole, ValueType::kString},
      {"principal.segments", AttributePath::kPrincipalSegments, ValueType::kSegments},
      {"principal.trust", AttributePath::kPrincipalTrust, ValueType::kInteger},
      {"principal.firmware.approved", AttributePath::kFirmwareApproved, ValueType::kBoolean},
      {"principal.attestation.assurance", AttributePath::kAttestationAssurance, ValueType::kAssurance},
      {"principal.attestation.age", AttributePath::kAttestationAge, ValueType::kDuration},
      {"principal.cert.age", AttributePath::kCertAge, ValueType::kDuration},
      {"context.time", AttributePath::kContextTime, ValueType::kTime},
      {"context.weekday", AttributePath::kContextWeekday, ValueType::kWeekday},
      {"context.source_ip", AttributePath::kContextSourceIp, ValueType::kIp},
      {"context.protocol", AttributePath::kContextProtocol, ValueType::kString},
      {"context.mfa", AttributePath::kContextMfa, ValueType::kBoolean},
  };
  for (const Entry& e : kPaths) {
    if (e.name == p) return PathInfo{e.path, e.type};
  }
  constexpr std::string_view kLabels = "principal.labels.";
  if (p.substr(0, kLabels.size()) == kLabels && core::isValidLabelKey(p.substr(kLabels.size()))) {
    label_key.assign(p.substr(kLabels.size()));
    return PathInfo{AttributePath::kPrincipalLabel, ValueType::kString};
  }
  return std::nullopt;
}

std::string_view typeName(ValueType t) {
  switch (t) {
    case ValueType::kString: return "a string";
    case ValueType::kKind: return "a kind (device, user, service)";
    case ValueType::kSegments: return "a set of segments";
    case ValueType::kInteger: return "an integer";
    case ValueType::kBoolean: return "a boolean";
    case ValueType::kAssurance: return "an assurance level (none < software < tpm)";
    case ValueType::kDuration: return "a duration (30s, 5m, 2h, 7d)";
    case ValueType::kTime: return "a time of day (compare it with `in HH:MM-HH:MM [ZONE]`)";
    case ValueType::kWeekday: return "a weekday (mon..sun)";
    case ValueType::kIp: return "an IP address (compare it with `in CIDR` or `in [CIDR, ...]`)";
  }
  return "a value";
}

bool opAllowed(ValueType t, ConditionOp op) {
  switch (op) {
    case ConditionOp::kHas: return true;
    case ConditionOp::kTrue: return t == ValueType::kBoolean;
    case ConditionOp::kEq:
    case ConditionOp::kNe: return t != ValueType::kTime && t != ValueType::kSegments;
    case ConditionOp::kLt:
    case ConditionOp::kLe:
    case ConditionOp::kGt:
    case ConditionOp::kGe:
      return t == ValueType::kInteger || t == ValueType::kDuration || t == ValueType::kAssurance;
    case ConditionOp::kIn:
    case ConditionOp::kNotIn:
      return t == ValueType::kString || t == ValueType::kKind || t == ValueType::kTime || t == ValueType::kWeekday ||
             t == ValueType::kIp;
  }
  return false;
}

std::string_view opName(ConditionOp op) {
  switch (op) {
    case ConditionOp::kEq: return "==";
    case ConditionOp::kNe: return "!=";
    case ConditionOp::kLt: return "<";
    case ConditionOp::kLe: return "<=";
    case ConditionOp::kGt: return ">";
    case ConditionOp::kGe: return ">=";
    case ConditionOp::kIn: return "in";
    case ConditionOp::kNotIn: return "not in";
    case ConditionOp::kHas: return "has";
    case ConditionOp::kTrue: return "(bare)";
  }
  return "?";
}

std::optional<int64_t> parseDigits(std::string_view s) {
  if (s.empty() || s.size() > 12) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<int64_t> parseDuration(std::string_view s) {
  if (s.size() < 2) return std::nullopt;
  int64_t unit = 0;
  switch (s.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return std::nullopt;
  }
  auto n = parseDigits(s.substr(0, s.size() - 1));
  if (!n || *n > kMaxDurationSeconds / unit) return std::nullopt;
  return *n * unit;
}

std::optional<int> parseClock(std::string_view s) {
  if (s.size() != 5 || s[2] != ':') return std::nullopt;
  auto h = parseDigits(s.substr(0, 2));
  auto m = parseDigits(s.substr(3, 2));
  if (!h || !m || *h > 24 || *m > 59 || (*h == 24 && *m != 0)) return std::nullopt;
  return static_cast<int>(*h * 60 + *m);
}

std::optional<int> parseWeekday(std::string_view s) {
  static constexpr std::array<std::string_view, 7> kLong = {"sunday",   "monday", "tuesday", "wednesday",
                                                             "thursday", "friday", "saturday"};
  for (int i = 0; i < 7; ++i) {
    if (s == kWeekdayNames[i] || s == kLong[i]) return i;
  }
  return std::nullopt;
}

std::optional<Cidr> parseCidr(std::string_view s) {
  size_t slash = s.find('/');
  auto ip = IpAddress::parse(s.substr(0, slash));
  if (!ip) return std::nullopt;
  int max = ip->v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    auto n = parseDigits(s.substr(slash + 1));
    if (!n || *n > max) return std::nullopt;
    prefix = static_cast<int>(*n);
  }
  Cidr c{*ip, prefix};
  // Clear host bits so that equal networks compare equal.
  for (int i = 0; i < 16; ++i) {
    int bits = std::clamp(prefix - i * 8, 0, 8);
    c.address.bytes[i] &= static_cast<uint8_t>(0xff00 >> bits);
  }
  return c;
}

std::string formatIp(const IpAddress& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes.data(), buf, sizeof buf);
  return buf;
}

// Local wall-clock helpers; a null zone is UTC (only if tzdata is missing).
std::chrono::seconds localSeconds(const date::time_zone* zone, SysSeconds t) {
  if (zone == nullptr) return t.time_since_epoch();
  return zone->to_local(t).time_since_epoch();
}

SysSeconds toSys(const date::time_zone* zone, std::chrono::seconds local) {
  if (zone == nullptr) return SysSeconds(local);
  return zone->to_sys(date::local_seconds(local), date::choose::earliest);
}

void lower(std::optional<std::chrono::system_clock::time_point>& deadline, std::chrono::system_clock::time_point t) {
  if (!deadline || t < *deadline) deadline = t;
}

// nextLocal returns the next instant after |now| whose local time of day is
// |minute| (minutes since local midnight).
SysSeconds nextLocal(const date::time_zone* zone, SysSeconds now, int minute) {
  std::chrono::seconds local = localSeconds(zone, now);
  auto day = date::floor<date::days>(local);
  std::chrono::seconds candidate = day + std::chrono::minutes(minute);
  if (candidate <= local) candidate += date::days(1);
  SysSeconds t = toSys(zone, candidate);
  if (t <= now) t = now + std::chrono::minutes(1);  // a DST jump; re-evaluate soon
  return t;
}

bool inWindow(const TimeWindow& w, int minute) {
  if (w.start < w.end) return minute >= w.start && minute < w.end;
  return minute >= w.start || minute < w.end;  // wraps midnight
}

std::string stringValue(const Condition& c, const Principal& p, const Context& ctx, bool& present) {
  present = true;
  switch (c.path) {
    case AttributePath::kPrincipalId: present = !p.id.empty(); return p.id;
    case AttributePath::kPrincipalRole: present = !p.role.empty(); return p.role;
    case AttributePath::kPrincipalKind: return std::string(core::principalKindName(p.kind));
    case AttributePath::kContextProtocol: present = !ctx.protocol.empty(); return ctx.protocol;
    case AttributePath::kPrincipalLabel: {
      auto it = p.labels.find(c.label_key);
      present = it != p.labels.end() && !it->second.empty();
      return present ? it->second : std::string();
    }
    default: present = false; return {};
  }
}

// stringRef is stringValue without a copy (the hot path).
const std::string* stringRef(const Condition& c, const Principal& p, const Context& ctx) {
  switch (c.path) {
    case AttributePath::kPrincipalId: return p.id.empty() ? nullptr : &p.id;
    case AttributePath::kPrincipalRole: return p.role.empty() ? nullptr : &p.role;
    case AttributePath::kContextProtocol: return ctx.protocol.empty() ? nullptr : &ctx.protocol;
    case AttributePath::kPrincipalLabel: {
      auto it = p.labels.find(c.label_key);
      return it == p.labels.end() || it->second.empty() ? nullptr : &it->second;
    }
    default: return nullptr;
  }
}

Truth fromBool(bool b) { return b ? Truth::kTrue : Truth::kFalse; }

Truth compareNumbers(ConditionOp op, int64_t v, int64_t lit) {
  switch (op) {
    case ConditionOp::kEq: return fromBool(v == lit);
    case ConditionOp::kNe: return fromBool(v != lit);
    case ConditionOp::kLt: return fromBool(v < lit);
    case ConditionOp::kLe: return fromBool(v <= lit);
    case ConditionOp::kGt: return fromBool(v > lit);
    case ConditionOp::kGe: return fromBool(v >= lit);
    default: return Truth::kFalse;
  }
}

std::optional<int64_t> numberValue(const Condition& c, const Principal& p) {
  switch (c.path) {
    case AttributePath::kPrincipalTrust:
      if (p.trust) return *p.trust;
      return std::nullopt;
    case AttributePath::kAttestationAssurance:
      if (p.attestation_assurance) return static_cast<int64_t>(*p.attestation_assurance);
      return std::nullopt;
    case AttributePath::kAttestationAge:
      if (p.attestation_age) return p.attestation_age->count();
      return std::nullopt;
    case AttributePath::kCertAge:
      if (p.cert_age) return p.cert_age->count();
      return std::nullopt;
    default: return std::nullopt;
  }
}

std::optional<bool> boolValue(const Condition& c, const Principal& p, const Context& ctx) {
  if (c.path == AttributePath::kFirmwareApproved) return p.firmware_approved;
  if (c.path == AttributePath::kContextMfa) return ctx.mfa;
  return std::nullopt;
}

bool present(const Condition& c, const Principal& p, const Context& ctx) {
  switch (c.type) {
    case ValueType::kString: return stringRef(c, p, ctx) != nullptr;
    case ValueType::kKind:
    case ValueType::kSegments: return true;
    case ValueType::kInteger:
    case ValueType::kAssurance:
    case ValueType::kDuration: return numberValue(c, p).has_value();
    case ValueType::kBoolean: return boolValue(c, p, ctx).has_value();
    case ValueType::kTime:
    case ValueType::kWeekday: return ctx.time.has_value();
    case ValueType::kIp: return ctx.source_ip.has_value();
  }
  return false;
}

// ConditionParser reads one condition; offsets are into the condition text.
class ConditionParser {
 public:
  ConditionParser(const YamlNode& node, std::string_view filename, const date::time_zone* zone,
                  const SegmentResolver& resolve)
      : node_(node), filename_(filename), resolve_(resolve) {
    c_.text = node.scalar;
    c_.pos = node.pos;
    c_.zone = zone;
  }

  core::Result<Condition> run() {
    std::string_view text = c_.text;
    if (text.size() > kMaxConditionBytes) {
      return error(0, fmt::format("a condition may not exceed {} bytes", kMaxConditionBytes));
    }
    if (text.find('\0') != std::string_view::npos) return error(0, "a condition may not contain a NUL character");
    size_t pos = skipSpace(0);
    if (pos == text.size()) return error(0, "empty condition: write e.g. principal.trust >= 70");
    // `has PATH`
    if (text.substr(pos, 4) == "has " || text.substr(pos, 4) == "has\t") {
      size_t p = skipSpace(pos + 4);
      std::string_view path = trim(text.substr(p));
      WARDEN_RETURN_IF_ERROR(setPath(path, p));
      c_.op = ConditionOp::kHas;
      return std::move(c_);
    }
    size_t lhs_end = pos;
    while (lhs_end < text.size() && !isSpace(text[lhs_end]) && std::string_view("=!<>").find(text[lhs_end]) ==
                                                                      std::string_view::npos) {
      ++lhs_end;
    }
    std::string_view lhs = text.substr(pos, lhs_end - pos);
    size_t op_pos = skipSpace(lhs_end);
    if (op_pos == text.size()) {
      // A bare boolean PATH.
      WARDEN_RETURN_IF_ERROR(setPath(lhs, pos));
      if (c_.type != ValueType::kBoolean) {
        return error(pos, fmt::format("'{}' is {}, not a boolean: compare it, e.g. `{} == VALUE`", lhs,
                                      typeName(c_.type), lhs));
      }
      c_.op = ConditionOp::kTrue;
      return std::move(c_);
    }
    size_t rhs_pos = 0;
    WARDEN_RETURN_IF_ERROR(readOp(op_pos, rhs_pos));
    rhs_pos = skipSpace(rhs_pos);
    std::string_view rhs = trim(text.substr(rhs_pos));
    if (rhs.empty()) return error(op_pos, fmt::format("'{}' needs a value on its right", opName(c_.op)));
    if (rhs == "principal.segments") {
      if (c_.op != ConditionOp::kIn && c_.op != ConditionOp::kNotIn) {
        return error(op_pos, "principal.segments is a set: write `SEGMENT in principal.segments`");
      }
      std::string_view name = unquote(lhs);
      auto index = resolve_ ? resolve_(name) : std::nullopt;
      if (!index) {
        return error(pos, fmt::format("unknown segment '{}': name a segment defined under 'segments:' or "
                                      "quarantine",
                                      name.substr(0, 80)));
      }
      c_.path = AttributePath::kPrincipalSegments;
      c_.type = ValueType::kSegments;
      c_.segment = *index;
      return std::move(c_);
    }
    WARDEN_RETURN_IF_ERROR(setPath(lhs, pos));
    if (c_.type == ValueType::kSegments) {
      return error(pos, "principal.segments is a set: write `SEGMENT in principal.segments`");
    }
    if (!opAllowed(c_.type, c_.op)) {
      return error(op_pos, fmt::format("operator '{}' does not apply to {}, which is {}", opName(c_.op), lhs,
                                       typeName(c_.type)));
    }
    WARDEN_RETURN_IF_ERROR(readLiteral(rhs, rhs_pos));
    return std::move(c_);
  }

 private:
  core::Status error(size_t offset, std::string_view message) const {
    YamlPosition p = node_.pos;
    if (node_.scalar.find('\n') == std::string::npos) p.column += static_cast<int>(offset) + (node_.quoted ? 1 : 0);
    return yamlError(filename_, p, fmt::format("condition '{}': {}", std::string_view(c_.text).substr(0, 120),
                                               message));
  }

  size_t skipSpace(size_t i) const {
    while (i < c_.text.size() && isSpace(c_.text[i])) ++i;
    return i;
  }

  static std::string_view unquote(std::string_view s) {
    if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
      return s.substr(1, s.size() - 2);
    }
    return s;
  }

  core::Status setPath(std::string_view path, size_t offset) {
    auto info = lookupPath(path, c_.label_key);
    if (!info) {
      return error(offset, fmt::format("unknown attribute '{}': use one of {}", path.substr(0, 80), kAttributeNames));
    }
    c_.path = info->path;
    c_.type = info->type;
    return core::Status::ok();
  }

  core::Status readOp(size_t at, size_t& after) {
    std::string_view t = std::string_view(c_.text).substr(at);
    struct OpText {
      std::string_view text;
      ConditionOp op;
    };
    static constexpr OpText kOps[] = {{"==", ConditionOp::kEq}, {"!=", ConditionOp::kNe}, {"<=", ConditionOp::kLe},
                                      {">=", ConditionOp::kGe}, {"<", ConditionOp::kLt},  {">", ConditionOp::kGt}};
    for (const OpText& o : kOps) {
      if (t.substr(0, o.text.size()) == o.text) {
        c_.op = o.op;
        after = at + o.text.size();
        return core::Status::ok();
      }
    }
    auto word = [&](std::string_view w) {
      return t.substr(0, w.size()) == w && (t.size() == w.size() || isSpace(t[w.size()]));
    };
    if (word("in")) {
      c_.op = ConditionOp::kIn;
      after = at + 2;
      return core::Status::ok();
    }
    if (word("not")) {
      size_t p = skipSpace(at + 3);
      std::string_view rest = std::string_view(c_.text).substr(p);
      if (rest.substr(0, 2) == "in" && (rest.size() == 2 || isSpace(rest[2]))) {
        c_.op = ConditionOp::kNotIn;
        after = p + 2;
        return core::Status::ok();
      }
    }
    return error(at, "expected an operator: ==, !=, <, <=, >, >=, in or not in");
  }

  // items splits a literal into list items (a `[a, b]` list or one item),
  // each with its offset.
  core::Status items(std::string_view rhs, size_t offset, std::vector<std::pair<std::string_view, size_t>>& out,
                     bool& is_list) const {
    is_list = !rhs.empty() && rhs.front() == '[';
    if (!is_list) {
      out.emplace_back(unquote(rhs), offset);
      return core::Status::ok();
    }
    if (rhs.back() != ']') return error(offset, "a list must end with ']'");
    std::string_view inner = rhs.substr(1, rhs.size() - 2);
    size_t base = offset + 1;
    size_t start = 0;
    while (true) {
      size_t comma = inner.find(',', start);
      std::string_view raw = inner.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                                                 : comma - start);
      size_t lead = 0;
      while (lead < raw.size() && isSpace(raw[lead])) ++lead;
      std::string_view item = trim(raw);
      if (item.empty()) return error(base + start, "empty list item: write [a, b] with a value between commas");
      if (out.size() >= kMaxListItems) return error(offset, fmt::format("more than {} list items", kMaxListItems));
      out.emplace_back(unquote(item), base + start + lead);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return core::Status::ok();
  }

  core::Status readLiteral(std::string_view rhs, size_t offset) {
    std::vector<std::pair<std::string_view, size_t>> list;
    bool is_list = false;
    WARDEN_RETURN_IF_ERROR(items(rhs, offset, list, is_list));
    bool set_op = c_.op == ConditionOp::kIn || c_.op == ConditionOp::kNotIn;
    if (is_list && !set_op) {
      return error(offset, fmt::format("a list needs 'in' or 'not in', not '{}'", opName(c_.op)));
    }
    for (const auto& [item, at] : list) {
      switch (c_.type) {
        case ValueType::kString:
          if (item.empty()) return error(at, "empty string literal");
          c_.strings.emplace_back(item);
          break;
        case ValueType::kKind:
          if (item != "device" && item != "user" && item != "service") {
            return error(at, fmt::format("'{}' is not a kind: use device, user or service", item.substr(0, 40)));
          }
          c_.strings.emplace_back(item);
          break;
        case ValueType::kInteger: {
          auto n = parseDigits(item);
          if (!n || *n > 1000000000) return error(at, fmt::format("'{}' is not an integer", item.substr(0, 40)));
          c_.number = *n;
          break;
        }
        case ValueType::kBoolean:
          if (item == "true") {
            c_.boolean = true;
          } else if (item == "false") {
            c_.boolean = false;
          } else {
            return error(at, fmt::format("'{}' is not a boolean: use true or false", item.substr(0, 40)));
          }
          break;
        case ValueType::kAssurance:
          if (item == "none") {
            c_.number = 0;
          } else if (item == "software") {
            c_.number = 1;
          } else if (item == "tpm") {
            c_.number = 2;
          } else {
            return error(at, fmt::format("'{}' is not an assurance level: use none, software or tpm",
                                         item.substr(0, 40)));
          }
          break;
        case ValueType::kDuration: {
          auto d = parseDuration(item);
          if (!d) {
            return error(at, fmt::format("'{}' is not a duration: write a number with s, m, h or d, e.g. 30s, "
                                         "5m, 2h, 7d",
                                         item.substr(0, 40)));
          }
          c_.number = *d;
          break;
        }
        case ValueType::kTime: {
          TimeWindow w;
          WARDEN_RETURN_IF_ERROR(window(item, at, w));
          c_.windows.push_back(w);
          break;
        }
        case ValueType::kWeekday: {
          auto d = parseWeekday(item);
          if (!d) return error(at, fmt::format("'{}' is not a weekday: use mon, tue, wed, thu, fri, sat or sun",
                                               item.substr(0, 40)));
          c_.weekdays |= static_cast<uint8_t>(1u << *d);
          break;
        }
        case ValueType::kIp: {
          auto cidr = parseCidr(item);
          if (!cidr) {
            return error(at, fmt::format("'{}' is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8)",
                                         item.substr(0, 60)));
          }
          c_.cidrs.push_back(*cidr);
          break;
        }
        case ValueType::kSegments: return error(at, "principal.segments is a set");
      }
    }
    return core::Status::ok();
  }

  core::Status window(std::string_view item, size_t at, TimeWindow& w) {
    size_t space = item.find_first_of(" \t");
    std::string_view range = item.substr(0, space);
    size_t dash = range.find('-');
    std::optional<int> start;
    std::optional<int> end;
    if (dash != std::string_view::npos) {
      start = parseClock(range.substr(0, dash));
      end = parseClock(range.substr(dash + 1));
    }
    if (!start || !end) {
      return error(at, fmt::format("'{}' is not a time window: write HH:MM-HH:MM with an optional IANA zone, e.g. "
                                   "06:00-22:00 Europe/Berlin",
                                   item.substr(0, 60)));
    }
    if (*start % 1440 == *end % 1440) {
      return error(at, "a time window needs different start and end times (it would be empty or the whole day)");
    }
    w.start = *start % 1440;
    w.end = *end % 1440;
    w.zone = c_.zone;
    if (space != std::string_view::npos) {
      std::string_view zone = trim(item.substr(space));
      w.zone = locateZone(zone);
      if (w.zone == nullptr) {
        return error(at + space + 1, fmt::format("unknown time zone '{}': use an IANA name such as Europe/Berlin or "
                                                 "UTC",
                                                 zone.substr(0, 60)));
      }
    }
    return core::Status::ok();
  }

  const YamlNode& node_;
  std::string filename_;
  const SegmentResolver& resolve_;
  Condition c_;
};

}  // namespace

bool Cidr::contains(const IpAddress& ip) const {
  if (ip.v6 != address.v6) return false;
  int full = prefix / 8;
  if (std::memcmp(ip.bytes.data(), address.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff00 >> rest);
  return (ip.bytes[full] & mask) == address.bytes[full];
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  char buf[64];
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  if (inet_pton(AF_INET, buf, ip.bytes.data()) == 1) return ip;
  if (inet_pton(AF_INET6, buf, ip.bytes.data()) != 1) return std::nullopt;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(ip.bytes.data(), kMapped, 12) == 0) {
    IpAddress v4;
    std::memcpy(v4.bytes.data(), ip.bytes.data() + 12, 4);
    return v4;
  }
  ip.v6 = true;
  return ip;
}

bool Condition::timeDependent() const {
  return path == AttributePath::kContextTime || path == AttributePath::kContextWeekday ||
         path == AttributePath::kAttestationAge || path == AttributePath::kCertAge;
}

const date::time_zone* locateZone(std::string_view name) {
  if (name.empty() || name.size() > 64) return nullptr;
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
              c == '-' || c == '+';
    if (!ok) return nullptr;
  }
  if (name.find("..") != std::string_view::npos || name.front() == '/') return nullptr;
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::string_view attributeNames() { return kAttributeNames; }

core::Result<Condition> parseCondition(const YamlNode& node, std::string_view filename, const date::time_zone* zone,
                                       const SegmentResolver& resolve) {
  if (node.type != YamlNode::Type::kScalar) {
    return yamlError(filename, node.pos,
                     fmt::format("each condition must be a string such as \"principal.trust >= 70\", not a {}",
                                 node.typeName()));
  }
  return ConditionParser(node, filename, zone, resolve).run();
}

Truth evaluateCondition(const Condition& c, const Principal& p, const Context& ctx, SegmentLookup& segments,
                        std::optional<std::chrono::system_clock::time_point>& deadline) {
  if (c.op == ConditionOp::kHas) return fromBool(present(c, p, ctx));
  switch (c.type) {
    case ValueType::kSegments: {
      bool in = segments.inSegment(c.segment);
      return fromBool(c.op == ConditionOp::kIn ? in : !in);
    }
    case ValueType::kString:
    case ValueType::kKind: {
      const std::string* v = nullptr;
      std::string_view kind;
      if (c.type == ValueType::kKind) {
        kind = core::principalKindName(p.kind);
      } else {
        v = stringRef(c, p, ctx);
        if (v == nullptr) return Truth::kAbsent;
        kind = *v;
      }
      bool any = false;
      for (const std::string& s : c.strings) any = any || s == kind;
      bool negate = c.op == ConditionOp::kNe || c.op == ConditionOp::kNotIn;
      return fromBool(any != negate);
    }
    case ValueType::kInteger:
    case ValueType::kAssurance: {
      auto v = numberValue(c, p);
      if (!v) return Truth::kAbsent;
      return compareNumbers(c.op, *v, c.number);
    }
    case ValueType::kDuration: {
      auto v = numberValue(c, p);
      if (!v) return Truth::kAbsent;
      // Ages only grow: the outcome can flip once, when the age reaches the
      // threshold.
      if (ctx.time && *v <= c.number) {
        lower(deadline, *ctx.time + std::chrono::seconds(std::max<int64_t>(c.number - *v, 1)));
      }
      return compareNumbers(c.op, *v, c.number);
    }
    case ValueType::kBoolean: {
      auto v = boolValue(c, p, ctx);
      if (!v) return Truth::kAbsent;
      if (c.op == ConditionOp::kTrue) return fromBool(*v);
      return fromBool((*v == c.boolean) == (c.op == ConditionOp::kEq));
    }
    case ValueType::kTime: {
      if (!ctx.time) return Truth::kAbsent;
      SysSeconds now = date::floor<seconds>(*ctx.time);
      bool in = false;
      for (const TimeWindow& w : c.windows) {
        const date::time_zone* zone = w.zone;
        std::chrono::seconds local = localSeconds(zone, now);
        int minute = static_cast<int>((local - date::floor<date::days>(local)).count() / 60);
        in = in || inWindow(w, minute);
        lower(deadline, nextLocal(zone, now, w.start));
        lower(deadline, nextLocal(zone, now, w.end));
      }
      return fromBool(in == (c.op == ConditionOp::kIn));
    }
    case ValueType::kWeekday: {
      if (!ctx.time) return Truth::kAbsent;
      SysSeconds now = date::floor<seconds>(*ctx.time);
      std::chrono::seconds local = localSeconds(c.zone, now);
      auto day = date::floor<date::days>(local);
      unsigned wd = date::weekday(date::sys_days(day)).c_encoding();
      lower(deadline, nextLocal(c.zone, now, 0));
      bool in = (c.weekdays >> wd) & 1u;
      bool negate = c.op == ConditionOp::kNe || c.op == ConditionOp::kNotIn;
      return fromBool(in != negate);
    }
    case ValueType::kIp: {
      if (!ctx.source_ip) return Truth::kAbsent;
      bool in = false;
      for (const Cidr& cidr : c.cidrs) in = in || cidr.contains(*ctx.source_ip);
      bool negate = c.op == ConditionOp::kNe || c.op == ConditionOp::kNotIn;
      return fromBool(in != negate);
    }
  }
  return Truth::kAbsent;
}

std::string describeValue(const Condition& c, const Principal& p, const Context& ctx, SegmentLookup& segments) {
  std::string_view name = c.type == ValueType::kSegments ? "principal.segments" : "";
  switch (c.type) {
    case ValueType::kSegments: return fmt::format("{} = [{}]", name, segments.segmentNames());
    default: break;
  }
  std::string path;
  static constexpr std::string_view kNames[] = {
      "principal.id",   "principal.kind",  "principal.role",  "principal.segments", "principal.labels.",
      "principal.trust", "principal.firmware.approved", "principal.attestation.assurance",
      "principal.attestation.age", "principal.cert.age", "context.time", "context.weekday", "context.source_ip",
      "context.protocol", "context.mfa"};
  path = std::string(kNames[static_cast<size_t>(c.path)]);
  if (c.path == AttributePath::kPrincipalLabel) path += c.label_key;
  if (!present(c, p, ctx)) return path + " = absent";
  std::string value;
  switch (c.type) {
    case ValueType::kString:
    case ValueType::kKind: {
      bool ok = false;
      value = stringValue(c, p, ctx, ok);
      break;
    }
    case ValueType::kInteger: value = std::to_string(*numberValue(c, p)); break;
    case ValueType::kAssurance: {
      static constexpr std::string_view kLevels[] = {"none", "software", "tpm"};
      value = std::string(kLevels[std::clamp<int64_t>(*numberValue(c, p), 0, 2)]);
      break;
    }
    case ValueType::kDuration: value = fmt::format("{}s", *numberValue(c, p)); break;
    case ValueType::kBoolean: value = *boolValue(c, p, ctx) ? "true" : "false"; break;
    case ValueType::kTime: {
      SysSeconds now = date::floor<seconds>(*ctx.time);
      const date::time_zone* zone = c.windows.empty() ? c.zone : c.windows.front().zone;
      std::chrono::seconds local = localSeconds(zone, now);
      auto day = date::floor<date::days>(local);
      auto tod = local - day;
      value = fmt::format("{:02}:{:02} {}", tod.count() / 3600, (tod.count() / 60) % 60,
                          zone == nullptr ? std::string("UTC") : zone->name());
      break;
    }
    case ValueType::kWeekday: {
      SysSeconds now = date::floor<seconds>(*ctx.time);
      auto day = date::floor<date::days>(localSeconds(c.zone, now));
      value = std::string(kWeekdayNames[date::weekday(date::sys_days(day)).c_encoding()]);
      break;
    }
    case ValueType::kIp: value = formatIp(*ctx.source_ip); break;
    case ValueType::kSegments: break;
  }
  return path + " = " + value;
}

}  // namespace warden::policy
