#include "pki/certificate_authority.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "core/names.h"
#include "crypto/crypto.h"
#include "pki/cross_certificate.h"

namespace warden::pki {
namespace {

using core::Result;
using core::Status;
using crypto::openSslErrorString;

constexpr auto kBackdate = std::chrono::minutes(5);
constexpr size_t kSerialBytes = 16;
constexpr size_t kMaxCommonNameBytes = 64;  // RFC 5280 ub-common-name
constexpr size_t kMaxSans = 32;

using NonOwningStackOfX509Ptr =
    std::unique_ptr<STACK_OF(X509), crypto::detail::OpenSslDeleter<STACK_OF(X509), [](STACK_OF(X509) * s) { sk_X509_free(s); }>>;
using EkuPtr = std::unique_ptr<EXTENDED_KEY_USAGE,
                               crypto::detail::OpenSslDeleter<EXTENDED_KEY_USAGE, [](EXTENDED_KEY_USAGE* e) {
                                 sk_ASN1_OBJECT_pop_free(e, ASN1_OBJECT_free);
                               }>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, crypto::detail::OpenSslDeleter<GENERAL_NAME, GENERAL_NAME_free>>;
using Ia5StringPtr = std::unique_ptr<ASN1_IA5STRING, crypto::detail::OpenSslDeleter<ASN1_IA5STRING, ASN1_IA5STRING_free>>;

// Digests are fetched once from the default provider and reused.
const EVP_MD* fetchedMd(const char* name) {
  EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  if (md == nullptr) {
    std::fprintf(stderr, "warden: digest %s is unavailable from OpenSSL providers\n", name);
    std::abort();
  }
  return md;
}
const EVP_MD* sha256Md() {
  static const EVP_MD* md = fetchedMd("SHA256");
  return md;
}
const EVP_MD* sha384Md() {
  static const EVP_MD* md = fetchedMd("SHA384");
  return md;
}


std::time_t toTimeT(core::SystemTime t) { return std::chrono::system_clock::to_time_t(t); }

Status setRandomSerial(X509* cert) {
  std::string bytes = crypto::randomBytes(kSerialBytes);
  // Positive (top bit clear) and a non-zero leading byte so the DER INTEGER is
  // always exactly 16 bytes and never zero (RFC 5280 §4.1.2.2).
  bytes[0] = static_cast<char>(static_cast<unsigned char>(bytes[0]) & 0x7f);
  if (bytes[0] == 0) bytes[0] = 0x01;
  crypto::BignumPtr bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                                 static_cast<int>(bytes.size()), nullptr));
  if (!bn) return core::internalError("cannot build serial number: " + openSslErrorString());
  crypto::Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || X509_set_serialNumber(cert, serial.get()) != 1) {
    return core::internalError("cannot set serial number: " + openSslErrorString());
  }
  return Status::ok();
}

Status setSubjectCn(X509* cert, std::string_view cn) {
  if (cn.empty()) return core::invalidArgument("certificate common name is empty");
  if (cn.size() > kMaxCommonNameBytes) return core::invalidArgument("certificate common name is longer than 64 bytes");
  crypto::X509NamePtr name(X509_NAME_new());
  if (!name || X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                          reinterpret_cast<const unsigned char*>(cn.data()),
                                          static_cast<int>(cn.size()), -1, 0) != 1) {
    ERR_clear_error();
    return core::invalidArgument("certificate common name is not valid UTF-8");
  }
  if (X509_set_subject_name(cert, name.get()) != 1) return core::internalError("cannot set subject name");
  return Status::ok();
}

Status setValidity(X509* cert, core::SystemTime not_before, core::SystemTime not_after) {
  if (not_after <= not_before) return core::failedPrecondition("certificate validity would be empty (issuer expired?)");
  if (ASN1_TIME_set(X509_getm_notBefore(cert), toTimeT(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), toTimeT(not_after)) == nullptr) {
    return core::internalError("cannot set validity: " + openSslErrorString());
  }
  return Status::ok();
}

// addConfExtension adds an extension from a fixed, compile-time configuration
// string (never from user input: SANs and names are built programmatically).
Status addConfExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  crypto::X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return core::internalError(fmt::format("cannot add extension {}={}: {}", OBJ_nid2sn(nid), value, openSslErrorString()));
  }
  return Status::ok();
}

