#include "keystore/key_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "keystore/file_key_store.h"
#include "keystore/pkcs11_key_store.h"
#include "keystore/pkcs11_uri.h"
#include "keystore/tpm2_key_store.h"

namespace warden::keystore {

std::string_view keyStoreKindName(KeyStoreKind kind) {
  switch (kind) {
    case KeyStoreKind::kFile: return "file";
    case KeyStoreKind::kPkcs11: return "pkcs11";
    case KeyStoreKind::kTpm2: return "tpm2";
  }
  return "file";
}

core::Result<KeyStoreKind> parseKeyStoreKind(std::string_view name) {
  if (name == "file") return KeyStoreKind::kFile;
  if (name == "pkcs11") return KeyStoreKind::kPkcs11;
  if (name == "tpm2") return KeyStoreKind::kTpm2;
  return core::invalidArgument(fmt::format("unknown key store '{}': use file, pkcs11 or tpm2", name.substr(0, 32)));
}

std::shared_ptr<EVP_PKEY> PrivateKey::shared() const {
  EVP_PKEY_up_ref(key_.get());
  return std::shared_ptr<EVP_PKEY>(key_.get(), EVP_PKEY_free);
}

core::Result<std::unique_ptr<KeyStore>> makeKeyStore(const KeyStoreOptions& options) {
  switch (options.kind) {
    case KeyStoreKind::kFile: return std::unique_ptr<KeyStore>(std::make_unique<FileKeyStore>());
    case KeyStoreKind::kPkcs11:
      return std::unique_ptr<KeyStore>(std::make_unique<Pkcs11KeyStore>(options.pkcs11_module));
    case KeyStoreKind::kTpm2: {
      WARDEN_ASSIGN_OR_RETURN(auto store, Tpm2KeyStore::create(options.tcti));
      return std::unique_ptr<KeyStore>(std::move(store));
    }
  }
  return core::invalidArgument("unknown key store");
}

core::Result<std::unique_ptr<KeyStore>> keyStoreForReference(std::string_view reference) {
  KeyStoreOptions options;
  options.kind = isPkcs11Uri(reference) ? KeyStoreKind::kPkcs11 : KeyStoreKind::kFile;
  return makeKeyStore(options);
}

core::Result<PrivateKey> loadKey(std::string_view reference) {
  WARDEN_ASSIGN_OR_RETURN(auto store, keyStoreForReference(reference));
  return store->load(reference);
}

core::Result<std::string> readPinFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return core::notFound(fmt::format("cannot open the PIN file {} named by pin-source: {}", path, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return core::permissionDenied(fmt::format("the PIN file {} is not a regular file", path));
  }
  if ((st.st_mode & 0077) != 0 || st.st_uid != ::geteuid()) {
    ::close(fd);
    return core::permissionDenied(fmt::format(
        "the PIN file {} is readable by others (mode {:04o}) or not owned by this user; refusing to use it. Run: chmod "
        "0600 {}",
        path, st.st_mode & 07777, path));
  }
  std::string pin(257, '\0');
  ssize_t n = ::read(fd, pin.data(), pin.size());
  ::close(fd);
  if (n < 0) return core::failedPrecondition(fmt::format("cannot read the PIN file {}", path));
  if (static_cast<size_t>(n) > 256) {
    std::fill(pin.begin(), pin.end(), '\0');
    return core::invalidArgument(fmt::format("the PIN file {} is longer than 256 bytes", path));
  }
  pin.resize(static_cast<size_t>(n));
  if (!pin.empty() && pin.back() == '\n') pin.pop_back();
  if (!pin.empty() && pin.back() == '\r') pin.pop_back();
  if (pin.empty()) return core::invalidArgument(fmt::format("the PIN file {} is empty", path));
  return pin;
}

}  // namespace warden::keystore
