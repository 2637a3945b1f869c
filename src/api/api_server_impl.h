#pragma once

// api_server_impl.h: private to src/api. The Asio/Beast half of ApiServer.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "api/api_route.h"
#include "api/api_server.h"
#include "api/failure_limiter.h"
#include "core/clock.h"
#include "core/status.h"
#include "crypto/openssl_ptr.h"
#include "identity/registry.h"
#include "pki/ca_set.h"
#include "pki/manufacturer_anchors.h"
#include "store/group_commit.h"
#include "store/store.h"

namespace warden::gateway {
struct PeerIdentity;
}
namespace warden::trust {
struct AttestationReport;
struct PostureReply;
}

namespace warden::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

using ServerRequest = http::request<http::string_body>;
using ServerResponse = http::response<http::string_body>;
using SslStream = beast::ssl_stream<beast::tcp_stream>;

// kNoThrow makes Asio operations report errors as values.
inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// PeerInfo is what the connection knows about its client.
struct PeerInfo {
  std::string address;     // remote IP, textual
  std::string remote;      // "ip:port" ("[v6]:port") for event detail.source
  std::string source_key;  // rate-limit key (IPv6 /64)
  crypto::X509Ptr cert;    // client certificate (verified by the TLS layer) or null
  long verify_result = 0;  // SSL_get_verify_result
  // Which trust anchor validated |cert|: the fleet's CAs (devices, operators)
  // or a manufacturer's (factory certificates: simpleenroll only).
  pki::ClientAnchor anchor;
};

// OperatorIdentity is an authenticated admin API caller.
struct OperatorIdentity {
  std::string name;       // user name ("admin")
  std::string spiffe_id;  // spiffe://td/user/name
  std::string rule;       // the policy rule that permitted the current call
  std::string address;    // the caller's IP address (context.source_ip)
  core::SystemTime cert_not_before{};  // principal.cert.age is measured from it
};

// Response builders.
ServerResponse jsonResponse(http::status status, const nlohmann::json& body);

// Request bodies of the admin API (admin_handlers.cc).
// parseJsonBody parses a JSON object body; an empty body is {} unless
// |required|. kInvalidArgument for another Content-Type or anything else.
core::Result<nlohmann::json> parseJsonBody(const ServerRequest& req, bool required);
// checkKnownKeys refuses a body with a field outside |known|, naming it and
// the known ones.
core::Status checkKnownKeys(const nlohmann::json& body, std::initializer_list<std::string_view> known);
ServerResponse errorResponse(http::status status, std::string_view code, std::string_view message);
ServerResponse textResponse(http::status status, std::string_view content_type, std::string body);
// statusResponse maps a failed Status to an HTTP error (internal errors are
// logged and answered without their message).
ServerResponse statusResponse(const core::Status& status);
http::status httpStatusFor(core::ErrorCode code);

class ApiServer::Impl : public std::enable_shared_from_this<ApiServer::Impl> {
 public:
  Impl(asio::io_context& io, ApiConfig config, ApiDeps deps);

  core::Status start();
  void stop();
  uint16_t port() const { return bound_port_; }
  core::Status reloadTls();

 private:
  // --- connections (api_server.cc) ---
  asio::awaitable<void> acceptLoop();
  asio::awaitable<void> serveConnection(asio::ip::tcp::socket socket);
  asio::awaitable<ServerResponse> handle(const ServerRequest& req, const PeerInfo& peer);
  void onEventsCommitted(int64_t max_id);

  // --- EST (est_handlers.cc) ---
  ServerResponse estCacerts() const;
  // estCsrAttrs answers GET csrattrs (RFC 7030 §4.5): P-256 key, ECDSA-SHA256.
  ServerResponse estCsrAttrs() const;
  // estNotImplemented answers serverkeygen and fullcmc with 501 (RFC 7030
  // §4.4, §4.3 are optional; device keys never leave the device).
  ServerResponse estNotImplemented(RouteKind kind) const;
  asio::awaitable<ServerResponse> estSimpleEnroll(const ServerRequest& req, const PeerInfo& peer);
  asio::awaitable<ServerResponse> estSimpleReenroll(const ServerRequest& req, const PeerInfo& peer);
  // estFactoryEnroll is simpleenroll authenticated by a factory certificate
  // (IDevID, IEEE 802.1AR) that chains to a trusted manufacturer's CA.
  asio::awaitable<ServerResponse> estFactoryEnroll(const ServerRequest& req, const PeerInfo& peer);
  std::optional<ServerResponse> estRateLimited(const PeerInfo& peer);
  ServerResponse estUnauthorized() const;
  // estFailure counts a failed EST request against its source, records the
  // event (|reason|) and returns the answer: the one 401 for token failures,
  // |status| + |message| otherwise, 429 while the source is over its budget.
  ServerResponse estFailure(const PeerInfo& peer, std::string_view type, std::string_view action,
                            const std::string& name, const std::string& reason, http::status status,
                            std::string message, nlohmann::json detail);
  // estBusy answers 429 if an enrollment of |identity| is already in flight.
  std::optional<ServerResponse> estBusy(const PeerInfo& peer, std::string_view action, const std::string& identity,
                                        const std::string& name);
  // estPending answers 202 + Retry-After for a request awaiting approval.
  ServerResponse estPending(const std::string& request_id) const;

