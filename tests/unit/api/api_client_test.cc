// HttpResponseParser, URL parsing and the HTTPS client against a loopback
// TLS server (trust bundle, pinning, host names, client certificates,
// transport failures).

#include "api/api_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "api/admin_client.h"
#include "core/clock.h"
#include "crypto/crypto.h"
#include "pki/certificate_authority.h"

namespace warden::api {
namespace {

using core::ErrorCode;

// ---------------------------------------------------------------------------
// HttpResponseParser

HttpResponseParser parseAll(std::string_view wire, core::Status* status_out = nullptr, bool byte_by_byte = false) {
  HttpResponseParser p;
  core::Status s;
  if (byte_by_byte) {
    for (char c : wire) {
      s = p.feed(std::string_view(&c, 1));
      if (!s.isOk()) break;
    }
  } else {
    s = p.feed(wire);
  }
  if (status_out) *status_out = s;
  return p;
}

TEST(HttpResponseParserClient, ParsesContentLengthResponse) {
  core::Status s;
  auto p = parseAll("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", &s);
  ASSERT_TRUE(s.isOk()) << s.message();
  ASSERT_TRUE(p.done());
  HttpResponse r = p.take();
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.reason, "Created");
  EXPECT_EQ(r.header("CONTENT-TYPE"), "application/json");
  EXPECT_EQ(r.body, "{}");
}

TEST(HttpResponseParserClient, ParsesChunkedBodyFedByteByByte) {
  core::Status s;
  auto p = parseAll(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n",
      &s, /*byte_by_byte=*/true);
  ASSERT_TRUE(s.isOk()) << s.message();
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.take().body, "Wikipedia in\r\n\r\nchunks.");
}

TEST(HttpResponseParserClient, SkipsInterimResponses) {
  auto p = parseAll("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
  ASSERT_TRUE(p.done());
  HttpResponse r = p.take();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "x");
}

TEST(HttpResponseParserClient, NoContentHasNoBody) {
  auto p = parseAll("HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_TRUE(p.done());
}

TEST(HttpResponseParserClient, CloseDelimitedBodyEndsAtEof) {
  auto p = parseAll("HTTP/1.1 200 OK\r\n\r\nhello");
  EXPECT_FALSE(p.done());
  ASSERT_TRUE(p.finishAtEof().isOk());
  EXPECT_EQ(p.take().body, "hello");
}

TEST(HttpResponseParserClient, TruncatedBodyIsUnavailable) {
  auto p = parseAll("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_FALSE(p.done());
  EXPECT_EQ(p.finishAtEof().code(), ErrorCode::kUnavailable);
  HttpResponseParser empty;
  EXPECT_EQ(empty.finishAtEof().code(), ErrorCode::kUnavailable);
}

TEST(HttpResponseParserClient, RejectsHeadersOverLimit) {
  std::string wire = "HTTP/1.1 200 OK\r\nX: " + std::string(9000, 'a') + "\r\n\r\n";
  core::Status s;
  parseAll(wire, &s);
  EXPECT_EQ(s.code(), ErrorCode::kResourceExhausted);
  // Also when the terminator never comes.
  parseAll("HTTP/1.1 200 OK\r\nX: " + std::string(9000, 'a'), &s);
  EXPECT_EQ(s.code(), ErrorCode::kResourceExhausted);
}

TEST(HttpResponseParserClient, RejectsBodyOverLimit) {
  core::Status s;
  parseAll("HTTP/1.1 200 OK\r\nContent-Length: 4194305\r\n\r\n", &s);
  EXPECT_EQ(s.code(), ErrorCode::kResourceExhausted);

  HttpResponseParser small(HttpLimits{8192, 8});
  EXPECT_EQ(small.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n5\r\n").code(),
            ErrorCode::kResourceExhausted);
  HttpResponseParser until_close(HttpLimits{8192, 4});
  EXPECT_EQ(until_close.feed("HTTP/1.1 200 OK\r\n\r\nabcdef").code(), ErrorCode::kResourceExhausted);
}

TEST(HttpResponseParserClient, RejectsMalformedResponses) {
  for (std::string_view wire : {
           std::string_view("HTTP/2 200 OK\r\n\r\n"),
           std::string_view("HTTP/1.1 2x0 OK\r\n\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n"),
           std::string_view("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n"),
       }) {
    core::Status s;
    parseAll(wire, &s);
    EXPECT_EQ(s.code(), ErrorCode::kDataLoss) << wire;
  }
}

// ---------------------------------------------------------------------------
// URLs

TEST(ServerUrlClient, ParsesHostsAndPorts) {
  auto a = parseServerUrl("https://127.0.0.1:8443");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8443);
  EXPECT_TRUE(a->host_is_ip);
  EXPECT_EQ(a->text, "https://127.0.0.1:8443");

  auto b = parseServerUrl("https://[::1]:9000/");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->host, "::1");
  EXPECT_TRUE(b->host_is_ip);
  EXPECT_EQ(b->authority, "[::1]:9000");

  auto c = parseServerUrl("HTTPS://Gateway.Example");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->host, "gateway.example");
  EXPECT_EQ(c->port, 443);
  EXPECT_FALSE(c->host_is_ip);
}