Status addIa5Name(GENERAL_NAMES* names, int type, std::string_view value) {
  if (value.empty()) return core::invalidArgument("empty subjectAltName value");
  for (unsigned char c : value) {
    if (c < 0x21 || c > 0x7e) return core::invalidArgument("subjectAltName value must be printable ASCII without spaces");
  }
  Ia5StringPtr ia5(ASN1_IA5STRING_new());
  if (!ia5 || ASN1_STRING_set(ia5.get(), value.data(), static_cast<int>(value.size())) != 1) {
    return core::internalError("cannot build subjectAltName");
  }
  GeneralNamePtr gn(GENERAL_NAME_new());
  if (!gn) return core::internalError("cannot build subjectAltName");
  GENERAL_NAME_set0_value(gn.get(), type, ia5.release());
  if (sk_GENERAL_NAME_push(names, gn.get()) == 0) return core::internalError("cannot build subjectAltName");
  gn.release();
  return Status::ok();
}

Status addIpName(GENERAL_NAMES* names, const std::string& ip) {
  crypto::Asn1OctetStringPtr octets(a2i_IPADDRESS(ip.c_str()));
  if (!octets) {
    ERR_clear_error();
    return core::invalidArgument(fmt::format("'{}' is not an IP address", ip));
  }
  GeneralNamePtr gn(GENERAL_NAME_new());
  if (!gn) return core::internalError("cannot build subjectAltName");
  GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, octets.release());
  if (sk_GENERAL_NAME_push(names, gn.get()) == 0) return core::internalError("cannot build subjectAltName");
  gn.release();
  return Status::ok();
}

Status addSans(X509* cert, const LeafProfile& profile) {
  size_t count = profile.uri_sans.size() + profile.dns_sans.size() + profile.ip_sans.size();
  if (count == 0) return Status::ok();
  if (count > kMaxSans) return core::invalidArgument("too many subjectAltNames (max 32)");
  crypto::GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return core::internalError("cannot build subjectAltName");
  for (const auto& uri : profile.uri_sans) WARDEN_RETURN_IF_ERROR(addIa5Name(names.get(), GEN_URI, uri));
  for (const auto& dns : profile.dns_sans) WARDEN_RETURN_IF_ERROR(addIa5Name(names.get(), GEN_DNS, dns));
  for (const auto& ip : profile.ip_sans) WARDEN_RETURN_IF_ERROR(addIpName(names.get(), ip));
  // RFC 5280 §4.2.1.6: critical only when the subject is empty; ours never is.
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return core::internalError("cannot add subjectAltName: " + openSslErrorString());
  }
  return Status::ok();
}

Status addEku(X509* cert, const LeafProfile& profile) {
  if (!profile.client_auth && !profile.server_auth) {
    return core::invalidArgument("leaf profile allows neither clientAuth nor serverAuth");
  }
  EkuPtr eku(sk_ASN1_OBJECT_new_null());
  if (!eku) return core::internalError("cannot build extendedKeyUsage");
  auto push = [&](int nid) { return sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(nid)) != 0; };
  if ((profile.server_auth && !push(NID_server_auth)) || (profile.client_auth && !push(NID_client_auth))) {
    return core::internalError("cannot build extendedKeyUsage");
  }
  if (X509_add1_ext_i2d(cert, NID_ext_key_usage, eku.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return core::internalError("cannot add extendedKeyUsage: " + openSslErrorString());
  }
  return Status::ok();
}

// addRevocationPointers adds CRL distribution point and AIA extensions
// naming |issuer|'s publication URLs (nothing without a pki_url).
Status addRevocationPointers(X509* cert, X509V3_CTX* ctx, const CaMaterial& issuer, bool with_ocsp) {
  if (issuer.pki_url.empty()) return Status::ok();
  // The URL and the CA name are validated, so they cannot inject more
  // configuration into these strings.
  if (!isValidPkiUrl(issuer.pki_url) || !core::isValidName(issuer.name)) {
    return core::invalidArgument("invalid PKI URL or CA name for CRL distribution points");
  }
  std::string cdp = fmt::format("URI:{}/pki/{}.crl", issuer.pki_url, issuer.name);
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert, ctx, NID_crl_distribution_points, cdp.c_str()));
  std::string aia = fmt::format("caIssuers;URI:{}/pki/{}.crt", issuer.pki_url, issuer.name);
  if (with_ocsp) aia = fmt::format("OCSP;URI:{}/ocsp,{}", issuer.pki_url, aia);
  return addConfExtension(cert, ctx, NID_info_access, aia.c_str());
}

Result<X509Ptr> newCertificate(EVP_PKEY* subject_key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return core::internalError("cannot allocate certificate");
  WARDEN_RETURN_IF_ERROR(setRandomSerial(cert.get()));
  WARDEN_RETURN_IF_ERROR(crypto::setCertificatePublicKey(cert.get(), subject_key));
  return cert;
}

