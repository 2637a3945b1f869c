#include "agent/renewer.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "agent/agent_files.h"
#include "agent/agent_output.h"
#include "agent/device_key.h"
#include "api/admin_client.h"
#include "api/api_client.h"
#include "api/est_client.h"
#include "core/file_io.h"
#include "core/log.h"
#include "crypto/crypto.h"

namespace warden::agent {
namespace {

using core::Result;
using core::Status;
using SystemClock = std::chrono::system_clock;

// StopSignal turns SIGTERM/SIGINT into a flag that interrupts the waits. A
// request in flight is not waited for beyond a short grace period: every
// file is replaced atomically, so exiting mid-request loses nothing.
class StopSignal {
 public:
  StopSignal() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    std::thread([this] {
      int sig = 0;
      sigwait(&set_, &sig);
      spdlog::info("received {}, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      {
        std::lock_guard<std::mutex> lock(mu_);
        stopped_ = true;
      }
      cv_.notify_all();
      std::this_thread::sleep_for(std::chrono::seconds(2));
      spdlog::default_logger()->flush();
      ::_exit(0);  // the main thread is stuck in a request; nothing is half-written
    }).detach();
  }

  // waitUntil sleeps until |deadline| or a stop; true if stopped.
  bool waitUntil(SystemClock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    // Sleep in steps so a wall-clock jump (suspend, NTP) is noticed.
    while (!stopped_ && SystemClock::now() < deadline) {
      auto step = std::min<SystemClock::duration>(deadline - SystemClock::now(), std::chrono::seconds(30));
      cv_.wait_for(lock, step);
    }
    return stopped_;
  }

  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }

