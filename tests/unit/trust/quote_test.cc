// Quotes made by a real TPM (swtpm) through the agent's ESAPI code, judged
// by verifyQuote; every failure reason comes from a real tampering.

#include "trust/quote.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <tss2/tss2_mu.h>

#include "agent/tpm_attestor.h"
#include "crypto/crypto.h"
#include "trust/credential.h"
#include "unit/trust/soft_tpm.h"

namespace warden::trust {
namespace {

using agent::AkBlobs;
using agent::TpmAttestor;
using agent::TpmQuote;
using nlohmann::json;

Measurement measure(std::string_view image, std::string name) {
  const std::string raw = crypto::sha256(image);
  Measurement m;
  std::copy(raw.begin(), raw.end(), m.digest.begin());
  m.name = std::move(name);
  return m;
}

// Evidence as the agent sends it, through the real parser.
Evidence evidenceOf(const std::string& nonce, const TpmQuote& q, const std::vector<Measurement>& log) {
  const json body = {{"nonce", crypto::base64UrlEncode(nonce)},
                     {"kind", "tpm2-quote"},
                     {"quote", crypto::base64Encode(q.quote)},
                     {"signature", crypto::base64Encode(q.signature)},
                     {"log", logToJson(log)}};
  auto ev = parseEvidence(body.dump());
  EXPECT_TRUE(ev.isOk()) << ev.status().message();
  return ev.isOk() ? std::move(ev).value() : Evidence{};
}

class QuoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tpm_ = std::make_unique<testing::SoftTpm>();
    ASSERT_TRUE(tpm_->ok());
    auto attestor = TpmAttestor::open(tpm_->tcti());
    ASSERT_TRUE(attestor.isOk()) << attestor.status().message();
    attestor_ = std::move(attestor).value();
    auto ak = attestor_->createAk();
    ASSERT_TRUE(ak.isOk()) << ak.status().message();
    ak_ = *ak;
    ASSERT_TRUE(attestor_->loadAk(ak_).isOk());
    log_ = {measure("bootloader", "boot.bin"), measure("firmware 2.1.0", "fw-2.1.0.bin")};
    for (const auto& m : log_) ASSERT_TRUE(attestor_->extendPcr(10, m.digest).isOk());
    nonce_ = crypto::randomBytes(32);
  }

  TpmQuote quote(uint32_t pcr = 10) {
    auto q = attestor_->quote(nonce_, pcr);
    EXPECT_TRUE(q.isOk()) << q.status().message();
    return q.isOk() ? *q : TpmQuote{};
  }

  QuoteExpectation expectation() const {
    QuoteExpectation e;
    e.nonce = nonce_;
    e.ak_public = ak_.public_area;
    return e;
  }

  std::unique_ptr<testing::SoftTpm> tpm_;
  std::unique_ptr<TpmAttestor> attestor_;
  AkBlobs ak_;
  std::vector<Measurement> log_;
  std::string nonce_;
};

TEST_F(QuoteTest, ExtendedPcrEqualsTheReplayedLog) {
  auto pcr = attestor_->readPcr(10);
  ASSERT_TRUE(pcr.isOk()) << pcr.status().message();
  EXPECT_EQ(*pcr, replayPcr(log_));
}

TEST_F(QuoteTest, GenuineQuoteVerifies) {
  auto reset = attestor_->resetCount();
  ASSERT_TRUE(reset.isOk());
  QuoteExpectation e = expectation();
  e.min_reset_count = *reset;
  const QuoteResult r = verifyQuote(evidenceOf(nonce_, quote(), log_), e);
  EXPECT_TRUE(r.check.ok) << r.check.reason << ": " << r.check.detail;
  EXPECT_EQ(r.reset_count, *reset);
  EXPECT_GT(r.clock, 0u);
}