Status sign(X509* cert, EVP_PKEY* issuer_key) {
  if (X509_sign(cert, issuer_key, signingDigestFor(issuer_key)) <= 0) {
    return core::internalError("cannot sign certificate: " + openSslErrorString());
  }
  return Status::ok();
}

Result<CaMaterial> makeCa(const CaMaterial* parent, std::string_view cn, core::Seconds lifetime, int path_len,
                          const core::Clock& clock, EvpPkeyPtr key) {
  if (lifetime.count() <= 0) return core::invalidArgument("CA lifetime must be positive");
  if (!key) {
    WARDEN_ASSIGN_OR_RETURN(key, crypto::generateEcKey());
  }
  WARDEN_ASSIGN_OR_RETURN(X509Ptr cert, newCertificate(key.get()));
  WARDEN_RETURN_IF_ERROR(setSubjectCn(cert.get(), cn));
  X509* issuer_cert = parent ? parent->cert.get() : cert.get();
  EVP_PKEY* issuer_key = parent ? parent->key.get() : key.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)) != 1) {
    return core::internalError("cannot set issuer name");
  }
  core::SystemTime now = clock.now();
  core::SystemTime not_after = now + lifetime;
  if (parent) not_after = std::min(not_after, crypto::notAfter(parent->cert.get()));
  WARDEN_RETURN_IF_ERROR(setValidity(cert.get(), now - kBackdate, not_after));

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer_cert, cert.get(), nullptr, nullptr, 0);
  std::string bc = path_len >= 0 ? fmt::format("critical,CA:TRUE,pathlen:{}", path_len) : "critical,CA:TRUE";
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_basic_constraints, bc.c_str()));
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  if (parent) {
    WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
    WARDEN_RETURN_IF_ERROR(addRevocationPointers(cert.get(), &ctx, *parent, /*with_ocsp=*/false));
  }
  WARDEN_RETURN_IF_ERROR(sign(cert.get(), issuer_key));
  return CaMaterial{std::move(cert), std::move(key), "", ""};
}

}  // namespace

Result<CaMaterial> createRootCa(std::string_view common_name, core::Seconds lifetime, const core::Clock& clock,
                                EvpPkeyPtr key) {
  return makeCa(nullptr, common_name, lifetime, -1, clock, std::move(key));
}

Result<CaMaterial> createIntermediateCa(const CaMaterial& parent, std::string_view cn, core::Seconds lifetime,
                                        int path_len, const core::Clock& clock, EvpPkeyPtr key) {
  if (!parent.cert || !parent.key) return core::invalidArgument("parent CA material is incomplete");
  return makeCa(&parent, cn, lifetime, path_len, clock, std::move(key));
}

Result<X509Ptr> issueLeaf(const CaMaterial& issuer, EVP_PKEY* subject_key, const LeafProfile& profile,
                          const core::Clock& clock) {
  if (!issuer.cert || !issuer.key) return core::invalidArgument("issuer CA material is incomplete");
  if (subject_key == nullptr) return core::invalidArgument("no subject public key");
  if (profile.lifetime.count() <= 0) return core::invalidArgument("leaf lifetime must be positive");
  WARDEN_ASSIGN_OR_RETURN(X509Ptr cert, newCertificate(subject_key));
  WARDEN_RETURN_IF_ERROR(setSubjectCn(cert.get(), profile.common_name));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer.cert.get())) != 1) {
    return core::internalError("cannot set issuer name");
  }
  core::SystemTime now = clock.now();
  core::SystemTime not_after = std::min(now + profile.lifetime, crypto::notAfter(issuer.cert.get()));
  if (not_after <= now) return core::failedPrecondition("the issuing CA has expired: renew it before issuing");
  WARDEN_RETURN_IF_ERROR(setValidity(cert.get(), now - kBackdate, not_after));

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer.cert.get(), cert.get(), nullptr, nullptr, 0);
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature"));
  if (profile.ocsp_signing) {
    WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_ext_key_usage, "OCSPSigning"));
    // RFC 6960 §4.2.2.2.1: clients need not check the responder's own status.
    WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_id_pkix_OCSP_noCheck, "ignored"));
  } else {
    WARDEN_RETURN_IF_ERROR(addEku(cert.get(), profile));
  }
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  WARDEN_RETURN_IF_ERROR(addSans(cert.get(), profile));
  if (!profile.ocsp_signing) WARDEN_RETURN_IF_ERROR(addRevocationPointers(cert.get(), &ctx, issuer, /*with_ocsp=*/true));
  WARDEN_RETURN_IF_ERROR(sign(cert.get(), issuer.key.get()));
  return cert;
}

