#include "trust/tpm_public.h"

#include <cstdint>
#include <string>

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <tss2/tss2_mu.h>

#include "core/byte_reader.h"
#include "crypto/crypto.h"

namespace warden::trust::internal {

namespace {

const uint8_t* bytesOf(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

core::Result<crypto::EvpPkeyPtr> keyFromParams(const char* type, OSSL_PARAM_BLD* bld, std::string_view what) {
  crypto::OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return core::invalidArgument(
        fmt::format("{}: the public key is not a valid {} key ({})", what, type, crypto::openSslErrorString()));
  }
  return crypto::EvpPkeyPtr(raw);
}

// ecdsaDer converts a TPM ECDSA signature (r, s as big-endian TPM2B) to the
// DER ECDSA-Sig-Value OpenSSL verifies; empty on failure.
std::string ecdsaDer(const TPMS_SIGNATURE_ECDSA& sig) {
  if (sig.signatureR.size == 0 || sig.signatureR.size > 32 || sig.signatureS.size == 0 || sig.signatureS.size > 32) {
    return {};
  }
  crypto::EcdsaSigPtr ecdsa(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(sig.signatureR.buffer, sig.signatureR.size, nullptr);
  BIGNUM* s = BN_bin2bn(sig.signatureS.buffer, sig.signatureS.size, nullptr);
  if (!ecdsa || r == nullptr || s == nullptr || ECDSA_SIG_set0(ecdsa.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return {};
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(ecdsa.get(), &der);
  crypto::OpenSslBytesPtr owned(der);
  if (len <= 0) return {};
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

}  // namespace

bool verifyAkSignature(EVP_PKEY* ak, std::string_view message, std::string_view marshalled_sig) {
  TPMT_SIGNATURE sig{};
  size_t offset = 0;
  if (ak == nullptr ||
      Tss2_MU_TPMT_SIGNATURE_Unmarshal(bytesOf(marshalled_sig), marshalled_sig.size(), &offset, &sig) !=
          TSS2_RC_SUCCESS ||
      offset != marshalled_sig.size()) {
    return false;
  }
  if (sig.sigAlg != TPM2_ALG_ECDSA || sig.signature.ecdsa.hash != TPM2_ALG_SHA256) return false;
  const std::string der = ecdsaDer(sig.signature.ecdsa);
  if (der.empty()) return false;
  crypto::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestVerifyInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, ak, nullptr) == 1 &&
            EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                             reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

core::Result<ParsedPublic> parsePublic(std::string_view tpm2b_public, std::string_view what) {
  core::ByteReader reader(bytesOf(tpm2b_public), tpm2b_public.size());
  uint16_t size = 0;
  std::span<const uint8_t> inner;
  if (!reader.readU16(size) || size == 0 || !reader.readBytes(size, inner) || !reader.empty()) {
    return core::invalidArgument(
        fmt::format("{}: not a marshalled TPM2B_PUBLIC (the size prefix does not match the {} bytes)", what,
                    tpm2b_public.size()));
  }
  ParsedPublic out;
  size_t offset = 0;
  if (Tss2_MU_TPMT_PUBLIC_Unmarshal(inner.data(), inner.size(), &offset, &out.area) != TSS2_RC_SUCCESS ||
      offset != inner.size()) {
    return core::invalidArgument(fmt::format("{}: not a marshalled TPM2B_PUBLIC (TPMT_PUBLIC does not parse)", what));
  }
  out.marshalled.assign(core::asStringView(inner));
  return out;
}

core::Result<crypto::EvpPkeyPtr> publicKeyOf(const TPMT_PUBLIC& area, std::string_view what) {
  crypto::OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld) return core::internalError("OSSL_PARAM_BLD_new failed");
  if (area.type == TPM2_ALG_RSA) {
    const TPM2B_PUBLIC_KEY_RSA& n = area.unique.rsa;
    const uint16_t bits = area.parameters.rsaDetail.keyBits;
    if (bits < 2048 || bits > 4096 || n.size != bits / 8 || (n.buffer[0] & 0x80) == 0) {
      return core::invalidArgument(fmt::format("{}: the RSA modulus does not have the declared {} bits", what, bits));
    }
    // TPM 2.0 part 2 §12.2.3.5: an exponent of zero means 2^16 + 1.
    const uint32_t e = area.parameters.rsaDetail.exponent == 0 ? 65537 : area.parameters.rsaDetail.exponent;
    crypto::BignumPtr bn_n(BN_bin2bn(n.buffer, n.size, nullptr));
    crypto::BignumPtr bn_e(BN_new());
    if (!bn_n || !bn_e || BN_set_word(bn_e.get(), e) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
      return core::internalError("building RSA key parameters failed");
    }
    return keyFromParams("RSA", bld.get(), what);
  }
  if (area.type == TPM2_ALG_ECC) {
    if (area.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256) {
      return core::invalidArgument(fmt::format("{}: the ECC curve is not NIST P-256", what));
    }
    const TPMS_ECC_POINT& point = area.unique.ecc;
    if (point.x.size == 0 || point.x.size > 32 || point.y.size == 0 || point.y.size > 32) {
      return core::invalidArgument(fmt::format("{}: the ECC point's coordinates are not 1 to 32 bytes", what));
    }
    // Uncompressed SEC1 point 04 || X || Y, coordinates left-padded to 32 bytes.
    unsigned char encoded[65] = {0x04};
    std::copy(point.x.buffer, point.x.buffer + point.x.size, encoded + 1 + (32 - point.x.size));
    std::copy(point.y.buffer, point.y.buffer + point.y.size, encoded + 33 + (32 - point.y.size));
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, encoded, sizeof(encoded)) != 1) {
      return core::internalError("building EC key parameters failed");
    }
    return keyFromParams("EC", bld.get(), what);
  }
  return core::invalidArgument(fmt::format("{}: the key is neither RSA nor ECC (type 0x{:04x})", what, area.type));
}

std::string tpmName(const ParsedPublic& pub) {
  std::string name;
  name.push_back(static_cast<char>(pub.area.nameAlg >> 8));
  name.push_back(static_cast<char>(pub.area.nameAlg & 0xff));
  name += crypto::sha256(pub.marshalled);
  return name;
}

}  // namespace warden::trust::internal
