#include "crypto/crypto.h"

#include <sys/stat.h>

#include <chrono>
#include <string>

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/clock.h"
#include "core/file_io.h"
#include "unit/testing/temp_dir.h"

namespace warden::crypto {
namespace {

using namespace std::chrono_literals;

// allOf returns true if every character of |s| is in |alphabet| and |s| is non-empty.
bool allOf(std::string_view s, std::string_view alphabet) {
  return !s.empty() && s.find_first_not_of(alphabet) == std::string_view::npos;
}

core::ManualClock testClock() { return core::ManualClock(core::fromUnixSeconds(1'780'000'000)); }

TEST(Base64, EncodesRfc4648TestVectors) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, DecodesRfc4648TestVectors) {
  for (const auto& [enc, dec] : std::vector<std::pair<std::string, std::string>>{
           {"", ""}, {"Zg==", "f"}, {"Zm8=", "fo"}, {"Zm9v", "foo"}, {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"},
           {"Zm9vYmFy", "foobar"}}) {
    auto r = base64Decode(enc, false);
    ASSERT_TRUE(r.isOk()) << enc;
    EXPECT_EQ(*r, dec) << enc;
  }
}

TEST(Base64, RoundTripsAllByteValuesAndLengths) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); n += 7) {
    std::string in = all.substr(0, n);
    auto r = base64Decode(base64Encode(in), false);
    ASSERT_TRUE(r.isOk());
    EXPECT_EQ(*r, in);
  }
  // Decoded bytes with NUL inside survive (EVP_DecodeBlock-style length bugs).
  auto r = base64Decode("AAAA", false);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, std::string(3, '\0'));
}

TEST(Base64, WhitespaceOnlyWhenAllowed) {
  EXPECT_FALSE(base64Decode("Zm9v\nYmFy", false).isOk());
  auto r = base64Decode(" Zm9v\r\nYm\tFy\n", true);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, "foobar");
  auto padded = base64Decode("Zm8\n=\n", true);
  ASSERT_TRUE(padded.isOk());
  EXPECT_EQ(*padded, "fo");
}

TEST(Base64, RejectsMalformedInput) {
  for (const char* bad : {"Zg", "Zg=", "Zm9", "Z", "Zg===", "Zg==Zg==", "Zm9v!", "Zm9-", "Zm9_", "=Zg=", "Zh==",
                          "Zm9="}) {
    EXPECT_FALSE(base64Decode(bad, true).isOk()) << bad;
  }
  EXPECT_FALSE(base64Decode(std::string_view("Zm9v\0", 5), true).isOk());
  EXPECT_FALSE(base64Decode("Zm9v\v", true).isOk());
}

TEST(Base64, WrappedEncodingBreaksLinesAt64) {
  std::string data(100, 'x');
  std::string wrapped = base64EncodeWrapped(data);
  auto nl = wrapped.find('\n');
  EXPECT_EQ(nl, 64u);
  EXPECT_EQ(wrapped.back(), '\n');
  auto r = base64Decode(wrapped, true);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, data);
}

