// `warden init`: creates a data directory with the store, the PKI, the
// default policy and warden.yaml.
#include <arpa/inet.h>
#include <filesystem>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/clock.h"
#include "core/file_io.h"
#include "core/names.h"
#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "keystore/key_store.h"
#include "keystore/pkcs11_key_store.h"
#include "keystore/pkcs11_uri.h"
#include "pki/certificate_authority.h"
#include "pki/pki_files.h"
#include "pki/revocation_list.h"
#include "server/ca_inventory.h"
#include "policy/policy.h"
#include "server/commands.h"
#include "server/config.h"
#include "server/server_pki.h"
#include "store/sqlite_store.h"

namespace warden::server {
namespace {

using core::Result;
using core::Status;
namespace fs = std::filesystem;

constexpr core::Seconds kRootLifetime{10LL * 365 * 86400};
constexpr core::Seconds kIssuingLifetime{5LL * 365 * 86400};
constexpr core::Seconds kLeafYear{365LL * 86400};

bool isIpAddress(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// writeKeyAndCert writes |key| (0600) and |chain| (0644) to the given paths.
Status writeKeyAndCert(const std::string& key_path, EVP_PKEY* key, const std::string& cert_path,
                       const std::vector<X509*>& chain) {
  WARDEN_RETURN_IF_ERROR(crypto::writePrivateKeyFile(key_path, key));
  return core::writeFileAtomic(cert_path, crypto::certsToPem(chain), 0644);
}

store::CertRecord certRecord(X509* cert, std::string principal, std::string kind) {
  store::CertRecord r;
  r.serial_hex = crypto::serialHex(cert);
  r.device = std::move(principal);
  r.kind = std::move(kind);
  r.pubkey_fp = crypto::publicKeyFingerprint(X509_get0_pubkey(cert));
  r.not_before = core::unixSeconds(crypto::notBefore(cert));
  r.not_after = core::unixSeconds(crypto::notAfter(cert));
  r.pem = crypto::certToPem(cert);
  return r;
}

struct InitResult {
  std::string ca_fingerprint;
};

// caKey returns the CA key named by |uri| in its token, or null for
// "generate a file key". |generated| says whether init just created it.
Result<crypto::EvpPkeyPtr> caKey(const std::string& uri, bool generated) {
  if (uri.empty()) return crypto::EvpPkeyPtr();
  auto key = keystore::loadKey(uri);
  if (!key.isOk()) {
    std::string hint = generated ? "" : " (to create it in the token, add --ca-key-generate)";
    return Status(key.status().code(), key.status().message() + hint);
  }
  return key->release();
}

// createCaKeysInTokens creates every CA key named by a URI in its token,
// all before any is loaded (see Pkcs11KeyStore::createInToken).
Status createCaKeysInTokens(const ServerConfig& config) {
  for (const std::string* uri : {&config.root_ca_key, &config.issuing_ca_key}) {
    if (uri->empty()) continue;
    keystore::Pkcs11KeyStore store;
    auto created = store.createInToken(*uri);
    if (!created.isOk()) return created.status();
  }
  return Status::ok();
}

Result<InitResult> createInstallation(const ServerConfig& config, bool generate_keys) {
  const core::Clock& clock = core::systemClock();
  pki::PkiPaths paths(config.dir);
  WARDEN_RETURN_IF_ERROR(core::makePrivateDir(config.dir));
  WARDEN_RETURN_IF_ERROR(core::makePrivateDir(paths.dir()));
  const std::string& td = config.trust_domain;

  // Fleet PKI: root (10 y) -> issuing CA (5 y, pathLen 0). Either key may
  // live in a PKCS#11 token (then only its certificate is written here).
  // Every certificate names where its revocation status is published.
  if (generate_keys) WARDEN_RETURN_IF_ERROR(createCaKeysInTokens(config));
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr root_key, caKey(config.root_ca_key, generate_keys));
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr issuing_key, caKey(config.issuing_ca_key, generate_keys));
  WARDEN_ASSIGN_OR_RETURN(pki::CaMaterial root,
                          pki::createRootCa(td + " Warden Root CA", kRootLifetime, clock, std::move(root_key)));
  root.name = "root";
  root.pki_url = config.pkiUrl();
  WARDEN_ASSIGN_OR_RETURN(pki::CaMaterial issuing,
                          pki::createIntermediateCa(root, td + " Warden Issuing CA", kIssuingLifetime, 0, clock,
                                                    std::move(issuing_key)));
  issuing.name = "issuing-1";
  issuing.pki_url = config.pkiUrl();
  if (config.root_ca_key.empty()) {
    WARDEN_RETURN_IF_ERROR(writeKeyAndCert(paths.root_key(), root.key.get(), paths.root_cert(), {root.cert.get()}));
  } else {
    WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.root_cert(), crypto::certToPem(root.cert.get()), 0644));
  }
  if (config.issuing_ca_key.empty()) {
    WARDEN_RETURN_IF_ERROR(
        writeKeyAndCert(paths.issuing_key(), issuing.key.get(), paths.issuing_cert(), {issuing.cert.get()}));
  } else {
    WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.issuing_cert(), crypto::certToPem(issuing.cert.get()), 0644));
  }
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(caBundlePath(config.dir),
                                               crypto::certsToPem({root.cert.get(), issuing.cert.get()}), 0644));

  // The gateway's (and API's) server certificate.
  pki::LeafProfile server;
  server.common_name = "warden-gateway";
  server.uri_sans = {core::makeSpiffeId(td, core::PrincipalKind::kService, "gateway")};
  for (const auto& name : config.server_names) {
    (isIpAddress(name) ? server.ip_sans : server.dns_sans).push_back(name);
  }
  server.client_auth = false;
  server.server_auth = true;
  server.lifetime = kLeafYear;
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr server_key, crypto::generateEcKey());
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr server_cert, pki::issueLeaf(issuing, server_key.get(), server, clock));
  WARDEN_RETURN_IF_ERROR(writeKeyAndCert(paths.gateway_key(), server_key.get(), paths.gateway_cert(),
                                         {server_cert.get(), issuing.cert.get()}));

  // The operator: spiffe://td/user/admin.
  pki::LeafProfile admin;
  admin.common_name = "admin";
  admin.uri_sans = {core::makeSpiffeId(td, core::PrincipalKind::kUser, "admin")};
  admin.lifetime = kLeafYear;
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr admin_key, crypto::generateEcKey());
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr admin_cert, pki::issueLeaf(issuing, admin_key.get(), admin, clock));
  WARDEN_RETURN_IF_ERROR(writeKeyAndCert(paths.admin_key(), admin_key.get(), paths.admin_cert(),
                                         {admin_cert.get(), issuing.cert.get()}));

  // A separate upstream CA: it signs only the broker's server certificate
  // and the gateway's upstream client certificate, so a device certificate
  // can never authenticate to the broker.
  WARDEN_ASSIGN_OR_RETURN(pki::CaMaterial upstream,
                          pki::createRootCa(td + " Warden Upstream CA", kRootLifetime, clock));
  WARDEN_RETURN_IF_ERROR(
      writeKeyAndCert(paths.upstream_ca_key(), upstream.key.get(), paths.upstream_ca_cert(), {upstream.cert.get()}));
  pki::LeafProfile broker;
  broker.common_name = "warden-broker";
  (isIpAddress(config.mqtt_upstream.host) ? broker.ip_sans : broker.dns_sans).push_back(config.mqtt_upstream.host);
  if (config.mqtt_upstream.host != "localhost") broker.dns_sans.push_back("localhost");
  broker.client_auth = false;
  broker.server_auth = true;
  broker.lifetime = kLeafYear;
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr broker_key, crypto::generateEcKey());
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr broker_cert, pki::issueLeaf(upstream, broker_key.get(), broker, clock));
  WARDEN_RETURN_IF_ERROR(
      writeKeyAndCert(paths.broker_key(), broker_key.get(), paths.broker_cert(), {broker_cert.get()}));
  pki::LeafProfile up_client;
  up_client.common_name = "warden-gateway";  // Mosquitto's username (use_identity_as_username)
  up_client.uri_sans = {core::makeSpiffeId(td, core::PrincipalKind::kService, "gateway")};
  up_client.lifetime = kLeafYear;
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr up_key, crypto::generateEcKey());
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr up_cert, pki::issueLeaf(upstream, up_key.get(), up_client, clock));
  WARDEN_RETURN_IF_ERROR(writeKeyAndCert(paths.upstream_client_key(), up_key.get(), paths.upstream_client_cert(),
                                         {up_cert.get()}));

  // The store: the CA inventory, default policy as version 1, the
  // certificates issued so far.
  WARDEN_ASSIGN_OR_RETURN(auto store, store::SqliteStore::open(config.storePath(), clock));
  WARDEN_ASSIGN_OR_RETURN(store::CaRecord root_record, caRecordFor("root", "root", root.cert.get(), ""));
  WARDEN_RETURN_IF_ERROR(store->insertCa(root_record));
  WARDEN_ASSIGN_OR_RETURN(store::CaRecord issuing_record,
                          caRecordFor("issuing-1", "issuing", issuing.cert.get(),
                                      config.issuing_ca_key.empty() ? paths.issuing_key() : config.issuing_ca_key));
  WARDEN_RETURN_IF_ERROR(store->insertCa(issuing_record));
  // The root's first CRL (empty), so that `openssl verify -crl_check_all`
  // works from the start; `warden ca crl --root` signs the next ones.
  WARDEN_RETURN_IF_ERROR(core::makePrivateDir(paths.crl_dir()));
  WARDEN_ASSIGN_OR_RETURN(int64_t crl_number, store->nextCrlNumber("root"));
  WARDEN_ASSIGN_OR_RETURN(crypto::X509CrlPtr root_crl,
                          pki::makeCrl(root, {}, crl_number, clock.now(),
                                       clock.now() + core::Seconds(config.root_crl_validity_s)));
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.root_crl(), pki::crlToDer(root_crl.get()), 0644));
  WARDEN_RETURN_IF_ERROR(store->insertCert(certRecord(admin_cert.get(), "admin", "user")));
  WARDEN_RETURN_IF_ERROR(store->insertCert(certRecord(server_cert.get(), "gateway", "service")));
  auto version = store->insertPolicyVersion(policy::defaultPolicyYaml(), "init");
  if (!version.isOk()) return version.status();
  WARDEN_RETURN_IF_ERROR(store->setMeta("trust_domain", td));
  WARDEN_RETURN_IF_ERROR(store->setMeta("ca_fingerprint", crypto::caFingerprint(root.cert.get())));

  // warden.yaml last: its presence marks a complete installation.
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(config.configPath(), renderServerConfig(config), 0600));
  return InitResult{crypto::caFingerprint(root.cert.get())};
}

}  // namespace