Status verifyChain(X509* leaf, const std::vector<X509*>& intermediates, const std::vector<X509*>& trust_anchors,
                   core::SystemTime at) {
  if (leaf == nullptr) return core::invalidArgument("no certificate to verify");
  crypto::X509StorePtr store(X509_STORE_new());
  if (!store) return core::internalError("cannot allocate X509_STORE");
  for (X509* anchor : trust_anchors) {
    if (X509_STORE_add_cert(store.get(), anchor) != 1) return core::internalError("cannot add trust anchor");
  }
  NonOwningStackOfX509Ptr untrusted(sk_X509_new_null());
  if (!untrusted) return core::internalError("cannot allocate certificate stack");
  for (X509* c : intermediates) {
    if (sk_X509_push(untrusted.get(), c) == 0) return core::internalError("cannot build certificate stack");
  }
  crypto::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    return core::internalError("cannot initialize certificate verification");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, toTimeT(at));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return core::unauthenticated(fmt::format("certificate verification failed: {}", X509_verify_cert_error_string(err)));
  }
  return Status::ok();
}

Result<CaMaterial> caMaterialFromPem(std::string_view cert_pem, std::string_view key_pem) {
  WARDEN_ASSIGN_OR_RETURN(EvpPkeyPtr key, crypto::privateKeyFromPem(key_pem));
  return caMaterialFromKey(cert_pem, std::move(key));
}

Result<CaMaterial> caMaterialFromKey(std::string_view cert_pem, EvpPkeyPtr key) {
  WARDEN_ASSIGN_OR_RETURN(X509Ptr cert, crypto::certFromPem(cert_pem));
  if (!key) return core::invalidArgument("no CA private key");
  // Compare public halves: a key held by a token or a TPM exposes only its
  // public part to X509_check_private_key's checks.
  if (EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()) != 1) {
    ERR_clear_error();
    return core::invalidArgument("CA private key does not match the CA certificate");
  }
  return CaMaterial{std::move(cert), std::move(key), "", ""};
}

const EVP_MD* signingDigestFor(EVP_PKEY* issuer_key) {
  return EVP_PKEY_get_bits(issuer_key) >= 384 ? sha384Md() : sha256Md();
}

bool isValidPkiUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() <= kScheme.size() || url.size() > 200 || url.substr(0, kScheme.size()) != kScheme) return false;
  if (url.back() == '/') return false;
  for (unsigned char c : url) {
    if (c < 0x21 || c > 0x7e || c == ',' || c == '"' || c == '\'' || c == '?' || c == '#' || c == '\\') return false;
  }
  return true;
}

// makeCrossCertificate lives here, next to the certificate-building helpers
// it shares with makeCa; the rest of the rollover logic is in
// cross_certificate.cc.
Result<X509Ptr> makeCrossCertificate(const CaMaterial& signer, X509* subject_root, const core::Clock& clock) {
  if (!signer.cert || !signer.key || subject_root == nullptr) return core::invalidArgument("cross certificate: incomplete CA material");
  if (!isSelfSignedRoot(subject_root)) return core::invalidArgument("cross certificate: the subject is not a self-signed root");
  EVP_PKEY* subject_key = X509_get0_pubkey(subject_root);
  if (subject_key == nullptr || EVP_PKEY_eq(subject_key, X509_get0_pubkey(signer.cert.get())) == 1) {
    return core::invalidArgument("cross certificate: both roots have the same key");
  }
  WARDEN_ASSIGN_OR_RETURN(X509Ptr cert, newCertificate(subject_key));
  if (X509_set_subject_name(cert.get(), X509_get_subject_name(subject_root)) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(signer.cert.get())) != 1) {
    return core::internalError("cannot set the cross certificate's names");
  }
  core::SystemTime now = clock.now();
  core::SystemTime not_after = std::min(crypto::notAfter(subject_root), crypto::notAfter(signer.cert.get()));
  WARDEN_RETURN_IF_ERROR(setValidity(cert.get(), now - kBackdate, not_after));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, signer.cert.get(), cert.get(), nullptr, nullptr, 0);
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE"));
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  // Same key, same identifier (both are the SHA-1 hash of the key): a chain
  // builder finds the cross certificate where it would find the root.
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  WARDEN_RETURN_IF_ERROR(addConfExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  WARDEN_RETURN_IF_ERROR(addRevocationPointers(cert.get(), &ctx, signer, /*with_ocsp=*/false));
  WARDEN_RETURN_IF_ERROR(sign(cert.get(), signer.key.get()));
  return cert;
}

}  // namespace warden::pki
