#include "agent/enroll.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/agent_files.h"
#include "agent/agent_output.h"
#include "agent/device_key.h"
#include "api/admin_client.h"
#include "api/api_client.h"
#include "api/est_client.h"
#include "core/file_io.h"
#include "core/names.h"
#include "crypto/crypto.h"
#include "keystore/pkcs11_uri.h"
#include "keystore/tpm2_key_store.h"

namespace warden::agent {
namespace {

using core::Result;
using core::Status;

std::vector<crypto::X509Ptr> copies(const api::CaChain& chain) {
  std::vector<crypto::X509Ptr> out;
  for (X509* c : chain.certs()) {
    X509_up_ref(c);
    out.emplace_back(c);
  }
  return out;
}

// localFailure marks a failure on this machine (files), which must not be
// mistaken for an unreachable server (exit 3).
Status localFailure(const Status& s) { return core::failedPrecondition(s.message()); }

struct Enrolled {
  crypto::X509Ptr leaf;
  std::string serial;
  std::string name;  // the device name (from the certificate after a factory enrollment)
};

// pendingKeyPath is where a key waits while its request awaits approval:
// only the key of the first request can complete it, also after a restart.
std::string pendingKeyPath(const std::string& dir) { return dir + "/pending-key.pem"; }

// loadOrMakeKey reuses a key left by an enrollment that awaited approval.
Result<crypto::EvpPkeyPtr> loadOrMakeKey(const std::string& dir, bool quiet) {
  auto pem = core::readFile(pendingKeyPath(dir), 64 * 1024);
  if (pem.isOk()) {
    auto key = crypto::privateKeyFromPem(*pem);
    std::fill(pem->begin(), pem->end(), '\0');
    if (key.isOk()) {
      logInfo(quiet, "reusing the key of the enrollment request that awaits approval");
      return key;
    }
  }
  return crypto::generateEcKey();
}

Status keepPendingKey(const std::string& dir, EVP_PKEY* key) {
  if (core::readFile(pendingKeyPath(dir), 64 * 1024).isOk()) return Status::ok();
  Status s = core::makePrivateDir(dir);
  if (!s.isOk()) return localFailure(s);
  Status written = crypto::writePrivateKeyFile(pendingKeyPath(dir), key);
  return written.isOk() ? written : localFailure(written);
}

Result<Enrolled> enroll(const EnrollOptions& o, const api::ServerUrl& url, keystore::KeyStoreKind key_store,
                        bool& token_sent) {
  const bool factory = !o.idevid_cert.empty();
  std::string idevid_pem, idevid_key_pem;
  std::string csr_name = o.name;
  if (factory) {
    auto cert = core::readFile(o.idevid_cert, 256 * 1024);
    if (!cert.isOk()) return localFailure(Status(cert.status().code(), "--idevid: " + cert.status().message()));
    auto key = core::readFile(o.idevid_key, 64 * 1024);
    if (!key.isOk()) return localFailure(Status(key.status().code(), "--idevid-key: " + key.status().message()));
    idevid_pem = std::move(cert).value();
    idevid_key_pem = std::move(key).value();
    auto leaf = crypto::certFromPem(idevid_pem);
    if (!leaf.isOk()) return localFailure(core::invalidArgument("--idevid holds no PEM certificate"));
    csr_name = crypto::commonName(leaf->get());  // ignored by the server, which names the device
    if (csr_name.empty()) csr_name = "idevid";
  }
  // 1. First contact: complete the handshake provisionally and fetch the CA
  //    certificates; nothing secret is sent on this connection.
  api::ApiClientOptions bootstrap;
  bootstrap.server = url;
  bootstrap.tls.provisional = true;
  WARDEN_ASSIGN_OR_RETURN(auto first, api::ApiClient::create(bootstrap));
  WARDEN_ASSIGN_OR_RETURN(auto ca_certs, api::fetchCaCerts(*first));
  // 2. The pin decides: the root with the pinned fingerprint, and the
  //    server's own chain must lead to it for the host we dialled.
  WARDEN_ASSIGN_OR_RETURN(api::CaChain chain, api::selectPinnedChain(std::move(ca_certs), o.ca_fingerprint));
  WARDEN_RETURN_IF_ERROR(api::verifyChainWithPin(first->peerChain(), copies(chain), o.ca_fingerprint, url));
  logInfo(o.output_json, fmt::format("server {} verified against the pinned root CA {}", url.text, o.ca_fingerprint));
  for (const std::string& why : chain.refused_roots) {
    logInfo(o.output_json, fmt::format("refused root update: {} (the pin stays {})", why, o.ca_fingerprint));
  }
  if (!chain.previous_pin.empty()) {
    logInfo(o.output_json, fmt::format("root CA rollover: the pin moves from {} to {} (NewWithOld verified under the "
                                       "pinned root)",
                                       chain.previous_pin, chain.pin()));
  }

  // 3. simpleenroll over a connection verified against the pinned root,
  //    with the factory certificate as TLS client certificate if given.
  api::ApiClientOptions verified;
  verified.server = url;
  verified.tls.trust_pem = chain.pem();
  verified.tls.cert_pem = idevid_pem;
  verified.tls.key_pem = idevid_key_pem;
  std::fill(idevid_key_pem.begin(), idevid_key_pem.end(), '\0');
  {
    // RFC 7030 §4.5: what the server wants in a CSR (this agent makes P-256 / ECDSA-SHA256).
    WARDEN_ASSIGN_OR_RETURN(auto attrs_client, api::ApiClient::create(verified));
    WARDEN_RETURN_IF_ERROR(api::checkCsrAttrs(*attrs_client));
  }

  // 4. The key is made here and never leaves the device (with a TPM or a
  //    token it never leaves the chip either). A key left by an enrollment
  //    that awaits approval (file, staged TPM blob, token key) is reused:
  //    only it can complete that request.
  AgentPaths paths(o.dir);
  Status s = core::makePrivateDir(o.dir);
  if (s.isOk() && ::chmod(o.dir.c_str(), 0700) != 0) s = core::failedPrecondition("cannot chmod 0700");
  if (!s.isOk()) return localFailure(Status(s.code(), fmt::format("cannot create {}: {}", o.dir, s.message())));
  AgentConfig agent_config{url.text, o.name, chain.pin(), key_store, o.tpm, o.key_uri};
  // The key a previous run left waiting for approval, if any (it is reused).
  // A token key has no file: it waits in the token, under its fixed label.
  const std::string waiting_file = key_store == keystore::KeyStoreKind::kFile   ? pendingKeyPath(o.dir)
                                   : key_store == keystore::KeyStoreKind::kTpm2 ? paths.nextKey()
                                                                                : std::string();
  std::string waiting_key = waiting_file;
  if (!waiting_key.empty() && ::access(waiting_key.c_str(), F_OK) != 0) waiting_key.clear();
  auto device_keys = DeviceKeyStore::open(agent_config, paths);
  if (!device_keys.isOk()) return localFailure(device_keys.status());
  std::optional<keystore::PrivateKey> made;
  if (key_store == keystore::KeyStoreKind::kFile) {
    WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr file_key, loadOrMakeKey(o.dir, o.output_json));
    made.emplace(std::move(file_key), key_store, paths.key());
  } else {
    auto created = device_keys->createForEnrollment();
    if (!created.isOk()) return localFailure(created.status());
    made.emplace(std::move(created).value());
  }
  const keystore::PrivateKey& key = *made;
  const std::string key_store_name(keystore::keyStoreKindName(key_store));
  logInfo(o.output_json, fmt::format("device key in the {} key store", key_store_name));
  WARDEN_ASSIGN_OR_RETURN(crypto::X509ReqPtr csr, api::buildCsr(key.get(), csr_name));
  const std::string csr_body = api::csrBody(csr.get());
  std::optional<std::string> authorization;
  if (!factory) authorization = api::basicAuthorization(o.name, o.token);
  token_sent = true;
  const auto deadline = std::chrono::steady_clock::now() + o.approval_timeout;
  crypto::X509Ptr leaf;
  for (;;) {
    WARDEN_ASSIGN_OR_RETURN(auto client, api::ApiClient::create(verified));
    auto sent = api::sendEnrollRequest(*client, "/.well-known/est/simpleenroll", csr_body, authorization,
                                       {{api::kKeyStoreHeader, key_store_name}});
    if (!sent.isOk() && sent.status().code() == core::ErrorCode::kUnauthenticated) {
      // A refusal of a kept key (e.g. its request was denied): say how to start over.
      if (!waiting_key.empty()) {
        return Status(sent.status().code(),
                      fmt::format("{} (this key waited for approval; if an operator denied it, delete {} and enroll "
                                  "again: a new key asks again)",
                                  sent.status().message(), waiting_key));
      }
    }
    if (!sent.isOk()) return sent.status();
    api::EnrollAnswer answer = std::move(sent).value();
    if (answer.cert) {
      leaf = std::move(answer.cert);
      break;
    }
    // 202: the request awaits an operator. Keep the key (only it can
    // complete the request) and retry as told, within the bound.
    if (key_store == keystore::KeyStoreKind::kFile) WARDEN_RETURN_IF_ERROR(keepPendingKey(o.dir, key.get()));
    auto wait = std::clamp(*answer.retry_after, std::chrono::seconds(1), std::chrono::seconds(300));
    if (std::chrono::steady_clock::now() + wait > deadline) {
      const std::string kept = key_store == keystore::KeyStoreKind::kTpm2 ? waiting_file + " (TPM-wrapped)"
                               : waiting_file.empty()                     ? "the token (" + o.key_uri + ")"
                                                                          : waiting_file;
      return core::failedPrecondition(fmt::format(
          "the enrollment request still awaits approval ({}); run the same command again later: the key is kept in {}",
          answer.message, kept));
    }
    logInfo(o.output_json, fmt::format("{}; retrying in {} s", answer.message, wait.count()));
    std::this_thread::sleep_for(wait);
  }
  WARDEN_RETURN_IF_ERROR(api::checkIssuedCertificate(leaf.get(), key.get(), factory ? "" : o.name, chain));
  const std::string name = crypto::commonName(leaf.get());
  agent_config.name = name;

