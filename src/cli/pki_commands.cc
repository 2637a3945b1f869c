// `warden cert list|revoke` and `warden ca list|rotate|retire|crl`.

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "cli/cli_context.h"
#include "core/clock.h"
#include "core/file_io.h"
#include "core/names.h"
#include "crypto/crypto.h"
#include "keystore/pkcs11_key_store.h"
#include "pki/ca_key.h"
#include "pki/certificate_authority.h"
#include "pki/cross_certificate.h"
#include "pki/pki_files.h"
#include "pki/revocation_list.h"
#include "server/config.h"
#include "store/sqlite_store.h"

namespace warden::cli {
namespace {

using nlohmann::json;

constexpr core::Seconds kIssuingLifetime{5LL * 365 * 86400};
constexpr core::Seconds kOperatorLifetime{365LL * 86400};
constexpr core::Seconds kRootLifetime{10LL * 365 * 86400};

constexpr const char* kFooter = R"(
The server and credentials come from --dir D (or $WARDEN_DIR), as for
`warden device`. -o json|text works anywhere on the line.

Exit codes: 0 ok; 1 refused, not found or failed; 2 usage or validation
error; 3 server unreachable or TLS/authentication failure.)";

struct PkiFlags {
  ClientFlags client;
  std::string expiring;
  std::string serial;
  std::string reason;
  std::string name;
  std::string root_key;
  std::string ca_key;
  bool ca_key_generate = false;
  std::string new_root_key;
  bool force = false;
  bool root = false;
};

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string("-");
}

int certList(const PkiFlags& f, const GlobalFlags& global) {
  std::string target = "/v1/certs";
  if (!f.expiring.empty()) {
    auto secs = core::parseDuration(f.expiring);
    if (!secs.isOk()) return reportError(core::invalidArgument("--expiring: " + secs.status().message()), nullptr);
    target += fmt::format("?expiring={}", *secs);
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("GET", target));
    json certs = answer.is_object() && answer.contains("certs") ? answer["certs"] : json::array();
    if (s.json) {
      printJson(certs);
      return core::Status::ok();
    }
    std::string out = fmt::format("{:<34} {:<8} {:<24} {:<10} {:<21} {}\n", "SERIAL", "KIND", "PRINCIPAL", "ISSUER",
                                  "NOT AFTER", "STATUS");
    for (const json& c : certs) {
      std::string status = c.value("revoked", false) ? fmt::format("revoked ({})", str(c, "reason")) : "valid";
      out += fmt::format("{:<34} {:<8} {:<24} {:<10} {:<21} {}\n", str(c, "serial"), str(c, "kind"),
                         str(c, "principal"), str(c, "issuer"), str(c, "not_after"), status);
    }
    printOut(out);
    return core::Status::ok();
  });
}

int certRevoke(const PkiFlags& f, const GlobalFlags& global) {
  std::string serial = f.serial;
  std::transform(serial.begin(), serial.end(), serial.begin(), [](unsigned char c) { return std::tolower(c); });
  if (serial.rfind("0x", 0) == 0) serial = serial.substr(2);
  bool hex = !serial.empty() && serial.size() <= 40 &&
             std::all_of(serial.begin(), serial.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  if (!hex) return reportError(core::invalidArgument("SERIAL must be the hex serial shown by `warden cert list`"), nullptr);
  if (auto r = pki::parseCrlReason(f.reason); !r.isOk() || f.reason.empty()) {
    return reportError(core::invalidArgument(r.isOk() ? "--reason is required" : r.status().message()), nullptr);
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("POST", fmt::format("/v1/certs/{}/revoke", serial),
                                                        json{{"reason", f.reason}}));
    if (s.json) {
      printJson(answer);
    } else if (!answer.value("changed", true)) {
      printOut(fmt::format("certificate {} was already revoked; nothing changed\n", serial));
    } else {
      printOut(fmt::format("certificate {} ({} {}) revoked ({}): live sessions using it are closed and the CRL of {} "
                           "and OCSP say so\n",
                           serial, str(answer, "kind"), str(answer, "principal"), f.reason, str(answer, "issuer")));
      if (answer.contains("replaced_by")) {
        printOut(fmt::format("it was the gateway's server certificate: the gateway and the API now present {}\n",
                             str(answer, "replaced_by")));
      }
    }
    return core::Status::ok();
  });
}

