#include "gateway/tls_stream.h"

#include <sys/socket.h>

#include <cerrno>
#include <algorithm>
#include <bit>
#include <cstring>

#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>

// g++ 12 reports a false -Wmismatched-new-delete at the end of Asio
// coroutines (GCC bug 109224: awaitable_frame_base's sized operator delete).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace warden::gateway {

namespace asio = boost::asio;

struct TlsStream::BioState {
  int fd = -1;          // -1 once closed: nothing touches the socket again
  int last_errno = 0;   // of the last failed send
  const uint8_t* in = nullptr;  // unread bytes of TlsStream::in_
  size_t in_len = 0;
};

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// The read buffer starts small (an idle connection costs little), doubles
// while reads fill it and shrinks to twice the last read when that used less
// than an eighth of it.
constexpr size_t kMinRead = 512;
constexpr size_t kMaxRead = 16 * 1024 + 512;  // one full TLS record and then some

// The BIO. Reads hand OpenSSL the bytes Asio read into TlsStream::in_;
// writes go straight to the socket with MSG_NOSIGNAL, so a peer that went
// away is an error, never a SIGPIPE.
int bioRead(BIO* bio, char* out, int len) {
  auto* st = static_cast<TlsStream::BioState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (st->in_len == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  size_t n = std::min(st->in_len, static_cast<size_t>(len));
  std::memcpy(out, st->in, n);
  st->in += n;
  st->in_len -= n;
  return static_cast<int>(n);
}

int bioWrite(BIO* bio, const char* in, int len) {
  auto* st = static_cast<TlsStream::BioState*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  ssize_t n = ::send(st->fd, in, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0) {
    st->last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(bio);
    return -1;
  }
  return static_cast<int>(n);
}

long bioCtrl(BIO*, int cmd, long, void*) {
  // OpenSSL flushes after each handshake flight; writes are unbuffered here.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

const BIO_METHOD* bioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "warden-tls-socket");
    BIO_meth_set_read(m, bioRead);
    BIO_meth_set_write(m, bioWrite);
    BIO_meth_set_ctrl(m, bioCtrl);
    return m;
  }();
  return method;
}

}  // namespace

TlsStream::TlsStream(asio::ip::tcp::socket socket, SSL_CTX* ctx)
    : socket_(std::move(socket)), ssl_(SSL_new(ctx)), bio_(std::make_unique<BioState>()) {
  if (ssl_ == nullptr) throw std::bad_alloc();
  BIO* bio = BIO_new(bioMethod());
  if (bio == nullptr) throw std::bad_alloc();
  BIO_set_data(bio, bio_.get());
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // one reference, owned by ssl_
  // Record buffers exist only while they hold data; SSL_write may return
  // after some records (the caller loops) and be retried with a moved buffer.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                         SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Take every buffered byte in one BIO read, not a record header then its body.
  SSL_set_read_ahead(ssl_, 1);
}

TlsStream::~TlsStream() {
  close();
  SSL_free(ssl_);
}

void TlsStream::close() {
  bio_->fd = -1;
  bio_->in_len = 0;
  if (socket_.is_open()) {
    ErrorCode ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
}

asio::mutable_buffer TlsStream::prepareRead() {
  // OpenSSL has consumed everything: drop its record buffers while the
  // connection waits (RELEASE_BUFFERS misses some, e.g. after the server's
  // NewSessionTicket flight). A no-op for a buffer that still holds data.
  (void)SSL_free_buffers(ssl_);
  // Adapt the buffer to the traffic before the read (never while one is pending).
  if (in_.empty()) {
    in_.resize(kMinRead);
  } else if (last_read_ == in_.size() && in_.size() < kMaxRead) {
    in_.resize(std::min(in_.size() * 2, kMaxRead));
  } else if (last_read_ < in_.size() / 8 && in_.size() > kMinRead) {
    in_.resize(std::max(kMinRead, std::bit_ceil(last_read_ * 2)));
    in_.shrink_to_fit();
  }
  return asio::buffer(in_);
}

TlsStream::ErrorCode TlsStream::readDone(ErrorCode ec, size_t n) {
  if (!ec && bio_->fd < 0) ec = asio::error::operation_aborted;
  if (ec) return ec;
  last_read_ = n;
  bio_->in = in_.data();
  bio_->in_len = n;
  return ErrorCode();
}

TlsStream::ErrorCode TlsStream::lastError(int ssl_error) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  if (e != 0) {
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      return asio::error::eof;
    }
    return ErrorCode(static_cast<int>(e), asio::error::get_ssl_category());
  }
  if (ssl_error == SSL_ERROR_SYSCALL) {
    if (bio_->fd < 0) return asio::error::operation_aborted;
    if (bio_->last_errno != 0) return ErrorCode(bio_->last_errno, asio::error::get_system_category());
    return asio::error::eof;
  }
  return asio::error::fault;
}

