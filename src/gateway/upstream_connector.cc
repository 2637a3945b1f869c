#include "gateway/upstream_connector_impl.h"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include "gateway/gateway_impl.h"

namespace warden::gateway {

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
}  // namespace

asio::awaitable<core::Result<std::unique_ptr<UpstreamLink>>> connectUpstream(Gateway::Impl& gw,
                                                                            const mqtt::Connect& connect) {
  const GatewayConfig& cfg = gw.config();
  auto link = std::make_unique<UpstreamLink>(cfg.limits.max_packet_size);
  link->stream = std::make_unique<TlsStream>(tcp::socket(gw.io()), gw.upstreamTls());
  TlsStream& stream = *link->stream;

  // The deadline closes the socket, which fails whatever operation is pending.
  auto expired = std::make_shared<bool>(false);
  auto finished = std::make_shared<bool>(false);
  asio::steady_timer deadline(gw.io(), cfg.upstream_timeout);
  deadline.async_wait([expired, finished, &stream](const boost::system::error_code& ec) {
    // Cancelled or too late: the connector finished and |stream| may be gone.
    if (ec || *finished) return;
    *expired = true;
    stream.close();
  });
  auto fail = [&](std::string what) -> core::Status {
    *finished = true;
    deadline.cancel();
    return core::unavailable(fmt::format("upstream broker {}:{}: {}", cfg.upstream_host, cfg.upstream_port,
                                         *expired ? std::string("timed out") : what));
  };

  tcp::resolver resolver(gw.io());
  auto [rec, endpoints] =
      co_await resolver.async_resolve(cfg.upstream_host, std::to_string(cfg.upstream_port), kNoThrow);
  if (rec) co_return fail("cannot resolve: " + rec.message());
  auto [cec, ep] = co_await asio::async_connect(stream.socket(), endpoints, kNoThrow);
  if (cec) co_return fail("cannot connect: " + cec.message());
  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);

  // Verify the broker's name (the client context checks only the chain).
  const std::string& name = cfg.upstream_server_name.empty() ? cfg.upstream_host : cfg.upstream_server_name;
  SSL* ssl = stream.native_handle();
  boost::system::error_code addr_ec;
  asio::ip::make_address(name, addr_ec);
  if (addr_ec) {
    SSL_set_tlsext_host_name(ssl, name.c_str());
    SSL_set1_host(ssl, name.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
  }
  auto hec = co_await stream.handshake(TlsStream::Role::kClient);
  if (hec) co_return fail("TLS handshake failed: " + hec.message());

  std::string bytes = mqtt::encode(connect, mqtt::ProtocolVersion::k5);
  auto wec = co_await stream.writeAll(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  if (wec) co_return fail("write failed: " + wec.message());

  std::vector<uint8_t> buf(4096);
  for (;;) {
    auto r = link->decoder.next();
    if (!r) co_return fail("bad CONNACK: " + r.error().message);
    if (r.value().has_value()) {
      mqtt::Frame frame = std::move(*r.value());
      auto packet = mqtt::decodePacket(frame.first_byte, frame.body, mqtt::ProtocolVersion::k5);
      if (!packet) co_return fail("bad CONNACK: " + packet.error().message);
      auto* connack = std::get_if<mqtt::Connack>(&packet.value());
      if (connack == nullptr) co_return fail("expected CONNACK");
      if (connack->reason_code >= 0x80) {
        co_return fail(fmt::format("CONNECT refused with reason 0x{:02x}", connack->reason_code));
      }
      link->connack = std::move(*connack);
      break;
    }
    auto [ec, n] = co_await stream.readSome(buf);
    if (ec) co_return fail("read failed: " + ec.message());
    link->decoder.append(std::span<const uint8_t>(buf.data(), n));
  }
  *finished = true;
  deadline.cancel();
  if (*expired) co_return core::unavailable("upstream broker timed out");
  co_return std::move(link);
}

namespace {

// connectAndDisconnect opens a connection with |connect| and ends it at once
// with DISCONNECT 0x00 (no will); |what| names the purpose in the log.
asio::awaitable<bool> connectAndDisconnect(Gateway::Impl& gw, const mqtt::Connect& connect, std::string_view what) {
  auto link = co_await connectUpstream(gw, connect);
  if (!link) {
    spdlog::warn("could not {} of device {}: {}", what, connect.client_id, link.status().message());
    co_return false;
  }
  mqtt::Disconnect disconnect;
  disconnect.reason_code = mqtt::reason::kSuccess;
  std::string bytes = mqtt::encode(disconnect, mqtt::ProtocolVersion::k5);
  TlsStream& stream = *(*link)->stream;
  co_await stream.writeAll(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  stream.close();
  spdlog::info("{}: device {}", what, connect.client_id);
  co_return true;
}

}  // namespace

asio::awaitable<void> purgeBrokerSession(Gateway::Impl& gw, std::string device) {
  mqtt::Connect connect;
  connect.version = mqtt::ProtocolVersion::k5;
  connect.clean_start = true;
  connect.keep_alive = 10;
  connect.client_id = std::move(device);
  co_await connectAndDisconnect(gw, connect, "purge the broker session");
}

asio::awaitable<bool> cancelBrokerWill(Gateway::Impl& gw, std::string device, uint32_t session_expiry) {
  mqtt::Connect connect;
  connect.version = mqtt::ProtocolVersion::k5;
  connect.clean_start = false;
  connect.keep_alive = 10;
  connect.client_id = std::move(device);
  if (session_expiry > 0) connect.properties.session_expiry_interval = session_expiry;
  co_return co_await connectAndDisconnect(gw, connect, "cancel the delayed will");
}

}  // namespace warden::gateway