TEST(Base64Url, EncodesWithoutPaddingAndUrlAlphabet) {
  EXPECT_EQ(base64UrlEncode("f"), "Zg");
  EXPECT_EQ(base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(base64UrlEncode(std::string("\xfb\xff", 2)), "-_8");
  std::string token = base64UrlEncode(randomBytes(16));
  EXPECT_EQ(token.size(), 22u);
  EXPECT_TRUE(allOf(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"));
  auto r = base64UrlDecode("-_8");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, std::string("\xfb\xff", 2));
  EXPECT_FALSE(base64UrlDecode("+/8").isOk());
  EXPECT_FALSE(base64UrlDecode("Zg==").isOk());
  EXPECT_FALSE(base64UrlDecode("Z").isOk());
  EXPECT_FALSE(base64UrlDecode("Zh").isOk());  // non-canonical trailing bits
}

TEST(ConstantTimeEquals, ComparesContentAndLength) {
  EXPECT_TRUE(constantTimeEquals("", ""));
  EXPECT_TRUE(constantTimeEquals("abc", "abc"));
  EXPECT_FALSE(constantTimeEquals("abc", "abd"));
  EXPECT_FALSE(constantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(constantTimeEquals("", "a"));
}

TEST(Digest, Sha256HexMatchesKnownVector) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256("abc").size(), 32u);
  EXPECT_EQ(hexEncode(std::string("\x00\xff\x10", 3)), "00ff10");
}

TEST(RandomBytes, ReturnsRequestedLengthAndDiffers) {
  EXPECT_EQ(randomBytes(0).size(), 0u);
  EXPECT_EQ(randomBytes(32).size(), 32u);
  EXPECT_NE(randomBytes(16), randomBytes(16));
}

TEST(Keys, GeneratesP256AndP384AndRefusesOtherCurves) {
  auto p256 = generateEcKey();
  ASSERT_TRUE(p256.isOk());
  EXPECT_EQ(EVP_PKEY_get_bits(p256->get()), 256);
  auto p384 = generateEcKey(NID_secp384r1);
  ASSERT_TRUE(p384.isOk());
  EXPECT_EQ(EVP_PKEY_get_bits(p384->get()), 384);
  auto other = generateEcKey(NID_secp521r1);
  EXPECT_FALSE(other.isOk());
  EXPECT_EQ(other.status().code(), core::ErrorCode::kInvalidArgument);
}

TEST(Keys, PrivateKeyPemRoundTripPreservesPublicKey) {
  auto key = generateEcKey();
  ASSERT_TRUE(key.isOk());
  auto pem = privateKeyToPem(key->get());
  ASSERT_TRUE(pem.isOk());
  EXPECT_NE(pem->find("BEGIN PRIVATE KEY"), std::string::npos);
  auto back = privateKeyFromPem(*pem);
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(EVP_PKEY_eq(key->get(), back->get()), 1);
  EXPECT_EQ(publicKeyFingerprint(key->get()), publicKeyFingerprint(back->get()));
  EXPECT_EQ(publicKeyFingerprint(key->get()).size(), 64u);
  EXPECT_FALSE(privateKeyFromPem("junk").isOk());
  EXPECT_FALSE(privateKeyFromPem("").isOk());
}

TEST(Keys, PrivateKeyFileIsWrittenOwnerOnlyAndReadsBack) {
  testing::TempDir dir("warden-crypto-key");
  auto key = generateEcKey();
  ASSERT_TRUE(key.isOk());
  const std::string path = dir.file("k.pem");
  ASSERT_TRUE(writePrivateKeyFile(path, key->get()).isOk());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = privateKeyFromPem(core::readFile(path, 64 * 1024).value());
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(EVP_PKEY_eq(key->get(), back->get()), 1);
  // A path that cannot be written is an error, and nothing appears there.
  const std::string missing = dir.file("no-such-dir/k.pem");
  EXPECT_FALSE(writePrivateKeyFile(missing, key->get()).isOk());
  EXPECT_FALSE(core::readFile(missing, 64 * 1024).isOk());
}

// genericSpki is OpenSSL's own SubjectPublicKeyInfo DER of |key|.
std::string genericSpki(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  OpenSslBytesPtr owned(der);
  return len > 0 ? std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len)) : std::string();
}

// certSpki is the SubjectPublicKeyInfo DER of a certificate whose key was
// set by setCertificatePublicKey; it also checks the in-memory key.
std::string certSpki(EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  if (!setCertificatePublicKey(cert.get(), key).isOk()) return {};
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key), 1);
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
  OpenSslBytesPtr owned(der);
  return len > 0 ? std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len)) : std::string();
}

