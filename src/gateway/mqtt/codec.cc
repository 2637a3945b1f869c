#include "gateway/mqtt/codec.h"

#include <algorithm>
#include <array>
#include <initializer_list>

#include "core/byte_reader.h"

// WARDEN_MQTT_TRY returns the DecodeError of |expr| (a
// std::optional<DecodeError>) from the enclosing function if there is one.
#define WARDEN_MQTT_TRY(expr)                       \
  do {                                              \
    if (auto warden_mqtt_err_ = (expr)) return *warden_mqtt_err_; \
  } while (0)

namespace warden::gateway::mqtt {
namespace {

using core::ByteReader;
using MaybeError = std::optional<DecodeError>;

DecodeError malformed(std::string message) { return {reason::kMalformedPacket, std::move(message)}; }
DecodeError protocolError(std::string message) { return {reason::kProtocolError, std::move(message)}; }

std::string hexByte(uint32_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  if (v > 0xFF) return out + std::to_string(v);
  out += kDigits[(v >> 4) & 0xF];
  out += kDigits[v & 0xF];
  return out;
}

// ---------------------------------------------------------------------------
// Primitive readers (MQTT 5.0 §1.5). Each returns an error naming |what|.

MaybeError readU8(ByteReader& r, uint8_t& out, const char* what) {
  if (!r.readU8(out)) return malformed(std::string(what) + " is truncated");
  return std::nullopt;
}

MaybeError readU16(ByteReader& r, uint16_t& out, const char* what) {
  if (!r.readU16(out)) return malformed(std::string(what) + " is truncated");
  return std::nullopt;
}

MaybeError readU32(ByteReader& r, uint32_t& out, const char* what) {
  if (!r.readU32(out)) return malformed(std::string(what) + " is truncated");
  return std::nullopt;
}

// readVarint reads a Variable Byte Integer (MQTT 5.0 §1.5.5): at most 4
// bytes, and in the minimum number of bytes.
MaybeError readVarint(ByteReader& r, uint32_t& out, const char* what) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    uint8_t b = 0;
    if (!r.readU8(b)) return malformed(std::string(what) + " is truncated");
    value |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      if (i > 0 && b == 0) return malformed(std::string(what) + " is not minimally encoded");
      out = value;
      return std::nullopt;
    }
  }
  return malformed(std::string(what) + " is longer than 4 bytes");
}

// readBinary reads Binary Data (§1.5.6): a 2-byte length and the bytes.
MaybeError readBinary(ByteReader& r, std::string& out, const char* what) {
  uint16_t len = 0;
  if (!r.readU16(len)) return malformed(std::string(what) + " length is truncated");
  std::span<const uint8_t> bytes;
  if (!r.readBytes(len, bytes)) return malformed(std::string(what) + " is longer than the packet");
  out.assign(core::asStringView(bytes));
  return std::nullopt;
}

// readUtf8 reads a UTF-8 Encoded String (§1.5.4) and checks it.
MaybeError readUtf8(ByteReader& r, std::string& out, const char* what) {
  WARDEN_MQTT_TRY(readBinary(r, out, what));
  // MQTT 5.0 §1.5.4: ill-formed UTF-8 or U+0000 makes the packet malformed.
  if (!isValidUtf8String(out)) return malformed(std::string(what) + " is not valid UTF-8 or contains U+0000");
  return std::nullopt;
}

MaybeError expectEnd(const ByteReader& r, const char* packet) {
  if (!r.empty()) {
    return malformed(std::to_string(r.remaining()) + " unexpected trailing bytes in " + packet);
  }
  return std::nullopt;
}

bool hasWildcard(std::string_view s) { return s.find_first_of("+#") != std::string_view::npos; }

bool isOneOf(uint8_t v, std::initializer_list<uint8_t> allowed) {
  return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
}

// ---------------------------------------------------------------------------
// Properties (MQTT 5.0 §2.2.2).

// PropertyContext is where a property list appears; each property is
// allowed in a set of contexts (§2.2.2.2, Table 2-4).
enum PropertyContext : uint8_t {
  kCtxConnect,
  kCtxWill,
  kCtxConnack,
  kCtxPublish,
  kCtxPuback,  // PUBACK and PUBREC
  kCtxPubrel,  // PUBREL and PUBCOMP
  kCtxSubscribe,
  kCtxSuback,
  kCtxUnsubscribe,
  kCtxUnsuback,
  kCtxDisconnect,
  kCtxAuth,
};

const char* contextName(PropertyContext ctx) {
  switch (ctx) {
    case kCtxConnect: return "CONNECT";
    case kCtxWill: return "will properties";
    case kCtxConnack: return "CONNACK";
    case kCtxPublish: return "PUBLISH";
    case kCtxPuback: return "PUBACK/PUBREC";
    case kCtxPubrel: return "PUBREL/PUBCOMP";
    case kCtxSubscribe: return "SUBSCRIBE";
    case kCtxSuback: return "SUBACK";
    case kCtxUnsubscribe: return "UNSUBSCRIBE";
    case kCtxUnsuback: return "UNSUBACK";
    case kCtxDisconnect: return "DISCONNECT";
    case kCtxAuth: return "AUTH";
  }
  return "?";
}

constexpr uint16_t bit(PropertyContext c) { return static_cast<uint16_t>(1u << c); }

struct PropertySpec {
  uint8_t id;
  const char* name;
  uint16_t contexts;
};

constexpr uint16_t kAckContexts = bit(kCtxConnack) | bit(kCtxPuback) | bit(kCtxPubrel) | bit(kCtxSuback) |
                                  bit(kCtxUnsuback) | bit(kCtxDisconnect) | bit(kCtxAuth);
constexpr uint16_t kMessageContexts = bit(kCtxPublish) | bit(kCtxWill);