TEST_F(QuoteTest, EmptyLogQuoteVerifiesOnAFreshPcr) {
  ASSERT_TRUE(tpm_->reboot());
  auto attestor = TpmAttestor::open(tpm_->tcti());
  ASSERT_TRUE(attestor.isOk());
  ASSERT_TRUE((*attestor)->loadAk(ak_).isOk());
  auto q = (*attestor)->quote(nonce_);
  ASSERT_TRUE(q.isOk()) << q.status().message();
  EXPECT_TRUE(verifyQuote(evidenceOf(nonce_, *q, {}), expectation()).check.ok);
  // The pre-reboot log no longer replays.
  EXPECT_EQ(verifyQuote(evidenceOf(nonce_, *q, log_), expectation()).check.reason, kReasonPcrMismatch);
}

TEST_F(QuoteTest, QuoteForAnotherNonceIsNonceMismatch) {
  const TpmQuote q = quote();
  QuoteExpectation e = expectation();
  e.nonce = crypto::randomBytes(32);
  EXPECT_EQ(verifyQuote(evidenceOf(nonce_, q, log_), e).check.reason, kReasonNonceMismatch);
}

TEST_F(QuoteTest, QuoteByAnotherAkOfTheSameTpmIsBadSignature) {
  auto other = attestor_->createAk();
  ASSERT_TRUE(other.isOk());
  const TpmQuote q = quote();
  QuoteExpectation e = expectation();
  e.ak_public = other->public_area;
  EXPECT_EQ(verifyQuote(evidenceOf(nonce_, q, log_), e).check.reason, kReasonBadSignature);
}

TEST_F(QuoteTest, QuoteByAnotherTpmIsBadSignature) {
  testing::SoftTpm other_tpm;
  ASSERT_TRUE(other_tpm.ok());
  auto other = TpmAttestor::open(other_tpm.tcti());
  ASSERT_TRUE(other.isOk());
  // The same measurements, a genuine quote with the right nonce, by an AK
  // that is not the one registered for this device.
  for (const auto& m : log_) ASSERT_TRUE((*other)->extendPcr(10, m.digest).isOk());
  auto other_ak = (*other)->createAk();
  ASSERT_TRUE(other_ak.isOk());
  ASSERT_TRUE((*other)->loadAk(*other_ak).isOk());
  auto q = (*other)->quote(nonce_);
  ASSERT_TRUE(q.isOk());
  EXPECT_EQ(verifyQuote(evidenceOf(nonce_, *q, log_), expectation()).check.reason, kReasonBadSignature);
  // This TPM cannot load the other TPM's AK (it is wrapped to another EK).
  EXPECT_FALSE(attestor_->loadAk(*other_ak).isOk());
}

TEST_F(QuoteTest, ChangedLogIsPcrMismatch) {
  const TpmQuote q = quote();
  auto swapped = log_;
  swapped[1] = measure("firmware 2.0.9", "fw-2.1.0.bin");  // an approved name, another image
  EXPECT_EQ(verifyQuote(evidenceOf(nonce_, q, swapped), expectation()).check.reason, kReasonPcrMismatch);
  auto shortened = log_;
  shortened.pop_back();
  EXPECT_EQ(verifyQuote(evidenceOf(nonce_, q, shortened), expectation()).check.reason, kReasonPcrMismatch);
  auto reordered = log_;
  std::swap(reordered[0], reordered[1]);
  EXPECT_EQ(verifyQuote(evidenceOf(nonce_, q, reordered), expectation()).check.reason, kReasonPcrMismatch);
}

TEST_F(QuoteTest, QuoteOfAnotherPcrIsPcrMismatch) {
  // PCR 11 holds the same value as PCR 10 would with an empty log... but the
  // verifier asked for PCR 10 and accepts no other selection.
  const TpmQuote q = quote(11);
  const QuoteResult r = verifyQuote(evidenceOf(nonce_, q, {}), expectation());
  EXPECT_EQ(r.check.reason, kReasonPcrMismatch);
  EXPECT_NE(r.check.detail.find("select"), std::string::npos);
}