  // 5. Write A: key 0600 (file: the PEM; tpm2: the staged TPM blob; pkcs11:
  //    nothing, the key is in the token), cert = leaf + issuing CA, ca = root
  //    + issuing CA.
  X509* issuer = api::issuerOf(leaf.get(), chain);
  std::vector<X509*> cert_chain{leaf.get()};
  if (issuer != nullptr) cert_chain.push_back(issuer);
  std::string cert_pem = crypto::certsToPem(cert_chain);
  std::string config = renderAgentConfig(agent_config);
  Status written;
  if (key_store == keystore::KeyStoreKind::kFile) {
    written = crypto::writePrivateKeyFile(paths.key(), key.get());
  } else if (key_store == keystore::KeyStoreKind::kTpm2) {
    if (::rename(paths.nextKey().c_str(), paths.key().c_str()) != 0) {
      written = core::failedPrecondition(fmt::format("cannot rename {} to {}", paths.nextKey(), paths.key()));
    }
  } else {
    ::unlink(paths.key().c_str());  // no stale file key next to a token key
  }
  if (written.isOk()) written = core::writeFileAtomic(paths.cert(), cert_pem, 0644);
  if (written.isOk()) written = core::writeFileAtomic(paths.ca(), chain.pem(), 0644);
  if (written.isOk()) written = core::writeFileAtomic(paths.config(), config, 0644);
  if (!written.isOk()) return localFailure(written);
  std::remove(pendingKeyPath(o.dir).c_str());
  Enrolled out;
  out.serial = crypto::serialHex(leaf.get());
  out.name = name;
  out.leaf = std::move(leaf);
  return out;
}

// checkKeyStoreOptions validates --key-store and its companions and
// completes |o.key_uri| with --pkcs11-module.
Status checkKeyStoreOptions(EnrollOptions& o, const Result<keystore::KeyStoreKind>& kind) {
  if (!kind.isOk()) return core::invalidArgument("--key-store: " + kind.status().message());
  if (*kind != keystore::KeyStoreKind::kTpm2 && !o.tpm.empty()) {
    return core::invalidArgument("--tpm is only used with --key-store tpm2");
  }
  if (*kind != keystore::KeyStoreKind::kPkcs11 && (!o.key_uri.empty() || !o.pkcs11_module.empty())) {
    return core::invalidArgument("--key-uri and --pkcs11-module are only used with --key-store pkcs11");
  }
  if (*kind == keystore::KeyStoreKind::kTpm2) {
    if (o.tpm.empty()) {
      return core::invalidArgument("--key-store tpm2 needs --tpm TCTI, e.g. --tpm tabrmd:bus_type=system (tpm2-abrmd)");
    }
    return keystore::checkTcti(o.tpm);
  }
  if (*kind == keystore::KeyStoreKind::kPkcs11) {
    if (o.key_uri.empty()) {
      return core::invalidArgument(
          "--key-store pkcs11 needs --key-uri, e.g. 'pkcs11:token=se;object=device-key;type=private?pin-source=file:/etc/"
          "warden/se.pin'");
    }
    auto uri = keystore::parsePkcs11Uri(o.key_uri);
    if (!uri.isOk()) return core::invalidArgument("--key-uri: " + uri.status().message());
    if (!o.pkcs11_module.empty()) {
      if (!uri->module_path.empty() && uri->module_path != o.pkcs11_module) {
        return core::invalidArgument("--pkcs11-module and the module-path of --key-uri differ");
      }
      uri->module_path = o.pkcs11_module;
    }
    if (uri->module_path.empty()) return core::invalidArgument("--key-store pkcs11 needs --pkcs11-module PATH");
    if (uri->object.empty()) return core::invalidArgument("--key-uri needs object=LABEL: the device key's label");
    uri->type = "private";
    o.key_uri = uri->toString();
  }
  return Status::ok();
}

}  // namespace

