#include "pki/tls_config.h"

#include <cstring>
#include <set>

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/file_io.h"
#include "crypto/crypto.h"
#include "pki/certificate_authority.h"
#include "pki_test_util.h"

namespace warden::pki {
namespace {

using crypto::SslCtxPtr;
using crypto::SslPtr;

// TlsTest writes a root, an issuing CA, a server leaf and a client leaf to a
// temporary directory and drives handshakes over an in-memory BIO pair.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = createRootCa("td Warden Root CA", std::chrono::hours(24 * 3650), clock_);
    ASSERT_TRUE(root.isOk());
    root_ = std::move(root).value();
    auto issuing = createIntermediateCa(root_, "td Warden Issuing CA", std::chrono::hours(24 * 1825), 0, clock_);
    ASSERT_TRUE(issuing.isOk());
    issuing_ = std::move(issuing).value();
    writeLeaf("server", false, true);
    writeLeaf("client", true, false);
    std::string bundle = crypto::certsToPem({issuing_.cert.get(), root_.cert.get()});
    ASSERT_TRUE(core::writeFileAtomic(dir_.file("bundle.pem"), bundle, 0644).isOk());
    server_files_ = {dir_.file("server.pem"), dir_.file("server.key"), dir_.file("bundle.pem"), ""};
    client_files_ = {dir_.file("client.pem"), dir_.file("client.key"), dir_.file("bundle.pem"), ""};
  }

  void writeLeaf(const std::string& name, bool client, bool server) {
    auto key = crypto::generateEcKey();
    ASSERT_TRUE(key.isOk());
    LeafProfile profile;
    profile.common_name = name;
    profile.dns_sans = {"localhost"};
    profile.uri_sans = {"spiffe://td/device/" + name};
    profile.client_auth = client;
    profile.server_auth = server;
    auto leaf = issueLeaf(issuing_, key->get(), profile, clock_);
    ASSERT_TRUE(leaf.isOk());
    ASSERT_TRUE(core::writeFileAtomic(dir_.file(name + ".pem"),
                                      crypto::certsToPem({leaf->get(), issuing_.cert.get()}), 0644)
                    .isOk());
    ASSERT_TRUE(core::writeFileAtomic(dir_.file(name + ".key"), *crypto::privateKeyToPem(key->get())).isOk());
  }

  SslCtxPtr serverCtx(ClientCertMode mode = ClientCertMode::kRequire) {
    auto ctx = makeServerTlsContext(server_files_, mode, clock_);
    EXPECT_TRUE(ctx.isOk()) << ctx.status().toString();
    return ctx.isOk() ? std::move(ctx).value() : nullptr;
  }
  SslCtxPtr clientCtx(bool with_cert = true) {
    TlsFiles files = client_files_;
    if (!with_cert) files.cert_chain_file = files.key_file = "";
    auto ctx = makeClientTlsContext(files);
    EXPECT_TRUE(ctx.isOk()) << ctx.status().toString();
    return ctx.isOk() ? std::move(ctx).value() : nullptr;
  }

  struct Conn {
    SslPtr client, server;
  };

  // handshake connects fresh SSLs from |cctx| and |sctx| in memory; |session|
  // is offered for resumption. Returns true if both sides completed.
  static bool handshake(SSL_CTX* cctx, SSL_CTX* sctx, Conn& conn, SSL_SESSION* session = nullptr,
                        void (*tweak_client)(SSL*) = nullptr) {
    conn.client.reset(SSL_new(cctx));
    conn.server.reset(SSL_new(sctx));
    BIO* cbio = nullptr;
    BIO* sbio = nullptr;
    if (!conn.client || !conn.server || BIO_new_bio_pair(&cbio, 0, &sbio, 0) != 1) return false;
    SSL_set_bio(conn.client.get(), cbio, cbio);
    SSL_set_bio(conn.server.get(), sbio, sbio);
    SSL_set_connect_state(conn.client.get());
    SSL_set_accept_state(conn.server.get());
    SSL_set1_host(conn.client.get(), "localhost");
    if (session != nullptr) SSL_set_session(conn.client.get(), session);
    if (tweak_client != nullptr) tweak_client(conn.client.get());
    bool cdone = false, sdone = false;
    for (int i = 0; i < 64 && !(cdone && sdone); ++i) {
      if (!cdone) {
        int rc = SSL_do_handshake(conn.client.get());
        if (rc == 1) cdone = true;
        else if (int e = SSL_get_error(conn.client.get(), rc); e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) break;
      }
      if (!sdone) {
        int rc = SSL_do_handshake(conn.server.get());
        if (rc == 1) sdone = true;
        else if (int e = SSL_get_error(conn.server.get(), rc); e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) break;
      }
    }
    ERR_clear_error();
    return cdone && sdone;
  }

