#include "trust/credential.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <tss2/tss2_tpm2_types.h>

#include "crypto/crypto.h"
#include "trust/tpm_public.h"

namespace warden::trust {

namespace {

using core::invalidArgument;
using core::Result;
using internal::ParsedPublic;

constexpr TPMA_OBJECT kAkRequired = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
                                    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                    TPMA_OBJECT_USERWITHAUTH;
constexpr TPMA_OBJECT kEkRequired =
    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
constexpr size_t kSha256Bytes = 32;

// checkAk applies every requirement on an attestation key's public area.
core::Status checkAk(const ParsedPublic& pub) {
  const TPMT_PUBLIC& a = pub.area;
  if (a.type != TPM2_ALG_ECC) return invalidArgument("AK public area: the AK must be an ECC key (NIST P-256)");
  if (a.nameAlg != TPM2_ALG_SHA256) return invalidArgument("AK public area: the name algorithm must be SHA-256");
  if ((a.objectAttributes & kAkRequired) != kAkRequired) {
    return invalidArgument(
        "AK public area: the AK must be restricted, sign, fixedTPM, fixedParent, sensitiveDataOrigin and "
        "userWithAuth");
  }
  if ((a.objectAttributes & TPMA_OBJECT_DECRYPT) != 0) {
    return invalidArgument("AK public area: the AK must not be a decryption key");
  }
  const TPMS_ECC_PARMS& ecc = a.parameters.eccDetail;
  if (ecc.curveID != TPM2_ECC_NIST_P256) return invalidArgument("AK public area: the curve must be NIST P-256");
  if (ecc.scheme.scheme != TPM2_ALG_ECDSA || ecc.scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256) {
    return invalidArgument("AK public area: the signing scheme must be ECDSA with SHA-256");
  }
  if (ecc.symmetric.algorithm != TPM2_ALG_NULL) {
    return invalidArgument("AK public area: a signing key has no symmetric algorithm");
  }
  if (ecc.kdf.scheme != TPM2_ALG_NULL) return invalidArgument("AK public area: a signing key has no KDF");
  return core::Status::ok();
}

Result<ParsedPublic> parseEk(std::string_view tpm2b_public) {
  WARDEN_ASSIGN_OR_RETURN(ParsedPublic pub, internal::parsePublic(tpm2b_public, "EK public area"));
  const TPMT_PUBLIC& a = pub.area;
  if (a.type != TPM2_ALG_RSA && a.type != TPM2_ALG_ECC) {
    return invalidArgument("EK public area: the EK must be an RSA 2048 or ECC NIST P-256 key");
  }
  if (a.type == TPM2_ALG_RSA && a.parameters.rsaDetail.keyBits != 2048) {
    return invalidArgument("EK public area: an RSA EK must have 2048 bits");
  }
  if (a.nameAlg != TPM2_ALG_SHA256) return invalidArgument("EK public area: the name algorithm must be SHA-256");
  if ((a.objectAttributes & kEkRequired) != kEkRequired || (a.objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT) != 0) {
    return invalidArgument(
        "EK public area: the EK must be a restricted decryption key (restricted, decrypt, fixedTPM, fixedParent, "
        "not sign)");
  }
  return pub;
}

// checkEkSymmetric checks the EK's storage cipher, which protects credentials;
// only AES-128-CFB (the TCG EK templates' choice) is supported.
core::Status checkEkSymmetric(const TPMT_PUBLIC& a) {
  const TPMT_SYM_DEF_OBJECT& sym =
      a.type == TPM2_ALG_RSA ? a.parameters.rsaDetail.symmetric : a.parameters.eccDetail.symmetric;
  if (sym.algorithm != TPM2_ALG_AES || sym.keyBits.aes != 128 || sym.mode.aes != TPM2_ALG_CFB) {
    return invalidArgument("EK public area: the EK's symmetric algorithm must be AES-128-CFB");
  }
  return core::Status::ok();
}

void appendU16(std::string& out, size_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}
void appendU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

Result<std::string> hmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t out_len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, sizeof(out), &out_len) ==
          nullptr ||
      out_len != kSha256Bytes) {
    return core::internalError("HMAC-SHA256 failed: " + crypto::openSslErrorString());
  }
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