// MQTT 5.0 §2.2.2.2 Table 2-4.
constexpr std::array<PropertySpec, 27> kPropertySpecs = {{
    {0x01, "Payload Format Indicator", kMessageContexts},
    {0x02, "Message Expiry Interval", kMessageContexts},
    {0x03, "Content Type", kMessageContexts},
    {0x08, "Response Topic", kMessageContexts},
    {0x09, "Correlation Data", kMessageContexts},
    {0x0B, "Subscription Identifier", bit(kCtxPublish) | bit(kCtxSubscribe)},
    {0x11, "Session Expiry Interval", bit(kCtxConnect) | bit(kCtxConnack) | bit(kCtxDisconnect)},
    {0x12, "Assigned Client Identifier", bit(kCtxConnack)},
    {0x13, "Server Keep Alive", bit(kCtxConnack)},
    {0x15, "Authentication Method", bit(kCtxConnect) | bit(kCtxConnack) | bit(kCtxAuth)},
    {0x16, "Authentication Data", bit(kCtxConnect) | bit(kCtxConnack) | bit(kCtxAuth)},
    {0x17, "Request Problem Information", bit(kCtxConnect)},
    {0x18, "Will Delay Interval", bit(kCtxWill)},
    {0x19, "Request Response Information", bit(kCtxConnect)},
    {0x1A, "Response Information", bit(kCtxConnack)},
    {0x1C, "Server Reference", bit(kCtxConnack) | bit(kCtxDisconnect)},
    {0x1F, "Reason String", kAckContexts},
    {0x21, "Receive Maximum", bit(kCtxConnect) | bit(kCtxConnack)},
    {0x22, "Topic Alias Maximum", bit(kCtxConnect) | bit(kCtxConnack)},
    {0x23, "Topic Alias", bit(kCtxPublish)},
    {0x24, "Maximum QoS", bit(kCtxConnack)},
    {0x25, "Retain Available", bit(kCtxConnack)},
    {0x26, "User Property",
     static_cast<uint16_t>(bit(kCtxConnect) | kMessageContexts | kAckContexts | bit(kCtxSubscribe) |
                           bit(kCtxUnsubscribe))},
    {0x27, "Maximum Packet Size", bit(kCtxConnect) | bit(kCtxConnack)},
    {0x28, "Wildcard Subscription Available", bit(kCtxConnack)},
    {0x29, "Subscription Identifier Available", bit(kCtxConnack)},
    {0x2A, "Shared Subscription Available", bit(kCtxConnack)},
}};

const PropertySpec* findProperty(uint32_t id) {
  for (const auto& spec : kPropertySpecs) {
    if (spec.id == id) return &spec;
  }
  return nullptr;
}

// PropertyParser reads one property list into a Properties.
class PropertyParser {
 public:
  PropertyParser(ByteReader& r, PropertyContext ctx, Properties& out) : r_(r), ctx_(ctx), out_(out) {}

  MaybeError parse() {
    uint32_t len = 0;
    WARDEN_MQTT_TRY(readVarint(r_, len, "Property Length"));
    ByteReader props;
    if (!r_.readSub(len, props)) return malformed("Property Length is longer than the packet");
    while (!props.empty()) {
      // §2.2.2.2: the identifier is a Variable Byte Integer.
      uint32_t id = 0;
      WARDEN_MQTT_TRY(readVarint(props, id, "property identifier"));
      const PropertySpec* spec = findProperty(id);
      if (spec == nullptr) return malformed("unknown property identifier " + hexByte(id));
      spec_ = spec;
      if ((spec->contexts & bit(ctx_)) == 0) {
        return protocolError(std::string(spec->name) + " is not allowed in " + contextName(ctx_));
      }
      WARDEN_MQTT_TRY(parseValue(props, id));
    }
    // §3.1.2.11.10, §3.2.2.3.18, §3.15.2.2.4: data without a method.
    if (out_.authentication_data && !out_.authentication_method) {
      return protocolError("Authentication Data without Authentication Method");
    }
    return std::nullopt;
  }

 private:
  MaybeError duplicate() const {
    // §2.2.2.2 and each property's section: "It is a Protocol Error to
    // include the X more than once."
    return protocolError(std::string(spec_->name) + " appears more than once in " + contextName(ctx_));
  }
  MaybeError badValue(const char* why) const {
    return protocolError(std::string(spec_->name) + " " + why + " in " + contextName(ctx_));
  }

  MaybeError byteValue(ByteReader& p, std::optional<uint8_t>& field, bool boolean) {
    if (field) return duplicate();
    uint8_t v = 0;
    WARDEN_MQTT_TRY(readU8(p, v, spec_->name));
    if (boolean && v > 1) return badValue("is not 0 or 1");
    field = v;
    return std::nullopt;
  }
  MaybeError u16Value(ByteReader& p, std::optional<uint16_t>& field, bool nonzero) {
    if (field) return duplicate();
    uint16_t v = 0;
    WARDEN_MQTT_TRY(readU16(p, v, spec_->name));
    if (nonzero && v == 0) return badValue("is 0");
    field = v;
    return std::nullopt;
  }
  MaybeError u32Value(ByteReader& p, std::optional<uint32_t>& field, bool nonzero) {
    if (field) return duplicate();
    uint32_t v = 0;
    WARDEN_MQTT_TRY(readU32(p, v, spec_->name));
    if (nonzero && v == 0) return badValue("is 0");
    field = v;
    return std::nullopt;
  }
  MaybeError stringValue(ByteReader& p, std::optional<std::string>& field, bool utf8) {
    if (field) return duplicate();
    std::string v;
    WARDEN_MQTT_TRY(utf8 ? readUtf8(p, v, spec_->name) : readBinary(p, v, spec_->name));
    field = std::move(v);
    return std::nullopt;
  }

