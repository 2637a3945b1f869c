#include "store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/clock.h"
#include "crypto/crypto.h"
#include "pki/certificate_authority.h"
#include "unit/testing/temp_dir.h"

namespace warden::store {
namespace {

// kSchema1DevicesAndCerts: the devices, certs and events tables as schema
// version 1 made them, and its migration record (later migrations alter only
// these).
constexpr const char* kSchema1DevicesAndCerts =
    "CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);"
    "INSERT INTO schema_migrations VALUES(1, 0);"
    "CREATE TABLE devices(name TEXT PRIMARY KEY, role TEXT NOT NULL, labels_json TEXT NOT NULL, state TEXT NOT "
    "NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE certs(serial TEXT PRIMARY KEY, principal TEXT NOT NULL, kind TEXT NOT NULL, pubkey_fp TEXT NOT "
    "NULL, not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, "
    "revoked_at INTEGER NOT NULL DEFAULT 0, pem TEXT NOT NULL);"
    "CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, type TEXT NOT NULL, "
    "principal TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL, decision TEXT NOT "
    "NULL, rule TEXT NOT NULL, reason TEXT NOT NULL, detail_json TEXT NOT NULL);";

using core::ErrorCode;
using core::Status;
using namespace std::chrono_literals;

constexpr int64_t kStart = 1'800'000'000;

class TempDir : public warden::testing::TempDir {
 public:
  TempDir() : warden::testing::TempDir("warden-store") {}
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteStore::open(dir_.file("warden.db"), clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
  }

  DeviceRecord device(const std::string& name, DeviceState state = DeviceState::kPending) {
    DeviceRecord d;
    d.name = name;
    d.role = "sensor";
    d.labels = {{"line", "a1"}, {"site", "berlin"}};
    d.state = state;
    return d;
  }

  // rootCa is a root CA record of the inventory (placeholder PEM).
  static CaRecord rootCa() {
    CaRecord root;
    root.name = "root";
    root.kind = "root";
    root.key_id = "aa";
    root.cert_pem = "pem";
    return root;
  }

  CertRecord cert(const std::string& serial, const std::string& device, const std::string& fp,
                  int64_t not_after = kStart + 86400) {
    CertRecord c;
    c.serial_hex = serial;
    c.device = device;
    c.kind = "device";
    c.pubkey_fp = fp;
    c.not_before = kStart - 300;
    c.not_after = not_after;
    c.pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
    return c;
  }

  static std::string hash(const std::string& token) { return crypto::sha256Hex(token); }

  void addWithToken(const std::string& name, const std::string& token, int64_t expires = kStart + 3600) {
    ASSERT_TRUE(store_->insertDeviceWithToken(device(name), hash(token), expires).isOk());
  }

