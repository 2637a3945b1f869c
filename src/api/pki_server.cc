// pki_server.cc: the plain-HTTP PKI listener (CRLs, CA certificates, OCSP).

// g++ 12 reports a false -Wmismatched-new-delete on Asio's awaitable frame
// allocator (aligned_new / operator delete pair) in some coroutines.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "api/pki_server.h"

#include <unordered_map>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/lingering_close.h"
#include "core/names.h"
#include "gateway/connect_rate_limiter.h"
#include "pki/ocsp_request.h"

namespace warden::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxHeaderBytes = 8 * 1024;

Response plain(http::status status, std::string_view content_type, std::string body) {
  Response res(status, 11);
  res.set(http::field::content_type, content_type);
  res.set(http::field::server, "warden");
  res.body() = std::move(body);
  return res;
}

Response text(http::status status, std::string body) {
  body.push_back('\n');
  return plain(status, "text/plain; charset=utf-8", std::move(body));
}

Response ocspResponse(std::string der) {
  // RFC 6960 A.1: OCSP errors are OCSPResponses too, always HTTP 200.
  return plain(http::status::ok, "application/ocsp-response", std::move(der));
}

// sourceKey rate-limits IPv6 clients per /64, IPv4 per address.
std::string sourceKey(const asio::ip::address& a) {
  if (a.is_v6() && !a.to_v6().is_v4_mapped()) {
    auto bytes = a.to_v6().to_bytes();
    return std::string(reinterpret_cast<const char*>(bytes.data()), 8);
  }
  return a.to_string();
}

}  // namespace

class PkiServer::Impl : public std::enable_shared_from_this<PkiServer::Impl> {
 public:
  Impl(asio::io_context& io, PkiServerConfig config, PkiServerDeps deps)
      : io_(io), config_(std::move(config)), deps_(std::move(deps)),
        limiter_(config_.rate_per_second, config_.rate_burst) {}

