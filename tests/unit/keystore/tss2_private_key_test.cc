#include "keystore/tss2_private_key.h"

#include <string>

#include <gtest/gtest.h>

#include "core/status.h"

namespace warden::keystore {
namespace {

using core::ErrorCode;

// Made by tpm2-openssl (`openssl genpkey -provider tpm2 -algorithm EC
// -pkeyopt group:P-256 -pkeyopt parent:0x81000001`) on a throw-away swtpm:
// what Tpm2KeyStore writes (also fuzz/corpus/tss2_key/warden-srk-child.pem).
constexpr char kSrkChildPem[] = R"(-----BEGIN TSS2 PRIVATE KEY-----
MIHxBgZngQUKAQOgAwEBAQIFAIEAAAEEWABWACMACwAGAHIAAAAQABAAAwAQACAV
juFr7+mBuog8cjiINN/d9QBiXoy6ZZJOXqMROR6/kwAguCmnaJdO9Iq6WA3gGhlV
dt1NtOovrTXEXgCx3sfJIdUEgYAAfgAgqTKKw9TQOcVnPZh1Rx7JJXdy0/+U/V14
NKJyrzd8tjMAELrRec8Imoq/lNdwXrAKOkXtRSUuUrr+5DNTQ0xLc8L1k7c412Kn
vSo+4gCTHs3jIphAxkR2NCjztxrvE+K5ikxqHH90s2GYX7dMHdZa/QqT3+04sSjp
tmTWtQ==
-----END TSS2 PRIVATE KEY-----
)";

// tlv builds one DER element (minimal definite length, at most 2 length bytes).
std::string tlv(uint8_t tag, const std::string& contents) {
  std::string out(1, static_cast<char>(tag));
  if (contents.size() < 0x80) {
    out.push_back(static_cast<char>(contents.size()));
  } else if (contents.size() < 0x100) {
    out.push_back(static_cast<char>(0x81));
    out.push_back(static_cast<char>(contents.size()));
  } else {
    out.push_back(static_cast<char>(0x82));
    out.push_back(static_cast<char>(contents.size() >> 8));
    out.push_back(static_cast<char>(contents.size() & 0xff));
  }
  return out + contents;
}

const std::string kOid = tlv(0x06, std::string("\x67\x81\x05\x0a\x01\x03", 6));
const std::string kEmptyAuth = tlv(0xa0, tlv(0x01, std::string(1, '\xff')));
const std::string kParent = tlv(0x02, std::string("\x00\x81\x00\x00\x01", 5));
const std::string kPub = tlv(0x04, std::string("\x00\x03\x01\x02\x03", 5));
const std::string kPriv = tlv(0x04, std::string("\x00\x02\x04\x05", 4));

std::string key(const std::string& fields) { return tlv(0x30, fields); }

TEST(Tss2PrivateKey, ParsesWhatTheTpm2ProviderWrites) {
  auto k = parseTss2PrivateKeyPem(kSrkChildPem);
  ASSERT_TRUE(k.isOk()) << k.status().message();
  EXPECT_EQ(k->parent, 0x81000001u);
  EXPECT_EQ(k->key_public.size(), 88u);
  EXPECT_EQ(k->key_private.size(), 128u);
}

TEST(Tss2PrivateKey, ParsesAMinimalKey) {
  auto k = parseTss2PrivateKeyDer(key(kOid + kEmptyAuth + kParent + kPub + kPriv));
  ASSERT_TRUE(k.isOk()) << k.status().message();
  EXPECT_EQ(k->parent, 0x81000001u);
  EXPECT_EQ(k->key_public, std::string("\x00\x03\x01\x02\x03", 5));
  EXPECT_EQ(k->key_private, std::string("\x00\x02\x04\x05", 4));
  EXPECT_TRUE(parseTss2PrivateKeyDer(key(kOid + kParent + kPub + kPriv)).isOk());  // emptyAuth is optional
  const std::string description = tlv(0xa4, tlv(0x0c, "device key"));
  EXPECT_TRUE(parseTss2PrivateKeyDer(key(kOid + kEmptyAuth + description + kParent + kPub + kPriv)).isOk());
}

TEST(Tss2PrivateKey, RefusesWhatItCannotLoad) {
  const auto code = [](const std::string& der) { return parseTss2PrivateKeyDer(der).status().code(); };
  // A key with a password, a policy or an imported secret.
  EXPECT_EQ(code(key(kOid + tlv(0xa0, tlv(0x01, std::string(1, '\0'))) + kParent + kPub + kPriv)),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(key(kOid + tlv(0xa1, tlv(0x30, "")) + kParent + kPub + kPriv)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(key(kOid + tlv(0xa2, tlv(0x04, "x")) + kParent + kPub + kPriv)), ErrorCode::kInvalidArgument);
  // Another type: an importable key (2.23.133.10.1.4).
  EXPECT_EQ(code(key(tlv(0x06, std::string("\x67\x81\x05\x0a\x01\x04", 6)) + kParent + kPub + kPriv)),
            ErrorCode::kInvalidArgument);
  // A parent that is not persistent (the owner hierarchy: a primary made from a template).
  EXPECT_EQ(code(key(kOid + tlv(0x02, std::string("\x40\x00\x00\x01", 4)) + kPub + kPriv)),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(key(kOid + tlv(0x02, std::string("\x81\x00\x00\x01", 4)) + kPub + kPriv)),  // negative
            ErrorCode::kInvalidArgument);
}

TEST(Tss2PrivateKey, RefusesMalformedDer) {
  const auto code = [](const std::string& der) { return parseTss2PrivateKeyDer(der).status().code(); };
  const std::string good = key(kOid + kEmptyAuth + kParent + kPub + kPriv);
  for (size_t n = 0; n < good.size(); ++n) EXPECT_EQ(code(good.substr(0, n)), ErrorCode::kInvalidArgument) << n;
  EXPECT_EQ(code(good + std::string(1, '\0')), ErrorCode::kInvalidArgument);                      // trailing bytes
  EXPECT_EQ(code(key(kOid + kEmptyAuth + kParent + kPub + kPriv + kPriv)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(key(kOid + kParent + tlv(0x04, std::string("\x00\x09\x01", 3)) + kPriv)),        // TPM2B size lies
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(key(kOid + kEmptyAuth + kEmptyAuth + kParent + kPub + kPriv)), ErrorCode::kInvalidArgument);
  // DER lengths are minimal: 0x82 0x00 NN is BER, refused.
  const std::string fields = kOid + kEmptyAuth + kParent + kPub + kPriv;
  EXPECT_EQ(code(std::string("\x30\x82\x00", 3) + static_cast<char>(fields.size()) + fields),
            ErrorCode::kInvalidArgument);
  std::string indefinite = good;
  indefinite[1] = static_cast<char>(0x80);
  EXPECT_EQ(code(indefinite), ErrorCode::kInvalidArgument);
}

TEST(Tss2PrivateKey, RefusesOtherPemBlocks) {
  EXPECT_EQ(parseTss2PrivateKeyPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(parseTss2PrivateKeyPem("not pem").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(parseTss2PrivateKeyPem(std::string(kMaxTss2PemBytes + 1, 'A')).status().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace warden::keystore
