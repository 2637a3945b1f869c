#include "policy/policy_test_suite.h"


#include <date/date.h>
#include <fmt/format.h>

#include "core/names.h"
#include "policy/yaml_tree.h"

namespace warden::policy {
namespace {

constexpr size_t kMaxTests = 10000;

std::string_view shortened(std::string_view s) { return s.substr(0, 80); }

class TestFileReader {
 public:
  explicit TestFileReader(std::string_view filename) : filename_(filename) {}

  core::Status error(const YamlNode& at, std::string_view message) const {
    return yamlError(filename_, at.pos, message);
  }

  core::Status read(const YamlNode& root, PolicyTestFile& out) {
    if (root.type != YamlNode::Type::kMap) return error(root, "a test file is a mapping with a 'tests:' list");
    const YamlNode* tests = nullptr;
    for (const auto& [key, value] : root.entries) {
      if (key.scalar == "tests") {
        tests = &value;
      } else if (key.scalar == "policy") {
        if (value.type != YamlNode::Type::kScalar) return error(value, "'policy' must be a file path");
        out.policy = value.scalar;
      } else {
        return error(key, fmt::format("unknown key '{}' in a test file: use tests and policy", shortened(key.scalar)));
      }
    }
    if (tests == nullptr || tests->type != YamlNode::Type::kSequence) {
      return error(tests ? *tests : root, "a test file needs a 'tests:' list");
    }
    if (tests->items.size() > kMaxTests) return error(*tests, fmt::format("more than {} tests", kMaxTests));
    for (const YamlNode& item : tests->items) {
      PolicyTestCase t;
      WARDEN_RETURN_IF_ERROR(readTest(item, t));
      out.tests.push_back(std::move(t));
    }
    return core::Status::ok();
  }

 private:
  core::Status scalar(const YamlNode& node, std::string_view what, std::string& out) const {
    if (node.type != YamlNode::Type::kScalar) {
      return error(node, fmt::format("'{}' must be a string, not a {}", what, node.typeName()));
    }
    out = node.scalar;
    return core::Status::ok();
  }

  core::Status readTest(const YamlNode& node, PolicyTestCase& t) {
    if (node.type != YamlNode::Type::kMap) return error(node, "a test must be a mapping (name, principal, action, ...)");
    t.line = node.pos.line;
    const YamlNode* principal = nullptr;
    const YamlNode* expect = nullptr;
    bool have_action = false;
    bool have_resource = false;
    for (const auto& [key, value] : node.entries) {
      const std::string& k = key.scalar;
      if (k == "name") {
        WARDEN_RETURN_IF_ERROR(scalar(value, "name", t.name));
      } else if (k == "principal") {
        principal = &value;
      } else if (k == "action") {
        WARDEN_RETURN_IF_ERROR(scalar(value, "action", t.action));
        if (!lookupActionName(t.action)) {
          return error(value, fmt::format("unknown action '{}': see docs/policy.md", shortened(t.action)));
        }
        have_action = true;
      } else if (k == "resource") {
        WARDEN_RETURN_IF_ERROR(scalar(value, "resource", t.resource));
        have_resource = true;
      } else if (k == "context") {
        WARDEN_RETURN_IF_ERROR(readContext(value, t.context));
      } else if (k == "expect") {
        expect = &value;
      } else if (k == "reason") {
        WARDEN_RETURN_IF_ERROR(scalar(value, "reason", t.expect_reason));
      } else if (k == "rule") {
        WARDEN_RETURN_IF_ERROR(scalar(value, "rule", t.expect_rule));
      } else {
        return error(key, fmt::format("unknown key '{}' in a test: use name, principal, action, resource, context, "
                                      "expect, reason and rule",
                                      shortened(k)));
      }
    }
    if (t.name.empty()) t.name = fmt::format("test at line {}", t.line);
    if (principal == nullptr || !have_action || !have_resource || expect == nullptr) {
      return error(node, fmt::format("test '{}' needs principal, action, resource and expect", shortened(t.name)));
    }
    if (expect->type != YamlNode::Type::kScalar || (expect->scalar != "permit" && expect->scalar != "deny")) {
      return error(*expect, "'expect' must be permit or deny");
    }
    t.expect_permit = expect->scalar == "permit";
    return readPrincipal(*principal, t.principal);
  }

  static bool lookupActionName(std::string_view a) {
    for (std::string_view known : kActions) {
      if (known == a) return true;
    }
    return false;
  }