  TempDir dir_;
  core::ManualClock clock_{core::fromUnixSeconds(kStart)};
  std::unique_ptr<Store> store_;
};

TEST_F(SqliteStoreTest, DatabaseFileIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat(dir_.file("warden.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(store_->setMeta("k", "v").isOk());
  for (const char* suffix : {"-wal", "-shm"}) {
    struct stat side {};
    ASSERT_EQ(::stat((dir_.file("warden.db") + suffix).c_str(), &side), 0) << suffix;
    EXPECT_EQ(side.st_mode & 0777, 0600u) << suffix;
  }
}

TEST_F(SqliteStoreTest, InsertAndGetDevice) {
  ASSERT_TRUE(store_->insertDevice(device("temp-1")).isOk());
  auto d = store_->getDevice("temp-1");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->name, "temp-1");
  EXPECT_EQ(d->role, "sensor");
  EXPECT_EQ(d->labels.at("site"), "berlin");
  EXPECT_EQ(d->state, DeviceState::kPending);
  EXPECT_EQ(d->created_at, kStart);
  EXPECT_EQ(store_->getDevice("nope").status().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, KeyStoreClaimIsRecorded) {
  ASSERT_TRUE(store_->insertDevice(device("tpm-1")).isOk());
  EXPECT_EQ(store_->getDevice("tpm-1")->key_store_claim, "");
  ASSERT_TRUE(store_->setDeviceKeyStoreClaim("tpm-1", "tpm2").isOk());
  EXPECT_EQ(store_->getDevice("tpm-1")->key_store_claim, "tpm2");
  EXPECT_EQ((*store_->listDevices())[0].key_store_claim, "tpm2");
  EXPECT_EQ(store_->setDeviceKeyStoreClaim("tpm-1", "hsm").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->setDeviceKeyStoreClaim("nope", "file").code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, KeyProofIsRecordedAndReplaced) {
  ASSERT_TRUE(store_->insertDevice(device("tpm-2")).isOk());
  EXPECT_EQ(store_->getDevice("tpm-2")->key_proof, store::KeyProof{});
  const store::KeyProof failed{"failed", "ab12", "foreign_key", kStart};
  ASSERT_TRUE(store_->setDeviceKeyProof("tpm-2", failed).isOk());
  EXPECT_EQ(store_->getDevice("tpm-2")->key_proof, failed);
  const store::KeyProof verified{"verified", "cd34", "", kStart + 60};
  ASSERT_TRUE(store_->setDeviceKeyProof("tpm-2", verified).isOk());
  EXPECT_EQ((*store_->listDevices())[0].key_proof, verified);
  EXPECT_EQ(store_->setDeviceKeyProof("tpm-2", store::KeyProof{"maybe", "", "", 0}).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->setDeviceKeyProof("nope", verified).code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, NamesAreNeverReused) {
  ASSERT_TRUE(store_->insertDevice(device("temp-1")).isOk());
  Status again = store_->insertDevice(device("temp-1"));
  EXPECT_EQ(again.code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(again.message(), "device name 'temp-1' is already taken (names are never reused, even after revocation)");
  ASSERT_TRUE(store_->revokeDevice("temp-1").isOk());
  EXPECT_EQ(store_->insertDevice(device("temp-1")).code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->insertDeviceWithToken(device("temp-1"), hash("t"), kStart + 10).code(), ErrorCode::kAlreadyExists);
}

TEST_F(SqliteStoreTest, InvalidNameIsRefused) {
  EXPECT_EQ(store_->insertDevice(device("Bad_Name")).code(), ErrorCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, ListDevicesOrderedByName) {
  ASSERT_TRUE(store_->insertDevice(device("b")).isOk());
  ASSERT_TRUE(store_->insertDevice(device("a")).isOk());
  auto list = store_->listDevices();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "a");
  EXPECT_EQ((*list)[1].name, "b");
}

TEST_F(SqliteStoreTest, RevokedStateIsFinal) {
  ASSERT_TRUE(store_->insertDevice(device("d1", DeviceState::kActive)).isOk());
  ASSERT_TRUE(store_->setDeviceState("d1", DeviceState::kQuarantined).isOk());
  EXPECT_EQ(store_->getDevice("d1")->state, DeviceState::kQuarantined);
  ASSERT_TRUE(store_->revokeDevice("d1").isOk());
  EXPECT_EQ(store_->setDeviceState("d1", DeviceState::kActive).code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store_->setDeviceState("zz", DeviceState::kActive).code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, EnrollWithTokenActivatesAndConsumesToken) {
  addWithToken("d1", "secret-token");
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("secret-token"), cert("aa01", "d1", "fp1")).isOk());
  EXPECT_EQ(store_->getDevice("d1")->state, DeviceState::kActive);
  auto c = store_->findCert("aa01");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->device, "d1");
  EXPECT_EQ(c->kind, "device");
  EXPECT_FALSE(c->revoked);
  // Single use.
  Status again = store_->enrollWithToken("d1", hash("secret-token"), cert("aa02", "d1", "fp1"));
  EXPECT_EQ(again.code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(again.message(), "token_used");
  EXPECT_EQ(store_->findCert("aa02").status().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, EnrollFailureReasons) {
  EXPECT_EQ(store_->enrollWithToken("ghost", hash("x"), cert("01", "ghost", "fp")).message(), "unknown_device");
  ASSERT_TRUE(store_->insertDevice(device("nt")).isOk());
  EXPECT_EQ(store_->enrollWithToken("nt", hash("x"), cert("01", "nt", "fp")).message(), "no_token");
  addWithToken("d1", "right");
  Status mismatch = store_->enrollWithToken("d1", hash("wrong"), cert("01", "d1", "fp"));
  EXPECT_EQ(mismatch.code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(mismatch.message(), "token_mismatch");
  // A hash of another length (not even a sha256) is a mismatch, not a crash.
  EXPECT_EQ(store_->enrollWithToken("d1", "", cert("01", "d1", "fp")).message(), "token_mismatch");
  EXPECT_EQ(store_->enrollWithToken("d1", std::string(1000, 'a'), cert("01", "d1", "fp")).message(), "token_mismatch");
  ASSERT_TRUE(store_->revokeDevice("d1").isOk());
  EXPECT_EQ(store_->enrollWithToken("d1", hash("right"), cert("01", "d1", "fp")).message(), "device_revoked");
}

TEST_F(SqliteStoreTest, TokenExpires) {
  addWithToken("d1", "tok", kStart + 60);
  clock_.advance(60s);
  Status s = store_->enrollWithToken("d1", hash("tok"), cert("01", "d1", "fp"));
  EXPECT_EQ(s.code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "token_expired");
  EXPECT_EQ(store_->getDevice("d1")->state, DeviceState::kPending);
}

TEST_F(SqliteStoreTest, TokenValidJustBeforeExpiry) {
  addWithToken("d1", "tok", kStart + 60);
  clock_.advance(59s);
  EXPECT_TRUE(store_->enrollWithToken("d1", hash("tok"), cert("01", "d1", "fp")).isOk());
}

TEST_F(SqliteStoreTest, CheckTokenDoesNotConsume) {
  addWithToken("d1", "tok");
  EXPECT_TRUE(store_->checkToken("d1", hash("tok")).isOk());
  EXPECT_TRUE(store_->checkToken("d1", hash("tok")).isOk());
  EXPECT_EQ(store_->checkToken("d1", hash("bad")).message(), "token_mismatch");
  EXPECT_TRUE(store_->enrollWithToken("d1", hash("tok"), cert("01", "d1", "fp")).isOk());
  EXPECT_EQ(store_->checkToken("d1", hash("tok")).message(), "token_used");
}

TEST_F(SqliteStoreTest, ReplaceTokenInvalidatesOldUnusedToken) {
  addWithToken("d1", "old");
  ASSERT_TRUE(store_->replaceToken("d1", hash("new"), kStart + 3600).isOk());
  EXPECT_EQ(store_->enrollWithToken("d1", hash("old"), cert("01", "d1", "fp")).message(), "token_mismatch");
  EXPECT_TRUE(store_->enrollWithToken("d1", hash("new"), cert("01", "d1", "fp")).isOk());
  EXPECT_EQ(store_->replaceToken("ghost", hash("x"), kStart + 10).code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, ReEnrollWithNewTokenKeepsState) {
  addWithToken("d1", "t1");
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("t1"), cert("01", "d1", "fp")).isOk());
  ASSERT_TRUE(store_->setDeviceState("d1", DeviceState::kQuarantined).isOk());
  ASSERT_TRUE(store_->replaceToken("d1", hash("t2"), kStart + 3600).isOk());
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("t2"), cert("02", "d1", "fp2")).isOk());
  EXPECT_EQ(store_->getDevice("d1")->state, DeviceState::kQuarantined);
  // The first token, already used, is still reported as used.
  EXPECT_EQ(store_->checkToken("d1", hash("t1")).message(), "token_used");
}

TEST_F(SqliteStoreTest, RevokedDeviceGetsNoNewToken) {
  addWithToken("d1", "t1");
  ASSERT_TRUE(store_->revokeDevice("d1").isOk());
  EXPECT_EQ(store_->replaceToken("d1", hash("t2"), kStart + 3600).code(), ErrorCode::kFailedPrecondition);
}

TEST_F(SqliteStoreTest, EnrollFailureLeavesNothing) {
  addWithToken("d1", "t1");
  addWithToken("d2", "t2");
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("t1"), cert("01", "d1", "shared-key")).isOk());
  // Key already certified to d1: refused, token not consumed, no cert, still pending.
  Status s = store_->enrollWithToken("d2", hash("t2"), cert("02", "d2", "shared-key"));
  EXPECT_EQ(s.code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.message(), "key_reuse");
  EXPECT_EQ(store_->findCert("02").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->getDevice("d2")->state, DeviceState::kPending);
  EXPECT_TRUE(store_->checkToken("d2", hash("t2")).isOk());
  // Serial collision: same; the token stays usable for a retry.
  Status col = store_->enrollWithToken("d2", hash("t2"), cert("01", "d2", "other-key"));
  EXPECT_EQ(col.code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(col.message(), "serial_collision");
  EXPECT_EQ(store_->getDevice("d2")->state, DeviceState::kPending);
  EXPECT_TRUE(store_->enrollWithToken("d2", hash("t2"), cert("03", "d2", "other-key")).isOk());
}

TEST_F(SqliteStoreTest, ConcurrentEnrollmentsConsumeATokenOnce) {
  addWithToken("d1", "tok");
  std::atomic<int> ok{0};
  std::atomic<int> used{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      Status s = store_->enrollWithToken("d1", hash("tok"), cert("c" + std::to_string(i), "d1", "k"));
      if (s.isOk()) ++ok;
      if (s.message() == "token_used") ++used;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(used.load(), 7);
  EXPECT_EQ(store_->listCerts("d1")->size(), 1u);
}

TEST_F(SqliteStoreTest, SameDeviceMayKeepItsKey) {
  addWithToken("d1", "t1");
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("t1"), cert("01", "d1", "k")).isOk());
  EXPECT_FALSE(*store_->pubkeyCertifiedToOtherDevice("k", "d1"));
  EXPECT_TRUE(*store_->pubkeyCertifiedToOtherDevice("k", "d2"));
  EXPECT_TRUE(store_->renewCert("d1", "01", cert("02", "d1", "k")).isOk());
}

TEST_F(SqliteStoreTest, RenewCertChecks) {
  addWithToken("d1", "t1");
  addWithToken("d2", "t2");
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("t1"), cert("01", "d1", "k1", kStart + 100)).isOk());
  ASSERT_TRUE(store_->enrollWithToken("d2", hash("t2"), cert("02", "d2", "k2")).isOk());
  EXPECT_EQ(store_->renewCert("ghost", "01", cert("10", "ghost", "k9")).message(), "unknown_device");
  EXPECT_EQ(store_->renewCert("d1", "02", cert("10", "d1", "k9")).message(), "unknown_serial");
  EXPECT_EQ(store_->renewCert("d1", "ff", cert("10", "d1", "k9")).message(), "unknown_serial");
  EXPECT_EQ(store_->renewCert("d1", "01", cert("11", "d1", "k2")).message(), "key_reuse");
  ASSERT_TRUE(store_->renewCert("d1", "01", cert("12", "d1", "k1b")).isOk());
  auto latest = store_->latestCert("d1");
  ASSERT_TRUE(latest.isOk());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->serial_hex, "12");
  clock_.advance(100s);
  EXPECT_EQ(store_->renewCert("d1", "01", cert("13", "d1", "k1c")).message(), "cert_expired");
  ASSERT_TRUE(store_->revokeDevice("d2").isOk());
  EXPECT_EQ(store_->renewCert("d2", "02", cert("14", "d2", "k2")).message(), "device_revoked");
  ASSERT_TRUE(store_->insertDevice(device("p")).isOk());
  EXPECT_EQ(store_->renewCert("p", "01", cert("15", "p", "k5")).message(), "device_pending");
}

