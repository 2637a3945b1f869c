// Tests of CRLs, OCSP request parsing and OCSP answers, CA key loading and
// the revocation pointers in issued certificates.

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "core/file_io.h"
#include "crypto/crypto.h"
#include "crypto/ocsp_ptr.h"
#include "pki/ca_key.h"
#include "pki/certificate_authority.h"
#include "pki/ocsp_request.h"
#include "pki/ocsp_responder.h"
#include "pki/revocation_list.h"

namespace warden::pki {
namespace {

using namespace std::chrono_literals;

class RevocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = createRootCa("Test Root", 24h * 365, clock_);
    ASSERT_TRUE(root.isOk());
    root_ = std::move(root).value();
    root_.name = "root";
    root_.pki_url = "http://127.0.0.1:8080";
    auto issuing = createIntermediateCa(root_, "Test Issuing", 24h * 30, 0, clock_);
    ASSERT_TRUE(issuing.isOk());
    issuing_ = std::move(issuing).value();
    issuing_.name = "issuing-1";
    issuing_.pki_url = "http://127.0.0.1:8080";
    leaf_key_ = std::move(crypto::generateEcKey()).value();
    LeafProfile p;
    p.common_name = "dev-1";
    p.uri_sans = {"spiffe://warden.local/device/dev-1"};
    leaf_ = std::move(issueLeaf(issuing_, leaf_key_.get(), p, clock_)).value();
    responder_key_ = std::move(crypto::generateEcKey()).value();
    LeafProfile r;
    r.common_name = "issuing-1 OCSP Responder";
    r.ocsp_signing = true;
    r.lifetime = 24h * 7;
    responder_ = std::move(issueLeaf(issuing_, responder_key_.get(), r, clock_)).value();
  }

  // request builds a DER OCSP request for |cert| under |issuer| with |md|
  // and, if |nonce_len| > 0, a nonce of that many octets.
  std::string request(X509* cert, X509* issuer, const EVP_MD* md, int nonce_len) {
    crypto::OcspRequestPtr req(OCSP_REQUEST_new());
    OCSP_CERTID* id = OCSP_cert_to_id(md, cert, issuer);
    EXPECT_NE(OCSP_request_add0_id(req.get(), id), nullptr);
    if (nonce_len > 0) {
      std::string nonce(static_cast<size_t>(nonce_len), 'n');
      EXPECT_EQ(OCSP_request_add1_nonce(req.get(), reinterpret_cast<unsigned char*>(nonce.data()), nonce_len), 1);
    }
    unsigned char* der = nullptr;
    int len = i2d_OCSP_REQUEST(req.get(), &der);
    crypto::OpenSslBytesPtr owned(der);
    return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  }

  OcspIssuer issuer() { return {"issuing-1", issuing_.cert.get(), responder_.get(), responder_key_.get()}; }