  core::Status readContext(const YamlNode& node, Context& ctx) const {
    if (node.type != YamlNode::Type::kMap) return error(node, "'context' must be a mapping such as {mfa: true}");
    for (const auto& [key, value] : node.entries) {
      if (value.type != YamlNode::Type::kScalar) return error(value, "context values are strings");
      core::Status st = setContextField(ctx, key.scalar, value.scalar);
      if (!st.isOk()) return error(key.scalar == "time" ? value : key, st.message());
    }
    return core::Status::ok();
  }

  core::Status readPrincipal(const YamlNode& node, Principal& p) const {
    if (node.type != YamlNode::Type::kMap) return error(node, "'principal' must be a mapping such as {id: s1}");
    bool have_id = false;
    for (const YamlEntry& entry : node.entries) {
      // Not a structured binding: clang 14 (the fuzz build) cannot capture one.
      const YamlNode& key = entry.key;
      const YamlNode& value = entry.value;
      const std::string& k = key.scalar;
      if (k == "labels") {
        if (value.type != YamlNode::Type::kMap) return error(value, "'labels' must be a mapping");
        for (const auto& [lk, lv] : value.entries) {
          if (lv.type != YamlNode::Type::kScalar) return error(lv, "label values are strings");
          p.labels[lk.scalar] = lv.scalar;
        }
        continue;
      }
      if (k == "segments") {
        return error(key, "segments are computed from the policy's selectors, never given: remove 'segments'");
      }
      if (value.type != YamlNode::Type::kScalar) return error(value, fmt::format("'{}' must be a scalar", k));
      const std::string& v = value.scalar;
      auto boolean = [&](std::optional<bool>& out) -> core::Status {
        if (v != "true" && v != "false") return error(value, fmt::format("'{}' must be true or false", k));
        out = v == "true";
        return core::Status::ok();
      };
      auto age = [&](std::optional<std::chrono::seconds>& out) -> core::Status {
        int64_t unit = v.empty() ? 0 : v.back() == 's' ? 1 : v.back() == 'm' ? 60 : v.back() == 'h' ? 3600
                                                                               : v.back() == 'd' ? 86400 : 0;
        int64_t n = 0;
        bool ok = unit != 0 && v.size() >= 2 && v.size() < 12;
        for (size_t i = 0; ok && i + 1 < v.size(); ++i) {
          ok = v[i] >= '0' && v[i] <= '9';
          n = n * 10 + (v[i] - '0');
        }
        if (!ok) return error(value, fmt::format("'{}' must be a duration such as 30s, 5m, 2h, 7d", k));
        out = std::chrono::seconds(n * unit);
        return core::Status::ok();
      };
      if (k == "id") {
        p.id = v;
        have_id = true;
      } else if (k == "kind") {
        if (v == "device") {
          p.kind = core::PrincipalKind::kDevice;
        } else if (v == "user") {
          p.kind = core::PrincipalKind::kUser;
        } else if (v == "service") {
          p.kind = core::PrincipalKind::kService;
        } else {
          return error(value, "'kind' must be device, user or service");
        }
      } else if (k == "role") {
        p.role = v;
      } else if (k == "quarantined") {
        std::optional<bool> q;
        WARDEN_RETURN_IF_ERROR(boolean(q));
        p.quarantined = *q;
      } else if (k == "trust") {
        if (v.empty() || v.size() > 3 || v.find_first_not_of("0123456789") != std::string::npos || std::stoi(v) > 100) {
          return error(value, "'trust' must be an integer 0-100");
        }
        p.trust = std::stoi(v);
      } else if (k == "firmware_approved") {
        WARDEN_RETURN_IF_ERROR(boolean(p.firmware_approved));
      } else if (k == "attestation_assurance") {
        if (v == "none") {
          p.attestation_assurance = AttestationAssurance::kNone;
        } else if (v == "software") {
          p.attestation_assurance = AttestationAssurance::kSoftware;
        } else if (v == "tpm") {
          p.attestation_assurance = AttestationAssurance::kTpm;
        } else {
          return error(value, "'attestation_assurance' must be none, software or tpm");
        }
      } else if (k == "attestation_age") {
        WARDEN_RETURN_IF_ERROR(age(p.attestation_age));
      } else if (k == "cert_age") {
        WARDEN_RETURN_IF_ERROR(age(p.cert_age));
      } else {
        return error(key, fmt::format("unknown principal key '{}': use id, kind, role, labels, quarantined, trust, "
                                      "firmware_approved, attestation_assurance, attestation_age and cert_age",
                                      shortened(k)));
      }
    }
    if (!have_id) return error(node, "the principal needs an 'id'");
    return core::Status::ok();
  }

