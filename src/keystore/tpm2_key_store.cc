#include "keystore/tpm2_key_store.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <mutex>

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "core/file_io.h"
#include "crypto/crypto.h"

namespace warden::keystore {
namespace {

using core::Result;
using core::Status;

constexpr std::string_view kTss2PemBegin = "-----BEGIN TSS2 PRIVATE KEY-----";

std::string rcText(TSS2_RC rc) { return Tss2_RC_Decode(rc); }

// Tpm2Provider loads tpm2-openssl into the default library context once per
// process (with the default provider first, so ordinary algorithms keep
// their usual implementation). One TCTI per process.
Status loadProvider(const std::string& tcti) {
  static std::mutex mu;
  static std::string loaded_tcti;
  static bool loaded = false;
  std::lock_guard<std::mutex> lock(mu);
  if (loaded) {
    if (loaded_tcti != tcti) {
      return core::failedPrecondition(
          fmt::format("this process already uses the TPM at TCTI '{}'; cannot switch to '{}'", loaded_tcti, tcti));
    }
    return Status::ok();
  }
  // tpm2-openssl reads its TCTI from the environment when it initializes
  // (OpenSSL 3.0 cannot pass provider parameters programmatically).
  ::setenv("TPM2OPENSSL_TCTI", tcti.c_str(), 1);
  if (OSSL_PROVIDER_load(nullptr, "default") == nullptr) {
    return core::failedPrecondition("cannot load OpenSSL's default provider: " + crypto::openSslErrorString());
  }
  if (OSSL_PROVIDER_load(nullptr, "tpm2") == nullptr) {
    std::string why = crypto::openSslErrorString();
    return core::failedPrecondition(fmt::format(
        "cannot load OpenSSL's tpm2 provider with TCTI '{}': {}. Is tpm2-openssl installed (scripts/setup), is "
        "tpm2-abrmd running and DBUS_SESSION_BUS_ADDRESS set for a session bus?",
        tcti, why.empty() ? "initialization failed" : why));
  }
  loaded = true;
  loaded_tcti = tcti;
  return Status::ok();
}

// Esys owns one ESAPI context on a TCTI.
class Esys {
 public:
  static Result<std::unique_ptr<Esys>> open(const std::string& tcti_conf) {
    auto e = std::unique_ptr<Esys>(new Esys());
    TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti_conf.c_str(), &e->tcti_);
    if (rc != TSS2_RC_SUCCESS) {
      return core::failedPrecondition(fmt::format("cannot open the TPM at TCTI '{}': {}", tcti_conf, rcText(rc)));
    }
    rc = Esys_Initialize(&e->ctx_, e->tcti_, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
      return core::failedPrecondition(fmt::format("cannot talk to the TPM at TCTI '{}': {}", tcti_conf, rcText(rc)));
    }
    return e;
  }
  ~Esys() {
    if (ctx_ != nullptr) Esys_Finalize(&ctx_);
    if (tcti_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_);
  }
  ESYS_CONTEXT* ctx() { return ctx_; }

 private:
  Esys() = default;
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* ctx_ = nullptr;
};

// srkTemplate is TCG EK Credential Profile template H-2 used as a storage
// key (TCG TPM v2.0 Provisioning Guidance §7.5.1): ECC NIST P-256,
// AES-128-CFB, restricted decrypt, empty unique fields of 32 bytes each.
TPM2B_PUBLIC srkTemplate() {
  TPM2B_PUBLIC t{};
  t.publicArea.type = TPM2_ALG_ECC;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                  TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                                  TPMA_OBJECT_DECRYPT;
  t.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
  t.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
  t.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  t.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  t.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  t.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  t.publicArea.unique.ecc.x.size = 32;
  t.publicArea.unique.ecc.y.size = 32;
  return t;
}

}  // namespace

Status checkTcti(std::string_view tcti) {
  if (tcti == "tabrmd" || tcti.substr(0, 7) == "tabrmd:") return Status::ok();
  if (tcti.substr(0, 17) == "device:/dev/tpmrm") return Status::ok();
  return core::invalidArgument(fmt::format(
      "TCTI '{}' has no resource manager: Warden reaches the TPM only through tpm2-abrmd (--tpm "
      "tabrmd:bus_type=system, or bus_type=session) or the kernel's /dev/tpmrm0 (--tpm device:/dev/tpmrm0), so the "
      "agent, the provider and other TPM users never step on each other's handles",
      tcti.substr(0, 128)));
}

bool isTss2PrivateKeyPem(std::string_view pem) { return pem.find(kTss2PemBegin) != std::string_view::npos; }

Result<std::unique_ptr<Tpm2KeyStore>> Tpm2KeyStore::create(const std::string& tcti) {
  WARDEN_RETURN_IF_ERROR(checkTcti(tcti));
  WARDEN_RETURN_IF_ERROR(loadProvider(tcti));
  return std::unique_ptr<Tpm2KeyStore>(new Tpm2KeyStore(tcti));
}

