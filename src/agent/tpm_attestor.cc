#include "agent/tpm_attestor.h"

#include <cstring>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

namespace warden::agent {

namespace {

using core::Result;
using core::Status;

std::string rcText(TSS2_RC rc) { return Tss2_RC_Decode(rc); }

Status tpmError(std::string_view what, TSS2_RC rc) {
  return core::failedPrecondition(fmt::format("TPM: {} failed: {}", what, rcText(rc)));
}

// EsysPtr owns memory ESAPI returned (Esys_Free).
template <typename T>
struct EsysFree {
  void operator()(T* p) const noexcept { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree<T>>;

// The policy digest of PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256, the
// authPolicy of the TCG default EK (TCG EK Credential Profile §B.6.2).
constexpr uint8_t kEkPolicy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC,
                                   0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52,
                                   0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

// ekTemplate is the TCG EK Credential Profile template L-1 (RSA 2048,
// AES-128-CFB, restricted decryption key, 256 zero bytes of unique): the
// template TPM vendors' (and swtpm_setup's) EK certificates certify.
// Template L-2 is the same for ECC NIST P-256 (32 zero bytes each of x and y).
TPM2B_PUBLIC ekTemplate(EkKind kind) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                       TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  p.authPolicy.size = sizeof(kEkPolicy);
  std::memcpy(p.authPolicy.buffer, kEkPolicy, sizeof(kEkPolicy));
  if (kind == EkKind::kEccP256) {
    p.type = TPM2_ALG_ECC;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.eccDetail.symmetric.keyBits.aes = 128;
    p.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = 32;
    p.unique.ecc.y.size = 32;
    return t;
  }
  p.type = TPM2_ALG_RSA;
  p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
  p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
  p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
  p.parameters.rsaDetail.keyBits = 2048;
  p.parameters.rsaDetail.exponent = 0;
  p.unique.rsa.size = 256;
  return t;
}

// akTemplate: the attestation key the verifier's checkAkPublic requires.
TPM2B_PUBLIC akTemplate() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                       TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

TPML_PCR_SELECTION sha256Selection(uint32_t pcr) {
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  sel.pcrSelections[0].pcrSelect[pcr / 8] = static_cast<BYTE>(1u << (pcr % 8));
  return sel;
}

// unmarshalExact unmarshals one |T| from all of |bytes| (no trailing bytes).
template <typename T>
Result<T> unmarshalExact(std::string_view bytes, TSS2_RC (*fn)(const uint8_t*, size_t, size_t*, T*),
                         std::string_view what) {
  T out{};
  size_t offset = 0;
  if (fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &offset, &out) != TSS2_RC_SUCCESS ||
      offset != bytes.size()) {
    return core::invalidArgument(fmt::format("{} is not a marshalled {}", what, what));
  }
  return out;
}

template <typename T>
Result<std::string> marshal(const T& value, TSS2_RC (*fn)(const T*, uint8_t*, size_t, size_t*)) {
  std::string out(sizeof(T) + 16, '\0');
  size_t offset = 0;
  const TSS2_RC rc = fn(&value, reinterpret_cast<uint8_t*>(out.data()), out.size(), &offset);
  if (rc != TSS2_RC_SUCCESS) return core::internalError("marshalling a TPM structure failed: " + rcText(rc));
  out.resize(offset);
  return out;
}

}  // namespace

struct TpmAttestor::Impl {
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  ESYS_CONTEXT* ctx = nullptr;
  EkKind ek_kind = EkKind::kRsa2048;
  ESYS_TR ek = ESYS_TR_NONE;
  ESYS_TR ak = ESYS_TR_NONE;
  std::string ek_public;

  ~Impl() {
    if (ctx != nullptr) {
      if (ak != ESYS_TR_NONE) Esys_FlushContext(ctx, ak);
      if (ek != ESYS_TR_NONE) Esys_FlushContext(ctx, ek);
      Esys_Finalize(&ctx);
    }
    if (tcti != nullptr) Tss2_TctiLdr_Finalize(&tcti);
  }