TEST(ServerUrlClient, RejectsWhatItCannotUse) {
  for (const char* url : {"http://127.0.0.1:8443", "127.0.0.1:8443", "https://", "https://h:0", "https://h:70000",
                          "https://h:", "https://u@h:1", "https://h:1/v1", "https://h:1?x", "https://::1:8443",
                          "https://[::1", "https://[zz]:1", "https://h_x:1"}) {
    auto r = parseServerUrl(url);
    EXPECT_FALSE(r.isOk()) << url;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << url;
  }
}

TEST(ServerUrlClient, ListenWildcardsBecomeLoopback) {
  EXPECT_EQ(urlFromListen("0.0.0.0:8443")->text, "https://127.0.0.1:8443");
  EXPECT_EQ(urlFromListen("[::]:8443")->text, "https://[::1]:8443");
  EXPECT_EQ(urlFromListen("[::1]:8443")->host, "::1");
  EXPECT_EQ(urlFromListen("localhost:1")->host, "localhost");
  EXPECT_FALSE(urlFromListen("nope").isOk());
}

TEST(ServerUrlClient, FingerprintFormat) {
  EXPECT_TRUE(isValidFingerprint("sha256:" + std::string(64, 'a')));
  EXPECT_FALSE(isValidFingerprint("sha256:" + std::string(64, 'A')));
  EXPECT_FALSE(isValidFingerprint("sha256:" + std::string(63, 'a')));
  EXPECT_FALSE(isValidFingerprint("sha1:" + std::string(64, 'a')));
  EXPECT_FALSE(isValidFingerprint("sha256:" + std::string(63, 'a') + "g"));
}

// ---------------------------------------------------------------------------
// A one-shot TLS server on loopback.

struct Pki {
  pki::CaMaterial root, issuing, other_root;
  crypto::EvpPkeyPtr server_key, client_key;
  crypto::X509Ptr server_cert, client_cert;
};

Pki makePki(std::vector<std::string> ip_sans, std::vector<std::string> dns_sans = {"localhost"}) {
  const core::Clock& clock = core::systemClock();
  Pki p;
  p.root = std::move(pki::createRootCa("Test Root", core::Seconds(86400), clock).value());
  p.issuing = std::move(pki::createIntermediateCa(p.root, "Test Issuing", core::Seconds(86400), 0, clock).value());
  p.other_root = std::move(pki::createRootCa("Other Root", core::Seconds(86400), clock).value());
  p.server_key = std::move(crypto::generateEcKey().value());
  p.client_key = std::move(crypto::generateEcKey().value());
  pki::LeafProfile server;
  server.common_name = "warden-gateway";
  server.dns_sans = std::move(dns_sans);
  server.ip_sans = std::move(ip_sans);
  server.server_auth = true;
  server.client_auth = false;
  p.server_cert = std::move(pki::issueLeaf(p.issuing, p.server_key.get(), server, clock).value());
  pki::LeafProfile client;
  client.common_name = "admin";
  client.uri_sans = {"spiffe://warden.local/user/admin"};
  p.client_cert = std::move(pki::issueLeaf(p.issuing, p.client_key.get(), client, clock).value());
  return p;
}

std::string pem(X509* c) { return crypto::certToPem(c); }

