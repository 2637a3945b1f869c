// attest_bench: attestation verifications per second (issue 6), against a
// baseline measured in the same run: one raw ECDSA P-256 verification with
// OpenSSL, which every quote and every signed log costs at least once.
//
// The quotes are built here in software with libtss2-mu, byte for byte what a
// TPM 2.0 returns from TPM2_Quote (TPMS_ATTEST + TPMT_SIGNATURE, AK
// restricted ECC P-256 / ECDSA-SHA256), so the verifier cannot tell them from
// swtpm's; the end-to-end tests use real swtpm quotes. Run:
//   build-bench/bench/attest_bench --benchmark_min_time=1

#include <benchmark/benchmark.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/crypto.h"
#include "crypto/openssl_ptr.h"
#include "trust/evidence.h"
#include "trust/quote.h"

namespace {

using warden::trust::Digest;
using warden::trust::Measurement;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(what);
}

std::string sha256(std::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<char*>(out), sizeof(out));
}

// SoftAk is an ECDSA P-256 key dressed as a TPM attestation key.
struct SoftAk {
  warden::crypto::EvpPkeyPtr key;
  std::string tpm2b_public;  // marshalled TPM2B_PUBLIC

  SoftAk() {
    key.reset(EVP_EC_gen("P-256"));
    check(key != nullptr, "EVP_EC_gen");
    BIGNUM* x = nullptr;
    BIGNUM* y = nullptr;
    check(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1, "pub x");
    check(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1, "pub y");
    TPM2B_PUBLIC pub{};
    TPMT_PUBLIC& t = pub.publicArea;
    t.type = TPM2_ALG_ECC;
    t.nameAlg = TPM2_ALG_SHA256;
    t.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
                         TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH;
    t.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    t.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    t.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    t.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    t.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    t.unique.ecc.x.size = 32;
    t.unique.ecc.y.size = 32;
    check(BN_bn2binpad(x, t.unique.ecc.x.buffer, 32) == 32, "x");
    check(BN_bn2binpad(y, t.unique.ecc.y.buffer, 32) == 32, "y");
    BN_free(x);
    BN_free(y);
    uint8_t buf[sizeof(TPM2B_PUBLIC)];
    size_t off = 0;
    check(Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off) == TSS2_RC_SUCCESS, "marshal public");
    tpm2b_public.assign(reinterpret_cast<char*>(buf), off);
  }

  std::string signDer(std::string_view data) const {
    warden::crypto::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    check(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1, "sign init");
    size_t n = 0;
    check(EVP_DigestSign(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1,
          "sign size");
    std::string sig(n, '\0');
    check(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &n,
                         reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1,
          "sign");
    sig.resize(n);
    return sig;
  }

  // quote returns the marshalled TPMS_ATTEST and TPMT_SIGNATURE of a quote
  // over SHA-256 {PCR 10} = |pcr10| with |nonce| as qualifyingData.
  std::pair<std::string, std::string> quote(std::string_view nonce, const Digest& pcr10, uint32_t reset_count) const {
    TPMS_ATTEST a{};
    a.magic = TPM2_GENERATED_VALUE;
    a.type = TPM2_ST_ATTEST_QUOTE;
    a.qualifiedSigner.size = 34;
    a.extraData.size = static_cast<UINT16>(nonce.size());
    std::memcpy(a.extraData.buffer, nonce.data(), nonce.size());
    a.clockInfo.clock = 123456;
    a.clockInfo.resetCount = reset_count;
    a.clockInfo.restartCount = 0;
    a.clockInfo.safe = TPM2_YES;
    a.firmwareVersion = 0x2020;
    TPMS_QUOTE_INFO& q = a.attested.quote;
    q.pcrSelect.count = 1;
    q.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA256;
    q.pcrSelect.pcrSelections[0].sizeofSelect = 3;
    q.pcrSelect.pcrSelections[0].pcrSelect[1] = 1 << (10 - 8);
    const std::string digest = sha256(std::string_view(reinterpret_cast<const char*>(pcr10.data()), pcr10.size()));
    q.pcrDigest.size = 32;
    std::memcpy(q.pcrDigest.buffer, digest.data(), 32);
    uint8_t buf[sizeof(TPMS_ATTEST)];
    size_t off = 0;
    check(Tss2_MU_TPMS_ATTEST_Marshal(&a, buf, sizeof(buf), &off) == TSS2_RC_SUCCESS, "marshal attest");
    std::string attest(reinterpret_cast<char*>(buf), off);

    const std::string der = signDer(attest);
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    check(es != nullptr, "d2i_ECDSA_SIG");
    TPMT_SIGNATURE sig{};
    sig.sigAlg = TPM2_ALG_ECDSA;
    sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
    sig.signature.ecdsa.signatureR.size = 32;
    sig.signature.ecdsa.signatureS.size = 32;
    check(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig.signature.ecdsa.signatureR.buffer, 32) == 32, "r");
    check(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig.signature.ecdsa.signatureS.buffer, 32) == 32, "s");
    ECDSA_SIG_free(es);
    uint8_t sbuf[sizeof(TPMT_SIGNATURE)];
    size_t soff = 0;
    check(Tss2_MU_TPMT_SIGNATURE_Marshal(&sig, sbuf, sizeof(sbuf), &soff) == TSS2_RC_SUCCESS, "marshal signature");
    return {attest, std::string(reinterpret_cast<char*>(sbuf), soff)};
  }
};

