#include "api/api_client.h"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "pki/tls_config.h"

namespace warden::api {
namespace {

using core::Result;
using core::Status;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxChunkLine = 1024;

using crypto::SslPtr;
struct StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }  // the certificates are borrowed
};

char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerAscii(a[i]) != lowerAscii(b[i])) return false;
  }
  return true;
}

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lowerAscii(c);
  return out;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isFieldValueChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// sslErrorString drains the OpenSSL error queue into one line.
std::string sslErrorString() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string("unknown TLS error") : out;
}

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// waitFd waits until |fd| is readable or writable; kDeadlineExceeded on timeout.
Status waitFd(int fd, bool want_write, Clock::time_point deadline, std::string_view what) {
  while (true) {
    pollfd p{fd, static_cast<short>(want_write ? POLLOUT : POLLIN), 0};
    int ms = remainingMs(deadline);
    if (ms == 0) return core::Status(core::ErrorCode::kDeadlineExceeded, fmt::format("timed out while {}", what));
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return core::unavailable(fmt::format("poll failed while {}: {}", what, std::strerror(errno)));
    if (r == 0) return core::Status(core::ErrorCode::kDeadlineExceeded, fmt::format("timed out while {}", what));
    return Status::ok();
  }
}

Result<UniqueFd> connectTcp(const ServerUrl& url, std::chrono::seconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (url.host_is_ip ? AI_NUMERICHOST : 0);
  addrinfo* res = nullptr;
  std::string port = std::to_string(url.port);
  int gai = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) return core::unavailable(fmt::format("cannot resolve {}: {}", url.host, gai_strerror(gai)));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);

  auto deadline = Clock::now() + timeout;
  std::string last_error = "no address";
  bool timed_out = false;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno != EINPROGRESS) {
      last_error = std::strerror(errno);
      continue;
    }
    if (r != 0) {
      Status w = waitFd(fd.get(), true, deadline, "connecting");
      if (!w.isOk()) {
        timed_out = true;
        last_error = fmt::format("no answer within {} s", timeout.count());
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last_error = std::strerror(err);
        continue;
      }
    }
    return fd;
  }
  if (timed_out) return core::Status(core::ErrorCode::kDeadlineExceeded, fmt::format("connection timed out ({})", last_error));
  // strerror(ECONNREFUSED) reads "Connection refused"; keep messages lowercase.
  if (!last_error.empty()) last_error[0] = lowerAscii(last_error[0]);
  return core::unavailable(last_error);
}

}  // namespace

// ---------------------------------------------------------------------------
// HttpResponse / URLs

std::string_view HttpResponse::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (equalsIgnoreCase(h.name, name)) return h.value;
  }
  return {};
}

Result<ServerUrl> parseServerUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return core::invalidArgument(fmt::format("invalid server URL '{}': {} (expected https://HOST:PORT)", url.substr(0, 200), why));
  };
  constexpr std::string_view kScheme = "https://";
  if (url.size() < kScheme.size() || !equalsIgnoreCase(url.substr(0, kScheme.size()), kScheme)) {
    return bad("only https:// is supported");
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (end != std::string_view::npos) {
    std::string_view tail = rest.substr(end);
    if (tail != "/") return bad("a path, query or fragment is not allowed");
  }
  if (authority.find('@') != std::string_view::npos) return bad("user information is not allowed");
  ServerUrl out;
  std::string_view host;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
    in6_addr a6;
    if (!::inet_pton(AF_INET6, std::string(host).c_str(), &a6)) return bad("invalid IPv6 address");
    out.host_is_ip = true;
  } else {
    size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
    if (host.find(':') != std::string_view::npos) return bad("put an IPv6 address in brackets");
    in_addr a4;
    out.host_is_ip = ::inet_pton(AF_INET, std::string(host).c_str(), &a4) == 1;
    if (!out.host_is_ip) {
      if (host.empty() || host.size() > 253) return bad("missing or over-long host");
      for (char c : host) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
        if (!ok) return bad("invalid character in host");
      }
    }
  }
  if (host.empty()) return bad("missing host");
  if (!port_text.empty()) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || v == 0 || v > 65535) return bad("invalid port");
    out.port = static_cast<uint16_t>(v);
  }
  out.host = toLower(host);
  bool v6 = out.host.find(':') != std::string::npos;
  out.authority = v6 ? fmt::format("[{}]:{}", out.host, out.port) : fmt::format("{}:{}", out.host, out.port);
  out.text = "https://" + out.authority;
  return out;
}

