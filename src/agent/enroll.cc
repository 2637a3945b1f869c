#include "agent/enroll.h"

#include <algorithm>
#include <cstdio>
#include <sys/stat.h>

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
  X509_up_ref(chain.root.get());
  out.emplace_back(chain.root.get());
  for (const auto& c : chain.intermediates) {
    X509_up_ref(c.get());
    out.emplace_back(c.get());
  }
  return out;
}

// localFailure marks a failure on this machine (files), which must not be
// mistaken for an unreachable server (exit 3).
Status localFailure(const Status& s) { return core::failedPrecondition(s.message()); }

struct Enrolled {
  crypto::X509Ptr leaf;
  std::string serial;
};

Result<Enrolled> enroll(const EnrollOptions& o, const api::ServerUrl& url, keystore::KeyStoreKind key_store,
                        bool& token_sent) {
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

  // 3. The key is made here and never leaves the device (with a TPM or a
  //    token it never leaves the chip either).
  AgentPaths paths(o.dir);
  Status s = core::makePrivateDir(o.dir);
  if (s.isOk() && ::chmod(o.dir.c_str(), 0700) != 0) s = core::failedPrecondition("cannot chmod 0700");
  if (!s.isOk()) return localFailure(Status(s.code(), fmt::format("cannot create {}: {}", o.dir, s.message())));
  AgentConfig agent_config{url.text, o.name, o.ca_fingerprint, key_store, o.tpm, o.key_uri};
  auto device_keys = DeviceKeyStore::open(agent_config, paths);
  if (!device_keys.isOk()) return localFailure(device_keys.status());
  auto created = device_keys->createForEnrollment();
  if (!created.isOk()) return localFailure(created.status());
  keystore::PrivateKey key = std::move(created).value();
  logInfo(o.output_json, fmt::format("device key created in the {} key store", keystore::keyStoreKindName(key_store)));
  WARDEN_ASSIGN_OR_RETURN(crypto::X509ReqPtr csr, api::buildCsr(key.get(), o.name));

  // 4. simpleenroll over a connection verified against the pinned root.
  api::ApiClientOptions verified;
  verified.server = url;
  verified.tls.trust_pem = chain.pem();
  WARDEN_ASSIGN_OR_RETURN(auto second, api::ApiClient::create(verified));
  token_sent = true;
  WARDEN_ASSIGN_OR_RETURN(
      crypto::X509Ptr leaf,
      api::requestCertificate(*second, "/.well-known/est/simpleenroll", api::csrBody(csr.get()),
                              api::basicAuthorization(o.name, o.token),
                              {{api::kKeyStoreHeader, std::string(keystore::keyStoreKindName(key_store))}}));
  WARDEN_RETURN_IF_ERROR(api::checkIssuedCertificate(leaf.get(), key.get(), o.name, chain));

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
    WARDEN_ASSIGN_OR_RETURN(std::string key_pem, crypto::privateKeyToPem(key.get()));
    written = core::writeFileAtomic(paths.key(), key_pem, 0600);
    std::fill(key_pem.begin(), key_pem.end(), '\0');
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
  Enrolled out;
  out.serial = crypto::serialHex(leaf.get());
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
  } else if (!core::isValidName(o.name)) {
    invalid = core::checkName("device name", o.name);
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
        hint = fmt::format("enrollment at {} refused: {}. A token works once and expires; get a new one with "
                           "`warden device token {}`.",
                           url->text, s.message(), o.name);
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
  nlohmann::json j = {
      {"name", o.name},
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
                           o.name, j["spiffe_id"].is_null() ? "no SPIFFE ID" : j["spiffe_id"].get<std::string>(),
                           result->serial, j["cert_not_after"].get<std::string>(), j["renew_at"].get<std::string>(),
                           key_where, p.cert(), p.ca(), o.dir)
                   .c_str(),
               stdout);
  }
  std::fflush(stdout);
  return api::kExitOk;
}

}  // namespace warden::agent
