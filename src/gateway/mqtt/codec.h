#pragma once

// The MQTT 3.1.1 / 5.0 wire codec: framing (FrameDecoder), strict decoding
// (decodePacket, decodeConnect) and canonical encoding (encode). Decoding
// validates everything the specifications require of a receiver, so that the
// gateway forwards only packets it understood completely. No Asio here: the
// libFuzzer target builds this file.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "gateway/mqtt/packet.h"

namespace warden::gateway::mqtt {

// kMaxRemainingLength is the largest value a 4-byte Variable Byte Integer can
// hold (MQTT 5.0 §1.5.5), so the largest Remaining Length.
inline constexpr uint32_t kMaxRemainingLength = 268'435'455;

// DecodeError says why bytes were refused. |reason_code| is the MQTT 5.0
// reason code to send in a DISCONNECT (or CONNACK) before closing:
//  - 0x81 Malformed Packet, 0x82 Protocol Error (the usual cases);
//  - 0x95 Packet Too Large (FrameDecoder);
//  - 0x90 Topic Name Invalid (a wildcard in a PUBLISH or will topic);
//  - 0x94 Topic Alias Invalid (Topic Alias 0);
//  - 0x84 Unsupported Protocol Version (a well-formed CONNECT preamble with
//    an unsupported level, e.g. MQTT 3.1 "MQIsdp" level 3: answer with a
//    3.1.1 CONNACK return code 1, or MQTT 5 0x84 if the level was 5-like).
// In a 3.1.1 session the gateway simply closes on any DecodeError except
// 0x84. |message| is one line for the event log and never contains secrets.
struct DecodeError {
  uint8_t reason_code = reason::kMalformedPacket;
  std::string message;
  bool operator==(const DecodeError&) const = default;
};

// DecodeResult holds either a decoded value or a DecodeError.
template <typename T>
class [[nodiscard]] DecodeResult {
 public:
  DecodeResult(T value) : v_(std::in_place_index<0>, std::move(value)) {}          // NOLINT: implicit
  DecodeResult(DecodeError error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool isOk() const { return v_.index() == 0; }
  explicit operator bool() const { return isOk(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  const DecodeError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, DecodeError> v_;
};

// Frame is one complete control packet as read from the wire: the first byte
// of the fixed header (type and flags) and the body after the Remaining
// Length.
struct Frame {
  uint8_t first_byte = 0;
  std::vector<uint8_t> body;
  // size is the whole packet's size on the wire (fixed header included), as
  // compared with Maximum Packet Size (MQTT 5.0 §3.1.2.11.4).
  size_t size = 0;
};

// FrameView is a Frame whose body lives in the decoder's buffer: valid until
// the decoder's next append(), next() or nextView().
struct FrameView {
  uint8_t first_byte = 0;
  std::span<const uint8_t> body;
  size_t size = 0;
};

// FrameDecoder splits a byte stream into frames. It is incremental: append
// the bytes read from the socket, then call next() until it returns no frame.
// It checks the Remaining Length (at most 4 bytes, minimally encoded,
// MQTT 5.0 §1.5.5 and §2.1.4: else 0x81) and the whole packet size against
// the maximum (else 0x95) from the fixed header alone, before it buffers the
// body: append() drops the bytes of a refused frame. After an error the
// decoder stays failed and the connection must be closed.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_packet_size);

  // setMaxPacketSize changes the limit for frames not yet started (e.g. once
  // CONNECT has been read).
  void setMaxPacketSize(size_t max_packet_size);
  size_t maxPacketSize() const { return max_packet_size_; }

  // append copies |bytes| into the buffer, unless the decoder has failed or
  // the pending frame's header is already known to be refused.
  void append(std::span<const uint8_t> bytes);
  void append(std::string_view bytes);

  // next returns the next complete frame, nullopt if more bytes are needed,
  // or the DecodeError that failed the stream (returned again on every
  // later call).
  DecodeResult<std::optional<Frame>> next();
  // nextView is next() without copying the body (the forwarding path).
  DecodeResult<std::optional<FrameView>> nextView();

  // buffered returns the number of bytes held and not yet returned.
  size_t buffered() const { return buffer_.size() - start_; }
  bool failed() const { return error_.has_value(); }

  // refusedFrame describes the frame refused as too large (0x95), for a
  // caller that wants to tell its peer why (a CONNECT's Protocol Level):
  // its first byte, its declared size, and the first bytes of its body that
  // had arrived (at most kRefusedBodyKept). nullopt unless that error.
  static constexpr size_t kRefusedBodyKept = 16;
  std::optional<FrameView> refusedFrame() const;

 private:
  // checkHeader parses the fixed header at the front of the buffer, if
  // complete, into header_len_/remaining_len_, setting error_ on a violation.
  void checkHeader();
  // compact drops consumed bytes (deferred while a FrameView may point at them).
  void compact();

  size_t max_packet_size_;
  std::vector<uint8_t> buffer_;
  size_t start_ = 0;              // bytes before |start_| were consumed
  size_t header_len_ = 0;         // 0 while the pending fixed header is incomplete
  size_t remaining_len_ = 0;      // of the pending frame, once header_len_ != 0
  std::optional<DecodeError> error_;
  // The frame refused as too large: first byte, declared size (0: none), start of its body.
  uint8_t refused_first_ = 0;
  size_t refused_size_ = 0;
  std::vector<uint8_t> refused_body_;
};

// decodePacket decodes and fully validates one frame of a session speaking
// |version|. CONNECT is decoded by its own Protocol Level (see
// decodeConnect); AUTH is refused in 3.1.1. Returns the packet or a
// DecodeError with the reason code to report.
DecodeResult<Packet> decodePacket(uint8_t first_byte, std::span<const uint8_t> body, ProtocolVersion version);

// peekConnectVersion reads only the protocol name and level of a CONNECT
// body, so the gateway can choose the session's version (and the CONNACK
// format for an error) before the full parse. Returns k311 for "MQTT" level 4,
// k5 for "MQTT" level 5, DecodeError 0x84 for "MQTT" with another level or
// "MQIsdp" (MQTT 3.1), and 0x81 for anything else.
DecodeResult<ProtocolVersion> peekConnectVersion(std::span<const uint8_t> body);

// decodeConnect decodes a whole CONNECT (first byte 0x10) by its own Protocol
// Level: everything peekConnectVersion checks, the reserved flag (§3.1.2.3),
// will flags (§3.1.2.5-7), password without user name in 3.1.1 (§3.1.2.9 of
// 3.1.1), properties, strings and trailing bytes.
DecodeResult<Connect> decodeConnect(uint8_t first_byte, std::span<const uint8_t> body);

// encode returns the canonical wire form of |packet| for a session speaking
// |version|: the shortest valid encodings, properties in identifier order
// (user properties and subscription identifiers in their given order), and
// MQTT 5.0 fields (properties, reason codes of acks and DISCONNECT, the
// subscription options beyond QoS) omitted in 3.1.1. A Connect is encoded
// with its own |version| field. The caller supplies valid values (as the
// decoder produces); encode does not validate. Returns "" for AUTH in 3.1.1
// and for a packet over kMaxRemainingLength.
std::string encode(const Packet& packet, ProtocolVersion version);

// isValidUtf8String reports whether |s| is a valid MQTT UTF-8 string body
// (MQTT 5.0 §1.5.4): well-formed UTF-8, no surrogates, no U+0000.
bool isValidUtf8String(std::string_view s);

}  // namespace warden::gateway::mqtt
