#pragma once

// tls_stream.h: private to src/gateway. TlsStream is one TLS connection over
// a non-blocking TCP socket, with OpenSSL's record layer wired to the socket
// through a minimal BIO: records are read by Asio's speculative
// async_read_some into a small per-connection buffer (no epoll re-arm, no
// EAGAIN read after a short read) and written by send(MSG_NOSIGNAL) straight
// from OpenSSL's buffer.
//
// Why not asio::ssl::stream: its engine copies every record through a BIO
// pair and keeps four ~17 KiB buffers per connection for the connection's
// whole life; the gateway holds two TLS connections per device session, so
// an idle session cost ~140 KiB. Here the read buffer adapts to the traffic
// (512 B to 16.5 KiB), OpenSSL's record buffers exist only while they hold
// data (SSL_MODE_RELEASE_BUFFERS), and each record is copied once less.
//
// One reader and one writer may be in progress at the same time (both on the
// io thread), as OpenSSL allows in non-blocking mode. After close() no
// operation touches the socket again: the BIO forgets the descriptor.

#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include <boost/asio.hpp>
#include <openssl/ssl.h>

namespace warden::gateway {

class TlsStream {
 public:
  enum class Role { kClient, kServer };
  using ErrorCode = boost::system::error_code;

  // TlsStream takes |socket| (connected, or to be connected through socket())
  // and creates its SSL from |ctx| (which it up-references).
  TlsStream(boost::asio::ip::tcp::socket socket, SSL_CTX* ctx);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  boost::asio::ip::tcp::socket& socket() { return socket_; }
  SSL* native_handle() { return ssl_; }

  // handshake runs the TLS handshake as |role| on the connected socket.
  boost::asio::awaitable<ErrorCode> handshake(Role role);
  // readSome reads at least one byte of plaintext into |buf|. The peer's
  // close_notify or TCP FIN reads as asio::error::eof.
  boost::asio::awaitable<std::tuple<ErrorCode, size_t>> readSome(std::span<uint8_t> buf);
  // writeAll encrypts and writes all of |data|; it returns once the kernel
  // has taken the last record.
  boost::asio::awaitable<ErrorCode> writeAll(std::span<const uint8_t> data);
  // close ends the TCP connection at once (no close_notify: the MQTT layer
  // has said what it had to) and cancels pending operations.
  void close();

  struct BioState;  // for the BIO in tls_stream.cc

 private:
  struct WriteResult {
    ErrorCode ec;
    size_t written = 0;
    int blocked_on = 0;  // SSL_ERROR_WANT_WRITE or _READ when it stopped early without error
  };
  // writeNow writes what the socket takes without waiting.
  WriteResult writeNow(std::span<const uint8_t> data);
  ErrorCode lastError(int ssl_error);
  // prepareRead sizes in_ for the next socket read; readDone hands what it
  // read to the BIO. Only the reader (or the handshake) reads.
  boost::asio::mutable_buffer prepareRead();
  ErrorCode readDone(ErrorCode ec, size_t n);
  boost::asio::awaitable<ErrorCode> waitWritable();

  boost::asio::ip::tcp::socket socket_;
  SSL* ssl_ = nullptr;
  std::unique_ptr<BioState> bio_;  // what the BIO reads from and writes to
  std::vector<uint8_t> in_;         // records read from the socket, not yet consumed by OpenSSL
  size_t last_read_ = 0;
};

}  // namespace warden::gateway
