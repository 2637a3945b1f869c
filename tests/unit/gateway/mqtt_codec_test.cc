#include "gateway/mqtt/codec.h"

#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace warden::gateway::mqtt {
namespace {

using namespace std::string_literals;
constexpr auto k311 = ProtocolVersion::k311;
constexpr auto k5 = ProtocolVersion::k5;

std::string bytes(std::initializer_list<int> b) {
  std::string out;
  for (int v : b) out.push_back(static_cast<char>(v));
  return out;
}

std::string str16(std::string_view s) { return bytes({static_cast<int>(s.size() >> 8), static_cast<int>(s.size() & 0xFF)}) + std::string(s); }

std::string varint(size_t v) {
  std::string out;
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    if (v) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (v);
  return out;
}

// props wraps raw property bytes with their Property Length.
std::string props(const std::string& raw) { return varint(raw.size()) + raw; }

std::span<const uint8_t> span(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// bodyOf returns the body of the single packet |wire|.
std::string bodyOf(const std::string& wire) {
  FrameDecoder fd(1 << 20);
  fd.append(wire);
  auto frame = fd.next();
  if (!frame.isOk() || !frame.value()) return "";
  return std::string(frame.value()->body.begin(), frame.value()->body.end());
}

// decodeWire frames |wire| (which must be exactly one packet) and decodes it.
DecodeResult<Packet> decodeWire(const std::string& wire, ProtocolVersion v) {
  FrameDecoder fd(1 << 20);
  fd.append(wire);
  auto frame = fd.next();
  if (!frame.isOk()) return frame.error();
  if (!frame.value().has_value()) return DecodeError{0, "incomplete frame"};
  EXPECT_EQ(fd.buffered(), 0u) << "test packet has extra bytes";
  const Frame& f = *frame.value();
  EXPECT_EQ(f.size, wire.size());
  return decodePacket(f.first_byte, f.body, v);
}

// body decodes a raw body with |first| and returns the error code or -1 for
// success.
int errorOf(int first, const std::string& body, ProtocolVersion v) {
  auto r = decodePacket(static_cast<uint8_t>(first), span(body), v);
  return r.isOk() ? -1 : r.error().reason_code;
}

template <typename T>
void expectRoundTrip(const T& p, ProtocolVersion v) {
  std::string wire = encode(p, v);
  ASSERT_FALSE(wire.empty());
  auto decoded = decodeWire(wire, v);
  ASSERT_TRUE(decoded.isOk()) << decoded.error().message;
  ASSERT_TRUE(std::holds_alternative<T>(decoded.value()));
  EXPECT_EQ(std::get<T>(decoded.value()), p);
  EXPECT_EQ(encode(decoded.value(), v), wire);
}

Properties allConnectProperties() {
  Properties p;
  p.session_expiry_interval = 3600;
  p.authentication_method = "SCRAM-SHA-1";
  p.authentication_data = "\x00\x01\xff"s;
  p.request_problem_information = 0;
  p.request_response_information = 1;
  p.receive_maximum = 20;
  p.topic_alias_maximum = 10;
  p.user_properties = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
  p.maximum_packet_size = 262144;
  return p;
}

Properties allMessageProperties() {
  Properties p;
  p.payload_format_indicator = 1;
  p.message_expiry_interval = 60;
  p.content_type = "application/json";
  p.response_topic = "reply/to/me";
  p.correlation_data = "\x01\x00\x02"s;
  p.user_properties = {{"k", "v"}, {"k", "v"}};
  return p;
}

// ---------------------------------------------------------------------------
// Round trips for every packet type in both versions.

TEST(MqttCodecRoundTrip, ConnectMinimal) {
  Connect c;
  c.version = k311;
  c.client_id = "sensor-1";
  c.keep_alive = 60;
  expectRoundTrip(c, k311);
  c.version = k5;
  expectRoundTrip(c, k5);
}

TEST(MqttCodecRoundTrip, ConnectFull311) {
  Connect c;
  c.version = k311;
  c.clean_start = false;
  c.keep_alive = 0xFFFF;
  c.client_id = "";
  c.will = Will{1, true, "will/topic", "bye\x00"s, {}};
  c.username = "user";
  c.password = "\x00pw\xff"s;
  expectRoundTrip(c, k311);
}

TEST(MqttCodecRoundTrip, ConnectFull5) {
  Connect c;
  c.version = k5;
  c.client_id = "valve-1";
  c.properties = allConnectProperties();
  Will w{2, false, "status/valve-1", "offline", allMessageProperties()};
  w.properties.will_delay_interval = 30;
  c.will = w;
  c.password = "secret";  // MQTT 5 allows a password without a user name
  expectRoundTrip(c, k5);
}

TEST(MqttCodecRoundTrip, ConnectEncodesKnownBytes) {
  Connect c;
  c.version = k311;
  c.client_id = "a";
  c.keep_alive = 10;
  EXPECT_EQ(encode(c, k311), bytes({0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 10, 0, 1, 'a'}));
  c.version = k5;
  EXPECT_EQ(encode(c, k5), bytes({0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 10, 0, 0, 1, 'a'}));
}

TEST(MqttCodecRoundTrip, Connack) {
  Connack c311{true, 0, {}};
  expectRoundTrip(c311, k311);
  expectRoundTrip(Connack{false, reason::kV311NotAuthorized, {}}, k311);
  EXPECT_EQ(encode(Connack{false, 5, {}}, k311), bytes({0x20, 2, 0, 5}));

  Connack c5;
  c5.reason_code = 0;
  c5.session_present = true;
  Properties& p = c5.properties;
  p.session_expiry_interval = 10;
  p.assigned_client_identifier = "dev";
  p.server_keep_alive = 300;
  p.authentication_method = "m";
  p.authentication_data = "d";
  p.response_information = "resp";
  p.server_reference = "other:1883";
  p.reason_string = "ok";
  p.receive_maximum = 100;
  p.topic_alias_maximum = 16;
  p.maximum_qos = 1;
  p.retain_available = 1;
  p.user_properties = {{"x", "y"}};
  p.maximum_packet_size = 1000;
  p.wildcard_subscription_available = 1;
  p.subscription_identifier_available = 0;
  p.shared_subscription_available = 1;
  expectRoundTrip(c5, k5);
  expectRoundTrip(Connack{false, reason::kNotAuthorized, {}}, k5);
}

TEST(MqttCodecRoundTrip, PublishAllQos) {
  for (auto v : {k311, k5}) {
    expectRoundTrip(Publish{false, 0, false, "a/b", 0, {}, ""}, v);
    expectRoundTrip(Publish{false, 1, true, "a/b", 7, {}, "payload"}, v);
    expectRoundTrip(Publish{true, 2, false, "a/b", 0xFFFF, {}, "\x00\x01"s}, v);
    expectRoundTrip(Publish{true, 1, true, "caf\xc3\xa9/\xf0\x9f\x98\x80", 1, {}, std::string(70000, 'x')}, v);
  }
  EXPECT_EQ(encode(Publish{false, 0, false, "t", 0, {}, "p"}, k311), bytes({0x30, 4, 0, 1, 't', 'p'}));
  EXPECT_EQ(encode(Publish{false, 0, false, "t", 0, {}, "p"}, k5), bytes({0x30, 5, 0, 1, 't', 0, 'p'}));
}

TEST(MqttCodecRoundTrip, PublishWithProperties5) {
  Publish p{false, 1, false, "t", 3, allMessageProperties(), "{}"};
  p.properties.topic_alias = 5;
  p.properties.subscription_identifiers = {1, 268435455, 128};
  expectRoundTrip(p, k5);
  // Empty topic with a Topic Alias (§3.3.2.3.4).
  Publish aliased{false, 0, false, "", 0, {}, "x"};
  aliased.properties.topic_alias = 1;
  expectRoundTrip(aliased, k5);
}

TEST(MqttCodecRoundTrip, PublishPropertiesDroppedIn311) {
  Publish p{false, 0, false, "t", 0, allMessageProperties(), "p"};
  EXPECT_EQ(encode(p, k311), bytes({0x30, 4, 0, 1, 't', 'p'}));
}

template <typename T>
void pubResponseRoundTrips(int first, uint8_t failure_code) {
  expectRoundTrip(T{1, 0, {}}, k311);
  expectRoundTrip(T{1, 0, {}}, k5);
  EXPECT_EQ(encode(T{0x1234, 0, {}}, k5), bytes({first, 2, 0x12, 0x34}));      // §3.4.2.1 short form
  EXPECT_EQ(encode(T{0x1234, failure_code, {}}, k311), bytes({first, 2, 0x12, 0x34}));
  EXPECT_EQ(encode(T{0x1234, failure_code, {}}, k5), bytes({first, 3, 0x12, 0x34, failure_code}));
  expectRoundTrip(T{2, failure_code, {}}, k5);
  Properties p;
  p.reason_string = "because";
  p.user_properties = {{"a", "b"}};
  expectRoundTrip(T{3, failure_code, p}, k5);
  expectRoundTrip(T{3, 0, p}, k5);
  // A long form with reason 0 and no properties decodes to the same value.
  auto r = decodePacket(static_cast<uint8_t>(first), span(bytes({0, 9, 0, 0})), k5);
  ASSERT_TRUE(r.isOk()) << r.error().message;
  EXPECT_EQ(std::get<T>(r.value()), (T{9, 0, {}}));
}

TEST(MqttCodecRoundTrip, PubAcks) {
  pubResponseRoundTrips<Puback>(0x40, reason::kNotAuthorized);
  pubResponseRoundTrips<Pubrec>(0x50, reason::kNoMatchingSubscribers);
  pubResponseRoundTrips<Pubrel>(0x62, reason::kPacketIdentifierNotFound);
  pubResponseRoundTrips<Pubcomp>(0x70, reason::kPacketIdentifierNotFound);
}

TEST(MqttCodecRoundTrip, Subscribe) {
  Subscribe s311{10, {{"a/+", 0, false, false, 0}, {"#", 2, false, false, 0}}, {}};
  expectRoundTrip(s311, k311);
  EXPECT_EQ(encode(Subscribe{1, {{"a", 1, true, true, 2}}, {}}, k311), bytes({0x82, 6, 0, 1, 0, 1, 'a', 1}));

  Subscribe s5{11, {{"a/#", 1, true, true, 2}, {"$share/g/x", 2, false, false, 1}, {"b", 0, false, true, 0}}, {}};
  s5.properties.subscription_identifiers = {42};
  s5.properties.user_properties = {{"u", "v"}};
  expectRoundTrip(s5, k5);
  EXPECT_EQ(encode(Subscribe{1, {{"a", 1, true, true, 2}}, {}}, k5),
            bytes({0x82, 7, 0, 1, 0, 0, 1, 'a', 0x2D}));
}

TEST(MqttCodecRoundTrip, Suback) {
  expectRoundTrip(Suback{5, {0x00, 0x01, 0x02, 0x80}, {}}, k311);
  Suback s{6, {0x00, 0x87, 0x8F, 0xA2}, {}};
  s.properties.reason_string = "denied";
  expectRoundTrip(s, k5);
}

TEST(MqttCodecRoundTrip, UnsubscribeAndUnsuback) {
  expectRoundTrip(Unsubscribe{3, {"a/b", "#", ""}, {}}, k311);
  Unsubscribe u{4, {"x"}, {}};
  u.properties.user_properties = {{"a", "b"}};
  expectRoundTrip(u, k5);
  expectRoundTrip(Unsuback{3, {}, {}}, k311);
  EXPECT_EQ(encode(Unsuback{3, {0x11}, {}}, k311), bytes({0xB0, 2, 0, 3}));
  expectRoundTrip(Unsuback{4, {0x00, 0x11, 0x87}, {}}, k5);
}

TEST(MqttCodecRoundTrip, PingAndDisconnect) {
  for (auto v : {k311, k5}) {
    expectRoundTrip(Pingreq{}, v);
    expectRoundTrip(Pingresp{}, v);
    expectRoundTrip(Disconnect{}, v);
  }
  EXPECT_EQ(encode(Pingreq{}, k311), bytes({0xC0, 0}));
  EXPECT_EQ(encode(Pingresp{}, k5), bytes({0xD0, 0}));
  EXPECT_EQ(encode(Disconnect{}, k5), bytes({0xE0, 0}));
  EXPECT_EQ(encode(Disconnect{reason::kNotAuthorized, {}}, k5), bytes({0xE0, 1, 0x87}));
  EXPECT_EQ(encode(Disconnect{reason::kNotAuthorized, {}}, k311), bytes({0xE0, 0}));
  expectRoundTrip(Disconnect{reason::kSessionTakenOver, {}}, k5);
  Disconnect d{reason::kServerShuttingDown, {}};
  d.properties.session_expiry_interval = 0;
  d.properties.reason_string = "bye";
  d.properties.server_reference = "elsewhere";
  expectRoundTrip(d, k5);
}

TEST(MqttCodecRoundTrip, Auth) {
  expectRoundTrip(Auth{}, k5);
  EXPECT_EQ(encode(Auth{}, k5), bytes({0xF0, 0}));
  Auth a{reason::kContinueAuthentication, {}};
  a.properties.authentication_method = "m";
  a.properties.authentication_data = "d";
  expectRoundTrip(a, k5);
  expectRoundTrip(Auth{reason::kReAuthenticate, {}}, k5);
  EXPECT_EQ(encode(a, k311), "");
}

TEST(MqttCodecRoundTrip, PacketTypeAndNames) {
  EXPECT_EQ(packetType(Packet(Publish{})), PacketType::kPublish);
  EXPECT_EQ(packetType(Packet(Pubrel{})), PacketType::kPubrel);
  EXPECT_EQ(packetType(Packet(Auth{})), PacketType::kAuth);
  EXPECT_STREQ(packetTypeName(PacketType::kUnsuback), "UNSUBACK");
  EXPECT_STREQ(packetTypeName(static_cast<PacketType>(0)), "RESERVED");
}

TEST(MqttCodecEncode, OversizedStringsYieldEmptyOutput) {
  EXPECT_EQ(encode(Publish{false, 0, false, std::string(70000, 'a'), 0, {}, ""}, k311), "");
}

// ---------------------------------------------------------------------------
// FrameDecoder.

TEST(FrameDecoder, ViewsPointIntoTheBufferUntilTheNextCall) {
  const std::string first = encode(Publish{false, 0, false, "a/b", 0, {}, std::string(40, 'x')}, k311);
  const std::string second = encode(Publish{false, 0, false, "c/d", 0, {}, std::string(40, 'y')}, k311);
  FrameDecoder fd(1024);
  fd.append(first + second.substr(0, 10));
  auto v1 = fd.nextView();
  ASSERT_TRUE(v1.isOk() && v1.value());
  EXPECT_EQ(v1.value()->size, first.size());
  EXPECT_EQ(std::string(v1.value()->body.begin(), v1.value()->body.end()), first.substr(2));
  auto none = fd.nextView();
  ASSERT_TRUE(none.isOk());
  EXPECT_FALSE(none.value());
  // The consumed bytes are dropped only now; the partial frame survives.
  fd.append(std::string_view(second).substr(10));
  auto v2 = fd.nextView();
  ASSERT_TRUE(v2.isOk() && v2.value());
  EXPECT_EQ(std::string(v2.value()->body.begin(), v2.value()->body.end()), second.substr(2));
  EXPECT_EQ(fd.buffered(), 0u);
}

TEST(FrameDecoder, DeliversFramesSplitAcrossAppends) {
  std::string wire = encode(Publish{false, 1, false, "a/b", 1, {}, std::string(300, 'p')}, k311) +
                     encode(Pingreq{}, k311);
  FrameDecoder fd(1024);
  std::vector<Frame> frames;
  for (char c : wire) {
    fd.append(std::string_view(&c, 1));
    while (true) {
      auto f = fd.next();
      ASSERT_TRUE(f.isOk());
      if (!f.value()) break;
      frames.push_back(std::move(*f.value()));
    }
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].first_byte, 0x32);
  EXPECT_EQ(frames[0].body.size(), 2u + 3u + 2u + 300u);
  EXPECT_EQ(frames[0].size, wire.size() - 2);
  EXPECT_EQ(frames[1].first_byte, 0xC0);
  EXPECT_TRUE(frames[1].body.empty());
  EXPECT_EQ(fd.buffered(), 0u);
}

TEST(FrameDecoder, DeliversSeveralFramesFromOneAppend) {
  FrameDecoder fd(100);
  fd.append(encode(Pingreq{}, k5) + encode(Pingresp{}, k5) + bytes({0x30}));
  EXPECT_EQ(fd.next().value()->first_byte, 0xC0);
  EXPECT_EQ(fd.next().value()->first_byte, 0xD0);
  EXPECT_FALSE(fd.next().value().has_value());
  EXPECT_EQ(fd.buffered(), 1u);
}

TEST(FrameDecoder, RejectsFiveByteRemainingLength) {
  FrameDecoder fd(1u << 30);
  fd.append(bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
  auto r = fd.next();
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.error().reason_code, reason::kMalformedPacket);
  EXPECT_TRUE(fd.failed());
  // Sticky: more bytes do not revive it.
  fd.append(encode(Pingreq{}, k5));
  EXPECT_FALSE(fd.next().isOk());
  EXPECT_EQ(fd.buffered(), 0u);
}

TEST(FrameDecoder, RejectsNonMinimalRemainingLength) {
  FrameDecoder fd(1000);
  fd.append(bytes({0xC0, 0x80, 0x00}));
  auto r = fd.next();
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.error().reason_code, reason::kMalformedPacket);
}