TEST_F(SqliteStoreTest, RenewWithRevokedCertRefused) {
  addWithToken("d1", "t1");
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("t1"), cert("01", "d1", "k1")).isOk());
  CertRecord revoked = cert("02", "d1", "k1");
  revoked.revoked = true;
  revoked.revoked_at = kStart;
  ASSERT_TRUE(store_->insertCert(revoked).isOk());
  EXPECT_EQ(store_->renewCert("d1", "02", cert("03", "d1", "k1")).message(), "cert_revoked");
}

TEST_F(SqliteStoreTest, RevokeIsIdempotentAndRevokesEverything) {
  addWithToken("d1", "t1");
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("t1"), cert("01", "d1", "k1")).isOk());
  ASSERT_TRUE(store_->renewCert("d1", "01", cert("02", "d1", "k1")).isOk());
  ASSERT_TRUE(store_->replaceToken("d1", hash("t2"), kStart + 3600).isOk());
  clock_.advance(5s);
  auto first = store_->revokeDevice("d1");
  ASSERT_TRUE(first.isOk());
  EXPECT_TRUE(*first);
  auto certs = store_->listCerts("d1");
  ASSERT_TRUE(certs.isOk());
  ASSERT_EQ(certs->size(), 2u);
  for (const CertRecord& c : *certs) {
    EXPECT_TRUE(c.revoked);
    EXPECT_EQ(c.revoked_at, kStart + 5);
  }
  EXPECT_EQ(store_->getDevice("d1")->state, DeviceState::kRevoked);
  EXPECT_EQ(store_->checkToken("d1", hash("t2")).message(), "device_revoked");
  auto second = store_->revokeDevice("d1");
  ASSERT_TRUE(second.isOk());
  EXPECT_FALSE(*second);
  EXPECT_EQ(store_->revokeDevice("ghost").status().code(), ErrorCode::kNotFound);
  auto valid = store_->listValidCerts(kStart);
  ASSERT_TRUE(valid.isOk());
  EXPECT_TRUE(valid->empty());
}

TEST_F(SqliteStoreTest, ListValidCertsSkipsExpiredAndRevoked) {
  CertRecord user = cert("u1", "admin", "ku");
  user.kind = "user";
  ASSERT_TRUE(store_->insertCert(user).isOk());
  ASSERT_TRUE(store_->insertDevice(device("d1", DeviceState::kActive)).isOk());
  ASSERT_TRUE(store_->insertCert(cert("c1", "d1", "k1", kStart + 10)).isOk());
  ASSERT_TRUE(store_->insertCert(cert("c2", "d1", "k1", kStart + 1000)).isOk());
  auto valid = store_->listValidCerts(kStart + 10);
  ASSERT_TRUE(valid.isOk());
  ASSERT_EQ(valid->size(), 2u);
  EXPECT_EQ((*valid)[0].serial_hex, "u1");
  EXPECT_EQ((*valid)[1].serial_hex, "c2");
  EXPECT_EQ(store_->insertCert(cert("c2", "d1", "k1")).message(), "serial_collision");
  EXPECT_EQ(store_->latestCert("nobody")->has_value(), false);
}

