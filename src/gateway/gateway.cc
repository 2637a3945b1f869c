#include "gateway/gateway.h"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "gateway/gateway_impl.h"
#include "gateway/mqtt_session_impl.h"
#include "gateway/upstream_connector_impl.h"
#include "pki/tls_config.h"

namespace warden::gateway {

namespace {

// Countdown posts |done| to the io thread once every holder has released it.
class Countdown {
 public:
  Countdown(asio::io_context& io, std::function<void()> done) : io_(io), done_(std::move(done)) {}
  ~Countdown() {
    if (done_) asio::post(io_, std::move(done_));
  }

 private:
  asio::io_context& io_;
  std::function<void()> done_;
};

}  // namespace

Gateway::Impl::Impl(asio::io_context& io, GatewayConfig config, SnapshotHolder& snapshots, monitor::EventLog& events)
    : io_(io),
      config_(std::move(config)),
      snapshots_(snapshots),
      events_(events),
      clock_(core::systemClock()),
      rate_limiter_(config_.limits.connect_rate, config_.limits.connect_burst) {}

Gateway::Impl::~Impl() {
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
  for (auto& s : registry_.all()) s->abort();
}

void Gateway::Impl::record(monitor::Event event) { events_.record(std::move(event)); }

core::Status Gateway::Impl::start() {
  pki::TlsFiles server_files;
  server_files.cert_chain_file = config_.server_cert_file;
  server_files.key_file = config_.server_key_file;
  server_files.trust_bundle_file = config_.client_ca_file;
  WARDEN_ASSIGN_OR_RETURN(crypto::SslCtxPtr server_ctx,
                          pki::makeServerTlsContext(server_files, pki::ClientCertMode::kRequire, clock_));
  pki::TlsFiles client_files;
  client_files.cert_chain_file = config_.upstream_client_cert_file;
  client_files.key_file = config_.upstream_client_key_file;
  client_files.trust_bundle_file = config_.upstream_ca_file;
  WARDEN_ASSIGN_OR_RETURN(crypto::SslCtxPtr client_ctx, pki::makeClientTlsContext(client_files));
  // The upstream connection is never resumed: asking the broker for no
  // session tickets saves both sides a session copy per connection.
  SSL_CTX_set_options(client_ctx.get(), SSL_OP_NO_TICKET);
  server_tls_ = std::move(server_ctx);
  client_tls_ = std::move(client_ctx);

  boost::system::error_code ec;
  auto address = asio::ip::make_address(config_.listen_host, ec);
  if (ec) {
    return core::invalidArgument(fmt::format("MQTT listen address '{}' is not an IP address", config_.listen_host));
  }
  tcp::endpoint endpoint(address, config_.listen_port);
  acceptor_.emplace(io_);
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor_.reset();
    return core::unavailable(fmt::format("cannot listen for MQTT on {}:{}: {}", config_.listen_host,
                                         config_.listen_port, ec.message()));
  }
  bound_port_ = acceptor_->local_endpoint(ec).port();
  if (auto snap = snapshots_.get()) last_fleet_ = snap->fleet;
  asio::co_spawn(io_, acceptLoop(), asio::detached);
  spdlog::info("MQTT gateway listening on {}:{}, upstream {}:{}", config_.listen_host, bound_port_,
               config_.upstream_host, config_.upstream_port);
  return core::Status::ok();
}

core::Status Gateway::Impl::reloadServerTls() {
  pki::TlsFiles server_files;
  server_files.cert_chain_file = config_.server_cert_file;
  server_files.key_file = config_.server_key_file;
  server_files.trust_bundle_file = config_.client_ca_file;
  WARDEN_ASSIGN_OR_RETURN(crypto::SslCtxPtr server_ctx,
                          pki::makeServerTlsContext(server_files, pki::ClientCertMode::kRequire, clock_));
  // Live sessions hold their own reference (SSL_new up-refs the context).
  server_tls_ = std::move(server_ctx);
  return core::Status::ok();
}

asio::awaitable<void> Gateway::Impl::acceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_->async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_ || !acceptor_->is_open() || shutting_down_) co_return;
      // EMFILE and friends: back off instead of spinning.
      spdlog::warn("MQTT accept failed: {}", ec.message());
      asio::steady_timer t(io_, std::chrono::milliseconds(100));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (shutting_down_) co_return;
    boost::system::error_code ep_ec;
    auto remote = socket.remote_endpoint(ep_ec);
    std::string address = ep_ec ? std::string("unknown") : remote.address().to_string();
    std::string peer = ep_ec ? address : fmt::format("{}:{}", address, remote.port());
    if (!rate_limiter_.allow(address, clock_.steadyNow())) {
      spdlog::debug("MQTT connection from {} refused: connect rate limit", address);
      monitor::Event e;
      e.type = monitor::event_type::kTlsReject;
      e.action = "tls:handshake";
      e.decision = "deny";
      e.reason = monitor::reason::kRateLimited;
      e.detail = nlohmann::json{{"remote", peer}, {"error", "connection rate limit for this source address"}};
      record(std::move(e));
      socket.close(ep_ec);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ep_ec);
    auto session = std::make_shared<MqttSession>(*this, std::move(socket),
                                                 std::move(peer));
    registry_.add(session);
    session->start();
  }
}

