#include "pki/est_body.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/pkcs7.h>

#include "core/file_io.h"
#include "crypto/crypto.h"
#include "pki/certificate_authority.h"
#include "pki_test_util.h"

namespace warden::pki {
namespace {

using testing::estBody;
using testing::keygen;
using testing::makeCsr;

// reasonFor returns "ok" or the refusal of |body| by parseEstCsrBody and
// checkCsr, after checking that checkedCsrKey, the server's route, gives the
// same answer and the same key.
std::string reasonFor(std::string_view body) {
  auto key = checkedCsrKey(body);
  auto csr = parseEstCsrBody(body);
  core::Status st = csr.isOk() ? checkCsr(csr->get()) : csr.status();
  std::string full = st.isOk() ? "ok" : st.message();
  EXPECT_EQ(key.isOk() ? "ok" : key.status().message(), full) << "checkedCsrKey and parse + check disagree";
  if (key.isOk() && st.isOk()) {
    EXPECT_EQ(EVP_PKEY_eq(key->get(), X509_REQ_get0_pubkey(csr->get())), 1);
  }
  return full;
}

// run executes |cmd| with /bin/sh and returns its stdout; |rc| gets the exit status.
std::string run(const std::string& cmd, int& rc) {
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    rc = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  rc = pclose(pipe);
  return out;
}

TEST(ParseEstCsrBody, AcceptsP256WithLineBreaks) {
  auto key = keygen("EC", "P-256");
  auto csr = makeCsr(key.get(), EVP_sha256());
  std::string body = estBody(csr.get());
  ASSERT_NE(body.find("\r\n"), std::string::npos);
  auto parsed = parseEstCsrBody(body);
  ASSERT_TRUE(parsed.isOk()) << parsed.status().toString();
  EXPECT_TRUE(checkCsr(parsed->get()).isOk());
  EXPECT_EQ(EVP_PKEY_eq(X509_REQ_get0_pubkey(parsed->get()), key.get()), 1);
}

TEST(ParseEstCsrBody, AcceptsSingleLineBody) {
  auto key = keygen("EC", "P-256");
  auto csr = makeCsr(key.get(), EVP_sha256());
  EXPECT_EQ(reasonFor(crypto::base64Encode(testing::csrDer(csr.get()))), "ok");
}

TEST(CheckCsr, RefusesP384AsCsrAttrsAnnouncesP256) {
  auto key = keygen("EC", "P-384");
  auto csr = makeCsr(key.get(), EVP_sha256());
  EXPECT_EQ(reasonFor(crypto::base64Encode(testing::csrDer(csr.get()))),
            "EC curve secp384r1 is not accepted: use an EC P-256 key (GET /.well-known/est/csrattrs)");
}

TEST(CheckCsr, RefusesSignatureOtherThanEcdsaSha256) {
  auto key = keygen("EC", "P-256");
  auto csr = makeCsr(key.get(), EVP_sha384());
  EXPECT_EQ(reasonFor(crypto::base64Encode(testing::csrDer(csr.get()))),
            "CSR is signed with ecdsa-with-SHA384: sign it with ECDSA and SHA-256 (GET /.well-known/est/csrattrs)");
}

TEST(ParseEstCsrBody, AcceptsCsrMadeByOpensslReq) {
  testing::TempDir dir;
  int rc = 0;
  run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=dev -keyout " +
          dir.file("k.pem") + " -outform DER -out " + dir.file("c.der") + " 2>/dev/null",
      rc);
  ASSERT_EQ(rc, 0);
  auto der = core::readFile(dir.file("c.der"));
  ASSERT_TRUE(der.isOk());
  // `openssl base64` wraps at 64 columns, as `curl --data-binary @file` would send it.
  EXPECT_EQ(reasonFor(crypto::base64EncodeWrapped(*der)), "ok");
}

TEST(CheckCsr, RefusesRsa2048WithOneLineReason) {
  auto key = keygen("RSA");
  auto csr = makeCsr(key.get(), EVP_sha256());
  EXPECT_EQ(reasonFor(estBody(csr.get())), "key type RSA is not accepted: use an EC P-256 key (GET /.well-known/est/csrattrs)");
}

TEST(CheckCsr, RefusesEd25519) {
  auto key = keygen("ED25519");
  auto csr = makeCsr(key.get(), nullptr);
  EXPECT_EQ(reasonFor(estBody(csr.get())), "key type ED25519 is not accepted: use an EC P-256 key (GET /.well-known/est/csrattrs)");
}

TEST(CheckCsr, RefusesOtherCurves) {
  auto key = keygen("EC", "secp256k1");
  auto csr = makeCsr(key.get(), EVP_sha256());
  EXPECT_EQ(reasonFor(estBody(csr.get())), "EC curve secp256k1 is not accepted: use an EC P-256 key (GET /.well-known/est/csrattrs)");
  auto p521 = keygen("EC", "P-521");
  EXPECT_NE(reasonFor(estBody(makeCsr(p521.get(), EVP_sha512()).get())), "ok");
}

TEST(CheckCsr, RefusesBadSignature) {
  auto key = keygen("EC", "P-256");
  auto csr = makeCsr(key.get(), EVP_sha256());
  std::string der = testing::csrDer(csr.get());
  // Re-sign the same request body with another key: structure intact, signature wrong.
  auto other = keygen("EC", "P-256");
  crypto::X509ReqPtr forged = makeCsr(other.get(), EVP_sha256());
  // Swap the public key after signing so the signature no longer matches it.
  ASSERT_EQ(X509_REQ_set_pubkey(forged.get(), key.get()), 1);
  EXPECT_EQ(reasonFor(crypto::base64Encode(testing::csrDer(forged.get()))), "CSR signature is invalid");
  // Flip a bit inside the signed subject (CN "requested-cn" -> "requested-co").
  auto pos = der.find("requested-cn");
  ASSERT_NE(pos, std::string::npos);
  der[pos + 11] = 'o';
  EXPECT_EQ(reasonFor(crypto::base64Encode(der)), "CSR signature is invalid");
}

TEST(ParseEstCsrBody, RefusesJunkNotBase64TooLargeEmptyAndTrailingBytes) {
  EXPECT_EQ(reasonFor("not base64 at all!"), "request body is not base64");
  EXPECT_EQ(reasonFor("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"),
            "request body is not base64");
  EXPECT_EQ(reasonFor(crypto::base64Encode("this is junk, not DER")), "request body is not a DER PKCS#10 CSR");
  EXPECT_EQ(reasonFor(""), "request body is empty");
  EXPECT_EQ(reasonFor("\r\n  \n"), "request body is empty");
  EXPECT_EQ(reasonFor(std::string(kMaxEstBodyBytes + 1, 'A')), "request body is larger than 16384 bytes");
  auto key = keygen("EC", "P-256");
  auto csr = makeCsr(key.get(), EVP_sha256());
  EXPECT_EQ(reasonFor(crypto::base64Encode(testing::csrDer(csr.get()) + "x")),
            "request body is not a DER PKCS#10 CSR");
  // A certificate is DER but not a CSR.
  core::ManualClock clock(core::fromUnixSeconds(1'780'000'000));
  auto root = createRootCa("r", std::chrono::hours(24), clock);
  ASSERT_TRUE(root.isOk());
  EXPECT_EQ(reasonFor(crypto::base64Encode(crypto::certToDer(root->cert.get()))), "request body is not a DER PKCS#10 CSR");
}

TEST(CheckedCsrKey, ReturnsTheRequestsKeyInTheFormItsFingerprintNeeds) {
  auto key = keygen("EC", "P-256");
  auto csr = makeCsr(key.get(), EVP_sha256());
  auto got = checkedCsrKey(estBody(csr.get()));
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(EVP_PKEY_eq(got->get(), key.get()), 1);
  // Pending requests are bound to this fingerprint, and certificates carry the key.
  EXPECT_EQ(crypto::publicKeyFingerprint(got->get()), crypto::publicKeyFingerprint(key.get()));
  auto cert = crypto::X509Ptr(X509_new());
  ASSERT_TRUE(crypto::setCertificatePublicKey(cert.get(), got->get()).isOk());
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()), 1);
}

TEST(CheckedCsrKey, ReadsOtherFormsTheFullWay) {
  // A compressed point is valid and accepted, through parseEstCsrBody.
  auto key = keygen("EC", "P-256");
  unsigned char point[65];
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point, &len), 1);
  ASSERT_EQ(EVP_PKEY_set_utf8_string_param(key.get(), OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                           OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED),
            1);
  auto compressed = makeCsr(key.get(), EVP_sha256());
  ASSERT_EQ(testing::csrDer(compressed.get()).find(std::string(reinterpret_cast<const char*>(point), len)),
            std::string::npos);
  EXPECT_EQ(reasonFor(estBody(compressed.get())), "ok");
  // A request claiming version 2: the same answer both ways, whatever OpenSSL makes of it.
  auto plain = keygen("EC", "P-256");
  auto v2 = makeCsr(plain.get(), EVP_sha256());
  ASSERT_EQ(X509_REQ_set_version(v2.get(), 1), 1);
  ASSERT_GT(X509_REQ_sign(v2.get(), plain.get(), EVP_sha256()), 0);
  (void)reasonFor(estBody(v2.get()));
}

