#include "pki/est_body.h"

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include <fmt/format.h>

#include "crypto/crypto.h"

namespace warden::pki {
namespace {

constexpr size_t kMaxPkcs7BodyBytes = 64 * 1024;
constexpr int kMaxPkcs7Certs = 16;
constexpr std::string_view kCsrAttrsHint = "GET /.well-known/est/csrattrs";

std::string curveName(EVP_PKEY* key) {
  char name[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1) {
    ERR_clear_error();
    return {};
  }
  return std::string(name, len);
}

// csrDer decodes an EST request body to the DER it carries. RFC 7030 §4.2.1 /
// RFC 8951 §3.2: the body is base64 of the DER PKCS#10; line breaks (and
// other whitespace) are allowed, nothing else.
core::Result<std::string> csrDer(std::string_view body) {
  if (body.size() > kMaxEstBodyBytes) {
    return core::invalidArgument(fmt::format("request body is larger than {} bytes", kMaxEstBodyBytes));
  }
  auto der = crypto::base64Decode(body, /*allow_whitespace=*/true);
  if (!der) return core::invalidArgument("request body is not base64");
  if (der->empty()) return core::invalidArgument("request body is empty");
  return std::move(der).value();
}

core::Result<X509ReqPtr> parseCsrDer(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = p + der.size();
  X509ReqPtr csr(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!csr || p != end) {
    ERR_clear_error();
    return core::invalidArgument("request body is not a DER PKCS#10 CSR");
  }
  return csr;
}

// The lean reading of a request. d2i_X509_REQ decodes the
// subjectPublicKeyInfo into an EVP_PKEY through a decoder chain that OpenSSL
// 3.0 builds anew for every key, by walking every provider's key managers
// and decoders: ~0.15 ms, more than the request's signature check and a
// sixth of the server's CPU per enrollment. These templates have the shape
// of OpenSSL's own X509_REQ (RFC 2986), read by the same DER decoder, except
// that the subjectPublicKeyInfo stays its two fields; the key is then made
// from the point with the EC key manager alone.
struct LeanKeyInfo {
  X509_ALGOR* algorithm;
  ASN1_BIT_STRING* public_key;
};
struct LeanRequestInfo {
  ASN1_ENCODING enc;  // the received DER, which the signature covers
  ASN1_INTEGER* version;
  X509_NAME* subject;
  LeanKeyInfo* key_info;
  STACK_OF(X509_ATTRIBUTE) * attributes;
};
struct LeanRequest {
  LeanRequestInfo* info;
  X509_ALGOR* signature_algorithm;
  ASN1_BIT_STRING* signature;
};

ASN1_SEQUENCE(LeanKeyInfo) = {
    ASN1_SIMPLE(LeanKeyInfo, algorithm, X509_ALGOR),
    ASN1_SIMPLE(LeanKeyInfo, public_key, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(LeanKeyInfo)

ASN1_SEQUENCE_enc(LeanRequestInfo, enc, 0) = {
    ASN1_SIMPLE(LeanRequestInfo, version, ASN1_INTEGER),
    ASN1_SIMPLE(LeanRequestInfo, subject, X509_NAME),
    ASN1_SIMPLE(LeanRequestInfo, key_info, LeanKeyInfo),
    // As in X509_REQ_INFO: [0] is required by RFC 2986, but some encoders omit an empty one.
    ASN1_IMP_SET_OF_OPT(LeanRequestInfo, attributes, X509_ATTRIBUTE, 0),
} ASN1_SEQUENCE_END_enc(LeanRequestInfo, LeanRequestInfo)

ASN1_SEQUENCE(LeanRequest) = {
    ASN1_SIMPLE(LeanRequest, info, LeanRequestInfo),
    ASN1_SIMPLE(LeanRequest, signature_algorithm, X509_ALGOR),
    ASN1_SIMPLE(LeanRequest, signature, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(LeanRequest)

struct FreeLeanRequest {
  void operator()(LeanRequest* r) const { ASN1_item_free(reinterpret_cast<ASN1_VALUE*>(r), ASN1_ITEM_rptr(LeanRequest)); }
};
using LeanRequestPtr = std::unique_ptr<LeanRequest, FreeLeanRequest>;

constexpr size_t kP256PointBytes = 65;  // 0x04 || X || Y

// leanP256Key returns the public key of |der| when it is a complete request
// in the common form that checkCsr accepts: version 1, id-ecPublicKey on the
// named curve P-256 with an uncompressed point that is on the curve, signed
// with ecdsa-with-SHA256, signature valid. Null for anything else, which the
// caller then reads the full way: every check here is one checkCsr makes
// too, or stricter, so this route accepts nothing that one refuses
// (fuzz/est_body_fuzz.cc checks that on every input).
EvpPkeyPtr leanP256Key(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = p + der.size();
  LeanRequestPtr req(reinterpret_cast<LeanRequest*>(
      ASN1_item_d2i(nullptr, &p, static_cast<long>(der.size()), ASN1_ITEM_rptr(LeanRequest))));
  if (!req || p != end || ASN1_INTEGER_get(req->info->version) != 0 ||
      OBJ_obj2nid(req->signature_algorithm->algorithm) != NID_ecdsa_with_SHA256) {
    return nullptr;
  }
  const ASN1_OBJECT* key_type = nullptr;
  int param_type = V_ASN1_UNDEF;
  const void* param = nullptr;
  X509_ALGOR_get0(&key_type, &param_type, &param, req->info->key_info->algorithm);
  const ASN1_BIT_STRING* point = req->info->key_info->public_key;
  if (OBJ_obj2nid(key_type) != NID_X9_62_id_ecPublicKey || param_type != V_ASN1_OBJECT ||
      OBJ_obj2nid(static_cast<const ASN1_OBJECT*>(param)) != NID_X9_62_prime256v1 ||
      static_cast<size_t>(ASN1_STRING_length(point)) != kP256PointBytes || (point->flags & 0x07) != 0 ||
      ASN1_STRING_get0_data(point)[0] != POINT_CONVERSION_UNCOMPRESSED) {
    return nullptr;
  }
  // The key manager's import decodes the point and refuses one that is not
  // on the curve; the quick check below is checkCsr's.
  char group[] = SN_X9_62_prime256v1;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<unsigned char*>(ASN1_STRING_get0_data(point)),
                                        kP256PointBytes),
      OSSL_PARAM_construct_end(),
  };
  crypto::EvpPkeyCtxPtr from(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!from || EVP_PKEY_fromdata_init(from.get()) != 1 ||
      EVP_PKEY_fromdata(from.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    return nullptr;
  }
  EvpPkeyPtr key(raw);
  crypto::EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) return nullptr;
  if (ASN1_item_verify_ex(ASN1_ITEM_rptr(LeanRequestInfo), req->signature_algorithm, req->signature, req->info,
                          nullptr, key.get(), nullptr, nullptr) != 1) {
    return nullptr;
  }
  return key;
}

}  // namespace

core::Result<X509ReqPtr> parseEstCsrBody(std::string_view body) {
  auto der = csrDer(body);
  if (!der.isOk()) return der.status();
  return parseCsrDer(*der);
}

core::Status checkCsr(X509_REQ* csr) {
  if (csr == nullptr) return core::invalidArgument("no CSR");
  EVP_PKEY* key = X509_REQ_get0_pubkey(csr);
  if (key == nullptr) {
    ERR_clear_error();
    return core::invalidArgument("CSR public key is missing or malformed");
  }
  if (!EVP_PKEY_is_a(key, "EC")) {
    const char* type = EVP_PKEY_get0_type_name(key);
    return core::invalidArgument(fmt::format("key type {} is not accepted: use an EC P-256 key ({})",
                                             type != nullptr ? type : "unknown", kCsrAttrsHint));
  }
  std::string curve = curveName(key);
  if (curve != "prime256v1" && curve != "P-256") {
    return core::invalidArgument(fmt::format("EC curve {} is not accepted: use an EC P-256 key ({})",
                                             curve.empty() ? "with explicit parameters" : curve, kCsrAttrsHint));
  }
  // On a prime-order curve like P-256 (cofactor 1) a point on the curve has
  // order n: the quick check (on the curve, in range, not infinity) is the
  // full one without its scalar multiplication by n, which cost as much as
  // the CSR's signature check.
  crypto::EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
    ERR_clear_error();
    return core::invalidArgument("CSR public key is not a valid EC point");
  }
  // RFC 7030 §4.5.2: csrattrs announces ecdsa-with-SHA256; hold requests to it.
  const int sig_nid = X509_REQ_get_signature_nid(csr);
  if (sig_nid != NID_ecdsa_with_SHA256) {
    const char* sig = sig_nid != NID_undef ? OBJ_nid2ln(sig_nid) : nullptr;
    return core::invalidArgument(fmt::format("CSR is signed with {}: sign it with ECDSA and SHA-256 ({})",
                                             sig != nullptr ? sig : "an unknown algorithm", kCsrAttrsHint));
  }
  if (X509_REQ_verify(csr, key) != 1) {
    ERR_clear_error();
    return core::invalidArgument("CSR signature is invalid");
  }
  return core::Status::ok();
}

core::Result<EvpPkeyPtr> checkedCsrKey(std::string_view body) {
  auto der = csrDer(body);
  if (!der.isOk()) return der.status();
  EvpPkeyPtr key = leanP256Key(*der);
  ERR_clear_error();
  if (key) return key;
  auto csr = parseCsrDer(*der);
  if (!csr.isOk()) return csr.status();
  WARDEN_RETURN_IF_ERROR(checkCsr(csr->get()));
  EVP_PKEY* full = X509_REQ_get0_pubkey(csr->get());
  if (full == nullptr || EVP_PKEY_up_ref(full) != 1) return core::internalError("cannot reference the CSR's public key");
  return EvpPkeyPtr(full);
}

std::string pkcs7CertsOnly(const std::vector<X509*>& certs) {
  crypto::Pkcs7Ptr p7(PKCS7_new());
  // A degenerate SignedData (RFC 7030 §4.1.3): version 1, detached id-data
  // content, the certificates, no signers. Same shape as `openssl crl2pkcs7 -nocrl`.
  if (!p7 || PKCS7_set_type(p7.get(), NID_pkcs7_signed) != 1 || PKCS7_content_new(p7.get(), NID_pkcs7_data) != 1) {
    ERR_clear_error();
    return {};
  }
  PKCS7_set_detached(p7.get(), 1);
  for (X509* cert : certs) {
    if (cert == nullptr || PKCS7_add_certificate(p7.get(), cert) != 1) {  // up-refs |cert|
      ERR_clear_error();
      return {};
    }
  }
  unsigned char* der = nullptr;
  int len = i2d_PKCS7(p7.get(), &der);
  crypto::OpenSslBytesPtr owned(der);
  if (len <= 0) {
    ERR_clear_error();
    return {};
  }
  return crypto::base64EncodeWrapped(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len)));
}

