#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "trust/trust_score.h"

namespace warden::server {

// HostPort is a parsed "HOST:PORT" or "[V6]:PORT" listen or connect address.
struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string toString() const;  // re-bracketed for IPv6
};

// parseHostPort parses |text|; kInvalidArgument names |what| on failure.
core::Result<HostPort> parseHostPort(std::string_view what, std::string_view text);

// MqttLimitsConfig mirrors `gateway.limits` in warden.yaml.
struct MqttLimitsConfig {
  uint32_t max_packet_size = 256 * 1024;
  uint32_t max_topic_length = 256;
  uint32_t max_topic_levels = 16;
  uint32_t max_filters_per_subscribe = 16;
  uint32_t max_filters_per_session = 100;
  int64_t connect_timeout_s = 10;
  uint32_t max_keepalive_s = 300;
  uint32_t max_buffered = 1024 * 1024;
  double connect_rate_per_second = 50;
  uint32_t connect_rate_burst = 200;
  int64_t session_expiry_max_s = 24 * 3600;
};

// ServerConfig is the content of D/warden.yaml, read once at start.
struct ServerConfig {
  std::string dir;  // the data directory D (not in the file)
  std::string trust_domain = "warden.local";
  HostPort api_listen{"127.0.0.1", 8443};
  HostPort mqtt_listen{"127.0.0.1", 8883};
  HostPort mqtt_upstream{"127.0.0.1", 18883};
  std::vector<std::string> server_names;
  int64_t token_ttl_s = 24 * 3600;
  int64_t cert_ttl_s = 24 * 3600;
  // Where the CA keys live: empty = the files D/pki/issuing.key and
  // D/pki/root.key; otherwise an RFC 7512 PKCS#11 URI (its PIN only by
  // pin-source=file:..., never in this file). `pki.issuing_ca_key` /
  // `pki.root_ca_key` in warden.yaml.
  std::string issuing_ca_key;
  std::string root_ca_key;
  // The plain-HTTP PKI listener (CRLs, CA certificates, OCSP) and the base
  // URL written into every issued certificate's CRL distribution point and
  // AIA ("" means http://<pki_listen>).
  HostPort pki_listen{"127.0.0.1", 8080};
  std::string pki_url;
  // nextUpdate - thisUpdate of the issuing CAs' CRLs; they are remade when
  // half of it has passed, and at most once a second after a revocation.
  int64_t crl_validity_s = 24 * 3600;
  // Validity of the root CRL that `warden init` and `warden ca crl --root` sign.
  int64_t root_crl_validity_s = 365LL * 86400;
  bool approval_manual = false;          // enrollment.approval: manual
  int64_t approval_retry_after_s = 60;   // enrollment.retry_after
  int64_t enroll_failures_per_minute = 20;  // enrollment.failures_per_minute (per source address)
  // enrollment.commit_batch: at most this many issuances (simpleenroll,
  // simplereenroll) share one store transaction (group commit); 1 turns
  // grouping off.
  int64_t enroll_commit_batch = 64;
  int64_t event_retention_s = 30 * 86400;
  int64_t upstream_timeout_s = 5;
  MqttLimitsConfig limits;
  // `trust:` weights, thresholds and re-admission (docs/attestation.md).
  trust::TrustWeights trust;
  std::string log_level = "info";

  std::string storePath() const { return dir + "/warden.db"; }
  // pkiUrl returns pki_url, or http://<pki_listen> when it is empty.
  std::string pkiUrl() const { return pki_url.empty() ? std::string("http://").append(pki_listen.toString()) : pki_url; }
  std::string configPath() const { return dir + "/warden.yaml"; }
};

// loadServerConfig reads and validates D/warden.yaml. Unknown keys are errors
// (a typo must not silently fall back to a default), reported as
// "FILE:LINE:COL: message".
core::Result<ServerConfig> loadServerConfig(const std::string& dir);

// renderServerConfig returns the commented YAML that `warden init` writes.
std::string renderServerConfig(const ServerConfig& config);

}  // namespace warden::server
