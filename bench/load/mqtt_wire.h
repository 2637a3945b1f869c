#pragma once

// mqtt_wire.h: the few MQTT 3.1.1 packets warden-load sends, hand-encoded
// (CONNECT, SUBSCRIBE, PUBLISH QoS 0, DISCONNECT), and an incremental frame
// splitter for what it receives. The load tool speaks MQTT 3.1.1 only
// (OASIS MQTT 3.1.1 §2-§3); it is a test client, not a general codec: the
// gateway's own codec (src/gateway/mqtt/) is what is under test.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace warden::bench {

inline constexpr uint8_t kConnack = 0x20;
inline constexpr uint8_t kPublish = 0x30;
inline constexpr uint8_t kSuback = 0x90;

// appendRemainingLength appends |n| as an MQTT Variable Byte Integer (§2.2.3).
inline void appendRemainingLength(std::string& out, size_t n) {
  do {
    uint8_t b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (n > 0);
}

inline void appendString(std::string& out, std::string_view s) {
  out.push_back(static_cast<char>(s.size() >> 8));
  out.push_back(static_cast<char>(s.size() & 0xff));
  out.append(s);
}

// encodeConnect returns a clean-session CONNECT for |client_id| (§3.1).
inline std::string encodeConnect(std::string_view client_id, uint16_t keep_alive) {
  std::string body;
  appendString(body, "MQTT");
  body.push_back(4);     // protocol level 3.1.1
  body.push_back(0x02);  // clean session, no will, no credentials
  body.push_back(static_cast<char>(keep_alive >> 8));
  body.push_back(static_cast<char>(keep_alive & 0xff));
  appendString(body, client_id);
  std::string out(1, '\x10');
  appendRemainingLength(out, body.size());
  return out + body;
}

// encodeSubscribe returns a SUBSCRIBE for |filter| at QoS 0 (§3.8).
inline std::string encodeSubscribe(uint16_t packet_id, std::string_view filter) {
  std::string body;
  body.push_back(static_cast<char>(packet_id >> 8));
  body.push_back(static_cast<char>(packet_id & 0xff));
  appendString(body, filter);
  body.push_back(0);
  std::string out(1, '\x82');
  appendRemainingLength(out, body.size());
  return out + body;
}

// appendPublish appends a QoS 0 PUBLISH of |payload| to |topic| (§3.3).
inline void appendPublish(std::string& out, std::string_view topic, std::string_view payload) {
  out.push_back(static_cast<char>(kPublish));
  appendRemainingLength(out, 2 + topic.size() + payload.size());
  appendString(out, topic);
  out.append(payload);
}

inline std::string encodeDisconnect() { return std::string("\xe0\x00", 2); }

// Frame is one received packet: first byte and body.
struct Frame {
  uint8_t first_byte = 0;
  std::string_view body;
};

// FrameSplitter accumulates received bytes and hands out complete frames.
// A malformed Remaining Length (more than 4 bytes) marks it broken.
class FrameSplitter {
 public:
  void append(const char* data, size_t n) {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ > (1u << 20)) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    buf_.append(data, n);
  }
  // next returns the next complete frame; the view is valid until append().
  std::optional<Frame> next() {
    size_t avail = buf_.size() - pos_;
    if (avail < 2) return std::nullopt;
    size_t len = 0, mult = 1, i = 1;
    for (;; ++i) {
      if (i > 4) {
        broken_ = true;
        return std::nullopt;
      }
      if (i >= avail) return std::nullopt;
      uint8_t b = static_cast<uint8_t>(buf_[pos_ + i]);
      len += (b & 0x7f) * mult;
      mult *= 128;
      if ((b & 0x80) == 0) break;
    }
    size_t header = i + 1;
    if (avail < header + len) return std::nullopt;
    Frame f{static_cast<uint8_t>(buf_[pos_]), std::string_view(buf_).substr(pos_ + header, len)};
    pos_ += header + len;
    return f;
  }
  bool broken() const { return broken_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  bool broken_ = false;
};

// publishPayload returns the application payload of a QoS 0 PUBLISH body.
inline std::string_view publishPayload(const Frame& f) {
  if (f.body.size() < 2) return {};
  size_t tlen = (static_cast<uint8_t>(f.body[0]) << 8) | static_cast<uint8_t>(f.body[1]);
  size_t off = 2 + tlen + (((f.first_byte >> 1) & 3) != 0 ? 2 : 0);
  if (off > f.body.size()) return {};
  return f.body.substr(off);
}

}  // namespace warden::bench