int caList(const PkiFlags& f, const GlobalFlags& global) {
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("GET", "/v1/cas"));
    json cas = answer.is_object() && answer.contains("cas") ? answer["cas"] : json::array();
    if (s.json) {
      printJson(cas);
      return core::Status::ok();
    }
    std::string out = fmt::format("{:<12} {:<8} {:<9} {:<21} {:>6}  {}\n", "NAME", "KIND", "STATE", "NOT AFTER", "CERTS",
                                  "SUBJECT");
    for (const json& c : cas) {
      std::string n = c.contains("certs_valid") ? std::to_string(c.value("certs_valid", 0)) : "-";
      out += fmt::format("{:<12} {:<8} {:<9} {:<21} {:>6}  {}\n", str(c, "name"), str(c, "kind"), str(c, "state"),
                         str(c, "not_after"), n, str(c, "subject"));
    }
    printOut(out);
    return core::Status::ok();
  });
}

struct LocalPki {
  server::ServerConfig config;
  pki::PkiPaths paths{""};
  pki::CaMaterial root;  // the root whose key was given, named as in the inventory
  bool active = false;   // it is the active root (the one new issuing CAs chain to)
  std::vector<store::CaRecord> cas;
};

// defaultRootKey is where `warden init` and `warden ca rotate --root` put a
// root key: D/pki/root.key for "root", D/pki/ca/<name>.key for later roots.
std::string defaultRootKey(const pki::PkiPaths& paths, const std::string& name) {
  return name == "root" ? paths.root_key() : paths.ca_key(name);
}

// loadLocalPki reads warden.yaml, the CA inventory and the root key
// |root_key| (a file or a pkcs11: URI, see pki::loadCaKey; default: the
// active root's key: pki.root_ca_key in warden.yaml when `init` put the
// first root in an HSM, else its key file) and pairs the key with the
// inventory's root that it belongs to: the offline half of `warden ca`.
core::Result<LocalPki> loadLocalPki(const std::string& dir, const std::string& root_key) {
  if (dir.empty()) return core::invalidArgument("--dir D is required: the data directory whose root CA signs");
  LocalPki out;
  WARDEN_ASSIGN_OR_RETURN(out.config, server::loadServerConfig(dir));
  out.paths = pki::PkiPaths(dir);
  {
    WARDEN_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> store,
                            store::SqliteStore::open(out.config.storePath(), core::systemClock()));
    WARDEN_ASSIGN_OR_RETURN(out.cas, store->listCas());
  }
  const store::CaRecord* active = nullptr;
  for (const auto& c : out.cas) {
    if (c.kind == "root" && c.state == store::CaState::kActive) active = &c;
  }
  const std::string active_name = active != nullptr ? active->name : "root";
  std::string key_ref = root_key;
  if (key_ref.empty() && active_name == "root") key_ref = out.config.root_ca_key;
  if (key_ref.empty()) key_ref = defaultRootKey(out.paths, active_name);
  if (key_ref.rfind("pkcs11:", 0) != 0) {  // pki::loadCaKey takes absolute paths
    std::error_code ec;
    key_ref = std::filesystem::absolute(key_ref.rfind("file:", 0) == 0 ? key_ref.substr(5) : key_ref, ec)
                  .lexically_normal()
                  .string();
  }
  auto key = pki::loadCaKey(key_ref);
  if (!key.isOk()) {
    return core::invalidArgument(fmt::format("cannot load the root CA key {}: {} (give it with --root-key FILE|URI)",
                                             key_ref, key.status().message()));
  }
  for (const auto& c : out.cas) {
    if (c.kind != "root" || c.state == store::CaState::kRetired) continue;
    auto cert = crypto::certFromPem(c.cert_pem);
    if (!cert.isOk() || EVP_PKEY_eq(X509_get0_pubkey(cert->get()), key->get()) != 1) continue;
    WARDEN_ASSIGN_OR_RETURN(out.root, pki::caMaterialFromKey(c.cert_pem, std::move(key).value()));
    out.root.name = c.name;
    out.root.pki_url = out.config.pkiUrl();
    out.active = &c == active;
    return out;
  }
  return core::invalidArgument(fmt::format(
      "{} is not the key of a root CA in use (`warden ca list` shows the roots; the active one is {})", key_ref,
      active != nullptr ? active->name : "none"));
}