TEST(FrameDecoder, RejectsOversizedPacketFromHeaderAlone) {
  FrameDecoder fd(256 * 1024);
  // Remaining Length 256 KiB: with 4 header bytes that is over the limit.
  std::string header = bytes({0x30}) + varint(256 * 1024);
  fd.append(header);  // no body byte sent at all
  auto r = fd.next();
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.error().reason_code, reason::kPacketTooLarge);
  EXPECT_EQ(fd.buffered(), 0u);
  fd.append(std::string(1000, 'x'));
  EXPECT_EQ(fd.buffered(), 0u);  // nothing of the body is buffered
}

TEST(FrameDecoder, RefusedFrameKeepsItsStartOnly) {
  FrameDecoder fd(256 * 1024);
  EXPECT_FALSE(fd.refusedFrame().has_value());
  // An oversized CONNECT whose header arrives in two reads, then some body.
  std::string wire = bytes({0x10}) + varint(300 * 1024);
  std::string body = bytes({0x00, 0x04}) + "MQTT" + bytes({0x05, 0x02, 0x00, 0x3C}) + std::string(40, 'x');
  fd.append(wire.substr(0, 2));
  EXPECT_FALSE(fd.refusedFrame().has_value());  // header incomplete: nothing refused yet
  fd.append(wire.substr(2) + body);
  EXPECT_EQ(fd.next().error().reason_code, reason::kPacketTooLarge);
  EXPECT_EQ(fd.buffered(), 0u);
  auto refused = fd.refusedFrame();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->first_byte, 0x10);
  EXPECT_EQ(refused->size, wire.size() + 300 * 1024);
  EXPECT_EQ(std::string(refused->body.begin(), refused->body.end()), body.substr(0, FrameDecoder::kRefusedBodyKept));
  EXPECT_EQ(peekConnectVersion(refused->body).value(), ProtocolVersion::k5);

  FrameDecoder malformed_header(256 * 1024);
  malformed_header.append(bytes({0xC0, 0x80, 0x00}));
  EXPECT_EQ(malformed_header.next().error().reason_code, reason::kMalformedPacket);
  EXPECT_FALSE(malformed_header.refusedFrame().has_value());
}

