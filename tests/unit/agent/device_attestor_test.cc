// The agent's attestation rounds against a real TPM (swtpm) and a verifier
// double built on src/trust: registration by credential activation, quotes,
// measured boot across agent restarts and TPM reboots, software evidence.

#include "agent/device_attestor.h"

#include <sys/stat.h>

#include <fstream>
#include <memory>

#include <gtest/gtest.h>

#include "agent/measured_boot.h"
#include "agent/tpm_attestor.h"
#include "core/file_io.h"
#include "crypto/crypto.h"
#include "trust/tpm_public.h"
#include "unit/testing/temp_dir.h"
#include "trust/evidence.h"
#include "unit/agent/fake_verifier.h"
#include "unit/trust/soft_tpm.h"

namespace warden::agent {
namespace {

using testing::FakeVerifier;

void writeFile(const std::string& path, const std::string& content) { std::ofstream(path, std::ios::binary) << content; }

trust::Digest digestOf(const std::string& content) {
  const std::string raw = crypto::sha256(content);
  trust::Digest d{};
  std::copy(raw.begin(), raw.end(), d.begin());
  return d;
}

mode_t modeOf(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

class DeviceAttestorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tpm_ = std::make_unique<testing::SoftTpm>();
    ASSERT_TRUE(tpm_->ok());
    firmware_ = dir_.file("gateway-fw.bin");
    writeFile(firmware_, "firmware 2.1.0");
  }

  std::unique_ptr<DeviceAttestor> start() {
    auto a = DeviceAttestor::create(dir_.path(), tpm_->tcti(), firmware_);
    EXPECT_TRUE(a.isOk()) << a.status().message();
    return a.isOk() ? std::move(a).value() : nullptr;
  }

  Verdict attest(DeviceAttestor& a) {
    auto v = a.attestOnce(verifier_, DeviceIdentity{});
    EXPECT_TRUE(v.isOk()) << v.status().message();
    if (!v.isOk()) return Verdict{};
    EXPECT_TRUE(v->ok) << verifier_.last_check.reason << ": " << verifier_.last_check.detail;
    return *v;
  }

  testing::TempDir dir_{"warden-agent-attest"};
  std::unique_ptr<testing::SoftTpm> tpm_;
  std::string firmware_;
  FakeVerifier verifier_;
};

TEST_F(DeviceAttestorTest, FirstRoundRegistersTheAkThenQuotes) {
  auto a = start();
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->hasTpm());
  const Verdict v = attest(*a);
  EXPECT_EQ(v.result, "ok");
  EXPECT_EQ(v.state, "healthy");
  EXPECT_EQ(v.trust, 100);
  EXPECT_EQ(v.next_due_s, 60);
  EXPECT_EQ(verifier_.registrations, 1);
  EXPECT_EQ(verifier_.last_evidence["kind"], "tpm2-quote");
  ASSERT_EQ(a->measuredBoot().log().size(), 1u);
  EXPECT_EQ(a->measuredBoot().log()[0].digest, digestOf("firmware 2.1.0"));
  EXPECT_EQ(a->measuredBoot().log()[0].name, "gateway-fw.bin");
  // The AK blobs, the registration record and the log are 0600.
  for (const char* f : {"ak.pub", "ak.priv", "ak.registered", "attestation-log.json"}) {
    EXPECT_EQ(modeOf(dir_.file(f)), 0600u) << f;
  }
  attest(*a);
  EXPECT_EQ(verifier_.registrations, 1);
}

TEST_F(DeviceAttestorTest, ChangedFirmwareIsExtendedAndStaysInTheLog) {
  auto a = start();
  ASSERT_TRUE(a);
  attest(*a);
  writeFile(firmware_, "firmware 2.2.0-rogue");
  attest(*a);
  writeFile(firmware_, "firmware 2.1.0");  // back to the approved image: the rogue one stays measured
  attest(*a);
  const auto& log = a->measuredBoot().log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[1].digest, digestOf("firmware 2.2.0-rogue"));
  EXPECT_EQ(log[2].digest, digestOf("firmware 2.1.0"));
  auto saved = loadMeasurementLog(dir_.file("attestation-log.json"));
  ASSERT_TRUE(saved.isOk() && saved->has_value());
  EXPECT_EQ((*saved)->entries, log);
}

TEST_F(DeviceAttestorTest, RestartWithoutRebootResumesTheLog) {
  auto a = start();
  ASSERT_TRUE(a);
  attest(*a);
  a.reset();
  a = start();
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->measuredBoot().resumed());
  EXPECT_EQ(a->measuredBoot().log().size(), 1u);  // the unchanged image is not measured twice
  attest(*a);
  EXPECT_EQ(verifier_.registrations, 1);  // the same AK, reloaded from A

  // Changed while the agent was down: measured at the next start.
  a.reset();
  writeFile(firmware_, "firmware 2.1.1");
  a = start();
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->measuredBoot().resumed());
  EXPECT_EQ(a->measuredBoot().log().size(), 2u);
  attest(*a);
}