// writeNewKey writes |key| to |path| (0600), refusing to replace a file: a
// root key is never overwritten.
core::Status writeNewKey(const std::string& path, EVP_PKEY* key) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    return core::alreadyExists(fmt::format(
        "{} exists already: refusing to overwrite a key (a failed earlier `ca rotate --root`? move it away, or name "
        "another file with --new-root-key)",
        path));
  }
  return crypto::writePrivateKeyFile(path, key);
}

// RootRolloverMaterial is what `ca rotate --root` makes offline: the new
// root, NewWithOld (its key signed by the old root) and OldWithNew.
struct RootRolloverMaterial {
  pki::CaMaterial root;
  crypto::X509Ptr new_with_old, old_with_new;
};

core::Result<RootRolloverMaterial> makeRootRollover(const LocalPki& local, const std::string& new_key_path,
                                                    const core::Clock& clock) {
  int next = 2;
  for (const auto& c : local.cas) {
    if (c.kind == "root" && c.name.rfind("root-", 0) == 0) next = std::max(next, std::atoi(c.name.c_str() + 5) + 1);
  }
  RootRolloverMaterial out;
  const std::string name = fmt::format("root-{}", next);
  WARDEN_ASSIGN_OR_RETURN(out.root,
                          pki::createRootCa(fmt::format("{} Warden Root CA {}", local.config.trust_domain, next),
                                            kRootLifetime, clock));
  out.root.name = name;
  out.root.pki_url = local.config.pkiUrl();
  WARDEN_ASSIGN_OR_RETURN(out.new_with_old, pki::makeCrossCertificate(local.root, out.root.cert.get(), clock));
  WARDEN_ASSIGN_OR_RETURN(out.old_with_new, pki::makeCrossCertificate(out.root, local.root.cert.get(), clock));
  const pki::PkiPaths& paths = local.paths;
  WARDEN_RETURN_IF_ERROR(core::makePrivateDir(paths.ca_dir()));
  std::string key_path = new_key_path.empty() ? paths.ca_key(name) : new_key_path;
  WARDEN_RETURN_IF_ERROR(writeNewKey(key_path, out.root.key.get()));
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.ca_cert(name), crypto::certToPem(out.root.cert.get()), 0644));
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.ca_cert(fmt::format("{}-by-{}", name, local.root.name)),
                                               crypto::certToPem(out.new_with_old.get()), 0644));
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.ca_cert(fmt::format("{}-by-{}", local.root.name, name)),
                                               crypto::certToPem(out.old_with_new.get()), 0644));
  return out;
}

// newIssuingKey returns the key of the next issuing CA: a fresh file key
// (null: createIntermediateCa generates it), or the key |uri| names in an
// HSM, created there first when |generate|.
core::Result<crypto::EvpPkeyPtr> newIssuingKey(const std::string& uri, bool generate) {
  if (uri.empty()) {
    if (generate) return core::invalidArgument("--ca-key-generate needs --ca-key pkcs11:URI: the key to create");
    return crypto::EvpPkeyPtr();
  }
  if (uri.rfind("pkcs11:", 0) != 0) {
    return core::invalidArgument("--ca-key takes a PKCS#11 URI (pkcs11:token=...;object=...?module-path=...&"
                                 "pin-source=file:...); without it the new CA key is a file in D/pki/ca/");
  }
  if (generate) {
    keystore::Pkcs11KeyStore store;
    WARDEN_RETURN_IF_ERROR(store.createInToken(uri).status());
  }
  auto key = keystore::loadKey(uri);
  if (!key.isOk()) {
    std::string hint = generate ? "" : " (to create it in the token, add --ca-key-generate)";
    return core::Status(key.status().code(), key.status().message() + hint);
  }
  return key->release();
}

