// mqtt_codec_fuzz feeds a byte stream through FrameDecoder and decodePacket
// (src/gateway/mqtt/codec.h), and checks that every packet it accepts
// re-encodes canonically: the encoding decodes again to an equal packet and
// re-encodes to the same bytes.
//
// Input: one control byte, then the stream. Control bit 0: MQTT 5.0 (1) or
// 3.1.1 (0); bits 1-3: append chunk size 2^n; bit 4: a 64-byte maximum packet
// size instead of 1 MiB.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "gateway/mqtt/codec.h"

namespace {

using namespace warden::gateway::mqtt;

void check(bool condition) {
  if (!condition) std::abort();
}

// checkCanonical re-encodes |packet| and decodes the result again.
void checkCanonical(const Packet& packet, ProtocolVersion version) {
  std::string wire = encode(packet, version);
  check(!wire.empty());
  FrameDecoder framer(wire.size());
  framer.append(wire);
  auto frame = framer.next();
  check(frame.isOk() && frame.value().has_value());
  check(framer.buffered() == 0);
  const Frame& f = *frame.value();
  check(f.size == wire.size());
  auto again = decodePacket(f.first_byte, f.body, version);
  check(again.isOk());
  check(again.value() == packet);
  check(encode(again.value(), version) == wire);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t control = data[0];
  std::span<const uint8_t> stream(data + 1, size - 1);
  ProtocolVersion version = (control & 0x01) ? ProtocolVersion::k5 : ProtocolVersion::k311;
  size_t chunk = size_t{1} << ((control >> 1) & 0x07);
  FrameDecoder decoder((control & 0x10) ? 64 : 1 << 20);

  while (true) {
    size_t n = std::min(chunk, stream.size());
    decoder.append(stream.first(n));
    stream = stream.subspan(n);
    while (true) {
      auto frame = decoder.next();
      if (!frame.isOk()) {
        check(decoder.failed());
        return 0;
      }
      if (!frame.value()) break;
      const Frame& f = *frame.value();
      if ((f.first_byte >> 4) == 1) {
        // CONNECT decides the session's version, as in the gateway.
        (void)peekConnectVersion(f.body);
        auto connect = decodeConnect(f.first_byte, f.body);
        if (connect.isOk()) version = connect.value().version;
      }
      // Decode under both versions; a packet valid under one is checked there.
      for (ProtocolVersion v : {version, version == ProtocolVersion::k5 ? ProtocolVersion::k311 : ProtocolVersion::k5}) {
        auto packet = decodePacket(f.first_byte, f.body, v);
        if (packet.isOk()) {
          checkCanonical(packet.value(), v);
        } else {
          check(packet.error().reason_code >= 0x80);
        }
      }
    }
    if (stream.empty()) break;
  }
  return 0;
}
