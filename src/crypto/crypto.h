#pragma once

// crypto.h: small, stateless helpers over OpenSSL 3 (keys, certificates,
// digests, encodings, randomness). No Asio. Every function that parses
// untrusted input returns a Result and never crashes on malformed bytes.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/obj_mac.h>

#include "core/clock.h"
#include "core/status.h"
#include "crypto/openssl_ptr.h"

namespace warden::crypto {

using core::Result;
using core::Status;
using core::SystemTime;

// generateEcKey returns a fresh EC key on the curve |nid| (NID_X9_62_prime256v1
// or NID_secp384r1); kInvalidArgument for any other curve.
Result<EvpPkeyPtr> generateEcKey(int nid = NID_X9_62_prime256v1);

// privateKeyToPem returns |key| as unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY").
// The caller owns the secret and should write it 0600.
Result<std::string> privateKeyToPem(EVP_PKEY* key);
// writePrivateKeyFile writes |key| as unencrypted PKCS#8 PEM to |path|
// (atomically, mode 0600) and wipes the PEM from memory, also on failure.
Status writePrivateKeyFile(const std::string& path, EVP_PKEY* key);
// privateKeyFromPem parses a PKCS#8 / traditional EC private key PEM.
Result<EvpPkeyPtr> privateKeyFromPem(std::string_view pem);
// publicKeyToPem returns the SubjectPublicKeyInfo of |key| as PEM.
std::string publicKeyToPem(EVP_PKEY* key);

// certFromPem parses the first certificate in |pem|; kInvalidArgument if none.
Result<X509Ptr> certFromPem(std::string_view pem);
// certsFromPem parses every certificate in |pem| (at least one, at most 64).
Result<std::vector<X509Ptr>> certsFromPem(std::string_view pem);
// certToPem / certToDer serialize |cert|; certFromDer parses exactly one DER
// certificate with no trailing bytes.
std::string certToPem(X509* cert);
std::string certToDer(X509* cert);
Result<X509Ptr> certFromDer(std::string_view der);
// certsToPem concatenates the PEM of each certificate (a chain / bundle file).
std::string certsToPem(const std::vector<X509*>& certs);

// sha256 returns the raw 32-byte SHA-256 of |bytes|; sha256Hex the 64
// lowercase hex characters.
std::string sha256(std::string_view bytes);
std::string sha256Hex(std::string_view bytes);
// caFingerprint returns "sha256:" + 64 lowercase hex of the DER of |root|.
std::string caFingerprint(X509* root);
// publicKeyFingerprint returns the sha256 hex of |key|'s SubjectPublicKeyInfo DER.
std::string publicKeyFingerprint(EVP_PKEY* key);
// setCertificatePublicKey makes |key| the subject public key of |cert| (the
// same DER and the same in-memory key as X509_set_pubkey, faster for EC keys;
// see crypto.cc).
Status setCertificatePublicKey(X509* cert, EVP_PKEY* key);

// randomBytes returns |n| bytes from RAND_bytes; aborts only if the RNG is broken.
std::string randomBytes(size_t n);

// base64Encode returns standard base64 with padding and no line breaks.
std::string base64Encode(std::string_view bytes);
// base64EncodeWrapped returns standard base64 with padding, a "\n" after every
// |line_len| characters and at the end (PEM/EST body style).
std::string base64EncodeWrapped(std::string_view bytes, size_t line_len = 64);
// base64Decode strictly decodes standard base64 with canonical "=" padding
// (the total length must be a multiple of 4; unused trailing bits must be
// zero). With |allow_whitespace|, spaces, tabs, CR and LF anywhere are
// skipped. Returns kInvalidArgument "input is not base64" otherwise.
Result<std::string> base64Decode(std::string_view text, bool allow_whitespace);
// base64UrlEncode returns base64url (RFC 4648 §5) without padding (tokens).
std::string base64UrlEncode(std::string_view bytes);
// base64UrlDecode strictly decodes unpadded base64url.
Result<std::string> base64UrlDecode(std::string_view text);

// hexEncode returns lowercase hex of |bytes|.
std::string hexEncode(std::string_view bytes);

// constantTimeEquals compares with CRYPTO_memcmp; only the lengths may leak.
bool constantTimeEquals(std::string_view a, std::string_view b);

// serialHex returns the serial number of |cert| as lowercase hex (BN_bn2hex,
// lowercased; "0" for zero).
std::string serialHex(X509* cert);
// uriSans returns every URI subjectAltName of |cert| in order (empty if none).
std::vector<std::string> uriSans(X509* cert);
// dnsSans / ipSans return DNS names and IP addresses (textual form) in SANs.
std::vector<std::string> dnsSans(X509* cert);
std::vector<std::string> ipSans(X509* cert);
// commonName returns the subject CN of |cert| ("" if absent or not UTF-8 convertible).
std::string commonName(X509* cert);
// notBefore / notAfter return the validity bounds of |cert|.
SystemTime notAfter(X509* cert);
SystemTime notBefore(X509* cert);
// subjectKeyIdHex / authorityKeyIdHex return the lowercase hex key identifier
// of |cert|'s SKI / AKI extension ("" if absent).
std::string subjectKeyIdHex(X509* cert);
std::string authorityKeyIdHex(X509* cert);

// signingPropertyQuery returns the OpenSSL property query that keeps
// signatures with |key| on the provider holding it: "?tpm2.signature" for a
// key of the tpm2 provider (tpm2-openssl; digests and ciphers stay with the
// default provider), nullptr for every other key. Without it OpenSSL 3.0 may
// pick the default provider's ECDSA, which receives only the public half of
// a TPM key and fails with "missing private key". Pass it to
// SSL_CTX_new_ex / EVP_DigestSignInit_ex.
const char* signingPropertyQuery(EVP_PKEY* key);

// openSslErrorString drains the OpenSSL error queue and returns its first
// entry as text ("" if empty). Use it to make internal errors actionable.
std::string openSslErrorString();

}  // namespace warden::crypto