int caRotate(const PkiFlags& f, const GlobalFlags& global) {
  const std::string dir = resolveDir(f.client.dir, global);
  if (!f.root && !f.new_root_key.empty()) {
    return reportError(core::invalidArgument("--new-root-key goes with --root"), nullptr);
  }
  // The new key first: libp11 lists a token's keys once per process, so a
  // key created after the root key was loaded would stay invisible.
  auto issuing_key = newIssuingKey(f.ca_key, f.ca_key_generate);
  if (!issuing_key.isOk()) return reportError(issuing_key.status(), nullptr);
  auto local = loadLocalPki(dir, f.root_key);
  if (!local.isOk()) return reportError(local.status(), nullptr);
  if (!local->active) {
    return reportError(core::invalidArgument(fmt::format(
                           "{} is the key of {}, which is no longer the active root: give the active root's key with "
                           "--root-key (`warden ca list`)",
                           f.root_key.empty() ? defaultRootKey(local->paths, local->root.name) : f.root_key,
                           local->root.name)),
                       nullptr);
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    const core::Clock& clock = core::systemClock();
    // A root rollover: the new root and both cross certificates, made here
    // with the old root key (offline) and a new key written 0600.
    std::optional<RootRolloverMaterial> rollover;
    if (f.root) {
      WARDEN_ASSIGN_OR_RETURN(rollover, makeRootRollover(*local, f.new_root_key, clock));
    }
    const pki::CaMaterial& parent = rollover ? rollover->root : local->root;
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("GET", "/v1/cas"));
    int next = 1;
    for (const json& c : answer.value("cas", json::array())) {
      std::string n = str(c, "name");
      if (n.rfind("issuing-", 0) == 0) next = std::max(next, std::atoi(n.c_str() + 8) + 1);
    }
    const std::string name = fmt::format("issuing-{}", next);
    const std::string& td = local->config.trust_domain;
    WARDEN_ASSIGN_OR_RETURN(pki::CaMaterial ca,
                            pki::createIntermediateCa(parent, fmt::format("{} Warden Issuing CA {}", td, next),
                                                      kIssuingLifetime, 0, clock, std::move(issuing_key).value()));
    ca.name = name;
    ca.pki_url = local->config.pkiUrl();
    const pki::PkiPaths& paths = local->paths;
    WARDEN_RETURN_IF_ERROR(core::makePrivateDir(paths.ca_dir()));
    std::string key_ref = f.ca_key;
    if (key_ref.empty()) {
      std::error_code ec;
      key_ref = std::filesystem::absolute(paths.ca_key(name), ec).lexically_normal().string();
      WARDEN_RETURN_IF_ERROR(crypto::writePrivateKeyFile(key_ref, ca.key.get()));
    }
    WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.ca_cert(name), crypto::certToPem(ca.cert.get()), 0644));

    // The operator moves to the new CA too, so that retiring the old one
    // does not lock the CLI out.
    WARDEN_ASSIGN_OR_RETURN(std::string admin_pem, core::readFile(paths.admin_cert(), 1024 * 1024));
    WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr admin_old, crypto::certFromPem(admin_pem));
    pki::LeafProfile op;
    op.common_name = crypto::commonName(admin_old.get());
    op.uri_sans = crypto::uriSans(admin_old.get());
    op.lifetime = kOperatorLifetime;
    WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr op_key, crypto::generateEcKey());
    WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr op_cert, pki::issueLeaf(ca, op_key.get(), op, clock));

    json request{{"name", name},
                 {"cert_pem", crypto::certToPem(ca.cert.get())},
                 {"key_ref", key_ref},
                 {"operator_cert_pem", crypto::certToPem(op_cert.get())}};
    if (rollover) {
      request["root"] = {{"name", rollover->root.name},
                         {"cert_pem", crypto::certToPem(rollover->root.cert.get())},
                         {"new_with_old_pem", crypto::certToPem(rollover->new_with_old.get())},
                         {"old_with_new_pem", crypto::certToPem(rollover->old_with_new.get())}};
    }
    WARDEN_ASSIGN_OR_RETURN(json rotated, s.client->call("POST", "/v1/cas", request));
    WARDEN_RETURN_IF_ERROR(crypto::writePrivateKeyFile(paths.admin_key(), op_key.get()));
    WARDEN_RETURN_IF_ERROR(
        core::writeFileAtomic(paths.admin_cert(), crypto::certsToPem({op_cert.get(), ca.cert.get()}), 0644));
    json out = {{"name", name},
                {"key_ref", key_ref},
                {"previous", rotated.value("previous", "")},
                {"gateway_serial", rotated.value("gateway_serial", "")},
                {"operator_serial", crypto::serialHex(op_cert.get())},
                {"not_after", core::formatRfc3339(crypto::notAfter(ca.cert.get()))}};
    if (rollover) {
      const std::string& root = rollover->root.name;
      out["root"] = root;
      out["previous_root"] = local->root.name;
      out["root_fingerprint"] = crypto::caFingerprint(rollover->root.cert.get());
      out["root_cert"] = paths.ca_cert(root);
      out["root_key"] = f.new_root_key.empty() ? paths.ca_key(root) : f.new_root_key;
      out["new_with_old"] = paths.ca_cert(fmt::format("{}-by-{}", root, local->root.name));
      out["old_with_new"] = paths.ca_cert(fmt::format("{}-by-{}", local->root.name, root));
    }
    if (s.json) {
      printJson(out);
    } else if (rollover) {
      printOut(fmt::format(
          "{} is the active root ({}), cross-certified with {} (NewWithOld {}, OldWithNew {});\n"
          "{} under it is the active issuing CA. Agents move their pin to {} at their next renewal.\n"
          "The new root key is {}: move it offline now, like the old one (`--root-key` names it later).\n"
          "{} stays trusted until its last issuing CA is retired: `warden ca retire {}` once `warden ca list`\n"
          "shows 0 certificates under it.\n",
          out["root"].get<std::string>(), out["root_fingerprint"].get<std::string>(), local->root.name,
          out["new_with_old"].get<std::string>(), out["old_with_new"].get<std::string>(), name,
          out["root"].get<std::string>(), out["root_key"].get<std::string>(), local->root.name,
          out["previous"].get<std::string>()));
    } else {
      printOut(fmt::format(
          "{} is the active issuing CA (key {}); {} is retiring: its certificates stay valid until they expire.\n"
          "The gateway's server certificate and your operator certificate ({}) now come from {}.\n"
          "Devices move at their next renewal; `warden ca retire {}` once `warden ca list` shows 0 certificates.\n",
          name, key_ref, out["previous"].get<std::string>(), paths.admin_cert(), name, out["previous"].get<std::string>()));
    }
    return core::Status::ok();
  });
}

