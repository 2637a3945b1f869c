#include "agent/agent_files.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include "api/api_client.h"
#include "core/file_io.h"
#include "core/names.h"
#include "crypto/crypto.h"
#include "keystore/pkcs11_uri.h"
#include "keystore/tpm2_key_store.h"

namespace warden::agent {
namespace {

using core::Result;
using core::Status;

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

Status renameFile(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return core::failedPrecondition(fmt::format("cannot rename {} to {}: {}", from, to, std::strerror(errno)));
  }
  return Status::ok();
}

// keyMatchesCert reports whether the key at |key_path| and the first
// certificate of the PEM chain belong together.
bool keyMatchesCert(const std::string& key_path, const std::string& cert_path, const KeyOpener& open_key) {
  auto cert_pem = core::readFile(cert_path, 256 * 1024);
  if (!cert_pem.isOk()) return false;
  auto cert = crypto::certFromPem(*cert_pem);
  auto key = open_key(key_path);
  if (!key.isOk() || !cert.isOk()) return false;
  return EVP_PKEY_eq(X509_get0_pubkey(cert->get()), key->get()) == 1;
}

Result<keystore::PrivateKey> openPemKey(const std::string& path) {
  auto pem = core::readFile(path, 64 * 1024);
  if (!pem.isOk()) return pem.status();
  auto key = crypto::privateKeyFromPem(*pem);
  std::fill(pem->begin(), pem->end(), '\0');
  if (!key.isOk()) return key.status();
  return keystore::PrivateKey(std::move(key).value(), keystore::KeyStoreKind::kFile, path);
}

}  // namespace

std::string renderAgentConfig(const AgentConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "server" << YAML::Value << config.server;
  out << YAML::Key << "name" << YAML::Value << config.name;
  out << YAML::Key << "ca_fingerprint" << YAML::Value << config.ca_fingerprint;
  if (config.key_store != keystore::KeyStoreKind::kFile) {
    out << YAML::Key << "key_store" << YAML::Value << std::string(keystore::keyStoreKindName(config.key_store));
  }
  if (!config.tpm.empty()) out << YAML::Key << "tpm" << YAML::Value << config.tpm;
  if (!config.key_uri.empty()) out << YAML::Key << "key_uri" << YAML::Value << config.key_uri;
  out << YAML::EndMap;
  return "# warden-agent enrollment; written by `warden-agent enroll`.\n" + std::string(out.c_str()) + "\n";
}

Result<AgentConfig> loadAgentConfig(const std::string& path) {
  auto text = core::readFile(path, 64 * 1024);
  if (!text.isOk()) {
    return core::invalidArgument(fmt::format("{}: cannot read ({}); enroll first with `warden-agent enroll ... --dir DIR`",
                                             path, text.status().message()));
  }
  AgentConfig config;
  try {
    YAML::Node root = YAML::Load(*text);
    if (!root.IsMap()) return core::invalidArgument(fmt::format("{}: not a YAML mapping", path));
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) return core::invalidArgument(fmt::format("{}: '{}' must be a string", path, key));
      std::string value = kv.second.as<std::string>();
      if (key == "server") {
        config.server = value;
      } else if (key == "name") {
        config.name = value;
      } else if (key == "ca_fingerprint") {
        config.ca_fingerprint = value;
      } else if (key == "key_store") {
        auto kind = keystore::parseKeyStoreKind(value);
        if (!kind.isOk()) return core::invalidArgument(fmt::format("{}: key_store: {}", path, kind.status().message()));
        config.key_store = *kind;
      } else if (key == "tpm") {
        config.tpm = value;
      } else if (key == "key_uri") {
        config.key_uri = value;
      } else {
        return core::invalidArgument(fmt::format("{}: unknown key '{}'", path, key.substr(0, 64)));
      }
    }
  } catch (const YAML::Exception& e) {
    return core::invalidArgument(fmt::format("{}: {}", path, e.what()));
  }
  if (auto u = api::parseServerUrl(config.server); !u.isOk()) {
    return core::invalidArgument(fmt::format("{}: server: {}", path, u.status().message()));
  }
  if (!core::isValidName(config.name)) return core::invalidArgument(fmt::format("{}: name is not a valid device name", path));
  if (!api::isValidFingerprint(config.ca_fingerprint)) {
    return core::invalidArgument(fmt::format("{}: ca_fingerprint must read sha256: and 64 lowercase hex digits", path));
  }
  if (config.key_store == keystore::KeyStoreKind::kTpm2) {
    if (Status s = keystore::checkTcti(config.tpm); !s.isOk()) {
      return core::invalidArgument(fmt::format("{}: tpm: {}", path, s.message()));
    }
  }
  if (config.key_store == keystore::KeyStoreKind::kPkcs11) {
    auto uri = keystore::parsePkcs11Uri(config.key_uri);
    if (!uri.isOk()) return core::invalidArgument(fmt::format("{}: key_uri: {}", path, uri.status().message()));
  }
  return config;
}

Status installCredentials(const AgentPaths& paths, const std::string& key_pem, const std::string& cert_pem) {
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.nextKey(), key_pem, 0600));
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.nextCert(), cert_pem, 0644));
  WARDEN_RETURN_IF_ERROR(renameFile(paths.nextKey(), paths.key()));
  WARDEN_RETURN_IF_ERROR(renameFile(paths.nextCert(), paths.cert()));
  return Status::ok();
}

Status installStagedCredentials(const AgentPaths& paths, const std::string& cert_pem) {
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(paths.nextCert(), cert_pem, 0644));
  WARDEN_RETURN_IF_ERROR(renameFile(paths.nextKey(), paths.key()));
  WARDEN_RETURN_IF_ERROR(renameFile(paths.nextCert(), paths.cert()));
  return Status::ok();
}

Status installCertificate(const AgentPaths& paths, const std::string& cert_pem) {
  return core::writeFileAtomic(paths.cert(), cert_pem, 0644);
}

Status recoverPendingCredentials(const AgentPaths& paths, const KeyOpener& open_key_or_default) {
  KeyOpener open_key = open_key_or_default ? open_key_or_default : KeyOpener(openPemKey);
  bool next_key = exists(paths.nextKey());
  bool next_cert = exists(paths.nextCert());
  if (next_key && next_cert && keyMatchesCert(paths.nextKey(), paths.nextCert(), open_key)) {
    WARDEN_RETURN_IF_ERROR(renameFile(paths.nextKey(), paths.key()));
    return renameFile(paths.nextCert(), paths.cert());
  }
  if (!next_key && next_cert && keyMatchesCert(paths.key(), paths.nextCert(), open_key)) {
    return renameFile(paths.nextCert(), paths.cert());  // crashed between the two renames
  }
  // Anything else staged is incomplete: the pair in place is the valid one.
  if (next_key) ::unlink(paths.nextKey().c_str());
  if (next_cert) ::unlink(paths.nextCert().c_str());
  return Status::ok();
}

core::SystemTime certificateObtainedAt(const AgentPaths& paths, core::SystemTime fallback) {
  struct stat st{};
  if (::stat(paths.cert().c_str(), &st) != 0) return fallback;
  return core::fromUnixSeconds(static_cast<int64_t>(st.st_mtim.tv_sec));
}

}  // namespace warden::agent
