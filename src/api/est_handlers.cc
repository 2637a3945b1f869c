// est_handlers.cc: EST enrollment (RFC 7030) on the API listener.

// g++ 12 reports a false -Wmismatched-new-delete on Asio's awaitable frame
// allocator (aligned_new / operator delete pair) in some coroutines.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <openssl/x509.h>

#include <algorithm>
#include <optional>
#include <unordered_set>

#include "api/api_server_impl.h"
#include "core/names.h"
#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "gateway/decision_snapshot.h"
#include "gateway/gateway.h"
#include "gateway/peer_identity.h"
#include "identity/factory_identity.h"
#include "identity/registry.h"
#include "monitor/event.h"
#include "monitor/event_log.h"
#include "pki/certificate_authority.h"
#include "pki/csr_attrs.h"
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
  enum class Kind { kIssued, kUnauthenticated, kBadRequest, kForbidden, kPending, kInternal } kind = Kind::kInternal;
  std::string reason;   // event reason code
  std::string message;  // one line for the client (kBadRequest) or the log (kInternal)
  std::string body;     // base64 PKCS#7 certs-only of the issued certificate
  std::string serial;
  int64_t not_after = 0;
  std::string request_id;  // the approval request (kPending, or closed by this issuance)
  bool created = false;    // kPending: the request is new
  bool rebootstrap = false;
  // kIssued from the token and renewal paths: the write that records the
  // certificate. Nothing may be answered before it has committed.
  std::optional<store::IssuanceWrite> write;
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
    } else if (s.code() == core::ErrorCode::kFailedPrecondition) {
      // The approved request does not match this key any more.
      out.kind = EnrollOutcome::Kind::kForbidden;
      out.reason = std::string(monitor::reason::kKeyMismatch);
      out.message = s.message();
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

// outcomeFromPrepared maps Registry::prepareEnroll / prepareRenew: kIssued
// carries the write still to commit.
EnrollOutcome outcomeFromPrepared(core::Result<identity::PreparedIssue> prepared) {
  if (!prepared.isOk()) return outcomeFromIssue(prepared.status());
  store::IssuanceWrite write = std::move(prepared->write);
  EnrollOutcome out = outcomeFromIssue(std::move(prepared->issued));
  if (out.kind == EnrollOutcome::Kind::kIssued) out.write = std::move(write);
  return out;
}

// isSerialCollision: a (practically impossible) 128-bit serial collision;
// the request is signed again with a new serial.
bool isSerialCollision(const core::Status& s) {
  return s.code() == core::ErrorCode::kAlreadyExists && s.message() == store::kReasonSerialCollision;
}
constexpr int kMaxSerialAttempts = 3;

// csrKey parses and checks an EST request body and returns its public key,
// the only part of a request the server uses (subject and extensions are
// ignored); on failure |out| is the 400 outcome.
crypto::EvpPkeyPtr csrKey(const std::string& body, EnrollOutcome& out) {
  auto key = pki::checkedCsrKey(body);
  if (!key.isOk()) {
    out.kind = EnrollOutcome::Kind::kBadRequest;
    out.reason = std::string(monitor::reason::kBadCsr);
    out.message = key.status().message();
    return nullptr;
  }
  return std::move(key).value();
}

}  // namespace

// signAndRecord: the certificate leaves the server only after the group
// commit holding its row; a serial collision signs again (at most
// kMaxSerialAttempts times), any other refusal of the commit becomes the
// outcome, which keeps its approval request id.
template <typename F>
asio::awaitable<std::invoke_result_t<F&>> ApiServer::Impl::signAndRecord(const F& sign) {
  EnrollOutcome outcome = co_await onWorker(sign);
  for (int attempt = 1; outcome.kind == EnrollOutcome::Kind::kIssued && outcome.write; ++attempt) {
    core::Status committed = co_await commitIssuance(*outcome.write);
    if (committed.isOk()) break;
    if (isSerialCollision(committed) && attempt < kMaxSerialAttempts) {
      outcome = co_await onWorker(sign);
      continue;
    }
    const std::string request_id = outcome.request_id;
    outcome = outcomeFromIssue(committed);
    outcome.request_id = request_id;
  }
  co_return outcome;
}

