#pragma once

// MQTT 3.1.1 and 5.0 control packets as plain values. The codec (codec.h)
// decodes wire bytes into these structs after validating them completely and
// encodes them canonically; the gateway forwards only what it re-encoded.
// No Asio here: the libFuzzer targets build this file.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace warden::gateway::mqtt {

// ProtocolVersion is the CONNECT Protocol Level (MQTT 5.0 §3.1.2.2).
enum class ProtocolVersion : uint8_t { k311 = 4, k5 = 5 };

// PacketType is the MQTT Control Packet type (MQTT 5.0 §2.1.2).
enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // MQTT 5.0 only
};

// Reason codes of MQTT 5.0 §2.4 (and the 3.1.1 CONNACK return codes).
namespace reason {
inline constexpr uint8_t kSuccess = 0x00;  // also Normal disconnection, Granted QoS 0
inline constexpr uint8_t kGrantedQos1 = 0x01;
inline constexpr uint8_t kGrantedQos2 = 0x02;
inline constexpr uint8_t kDisconnectWithWill = 0x04;
inline constexpr uint8_t kNoMatchingSubscribers = 0x10;
inline constexpr uint8_t kNoSubscriptionExisted = 0x11;
inline constexpr uint8_t kContinueAuthentication = 0x18;
inline constexpr uint8_t kReAuthenticate = 0x19;
inline constexpr uint8_t kUnspecifiedError = 0x80;  // also the 3.1.1 SUBACK Failure
inline constexpr uint8_t kMalformedPacket = 0x81;
inline constexpr uint8_t kProtocolError = 0x82;
inline constexpr uint8_t kImplementationSpecificError = 0x83;
inline constexpr uint8_t kUnsupportedProtocolVersion = 0x84;
inline constexpr uint8_t kClientIdentifierNotValid = 0x85;
inline constexpr uint8_t kBadUserNameOrPassword = 0x86;
inline constexpr uint8_t kNotAuthorized = 0x87;
inline constexpr uint8_t kServerUnavailable = 0x88;
inline constexpr uint8_t kServerBusy = 0x89;
inline constexpr uint8_t kBanned = 0x8A;
inline constexpr uint8_t kServerShuttingDown = 0x8B;
inline constexpr uint8_t kBadAuthenticationMethod = 0x8C;
inline constexpr uint8_t kKeepAliveTimeout = 0x8D;
inline constexpr uint8_t kSessionTakenOver = 0x8E;
inline constexpr uint8_t kTopicFilterInvalid = 0x8F;
inline constexpr uint8_t kTopicNameInvalid = 0x90;
inline constexpr uint8_t kPacketIdentifierInUse = 0x91;
inline constexpr uint8_t kPacketIdentifierNotFound = 0x92;
inline constexpr uint8_t kReceiveMaximumExceeded = 0x93;
inline constexpr uint8_t kTopicAliasInvalid = 0x94;
inline constexpr uint8_t kPacketTooLarge = 0x95;
inline constexpr uint8_t kMessageRateTooHigh = 0x96;
inline constexpr uint8_t kQuotaExceeded = 0x97;
inline constexpr uint8_t kAdministrativeAction = 0x98;
inline constexpr uint8_t kPayloadFormatInvalid = 0x99;
inline constexpr uint8_t kRetainNotSupported = 0x9A;
inline constexpr uint8_t kQosNotSupported = 0x9B;
inline constexpr uint8_t kUseAnotherServer = 0x9C;
inline constexpr uint8_t kServerMoved = 0x9D;
inline constexpr uint8_t kSharedSubscriptionsNotSupported = 0x9E;
inline constexpr uint8_t kConnectionRateExceeded = 0x9F;
inline constexpr uint8_t kMaximumConnectTime = 0xA0;
inline constexpr uint8_t kSubscriptionIdentifiersNotSupported = 0xA1;
inline constexpr uint8_t kWildcardSubscriptionsNotSupported = 0xA2;

// MQTT 3.1.1 §3.2.2.3 CONNACK return codes.
inline constexpr uint8_t kV311Accepted = 0;
inline constexpr uint8_t kV311UnacceptableProtocolVersion = 1;
inline constexpr uint8_t kV311IdentifierRejected = 2;
inline constexpr uint8_t kV311ServerUnavailable = 3;
inline constexpr uint8_t kV311BadUserNameOrPassword = 4;
inline constexpr uint8_t kV311NotAuthorized = 5;
// MQTT 3.1.1 §3.9.3 SUBACK failure.
inline constexpr uint8_t kV311SubackFailure = 0x80;
}  // namespace reason

