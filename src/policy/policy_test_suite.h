#pragma once

// policy_test_suite.h: `warden policy test` files. A test file is a table of
// requests with expected decisions, run offline against one policy
// (docs/policy.md, "Testing a policy").

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "policy/policy.h"

namespace warden::policy {

// setContextField sets one request-context field from text, as given to
// `--context k=v` or a test's `context:` mapping: time (RFC 3339 with
// offset or Z), source_ip, protocol, mfa (true/false). kInvalidArgument
// names the key and what to write.
core::Status setContextField(Context& ctx, std::string_view key, std::string_view value);

// parseTimestamp reads RFC 3339 "2026-03-02T10:00:00+01:00" (or Z, optional
// fractional seconds).
std::optional<std::chrono::system_clock::time_point> parseTimestamp(std::string_view text);

// formatTimestamp writes |t| as RFC 3339 UTC ("2026-03-02T09:00:00Z").
std::string formatTimestamp(std::chrono::system_clock::time_point t);

struct PolicyTestCase {
  std::string name;
  int line = 0;  // of the test in its file
  Principal principal;
  std::string action;
  std::string resource;
  Context context;
  bool expect_permit = false;
  std::string expect_reason;  // optional
  std::string expect_rule;    // optional
};

struct PolicyTestFile {
  std::vector<PolicyTestCase> tests;
  std::string policy;  // the `policy:` key, a path relative to the test file ("" if absent)
};

struct PolicyTestResult {
  const PolicyTestCase* test = nullptr;
  Decision decision;
  bool passed = false;
  std::string diff;  // "expected permit, got deny (no_flow ...)" when failed
};

// parsePolicyTestFile reads a test file; errors are "FILE:LINE:COL: message"
// (kInvalidArgument), with the same strict YAML rules as policies.
core::Result<PolicyTestFile> parsePolicyTestFile(std::string_view yaml, std::string_view filename);

// runPolicyTests evaluates every test of |file| against |policy|.
std::vector<PolicyTestResult> runPolicyTests(const Policy& policy, const PolicyTestFile& file);

}  // namespace warden::policy