int runInit(const InitOptions& options) {
  auto fail = [&](int code, const std::string& message) {
    if (options.output_json) {
      std::cout << nlohmann::json{{"error", code == 2 ? "invalid_argument" : "failed"}, {"message", message}}.dump()
                << "\n";
    } else {
      std::cerr << "warden init: " << message << "\n";
    }
    return code;
  };
  if (options.dir.empty()) return fail(2, "--dir is required: the directory to create (e.g. --dir /var/lib/warden)");
  ServerConfig config;
  config.dir = fs::absolute(options.dir).lexically_normal().string();
  if (!config.dir.empty() && config.dir.size() > 1 && config.dir.back() == '/') config.dir.pop_back();
  config.trust_domain = options.trust_domain;
  if (!core::isValidTrustDomain(config.trust_domain)) {
    return fail(2, fmt::format("invalid --trust-domain '{}': use a lowercase DNS name such as warden.local",
                               config.trust_domain));
  }
  auto api = parseHostPort("--api-listen", options.api_listen);
  if (!api.isOk()) return fail(2, api.status().message());
  auto mqtt = parseHostPort("--mqtt-listen", options.mqtt_listen);
  if (!mqtt.isOk()) return fail(2, mqtt.status().message());
  auto up = parseHostPort("--mqtt-upstream", options.mqtt_upstream);
  if (!up.isOk()) return fail(2, up.status().message());
  auto pki_listen = parseHostPort("--pki-listen", options.pki_listen);
  if (!pki_listen.isOk()) return fail(2, pki_listen.status().message());
  config.pki_listen = pki_listen.value();
  if (!options.pki_url.empty()) {
    std::string url = options.pki_url;
    while (url.size() > 7 && url.back() == '/') url.pop_back();
    if (!pki::isValidPkiUrl(url)) {
      return fail(2, fmt::format("invalid --pki-url '{}': use http://HOST[:PORT][/PATH] (plain HTTP: CRLs and OCSP "
                                 "answers are signed; RFC 5280 §4.2.1.13)",
                                 options.pki_url));
    }
    config.pki_url = url;
  }
  config.api_listen = api.value();
  config.mqtt_listen = mqtt.value();
  config.mqtt_upstream = up.value();
  std::set<std::string> seen;
  for (const auto& n : options.server_names) {
    bool ok = isIpAddress(n) || core::isValidTrustDomain(n);
    if (!ok) return fail(2, fmt::format("invalid --server-name '{}': use a DNS name or an IP address", n));
    if (seen.insert(n).second) config.server_names.push_back(n);
  }
  if (config.server_names.empty()) return fail(2, "at least one --server-name is needed");

  std::error_code ec;
  bool existed = fs::exists(config.dir, ec);
  if (fs::exists(config.configPath(), ec) || fs::exists(config.storePath(), ec)) {
    return fail(1, fmt::format("{} already holds a Warden installation (warden.yaml or warden.db); nothing was "
                               "changed. Use another --dir, or remove it to start over.",
                               config.dir));
  }
  if (existed && fs::exists(config.dir + "/pki", ec)) {
    return fail(1, fmt::format("{}/pki already exists; nothing was changed. Use an empty or new --dir.", config.dir));
  }

  for (auto [flag, value, out] : {std::tuple{"--ca-key", &options.ca_key, &config.issuing_ca_key},
                                  std::tuple{"--root-key", &options.root_key, &config.root_ca_key}}) {
    if (value->empty()) continue;
    auto uri = keystore::parsePkcs11Uri(*value);
    if (!uri.isOk()) return fail(2, fmt::format("{}: {}", flag, uri.status().message()));
    if (uri->module_path.empty()) {
      return fail(2, fmt::format("{}: name the PKCS#11 module with ?module-path=/path/to/module.so", flag));
    }
    *out = uri->toString();
  }
  if (options.ca_key_generate && config.issuing_ca_key.empty() && config.root_ca_key.empty()) {
    return fail(2, "--ca-key-generate needs --ca-key (and optionally --root-key): the PKCS#11 URI of the key to create");
  }
  if (!config.issuing_ca_key.empty() && config.issuing_ca_key == config.root_ca_key) {
    return fail(2, "--ca-key and --root-key must name different keys");
  }

  auto result = createInstallation(config, options.ca_key_generate);
  if (!result.isOk()) {
    // Leave nothing half-made behind.
    fs::remove_all(config.dir + "/pki", ec);
    for (const char* f : {"/warden.db", "/warden.db-wal", "/warden.db-shm", "/warden.yaml"}) {
      fs::remove(config.dir + f, ec);
    }
    if (!existed) fs::remove(config.dir, ec);
    return fail(1, result.status().message());
  }
  if (options.output_json) {
    std::cout << nlohmann::json{{"dir", config.dir},
                                {"trust_domain", config.trust_domain},
                                {"ca_fingerprint", result->ca_fingerprint},
                                {"api", config.api_listen.toString()},
                                {"mqtt", config.mqtt_listen.toString()},
                                {"mqtt_upstream", config.mqtt_upstream.toString()},
                                {"pki", config.pki_listen.toString()},
                                {"pki_url", config.pkiUrl()}}
                     .dump()
              << "\n";
  } else {
    std::cout << fmt::format(
        "Initialized Warden in {dir}\n"
        "  trust domain    {td}\n"
        "  CA fingerprint  {fp}\n"
        "  admin API       https://{api}\n"
        "  MQTT gateway    mqtts://{mqtt} -> broker {up}\n"
        "  CRLs and OCSP   {pkiurl}/pki/<ca>.crl, {pkiurl}/ocsp (listening on {pki})\n\n"
        "Next:\n"
        "  warden broker config --dir {dir} --out {dir}/broker && mosquitto -c {dir}/broker/mosquitto.conf\n"
        "  warden serve --dir {dir}\n"
        "  warden device add sensor-1 --role sensor --dir {dir}\n",
        fmt::arg("dir", config.dir), fmt::arg("td", config.trust_domain), fmt::arg("fp", result->ca_fingerprint),
        fmt::arg("api", config.api_listen.toString()), fmt::arg("mqtt", config.mqtt_listen.toString()),
        fmt::arg("up", config.mqtt_upstream.toString()), fmt::arg("pkiurl", config.pkiUrl()),
        fmt::arg("pki", config.pki_listen.toString()));
  }
  return 0;
}

}  // namespace warden::server
