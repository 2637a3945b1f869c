#pragma once

// Test helpers: a manufacturer's CA and factory certificates (IEEE 802.1AR
// IDevIDs) built in-process, with the serialNumber in the subject and a
// notAfter of 99991231235959Z, like a device maker's factory issues them.

#include <string>

#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "crypto/openssl_ptr.h"

namespace warden::testing {

struct FactoryCert {
  crypto::X509Ptr cert;
  crypto::EvpPkeyPtr key;
  std::string certPem() const { return crypto::certToPem(cert.get()); }
  std::string keyPem() const { return crypto::privateKeyToPem(key.get()).value(); }
};

inline void addExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

inline void setRandomSerial(X509* cert) {
  std::string hex = crypto::hexEncode(crypto::randomBytes(12));
  hex[0] = '1';
  BIGNUM* bn = nullptr;
  BN_hex2bn(&bn, hex.c_str());
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
}

// makeFactoryCa returns a self-signed CA "O=|org|, CN=|cn|" with a new key
// (two calls with the same names give look-alike CAs).
inline FactoryCert makeFactoryCa(const std::string& cn, const std::string& org = "Acme Devices") {
  FactoryCert out;
  out.key = std::move(crypto::generateEcKey()).value();
  out.cert.reset(X509_new());
  X509* x = out.cert.get();
  X509_set_version(x, 2);
  setRandomSerial(x);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 20L * 365 * 86400);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, out.key.get());
  addExt(x, x, NID_basic_constraints, "critical,CA:TRUE");
  addExt(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
  addExt(x, x, NID_subject_key_identifier, "hash");
  X509_sign(x, out.key.get(), EVP_sha256());
  return out;
}

// makeIdevid returns a factory certificate issued by |ca|: subject
// "O=Acme Devices, CN=|cn|, serialNumber=|serial|" (serialNumber omitted if
// empty), notAfter 99991231235959Z, clientAuth EKU if |eku|.
inline FactoryCert makeIdevid(const FactoryCert& ca, const std::string& serial, const std::string& cn = "acme-sensor",
                              bool eku = false) {
  FactoryCert out;
  out.key = std::move(crypto::generateEcKey()).value();
  out.cert.reset(X509_new());
  X509* x = out.cert.get();
  X509_set_version(x, 2);
  setRandomSerial(x);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  ASN1_TIME_set_string(X509_getm_notAfter(x), "99991231235959Z");
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("Acme Devices"), -1, -1, 0);
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  }
  if (!serial.empty()) {
    X509_NAME_add_entry_by_txt(name, "serialNumber", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(serial.c_str()), -1, -1, 0);
  }
  X509_set_issuer_name(x, X509_get_subject_name(ca.cert.get()));
  X509_set_pubkey(x, out.key.get());
  addExt(x, ca.cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  addExt(x, ca.cert.get(), NID_key_usage, "critical,digitalSignature");
  if (eku) addExt(x, ca.cert.get(), NID_ext_key_usage, "clientAuth");
  X509_sign(x, ca.key.get(), EVP_sha256());
  return out;
}

}  // namespace warden::testing