void Gateway::Impl::reevaluate(std::function<void()> done) { reevaluate(identity::ChangeScope::all(), std::move(done)); }

void Gateway::Impl::reevaluate(const identity::ChangeScope& scope, std::function<void()> done) {
  const auto start = std::chrono::steady_clock::now();
  // Live sessions, and closed ones whose delayed will the broker still holds.
  std::vector<std::shared_ptr<MqttSession>> sessions, wills;
  if (scope.everything) {
    sessions = registry_.all();
    wills = registry_.parkedWills();
  } else {
    for (const std::string& name : scope.devices) {
      if (auto s = registry_.findDevice(name)) sessions.push_back(std::move(s));
      if (auto w = registry_.findWill(name)) wills.push_back(std::move(w));
    }
  }
  const bool log = scope.everything;  // a device's own change is not worth two log lines
  auto finished = [start, n = sessions.size(), log, done = std::move(done)]() {
    // Every affected session is closed (DISCONNECT sent) or restricted.
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (log) spdlog::info("re-evaluation of {} live sessions complete in {:.1f} ms", n, ms);
    if (done) done();
  };
  auto countdown = std::make_shared<Countdown>(io_, std::move(finished));
  auto snap = snapshots_.get();
  if (snap) purgeNewlyRevoked(*snap, scope.everything ? nullptr : &scope.devices);
  for (auto& s : sessions) {
    s->reevaluate([countdown] {});
  }
  // A will that is no longer permitted is cancelled before the change completes.
  for (auto& w : wills) w->recheckParkedWill([countdown] {});
  // Cuts have queued their DISCONNECT and suspended filters deliver nothing
  // from here on.
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (log) spdlog::info("re-evaluated {} live sessions in {:.1f} ms", sessions.size(), ms);
}

void Gateway::Impl::purgeNewlyRevoked(const DecisionSnapshot& snap, const std::vector<std::string>* devices) {
  if (!snap.fleet) return;
  auto previous = std::move(last_fleet_);
  last_fleet_ = snap.fleet;
  if (!previous) return;
  auto check = [&](const std::string& name, const identity::DeviceEntry& entry) {
    if (entry.state != store::DeviceState::kRevoked) return;
    const identity::DeviceEntry* before = previous->findDevice(name);
    if (before == nullptr || before->state == store::DeviceState::kRevoked) return;
    if (registry_.findDevice(name)) return;  // the live session purges on its cut
    // Offline device: drop its broker session (queued messages, will) now.
    registry_.forgetSession(name);
    asio::co_spawn(io_, purgeBrokerSession(*this, name), asio::detached);
  };
  if (devices != nullptr) {
    for (const std::string& name : *devices) {
      if (const identity::DeviceEntry* entry = snap.fleet->findDevice(name)) check(name, *entry);
    }
    return;
  }
  for (const auto& [name, entry] : snap.fleet->devices) check(name, entry);
}

void Gateway::Impl::closeDevice(const std::string& name, uint8_t reason_code, std::string reason,
                                std::function<void()> done) {
  auto session = registry_.findDevice(name);
  if (!session) {
    if (done) asio::post(io_, std::move(done));
    return;
  }
  session->cut(reason_code, std::move(reason), /*purge=*/false, std::move(done));
}

void Gateway::Impl::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
  auto countdown = std::make_shared<Countdown>(io_, std::move(done));
  for (auto& s : registry_.all()) {
    s->cut(0x8B, std::string(monitor::reason::kShutdown), /*purge=*/false, [countdown] {});
  }
}

Gateway::Gateway(void* io_context, GatewayConfig config, SnapshotHolder& snapshots, monitor::EventLog& events)
    : impl_(std::make_unique<Impl>(*static_cast<asio::io_context*>(io_context), std::move(config), snapshots, events)) {}

Gateway::~Gateway() = default;

core::Status Gateway::start() { return impl_->start(); }
core::Status Gateway::reloadServerTls() { return impl_->reloadServerTls(); }
uint16_t Gateway::listenPort() const { return impl_->listenPort(); }
void Gateway::setDenialObserver(std::function<void(const std::string& device)> observer) {
  impl_->setDenialObserver(std::move(observer));
}

void Gateway::reevaluate(std::function<void()> done) { impl_->reevaluate(std::move(done)); }
void Gateway::reevaluate(const identity::ChangeScope& scope, std::function<void()> done) {
  impl_->reevaluate(scope, std::move(done));
}
void Gateway::closeDevice(const std::string& name, uint8_t reason_code, std::string reason,
                          std::function<void()> done) {
  impl_->closeDevice(name, reason_code, std::move(reason), std::move(done));
}
std::vector<SessionImpact> Gateway::dryRun(const policy::Policy& candidate) const {
  std::vector<SessionImpact> out;
  for (auto& s : impl_->registry().all()) {
    if (auto impact = s->dryRun(candidate)) out.push_back(std::move(*impact));
  }
  return out;
}

std::vector<std::string> Gateway::connectedDevices() const { return impl_->registry().deviceNames(); }
void Gateway::shutdown(std::function<void()> done) { impl_->shutdown(std::move(done)); }

}  // namespace warden::gateway