  MaybeError parseValue(ByteReader& p, uint32_t id) {
    switch (id) {
      case 0x01:  // §3.3.2.3.2: 0 unspecified bytes, 1 UTF-8.
        return byteValue(p, out_.payload_format_indicator, true);
      case 0x02: return u32Value(p, out_.message_expiry_interval, false);
      case 0x03: return stringValue(p, out_.content_type, true);
      case 0x08: {  // §3.3.2.3.5: a Topic Name, so no wildcards.
        WARDEN_MQTT_TRY(stringValue(p, out_.response_topic, true));
        if (out_.response_topic->empty() || hasWildcard(*out_.response_topic)) {
          return badValue("is not a valid topic name");
        }
        return std::nullopt;
      }
      case 0x09: return stringValue(p, out_.correlation_data, false);
      case 0x0B: {
        // §3.8.2.1.2: once in SUBSCRIBE; PUBLISH may carry several (§3.3.4).
        if (ctx_ == kCtxSubscribe && !out_.subscription_identifiers.empty()) return duplicate();
        uint32_t v = 0;
        WARDEN_MQTT_TRY(readVarint(p, v, spec_->name));
        // §3.3.2.3.8: "It is a Protocol Error if the Subscription Identifier
        // has a value of 0."
        if (v == 0) return badValue("is 0");
        out_.subscription_identifiers.push_back(v);
        return std::nullopt;
      }
      case 0x11: return u32Value(p, out_.session_expiry_interval, false);
      case 0x12: return stringValue(p, out_.assigned_client_identifier, true);
      case 0x13: return u16Value(p, out_.server_keep_alive, false);
      case 0x15: return stringValue(p, out_.authentication_method, true);
      case 0x16: return stringValue(p, out_.authentication_data, false);
      case 0x17: return byteValue(p, out_.request_problem_information, true);  // §3.1.2.11.7
      case 0x18: return u32Value(p, out_.will_delay_interval, false);
      case 0x19: return byteValue(p, out_.request_response_information, true);  // §3.1.2.11.6
      case 0x1A: return stringValue(p, out_.response_information, true);
      case 0x1C: return stringValue(p, out_.server_reference, true);
      case 0x1F: return stringValue(p, out_.reason_string, true);
      case 0x21: return u16Value(p, out_.receive_maximum, true);  // §3.1.2.11.3: 0 is a Protocol Error
      case 0x22: return u16Value(p, out_.topic_alias_maximum, false);
      case 0x23: {
        if (out_.topic_alias) return duplicate();
        uint16_t v = 0;
        WARDEN_MQTT_TRY(readU16(p, v, spec_->name));
        // §3.3.2.3.4: "A Topic Alias of 0 is not permitted."
        if (v == 0) return DecodeError{reason::kTopicAliasInvalid, "Topic Alias is 0"};
        out_.topic_alias = v;
        return std::nullopt;
      }
      case 0x24: return byteValue(p, out_.maximum_qos, true);  // §3.2.2.3.4: 0 or 1
      case 0x25: return byteValue(p, out_.retain_available, true);
      case 0x26: {  // §3.1.2.11.8: may appear more than once.
        UserProperty up;
        WARDEN_MQTT_TRY(readUtf8(p, up.key, "User Property name"));
        WARDEN_MQTT_TRY(readUtf8(p, up.value, "User Property value"));
        out_.user_properties.push_back(std::move(up));
        return std::nullopt;
      }
      case 0x27: return u32Value(p, out_.maximum_packet_size, true);  // §3.1.2.11.4: 0 is a Protocol Error
      case 0x28: return byteValue(p, out_.wildcard_subscription_available, true);
      case 0x29: return byteValue(p, out_.subscription_identifier_available, true);
      case 0x2A: return byteValue(p, out_.shared_subscription_available, true);
      default: return malformed("unknown property identifier " + hexByte(id));
    }
  }

  ByteReader& r_;
  PropertyContext ctx_;
  Properties& out_;
  const PropertySpec* spec_ = nullptr;
};

MaybeError readProperties(ByteReader& r, PropertyContext ctx, Properties& out) {
  return PropertyParser(r, ctx, out).parse();
}

// ---------------------------------------------------------------------------
// Reason codes allowed per packet (MQTT 5.0 §2.4 and each packet's section).

bool validConnackReason(uint8_t c) {
  return isOneOf(c, {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
                     0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F});
}
bool validPubackReason(uint8_t c) { return isOneOf(c, {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}); }
bool validPubrelReason(uint8_t c) { return isOneOf(c, {0x00, 0x92}); }
bool validSubackReason(uint8_t c) {
  return isOneOf(c, {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2});
}
bool validUnsubackReason(uint8_t c) { return isOneOf(c, {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}); }
bool validDisconnectReason(uint8_t c) {
  return isOneOf(c, {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
                     0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2});
}
bool validAuthReason(uint8_t c) { return isOneOf(c, {0x00, 0x18, 0x19}); }

// ---------------------------------------------------------------------------
// Packet decoders. Each gets the body; the dispatcher checked the flags.

MaybeError readPacketId(ByteReader& r, uint16_t& id, const char* packet) {
  WARDEN_MQTT_TRY(readU16(r, id, "Packet Identifier"));
  // MQTT 5.0 §2.2.1: packets that carry an identifier need a non-zero one.
  if (id == 0) return protocolError(std::string(packet) + " has Packet Identifier 0");
  return std::nullopt;
}

DecodeResult<Connack> decodeConnack(ByteReader& r, ProtocolVersion version) {
  Connack p;
  uint8_t ack_flags = 0;
  WARDEN_MQTT_TRY(readU8(r, ack_flags, "Connect Acknowledge Flags"));
  // §3.2.2.1: bits 7-1 are reserved and 0.
  if (ack_flags & 0xFE) return malformed("CONNACK reserved flag bits are set");
  p.session_present = ack_flags & 0x01;
  WARDEN_MQTT_TRY(readU8(r, p.reason_code, "CONNACK reason code"));
  if (version == ProtocolVersion::k311) {
    // 3.1.1 §3.2.2.3: return codes 0-5; §3.2.2.2: no session on refusal.
    if (p.reason_code > 5) return malformed("CONNACK return code " + std::to_string(p.reason_code) + " is reserved");
    if (p.reason_code != 0 && p.session_present) return malformed("refusing CONNACK has Session Present set");
  } else {
    if (!validConnackReason(p.reason_code)) return malformed("CONNACK reason code " + hexByte(p.reason_code) + " is invalid");
    if (p.reason_code >= 0x80 && p.session_present) return malformed("refusing CONNACK has Session Present set");
    WARDEN_MQTT_TRY(readProperties(r, kCtxConnack, p.properties));
  }
  WARDEN_MQTT_TRY(expectEnd(r, "CONNACK"));
  return p;
}