// kdfa is KDFa with HMAC-SHA256 (TPM 2.0 part 1 §11.4.10.2, SP 800-108
// counter mode): HMAC(key, [i]32 || label || 0x00 || contextU || contextV ||
// [bits]32) for i = 1, 2, ..., truncated to |bits| (a multiple of 8).
Result<std::string> kdfa(std::string_view key, std::string_view label, std::string_view context, uint32_t bits) {
  std::string out;
  for (uint32_t counter = 1; out.size() < bits / 8; ++counter) {
    std::string block;
    appendU32(block, counter);
    block.append(label);
    block.push_back('\0');
    block.append(context);
    appendU32(block, bits);
    WARDEN_ASSIGN_OR_RETURN(std::string h, hmacSha256(key, block));
    out += h;
  }
  out.resize(bits / 8);
  return out;
}

// kdfe is KDFe with SHA-256 (TPM 2.0 part 1 §11.4.10.3, SP 800-56A
// concatenation KDF): H([i]32 || Z || label || 0x00 || partyU || partyV).
std::string kdfe(std::string_view z, std::string_view label, std::string_view party_u, std::string_view party_v,
                 uint32_t bits) {
  std::string out;
  for (uint32_t counter = 1; out.size() < bits / 8; ++counter) {
    std::string block;
    appendU32(block, counter);
    block.append(z);
    block.append(label);
    block.push_back('\0');
    block.append(party_u);
    block.append(party_v);
    out += crypto::sha256(block);
  }
  out.resize(bits / 8);
  return out;
}

// wrapSeedRsa returns RSA-OAEP(SHA-256, label "IDENTITY\0") of |seed| to
// the EK (TPM 2.0 part 1 §B.10.3).
Result<std::string> wrapSeedRsa(EVP_PKEY* ek, std::string_view seed) {
  static constexpr char kLabel[] = "IDENTITY";  // sizeof includes the terminating zero the spec requires
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek, nullptr));
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx.get(), "SHA256", nullptr) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx.get(), "SHA256", nullptr) != 1) {
    return core::internalError("RSA-OAEP setup failed: " + crypto::openSslErrorString());
  }
  void* label = OPENSSL_memdup(kLabel, sizeof(kLabel));
  if (label == nullptr || EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, sizeof(kLabel)) != 1) {
    OPENSSL_free(label);
    return core::internalError("RSA-OAEP label failed: " + crypto::openSslErrorString());
  }
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(seed.data());
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, in, seed.size()) != 1) {
    return core::internalError("RSA-OAEP failed: " + crypto::openSslErrorString());
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, in, seed.size()) != 1) {
    return core::internalError("RSA-OAEP failed: " + crypto::openSslErrorString());
  }
  out.resize(len);
  return out;
}

// ecPointXY returns the 32-byte affine coordinates of an EC public key.
Result<std::pair<std::string, std::string>> ecPointXY(EVP_PKEY* key) {
  unsigned char buf[65];
  size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof(buf), &len) != 1 ||
      len != 65 || buf[0] != 0x04) {
    // The encoded point may be compressed by the key's settings; ask for it uncompressed.
    if (EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed") != 1 ||
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof(buf), &len) != 1 ||
        len != 65 || buf[0] != 0x04) {
      return core::internalError("cannot read an EC point: " + crypto::openSslErrorString());
    }
  }
  return std::make_pair(std::string(reinterpret_cast<char*>(buf + 1), 32),
                        std::string(reinterpret_cast<char*>(buf + 33), 32));
}

// makeSeedEcc makes the seed by ECDH between a fresh P-256 key and the EK
// (TPM 2.0 part 1 §C.6.4, "ECDH secret sharing for secrets"): seed =
// KDFe(Z, "IDENTITY", ephemeral.x, ek.x); the encrypted secret is the
// marshalled TPMS_ECC_POINT of the ephemeral public key.
Result<std::pair<std::string, std::string>> makeSeedEcc(EVP_PKEY* ek) {
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr eph, crypto::generateEcKey(NID_X9_62_prime256v1));
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, eph.get(), nullptr));
  size_t z_len = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), ek) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &z_len) != 1 || z_len != 32) {
    return core::internalError("ECDH with the EK failed: " + crypto::openSslErrorString());
  }
  std::string z(z_len, '\0');
  if (EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(z.data()), &z_len) != 1) {
    return core::internalError("ECDH with the EK failed: " + crypto::openSslErrorString());
  }
  WARDEN_ASSIGN_OR_RETURN(auto eph_xy, ecPointXY(eph.get()));
  WARDEN_ASSIGN_OR_RETURN(auto ek_xy, ecPointXY(ek));
  std::string seed = kdfe(z, "IDENTITY", eph_xy.first, ek_xy.first, 8 * kSha256Bytes);
  OPENSSL_cleanse(z.data(), z.size());
  std::string point;
  appendU16(point, eph_xy.first.size());
  point += eph_xy.first;
  appendU16(point, eph_xy.second.size());
  point += eph_xy.second;
  return std::make_pair(std::move(seed), std::move(point));
}

