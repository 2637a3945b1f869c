// `warden serve`: the control plane (admin API + EST) and the MQTT gateway in
// one process. One I/O thread runs every listener and session; one worker
// thread runs everything that may block (the store, CA signing), so the I/O
// thread never waits on a disk.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <iostream>

#include "api/api_server.h"
#include "core/clock.h"
#include "core/file_io.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "gateway/decision_snapshot.h"
#include "gateway/gateway.h"
#include "identity/registry.h"
#include "monitor/event_log.h"
#include "pki/certificate_authority.h"
#include "pki/pki_files.h"
#include "policy/policy.h"
#include "server/commands.h"
#include "server/config.h"
#include "server/server_pki.h"
#include "store/sqlite_store.h"

namespace warden::server {
namespace {

namespace asio = boost::asio;
using core::Result;
using core::Status;

constexpr auto kExpiryWarning = std::chrono::hours(24 * 30);
constexpr auto kShutdownDeadline = std::chrono::seconds(8);

// warnAboutExpiry logs a warning for every certificate of the installation
// that expires within 30 days (serve never reads the root key, only certs).
void warnAboutExpiry(const pki::PkiPaths& paths, const core::Clock& clock) {
  const std::pair<std::string, std::string> files[] = {
      {"root CA", paths.root_cert()},
      {"issuing CA", paths.issuing_cert()},
      {"gateway server certificate", paths.gateway_cert()},
      {"operator certificate", paths.admin_cert()},
      {"upstream CA", paths.upstream_ca_cert()},
      {"gateway upstream client certificate", paths.upstream_client_cert()},
      {"broker certificate", paths.broker_cert()},
  };
  for (const auto& [what, file] : files) {
    auto pem = core::readFile(file, 1024 * 1024);
    if (!pem.isOk()) continue;
    auto cert = crypto::certFromPem(pem.value());
    if (!cert.isOk()) continue;
    auto left = crypto::notAfter(cert->get()) - clock.now();
    if (left < kExpiryWarning) {
      spdlog::warn("the {} ({}) expires {} ({}): renew it before then", what, file,
                   left.count() < 0 ? "has EXPIRED" : "soon", core::formatRfc3339(crypto::notAfter(cert->get())));
    }
  }
}

// ControlPlane holds every long-lived part of a running server.
class ControlPlane {
 public:
  ControlPlane(ServerConfig config, std::unique_ptr<store::Store> store, pki::CaMaterial issuing,
               crypto::X509Ptr root)
      : config_(std::move(config)),
        clock_(core::systemClock()),
        store_(std::move(store)),
        registry_(*store_, clock_),
        events_(*store_, clock_, eventOptions(config_)),
        issuing_(std::move(issuing)),
        root_(std::move(root)),
        worker_(1) {}

  static monitor::EventLogOptions eventOptions(const ServerConfig& c) {
    monitor::EventLogOptions o;
    o.retention = core::Seconds(c.event_retention_s);
    return o;
  }

  // loadSnapshot builds a DecisionSnapshot from the store (worker thread).
  Result<std::shared_ptr<const gateway::DecisionSnapshot>> loadSnapshot() {
    auto active = store_->activePolicy();
    if (!active.isOk()) return active.status();
    if (!active.value()) return core::dataLoss("the store holds no policy: the installation is incomplete");
    if (!policy_ || policy_version_ != active.value()->version) {
      auto parsed = policy::Policy::parse(active.value()->text, fmt::format("policy v{}", active.value()->version));
      if (!parsed.isOk()) return parsed.status();
      policy_ = parsed.value();
      policy_version_ = active.value()->version;
    }
    auto fleet = registry_.loadFleetState();
    if (!fleet.isOk()) return fleet.status();
    auto snap = std::make_shared<gateway::DecisionSnapshot>();
    snap->policy = policy_;
    snap->fleet = fleet.value();
    snap->generation = ++generation_;
    return std::shared_ptr<const gateway::DecisionSnapshot>(std::move(snap));
  }

