#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "crypto/openssl_ptr.h"

// The synchronous HTTPS client used by the operator CLI (`warden`) and the
// device agent (`warden-agent`). Plain OpenSSL over a non-blocking socket with
// poll(): no Asio, so the agent stays small. One connection per request.
//
// Failure codes are chosen so a caller can tell the network from the server:
//   kUnavailable       name resolution, connect, connection closed early
//   kDeadlineExceeded  connect (5 s) or I/O (35 s) timeout
//   kUnauthenticated   TLS handshake or certificate verification failed, or the
//                      server refused our client certificate
//   kDataLoss          the server's HTTP response is malformed
//   kResourceExhausted the response exceeds the header or body limit
// An HTTP error status is not a failure of send(): it is in the response.
namespace warden::api {

struct HttpHeader {
  std::string name;  // lowercased in responses
  std::string value;
};

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";  // origin-form: path and query
  std::vector<HttpHeader> headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<HttpHeader> headers;
  std::string body;

  // header returns the value of the first header named |name| (ASCII
  // case-insensitive), or an empty view.
  std::string_view header(std::string_view name) const;
};

struct HttpLimits {
  size_t max_header_bytes = 8 * 1024;
  size_t max_body_bytes = 4 * 1024 * 1024;
};

// ServerUrl is a parsed `https://HOST[:PORT][/]` base URL.
struct ServerUrl {
  std::string host;       // without brackets for IPv6
  uint16_t port = 443;
  bool host_is_ip = false;
  std::string authority;  // for the Host header: "host:port", IPv6 in brackets
  std::string text;       // "https://authority" for messages
};

// parseServerUrl parses |url| as an https base URL; no userinfo, path (other
// than "/"), query or fragment. kInvalidArgument with the reason otherwise.
core::Result<ServerUrl> parseServerUrl(std::string_view url);

// urlFromListen turns a `HOST:PORT` listen address (as in warden.yaml) into
// the URL a local client connects to: a wildcard address becomes loopback.
core::Result<ServerUrl> urlFromListen(std::string_view listen);

// HttpResponseParser incrementally parses one HTTP/1.1 response (status line,
// headers, then a Content-Length, chunked or close-delimited body), enforcing
// |limits|. Interim 1xx responses are skipped.
class HttpResponseParser {
 public:
  explicit HttpResponseParser(HttpLimits limits = {}, bool head_request = false);

  // feed appends |data| and parses as far as possible. kDataLoss if the bytes
  // are not a valid response, kResourceExhausted if a limit is exceeded.
  core::Status feed(std::string_view data);
  // finishAtEof tells the parser the connection closed. It completes a
  // close-delimited body; otherwise kUnavailable if the response is cut.
  core::Status finishAtEof();
  // done reports whether a complete response has been parsed.
  bool done() const { return state_ == State::kDone; }
  // receivedAnything reports whether any byte of a response arrived.
  bool receivedAnything() const { return received_any_; }
  // take returns the parsed response; only valid when done().
  HttpResponse take() { return std::move(response_); }

 private:
  enum class State { kHeaders, kBodyLength, kBodyUntilClose, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone };
  core::Status parseHeaderBlock(std::string_view block);
  core::Status step(bool& progressed);

  HttpLimits limits_;
  bool head_request_;
  bool received_any_ = false;
  State state_ = State::kHeaders;
  std::string buffer_;     // unconsumed input
  size_t remaining_ = 0;   // body or chunk bytes still expected
  size_t trailer_bytes_ = 0;
  HttpResponse response_;
};

struct TlsClientConfig {
  // trust_pem holds the trust anchors (PEM, root and issuing CA). Required
  // unless |provisional|.
  std::string trust_pem;
  // provisional completes the handshake WITHOUT verifying the server
  // (RFC 7030 §4.1.1 bootstrap). The caller must verify peerChain() with
  // verifyChainWithPin() before it trusts what it received and before it
  // sends any secret.
  bool provisional = false;
  // Optional client credentials: PEM certificate (leaf first, then chain) and key.
  std::string cert_pem;
  std::string key_pem;
  // key, if set, is used instead of key_pem: a key held by a key store (a
  // PKCS#11 token or a TPM, see keystore/key_store.h) that signs in place.
  std::shared_ptr<EVP_PKEY> key;
};

struct ApiClientOptions {
  ServerUrl server;
  TlsClientConfig tls;
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds io_timeout{35};
  HttpLimits limits;
};

// ApiClient sends HTTP/1.1 requests to one server over TLS 1.2+ with AEAD
// cipher suites only.
class ApiClient {
 public:
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // create loads the trust anchors and client credentials; kInvalidArgument
  // if they cannot be parsed or the key does not match the certificate.
  static core::Result<std::unique_ptr<ApiClient>> create(ApiClientOptions options);

  // send opens a connection, sends |request| (Host, Content-Length and
  // Connection: close are added) and returns the response.
  core::Result<HttpResponse> send(const HttpRequest& request);

  // peerChain returns the certificates the server presented on the last
  // successful handshake, leaf first.
  const std::vector<crypto::X509Ptr>& peerChain() const { return peer_chain_; }

  const ServerUrl& server() const { return options_.server; }

 private:
  struct Connection;
  explicit ApiClient(ApiClientOptions options);
  core::Status init();
  core::Result<HttpResponse> exchange(Connection& conn, const HttpRequest& request);

  ApiClientOptions options_;
  crypto::SslCtxPtr ctx_;
  std::vector<crypto::X509Ptr> peer_chain_;
};

// verifyChainWithPin verifies |presented| (the server's chain, leaf first)
// against the root whose crypto::caFingerprint equals |pin|, found among
// |presented| and |extra| (e.g. the certificates of /cacerts); |extra| may
// also supply the intermediates. The leaf must name |server| (DNS SAN or IP
// SAN) and be valid for TLS server auth. kUnauthenticated with the reason
// otherwise; the caller then must not send anything secret.
core::Status verifyChainWithPin(const std::vector<crypto::X509Ptr>& presented,
                                const std::vector<crypto::X509Ptr>& extra, std::string_view pin,
                                const ServerUrl& server);

// isValidFingerprint reports whether |pin| reads "sha256:" + 64 lowercase hex.
bool isValidFingerprint(std::string_view pin);

}  // namespace warden::api