class OneShotTlsServer {
 public:
  OneShotTlsServer(const Pki& p, std::string response, bool require_client_cert = false) : response_(std::move(response)) {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(ctx_.get(), p.server_cert.get());
    SSL_CTX_add1_chain_cert(ctx_.get(), p.issuing.cert.get());
    SSL_CTX_use_PrivateKey(ctx_.get(), p.server_key.get());
    if (require_client_cert) {
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), p.root.cert.get());
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), p.issuing.cert.get());
      SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 4);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serveOne(); });
  }
  ~OneShotTlsServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  std::string request() const { return request_; }
  std::string peerCn() const { return peer_cn_; }

 private:
  void serveOne() {
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    crypto::SslPtr ssl(SSL_new(ctx_.get()));
    SSL_set_fd(ssl.get(), fd);
    if (SSL_accept(ssl.get()) == 1) {
      if (X509* peer = SSL_get0_peer_certificate(ssl.get())) peer_cn_ = crypto::commonName(peer);
      char buf[4096];
      while (request_.find("\r\n\r\n") == std::string::npos) {
        int n = SSL_read(ssl.get(), buf, sizeof buf);
        if (n <= 0) break;
        request_.append(buf, static_cast<size_t>(n));
      }
      SSL_write(ssl.get(), response_.data(), static_cast<int>(response_.size()));
      SSL_shutdown(ssl.get());
    }
    ::close(fd);
  }

  crypto::SslCtxPtr ctx_;
  std::string response_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
  std::string peer_cn_;
};

ServerUrl localUrl(uint16_t port, const char* host = "127.0.0.1") {
  return parseServerUrl(std::string("https://") + host + ":" + std::to_string(port)).value();
}

constexpr const char* kOk = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";

TEST(ApiClientTls, SendsRequestVerifiedByTrustBundle) {
  Pki p = makePki({"127.0.0.1"});
  OneShotTlsServer server(p, kOk);
  ApiClientOptions o;
  o.server = localUrl(server.port());
  o.tls.trust_pem = pem(p.root.cert.get()) + pem(p.issuing.cert.get());
  auto client = ApiClient::create(o);
  ASSERT_TRUE(client.isOk()) << client.status().message();
  HttpRequest req;
  req.method = "GET";
  req.target = "/v1/devices";
  auto resp = (*client)->send(req);
  ASSERT_TRUE(resp.isOk()) << resp.status().message();
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "{\"ok\":true}");
  EXPECT_NE(server.request().find("GET /v1/devices HTTP/1.1\r\n"), std::string::npos);
  EXPECT_NE(server.request().find("Host: 127.0.0.1:"), std::string::npos);
}

TEST(ApiClientTls, PresentsClientCertificate) {
  Pki p = makePki({"127.0.0.1"});
  OneShotTlsServer server(p, kOk, /*require_client_cert=*/true);
  ApiClientOptions o;
  o.server = localUrl(server.port());
  o.tls.trust_pem = pem(p.root.cert.get());
  o.tls.cert_pem = pem(p.client_cert.get()) + pem(p.issuing.cert.get());
  o.tls.key_pem = crypto::privateKeyToPem(p.client_key.get()).value();
  auto client = ApiClient::create(o);
  ASSERT_TRUE(client.isOk()) << client.status().message();
  auto resp = (*client)->send(HttpRequest{});
  ASSERT_TRUE(resp.isOk()) << resp.status().message();
  EXPECT_EQ(server.peerCn(), "admin");
}

TEST(ApiClientTls, RefusedClientCertificateIsAnAuthenticationFailure) {
  Pki p = makePki({"127.0.0.1"});
  OneShotTlsServer server(p, kOk, /*require_client_cert=*/true);
  ApiClientOptions o;
  o.server = localUrl(server.port());
  o.tls.trust_pem = pem(p.root.cert.get());
  auto resp = ApiClient::create(o).value()->send(HttpRequest{});
  ASSERT_FALSE(resp.isOk());
  EXPECT_EQ(exitCodeFor(resp.status()), 3) << resp.status().toString();
}

TEST(ApiClientTls, MismatchedKeyIsRejectedLocally) {
  Pki p = makePki({"127.0.0.1"});
  ApiClientOptions o;
  o.server = localUrl(1);
  o.tls.trust_pem = pem(p.root.cert.get());
  o.tls.cert_pem = pem(p.client_cert.get());
  o.tls.key_pem = crypto::privateKeyToPem(p.server_key.get()).value();
  auto client = ApiClient::create(o);
  ASSERT_FALSE(client.isOk());
  EXPECT_EQ(client.status().code(), ErrorCode::kInvalidArgument);
}