ServerResponse ApiServer::Impl::estCacerts() const {
  // RFC 7030 §4.1.3: certs-only PKCS#7, base64 encoded.
  ServerResponse res = textResponse(http::status::ok, kPkcs7Mime, cacertsBody());
  res.set("Content-Transfer-Encoding", "base64");
  return res;
}

ServerResponse ApiServer::Impl::estCsrAttrs() const {
  // RFC 7030 §4.5.2: application/csrattrs, base64 DER CsrAttrs.
  ServerResponse res = textResponse(http::status::ok, "application/csrattrs", pki::csrAttrsBody());
  res.set("Content-Transfer-Encoding", "base64");
  return res;
}

ServerResponse ApiServer::Impl::estNotImplemented(RouteKind kind) const {
  if (kind == RouteKind::kEstServerKeygen) {
    return estText(http::status::not_implemented,
                   "serverkeygen is not offered: generate the key on the device and use simpleenroll "
                   "(GET /.well-known/est/csrattrs says what the CSR must hold)");
  }
  return estText(http::status::not_implemented,
                 "fullcmc is not offered: use simpleenroll and simplereenroll (RFC 7030 §4.2)");
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

ServerResponse ApiServer::Impl::estFailure(const PeerInfo& peer, std::string_view type, std::string_view action,
                                           const std::string& name, const std::string& reason, http::status status,
                                           std::string message, nlohmann::json detail) {
  // Only failures count against the source; a source over its budget gets
  // 429 for every request that fails, while requests that succeed are served
  // (a whole factory may sit behind one address).
  const bool limited = enroll_failures_.retryAfter(peer.source_key, deps_.clock.steadyNow()) > 0;
  enroll_failures_.recordFailure(peer.source_key, deps_.clock.steadyNow());
  std::string principal = core::isValidName(name) ? deviceSpiffeId(name) : "";
  detail["remote"] = peer.remote;
  if (!message.empty() && type != monitor::event_type::kTokenFailure && !detail.contains("message")) {
    detail["message"] = message;
  }
  if (limited) {
    detail["cause"] = reason;
    recordEvent(type, principal, "", std::string(action), core::isValidName(name) ? name : "", "deny", "",
                std::string(monitor::reason::kRateLimited), std::move(detail));
    if (auto res = estRateLimited(peer)) return *res;
  }
  recordEvent(type, principal, type == monitor::event_type::kTokenFailure ? "" : principal, std::string(action),
              core::isValidName(name) ? name : "", "deny", "", reason, std::move(detail));
  // One 401 for every token failure: the reason only goes to the event log.
  if (type == monitor::event_type::kTokenFailure) return estUnauthorized();
  return estText(status, std::move(message));
}

std::optional<ServerResponse> ApiServer::Impl::estBusy(const PeerInfo& peer, std::string_view action,
                                                       const std::string& identity, const std::string& name) {
  if (enrolling_.count(identity) == 0) return std::nullopt;
  // Per identity only concurrent requests are limited: never a lock-out.
  recordEvent(monitor::event_type::kEnroll, core::isValidName(name) ? deviceSpiffeId(name) : "", "",
              std::string(action), core::isValidName(name) ? name : "", "deny", "",
              std::string(monitor::reason::kConcurrentRequest), {{"remote", peer.remote}});
  ServerResponse res = estText(http::status::too_many_requests,
                             "another enrollment request for this identity is in progress; retry in 1 s");
  res.set(http::field::retry_after, "1");
  return res;
}

ServerResponse ApiServer::Impl::estPending(const std::string& request_id) const {
  // RFC 7030 §4.2.3: 202 + Retry-After while the request awaits approval.
  const auto retry = std::max<int64_t>(1, config_.approval_retry_after.count());
  ServerResponse res = estText(
      http::status::accepted,
      fmt::format("enrollment request {} awaits an operator's approval (warden device approve {}); retry in {} s "
                  "with the same key",
                  request_id, request_id, retry));
  res.set(http::field::retry_after, std::to_string(retry));
  return res;
}

identity::LeafIssuer ApiServer::Impl::deviceLeafIssuer(int64_t manufacturer_ttl_s) const {
  return [this, manufacturer_ttl_s](EVP_PKEY* key, const std::string& device) -> core::Result<identity::IssuedLeaf> {
    // Runs on the worker: the lifetime is device > manufacturer > fleet.
    auto ttls = deps_.store.certTtls(device);
    if (!ttls.isOk()) return ttls.status();
    const int64_t manufacturer_s = ttls->manufacturer_s > 0 ? ttls->manufacturer_s : manufacturer_ttl_s;
    const int64_t lifetime = identity::resolveCertTtl(
        ttls->device_s, manufacturer_s,
        std::chrono::duration_cast<std::chrono::seconds>(config_.device_cert_lifetime).count());
    pki::LeafProfile profile;
    profile.common_name = device;
    profile.uri_sans = {deviceSpiffeId(device)};
    profile.client_auth = true;
    profile.server_auth = false;
    profile.lifetime = core::Seconds(lifetime);
    // The active issuing CA at the moment of signing: after `ca rotate`,
    // new certificates come from the new CA at once.
    std::shared_ptr<const pki::CaSet> cas = cas_->get();
    WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr cert, pki::issueLeaf(*cas->active(), key, profile, deps_.clock));
    return identity::IssuedLeaf{std::move(cert), cas->active()->name};
  };
}