TEST(FrameDecoder, AcceptsPacketOfExactlyTheMaximum) {
  std::string wire = encode(Publish{false, 0, false, "t", 0, {}, std::string(100, 'x')}, k311);
  FrameDecoder exact(wire.size());
  exact.append(wire);
  auto r = exact.next();
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r.value().has_value());

  FrameDecoder one_less(wire.size() - 1);
  one_less.append(wire.substr(0, 2));
  EXPECT_EQ(one_less.next().error().reason_code, reason::kPacketTooLarge);
}

TEST(FrameDecoder, SetMaxPacketSizeAppliesToLaterFrames) {
  FrameDecoder fd(10);
  fd.append(encode(Pingreq{}, k311));
  ASSERT_TRUE(fd.next().value().has_value());
  fd.setMaxPacketSize(4);
  EXPECT_EQ(fd.maxPacketSize(), 4u);
  fd.append(encode(Publish{false, 0, false, "t", 0, {}, "p"}, k311));  // 6 bytes
  EXPECT_EQ(fd.next().error().reason_code, reason::kPacketTooLarge);
}

TEST(FrameDecoder, IncompleteHeaderWaits) {
  FrameDecoder fd(1 << 20);
  fd.append(bytes({0x30, 0x80}));
  auto r = fd.next();
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(r.value().has_value());
  fd.append(bytes({0x01}));  // Remaining Length 128
  r = fd.next();
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(r.value().has_value());
}

