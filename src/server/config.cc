#include "server/config.h"

#include <charconv>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <set>
#include <yaml-cpp/yaml.h>

#include "core/file_io.h"
#include "core/names.h"
#include "keystore/pkcs11_uri.h"
#include "pki/certificate_authority.h"
#include "identity/factory_identity.h"

namespace warden::server {

using core::Result;
using core::Status;

std::string HostPort::toString() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<HostPort> parseHostPort(std::string_view what, std::string_view text) {
  auto bad = [&](std::string_view why) {
    return core::invalidArgument(fmt::format("invalid {} '{}': {} (expected HOST:PORT, e.g. 127.0.0.1:8883 or [::1]:8883)",
                                             what, text.substr(0, 100), why));
  };
  HostPort hp;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("unterminated IPv6 address");
    }
    hp.host.assign(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    hp.host.assign(text.substr(0, colon));
    if (hp.host.find(':') != std::string::npos) return bad("put IPv6 addresses in brackets");
    port_text = text.substr(colon + 1);
  }
  if (hp.host.empty()) return bad("empty host");
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return bad("port must be 1-65535");
  }
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

namespace {

std::string where(const std::string& file, const YAML::Node& node) {
  YAML::Mark m = node.Mark();
  if (m.is_null()) return file;
  return fmt::format("{}:{}:{}", file, m.line + 1, m.column + 1);
}

Status fail(const std::string& file, const YAML::Node& node, std::string_view message) {
  return core::invalidArgument(fmt::format("{}: {}", where(file, node), message));
}

Status checkKeys(const std::string& file, const YAML::Node& map, const std::set<std::string>& allowed,
                 std::string_view section) {
  if (!map.IsMap()) return fail(file, map, fmt::format("'{}' must be a mapping", section));
  for (const auto& kv : map) {
    std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      return fail(file, kv.first,
                  fmt::format("unknown key '{}' in {} (allowed: {})", key, section, fmt::join(allowed, ", ")));
    }
  }
  return Status::ok();
}

Result<int64_t> durationAt(const std::string& file, const YAML::Node& node) {
  auto d = core::parseDuration(node.as<std::string>());
  if (!d.isOk()) return fail(file, node, d.status().message());
  return d.value();
}

template <typename T>
Result<T> numberAt(const std::string& file, const YAML::Node& node, T min, T max) {
  T v{};
  if (!YAML::convert<T>::decode(node, v) || v < min || v > max) {
    return fail(file, node, fmt::format("expected a number from {} to {}", min, max));
  }
  return v;
}