std::vector<Measurement> firmwareLog(size_t n) {
  std::vector<Measurement> log;
  for (size_t i = 0; i < n; ++i) {
    Measurement m;
    const std::string d = sha256("firmware image " + std::to_string(i));
    std::memcpy(m.digest.data(), d.data(), 32);
    m.name = "fw-" + std::to_string(i) + ".bin";
    log.push_back(m);
  }
  return log;
}

// Baseline: one ECDSA P-256 / SHA-256 verification of a quote-sized message.
void BM_EcdsaP256VerifyBaseline(benchmark::State& state) {
  SoftAk ak;
  const std::string msg(145, 'q');
  const std::string sig = ak.signDer(msg);
  for (auto _ : state) {
    warden::crypto::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, ak.key.get());
    int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                              reinterpret_cast<const unsigned char*>(msg.data()), msg.size());
    if (ok != 1) state.SkipWithError("baseline verification failed");
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EcdsaP256VerifyBaseline);

// A TPM quote: parse, every check of docs/attestation.md, PCR replay of a
// log of state.range(0) measurements, ECDSA verification by the AK.
void BM_VerifyTpmQuote(benchmark::State& state) {
  SoftAk ak;
  warden::trust::Evidence ev;
  ev.kind = warden::trust::EvidenceKind::kTpm2Quote;
  ev.log = firmwareLog(static_cast<size_t>(state.range(0)));
  const std::string nonce = warden::crypto::randomBytes(32);
  ev.nonce = warden::crypto::base64UrlEncode(nonce);
  auto [attest, sig] = ak.quote(nonce, warden::trust::replayPcr(ev.log, 10), 5);
  ev.quote = attest;
  ev.signature = sig;
  warden::trust::QuoteExpectation expect;
  expect.nonce = nonce;
  expect.pcr = 10;
  expect.ak_public = ak.tpm2b_public;
  expect.min_reset_count = 5;
  for (auto _ : state) {
    warden::trust::QuoteResult r = warden::trust::verifyQuote(ev, expect);
    if (!r.check.ok) state.SkipWithError(("quote rejected: " + r.check.reason + " " + r.check.detail).c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyTpmQuote)->Arg(1)->Arg(16);

// A signed log: payload checks and the device key's ECDSA verification.
void BM_VerifySignedLog(benchmark::State& state) {
  SoftAk device;  // any P-256 key: the device key
  const std::string nonce = warden::crypto::base64UrlEncode(warden::crypto::randomBytes(32));
  const std::string spiffe = "spiffe://warden.local/device/bench-1";
  nlohmann::json payload = {{"nonce", nonce}, {"spiffe_id", spiffe}, {"boot_id", std::string(32, 'a')},
                            {"log", warden::trust::logToJson(firmwareLog(static_cast<size_t>(state.range(0))))}};
  const std::string payload_text = payload.dump();
  nlohmann::json body = {{"nonce", nonce},
                         {"kind", "signed-log"},
                         {"payload", warden::crypto::base64Encode(payload_text)},
                         {"signature", warden::crypto::base64Encode(device.signDer(payload_text))}};
  auto ev = warden::trust::parseEvidence(body.dump());
  if (!ev.isOk()) {
    state.SkipWithError(ev.status().message().c_str());
    return;
  }
  for (auto _ : state) {
    warden::trust::Check c = warden::trust::verifySignedLog(*ev, nonce, spiffe, device.key.get());
    if (!c.ok) state.SkipWithError(("signed log rejected: " + c.reason).c_str());
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifySignedLog)->Arg(1)->Arg(16);

// Parsing the evidence body (JSON, base64, limits) of a quote with a log of
// state.range(0) measurements: what the API does before any check.
void BM_ParseQuoteEvidence(benchmark::State& state) {
  SoftAk ak;
  const std::string nonce = warden::crypto::randomBytes(32);
  const auto log = firmwareLog(static_cast<size_t>(state.range(0)));
  auto [attest, sig] = ak.quote(nonce, warden::trust::replayPcr(log, 10), 1);
  const std::string body = nlohmann::json{{"nonce", warden::crypto::base64UrlEncode(nonce)},
                                          {"kind", "tpm2-quote"},
                                          {"quote", warden::crypto::base64Encode(attest)},
                                          {"signature", warden::crypto::base64Encode(sig)},
                                          {"log", warden::trust::logToJson(log)}}
                               .dump();
  for (auto _ : state) {
    auto ev = warden::trust::parseEvidence(body);
    if (!ev.isOk()) state.SkipWithError(ev.status().message().c_str());
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseQuoteEvidence)->Arg(1)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