Result<bool> Tpm2KeyStore::ensureStorageRootKey() {
  WARDEN_ASSIGN_OR_RETURN(auto esys, Esys::open(tcti_));
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* data = nullptr;
  TSS2_RC rc = Esys_GetCapability(esys->ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, kSrkHandle,
                                  1, &more, &data);
  if (rc != TSS2_RC_SUCCESS) return core::failedPrecondition("TPM2_GetCapability(handles) failed: " + rcText(rc));
  bool present = data->data.handles.count > 0 && data->data.handles.handle[0] == kSrkHandle;
  Esys_Free(data);
  if (present) return false;

  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_PUBLIC in_public = srkTemplate();
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  ESYS_TR primary = ESYS_TR_NONE;
  rc = Esys_CreatePrimary(esys->ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                          &in_public, &outside, &pcrs, &primary, nullptr, nullptr, nullptr, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    return core::failedPrecondition("TPM2_CreatePrimary (SRK) failed: " + rcText(rc) +
                                    ". If the owner hierarchy has a password, create the SRK at 0x81000001 yourself "
                                    "(tpm2_createprimary + tpm2_evictcontrol)");
  }
  ESYS_TR persistent = ESYS_TR_NONE;
  rc = Esys_EvictControl(esys->ctx(), ESYS_TR_RH_OWNER, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         kSrkHandle, &persistent);
  Esys_FlushContext(esys->ctx(), primary);
  if (rc != TSS2_RC_SUCCESS) return core::failedPrecondition("TPM2_EvictControl (SRK at 0x81000001) failed: " + rcText(rc));
  Esys_TR_Close(esys->ctx(), &persistent);
  return true;
}

Result<PrivateKey> Tpm2KeyStore::generate(std::string_view reference) {
  std::string path(reference);
  if (path.empty()) return core::invalidArgument("a TPM key needs a path for its TSS2 PRIVATE KEY blob");
  WARDEN_ASSIGN_OR_RETURN(bool created_srk, ensureStorageRootKey());
  (void)created_srk;
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", "provider=tpm2"));
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1) {
    return core::failedPrecondition("the tpm2 provider offers no EC key generation: " + crypto::openSslErrorString());
  }
  char group[] = "P-256";
  uint32_t parent = kSrkHandle;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
                         OSSL_PARAM_construct_uint32("parent", &parent), OSSL_PARAM_construct_end()};
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_CTX_set_params(ctx.get(), params) != 1 || EVP_PKEY_generate(ctx.get(), &raw) != 1) {
    return core::failedPrecondition("the TPM could not create an EC P-256 key under the SRK: " +
                                    crypto::openSslErrorString());
  }
  crypto::EvpPkeyPtr key(raw);
  crypto::BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return core::internalError("cannot encode the TPM key blob: " + crypto::openSslErrorString());
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(len));
  if (!isTss2PrivateKeyPem(pem)) {
    return core::internalError("the tpm2 provider did not encode the key as a TSS2 PRIVATE KEY");
  }
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(path, pem, 0600));
  return PrivateKey(std::move(key), KeyStoreKind::kTpm2, path);
}

Result<PrivateKey> Tpm2KeyStore::load(std::string_view reference) {
  std::string path(reference);
  WARDEN_ASSIGN_OR_RETURN(std::string pem, core::readFile(path, 64 * 1024));
  if (!isTss2PrivateKeyPem(pem)) {
    return core::invalidArgument(fmt::format("{} is not a TSS2 PRIVATE KEY (a TPM key blob)", path));
  }
  EVP_PKEY* raw = nullptr;
  std::unique_ptr<OSSL_DECODER_CTX, decltype(&OSSL_DECODER_CTX_free)> dctx(
      OSSL_DECODER_CTX_new_for_pkey(&raw, "PEM", nullptr, nullptr, OSSL_KEYMGMT_SELECT_KEYPAIR, nullptr,
                                    "provider=tpm2"),
      &OSSL_DECODER_CTX_free);
  const auto* bytes = reinterpret_cast<const unsigned char*>(pem.data());
  size_t left = pem.size();
  if (dctx == nullptr || OSSL_DECODER_from_data(dctx.get(), &bytes, &left) != 1 || raw == nullptr) {
    return core::failedPrecondition(fmt::format("the TPM cannot load the key {}: {}. Was it made by this TPM (its "
                                                "SRK at 0x81000001), and is tpm2-abrmd reachable?",
                                                path, crypto::openSslErrorString()));
  }
  return PrivateKey(crypto::EvpPkeyPtr(raw), KeyStoreKind::kTpm2, path);
}

}  // namespace warden::keystore