// ---------------------------------------------------------------------------
// Fixed header and general malformations.

TEST(MqttCodecMalformed, ReservedFlagBits) {
  struct Case { int first; std::string body; };
  std::vector<Case> cases = {
      {0x11, ""}, {0x21, bytes({0, 0})}, {0x41, bytes({0, 1})}, {0x52, bytes({0, 1})}, {0x60, bytes({0, 1})},
      {0x63, bytes({0, 1})}, {0x72, bytes({0, 1})}, {0x80, bytes({0, 1, 0, 1, 'a', 0})}, {0x83, bytes({0, 1, 0, 1, 'a', 0})},
      {0x92, bytes({0, 1, 0})}, {0xA0, bytes({0, 1, 0, 1, 'a'})}, {0xB1, bytes({0, 1})}, {0xC1, ""}, {0xD8, ""},
      {0xE2, ""}, {0xF1, ""}};
  for (const auto& c : cases) {
    EXPECT_EQ(errorOf(c.first, c.body, k311), reason::kMalformedPacket) << std::hex << c.first;
    EXPECT_EQ(errorOf(c.first, c.body, k5), reason::kMalformedPacket) << std::hex << c.first;
  }
}

TEST(MqttCodecMalformed, ReservedPacketTypes) {
  EXPECT_EQ(errorOf(0x00, "", k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xF0, "", k311), reason::kMalformedPacket);  // AUTH does not exist in 3.1.1
}

