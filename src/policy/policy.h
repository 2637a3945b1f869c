#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <optional>
#include <vector>

#include "core/names.h"
#include "core/spiffe_id.h"
#include "core/status.h"

namespace warden::policy {

// AttestationAssurance orders how a device's last attestation was made:
// none < software (measurement list signed by the device key) < tpm (quote).
enum class AttestationAssurance : uint8_t { kNone, kSoftware, kTpm };

// Principal is who asks: the authenticated identity plus the attributes the
// policy selects on. |quarantined| restricts permits to the quarantine segment.
// The optional posture attributes are absent by default; a condition on an
// absent attribute fails closed (see docs/policy.md, "Absent values").
struct Principal {
  std::string id;
  core::PrincipalKind kind = core::PrincipalKind::kDevice;
  std::string role;
  core::Labels labels;
  bool quarantined = false;
  std::optional<int> trust = std::nullopt;                   // 0-100
  std::optional<bool> firmware_approved = std::nullopt;      // measured image is an approved release
  std::optional<AttestationAssurance> attestation_assurance = std::nullopt;
  std::optional<std::chrono::seconds> attestation_age = std::nullopt;  // since the last good attestation
  std::optional<std::chrono::seconds> cert_age = std::nullopt;         // since the leaf's notBefore
};

// IpAddress is an IPv4 or IPv6 address (v4 as 4 bytes, v6 as 16).
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};

  // parse reads a dotted IPv4 or an RFC 4291 IPv6 address (no zone id);
  // nullopt if malformed. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
  // returned as IPv4.
  static std::optional<IpAddress> parse(std::string_view text);
  bool operator==(const IpAddress&) const = default;
};

// Context is the request's environment. Every field is optional: a
// condition on an absent one fails closed.
struct Context {
  std::optional<std::chrono::system_clock::time_point> time = std::nullopt;
  std::optional<IpAddress> source_ip = std::nullopt;
  std::string protocol;  // "mqtt", "http", ...; empty = absent
  std::optional<bool> mfa = std::nullopt;
};

// MissingFlow names one flow a cross-segment request lacked.
struct MissingFlow {
  std::string from;  // the principal's first segment ("" if it is in none)
  std::string to;    // the service
  std::string action;
  bool operator==(const MissingFlow&) const = default;
};

// Decision is the outcome of Policy::authorize.
// reasons: "permitted", "forbidden", "no_permit" (default deny), "no_flow"
// (a cross-segment request no flow allows), "quarantined" (deny while
// quarantined & no quarantine permit), "invalid_filter" (malformed filter or
// $share filter), "invalid_topic", "unknown_action".
struct Decision {
  bool permit = false;
  std::string rule;  // rule id or "default-deny"
  std::string reason;
  std::string flow = {};                      // the flow that let a permit cross segments, if one did
  std::vector<MissingFlow> missing_flows = {};  // reason no_flow only
  // valid_until: the decision may change at this instant (next window
  // boundary or age threshold); nullopt ("none") when no time or age
  // condition was involved.
  std::optional<std::chrono::system_clock::time_point> valid_until = std::nullopt;
};

// RuleExplanation is one rule's line of an explanation.
struct RuleExplanation {
  std::string id;
  std::string effect;  // "permit" | "forbid"
  bool matched = false;
  std::string why_not;  // empty when matched
};

// Explanation is the full account of one decision (`warden policy explain`).
struct Explanation {
  Decision decision;
  std::vector<RuleExplanation> rules;  // every rule naming the action, file order
};

// kActions lists every concrete action a policy may name (for docs and CLI).
// "mqtt:*", "admin:*" and "*" (every non-admin action) are accepted too.
inline constexpr std::array<std::string_view, 34> kActions = {
    "mqtt:connect",           "mqtt:publish",         "mqtt:subscribe",
    "mqtt:receive",           "mqtt:retain",          "admin:device.add",
    "admin:device.list",      "admin:device.show",    "admin:device.token",
    "admin:device.revoke",    "admin:device.quarantine", "admin:device.release",
    "admin:policy.apply",     "admin:policy.show",    "admin:events.read",
    "admin:policy.explain",   "admin:policy.history", "admin:cert.list",
    "admin:cert.revoke",      "admin:ca.list",        "admin:ca.rotate",
    "admin:ca.retire",        "admin:device.set",     "admin:device.approve",
    "admin:manufacturer.add", "admin:manufacturer.list", "admin:manufacturer.remove",
    "admin:firmware.approve", "admin:firmware.revoke", "admin:firmware.list", "admin:device.history",
    "admin:tpm-ca.add",       "admin:tpm-ca.list",    "admin:tpm-ca.remove",
};

