// The one file that uses OpenSSL's deprecated ENGINE API: libp11's engine is
// the only PKCS#11 bridge Debian 12 ships for OpenSSL 3.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "keystore/pkcs11_key_store.h"

#include <algorithm>
#include <mutex>

#include <fmt/format.h>
#include <openssl/engine.h>

#include "crypto/crypto.h"

namespace warden::keystore {
namespace {

using core::Result;
using core::Status;

// Pkcs11Engine is libp11's engine, initialized once per process with one
// module. It is never unloaded: EVP_PKEYs it made may live until exit.
class Pkcs11Engine {
 public:
  static Result<Pkcs11Engine*> get(const std::string& module_path) {
    static std::mutex mu;
    static Pkcs11Engine* instance = nullptr;
    std::lock_guard<std::mutex> lock(mu);
    if (instance != nullptr) {
      if (instance->module_path_ != module_path) {
        return core::failedPrecondition(fmt::format(
            "this process already uses the PKCS#11 module {}; keys from {} cannot be mixed in (one module per process)",
            instance->module_path_, module_path));
      }
      return instance;
    }
    ENGINE* e = ENGINE_by_id("pkcs11");
    if (e == nullptr) {
      ERR_clear_error();
      return core::failedPrecondition(
          "OpenSSL cannot load libp11's engine 'pkcs11': install libengine-pkcs11-openssl (scripts/setup)");
    }
    if (ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module_path.c_str(), 0) != 1 || ENGINE_init(e) != 1) {
      std::string why = crypto::openSslErrorString();
      ENGINE_free(e);
      return core::failedPrecondition(fmt::format("libp11's engine cannot use the PKCS#11 module {}: {}", module_path,
                                                  why.empty() ? "initialization failed" : why));
    }
    ENGINE_free(e);  // the functional reference from ENGINE_init keeps it
    instance = new Pkcs11Engine(e, module_path);  // lives until exit by design (see above)
    return instance;
  }

  Result<crypto::EvpPkeyPtr> loadPrivateKey(const Pkcs11Uri& uri, const std::string& pin) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!pin.empty() && ENGINE_ctrl_cmd_string(engine_, "PIN", pin.c_str(), 0) != 1) {
      ERR_clear_error();
      return core::failedPrecondition("libp11's engine refused the PIN control command");
    }
    std::string path = uri.pathOnly();
    EVP_PKEY* key = ENGINE_load_private_key(engine_, path.c_str(), nullptr, nullptr);
    if (key == nullptr) {
      std::string why = crypto::openSslErrorString();
      return core::notFound(fmt::format("cannot load the private key {} from the token: {}. Check object=/id= "
                                        "(pkcs11-tool --module MODULE --list-objects) and the PIN file",
                                        path, why.empty() ? "not found" : why));
    }
    return crypto::EvpPkeyPtr(key);
  }

 private:
  Pkcs11Engine(ENGINE* e, std::string module_path) : engine_(e), module_path_(std::move(module_path)) {}

  std::mutex mu_;
  ENGINE* engine_;
  std::string module_path_;
};

struct Pin {
  std::string value;
  ~Pin() { std::fill(value.begin(), value.end(), '\0'); }
};

Result<std::string> pinFor(const Pkcs11Uri& uri) {
  if (uri.pin_source.empty()) return std::string();
  return readPinFile(uri.pin_source);
}

}  // namespace

Result<Pkcs11Uri> Pkcs11KeyStore::resolve(std::string_view reference) const {
  WARDEN_ASSIGN_OR_RETURN(Pkcs11Uri uri, parsePkcs11Uri(reference));
  if (uri.module_path.empty()) uri.module_path = default_module_;
  if (uri.module_path.empty()) {
    return core::invalidArgument(fmt::format(
        "{}: name the PKCS#11 module with ?module-path=/path/to/module.so (e.g. /usr/lib/softhsm/libsofthsm2.so)",
        uri.toString()));
  }
  if (!uri.type.empty() && uri.type != "private") {
    return core::invalidArgument(fmt::format("{}: a signing key is type=private", uri.toString()));
  }
  return uri;
}

Result<std::string> Pkcs11KeyStore::createInToken(std::string_view reference) {
  WARDEN_ASSIGN_OR_RETURN(Pkcs11Uri uri, resolve(reference));
  {
    Pin pin;
    WARDEN_ASSIGN_OR_RETURN(pin.value, pinFor(uri));
    WARDEN_ASSIGN_OR_RETURN(auto token, Pkcs11Token::open(uri.module_path, uri, pin.value));
    WARDEN_ASSIGN_OR_RETURN(uri.id, token->generateEcKeyPair(uri));
  }  // the session closes (and the module is finalized) before the engine opens it
  uri.type = "private";
  return uri.toString();
}

Result<PrivateKey> Pkcs11KeyStore::generate(std::string_view reference) {
  WARDEN_ASSIGN_OR_RETURN(std::string created, createInToken(reference));
  return load(created);
}

Result<PrivateKey> Pkcs11KeyStore::load(std::string_view reference) {
  WARDEN_ASSIGN_OR_RETURN(Pkcs11Uri uri, resolve(reference));
  Pin pin;
  WARDEN_ASSIGN_OR_RETURN(pin.value, pinFor(uri));
  WARDEN_ASSIGN_OR_RETURN(Pkcs11Engine * engine, Pkcs11Engine::get(uri.module_path));
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, engine->loadPrivateKey(uri, pin.value));
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC) {
    return core::invalidArgument(fmt::format("{} is not an EC key (Warden's CAs and devices use EC P-256/P-384)",
                                             uri.pathOnly()));
  }
  return PrivateKey(std::move(key), KeyStoreKind::kPkcs11, uri.toString());
}

Result<Pkcs11KeyProtection> Pkcs11KeyStore::protection(std::string_view reference) {
  WARDEN_ASSIGN_OR_RETURN(Pkcs11Uri uri, resolve(reference));
  Pin pin;
  WARDEN_ASSIGN_OR_RETURN(pin.value, pinFor(uri));
  WARDEN_ASSIGN_OR_RETURN(auto token, Pkcs11Token::open(uri.module_path, uri, pin.value));
  return token->protection(uri);
}

}  // namespace warden::keystore
