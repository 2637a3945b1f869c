#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <openssl/types.h>

#include "core/clock.h"
#include "core/status.h"
#include "identity/fleet_state.h"

namespace warden::identity {
class Registry;
}
namespace warden::store {
class Store;
}
namespace warden::monitor {
class EventLog;
}
namespace warden::trust {
class PostureEngine;
}
namespace warden::pki {
struct CaMaterial;
class CaSetHolder;
}
namespace warden::trust {
class PostureEngine;
}
namespace warden::gateway {
class SnapshotHolder;
class Gateway;
}  // namespace warden::gateway

namespace warden::api {

// ApiLimits are the HTTP limits of the admin/EST listener (issue 2, "Limits").
struct ApiLimits {
  size_t max_header_bytes = 8 * 1024;
  size_t max_body_bytes = 16 * 1024;
  size_t max_policy_body_bytes = 1024 * 1024;  // PUT /v1/policy only
  size_t max_evidence_body_bytes = 256 * 1024;  // POST /attest/v1/evidence only
  std::chrono::seconds idle_timeout{30};
  size_t max_connections = 1024;
  // EST authentication/CSR failures allowed per source address per window,
  // then 429 + Retry-After until the window ends.
  int enroll_failures_per_window = 20;
  std::chrono::seconds enroll_failure_window{60};
  // Longest long-poll of GET /v1/events?wait=S.
  std::chrono::seconds max_event_wait{30};
};

// ApiConfig is the listener's immutable configuration.
struct ApiConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8443;
  std::string trust_domain = "warden.local";
  // TLS server material: the server certificate chain (gateway.pem: leaf +
  // issuing CA) and its key. Client certificates are verified against
  // ApiDeps::root_cert + ApiDeps::issuing_ca (kept in memory).
  std::string server_cert_file;
  std::string server_key_file;
  // Lifetime of certificates issued by simpleenroll/simplereenroll
  // (pki.cert_ttl), unless the device or its manufacturer sets one.
  std::chrono::seconds device_cert_lifetime{86400};
  // Base URL of the PKI listener, written into the certificates of a CA
  // that `POST /v1/cas` activates ("" for none).
  std::string pki_url;
  // enrollment.approval: manual makes every enrollment (tokens, and factory
  // identities of manufacturers without their own setting) wait for an
  // operator: 202 + Retry-After |approval_retry_after| until approved.
  bool approval_manual = false;
  std::chrono::seconds approval_retry_after{60};
  // At most this many token enrollments and renewals are recorded in one
  // store transaction (store::GroupCommit); 1: one transaction each.
  size_t issuance_batch = 64;
  ApiLimits limits;
};

// ApiDeps are the services the API server calls. Everything referenced must
// outlive the server (until the io_context has stopped running it).
struct ApiDeps {
  identity::Registry& registry;
  store::Store& store;
  monitor::EventLog& events;
  const pki::CaMaterial& issuing_ca;  // signs device certificates
  X509* root_cert;                    // not owned; cacerts + ca_fingerprint
  gateway::SnapshotHolder& snapshot;
  gateway::Gateway& gateway;
  const core::Clock& clock;
  // run_blocking runs |work| on the worker thread (store, CA signing, token
  // hashing) and then |then| on the io thread.
  std::function<void(std::function<void()> work, std::function<void()> then)> run_blocking;
  // publish_change brings the snapshot up to date for what |scope| names
  // (FleetState entries of some devices, or policy and fleet alike), has the
  // gateway re-evaluate the live sessions concerned and calls |done| on the
  // io thread once every affected session has been cut or restricted.
  std::function<void(identity::ChangeScope scope, std::function<void()> done)> publish_change;
  // purge_broker_session (optional) removes the device's persistent broker
  // session (no will, no queued messages); |done| runs on the io thread.
  std::function<void(const std::string& device, std::function<void()> done)> purge_broker_session;
  // cas (optional) holds the CAs after rotations: the active issuing CA
  // signs, every non-retired one is trusted and in cacerts. Without it the
  // API uses issuing_ca and root_cert for its whole life.
  pki::CaSetHolder* cas = nullptr;
  // publish_revocation (optional) has the CRLs remade (coalesced) and calls
  // |done| on the io thread once the PKI listener serves them.
  std::function<void(std::function<void()> done)> publish_revocation;
  // reload_cas (optional) re-reads the CA inventory after a rotation or a
  // retirement (trust bundles, the gateway's and this API's TLS contexts,
  // CRLs and OCSP) and calls |done| on the io thread.
  std::function<void(std::function<void()> done)> reload_cas;
  // posture is the posture engine (issue 6): the /attest/v1 endpoints hand
  // it their verdicts; operator quarantine and release tell it, `warden
  // firmware` goes through it, device show prints its posture. Without it
  // those routes answer 503.
  trust::PostureEngine* posture = nullptr;
};

// ApiServer is the HTTPS listener for the admin API (mutual TLS, JSON) and
// EST enrollment (RFC 7030). It runs on the caller's io_context (one thread,
// shared with the gateway) and never blocks it.
class ApiServer {
 public:
  // |io_context| is a boost::asio::io_context*.
  ApiServer(void* io_context, ApiConfig config, ApiDeps deps);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // start loads the TLS material and binds the listener; it returns an error
  // if a file is unreadable or the port is busy. Call on the io thread or
  // before the io_context runs.
  core::Status start();
  // stop closes the listener and every open connection (io thread).
  void stop();
  // reloadTls rebuilds the TLS context from the server certificate files and
  // the current CA set; new connections use it, open ones keep theirs (io
  // thread).
  core::Status reloadTls();
  // port returns the bound port (useful with listen_port 0).
  uint16_t port() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace warden::api
