#include "keystore/key_store.h"

#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "core/file_io.h"
#include "crypto/crypto.h"
#include "keystore/file_key_store.h"
#include "keystore/pkcs11_key_store.h"
#include "keystore/tpm2_key_store.h"
#include "unit/testing/softhsm.h"
#include "unit/testing/temp_dir.h"

namespace warden::keystore {
namespace {

using testing::SoftHsm;
using testing::TempDir;

// signsAndVerifies signs a message with |key| and verifies it with the
// public half exported to a plain key.
void expectSignsAndVerifies(EVP_PKEY* key) {
  const std::string msg = "warden";
  crypto::EvpMdCtxPtr sign(EVP_MD_CTX_new());
  ASSERT_EQ(EVP_DigestSignInit(sign.get(), nullptr, EVP_sha256(), nullptr, key), 1);
  size_t len = 0;
  ASSERT_EQ(EVP_DigestSign(sign.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(msg.data()), msg.size()), 1);
  std::string sig(len, '\0');
  ASSERT_EQ(EVP_DigestSign(sign.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(msg.data()), msg.size()),
            1);
  sig.resize(len);
  auto pub_pem = crypto::publicKeyToPem(key);
  crypto::BioPtr bio(BIO_new_mem_buf(pub_pem.data(), static_cast<int>(pub_pem.size())));
  crypto::EvpPkeyPtr pub(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(pub, nullptr);
  crypto::EvpMdCtxPtr verify(EVP_MD_CTX_new());
  ASSERT_EQ(EVP_DigestVerifyInit(verify.get(), nullptr, EVP_sha256(), nullptr, pub.get()), 1);
  EXPECT_EQ(EVP_DigestVerify(verify.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(msg.data()), msg.size()),
            1);
}

TEST(KeyStoreTest, KindNamesRoundTrip) {
  for (auto kind : {KeyStoreKind::kFile, KeyStoreKind::kPkcs11, KeyStoreKind::kTpm2}) {
    auto parsed = parseKeyStoreKind(keyStoreKindName(kind));
    ASSERT_TRUE(parsed.isOk());
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_FALSE(parseKeyStoreKind("hsm").isOk());
}

TEST(KeyStoreTest, FileStoreGeneratesA0600KeyAndLoadsIt) {
  TempDir dir;
  FileKeyStore store;
  auto key = store.generate(dir.file("k.pem"));
  ASSERT_TRUE(key.isOk()) << key.status().message();
  struct stat st {};
  ASSERT_EQ(::stat(dir.file("k.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = loadKey("file:" + dir.file("k.pem"));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_EQ(loaded->kind(), KeyStoreKind::kFile);
  EXPECT_EQ(EVP_PKEY_eq(key->get(), loaded->get()), 1);
  expectSignsAndVerifies(loaded->get());
  EXPECT_EQ(store.generate(dir.file("k.pem")).status().code(), core::ErrorCode::kAlreadyExists);
}

TEST(KeyStoreTest, PinFileMustBePrivate) {
  TempDir dir;
  std::string pin = dir.file("pin");
  std::ofstream(pin) << "secret-pin\n";
  ::chmod(pin.c_str(), 0644);
  auto refused = readPinFile(pin);
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), core::ErrorCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("chmod 0600"), std::string::npos);
  EXPECT_EQ(refused.status().message().find("secret-pin"), std::string::npos);
  ::chmod(pin.c_str(), 0600);
  auto ok = readPinFile(pin);
  ASSERT_TRUE(ok.isOk()) << ok.status().message();
  EXPECT_EQ(*ok, "secret-pin");
  EXPECT_EQ(readPinFile(dir.file("missing")).status().code(), core::ErrorCode::kNotFound);
}

TEST(KeyStoreTest, TctiWithoutResourceManagerIsRefused) {
  EXPECT_TRUE(checkTcti("tabrmd:bus_type=session").isOk());
  EXPECT_TRUE(checkTcti("tabrmd").isOk());
  EXPECT_TRUE(checkTcti("device:/dev/tpmrm0").isOk());
  EXPECT_FALSE(checkTcti("swtpm:port=2321").isOk());
  EXPECT_FALSE(checkTcti("device:/dev/tpm0").isOk());
  EXPECT_FALSE(checkTcti("mssim").isOk());
}

TEST(KeyStoreTest, Pkcs11GeneratesANonExtractableKeyThatSigns) {
  SoftHsm& hsm = SoftHsm::instance();
  Pkcs11KeyStore store;
  auto key = store.generate(hsm.uri("unit-generated"));
  ASSERT_TRUE(key.isOk()) << key.status().message();
  EXPECT_EQ(key->kind(), KeyStoreKind::kPkcs11);
  EXPECT_EQ(key->reference().find("1234"), std::string::npos);
  expectSignsAndVerifies(key->get());
  auto protection = store.protection(hsm.uri("unit-generated"));
  ASSERT_TRUE(protection.isOk()) << protection.status().message();
  EXPECT_TRUE(protection->sensitive);
  EXPECT_FALSE(protection->extractable);
  EXPECT_TRUE(protection->never_extractable);
  EXPECT_TRUE(protection->local);
  // The same label again is refused; loading it by URI works.
  EXPECT_EQ(store.generate(hsm.uri("unit-generated")).status().code(), core::ErrorCode::kAlreadyExists);
  auto loaded = loadKey(hsm.uri("unit-generated"));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_EQ(EVP_PKEY_eq(key->get(), loaded->get()), 1);
  expectSignsAndVerifies(loaded->get());
}

TEST(KeyStoreTest, Pkcs11KeysCreatedTogetherAreAllUsable) {
  SoftHsm& hsm = SoftHsm::instance();
  Pkcs11KeyStore store;
  auto a = store.createInToken(hsm.uri("together-a"));
  auto b = store.createInToken(hsm.uri("together-b"));
  ASSERT_TRUE(a.isOk()) << a.status().message();
  ASSERT_TRUE(b.isOk()) << b.status().message();
  EXPECT_NE(a->find("object=together-a"), std::string::npos);
  EXPECT_NE(a->find("id=%"), std::string::npos);
  for (const char* label : {"together-a", "together-b"}) {
    auto key = loadKey(hsm.uri(label));
    ASSERT_TRUE(key.isOk()) << label << ": " << key.status().message();
    expectSignsAndVerifies(key->get());
  }
}

TEST(KeyStoreTest, Pkcs11MissingKeyIsNotFound) {
  SoftHsm& hsm = SoftHsm::instance();
  auto key = loadKey(hsm.uri("no-such-key"));
  ASSERT_FALSE(key.isOk());
  EXPECT_EQ(key.status().code(), core::ErrorCode::kNotFound);
}

TEST(KeyStoreTest, Pkcs11RefusesAWorldReadablePinFile) {
  SoftHsm& hsm = SoftHsm::instance();
  TempDir dir;
  std::string pin = dir.file("pin");
  std::ofstream(pin) << "1234\n";
  ::chmod(pin.c_str(), 0640);
  std::string uri = "pkcs11:token=warden-test;object=x;type=private?module-path=" + std::string(testing::kSoftHsmModule) +
                    "&pin-source=file:" + pin;
  (void)hsm;
  auto key = loadKey(uri);
  ASSERT_FALSE(key.isOk());
  EXPECT_EQ(key.status().code(), core::ErrorCode::kPermissionDenied);
}

TEST(KeyStoreTest, Pkcs11UriNeedsAModule) {
  auto key = loadKey("pkcs11:token=warden-test;object=x");
  ASSERT_FALSE(key.isOk());
  EXPECT_NE(key.status().message().find("module-path"), std::string::npos);
}

}  // namespace
}  // namespace warden::keystore