// AttestationRequirement is a segment's `attestation:` block, or the merge of
// the blocks of every segment a principal is in (the shortest interval and
// grace of the segments that require attestation, the strictest assurance).
struct AttestationRequirement {
  bool required = false;               // periodic attestation is required (deadlines apply)
  std::chrono::seconds interval{0};    // when required: next due = last good + interval
  std::chrono::seconds grace{0};       // when required: stale (quarantine) after due + grace
  std::optional<AttestationAssurance> min_assurance = std::nullopt;  // evidence weaker than this fails
  bool operator==(const AttestationRequirement&) const = default;
};

// Limits of an `attestation:` block (docs/policy.md).
inline constexpr std::chrono::seconds kMinAttestationInterval{1};
inline constexpr std::chrono::seconds kMaxAttestationInterval{30 * 24 * 3600};
inline constexpr std::chrono::seconds kMaxAttestationGrace{30 * 24 * 3600};

struct CompiledPolicy;  // private: src/policy/compiled_policy.h

// Policy is an immutable, compiled policy document. Share it as
// std::shared_ptr<const Policy>; authorize is thread-safe.
class Policy {
 public:
  // parse validates |yaml| (<= 1 MiB) and compiles it; errors read
  // "FILE:LINE:COL: message" with |filename| as FILE. Returns kInvalidArgument.
  static core::Result<std::shared_ptr<const Policy>> parse(std::string_view yaml,
                                                           std::string_view filename);

  // authorize is THE decision function. |action| e.g. "mqtt:publish";
  // |resource|: topic for publish/receive/retain, filter for subscribe
  // (subset/overlap semantics, $share handling), client id for connect,
  // device name or "*" for admin:*. Anything not permitted is denied.
  // This overload evaluates with context.time = now and no other context.
  Decision authorize(const Principal& principal, std::string_view action,
                     std::string_view resource) const;

  // authorize with an explicit request context (time, source address,
  // protocol, mfa). Takes no lock and does no I/O.
  Decision authorize(const Principal& principal, std::string_view action,
                     std::string_view resource, const Context& context) const;

  // explain decides like authorize and also says, for every rule naming
  // |action| in file order, whether it matched and why not. Built on demand
  // only (it allocates).
  Explanation explain(const Principal& principal, std::string_view action,
                      std::string_view resource, const Context& context) const;

  // segmentsOf returns the names of the segments |principal| is in, in file
  // order (just "quarantine" when it is quarantined).
  std::vector<std::string> segmentsOf(const Principal& principal) const;

  // attestationFor merges the `attestation:` blocks of every segment
  // |principal| is in, judged as if it were not quarantined (a quarantined
  // device keeps its deadlines). nullopt when none of them has a block.
  std::optional<AttestationRequirement> attestationFor(const Principal& principal) const;
  // hasAttestation reports whether any segment carries an `attestation:` block.
  bool hasAttestation() const;
  // readsAttestationAge reports whether a rule condition reads
  // principal.attestation.age (whose value changes with every attestation).
  bool readsAttestationAge() const;

  // compiled gives tests, lint and tools in src/policy the compiled form.
  const CompiledPolicy& compiled() const { return *compiled_; }

  // text returns the YAML source this policy was parsed from.
  const std::string& text() const;

  ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

 private:
  explicit Policy(std::unique_ptr<const CompiledPolicy> compiled);
  std::unique_ptr<const CompiledPolicy> compiled_;
};

// defaultPolicyYaml returns the commented default policy written by `warden
// init` as version 1: operators get every admin: action, each device only
// mqtt:connect with its own id.
std::string_view defaultPolicyYaml();

}  // namespace warden::policy
