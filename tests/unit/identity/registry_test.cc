#include "identity/registry.h"

#include <chrono>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "core/clock.h"
#include "crypto/crypto.h"
#include "store/sqlite_store.h"
#include "unit/testing/temp_dir.h"

namespace warden::identity {
namespace {

using core::ErrorCode;
using namespace std::chrono_literals;

constexpr int64_t kStart = 1'800'000'000;

class TempDir : public warden::testing::TempDir {
 public:
  TempDir() : warden::testing::TempDir("warden-registry") {}
};

// TestIssuer is a minimal self-contained CA (the real one is pki::issueLeaf):
// random 16-byte serial, 24 h life, signed with its own P-256 key.
class TestIssuer {
 public:
  TestIssuer() : key_(std::move(crypto::generateEcKey()).value()) {}

  LeafIssuer issuer(const core::Clock& clock) {
    return [this, &clock](EVP_PKEY* subject, const std::string& name) -> core::Result<IssuedLeaf> {
      ++calls;
      crypto::X509Ptr x(X509_new());
      X509_set_version(x.get(), 2);
      std::string serial = fixed_serial.empty() ? crypto::hexEncode(crypto::randomBytes(16)) : fixed_serial;
      if (!fixed_serial.empty() && !reuse_fixed_forever) fixed_serial.clear();
      serial[0] = '1';  // positive, no leading zero
      BIGNUM* bn = nullptr;
      BN_hex2bn(&bn, serial.c_str());
      BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
      BN_free(bn);
      const int64_t now = core::unixSeconds(clock.now());
      ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(now - 300));
      ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(now + 86400));
      X509_NAME* subj = X509_get_subject_name(x.get());
      X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1,
                                 -1, 0);
      X509_set_issuer_name(x.get(), subj);
      X509_set_pubkey(x.get(), subject);
      if (X509_sign(x.get(), key_.get(), EVP_sha256()) == 0) return core::internalError("sign failed");
      return IssuedLeaf{std::move(x), ca_name};
    };
  }

  int calls = 0;
  std::string ca_name;  // reported as the signer's inventory name
  std::string fixed_serial;
  bool reuse_fixed_forever = false;

 private:
  crypto::EvpPkeyPtr key_;
};

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::SqliteStore::open(dir_.file("warden.db"), clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
    registry_ = std::make_unique<Registry>(*store_, clock_);
  }

  crypto::EvpPkeyPtr newKey() { return std::move(crypto::generateEcKey()).value(); }

  NewDevice add(const std::string& name, const std::string& role = "sensor") {
    auto d = registry_->addDevice(name, role, {{"site", "berlin"}});
    EXPECT_TRUE(d.isOk()) << d.status().toString();
    return d.isOk() ? std::move(d).value() : NewDevice{};
  }

  IssuedCert enrolled(const std::string& name) {
    NewDevice d = add(name);
    auto key = newKey();
    auto c = registry_->enroll(name, d.token, key.get(), ca_.issuer(clock_));
    EXPECT_TRUE(c.isOk()) << c.status().toString();
    return c.isOk() ? std::move(c).value() : IssuedCert{};
  }

  TempDir dir_;
  core::ManualClock clock_{core::fromUnixSeconds(kStart)};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Registry> registry_;
  TestIssuer ca_;
};