  core::ManualClock clock_{core::fromUnixSeconds(1'800'000'000)};
  CaMaterial root_, issuing_;
  crypto::EvpPkeyPtr leaf_key_, responder_key_;
  crypto::X509Ptr leaf_, responder_;
};

TEST(CrlReasonTest, NamesMapToRfc5280Codes) {
  EXPECT_EQ(*parseCrlReason("keyCompromise"), 1);
  EXPECT_EQ(*parseCrlReason("caCompromise"), 2);
  EXPECT_EQ(*parseCrlReason("affiliationChanged"), 3);
  EXPECT_EQ(*parseCrlReason("superseded"), 4);
  EXPECT_EQ(*parseCrlReason("cessationOfOperation"), 5);
  EXPECT_EQ(*parseCrlReason("unspecified"), 0);
  EXPECT_EQ(*parseCrlReason(""), kNoReason);
  EXPECT_EQ(parseCrlReason("certificateHold").status().code(), core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(crlReasonName(4), "superseded");
}

TEST_F(RevocationTest, CrlCarriesNumberAkiAndReasons) {
  std::vector<RevokedEntry> entries = {{crypto::serialHex(leaf_.get()), clock_.now() - 1h, 1},
                                       {"0123abcd", clock_.now(), kNoReason},
                                       {"0fff", clock_.now(), 0}};
  auto crl = makeCrl(issuing_, entries, 42, clock_.now(), clock_.now() + 24h);
  ASSERT_TRUE(crl.isOk()) << crl.status().toString();
  auto parsed = crlFromDer(crlToDer(crl->get()));
  ASSERT_TRUE(parsed.isOk());
  X509_CRL* c = parsed->get();
  EXPECT_EQ(X509_CRL_get_version(c), X509_CRL_VERSION_2);
  EXPECT_EQ(X509_CRL_verify(c, X509_get0_pubkey(issuing_.cert.get())), 1);
  crypto::Asn1IntegerPtr number(static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(c, NID_crl_number, nullptr, nullptr)));
  ASSERT_TRUE(number);
  EXPECT_EQ(ASN1_INTEGER_get(number.get()), 42);
  crypto::AuthorityKeyIdPtr aki(static_cast<AUTHORITY_KEYID*>(X509_CRL_get_ext_d2i(c, NID_authority_key_identifier, nullptr, nullptr)));
  ASSERT_TRUE(aki && aki->keyid);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki->keyid, X509_get0_subject_key_id(issuing_.cert.get())), 0);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(c);
  ASSERT_EQ(sk_X509_REVOKED_num(revoked), 3);
  X509_REVOKED* found = nullptr;
  ASSERT_EQ(X509_CRL_get0_by_serial(c, &found, X509_get0_serialNumber(leaf_.get())), 1);
  crypto::Asn1EnumeratedPtr reason(static_cast<ASN1_ENUMERATED*>(X509_REVOKED_get_ext_d2i(found, NID_crl_reason, nullptr, nullptr)));
  ASSERT_TRUE(reason);
  EXPECT_EQ(ASN1_ENUMERATED_get(reason.get()), 1);
  EXPECT_EQ(crlNextUpdate(c), clock_.now() + 24h);
  EXPECT_NE(crlToPem(c).find("BEGIN X509 CRL"), std::string::npos);
}

TEST_F(RevocationTest, CrlRefusesBadInput) {
  EXPECT_FALSE(makeCrl(issuing_, {}, 1, clock_.now(), clock_.now()).isOk());
  EXPECT_FALSE(makeCrl(issuing_, {}, 0, clock_.now(), clock_.now() + 1h).isOk());
  EXPECT_FALSE(makeCrl(issuing_, {{"xyz", clock_.now(), 1}}, 1, clock_.now(), clock_.now() + 1h).isOk());
}

TEST_F(RevocationTest, IssuedCertificatesNameTheirRevocationSources) {
  auto cdp = [](X509* cert) {
    crypto::BioPtr bio(BIO_new(BIO_s_mem()));
    X509_print_ex(bio.get(), cert, 0, 0);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
  };
  std::string leaf_text = cdp(leaf_.get());
  EXPECT_NE(leaf_text.find("URI:http://127.0.0.1:8080/pki/issuing-1.crl"), std::string::npos) << leaf_text;
  EXPECT_NE(leaf_text.find("OCSP - URI:http://127.0.0.1:8080/ocsp"), std::string::npos) << leaf_text;
  EXPECT_NE(leaf_text.find("CA Issuers - URI:http://127.0.0.1:8080/pki/issuing-1.crt"), std::string::npos);
  std::string ca_text = cdp(issuing_.cert.get());
  EXPECT_NE(ca_text.find("URI:http://127.0.0.1:8080/pki/root.crl"), std::string::npos) << ca_text;
  EXPECT_EQ(ca_text.find("OCSP"), std::string::npos);
  // The responder: OCSPSigning only, nocheck, no pointers (RFC 6960 §4.2.2.2.1).
  EXPECT_EQ(X509_get_extended_key_usage(responder_.get()), static_cast<uint32_t>(XKU_OCSP_SIGN));
  EXPECT_GE(X509_get_ext_by_NID(responder_.get(), NID_id_pkix_OCSP_noCheck, -1), 0);
  EXPECT_LT(X509_get_ext_by_NID(responder_.get(), NID_crl_distribution_points, -1), 0);
  // No URL, no pointers.
  CaMaterial plain{crypto::X509Ptr(X509_dup(issuing_.cert.get())), nullptr, "issuing-1", ""};
  EVP_PKEY_up_ref(issuing_.key.get());
  plain.key.reset(issuing_.key.get());
  LeafProfile p;
  p.common_name = "x";
  auto bare = issueLeaf(plain, leaf_key_.get(), p, clock_);
  ASSERT_TRUE(bare.isOk());
  EXPECT_LT(X509_get_ext_by_NID(bare->get(), NID_crl_distribution_points, -1), 0);
  EXPECT_LT(X509_get_ext_by_NID(bare->get(), NID_info_access, -1), 0);
}