TEST(MqttCodecMalformed, TrailingGarbage) {
  EXPECT_EQ(errorOf(0xC0, "x", k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xD0, "x", k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xE0, "x", k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x40, bytes({0, 1, 0}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x40, bytes({0, 1, 0, 0, 0}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x20, bytes({0, 0, 0}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x20, bytes({0, 0, 0, 0}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xB0, bytes({0, 1, 0}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xE0, bytes({0, 0, 0}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xF0, bytes({0, 0, 0}), k5), reason::kMalformedPacket);
  std::string connect = encode(Connect{k311, true, 0, "c", std::nullopt, std::nullopt, std::nullopt, {}}, k311);
  EXPECT_EQ(errorOf(0x10, bodyOf(connect) + "x", k311), reason::kMalformedPacket);
}

TEST(MqttCodecMalformed, EveryTruncationOfConnectFails) {
  Connect c;
  c.version = k5;
  c.client_id = "id";
  c.properties = allConnectProperties();
  c.will = Will{1, false, "w", "p", allMessageProperties()};
  c.username = "u";
  c.password = "p";
  std::string body = bodyOf(encode(c, k5));
  ASSERT_TRUE(decodePacket(0x10, span(body), k5).isOk());
  for (size_t n = 0; n < body.size(); ++n) {
    EXPECT_FALSE(decodePacket(0x10, span(body.substr(0, n)), k5).isOk()) << n;
  }
}

TEST(MqttCodecMalformed, EveryTruncationOfSubscribeFails) {
  Subscribe s{7, {{"a/b", 1, true, false, 1}}, {}};
  s.properties.subscription_identifiers = {300};
  std::string body = bodyOf(encode(s, k5));
  for (size_t n = 0; n < body.size(); ++n) {
    EXPECT_FALSE(decodePacket(0x82, span(body.substr(0, n)), k5).isOk()) << n;
  }
}

// ---------------------------------------------------------------------------
// PUBLISH.

TEST(MqttCodecMalformed, PublishQos3) {
  EXPECT_EQ(errorOf(0x36, str16("t") + bytes({0, 1}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x36, str16("t") + bytes({0, 1, 0}), k5), reason::kMalformedPacket);
}

TEST(MqttCodecMalformed, PublishDupWithQos0) {
  EXPECT_EQ(errorOf(0x38, str16("t"), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x38, str16("t") + bytes({0}), k5), reason::kMalformedPacket);
}

TEST(MqttCodecMalformed, PacketIdZero) {
  EXPECT_EQ(errorOf(0x32, str16("t") + bytes({0, 0}), k311), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x34, str16("t") + bytes({0, 0, 0}), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x40, bytes({0, 0}), k311), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x50, bytes({0, 0}), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x62, bytes({0, 0}), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x70, bytes({0, 0}), k311), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x82, bytes({0, 0}) + str16("a") + bytes({0}), k311), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x90, bytes({0, 0, 0}), k311), reason::kProtocolError);
  EXPECT_EQ(errorOf(0xA2, bytes({0, 0}) + str16("a"), k311), reason::kProtocolError);
  EXPECT_EQ(errorOf(0xB0, bytes({0, 0}), k311), reason::kProtocolError);
}

TEST(MqttCodecMalformed, PublishTopicWildcard) {
  EXPECT_EQ(errorOf(0x30, str16("a/+"), k311), reason::kTopicNameInvalid);
  EXPECT_EQ(errorOf(0x30, str16("#") + bytes({0}), k5), reason::kTopicNameInvalid);
}

TEST(MqttCodecMalformed, PublishEmptyTopic) {
  EXPECT_EQ(errorOf(0x30, str16("") + "p", k311), reason::kTopicNameInvalid);
  EXPECT_EQ(errorOf(0x30, str16("") + bytes({0}), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x30, str16("") + props(bytes({0x23, 0, 1})), k5), -1);
}

TEST(MqttCodecMalformed, PublishTruncated) {
  EXPECT_EQ(errorOf(0x30, bytes({0}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x30, bytes({0, 5, 'a'}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x32, str16("t") + bytes({0}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x30, str16("t"), k5), reason::kMalformedPacket);  // missing Property Length
}

// ---------------------------------------------------------------------------
// UTF-8 (MQTT 5.0 §1.5.4).

TEST(MqttCodecUtf8, ValidatorAcceptsAndRejects) {
  EXPECT_TRUE(isValidUtf8String(""));
  EXPECT_TRUE(isValidUtf8String("plain ascii/"));
  EXPECT_TRUE(isValidUtf8String("caf\xc3\xa9"));
  EXPECT_TRUE(isValidUtf8String("\xe2\x82\xac"));            // U+20AC
  EXPECT_TRUE(isValidUtf8String("\xef\xbf\xbf"));            // U+FFFF (non-character, allowed)
  EXPECT_TRUE(isValidUtf8String("\xf4\x8f\xbf\xbf"));        // U+10FFFF
  EXPECT_TRUE(isValidUtf8String("\xed\x9f\xbf"));            // U+D7FF
  EXPECT_FALSE(isValidUtf8String("a\0b"s));                  // U+0000
  EXPECT_FALSE(isValidUtf8String("\xc0\x80"));               // over-long NUL
  EXPECT_FALSE(isValidUtf8String("\xc1\xbf"));               // over-long
  EXPECT_FALSE(isValidUtf8String("\xe0\x80\xaf"));           // over-long
  EXPECT_FALSE(isValidUtf8String("\xf0\x80\x80\xaf"));       // over-long
  EXPECT_FALSE(isValidUtf8String("\xed\xa0\x80"));           // U+D800 surrogate
  EXPECT_FALSE(isValidUtf8String("\xed\xbf\xbf"));           // U+DFFF surrogate
  EXPECT_FALSE(isValidUtf8String("\xf4\x90\x80\x80"));       // U+110000
  EXPECT_FALSE(isValidUtf8String("\xf8\x88\x80\x80\x80"));   // 5-byte form
  EXPECT_FALSE(isValidUtf8String("\xff"));
  EXPECT_FALSE(isValidUtf8String("\x80"));                   // lone continuation
  EXPECT_FALSE(isValidUtf8String("\xc3"));                   // truncated
  EXPECT_FALSE(isValidUtf8String("\xe2\x82"));               // truncated
  EXPECT_FALSE(isValidUtf8String("\xc3\x28"));               // bad continuation
}

TEST(MqttCodecUtf8, EveryStringIsChecked) {
  const std::string bad = "\xed\xa0\x80";
  // PUBLISH topic.
  EXPECT_EQ(errorOf(0x30, str16("a" + bad), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x30, str16("a\0"s), k5), reason::kMalformedPacket);
  // SUBSCRIBE / UNSUBSCRIBE filters.
  EXPECT_EQ(errorOf(0x82, bytes({0, 1}) + str16(bad) + bytes({0}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xA2, bytes({0, 1, 0}) + str16("\xc0\x80"), k5), reason::kMalformedPacket);
  // User Property name and value, Content Type, Reason String.
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x26}) + str16(bad) + str16("v")), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x26}) + str16("k") + str16("\0"s)), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x03}) + str16("\xff")), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x40, bytes({0, 1, 0x80}) + props(bytes({0x1F}) + str16(bad)), k5), reason::kMalformedPacket);
  // CONNECT client id, will topic, user name.
  auto connect = [](const std::string& id, const std::string& user) {
    return str16("MQTT") + bytes({4, 0x80, 0, 0}) + str16(id) + str16(user);
  };
  EXPECT_EQ(errorOf(0x10, connect("ok", "ok"), k311), -1);
  EXPECT_EQ(errorOf(0x10, connect(bad, "ok"), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x10, connect("ok", "u\0"s), k311), reason::kMalformedPacket);
  std::string will = str16("MQTT") + bytes({4, 0x04, 0, 0}) + str16("c") + str16(bad) + str16("p");
  EXPECT_EQ(errorOf(0x10, will, k311), reason::kMalformedPacket);
  // Binary data (password, will payload, correlation data) is not UTF-8.
  std::string binary = str16("MQTT") + bytes({4, 0xC4, 0, 0}) + str16("c") + str16("w") + str16(bad) + str16("u") +
                       str16("\0\xff"s);
  EXPECT_EQ(errorOf(0x10, binary, k311), -1);
}