  // exchange sends one byte server->client so the client processes TLS 1.3
  // NewSessionTicket messages, then returns the client's resumable session.
  static SSL_SESSION* ticketFrom(Conn& conn) {
    char b = 'x';
    if (SSL_write(conn.server.get(), &b, 1) != 1) return nullptr;
    char r = 0;
    if (SSL_read(conn.client.get(), &r, 1) != 1) return nullptr;
    return SSL_get1_session(conn.client.get());
  }

  core::ManualClock clock_{core::systemClock().now()};
  testing::TempDir dir_;
  CaMaterial root_, issuing_;
  TlsFiles server_files_, client_files_;
};

TEST_F(TlsTest, ServerContextAppliesPolicy) {
  SslCtxPtr ctx = serverCtx();
  ASSERT_TRUE(ctx);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx.get()), TLS1_2_VERSION);
  uint64_t opts = SSL_CTX_get_options(ctx.get());
  EXPECT_NE(opts & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(opts & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_EQ(opts & SSL_OP_NO_TICKET, 0u);
  EXPECT_NE(SSL_CTX_get_mode(ctx.get()) & SSL_MODE_RELEASE_BUFFERS, 0);
  EXPECT_EQ(SSL_CTX_get_verify_depth(ctx.get()), 3);
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx.get()), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  EXPECT_EQ(SSL_CTX_get_timeout(ctx.get()), 3600);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx.get()), SSL_SESS_CACHE_OFF);
  SslCtxPtr request = serverCtx(ClientCertMode::kRequest);
  EXPECT_EQ(SSL_CTX_get_verify_mode(request.get()), SSL_VERIFY_PEER);
}