 private:
  sigset_t set_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

Status localFailure(const Status& s) { return core::failedPrecondition(s.message()); }

struct Renewal {
  std::string serial;
  core::SystemTime not_after;
  bool ca_changed = false;
};

// adoptRootUpdate installs a root rollover that selectPinnedChain accepted:
// ca.pem with both roots first, then agent.yaml with the new pin, each
// replaced atomically. A crash in between leaves the old pin with both
// roots in ca.pem; the next renewal moves the pin again.
Status adoptRootUpdate(const AgentPaths& paths, AgentConfig& config, const api::CaChain& chain) {
  if (Status s = core::writeFileAtomic(paths.ca(), chain.pem(), 0644); !s.isOk()) return localFailure(s);
  AgentConfig moved = config;
  moved.ca_fingerprint = chain.pin();
  if (Status s = core::writeFileAtomic(paths.config(), renderAgentConfig(moved), 0644); !s.isOk()) return localFailure(s);
  spdlog::warn("root CA rollover: the pin moves from {} to {} ({}), accepted through a NewWithOld that verifies under "
               "the pinned root; {} keeps both roots",
               config.ca_fingerprint, moved.ca_fingerprint, crypto::commonName(chain.root.get()), paths.ca());
  config = std::move(moved);
  return Status::ok();
}

Result<Renewal> renewOnce(const AgentPaths& paths, AgentConfig& config, const api::ServerUrl& url,
                          const DeviceKeyStore& keys, bool keep_key) {
  auto read = [](const std::string& path) -> Result<std::string> {
    auto r = core::readFile(path, 256 * 1024);
    if (!r.isOk()) return localFailure(r.status());
    return r;
  };
  WARDEN_ASSIGN_OR_RETURN(std::string ca_pem, read(paths.ca()));
  WARDEN_ASSIGN_OR_RETURN(std::string cert_pem, read(paths.cert()));
  auto current = keys.current();
  if (!current.isOk()) return localFailure(current.status());

  api::ApiClientOptions opts;
  opts.server = url;
  opts.tls.trust_pem = ca_pem;
  opts.tls.cert_pem = cert_pem;
  opts.tls.key = current->shared();
  auto client = api::ApiClient::create(opts);
  if (!client.isOk()) return localFailure(client.status());

  // Refresh ca.pem: the pin still decides which root is believed.
  spdlog::info("fetching CA certificates from {}", url.text);
  WARDEN_ASSIGN_OR_RETURN(auto certs, api::fetchCaCerts(**client));
  WARDEN_ASSIGN_OR_RETURN(api::CaChain chain, api::selectPinnedChain(std::move(certs), config.ca_fingerprint));
  for (const std::string& why : chain.refused_roots) {
    spdlog::warn("refused root update: {}; the pin stays {}", why, config.ca_fingerprint);
  }
  Renewal out;
  std::string new_ca = chain.pem();
  if (!chain.previous_pin.empty()) {
    WARDEN_RETURN_IF_ERROR(adoptRootUpdate(paths, config, chain));
    out.ca_changed = true;
  } else if (new_ca != ca_pem) {
    if (Status s = core::writeFileAtomic(paths.ca(), new_ca, 0644); !s.isOk()) return localFailure(s);
    out.ca_changed = true;
    spdlog::info("{} refreshed ({} CA certificates)", paths.ca(), 1 + chain.intermediates.size());
  }

  // A token key keeps its fixed label: it is reused. A file or TPM key is
  // new per renewal unless --keep-key.
  bool same_key = keep_key || keys.kind() == keystore::KeyStoreKind::kPkcs11;
  std::optional<keystore::PrivateKey> fresh;
  if (!same_key) {
    auto made = keys.createForRenewal();
    if (!made.isOk()) return localFailure(made.status());
    fresh.emplace(std::move(made).value());
  }
  const keystore::PrivateKey& key = same_key ? *current : *fresh;
  WARDEN_ASSIGN_OR_RETURN(crypto::X509ReqPtr csr, api::buildCsr(key.get(), config.name));

  opts.tls.trust_pem = new_ca;
  WARDEN_ASSIGN_OR_RETURN(auto reenroll_client, api::ApiClient::create(opts));
  spdlog::info("requesting a new certificate (simplereenroll, {} {} key)", same_key ? "same" : "new",
               keystore::keyStoreKindName(keys.kind()));
  WARDEN_ASSIGN_OR_RETURN(
      crypto::X509Ptr leaf,
      api::requestCertificate(*reenroll_client, "/.well-known/est/simplereenroll", api::csrBody(csr.get()),
                              std::nullopt, {{api::kKeyStoreHeader, std::string(keystore::keyStoreKindName(keys.kind()))}}));
  WARDEN_RETURN_IF_ERROR(api::checkIssuedCertificate(leaf.get(), key.get(), config.name, chain));

  std::vector<X509*> cert_chain{leaf.get()};
  if (X509* issuer = api::issuerOf(leaf.get(), chain)) cert_chain.push_back(issuer);
  std::string new_cert_pem = crypto::certsToPem(cert_chain);
  Status installed;
  if (same_key && keys.kind() != keystore::KeyStoreKind::kFile) {
    installed = installCertificate(paths, new_cert_pem);
  } else if (keys.kind() == keystore::KeyStoreKind::kTpm2) {
    installed = installStagedCredentials(paths, new_cert_pem);  // the TPM blob is staged at key.pem.next
  } else {
    WARDEN_ASSIGN_OR_RETURN(std::string new_key_pem, crypto::privateKeyToPem(key.get()));
    installed = installCredentials(paths, new_key_pem, new_cert_pem);
    std::fill(new_key_pem.begin(), new_key_pem.end(), '\0');
  }
  if (!installed.isOk()) return localFailure(installed);
  out.serial = crypto::serialHex(leaf.get());
  out.not_after = crypto::notAfter(leaf.get());
  return out;
}

}  // namespace

