#pragma once

// event.h: one security event before it is stored (no id, no time yet).
// Types and reason codes are catalogued in docs/events.md: that file is the
// single list; the constants below mirror it.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace warden::monitor {

struct Event {
  std::string type;       // one of the event types below
  std::string principal;  // SPIFFE ID or name the event is about ("" if none)
  std::string actor;      // who caused it (operator SPIFFE ID, device, "system")
  std::string action;     // e.g. "mqtt:publish", "admin:device.revoke"
  std::string resource;   // topic, filter, client id, device name
  std::string decision;   // "permit", "deny" or ""
  std::string rule;       // policy rule id, "default-deny" or ""
  std::string reason;     // a reason code from docs/events.md
  nlohmann::json detail = nlohmann::json::object();  // free-form extra fields
};

namespace event_type {
inline constexpr std::string_view kConnect = "connect";
inline constexpr std::string_view kDisconnect = "disconnect";
inline constexpr std::string_view kSessionTakeover = "session_takeover";
inline constexpr std::string_view kTlsReject = "tls_reject";
inline constexpr std::string_view kDeny = "deny";
inline constexpr std::string_view kDenyBurst = "deny_burst";
inline constexpr std::string_view kEnroll = "enroll";
inline constexpr std::string_view kRenew = "renew";
inline constexpr std::string_view kTokenFailure = "token_failure";
inline constexpr std::string_view kDeviceAdd = "device_add";
inline constexpr std::string_view kTokenIssue = "token_issue";
inline constexpr std::string_view kToken = kTokenIssue;  // older name of kTokenIssue, kept for callers
inline constexpr std::string_view kRevoke = "revoke";
inline constexpr std::string_view kQuarantine = "quarantine";
inline constexpr std::string_view kRelease = "release";
inline constexpr std::string_view kPolicyApply = "policy_apply";
inline constexpr std::string_view kAdminDeny = "admin_deny";
inline constexpr std::string_view kEventsDropped = "events_dropped";
inline constexpr std::string_view kCaRotate = "ca_rotate";
inline constexpr std::string_view kCaRetire = "ca_retire";
inline constexpr std::string_view kDeviceSet = "device_set";
inline constexpr std::string_view kManufacturerAdd = "manufacturer_add";
inline constexpr std::string_view kManufacturerRemove = "manufacturer_remove";
inline constexpr std::string_view kEnrollApprove = "enroll_approve";
inline constexpr std::string_view kEnrollDeny = "enroll_deny";
// Attestation (issue 6).
inline constexpr std::string_view kAttestationRefused = "attestation_refused";
inline constexpr std::string_view kAkRegister = "ak_register";
inline constexpr std::string_view kTpmCaAdd = "tpm_ca_add";
inline constexpr std::string_view kTpmCaRemove = "tpm_ca_remove";
// Continuous verification (issue 6).
inline constexpr std::string_view kPostureHealthy = "posture_healthy";
inline constexpr std::string_view kPostureSuspect = "posture_suspect";
inline constexpr std::string_view kAttestationFailed = "attestation_failed";
// The device key was proven to be in the device's TPM (TPM2_Certify).
inline constexpr std::string_view kKeyVerified = "key_verified";
inline constexpr std::string_view kFirmwareApprove = "firmware_approve";
inline constexpr std::string_view kFirmwareRevoke = "firmware_revoke";
}  // namespace event_type

