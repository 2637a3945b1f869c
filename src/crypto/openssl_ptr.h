#pragma once

// openssl_ptr.h defines the one set of RAII owners for OpenSSL objects used
// throughout Warden. Every OpenSSL object that a function allocates goes into
// one of these immediately, so no early-return path needs a manual *_free.

#include <memory>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pkcs7.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace warden::crypto {

namespace detail {
template <typename T, void (*Free)(T*)>
struct OpenSslDeleter {
  void operator()(T* p) const noexcept {
    if (p != nullptr) Free(p);
  }
};
inline void freeStackOfX509(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
inline void freeGeneralNames(GENERAL_NAMES* g) { GENERAL_NAMES_free(g); }
inline void freeBio(BIO* b) { BIO_free_all(b); }
inline void freeBignum(BIGNUM* b) { BN_free(b); }
inline void freeAsn1Integer(ASN1_INTEGER* i) { ASN1_INTEGER_free(i); }
inline void freeAsn1Time(ASN1_TIME* t) { ASN1_TIME_free(t); }
inline void freeOctetString(ASN1_OCTET_STRING* o) { ASN1_OCTET_STRING_free(o); }
inline void freeX509Extension(X509_EXTENSION* e) { X509_EXTENSION_free(e); }
inline void freeOpenSslString(char* s) { OPENSSL_free(s); }
inline void freeUnsignedChars(unsigned char* s) { OPENSSL_free(s); }
}  // namespace detail

using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, detail::OpenSslDeleter<EVP_PKEY, EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, detail::OpenSslDeleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, detail::OpenSslDeleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using EvpMdPtr = std::unique_ptr<EVP_MD, detail::OpenSslDeleter<EVP_MD, EVP_MD_free>>;
using EvpCipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, detail::OpenSslDeleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using EvpMacPtr = std::unique_ptr<EVP_MAC, detail::OpenSslDeleter<EVP_MAC, EVP_MAC_free>>;
using EvpMacCtxPtr = std::unique_ptr<EVP_MAC_CTX, detail::OpenSslDeleter<EVP_MAC_CTX, EVP_MAC_CTX_free>>;
using OsslParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, detail::OpenSslDeleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using OsslParamPtr = std::unique_ptr<OSSL_PARAM, detail::OpenSslDeleter<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, detail::OpenSslDeleter<ECDSA_SIG, ECDSA_SIG_free>>;
using X509Ptr = std::unique_ptr<X509, detail::OpenSslDeleter<X509, X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, detail::OpenSslDeleter<X509_REQ, X509_REQ_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, detail::OpenSslDeleter<X509_CRL, X509_CRL_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, detail::OpenSslDeleter<X509_STORE, X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, detail::OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, detail::OpenSslDeleter<X509_NAME, X509_NAME_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, detail::OpenSslDeleter<X509_EXTENSION, detail::freeX509Extension>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, detail::OpenSslDeleter<GENERAL_NAMES, detail::freeGeneralNames>>;
// BioPtr frees the whole chain (BIO_free_all).
using BioPtr = std::unique_ptr<BIO, detail::OpenSslDeleter<BIO, detail::freeBio>>;
// StackOfX509Ptr owns the stack and every certificate in it (sk_X509_pop_free).
using StackOfX509Ptr = std::unique_ptr<STACK_OF(X509), detail::OpenSslDeleter<STACK_OF(X509), detail::freeStackOfX509>>;
using Pkcs7Ptr = std::unique_ptr<PKCS7, detail::OpenSslDeleter<PKCS7, PKCS7_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, detail::OpenSslDeleter<BIGNUM, detail::freeBignum>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, detail::OpenSslDeleter<ASN1_INTEGER, detail::freeAsn1Integer>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, detail::OpenSslDeleter<ASN1_TIME, detail::freeAsn1Time>>;
using Asn1OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, detail::OpenSslDeleter<ASN1_OCTET_STRING, detail::freeOctetString>>;
// OpenSslStringPtr owns a char* returned by OpenSSL (BN_bn2hex, i2s_...).
using OpenSslStringPtr = std::unique_ptr<char, detail::OpenSslDeleter<char, detail::freeOpenSslString>>;
// OpenSslBytesPtr owns an unsigned char* returned by OpenSSL (i2d_* with a null out pointer).
using OpenSslBytesPtr = std::unique_ptr<unsigned char, detail::OpenSslDeleter<unsigned char, detail::freeUnsignedChars>>;
// SslCtxPtr owns an SSL_CTX. Asio code adopts it with
// `boost::asio::ssl::context ctx(ptr.release());` (the asio context then owns
// and frees it); see src/pki/tls_config.h.
using SslCtxPtr = std::unique_ptr<SSL_CTX, detail::OpenSslDeleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, detail::OpenSslDeleter<SSL, SSL_free>>;

}  // namespace warden::crypto