// ---------------------------------------------------------------------------
// Properties.

TEST(MqttCodecProperties, NotAllowedForPacketType) {
  // Topic Alias in CONNECT, Session Expiry in PUBLISH, Will Delay in PUBLISH,
  // Subscription Identifier in UNSUBSCRIBE, Reason String in PUBLISH.
  std::string connect_head = str16("MQTT") + bytes({5, 0x02, 0, 0});
  EXPECT_EQ(errorOf(0x10, connect_head + props(bytes({0x23, 0, 1})) + str16("c"), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x11, 0, 0, 0, 1})), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x18, 0, 0, 0, 1})), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0xA2, bytes({0, 1}) + props(bytes({0x0B, 1})) + str16("a"), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x1F}) + str16("r")), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0xE0, bytes({0}) + props(bytes({0x21, 0, 1})), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x62, bytes({0, 1, 0}) + props(bytes({0x26}) + str16("a") + str16("b")), k5), -1);
  // Will Delay in will properties is fine; in CONNECT properties it is not.
  EXPECT_EQ(errorOf(0x10, connect_head + props(bytes({0x18, 0, 0, 0, 1})) + str16("c"), k5), reason::kProtocolError);
  std::string will = str16("MQTT") + bytes({5, 0x06, 0, 0}) + props("") + str16("c") +
                     props(bytes({0x18, 0, 0, 0, 1})) + str16("w") + str16("p");
  EXPECT_EQ(errorOf(0x10, will, k5), -1);
  std::string bad_will = str16("MQTT") + bytes({5, 0x06, 0, 0}) + props("") + str16("c") +
                         props(bytes({0x11, 0, 0, 0, 1})) + str16("w") + str16("p");
  EXPECT_EQ(errorOf(0x10, bad_will, k5), reason::kProtocolError);
}

TEST(MqttCodecProperties, UnknownIdentifierIsMalformed) {
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x05, 0})), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x00})), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x80, 0x01})), k5), reason::kMalformedPacket);
}

TEST(MqttCodecProperties, RepeatedSingleUseIsProtocolError) {
  auto publish = [](const std::string& raw) { return errorOf(0x30, str16("t") + props(raw), k5); };
  EXPECT_EQ(publish(bytes({0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2})), reason::kProtocolError);
  EXPECT_EQ(publish(bytes({0x01, 1, 0x01, 1})), reason::kProtocolError);
  EXPECT_EQ(publish(bytes({0x23, 0, 1, 0x23, 0, 2})), reason::kProtocolError);
  EXPECT_EQ(publish(bytes({0x03}) + str16("a") + bytes({0x03}) + str16("a")), reason::kProtocolError);
  EXPECT_EQ(publish(bytes({0x09}) + str16("a") + bytes({0x09}) + str16("a")), reason::kProtocolError);
  // Allowed repeats: User Property anywhere, Subscription Identifier in PUBLISH.
  EXPECT_EQ(publish(bytes({0x26}) + str16("a") + str16("b") + bytes({0x26}) + str16("a") + str16("b")), -1);
  EXPECT_EQ(publish(bytes({0x0B, 1, 0x0B, 2})), -1);
  // Subscription Identifier twice in SUBSCRIBE.
  EXPECT_EQ(errorOf(0x82, bytes({0, 1}) + props(bytes({0x0B, 1, 0x0B, 2})) + str16("a") + bytes({0}), k5),
            reason::kProtocolError);
  // Session Expiry twice in CONNECT.
  EXPECT_EQ(errorOf(0x10,
                    str16("MQTT") + bytes({5, 0x02, 0, 0}) + props(bytes({0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1})) +
                        str16("c"),
                    k5),
            reason::kProtocolError);
}

TEST(MqttCodecProperties, ZeroValuesRefused) {
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x23, 0, 0})), k5), reason::kTopicAliasInvalid);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x0B, 0})), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x82, bytes({0, 1}) + props(bytes({0x0B, 0})) + str16("a") + bytes({0}), k5), reason::kProtocolError);
  std::string head = str16("MQTT") + bytes({5, 0x02, 0, 0});
  EXPECT_EQ(errorOf(0x10, head + props(bytes({0x21, 0, 0})) + str16("c"), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x10, head + props(bytes({0x27, 0, 0, 0, 0})) + str16("c"), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x10, head + props(bytes({0x22, 0, 0})) + str16("c"), k5), -1);  // Topic Alias Maximum 0 is fine
}

