#pragma once

// ocsp_request.h: the bounded parser of OCSP requests (RFC 6960 §4.1) as
// they arrive at the PKI listener, by POST (DER body) or GET (base64 in the
// path, RFC 6960 Appendix A.1). No Asio: fuzzed by fuzz/ocsp_request_fuzz.cc.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ocsp.h>

#include "core/status.h"
#include "crypto/ocsp_ptr.h"

namespace warden::pki {

// Limits on what a requester may send.
inline constexpr size_t kMaxOcspRequestBytes = 4096;
inline constexpr size_t kMaxOcspCertIds = 8;
inline constexpr size_t kMinOcspNonceBytes = 1;   // RFC 8954 §2.1
inline constexpr size_t kMaxOcspNonceBytes = 32;

// OcspCertId is one CertID of a request.
struct OcspCertId {
  int hash_nid = NID_undef;       // NID_sha1, NID_sha256, or another (never matched)
  std::string issuer_name_hash;   // raw bytes
  std::string issuer_key_hash;    // raw bytes
  std::string serial_hex;         // lowercase hex, as crypto::serialHex
  OCSP_CERTID* id = nullptr;      // owned by ParsedOcspRequest::request
};

// ParsedOcspRequest is a request that passed every check.
struct ParsedOcspRequest {
  crypto::OcspRequestPtr request;
  std::vector<OcspCertId> ids;  // 1..kMaxOcspCertIds
  bool has_nonce = false;       // then the response echoes it (RFC 8954)
};

// parseOcspRequest parses DER |der|: at most kMaxOcspRequestBytes, exactly
// one OCSPRequest with nothing after it, 1..kMaxOcspCertIds CertIDs, and a
// nonce extension, if any, whose value is an OCTET STRING of 1-32 octets.
// kInvalidArgument (answered as malformedRequest) otherwise.
core::Result<ParsedOcspRequest> parseOcspRequest(std::string_view der);

// decodeOcspGetPath decodes the part of a GET /ocsp/<...> path after
// "/ocsp/": URL-escaped (%XX) base64 of the DER request. kInvalidArgument
// for a bad escape, bad base64 or more than kMaxOcspRequestBytes.
core::Result<std::string> decodeOcspGetPath(std::string_view encoded);

}  // namespace warden::pki