asio::awaitable<TlsStream::ErrorCode> TlsStream::waitWritable() {
  auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_write, kNoThrow);
  if (!ec && bio_->fd < 0) ec = asio::error::operation_aborted;
  co_return ec;
}

asio::awaitable<TlsStream::ErrorCode> TlsStream::handshake(Role role) {
  if (!socket_.is_open()) co_return asio::error::bad_descriptor;
  ErrorCode ec;
  socket_.non_blocking(true, ec);
  if (ec) co_return ec;
  bio_->fd = socket_.native_handle();
  if (role == Role::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
  for (;;) {
    if (bio_->fd < 0) co_return asio::error::operation_aborted;
    ERR_clear_error();
    bio_->last_errno = 0;
    int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      // The handshake's flights (certificate chains) grew the read buffer to
      // 2-4 KiB; a session that now idles keeps only the minimum. Not while
      // it still holds bytes OpenSSL has not read (the peer's first records).
      if (bio_->in_len == 0 && in_.size() > kMinRead) {
        in_.resize(kMinRead);
        in_.shrink_to_fit();
      }
      co_return ErrorCode();
    }
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) {
      auto [rec, n] = co_await socket_.async_read_some(prepareRead(), kNoThrow);
      if (auto e = readDone(rec, n)) co_return e;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      if (auto e = co_await waitWritable()) co_return e;
    } else {
      co_return lastError(err);
    }
  }
}

asio::awaitable<std::tuple<TlsStream::ErrorCode, size_t>> TlsStream::readSome(std::span<uint8_t> buf) {
  for (;;) {
    if (bio_->fd < 0) co_return std::tuple(ErrorCode(asio::error::operation_aborted), size_t{0});
    ERR_clear_error();
    bio_->last_errno = 0;
    size_t n = 0;
    int r = SSL_read_ex(ssl_, buf.data(), buf.size(), &n);
    if (r == 1) co_return std::tuple(ErrorCode(), n);
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) {
      // Read inline (not in a nested coroutine): an idle connection waits
      // here with one coroutine frame fewer.
      auto [rec, got] = co_await socket_.async_read_some(prepareRead(), kNoThrow);
      if (auto e = readDone(rec, got)) co_return std::tuple(e, size_t{0});
    } else if (err == SSL_ERROR_WANT_WRITE) {
      // A record OpenSSL must send while reading (a TLS 1.3 KeyUpdate
      // answer) waits for room in the socket.
      if (auto e = co_await waitWritable()) co_return std::tuple(e, size_t{0});
    } else {
      co_return std::tuple(lastError(err), size_t{0});
    }
  }
}

TlsStream::WriteResult TlsStream::writeNow(std::span<const uint8_t> data) {
  WriteResult out;
  while (out.written < data.size()) {
    if (bio_->fd < 0) {
      out.ec = asio::error::operation_aborted;
      break;
    }
    ERR_clear_error();
    bio_->last_errno = 0;
    size_t n = 0;
    int r = SSL_write_ex(ssl_, data.data() + out.written, data.size() - out.written, &n);
    if (r == 1) {
      out.written += n;
      continue;
    }
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      out.blocked_on = err;
    } else {
      out.ec = lastError(err);
    }
    break;
  }
  return out;
}

asio::awaitable<TlsStream::ErrorCode> TlsStream::writeAll(std::span<const uint8_t> data) {
  for (;;) {
    WriteResult r = writeNow(data);
    if (r.ec) co_return r.ec;
    data = data.subspan(r.written);
    if (data.empty()) co_return ErrorCode();
    if (r.blocked_on == SSL_ERROR_WANT_WRITE) {
      if (auto e = co_await waitWritable()) co_return e;
    } else {
      // WANT_READ. The writer never reads (the reader owns in_). OpenSSL
      // wants the peer's next record only for renegotiation, which Warden's
      // contexts refuse; should it happen, retry once the reader had a chance.
      asio::steady_timer pause(socket_.get_executor(), std::chrono::milliseconds(1));
      auto [pec] = co_await pause.async_wait(kNoThrow);
      if (pec) co_return pec;
    }
  }
}

}  // namespace warden::gateway