int runEnroll(const EnrollOptions& options) {
  EnrollOptions o = options;
  std::transform(o.ca_fingerprint.begin(), o.ca_fingerprint.end(), o.ca_fingerprint.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto url = api::parseServerUrl(o.server);
  Status invalid;
  if (!url.isOk()) {
    invalid = url.status();
  } else if (!o.idevid_cert.empty() || !o.idevid_key.empty()) {
    if (o.idevid_cert.empty() || o.idevid_key.empty()) {
      invalid = core::invalidArgument("--idevid and --idevid-key go together (the factory certificate and its key)");
    } else if (!o.name.empty() || !o.token.empty()) {
      invalid = core::invalidArgument(
          "give either --idevid/--idevid-key (factory identity) or --name/--token (one-time token), not both");
    }
  } else if (!core::isValidName(o.name)) {
    invalid = o.name.empty() ? core::invalidArgument("give --name and --token, or --idevid and --idevid-key")
                             : core::checkName("device name", o.name);
  } else if (o.token.empty() || o.token.size() > 512 ||
             o.token.find_first_of(" \t\r\n:") != std::string::npos) {
    invalid = core::invalidArgument("--token must be the one-time token printed by `warden device add` or `warden device token`");
  } else if (!api::isValidFingerprint(o.ca_fingerprint)) {
    invalid = core::invalidArgument("--ca-fingerprint must read sha256: followed by 64 hex digits (printed by `warden device add`)");
  } else if (o.dir.empty()) {
    invalid = core::invalidArgument("--dir is required");
  }
  auto kind = keystore::parseKeyStoreKind(o.key_store);
  keystore::KeyStoreKind key_store = kind.isOk() ? *kind : keystore::KeyStoreKind::kFile;
  if (invalid.isOk()) invalid = checkKeyStoreOptions(o, kind);
  if (!invalid.isOk()) {
    printError(invalid.message());
    return api::kExitUsage;
  }

  bool token_sent = false;
  auto result = enroll(o, *url, key_store, token_sent);
  if (!result.isOk()) {
    const Status& s = result.status();
    std::string hint;
    switch (s.code()) {
      case core::ErrorCode::kUnavailable:
      case core::ErrorCode::kDeadlineExceeded:
        hint = fmt::format("cannot reach the Warden API at {}: {}. Is `warden serve` running and --server right?", url->text,
                           s.message());
        break;
      case core::ErrorCode::kUnauthenticated:
        hint = o.idevid_cert.empty()
                   ? fmt::format("enrollment at {} refused: {}. A token works once and expires; get a new one with "
                                 "`warden device token {}`.",
                                 url->text, s.message(), o.name)
                   : fmt::format("factory enrollment at {} refused: {}. Is the manufacturer trusted (`warden "
                                 "manufacturer list`) and this serialNumber allowed?",
                                 url->text, s.message());
        if (!token_sent) {
          hint = fmt::format("refusing to enroll at {}: {}. The token was not sent.", url->text, s.message());
        }
        break;
      default:
        hint = fmt::format("enrollment failed: {}", s.message());
    }
    printError(hint);
    return api::exitCodeFor(s);
  }

  X509* leaf = result->leaf.get();
  std::vector<std::string> uris = crypto::uriSans(leaf);
  const std::string name = result->name;
  nlohmann::json j = {
      {"name", name},
      {"spiffe_id", uris.empty() ? nlohmann::json(nullptr) : nlohmann::json(uris.front())},
      {"server", url->text},
      {"dir", o.dir},
      {"cert_serial", result->serial},
      {"cert_not_after", core::formatRfc3339(crypto::notAfter(leaf))},
      {"renew_at", core::formatRfc3339(api::renewalTime(leaf, core::systemClock().now()))},
      {"ca_fingerprint", o.ca_fingerprint},
      {"key_store", std::string(keystore::keyStoreKindName(key_store))},
  };
  if (o.output_json) {
    std::fputs((j.dump() + "\n").c_str(), stdout);
  } else {
    AgentPaths p(o.dir);
    std::string key_where = p.key() + " (0600, generated on this device)";
    if (key_store == keystore::KeyStoreKind::kTpm2) key_where = p.key() + " (TPM-wrapped blob; the key never leaves the TPM)";
    if (key_store == keystore::KeyStoreKind::kPkcs11) key_where = o.key_uri + " (in the token, not extractable)";
    std::fputs(fmt::format("enrolled {} ({})\n"
                           "  certificate serial {} valid until {} (renewal due {})\n"
                           "  key:         {}\n"
                           "  certificate: {} (leaf + issuing CA)\n"
                           "  CA bundle:   {} (root + issuing CA)\n"
                           "keep it renewed with: warden-agent run --dir {}\n",
                           name, j["spiffe_id"].is_null() ? "no SPIFFE ID" : j["spiffe_id"].get<std::string>(),
                           result->serial, j["cert_not_after"].get<std::string>(), j["renew_at"].get<std::string>(),
                           key_where, p.cert(), p.ca(), o.dir)
                   .c_str(),
               stdout);
  }
  std::fflush(stdout);
  return api::kExitOk;
}

}  // namespace warden::agent