  // PolicySession is a policy session satisfying the EK's authPolicy,
  // PolicySecret(TPM_RH_ENDORSEMENT); flushed when it goes out of scope.
  class PolicySession {
   public:
    explicit PolicySession(ESYS_CONTEXT* ctx) : ctx_(ctx) {}
    ~PolicySession() {
      if (handle_ != ESYS_TR_NONE) Esys_FlushContext(ctx_, handle_);
    }
    Status start() {
      TPMT_SYM_DEF symmetric{};
      symmetric.algorithm = TPM2_ALG_NULL;
      TSS2_RC rc = Esys_StartAuthSession(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                         nullptr, TPM2_SE_POLICY, &symmetric, TPM2_ALG_SHA256, &handle_);
      if (rc != TSS2_RC_SUCCESS) {
        handle_ = ESYS_TR_NONE;
        return tpmError("StartAuthSession (policy)", rc);
      }
      // Kept after use so that the flush in the destructor always applies.
      rc = Esys_TRSess_SetAttributes(ctx_, handle_, TPMA_SESSION_CONTINUESESSION, 0xff);
      if (rc != TSS2_RC_SUCCESS) return tpmError("TRSess_SetAttributes", rc);
      TPM2B_TIMEOUT* timeout = nullptr;
      TPMT_TK_AUTH* ticket = nullptr;
      rc = Esys_PolicySecret(ctx_, ESYS_TR_RH_ENDORSEMENT, handle_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                             nullptr, nullptr, nullptr, 0, &timeout, &ticket);
      Esys_Free(timeout);
      Esys_Free(ticket);
      if (rc != TSS2_RC_SUCCESS) return tpmError("PolicySecret(TPM_RH_ENDORSEMENT)", rc);
      return Status::ok();
    }
    ESYS_TR handle() const { return handle_; }

   private:
    ESYS_CONTEXT* ctx_;
    ESYS_TR handle_ = ESYS_TR_NONE;
  };

  Status ensureEk() {
    if (ek != ESYS_TR_NONE) return Status::ok();
    const TPM2B_PUBLIC tmpl = ekTemplate(ek_kind);
    const TPM2B_SENSITIVE_CREATE sensitive{};
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION creation_pcr{};
    TPM2B_PUBLIC* out_public = nullptr;
    TPM2B_CREATION_DATA* creation_data = nullptr;
    TPM2B_DIGEST* creation_hash = nullptr;
    TPMT_TK_CREATION* creation_ticket = nullptr;
    const TSS2_RC rc = Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                          &sensitive, &tmpl, &outside, &creation_pcr, &ek, &out_public, &creation_data,
                                          &creation_hash, &creation_ticket);
    EsysPtr<TPM2B_PUBLIC> pub(out_public);
    Esys_Free(creation_data);
    Esys_Free(creation_hash);
    Esys_Free(creation_ticket);
    if (rc != TSS2_RC_SUCCESS) {
      ek = ESYS_TR_NONE;
      return tpmError("CreatePrimary (EK)", rc);
    }
    WARDEN_ASSIGN_OR_RETURN(ek_public, marshal(*pub, Tss2_MU_TPM2B_PUBLIC_Marshal));
    return Status::ok();
  }
};

TpmAttestor::TpmAttestor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TpmAttestor::~TpmAttestor() = default;

Result<std::unique_ptr<TpmAttestor>> TpmAttestor::open(const std::string& tcti, EkKind ek_kind) {
  auto impl = std::make_unique<Impl>();
  impl->ek_kind = ek_kind;
  TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &impl->tcti);
  if (rc != TSS2_RC_SUCCESS) {
    impl->tcti = nullptr;
    return core::failedPrecondition(fmt::format("cannot open the TPM at TCTI '{}': {}", tcti, rcText(rc)));
  }
  rc = Esys_Initialize(&impl->ctx, impl->tcti, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    impl->ctx = nullptr;
    return core::failedPrecondition(fmt::format("cannot talk to the TPM at TCTI '{}': {}", tcti, rcText(rc)));
  }
  return std::unique_ptr<TpmAttestor>(new TpmAttestor(std::move(impl)));
}

Result<uint32_t> TpmAttestor::resetCount() {
  TPMS_TIME_INFO* raw = nullptr;
  const TSS2_RC rc = Esys_ReadClock(impl_->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw);
  EsysPtr<TPMS_TIME_INFO> info(raw);
  if (rc != TSS2_RC_SUCCESS) return tpmError("ReadClock", rc);
  return info->clockInfo.resetCount;
}

Status TpmAttestor::extendPcr(uint32_t pcr, const trust::Digest& digest) {
  if (pcr > 23) return core::invalidArgument("PCR index must be 0 to 23");
  TPML_DIGEST_VALUES values{};
  values.count = 1;
  values.digests[0].hashAlg = TPM2_ALG_SHA256;
  std::memcpy(values.digests[0].digest.sha256, digest.data(), digest.size());
  const TSS2_RC rc =
      Esys_PCR_Extend(impl_->ctx, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &values);
  if (rc != TSS2_RC_SUCCESS) return tpmError(fmt::format("PCR_Extend (PCR {})", pcr), rc);
  return Status::ok();
}