TEST_F(DeviceAttestorTest, RebootStartsANewLog) {
  auto a = start();
  ASSERT_TRUE(a);
  writeFile(firmware_, "firmware 2.2.0");
  attest(*a);
  ASSERT_EQ(a->measuredBoot().log().size(), 2u);
  const uint32_t before = *verifier_.last_reset_count;
  a.reset();
  ASSERT_TRUE(tpm_->reboot());
  a = start();
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->measuredBoot().resumed());
  ASSERT_EQ(a->measuredBoot().log().size(), 1u);
  EXPECT_EQ(a->measuredBoot().log()[0].digest, digestOf("firmware 2.2.0"));
  attest(*a);
  EXPECT_GT(*verifier_.last_reset_count, before);
  EXPECT_EQ(verifier_.registrations, 1);
}

TEST_F(DeviceAttestorTest, CrashBetweenExtendAndSaveIsRepaired) {
  auto a = start();
  ASSERT_TRUE(a);
  a.reset();
  // The agent extended the new image and died before saving the entry.
  writeFile(firmware_, "firmware 2.3.0");
  {
    auto tpm = TpmAttestor::open(tpm_->tcti());
    ASSERT_TRUE(tpm.isOk());
    ASSERT_TRUE((*tpm)->extendPcr(10, digestOf("firmware 2.3.0")).isOk());
  }
  a = start();
  ASSERT_TRUE(a);
  ASSERT_EQ(a->measuredBoot().log().size(), 2u);
  attest(*a);
}

TEST_F(DeviceAttestorTest, ServerThatForgotTheAkGetsItRegisteredAgain) {
  auto a = start();
  ASSERT_TRUE(a);
  attest(*a);
  verifier_.registered_ak.reset();  // challenge says ak_registered: false
  attest(*a);
  EXPECT_EQ(verifier_.registrations, 2);
}

TEST_F(DeviceAttestorTest, EkCertificateIsSentAndChecked) {
  testing::SoftTpm provisioned(/*with_ek_cert=*/true);
  ASSERT_TRUE(provisioned.ok());
  testing::TempDir dir("warden-agent-attest-ek");
  verifier_.ek_ca_pem = provisioned.ekCaPem();
  auto a = DeviceAttestor::create(dir.path(), provisioned.tcti(), "");
  ASSERT_TRUE(a.isOk()) << a.status().message();
  attest(**a);
  EXPECT_TRUE((*a)->measuredBoot().log().empty());
  // This TPM's EK certificate does not chain to another TPM's CA: registration is refused.
  auto other = start();
  ASSERT_TRUE(other);
  verifier_.registered_ak.reset();
  auto refused = other->attestOnce(verifier_, DeviceIdentity{});
  ASSERT_FALSE(refused.isOk());
  EXPECT_NE(refused.status().message().find("403 foreign_tpm"), std::string::npos) << refused.status().message();
}

TEST_F(DeviceAttestorTest, UnloadableAkIsReplaced) {
  auto a = start();
  ASSERT_TRUE(a);
  attest(*a);
  const std::string old_pub = *core::readFile(dir_.file("ak.pub"));
  a.reset();
  // Another TPM now: the AK in A was wrapped to the old EK.
  tpm_ = std::make_unique<testing::SoftTpm>();
  ASSERT_TRUE(tpm_->ok());
  a = start();
  ASSERT_TRUE(a);
  EXPECT_NE(*core::readFile(dir_.file("ak.pub")), old_pub);
  attest(*a);
  EXPECT_EQ(verifier_.registrations, 2);
}

TEST_F(DeviceAttestorTest, HttpErrorsAreStatuses) {
  auto a = start();
  ASSERT_TRUE(a);
  verifier_.fail_with_status = 404;
  auto missing = a->attestOnce(verifier_, DeviceIdentity{});
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), core::ErrorCode::kUnimplemented);
  verifier_.fail_with_status = 400;
  auto refused = a->attestOnce(verifier_, DeviceIdentity{});
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), core::ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("400 nonce_expired: too late"), std::string::npos);
}

TEST_F(DeviceAttestorTest, ChallengeForOtherPcrsIsRefused) {
  auto a = start();
  ASSERT_TRUE(a);
  verifier_.pcrs = {10, 11};
  auto r = a->attestOnce(verifier_, DeviceIdentity{});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("only PCR 10"), std::string::npos) << r.status().message();
}