TEST(ApiClientTls, UntrustedServerIsAnAuthenticationFailure) {
  Pki p = makePki({"127.0.0.1"});
  OneShotTlsServer server(p, kOk);
  ApiClientOptions o;
  o.server = localUrl(server.port());
  o.tls.trust_pem = pem(p.other_root.cert.get());
  auto resp = ApiClient::create(o).value()->send(HttpRequest{});
  ASSERT_FALSE(resp.isOk());
  EXPECT_EQ(resp.status().code(), ErrorCode::kUnauthenticated) << resp.status().message();
  EXPECT_TRUE(server.request().empty());
}

TEST(ApiClientTls, WrongHostNameIsAnAuthenticationFailure) {
  Pki p = makePki({"127.0.0.2"}, {"gateway.example"});
  OneShotTlsServer server(p, kOk);
  ApiClientOptions o;
  o.server = localUrl(server.port());
  o.tls.trust_pem = pem(p.root.cert.get());
  auto resp = ApiClient::create(o).value()->send(HttpRequest{});
  ASSERT_FALSE(resp.isOk());
  EXPECT_EQ(resp.status().code(), ErrorCode::kUnauthenticated) << resp.status().message();
}

TEST(ApiClientTls, ConnectionRefusedIsUnavailable) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // nothing listens there now
  Pki p = makePki({"127.0.0.1"});
  ApiClientOptions o;
  o.server = localUrl(ntohs(addr.sin_port));
  o.tls.trust_pem = pem(p.root.cert.get());
  auto resp = ApiClient::create(o).value()->send(HttpRequest{});
  ASSERT_FALSE(resp.isOk());
  EXPECT_EQ(resp.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(resp.status().message().find("refused"), std::string::npos) << resp.status().message();
  EXPECT_EQ(exitCodeFor(resp.status()), 3);
}

TEST(ApiClientTls, ProvisionalHandshakeThenPinVerification) {
  Pki p = makePki({"127.0.0.1"});
  OneShotTlsServer server(p, kOk);
  ApiClientOptions o;
  o.server = localUrl(server.port());
  o.tls.provisional = true;
  auto client = ApiClient::create(o).value();
  ASSERT_TRUE(client->send(HttpRequest{}).isOk());
  ASSERT_EQ(client->peerChain().size(), 2u);  // leaf + issuing; the root is not sent

  std::string pin = crypto::caFingerprint(p.root.cert.get());
  std::vector<crypto::X509Ptr> cacerts;
  X509_up_ref(p.root.cert.get());
  cacerts.emplace_back(p.root.cert.get());
  EXPECT_TRUE(verifyChainWithPin(client->peerChain(), cacerts, pin, o.server).isOk());

  // The pin decides: another root, no root, or another host name all fail.
  std::string other_pin = crypto::caFingerprint(p.other_root.cert.get());
  EXPECT_EQ(verifyChainWithPin(client->peerChain(), cacerts, other_pin, o.server).code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(verifyChainWithPin(client->peerChain(), {}, pin, o.server).code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(verifyChainWithPin(client->peerChain(), cacerts, pin, localUrl(server.port(), "127.0.0.9")).code(),
            ErrorCode::kUnauthenticated);
  EXPECT_TRUE(verifyChainWithPin(client->peerChain(), cacerts, pin, localUrl(server.port(), "localhost")).isOk());
}

TEST(ApiClientTls, OtherRootWithThePinnedFingerprintCannotBeForged) {
  // A server chaining to another root cannot pass with the real root's pin
  // even if it offers the real root certificate alongside.
  Pki real = makePki({"127.0.0.1"});
  Pki fake = makePki({"127.0.0.1"});
  OneShotTlsServer server(fake, kOk);
  ApiClientOptions o;
  o.server = localUrl(server.port());
  o.tls.provisional = true;
  auto client = ApiClient::create(o).value();
  ASSERT_TRUE(client->send(HttpRequest{}).isOk());
  std::vector<crypto::X509Ptr> offered;
  X509_up_ref(real.root.cert.get());
  offered.emplace_back(real.root.cert.get());
  X509_up_ref(fake.issuing.cert.get());
  offered.emplace_back(fake.issuing.cert.get());
  EXPECT_EQ(verifyChainWithPin(client->peerChain(), offered, crypto::caFingerprint(real.root.cert.get()), o.server).code(),
            ErrorCode::kUnauthenticated);
}

}  // namespace
}  // namespace warden::api