TEST_F(TlsTest, CipherListIsAeadOnlyWithForwardSecrecy) {
  std::vector<SslCtxPtr> contexts;
  contexts.push_back(serverCtx());
  contexts.push_back(clientCtx());
  for (const SslCtxPtr& ctx : contexts) {
    ASSERT_TRUE(ctx);
    STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx.get());
    std::set<std::string> names;
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
      const SSL_CIPHER* c = sk_SSL_CIPHER_value(ciphers, i);
      std::string name = SSL_CIPHER_get_name(c);
      names.insert(name);
      EXPECT_TRUE(SSL_CIPHER_is_aead(c)) << name;
      EXPECT_EQ(name.find("CBC"), std::string::npos) << name;
      if (name.rfind("TLS_", 0) != 0) {
        EXPECT_EQ(name.rfind("ECDHE-", 0), 0u) << name;
        int kx = SSL_CIPHER_get_kx_nid(c);
        EXPECT_EQ(kx, NID_kx_ecdhe) << name;
      }
    }
    EXPECT_EQ(names, (std::set<std::string>{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                            "TLS_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256",
                                            "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305",
                                            "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                                            "ECDHE-RSA-CHACHA20-POLY1305"}));
  }
}

TEST_F(TlsTest, MutualTlsHandshakeSucceeds) {
  SslCtxPtr s = serverCtx(), c = clientCtx();
  Conn conn;
  ASSERT_TRUE(handshake(c.get(), s.get(), conn));
  EXPECT_EQ(SSL_version(conn.server.get()), TLS1_3_VERSION);
  crypto::X509Ptr peer(SSL_get1_peer_certificate(conn.server.get()));
  ASSERT_TRUE(peer);
  EXPECT_EQ(crypto::commonName(peer.get()), "client");
  EXPECT_EQ(SSL_get_verify_result(conn.server.get()), X509_V_OK);
}

TEST_F(TlsTest, Tls12HandshakeUsesAnAeadSuite) {
  SslCtxPtr s = serverCtx(), c = clientCtx();
  Conn conn;
  ASSERT_TRUE(handshake(c.get(), s.get(), conn, nullptr, [](SSL* ssl) { SSL_set_max_proto_version(ssl, TLS1_2_VERSION); }));
  EXPECT_EQ(SSL_version(conn.server.get()), TLS1_2_VERSION);
  EXPECT_TRUE(SSL_CIPHER_is_aead(SSL_get_current_cipher(conn.server.get())));
}

TEST_F(TlsTest, RequireModeRefusesClientWithoutCertificate) {
  SslCtxPtr s = serverCtx(ClientCertMode::kRequire), c = clientCtx(false);
  Conn conn;
  EXPECT_FALSE(handshake(c.get(), s.get(), conn));
}

TEST_F(TlsTest, RequestModeAllowsClientWithoutCertificate) {
  SslCtxPtr s = serverCtx(ClientCertMode::kRequest), c = clientCtx(false);
  Conn conn;
  ASSERT_TRUE(handshake(c.get(), s.get(), conn));
  EXPECT_EQ(SSL_get0_peer_certificate(conn.server.get()), nullptr);
}

TEST_F(TlsTest, RefusesTls11) {
  SslCtxPtr s = serverCtx();
  // A raw client context without Warden's policy, limited to TLS 1.1.
  SslCtxPtr c(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_security_level(c.get(), 0);
  SSL_CTX_set_min_proto_version(c.get(), TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(c.get(), TLS1_1_VERSION);
  SSL_CTX_set_cipher_list(c.get(), "ALL:@SECLEVEL=0");
  SSL_CTX_use_certificate_chain_file(c.get(), client_files_.cert_chain_file.c_str());
  SSL_CTX_use_PrivateKey_file(c.get(), client_files_.key_file.c_str(), SSL_FILETYPE_PEM);
  Conn conn;
  EXPECT_FALSE(handshake(c.get(), s.get(), conn));
}

TEST_F(TlsTest, RefusesCbcOnlyClient) {
  SslCtxPtr s = serverCtx();
  SslCtxPtr c(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(c.get(), TLS1_2_VERSION);
  ASSERT_EQ(SSL_CTX_set_cipher_list(c.get(), "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384"), 1);
  SSL_CTX_use_certificate_chain_file(c.get(), client_files_.cert_chain_file.c_str());
  SSL_CTX_use_PrivateKey_file(c.get(), client_files_.key_file.c_str(), SSL_FILETYPE_PEM);
  Conn conn;
  EXPECT_FALSE(handshake(c.get(), s.get(), conn));
}

TEST_F(TlsTest, ClientRefusesServerFromForeignCa) {
  SslCtxPtr s = serverCtx();
  auto foreign = createRootCa("td Warden Root CA", std::chrono::hours(24), clock_);
  ASSERT_TRUE(foreign.isOk());
  TlsFiles files = client_files_;
  files.trust_bundle_file = "";
  files.trust_bundle_pem = crypto::certToPem(foreign->cert.get());
  auto c = makeClientTlsContext(files);
  ASSERT_TRUE(c.isOk());
  Conn conn;
  EXPECT_FALSE(handshake(c->get(), s.get(), conn));
}

TEST_F(TlsTest, ClientRefusesWrongHostName) {
  SslCtxPtr s = serverCtx(), c = clientCtx();
  Conn conn;
  EXPECT_FALSE(handshake(c.get(), s.get(), conn, nullptr, [](SSL* ssl) { SSL_set1_host(ssl, "other.example"); }));
}

TEST_F(TlsTest, TicketResumesAndSurvivesOneRotationButNotTwo) {
  SslCtxPtr s = serverCtx(), c = clientCtx();
  Conn first;
  ASSERT_TRUE(handshake(c.get(), s.get(), first));
  SSL_SESSION* session = ticketFrom(first);
  ASSERT_NE(session, nullptr);
  ASSERT_EQ(SSL_SESSION_is_resumable(session), 1);
  EXPECT_LE(SSL_SESSION_get_ticket_lifetime_hint(session), 3600u);

  Conn resumed;
  ASSERT_TRUE(handshake(c.get(), s.get(), resumed, session));
  EXPECT_EQ(SSL_session_reused(resumed.client.get()), 1);
  // The peer certificate is available on resumption so the gateway re-checks it.
  EXPECT_NE(SSL_get0_peer_certificate(resumed.server.get()), nullptr);

  clock_.advance(std::chrono::minutes(31));  // one rotation: previous key still decrypts
  Conn after_one;
  ASSERT_TRUE(handshake(c.get(), s.get(), after_one, session));
  EXPECT_EQ(SSL_session_reused(after_one.client.get()), 1);

  clock_.advance(std::chrono::minutes(31));  // second rotation: the original key is gone
  Conn after_two;
  ASSERT_TRUE(handshake(c.get(), s.get(), after_two, session));
  EXPECT_EQ(SSL_session_reused(after_two.client.get()), 0);
  SSL_SESSION_free(session);
}

TEST_F(TlsTest, Tls12ResumesThroughTicketsWithoutServerCache) {
  SslCtxPtr s = serverCtx(), c = clientCtx();
  auto tls12 = [](SSL* ssl) { SSL_set_max_proto_version(ssl, TLS1_2_VERSION); };
  Conn first;
  ASSERT_TRUE(handshake(c.get(), s.get(), first, nullptr, tls12));
  SSL_SESSION* session = SSL_get1_session(first.client.get());
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(SSL_SESSION_has_ticket(session), 1);
  Conn resumed;
  ASSERT_TRUE(handshake(c.get(), s.get(), resumed, session, tls12));
  EXPECT_EQ(SSL_session_reused(resumed.client.get()), 1);
  EXPECT_NE(SSL_get0_peer_certificate(resumed.server.get()), nullptr);
  SSL_SESSION_free(session);
}

TEST_F(TlsTest, ForcedRotationInvalidatesOldTicketsAfterTwoRotations) {
  SslCtxPtr s = serverCtx(), c = clientCtx();
  Conn first;
  ASSERT_TRUE(handshake(c.get(), s.get(), first));
  SSL_SESSION* session = ticketFrom(first);
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(rotateTicketKeysNow(s.get()).isOk());
  ASSERT_TRUE(rotateTicketKeysNow(s.get()).isOk());
  Conn again;
  ASSERT_TRUE(handshake(c.get(), s.get(), again, session));
  EXPECT_EQ(SSL_session_reused(again.client.get()), 0);
  SSL_SESSION_free(session);
  SslCtxPtr plain(SSL_CTX_new(TLS_server_method()));
  EXPECT_FALSE(rotateTicketKeysNow(plain.get()).isOk());
}

TEST_F(TlsTest, ReportsMissingFilesAndKeyMismatch) {
  TlsFiles files = server_files_;
  files.key_file = dir_.file("missing.key");
  auto r = makeServerTlsContext(files, ClientCertMode::kRequire, clock_);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("missing.key"), std::string::npos);
  files = server_files_;
  files.key_file = client_files_.key_file;
  r = makeServerTlsContext(files, ClientCertMode::kRequire, clock_);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("does not match"), std::string::npos);
  files = server_files_;
  files.trust_bundle_file = "";
  EXPECT_FALSE(makeServerTlsContext(files, ClientCertMode::kRequire, clock_).isOk());
  files = client_files_;
  files.trust_bundle_file = "";
  EXPECT_FALSE(makeClientTlsContext(files).isOk());
  EXPECT_TRUE(makeClientTlsContext(files, /*allow_no_trust_anchors=*/true).isOk());
  files.key_file = "";
  EXPECT_FALSE(makeClientTlsContext(files, true).isOk());
}

}  // namespace
}  // namespace warden::pki
