#pragma once

// policy_helpers.h: what the policy unit tests share: parse or fail, the
// error of a bad policy, and a device principal.

#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace warden::testing {

// mustParse parses |yaml| (as "test.yaml") and fails the test if it is invalid.
inline std::shared_ptr<const policy::Policy> mustParse(std::string_view yaml) {
  auto result = policy::Policy::parse(yaml, "test.yaml");
  EXPECT_TRUE(result.isOk()) << result.status().message();
  return result.isOk() ? *result : nullptr;
}

// parseError returns the error message of parsing |yaml|, or "" if it parsed.
inline std::string parseError(std::string_view yaml) {
  auto result = policy::Policy::parse(yaml, "test.yaml");
  if (result.isOk()) return "";
  EXPECT_EQ(result.status().code(), core::ErrorCode::kInvalidArgument);
  return result.status().message();
}

// device returns a device principal with |role| and |labels|.
inline policy::Principal device(std::string id, std::string role = "", core::Labels labels = {}) {
  policy::Principal p;
  p.id = std::move(id);
  p.kind = core::PrincipalKind::kDevice;
  p.role = std::move(role);
  p.labels = std::move(labels);
  return p;
}

}  // namespace warden::testing
