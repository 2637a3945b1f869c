#pragma once

// csr_attrs.h: the EST CSR Attributes message (RFC 7030 §4.5): what Warden
// asks of a certificate request, and a strict reader of such a message for
// clients. No Asio, so the fuzz target builds with libFuzzer.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace warden::pki {

// Dotted OIDs Warden's csrattrs names.
inline constexpr std::string_view kOidEcdsaWithSha256 = "1.2.840.10045.4.3.2";
inline constexpr std::string_view kOidEcPublicKey = "1.2.840.10045.2.1";
inline constexpr std::string_view kOidSecp256r1 = "1.2.840.10045.3.1.7";

// kMaxCsrAttrsBytes bounds a csrattrs body (base64) a client accepts.
inline constexpr size_t kMaxCsrAttrsBytes = 8 * 1024;

// CsrAttribute is one AttrOrOID (RFC 7030 §4.5.2): a bare OID (|values|
// empty, |is_attribute| false) or an Attribute { type, SET OF values } whose
// values are given as dotted OIDs (other value types are kept as "?").
struct CsrAttribute {
  std::string oid;
  bool is_attribute = false;
  std::vector<std::string> values;
};

// CsrRequirements is what a csrattrs message asks for, as Warden reads it.
struct CsrRequirements {
  std::vector<CsrAttribute> attributes;
  // wantsEcdsaSha256P256 reports whether the message names ecdsa-with-SHA256
  // and an id-ecPublicKey attribute whose values include secp256r1 (what
  // Warden's server announces and enforces).
  bool wantsEcdsaSha256P256() const;
};

// csrAttrsDer returns Warden's CsrAttrs, DER:
//   SEQUENCE { ecdsa-with-SHA256, SEQUENCE { id-ecPublicKey, SET { secp256r1 } } }
// i.e. "sign with ECDSA and SHA-256, with an EC key on P-256" (RFC 7030 §4.5.2).
std::string csrAttrsDer();

// csrAttrsBody returns csrAttrsDer() in base64 with line breaks, the body of
// GET /.well-known/est/csrattrs (RFC 7030 §4.5.2, Content-Transfer-Encoding base64).
std::string csrAttrsBody();

// parseCsrAttrsDer parses a DER CsrAttrs (RFC 7030 §4.5.2) strictly: definite
// short or long-form lengths of at most 3 octets, no trailing bytes, at most
// 64 entries and 16 values per attribute, OIDs of at most 64 octets. An empty
// SEQUENCE is valid (the server asks for nothing). kInvalidArgument with a
// one-line reason otherwise.
core::Result<CsrRequirements> parseCsrAttrsDer(std::string_view der);

// parseCsrAttrsBody decodes a base64 csrattrs body (whitespace allowed, at
// most kMaxCsrAttrsBytes; an empty body means "no attributes", RFC 7030
// §4.5.2) and parses it with parseCsrAttrsDer.
core::Result<CsrRequirements> parseCsrAttrsBody(std::string_view body);

// oidToText renders DER OID content octets as dotted text; "" if malformed
// (a component longer than 63 bits, a non-minimal or unterminated encoding).
std::string oidToText(std::string_view content);

}  // namespace warden::pki