Result<trust::Digest> TpmAttestor::readPcr(uint32_t pcr) {
  if (pcr > 23) return core::invalidArgument("PCR index must be 0 to 23");
  const TPML_PCR_SELECTION sel = sha256Selection(pcr);
  UINT32 update_counter = 0;
  TPML_PCR_SELECTION* out_sel = nullptr;
  TPML_DIGEST* raw = nullptr;
  const TSS2_RC rc =
      Esys_PCR_Read(impl_->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &update_counter, &out_sel, &raw);
  Esys_Free(out_sel);
  EsysPtr<TPML_DIGEST> values(raw);
  if (rc != TSS2_RC_SUCCESS) return tpmError("PCR_Read", rc);
  if (values->count != 1 || values->digests[0].size != 32) {
    return core::failedPrecondition(fmt::format("TPM: PCR {} of the SHA-256 bank is not allocated", pcr));
  }
  trust::Digest out{};
  std::memcpy(out.data(), values->digests[0].buffer, out.size());
  return out;
}

Result<std::string> TpmAttestor::ekPublic() {
  WARDEN_RETURN_IF_ERROR(impl_->ensureEk());
  return impl_->ek_public;
}

Result<std::optional<std::string>> TpmAttestor::ekCertificate() {
  ESYS_TR index = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(impl_->ctx, kEkCertNvIndex, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &index);
  // TPM_RC_HANDLE (for any parameter number): no such index, so no certificate.
  if ((rc & ~static_cast<TSS2_RC>(TPM2_RC_N_MASK)) == TPM2_RC_HANDLE) return std::optional<std::string>();
  if (rc != TSS2_RC_SUCCESS) return tpmError("reading the EK certificate's NV index", rc);
  struct Close {
    ESYS_CONTEXT* ctx;
    ESYS_TR* tr;
    ~Close() { Esys_TR_Close(ctx, tr); }
  } close{impl_->ctx, &index};
  TPM2B_NV_PUBLIC* raw_pub = nullptr;
  TPM2B_NAME* raw_name = nullptr;
  rc = Esys_NV_ReadPublic(impl_->ctx, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw_pub, &raw_name);
  EsysPtr<TPM2B_NV_PUBLIC> nv_pub(raw_pub);
  Esys_Free(raw_name);
  if (rc != TSS2_RC_SUCCESS) return tpmError("NV_ReadPublic (EK certificate)", rc);
  const uint16_t size = nv_pub->nvPublic.dataSize;
  std::string cert;
  // 512 bytes per read is within every TPM's TPM_PT_NV_BUFFER_MAX.
  constexpr uint16_t kChunk = 512;
  while (cert.size() < size) {
    const uint16_t n = static_cast<uint16_t>(std::min<size_t>(kChunk, size - cert.size()));
    TPM2B_MAX_NV_BUFFER* raw = nullptr;
    rc = Esys_NV_Read(impl_->ctx, index, index, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n,
                      static_cast<uint16_t>(cert.size()), &raw);
    EsysPtr<TPM2B_MAX_NV_BUFFER> data(raw);
    if (rc != TSS2_RC_SUCCESS) return tpmError("NV_Read (EK certificate)", rc);
    if (data->size != n) return core::failedPrecondition("TPM: NV_Read returned a short EK certificate chunk");
    cert.append(reinterpret_cast<const char*>(data->buffer), data->size);
  }
  // Some TPMs pad the index; the DER length says where the certificate ends.
  if (cert.size() >= 4 && static_cast<uint8_t>(cert[0]) == 0x30 && static_cast<uint8_t>(cert[1]) == 0x82) {
    const size_t der_len = 4 + (static_cast<size_t>(static_cast<uint8_t>(cert[2])) << 8 | static_cast<uint8_t>(cert[3]));
    if (der_len <= cert.size()) cert.resize(der_len);
  }
  return std::optional<std::string>(std::move(cert));
}