DecodeResult<Publish> decodePublish(uint8_t flags, ByteReader& r, ProtocolVersion version) {
  Publish p;
  // §3.3.1: DUP bit 3, QoS bits 2-1, RETAIN bit 0.
  p.dup = flags & 0x08;
  p.qos = (flags >> 1) & 0x03;
  p.retain = flags & 0x01;
  // §3.3.1.2: "A PUBLISH Packet MUST NOT have both QoS bits set to 1."
  if (p.qos == 3) return malformed("PUBLISH has QoS 3");
  // §3.3.1.1: "The DUP flag MUST be set to 0 for all QoS 0 messages."
  if (p.dup && p.qos == 0) return malformed("PUBLISH has DUP set with QoS 0");
  WARDEN_MQTT_TRY(readUtf8(r, p.topic, "PUBLISH Topic Name"));
  // §3.3.2.1: "The Topic Name in the PUBLISH packet MUST NOT contain wildcard
  // characters."
  if (hasWildcard(p.topic)) return DecodeError{reason::kTopicNameInvalid, "PUBLISH Topic Name contains a wildcard"};
  if (p.qos > 0) WARDEN_MQTT_TRY(readPacketId(r, p.packet_id, "PUBLISH"));
  if (version == ProtocolVersion::k5) {
    WARDEN_MQTT_TRY(readProperties(r, kCtxPublish, p.properties));
    // §3.3.2.3.4: an empty Topic Name needs a Topic Alias.
    if (p.topic.empty() && !p.properties.topic_alias) {
      return protocolError("PUBLISH has an empty Topic Name and no Topic Alias");
    }
  } else if (p.topic.empty()) {
    // 3.1.1 §4.7.3: topic names are at least one character long.
    return DecodeError{reason::kTopicNameInvalid, "PUBLISH Topic Name is empty"};
  }
  // §3.3.3: the rest is the payload (possibly empty).
  p.payload.assign(core::asStringView(r.rest()));
  r.skip(r.remaining());
  return p;
}

template <PacketType kType>
DecodeResult<PubResponse<kType>> decodePubResponse(ByteReader& r, ProtocolVersion version) {
  constexpr bool kIsRel = kType == PacketType::kPubrel || kType == PacketType::kPubcomp;
  const char* name = packetTypeName(kType);
  PubResponse<kType> p;
  WARDEN_MQTT_TRY(readPacketId(r, p.packet_id, name));
  if (version == ProtocolVersion::k5 && !r.empty()) {
    // §3.4.2.1: the Reason Code and properties may be omitted.
    WARDEN_MQTT_TRY(readU8(r, p.reason_code, "reason code"));
    bool valid = kIsRel ? validPubrelReason(p.reason_code) : validPubackReason(p.reason_code);
    if (!valid) return malformed(std::string(name) + " reason code " + hexByte(p.reason_code) + " is invalid");
    // §3.4.2.2.1: "If the Remaining Length is less than 4 there is no
    // Property Length and the value of 0 is used."
    if (!r.empty()) WARDEN_MQTT_TRY(readProperties(r, kIsRel ? kCtxPubrel : kCtxPuback, p.properties));
  }
  WARDEN_MQTT_TRY(expectEnd(r, name));
  return p;
}

DecodeResult<Subscribe> decodeSubscribe(ByteReader& r, ProtocolVersion version) {
  Subscribe p;
  WARDEN_MQTT_TRY(readPacketId(r, p.packet_id, "SUBSCRIBE"));
  if (version == ProtocolVersion::k5) WARDEN_MQTT_TRY(readProperties(r, kCtxSubscribe, p.properties));
  while (!r.empty()) {
    Subscription s;
    WARDEN_MQTT_TRY(readUtf8(r, s.filter, "SUBSCRIBE Topic Filter"));
    uint8_t options = 0;
    WARDEN_MQTT_TRY(readU8(r, options, "Subscription Options"));
    s.max_qos = options & 0x03;
    if (version == ProtocolVersion::k311) {
      // 3.1.1 §3.8.3.1: bits 7-2 reserved, QoS 3 malformed.
      if (options & 0xFC) return malformed("SUBSCRIBE requested QoS byte has reserved bits set");
    } else {
      // §3.8.3.1: bits 7-6 reserved.
      if (options & 0xC0) return malformed("Subscription Options reserved bits are set");
      s.no_local = options & 0x04;
      s.retain_as_published = options & 0x08;
      s.retain_handling = (options >> 4) & 0x03;
      if (s.retain_handling == 3) return protocolError("Subscription Options Retain Handling is 3");
      // §3.8.3.1: No Local on a Shared Subscription is a Protocol Error.
      if (s.no_local && s.filter.starts_with("$share/")) return protocolError("No Local set on a shared subscription");
    }
    if (s.max_qos == 3) return malformed("Subscription Options request QoS 3");
    p.subscriptions.push_back(std::move(s));
  }
  // §3.8.3: "A SUBSCRIBE packet with no Payload is a Protocol Error" (3.1.1
  // §3.8.3: a protocol violation); Mosquitto treats it as malformed.
  if (p.subscriptions.empty()) return malformed("SUBSCRIBE has no topic filters");
  return p;
}

DecodeResult<Suback> decodeSuback(ByteReader& r, ProtocolVersion version) {
  Suback p;
  WARDEN_MQTT_TRY(readPacketId(r, p.packet_id, "SUBACK"));
  if (version == ProtocolVersion::k5) WARDEN_MQTT_TRY(readProperties(r, kCtxSuback, p.properties));
  while (!r.empty()) {
    uint8_t code = 0;
    WARDEN_MQTT_TRY(readU8(r, code, "SUBACK reason code"));
    bool valid = version == ProtocolVersion::k311 ? isOneOf(code, {0x00, 0x01, 0x02, 0x80}) : validSubackReason(code);
    if (!valid) return malformed("SUBACK reason code " + hexByte(code) + " is invalid");
    p.reason_codes.push_back(code);
  }
  if (p.reason_codes.empty()) return malformed("SUBACK has no reason codes");
  return p;
}

DecodeResult<Unsubscribe> decodeUnsubscribe(ByteReader& r, ProtocolVersion version) {
  Unsubscribe p;
  WARDEN_MQTT_TRY(readPacketId(r, p.packet_id, "UNSUBSCRIBE"));
  if (version == ProtocolVersion::k5) WARDEN_MQTT_TRY(readProperties(r, kCtxUnsubscribe, p.properties));
  while (!r.empty()) {
    std::string filter;
    WARDEN_MQTT_TRY(readUtf8(r, filter, "UNSUBSCRIBE Topic Filter"));
    p.filters.push_back(std::move(filter));
  }
  // §3.10.3: "An UNSUBSCRIBE packet with no Payload is a Protocol Error."
  if (p.filters.empty()) return malformed("UNSUBSCRIBE has no topic filters");
  return p;
}

