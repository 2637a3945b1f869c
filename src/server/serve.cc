// `warden serve`: the control plane (admin API + EST) and the MQTT gateway in
// one process. One I/O thread runs every listener and session; one worker
// thread runs everything that may block (the store, CA signing), so the I/O
// thread never waits on a disk.
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <algorithm>
#include <atomic>
#include <iostream>
#include <optional>

#include "api/api_server.h"
#include "api/pki_server.h"
#include "core/clock.h"
#include "core/file_io.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "gateway/decision_snapshot.h"
#include "gateway/gateway.h"
#include "identity/registry.h"
#include "keystore/key_store.h"
#include "monitor/event_log.h"
#include "pki/ca_set.h"
#include "pki/certificate_authority.h"
#include "pki/pki_files.h"
#include "policy/policy.h"
#include "server/commands.h"
#include "server/ca_inventory.h"
#include "server/config.h"
#include "server/revocation_publisher.h"
#include "server/server_pki.h"
#include "store/sqlite_store.h"
#include "trust/posture.h"

namespace warden::server {
namespace {

namespace asio = boost::asio;
using core::Result;
using core::Status;

constexpr auto kExpiryWarning = std::chrono::hours(24 * 30);
constexpr auto kShutdownDeadline = std::chrono::seconds(8);
// CRLs are remade at most once a second after revocations (coalesced).
constexpr auto kCrlCoalesce = std::chrono::seconds(1);

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
  ControlPlane(ServerConfig config, std::unique_ptr<store::Store> store, std::shared_ptr<const pki::CaSet> cas)
      : config_(std::move(config)),
        clock_(core::systemClock()),
        store_(std::move(store)),
        registry_(*store_, clock_),
        events_(*store_, clock_, eventOptions(config_)),
        publisher_(*store_, config_, clock_),
        worker_(1) {
    cas_.set(std::move(cas));
    registry_.setDefaultTrust(config_.trust.never_attested);
  }

  static monitor::EventLogOptions eventOptions(const ServerConfig& c) {
    monitor::EventLogOptions o;
    o.retention = core::Seconds(c.event_retention_s);
    return o;
  }

  // loadSnapshot builds a DecisionSnapshot from the store (worker thread):
  // the active policy and, for a change to everything, the whole fleet; for
  // a change to some devices, the last snapshot with just their entries
  // read again (Registry::updateFleetState).
  Result<std::shared_ptr<const gateway::DecisionSnapshot>> loadSnapshot(
      const identity::ChangeScope& scope = identity::ChangeScope::all()) {
    std::shared_ptr<const identity::FleetState> fleet;
    if (!scope.everything && last_built_) {
      auto updated = registry_.updateFleetState(*last_built_->fleet, scope.devices);
      if (!updated.isOk()) return updated.status();
      fleet = updated.value();
    } else {
      auto active = store_->activePolicy();
      if (!active.isOk()) return active.status();
      if (!active.value()) return core::dataLoss("the store holds no policy: the installation is incomplete");
      if (!policy_ || policy_version_ != active.value()->version) {
        auto parsed = policy::Policy::parse(active.value()->text, fmt::format("policy v{}", active.value()->version));
        if (!parsed.isOk()) return parsed.status();
        policy_ = parsed.value();
        policy_version_ = active.value()->version;
      }
      auto loaded = registry_.loadFleetState();
      if (!loaded.isOk()) return loaded.status();
      fleet = loaded.value();
    }
    auto snap = std::make_shared<gateway::DecisionSnapshot>();
    snap->policy = policy_;
    snap->fleet = std::move(fleet);
    snap->generation = ++generation_;
    last_built_ = snap;
    return std::shared_ptr<const gateway::DecisionSnapshot>(std::move(snap));
  }

