#pragma once

// pkcs11_uri.h: RFC 7512 PKCS#11 URIs, the names of keys held in a token
// (HSM, secure element, SoftHSM2). A strict, bounded parser: no I/O, no
// OpenSSL, no Asio (fuzz/pkcs11_uri_fuzz.cc drives it).
//
//   pkcs11:token=warden;object=issuing-ca;type=private
//       ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/warden/hsm.pin
//
// A PIN is only ever named by `pin-source=file:ABSOLUTE_PATH` (the file must
// be 0600, checked when it is read, see readPinFile); `pin-value` is refused
// so a PIN never travels in argv, the environment or warden.yaml.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace warden::keystore {

// Limits of parsePkcs11Uri: the whole URI, one decoded value, attributes.
inline constexpr size_t kMaxPkcs11UriLength = 4096;
inline constexpr size_t kMaxPkcs11ValueLength = 1024;
inline constexpr size_t kMaxPkcs11Attributes = 32;

// Pkcs11Uri is a parsed RFC 7512 URI. Values are percent-decoded; empty
// means "not given" (RFC 7512 §2.3: an absent attribute matches anything).
struct Pkcs11Uri {
  // Path attributes (RFC 7512 §2.3), matched against the token and object.
  std::string token;         // CK_TOKEN_INFO label
  std::string manufacturer;  // CK_TOKEN_INFO manufacturerID
  std::string serial;        // CK_TOKEN_INFO serialNumber
  std::string model;         // CK_TOKEN_INFO model
  std::string object;        // CKA_LABEL
  std::string id;            // CKA_ID, raw bytes
  std::string type;          // "private", "public", "cert", "secret-key", "data" or ""
  std::optional<uint64_t> slot_id;
  // Query attributes (RFC 7512 §2.4).
  std::string module_path;  // absolute path of the PKCS#11 module (.so)
  std::string module_name;  // module name without path or suffix (informational)
  std::string pin_source;   // absolute path of a 0600 file holding the PIN ("" = no PIN)

  // toString returns the canonical URI: path attributes in a fixed order,
  // then module-path and pin-source, every reserved byte percent-encoded.
  // It never contains a PIN (a Pkcs11Uri has none).
  std::string toString() const;
  // pathOnly returns the URI without query attributes (what libp11's engine
  // is given: the module and the PIN are passed to it separately).
  std::string pathOnly() const;
};

// parsePkcs11Uri parses |text| strictly: scheme "pkcs11:" (case-insensitive),
// known attributes only (vendor "x-" attributes are accepted and ignored),
// no attribute twice, valid percent-encoding, characters as RFC 7512 §2.3
// allows, the limits above, type one of RFC 7512's values, slot-id decimal,
// module-path and pin-source absolute paths without NUL, and no pin-value.
// Returns kInvalidArgument naming the offending attribute otherwise.
core::Result<Pkcs11Uri> parsePkcs11Uri(std::string_view text);

// isPkcs11Uri reports whether |text| starts with the "pkcs11:" scheme.
bool isPkcs11Uri(std::string_view text);

}  // namespace warden::keystore