  // --- admin (admin_handlers.cc) ---
  asio::awaitable<ServerResponse> handleAdmin(const Route& route, const ServerRequest& req, const PeerInfo& peer);
  std::variant<OperatorIdentity, ServerResponse> authenticateOperator(const PeerInfo& peer, const Route& route);
  // authorizeOperator asks the policy whether |op| may call |kind| on
  // |resource|; on permit it sets op.rule and returns nullopt.
  std::optional<ServerResponse> authorizeOperator(OperatorIdentity& op, RouteKind kind, const std::string& resource);
  asio::awaitable<ServerResponse> deviceAdd(const OperatorIdentity& op, const nlohmann::json& body);
  asio::awaitable<ServerResponse> deviceList();
  asio::awaitable<ServerResponse> deviceShow(const std::string& name);
  asio::awaitable<ServerResponse> deviceToken(const OperatorIdentity& op, const std::string& name,
                                            const ServerRequest& req);
  asio::awaitable<ServerResponse> deviceStateChange(const OperatorIdentity& op, RouteKind kind,
                                                  const std::string& name);
  asio::awaitable<ServerResponse> policyApply(const OperatorIdentity& op, const ServerRequest& req, bool force);
  asio::awaitable<ServerResponse> policyShow();
  // policyDryRun answers PUT /v1/policy?dry_run=true: validity, the lock-out
  // check and the principals whose decisions would change; stores nothing.
  asio::awaitable<ServerResponse> policyDryRun(const OperatorIdentity& op, const ServerRequest& req);
  asio::awaitable<ServerResponse> policyExplain(const ServerRequest& req);
  asio::awaitable<ServerResponse> policyHistory();
  asio::awaitable<ServerResponse> policyVersion(const Route& route);
  asio::awaitable<ServerResponse> policyRollback(const OperatorIdentity& op, const ServerRequest& req);
  // storePolicy validates |text|, refuses (unless |force|) a policy under
  // which |op| loses admin:policy.apply, stores it as a new version and
  // publishes it; shared by apply and rollback.
  asio::awaitable<ServerResponse> storePolicy(const OperatorIdentity& op, const std::string& text, const std::string& filename,
                                              bool force, int64_t rolled_back_from);
  asio::awaitable<ServerResponse> eventsRead(const Route& route);
  // --- certificates and CAs (ca_handlers.cc) ---
  asio::awaitable<ServerResponse> certList(const Route& route);
  asio::awaitable<ServerResponse> certRevoke(const OperatorIdentity& op, const std::string& serial,
                                             const ServerRequest& req);
  asio::awaitable<ServerResponse> caList();
  asio::awaitable<ServerResponse> caRotate(const OperatorIdentity& op, const ServerRequest& req);
  // issueGatewayCert gives the gateway (and the API) a new server
  // certificate from |ca|: same names, new key, recorded and written (key
  // first) as leaf + |ca| (+ |link|, the NewWithOld of a root rollover);
  // the TLS contexts pick it up at the next reloadCas(). Worker thread.
  // Returns the new serial.
  core::Result<std::string> issueGatewayCert(const pki::CaMaterial& ca, X509* link);
  asio::awaitable<ServerResponse> caRetire(const OperatorIdentity& op, const std::string& name,
                                           const ServerRequest& req);
  asio::awaitable<void> publishRevocation();
  asio::awaitable<void> reloadCas();
  // --- enrollment admin (enrollment_handlers.cc) ---
  asio::awaitable<ServerResponse> manufacturerList();
  asio::awaitable<ServerResponse> manufacturerAdd(const OperatorIdentity& op, const ServerRequest& req);
  asio::awaitable<ServerResponse> manufacturerRemove(const OperatorIdentity& op, const std::string& name);
  asio::awaitable<ServerResponse> enrollList();
  asio::awaitable<ServerResponse> enrollDecide(const OperatorIdentity& op, const std::string& id, bool approve);
  asio::awaitable<ServerResponse> deviceSet(const OperatorIdentity& op, const std::string& name,
                                            const ServerRequest& req);
  // --- posture and firmware reference values (posture_handlers.cc) ---
  asio::awaitable<ServerResponse> firmwareList();
  asio::awaitable<ServerResponse> firmwareApprove(const OperatorIdentity& op, const ServerRequest& req);
  asio::awaitable<ServerResponse> firmwareRevoke(const OperatorIdentity& op, const ServerRequest& req);
  asio::awaitable<ServerResponse> deviceHistory(const std::string& name, const Route& route);