Result<AkBlobs> TpmAttestor::createAk() {
  WARDEN_RETURN_IF_ERROR(impl_->ensureEk());
  Impl::PolicySession session(impl_->ctx);
  WARDEN_RETURN_IF_ERROR(session.start());
  const TPM2B_PUBLIC tmpl = akTemplate();
  const TPM2B_SENSITIVE_CREATE sensitive{};
  const TPM2B_DATA outside{};
  const TPML_PCR_SELECTION creation_pcr{};
  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* creation_ticket = nullptr;
  const TSS2_RC rc = Esys_Create(impl_->ctx, impl_->ek, session.handle(), ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                 &tmpl, &outside, &creation_pcr, &out_private, &out_public, &creation_data,
                                 &creation_hash, &creation_ticket);
  EsysPtr<TPM2B_PRIVATE> priv(out_private);
  EsysPtr<TPM2B_PUBLIC> pub(out_public);
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(creation_ticket);
  if (rc != TSS2_RC_SUCCESS) return tpmError("Create (AK under the EK)", rc);
  AkBlobs out;
  WARDEN_ASSIGN_OR_RETURN(out.public_area, marshal(*pub, Tss2_MU_TPM2B_PUBLIC_Marshal));
  WARDEN_ASSIGN_OR_RETURN(out.private_area, marshal(*priv, Tss2_MU_TPM2B_PRIVATE_Marshal));
  return out;
}

Status TpmAttestor::loadAk(const AkBlobs& ak) {
  WARDEN_ASSIGN_OR_RETURN(TPM2B_PUBLIC pub, unmarshalExact(ak.public_area, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "TPM2B_PUBLIC"));
  WARDEN_ASSIGN_OR_RETURN(TPM2B_PRIVATE priv,
                          unmarshalExact(ak.private_area, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "TPM2B_PRIVATE"));
  WARDEN_RETURN_IF_ERROR(impl_->ensureEk());
  if (impl_->ak != ESYS_TR_NONE) {
    Esys_FlushContext(impl_->ctx, impl_->ak);
    impl_->ak = ESYS_TR_NONE;
  }
  Impl::PolicySession session(impl_->ctx);
  WARDEN_RETURN_IF_ERROR(session.start());
  const TSS2_RC rc =
      Esys_Load(impl_->ctx, impl_->ek, session.handle(), ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &impl_->ak);
  if (rc != TSS2_RC_SUCCESS) {
    impl_->ak = ESYS_TR_NONE;
    return tpmError("Load (AK under the EK; was it made by this TPM?)", rc);
  }
  return Status::ok();
}

Result<std::string> TpmAttestor::activateCredential(std::string_view credential_blob,
                                                    std::string_view encrypted_secret) {
  if (impl_->ak == ESYS_TR_NONE) return core::failedPrecondition("TPM: no AK is loaded");
  WARDEN_ASSIGN_OR_RETURN(TPM2B_ID_OBJECT blob,
                          unmarshalExact(credential_blob, Tss2_MU_TPM2B_ID_OBJECT_Unmarshal, "TPM2B_ID_OBJECT"));
  WARDEN_ASSIGN_OR_RETURN(
      TPM2B_ENCRYPTED_SECRET secret,
      unmarshalExact(encrypted_secret, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal, "TPM2B_ENCRYPTED_SECRET"));
  Impl::PolicySession session(impl_->ctx);
  WARDEN_RETURN_IF_ERROR(session.start());
  TPM2B_DIGEST* raw = nullptr;
  const TSS2_RC rc = Esys_ActivateCredential(impl_->ctx, impl_->ak, impl_->ek, ESYS_TR_PASSWORD, session.handle(),
                                             ESYS_TR_NONE, &blob, &secret, &raw);
  EsysPtr<TPM2B_DIGEST> info(raw);
  if (rc != TSS2_RC_SUCCESS) return tpmError("ActivateCredential", rc);
  std::string out(reinterpret_cast<const char*>(info->buffer), info->size);
  OPENSSL_cleanse(info->buffer, info->size);
  return out;
}