TEST(SoftwareAttestation, SignedLogRoundVerifies) {
  testing::TempDir dir("warden-agent-sw");
  const std::string fw = dir.file("fw.bin");
  writeFile(fw, "firmware 1.0");
  auto key = std::move(crypto::generateEcKey()).value();
  FakeVerifier verifier;
  verifier.device_key = key.get();
  auto a = DeviceAttestor::create(dir.path(), "", fw);
  ASSERT_TRUE(a.isOk()) << a.status().message();
  EXPECT_FALSE((*a)->hasTpm());
  auto v = (*a)->attestOnce(verifier, DeviceIdentity{key.get(), verifier.spiffe_id, ""});
  ASSERT_TRUE(v.isOk()) << v.status().message();
  EXPECT_TRUE(v->ok) << verifier.last_check.reason;
  EXPECT_EQ(verifier.last_evidence["kind"], "signed-log");
  // Nothing is kept on disk, and each start is a new boot.
  EXPECT_FALSE(core::readFile(dir.file("attestation-log.json")).isOk());
  auto again = DeviceAttestor::create(dir.path(), "", fw);
  ASSERT_TRUE(again.isOk());
  EXPECT_NE((*again)->measuredBoot().bootId(), (*a)->measuredBoot().bootId());
  EXPECT_EQ((*again)->measuredBoot().bootId().size(), 32u);
  // Another device's identity in the payload is caught by the verifier.
  auto foreign = (*a)->attestOnce(verifier, DeviceIdentity{key.get(), "spiffe://example.org/device/other", ""});
  ASSERT_TRUE(foreign.isOk());
  EXPECT_EQ(foreign->reason, "foreign_identity");
  EXPECT_FALSE((*a)->attestOnce(verifier, DeviceIdentity{}).isOk());
}

TEST(SoftwareAttestation, ImageNamesAreKeptPrintable) {
  testing::TempDir dir("warden-agent-sw-name");
  const std::string fw = dir.file("fw-\xff\x01.bin");  // not UTF-8: JSON could not carry it
  writeFile(fw, "firmware 1.0");
  auto a = DeviceAttestor::create(dir.path(), "", fw);
  ASSERT_TRUE(a.isOk()) << a.status().message();
  ASSERT_EQ((*a)->measuredBoot().log().size(), 1u);
  EXPECT_EQ((*a)->measuredBoot().log()[0].name, "fw-__.bin");
  EXPECT_NO_THROW((void)trust::logToJson((*a)->measuredBoot().log()).dump());
}

TEST(MeasurementLogFile, MalformedFileIsDataLoss) {
  testing::TempDir dir("warden-agent-log");
  writeFile(dir.file("log.json"), "{\"reset_count\": -1, \"log\": []}");
  auto r = loadMeasurementLog(dir.file("log.json"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), core::ErrorCode::kDataLoss);
  auto none = loadMeasurementLog(dir.file("absent.json"));
  ASSERT_TRUE(none.isOk());
  EXPECT_FALSE(none->has_value());
}

TEST(MeasureFile, MissingImageIsNotFound) {
  auto r = measureFile("/nonexistent/fw.bin");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), core::ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/fw.bin"), std::string::npos);
}

// A device key made in the TPM (as `enroll --key-store tpm2` does) is
// certified by the AK in every round, and the proof verifies.
TEST_F(DeviceAttestorTest, TpmHeldDeviceKeyIsCertifiedInEveryRound) {
  testing::KeyBlobs key;
  {
    testing::TpmKeys keys(tpm_->tcti());
    ASSERT_TRUE(keys.makeSrk());
    key = keys.makeKey(testing::kDeviceKeyAttributes);
    ASSERT_FALSE(key.key_public.empty());
  }
  auto parsed = trust::internal::parsePublic(key.key_public, "device key");
  ASSERT_TRUE(parsed.isOk());
  auto device_key = trust::internal::publicKeyOf(parsed->area, "device key");
  ASSERT_TRUE(device_key.isOk());
  verifier_.device_key = device_key->get();
  auto a = start();
  ASSERT_TRUE(a);
  const DeviceIdentity identity{nullptr, "", testing::tss2PrivateKeyPem(key)};
  for (int round = 1; round <= 2; ++round) {
    auto v = a->attestOnce(verifier_, identity);
    ASSERT_TRUE(v.isOk()) << v.status().message();
    EXPECT_TRUE(v->ok) << verifier_.last_check.reason << ": " << verifier_.last_check.detail;
    EXPECT_TRUE(verifier_.last_evidence.contains("key_certify"));
    EXPECT_EQ(verifier_.keys_certified, round);
  }
  // A blob the TPM cannot load: the round goes on without the proof.
  testing::KeyBlobs broken = key;
  broken.key_private[5] ^= 0x01;
  auto v = a->attestOnce(verifier_, DeviceIdentity{nullptr, "", testing::tss2PrivateKeyPem(broken)});
  ASSERT_TRUE(v.isOk()) << v.status().message();
  EXPECT_TRUE(v->ok);
  EXPECT_FALSE(verifier_.last_evidence.contains("key_certify"));
}

// Without a TPM key (file or PKCS#11 key store) nothing is certified.
TEST_F(DeviceAttestorTest, FileKeyIsNotCertified) {
  auto a = start();
  ASSERT_TRUE(a);
  attest(*a);
  EXPECT_FALSE(verifier_.last_evidence.contains("key_certify"));
}

}  // namespace
}  // namespace warden::agent