// Accepted critical extensions on an EK certificate that OpenSSL does not
// process: subjectDirectoryAttributes (TPM specification version, TCG EK
// Credential Profile §3.2.10).
int ekVerifyCallback(int ok, X509_STORE_CTX* ctx) {
  if (ok) return ok;
  if (X509_STORE_CTX_get_error(ctx) != X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION ||
      X509_STORE_CTX_get_error_depth(ctx) != 0) {
    return ok;
  }
  X509* leaf = X509_STORE_CTX_get_current_cert(ctx);
  for (int i = 0; i < X509_get_ext_count(leaf); ++i) {
    X509_EXTENSION* ext = X509_get_ext(leaf, i);
    if (!X509_EXTENSION_get_critical(ext) || X509_supported_extension(ext)) continue;
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_directory_attributes) return 0;
  }
  return 1;
}

}  // namespace

Result<std::string> checkAkPublic(std::string_view tpm2b_public) {
  WARDEN_ASSIGN_OR_RETURN(ParsedPublic pub, internal::parsePublic(tpm2b_public, "AK public area"));
  WARDEN_RETURN_IF_ERROR(checkAk(pub));
  // The point must be on the curve, or no signature could ever verify.
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, internal::publicKeyOf(pub.area, "AK public area"));
  return internal::tpmName(pub);
}

Result<crypto::EvpPkeyPtr> akPublicKey(std::string_view tpm2b_public) {
  WARDEN_ASSIGN_OR_RETURN(ParsedPublic pub, internal::parsePublic(tpm2b_public, "AK public area"));
  WARDEN_RETURN_IF_ERROR(checkAk(pub));
  return internal::publicKeyOf(pub.area, "AK public area");
}

Result<crypto::EvpPkeyPtr> ekPublicKey(std::string_view tpm2b_public) {
  WARDEN_ASSIGN_OR_RETURN(ParsedPublic pub, parseEk(tpm2b_public));
  return internal::publicKeyOf(pub.area, "EK public area");
}

Result<std::string> ekFingerprint(std::string_view tpm2b_public) {
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, ekPublicKey(tpm2b_public));
  return "sha256:" + crypto::publicKeyFingerprint(key.get());
}

core::Status verifyEkCertificate(std::string_view ek_cert_der, std::string_view ek_public_tpm2b,
                                 std::string_view vendor_cas_pem) {
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr ek, ekPublicKey(ek_public_tpm2b));
  auto cert = crypto::certFromDer(ek_cert_der);
  if (!cert.isOk()) return invalidArgument("EK certificate: not one DER X.509 certificate");
  auto cas = crypto::certsFromPem(vendor_cas_pem);
  if (!cas.isOk()) return invalidArgument("TPM vendor CAs: no PEM certificate in the bundle");

  // Its key must be this EK's before its chain means anything for this EK.
  EVP_PKEY* cert_key = X509_get0_pubkey(cert->get());
  if (cert_key == nullptr || EVP_PKEY_eq(cert_key, ek.get()) != 1) {
    return core::permissionDenied("EK certificate: its public key is not the EK's (ek_public)");
  }
  crypto::X509StorePtr store(X509_STORE_new());
  crypto::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  crypto::StackOfX509Ptr untrusted(sk_X509_new_null());
  if (!store || !ctx || !untrusted) return core::internalError("X509_STORE allocation failed");
  for (const crypto::X509Ptr& ca : *cas) {
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) {
      ERR_clear_error();  // a duplicate in the bundle is harmless
    }
    X509_up_ref(ca.get());
    if (sk_X509_push(untrusted.get(), ca.get()) <= 0) {
      X509_free(ca.get());
      return core::internalError("sk_X509_push failed");
    }
  }
  // Every certificate in the operator's bundle is an anchor: a vendor may
  // publish only the intermediate that issues its EK certificates.
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  X509_STORE_set_verify_cb(store.get(), ekVerifyCallback);
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), untrusted.get()) != 1) {
    return core::internalError("X509_STORE_CTX_init failed");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    return core::permissionDenied(fmt::format("EK certificate: does not chain to a trusted TPM vendor CA: {}",
                                              X509_verify_cert_error_string(err)));
  }
  return core::Status::ok();
}

