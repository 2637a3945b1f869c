#include "keystore/file_key_store.h"

#include <sys/stat.h>

#include <algorithm>

#include <fmt/format.h>

#include "core/file_io.h"
#include "crypto/crypto.h"

namespace warden::keystore {
namespace {

std::string pathOf(std::string_view reference) {
  if (reference.substr(0, 5) == "file:") reference.remove_prefix(5);
  return std::string(reference);
}

}  // namespace

core::Result<PrivateKey> FileKeyStore::generate(std::string_view reference) {
  std::string path = pathOf(reference);
  if (path.empty()) return core::invalidArgument("a file key needs a path");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    return core::alreadyExists(fmt::format("{} already exists; refusing to overwrite a key", path));
  }
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, crypto::generateEcKey());
  WARDEN_RETURN_IF_ERROR(crypto::writePrivateKeyFile(path, key.get()));
  return PrivateKey(std::move(key), KeyStoreKind::kFile, path);
}

core::Result<PrivateKey> FileKeyStore::load(std::string_view reference) {
  std::string path = pathOf(reference);
  auto pem = core::readFile(path, 64 * 1024);
  if (!pem.isOk()) return pem.status();
  auto key = crypto::privateKeyFromPem(*pem);
  std::fill(pem->begin(), pem->end(), '\0');
  if (!key.isOk()) return core::invalidArgument(fmt::format("{}: {}", path, key.status().message()));
  return PrivateKey(std::move(key).value(), KeyStoreKind::kFile, path);
}

}  // namespace warden::keystore