  // --- attestation (attest_handlers.cc) ---
  // authenticateAttester admits a device by its current certificate (any
  // state that may hold a session, quarantined included: a device may always
  // attest); otherwise 401 and an attestation_refused event naming nobody.
  std::variant<gateway::PeerIdentity, ServerResponse> authenticateAttester(const PeerInfo& peer, std::string_view action);
  // attestRefusal records a |type| event (attestation_refused, ak_register)
  // denying |device|'s request for |reason| and answers |status|.
  ServerResponse attestRefusal(std::string_view type, const std::string& device, const PeerInfo& peer,
                               std::string_view action, std::string_view reason, http::status status,
                               const std::string& message);
  void pruneAttestState();
  void rememberSpentNonce(const std::string& device, std::string nonce, core::SystemTime now);
  bool nonceWasSpent(const std::string& device, const std::string& nonce, core::SystemTime now) const;
  asio::awaitable<ServerResponse> attestChallenge(const ServerRequest& req, const PeerInfo& peer);
  asio::awaitable<ServerResponse> attestEvidence(const ServerRequest& req, const PeerInfo& peer);
  asio::awaitable<ServerResponse> attestAk(const ServerRequest& req, const PeerInfo& peer);
  asio::awaitable<ServerResponse> attestAkActivate(const ServerRequest& req, const PeerInfo& peer);
  // recordAttestation hands a verdict to the posture engine and returns its
  // reply once the gateway applied any change; applyAttestation answers the
  // evidence request with it; failAttestation records a failure found while
  // registering an AK (foreign_tpm).
  asio::awaitable<trust::PostureReply> recordAttestation(const trust::AttestationReport& report);
  asio::awaitable<ServerResponse> applyAttestation(const trust::AttestationReport& report);
  asio::awaitable<void> failAttestation(const std::string& device, std::string_view reason, const std::string& detail);
  asio::awaitable<ServerResponse> tpmCaList();
  asio::awaitable<ServerResponse> tpmCaAdd(const OperatorIdentity& op, const ServerRequest& req);
  asio::awaitable<ServerResponse> tpmCaRemove(const OperatorIdentity& op, const std::string& fingerprint);
  asio::awaitable<ServerResponse> deviceEkSet(const OperatorIdentity& op, const std::string& name,
                                              const ServerRequest& req);
  asio::awaitable<ServerResponse> deviceEkRemove(const OperatorIdentity& op, const std::string& name);

  // --- plumbing ---
  // awaitCallback starts |start| with a completion callback and resumes on
  // the io thread once it is called (at most once honoured), or after
  // |timeout| (0: none) with a warning naming |what|.
  // Not a coroutine, and callers pass named objects: g++ 12 destroys
  // non-trivial temporaries inside co_await expressions twice.
  asio::awaitable<void> awaitCallback(const std::function<void(std::function<void()>)>& start,
                                      std::chrono::milliseconds timeout, const char* what);
  // onWorker runs |work| on the worker thread (ApiDeps::run_blocking) and
  // returns its result on the io thread.
  // |work| is copied; pass a named lambda (see awaitCallback).
  template <typename F>
  asio::awaitable<std::invoke_result_t<F&>> onWorker(const F& work);
  // commitIssuance records |write| through the group commit and returns its
  // status once the transaction holding it has committed (or failed).
  asio::awaitable<core::Status> commitIssuance(const store::IssuanceWrite& write);
  // signAndRecord runs the EST signing job |sign| on the worker and records
  // the certificate it issued through commitIssuance (est_handlers.cc).
  template <typename F>
  asio::awaitable<std::invoke_result_t<F&>> signAndRecord(const F& sign);
  // publishChange pushes the committed change to the gateway and returns
  // once affected live sessions were cut or restricted.
  asio::awaitable<void> publishChange(identity::ChangeScope scope = identity::ChangeScope::all());
  asio::awaitable<void> purgeBrokerSession(const std::string& device);
  void recordEvent(std::string_view type, std::string principal, std::string actor, std::string action,
                   std::string resource, std::string decision, std::string rule, std::string reason,
                   nlohmann::json detail = nlohmann::json::object());
  std::string deviceSpiffeId(std::string_view name) const;
  // deviceLeafIssuer returns the signer of every device certificate (EST
  // simpleenroll and simplereenroll): the one place the device profile is
  // decided (CN = name, one SPIFFE URI SAN, clientAuth, lifetime device >
  // manufacturer > fleet). |manufacturer_ttl_s| (0: none) is the lifetime of
  // a manufacturer whose device does not exist yet.
  identity::LeafIssuer deviceLeafIssuer(int64_t manufacturer_ttl_s) const;
  // reloadManufacturerAnchors re-reads the manufacturers' CAs (worker) and
  // installs them for the next handshakes.
  asio::awaitable<void> reloadManufacturerAnchors();

