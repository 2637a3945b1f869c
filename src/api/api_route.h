#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace warden::api {

// RouteKind names every endpoint of the API listener.
enum class RouteKind {
  kNotFound,
  kMethodNotAllowed,
  kHealth,              // GET  /healthz
  kEstCacerts,          // GET  /.well-known/est/cacerts
  kEstSimpleEnroll,     // POST /.well-known/est/simpleenroll
  kEstSimpleReenroll,   // POST /.well-known/est/simplereenroll
  kEstCsrAttrs,         // GET  /.well-known/est/csrattrs
  kEstServerKeygen,     // POST /.well-known/est/serverkeygen (501: keys never leave the device)
  kEstFullCmc,          // POST /.well-known/est/fullcmc (501)
  kDeviceAdd,           // POST /v1/devices
  kDeviceList,          // GET  /v1/devices
  kDeviceShow,          // GET  /v1/devices/{name}
  kDeviceToken,         // POST /v1/devices/{name}/token
  kDeviceRevoke,        // POST /v1/devices/{name}/revoke
  kDeviceQuarantine,    // POST /v1/devices/{name}/quarantine
  kDeviceRelease,       // POST /v1/devices/{name}/release
  kPolicyApply,         // PUT  /v1/policy
  kPolicyShow,          // GET  /v1/policy
  kPolicyExplain,       // POST /v1/policy/explain
  kPolicyHistory,       // GET  /v1/policy/versions
  kPolicyVersion,       // GET  /v1/policy/versions/{version}
  kPolicyRollback,      // POST /v1/policy/rollback
  kEventsRead,          // GET  /v1/events
  kCertList,            // GET  /v1/certs[?expiring=SECONDS]
  kCertRevoke,          // POST /v1/certs/{serial}/revoke
  kCaList,              // GET  /v1/cas
  kCaRotate,            // POST /v1/cas  (activate a new issuing CA)
  kCaRetire,            // POST /v1/cas/{name}/retire
  kDeviceSet,           // PATCH /v1/devices/{name}
  kEnrollList,          // GET  /v1/enrollments (requests awaiting approval)
  kEnrollApprove,       // POST /v1/enrollments/{id}/approve
  kEnrollDeny,          // POST /v1/enrollments/{id}/deny
  kManufacturerList,    // GET  /v1/manufacturers
  kManufacturerAdd,     // POST /v1/manufacturers
  kManufacturerRemove,  // DELETE /v1/manufacturers/{name}
  kAttestChallenge,     // POST /attest/v1/challenge (device: a fresh nonce)
  kAttestEvidence,      // POST /attest/v1/evidence (device: quote or signed log)
  kAttestAk,            // POST /attest/v1/ak (device: register an attestation key)
  kAttestAkActivate,    // POST /attest/v1/ak/activate (device: prove the AK shares the EK's TPM)
  kTpmCaList,           // GET  /v1/tpm-cas
  kTpmCaAdd,            // POST /v1/tpm-cas
  kTpmCaRemove,         // DELETE /v1/tpm-cas/{fingerprint}
  kDeviceEkSet,         // PUT  /v1/devices/{name}/ek (operator-registered EK)
  kDeviceEkRemove,      // DELETE /v1/devices/{name}/ek (unbind the TPM: EK and AK)
  kFirmwareList,        // GET  /v1/firmware
  kFirmwareApprove,     // POST /v1/firmware
  kFirmwareRevoke,      // POST /v1/firmware/revoke (dry run unless "apply": true)
  kDeviceHistory,       // GET  /v1/devices/{name}/history[?limit=N]
};

// Route is a matched request target.
struct Route {
  RouteKind kind = RouteKind::kNotFound;
  std::string device;  // {name} / {serial} segment, unvalidated (check with isValidName)
  std::string id;      // {id} of /v1/enrollments/{id}/..., {name} of /v1/manufacturers/{name},
                       // {fingerprint} of /v1/tpm-cas/{fingerprint}; unvalidated
  std::string version;  // {version} segment of /v1/policy/versions/{version}, unvalidated
  std::string query;   // text after '?', undecoded
  std::string allow;   // for kMethodNotAllowed: the Allow header value
};

// matchRoute maps |method| ("GET", "POST", "PUT", ...) and the request
// |target| (origin-form path with optional query) to a Route. An unknown path
// is kNotFound; a known path with another method is kMethodNotAllowed.
Route matchRoute(std::string_view method, std::string_view target);

// isAttestRoute reports whether |kind| is a device's own attestation
// endpoint (/attest/v1/...): authenticated by the device certificate, never
// by the policy (a device may always attest, also in quarantine).
bool isAttestRoute(RouteKind kind);

// isAdminRoute reports whether |kind| needs an operator's client certificate.
bool isAdminRoute(RouteKind kind);

// adminAction returns the policy action that authorizes |kind|
// ("admin:device.add", ...), or "" for routes that are not admin routes.
std::string_view adminAction(RouteKind kind);

// EventsQuery is the parsed query of GET /v1/events.
struct EventsQuery {
  std::optional<int64_t> since;
  std::optional<int64_t> limit;
  int64_t wait_seconds = 0;
};

// parseEventsQuery parses "since=ID&limit=N&wait=S" (each optional, decimal,
// non-negative; limit 1..10000, wait <= |max_wait_seconds|). Returns
// kInvalidArgument naming the offending parameter otherwise.
core::Result<EventsQuery> parseEventsQuery(std::string_view query, int64_t max_wait_seconds);

// BasicCredentials are the user and password of an HTTP Basic Authorization.
struct BasicCredentials {
  std::string user;
  std::string password;
};

// parseBasicAuth parses an Authorization header value "Basic <base64>"
// (RFC 7617; scheme case-insensitive). Returns kUnauthenticated if it is
// absent, another scheme, not base64, lacks ':' or exceeds 1 KiB.
core::Result<BasicCredentials> parseBasicAuth(std::string_view header_value);

// mediaType returns the lowercased media type of a Content-Type value
// without parameters or surrounding whitespace ("application/pkcs10").
std::string mediaType(std::string_view content_type);

// sanitizeFilename returns |name| reduced to safe characters for
// policy error messages ("FILE:LINE:COL: ..."): characters outside
// [A-Za-z0-9._/-] become '_', at most 255 characters; "policy" if empty.
std::string sanitizeFilename(std::string_view name);

}  // namespace warden::api