// UserProperty is one MQTT 5.0 User Property (§3.1.2.11.8): a UTF-8 string
// pair. Order and duplicates are preserved (§3.3.2.3.7).
struct UserProperty {
  std::string key;
  std::string value;
  bool operator==(const UserProperty&) const = default;
};

// Properties holds every MQTT 5.0 property (§2.2.2.2). A field is set only
// if the property was present; the decoder rejects properties not allowed
// for the packet (or will) they appear in and repeated single-use ones. In
// MQTT 3.1.1 sessions the codec ignores this struct when encoding.
struct Properties {
  std::optional<uint8_t> payload_format_indicator;           // 0x01 PUBLISH, will
  std::optional<uint32_t> message_expiry_interval;           // 0x02 PUBLISH, will
  std::optional<std::string> content_type;                   // 0x03 PUBLISH, will
  std::optional<std::string> response_topic;                 // 0x08 PUBLISH, will
  std::optional<std::string> correlation_data;               // 0x09 PUBLISH, will (binary)
  std::vector<uint32_t> subscription_identifiers;            // 0x0B PUBLISH (several), SUBSCRIBE (one)
  std::optional<uint32_t> session_expiry_interval;           // 0x11 CONNECT, CONNACK, DISCONNECT
  std::optional<std::string> assigned_client_identifier;     // 0x12 CONNACK
  std::optional<uint16_t> server_keep_alive;                 // 0x13 CONNACK
  std::optional<std::string> authentication_method;          // 0x15 CONNECT, CONNACK, AUTH
  std::optional<std::string> authentication_data;            // 0x16 CONNECT, CONNACK, AUTH (binary)
  std::optional<uint8_t> request_problem_information;        // 0x17 CONNECT
  std::optional<uint32_t> will_delay_interval;               // 0x18 will
  std::optional<uint8_t> request_response_information;       // 0x19 CONNECT
  std::optional<std::string> response_information;           // 0x1A CONNACK
  std::optional<std::string> server_reference;               // 0x1C CONNACK, DISCONNECT
  std::optional<std::string> reason_string;                  // 0x1F acks, DISCONNECT, AUTH
  std::optional<uint16_t> receive_maximum;                   // 0x21 CONNECT, CONNACK
  std::optional<uint16_t> topic_alias_maximum;               // 0x22 CONNECT, CONNACK
  std::optional<uint16_t> topic_alias;                       // 0x23 PUBLISH
  std::optional<uint8_t> maximum_qos;                        // 0x24 CONNACK
  std::optional<uint8_t> retain_available;                   // 0x25 CONNACK
  std::vector<UserProperty> user_properties;                 // 0x26 all but PINGREQ/PINGRESP
  std::optional<uint32_t> maximum_packet_size;               // 0x27 CONNECT, CONNACK
  std::optional<uint8_t> wildcard_subscription_available;    // 0x28 CONNACK
  std::optional<uint8_t> subscription_identifier_available;  // 0x29 CONNACK
  std::optional<uint8_t> shared_subscription_available;      // 0x2A CONNACK

  bool operator==(const Properties&) const = default;
};

// Will is the will message of a CONNECT (MQTT 5.0 §3.1.2.5, §3.1.3.2-4).
struct Will {
  uint8_t qos = 0;
  bool retain = false;
  std::string topic;
  std::string payload;    // binary
  Properties properties;  // will properties (MQTT 5.0 only)
  bool operator==(const Will&) const = default;
};