TEST_F(SqliteStoreTest, PolicyVersionsIncrease) {
  EXPECT_FALSE(store_->activePolicy()->has_value());
  auto v1 = store_->insertPolicyVersion("rules: []\n", "init");
  ASSERT_TRUE(v1.isOk());
  EXPECT_EQ(*v1, 1);
  auto v2 = store_->insertPolicyVersion("rules: [x]\n", "spiffe://warden.local/user/admin");
  ASSERT_TRUE(v2.isOk());
  EXPECT_EQ(*v2, 2);
  auto active = store_->activePolicy();
  ASSERT_TRUE(active.isOk() && active->has_value());
  EXPECT_EQ((*active)->version, 2);
  EXPECT_EQ((*active)->text, "rules: [x]\n");
  EXPECT_EQ((*active)->actor, "spiffe://warden.local/user/admin");
}

TEST_F(SqliteStoreTest, MetaRoundTrip) {
  EXPECT_FALSE(store_->getMeta("k")->has_value());
  ASSERT_TRUE(store_->setMeta("k", "v1").isOk());
  ASSERT_TRUE(store_->setMeta("k", "v2").isOk());
  EXPECT_EQ(**store_->getMeta("k"), "v2");
}

EventRecord ev(const std::string& type, int64_t time = 0) {
  EventRecord e;
  e.type = type;
  e.time = time;
  e.principal = "spiffe://warden.local/device/d1";
  e.detail = {{"k", "v"}};
  return e;
}

TEST_F(SqliteStoreTest, EventsGetIncreasingIdsAndListOldestFirst) {
  std::vector<EventRecord> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(ev("e" + std::to_string(i)));
  auto stored = store_->appendEvents(batch);
  ASSERT_TRUE(stored.isOk());
  ASSERT_EQ(stored->size(), 5u);
  for (size_t i = 1; i < stored->size(); ++i) EXPECT_GT((*stored)[i].id, (*stored)[i - 1].id);
  EXPECT_EQ((*stored)[0].time, kStart);  // time 0 means "now"

  auto last3 = store_->listEvents(std::nullopt, 3);
  ASSERT_TRUE(last3.isOk());
  ASSERT_EQ(last3->size(), 3u);
  EXPECT_EQ((*last3)[0].type, "e2");
  EXPECT_EQ((*last3)[2].type, "e4");
  EXPECT_EQ((*last3)[0].detail["k"], "v");

  auto since = store_->listEvents((*stored)[1].id, 2);
  ASSERT_TRUE(since.isOk());
  ASSERT_EQ(since->size(), 2u);
  EXPECT_EQ((*since)[0].type, "e2");
  EXPECT_EQ((*since)[1].type, "e3");

  auto from_zero = store_->listEvents(0, 1000);
  ASSERT_TRUE(from_zero.isOk());
  EXPECT_EQ(from_zero->size(), 5u);
  EXPECT_EQ(*store_->lastEventId(), (*stored)[4].id);
  EXPECT_TRUE(store_->listEvents(std::nullopt, 0)->empty());
}

TEST_F(SqliteStoreTest, EventWithInvalidUtf8DetailIsStored) {
  EventRecord e = ev("deny");
  e.detail = {{"topic", std::string("a\xff\xfe")}};
  e.resource = std::string("bad\xc3");
  auto stored = store_->appendEvents({e});
  ASSERT_TRUE(stored.isOk());
  auto back = store_->listEvents(std::nullopt, 1);
  ASSERT_EQ(back->size(), 1u);
  EXPECT_TRUE((*back)[0].detail.is_object());
}

TEST_F(SqliteStoreTest, PruneEventsDeletesOldOnes) {
  ASSERT_TRUE(store_->appendEvents({ev("old", kStart - 100), ev("new", kStart)}).isOk());
  auto n = store_->pruneEvents(kStart - 50);
  ASSERT_TRUE(n.isOk());
  EXPECT_EQ(*n, 1);
  auto rest = store_->listEvents(std::nullopt, 10);
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].type, "new");
}

TEST_F(SqliteStoreTest, DataSurvivesReopen) {
  addWithToken("d1", "t1");
  ASSERT_TRUE(store_->enrollWithToken("d1", hash("t1"), cert("01", "d1", "k1")).isOk());
  ASSERT_TRUE(store_->insertPolicyVersion("p", "init").isOk());
  store_.reset();
  auto reopened = SqliteStore::open(dir_.file("warden.db"), clock_);
  ASSERT_TRUE(reopened.isOk()) << reopened.status().toString();
  EXPECT_EQ((*reopened)->getDevice("d1")->state, DeviceState::kActive);
  EXPECT_EQ((*reopened)->findCert("01")->device, "d1");
  EXPECT_EQ((*(*reopened)->activePolicy())->version, 1);
}

int64_t sqlScalar(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK);
  int64_t v = -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

void sqlExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST(SqliteStoreOpenTest, FreshDatabaseIsMigratedAndWal) {
  TempDir dir;
  core::ManualClock clock(core::fromUnixSeconds(kStart));
  const std::string path = dir.file("w.db");
  {
    auto s = SqliteStore::open(path, clock);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
  }
  EXPECT_EQ(sqlScalar(path, "SELECT MAX(version) FROM schema_migrations"), kSchemaVersion);
  EXPECT_EQ(sqlScalar(path, "SELECT applied_at FROM schema_migrations WHERE version = 1"), kStart);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(SqliteStoreOpenTest, ExistingDatabaseIsNotMigratedTwice) {
  TempDir dir;
  core::ManualClock clock(core::fromUnixSeconds(kStart));
  const std::string path = dir.file("w.db");
  ASSERT_TRUE(SqliteStore::open(path, clock).isOk());
  clock.advance(10s);
  ASSERT_TRUE(SqliteStore::open(path, clock).isOk());
  EXPECT_EQ(sqlScalar(path, "SELECT COUNT(*) FROM schema_migrations"), kSchemaVersion);
  EXPECT_EQ(sqlScalar(path, "SELECT MAX(applied_at) FROM schema_migrations"), kStart);
}

TEST(SqliteStoreOpenTest, Version1DatabaseGainsTheKeyStoreClaim) {
  TempDir dir;
  core::ManualClock clock(core::fromUnixSeconds(kStart));
  const std::string path = dir.file("w.db");
  // The devices and certs tables as schema version 1 made them, with a device.
  sqlExec(path, std::string(kSchema1DevicesAndCerts) +
          "INSERT INTO devices(name, role, labels_json, state, created_at) VALUES('old-1', 'sensor', '{}', "
          "'active', 1)");
  auto s = SqliteStore::open(path, clock);
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  EXPECT_EQ(sqlScalar(path, "SELECT MAX(version) FROM schema_migrations"), kSchemaVersion);
  auto d = (*s)->getDevice("old-1");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->key_store_claim, "");
}