Result<ServerUrl> urlFromListen(std::string_view listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return core::invalidArgument(fmt::format("invalid listen address '{}': expected HOST:PORT", listen.substr(0, 200)));
  }
  std::string host(listen.substr(0, colon));
  std::string_view port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "0.0.0.0" || host == "*") host = "127.0.0.1";
  if (host == "::") host = "::1";
  bool v6 = host.find(':') != std::string::npos;
  return parseServerUrl(v6 ? fmt::format("https://[{}]:{}", host, port) : fmt::format("https://{}:{}", host, port));
}

bool isValidFingerprint(std::string_view pin) {
  constexpr std::string_view kPrefix = "sha256:";
  if (pin.size() != kPrefix.size() + 64 || pin.substr(0, kPrefix.size()) != kPrefix) return false;
  for (char c : pin.substr(kPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// HttpResponseParser

HttpResponseParser::HttpResponseParser(HttpLimits limits, bool head_request)
    : limits_(limits), head_request_(head_request) {}

Status HttpResponseParser::feed(std::string_view data) {
  if (!data.empty()) received_any_ = true;
  if (state_ == State::kDone) return Status::ok();  // bytes after the response are ignored (Connection: close)
  buffer_.append(data);
  bool progressed = true;
  while (progressed && state_ != State::kDone) {
    progressed = false;
    WARDEN_RETURN_IF_ERROR(step(progressed));
  }
  if (state_ == State::kDone) buffer_.clear();
  return Status::ok();
}

Status HttpResponseParser::finishAtEof() {
  if (state_ == State::kDone) return Status::ok();
  if (state_ == State::kBodyUntilClose) {
    state_ = State::kDone;
    return Status::ok();
  }
  if (!received_any_) return core::unavailable("the server closed the connection without a response");
  return core::unavailable("the server closed the connection in the middle of the response");
}

Status HttpResponseParser::parseHeaderBlock(std::string_view block) {
  auto malformed = [](std::string_view why) { return core::dataLoss(fmt::format("malformed HTTP response: {}", why)); };
  size_t eol = block.find("\r\n");
  std::string_view status_line = block.substr(0, eol);
  std::string_view lines = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
  // RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason-phrase]
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ' ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return malformed("bad status line");
  }
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    char c = status_line[i];
    if (c < '0' || c > '9') return malformed("bad status code");
    code = code * 10 + (c - '0');
  }
  if (code < 100) return malformed("bad status code");
  HttpResponse resp;
  resp.status = code;
  if (status_line.size() > 13) resp.reason = std::string(status_line.substr(13));

  std::optional<size_t> content_length;
  bool chunked = false;
  while (!lines.empty()) {
    size_t e = lines.find("\r\n");
    std::string_view line = lines.substr(0, e);
    lines = e == std::string_view::npos ? std::string_view() : lines.substr(e + 2);
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t') return malformed("obsolete header folding");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return malformed("header line without a name");
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), isTokenChar)) return malformed("invalid header name");
    std::string_view value = trimOws(line.substr(colon + 1));
    if (!std::all_of(value.begin(), value.end(), isFieldValueChar)) return malformed("invalid character in a header value");
    std::string lname = toLower(name);
    if (lname == "content-length") {
      size_t v = 0;
      if (value.empty() || value.size() > 18) return malformed("invalid Content-Length");
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || p != value.data() + value.size()) return malformed("invalid Content-Length");
      if (content_length && *content_length != v) return malformed("conflicting Content-Length headers");
      content_length = v;
    } else if (lname == "transfer-encoding") {
      // RFC 9112 §6.1: chunked must be the final coding; we accept nothing else.
      std::string te = toLower(value);
      if (te != "chunked") return malformed(fmt::format("unsupported Transfer-Encoding '{}'", value.substr(0, 40)));
      if (chunked) return malformed("repeated Transfer-Encoding");
      chunked = true;
    }
    resp.headers.push_back({std::move(lname), std::string(value)});
  }

  if (code >= 100 && code < 200) {  // interim response: wait for the final one
    state_ = State::kHeaders;
    return Status::ok();
  }
  response_ = std::move(resp);
  bool no_body = head_request_ || code == 204 || code == 304;
  if (no_body) {
    state_ = State::kDone;
  } else if (chunked) {  // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length
    state_ = State::kChunkSize;
  } else if (content_length) {
    if (*content_length > limits_.max_body_bytes) {
      return core::resourceExhausted(fmt::format("response body of {} bytes exceeds the limit of {} bytes", *content_length,
                                                 limits_.max_body_bytes));
    }
    remaining_ = *content_length;
    state_ = remaining_ == 0 ? State::kDone : State::kBodyLength;
  } else {
    state_ = State::kBodyUntilClose;
  }
  return Status::ok();
}

