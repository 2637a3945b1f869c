// est_handlers.cc: EST enrollment (RFC 7030) on the API listener.

// g++ 12 reports a false -Wmismatched-new-delete on Asio's awaitable frame
// allocator (aligned_new / operator delete pair) in some coroutines.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <openssl/x509.h>

#include "api/api_server_impl.h"
#include "core/names.h"
#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "gateway/decision_snapshot.h"
#include "gateway/peer_identity.h"
#include "identity/registry.h"
#include "monitor/event.h"
#include "monitor/event_log.h"
#include "pki/certificate_authority.h"
#include "pki/est_body.h"
#include "store/store.h"

namespace warden::api {
namespace {

constexpr std::string_view kPkcs7Mime = "application/pkcs7-mime";
constexpr std::string_view kPkcs7CertsOnly = "application/pkcs7-mime; smime-type=certs-only";
constexpr size_t kMaxTokenBytes = 256;

// EnrollOutcome is what the worker reports back for simpleenroll and
// simplereenroll.
struct EnrollOutcome {
  enum class Kind { kIssued, kUnauthenticated, kBadRequest, kInternal } kind = Kind::kInternal;
  std::string reason;   // event reason code
  std::string message;  // one line for the client (kBadRequest) or the log (kInternal)
  std::string body;     // base64 PKCS#7 certs-only of the issued certificate
  std::string serial;
  int64_t not_after = 0;
};

ServerResponse estText(http::status status, std::string body) {
  if (!body.empty() && body.back() != '\n') body.push_back('\n');
  return textResponse(status, "text/plain; charset=utf-8", std::move(body));
}

ServerResponse issuedResponse(std::string body) {
  ServerResponse res = textResponse(http::status::ok, kPkcs7CertsOnly, std::move(body));
  res.set("Content-Transfer-Encoding", "base64");
  return res;
}

// kKeyStoreHeader is the agent's claim of where its key lives (see
// api/est_client.h); recordKeyStoreClaim stores it after an issue. A missing
// or unknown value changes nothing: it is a claim, never a reason to refuse.
constexpr const char* kKeyStoreHeader = "Warden-Key-Store";

void recordKeyStoreClaim(store::Store& store, const std::string& device, const std::string& claim) {
  if (claim != "file" && claim != "pkcs11" && claim != "tpm2") return;
  if (core::Status s = store.setDeviceKeyStoreClaim(device, claim); !s.isOk()) {
    spdlog::warn("api: cannot record the key store of '{}': {}", device, s.message());
  }
}

// outcomeFromIssue maps the Registry result of enroll/renew.
EnrollOutcome outcomeFromIssue(core::Result<identity::IssuedCert> issued) {
  EnrollOutcome out;
  if (!issued.isOk()) {
    const core::Status& s = issued.status();
    if (s.code() == core::ErrorCode::kUnauthenticated) {
      out.kind = EnrollOutcome::Kind::kUnauthenticated;
      out.reason = s.message();
    } else if (s.code() == core::ErrorCode::kAlreadyExists && s.message() == store::kReasonKeyReuse) {
      out.kind = EnrollOutcome::Kind::kBadRequest;
      out.reason = std::string(monitor::reason::kKeyReuse);
      out.message = "the CSR's public key is already certified to another device: generate a new key";
    } else if (s.code() == core::ErrorCode::kInvalidArgument) {
      out.kind = EnrollOutcome::Kind::kBadRequest;
      out.reason = std::string(monitor::reason::kBadCsr);
      out.message = s.message();
    } else {
      out.kind = EnrollOutcome::Kind::kInternal;
      out.message = s.toString();
    }
    return out;
  }
  X509* cert = issued->cert.get();
  out.kind = EnrollOutcome::Kind::kIssued;
  out.body = pki::pkcs7CertsOnly({cert});
  out.serial = issued->record.serial_hex;
  out.not_after = issued->record.not_after;
  return out;
}

// parseCsr parses and checks an EST request body; on failure |out| is the
// 400 outcome.
crypto::X509ReqPtr parseCsr(const std::string& body, EnrollOutcome& out) {
  auto csr = pki::parseEstCsrBody(body);
  if (!csr.isOk()) {
    out.kind = EnrollOutcome::Kind::kBadRequest;
    out.reason = std::string(monitor::reason::kBadCsr);
    out.message = csr.status().message();
    return nullptr;
  }
  core::Status checked = pki::checkCsr(csr->get());
  if (!checked.isOk()) {
    out.kind = EnrollOutcome::Kind::kBadRequest;
    out.reason = std::string(monitor::reason::kBadCsr);
    out.message = checked.message();
    return nullptr;
  }
  return std::move(csr).value();
}

}  // namespace

ServerResponse ApiServer::Impl::estCacerts() const {
  // RFC 7030 §4.1.3: certs-only PKCS#7, base64 encoded.
  ServerResponse res = textResponse(http::status::ok, kPkcs7Mime, cacertsBody());
  res.set("Content-Transfer-Encoding", "base64");
  return res;
}

ServerResponse ApiServer::Impl::estUnauthorized() const {
  // One response for every token failure: the reason only goes to the event log.
  ServerResponse res = estText(http::status::unauthorized, "authentication failed");
  res.set(http::field::www_authenticate, "Basic realm=\"warden\"");
  return res;
}

std::optional<ServerResponse> ApiServer::Impl::estRateLimited(const PeerInfo& peer) {
  int64_t retry = enroll_failures_.retryAfter(peer.source_key, deps_.clock.steadyNow());
  if (retry == 0) return std::nullopt;
  ServerResponse res = estText(http::status::too_many_requests,
                             fmt::format("too many failed enrollment attempts from this address; retry in {} s", retry));
  res.set(http::field::retry_after, std::to_string(retry));
  return res;
}

asio::awaitable<ServerResponse> ApiServer::Impl::estSimpleEnroll(const ServerRequest& req, const PeerInfo& peer) {
  if (auto limited = estRateLimited(peer)) {
    recordEvent(monitor::event_type::kTokenFailure, "", "", "est:simpleenroll", "", "deny", "",
                std::string(monitor::reason::kRateLimited), {{"remote", peer.remote}});
    co_return *limited;
  }
  // RFC 7030 §3.2.4 / RFC 8951: a PKCS#10 body, base64; other types 415.
  if (mediaType(req[http::field::content_type]) != "application/pkcs10") {
    co_return estText(http::status::unsupported_media_type,
                      "Content-Type must be application/pkcs10 (a base64 DER PKCS#10 CSR)");
  }
  auto authorization = req[http::field::authorization];
  if (authorization.empty()) {
    // The challenge step of HTTP authentication: not a failure yet.
    co_return estUnauthorized();
  }
  auto creds = parseBasicAuth(std::string_view(authorization.data(), authorization.size()));
  auto tokenFailure = [&](const std::string& name, std::string reason) {
    enroll_failures_.recordFailure(peer.source_key, deps_.clock.steadyNow());
    std::string principal = core::isValidName(name) ? deviceSpiffeId(name) : "";
    recordEvent(monitor::event_type::kTokenFailure, principal, "", "est:simpleenroll",
                core::isValidName(name) ? name : "", "deny", "", std::move(reason), {{"remote", peer.remote}});
    return estUnauthorized();
  };
  if (!creds.isOk()) co_return tokenFailure("", std::string(monitor::reason::kTokenMismatch));
  std::string name = creds->user;
  std::string token = creds->password;
  if (!core::isValidName(name)) co_return tokenFailure("", std::string(monitor::reason::kUnknownDevice));
  if (token.empty() || token.size() > kMaxTokenBytes) {
    co_return tokenFailure(name, std::string(monitor::reason::kTokenMismatch));
  }

  identity::LeafIssuer issuer = deviceLeafIssuer();
  std::string key_store_claim(req[kKeyStoreHeader]);
  auto work1 = [this, name, token, body = req.body(), issuer, key_store_claim]() -> EnrollOutcome {
    EnrollOutcome out;
    // Authenticate before looking at the CSR, so an unauthenticated client
    // only ever sees the one 401.
    core::Status token_ok = deps_.store.checkToken(name, identity::hashToken(token));
    if (!token_ok.isOk()) {
      if (token_ok.code() == core::ErrorCode::kUnauthenticated) {
        out.kind = EnrollOutcome::Kind::kUnauthenticated;
        out.reason = token_ok.message();
      } else {
        out.kind = EnrollOutcome::Kind::kInternal;
        out.message = token_ok.toString();
      }
      return out;
    }
    crypto::X509ReqPtr csr = parseCsr(body, out);
    if (!csr) return out;
    // Only the CSR's public key is used; subject and extensions are ignored.
    EVP_PKEY* key = X509_REQ_get0_pubkey(csr.get());
    EnrollOutcome issued = outcomeFromIssue(deps_.registry.enroll(name, token, key, issuer));
    if (issued.kind == EnrollOutcome::Kind::kIssued) recordKeyStoreClaim(deps_.store, name, key_store_claim);
    return issued;
  };
  EnrollOutcome outcome = co_await onWorker(work1);

  switch (outcome.kind) {
    case EnrollOutcome::Kind::kUnauthenticated:
      co_return tokenFailure(name, outcome.reason);
    case EnrollOutcome::Kind::kBadRequest:
      enroll_failures_.recordFailure(peer.source_key, deps_.clock.steadyNow());
      recordEvent(monitor::event_type::kEnroll, deviceSpiffeId(name), deviceSpiffeId(name), "est:simpleenroll",
                  name, "deny", "", outcome.reason, {{"remote", peer.remote}, {"message", outcome.message}});
      co_return estText(http::status::bad_request, outcome.message);
    case EnrollOutcome::Kind::kInternal:
      spdlog::error("api: enrollment of '{}' failed: {}", name, outcome.message);
      co_return estText(http::status::internal_server_error, "enrollment failed; see the server log");
    case EnrollOutcome::Kind::kIssued:
      break;
  }
  recordEvent(monitor::event_type::kEnroll, deviceSpiffeId(name), deviceSpiffeId(name), "est:simpleenroll", name,
              "permit", "", std::string(monitor::reason::kEnrolled),
              {{"serial", outcome.serial},
               {"not_after", core::formatRfc3339(core::fromUnixSeconds(outcome.not_after))},
               {"remote", peer.remote}});
  // The gateway must know the new serial before the device can use it.
  co_await publishChange(identity::ChangeScope::device(name));
  co_return issuedResponse(std::move(outcome.body));
}

asio::awaitable<ServerResponse> ApiServer::Impl::estSimpleReenroll(const ServerRequest& req, const PeerInfo& peer) {
  if (auto limited = estRateLimited(peer)) {
    recordEvent(monitor::event_type::kRenew, "", "", "est:simplereenroll", "", "deny", "",
                std::string(monitor::reason::kRateLimited), {{"remote", peer.remote}});
    co_return *limited;
  }
  auto renewFailure = [&](const std::string& name, const std::string& reason, std::string detail) {
    enroll_failures_.recordFailure(peer.source_key, deps_.clock.steadyNow());
    std::string principal = name.empty() ? "" : deviceSpiffeId(name);
    recordEvent(monitor::event_type::kRenew, principal, principal, "est:simplereenroll", name, "deny", "", reason,
                {{"remote", peer.remote}, {"message", std::move(detail)}});
  };
  // RFC 7030 §4.2.2: the client authenticates with its current certificate.
  auto snapshot = deps_.snapshot.get();
  gateway::PeerIdentity id = gateway::checkDevicePeer(peer.cert.get(), peer.verify_result,
                                                      snapshot ? snapshot->fleet.get() : nullptr,
                                                      config_.trust_domain, deps_.clock.now());
  if (!id.ok) {
    renewFailure(id.device, id.reason, id.detail);
    ServerResponse res = estText(http::status::unauthorized,
                               "simplereenroll requires the device's current, valid certificate as the TLS client "
                               "certificate");
    co_return res;
  }
  if (mediaType(req[http::field::content_type]) != "application/pkcs10") {
    co_return estText(http::status::unsupported_media_type,
                      "Content-Type must be application/pkcs10 (a base64 DER PKCS#10 CSR)");
  }
  const std::string name = id.device;
  const std::string serial = id.serial_hex;
  identity::LeafIssuer issuer = deviceLeafIssuer();
  std::string key_store_claim(req[kKeyStoreHeader]);
  auto work2 = [this, name, serial, body = req.body(), issuer, key_store_claim]() -> EnrollOutcome {
    EnrollOutcome out;
    crypto::X509ReqPtr csr = parseCsr(body, out);
    if (!csr) return out;
    EVP_PKEY* key = X509_REQ_get0_pubkey(csr.get());
    EnrollOutcome issued = outcomeFromIssue(deps_.registry.renew(name, serial, key, issuer));
    if (issued.kind == EnrollOutcome::Kind::kIssued) recordKeyStoreClaim(deps_.store, name, key_store_claim);
    return issued;
  };
  EnrollOutcome outcome = co_await onWorker(work2);
  switch (outcome.kind) {
    case EnrollOutcome::Kind::kUnauthenticated:
      renewFailure(name, outcome.reason, "");
      co_return estText(http::status::unauthorized,
                        "simplereenroll requires the device's current, valid certificate as the TLS client "
                        "certificate");
    case EnrollOutcome::Kind::kBadRequest:
      renewFailure(name, outcome.reason, outcome.message);
      co_return estText(http::status::bad_request, outcome.message);
    case EnrollOutcome::Kind::kInternal:
      spdlog::error("api: renewal of '{}' failed: {}", name, outcome.message);
      co_return estText(http::status::internal_server_error, "renewal failed; see the server log");
    case EnrollOutcome::Kind::kIssued:
      break;
  }
  recordEvent(monitor::event_type::kRenew, deviceSpiffeId(name), deviceSpiffeId(name), "est:simplereenroll", name,
              "permit", "", std::string(monitor::reason::kRenewed),
              {{"serial", outcome.serial},
               {"previous_serial", serial},
               {"not_after", core::formatRfc3339(core::fromUnixSeconds(outcome.not_after))},
               {"remote", peer.remote}});
  co_await publishChange(identity::ChangeScope::device(name));
  co_return issuedResponse(std::move(outcome.body));
}

}  // namespace warden::api