TEST(CheckedCsrKey, RefusesAPointOffTheCurve) {
  auto key = keygen("EC", "P-256");
  auto csr = makeCsr(key.get(), EVP_sha256());
  std::string der = testing::csrDer(csr.get());
  unsigned char point[65];
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point, &len), 1);
  auto pos = der.find(std::string(reinterpret_cast<const char*>(point), len));
  ASSERT_NE(pos, std::string::npos);
  der[pos + len - 1] ^= 0x01;  // the last byte of Y: no longer on the curve
  EXPECT_NE(reasonFor(crypto::base64Encode(der)), "ok");
}

class Pkcs7Test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = createRootCa("td Warden Root CA", std::chrono::hours(24 * 3650), clock_);
    ASSERT_TRUE(root.isOk());
    root_ = std::move(root).value();
    auto issuing = createIntermediateCa(root_, "td Warden Issuing CA", std::chrono::hours(24 * 1825), 0, clock_);
    ASSERT_TRUE(issuing.isOk());
    issuing_ = std::move(issuing).value();
  }
  core::ManualClock clock_{core::fromUnixSeconds(1'780'000'000)};
  CaMaterial root_, issuing_;
};

TEST_F(Pkcs7Test, CertsOnlyRoundTripsInOrder) {
  std::string body = pkcs7CertsOnly({root_.cert.get(), issuing_.cert.get()});
  ASSERT_FALSE(body.empty());
  EXPECT_EQ(body.find('\n'), 64u);
  auto certs = parsePkcs7CertsOnly(body);
  ASSERT_TRUE(certs.isOk()) << certs.status().toString();
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_EQ(X509_cmp((*certs)[0].get(), root_.cert.get()), 0);
  EXPECT_EQ(X509_cmp((*certs)[1].get(), issuing_.cert.get()), 0);
}

TEST_F(Pkcs7Test, CertsOnlyHasNoSignersAndDetachedContent) {
  auto der = crypto::base64Decode(pkcs7CertsOnly({root_.cert.get()}), true);
  ASSERT_TRUE(der.isOk());
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der->data());
  crypto::Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der->size())));
  ASSERT_TRUE(p7);
  ASSERT_TRUE(PKCS7_type_is_signed(p7.get()));
  EXPECT_EQ(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
  EXPECT_EQ(PKCS7_get_detached(p7.get()), 1);
}