TEST(PkiUrlTest, OnlyPlainHttpWithoutSpecials) {
  EXPECT_TRUE(isValidPkiUrl("http://pki.example:8080"));
  EXPECT_TRUE(isValidPkiUrl("http://127.0.0.1:8080/warden"));
  EXPECT_FALSE(isValidPkiUrl("https://pki.example"));
  EXPECT_FALSE(isValidPkiUrl("http://a,URI:http://evil"));
  EXPECT_FALSE(isValidPkiUrl("http://pki.example/"));
  EXPECT_FALSE(isValidPkiUrl("http://pki example"));
  EXPECT_FALSE(isValidPkiUrl("http://x?y"));
}

TEST_F(RevocationTest, OcspRequestsParseWithSha1AndSha256AndNonces) {
  for (const EVP_MD* md : {EVP_sha1(), EVP_sha256()}) {
    for (int nonce : {0, 1, 16, 32}) {
      auto parsed = parseOcspRequest(request(leaf_.get(), issuing_.cert.get(), md, nonce));
      ASSERT_TRUE(parsed.isOk()) << parsed.status().toString();
      ASSERT_EQ(parsed->ids.size(), 1u);
      EXPECT_EQ(parsed->ids[0].serial_hex, crypto::serialHex(leaf_.get()));
      EXPECT_EQ(parsed->has_nonce, nonce > 0);
      std::vector<OcspIssuer> issuers = {issuer()};
      EXPECT_EQ(matchOcspIssuer(*parsed, issuers), 0);
    }
  }
}

TEST_F(RevocationTest, OcspRejectsMalformedRequests) {
  std::string good = request(leaf_.get(), issuing_.cert.get(), EVP_sha1(), 16);
  EXPECT_FALSE(parseOcspRequest("").isOk());
  EXPECT_FALSE(parseOcspRequest("garbage").isOk());
  EXPECT_FALSE(parseOcspRequest(good + "x").isOk());              // trailing bytes
  EXPECT_FALSE(parseOcspRequest(good.substr(0, good.size() - 3)).isOk());  // truncated
  EXPECT_FALSE(parseOcspRequest(std::string(kMaxOcspRequestBytes + 1, '\x30')).isOk());
  EXPECT_FALSE(parseOcspRequest(request(leaf_.get(), issuing_.cert.get(), EVP_sha1(), 33)).isOk());
  // More CertIDs than allowed.
  crypto::OcspRequestPtr req(OCSP_REQUEST_new());
  for (size_t i = 0; i <= kMaxOcspCertIds; ++i) {
    OCSP_request_add0_id(req.get(), OCSP_cert_to_id(EVP_sha1(), leaf_.get(), issuing_.cert.get()));
  }
  unsigned char* der = nullptr;
  int len = i2d_OCSP_REQUEST(req.get(), &der);
  crypto::OpenSslBytesPtr owned(der);
  EXPECT_FALSE(parseOcspRequest(std::string(reinterpret_cast<char*>(der), static_cast<size_t>(len))).isOk());
}

TEST_F(RevocationTest, OcspGetPathIsUrlEscapedBase64) {
  std::string der = request(leaf_.get(), issuing_.cert.get(), EVP_sha256(), 8);
  std::string b64 = crypto::base64Encode(der);
  std::string escaped;
  for (char c : b64) {
    if (c == '+') escaped += "%2B";
    else if (c == '/') escaped += "%2F";
    else if (c == '=') escaped += "%3D";
    else escaped.push_back(c);
  }
  EXPECT_EQ(*decodeOcspGetPath(b64), der);
  EXPECT_EQ(*decodeOcspGetPath(escaped), der);
  EXPECT_FALSE(decodeOcspGetPath("%Z1").isOk());
  EXPECT_FALSE(decodeOcspGetPath("abc%").isOk());
  EXPECT_FALSE(decodeOcspGetPath("!!!").isOk());
}

