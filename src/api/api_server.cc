#include "api/api_server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <utility>
#include <vector>

#include "api/api_json.h"
#include "api/api_server_impl.h"
#include "api/lingering_close.h"
#include "crypto/crypto.h"
#include "gateway/gateway.h"
#include "monitor/event_log.h"
#include "pki/ca_set.h"
#include "pki/certificate_authority.h"
#include "pki/est_body.h"
#include "pki/tls_config.h"

namespace warden::api {

// ---------------------------------------------------------------------------
// Response builders

ServerResponse jsonResponse(http::status status, const nlohmann::json& body) {
  ServerResponse res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.body() = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  res.body().push_back('\n');
  return res;
}

ServerResponse errorResponse(http::status status, std::string_view code, std::string_view message) {
  ServerResponse res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.body() = errorJson(code, message);
  res.body().push_back('\n');
  return res;
}

ServerResponse textResponse(http::status status, std::string_view content_type, std::string body) {
  ServerResponse res{status, 11};
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

http::status httpStatusFor(core::ErrorCode code) {
  switch (code) {
    case core::ErrorCode::kOk: return http::status::ok;
    case core::ErrorCode::kInvalidArgument: return http::status::bad_request;
    case core::ErrorCode::kNotFound: return http::status::not_found;
    case core::ErrorCode::kAlreadyExists: return http::status::conflict;
    case core::ErrorCode::kPermissionDenied: return http::status::forbidden;
    case core::ErrorCode::kUnauthenticated: return http::status::unauthorized;
    case core::ErrorCode::kFailedPrecondition: return http::status::conflict;
    case core::ErrorCode::kResourceExhausted: return http::status::too_many_requests;
    case core::ErrorCode::kUnavailable: return http::status::service_unavailable;
    case core::ErrorCode::kDeadlineExceeded: return http::status::gateway_timeout;
    default: return http::status::internal_server_error;
  }
}

ServerResponse statusResponse(const core::Status& status) {
  http::status http_status = httpStatusFor(status.code());
  if (http_status == http::status::internal_server_error) {
    spdlog::error("api: internal error: {}", status.message());
    return errorResponse(http_status, core::errorCodeName(status.code()),
                         "the server failed to complete the request; see the server log");
  }
  return errorResponse(http_status, core::errorCodeName(status.code()), status.message());
}

// ---------------------------------------------------------------------------
// Impl

ApiServer::Impl::Impl(asio::io_context& io, ApiConfig config, ApiDeps deps)
    : io_(io),
      config_(std::move(config)),
      deps_(std::move(deps)),
      enroll_failures_(config_.limits.enroll_failures_per_window, config_.limits.enroll_failure_window),
      issuances_([&store = deps_.store](const std::vector<store::IssuanceWrite>& writes) {
                   return store.commitIssuances(writes);
                 },
                 deps_.run_blocking, config_.issuance_batch) {}

core::Status ApiServer::Impl::start() {
  if (deps_.cas != nullptr) {
    cas_ = deps_.cas;
  } else {
    if (deps_.root_cert == nullptr || deps_.issuing_ca.cert == nullptr || deps_.issuing_ca.key == nullptr) {
      return core::failedPrecondition("api: the root and issuing CA must be loaded before the API starts");
    }
    auto set = std::make_shared<pki::CaSet>();
    set->root.reset(X509_dup(deps_.root_cert));
    auto issuing = std::make_shared<pki::CaMaterial>();
    issuing->cert.reset(X509_dup(deps_.issuing_ca.cert.get()));
    EVP_PKEY_up_ref(deps_.issuing_ca.key.get());
    issuing->key.reset(deps_.issuing_ca.key.get());
    issuing->name = deps_.issuing_ca.name;
    issuing->pki_url = deps_.issuing_ca.pki_url;
    set->issuing.push_back(std::move(issuing));
    own_cas_.set(std::move(set));
  }
  auto cas = cas_->get();
  if (!cas || !cas->root || cas->active() == nullptr) {
    return core::failedPrecondition("api: the root and issuing CA must be loaded before the API starts");
  }
  if (!deps_.run_blocking || !deps_.publish_change) {
    return core::failedPrecondition("api: run_blocking and publish_change must be set");
  }
  ca_fingerprint_ = crypto::caFingerprint(cas->root.get());
  {
    // At start, before the io_context serves anyone: a direct read is fine.
    auto manufacturers = deps_.store.listManufacturers();
    if (!manufacturers.isOk()) return manufacturers.status();
    std::vector<pki::ManufacturerCa> anchors;
    for (const auto& m : *manufacturers) anchors.push_back({m.name, m.ca_pem});
    if (auto s = manufacturer_anchors_->replace(anchors); !s.isOk()) spdlog::error("api: {}", s.message());
  }
  WARDEN_RETURN_IF_ERROR(reloadTls());

  boost::system::error_code ec;
  asio::ip::tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(config_.listen_host, ec);
  if (ec) {
    asio::ip::tcp::resolver resolver(io_);
    auto results = resolver.resolve(config_.listen_host, std::to_string(config_.listen_port), ec);
    if (ec || results.empty()) {
      return core::invalidArgument("api: cannot resolve listen address '" + config_.listen_host +
                                   "': use an IP address or a resolvable host name");
    }
    endpoint = results.begin()->endpoint();
  } else {
    endpoint = asio::ip::tcp::endpoint(address, config_.listen_port);
  }
  auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(io_);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return core::unavailable(fmt::format("api: cannot listen on {}:{}: {} (is another server running?)",
                                         config_.listen_host, config_.listen_port, ec.message()));
  }
  bound_port_ = acceptor->local_endpoint().port();
  acceptor_ = std::move(acceptor);

  std::weak_ptr<Impl> weak = weak_from_this();
  event_subscription_ = deps_.events.subscribe([weak](const std::vector<store::EventRecord>& batch) {
    if (batch.empty()) return;
    auto self = weak.lock();
    if (!self) return;
    int64_t max_id = batch.back().id;
    asio::post(self->io_, [self, max_id] { self->onEventsCommitted(max_id); });
  });

  asio::co_spawn(io_, acceptLoop(), asio::detached);
  spdlog::info("api: admin API and EST listening on https://{}:{}", config_.listen_host, bound_port_);
  return core::Status::ok();
}

core::Status ApiServer::Impl::reloadTls() {
  auto cas = cas_->get();
  pki::TlsFiles files;
  files.cert_chain_file = config_.server_cert_file;
  files.key_file = config_.server_key_file;
  files.trust_bundle_pem = cas->trustBundlePem();
  WARDEN_ASSIGN_OR_RETURN(crypto::SslCtxPtr raw,
                          pki::makeServerTlsContext(files, pki::ClientCertMode::kRequest, deps_.clock));
  // The API keeps its one session ticket although EST clients rarely
  // resume: sent right after the client's Finished, it also acknowledges it
  // at once. Without it, a client that leaves Nagle on holds its request
  // until the server's delayed ACK, 40 ms per enrollment (measured).
  // Manufacturer CAs complete handshakes of factory certificates; which
  // anchor validated a peer is decided per connection (serveConnection)
  // against the fleet's own CAs in |fleet_store_|.
  WARDEN_RETURN_IF_ERROR(pki::installManufacturerAnchors(raw.get(), manufacturer_anchors_));
  crypto::X509StorePtr fleet(X509_STORE_new());
  if (!fleet) return core::internalError("api: cannot build the fleet trust store");
  for (X509* ca : cas->trustCerts()) {
    if (X509_STORE_add_cert(fleet.get(), ca) != 1) return core::internalError("api: cannot build the fleet trust store");
  }
  ssl_ctx_ = std::make_shared<asio::ssl::context>(raw.release());
  fleet_store_ = std::move(fleet);
  // After a root rollover, new devices pin the new root.
  ca_fingerprint_ = crypto::caFingerprint(cas->root.get());
  return core::Status::ok();
}

std::string ApiServer::Impl::cacertsBody() const {
  return pki::pkcs7CertsOnly(cas_->get()->caCerts());
}

void ApiServer::Impl::stop() {
  if (stopping_) return;
  stopping_ = true;
  // scripts/bench reads this line (transactions = fsyncs of the issuance path).
  const auto& gc = issuances_.stats();
  spdlog::info("api: group commit: {} issuances in {} transactions (largest batch {}, at most {})", gc.writes,
               gc.transactions, gc.largest_batch, issuances_.maxBatch());
  if (event_subscription_) {
    deps_.events.unsubscribe(*event_subscription_);
    event_subscription_.reset();
  }
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
  std::vector<beast::tcp_stream*> open;
  for (auto& [id, stream] : connections_) open.push_back(stream);
  for (beast::tcp_stream* stream : open) {
    stream->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    stream->socket().close(ec);
  }
  for (auto& [id, timer] : event_waiters_) timer->cancel();
}

void ApiServer::Impl::onEventsCommitted(int64_t max_id) {
  if (max_id > last_committed_event_id_) last_committed_event_id_ = max_id;
  for (auto& [id, timer] : event_waiters_) timer->cancel();
}

asio::awaitable<void> ApiServer::Impl::acceptLoop() {
  auto self = shared_from_this();
  while (!stopping_ && acceptor_ && acceptor_->is_open()) {
    auto [ec, socket] = co_await acceptor_->async_accept(kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) break;
      // e.g. EMFILE: back off briefly instead of spinning.
      spdlog::warn("api: accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    if (connections_.size() >= config_.limits.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    // Responses are small and written whole: without TCP_NODELAY, Nagle
    // against the client's delayed ACK holds the last TLS record ~40 ms.
    boost::system::error_code nodelay_ec;
    socket.set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
    asio::co_spawn(io_, serveConnection(std::move(socket)), asio::detached);
  }
}

namespace {

bool iequals(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

// isHttpParseError reports whether |ec| says the peer sent a malformed
// request (as opposed to closing the connection or timing out).
bool isHttpParseError(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::need_more && ec != http::error::need_buffer;
}

// writeResponse writes |res| and reports whether the write succeeded.
asio::awaitable<bool> writeResponse(SslStream& stream, ServerResponse& res) {
  res.prepare_payload();
  auto [ec, n] = co_await http::async_write(stream, res, kNoThrow);
  (void)n;
  co_return !ec;
}

// refuseAndClose answers |status| ("invalid_argument", |message|) on a
// connection that closes next. With |unread| > 0 (a 413 while the refused
// body may still be arriving) it then lingers, reading and discarding at
// most that much (drainRequest), so that the client reads the answer.
asio::awaitable<void> refuseAndClose(SslStream& stream, http::status status, std::string_view message,
                                     uint64_t unread = 0) {
  ServerResponse res = errorResponse(status, "invalid_argument", message);
  res.keep_alive(false);
  if (co_await writeResponse(stream, res) && unread > 0) co_await drainRequest(stream, unread);
}

}  // namespace

asio::awaitable<void> ApiServer::Impl::serveConnection(asio::ip::tcp::socket socket) {
  auto self = shared_from_this();
  PeerInfo peer;
  {
    boost::system::error_code ec;
    auto remote = socket.remote_endpoint(ec);
    if (ec) co_return;
    peer.address = remote.address().to_string();
    peer.remote = remote.address().is_v6() ? fmt::format("[{}]:{}", peer.address, remote.port())
                                           : fmt::format("{}:{}", peer.address, remote.port());
    peer.source_key = sourceKey(peer.address);
  }
  std::shared_ptr<asio::ssl::context> ctx = ssl_ctx_;
  SslStream stream(beast::tcp_stream(std::move(socket)), *ctx);
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  const uint64_t connection_id = next_connection_id_++;
  connections_.emplace(connection_id, &tcp);
  struct Unregister {
    Impl* impl;
    uint64_t id;
    ~Unregister() { impl->connections_.erase(id); }
  } unregister{this, connection_id};

  const auto idle = config_.limits.idle_timeout;
  tcp.expires_after(idle);
  {
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kNoThrow);
    if (ec) {
      spdlog::debug("api: TLS handshake from {} failed: {}", peer.remote, ec.message());
      long verify = SSL_get_verify_result(stream.native_handle());
      if (verify != X509_V_OK) {
        // A client certificate was presented and did not verify (no fleet or
        // manufacturer anchor): it counts as a failure of the source.
        enroll_failures_.recordFailure(peer.source_key, deps_.clock.steadyNow());
        const bool expired = verify == X509_V_ERR_CERT_HAS_EXPIRED || verify == X509_V_ERR_CERT_NOT_YET_VALID;
        recordEvent(monitor::event_type::kTlsReject, "", "", "tls:handshake", "", "deny", "",
                    std::string(expired ? monitor::reason::kCertExpired : monitor::reason::kUntrustedIssuer),
                    {{"remote", peer.remote},
                     {"listener", "api"},
                     {"verify", X509_verify_cert_error_string(verify)},
                     {"error", ec.message()}});
      }
      co_return;
    }
  }
  peer.cert.reset(SSL_get1_peer_certificate(stream.native_handle()));
  peer.verify_result = SSL_get_verify_result(stream.native_handle());
  if (peer.cert && peer.verify_result != X509_V_OK) peer.cert.reset();  // fail closed
  if (peer.cert) {
    // Record which anchor validates the certificate, for full and resumed
    // handshakes alike; none (a manufacturer removed meanwhile): ignore it.
    // A full handshake on the current context (its store is fleet_store_'s
    // CAs) already verified the chain against the fleet: not twice.
    if (ctx == ssl_ctx_ && pki::verifiedByOwnStore(stream.native_handle())) {
      peer.anchor.kind = pki::ClientAnchor::Kind::kFleet;
    } else {
      peer.anchor = pki::classifyClientCertificate(peer.cert.get(), SSL_get_peer_cert_chain(stream.native_handle()),
                                                   fleet_store_.get(), manufacturer_anchors_.get());
    }
    if (peer.anchor.kind == pki::ClientAnchor::Kind::kNone) peer.cert.reset();
  }

  beast::flat_buffer buffer;
  for (;;) {
    if (stopping_) break;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config_.limits.max_header_bytes));
    // The per-route body limit is applied once the target is known.
    parser.body_limit(config_.limits.max_policy_body_bytes);
    tcp.expires_after(idle);
    auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
    (void)hn;
    if (hec) {
      if (hec == http::error::header_limit) {
        co_await refuseAndClose(stream, http::status::request_header_fields_too_large,
                                "request headers are larger than 8 KiB");
      } else if (hec == http::error::body_limit) {
        // A Content-Length over every route's limit, refused with the header.
        co_await refuseAndClose(stream, http::status::payload_too_large, "request body is too large", kMaxDrainBytes);
      } else if (isHttpParseError(hec)) {
        co_await refuseAndClose(stream, http::status::bad_request, "malformed HTTP request");
      }
      break;
    }
    const auto& header = parser.get();
    const bool policy_upload = header.method() == http::verb::put && header.target() == "/v1/policy" && peer.cert;
    const bool evidence_upload =
        header.method() == http::verb::post && header.target() == "/attest/v1/evidence" && peer.cert;
    const uint64_t limit = policy_upload     ? config_.limits.max_policy_body_bytes
                           : evidence_upload ? config_.limits.max_evidence_body_bytes
                                             : config_.limits.max_body_bytes;
    if (parser.content_length() && *parser.content_length() > limit) {
      const uint64_t declared = *parser.content_length();
      co_await refuseAndClose(stream, http::status::payload_too_large,
                              fmt::format("request body is larger than {} bytes", limit),
                              declared - std::min<uint64_t>(declared, buffer.size()));
      break;
    }
    parser.body_limit(limit);
    if (!parser.is_done()) {
      if (iequals(header[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, 11};
        auto [cec, cn] = co_await http::async_write(stream, cont, kNoThrow);
        (void)cn;
        if (cec) break;
      }
      auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
      (void)bn;
      if (bec) {
        if (bec == http::error::body_limit) {
          co_await refuseAndClose(stream, http::status::payload_too_large,
                                  fmt::format("request body is larger than {} bytes", limit), kMaxDrainBytes);
        } else if (isHttpParseError(bec)) {
          co_await refuseAndClose(stream, http::status::bad_request, "malformed HTTP request");
        }
        break;
      }
    }
    ServerRequest req = parser.release();
    // Handlers may wait (worker, session cut-off, long-poll): no idle timer meanwhile.
    tcp.expires_never();
    ServerResponse res;
    try {
      res = co_await handle(req, peer);
    } catch (const std::exception& e) {
      spdlog::error("api: {} {} failed: {}", std::string(req.method_string()), std::string(req.target()), e.what());
      res = errorResponse(http::status::internal_server_error, "internal",
                          "the server failed to complete the request; see the server log");
    }
    res.version(req.version());
    res.keep_alive(req.keep_alive() && !stopping_ && res.keep_alive());
    if (stopping_) break;
    tcp.expires_after(idle);
    if (!co_await writeResponse(stream, res)) break;
    if (!res.keep_alive()) break;
  }
  if (!stopping_) {
    tcp.expires_after(std::chrono::seconds(5));
    auto [sec] = co_await stream.async_shutdown(kNoThrow);
    (void)sec;
  }
  boost::system::error_code ignored;
  tcp.socket().close(ignored);
}

asio::awaitable<ServerResponse> ApiServer::Impl::handle(const ServerRequest& req, const PeerInfo& peer) {
  Route route = matchRoute(std::string_view(req.method_string().data(), req.method_string().size()),
                           std::string_view(req.target().data(), req.target().size()));
  switch (route.kind) {
    case RouteKind::kNotFound:
      co_return errorResponse(http::status::not_found, "not_found",
                              "no such endpoint; the admin API lives under /v1/ and EST under /.well-known/est/");
    case RouteKind::kMethodNotAllowed: {
      ServerResponse res = errorResponse(http::status::method_not_allowed, "method_not_allowed",
                                       "method not allowed here; allowed: " + route.allow);
      res.set(http::field::allow, route.allow);
      co_return res;
    }
    case RouteKind::kHealth:
      co_return jsonResponse(http::status::ok, {{"status", "ok"}});
    case RouteKind::kEstCacerts:
      co_return estCacerts();
    case RouteKind::kEstSimpleEnroll:
      co_return co_await estSimpleEnroll(req, peer);
    case RouteKind::kEstSimpleReenroll:
      co_return co_await estSimpleReenroll(req, peer);
    case RouteKind::kEstCsrAttrs:
      co_return estCsrAttrs();
    case RouteKind::kEstServerKeygen:
    case RouteKind::kEstFullCmc:
      co_return estNotImplemented(route.kind);
    case RouteKind::kAttestChallenge:
      co_return co_await attestChallenge(req, peer);
    case RouteKind::kAttestEvidence:
      co_return co_await attestEvidence(req, peer);
    case RouteKind::kAttestAk:
      co_return co_await attestAk(req, peer);
    case RouteKind::kAttestAkActivate:
      co_return co_await attestAkActivate(req, peer);
    default:
      co_return co_await handleAdmin(route, req, peer);
  }
}

// ---------------------------------------------------------------------------
// Plumbing

// awaitCallback is deliberately not a coroutine: g++ 12 double-destroys
// by-value std::function parameters of coroutines (seen under ASan), so the
// callback goes straight into Asio's own initiation coroutine.
asio::awaitable<void> ApiServer::Impl::awaitCallback(const std::function<void(std::function<void()>)>& start,
                                                     std::chrono::milliseconds timeout, const char* what) {
  auto ex = io_.get_executor();
  std::shared_ptr<asio::steady_timer> timer;
  if (timeout.count() > 0) timer = std::make_shared<asio::steady_timer>(io_, timeout);
  auto start_ptr = std::make_shared<std::function<void(std::function<void()>)>>(start);
  auto initiation = [ex, timer, what, start_ptr](auto handler) {
    using Handler = decltype(handler);
    auto slot = std::make_shared<std::optional<Handler>>(std::move(handler));
    // complete runs on the io thread; only the first call resumes.
    auto complete = [slot, timer]() {
      if (!slot->has_value()) return;
      Handler h = std::move(**slot);
      slot->reset();
      if (timer) timer->cancel();
      std::move(h)();
    };
    if (timer) {
      timer->async_wait([complete, what](const boost::system::error_code& ec) {
        if (ec) return;
        spdlog::warn("api: {} did not complete in time; answering anyway", what);
        complete();
      });
    }
    (*start_ptr)([ex, complete]() { asio::post(ex, complete); });
  };
  return asio::async_initiate<decltype(asio::use_awaitable), void()>(std::move(initiation), asio::use_awaitable);
}

asio::awaitable<core::Status> ApiServer::Impl::commitIssuance(const store::IssuanceWrite& write) {
  auto status = std::make_shared<core::Status>();
  std::function<void(std::function<void()>)> start = [this, write, status](std::function<void()> done) {
    issuances_.submit(write, [status, done = std::move(done)](core::Status s) {
      *status = std::move(s);
      done();
    });
  };
  // No timeout: answering before the commit would hand out a certificate
  // that a crash could lose.
  co_await awaitCallback(start, std::chrono::milliseconds(0), "recording the certificate");
  co_return *status;
}

asio::awaitable<void> ApiServer::Impl::reloadManufacturerAnchors() {
  auto work = [this]() { return deps_.store.listManufacturers(); };
  auto list = co_await onWorker(work);
  if (!list.isOk()) {
    spdlog::error("api: cannot reload manufacturer CAs: {}", list.status().toString());
    co_return;
  }
  std::vector<pki::ManufacturerCa> cas;
  for (const auto& m : *list) cas.push_back({m.name, m.ca_pem});
  if (auto s = manufacturer_anchors_->replace(cas); !s.isOk()) spdlog::error("api: {}", s.message());
}

asio::awaitable<void> ApiServer::Impl::publishChange(identity::ChangeScope scope) {
  // Named, not a temporary: see onWorker (GCC PR 101367).
  std::function<void(std::function<void()>)> start = [this, scope = std::move(scope)](std::function<void()> done) {
    deps_.publish_change(scope, std::move(done));
  };
  co_await awaitCallback(std::move(start), std::chrono::seconds(10), "publishing the change to the gateway");
}

asio::awaitable<void> ApiServer::Impl::publishRevocation() {
  if (!deps_.publish_revocation) co_return;
  std::function<void(std::function<void()>)> start = [this](std::function<void()> done) {
    deps_.publish_revocation(std::move(done));
  };
  co_await awaitCallback(start, std::chrono::seconds(10), "publishing the CRLs");
}

asio::awaitable<void> ApiServer::Impl::reloadCas() {
  if (!deps_.reload_cas) co_return;
  std::function<void(std::function<void()>)> start = [this](std::function<void()> done) {
    deps_.reload_cas(std::move(done));
  };
  co_await awaitCallback(start, std::chrono::seconds(20), "reloading the CAs");
}

asio::awaitable<void> ApiServer::Impl::purgeBrokerSession(const std::string& device) {
  if (!deps_.purge_broker_session) co_return;
  std::function<void(std::function<void()>)> start = [this, device](std::function<void()> done) {
    deps_.purge_broker_session(device, std::move(done));
  };
  co_await awaitCallback(std::move(start), std::chrono::seconds(10), "purging the broker session");
}

void ApiServer::Impl::recordEvent(std::string_view type, std::string principal, std::string actor,
                                  std::string action, std::string resource, std::string decision,
                                  std::string rule, std::string reason, nlohmann::json detail) {
  monitor::Event e;
  e.type = std::string(type);
  e.principal = std::move(principal);
  e.actor = std::move(actor);
  e.action = std::move(action);
  e.resource = std::move(resource);
  e.decision = std::move(decision);
  e.rule = std::move(rule);
  e.reason = std::move(reason);
  e.detail = std::move(detail);
  deps_.events.record(std::move(e));
}

std::string ApiServer::Impl::deviceSpiffeId(std::string_view name) const {
  return core::makeSpiffeId(config_.trust_domain, core::PrincipalKind::kDevice, name);
}

// ---------------------------------------------------------------------------
// ApiServer

ApiServer::ApiServer(void* io_context, ApiConfig config, ApiDeps deps)
    : impl_(std::make_shared<Impl>(*static_cast<asio::io_context*>(io_context), std::move(config),
                                   std::move(deps))) {}

ApiServer::~ApiServer() { impl_->stop(); }

core::Status ApiServer::start() { return impl_->start(); }
core::Status ApiServer::reloadTls() { return impl_->reloadTls(); }
void ApiServer::stop() { impl_->stop(); }
uint16_t ApiServer::port() const { return impl_->port(); }

}  // namespace warden::api