namespace reason {
// Authorization (policy) outcomes.
inline constexpr std::string_view kPermitted = "permitted";
inline constexpr std::string_view kEnrolled = "enrolled";
inline constexpr std::string_view kRenewed = "renewed";
inline constexpr std::string_view kForbidden = "forbidden";
inline constexpr std::string_view kNoPermit = "no_permit";
inline constexpr std::string_view kNoFlow = "no_flow";
inline constexpr std::string_view kQuarantined = "quarantined";
// MQTT request checks.
inline constexpr std::string_view kInvalidFilter = "invalid_filter";
inline constexpr std::string_view kInvalidTopic = "invalid_topic";
inline constexpr std::string_view kUnknownAction = "unknown_action";
inline constexpr std::string_view kWillDenied = "will_denied";
inline constexpr std::string_view kClientIdMismatch = "client_id_mismatch";
// Identity / certificate checks.
inline constexpr std::string_view kUnknownDevice = "unknown_device";
inline constexpr std::string_view kDeviceRevoked = "device_revoked";
inline constexpr std::string_view kDevicePending = "device_pending";
inline constexpr std::string_view kCertRevoked = "cert_revoked";
inline constexpr std::string_view kUnknownSerial = "unknown_serial";
inline constexpr std::string_view kCertExpired = "cert_expired";
inline constexpr std::string_view kUntrustedIssuer = "untrusted_issuer";
inline constexpr std::string_view kBadIdentity = "bad_identity";
// Enrollment.
inline constexpr std::string_view kTokenUsed = "token_used";
inline constexpr std::string_view kTokenExpired = "token_expired";
inline constexpr std::string_view kTokenMismatch = "token_mismatch";
inline constexpr std::string_view kNoToken = "no_token";
inline constexpr std::string_view kRateLimited = "rate_limited";
inline constexpr std::string_view kKeyReuse = "key_reuse";
inline constexpr std::string_view kSerialCollision = "serial_collision";
inline constexpr std::string_view kBadCsr = "bad_csr";
inline constexpr std::string_view kConcurrentRequest = "concurrent_request";
inline constexpr std::string_view kApprovalPending = "approval_pending";
inline constexpr std::string_view kApprovalDenied = "approval_denied";
inline constexpr std::string_view kKeyMismatch = "key_mismatch";
// Factory identities (IDevID).
inline constexpr std::string_view kUnknownManufacturer = "unknown_manufacturer";
inline constexpr std::string_view kSerialNotAllowed = "serial_not_allowed";
inline constexpr std::string_view kInvalidName = "invalid_name";
inline constexpr std::string_view kNameTaken = "name_taken";
inline constexpr std::string_view kDuplicateIdentity = "duplicate_identity";
inline constexpr std::string_view kFactoryCertificate = "factory_certificate";
// Protocol.
inline constexpr std::string_view kMalformedPacket = "malformed_packet";
inline constexpr std::string_view kProtocolError = "protocol_error";
inline constexpr std::string_view kPacketTooLarge = "packet_too_large";
inline constexpr std::string_view kTopicAliasInvalid = "topic_alias_invalid";
inline constexpr std::string_view kTopicInvalid = "topic_invalid";
inline constexpr std::string_view kQuotaExceeded = "quota_exceeded";
inline constexpr std::string_view kUpstreamUnavailable = "upstream_unavailable";
// Why a session ended (disconnect events).
inline constexpr std::string_view kClientDisconnect = "client_disconnect";
inline constexpr std::string_view kSessionTakeover = "session_takeover";
inline constexpr std::string_view kRevoked = "revoked";
inline constexpr std::string_view kPolicyChanged = "policy_changed";
inline constexpr std::string_view kShutdown = "shutdown";
inline constexpr std::string_view kKeepaliveTimeout = "keepalive_timeout";
inline constexpr std::string_view kConnectTimeout = "connect_timeout";
inline constexpr std::string_view kBufferOverflow = "buffer_overflow";
inline constexpr std::string_view kConnectionLost = "connection_lost";
// Admin API.
inline constexpr std::string_view kWouldLockOut = "would_lock_out";
inline constexpr std::string_view kUnauthenticated = "unauthenticated";
// Posture and quarantine reasons (continuous verification).
inline constexpr std::string_view kAttestationFailed = "attestation_failed";
inline constexpr std::string_view kStale = "stale";
inline constexpr std::string_view kLowTrust = "low_trust";
inline constexpr std::string_view kApprovalRevoked = "approval_revoked";
inline constexpr std::string_view kManual = "manual";
inline constexpr std::string_view kReadmitted = "readmitted";
inline constexpr std::string_view kHealthy = "healthy";
inline constexpr std::string_view kOverdue = "overdue";
inline constexpr std::string_view kTrustWarning = "trust_warning";
// Event log itself.
inline constexpr std::string_view kQueueFull = "queue_full";
// Attestation refusals (attestation_refused) and AK registration (ak_register).
inline constexpr std::string_view kNonceUnknown = "nonce_unknown";
inline constexpr std::string_view kNonceExpired = "nonce_expired";
inline constexpr std::string_view kNonceReused = "nonce_reused";
inline constexpr std::string_view kMalformedEvidence = "malformed_evidence";
inline constexpr std::string_view kAkNotRegistered = "ak_not_registered";
inline constexpr std::string_view kAkRegistered = "ak_registered";
inline constexpr std::string_view kAkInvalid = "ak_invalid";
inline constexpr std::string_view kEkUntrusted = "ek_untrusted";
inline constexpr std::string_view kEkInUse = "ek_in_use";
inline constexpr std::string_view kActivationFailed = "activation_failed";
// attestation_failed reasons (docs/attestation.md, "Outcomes").
inline constexpr std::string_view kForeignTpm = "foreign_tpm";
inline constexpr std::string_view kBadSignature = "bad_signature";
inline constexpr std::string_view kForeignIdentity = "foreign_identity";
inline constexpr std::string_view kNonceMismatch = "nonce_mismatch";
inline constexpr std::string_view kPcrMismatch = "pcr_mismatch";
inline constexpr std::string_view kBadQuote = "bad_quote";
inline constexpr std::string_view kResetCountRegressed = "reset_count_regressed";
inline constexpr std::string_view kAssuranceDowngrade = "assurance_downgrade";
inline constexpr std::string_view kUnapprovedFirmware = "unapproved_firmware";
inline constexpr std::string_view kAssuranceInsufficient = "assurance_insufficient";
// The device key in the TPM (key_certify; the codes are trust/certify.h's).
inline constexpr std::string_view kKeyInTpm = "key_in_tpm";
}  // namespace reason

}  // namespace warden::monitor