TEST_F(QuoteTest, LoweredResetCountIsRegressed) {
  auto before = attestor_->resetCount();
  ASSERT_TRUE(before.isOk());
  attestor_.reset();
  ASSERT_TRUE(tpm_->reboot());
  auto attestor = TpmAttestor::open(tpm_->tcti());
  ASSERT_TRUE(attestor.isOk());
  ASSERT_TRUE((*attestor)->loadAk(ak_).isOk());
  auto after = (*attestor)->resetCount();
  ASSERT_TRUE(after.isOk());
  ASSERT_GT(*after, *before);
  auto q = (*attestor)->quote(nonce_);
  ASSERT_TRUE(q.isOk());
  const Evidence ev = evidenceOf(nonce_, *q, {});
  QuoteExpectation e = expectation();
  e.min_reset_count = *before;  // a reboot since the last accepted quote: fine
  EXPECT_TRUE(verifyQuote(ev, e).check.ok);
  e.min_reset_count = *after + 1;  // the verifier has seen a later boot: this TPM state went back
  const QuoteResult r = verifyQuote(ev, e);
  EXPECT_EQ(r.check.reason, kReasonResetCountRegressed);
  EXPECT_EQ(r.reset_count, *after);
}

TEST_F(QuoteTest, FlippedBytesAreBadSignatureOrBadQuote) {
  const TpmQuote q = quote();
  const Evidence good = evidenceOf(nonce_, q, log_);
  ASSERT_TRUE(verifyQuote(good, expectation()).check.ok);
  // Any byte of the signed structure after its header: the signature breaks.
  for (size_t i = 6; i < good.quote.size(); ++i) {
    Evidence ev = good;
    ev.quote[i] = static_cast<char>(ev.quote[i] ^ 0x01);
    const QuoteResult r = verifyQuote(ev, expectation());
    EXPECT_FALSE(r.check.ok) << "byte " << i;
    EXPECT_TRUE(r.check.reason == kReasonBadSignature || r.check.reason == kReasonBadQuote)
        << "byte " << i << ": " << r.check.reason;
  }
  Evidence magic = good;
  magic.quote[0] = static_cast<char>(magic.quote[0] ^ 0x01);
  EXPECT_EQ(verifyQuote(magic, expectation()).check.reason, kReasonBadQuote);
  Evidence type = good;
  type.quote[5] = static_cast<char>(type.quote[5] ^ 0x01);
  EXPECT_EQ(verifyQuote(type, expectation()).check.reason, kReasonBadQuote);
  Evidence trailing = good;
  trailing.quote.push_back('\0');
  EXPECT_EQ(verifyQuote(trailing, expectation()).check.reason, kReasonBadQuote);
  Evidence truncated = good;
  truncated.quote.pop_back();
  EXPECT_EQ(verifyQuote(truncated, expectation()).check.reason, kReasonBadQuote);
  for (size_t i = 0; i < good.signature.size(); ++i) {
    Evidence ev = good;
    ev.signature[i] = static_cast<char>(ev.signature[i] ^ 0x01);
    EXPECT_EQ(verifyQuote(ev, expectation()).check.reason, kReasonBadSignature) << "signature byte " << i;
  }
}

TEST_F(QuoteTest, UnusableRegisteredAkIsBadSignature) {
  const Evidence ev = evidenceOf(nonce_, quote(), log_);
  QuoteExpectation e = expectation();
  e.ak_public = "";
  EXPECT_EQ(verifyQuote(ev, e).check.reason, kReasonBadSignature);
  auto ek = attestor_->ekPublic();
  ASSERT_TRUE(ek.isOk());
  e.ak_public = *ek;  // a decryption key is no AK
  EXPECT_EQ(verifyQuote(ev, e).check.reason, kReasonBadSignature);
}

TEST_F(QuoteTest, SignedLogEvidenceIsNotAQuote) {
  Evidence ev = evidenceOf(nonce_, quote(), log_);
  ev.kind = EvidenceKind::kSignedLog;
  EXPECT_EQ(verifyQuote(ev, expectation()).check.reason, kReasonBadQuote);
}

}  // namespace
}  // namespace warden::trust