Result<ServerConfig> parseConfig(const std::string& file, const YAML::Node& root, const std::string& dir) {
  ServerConfig c;
  c.dir = dir;
  if (!root.IsMap()) return fail(file, root, "the configuration must be a YAML mapping");
  WARDEN_RETURN_IF_ERROR(checkKeys(file, root,
                                   {"trust_domain", "api", "mqtt", "server_names", "enrollment", "pki", "gateway",
                                    "events", "log_level", "trust"},
                                   "warden.yaml"));
  if (auto n = root["trust_domain"]) {
    c.trust_domain = n.as<std::string>();
    if (!core::isValidTrustDomain(c.trust_domain)) return fail(file, n, "trust_domain must be a lowercase DNS name");
  }
  if (auto api = root["api"]) {
    WARDEN_RETURN_IF_ERROR(checkKeys(file, api, {"listen"}, "api"));
    if (auto n = api["listen"]) {
      auto hp = parseHostPort("api.listen", n.as<std::string>());
      if (!hp.isOk()) return fail(file, n, hp.status().message());
      c.api_listen = hp.value();
    }
  }
  if (auto mqtt = root["mqtt"]) {
    WARDEN_RETURN_IF_ERROR(checkKeys(file, mqtt, {"listen", "upstream", "upstream_timeout"}, "mqtt"));
    if (auto n = mqtt["listen"]) {
      auto hp = parseHostPort("mqtt.listen", n.as<std::string>());
      if (!hp.isOk()) return fail(file, n, hp.status().message());
      c.mqtt_listen = hp.value();
    }
    if (auto n = mqtt["upstream"]) {
      auto hp = parseHostPort("mqtt.upstream", n.as<std::string>());
      if (!hp.isOk()) return fail(file, n, hp.status().message());
      c.mqtt_upstream = hp.value();
    }
    if (auto n = mqtt["upstream_timeout"]) {
      WARDEN_ASSIGN_OR_RETURN(c.upstream_timeout_s, durationAt(file, n));
    }
  }
  if (auto n = root["server_names"]) {
    if (!n.IsSequence()) return fail(file, n, "server_names must be a list");
    for (const auto& s : n) c.server_names.push_back(s.as<std::string>());
  }
  if (auto e = root["enrollment"]) {
    WARDEN_RETURN_IF_ERROR(checkKeys(file, e, {"token_ttl", "approval", "retry_after", "failures_per_minute", "commit_batch"},
                                     "enrollment"));
    if (auto n = e["failures_per_minute"]) {
      WARDEN_ASSIGN_OR_RETURN(c.enroll_failures_per_minute, numberAt<int64_t>(file, n, 1, 100000));
    }
    if (auto n = e["commit_batch"]) {
      WARDEN_ASSIGN_OR_RETURN(c.enroll_commit_batch, numberAt<int64_t>(file, n, 1, 1024));
    }
    if (auto n = e["approval"]) {
      std::string v = n.as<std::string>();
      if (v != "auto" && v != "manual") return fail(file, n, "enrollment.approval must be auto or manual");
      c.approval_manual = v == "manual";
    }
    if (auto n = e["retry_after"]) {
      WARDEN_ASSIGN_OR_RETURN(c.approval_retry_after_s, durationAt(file, n));
      if (c.approval_retry_after_s > 3600) return fail(file, n, "enrollment.retry_after must be at most 1h");
    }
    if (auto n = e["token_ttl"]) {
      WARDEN_ASSIGN_OR_RETURN(c.token_ttl_s, durationAt(file, n));
      if (c.token_ttl_s > 30 * 86400) return fail(file, n, "enrollment.token_ttl must be at most 30d");
    }
  }
  if (auto p = root["pki"]) {
    WARDEN_RETURN_IF_ERROR(checkKeys(file, p, {"cert_ttl", "issuing_ca_key", "root_ca_key", "listen", "url", "crl_validity", "root_crl_validity"}, "pki"));
    for (auto [name, out] : {std::pair{"issuing_ca_key", &c.issuing_ca_key}, std::pair{"root_ca_key", &c.root_ca_key}}) {
      auto n = p[name];
      if (!n) continue;
      auto uri = keystore::parsePkcs11Uri(n.as<std::string>());
      if (!uri.isOk()) return fail(file, n, fmt::format("pki.{}: {}", name, uri.status().message()));
      *out = uri->toString();
    }
    if (auto n = p["cert_ttl"]) {
      auto ttl = identity::parseCertTtl(n.as<std::string>());
      if (!ttl.isOk()) return fail(file, n, "pki.cert_ttl: " + ttl.status().message());
      c.cert_ttl_s = *ttl;
    }
    if (auto n = p["listen"]) {
      auto hp = parseHostPort("pki.listen", n.as<std::string>());
      if (!hp.isOk()) return fail(file, n, hp.status().message());
      c.pki_listen = hp.value();
    }
    if (auto n = p["url"]) {
      c.pki_url = n.as<std::string>();
      if (!c.pki_url.empty() && !pki::isValidPkiUrl(c.pki_url)) {
        return fail(file, n, "pki.url must be an http:// URL without spaces, commas, query or trailing '/'");
      }
    }
    if (auto n = p["crl_validity"]) {
      WARDEN_ASSIGN_OR_RETURN(c.crl_validity_s, durationAt(file, n));
      if (c.crl_validity_s < 120 || c.crl_validity_s > 30 * 86400) {
        return fail(file, n, "pki.crl_validity must be from 2m to 30d");
      }
    }
    if (auto n = p["root_crl_validity"]) {
      WARDEN_ASSIGN_OR_RETURN(c.root_crl_validity_s, durationAt(file, n));
      if (c.root_crl_validity_s < 86400 || c.root_crl_validity_s > 5LL * 365 * 86400) {
        return fail(file, n, "pki.root_crl_validity must be from 1d to 1825d");
      }
    }
  }
  if (auto ev = root["events"]) {
    WARDEN_RETURN_IF_ERROR(checkKeys(file, ev, {"retention"}, "events"));
    if (auto n = ev["retention"]) {
      WARDEN_ASSIGN_OR_RETURN(c.event_retention_s, durationAt(file, n));
    }
  }
  if (auto n = root["log_level"]) {
    c.log_level = n.as<std::string>();
    static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error", "critical"};
    if (!levels.count(c.log_level)) return fail(file, n, "log_level must be trace, debug, info, warn or error");
  }
  if (auto t = root["trust"]) {
    WARDEN_RETURN_IF_ERROR(checkKeys(file, t,
                                     {"tpm_healthy", "software_healthy", "never_attested", "stale", "failed",
                                      "denial_cost", "denial_max", "denial_window", "quarantine_below", "readmission"},
                                     "trust"));
    auto& w = c.trust;
    for (auto [key, field] : {std::pair{"tpm_healthy", &w.tpm_healthy}, std::pair{"software_healthy", &w.software_healthy},
                              std::pair{"never_attested", &w.never_attested}, std::pair{"stale", &w.stale},
                              std::pair{"failed", &w.failed}, std::pair{"denial_cost", &w.denial_cost},
                              std::pair{"denial_max", &w.denial_max}}) {
      if (auto n = t[key]) { WARDEN_ASSIGN_OR_RETURN(*field, numberAt<int>(file, n, 0, 100)); }
    }
    if (auto n = t["quarantine_below"]) { WARDEN_ASSIGN_OR_RETURN(w.quarantine_below, numberAt<int>(file, n, 0, 90)); }
    if (auto n = t["denial_window"]) {
      int64_t s = 0;
      WARDEN_ASSIGN_OR_RETURN(s, durationAt(file, n));
      if (s > 86400) return fail(file, n, "trust.denial_window must be at most 1d");
      w.denial_window = std::chrono::seconds(s);
    }
    if (auto n = t["readmission"]) {
      std::string v = n.as<std::string>();
      if (v != "auto" && v != "manual") return fail(file, n, "trust.readmission must be auto or manual");
      w.readmission_auto = v == "auto";
    }
    if (w.tpm_healthy < w.suspectBelow() || w.software_healthy < w.suspectBelow()) {
      return fail(file, t, fmt::format("trust: a healthy device must be able to reach quarantine_below + 10 ({}) to be "
                                       "re-admitted; raise tpm_healthy/software_healthy or lower quarantine_below",
                                       w.suspectBelow()));
    }
  }
  if (auto g = root["gateway"]) {
    WARDEN_RETURN_IF_ERROR(checkKeys(file, g, {"limits"}, "gateway"));
    if (auto l = g["limits"]) {
      WARDEN_RETURN_IF_ERROR(checkKeys(file, l,
                                       {"max_packet_size", "max_topic_length", "max_topic_levels",
                                        "max_filters_per_subscribe", "max_filters_per_session", "connect_timeout",
                                        "max_keepalive", "max_buffered", "connect_rate", "session_expiry_max"},
                                       "gateway.limits"));
      auto& m = c.limits;
      if (auto n = l["max_packet_size"]) { WARDEN_ASSIGN_OR_RETURN(m.max_packet_size, numberAt<uint32_t>(file, n, 1024, 268435455)); }
      if (auto n = l["max_topic_length"]) { WARDEN_ASSIGN_OR_RETURN(m.max_topic_length, numberAt<uint32_t>(file, n, 1, 65535)); }
      if (auto n = l["max_topic_levels"]) { WARDEN_ASSIGN_OR_RETURN(m.max_topic_levels, numberAt<uint32_t>(file, n, 1, 1024)); }
      if (auto n = l["max_filters_per_subscribe"]) { WARDEN_ASSIGN_OR_RETURN(m.max_filters_per_subscribe, numberAt<uint32_t>(file, n, 1, 1024)); }
      if (auto n = l["max_filters_per_session"]) { WARDEN_ASSIGN_OR_RETURN(m.max_filters_per_session, numberAt<uint32_t>(file, n, 1, 100000)); }
      if (auto n = l["connect_timeout"]) { WARDEN_ASSIGN_OR_RETURN(m.connect_timeout_s, durationAt(file, n)); }
      if (auto n = l["max_keepalive"]) {
        int64_t s = 0;
        WARDEN_ASSIGN_OR_RETURN(s, durationAt(file, n));
        if (s > 65535) return fail(file, n, "max_keepalive must be at most 65535s");
        m.max_keepalive_s = static_cast<uint32_t>(s);
      }
      if (auto n = l["max_buffered"]) { WARDEN_ASSIGN_OR_RETURN(m.max_buffered, numberAt<uint32_t>(file, n, 65536, 1u << 30)); }
      if (auto n = l["session_expiry_max"]) { WARDEN_ASSIGN_OR_RETURN(m.session_expiry_max_s, durationAt(file, n)); }
      if (auto r = l["connect_rate"]) {
        WARDEN_RETURN_IF_ERROR(checkKeys(file, r, {"per_second", "burst"}, "gateway.limits.connect_rate"));
        if (auto n = r["per_second"]) { WARDEN_ASSIGN_OR_RETURN(m.connect_rate_per_second, numberAt<double>(file, n, 0.1, 1e6)); }
        if (auto n = r["burst"]) { WARDEN_ASSIGN_OR_RETURN(m.connect_rate_burst, numberAt<uint32_t>(file, n, 1, 1000000)); }
      }
    }
  }
  return c;
}

}  // namespace