  int run() {
    auto first = loadSnapshot();
    if (!first.isOk()) {
      spdlog::error("cannot load the policy and fleet state: {}", first.status().message());
      return 1;
    }
    snapshots_.set(first.value());
    auto published = publisher_.rebuild(/*remake_crls=*/true);
    if (!published.isOk()) {
      spdlog::error("cannot build the CRLs and OCSP responders: {}", published.status().message());
      return 1;
    }
    revocation_.set(published.value());
    publisher_next_due_ = publisher_.nextDue();

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

    // Continuous verification: posture, trust, automatic quarantine and
    // re-admission, through the same state change and publish as the admin API.
    trust::PostureEngine posture(trust::PostureDeps{
        .store = *store_,
        .events = events_,
        .clock = clock_,
        .trust_domain = config_.trust_domain,
        .weights = config_.trust,
        .run_blocking = [this](std::function<void()> work,
                               std::function<void()> then) { runBlocking(std::move(work), std::move(then)); },
        .publish_change = [this, &gateway](identity::ChangeScope scope, std::function<void()> done) {
          publishChange(gateway, std::move(scope), std::move(done));
        },
        .current = [this]() -> std::pair<std::shared_ptr<const policy::Policy>,
                                         std::shared_ptr<const identity::FleetState>> {
          auto snap = snapshots_.get();
          if (!snap) return {nullptr, nullptr};
          return {snap->policy, snap->fleet};
        },
    });
    if (auto st = posture.load(); !st.isOk()) {
      spdlog::error("cannot load the device postures: {}", st.message());
      return 1;
    }
    gateway.setDenialObserver([&posture](const std::string& device) { posture.noteDenial(device); });
    asio::steady_timer posture_timer(io_);
    std::function<void()> arm_posture = [&] {
      posture_timer.expires_after(std::chrono::seconds(1));
      posture_timer.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        posture.tick(clock_.now());
        arm_posture();
      });
    };
    arm_posture();

    api::ApiConfig ac;
    ac.listen_host = config_.api_listen.host;
    ac.listen_port = config_.api_listen.port;
    ac.trust_domain = config_.trust_domain;
    ac.server_cert_file = paths.gateway_cert();
    ac.server_key_file = paths.gateway_key();
    ac.device_cert_lifetime = std::chrono::seconds(config_.cert_ttl_s);
    ac.pki_url = config_.pkiUrl();
    std::shared_ptr<const pki::CaSet> initial_cas = cas_.get();
    ac.approval_manual = config_.approval_manual;
    ac.issuance_batch = static_cast<size_t>(config_.enroll_commit_batch);
    ac.approval_retry_after = std::chrono::seconds(config_.approval_retry_after_s);
    ac.limits.enroll_failures_per_window = static_cast<int>(config_.enroll_failures_per_minute);
    ac.limits.enroll_failure_window = std::chrono::seconds(60);
    api::ApiDeps deps{
        .registry = registry_,
        .store = *store_,
        .events = events_,
        .issuing_ca = *initial_cas->active(),
        .root_cert = initial_cas->root.get(),
        .snapshot = snapshots_,
        .gateway = gateway,
        .clock = clock_,
        .run_blocking = [this](std::function<void()> work,
                               std::function<void()> then) { runBlocking(std::move(work), std::move(then)); },
        .publish_change = [this, &gateway](identity::ChangeScope scope, std::function<void()> done) {
          publishChange(gateway, std::move(scope), std::move(done));
        },
        // The gateway purges a revoked device's broker session itself when it
        // re-evaluates (see Gateway::reevaluate), so no separate hook.
        .purge_broker_session = nullptr,
        .cas = &cas_,
        .publish_revocation = [this](std::function<void()> done) { requestRevocationRebuild(true, std::move(done)); },
        .reload_cas = [this](std::function<void()> done) { reloadCas(std::move(done)); },
        .posture = &posture,
    };
    api::ApiServer api(&io_, ac, deps);
    if (auto st = api.start(); !st.isOk()) {
      spdlog::error("cannot start the admin API on {}: {}", config_.api_listen.toString(), st.message());
      return 1;
    }
    gateway_ = &gateway;
    api_ = &api;

    api::PkiServerConfig pc;
    pc.listen_host = config_.pki_listen.host;
    pc.listen_port = config_.pki_listen.port;
    api::PkiServerDeps pd{
        .snapshot = revocation_,
        .clock = clock_,
        .run_blocking = [this](std::function<void()> work,
                               std::function<void()> then) { runBlocking(std::move(work), std::move(then)); },
        .ocsp_status = [this](const std::string& ca, const std::string& serial) { return publisher_.status(ca, serial); },
    };
    api::PkiServer pki_server(&io_, pc, pd);
    if (auto st = pki_server.start(); !st.isOk()) {
      spdlog::error("cannot start the PKI listener on {}: {}", config_.pki_listen.toString(), st.message());
      return 1;
    }
    refresh_timer_.emplace(io_);
    coalesce_timer_.emplace(io_);
    armRefresh();