  int run() {
    auto first = loadSnapshot();
    if (!first.isOk()) {
      spdlog::error("cannot load the policy and fleet state: {}", first.status().message());
      return 1;
    }
    snapshots_.set(first.value());

    pki::PkiPaths paths(config_.dir);
    gateway::GatewayConfig gw;
    gw.listen_host = config_.mqtt_listen.host;
    gw.listen_port = config_.mqtt_listen.port;
    gw.upstream_host = config_.mqtt_upstream.host;
    gw.upstream_port = config_.mqtt_upstream.port;
    gw.trust_domain = config_.trust_domain;
    gw.server_cert_file = paths.gateway_cert();
    gw.server_key_file = paths.gateway_key();
    gw.client_ca_file = caBundlePath(config_.dir);
    gw.upstream_ca_file = paths.upstream_ca_cert();
    gw.upstream_client_cert_file = paths.upstream_client_cert();
    gw.upstream_client_key_file = paths.upstream_client_key();
    gw.upstream_timeout = std::chrono::seconds(config_.upstream_timeout_s);
    const auto& l = config_.limits;
    gw.limits.max_packet_size = l.max_packet_size;
    gw.limits.max_topic_length = l.max_topic_length;
    gw.limits.max_topic_levels = l.max_topic_levels;
    gw.limits.max_filters_per_subscribe = l.max_filters_per_subscribe;
    gw.limits.max_filters_per_session = l.max_filters_per_session;
    gw.limits.connect_timeout = std::chrono::seconds(l.connect_timeout_s);
    gw.limits.keepalive_max = static_cast<uint16_t>(l.max_keepalive_s);
    gw.limits.max_buffered = l.max_buffered;
    gw.limits.connect_rate = l.connect_rate_per_second;
    gw.limits.connect_burst = l.connect_rate_burst;
    gw.limits.session_expiry_max = std::chrono::seconds(l.session_expiry_max_s);

    gateway::Gateway gateway(&io_, gw, snapshots_, events_);
    if (auto st = gateway.start(); !st.isOk()) {
      spdlog::error("cannot start the MQTT gateway on {}: {}", config_.mqtt_listen.toString(), st.message());
      return 1;
    }

    api::ApiConfig ac;
    ac.listen_host = config_.api_listen.host;
    ac.listen_port = config_.api_listen.port;
    ac.trust_domain = config_.trust_domain;
    ac.server_cert_file = paths.gateway_cert();
    ac.server_key_file = paths.gateway_key();
    ac.device_cert_lifetime = std::chrono::seconds(config_.cert_ttl_s);
    ac.approval_manual = config_.approval_manual;
    ac.approval_retry_after = std::chrono::seconds(config_.approval_retry_after_s);
    ac.limits.enroll_failures_per_window = static_cast<int>(config_.enroll_failures_per_minute);
    ac.limits.enroll_failure_window = std::chrono::seconds(60);
    api::ApiDeps deps{
        .registry = registry_,
        .store = *store_,
        .events = events_,
        .issuing_ca = issuing_,
        .root_cert = root_.get(),
        .snapshot = snapshots_,
        .gateway = gateway,
        .clock = clock_,
        .run_blocking = [this](std::function<void()> work,
                               std::function<void()> then) { runBlocking(std::move(work), std::move(then)); },
        .publish_change = [this, &gateway](std::function<void()> done) { publishChange(gateway, std::move(done)); },
        // The gateway purges a revoked device's broker session itself when it
        // re-evaluates (see Gateway::reevaluate), so no separate hook.
        .purge_broker_session = nullptr,
    };
    api::ApiServer api(&io_, ac, deps);
    if (auto st = api.start(); !st.isOk()) {
      spdlog::error("cannot start the admin API on {}: {}", config_.api_listen.toString(), st.message());
      return 1;
    }

    asio::signal_set signals(io_, SIGTERM, SIGINT);
    asio::steady_timer deadline(io_);
    bool stopping = false;
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec || stopping) return;
      stopping = true;
      spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      api.stop();
      deadline.expires_after(kShutdownDeadline);
      deadline.async_wait([&](const boost::system::error_code& e) {
        if (!e) {
          spdlog::warn("shutdown took longer than {}s; stopping anyway", kShutdownDeadline.count());
          io_.stop();
        }
      });
      gateway.shutdown([&] {
        deadline.cancel();
        io_.stop();
      });
    });