Result<TpmKeyCertify> TpmAttestor::certifyKey(uint32_t parent, std::string_view key_public,
                                             std::string_view key_private, std::string_view nonce) {
  if (impl_->ak == ESYS_TR_NONE) return core::failedPrecondition("TPM: no AK is loaded");
  WARDEN_ASSIGN_OR_RETURN(TPM2B_PUBLIC pub, unmarshalExact(key_public, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "TPM2B_PUBLIC"));
  WARDEN_ASSIGN_OR_RETURN(TPM2B_PRIVATE priv, unmarshalExact(key_private, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "TPM2B_PRIVATE"));
  TPM2B_DATA qualifying{};
  if (nonce.size() > sizeof(qualifying.buffer)) return core::invalidArgument("the nonce is longer than 64 bytes");
  qualifying.size = static_cast<UINT16>(nonce.size());
  std::memcpy(qualifying.buffer, nonce.data(), nonce.size());

  // The EK is needed again only for a registration (ensureEk makes it anew).
  // Without a resource manager the TPM may have room for three loaded
  // objects (the reference implementation), and a persistent parent takes
  // one while the key loads: the EK, the AK, the parent and the key would
  // not fit.
  if (impl_->ek != ESYS_TR_NONE) {
    Esys_FlushContext(impl_->ctx, impl_->ek);
    impl_->ek = ESYS_TR_NONE;
  }
  ESYS_TR parent_tr = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(impl_->ctx, parent, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &parent_tr);
  if (rc != TSS2_RC_SUCCESS) return tpmError(fmt::format("reading the key's parent 0x{:08x}", parent), rc);
  // Closing a persistent handle's ESYS_TR leaves the object in the TPM.
  struct CloseParent {
    ESYS_CONTEXT* ctx;
    ESYS_TR* tr;
    ~CloseParent() { Esys_TR_Close(ctx, tr); }
  } close_parent{impl_->ctx, &parent_tr};
  ESYS_TR key = ESYS_TR_NONE;
  rc = Esys_Load(impl_->ctx, parent_tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &key);
  if (rc != TSS2_RC_SUCCESS) {
    return tpmError(fmt::format("Load (the device key under 0x{:08x}; was it made by this TPM?)", parent), rc);
  }
  struct FlushKey {
    ESYS_CONTEXT* ctx;
    ESYS_TR tr;
    ~FlushKey() { Esys_FlushContext(ctx, tr); }
  } flush_key{impl_->ctx, key};
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;  // the AK's own scheme: ECDSA with SHA-256
  TPM2B_ATTEST* raw_attest = nullptr;
  TPMT_SIGNATURE* raw_sig = nullptr;
  // TPM 2.0 Part 3 §18.2: the object's ADMIN role (its authValue, empty) and
  // the signing key's USER role.
  rc = Esys_Certify(impl_->ctx, key, impl_->ak, ESYS_TR_PASSWORD, ESYS_TR_PASSWORD, ESYS_TR_NONE, &qualifying, &scheme,
                    &raw_attest, &raw_sig);
  EsysPtr<TPM2B_ATTEST> attest(raw_attest);
  EsysPtr<TPMT_SIGNATURE> sig(raw_sig);
  if (rc != TSS2_RC_SUCCESS) return tpmError("Certify (the device key by the AK)", rc);
  TpmKeyCertify out;
  out.attest.assign(reinterpret_cast<const char*>(attest->attestationData), attest->size);
  WARDEN_ASSIGN_OR_RETURN(out.signature, marshal(*sig, Tss2_MU_TPMT_SIGNATURE_Marshal));
  out.key_public = std::string(key_public);
  return out;
}

Result<TpmQuote> TpmAttestor::quote(std::string_view nonce, uint32_t pcr) {
  if (impl_->ak == ESYS_TR_NONE) return core::failedPrecondition("TPM: no AK is loaded");
  if (pcr > 23) return core::invalidArgument("PCR index must be 0 to 23");
  TPM2B_DATA qualifying{};
  if (nonce.size() > sizeof(qualifying.buffer)) return core::invalidArgument("the nonce is longer than 64 bytes");
  qualifying.size = static_cast<UINT16>(nonce.size());
  std::memcpy(qualifying.buffer, nonce.data(), nonce.size());
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;  // the AK's own scheme: ECDSA with SHA-256
  const TPML_PCR_SELECTION sel = sha256Selection(pcr);
  TPM2B_ATTEST* raw_quoted = nullptr;
  TPMT_SIGNATURE* raw_sig = nullptr;
  const TSS2_RC rc = Esys_Quote(impl_->ctx, impl_->ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying,
                                &scheme, &sel, &raw_quoted, &raw_sig);
  EsysPtr<TPM2B_ATTEST> quoted(raw_quoted);
  EsysPtr<TPMT_SIGNATURE> sig(raw_sig);
  if (rc != TSS2_RC_SUCCESS) return tpmError("Quote", rc);
  TpmQuote out;
  out.quote.assign(reinterpret_cast<const char*>(quoted->attestationData), quoted->size);
  WARDEN_ASSIGN_OR_RETURN(out.signature, marshal(*sig, Tss2_MU_TPMT_SIGNATURE_Marshal));
  return out;
}

}  // namespace warden::agent