  std::string filename_;
};

}  // namespace

std::optional<std::chrono::system_clock::time_point> parseTimestamp(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), read by hand (strict,
  // and without date::parse, which g++ 12 -O3 warns about).
  if (text.size() < 20 || text.size() > 40) return std::nullopt;
  size_t pos = 0;
  auto number = [&](size_t digits, int& out) {
    if (pos + digits > text.size()) return false;
    out = 0;
    for (size_t i = 0; i < digits; ++i) {
      char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    pos += digits;
    return true;
  };
  auto expect = [&](std::string_view chars) {
    if (pos >= text.size() || chars.find(text[pos]) == std::string_view::npos) return false;
    ++pos;
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!number(4, y) || !expect("-") || !number(2, mo) || !expect("-") || !number(2, d) || !expect("Tt") ||
      !number(2, h) || !expect(":") || !number(2, mi) || !expect(":") || !number(2, sec)) {
    return std::nullopt;
  }
  std::chrono::nanoseconds fraction{0};
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      fraction += std::chrono::nanoseconds((text[pos] - '0') * scale);
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  std::chrono::minutes offset{0};
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else {
    if (pos >= text.size() || (text[pos] != '+' && text[pos] != '-')) return std::nullopt;
    const bool negative = text[pos] == '-';
    ++pos;
    int oh = 0, om = 0;
    if (!number(2, oh) || !expect(":") || !number(2, om) || oh > 23 || om > 59) return std::nullopt;
    offset = std::chrono::hours(oh) + std::chrono::minutes(om);
    if (negative) offset = -offset;
  }
  if (pos != text.size()) return std::nullopt;
  const date::year_month_day ymd{date::year(y), date::month(static_cast<unsigned>(mo)),
                                 date::day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  auto t = date::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(sec) +
           fraction - offset;
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(t);
}

std::string formatTimestamp(std::chrono::system_clock::time_point t) {
  return date::format("%FT%TZ", date::floor<std::chrono::seconds>(t));
}

core::Status setContextField(Context& ctx, std::string_view key, std::string_view value) {
  if (key == "time") {
    auto t = parseTimestamp(value);
    if (!t) {
      return core::invalidArgument(fmt::format("context time '{}' is not RFC 3339: write e.g. 2026-03-02T10:00:00+01:00",
                                               shortened(value)));
    }
    ctx.time = *t;
  } else if (key == "source_ip") {
    auto ip = IpAddress::parse(value);
    if (!ip) return core::invalidArgument(fmt::format("context source_ip '{}' is not an IP address", shortened(value)));
    ctx.source_ip = *ip;
  } else if (key == "protocol") {
    if (value.empty() || value.size() > 32) return core::invalidArgument("context protocol must be 1-32 characters");
    ctx.protocol.assign(value);
  } else if (key == "mfa") {
    if (value != "true" && value != "false") return core::invalidArgument("context mfa must be true or false");
    ctx.mfa = value == "true";
  } else {
    return core::invalidArgument(fmt::format("unknown context key '{}': use time, source_ip, protocol or mfa",
                                             shortened(key)));
  }
  return core::Status::ok();
}

core::Result<PolicyTestFile> parsePolicyTestFile(std::string_view yaml, std::string_view filename) {
  WARDEN_ASSIGN_OR_RETURN(YamlNode root, parseStrictYaml(yaml, filename));
  PolicyTestFile out;
  TestFileReader reader(filename);
  WARDEN_RETURN_IF_ERROR(reader.read(root, out));
  return out;
}

std::vector<PolicyTestResult> runPolicyTests(const Policy& policy, const PolicyTestFile& file) {
  std::vector<PolicyTestResult> results;
  for (const PolicyTestCase& t : file.tests) {
    PolicyTestResult r;
    r.test = &t;
    r.decision = policy.authorize(t.principal, t.action, t.resource, t.context);
    const Decision& d = r.decision;
    r.passed = d.permit == t.expect_permit && (t.expect_reason.empty() || t.expect_reason == d.reason) &&
               (t.expect_rule.empty() || t.expect_rule == d.rule);
    if (!r.passed) {
      std::string expected = t.expect_permit ? "permit" : "deny";
      if (!t.expect_reason.empty()) expected += " (" + t.expect_reason + ")";
      if (!t.expect_rule.empty()) expected += " by rule " + t.expect_rule;
      std::string got = fmt::format("{} ({}) by rule {}", d.permit ? "permit" : "deny", d.reason, d.rule);
      for (const MissingFlow& m : d.missing_flows) got += fmt::format("; missing flow {} -> {} {}", m.from, m.to, m.action);
      r.diff = fmt::format("- expected: {}\n+ got:      {}", expected, got);
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace warden::policy