namespace {

// ApprovalGate is where manual approval stands for one enrollment attempt.
struct ApprovalGate {
  enum class Kind { kProceed, kPending, kRefused } kind = Kind::kProceed;
  std::string request_id;  // kProceed: the approved request to close ("" without approval); kPending: the request
  bool created = false;    // kPending: this attempt created the request
  std::string reason, message;
};

// gateApproval decides manual approval for |device| and the CSR key |fp|
// (worker thread): the first attempt creates a pending request bound to the
// key; the same key proceeds once approved; another key is refused while a
// request is pending or approved, and opens a new request after a denial.
core::Result<ApprovalGate> gateApproval(store::Store& store, const core::Clock& clock, const std::string& device,
                                        const std::string& fp, const std::string& manufacturer,
                                        const std::string& serial_number, const std::string& remote) {
  ApprovalGate gate;
  WARDEN_ASSIGN_OR_RETURN(std::optional<store::EnrollRequestRecord> open, store.openEnrollRequest(device));
  // A denial binds the key it was made for; the same identity with a new key
  // (a reset device, a fixed mistake) asks the operator again. At most one
  // request per device is ever pending.
  const bool ask_again = open && open->state == store::EnrollRequestState::kDenied && open->pubkey_fp != fp &&
                         open->manufacturer == manufacturer && open->serial_number == serial_number;
  if (!open || ask_again) {
    store::EnrollRequestRecord r;
    r.id = "r" + crypto::hexEncode(crypto::randomBytes(8));
    r.device = device;
    r.manufacturer = manufacturer;
    r.serial_number = serial_number;
    r.pubkey_fp = fp;
    r.created_at = core::unixSeconds(clock.now());
    r.expires_at = r.created_at + identity::kEnrollRequestLifetimeSeconds;
    r.remote = remote;
    WARDEN_RETURN_IF_ERROR(store.insertEnrollRequest(r));
    gate.kind = ApprovalGate::Kind::kPending;
    gate.request_id = r.id;
    gate.created = true;
    return gate;
  }
  gate.request_id = open->id;
  if (open->manufacturer != manufacturer || open->serial_number != serial_number) {
    gate.kind = ApprovalGate::Kind::kRefused;
    gate.reason = std::string(monitor::reason::kNameTaken);
    gate.message = fmt::format("an enrollment request for device '{}' from another identity is open", device);
    return gate;
  }
  if (open->pubkey_fp != fp) {
    gate.kind = ApprovalGate::Kind::kRefused;
    gate.reason = std::string(monitor::reason::kKeyMismatch);
    gate.message = fmt::format(
        "enrollment request {} was made with another key; only the key of the first request can complete it", open->id);
    return gate;
  }
  switch (open->state) {
    case store::EnrollRequestState::kPending:
      gate.kind = ApprovalGate::Kind::kPending;
      return gate;
    case store::EnrollRequestState::kDenied:
      gate.kind = ApprovalGate::Kind::kRefused;
      gate.reason = std::string(monitor::reason::kApprovalDenied);
      gate.message = fmt::format("enrollment request {} was denied by an operator", open->id);
      return gate;
    default:
      gate.kind = ApprovalGate::Kind::kProceed;
      return gate;
  }
}

// InFlight marks an identity as enrolling for the lifetime of a request (io thread).
struct InFlight {
  std::unordered_set<std::string>& set;
  std::string key;
  InFlight(std::unordered_set<std::string>& s, std::string k) : set(s), key(std::move(k)) { set.insert(key); }
  ~InFlight() { set.erase(key); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

}  // namespace

asio::awaitable<ServerResponse> ApiServer::Impl::estSimpleEnroll(const ServerRequest& req, const PeerInfo& peer) {
  constexpr std::string_view kAction = "est:simpleenroll";
  // RFC 7030 §3.2.4 / RFC 8951: a PKCS#10 body, base64; other types 415.
  if (mediaType(req[http::field::content_type]) != "application/pkcs10") {
    co_return estText(http::status::unsupported_media_type,
                      "Content-Type must be application/pkcs10 (a base64 DER PKCS#10 CSR)");
  }
  auto authorization = req[http::field::authorization];
  if (authorization.empty()) {
    // A factory certificate (IDevID) authenticates on its own.
    if (peer.anchor.kind == pki::ClientAnchor::Kind::kManufacturer) co_return co_await estFactoryEnroll(req, peer);
    // The challenge step of HTTP authentication: not a failure yet.
    co_return estUnauthorized();
  }
  auto creds = parseBasicAuth(std::string_view(authorization.data(), authorization.size()));
  auto tokenFailure = [&](const std::string& name, std::string reason) {
    return estFailure(peer, monitor::event_type::kTokenFailure, kAction, name, reason, http::status::unauthorized,
                      "", nlohmann::json::object());
  };
  if (!creds.isOk()) co_return tokenFailure("", std::string(monitor::reason::kTokenMismatch));
  std::string name = creds->user;
  std::string token = creds->password;
  if (!core::isValidName(name)) co_return tokenFailure("", std::string(monitor::reason::kUnknownDevice));
  if (token.empty() || token.size() > kMaxTokenBytes) {
    co_return tokenFailure(name, std::string(monitor::reason::kTokenMismatch));
  }
  if (auto busy = estBusy(peer, kAction, "device:" + name, name)) co_return *busy;
  InFlight in_flight(enrolling_, "device:" + name);

  identity::LeafIssuer issuer = deviceLeafIssuer(0);
  const bool manual = config_.approval_manual;
  const std::string remote = peer.remote;
  std::string key_store_claim(req[kKeyStoreHeader]);
  auto work1 = [this, name, token, body = req.body(), issuer, manual, remote, key_store_claim]() -> EnrollOutcome {
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
    crypto::EvpPkeyPtr csr_key = csrKey(body, out);
    if (!csr_key) return out;
    EVP_PKEY* key = csr_key.get();
    std::string request_id;
    if (manual) {
      auto gate = gateApproval(deps_.store, deps_.clock, name, crypto::publicKeyFingerprint(key), "", "", remote);
      if (!gate.isOk()) {
        out.kind = EnrollOutcome::Kind::kInternal;
        out.message = gate.status().toString();
        return out;
      }
      if (gate->kind == ApprovalGate::Kind::kPending) {
        out.kind = EnrollOutcome::Kind::kPending;
        out.request_id = gate->request_id;
        out.created = gate->created;
        return out;
      }
      if (gate->kind == ApprovalGate::Kind::kRefused) {
        out.kind = EnrollOutcome::Kind::kForbidden;
        out.reason = gate->reason;
        out.message = gate->message;
        return out;
      }
      request_id = gate->request_id;
    }
    EnrollOutcome issued = outcomeFromPrepared(
        deps_.registry.prepareEnroll(name, token, key, issuer, request_id, key_store_claim));
    issued.request_id = request_id;
    return issued;
  };
  // Signed on the worker; recorded by the group commit (the token is
  // consumed there, atomically). Answered only after that commit.
  EnrollOutcome outcome = co_await signAndRecord(work1);

  switch (outcome.kind) {
    case EnrollOutcome::Kind::kUnauthenticated:
      co_return tokenFailure(name, outcome.reason);
    case EnrollOutcome::Kind::kBadRequest:
      co_return estFailure(peer, monitor::event_type::kEnroll, kAction, name, outcome.reason,
                           http::status::bad_request, outcome.message, nlohmann::json::object());
    case EnrollOutcome::Kind::kForbidden:
      co_return estFailure(peer, monitor::event_type::kEnroll, kAction, name, outcome.reason, http::status::forbidden,
                           outcome.message, {{"request", outcome.request_id}});
    case EnrollOutcome::Kind::kPending:
      if (outcome.created) {
        recordEvent(monitor::event_type::kEnroll, deviceSpiffeId(name), deviceSpiffeId(name), std::string(kAction),
                    name, "", "", std::string(monitor::reason::kApprovalPending),
                    {{"request", outcome.request_id}, {"remote", peer.remote}});
      }
      co_return estPending(outcome.request_id);
    case EnrollOutcome::Kind::kInternal:
      spdlog::error("api: enrollment of '{}' failed: {}", name, outcome.message);
      co_return estText(http::status::internal_server_error, "enrollment failed; see the server log");
    case EnrollOutcome::Kind::kIssued:
      break;
  }
  nlohmann::json detail = {{"serial", outcome.serial},
                           {"not_after", core::formatRfc3339(core::fromUnixSeconds(outcome.not_after))},
                           {"remote", peer.remote}};
  if (!outcome.request_id.empty()) detail["request"] = outcome.request_id;
  recordEvent(monitor::event_type::kEnroll, deviceSpiffeId(name), deviceSpiffeId(name), std::string(kAction), name,
              "permit", "", std::string(monitor::reason::kEnrolled), std::move(detail));
  // The gateway must know the new serial before the device can use it.
  co_await publishChange(identity::ChangeScope::device(name));
  co_return issuedResponse(std::move(outcome.body));
}

asio::awaitable<ServerResponse> ApiServer::Impl::estFactoryEnroll(const ServerRequest& req, const PeerInfo& peer) {
  constexpr std::string_view kAction = "est:simpleenroll";
  const std::string manufacturer = peer.anchor.manufacturer;
  nlohmann::json base = {{"manufacturer", manufacturer}};
  // The manufacturer record decides the name, the role and the approval.
  auto work_m = [this, manufacturer]() { return deps_.store.getManufacturer(manufacturer); };
  auto found = co_await onWorker(work_m);
  if (!found.isOk()) {
    spdlog::error("api: factory enrollment failed: {}", found.status().toString());
    co_return estText(http::status::internal_server_error, "enrollment failed; see the server log");
  }
  if (!found->has_value()) {
    co_return estFailure(peer, monitor::event_type::kEnroll, kAction, "",
                         std::string(monitor::reason::kUnknownManufacturer), http::status::forbidden,
                         fmt::format("manufacturer '{}' is no longer trusted", manufacturer), base);
  }
  const store::ManufacturerRecord m = std::move(**found);
  auto identity = identity::factoryIdentityOf(peer.cert.get(), m.name_prefix);
  if (!identity.isOk()) {
    co_return estFailure(peer, monitor::event_type::kEnroll, kAction, "", std::string(monitor::reason::kInvalidName),
                         http::status::forbidden, identity.status().message(), base);
  }
  const std::string name = identity->device_name;
  const std::string serial = identity->serial_number;
  base["serial_number"] = serial;
  const std::string key = fmt::format("factory:{}/{}", manufacturer, serial);
  if (auto busy = estBusy(peer, kAction, key, name)) co_return *busy;
  InFlight in_flight(enrolling_, key);
  if (auto busy = estBusy(peer, kAction, "device:" + name, name)) co_return *busy;
  InFlight in_flight_name(enrolling_, "device:" + name);

  // A live gateway session means the identity is in use (io thread knowledge).
  bool live = false;
  for (const std::string& d : deps_.gateway.connectedDevices()) live = live || d == name;
  const bool manual = m.approval == "manual" || (m.approval.empty() && config_.approval_manual);
  identity::LeafIssuer issuer = deviceLeafIssuer(m.cert_ttl_s);
  const std::string remote = peer.remote;
  std::string key_store_claim(req[kKeyStoreHeader]);
  auto work_f = [this, m, name, serial, live, manual, issuer, remote, key_store_claim,
                 body = req.body()]() -> EnrollOutcome {
    EnrollOutcome out;
    auto refuse = [&](std::string_view reason, std::string message) {
      out.kind = EnrollOutcome::Kind::kForbidden;
      out.reason = std::string(reason);
      out.message = std::move(message);
      return out;
    };
    auto internal = [&](const core::Status& s) {
      out.kind = EnrollOutcome::Kind::kInternal;
      out.message = s.toString();
      return out;
    };
    if (!m.auto_register) {
      auto allowed = deps_.store.manufacturerAllowsSerial(m.name, serial);
      if (!allowed.isOk()) return internal(allowed.status());
      if (!*allowed) {
        return refuse(monitor::reason::kSerialNotAllowed,
                      fmt::format("serialNumber '{}' is not on manufacturer '{}''s allow-list", serial, m.name));
      }
    }
    auto bound = deps_.store.factoryDevice(m.name, serial);
    if (!bound.isOk()) return internal(bound.status());
    const bool rebootstrap = bound->has_value();
    if (rebootstrap) {
      if (**bound != name) {
        return refuse(monitor::reason::kDuplicateIdentity,
                      fmt::format("this factory identity is bound to device '{}'", **bound));
      }
      auto valid = deps_.store.hasValidCert(name);
      if (!valid.isOk()) return internal(valid.status());
      if (live || *valid) {
        return refuse(monitor::reason::kDuplicateIdentity,
                      fmt::format("device '{}' already holds a valid certificate or a live session: a second device "
                                  "with the same factory identity is refused (a clone?)",
                                  name));
      }
    } else {
      auto existing = deps_.store.getDevice(name);
      if (existing.isOk()) {
        return refuse(monitor::reason::kNameTaken, fmt::format("device name '{}' is already taken", name));
      }
      if (existing.status().code() != core::ErrorCode::kNotFound) return internal(existing.status());
    }
    crypto::EvpPkeyPtr csr_key = csrKey(body, out);
    if (!csr_key) return out;
    EVP_PKEY* key = csr_key.get();
    std::string request_id;
    if (manual) {
      auto gate = gateApproval(deps_.store, deps_.clock, name, crypto::publicKeyFingerprint(key), m.name, serial, remote);
      if (!gate.isOk()) return internal(gate.status());
      if (gate->kind == ApprovalGate::Kind::kPending) {
        out.kind = EnrollOutcome::Kind::kPending;
        out.request_id = gate->request_id;
        out.created = gate->created;
        return out;
      }
      if (gate->kind == ApprovalGate::Kind::kRefused) return refuse(gate->reason, gate->message);
      request_id = gate->request_id;
    }
    store::FactoryEnrollment e;
    e.manufacturer = m.name;
    e.serial_number = serial;
    e.device.name = name;
    e.device.role = m.role;
    e.device.labels = m.labels;
    e.rebootstrap = rebootstrap;
    e.request_id = request_id;
    auto issued = deps_.registry.enrollFactory(e, key, issuer);
    if (!issued.isOk() && issued.status().code() == core::ErrorCode::kAlreadyExists &&
        (issued.status().message() == store::kReasonDuplicateIdentity ||
         issued.status().message() == store::kReasonNameTaken)) {
      return refuse(issued.status().message(), fmt::format("device '{}' cannot be enrolled with this factory identity ({})",
                                                           name, issued.status().message()));
    }
    out = outcomeFromIssue(std::move(issued));
    out.request_id = request_id;
    out.rebootstrap = rebootstrap;
    if (out.kind == EnrollOutcome::Kind::kIssued) recordKeyStoreClaim(deps_.store, name, key_store_claim);
    return out;
  };
  EnrollOutcome outcome = co_await onWorker(work_f);
  switch (outcome.kind) {
    case EnrollOutcome::Kind::kUnauthenticated:
    case EnrollOutcome::Kind::kForbidden:
      co_return estFailure(peer, monitor::event_type::kEnroll, kAction, name, outcome.reason, http::status::forbidden,
                           outcome.message, base);
    case EnrollOutcome::Kind::kBadRequest:
      co_return estFailure(peer, monitor::event_type::kEnroll, kAction, name, outcome.reason,
                           http::status::bad_request, outcome.message, base);
    case EnrollOutcome::Kind::kPending:
      if (outcome.created) {
        base["request"] = outcome.request_id;
        base["remote"] = peer.remote;
        recordEvent(monitor::event_type::kEnroll, deviceSpiffeId(name), deviceSpiffeId(name), std::string(kAction),
                    name, "", "", std::string(monitor::reason::kApprovalPending), base);
      }
      co_return estPending(outcome.request_id);
    case EnrollOutcome::Kind::kInternal:
      spdlog::error("api: factory enrollment of '{}' failed: {}", name, outcome.message);
      co_return estText(http::status::internal_server_error, "enrollment failed; see the server log");
    case EnrollOutcome::Kind::kIssued:
      break;
  }
  nlohmann::json detail = base;
  detail["serial"] = outcome.serial;
  detail["not_after"] = core::formatRfc3339(core::fromUnixSeconds(outcome.not_after));
  detail["remote"] = peer.remote;
  detail["factory"] = true;
  if (outcome.rebootstrap) detail["rebootstrap"] = true;
  if (!outcome.request_id.empty()) detail["request"] = outcome.request_id;
  recordEvent(monitor::event_type::kEnroll, deviceSpiffeId(name), deviceSpiffeId(name), std::string(kAction), name,
              "permit", "", std::string(monitor::reason::kEnrolled), std::move(detail));
  co_await publishChange();
  co_return issuedResponse(std::move(outcome.body));
}

asio::awaitable<ServerResponse> ApiServer::Impl::estSimpleReenroll(const ServerRequest& req, const PeerInfo& peer) {
  constexpr std::string_view kAction = "est:simplereenroll";
  const std::string kNeedCert =
      "simplereenroll requires the device's current, valid certificate as the TLS client certificate";
  // Failures count per source (a source over its budget gets 429 for what
  // fails); renewals that succeed are never limited.
  auto renewFailure = [&](const std::string& name, const std::string& reason, std::string detail,
                          http::status status, std::string message) {
    return estFailure(peer, monitor::event_type::kRenew, kAction, name, reason, status, std::move(message),
                      {{"message", std::move(detail)}});
  };
  // A factory certificate (IDevID) is a trust anchor for simpleenroll only.
  if (peer.anchor.kind == pki::ClientAnchor::Kind::kManufacturer) {
    co_return renewFailure("", std::string(monitor::reason::kFactoryCertificate),
                           fmt::format("a factory certificate of manufacturer '{}' cannot renew",
                                       peer.anchor.manufacturer),
                           http::status::forbidden,
                           "simplereenroll requires the device's current Warden certificate; a factory certificate "
                           "(IDevID) is accepted only by simpleenroll");
  }
  // RFC 7030 §4.2.2: the client authenticates with its current certificate.
  auto snapshot = deps_.snapshot.get();
  X509* fleet_cert = peer.anchor.kind == pki::ClientAnchor::Kind::kFleet ? peer.cert.get() : nullptr;
  gateway::PeerIdentity id = gateway::checkDevicePeer(fleet_cert, peer.verify_result,
                                                      snapshot ? snapshot->fleet.get() : nullptr,
                                                      config_.trust_domain, deps_.clock.now());
  if (!id.ok) co_return renewFailure(id.device, id.reason, id.detail, http::status::unauthorized, kNeedCert);
  if (mediaType(req[http::field::content_type]) != "application/pkcs10") {
    co_return estText(http::status::unsupported_media_type,
                      "Content-Type must be application/pkcs10 (a base64 DER PKCS#10 CSR)");
  }
  const std::string name = id.device;
  const std::string serial = id.serial_hex;
  identity::LeafIssuer issuer = deviceLeafIssuer(0);
  std::string key_store_claim(req[kKeyStoreHeader]);
  auto work2 = [this, name, serial, body = req.body(), issuer, key_store_claim]() -> EnrollOutcome {
    EnrollOutcome out;
    crypto::EvpPkeyPtr csr_key = csrKey(body, out);
    if (!csr_key) return out;
    EVP_PKEY* key = csr_key.get();
    return outcomeFromPrepared(deps_.registry.prepareRenew(name, serial, key, issuer, key_store_claim));
  };
  // As simpleenroll: answered only after the group commit holding the row.
  EnrollOutcome outcome = co_await signAndRecord(work2);
  switch (outcome.kind) {
    case EnrollOutcome::Kind::kUnauthenticated:
    case EnrollOutcome::Kind::kForbidden:
    case EnrollOutcome::Kind::kPending:
      co_return renewFailure(name, outcome.reason, "", http::status::unauthorized, kNeedCert);
    case EnrollOutcome::Kind::kBadRequest:
      co_return renewFailure(name, outcome.reason, outcome.message, http::status::bad_request, outcome.message);
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