TEST(SqliteStoreOpenTest, NewerSchemaIsRefused) {
  TempDir dir;
  core::ManualClock clock(core::fromUnixSeconds(kStart));
  const std::string path = dir.file("w.db");
  ASSERT_TRUE(SqliteStore::open(path, clock).isOk());
  sqlExec(path, "INSERT INTO schema_migrations(version, applied_at) VALUES(99, 0)");
  auto s = SqliteStore::open(path, clock);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("newer"), std::string::npos);
}

TEST(SqliteStoreOpenTest, ExistingFileIsMadePrivate) {
  TempDir dir;
  core::ManualClock clock(core::fromUnixSeconds(kStart));
  const std::string path = dir.file("w.db");
  ASSERT_TRUE(SqliteStore::open(path, clock).isOk());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(SqliteStore::open(path, clock).isOk());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(SqliteStoreOpenTest, ForeignDatabaseIsRefused) {
  TempDir dir;
  core::ManualClock clock(core::fromUnixSeconds(kStart));
  const std::string path = dir.file("other.db");
  sqlExec(path, "CREATE TABLE x(a)");
  auto s = SqliteStore::open(path, clock);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), ErrorCode::kDataLoss);
}

TEST(SqliteStoreOpenTest, NonDatabaseFileIsRefused) {
  TempDir dir;
  core::ManualClock clock(core::fromUnixSeconds(kStart));
  const std::string path = dir.file("junk.db");
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("this is not a database, not at all, it is just a text file of some length......", f);
  fclose(f);
  auto s = SqliteStore::open(path, clock);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), ErrorCode::kDataLoss);
}

// --- CA inventory and certificate revocation (migration 2) -------------------

TEST_F(SqliteStoreTest, CrossCertificatesLinkTwoRootsOfTheInventory) {
  const CaRecord root = rootCa();
  ASSERT_TRUE(store_->insertCa(root).isOk());
  CaRecord root2 = root;
  root2.name = "root-2";
  root2.key_id = "cc";
  CrossCertRecord nwo{"root-2-by-root", "root-2", "root", "nwo-pem", 0};
  EXPECT_EQ(store_->insertCrossCert(nwo).code(), ErrorCode::kNotFound);  // root-2 is not recorded yet
  ASSERT_TRUE(store_->insertCa(root2).isOk());
  ASSERT_TRUE(store_->insertCrossCert(nwo).isOk());
  EXPECT_EQ(store_->insertCrossCert(nwo).code(), ErrorCode::kAlreadyExists);
  clock_.advance(1s);
  ASSERT_TRUE(store_->insertCrossCert({"root-by-root-2", "root", "root-2", "own-pem", 0}).isOk());
  auto cross = store_->listCrossCerts();
  ASSERT_TRUE(cross.isOk());
  ASSERT_EQ(cross->size(), 2u);
  EXPECT_EQ((*cross)[0].name, "root-2-by-root");
  EXPECT_EQ((*cross)[0].subject_ca, "root-2");
  EXPECT_EQ((*cross)[0].issuer_ca, "root");
  EXPECT_EQ((*cross)[0].cert_pem, "nwo-pem");
  EXPECT_EQ((*cross)[0].created_at, kStart);
  EXPECT_EQ((*cross)[1].name, "root-by-root-2");
}

TEST_F(SqliteStoreTest, CaInventoryRecordsStatesAndCrlNumbers) {
  const CaRecord root = rootCa();
  ASSERT_TRUE(store_->insertCa(root).isOk());
  CaRecord issuing = root;
  issuing.name = "issuing-1";
  issuing.kind = "issuing";
  issuing.key_id = "bb";
  issuing.key_ref = "/d/pki/issuing.key";
  ASSERT_TRUE(store_->insertCa(issuing).isOk());
  EXPECT_EQ(store_->insertCa(issuing).code(), ErrorCode::kAlreadyExists);
  CaRecord same_key = issuing;
  same_key.name = "issuing-2";
  EXPECT_EQ(store_->insertCa(same_key).code(), ErrorCode::kAlreadyExists);

  EXPECT_EQ(*store_->nextCrlNumber("issuing-1"), 1);
  EXPECT_EQ(*store_->nextCrlNumber("issuing-1"), 2);
  EXPECT_EQ(*store_->nextCrlNumber("root"), 1);
  EXPECT_EQ(store_->nextCrlNumber("nope").status().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->setCaState("issuing-1", CaState::kRetiring).isOk());
  clock_.advance(10s);
  ASSERT_TRUE(store_->setCaState("issuing-1", CaState::kRetired).isOk());
  EXPECT_EQ(store_->setCaState("issuing-1", CaState::kActive).code(), ErrorCode::kFailedPrecondition);
  auto cas = store_->listCas();
  ASSERT_TRUE(cas.isOk());
  ASSERT_EQ(cas->size(), 2u);
  EXPECT_EQ((*cas)[1].name, "issuing-1");
  EXPECT_EQ((*cas)[1].state, CaState::kRetired);
  EXPECT_EQ((*cas)[1].retired_at, kStart + 10);
  EXPECT_EQ((*cas)[1].key_ref, "/d/pki/issuing.key");
}