Status HttpResponseParser::step(bool& progressed) {
  auto malformed = [](std::string_view why) { return core::dataLoss(fmt::format("malformed HTTP response: {}", why)); };
  auto body_limit = [&](size_t extra) -> Status {
    if (response_.body.size() + extra > limits_.max_body_bytes) {
      return core::resourceExhausted(fmt::format("response body exceeds the limit of {} bytes", limits_.max_body_bytes));
    }
    return Status::ok();
  };
  switch (state_) {
    case State::kHeaders: {
      size_t end = buffer_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (buffer_.size() > limits_.max_header_bytes) {
          return core::resourceExhausted(fmt::format("response headers exceed the limit of {} bytes", limits_.max_header_bytes));
        }
        return Status::ok();
      }
      if (end + 4 > limits_.max_header_bytes) {
        return core::resourceExhausted(fmt::format("response headers exceed the limit of {} bytes", limits_.max_header_bytes));
      }
      std::string block = buffer_.substr(0, end);
      buffer_.erase(0, end + 4);
      WARDEN_RETURN_IF_ERROR(parseHeaderBlock(block));
      progressed = true;
      return Status::ok();
    }
    case State::kBodyLength:
    case State::kChunkData: {
      if (buffer_.empty()) return Status::ok();
      size_t n = std::min(remaining_, buffer_.size());
      WARDEN_RETURN_IF_ERROR(body_limit(n));
      response_.body.append(buffer_, 0, n);
      buffer_.erase(0, n);
      remaining_ -= n;
      if (remaining_ == 0) state_ = state_ == State::kBodyLength ? State::kDone : State::kChunkDataEnd;
      progressed = true;
      return Status::ok();
    }
    case State::kBodyUntilClose: {
      if (buffer_.empty()) return Status::ok();
      WARDEN_RETURN_IF_ERROR(body_limit(buffer_.size()));
      response_.body += buffer_;
      buffer_.clear();
      return Status::ok();
    }
    case State::kChunkSize: {
      size_t eol = buffer_.find("\r\n");
      if (eol == std::string::npos) {
        if (buffer_.size() > kMaxChunkLine) return malformed("chunk size line too long");
        return Status::ok();
      }
      if (eol > kMaxChunkLine) return malformed("chunk size line too long");
      std::string_view line(buffer_.data(), eol);
      size_t semi = line.find(';');  // chunk extensions are ignored
      std::string_view hex = trimOws(line.substr(0, semi));
      if (hex.empty() || hex.size() > 8) return malformed("invalid chunk size");
      size_t size = 0;
      auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), size, 16);
      if (ec != std::errc() || p != hex.data() + hex.size()) return malformed("invalid chunk size");
      buffer_.erase(0, eol + 2);
      if (size == 0) {
        state_ = State::kTrailers;
      } else {
        WARDEN_RETURN_IF_ERROR(body_limit(size));
        remaining_ = size;
        state_ = State::kChunkData;
      }
      progressed = true;
      return Status::ok();
    }
    case State::kChunkDataEnd: {
      if (buffer_.size() < 2) return Status::ok();
      if (buffer_.compare(0, 2, "\r\n") != 0) return malformed("chunk not followed by CRLF");
      buffer_.erase(0, 2);
      state_ = State::kChunkSize;
      progressed = true;
      return Status::ok();
    }
    case State::kTrailers: {
      size_t eol = buffer_.find("\r\n");
      if (eol == std::string::npos) {
        if (trailer_bytes_ + buffer_.size() > limits_.max_header_bytes) {
          return core::resourceExhausted("response trailers exceed the header limit");
        }
        return Status::ok();
      }
      trailer_bytes_ += eol + 2;
      if (trailer_bytes_ > limits_.max_header_bytes) return core::resourceExhausted("response trailers exceed the header limit");
      buffer_.erase(0, eol + 2);
      if (eol == 0) state_ = State::kDone;  // trailer fields themselves are ignored
      progressed = true;
      return Status::ok();
    }
    case State::kDone:
      return Status::ok();
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------
// ApiClient

