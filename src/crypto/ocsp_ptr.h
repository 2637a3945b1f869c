#pragma once

// ocsp_ptr.h: RAII owners for OpenSSL's OCSP and CRL-entry objects, in the
// style of openssl_ptr.h (kept apart so that only the PKI code that speaks
// OCSP pulls in <openssl/ocsp.h>).

#include <memory>

#include <openssl/ocsp.h>

#include "crypto/openssl_ptr.h"

namespace warden::crypto {

namespace detail {
inline void freeAsn1Enumerated(ASN1_ENUMERATED* e) { ASN1_ENUMERATED_free(e); }
inline void freeAuthorityKeyId(AUTHORITY_KEYID* a) { AUTHORITY_KEYID_free(a); }
}  // namespace detail

using OcspRequestPtr = std::unique_ptr<OCSP_REQUEST, detail::OpenSslDeleter<OCSP_REQUEST, OCSP_REQUEST_free>>;
using OcspResponsePtr = std::unique_ptr<OCSP_RESPONSE, detail::OpenSslDeleter<OCSP_RESPONSE, OCSP_RESPONSE_free>>;
using OcspBasicRespPtr = std::unique_ptr<OCSP_BASICRESP, detail::OpenSslDeleter<OCSP_BASICRESP, OCSP_BASICRESP_free>>;
using X509RevokedPtr = std::unique_ptr<X509_REVOKED, detail::OpenSslDeleter<X509_REVOKED, X509_REVOKED_free>>;
using Asn1EnumeratedPtr =
    std::unique_ptr<ASN1_ENUMERATED, detail::OpenSslDeleter<ASN1_ENUMERATED, detail::freeAsn1Enumerated>>;
using AuthorityKeyIdPtr =
    std::unique_ptr<AUTHORITY_KEYID, detail::OpenSslDeleter<AUTHORITY_KEYID, detail::freeAuthorityKeyId>>;

}  // namespace warden::crypto