TEST_F(SqliteStoreTest, RevokeCertRecordsReasonOnce) {
  CertRecord c = cert("0a", "admin", "fp1");
  c.kind = "user";
  c.issuer = "issuing-1";
  ASSERT_TRUE(store_->insertCert(c).isOk());
  auto first = store_->revokeCert("0a", "keyCompromise");
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  EXPECT_TRUE(first->second);
  EXPECT_TRUE(first->first.revoked);
  EXPECT_EQ(first->first.revocation_reason, "keyCompromise");
  EXPECT_EQ(first->first.revoked_at, kStart);
  auto again = store_->revokeCert("0a", "superseded");
  ASSERT_TRUE(again.isOk());
  EXPECT_FALSE(again->second);
  EXPECT_EQ(again->first.revocation_reason, "keyCompromise");
  EXPECT_EQ(store_->revokeCert("ff", "superseded").status().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, CertsByIssuerAndExpiry) {
  CertRecord a = cert("01", "admin", "fa", kStart + 100);
  a.kind = "user";
  a.issuer = "issuing-1";
  CertRecord b = cert("02", "gateway", "fb", kStart + 1000);
  b.kind = "service";
  b.issuer = "issuing-1";
  CertRecord o = cert("03", "ocsp-issuing-1", "fo", kStart + 1000);
  o.kind = "ocsp";
  o.issuer = "issuing-1";
  CertRecord d = cert("04", "other", "fd", kStart + 50);
  d.kind = "service";
  d.issuer = "issuing-2";
  for (const auto& c : {a, b, o, d}) ASSERT_TRUE(store_->insertCert(c).isOk());
  EXPECT_EQ(store_->listCertsIssuedBy("issuing-1", kStart)->size(), 3u);
  EXPECT_EQ(store_->listCertsIssuedBy("issuing-1", kStart + 100)->size(), 2u);
  auto soon = store_->listCertsExpiring(kStart, kStart + 100);
  ASSERT_TRUE(soon.isOk());
  ASSERT_EQ(soon->size(), 2u);
  EXPECT_EQ((*soon)[0].serial_hex, "04");  // soonest first
  auto revoked = store_->revokeCertsIssuedBy("issuing-1", "superseded", kStart);
  ASSERT_TRUE(revoked.isOk());
  EXPECT_EQ(revoked->size(), 2u);  // the OCSP responder certificate is left alone
  EXPECT_FALSE(store_->findCert("03")->revoked);
  EXPECT_EQ(store_->findCert("02")->revocation_reason, "superseded");
}

TEST_F(SqliteStoreTest, CertIssuerIsResolvedFromTheAki) {
  auto root = pki::createRootCa("Root", std::chrono::hours(24), clock_);
  ASSERT_TRUE(root.isOk());
  auto issuing = pki::createIntermediateCa(*root, "Issuing", std::chrono::hours(24), 0, clock_);
  ASSERT_TRUE(issuing.isOk());
  CaRecord r;
  r.name = "issuing-7";
  r.kind = "issuing";
  r.key_id = crypto::subjectKeyIdHex(issuing->cert.get());
  r.cert_pem = crypto::certToPem(issuing->cert.get());
  ASSERT_TRUE(store_->insertCa(r).isOk());
  auto key = crypto::generateEcKey();
  pki::LeafProfile p;
  p.common_name = "dev-1";
  auto leaf = pki::issueLeaf(*issuing, key->get(), p, clock_);
  ASSERT_TRUE(leaf.isOk());
  CertRecord c = cert(crypto::serialHex(leaf->get()), "dev-1", "fp");
  c.pem = crypto::certToPem(leaf->get());
  ASSERT_TRUE(store_->insertCert(c).isOk());
  EXPECT_EQ(store_->findCert(c.serial_hex)->issuer, "issuing-7");
  // A certificate that no CA of the inventory signed is refused.
  auto foreign = pki::issueLeaf(*root, key->get(), p, clock_);
  CertRecord f = cert(crypto::serialHex(foreign->get()), "dev-1", "fp");
  f.pem = crypto::certToPem(foreign->get());
  EXPECT_EQ(store_->insertCert(f).code(), ErrorCode::kFailedPrecondition);
}

TEST(SqliteStoreOpenTest, VersionOneDatabaseGetsTheCaInventory) {
  TempDir dir;
  core::ManualClock clock(core::fromUnixSeconds(kStart));
  const std::string path = dir.file("w.db");
  // The certs table as schema version 1 made it, with one certificate.
  sqlExec(path, std::string(kSchema1DevicesAndCerts) +
          "INSERT INTO certs(serial, principal, kind, pubkey_fp, not_before, not_after, pem) "
          "VALUES('0b', 'admin', 'user', 'fp', 0, 99999999999, 'pem');");
  auto s = SqliteStore::open(path, clock);
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  auto c = (*s)->findCert("0b");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->issuer, "issuing-1");
  EXPECT_EQ(c->revocation_reason, "");
  EXPECT_TRUE((*s)->listCas()->empty());
  EXPECT_EQ(sqlScalar(path, "SELECT MAX(version) FROM schema_migrations"), kSchemaVersion);
}

}  // namespace
}  // namespace warden::store

namespace warden::store {
namespace {

// --- firmware reference values and posture (migration 5) --------------------

class PostureStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(SqliteStore::open(dir_.file("warden.db"), clock_)).value();
    DeviceRecord d;
    d.name = "plc-1";
    d.role = "controller";
    d.state = DeviceState::kActive;
    ASSERT_TRUE(store_->insertDevice(d).isOk());
    d.name = "new-1";
    d.state = DeviceState::kPending;
    ASSERT_TRUE(store_->insertDevice(d).isOk());
  }
  static FirmwareApproval approval(const std::string& version) {
    FirmwareApproval a;
    a.digest = "sha256:" + std::string(64, 'a');
    a.model = "gw-100";
    a.version = version;
    a.approved_by = "admin";
    return a;
  }
  TempDir dir_;
  core::ManualClock clock_{core::fromUnixSeconds(kStart)};
  std::unique_ptr<Store> store_;
};