// Connect (MQTT 5.0 §3.1). |version| is the Protocol Level it was sent with.
struct Connect {
  ProtocolVersion version = ProtocolVersion::k5;
  bool clean_start = true;  // CleanSession in 3.1.1
  uint16_t keep_alive = 0;  // seconds
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary
  Properties properties;
  bool operator==(const Connect&) const = default;
};

// Connack (MQTT 5.0 §3.2). |reason_code| is the 3.1.1 return code (0-5) in a
// 3.1.1 session and the MQTT 5 reason code otherwise.
struct Connack {
  bool session_present = false;
  uint8_t reason_code = 0;
  Properties properties;
  bool operator==(const Connack&) const = default;
};

// Publish (MQTT 5.0 §3.3). |packet_id| is 0 exactly when |qos| is 0. |topic|
// may be empty only in MQTT 5.0 with a Topic Alias property.
struct Publish {
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  std::string topic;
  uint16_t packet_id = 0;
  Properties properties;
  std::string payload;  // binary
  bool operator==(const Publish&) const = default;
};

// PubResponse is PUBACK, PUBREC, PUBREL or PUBCOMP (MQTT 5.0 §3.4-§3.7): a
// packet id, a reason code (MQTT 5.0 only; 0 in 3.1.1) and properties.
template <PacketType kType>
struct PubResponse {
  uint16_t packet_id = 0;
  uint8_t reason_code = 0;
  Properties properties;
  bool operator==(const PubResponse&) const = default;
};
using Puback = PubResponse<PacketType::kPuback>;
using Pubrec = PubResponse<PacketType::kPubrec>;
using Pubrel = PubResponse<PacketType::kPubrel>;
using Pubcomp = PubResponse<PacketType::kPubcomp>;

// Subscription is one topic filter of a SUBSCRIBE with its options (MQTT 5.0
// §3.8.3.1). In 3.1.1 only |max_qos| exists; the others are false/0.
struct Subscription {
  std::string filter;
  uint8_t max_qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;  // 0, 1 or 2
  bool operator==(const Subscription&) const = default;
};

// Subscribe (MQTT 5.0 §3.8). The decoder guarantees at least one entry.
struct Subscribe {
  uint16_t packet_id = 0;
  std::vector<Subscription> subscriptions;
  Properties properties;
  bool operator==(const Subscribe&) const = default;
};

// Suback (MQTT 5.0 §3.9): one reason code (3.1.1: return code) per filter.
struct Suback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> reason_codes;
  Properties properties;
  bool operator==(const Suback&) const = default;
};

// Unsubscribe (MQTT 5.0 §3.10). The decoder guarantees at least one filter.
struct Unsubscribe {
  uint16_t packet_id = 0;
  std::vector<std::string> filters;
  Properties properties;
  bool operator==(const Unsubscribe&) const = default;
};

// Unsuback (MQTT 5.0 §3.11). |reason_codes| is empty in 3.1.1 (§3.11 of
// 3.1.1 has no payload) and has one entry per filter in 5.0.
struct Unsuback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> reason_codes;
  Properties properties;
  bool operator==(const Unsuback&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};
struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};

// Disconnect (MQTT 5.0 §3.14). In 3.1.1 it has no reason code or properties.
struct Disconnect {
  uint8_t reason_code = 0;
  Properties properties;
  bool operator==(const Disconnect&) const = default;
};

// Auth (MQTT 5.0 §3.15), MQTT 5.0 only.
struct Auth {
  uint8_t reason_code = 0;
  Properties properties;
  bool operator==(const Auth&) const = default;
};

// Packet is any control packet. The variant index is not the wire type; use
// packetType().
using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe, Suback,
                            Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

// packetType returns the wire type of |packet|.
PacketType packetType(const Packet& packet);

// packetTypeName returns the upper-case name of |type| ("PUBLISH"), or
// "RESERVED" for values outside 1-15.
const char* packetTypeName(PacketType type);

}  // namespace warden::gateway::mqtt
