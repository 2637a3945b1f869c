#include "pki/manufacturer_anchors.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "crypto/crypto.h"
#include "unit/testing/factory_certs.h"

namespace warden::pki {
namespace {

using warden::testing::FactoryCert;
using warden::testing::makeFactoryCa;
using warden::testing::makeIdevid;

TEST(ManufacturerAnchors, VerifiesIdevidsWithAndWithoutEkuAndFarNotAfter) {
  auto acme = makeFactoryCa("Acme IDevID CA");
  ManufacturerAnchors anchors;
  ASSERT_TRUE(anchors.replace({{"acme", acme.certPem()}}).isOk());
  EXPECT_EQ(anchors.size(), 1u);
  auto plain = makeIdevid(acme, "sn1");
  auto with_eku = makeIdevid(acme, "sn2", "acme-sensor", /*eku=*/true);
  EXPECT_EQ(anchors.verify(plain.cert.get(), nullptr), std::optional<std::string>("acme"));
  EXPECT_EQ(anchors.verify(with_eku.cert.get(), nullptr), std::optional<std::string>("acme"));
}

TEST(ManufacturerAnchors, LookAlikeCaWithTheSameNameIsRefused) {
  auto acme = makeFactoryCa("Acme IDevID CA");
  auto lookalike = makeFactoryCa("Acme IDevID CA");  // same subject, another key
  ManufacturerAnchors anchors;
  ASSERT_TRUE(anchors.replace({{"acme", acme.certPem()}}).isOk());
  auto forged = makeIdevid(lookalike, "sn1");
  EXPECT_FALSE(anchors.verify(forged.cert.get(), nullptr).has_value());
  // Even when the peer sends the look-alike CA along.
  crypto::StackOfX509Ptr chain(sk_X509_new_null());
  X509_up_ref(lookalike.cert.get());
  sk_X509_push(chain.get(), lookalike.cert.get());
  EXPECT_FALSE(anchors.verify(forged.cert.get(), chain.get()).has_value());
}

TEST(ManufacturerAnchors, ClassifiesFleetBeforeManufacturersAndNoneOtherwise) {
  auto fleet_ca = makeFactoryCa("Fleet Issuing", "Warden");
  auto acme = makeFactoryCa("Acme IDevID CA");
  crypto::X509StorePtr fleet(X509_STORE_new());
  ASSERT_EQ(X509_STORE_add_cert(fleet.get(), fleet_ca.cert.get()), 1);
  ManufacturerAnchors anchors;
  ASSERT_TRUE(anchors.replace({{"acme", acme.certPem()}}).isOk());
  auto device = makeIdevid(fleet_ca, "", "dev-1", true);
  auto idevid = makeIdevid(acme, "sn1");
  auto stranger = makeIdevid(makeFactoryCa("Other"), "sn1");
  EXPECT_EQ(classifyClientCertificate(device.cert.get(), nullptr, fleet.get(), &anchors).kind,
            ClientAnchor::Kind::kFleet);
  ClientAnchor a = classifyClientCertificate(idevid.cert.get(), nullptr, fleet.get(), &anchors);
  EXPECT_EQ(a.kind, ClientAnchor::Kind::kManufacturer);
  EXPECT_EQ(a.manufacturer, "acme");
  EXPECT_EQ(classifyClientCertificate(stranger.cert.get(), nullptr, fleet.get(), &anchors).kind,
            ClientAnchor::Kind::kNone);
  // A removed manufacturer no longer validates anything.
  ASSERT_TRUE(anchors.replace({}).isOk());
  EXPECT_EQ(classifyClientCertificate(idevid.cert.get(), nullptr, fleet.get(), &anchors).kind,
            ClientAnchor::Kind::kNone);
}

// handshake runs a TLS handshake in memory between a server on |server_ctx|
// and a client presenting |client|; it returns the server's SSL (nullptr if
// the handshake failed).
crypto::SslPtr handshake(SSL_CTX* server_ctx, const FactoryCert& client) {
  crypto::SslCtxPtr cctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(cctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_use_certificate(cctx.get(), client.cert.get());
  SSL_CTX_use_PrivateKey(cctx.get(), client.key.get());
  crypto::SslPtr srv(SSL_new(server_ctx));
  crypto::SslPtr cli(SSL_new(cctx.get()));
  BIO *a = nullptr, *b = nullptr;
  BIO_new_bio_pair(&a, 0, &b, 0);
  SSL_set_bio(srv.get(), a, a);
  SSL_set_bio(cli.get(), b, b);
  SSL_set_accept_state(srv.get());
  SSL_set_connect_state(cli.get());
  for (int i = 0; i < 20; ++i) {
    int rs = SSL_do_handshake(srv.get());
    int rc = SSL_do_handshake(cli.get());
    if (rs == 1 && rc == 1) break;
  }
  if (SSL_is_init_finished(srv.get()) != 1) return nullptr;
  return srv;
}

TEST(ManufacturerAnchors, AFullHandshakeRecordsAChainVerifiedByTheOwnStore) {
  auto fleet_ca = makeFactoryCa("Fleet Issuing", "Warden");
  auto acme = makeFactoryCa("Acme IDevID CA");
  auto server = makeIdevid(fleet_ca, "", "server", true);
  crypto::SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  ASSERT_EQ(SSL_CTX_use_certificate(ctx.get(), server.cert.get()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx.get(), server.key.get()), 1);
  ASSERT_EQ(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), fleet_ca.cert.get()), 1);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  auto anchors = std::make_shared<ManufacturerAnchors>();
  ASSERT_TRUE(anchors->replace({{"acme", acme.certPem()}}).isOk());
  ASSERT_TRUE(installManufacturerAnchors(ctx.get(), anchors).isOk());

  auto device = makeIdevid(fleet_ca, "", "dev-1", true);
  crypto::SslPtr full = handshake(ctx.get(), device);
  ASSERT_TRUE(full);
  EXPECT_TRUE(verifiedByOwnStore(full.get()));
  // (A resumed handshake runs no verification, so its new SSL never gets the
  // mark; verifiedByOwnStore also refuses any SSL_session_reused one.)
  // A manufacturer's certificate completes the handshake through the
  // anchors, not the own store.
  auto idevid = makeIdevid(acme, "sn1");
  crypto::SslPtr factory = handshake(ctx.get(), idevid);
  ASSERT_TRUE(factory);
  EXPECT_FALSE(verifiedByOwnStore(factory.get()));
  EXPECT_FALSE(verifiedByOwnStore(nullptr));
}

TEST(ManufacturerAnchors, CheckManufacturerCaWantsCaCertificates) {
  auto acme = makeFactoryCa("Acme IDevID CA");
  EXPECT_TRUE(checkManufacturerCa(acme.certPem()).isOk());
  auto leaf = makeIdevid(acme, "sn1");
  EXPECT_FALSE(checkManufacturerCa(leaf.certPem()).isOk());
  EXPECT_FALSE(checkManufacturerCa("not a pem").isOk());
}

TEST(ManufacturerAnchors, SubjectSerialNumber) {
  auto acme = makeFactoryCa("Acme IDevID CA");
  EXPECT_EQ(subjectSerialNumber(makeIdevid(acme, "SN-42").cert.get()), "SN-42");
  EXPECT_EQ(subjectSerialNumber(makeIdevid(acme, "").cert.get()), "");
  EXPECT_EQ(subjectSerialNumber(nullptr), "");
}

}  // namespace
}  // namespace warden::pki