Result<Credential> makeCredential(std::string_view ek_public_tpm2b, std::string_view ak_name, std::string_view secret) {
  WARDEN_ASSIGN_OR_RETURN(ParsedPublic ek_pub, parseEk(ek_public_tpm2b));
  WARDEN_RETURN_IF_ERROR(checkEkSymmetric(ek_pub.area));
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr ek, internal::publicKeyOf(ek_pub.area, "EK public area"));
  if (ak_name.size() != kAkNameBytes || static_cast<uint8_t>(ak_name[0]) != (TPM2_ALG_SHA256 >> 8) ||
      static_cast<uint8_t>(ak_name[1]) != (TPM2_ALG_SHA256 & 0xff)) {
    return invalidArgument("makeCredential: the AK name must be a SHA-256 TPM name (34 bytes)");
  }
  if (secret.empty() || secret.size() > kSha256Bytes) {
    return invalidArgument("makeCredential: the secret must be 1 to 32 bytes");
  }

  // Seed and its protected form (TPM2B_ENCRYPTED_SECRET's content).
  std::string seed;
  std::string wrapped;
  if (ek_pub.area.type == TPM2_ALG_RSA) {
    seed = crypto::randomBytes(kSha256Bytes);
    WARDEN_ASSIGN_OR_RETURN(wrapped, wrapSeedRsa(ek.get(), seed));
  } else {
    WARDEN_ASSIGN_OR_RETURN(auto seed_and_point, makeSeedEcc(ek.get()));
    seed = std::move(seed_and_point.first);
    wrapped = std::move(seed_and_point.second);
  }

  // TPM 2.0 part 1 §24.4: encIdentity = AES-128-CFB(symKey, IV = 0, TPM2B_DIGEST(secret)).
  WARDEN_ASSIGN_OR_RETURN(std::string sym_key, kdfa(seed, "STORAGE", ak_name, 128));
  std::string plain;
  appendU16(plain, secret.size());
  plain.append(secret);
  std::string enc_identity(plain.size(), '\0');
  {
    crypto::EvpCipherCtxPtr cipher(EVP_CIPHER_CTX_new());
    const unsigned char iv[16] = {};
    int out_len = 0;
    int final_len = 0;
    if (!cipher ||
        EVP_EncryptInit_ex2(cipher.get(), EVP_aes_128_cfb128(), reinterpret_cast<const unsigned char*>(sym_key.data()),
                            iv, nullptr) != 1 ||
        EVP_EncryptUpdate(cipher.get(), reinterpret_cast<unsigned char*>(enc_identity.data()), &out_len,
                          reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(cipher.get(), reinterpret_cast<unsigned char*>(enc_identity.data()) + out_len,
                            &final_len) != 1 ||
        static_cast<size_t>(out_len + final_len) != plain.size()) {
      OPENSSL_cleanse(sym_key.data(), sym_key.size());
      return core::internalError("AES-128-CFB failed: " + crypto::openSslErrorString());
    }
  }
  OPENSSL_cleanse(plain.data(), plain.size());
  OPENSSL_cleanse(sym_key.data(), sym_key.size());

  // TPM 2.0 part 1 §24.5: outerHMAC = HMAC(KDFa(seed, "INTEGRITY"), encIdentity || name).
  WARDEN_ASSIGN_OR_RETURN(std::string hmac_key, kdfa(seed, "INTEGRITY", "", 8 * kSha256Bytes));
  OPENSSL_cleanse(seed.data(), seed.size());
  std::string hmac_input = enc_identity;
  hmac_input.append(ak_name);
  auto hmac = hmacSha256(hmac_key, hmac_input);
  OPENSSL_cleanse(hmac_key.data(), hmac_key.size());
  if (!hmac.isOk()) return hmac.status();

  // TPM2B_ID_OBJECT { size, TPMS_ID_OBJECT { TPM2B_DIGEST integrityHMAC, encIdentity } }.
  std::string id_object;
  appendU16(id_object, hmac->size());
  id_object += *hmac;
  id_object += enc_identity;
  Credential out;
  appendU16(out.credential_blob, id_object.size());
  out.credential_blob += id_object;
  appendU16(out.encrypted_secret, wrapped.size());
  out.encrypted_secret += wrapped;
  return out;
}

}  // namespace warden::trust
