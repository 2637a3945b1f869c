#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_client.h"
#include "core/clock.h"
#include "core/status.h"
#include "crypto/openssl_ptr.h"

// The client half of EST (RFC 7030) as `warden-agent` uses it: CSR building,
// the cacerts / simpleenroll / simplereenroll exchanges and the checks on
// what comes back. No Asio.
namespace warden::api {

// CaChain is the pinned root and the CA certificates that chain to it.
struct CaChain {
  crypto::X509Ptr root;  // the root to pin from now on (after a rollover: the new one)
  // other_roots are roots still trusted during a root rollover: the
  // previously pinned root after a move, or an older root cross-certified by
  // the pinned one (OldWithNew).
  std::vector<crypto::X509Ptr> other_roots;
  std::vector<crypto::X509Ptr> intermediates;  // issuing CA(s) and cross certificates, in the server's order
  // previous_pin is the fingerprint the pin moves away from when the answer
  // carried a newer root with a valid NewWithOld ("" if the pin stays).
  std::string previous_pin;
  // refused_roots says why newer roots in the answer were not believed
  // (pki::RootSelection::refused); the pin stays.
  std::vector<std::string> refused_roots;
  // certs returns root first, then the other roots and the intermediates
  // (not owned); pem returns them as PEM (the content of ca.pem).
  std::vector<X509*> certs() const;
  std::string pem() const;
  // pin returns crypto::caFingerprint(root).
  std::string pin() const;
};

// buildCsr returns a PKCS#10 request for |key| with subject CN=|common_name|,
// signed with SHA-256 (RFC 2986).
core::Result<crypto::X509ReqPtr> buildCsr(EVP_PKEY* key, std::string_view common_name);
// csrBody returns the base64 of the DER CSR (RFC 7030 §4.2.1, RFC 8951).
std::string csrBody(X509_REQ* csr);

// selectPinnedChain picks from |certs| (a cacerts answer) the self-signed root
// whose crypto::caFingerprint is |pin| and keeps the other CA certificates
// that verify up to it. kUnauthenticated if no root has the pin; the pin is
// the only trust decision, so nothing else in |certs| is believed. A newer
// root is accepted only through a NewWithOld that verifies under the pinned
// root (pki::selectRoots, RFC 4210 §4.4): then it becomes |root|, the pinned
// one goes to |other_roots| and |previous_pin| is set; a newer root without
// one is listed in |refused_roots| and changes nothing. |at| is the time
// at which cross certificates must be valid.
core::Result<CaChain> selectPinnedChain(std::vector<crypto::X509Ptr> certs, std::string_view pin,
                                        core::SystemTime at = std::chrono::system_clock::now());

// fetchCaCerts sends GET /.well-known/est/cacerts and returns the
// certificates of the certs-only answer.
core::Result<std::vector<crypto::X509Ptr>> fetchCaCerts(ApiClient& client);

// requestCertificate POSTs |csr_base64| to |path| (simpleenroll or
// simplereenroll) with an optional Basic |authorization| header value and
// returns the issued certificate (the first of the certs-only answer).
// |extra_headers| go with the request (e.g. kKeyStoreHeader).
core::Result<crypto::X509Ptr> requestCertificate(ApiClient& client, std::string_view path, const std::string& csr_base64,
                                                 std::optional<std::string> authorization,
                                                 std::vector<HttpHeader> extra_headers = {});

// kKeyStoreHeader carries the device's claim of where its key lives
// ("file", "pkcs11" or "tpm2") with simpleenroll and simplereenroll. It is a
// claim, recorded as such; a TPM2_Certify proof is a later step.
inline constexpr const char* kKeyStoreHeader = "Warden-Key-Store";

// EnrollAnswer is what simpleenroll answered: the certificate, or (RFC 7030
// §4.2.3) 202 Accepted with Retry-After while the request awaits approval.
struct EnrollAnswer {
  crypto::X509Ptr cert;                     // set on 200
  std::optional<std::chrono::seconds> retry_after;  // set on 202 (default 60 s if absent or malformed)
  std::string message;                      // the server's one-line text on 202
};

// sendEnrollRequest POSTs like requestCertificate but also accepts 202 +
// Retry-After (manual approval) instead of failing on it.
core::Result<EnrollAnswer> sendEnrollRequest(ApiClient& client, std::string_view path, const std::string& csr_base64,
                                             std::optional<std::string> authorization,
                                             std::vector<HttpHeader> extra_headers = {});

// fetchCsrAttrs sends GET /.well-known/est/csrattrs and returns whether the
// server asks for an EC P-256 key signed with ECDSA-SHA256 (what buildCsr
// makes). A server without csrattrs (404/501) or with an empty answer asks
// for nothing: true. kFailedPrecondition if it asks for something else.
core::Status checkCsrAttrs(ApiClient& client);

// basicAuthorization returns "Basic base64(user:password)" (RFC 7617).
std::string basicAuthorization(std::string_view user, std::string_view password);

// checkIssuedCertificate verifies that |leaf| certifies |key|, names
// |device| as its CN (any valid device name if |device| is empty, as after a
// factory enrollment where the server names the device), and chains to |chain|'s root through its intermediates
// at the current time. kDataLoss with the reason otherwise.
core::Status checkIssuedCertificate(X509* leaf, EVP_PKEY* key, std::string_view device, const CaChain& chain);

// issuerOf returns the intermediate of |chain| that issued |leaf|, or null.
X509* issuerOf(X509* leaf, const CaChain& chain);

// renewalTime returns the moment at 2/3 of the life of |cert|, counted from
// |obtained_at| when given (notBefore is back-dated by the CA, so a short-lived
// certificate would otherwise be due for renewal as soon as it arrives),
// moved earlier by |jitter| (in [0, 1)) times 10 % of the life, so a fleet
// enrolled at once does not renew at once.
core::SystemTime renewalTime(X509* cert, std::optional<core::SystemTime> obtained_at = std::nullopt,
                             double jitter = 0.0);

// backoffDelay returns the wait before retry number |attempt| (0-based):
// 5 s doubling up to 5 min, times a jitter factor in [0.8, 1.2) taken from
// |unit_random| in [0, 1).
std::chrono::milliseconds backoffDelay(int attempt, double unit_random);

}  // namespace warden::api