Result<ServerConfig> loadServerConfig(const std::string& dir) {
  std::string file = dir + "/warden.yaml";
  auto text = core::readFile(file, 1024 * 1024);
  if (!text.isOk()) {
    if (text.status().code() == core::ErrorCode::kNotFound) {
      return core::notFound(fmt::format("{} not found: run `warden init --dir {}` first", file, dir));
    }
    return text.status();
  }
  try {
    YAML::Node root = YAML::Load(text.value());
    return parseConfig(file, root, dir);
  } catch (const YAML::Exception& e) {
    return core::invalidArgument(fmt::format("{}:{}:{}: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

std::string renderServerConfig(const ServerConfig& c) {
  std::string names;
  for (size_t i = 0; i < c.server_names.size(); ++i) {
    names += fmt::format("{}\"{}\"", i ? ", " : "", c.server_names[i]);
  }
  std::string ca_keys;
  if (!c.issuing_ca_key.empty() || !c.root_ca_key.empty()) {
    ca_keys = "  # CA keys held in a PKCS#11 token (HSM); the PIN comes from the pin-source file.\n";
  }
  if (!c.issuing_ca_key.empty()) ca_keys += fmt::format("  issuing_ca_key: \"{}\"\n", c.issuing_ca_key);
  if (!c.root_ca_key.empty()) ca_keys += fmt::format("  root_ca_key: \"{}\"\n", c.root_ca_key);
  return fmt::format(R"(# Warden configuration, written by `warden init`. Read once by `warden serve`
# at start; restart to apply changes. Reference: docs/guide.md.

# SPIFFE trust domain: identities are spiffe://{td}/device/<name>.
trust_domain: {td}

# Admin API and EST enrollment (HTTPS; admin routes require the operator's
# client certificate).
api:
  listen: "{api}"

mqtt:
  # The device-facing mutual-TLS MQTT listener (the gateway).
  listen: "{mqtt}"
  # The real broker behind the gateway. It accepts only the gateway's upstream
  # certificate: generate its configuration with `warden broker config`.
  upstream: "{up}"
  upstream_timeout: 5s

# Names in the gateway's and API's server certificate.
server_names: [{names}]

enrollment:
  token_ttl: {tokttl}      # default lifetime of one-time enrollment tokens (max 30d)
  approval: {approval}      # manual: every enrollment waits for `warden device approve`
  retry_after: {retry}      # what a device waiting for approval is told to wait between tries
  failures_per_minute: {fpm}  # failed enrollments per source address, then 429 (successes are never limited)
  commit_batch: {batch}     # at most this many enrollments/renewals share one store transaction (group commit); 1: off

pki:
  cert_ttl: {certttl}        # lifetime of device certificates (1m to 30d; a manufacturer's or a device's own wins)
  # Plain-HTTP listener for third parties: /pki/<ca>.crl, /pki/<ca>.crt, /ocsp.
  listen: "{pkilisten}"
  # Base URL written into every certificate's CRL distribution point and AIA.
  url: "{pkiurl}"
  crl_validity: {crlval}     # issuing CAs' CRLs: nextUpdate - thisUpdate (remade at half)
  root_crl_validity: {rootcrlval}  # the root CRL (`warden ca crl --root`)
{cakeys}
gateway:
  limits:
    max_packet_size: {mps}      # bytes, advertised both ways; larger packets: 0x95
    max_topic_length: {mtl}
    max_topic_levels: {mlv}
    max_filters_per_subscribe: {mfs}
    max_filters_per_session: {mfss}
    connect_timeout: {cto}s          # TLS handshake + CONNECT
    max_keepalive: {mka}s           # larger or 0 keep-alive becomes Server Keep Alive
    max_buffered: {mbuf}        # bytes per direction before backpressure
    connect_rate: {{per_second: {cps}, burst: {cb}}}   # new connections per source address
    session_expiry_max: {sem}      # cap on MQTT 5 Session Expiry Interval

events:
  retention: {ret}

# Continuous verification (docs/attestation.md, "Posture and trust"): trust
# score weights, the quarantine threshold and how devices are re-admitted.
trust:
  tpm_healthy: {tw_tpm}        # last good attestation by TPM quote
  software_healthy: {tw_sw}    # by signed log (no TPM): proves freshness, not integrity
  never_attested: {tw_never}
  stale: {tw_stale}             # past deadline + grace
  failed: {tw_failed}             # last attestation failed, or its firmware's approval was revoked
  denial_cost: {tw_dc}          # per denial of the device's own sessions within denial_window
  denial_max: {tw_dm}
  denial_window: {tw_dw}
  quarantine_below: {tw_q}     # low_trust quarantine; re-admission needs this + 10
  readmission: {tw_r}       # manual: `warden device release` re-admits

log_level: {log}
)",
                     fmt::arg("td", c.trust_domain), fmt::arg("api", c.api_listen.toString()),
                     fmt::arg("mqtt", c.mqtt_listen.toString()), fmt::arg("up", c.mqtt_upstream.toString()),
                     fmt::arg("names", names), fmt::arg("tokttl", core::formatDuration(c.token_ttl_s)),
                     fmt::arg("certttl", core::formatDuration(c.cert_ttl_s)), fmt::arg("cakeys", ca_keys),
                     fmt::arg("pkilisten", c.pki_listen.toString()), fmt::arg("pkiurl", c.pkiUrl()),
                     fmt::arg("crlval", core::formatDuration(c.crl_validity_s)),
                     fmt::arg("rootcrlval", core::formatDuration(c.root_crl_validity_s)),
                     fmt::arg("approval", c.approval_manual ? "manual" : "auto"),
                     fmt::arg("batch", c.enroll_commit_batch),
                     fmt::arg("retry", core::formatDuration(c.approval_retry_after_s)),
                     fmt::arg("fpm", c.enroll_failures_per_minute),
                     fmt::arg("mps", c.limits.max_packet_size), fmt::arg("mtl", c.limits.max_topic_length),
                     fmt::arg("mlv", c.limits.max_topic_levels), fmt::arg("mfs", c.limits.max_filters_per_subscribe),
                     fmt::arg("mfss", c.limits.max_filters_per_session), fmt::arg("cto", c.limits.connect_timeout_s),
                     fmt::arg("mka", c.limits.max_keepalive_s), fmt::arg("mbuf", c.limits.max_buffered),
                     fmt::arg("cps", c.limits.connect_rate_per_second), fmt::arg("cb", c.limits.connect_rate_burst),
                     fmt::arg("sem", core::formatDuration(c.limits.session_expiry_max_s)),
                     fmt::arg("ret", core::formatDuration(c.event_retention_s)),
                     fmt::arg("tw_tpm", c.trust.tpm_healthy), fmt::arg("tw_sw", c.trust.software_healthy),
                     fmt::arg("tw_never", c.trust.never_attested), fmt::arg("tw_stale", c.trust.stale),
                     fmt::arg("tw_failed", c.trust.failed), fmt::arg("tw_dc", c.trust.denial_cost),
                     fmt::arg("tw_dm", c.trust.denial_max),
                     fmt::arg("tw_dw", core::formatDuration(c.trust.denial_window.count())),
                     fmt::arg("tw_q", c.trust.quarantine_below),
                     fmt::arg("tw_r", c.trust.readmission_auto ? "auto" : "manual"), fmt::arg("log", c.log_level));
}

}  // namespace warden::server