TEST_F(PostureStoreTest, ApproveIsIdempotentAndRefusesAnotherVersion) {
  EXPECT_EQ(store_->approveFirmware(approval("2.1.0")).value(), true);
  EXPECT_EQ(store_->approveFirmware(approval("2.1.0")).value(), false);
  EXPECT_EQ(store_->approveFirmware(approval("2.2.0")).status().code(), ErrorCode::kFailedPrecondition);
  auto list = std::move(store_->listFirmware()).value();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].version, "2.1.0");
  EXPECT_EQ(list[0].approved_at, kStart);
}

TEST_F(PostureStoreTest, RevokeKeepsTheRowAndAllowsApprovingAgain) {
  ASSERT_TRUE(store_->approveFirmware(approval("2.1.0")).isOk());
  auto revoked = store_->revokeFirmwareApproval("sha256:" + std::string(64, 'a'), std::string_view("gw-100"), "ops");
  ASSERT_TRUE(revoked.isOk());
  ASSERT_EQ(revoked->size(), 1u);
  EXPECT_EQ((*revoked)[0].revoked_by, "ops");
  EXPECT_EQ(store_->revokeFirmwareApproval("sha256:" + std::string(64, 'a'), std::nullopt, "ops").status().code(),
            ErrorCode::kNotFound);
  EXPECT_NE(std::move(store_->listFirmware()).value()[0].revoked_at, 0);
  EXPECT_EQ(store_->approveFirmware(approval("2.2.0")).value(), true);
  EXPECT_EQ(std::move(store_->listFirmware()).value()[0].revoked_at, 0);
}

TEST_F(PostureStoreTest, PostureRoundTripsAndMovesStateInOneTransaction) {
  PostureRecord p;
  p.device = "plc-1";
  p.attested_at = kStart;
  p.assurance = "tpm";
  p.result = "failed";
  p.reason = "unapproved_firmware";
  p.log_json = R"([{"pcr":10}])";
  p.firmware_approved = 0;
  p.quarantine_reasons = {"attestation_failed", "manual"};
  p.quarantined_since = kStart;
  p.trust = 0;
  p.updated_at = kStart;
  ASSERT_TRUE(store_->savePosture(p, DeviceState::kQuarantined).isOk());
  EXPECT_EQ(store_->getDevice("plc-1")->state, DeviceState::kQuarantined);
  auto back = std::move(store_->getPosture("plc-1")).value();
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, p);
  EXPECT_EQ(std::move(store_->listPostures()).value().size(), 1u);
  EXPECT_FALSE(std::move(store_->getPosture("new-1")).value().has_value());
}

TEST_F(PostureStoreTest, SavePostureRefusesToMovePendingOrUnknownDevices) {
  PostureRecord p;
  p.device = "new-1";
  EXPECT_EQ(store_->savePosture(p, DeviceState::kQuarantined).code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store_->getDevice("new-1")->state, DeviceState::kPending);
  EXPECT_FALSE(std::move(store_->getPosture("new-1")).value().has_value());
  p.device = "ghost";
  EXPECT_EQ(store_->savePosture(p, std::nullopt).code(), ErrorCode::kNotFound);
}

TEST_F(PostureStoreTest, EventsAboutOnePrincipal) {
  EventRecord a;
  a.type = "quarantine";
  a.principal = "spiffe://warden.local/device/plc-1";
  EventRecord b = a;
  b.principal = "spiffe://warden.local/device/other";
  ASSERT_TRUE(store_->appendEvents({a, b, a}).isOk());
  auto list = std::move(store_->listEventsAbout("spiffe://warden.local/device/plc-1", 10)).value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_LT(list[0].id, list[1].id);
  EXPECT_EQ(std::move(store_->listEventsAbout("spiffe://warden.local/device/plc-1", 1)).value().size(), 1u);
}

}  // namespace
}  // namespace warden::store