DecodeResult<Unsuback> decodeUnsuback(ByteReader& r, ProtocolVersion version) {
  Unsuback p;
  WARDEN_MQTT_TRY(readPacketId(r, p.packet_id, "UNSUBACK"));
  if (version == ProtocolVersion::k5) {
    WARDEN_MQTT_TRY(readProperties(r, kCtxUnsuback, p.properties));
    while (!r.empty()) {
      uint8_t code = 0;
      WARDEN_MQTT_TRY(readU8(r, code, "UNSUBACK reason code"));
      if (!validUnsubackReason(code)) return malformed("UNSUBACK reason code " + hexByte(code) + " is invalid");
      p.reason_codes.push_back(code);
    }
    if (p.reason_codes.empty()) return malformed("UNSUBACK has no reason codes");
  }
  WARDEN_MQTT_TRY(expectEnd(r, "UNSUBACK"));
  return p;
}

DecodeResult<Disconnect> decodeDisconnect(ByteReader& r, ProtocolVersion version) {
  Disconnect p;
  if (version == ProtocolVersion::k5 && !r.empty()) {
    // §3.14.2.1: the Reason Code may be omitted (Remaining Length 0), and
    // §3.14.2.2.1: the Property Length when Remaining Length < 2.
    WARDEN_MQTT_TRY(readU8(r, p.reason_code, "DISCONNECT reason code"));
    if (!validDisconnectReason(p.reason_code)) {
      return malformed("DISCONNECT reason code " + hexByte(p.reason_code) + " is invalid");
    }
    if (!r.empty()) WARDEN_MQTT_TRY(readProperties(r, kCtxDisconnect, p.properties));
  }
  WARDEN_MQTT_TRY(expectEnd(r, "DISCONNECT"));
  return p;
}

DecodeResult<Auth> decodeAuth(ByteReader& r) {
  Auth p;
  // §3.15.2.1: Remaining Length 0 means Success with no properties;
  // otherwise both the Reason Code and the Property Length are present.
  if (!r.empty()) {
    WARDEN_MQTT_TRY(readU8(r, p.reason_code, "AUTH reason code"));
    if (!validAuthReason(p.reason_code)) return malformed("AUTH reason code " + hexByte(p.reason_code) + " is invalid");
    WARDEN_MQTT_TRY(readProperties(r, kCtxAuth, p.properties));
  }
  WARDEN_MQTT_TRY(expectEnd(r, "AUTH"));
  return p;
}

template <typename T>
DecodeResult<Packet> widen(DecodeResult<T>&& r) {
  if (!r.isOk()) return r.error();
  return Packet(std::move(r).value());
}

// ---------------------------------------------------------------------------
// Encoding.

// WireWriter appends MQTT primitives; it records an overflow instead of
// writing a length that does not fit.
class WireWriter {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void varint(size_t v) {
    if (v > kMaxRemainingLength) {
      overflow_ = true;
      return;
    }
    do {
      uint8_t b = v & 0x7F;
      v >>= 7;
      if (v > 0) b |= 0x80;
      u8(b);
    } while (v > 0);
  }
  void string(std::string_view s) {
    if (s.size() > 0xFFFF) {
      overflow_ = true;
      return;
    }
    u16(static_cast<uint16_t>(s.size()));
    raw(s);
  }
  void raw(std::string_view s) { out_.append(s); }

  std::string& str() { return out_; }
  bool overflow() const { return overflow_; }
  void absorb(const WireWriter& other) {
    raw(other.out_);
    overflow_ = overflow_ || other.overflow_;
  }

 private:
  std::string out_;
  bool overflow_ = false;
};

// writeProperties writes Property Length and the properties in identifier
// order (§2.2.2).
void writeProperties(WireWriter& w, const Properties& p) {
  WireWriter b;
  auto byte = [&](uint8_t id, const std::optional<uint8_t>& v) {
    if (v) { b.u8(id); b.u8(*v); }
  };
  auto u16 = [&](uint8_t id, const std::optional<uint16_t>& v) {
    if (v) { b.u8(id); b.u16(*v); }
  };
  auto u32 = [&](uint8_t id, const std::optional<uint32_t>& v) {
    if (v) { b.u8(id); b.u32(*v); }
  };
  auto str = [&](uint8_t id, const std::optional<std::string>& v) {
    if (v) { b.u8(id); b.string(*v); }
  };
  byte(0x01, p.payload_format_indicator);
  u32(0x02, p.message_expiry_interval);
  str(0x03, p.content_type);
  str(0x08, p.response_topic);
  str(0x09, p.correlation_data);
  for (uint32_t id : p.subscription_identifiers) {
    b.u8(0x0B);
    b.varint(id);
  }
  u32(0x11, p.session_expiry_interval);
  str(0x12, p.assigned_client_identifier);
  u16(0x13, p.server_keep_alive);
  str(0x15, p.authentication_method);
  str(0x16, p.authentication_data);
  byte(0x17, p.request_problem_information);
  u32(0x18, p.will_delay_interval);
  byte(0x19, p.request_response_information);
  str(0x1A, p.response_information);
  str(0x1C, p.server_reference);
  str(0x1F, p.reason_string);
  u16(0x21, p.receive_maximum);
  u16(0x22, p.topic_alias_maximum);
  u16(0x23, p.topic_alias);
  byte(0x24, p.maximum_qos);
  byte(0x25, p.retain_available);
  for (const auto& up : p.user_properties) {
    b.u8(0x26);
    b.string(up.key);
    b.string(up.value);
  }
  u32(0x27, p.maximum_packet_size);
  byte(0x28, p.wildcard_subscription_available);
  byte(0x29, p.subscription_identifier_available);
  byte(0x2A, p.shared_subscription_available);
  w.varint(b.str().size());
  w.absorb(b);
}

bool isEmpty(const Properties& p) { return p == Properties{}; }

// Body encoders: each writes the variable header and payload into |w| and
// returns the first byte of the fixed header.

uint8_t encodeBody(WireWriter& w, const Connect& p, ProtocolVersion) {
  bool v5 = p.version == ProtocolVersion::k5;
  w.string("MQTT");  // §3.1.2.1
  w.u8(static_cast<uint8_t>(p.version));
  uint8_t flags = 0;
  if (p.clean_start) flags |= 0x02;
  if (p.will) {
    flags |= 0x04;
    flags |= static_cast<uint8_t>((p.will->qos & 0x03) << 3);
    if (p.will->retain) flags |= 0x20;
  }
  if (p.password) flags |= 0x40;
  if (p.username) flags |= 0x80;
  w.u8(flags);
  w.u16(p.keep_alive);
  if (v5) writeProperties(w, p.properties);
  w.string(p.client_id);
  if (p.will) {
    if (v5) writeProperties(w, p.will->properties);
    w.string(p.will->topic);
    w.string(p.will->payload);
  }
  if (p.username) w.string(*p.username);
  if (p.password) w.string(*p.password);
  return 0x10;
}