TEST(MqttCodecProperties, OutOfRangeValuesRefused) {
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x01, 2})), k5), reason::kProtocolError);
  std::string head = str16("MQTT") + bytes({5, 0x02, 0, 0});
  EXPECT_EQ(errorOf(0x10, head + props(bytes({0x17, 2})) + str16("c"), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x10, head + props(bytes({0x19, 7})) + str16("c"), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x20, bytes({0, 0}) + props(bytes({0x24, 2})), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x20, bytes({0, 0}) + props(bytes({0x2A, 9})), k5), reason::kProtocolError);
  // Response Topic must be a topic name.
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x08}) + str16("a/#")), k5), reason::kProtocolError);
  // Subscription Identifier over 4 bytes.
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})), k5),
            reason::kMalformedPacket);
}

TEST(MqttCodecProperties, AuthenticationDataNeedsMethod) {
  std::string head = str16("MQTT") + bytes({5, 0x02, 0, 0});
  EXPECT_EQ(errorOf(0x10, head + props(bytes({0x16}) + str16("d")) + str16("c"), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0xF0, bytes({0x18}) + props(bytes({0x16}) + str16("d")), k5), reason::kProtocolError);
}

TEST(MqttCodecProperties, LengthBeyondPacketIsMalformed) {
  EXPECT_EQ(errorOf(0x30, str16("t") + bytes({5, 0x01, 1}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x30, str16("t") + props(bytes({0x02, 0, 0})), k5), reason::kMalformedPacket);  // value truncated
  EXPECT_EQ(errorOf(0x30, str16("t") + bytes({0x80, 0x00}), k5), reason::kMalformedPacket);  // non-minimal length
}

// ---------------------------------------------------------------------------
// SUBSCRIBE / UNSUBSCRIBE.

TEST(MqttCodecSubscribe, EmptyPayloadRefused) {
  EXPECT_EQ(errorOf(0x82, bytes({0, 1}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x82, bytes({0, 1, 0}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xA2, bytes({0, 1}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xA2, bytes({0, 1, 0}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x90, bytes({0, 1}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xB0, bytes({0, 1, 0}), k5), reason::kMalformedPacket);
}

TEST(MqttCodecSubscribe, OptionsReservedBits) {
  auto sub311 = [](int options) { return errorOf(0x82, bytes({0, 1}) + str16("a") + bytes({options}), k311); };
  auto sub5 = [](int options) { return errorOf(0x82, bytes({0, 1, 0}) + str16("a") + bytes({options}), k5); };
  EXPECT_EQ(sub311(0x02), -1);
  EXPECT_EQ(sub311(0x03), reason::kMalformedPacket);
  EXPECT_EQ(sub311(0x04), reason::kMalformedPacket);  // No Local does not exist in 3.1.1
  EXPECT_EQ(sub311(0x80), reason::kMalformedPacket);
  EXPECT_EQ(sub5(0x2E), -1);
  EXPECT_EQ(sub5(0x03), reason::kMalformedPacket);
  EXPECT_EQ(sub5(0x40), reason::kMalformedPacket);
  EXPECT_EQ(sub5(0x80), reason::kMalformedPacket);
  EXPECT_EQ(sub5(0x30), reason::kProtocolError);  // Retain Handling 3
}

TEST(MqttCodecSubscribe, NoLocalOnSharedSubscriptionRefused) {
  EXPECT_EQ(errorOf(0x82, bytes({0, 1, 0}) + str16("$share/g/a") + bytes({0x04}), k5), reason::kProtocolError);
  EXPECT_EQ(errorOf(0x82, bytes({0, 1, 0}) + str16("$share/g/a") + bytes({0x01}), k5), -1);
}

TEST(MqttCodecSubscribe, FiltersAreNotJudgedByTheCodec) {
  // Invalid filters get a per-filter SUBACK code from the gateway (0x8F),
  // so the codec passes them through.
  auto r = decodePacket(0x82, span(bytes({0, 1}) + str16("a/#/b") + bytes({0}) + str16("") + bytes({1})), k311);
  ASSERT_TRUE(r.isOk());
  const auto& s = std::get<Subscribe>(r.value());
  ASSERT_EQ(s.subscriptions.size(), 2u);
  EXPECT_EQ(s.subscriptions[0].filter, "a/#/b");
  EXPECT_EQ(s.subscriptions[1].filter, "");
}

TEST(MqttCodecAcks, InvalidReasonCodesRefused) {
  EXPECT_EQ(errorOf(0x90, bytes({0, 1, 0x03}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x90, bytes({0, 1, 0, 0x03}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x90, bytes({0, 1, 0, 0x87}), k5), -1);
  EXPECT_EQ(errorOf(0xB0, bytes({0, 1, 0, 0x12}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x40, bytes({0, 1, 0x92}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x62, bytes({0, 1, 0x87}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xE0, bytes({0x05}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0xF0, bytes({0x01, 0}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x20, bytes({0, 6}), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x20, bytes({0, 0x01, 0}), k5), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x20, bytes({2, 0}), k311), reason::kMalformedPacket);       // reserved ack flag
  EXPECT_EQ(errorOf(0x20, bytes({1, 5}), k311), reason::kMalformedPacket);       // session present on refusal
  EXPECT_EQ(errorOf(0x20, bytes({1, 0x87, 0}), k5), reason::kMalformedPacket);
}

TEST(MqttCodecAcks, DisconnectAndAuthForms) {
  EXPECT_EQ(errorOf(0xE0, "", k5), -1);
  EXPECT_EQ(errorOf(0xE0, bytes({0x04}), k5), -1);
  EXPECT_EQ(errorOf(0xE0, bytes({0x8E, 0}), k5), -1);
  EXPECT_EQ(errorOf(0xF0, bytes({0x18}), k5), reason::kMalformedPacket);  // AUTH needs its Property Length
}

// ---------------------------------------------------------------------------
// CONNECT.

std::string connectBody(const std::string& name, int level, int flags, const std::string& rest = "") {
  return str16(name) + bytes({level, flags, 0, 60}) + rest;
}

TEST(MqttCodecConnect, PeekVersion) {
  auto v = peekConnectVersion(span(connectBody("MQTT", 4, 2)));
  ASSERT_TRUE(v.isOk());
  EXPECT_EQ(v.value(), k311);
  v = peekConnectVersion(span(connectBody("MQTT", 5, 2)));
  ASSERT_TRUE(v.isOk());
  EXPECT_EQ(v.value(), k5);
  EXPECT_EQ(peekConnectVersion(span(connectBody("MQTT", 3, 2))).error().reason_code,
            reason::kUnsupportedProtocolVersion);
  EXPECT_EQ(peekConnectVersion(span(connectBody("MQIsdp", 3, 2))).error().reason_code,
            reason::kUnsupportedProtocolVersion);
  EXPECT_EQ(peekConnectVersion(span(connectBody("MQTT", 6, 2))).error().reason_code,
            reason::kUnsupportedProtocolVersion);
  EXPECT_EQ(peekConnectVersion(span(connectBody("MQTX", 4, 2))).error().reason_code, reason::kMalformedPacket);
  EXPECT_EQ(peekConnectVersion(span(bytes({0, 4, 'M', 'Q'}))).error().reason_code, reason::kMalformedPacket);
  EXPECT_EQ(peekConnectVersion(span(str16("MQTT"))).error().reason_code, reason::kMalformedPacket);
}

TEST(MqttCodecConnect, DecodesByItsOwnLevel) {
  // decodePacket ignores the session version for CONNECT.
  auto r = decodePacket(0x10, span(connectBody("MQTT", 5, 2, props("") + str16("c"))), k311);
  ASSERT_TRUE(r.isOk()) << r.error().message;
  EXPECT_EQ(std::get<Connect>(r.value()).version, k5);
  EXPECT_EQ(errorOf(0x10, connectBody("MQIsdp", 3, 2, str16("c")), k311), reason::kUnsupportedProtocolVersion);
}

TEST(MqttCodecConnect, ReservedFlag) {
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x03, str16("c")), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 5, 0x01, props("") + str16("c")), k5), reason::kMalformedPacket);
}

TEST(MqttCodecConnect, WillFlagsConsistency) {
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x08, str16("c")), k311), reason::kMalformedPacket);  // QoS, no will
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x20, str16("c")), k311), reason::kMalformedPacket);  // retain, no will
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x1C, str16("c") + str16("w") + str16("p")), k311),
            reason::kMalformedPacket);  // will QoS 3
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x34, str16("c") + str16("w") + str16("p")), k311), -1);
  // Will flag set but no will fields.
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x04, str16("c")), k311), reason::kMalformedPacket);
}

