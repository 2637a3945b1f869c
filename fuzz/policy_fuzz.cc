// policy_fuzz feeds its input to Policy::parse and, when it compiles,
// authorizes a fixed set of requests (including hostile principals whose
// labels hold '/', '+', '#', '$' and NUL) and checks invariants that hold for
// every policy: a decision carries a rule and a reason, a permit is never
// "default-deny", and requests the engine must refuse whatever the policy
// says (invalid filters, unknown actions) are refused. With a request context
// (time, address, posture), explain agrees with authorize, no_flow names its
// missing flows, and a deadline never lies in the past. Lint runs on every
// policy that compiles.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "policy/policy_lint.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

using warden::core::PrincipalKind;
using warden::policy::Principal;

std::vector<Principal> principals() {
  return {
      {"s1", PrincipalKind::kDevice, "sensor", {{"site", "plant1"}}, false},
      {"v1", PrincipalKind::kDevice, "actuator", {{"line", "l1"}}, true},
      {"admin", PrincipalKind::kUser, "", {}, false},
      {"ota", PrincipalKind::kService, "ota", {}, false},
      {"", PrincipalKind::kDevice, "", {{"site", "a/b"}, {"line", "+"}, {"x", "#"}}, false},
      {"$SYS", PrincipalKind::kDevice, "$share", {{"site", std::string("a\0b", 3)}, {"line", ""}}, true},
  };
}

std::vector<warden::policy::Context> contexts() {
  std::vector<warden::policy::Context> out(3);
  out[0].time = std::chrono::system_clock::time_point(std::chrono::seconds(1772442000));  // 2026-03-02 09:00Z, Monday
  out[0].source_ip = warden::policy::IpAddress::parse("10.1.2.3");
  out[0].protocol = "mqtt";
  out[0].mfa = true;
  out[1].time = std::chrono::system_clock::time_point(std::chrono::seconds(1774742400));  // 2026-03-29, DST change
  out[1].source_ip = warden::policy::IpAddress::parse("fd00::1");
  return out;  // out[2]: everything absent
}

struct Request {
  std::string_view action, resource;
};

constexpr Request kRequests[] = {
    {"mqtt:connect", "s1"},
    {"mqtt:connect", "*"},
    {"mqtt:publish", "factory/telemetry/s1/temp"},
    {"mqtt:publish", "firmware/image"},
    {"mqtt:publish", "$SYS/x"},
    {"mqtt:subscribe", "#"},
    {"mqtt:subscribe", "+/telemetry/#"},
    {"mqtt:subscribe", "factory/commands/v1/#"},
    {"mqtt:subscribe", "$SYS/#"},
    {"mqtt:subscribe", "$share/g/factory/#"},
    {"mqtt:subscribe", "$share/g"},
    {"mqtt:receive", "factory/commands/v1/open"},
    {"mqtt:retain", "status/s1"},
    {"admin:device.revoke", "s1"},
    {"admin:policy.apply", "*"},
    {"admin:events.read", "*"},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = warden::policy::Policy::parse(text, "fuzz.yaml");
  if (!parsed.isOk()) {
    check(parsed.status().message().rfind("fuzz.yaml:", 0) == 0);
    return 0;
  }
  const warden::policy::Policy& policy = **parsed;
  check(policy.text() == text);
  static const std::vector<Principal> kPrincipals = principals();
  for (const Principal& p : kPrincipals) {
    for (const Request& r : kRequests) {
      warden::policy::Decision d = policy.authorize(p, r.action, r.resource);
      check(!d.rule.empty() && !d.reason.empty());
      check(d.permit == (d.reason == "permitted"));
      check(!d.permit || d.rule != "default-deny");
    }
    check(!policy.authorize(p, "mqtt:subscribe", "a/#/b").permit);
    check(!policy.authorize(p, "mqtt:subscribe", "$share//x").permit);
    check(!policy.authorize(p, "mqtt:publish", "a/+").permit);
    check(!policy.authorize(p, "admin:*", "*").permit);
    check(!policy.authorize(p, "*", "*").permit);
  }
  static const std::vector<warden::policy::Context> kContexts = contexts();
  Principal posture = kPrincipals[0];
  posture.trust = 80;
  posture.firmware_approved = true;
  posture.attestation_assurance = warden::policy::AttestationAssurance::kTpm;
  posture.attestation_age = std::chrono::minutes(5);
  posture.cert_age = std::chrono::hours(30);
  for (const warden::policy::Context& ctx : kContexts) {
    const Principal* subjects[] = {&posture, &kPrincipals[1], &kPrincipals[4]};
    for (const Principal* p : subjects) {
      for (const Request& r : kRequests) {
        warden::policy::Decision d = policy.authorize(*p, r.action, r.resource, ctx);
        check(d.permit == (d.reason == "permitted"));
        check((d.reason == "no_flow") == !d.missing_flows.empty());
        if (d.valid_until && ctx.time) check(*d.valid_until > *ctx.time);
        warden::policy::Explanation e = policy.explain(*p, r.action, r.resource, ctx);
        check(e.decision.permit == d.permit && e.decision.reason == d.reason && e.decision.rule == d.rule);
        for (const auto& line : e.rules) check(line.matched == line.why_not.empty());
      }
    }
    (void)policy.segmentsOf(posture);
  }
  // Lint terminates on every policy that compiles, and places each finding.
  for (const warden::policy::LintFinding& f : warden::policy::lintPolicy(policy)) {
    check(!f.code.empty() && !f.message.empty() && f.line > 0);
  }
  return 0;
}
