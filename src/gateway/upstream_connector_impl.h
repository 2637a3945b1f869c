#pragma once

// upstream_connector_impl.h: private to src/gateway. Opens the gateway's own
// mutual-TLS connection to the upstream broker for one device session and
// performs the MQTT 5 CONNECT/CONNACK exchange. The gateway always speaks
// MQTT 5 upstream, whatever the device speaks, and translates: one upstream
// code path, and reason codes (DISCONNECT 0x00 vs 0x04) to control wills.

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "core/status.h"
#include "gateway/gateway.h"
#include "gateway/mqtt/codec.h"
#include "gateway/tls_stream.h"

namespace warden::gateway {

// UpstreamLink is an established upstream MQTT 5 connection.
struct UpstreamLink {
  std::unique_ptr<TlsStream> stream;
  mqtt::FrameDecoder decoder;  // may already hold bytes that followed the CONNACK
  mqtt::Connack connack;
  explicit UpstreamLink(size_t max_packet) : decoder(max_packet) {}
};

// connectUpstream connects to the configured broker, verifies it against the
// upstream CA, sends |connect| (encoded as MQTT 5) and waits for the CONNACK,
// all within config.upstream_timeout. kUnavailable on any failure, including
// a CONNACK with a failure reason code (the link is returned only on success).
boost::asio::awaitable<core::Result<std::unique_ptr<UpstreamLink>>> connectUpstream(Gateway::Impl& gw,
                                                                                   const mqtt::Connect& connect);

// purgeBrokerSession connects as device |device| with Clean Start and Session
// Expiry 0 and disconnects with 0x00: the broker drops the device's session,
// its queued messages and its will (used after `device revoke`).
boost::asio::awaitable<void> purgeBrokerSession(Gateway::Impl& gw, std::string device);

// cancelBrokerWill connects as device |device| resuming its session (Clean
// Start 0, Session Expiry |session_expiry|) and disconnects with 0x00: a new
// connection before the Will Delay ends cancels the will (MQTT 5.0
// §3.1.3.2.2) and the session stays. False if the broker could not be reached.
boost::asio::awaitable<bool> cancelBrokerWill(Gateway::Impl& gw, std::string device, uint32_t session_expiry);

}  // namespace warden::gateway