struct ApiClient::Connection {
  UniqueFd fd;
  SslPtr ssl;
};

ApiClient::ApiClient(ApiClientOptions options) : options_(std::move(options)) {}
ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::create(ApiClientOptions options) {
  std::unique_ptr<ApiClient> client(new ApiClient(std::move(options)));
  WARDEN_RETURN_IF_ERROR(client->init());
  return client;
}

Status ApiClient::init() {
  // A TPM-held client key signs on its own provider (crypto::signingPropertyQuery).
  ctx_.reset(SSL_CTX_new_ex(nullptr, crypto::signingPropertyQuery(options_.tls.key.get()), TLS_client_method()));
  if (!ctx_) return core::internalError("SSL_CTX_new failed: " + sslErrorString());
  SSL_CTX* ctx = ctx_.get();
  // The policy strings are pki's, so every Warden endpoint speaks the same TLS.
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, pki::kTls12Ciphers) != 1 || SSL_CTX_set_ciphersuites(ctx, pki::kTls13Suites) != 1 ||
      SSL_CTX_set1_groups_list(ctx, pki::kTlsGroups) != 1) {
    return core::internalError("cannot apply the TLS policy: " + sslErrorString());
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);

  const TlsClientConfig& tls = options_.tls;
  if (tls.provisional) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    if (tls.trust_pem.empty()) return core::invalidArgument("no trust anchors given for the server's certificate");
    auto certs = crypto::certsFromPem(tls.trust_pem);
    if (!certs.isOk()) return core::invalidArgument("cannot read the CA bundle: " + certs.status().message());
    if (certs->empty()) return core::invalidArgument("the CA bundle holds no certificate");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (auto& c : *certs) {
      if (X509_STORE_add_cert(store, c.get()) != 1) return core::invalidArgument("cannot use the CA bundle: " + sslErrorString());
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }

  bool has_key = !tls.key_pem.empty() || tls.key != nullptr;
  if (!tls.cert_pem.empty() || has_key) {
    if (tls.cert_pem.empty() || !has_key) {
      return core::invalidArgument("a client certificate needs its key and a key needs its certificate");
    }
    auto certs = crypto::certsFromPem(tls.cert_pem);
    if (!certs.isOk()) return core::invalidArgument("cannot read the client certificate: " + certs.status().message());
    if (certs->empty()) return core::invalidArgument("the client certificate file holds no certificate");
    // A key-store key (token, TPM) signs through its backend; a PEM key is parsed here.
    crypto::EvpPkeyPtr parsed;
    if (tls.key == nullptr) {
      auto key = crypto::privateKeyFromPem(tls.key_pem);
      if (!key.isOk()) return core::invalidArgument("cannot read the client key: " + key.status().message());
      parsed = std::move(key).value();
    }
    EVP_PKEY* key = tls.key != nullptr ? tls.key.get() : parsed.get();
    if (SSL_CTX_use_certificate(ctx, (*certs)[0].get()) != 1) {
      return core::invalidArgument("cannot use the client certificate: " + sslErrorString());
    }
    for (size_t i = 1; i < certs->size(); ++i) {
      if (SSL_CTX_add1_chain_cert(ctx, (*certs)[i].get()) != 1) {
        return core::invalidArgument("cannot use the client certificate chain: " + sslErrorString());
      }
    }
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return core::invalidArgument("the client key does not match the client certificate");
    }
  }
  return Status::ok();
}