// The EC fast paths (crypto.cc) produce exactly OpenSSL's own encoding.
TEST(Keys, EcPublicKeyInfoIsOpenSslsOwnEncoding) {
  for (const char* curve : {"P-256", "P-384", "P-521"}) {
    // Many keys: some points end in zero bytes, which a bit string without
    // an explicit "0 unused bits" would lose.
    for (int i = 0; i < 64; ++i) {
      EvpPkeyPtr key(EVP_EC_gen(curve));
      ASSERT_TRUE(key);
      const std::string generic = genericSpki(key.get());
      ASSERT_FALSE(generic.empty());
      ASSERT_EQ(publicKeyFingerprint(key.get()), sha256Hex(generic)) << curve;
      ASSERT_EQ(certSpki(key.get()), generic) << curve;
    }
  }
  // A key set to compressed points is encoded compressed on every path; a
  // key read back from that encoding is encoded as OpenSSL encodes it.
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  ASSERT_TRUE(key);
  ASSERT_EQ(EVP_PKEY_set_utf8_string_param(key.get(), OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"), 1);
  const std::string compressed = genericSpki(key.get());
  EXPECT_EQ(compressed.size(), 59u);  // 26 bytes of header + a 33-byte point
  EXPECT_EQ(publicKeyFingerprint(key.get()), sha256Hex(compressed));
  EXPECT_EQ(certSpki(key.get()), compressed);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(compressed.data());
  EvpPkeyPtr back(d2i_PUBKEY(nullptr, &p, static_cast<long>(compressed.size())));
  ASSERT_TRUE(back);
  EXPECT_EQ(publicKeyFingerprint(back.get()), sha256Hex(genericSpki(back.get())));
  EXPECT_EQ(certSpki(back.get()), genericSpki(back.get()));
  // Explicit curve parameters: encoded as OpenSSL encodes them.
  EvpPkeyPtr explicit_params(EVP_EC_gen("P-256"));
  ASSERT_TRUE(explicit_params);
  ASSERT_EQ(EVP_PKEY_set_utf8_string_param(explicit_params.get(), OSSL_PKEY_PARAM_EC_ENCODING,
                                           OSSL_PKEY_EC_ENCODING_EXPLICIT),
            1);
  EXPECT_GT(genericSpki(explicit_params.get()).size(), 91u);
  EXPECT_EQ(publicKeyFingerprint(explicit_params.get()), sha256Hex(genericSpki(explicit_params.get())));
  EXPECT_EQ(certSpki(explicit_params.get()), genericSpki(explicit_params.get()));
}

TEST(Keys, OtherKeysKeepOpenSslsEncoding) {
  EvpPkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_TRUE(ed);
  EXPECT_EQ(publicKeyFingerprint(ed.get()), sha256Hex(genericSpki(ed.get())));
  EXPECT_EQ(certSpki(ed.get()), genericSpki(ed.get()));
  EvpPkeyPtr rsa(EVP_RSA_gen(2048));
  ASSERT_TRUE(rsa);
  EXPECT_EQ(publicKeyFingerprint(rsa.get()), sha256Hex(genericSpki(rsa.get())));
  EXPECT_EQ(certSpki(rsa.get()), genericSpki(rsa.get()));
  EXPECT_FALSE(setCertificatePublicKey(nullptr, rsa.get()).isOk());
}

// makeCert builds a certificate with OpenSSL directly (this test binary links
// only warden_crypto; the CA logic is tested in unit_pki).
X509Ptr makeCert(EVP_PKEY* key, EVP_PKEY* signer, const char* cn, const char* san, X509* issuer,
                 const core::Clock& clock) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), 0x0a1b2c3d4e5f6071ULL);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  auto t = std::chrono::system_clock::to_time_t(clock.now());
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), t - 300);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), t + 86400);
  X509_set_pubkey(cert.get(), key);
  if (san != nullptr) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
    X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san));
    X509_add_ext(cert.get(), ext.get(), -1);
  }
  X509_sign(cert.get(), signer, EVP_sha256());
  return cert;
}