  core::Status start() {
    boost::system::error_code ec;
    asio::ip::address address = asio::ip::make_address(config_.listen_host, ec);
    if (ec) return core::invalidArgument(fmt::format("pki.listen '{}' is not an IP address", config_.listen_host));
    asio::ip::tcp::endpoint endpoint(address, config_.listen_port);
    auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(io_);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return core::unavailable(fmt::format("pki: cannot listen on {}:{}: {} (is another server running?)",
                                           config_.listen_host, config_.listen_port, ec.message()));
    }
    bound_port_ = acceptor->local_endpoint().port();
    acceptor_ = std::move(acceptor);
    asio::co_spawn(io_, acceptLoop(), asio::detached);
    spdlog::info("pki: CRLs and OCSP on http://{}:{}", config_.listen_host, bound_port_);
    return core::Status::ok();
  }

  void stop() {
    if (stopping_) return;
    stopping_ = true;
    boost::system::error_code ec;
    if (acceptor_) acceptor_->close(ec);
    std::vector<beast::tcp_stream*> open;
    for (auto& [id, stream] : connections_) open.push_back(stream);
    for (beast::tcp_stream* s : open) s->socket().close(ec);
  }

  uint16_t port() const { return bound_port_; }

 private:
  asio::awaitable<void> acceptLoop() {
    auto self = shared_from_this();
    while (!stopping_ && acceptor_ && acceptor_->is_open()) {
      auto [ec, socket] = co_await acceptor_->async_accept(kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping_) break;
        spdlog::warn("pki: accept failed: {}", ec.message());
        asio::steady_timer pause(io_, std::chrono::milliseconds(100));
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      if (connections_.size() >= config_.max_connections) {
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

  asio::awaitable<void> serveConnection(asio::ip::tcp::socket socket) {
    auto self = shared_from_this();
    boost::system::error_code ec;
    auto remote = socket.remote_endpoint(ec);
    if (ec) co_return;
    const std::string source = sourceKey(remote.address());
    beast::tcp_stream stream(std::move(socket));
    const uint64_t id = next_connection_id_++;
    connections_.emplace(id, &stream);
    struct Unregister {
      Impl* impl;
      uint64_t id;
      ~Unregister() { impl->connections_.erase(id); }
    } unregister{this, id};
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(pki::kMaxOcspRequestBytes);
      stream.expires_after(config_.idle_timeout);
      auto [rec, n] = co_await http::async_read(stream, buffer, parser, kNoThrow);
      (void)n;
      if (rec) {
        if (rec == http::error::body_limit || rec == http::error::header_limit) {
          Response res = text(http::status::payload_too_large, "request too large");
          res.keep_alive(false);
          res.prepare_payload();
          auto [wec, wn] = co_await http::async_write(stream, res, kNoThrow);
          (void)wn;
          if (!wec) co_await drainRequest(stream, kMaxDrainBytes);
        } else if (rec.category() == http::make_error_code(http::error::bad_target).category() &&
                   rec != http::error::end_of_stream && rec != http::error::partial_message) {
          Response res = text(http::status::bad_request, "malformed HTTP request");
          res.keep_alive(false);
          res.prepare_payload();
          co_await http::async_write(stream, res, kNoThrow);
        }
        break;
      }
      Request req = parser.release();
      Response res = co_await handle(req, source);
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      stream.expires_after(config_.idle_timeout);
      auto [wec, wn] = co_await http::async_write(stream, res, kNoThrow);
      (void)wn;
      if (wec || !res.keep_alive() || stopping_) break;
    }
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  }

  asio::awaitable<Response> handle(const Request& req, const std::string& source) {
    std::string_view target(req.target().data(), req.target().size());
    if (size_t q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    const bool is_ocsp = target == "/ocsp" || target.substr(0, 6) == "/ocsp/";
    if (!limiter_.allow(source, deps_.clock.steadyNow())) {
      if (is_ocsp) co_return ocspResponse(pki::ocspErrorResponse(OCSP_RESPONSE_STATUS_TRYLATER));
      Response res = text(http::status::too_many_requests, "too many requests from this address; retry shortly");
      res.set(http::field::retry_after, "1");
      co_return res;
    }
    if (is_ocsp) co_return co_await ocsp(req, target);
    if (target.substr(0, 5) == "/pki/") {
      if (req.method() != http::verb::get && req.method() != http::verb::head) {
        Response res = text(http::status::method_not_allowed, "use GET");
        res.set(http::field::allow, "GET, HEAD");
        co_return res;
      }
      co_return publication(target.substr(5));
    }
    co_return text(http::status::not_found, "not found: this listener serves /pki/<ca>.crl, /pki/<ca>.crl.pem, "
                                             "/pki/<ca>.crt and /ocsp");
  }

  Response publication(std::string_view file) {
    auto snapshot = deps_.snapshot.get();
    auto lookup = [&](std::string_view suffix) -> const pki::PublishedCa* {
      if (file.size() <= suffix.size() || file.substr(file.size() - suffix.size()) != suffix) return nullptr;
      std::string name(file.substr(0, file.size() - suffix.size()));
      if (!core::isValidName(name) || !snapshot) return nullptr;
      return snapshot->find(name);
    };
    if (const pki::PublishedCa* ca = lookup(".crl.pem")) {
      if (!ca->crl_pem.empty()) return plain(http::status::ok, "application/x-pem-file", ca->crl_pem);
    } else if (const pki::PublishedCa* ca2 = lookup(".crl")) {
      if (!ca2->crl_der.empty()) return plain(http::status::ok, "application/pkix-crl", ca2->crl_der);
    } else if (const pki::PublishedCa* ca3 = lookup(".crt")) {
      return plain(http::status::ok, "application/pkix-cert", ca3->cert_der);
    }
    return text(http::status::not_found, "no such CA publication (see `warden ca list`)");
  }

  asio::awaitable<Response> ocsp(const Request& req, std::string_view target) {
    std::string der;
    if (req.method() == http::verb::post && target == "/ocsp") {
      std::string_view type(req[http::field::content_type].data(), req[http::field::content_type].size());
      if (type.substr(0, 24) != "application/ocsp-request") {
        co_return text(http::status::unsupported_media_type, "Content-Type must be application/ocsp-request");
      }
      der = req.body();
    } else if (req.method() == http::verb::get && target.size() > 6) {
      auto decoded = pki::decodeOcspGetPath(target.substr(6));
      if (!decoded.isOk()) co_return ocspResponse(pki::ocspErrorResponse(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST));
      der = std::move(decoded).value();
    } else {
      Response res = text(http::status::method_not_allowed, "use POST /ocsp or GET /ocsp/<base64 request>");
      res.set(http::field::allow, "GET, POST");
      co_return res;
    }
    auto parsed = std::make_shared<core::Result<pki::ParsedOcspRequest>>(pki::parseOcspRequest(der));
    if (!parsed->isOk()) co_return ocspResponse(pki::ocspErrorResponse(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST));
    auto snapshot = deps_.snapshot.get();
    if (!snapshot) co_return ocspResponse(pki::ocspErrorResponse(OCSP_RESPONSE_STATUS_TRYLATER));
    std::vector<pki::OcspIssuer> issuers = snapshot->ocspIssuers();
    int index = pki::matchOcspIssuer(parsed->value(), issuers);
    if (index < 0) co_return ocspResponse(pki::ocspErrorResponse(OCSP_RESPONSE_STATUS_UNAUTHORIZED));
    // Look the serials up and sign on the worker: the store may block.
    auto answer = std::make_shared<std::string>();
    pki::OcspIssuer issuer = issuers[static_cast<size_t>(index)];
    const core::SystemTime now = deps_.clock.now();
    const core::SystemTime next = now + config_.ocsp_validity;
    auto work = [this, parsed, snapshot, issuer, answer, now, next]() {
      std::vector<pki::OcspStatus> statuses;
      for (const pki::OcspCertId& id : parsed->value().ids) statuses.push_back(deps_.ocsp_status(issuer.name, id.serial_hex));
      auto der_out = pki::makeOcspResponse(parsed->value(), issuer, statuses, now, next);
      if (!der_out.isOk()) {
        spdlog::error("pki: OCSP signing failed: {}", der_out.status().message());
        *answer = pki::ocspErrorResponse(OCSP_RESPONSE_STATUS_INTERNALERROR);
      } else {
        *answer = std::move(der_out).value();
      }
    };
    std::function<void(std::function<void()>)> start = [this, work](std::function<void()> done) {
      deps_.run_blocking(work, std::move(done));
    };
    co_await awaitCallback(start);
    co_return ocspResponse(std::move(*answer));
  }

  // awaitCallback resumes on the io thread once |start|'s callback ran.
  asio::awaitable<void> awaitCallback(const std::function<void(std::function<void()>)>& start) {
    auto timer = std::make_shared<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
    auto fired = std::make_shared<bool>(false);
    // The callback runs on the io thread (run_blocking posts it), so only
    // after this coroutine is suspended in async_wait below.
    start([timer, fired] {
      *fired = true;
      timer->cancel();
    });
    if (!*fired) co_await timer->async_wait(kNoThrow);
  }

  asio::io_context& io_;
  const PkiServerConfig config_;
  PkiServerDeps deps_;
  gateway::ConnectRateLimiter limiter_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  uint16_t bound_port_ = 0;
  bool stopping_ = false;
  uint64_t next_connection_id_ = 1;
  std::unordered_map<uint64_t, beast::tcp_stream*> connections_;
};

PkiServer::PkiServer(void* io_context, PkiServerConfig config, PkiServerDeps deps)
    : impl_(std::make_shared<Impl>(*static_cast<asio::io_context*>(io_context), std::move(config), std::move(deps))) {}
PkiServer::~PkiServer() { impl_->stop(); }
core::Status PkiServer::start() { return impl_->start(); }
void PkiServer::stop() { impl_->stop(); }
uint16_t PkiServer::port() const { return impl_->port(); }

}  // namespace warden::api