uint8_t encodeBody(WireWriter& w, const Connack& p, ProtocolVersion v) {
  w.u8(p.session_present ? 1 : 0);
  w.u8(p.reason_code);
  if (v == ProtocolVersion::k5) writeProperties(w, p.properties);
  return 0x20;
}

uint8_t encodeBody(WireWriter& w, const Publish& p, ProtocolVersion v) {
  w.string(p.topic);
  if (p.qos > 0) w.u16(p.packet_id);
  if (v == ProtocolVersion::k5) writeProperties(w, p.properties);
  w.raw(p.payload);
  return static_cast<uint8_t>(0x30 | (p.dup ? 0x08 : 0) | ((p.qos & 0x03) << 1) | (p.retain ? 0x01 : 0));
}

template <PacketType kType>
uint8_t encodeBody(WireWriter& w, const PubResponse<kType>& p, ProtocolVersion v) {
  w.u16(p.packet_id);
  if (v == ProtocolVersion::k5) {
    // Shortest form (§3.4.2.1): omit what is 0 / empty.
    bool props = !isEmpty(p.properties);
    if (p.reason_code != 0 || props) w.u8(p.reason_code);
    if (props) writeProperties(w, p.properties);
  }
  // §2.1.3: PUBREL has flags 0010.
  return static_cast<uint8_t>((static_cast<uint8_t>(kType) << 4) | (kType == PacketType::kPubrel ? 0x02 : 0x00));
}

uint8_t encodeBody(WireWriter& w, const Subscribe& p, ProtocolVersion v) {
  w.u16(p.packet_id);
  if (v == ProtocolVersion::k5) writeProperties(w, p.properties);
  for (const auto& s : p.subscriptions) {
    w.string(s.filter);
    uint8_t options = s.max_qos & 0x03;
    if (v == ProtocolVersion::k5) {
      if (s.no_local) options |= 0x04;
      if (s.retain_as_published) options |= 0x08;
      options |= static_cast<uint8_t>((s.retain_handling & 0x03) << 4);
    }
    w.u8(options);
  }
  return 0x82;
}

uint8_t encodeBody(WireWriter& w, const Suback& p, ProtocolVersion v) {
  w.u16(p.packet_id);
  if (v == ProtocolVersion::k5) writeProperties(w, p.properties);
  for (uint8_t c : p.reason_codes) w.u8(c);
  return 0x90;
}

uint8_t encodeBody(WireWriter& w, const Unsubscribe& p, ProtocolVersion v) {
  w.u16(p.packet_id);
  if (v == ProtocolVersion::k5) writeProperties(w, p.properties);
  for (const auto& f : p.filters) w.string(f);
  return 0xA2;
}

uint8_t encodeBody(WireWriter& w, const Unsuback& p, ProtocolVersion v) {
  w.u16(p.packet_id);
  if (v == ProtocolVersion::k5) {
    writeProperties(w, p.properties);
    for (uint8_t c : p.reason_codes) w.u8(c);
  }
  return 0xB0;
}

uint8_t encodeBody(WireWriter&, const Pingreq&, ProtocolVersion) { return 0xC0; }
uint8_t encodeBody(WireWriter&, const Pingresp&, ProtocolVersion) { return 0xD0; }

uint8_t encodeBody(WireWriter& w, const Disconnect& p, ProtocolVersion v) {
  if (v == ProtocolVersion::k5) {
    bool props = !isEmpty(p.properties);
    if (p.reason_code != 0 || props) w.u8(p.reason_code);
    if (props) writeProperties(w, p.properties);
  }
  return 0xE0;
}

uint8_t encodeBody(WireWriter& w, const Auth& p, ProtocolVersion) {
  if (p.reason_code != 0 || !isEmpty(p.properties)) {
    w.u8(p.reason_code);
    writeProperties(w, p.properties);
  }
  return 0xF0;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

PacketType packetType(const Packet& packet) {
  return std::visit(
      [](const auto& p) -> PacketType {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Connect>) return PacketType::kConnect;
        else if constexpr (std::is_same_v<T, Connack>) return PacketType::kConnack;
        else if constexpr (std::is_same_v<T, Publish>) return PacketType::kPublish;
        else if constexpr (std::is_same_v<T, Puback>) return PacketType::kPuback;
        else if constexpr (std::is_same_v<T, Pubrec>) return PacketType::kPubrec;
        else if constexpr (std::is_same_v<T, Pubrel>) return PacketType::kPubrel;
        else if constexpr (std::is_same_v<T, Pubcomp>) return PacketType::kPubcomp;
        else if constexpr (std::is_same_v<T, Subscribe>) return PacketType::kSubscribe;
        else if constexpr (std::is_same_v<T, Suback>) return PacketType::kSuback;
        else if constexpr (std::is_same_v<T, Unsubscribe>) return PacketType::kUnsubscribe;
        else if constexpr (std::is_same_v<T, Unsuback>) return PacketType::kUnsuback;
        else if constexpr (std::is_same_v<T, Pingreq>) return PacketType::kPingreq;
        else if constexpr (std::is_same_v<T, Pingresp>) return PacketType::kPingresp;
        else if constexpr (std::is_same_v<T, Disconnect>) return PacketType::kDisconnect;
        else return PacketType::kAuth;
      },
      packet);
}

const char* packetTypeName(PacketType type) {
  switch (type) {
    case PacketType::kConnect: return "CONNECT";
    case PacketType::kConnack: return "CONNACK";
    case PacketType::kPublish: return "PUBLISH";
    case PacketType::kPuback: return "PUBACK";
    case PacketType::kPubrec: return "PUBREC";
    case PacketType::kPubrel: return "PUBREL";
    case PacketType::kPubcomp: return "PUBCOMP";
    case PacketType::kSubscribe: return "SUBSCRIBE";
    case PacketType::kSuback: return "SUBACK";
    case PacketType::kUnsubscribe: return "UNSUBSCRIBE";
    case PacketType::kUnsuback: return "UNSUBACK";
    case PacketType::kPingreq: return "PINGREQ";
    case PacketType::kPingresp: return "PINGRESP";
    case PacketType::kDisconnect: return "DISCONNECT";
    case PacketType::kAuth: return "AUTH";
  }
  return "RESERVED";
}