    spdlog::info("warden serving: admin API https://{}, MQTT gateway {} -> broker {}, trust domain {}",
                 config_.api_listen.toString(), config_.mqtt_listen.toString(), config_.mqtt_upstream.toString(),
                 config_.trust_domain);
    io_.run();
    worker_.join();
    events_.flush();
    spdlog::info("warden stopped");
    return 0;
  }

 private:
  void runBlocking(std::function<void()> work, std::function<void()> then) {
    asio::post(worker_, [this, work = std::move(work), then = std::move(then)]() mutable {
      work();
      asio::post(io_, std::move(then));
    });
  }

  // publishChange rebuilds the snapshot after a committed change and lets the
  // gateway re-evaluate live sessions before |done| runs. The single worker
  // serializes reloads, so snapshots are published in commit order.
  void publishChange(gateway::Gateway& gateway, std::function<void()> done) {
    auto result = std::make_shared<Result<std::shared_ptr<const gateway::DecisionSnapshot>>>(
        core::internalError("not loaded"));
    runBlocking([this, result] { *result = loadSnapshot(); },
                [this, result, &gateway, done = std::move(done)]() mutable {
                  if (!result->isOk()) {
                    // The change is committed; keep enforcing the last good snapshot
                    // and say so loudly (fail closed happens on the next good load).
                    spdlog::error("cannot rebuild the decision snapshot: {}", result->status().message());
                    done();
                    return;
                  }
                  snapshots_.set(result->value());
                  gateway.reevaluate(std::move(done));
                });
  }

  ServerConfig config_;
  const core::Clock& clock_;
  std::unique_ptr<store::Store> store_;
  identity::Registry registry_;
  monitor::EventLog events_;
  pki::CaMaterial issuing_;
  crypto::X509Ptr root_;
  gateway::SnapshotHolder snapshots_;
  std::shared_ptr<const policy::Policy> policy_;  // worker thread only
  int64_t policy_version_ = 0;                     // worker thread only
  uint64_t generation_ = 0;                        // worker thread only
  asio::io_context io_{1};
  asio::thread_pool worker_;
};

}  // namespace

int runServe(const ServeOptions& options) {
  if (options.dir.empty()) {
    std::cerr << "warden serve: --dir is required (or set WARDEN_DIR): the directory made by `warden init`\n";
    return 2;
  }
  auto config = loadServerConfig(options.dir);
  if (!config.isOk()) {
    std::cerr << "warden serve: " << config.status().message() << "\n";
    return config.status().code() == core::ErrorCode::kInvalidArgument ? 2 : 1;
  }
  core::initLogging(options.log_level.empty() ? config->log_level : options.log_level);
  const core::Clock& clock = core::systemClock();
  pki::PkiPaths paths(options.dir);
  warnAboutExpiry(paths, clock);

  // Only the issuing CA's key is loaded: the root key stays untouched on disk
  // (and can be moved offline).
  auto issuing_pem = core::readFile(paths.issuing_cert(), 1024 * 1024);
  auto issuing_key = core::readFile(paths.issuing_key(), 1024 * 1024);
  auto root_pem = core::readFile(paths.root_cert(), 1024 * 1024);
  for (const auto* r : {&issuing_pem, &issuing_key, &root_pem}) {
    if (!r->isOk()) {
      spdlog::error("cannot read the PKI: {}", r->status().message());
      return 1;
    }
  }
  auto issuing = pki::caMaterialFromPem(issuing_pem.value(), issuing_key.value());
  if (!issuing.isOk()) {
    spdlog::error("cannot load the issuing CA: {}", issuing.status().message());
    return 1;
  }
  auto root = crypto::certFromPem(root_pem.value());
  if (!root.isOk()) {
    spdlog::error("cannot load the root CA certificate: {}", root.status().message());
    return 1;
  }
  auto store = store::SqliteStore::open(config->storePath(), clock);
  if (!store.isOk()) {
    spdlog::error("cannot open the store {}: {}", config->storePath(), store.status().message());
    return 1;
  }
  ControlPlane plane(std::move(config).value(), std::move(store).value(), std::move(issuing).value(),
                     std::move(root).value());
  return plane.run();
}

}  // namespace warden::server