int caRetire(const PkiFlags& f, const GlobalFlags& global) {
  if (auto st = core::checkName("CA name", f.name); !st.isOk()) return reportError(st, nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("POST", fmt::format("/v1/cas/{}/retire", f.name),
                                                        json{{"force", f.force}}));
    if (s.json) {
      printJson(answer);
    } else {
      printOut(fmt::format("{} retired ({} certificate(s) revoked); it is no longer trusted. Its CRL and OCSP stay up "
                           "until its last certificate has expired.\nRe-sign the root CRL so that third parties "
                           "see it too: warden ca crl --root [--root-key FILE]\n",
                           f.name, answer.value("revoked", 0)));
    }
    return core::Status::ok();
  });
}

int caCrl(const PkiFlags& f, const GlobalFlags& global) {
  if (!f.root) return reportError(core::invalidArgument("only --root is supported: `serve` signs the issuing CAs' CRLs"), nullptr);
  const std::string dir = resolveDir(f.client.dir, global);
  auto local = loadLocalPki(dir, f.root_key);
  if (!local.isOk()) return reportError(local.status(), nullptr);
  const core::Clock& clock = core::systemClock();
  auto store = store::SqliteStore::open(local->config.storePath(), clock);
  if (!store.isOk()) return reportError(store.status(), nullptr);
  const std::string& root_name = local->root.name;  // the root whose key was given
  auto number = (*store)->nextCrlNumber(root_name);
  if (!number.isOk()) return reportError(number.status(), nullptr);
  const core::SystemTime now = clock.now();
  const core::SystemTime next = now + core::Seconds(local->config.root_crl_validity_s);
  // The root signs only issuing CAs: its CRL lists the retired ones it
  // signed (superseded, as of their retirement) until they expire, so that
  // third parties checking with -crl_check_all stop trusting them too.
  const int superseded = pki::parseCrlReason("superseded").value();
  std::vector<pki::RevokedEntry> entries;
  for (const store::CaRecord& ca : local->cas) {
    if (ca.kind != "issuing" || ca.state != store::CaState::kRetired) continue;
    auto cert = crypto::certFromPem(ca.cert_pem);
    if (!cert.isOk() || X509_check_issued(local->root.cert.get(), cert->get()) != X509_V_OK) continue;
    if (crypto::notAfter(cert->get()) <= now) continue;
    entries.push_back({crypto::serialHex(cert->get()), core::fromUnixSeconds(ca.retired_at), superseded});
  }
  auto crl = pki::makeCrl(local->root, entries, *number, now, next);
  if (!crl.isOk()) return reportError(crl.status(), nullptr);
  core::Status made = core::makePrivateDir(local->paths.crl_dir());
  const std::string crl_path = local->paths.root_crl(root_name);
  if (made.isOk()) made = core::writeFileAtomic(crl_path, pki::crlToDer(crl->get()), 0644);
  if (!made.isOk()) return reportError(made, nullptr);
  json listed = json::array();
  for (const pki::RevokedEntry& e : entries) listed.push_back(e.serial_hex);
  json out = {{"ca", root_name}, {"crl_number", *number}, {"next_update", core::formatRfc3339(next)},
              {"revoked", listed}, {"path", crl_path}};
  if (wantsJson(f.client.output, global)) {
    printJson(out);
  } else {
    printOut(fmt::format("signed the CRL of {} (#{}) valid until {} -> {} (a running `warden serve` publishes it within "
                         "a minute)\n",
                         root_name, *number, core::formatRfc3339(next), crl_path));
  }
  return api::kExitOk;
}

}  // namespace

void addPkiCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  auto f = std::make_shared<PkiFlags>();
  auto footer = [](const char* examples) { return std::string("\nExamples:\n") + examples + kFooter; };

  CLI::App* cert = app.add_subcommand("cert", "list and revoke certificates issued by this server");
  cert->require_subcommand(1);
  CLI::App* list = cert->add_subcommand("list", "list unexpired certificates (devices, operators, services, OCSP)");
  addClientOptions(list, f->client);
  list->add_option("--expiring", f->expiring, "only those expiring within DUR (e.g. 7d, 12h)");
  list->footer(footer("  warden cert list\n  warden cert list --expiring 7d -o json   # [{serial, principal, kind, "
                      "issuer, not_before, not_after, expired, revoked, revoked_at?, reason?}]"));
  table.add(list, [f, &global] { return certList(*f, global); });

  CLI::App* revoke = cert->add_subcommand("revoke", "revoke one certificate (any kind) and cut live sessions using it");
  addClientOptions(revoke, f->client);
  revoke->add_option("SERIAL", f->serial, "serial in hex, as `warden cert list` shows it")->required();
  revoke->add_option("--reason", f->reason,
                     "keyCompromise|superseded|cessationOfOperation|affiliationChanged|caCompromise|unspecified")
      ->required();
  revoke->footer(footer("  warden cert revoke 5f0c2a9e41d7b8c3a6e2f0d1c4b5a697 --reason keyCompromise\n"
                        "Returns once live sessions using it are closed and the CRL and OCSP answer revoked.\n"
                        "The reason is carried into the CRL entry and the OCSP answer (unspecified: none)."));
  table.add(revoke, [f, &global] { return certRevoke(*f, global); });

  CLI::App* ca = app.add_subcommand("ca", "list, rotate and retire the CAs; sign the root CRL");
  ca->require_subcommand(1);
  CLI::App* calist = ca->add_subcommand("list", "list the CA inventory");
  addClientOptions(calist, f->client);
  calist->footer(footer("  warden ca list\n  warden ca list -o json   # [{name, kind, state, subject, not_after, "
                        "certs_valid, ...}]"));
  table.add(calist, [f, &global] { return caList(*f, global); });

  CLI::App* rotate = ca->add_subcommand(
      "rotate", "make a new issuing CA (new key) and make it the active one; with --root, a new root CA too");
  addClientOptions(rotate, f->client);
  rotate->add_option("--root-key", f->root_key,
                     "the active root CA's key: a file or a pkcs11: URI (default: pki.root_ca_key in\n"
                     "warden.yaml, else D/pki/root.key, or D/pki/ca/root-N.key after a root rotation)");
  rotate->add_option("--ca-key", f->ca_key,
                     "put the new CA's key in an HSM: the RFC 7512 URI of an existing key (PIN only through\n"
                     "?pin-source=file:..., module through module-path=...)");
  rotate->add_flag("--ca-key-generate", f->ca_key_generate,
                   "create the --ca-key key in the token first (EC P-256, non-extractable)");
  rotate->add_flag("--root", f->root,
                   "rotate the root CA: a new root (new EC P-256 key, 10 years), the cross certificates\n"
                   "NewWithOld and OldWithNew (signed with the old and the new root key), and a new issuing\n"
                   "CA under the new root");
  rotate->add_option("--new-root-key", f->new_root_key,
                     "with --root: where to write the new root key (0600, never overwritten; default\n"
                     "D/pki/ca/root-N.key). It belongs offline, like the old root key");
  rotate->footer(footer(
      "  warden ca rotate --dir D\n  warden ca rotate --dir D --root-key /media/offline/root.key -o json\n"
      "  warden ca rotate --dir D --ca-key-generate \\\n"
      "    --ca-key 'pkcs11:token=warden;object=issuing-2;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
      "&pin-source=file:/etc/warden/hsm.pin'\n"
      "  warden ca rotate --dir D --root --root-key /media/offline/root.key \\\n"
      "      --new-root-key /media/offline/root-2.key\n"
      "Runs against a running server, which switches without a restart: new certificates come from the\n"
      "new CA at once, cacerts and the trust bundles carry both CAs, the gateway's server certificate\n"
      "and the operator certificate (D/pki/admin.pem) are reissued, live sessions stay up. The old CA\n"
      "becomes 'retiring' until `warden ca retire`. The upstream CA and the broker are not touched.\n"
      "With --root, the old root becomes 'retiring' too: cacerts carries both roots and both cross\n"
      "certificates (RFC 7030 §4.1.3), the gateway presents leaf + issuing CA + NewWithOld, agents\n"
      "move their pin to the new root at their next renewal, and the old root leaves the trust\n"
      "bundles when its last issuing CA is retired (`warden ca retire`). The old root key is only\n"
      "read, the new one is written where --new-root-key says: take both offline afterwards."));
  table.add(rotate, [f, &global] { return caRotate(*f, global); });

  CLI::App* retire = ca->add_subcommand("retire", "stop trusting a retiring issuing CA");
  addClientOptions(retire, f->client);
  retire->add_option("NAME", f->name, "the CA, e.g. issuing-1")->required();
  retire->add_flag("--force", f->force, "revoke its unexpired certificates (and cut their sessions) instead of refusing");
  retire->footer(footer("  warden ca retire issuing-1\n  warden ca retire issuing-1 --force\n"
                        "Refuses while the CA has unexpired, unrevoked certificates. Its CRL and OCSP stay\n"
                        "published until its last certificate has expired."));
  table.add(retire, [f, &global] { return caRetire(*f, global); });

  CLI::App* crl = ca->add_subcommand("crl", "sign the root CA's CRL offline");
  addClientOptions(crl, f->client);
  crl->add_flag("--root", f->root, "sign the root CRL (required; serve signs the issuing CAs' CRLs itself)");
  crl->add_option("--root-key", f->root_key,
                  "a root CA's key, file or pkcs11: URI (default: pki.root_ca_key in warden.yaml, else\n"
                  "D/pki/root.key, or D/pki/ca/root-N.key after a root rotation); the key decides which\n"
                  "root's CRL is signed");
  crl->footer(footer("  warden ca crl --root --root-key /media/offline/root.key --dir D\n"
                     "  warden ca crl --root --root-key /media/offline/root-2.key --dir D\n"
                     "Writes D/pki/crl/root.crl, or D/pki/crl/root-N.crl for a later root (DER,\n"
                     "pki.root_crl_validity, default 365d); serve never reads a root key. It lists the\n"
                     "retired issuing CAs that root signed (reason superseded) until they expire: re-sign\n"
                     "it after `ca retire`. During a root rotation sign both roots' CRLs. Works with or\n"
                     "without a running server."));
  table.add(crl, [f, &global] { return caCrl(*f, global); });
}

}  // namespace warden::cli