Result<HttpResponse> ApiClient::send(const HttpRequest& request) {
  for (const auto& h : request.headers) {
    auto bad = [](char c) { return c == '\r' || c == '\n' || c == '\0'; };
    if (std::any_of(h.name.begin(), h.name.end(), bad) || std::any_of(h.value.begin(), h.value.end(), bad)) {
      return core::invalidArgument(fmt::format("header '{}' contains a line break", h.name.substr(0, 40)));
    }
  }
  if (request.target.empty() || request.target.front() != '/' ||
      request.target.find_first_of(" \r\n") != std::string::npos) {
    return core::invalidArgument("invalid request target");
  }

  // OpenSSL writes the socket with write(): a server that answers early and
  // closes (413, 429) must be an error here, not a SIGPIPE that kills the CLI
  // or the agent with no message.
  static std::once_flag sigpipe_once;
  std::call_once(sigpipe_once, [] { std::signal(SIGPIPE, SIG_IGN); });

  Connection conn;
  WARDEN_ASSIGN_OR_RETURN(conn.fd, connectTcp(options_.server, options_.connect_timeout));
  conn.ssl.reset(SSL_new(ctx_.get()));
  if (!conn.ssl) return core::internalError("SSL_new failed: " + sslErrorString());
  SSL* ssl = conn.ssl.get();
  SSL_set_fd(ssl, conn.fd.get());
  const ServerUrl& url = options_.server;
  if (!url.host_is_ip) SSL_set_tlsext_host_name(ssl, url.host.c_str());
  if (!options_.tls.provisional) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    int ok = url.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                            : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
    if (ok != 1) return core::internalError("cannot set the expected server name: " + sslErrorString());
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  }

  auto deadline = Clock::now() + options_.io_timeout;
  ERR_clear_error();
  while (true) {
    int r = SSL_connect(ssl);
    if (r == 1) break;
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      WARDEN_RETURN_IF_ERROR(waitFd(conn.fd.get(), err == SSL_ERROR_WANT_WRITE, deadline, "in the TLS handshake"));
      continue;
    }
    long verify = SSL_get_verify_result(ssl);
    if (!options_.tls.provisional && verify != X509_V_OK) {
      ERR_clear_error();
      return core::unauthenticated(
          fmt::format("the server's certificate is not trusted: {}", X509_verify_cert_error_string(verify)));
    }
    if (err == SSL_ERROR_SSL) return core::unauthenticated("TLS handshake failed: " + sslErrorString());
    ERR_clear_error();
    return core::unavailable("the connection closed during the TLS handshake");
  }

  peer_chain_.clear();
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl)) {
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      X509* c = sk_X509_value(chain, i);
      X509_up_ref(c);
      peer_chain_.emplace_back(c);
    }
  }
  return exchange(conn, request);
}