    asio::signal_set signals(io_, SIGTERM, SIGINT);
    asio::steady_timer deadline(io_);
    bool stopping = false;
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec || stopping) return;
      stopping = true;
      spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      api.stop();
      pki_server.stop();
      if (refresh_timer_) refresh_timer_->cancel();
      if (coalesce_timer_) coalesce_timer_->cancel();
      posture_timer.cancel();
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

    spdlog::info("warden serving: admin API https://{}, MQTT gateway {} -> broker {}, PKI http://{}, trust domain {}",
                 config_.api_listen.toString(), config_.mqtt_listen.toString(), config_.mqtt_upstream.toString(),
                 config_.pki_listen.toString(), config_.trust_domain);
    io_.run();
    gateway.setDenialObserver(nullptr);
    gateway_ = nullptr;
    api_ = nullptr;
    // The timers belong to io_, which is destroyed before these members.
    refresh_timer_.reset();
    coalesce_timer_.reset();
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
  // gateway re-evaluate the live sessions |scope| concerns before |done|
  // runs. The single worker serializes rebuilds, so snapshots are published
  // in commit order, each built on the one before (last_built_). Changes
  // that arrive while a rebuild is loading wait for the next one and share
  // it: a burst of enrollments costs a rebuild per load, not one each.
  void publishChange(gateway::Gateway& gateway, identity::ChangeScope scope, std::function<void()> done) {
    asio::dispatch(io_, [this, &gateway, scope = std::move(scope), done = std::move(done)]() mutable {
      if (!pending_scope_) {
        pending_scope_ = std::move(scope);
      } else if (scope.everything) {
        pending_scope_ = identity::ChangeScope::all();
      } else if (!pending_scope_->everything) {
        for (std::string& name : scope.devices) pending_scope_->devices.push_back(std::move(name));
      }
      if (done) change_waiters_.push_back(std::move(done));
      if (!change_loading_) startChange(gateway);
    });
  }

  // startChange loads the snapshot for every change pending (io thread).
  void startChange(gateway::Gateway& gateway) {
    change_loading_ = true;
    auto scope = std::make_shared<identity::ChangeScope>(std::move(*pending_scope_));
    pending_scope_.reset();
    std::sort(scope->devices.begin(), scope->devices.end());
    scope->devices.erase(std::unique(scope->devices.begin(), scope->devices.end()), scope->devices.end());
    auto waiters = std::make_shared<std::vector<std::function<void()>>>(std::move(change_waiters_));
    change_waiters_.clear();
    auto result = std::make_shared<Result<std::shared_ptr<const gateway::DecisionSnapshot>>>(
        core::internalError("not loaded"));
    runBlocking([this, result, scope] { *result = loadSnapshot(*scope); },
                [this, result, scope, waiters, &gateway] {
                  change_loading_ = false;
                  auto all_done = [waiters] {
                    for (auto& done : *waiters) done();
                  };
                  if (!result->isOk()) {
                    // The change is committed; keep enforcing the last good snapshot
                    // and say so loudly (fail closed happens on the next good load).
                    spdlog::error("cannot rebuild the decision snapshot: {}", result->status().message());
                    all_done();
                  } else {
                    snapshots_.set(result->value());
                    gateway.reevaluate(*scope, std::move(all_done));
                  }
                  if (pending_scope_) startChange(gateway);
                });
  }

  // requestRevocationRebuild has the published CRLs/OCSP rebuilt (io
  // thread): at most once per kCrlCoalesce, one rebuild for every request
  // that arrived meanwhile; |done| runs once a rebuild that started after
  // the request has been published.
  void requestRevocationRebuild(bool remake_crls, std::function<void()> done) {
    if (done) rebuild_waiters_.push_back(std::move(done));
    remake_crls_ = remake_crls_ || remake_crls;
    if (rebuild_scheduled_ || !coalesce_timer_) return;
    rebuild_scheduled_ = true;
    if (!rebuild_in_flight_) armCoalesce();
  }

  void armCoalesce() {
    auto now = std::chrono::steady_clock::now();
    auto at = std::max(now, last_rebuild_start_ + kCrlCoalesce);
    coalesce_timer_->expires_at(at);
    coalesce_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      startRebuild();
    });
  }

  void startRebuild() {
    rebuild_scheduled_ = false;
    rebuild_in_flight_ = true;
    last_rebuild_start_ = std::chrono::steady_clock::now();
    const bool remake = remake_crls_;
    remake_crls_ = false;
    auto waiters = std::make_shared<std::vector<std::function<void()>>>(std::move(rebuild_waiters_));
    rebuild_waiters_.clear();
    auto result = std::make_shared<Result<std::shared_ptr<const pki::RevocationSnapshot>>>(
        core::internalError("not built"));
    runBlocking([this, result, remake] { *result = publisher_.rebuild(remake); },
                [this, result, waiters] {
                  rebuild_in_flight_ = false;
                  publisher_next_due_ = publisher_.nextDue();
                  if (result->isOk()) {
                    revocation_.set(result->value());
                  } else {
                    spdlog::error("pki: cannot rebuild CRLs/OCSP: {}", result->status().message());
                  }
                  for (auto& w : *waiters) w();
                  if (rebuild_scheduled_) armCoalesce();
                  armRefresh();
                });
  }

  // armRefresh schedules the next periodic rebuild (CRL half-life, responder
  // renewal, the root CRL file).
  void armRefresh() {
    if (!refresh_timer_) return;
    auto due = publisher_next_due_;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(due - clock_.now());
    wait = std::clamp(wait, std::chrono::milliseconds(1000), std::chrono::milliseconds(60000));
    refresh_timer_->expires_after(wait);
    refresh_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      requestRevocationRebuild(false, nullptr);
    });
  }

  // reloadCas re-reads the CA inventory after a rotation or retirement:
  // the trust bundle file, the gateway's and the API's TLS contexts, the
  // CRLs and OCSP responders.
  void reloadCas(std::function<void()> done) {
    auto result = std::make_shared<Result<std::shared_ptr<const pki::CaSet>>>(core::internalError("not loaded"));
    runBlocking(
        [this, result] {
          *result = loadCaSet(*store_, config_.pkiUrl());
          if (result->isOk()) {
            if (auto st = writeCaBundle(config_.dir, *result->value()); !st.isOk()) *result = st;
          }
        },
        [this, result, done = std::move(done)]() mutable {
          if (!result->isOk()) {
            spdlog::error("cannot reload the CA inventory: {}", result->status().message());
            done();
            return;
          }
          cas_.set(result->value());
          if (gateway_) {
            if (auto st = gateway_->reloadServerTls(); !st.isOk()) spdlog::error("gateway TLS reload: {}", st.message());
          }
          if (api_) {
            if (auto st = api_->reloadTls(); !st.isOk()) spdlog::error("API TLS reload: {}", st.message());
          }
          spdlog::info("CA inventory reloaded: active issuing CA {}", cas_.get()->active()->name);
          requestRevocationRebuild(true, std::move(done));
        });
  }

  ServerConfig config_;
  const core::Clock& clock_;
  std::unique_ptr<store::Store> store_;
  identity::Registry registry_;
  monitor::EventLog events_;
  pki::CaSetHolder cas_;
  pki::RevocationSnapshotHolder revocation_;
  RevocationPublisher publisher_;  // worker thread only
  core::SystemTime publisher_next_due_{};  // io thread
  gateway::Gateway* gateway_ = nullptr;  // io thread, while run() runs
  api::ApiServer* api_ = nullptr;
  std::optional<asio::steady_timer> refresh_timer_, coalesce_timer_;
  std::vector<std::function<void()>> rebuild_waiters_;  // io thread
  // publishChange's coalescing (io thread): the merged scope of the changes
  // waiting for the next snapshot load (none: nothing waits), their
  // completions, and whether a load is running.
  std::optional<identity::ChangeScope> pending_scope_;
  std::vector<std::function<void()>> change_waiters_;
  bool change_loading_ = false;
  bool rebuild_scheduled_ = false, rebuild_in_flight_ = false, remake_crls_ = false;
  std::chrono::steady_clock::time_point last_rebuild_start_{};
  gateway::SnapshotHolder snapshots_;
  std::shared_ptr<const policy::Policy> policy_;  // worker thread only
  int64_t policy_version_ = 0;                     // worker thread only
  uint64_t generation_ = 0;                        // worker thread only
  std::shared_ptr<const gateway::DecisionSnapshot> last_built_;  // worker thread only
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

  auto store = store::SqliteStore::open(config->storePath(), clock);
  if (!store.isOk()) {
    spdlog::error("cannot open the store {}: {}", config->storePath(), store.status().message());
    return 1;
  }
  // Data directories made before the CA inventory: the one issuing CA
  // becomes "issuing-1". Only issuing CA keys are loaded: the root key stays
  // untouched on disk (and can be moved offline).
  if (auto st = bootstrapCaInventory(**store, paths); !st.isOk()) {
    spdlog::error("cannot record the CA inventory: {}", st.message());
    return 1;
  }
  auto cas = loadCaSet(**store, config->pkiUrl());
  if (!cas.isOk()) {
    spdlog::error("cannot load the CAs: {}", cas.status().message());
    return 1;
  }
  if (auto st = writeCaBundle(options.dir, *cas.value()); !st.isOk()) {
    spdlog::error("cannot write the CA bundle: {}", st.message());
    return 1;
  }
  ControlPlane plane(std::move(config).value(), std::move(store).value(), std::move(cas).value());
  return plane.run();
}

}  // namespace warden::server
