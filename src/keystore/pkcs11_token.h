#pragma once

// pkcs11_token.h (internal to keystore): the few raw PKCS#11 calls that
// libp11's engine does not offer: creating a non-extractable EC key pair in
// a token and reading a key's protection attributes. The module is
// dlopen()ed; C_Finalize is called only if this object initialized it.

#include <memory>
#include <string>

#include "core/status.h"
#include "keystore/pkcs11_uri.h"

namespace warden::keystore {

// Pkcs11KeyProtection is what a token reports about a private key.
struct Pkcs11KeyProtection {
  bool sensitive = false;          // CKA_SENSITIVE
  bool extractable = true;         // CKA_EXTRACTABLE
  bool always_sensitive = false;   // CKA_ALWAYS_SENSITIVE
  bool never_extractable = false;  // CKA_NEVER_EXTRACTABLE
  bool local = false;              // CKA_LOCAL: generated in the token
};

class Pkcs11Token {
 public:
  ~Pkcs11Token();
  Pkcs11Token(const Pkcs11Token&) = delete;
  Pkcs11Token& operator=(const Pkcs11Token&) = delete;

  // open loads |module_path|, initializes it and opens a read-write session
  // on the one token matching |uri| (token, manufacturer, serial, model,
  // slot-id), logged in as the user with |pin| if it is not empty.
  // kNotFound if no token matches, kInvalidArgument if several do,
  // kPermissionDenied if the PIN is refused.
  static core::Result<std::unique_ptr<Pkcs11Token>> open(const std::string& module_path, const Pkcs11Uri& uri,
                                                         const std::string& pin);

  // generateEcKeyPair creates an EC P-256 key pair on the token, labelled
  // uri.object with CKA_ID uri.id (a random 16-byte id if empty): private key
  // CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, !CKA_EXTRACTABLE, CKA_SIGN only.
  // kAlreadyExists if a private key with that label or id exists. Returns
  // the CKA_ID used.
  core::Result<std::string> generateEcKeyPair(const Pkcs11Uri& uri);

  // protection reads the protection attributes of the one private key that
  // matches uri.object / uri.id; kNotFound if none.
  core::Result<Pkcs11KeyProtection> protection(const Pkcs11Uri& uri);

 private:
  struct Impl;
  explicit Pkcs11Token(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warden::keystore