TEST(MqttCodecConnect, WillTopicMustBeATopicName) {
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x04, str16("c") + str16("a/+") + str16("p")), k311),
            reason::kTopicNameInvalid);
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 5, 0x04, props("") + str16("c") + props("") + str16("") + str16("p")), k5),
            reason::kTopicNameInvalid);
}

TEST(MqttCodecConnect, PasswordWithoutUserName) {
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x42, str16("c") + str16("pw")), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 5, 0x42, props("") + str16("c") + str16("pw")), k5), -1);
}

TEST(MqttCodecConnect, FixedHeaderFlags) {
  auto r = decodeConnect(0x12, span(connectBody("MQTT", 4, 2, str16("c"))));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.error().reason_code, reason::kMalformedPacket);
  EXPECT_TRUE(decodeConnect(0x10, span(connectBody("MQTT", 4, 2, str16("c")))).isOk());
}

TEST(MqttCodecConnect, MissingFieldsAndTrailingBytes) {
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x82, str16("c")), k311), reason::kMalformedPacket);  // no user name
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 4, 0x02, str16("c") + "z"), k311), reason::kMalformedPacket);
  EXPECT_EQ(errorOf(0x10, connectBody("MQTT", 5, 0x02, str16("c")), k5), reason::kMalformedPacket);  // no properties
}

// ---------------------------------------------------------------------------
// Framing and decoding together: the gateway's loop.

TEST(MqttCodecLimits, GatewayLoopOverMixedStream) {
  std::string stream;
  Connect c;
  c.version = k5;
  c.client_id = "dev";
  stream += encode(c, k5);
  stream += encode(Subscribe{1, {{"a/#", 1, false, false, 0}}, {}}, k5);
  stream += encode(Publish{false, 1, false, "a/b", 2, {}, "x"}, k5);
  stream += encode(Disconnect{}, k5);
  FrameDecoder fd(256 * 1024);
  fd.append(stream);
  std::vector<PacketType> types;
  while (true) {
    auto f = fd.next();
    ASSERT_TRUE(f.isOk());
    if (!f.value()) break;
    auto p = decodePacket(f.value()->first_byte, f.value()->body, k5);
    ASSERT_TRUE(p.isOk()) << p.error().message;
    types.push_back(packetType(p.value()));
  }
  EXPECT_EQ(types, (std::vector<PacketType>{PacketType::kConnect, PacketType::kSubscribe, PacketType::kPublish,
                                            PacketType::kDisconnect}));
}

TEST(MqttCodecLimits, LargestRemainingLengthHeaderAccepted) {
  FrameDecoder fd(std::numeric_limits<size_t>::max());
  fd.append(bytes({0x30, 0xFF, 0xFF, 0xFF, 0x7F}));
  auto r = fd.next();
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(r.value().has_value());  // waiting for 268,435,455 bytes
}

}  // namespace
}  // namespace warden::gateway::mqtt