int runAgent(const RunOptions& options) {
  core::initLogging(options.log_level);
  AgentPaths paths(options.dir);
  auto opened = openEnrolledAgent(paths, api::kExitFailed);
  if (auto* exit_code = std::get_if<int>(&opened)) return *exit_code;
  EnrolledAgent& agent = std::get<EnrolledAgent>(opened);
  KeyOpener open_key = [&agent](const std::string& path) { return agent.keys.openFile(path); };
  if (Status s = recoverPendingCredentials(paths, open_key); !s.isOk()) spdlog::warn("{}", s.message());

  StopSignal stop;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  bool renew_now = options.renew_now;
  int attempt = 0;
  // After a failed renewal: when to try again (time_point::min(): no retry
  // pending). Not an optional: g++ 12 -O3 warns maybe-uninitialized on it.
  constexpr SystemClock::time_point kNoRetry = SystemClock::time_point::min();
  SystemClock::time_point retry_at = kNoRetry;
  SystemClock::time_point announced_due{};          // the renewal time last logged
  // Attestation rounds run on this thread between renewals, so the device
  // key and the files of A are never used by two threads at once.
  std::optional<AttestationSchedule> attestation;
  if (!options.once) attestation.emplace(options.attestation, paths);
  // One jitter per process: renewal comes at 2/3 of the life, up to 10 % of
  // the life earlier, so devices enrolled together spread their renewals.
  const double jitter = unit(rng);
  spdlog::info("warden-agent for device {} at {} (directory {})", agent.config.name, agent.url.text, paths.dir);
  while (!stop.stopped()) {
    auto cert_pem = core::readFile(paths.cert(), 256 * 1024);
    auto leaf = cert_pem.isOk() ? crypto::certFromPem(*cert_pem) : Result<crypto::X509Ptr>(cert_pem.status());
    if (!leaf.isOk()) {
      printError(fmt::format("{}: {}; enroll again with `warden-agent enroll`", paths.cert(), leaf.status().message()));
      return api::kExitFailed;
    }
    auto now = SystemClock::now();
    auto not_after = crypto::notAfter(leaf->get());
    auto due = retry_at != kNoRetry ? retry_at : api::renewalTime(leaf->get(), certificateObtainedAt(paths, now), jitter);
    if (renew_now) due = now;
    if (attestation && attestation->next() <= now && attestation->next() <= due) {
      attestation->round(agent.url, agent.keys);
      continue;
    }
    if (now < due) {
      if (retry_at == kNoRetry && due != announced_due) {
        spdlog::info("certificate {} valid until {}; renewal due at {}", crypto::serialHex(leaf->get()),
                     core::formatRfc3339(not_after), core::formatRfc3339(due));
        announced_due = due;
      }
      if (stop.waitUntil(attestation ? std::min(due, attestation->next()) : due)) break;
      continue;
    }
    renew_now = false;
    retry_at = kNoRetry;
    auto renewed = renewOnce(paths, agent.config, agent.url, agent.keys, options.keep_key);
    if (renewed.isOk()) {
      attempt = 0;
      spdlog::info("renewed: certificate {} valid until {}", renewed->serial, core::formatRfc3339(renewed->not_after));
      if (options.once) return api::kExitOk;
      continue;
    }
    const Status& s = renewed.status();
    if (SystemClock::now() >= not_after) {
      spdlog::error("the certificate expired at {}; the server no longer accepts it for renewal: enroll again with a new "
                    "token (`warden device token {}`)",
                    core::formatRfc3339(not_after), agent.config.name);
    }
    if (options.once) {
      printError(fmt::format("renewal failed: {}", s.message()));
      return api::exitCodeFor(s);
    }
    auto delay = api::backoffDelay(attempt++, unit(rng));
    spdlog::warn("renewal failed: {}; retrying in {} s", s.message(),
                 std::chrono::duration_cast<std::chrono::seconds>(delay).count());
    retry_at = SystemClock::now() + std::chrono::duration_cast<SystemClock::duration>(delay);
  }
  spdlog::info("stopped");
  return api::kExitOk;
}

}  // namespace warden::agent
