// Store support for issue 6's TPM trust: vendor CAs, EK bindings (one EK, one
// device; one device, one TPM) and attestation keys.
#include <string>

#include <gtest/gtest.h>

#include "core/clock.h"
#include "store/sqlite_store.h"
#include "unit/testing/temp_dir.h"

namespace warden::store {
namespace {

constexpr int64_t kStart = 1'800'000'000;
constexpr const char* kEkA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr const char* kEkB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

class TpmStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteStore::open(dir_.file("warden.db"), clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
    for (const char* name : {"plc-1", "plc-2"}) {
      DeviceRecord d;
      d.name = name;
      d.role = "controller";
      d.state = DeviceState::kActive;
      ASSERT_TRUE(store_->insertDevice(d).isOk());
    }
  }

  DeviceTpmRecord ak(const std::string& device, const std::string& ek, const std::string& name = "000b01") {
    return DeviceTpmRecord{device, ek, "vendor_ca", "AKPUB", name, 0, -1};
  }

  warden::testing::TempDir dir_{"warden-tpm-store"};
  core::ManualClock clock_{core::fromUnixSeconds(kStart)};
  std::unique_ptr<Store> store_;
};

TEST_F(TpmStoreTest, VendorCasAreKeyedByFingerprint) {
  TpmCaRecord ca{"sha256:01", "CN=swtpm-localca", "PEM", kStart + 1000, 0, "spiffe://t/user/admin"};
  ASSERT_TRUE(store_->insertTpmCa(ca).isOk());
  EXPECT_EQ(store_->insertTpmCa(ca).code(), core::ErrorCode::kAlreadyExists);
  auto list = store_->listTpmCas();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].subject, "CN=swtpm-localca");
  EXPECT_EQ((*list)[0].added_at, kStart);  // the store's clock when not given
  EXPECT_TRUE(*store_->deleteTpmCa("sha256:01"));
  EXPECT_FALSE(*store_->deleteTpmCa("sha256:01"));
}

TEST_F(TpmStoreTest, OneEkBindsOneDevice) {
  ASSERT_TRUE(store_->registerAk(ak("plc-1", kEkA)).isOk());
  EXPECT_EQ(store_->registerAk(ak("plc-2", kEkA)).code(), core::ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->bindDeviceEk("plc-2", kEkA).code(), core::ErrorCode::kAlreadyExists);
  EXPECT_EQ(**store_->deviceOfEk(kEkA), "plc-1");
  EXPECT_FALSE(store_->deviceOfEk(kEkB)->has_value());
}

TEST_F(TpmStoreTest, ADeviceWithAnAkCannotMoveToAnotherTpm) {
  ASSERT_TRUE(store_->registerAk(ak("plc-1", kEkA)).isOk());
  EXPECT_EQ(store_->registerAk(ak("plc-1", kEkB)).code(), core::ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->bindDeviceEk("plc-1", kEkB).code(), core::ErrorCode::kAlreadyExists);
  // A new AK in the same TPM replaces the old one and restarts the resetCount.
  ASSERT_TRUE(store_->setLastResetCount("plc-1", 7).isOk());
  ASSERT_TRUE(store_->registerAk(ak("plc-1", kEkA, "000b02")).isOk());
  auto t = store_->getDeviceTpm("plc-1");
  ASSERT_TRUE(t.isOk() && t->has_value());
  EXPECT_EQ((*t)->ak_name, "000b02");
  EXPECT_EQ((*t)->last_reset_count, -1);
  // Unbinding lets another TPM register.
  EXPECT_TRUE(*store_->deleteDeviceTpm("plc-1"));
  EXPECT_TRUE(store_->registerAk(ak("plc-1", kEkB)).isOk());
}

TEST_F(TpmStoreTest, OperatorBindingThenAk) {
  EXPECT_EQ(store_->bindDeviceEk("nope", kEkA).code(), core::ErrorCode::kNotFound);
  ASSERT_TRUE(store_->bindDeviceEk("plc-1", kEkA).isOk());
  auto t = store_->getDeviceTpm("plc-1");
  ASSERT_TRUE(t.isOk() && t->has_value());
  EXPECT_EQ((*t)->ek_source, "operator");
  EXPECT_TRUE((*t)->ak_name.empty());
  // Without an AK the operator may still correct the EK.
  ASSERT_TRUE(store_->bindDeviceEk("plc-1", kEkB).isOk());
  EXPECT_FALSE(store_->deviceOfEk(kEkA)->has_value());
  DeviceTpmRecord r = ak("plc-1", kEkB);
  r.ek_source = "operator";
  ASSERT_TRUE(store_->registerAk(r).isOk());
  ASSERT_TRUE(store_->setLastResetCount("plc-1", 3).isOk());
  EXPECT_EQ((*store_->getDeviceTpm("plc-1"))->last_reset_count, 3);
  EXPECT_EQ(store_->setLastResetCount("plc-2", 1).code(), core::ErrorCode::kNotFound);
}

}  // namespace
}  // namespace warden::store
