#pragma once

// est_body.h: parsing and producing EST (RFC 7030) message bodies. No Asio,
// so the fuzz target builds with libFuzzer.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "crypto/openssl_ptr.h"

namespace warden::pki {

using crypto::EvpPkeyPtr;
using crypto::X509Ptr;
using crypto::X509ReqPtr;

// kMaxEstBodyBytes bounds an EST request or response body (HTTP layer limit too).
inline constexpr size_t kMaxEstBodyBytes = 16 * 1024;

// parseEstCsrBody parses an EST simpleenroll/simplereenroll body: base64 of a
// DER PKCS#10 request (RFC 7030 §4.2.1, RFC 8951), whitespace and line breaks
// allowed, nothing else, at most kMaxEstBodyBytes. Returns kInvalidArgument
// with a one-line reason ("request body is empty", "request body is larger than
// 16384 bytes", "request body is not base64", "request body is not a DER
// PKCS#10 CSR"). The signature is NOT checked here: call checkCsr.
core::Result<X509ReqPtr> parseEstCsrBody(std::string_view body);

// checkCsr enforces what csrattrs announces (RFC 7030 §4.5.2): an EC P-256
// key and an ecdsa-with-SHA256 self-signature, which must verify. Returns
// kInvalidArgument with a one-line reason, e.g. "key type RSA is not accepted:
// use an EC P-256 key (GET /.well-known/est/csrattrs)", "CSR is signed with
// ecdsa-with-SHA384: sign it with ECDSA and SHA-256 (...)" or "CSR signature
// is invalid".
core::Status checkCsr(X509_REQ* csr);

// checkedCsrKey is parseEstCsrBody and checkCsr in one, for the server, which
// takes only the public key from a request: it returns the key of a request
// both accept, and otherwise their error. A request in the form Warden's
// agent, `openssl req` and csrattrs produce (a P-256 key with an
// uncompressed point, ecdsa-with-SHA256, version 1) is read without building
// OpenSSL 3.0's key decoder (see est_body.cc); any other request goes
// through parseEstCsrBody and checkCsr themselves.
core::Result<EvpPkeyPtr> checkedCsrKey(std::string_view body);

// pkcs7CertsOnly returns base64 (64-column lines, "\n"-terminated) of a DER
// PKCS#7 SignedData with no signers holding |certs| in order (RFC 7030 §4.1.3,
// §4.2.3 "certs-only"). The certificates are not consumed.
std::string pkcs7CertsOnly(const std::vector<X509*>& certs);

// parsePkcs7CertsOnly decodes an EST certs-only response body (base64 DER
// PKCS#7, whitespace allowed, at most 64 KiB) and returns its certificates in
// order (at least one). kInvalidArgument on junk, trailing bytes, a non
// signed-data type or no certificates.
core::Result<std::vector<X509Ptr>> parsePkcs7CertsOnly(std::string_view base64_body);

}  // namespace warden::pki