core::Result<std::vector<X509Ptr>> parsePkcs7CertsOnly(std::string_view base64_body) {
  if (base64_body.size() > kMaxPkcs7BodyBytes) {
    return core::invalidArgument(fmt::format("PKCS#7 body is larger than {} bytes", kMaxPkcs7BodyBytes));
  }
  auto der = crypto::base64Decode(base64_body, /*allow_whitespace=*/true);
  if (!der) return core::invalidArgument("PKCS#7 body is not base64");
  if (der->empty()) return core::invalidArgument("PKCS#7 body is empty");
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der->data());
  const unsigned char* end = p + der->size();
  crypto::Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der->size())));
  if (!p7 || p != end) {
    ERR_clear_error();
    return core::invalidArgument("PKCS#7 body is not DER PKCS#7");
  }
  if (!PKCS7_type_is_signed(p7.get()) || p7->d.sign == nullptr) {
    return core::invalidArgument("PKCS#7 body is not a certs-only SignedData");
  }
  if (sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info) > 0) {
    return core::invalidArgument("PKCS#7 body has signers: expected certs-only");
  }
  STACK_OF(X509)* stack = p7->d.sign->cert;
  int n = stack != nullptr ? sk_X509_num(stack) : 0;
  if (n <= 0) return core::invalidArgument("PKCS#7 body holds no certificate");
  if (n > kMaxPkcs7Certs) return core::invalidArgument("PKCS#7 body holds too many certificates");
  std::vector<X509Ptr> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    X509* cert = sk_X509_value(stack, i);
    if (cert == nullptr || X509_up_ref(cert) != 1) return core::internalError("cannot reference certificate");
    out.emplace_back(cert);
  }
  return out;
}

}  // namespace warden::pki