Result<HttpResponse> ApiClient::exchange(Connection& conn, const HttpRequest& request) {
  SSL* ssl = conn.ssl.get();
  std::string wire = fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: warden/0.1\r\nConnection: close\r\n",
                                 request.method, request.target, options_.server.authority);
  bool has_length = false;
  for (const auto& h : request.headers) {
    if (equalsIgnoreCase(h.name, "content-length")) has_length = true;
    wire += fmt::format("{}: {}\r\n", h.name, h.value);
  }
  if (!has_length && (!request.body.empty() || request.method == "POST" || request.method == "PUT")) {
    wire += fmt::format("Content-Length: {}\r\n", request.body.size());
  }
  wire += "\r\n";
  wire += request.body;

  auto deadline = Clock::now() + options_.io_timeout;
  size_t off = 0;
  while (off < wire.size()) {
    size_t written = 0;
    int r = SSL_write_ex(ssl, wire.data() + off, wire.size() - off, &written);
    if (r == 1) {
      off += written;
      continue;
    }
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      WARDEN_RETURN_IF_ERROR(waitFd(conn.fd.get(), err == SSL_ERROR_WANT_WRITE, deadline, "sending the request"));
      continue;
    }
    if (err == SSL_ERROR_SSL) return core::unauthenticated("the server refused the TLS connection: " + sslErrorString());
    ERR_clear_error();
    return core::unavailable("the connection closed while sending the request");
  }

  HttpResponseParser parser(options_.limits, request.method == "HEAD");
  char buf[16384];
  deadline = Clock::now() + options_.io_timeout;
  while (!parser.done()) {
    size_t got = 0;
    int r = SSL_read_ex(ssl, buf, sizeof buf, &got);
    if (r == 1) {
      WARDEN_RETURN_IF_ERROR(parser.feed(std::string_view(buf, got)));
      continue;
    }
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      WARDEN_RETURN_IF_ERROR(waitFd(conn.fd.get(), err == SSL_ERROR_WANT_WRITE, deadline, "waiting for the response"));
      continue;
    }
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && !parser.receivedAnything())) {
      ERR_clear_error();
      if (err == SSL_ERROR_SYSCALL && !parser.receivedAnything()) {
        return core::unavailable("the server closed the connection without a response");
      }
      WARDEN_RETURN_IF_ERROR(parser.finishAtEof());
      break;
    }
    if (err == SSL_ERROR_SYSCALL) {  // EOF without close_notify after some bytes
      ERR_clear_error();
      WARDEN_RETURN_IF_ERROR(parser.finishAtEof());
      break;
    }
    // OpenSSL 3 reports a peer that vanished without close_notify as an SSL
    // error; that is a dead server, not a TLS refusal.
    if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      ERR_clear_error();
      if (!parser.receivedAnything()) return core::unavailable("the server closed the connection without a response");
      WARDEN_RETURN_IF_ERROR(parser.finishAtEof());
      break;
    }
    // A TLS 1.3 server reports a rejected client certificate with an alert
    // that arrives on the first read.
    std::string why = sslErrorString();
    if (!parser.receivedAnything()) {
      return core::unauthenticated("the server refused the TLS connection (check the client certificate): " + why);
    }
    return core::unavailable("TLS error while reading the response: " + why);
  }
  // Best effort close_notify; the connection is not reused.
  SSL_shutdown(ssl);
  ERR_clear_error();
  return parser.take();
}

// ---------------------------------------------------------------------------
// Pinning

Status verifyChainWithPin(const std::vector<crypto::X509Ptr>& presented, const std::vector<crypto::X509Ptr>& extra,
                          std::string_view pin, const ServerUrl& server) {
  if (presented.empty()) return core::unauthenticated("the server presented no certificate");
  X509* root = nullptr;
  auto consider = [&](X509* c) {
    if (root != nullptr) return;
    // A root is self-issued and self-signed.
    if (X509_check_issued(c, c) != X509_V_OK) return;
    if (crypto::caFingerprint(c) == pin) root = c;
  };
  for (const auto& c : presented) consider(c.get());
  for (const auto& c : extra) consider(c.get());
  if (root == nullptr) {
    return core::unauthenticated(fmt::format("no CA certificate with the pinned fingerprint {} was offered by the server", pin));
  }

  crypto::X509StorePtr store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StackDeleter> untrusted(sk_X509_new_null());
  crypto::X509StoreCtxPtr vctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !vctx) return core::internalError("out of memory");
  if (X509_STORE_add_cert(store.get(), root) != 1) return core::internalError("X509_STORE_add_cert failed: " + sslErrorString());
  for (size_t i = 1; i < presented.size(); ++i) sk_X509_push(untrusted.get(), presented[i].get());
  for (const auto& c : extra) sk_X509_push(untrusted.get(), c.get());
  if (X509_STORE_CTX_init(vctx.get(), store.get(), presented[0].get(), untrusted.get()) != 1) {
    return core::internalError("X509_STORE_CTX_init failed: " + sslErrorString());
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(vctx.get());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  int ok = server.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server.host.c_str())
                             : X509_VERIFY_PARAM_set1_host(param, server.host.c_str(), 0);
  if (ok != 1) return core::internalError("cannot set the expected server name");
  if (X509_verify_cert(vctx.get()) != 1) {
    int e = X509_STORE_CTX_get_error(vctx.get());
    ERR_clear_error();
    return core::unauthenticated(fmt::format("the server's certificate does not chain to the pinned CA {} for {}: {}", pin,
                                             server.host, X509_verify_cert_error_string(e)));
  }
  return Status::ok();
}

}  // namespace warden::api