class CertHelpers : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root_key = generateEcKey();
    ASSERT_TRUE(root_key.isOk());
    root_key_ = std::move(root_key).value();
    root_ = makeCert(root_key_.get(), root_key_.get(), "td Warden Root CA", nullptr, nullptr, clock_);
    auto key = generateEcKey();
    ASSERT_TRUE(key.isOk());
    key_ = std::move(key).value();
    leaf_ = makeCert(key_.get(), root_key_.get(), "sensor-1",
                     "URI:spiffe://td/device/sensor-1,DNS:localhost,IP:127.0.0.1,IP:::1", root_.get(), clock_);
    ASSERT_TRUE(leaf_ && root_);
  }
  core::ManualClock clock_ = testClock();
  EvpPkeyPtr root_key_;
  X509Ptr root_;
  EvpPkeyPtr key_;
  X509Ptr leaf_;
};

TEST_F(CertHelpers, CaFingerprintIsSha256OfDerInLowercaseHex) {
  std::string fp = caFingerprint(root_.get());
  ASSERT_EQ(fp.size(), 7u + 64u) << fp;
  EXPECT_EQ(fp.substr(0, 7), "sha256:");
  EXPECT_TRUE(allOf(std::string_view(fp).substr(7), "0123456789abcdef")) << fp;
  EXPECT_EQ(fp, "sha256:" + sha256Hex(certToDer(root_.get())));
}

TEST_F(CertHelpers, PemAndDerRoundTrip) {
  std::string pem = certToPem(leaf_.get());
  auto back = certFromPem(pem);
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(X509_cmp(back->get(), leaf_.get()), 0);
  auto der = certFromDer(certToDer(leaf_.get()));
  ASSERT_TRUE(der.isOk());
  EXPECT_EQ(X509_cmp(der->get(), leaf_.get()), 0);
  EXPECT_FALSE(certFromDer(certToDer(leaf_.get()) + "x").isOk());
  EXPECT_FALSE(certFromDer("junk").isOk());
  EXPECT_FALSE(certFromPem("junk").isOk());
}

TEST_F(CertHelpers, CertsFromPemReadsABundleInOrder) {
  std::string bundle = certsToPem({leaf_.get(), root_.get()});
  auto certs = certsFromPem(bundle);
  ASSERT_TRUE(certs.isOk());
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_EQ(X509_cmp((*certs)[0].get(), leaf_.get()), 0);
  EXPECT_EQ(X509_cmp((*certs)[1].get(), root_.get()), 0);
  EXPECT_FALSE(certsFromPem("").isOk());
  EXPECT_FALSE(certsFromPem("no certificates here\n").isOk());
  EXPECT_FALSE(certsFromPem(certToPem(leaf_.get()) + "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").isOk());
}

TEST_F(CertHelpers, NameAndSanAccessors) {
  EXPECT_EQ(commonName(leaf_.get()), "sensor-1");
  EXPECT_EQ(uriSans(leaf_.get()), std::vector<std::string>{"spiffe://td/device/sensor-1"});
  EXPECT_EQ(dnsSans(leaf_.get()), std::vector<std::string>{"localhost"});
  EXPECT_EQ(ipSans(leaf_.get()), (std::vector<std::string>{"127.0.0.1", "::1"}));
  EXPECT_TRUE(uriSans(root_.get()).empty());
  EXPECT_EQ(commonName(root_.get()), "td Warden Root CA");
}

TEST_F(CertHelpers, SerialHexIsLowercaseHex) {
  EXPECT_EQ(serialHex(leaf_.get()), "0a1b2c3d4e5f6071");
}

TEST_F(CertHelpers, ValidityAccessorsMatchClock) {
  EXPECT_EQ(core::unixSeconds(notBefore(leaf_.get())), core::unixSeconds(clock_.now() - std::chrono::minutes(5)));
  EXPECT_EQ(core::unixSeconds(notAfter(leaf_.get())), core::unixSeconds(clock_.now() + std::chrono::hours(24)));
  EXPECT_EQ(core::unixSeconds(notAfter(nullptr)), 0);
}

}  // namespace
}  // namespace warden::crypto
