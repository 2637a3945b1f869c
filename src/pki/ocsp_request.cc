#include "pki/ocsp_request.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "crypto/crypto.h"

namespace warden::pki {
namespace {

std::string asn1Bytes(const ASN1_OCTET_STRING* s) {
  if (s == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s)));
}

core::Status malformed(std::string_view why) { return core::invalidArgument(fmt::format("malformed OCSP request: {}", why)); }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

core::Result<ParsedOcspRequest> parseOcspRequest(std::string_view der) {
  if (der.empty()) return malformed("empty body");
  if (der.size() > kMaxOcspRequestBytes) return malformed(fmt::format("longer than {} bytes", kMaxOcspRequestBytes));
  const auto* begin = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* p = begin;
  ParsedOcspRequest out;
  out.request.reset(d2i_OCSP_REQUEST(nullptr, &p, static_cast<long>(der.size())));
  if (!out.request) {
    ERR_clear_error();
    return malformed("not a DER OCSPRequest");
  }
  if (p != begin + der.size()) return malformed("trailing bytes after the OCSPRequest");
  int count = OCSP_request_onereq_count(out.request.get());
  if (count <= 0) return malformed("no CertID");
  if (static_cast<size_t>(count) > kMaxOcspCertIds) return malformed(fmt::format("more than {} CertIDs", kMaxOcspCertIds));
  for (int i = 0; i < count; ++i) {
    OCSP_ONEREQ* one = OCSP_request_onereq_get0(out.request.get(), i);
    OCSP_CERTID* cid = one != nullptr ? OCSP_onereq_get0_id(one) : nullptr;
    if (cid == nullptr) return malformed("bad CertID");
    ASN1_OCTET_STRING* name_hash = nullptr;
    ASN1_OBJECT* alg = nullptr;
    ASN1_OCTET_STRING* key_hash = nullptr;
    ASN1_INTEGER* serial = nullptr;
    if (OCSP_id_get0_info(&name_hash, &alg, &key_hash, &serial, cid) != 1 || serial == nullptr) {
      return malformed("bad CertID");
    }
    OcspCertId id;
    id.hash_nid = OBJ_obj2nid(alg);
    id.issuer_name_hash = asn1Bytes(name_hash);
    id.issuer_key_hash = asn1Bytes(key_hash);
    crypto::BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
    if (!bn || BN_is_negative(bn.get()) || BN_num_bytes(bn.get()) > 20) return malformed("bad serial number");
    crypto::OpenSslStringPtr hex(BN_bn2hex(bn.get()));
    if (!hex) return core::internalError("cannot format serial");
    id.serial_hex = hex.get();
    for (char& c : id.serial_hex) {
      if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    }
    id.id = cid;
    out.ids.push_back(std::move(id));
  }
  // RFC 8954 §2.1: Nonce ::= OCTET STRING (SIZE(1..32)), inside extnValue.
  int loc = OCSP_REQUEST_get_ext_by_NID(out.request.get(), NID_id_pkix_OCSP_Nonce, -1);
  if (loc >= 0) {
    if (OCSP_REQUEST_get_ext_by_NID(out.request.get(), NID_id_pkix_OCSP_Nonce, loc) >= 0) {
      return malformed("more than one nonce");
    }
    X509_EXTENSION* ext = OCSP_REQUEST_get_ext(out.request.get(), loc);
    ASN1_OCTET_STRING* value = ext != nullptr ? X509_EXTENSION_get_data(ext) : nullptr;
    if (value == nullptr) return malformed("bad nonce");
    const unsigned char* q = ASN1_STRING_get0_data(value);
    const unsigned char* end = q + ASN1_STRING_length(value);
    crypto::Asn1OctetStringPtr nonce(d2i_ASN1_OCTET_STRING(nullptr, &q, static_cast<long>(end - q)));
    if (!nonce || q != end) {
      ERR_clear_error();
      return malformed("the nonce is not an OCTET STRING");
    }
    size_t n = static_cast<size_t>(ASN1_STRING_length(nonce.get()));
    if (n < kMinOcspNonceBytes || n > kMaxOcspNonceBytes) {
      return malformed(fmt::format("a nonce of {} octets (RFC 8954 allows 1 to 32)", n));
    }
    out.has_nonce = true;
  }
  return out;
}

core::Result<std::string> decodeOcspGetPath(std::string_view encoded) {
  // base64 of kMaxOcspRequestBytes, each byte at worst %XX-escaped.
  if (encoded.empty() || encoded.size() > kMaxOcspRequestBytes * 4) return malformed("bad GET path length");
  std::string b64;
  b64.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c == '%') {
      if (i + 2 >= encoded.size()) return malformed("bad %-escape");
      int hi = hexValue(encoded[i + 1]);
      int lo = hexValue(encoded[i + 2]);
      if (hi < 0 || lo < 0) return malformed("bad %-escape");
      b64.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      b64.push_back(c);
    }
  }
  auto der = crypto::base64Decode(b64, /*allow_whitespace=*/false);
  if (!der.isOk()) return malformed("the GET path is not base64");
  if (der->size() > kMaxOcspRequestBytes) return malformed("request too long");
  return std::move(der).value();
}

}  // namespace warden::pki