namespace warden::store {
namespace {

// --- revoked-only CRL query (migration 6) ---------------------------------------

TEST_F(SqliteStoreTest, RevokedCertsOfIssuerListsExactlyRevokedUnexpired) {
  auto add = [&](const std::string& serial, const std::string& issuer, int64_t not_after, const std::string& kind) {
    CertRecord c = cert(serial, "p-" + serial, "fp-" + serial, not_after);
    c.kind = kind;
    c.issuer = issuer;
    ASSERT_TRUE(store_->insertCert(c).isOk());
  };
  add("01", "issuing-1", kStart + 1000, "service");  // revoked, unexpired: listed
  add("02", "issuing-1", kStart + 1000, "service");  // valid: not listed
  add("03", "issuing-1", kStart + 10, "service");    // revoked, expired at kStart + 10: dropped
  add("04", "issuing-2", kStart + 1000, "service");  // revoked, another CA: not listed
  add("05", "issuing-1", kStart + 2000, "user");     // revoked, unexpired: listed
  for (const char* s : {"01", "03", "04", "05"}) ASSERT_TRUE(store_->revokeCert(s, "keyCompromise").isOk());

  auto at = [&](int64_t now) {
    std::vector<std::string> serials;
    auto list = store_->listRevokedCertsIssuedBy("issuing-1", now);
    EXPECT_TRUE(list.isOk()) << list.status().toString();
    if (list.isOk()) {
      for (const CertRecord& c : *list) {
        EXPECT_TRUE(c.revoked);
        EXPECT_EQ(c.revocation_reason, "keyCompromise");
        serials.push_back(c.serial_hex);
      }
    }
    return serials;
  };
  EXPECT_EQ(at(kStart), (std::vector<std::string>{"01", "03", "05"}));
  EXPECT_EQ(at(kStart + 10), (std::vector<std::string>{"01", "05"}));  // expired entries leave the CRL
  EXPECT_EQ(at(kStart + 1000), (std::vector<std::string>{"05"}));
  EXPECT_TRUE(at(kStart + 2000).empty());
}

TEST_F(SqliteStoreTest, RevokedCertsIndexHoldsOnlyRevokedRows) {
  // The CRL query reads a partial index of revoked rows, so its cost follows
  // the number of revocations, not of issued certificates.
  for (int i = 0; i < 50; ++i) {
    CertRecord c = cert(fmt::format("{:02x}", i), fmt::format("d{}", i), fmt::format("k{}", i));
    c.kind = "service";
    c.issuer = "issuing-1";
    ASSERT_TRUE(store_->insertCert(c).isOk());
  }
  ASSERT_TRUE(store_->revokeCert("07", "").isOk());
  ASSERT_TRUE(store_->revokeCert("2a", "").isOk());
  const std::string path = dir_.file("warden.db");
  EXPECT_EQ(sqlScalar(path, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = "
                            "'certs_revoked_by_issuer' AND sql LIKE '%WHERE revoked = 1%'"),
            1);
  EXPECT_EQ(sqlScalar(path, "SELECT COUNT(*) FROM certs INDEXED BY certs_revoked_by_issuer WHERE issuer = "
                            "'issuing-1' AND revoked = 1"),
            2);
  auto list = store_->listRevokedCertsIssuedBy("issuing-1", kStart);
  ASSERT_TRUE(list.isOk()) << list.status().toString();
  EXPECT_EQ(list->size(), 2u);
}

TEST_F(SqliteStoreTest, UnexpiredCertsOfIssuerIgnoreOcspResponders) {
  CertRecord o = cert("01", "ocsp-issuing-1", "fo", kStart + 1000);
  o.kind = "ocsp";
  o.issuer = "issuing-1";
  ASSERT_TRUE(store_->insertCert(o).isOk());
  EXPECT_FALSE(*store_->hasUnexpiredCertsIssuedBy("issuing-1", kStart));
  CertRecord s = cert("02", "gw", "fs", kStart + 100);
  s.kind = "service";
  s.issuer = "issuing-1";
  ASSERT_TRUE(store_->insertCert(s).isOk());
  ASSERT_TRUE(store_->revokeCert("02", "").isOk());
  EXPECT_TRUE(*store_->hasUnexpiredCertsIssuedBy("issuing-1", kStart));  // revoked still counts: CRL needed
  EXPECT_FALSE(*store_->hasUnexpiredCertsIssuedBy("issuing-1", kStart + 100));
  EXPECT_FALSE(*store_->hasUnexpiredCertsIssuedBy("issuing-2", kStart));
}

// --- group commit: commitIssuances ------------------------------------------------

IssuanceWrite enrollWrite(const std::string& device, const std::string& token, CertRecord cert,
                          const std::string& claim = "") {
  IssuanceWrite w;
  w.kind = IssuanceWrite::Kind::kEnrollWithToken;
  w.device = device;
  w.token_hash_hex = crypto::sha256Hex(token);
  w.key_store_claim = claim;
  w.cert = std::move(cert);
  return w;
}

TEST_F(SqliteStoreTest, CommitIssuancesAppliesABatchInOneTransaction) {
  addWithToken("d1", "t1");
  addWithToken("d2", "t2");
  addWithToken("d3", "t3");
  ASSERT_TRUE(store_->enrollWithToken("d3", hash("t3"), cert("30", "d3", "k3")).isOk());
  IssuanceWrite renew;
  renew.kind = IssuanceWrite::Kind::kRenew;
  renew.device = "d3";
  renew.old_serial = "30";
  renew.key_store_claim = "tpm2";
  renew.cert = cert("31", "d3", "k3b");
  std::vector<Status> st = store_->commitIssuances(
      {enrollWrite("d1", "t1", cert("10", "d1", "k1"), "file"), enrollWrite("d2", "t2", cert("20", "d2", "k2")),
       renew});
  ASSERT_EQ(st.size(), 3u);
  for (const Status& s : st) EXPECT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(store_->getDevice("d1")->state, DeviceState::kActive);
  EXPECT_EQ(store_->getDevice("d1")->key_store_claim, "file");
  EXPECT_EQ(store_->getDevice("d3")->key_store_claim, "tpm2");
  EXPECT_TRUE(store_->findCert("10").isOk());
  EXPECT_TRUE(store_->findCert("20").isOk());
  EXPECT_TRUE(store_->findCert("31").isOk());
  // Tokens were consumed in the transaction.
  EXPECT_EQ(store_->checkToken("d1", hash("t1")).message(), kReasonTokenUsed);
}

TEST_F(SqliteStoreTest, CommitIssuancesRefusedWriteLeavesTheOthers) {
  addWithToken("d1", "t1");
  addWithToken("d2", "t2");
  addWithToken("d3", "t3");
  std::vector<Status> st = store_->commitIssuances({
      enrollWrite("d1", "t1", cert("10", "d1", "k1")),
      enrollWrite("d2", "wrong", cert("20", "d2", "k2"), "file"),  // token_mismatch
      enrollWrite("d3", "t3", cert("10", "d3", "k3")),             // serial of the first write: collision
      enrollWrite("ghost", "t", cert("40", "ghost", "k4")),        // unknown_device
      enrollWrite("d3", "t3", cert("30", "d3", "k1")),             // key of d1: key_reuse
  });
  ASSERT_EQ(st.size(), 5u);
  EXPECT_TRUE(st[0].isOk()) << st[0].toString();
  EXPECT_EQ(st[1].message(), kReasonTokenMismatch);
  EXPECT_EQ(st[2].message(), kReasonSerialCollision);
  EXPECT_EQ(st[3].message(), kReasonUnknownDevice);
  EXPECT_EQ(st[4].message(), kReasonKeyReuse);
  EXPECT_TRUE(store_->findCert("10").isOk());
  EXPECT_EQ(store_->findCert("10")->device, "d1");
  EXPECT_EQ(store_->findCert("30").status().code(), ErrorCode::kNotFound);
  // Refused writes changed nothing: no claim, tokens still usable, devices pending.
  EXPECT_EQ(store_->getDevice("d2")->key_store_claim, "");
  EXPECT_EQ(store_->getDevice("d2")->state, DeviceState::kPending);
  EXPECT_TRUE(store_->checkToken("d3", hash("t3")).isOk());
  // A later write of the same batch sees the earlier ones (d3 again, new serial and key).
  std::vector<Status> again = store_->commitIssuances(
      {enrollWrite("d3", "t3", cert("31", "d3", "k3")), enrollWrite("d3", "t3", cert("32", "d3", "k3c"))});
  EXPECT_TRUE(again[0].isOk()) << again[0].toString();
  EXPECT_EQ(again[1].message(), kReasonTokenUsed);
}

TEST_F(SqliteStoreTest, CommitIssuancesOfNothingIsOk) { EXPECT_TRUE(store_->commitIssuances({}).empty()); }

}  // namespace
}  // namespace warden::store