bool isValidUtf8String(std::string_view s) {
  // RFC 3629 well-formedness plus MQTT 5.0 §1.5.4: no surrogates (U+D800 to
  // U+DFFF, which UTF-8 must not encode) and no U+0000.
  ByteReader r(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  while (!r.empty()) {
    uint8_t c = 0;
    r.readU8(c);
    if (c == 0) return false;
    if (c < 0x80) continue;
    int extra = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;  // a continuation byte or 0xF8-0xFF where a lead byte belongs
    }
    for (int i = 0; i < extra; ++i) {
      uint8_t cc = 0;
      if (!r.readU8(cc) || (cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min) return false;                      // over-long encoding
    if (cp > 0x10FFFF) return false;                 // beyond Unicode
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // surrogate
  }
  return true;
}

FrameDecoder::FrameDecoder(size_t max_packet_size) : max_packet_size_(max_packet_size) {}

void FrameDecoder::setMaxPacketSize(size_t max_packet_size) { max_packet_size_ = max_packet_size; }

void FrameDecoder::append(std::string_view bytes) {
  append(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

void FrameDecoder::append(std::span<const uint8_t> bytes) {
  if (error_ || bytes.empty()) return;
  compact();
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  if (header_len_ == 0) checkHeader();
}

void FrameDecoder::checkHeader() {
  ByteReader r(std::span<const uint8_t>(buffer_).subspan(start_));
  uint8_t first = 0;
  if (!r.readU8(first)) return;
  // MQTT 5.0 §2.1.4, §1.5.5: Remaining Length is a Variable Byte Integer of
  // at most 4 bytes, minimally encoded.
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    uint8_t b = 0;
    if (!r.readU8(b)) return;  // header incomplete
    value |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      if (i > 0 && b == 0) {
        error_ = malformed("Remaining Length is not minimally encoded");
      } else {
        size_t header_len = 2 + static_cast<size_t>(i);
        // MQTT 5.0 §3.1.2.11.4 / §3.2.2.3.6: Maximum Packet Size counts the
        // whole packet. Refuse before buffering the body.
        if (header_len + value > max_packet_size_) {
          error_ = DecodeError{reason::kPacketTooLarge,
                               std::to_string(header_len + value) + "-byte packet exceeds the maximum packet size of " +
                                   std::to_string(max_packet_size_)};
          const size_t body_at = start_ + header_len;
          const size_t kept = std::min(FrameDecoder::kRefusedBodyKept, buffer_.size() - body_at);
          refused_body_.assign(buffer_.begin() + static_cast<std::ptrdiff_t>(body_at),
                               buffer_.begin() + static_cast<std::ptrdiff_t>(body_at + kept));
          refused_first_ = first;
          refused_size_ = header_len + value;
        } else {
          header_len_ = header_len;
          remaining_len_ = value;
        }
      }
      break;
    }
    if (i == 3) error_ = malformed("Remaining Length is longer than 4 bytes");
  }
  if (error_) {
    // Drop everything: the stream cannot be resynchronized.
    buffer_.clear();
    buffer_.shrink_to_fit();
    start_ = 0;
  }
}

std::optional<FrameView> FrameDecoder::refusedFrame() const {
  if (refused_size_ == 0) return std::nullopt;
  return FrameView{refused_first_, std::span<const uint8_t>(refused_body_), refused_size_};
}

void FrameDecoder::compact() {
  // Keep the buffer small for idle sessions: release a large one once it is
  // drained, and slide unread bytes down when most of it is consumed.
  constexpr size_t kKeepCapacity = 16 * 1024;
  if (start_ == 0) return;
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
    if (buffer_.capacity() > kKeepCapacity) buffer_.shrink_to_fit();
  } else if (start_ > buffer_.size() / 2) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
}

DecodeResult<std::optional<FrameView>> FrameDecoder::nextView() {
  compact();
  if (!error_ && header_len_ == 0) checkHeader();
  if (error_) return *error_;
  if (header_len_ == 0 || buffered() < header_len_ + remaining_len_) return std::optional<FrameView>();
  FrameView frame;
  frame.size = header_len_ + remaining_len_;
  frame.first_byte = buffer_[start_];
  frame.body = std::span<const uint8_t>(buffer_).subspan(start_ + header_len_, remaining_len_);
  start_ += frame.size;
  header_len_ = 0;
  remaining_len_ = 0;
  return std::optional<FrameView>(frame);
}

DecodeResult<std::optional<Frame>> FrameDecoder::next() {
  auto view = nextView();
  if (!view) return view.error();
  if (!view.value()) return std::optional<Frame>();
  Frame frame;
  frame.first_byte = view.value()->first_byte;
  frame.body.assign(view.value()->body.begin(), view.value()->body.end());
  frame.size = view.value()->size;
  return std::optional<Frame>(std::move(frame));
}

DecodeResult<ProtocolVersion> peekConnectVersion(std::span<const uint8_t> body) {
  ByteReader r(body);
  std::string name;
  WARDEN_MQTT_TRY(readBinary(r, name, "CONNECT Protocol Name"));
  uint8_t level = 0;
  WARDEN_MQTT_TRY(readU8(r, level, "CONNECT Protocol Level"));
  if (name == "MQTT") {
    // MQTT 5.0 §3.1.2.2; 3.1.1 §3.1.2.2: an unsupported level gets return
    // code 1 / reason 0x84.
    if (level == 4) return ProtocolVersion::k311;
    if (level == 5) return ProtocolVersion::k5;
    return DecodeError{reason::kUnsupportedProtocolVersion, "unsupported MQTT Protocol Level " + std::to_string(level)};
  }
  if (name == "MQIsdp") {
    // MQTT 3.1 (level 3) clients understand the 3.1.1 CONNACK.
    return DecodeError{reason::kUnsupportedProtocolVersion, "MQTT 3.1 (MQIsdp) is not supported"};
  }
  // MQTT 5.0 §3.1.2.1: another name is not this protocol.
  return malformed("CONNECT Protocol Name is not \"MQTT\"");
}

DecodeResult<Connect> decodeConnect(uint8_t first_byte, std::span<const uint8_t> body) {
  // MQTT 5.0 §2.1.3: CONNECT flags are 0000.
  if (first_byte != 0x10) return malformed("CONNECT fixed header flags are not 0");
  auto version = peekConnectVersion(body);
  if (!version.isOk()) return version.error();
  Connect p;
  p.version = version.value();
  bool v5 = p.version == ProtocolVersion::k5;
  ByteReader r(body);
  std::string ignored;
  WARDEN_MQTT_TRY(readBinary(r, ignored, "CONNECT Protocol Name"));
  r.skip(1);  // Protocol Level, read above
  uint8_t flags = 0;
  WARDEN_MQTT_TRY(readU8(r, flags, "CONNECT Flags"));
  // §3.1.2.3: the reserved flag must be 0.
  if (flags & 0x01) return malformed("CONNECT reserved flag is set");
  p.clean_start = flags & 0x02;
  bool will = flags & 0x04;
  uint8_t will_qos = (flags >> 3) & 0x03;
  bool will_retain = flags & 0x20;
  bool has_password = flags & 0x40;
  bool has_username = flags & 0x80;
  // §3.1.2.6: Will QoS 3 is malformed; without a will, QoS and Retain are 0
  // (§3.1.2.5-7).
  if (will_qos == 3) return malformed("CONNECT Will QoS is 3");
  if (!will && (will_qos != 0 || will_retain)) return malformed("CONNECT Will QoS or Retain set without a will");
  // 3.1.1 §3.1.2.9: "If the User Name Flag is set to 0, the Password Flag
  // MUST be set to 0." (MQTT 5.0 allows a password alone.)
  if (!v5 && has_password && !has_username) return malformed("CONNECT has a password without a user name");
  WARDEN_MQTT_TRY(readU16(r, p.keep_alive, "CONNECT Keep Alive"));
  if (v5) WARDEN_MQTT_TRY(readProperties(r, kCtxConnect, p.properties));
  // §3.1.3.1: the Client Identifier is a UTF-8 string (possibly empty).
  WARDEN_MQTT_TRY(readUtf8(r, p.client_id, "CONNECT Client Identifier"));
  if (will) {
    Will w;
    w.qos = will_qos;
    w.retain = will_retain;
    if (v5) WARDEN_MQTT_TRY(readProperties(r, kCtxWill, w.properties));
    WARDEN_MQTT_TRY(readUtf8(r, w.topic, "CONNECT Will Topic"));
    // §3.1.3.3 and §4.7: the Will Topic is a topic name.
    if (w.topic.empty() || hasWildcard(w.topic)) {
      return DecodeError{reason::kTopicNameInvalid, "CONNECT Will Topic is empty or contains a wildcard"};
    }
    WARDEN_MQTT_TRY(readBinary(r, w.payload, "CONNECT Will Payload"));
    p.will = std::move(w);
  }
  if (has_username) {
    std::string username;
    WARDEN_MQTT_TRY(readUtf8(r, username, "CONNECT User Name"));
    p.username = std::move(username);
  }
  if (has_password) {
    std::string password;
    WARDEN_MQTT_TRY(readBinary(r, password, "CONNECT Password"));
    p.password = std::move(password);
  }
  WARDEN_MQTT_TRY(expectEnd(r, "CONNECT"));
  return p;
}

DecodeResult<Packet> decodePacket(uint8_t first_byte, std::span<const uint8_t> body, ProtocolVersion version) {
  auto type = static_cast<PacketType>(first_byte >> 4);
  uint8_t flags = first_byte & 0x0F;
  // MQTT 5.0 §2.1.3: fixed flags per type; PUBLISH's are checked by
  // decodePublish.
  uint8_t required_flags = 0;
  switch (type) {
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      required_flags = 0x02;
      break;
    default:
      break;
  }
  if (type != PacketType::kPublish && flags != required_flags) {
    return malformed(std::string(packetTypeName(type)) + " fixed header has reserved flag bits " +
                     hexByte(flags));
  }
  ByteReader r(body);
  switch (type) {
    case PacketType::kConnect: return widen(decodeConnect(first_byte, body));
    case PacketType::kConnack: return widen(decodeConnack(r, version));
    case PacketType::kPublish: return widen(decodePublish(flags, r, version));
    case PacketType::kPuback: return widen(decodePubResponse<PacketType::kPuback>(r, version));
    case PacketType::kPubrec: return widen(decodePubResponse<PacketType::kPubrec>(r, version));
    case PacketType::kPubrel: return widen(decodePubResponse<PacketType::kPubrel>(r, version));
    case PacketType::kPubcomp: return widen(decodePubResponse<PacketType::kPubcomp>(r, version));
    case PacketType::kSubscribe: return widen(decodeSubscribe(r, version));
    case PacketType::kSuback: return widen(decodeSuback(r, version));
    case PacketType::kUnsubscribe: return widen(decodeUnsubscribe(r, version));
    case PacketType::kUnsuback: return widen(decodeUnsuback(r, version));
    case PacketType::kPingreq:
      WARDEN_MQTT_TRY(expectEnd(r, "PINGREQ"));
      return Packet(Pingreq{});
    case PacketType::kPingresp:
      WARDEN_MQTT_TRY(expectEnd(r, "PINGRESP"));
      return Packet(Pingresp{});
    case PacketType::kDisconnect: return widen(decodeDisconnect(r, version));
    case PacketType::kAuth:
      // 3.1.1 §2.2.1: type 15 is reserved.
      if (version == ProtocolVersion::k311) return malformed("packet type 15 is reserved in MQTT 3.1.1");
      return widen(decodeAuth(r));
  }
  // MQTT 5.0 §2.1.2: type 0 is reserved.
  return malformed("packet type 0 is reserved");
}

std::string encode(const Packet& packet, ProtocolVersion version) {
  if (version == ProtocolVersion::k311 && std::holds_alternative<Auth>(packet)) return "";
  WireWriter body;
  uint8_t first = std::visit([&](const auto& p) { return encodeBody(body, p, version); }, packet);
  WireWriter out;
  out.u8(first);
  out.varint(body.str().size());
  out.absorb(body);
  if (out.overflow()) return "";
  return std::move(out.str());
}

}  // namespace warden::gateway::mqtt
