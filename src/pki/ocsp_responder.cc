#include "pki/ocsp_responder.h"

#include <chrono>

#include <openssl/err.h>

#include "crypto/crypto.h"

namespace warden::pki {
namespace {

std::time_t toTimeT(core::SystemTime t) { return std::chrono::system_clock::to_time_t(t); }

// issuerHashes computes (issuerNameHash, issuerKeyHash) of |ca| under |md|
// (RFC 6960 §4.1.1: the hash of the DER name and of the public key's BIT
// STRING value).
bool issuerHashes(X509* ca, const EVP_MD* md, std::string& name_hash, std::string& key_hash) {
  unsigned char* der = nullptr;
  int len = i2d_X509_NAME(X509_get_subject_name(ca), &der);
  if (len <= 0) return false;
  crypto::OpenSslBytesPtr owned(der);
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(der, static_cast<size_t>(len), buf, &n, md, nullptr) != 1) return false;
  name_hash.assign(reinterpret_cast<const char*>(buf), n);
  const ASN1_BIT_STRING* key = X509_get0_pubkey_bitstr(ca);
  if (key == nullptr || EVP_Digest(key->data, static_cast<size_t>(key->length), buf, &n, md, nullptr) != 1) return false;
  key_hash.assign(reinterpret_cast<const char*>(buf), n);
  return true;
}

}  // namespace

int matchOcspIssuer(const ParsedOcspRequest& request, const std::vector<OcspIssuer>& issuers) {
  int match = -1;
  for (const OcspCertId& id : request.ids) {
    const EVP_MD* md = id.hash_nid == NID_sha1 ? EVP_sha1() : id.hash_nid == NID_sha256 ? EVP_sha256() : nullptr;
    if (md == nullptr) return -1;
    int found = -1;
    for (size_t i = 0; i < issuers.size() && found < 0; ++i) {
      std::string name_hash, key_hash;
      if (!issuerHashes(issuers[i].ca_cert, md, name_hash, key_hash)) continue;
      if (crypto::constantTimeEquals(name_hash, id.issuer_name_hash) && name_hash.size() == id.issuer_name_hash.size() &&
          crypto::constantTimeEquals(key_hash, id.issuer_key_hash) && key_hash.size() == id.issuer_key_hash.size()) {
        found = static_cast<int>(i);
      }
    }
    // One response has one signer: every CertID must name the same CA.
    if (found < 0 || (match >= 0 && found != match)) return -1;
    match = found;
  }
  return match;
}

core::Result<std::string> makeOcspResponse(const ParsedOcspRequest& request, const OcspIssuer& issuer,
                                           const std::vector<OcspStatus>& statuses, core::SystemTime now,
                                           core::SystemTime next_update) {
  if (statuses.size() != request.ids.size()) return core::internalError("one status per CertID is needed");
  if (issuer.responder_cert == nullptr || issuer.responder_key == nullptr) {
    return core::failedPrecondition("the CA has no OCSP responder certificate");
  }
  crypto::OcspBasicRespPtr basic(OCSP_BASICRESP_new());
  crypto::Asn1TimePtr this_upd(ASN1_TIME_set(nullptr, toTimeT(now)));
  crypto::Asn1TimePtr next_upd(ASN1_TIME_set(nullptr, toTimeT(next_update)));
  if (!basic || !this_upd || !next_upd) return core::internalError("cannot allocate OCSP response");
  for (size_t i = 0; i < statuses.size(); ++i) {
    const OcspStatus& s = statuses[i];
    int status = s.status == OcspCertStatus::kGood      ? V_OCSP_CERTSTATUS_GOOD
                 : s.status == OcspCertStatus::kRevoked ? V_OCSP_CERTSTATUS_REVOKED
                                                        : V_OCSP_CERTSTATUS_UNKNOWN;
    crypto::Asn1TimePtr rev_time;
    int reason = OCSP_REVOKED_STATUS_NOSTATUS;
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
      rev_time.reset(ASN1_TIME_set(nullptr, toTimeT(s.revoked_at)));
      if (!rev_time) return core::internalError("cannot allocate OCSP revocation time");
      if (s.reason > 0) reason = s.reason;
    }
    if (OCSP_basic_add1_status(basic.get(), request.ids[i].id, status, reason, rev_time.get(), this_upd.get(),
                               next_upd.get()) == nullptr) {
      return core::internalError("cannot add OCSP single response: " + crypto::openSslErrorString());
    }
  }
  // RFC 8954: echo the nonce (parseOcspRequest checked its size).
  if (request.has_nonce && OCSP_copy_nonce(basic.get(), request.request.get()) != 1) {
    return core::internalError("cannot echo the OCSP nonce");
  }
  if (OCSP_basic_sign(basic.get(), issuer.responder_cert, issuer.responder_key,
                      signingDigestFor(issuer.responder_key), nullptr, 0) != 1) {
    return core::internalError("cannot sign the OCSP response: " + crypto::openSslErrorString());
  }
  crypto::OcspResponsePtr resp(OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  if (!resp) return core::internalError("cannot build the OCSP response");
  unsigned char* der = nullptr;
  int len = i2d_OCSP_RESPONSE(resp.get(), &der);
  if (len <= 0) return core::internalError("cannot encode the OCSP response");
  crypto::OpenSslBytesPtr owned(der);
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

std::string ocspErrorResponse(int status) {
  crypto::OcspResponsePtr resp(OCSP_response_create(status, nullptr));
  if (!resp) return {};
  unsigned char* der = nullptr;
  int len = i2d_OCSP_RESPONSE(resp.get(), &der);
  if (len <= 0) return {};
  crypto::OpenSslBytesPtr owned(der);
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

}  // namespace warden::pki
