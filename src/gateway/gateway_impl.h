#pragma once

// gateway_impl.h: private to src/gateway. Gateway::Impl owns the TLS
// contexts, the listener, the connect-rate limiter and the session registry.

#include <memory>
#include <optional>
#include <string>

#include <span>
#include <vector>

#include <boost/asio.hpp>

// g++ 12 reports a false -Wmismatched-new-delete at the end of Asio
// coroutines (GCC bug 109224: awaitable_frame_base's sized operator delete).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "core/clock.h"
#include "crypto/openssl_ptr.h"
#include "gateway/connect_rate_limiter.h"
#include "gateway/gateway.h"
#include "gateway/session_registry_impl.h"
#include "monitor/event_log.h"

namespace warden::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class Gateway::Impl {
 public:
  Impl(asio::io_context& io, GatewayConfig config, SnapshotHolder& snapshots, monitor::EventLog& events);
  ~Impl();

  core::Status start();
  core::Status reloadServerTls();
  void reevaluate(std::function<void()> done);
  void reevaluate(const identity::ChangeScope& scope, std::function<void()> done);
  void closeDevice(const std::string& name, uint8_t reason_code, std::string reason, std::function<void()> done);
  void shutdown(std::function<void()> done);

  asio::io_context& io() { return io_; }
  const GatewayConfig& config() const { return config_; }
  SnapshotHolder& snapshots() { return snapshots_; }
  const core::Clock& clock() const { return clock_; }
  SSL_CTX* serverTls() { return server_tls_.get(); }
  SSL_CTX* upstreamTls() { return client_tls_.get(); }
  // readScratch is the one plaintext read buffer of all sessions: a reader
  // fills it and hands the bytes to its decoder without suspending between.
  std::span<uint8_t> readScratch() { return read_scratch_; }
  SessionRegistry& registry() { return registry_; }
  const SessionRegistry& registry() const { return registry_; }
  bool shuttingDown() const { return shutting_down_; }
  uint16_t listenPort() const { return bound_port_; }

  // record queues |event| in the event log (non-blocking).
  void record(monitor::Event event);
  // noteDenial reports a deny decision on a packet of |device|'s own session.
  void noteDenial(const std::string& device) {
    if (denial_observer_) denial_observer_(device);
  }
  void setDenialObserver(std::function<void(const std::string&)> observer) { denial_observer_ = std::move(observer); }

 private:
  asio::awaitable<void> acceptLoop();
  // purgeRevokedSessions removes the broker-side session of every device that
  // became revoked since the last reevaluate (no will, no queued messages).
  // With |devices|, only those are looked at (a scoped change).
  void purgeNewlyRevoked(const DecisionSnapshot& now, const std::vector<std::string>* devices = nullptr);

  asio::io_context& io_;
  GatewayConfig config_;
  SnapshotHolder& snapshots_;
  monitor::EventLog& events_;
  const core::Clock& clock_;
  crypto::SslCtxPtr server_tls_;
  crypto::SslCtxPtr client_tls_;
  std::vector<uint8_t> read_scratch_ = std::vector<uint8_t>(16 * 1024);
  std::optional<tcp::acceptor> acceptor_;
  ConnectRateLimiter rate_limiter_;
  SessionRegistry registry_;
  std::shared_ptr<const identity::FleetState> last_fleet_;
  bool shutting_down_ = false;
  uint16_t bound_port_ = 0;
  std::function<void(const std::string&)> denial_observer_;
};

}  // namespace warden::gateway