TEST_F(Pkcs7Test, OpensslPkcs7PrintCertsReadsOurBody) {
  testing::TempDir dir;
  ASSERT_TRUE(core::writeFileAtomic(dir.file("p7.b64"), pkcs7CertsOnly({root_.cert.get(), issuing_.cert.get()})).isOk());
  int rc = 0;
  // What an `openssl req` + `curl` client does with the simpleenroll/cacerts response.
  std::string out = run("openssl base64 -d -in " + dir.file("p7.b64") + " | openssl pkcs7 -inform DER -print_certs 2>&1", rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("subject=CN = td Warden Root CA"), std::string::npos) << out;
  EXPECT_NE(out.find("subject=CN = td Warden Issuing CA"), std::string::npos) << out;
  EXPECT_NE(out.find(crypto::certToPem(issuing_.cert.get())), std::string::npos);
}

TEST_F(Pkcs7Test, ParsesOpensslCrl2Pkcs7Output) {
  testing::TempDir dir;
  ASSERT_TRUE(core::writeFileAtomic(dir.file("certs.pem"),
                                    crypto::certsToPem({issuing_.cert.get(), root_.cert.get()})).isOk());
  int rc = 0;
  std::string b64 = run("openssl crl2pkcs7 -nocrl -certfile " + dir.file("certs.pem") +
                            " -outform DER | openssl base64",
                        rc);
  ASSERT_EQ(rc, 0);
  auto certs = parsePkcs7CertsOnly(b64);
  ASSERT_TRUE(certs.isOk()) << certs.status().toString();
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_EQ(X509_cmp((*certs)[0].get(), issuing_.cert.get()), 0);
}