  asio::io_context& io_;
  const ApiConfig config_;
  ApiDeps deps_;
  // Each connection holds its own reference, so reloadTls() never pulls
  // the context from under an open connection.
  std::shared_ptr<asio::ssl::context> ssl_ctx_;
  pki::CaSetHolder own_cas_;           // used when ApiDeps::cas is null
  pki::CaSetHolder* cas_ = &own_cas_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  uint16_t bound_port_ = 0;
  bool stopping_ = false;

  std::string cacertsBody() const;  // base64 PKCS#7 of root + every non-retired issuing CA
  std::string ca_fingerprint_;

  // Open connections (io thread only), for stop().
  uint64_t next_connection_id_ = 1;
  std::unordered_map<uint64_t, beast::tcp_stream*> connections_;

  FailureLimiter enroll_failures_;
  // Token enrollments and renewals are recorded in batches (io thread only).
  store::GroupCommit issuances_;
  // Identities ("device:NAME", "factory:MANUFACTURER/SERIAL") with an
  // enrollment in flight (io thread only).
  std::unordered_set<std::string> enrolling_;
  // The fleet's own CAs (root + issuing), to classify client certificates.
  crypto::X509StorePtr fleet_store_;
  std::shared_ptr<pki::ManufacturerAnchors> manufacturer_anchors_ = std::make_shared<pki::ManufacturerAnchors>();

  // Attestation state (io thread only; lost on restart, which only costs a
  // device one more challenge). One outstanding nonce per device.
  struct AttestNonce {
    std::string raw;   // 32 bytes
    std::string text;  // base64url, as sent
    core::SystemTime expires_at{};
  };
  std::unordered_map<std::string, AttestNonce> attest_nonces_;
  // The device's recently spent nonces (at most 16, for 10 min each), so a
  // replay is told apart from a nonce that was never issued.
  struct SpentNonce {
    std::string text;
    core::SystemTime forget_at{};
  };
  std::unordered_map<std::string, std::deque<SpentNonce>> spent_nonces_;
  // Credentials made for an AK, awaiting activation (one try, 60 s).
  struct PendingAk {
    store::DeviceTpmRecord record;
    std::string secret;
    core::SystemTime expires_at{};
  };
  std::unordered_map<std::string, PendingAk> pending_aks_;

  // Long-poll waiters of GET /v1/events (io thread only).
  uint64_t next_waiter_id_ = 1;
  std::unordered_map<uint64_t, asio::steady_timer*> event_waiters_;
  int64_t last_committed_event_id_ = 0;
  std::optional<uint64_t> event_subscription_;
};

template <typename F>
asio::awaitable<std::invoke_result_t<F&>> ApiServer::Impl::onWorker(const F& work) {
  using T = std::invoke_result_t<F&>;
  auto result = std::make_shared<std::optional<T>>();
  auto fn = std::make_shared<F>(work);
  // Named, not a temporary: g++ 12 destroys temporaries of a co_await
  // full-expression twice (GCC PR 101367).
  std::function<void(std::function<void()>)> start = [this, result, fn](std::function<void()> done) {
    deps_.run_blocking(
        [result, fn] {
          try {
            result->emplace((*fn)());
          } catch (const std::exception& e) {
            spdlog::error("api: worker task failed: {}", e.what());
          }
        },
        std::move(done));
  };
  co_await awaitCallback(start, std::chrono::milliseconds(0), "worker");
  if (!result->has_value()) throw std::runtime_error("worker task failed");
  co_return std::move(**result);
}

}  // namespace warden::api