TEST_F(RevocationTest, ForeignIssuerIsUnauthorized) {
  auto other = createRootCa("Other", 24h, clock_);
  auto parsed = parseOcspRequest(request(leaf_.get(), other->cert.get(), EVP_sha1(), 0));
  ASSERT_TRUE(parsed.isOk());
  std::vector<OcspIssuer> issuers = {issuer()};
  EXPECT_EQ(matchOcspIssuer(*parsed, issuers), -1);
}

TEST_F(RevocationTest, OcspAnswerIsSignedByTheResponderAndEchoesTheNonce) {
  std::string der = request(leaf_.get(), issuing_.cert.get(), EVP_sha256(), 20);
  auto parsed = parseOcspRequest(der);
  ASSERT_TRUE(parsed.isOk());
  OcspStatus revoked;
  revoked.status = OcspCertStatus::kRevoked;
  revoked.revoked_at = clock_.now() - 1h;
  revoked.reason = 1;
  auto answer = makeOcspResponse(*parsed, issuer(), {revoked}, clock_.now(), clock_.now() + 1h);
  ASSERT_TRUE(answer.isOk()) << answer.status().toString();
  const auto* p = reinterpret_cast<const unsigned char*>(answer->data());
  crypto::OcspResponsePtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(answer->size())));
  ASSERT_TRUE(resp);
  EXPECT_EQ(OCSP_response_status(resp.get()), OCSP_RESPONSE_STATUS_SUCCESSFUL);
  crypto::OcspBasicRespPtr basic(OCSP_response_get1_basic(resp.get()));
  ASSERT_TRUE(basic);
  EXPECT_EQ(OCSP_check_nonce(parsed->request.get(), basic.get()), 1);
  // Verifies with the issuing CA as the trust anchor via the delegated responder.
  crypto::X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root_.cert.get());
  crypto::StackOfX509Ptr chain(sk_X509_new_null());
  X509_up_ref(issuing_.cert.get());
  sk_X509_push(chain.get(), issuing_.cert.get());
  X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store.get()), std::chrono::system_clock::to_time_t(clock_.now()));
  EXPECT_EQ(OCSP_basic_verify(basic.get(), chain.get(), store.get(), 0), 1);
  int status = 0, reason = 0;
  ASN1_GENERALIZEDTIME *rev = nullptr, *thisupd = nullptr, *nextupd = nullptr;
  ASSERT_EQ(OCSP_resp_find_status(basic.get(), parsed->ids[0].id, &status, &reason, &rev, &thisupd, &nextupd), 1);
  EXPECT_EQ(status, V_OCSP_CERTSTATUS_REVOKED);
  EXPECT_EQ(reason, 1);
  // Error answers are unsigned OCSPResponses with the status only.
  std::string err = ocspErrorResponse(OCSP_RESPONSE_STATUS_UNAUTHORIZED);
  p = reinterpret_cast<const unsigned char*>(err.data());
  crypto::OcspResponsePtr e(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(err.size())));
  ASSERT_TRUE(e);
  EXPECT_EQ(OCSP_response_status(e.get()), OCSP_RESPONSE_STATUS_UNAUTHORIZED);
}

TEST(CaKeyTest, LoadsFileReferencesOnly) {
  auto dir = std::filesystem::temp_directory_path() / ("warden-cakey-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto key = crypto::generateEcKey();
  const std::string path = (dir / "ca.key").string();
  ASSERT_TRUE(core::writeFileAtomic(path, *crypto::privateKeyToPem(key->get()), 0600).isOk());
  EXPECT_TRUE(loadCaKey(path).isOk());
  EXPECT_TRUE(loadCaKey("file:" + path).isOk());
  EXPECT_EQ(loadCaKey("").status().code(), core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(loadCaKey("relative/ca.key").status().code(), core::ErrorCode::kInvalidArgument);
  // A PKCS#11 URI goes to the key store, which refuses one without a module.
  EXPECT_FALSE(loadCaKey("pkcs11:token=warden;object=ca").isOk());
  EXPECT_EQ(loadCaKey("tpm:0x81000002").status().code(), core::ErrorCode::kInvalidArgument);
  EXPECT_FALSE(loadCaKey((dir / "missing.key").string()).isOk());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace warden::pki