TEST_F(Pkcs7Test, ParseRefusesJunkTrailingBytesEmptyAndOversize) {
  EXPECT_FALSE(parsePkcs7CertsOnly("").isOk());
  EXPECT_FALSE(parsePkcs7CertsOnly("!!!").isOk());
  EXPECT_FALSE(parsePkcs7CertsOnly(crypto::base64Encode("junk")).isOk());
  auto der = crypto::base64Decode(pkcs7CertsOnly({root_.cert.get()}), true);
  ASSERT_TRUE(der.isOk());
  EXPECT_FALSE(parsePkcs7CertsOnly(crypto::base64Encode(*der + std::string(1, '\0'))).isOk());
  EXPECT_FALSE(parsePkcs7CertsOnly(crypto::base64Encode(der->substr(0, der->size() - 1))).isOk());
  EXPECT_FALSE(parsePkcs7CertsOnly(std::string(70 * 1024, 'A')).isOk());
  // A bare certificate is not PKCS#7.
  EXPECT_FALSE(parsePkcs7CertsOnly(crypto::base64Encode(crypto::certToDer(root_.cert.get()))).isOk());
}

TEST_F(Pkcs7Test, ParseRefusesSignedDataWithoutCertificates) {
  std::string empty = pkcs7CertsOnly({});
  ASSERT_FALSE(empty.empty());
  auto r = parsePkcs7CertsOnly(empty);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "PKCS#7 body holds no certificate");
}

TEST_F(Pkcs7Test, ParseRefusesSignedDataWithSigners) {
  testing::TempDir dir;
  auto key_pem = crypto::privateKeyToPem(root_.key.get());
  ASSERT_TRUE(core::writeFileAtomic(dir.file("k.pem"), *key_pem).isOk());
  ASSERT_TRUE(core::writeFileAtomic(dir.file("c.pem"), crypto::certToPem(root_.cert.get())).isOk());
  ASSERT_TRUE(core::writeFileAtomic(dir.file("msg"), "hello").isOk());
  int rc = 0;
  std::string b64 = run("openssl smime -sign -binary -nodetach -in " + dir.file("msg") + " -signer " + dir.file("c.pem") +
                            " -inkey " + dir.file("k.pem") + " -outform DER | openssl base64",
                        rc);
  ASSERT_EQ(rc, 0);
  auto r = parsePkcs7CertsOnly(b64);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "PKCS#7 body has signers: expected certs-only");
}

}  // namespace
}  // namespace warden::pki