TEST_F(RegistryTest, AddDeviceReturnsA128BitTokenStoredOnlyAsHash) {
  auto d = registry_->addDevice("temp-1", "sensor", {{"line", "a1"}});
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(d->token.size(), 22u);  // 16 bytes base64url, no padding
  EXPECT_EQ(d->token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  EXPECT_EQ(d->token_expires_at, kStart + 24 * 3600);
  EXPECT_EQ(d->record.state, store::DeviceState::kPending);
  EXPECT_EQ(store_->getDevice("temp-1")->state, store::DeviceState::kPending);
  EXPECT_TRUE(store_->checkToken("temp-1", hashToken(d->token)).isOk());
  EXPECT_EQ(store_->checkToken("temp-1", d->token).message(), "token_mismatch");  // the raw token is not stored
  EXPECT_EQ(hashToken("abc"), crypto::sha256Hex("abc"));
}

TEST_F(RegistryTest, TokensAreDistinct) {
  EXPECT_NE(add("a").token, add("b").token);
}

TEST_F(RegistryTest, AddDeviceValidates) {
  EXPECT_EQ(registry_->addDevice("Bad", "sensor", {}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(registry_->addDevice("ok", "Bad Role", {}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(registry_->addDevice("ok", "sensor", {{"Bad Key", "v"}}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(registry_->addDevice("ok", "sensor", {{"k", "bad value"}}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(registry_->addDevice("ok", "sensor", {}, core::Seconds(31 * 24 * 3600)).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(registry_->addDevice("ok", "sensor", {}, core::Seconds(0)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(registry_->addDevice("ok", "sensor", {}, kMaxTokenTtl).isOk());
  EXPECT_EQ(store_->listDevices()->size(), 1u);
}

TEST_F(RegistryTest, NamesAreNeverReusedEvenAfterRevocation) {
  add("d1");
  ASSERT_TRUE(registry_->revoke("d1").isOk());
  auto again = registry_->addDevice("d1", "sensor", {});
  EXPECT_EQ(again.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("never reused"), std::string::npos);
}

TEST_F(RegistryTest, EnrollActivatesAndRecordsCertificate) {
  NewDevice d = add("d1");
  auto key = newKey();
  auto c = registry_->enroll("d1", d.token, key.get(), ca_.issuer(clock_));
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->record.device, "d1");
  EXPECT_EQ(c->record.kind, "device");
  EXPECT_EQ(c->record.pubkey_fp, crypto::publicKeyFingerprint(key.get()));
  EXPECT_EQ(c->record.not_after, kStart + 86400);
  EXPECT_EQ(c->record.serial_hex, crypto::serialHex(c->cert.get()));
  EXPECT_EQ(store_->getDevice("d1")->state, store::DeviceState::kActive);
  EXPECT_EQ(store_->findCert(c->record.serial_hex)->pem, crypto::certToPem(c->cert.get()));
  EXPECT_EQ(store_->findCert(c->record.serial_hex)->issuer, "");  // a signer outside any inventory
}

TEST_F(RegistryTest, EnrollRecordsTheSignersInventoryName) {
  NewDevice d = add("d1");
  auto key = newKey();
  ca_.ca_name = "issuing-7";
  auto c = registry_->enroll("d1", d.token, key.get(), ca_.issuer(clock_));
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->record.issuer, "issuing-7");
  EXPECT_EQ(store_->findCert(c->record.serial_hex)->issuer, "issuing-7");
}

TEST_F(RegistryTest, TokenIsSingleUse) {
  NewDevice d = add("d1");
  auto k1 = newKey();
  ASSERT_TRUE(registry_->enroll("d1", d.token, k1.get(), ca_.issuer(clock_)).isOk());
  auto k2 = newKey();
  auto again = registry_->enroll("d1", d.token, k2.get(), ca_.issuer(clock_));
  EXPECT_EQ(again.status().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(again.status().message(), "token_used");
  EXPECT_EQ(store_->listCerts("d1")->size(), 1u);
}

TEST_F(RegistryTest, BadTokenNeverCostsASignature) {
  add("d1");
  auto key = newKey();
  for (std::string bad : {std::string("wrong"), std::string(), std::string(5000, 'x')}) {
    auto r = registry_->enroll("d1", bad, key.get(), ca_.issuer(clock_));
    EXPECT_EQ(r.status().code(), ErrorCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), "token_mismatch");
  }
  EXPECT_EQ(registry_->enroll("ghost", "x", key.get(), ca_.issuer(clock_)).status().message(), "unknown_device");
  EXPECT_EQ(ca_.calls, 0);
  EXPECT_EQ(store_->getDevice("d1")->state, store::DeviceState::kPending);
}

TEST_F(RegistryTest, TokenExpires) {
  auto d = registry_->addDevice("d1", "sensor", {}, core::Seconds(600));
  ASSERT_TRUE(d.isOk());
  clock_.advance(601s);
  auto key = newKey();
  auto r = registry_->enroll("d1", d->token, key.get(), ca_.issuer(clock_));
  EXPECT_EQ(r.status().message(), "token_expired");
}

TEST_F(RegistryTest, NewTokenInvalidatesTheOldOne) {
  NewDevice d = add("d1");
  auto t2 = registry_->newToken("d1", core::Seconds(3600));
  ASSERT_TRUE(t2.isOk());
  EXPECT_EQ(t2->expires_at, kStart + 3600);
  auto key = newKey();
  EXPECT_EQ(registry_->enroll("d1", d.token, key.get(), ca_.issuer(clock_)).status().message(), "token_mismatch");
  EXPECT_TRUE(registry_->enroll("d1", t2->token, key.get(), ca_.issuer(clock_)).isOk());
  EXPECT_EQ(registry_->newToken("ghost").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(registry_->newToken("d1", core::Seconds(-1)).status().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(registry_->revoke("d1").isOk());
  EXPECT_EQ(registry_->newToken("d1").status().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(RegistryTest, KeyCertifiedToAnotherDeviceIsRefused) {
  NewDevice a = add("a");
  NewDevice b = add("b");
  auto key = newKey();
  ASSERT_TRUE(registry_->enroll("a", a.token, key.get(), ca_.issuer(clock_)).isOk());
  auto r = registry_->enroll("b", b.token, key.get(), ca_.issuer(clock_));
  EXPECT_EQ(r.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(r.status().message(), "key_reuse");
  EXPECT_EQ(store_->getDevice("b")->state, store::DeviceState::kPending);
  EXPECT_TRUE(store_->checkToken("b", hashToken(b.token)).isOk());  // not consumed
}

TEST_F(RegistryTest, SerialCollisionIsRetried) {
  IssuedCert first = enrolled("a");
  NewDevice b = add("b");
  ca_.fixed_serial = first.record.serial_hex;  // next issue collides once
  auto key = newKey();
  auto r = registry_->enroll("b", b.token, key.get(), ca_.issuer(clock_));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_NE(r->record.serial_hex, first.record.serial_hex);
}

TEST_F(RegistryTest, PersistentSerialCollisionGivesUp) {
  IssuedCert first = enrolled("a");
  NewDevice b = add("b");
  ca_.fixed_serial = first.record.serial_hex;
  ca_.reuse_fixed_forever = true;
  auto key = newKey();
  auto r = registry_->enroll("b", b.token, key.get(), ca_.issuer(clock_));
  EXPECT_EQ(r.status().message(), "serial_collision");
  EXPECT_TRUE(store_->checkToken("b", hashToken(b.token)).isOk());
}

TEST_F(RegistryTest, IssuerFailureLeavesTokenUnused) {
  NewDevice d = add("d1");
  auto key = newKey();
  LeafIssuer failing = [](EVP_PKEY*, const std::string&) -> core::Result<IssuedLeaf> {
    return core::internalError("CA unavailable");
  };
  EXPECT_EQ(registry_->enroll("d1", d.token, key.get(), failing).status().code(), ErrorCode::kInternal);
  EXPECT_TRUE(store_->checkToken("d1", hashToken(d.token)).isOk());
}

TEST_F(RegistryTest, RenewIssuesANewCertificate) {
  IssuedCert c1 = enrolled("d1");
  auto key = newKey();
  auto c2 = registry_->renew("d1", c1.record.serial_hex, key.get(), ca_.issuer(clock_));
  ASSERT_TRUE(c2.isOk()) << c2.status().toString();
  EXPECT_NE(c2->record.serial_hex, c1.record.serial_hex);
  EXPECT_EQ(store_->listCerts("d1")->size(), 2u);
  EXPECT_EQ(registry_->renew("d1", "ffff", key.get(), ca_.issuer(clock_)).status().message(), "unknown_serial");
}

TEST_F(RegistryTest, RevokeIsIdempotentAndRevokesAllCerts) {
  IssuedCert c1 = enrolled("d1");
  auto key = newKey();
  ASSERT_TRUE(registry_->renew("d1", c1.record.serial_hex, key.get(), ca_.issuer(clock_)).isOk());
  auto r1 = registry_->revoke("d1");
  ASSERT_TRUE(r1.isOk());
  EXPECT_TRUE(*r1);
  auto r2 = registry_->revoke("d1");
  ASSERT_TRUE(r2.isOk());
  EXPECT_FALSE(*r2);
  auto certs = store_->listCerts("d1");
  ASSERT_TRUE(certs.isOk());
  ASSERT_EQ(certs->size(), 2u);
  for (const auto& c : *certs) EXPECT_TRUE(c.revoked);
  EXPECT_EQ(registry_->revoke("ghost").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(registry_->renew("d1", c1.record.serial_hex, key.get(), ca_.issuer(clock_)).status().message(),
            "device_revoked");
}

TEST_F(RegistryTest, RevokePendingDeviceDeletesItsToken) {
  NewDevice d = add("d1");
  ASSERT_TRUE(*registry_->revoke("d1"));
  auto key = newKey();
  EXPECT_EQ(registry_->enroll("d1", d.token, key.get(), ca_.issuer(clock_)).status().message(), "device_revoked");
}

TEST_F(RegistryTest, QuarantineAndRelease) {
  enrolled("d1");
  EXPECT_TRUE(*registry_->quarantine("d1"));
  EXPECT_EQ(store_->getDevice("d1")->state, store::DeviceState::kQuarantined);
  EXPECT_FALSE(*registry_->quarantine("d1"));
  EXPECT_TRUE(*registry_->release("d1"));
  EXPECT_EQ(store_->getDevice("d1")->state, store::DeviceState::kActive);
  EXPECT_FALSE(*registry_->release("d1"));
}

TEST_F(RegistryTest, QuarantineRefusesPendingRevokedAndUnknown) {
  add("p");
  auto q = registry_->quarantine("p");
  EXPECT_EQ(q.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(q.status().message(), "device 'p' has not enrolled yet");
  EXPECT_EQ(registry_->release("p").status().code(), ErrorCode::kFailedPrecondition);
  enrolled("r");
  ASSERT_TRUE(registry_->revoke("r").isOk());
  EXPECT_EQ(registry_->quarantine("r").status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(registry_->release("r").status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(registry_->quarantine("ghost").status().code(), ErrorCode::kNotFound);
}

TEST_F(RegistryTest, FleetStateHoldsDevicesValidSerialsAndUsers) {
  IssuedCert a = enrolled("a");
  IssuedCert r = enrolled("r");
  add("p");
  ASSERT_TRUE(registry_->quarantine("a").isOk());
  ASSERT_TRUE(registry_->revoke("r").isOk());
  store::CertRecord admin;
  admin.serial_hex = "abcdef";
  admin.device = "admin";
  admin.kind = "user";
  admin.pubkey_fp = "admin-key";
  admin.not_before = kStart;
  admin.not_after = kStart + 365 * 86400;
  admin.pem = "pem";
  ASSERT_TRUE(store_->insertCert(admin).isOk());
  store::CertRecord gw = admin;
  gw.serial_hex = "0123";
  gw.device = "warden-gateway";
  gw.kind = "gateway";
  gw.pubkey_fp = "gw-key";
  ASSERT_TRUE(store_->insertCert(gw).isOk());

  auto s1 = registry_->loadFleetState();
  ASSERT_TRUE(s1.isOk()) << s1.status().toString();
  const FleetState& fs = **s1;
  ASSERT_EQ(fs.devices.size(), 3u);
  const DeviceEntry* ea = fs.findDevice("a");
  ASSERT_NE(ea, nullptr);
  EXPECT_EQ(ea->state, store::DeviceState::kQuarantined);
  EXPECT_EQ(ea->role, "sensor");
  EXPECT_EQ(ea->labels.at("site"), "berlin");
  EXPECT_TRUE(fs.deviceHoldsSerial("a", a.record.serial_hex));
  EXPECT_FALSE(fs.deviceHoldsSerial("a", r.record.serial_hex));
  EXPECT_EQ(fs.findDevice("r")->state, store::DeviceState::kRevoked);
  EXPECT_TRUE(fs.findDevice("r")->valid_serials.empty());
  EXPECT_EQ(fs.findDevice("p")->state, store::DeviceState::kPending);
  EXPECT_EQ(fs.findDevice("ghost"), nullptr);
  ASSERT_NE(fs.userForSerial("abcdef"), nullptr);
  EXPECT_EQ(*fs.userForSerial("abcdef"), "admin");
  EXPECT_EQ(fs.userForSerial("0123"), nullptr);  // gateway certs are not users
  EXPECT_EQ(fs.user_serials.size(), 1u);

  auto s2 = registry_->loadFleetState();
  ASSERT_TRUE(s2.isOk());
  EXPECT_GT((*s2)->generation, (*s1)->generation);
}

TEST_F(RegistryTest, FleetStateDropsExpiredSerials) {
  IssuedCert a = enrolled("a");
  clock_.advance(86400s);  // the test issuer's certificates live 24 h
  auto s = registry_->loadFleetState();
  ASSERT_TRUE(s.isOk());
  EXPECT_FALSE((*s)->deviceHoldsSerial("a", a.record.serial_hex));
  EXPECT_EQ((*s)->findDevice("a")->state, store::DeviceState::kActive);
}

// A scoped update must equal a full reload for every device, and share the
// storage of the devices it did not touch.
TEST_F(RegistryTest, UpdateFleetStateMatchesAFullReload) {
  std::vector<std::string> names;
  for (int i = 0; i < 40; ++i) {
    names.push_back("d" + std::to_string(i));
    enrolled(names.back());
  }
  add("late");
  auto before = registry_->loadFleetState();
  ASSERT_TRUE(before.isOk());

  ASSERT_TRUE(registry_->quarantine("d3").isOk());
  ASSERT_TRUE(registry_->revoke("d7").isOk());
  IssuedCert late = enrolled("late2");
  auto updated = registry_->updateFleetState(**before, {"d3", "d7", "late2", "ghost"});
  ASSERT_TRUE(updated.isOk()) << updated.status().toString();
  auto full = registry_->loadFleetState();
  ASSERT_TRUE(full.isOk());

  const FleetState& u = **updated;
  const FleetState& f = **full;
  EXPECT_GT(u.generation, (*before)->generation);
  ASSERT_EQ(u.devices.size(), f.devices.size());
  size_t seen = 0;
  for (const auto& [name, entry] : f.devices) {
    const DeviceEntry* mine = u.findDevice(name);
    ASSERT_NE(mine, nullptr) << name;
    EXPECT_EQ(mine->state, entry.state) << name;
    EXPECT_EQ(mine->role, entry.role) << name;
    EXPECT_EQ(mine->labels, entry.labels) << name;
    EXPECT_EQ(mine->valid_serials, entry.valid_serials) << name;
    ++seen;
  }
  EXPECT_EQ(seen, f.devices.size());
  EXPECT_EQ(u.findDevice("d3")->state, store::DeviceState::kQuarantined);
  EXPECT_TRUE(u.findDevice("d7")->valid_serials.empty());
  EXPECT_TRUE(u.deviceHoldsSerial("late2", late.record.serial_hex));
  EXPECT_EQ(u.findDevice("ghost"), nullptr);
  // The previous state is untouched (copy on write).
  EXPECT_EQ((*before)->findDevice("d3")->state, store::DeviceState::kActive);
  EXPECT_EQ((*before)->findDevice("late2"), nullptr);
  EXPECT_EQ(u.user_serials, (*before)->user_serials);
}

TEST(DeviceTable, IteratesFindsAndCopiesOnWrite) {
  DeviceTable a;
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.begin(), a.end());
  for (int i = 0; i < 1000; ++i) a["n" + std::to_string(i)].role = "r";
  EXPECT_EQ(a.size(), 1000u);
  size_t n = 0;
  for (const auto& [name, entry] : a) {
    EXPECT_EQ(entry.role, "r");
    EXPECT_EQ(name.rfind('n', 0), 0u);
    ++n;
  }
  EXPECT_EQ(n, 1000u);
  DeviceTable b = a;
  b["n5"].role = "changed";
  EXPECT_TRUE(b.erase("n6"));
  EXPECT_FALSE(b.erase("n6"));
  b.emplace("new", DeviceEntry{"new", "x", {}, store::DeviceState::kActive, {}});
  EXPECT_EQ(a.find("n5")->second.role, "r");
  EXPECT_EQ(a.count("n6"), 1u);
  EXPECT_EQ(a.count("new"), 0u);
  EXPECT_EQ(b.find("n5")->second.role, "changed");
  EXPECT_EQ(b.count("n6"), 0u);
  EXPECT_EQ(b.size(), 1000u);
  EXPECT_EQ(a.size(), 1000u);
  EXPECT_EQ(b.find("missing"), b.end());
  // A copy of a copy: writes reach neither ancestor, and every entry of
  // every table stays reachable by iteration.
  DeviceTable c = b;
  for (int i = 0; i < 1000; i += 7) c["n" + std::to_string(i)].role = "third";
  size_t changed = 0, total = 0;
  for (const auto& [name, entry] : c) {
    ++total;
    if (entry.role == "third") ++changed;
  }
  EXPECT_EQ(total, 1000u);
  EXPECT_EQ(changed, 143u);  // 0, 7, ..., 994 (n6 was erased but 6 is not a multiple of 7)
  EXPECT_EQ(b.find("n7")->second.role, "r");
  EXPECT_EQ(a.find("n7")->second.role, "r");
  EXPECT_EQ(b.find("n5")->second.role, "changed");
}

}  // namespace
}  // namespace warden::identity
