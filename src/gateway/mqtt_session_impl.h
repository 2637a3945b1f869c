#pragma once

// mqtt_session_impl.h: private to src/gateway. MqttSession is one device's
// MQTT session through the gateway: the device-side TLS connection, the
// upstream connection opened for it after CONNECT was authorized, and all
// per-session state (alias map, packet-id map, subscriptions). It lives on
// the single io thread; every packet is decoded, authorized and re-encoded.

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio.hpp>

#include "gateway/decision_cache.h"
#include "gateway/gateway_impl.h"
#include "gateway/mqtt/codec.h"
#include "gateway/peer_identity.h"
#include "gateway/tls_stream.h"
#include "gateway/upstream_connector_impl.h"
#include "monitor/deny_limiter.h"
#include "policy/policy.h"

namespace warden::gateway {

class MqttSession : public std::enable_shared_from_this<MqttSession> {
 public:
  MqttSession(Gateway::Impl& gw, tcp::socket device, std::string remote_address);
  ~MqttSession();
  MqttSession(const MqttSession&) = delete;
  MqttSession& operator=(const MqttSession&) = delete;

  // start runs the session (handshake, CONNECT, forwarding) until it closes.
  void start();
  // reevaluate re-checks the session against the current snapshot; |done|
  // runs once it is cut or restricted (restored filters SUBACKed or 2 s).
  void reevaluate(std::function<void()> done);
  // cut ends the session: DISCONNECT |reason_code| to an MQTT 5 device,
  // DISCONNECT 0x00 upstream (no will; with Session Expiry 0 if |purge|).
  // |done| runs once both connections are closed.
  void cut(uint8_t reason_code, std::string reason, bool purge, std::function<void()> done);
  // dryRun says what |candidate| would do to this session if applied now;
  // nullopt unless the session is connected (changes nothing).
  std::optional<SessionImpact> dryRun(const policy::Policy& candidate);
  // abort closes both sockets at once (gateway destruction).
  void abort();
  // recheckParkedWill: this session is closed and the broker holds its will
  // for its Will Delay. If the will is no longer permitted, the gateway
  // cancels it at the broker; |done| runs once that is done (or nothing was
  // needed).
  void recheckParkedWill(std::function<void()> done);
  // whenWillSettled runs |f| once no cancellation of this parked will is
  // running (a new connection of the device must not race it).
  void whenWillSettled(std::function<void()> f);
  // willDeadline is when the broker sends this closed session's delayed will
  // (the epoch if it holds none).
  std::chrono::steady_clock::time_point willDeadline() const { return will_deadline_; }
  const std::string& device() const { return device_; }

 private:
  enum class State { kHandshake, kAwaitConnect, kConnecting, kConnected, kClosing, kClosed };
  enum class Side { kDevice, kUpstream };
  // How the upstream connection ends.
  enum class UpstreamEnd { kNoWill, kWillIfPermitted, kForward };

  struct OutQueue {
    explicit OutQueue(const asio::any_io_executor& ex) : signal(ex) {}
    std::string pending;  // encoded packets not yet handed to the writer, back to back
    size_t bytes = 0;     // pending + the batch being written
    asio::steady_timer signal;  // cancelled to wake the writer
    bool writer_running = false;
    bool finished = false;      // the writer has closed its socket
  };

  // UpstreamId records who a client-originated upstream packet id belongs to.
  struct UpstreamId {
    bool gateway = false;     // originated by the gateway (suspend/restore)
    uint16_t device_id = 0;
  };

  // AckSlot is the answer to one device QoS 1/2 PUBLISH, in the order the
  // PUBLISHes arrived (MQTT 5.0 §4.6): a denial the gateway answers itself
  // waits behind answers the broker still owes for earlier PUBLISHes.
  struct AckSlot {
    uint16_t device_id = 0;
    std::optional<mqtt::Packet> answer;  // PUBACK or PUBREC; empty while the broker's is awaited
  };

  // PendingSubscribe is a device SUBSCRIBE waiting for the broker's SUBACK.
  struct PendingSubscribe {
    uint16_t device_id = 0;
    std::vector<uint8_t> codes;            // final codes; forwarded slots filled on SUBACK
    std::vector<size_t> forwarded;         // indexes into |codes| / |subs| sent upstream
    std::vector<mqtt::Subscription> subs;  // all filters of the SUBSCRIBE
    std::optional<uint32_t> subscription_id;
  };

  asio::awaitable<void> run();
  asio::awaitable<void> deviceReadLoop();
  asio::awaitable<void> upstreamReadLoop();
  asio::awaitable<void> writer(Side side);
  asio::awaitable<void> timers();
  asio::awaitable<void> handleConnect(mqtt::Frame frame);

  void handleDeviceFrame(const mqtt::FrameView& frame);
  void handleDevicePublish(mqtt::Publish& p);
  void handleDeviceSubscribe(mqtt::Subscribe& s);
  void handleDeviceUnsubscribe(mqtt::Unsubscribe& u);
  void handleDeviceDisconnect(mqtt::Disconnect& d);
  // handleDevicePubrel releases a staged QoS 2 PUBLISH only if its topic is
  // still permitted; otherwise (or if the gateway does not know it) the
  // device gets PUBCOMP 0x92 and the broker never delivers the message.
  void handleDevicePubrel(const mqtt::Pubrel& rel);
  // answerPublish sends the PUBACK/PUBREC |answer| for device PUBLISH
  // |device_id| once every earlier PUBLISH has had its answer.
  // awaitAnswer reserves the place of a forwarded PUBLISH; brokerAnswered
  // fills it with the broker's answer (sent at once if it has no place).
  void answerPublish(uint16_t device_id, mqtt::Packet answer);
  void awaitAnswer(uint16_t device_id);
  void brokerAnswered(uint16_t device_id, mqtt::Packet answer);
  void handleUpstreamFrame(const mqtt::FrameView& frame);
  void handleBrokerPublish(mqtt::Publish& p);
  // acknowledgeUndelivered answers the broker for a delivery the gateway
  // does not forward (PUBACK, or PUBREC and later PUBCOMP), so it is not
  // redelivered.
  void acknowledgeUndelivered(const mqtt::Publish& p);
  // takeAcknowledged resolves the upstream packet id of a SUBACK/UNSUBACK:
  // a gateway-originated operation is completed here (nullopt); otherwise it
  // returns the device's pending request from |pending| (nullopt if none).
  // The id is released either way.
  std::optional<PendingSubscribe> takeAcknowledged(std::unordered_map<uint16_t, PendingSubscribe>& pending,
                                                   uint16_t upstream_id, const std::vector<uint8_t>& codes);
  void handleUpstreamSuback(mqtt::Suback& s);
  void handleUpstreamUnsuback(mqtt::Unsuback& u);

  // Authorization against the current snapshot (the one decision function).
  // authorize decides (action, resource) for this session through its
  // decision cache. The reference stays valid until the next authorize call.
  const policy::Decision& authorize(std::string_view action, std::string_view resource);
  // authorizePublish decides a publish to |topic| (a PUBLISH, its release,
  // a will): mqtt:publish, and mqtt:retain too if |retain|. |action| is set
  // to the action decided last (the one to name in a denial).
  const policy::Decision& authorizePublish(std::string_view topic, bool retain, std::string_view& action);
  // refreshPrincipal rebuilds principal_ from |snap|; false if the device may
  // no longer hold a session (gone, revoked, pending, serial no longer valid).
  bool refreshPrincipal(const std::shared_ptr<const DecisionSnapshot>& snap, std::string* why = nullptr);
  // recordDeny records a denial (rate-limited events) and, unless |own| is
  // false (a re-evaluation or a delivery, not a request of the device),
  // reports it to the posture engine as the device's own.
  void recordDeny(std::string_view action, std::string_view resource, const policy::Decision& d,
                  std::string_view reason_override = {}, bool own = true);
  void recordEvent(std::string_view type, std::string_view reason, std::string_view action = {},
                   std::string_view resource = {}, std::string_view decision = {}, std::string_view rule = {},
                   const policy::Decision* decided = nullptr);
  // noteDeadline records when a decision in effect may change; the
  // keep-alive loop re-evaluates the session then.
  void noteDeadline(core::SystemTime t);
  // stampNow sets the inputs of a decision taken at |now|: the certificate's
  // age and the context's time.
  void stampNow(policy::Principal& principal, policy::Context& context, core::SystemTime now) const;

  void sendDevice(const mqtt::Packet& packet);
  void sendUpstream(const mqtt::Packet& packet);
  void enqueue(Side side, std::string bytes);
  OutQueue& queue(Side side) { return side == Side::kDevice ? dev_out_ : up_out_; }

  // Packet-id mapping for client-originated upstream packets.
  uint16_t mapDeviceId(uint16_t device_id);
  uint16_t allocGatewayId();
  void releaseUpstreamId(uint16_t upstream_id);
  // completeGatewayOp finishes a SUBSCRIBE/UNSUBSCRIBE the gateway sent on its
  // own (suspend/restore): releases |upstream_id| and runs its continuation
  // with the broker's |codes|. Its acknowledgement is never forwarded.
  void completeGatewayOp(uint16_t upstream_id, const std::vector<uint8_t>& codes);

  // Subscription suspension / restoration.
  void reevaluateFilters(std::function<void()> done);
  // suspendUpstream unsubscribes |filters| upstream on the gateway's own
  // packet id (the UNSUBACK is not forwarded); the caller has marked them
  // suspended.
  void suspendUpstream(std::vector<std::string> filters);
  // recallDeliveries drops from the device's output queue the deliveries the
  // current snapshot no longer allows (after a re-evaluation).
  void recallDeliveries();
  bool filterActiveFor(std::string_view topic);

  // Ending the session.
  void protocolViolation(uint8_t reason_code, std::string_view reason, std::string message);
  // refuseOversizedConnect ends a session whose first packet is over the
  // size limit (the device decoder's refused frame).
  void refuseOversizedConnect();
  void terminate(std::optional<uint8_t> device_reason, UpstreamEnd upstream_end, std::string reason,
                 std::optional<mqtt::Disconnect> forwarded = std::nullopt, bool purge = false);
  void onSideFinished();
  void finalize();
  void closeSocket(Side side);
  // willStillPermitted re-authorizes the will; a denial is recorded
  // (reason will_denied) and counts as the device's own unless |own| is false.
  bool willStillPermitted(bool own = true);
  asio::awaitable<void> cancelParkedWill();
  void refuseConnect(uint8_t v311_code, uint8_t v5_code, std::string_view reason);
  void whenClosed(std::function<void()> f);

  Gateway::Impl& gw_;
  TlsStream dev_;
  std::unique_ptr<UpstreamLink> up_;
  std::string remote_;
  State state_ = State::kHandshake;
  mqtt::ProtocolVersion version_ = mqtt::ProtocolVersion::k311;
  mqtt::FrameDecoder dev_decoder_;

  PeerIdentity peer_;
  std::string device_;
  policy::Principal principal_;
  const DecisionSnapshot* principal_snap_ = nullptr;   // identity only, never dereferenced
  std::shared_ptr<const DecisionSnapshot> held_snap_;  // keeps principal_snap_'s address unique
  uint64_t held_generation_ = 0;                       // SnapshotHolder::generation() of held_snap_
  policy::Context context_;                            // source address, protocol; time set per decision
  DecisionCache decision_cache_;                       // decisions under held_snap_
  // What the cache was filled under: kept across snapshots that changed
  // neither the policy nor this device's entry (FleetState revision).
  const policy::Policy* cache_policy_ = nullptr;
  uint64_t cache_revision_ = 0;
  uint64_t cache_generation_ = 0;                      // held_generation_ when the cache was last cleared
  uint64_t entry_revision_ = 0;                        // DeviceEntry::revision of principal_
  std::optional<core::SystemTime> last_good_attestation_;  // principal.attestation.age is measured from it
  std::optional<core::SystemTime> next_deadline_;      // earliest valid_until of the decisions taken
  bool identity_valid_ = false;
  std::string identity_why_;
  policy::Decision identity_denial_;                   // what authorize returns while !identity_valid_

  mqtt::Connect connect_;            // as received (credentials dropped)
  bool will_sent_upstream_ = false;  // the broker holds a will for this session
  uint32_t session_expiry_ = 0;      // as sent upstream
  uint16_t keep_alive_ = 0;          // effective, seconds
  uint32_t device_max_packet_ = 0;   // the device's Maximum Packet Size (0: none)
  uint32_t upstream_max_packet_ = 0; // the broker's (0: none)

  std::unordered_map<uint16_t, std::string> aliases_;  // device topic aliases
  std::unordered_map<uint16_t, UpstreamId> up_ids_;    // upstream id -> origin
  std::unordered_map<uint16_t, uint16_t> dev_to_up_;   // device id -> upstream id
  uint16_t next_gateway_id_ = 0xFFFF;
  std::unordered_set<uint16_t> denied_qos2_from_device_;  // PUBREC sent by the gateway
  std::unordered_map<uint16_t, StagedPublish> staged_qos2_;  // device id -> forwarded QoS 2, not completed
  std::deque<AckSlot> ack_order_;                            // answers to device PUBLISHes, in order
  uint16_t receive_max_ = 0;  // QoS 2 PUBLISHes a device may have staged (Receive Maximum)
  std::unordered_set<uint16_t> dropped_qos2_from_broker_; // PUBREC sent upstream by the gateway
  std::unordered_map<uint16_t, PendingSubscribe> pending_subs_;            // by upstream id
  std::unordered_map<uint16_t, PendingSubscribe> pending_unsubs_;          // by upstream id
  std::unordered_map<uint16_t, std::function<void(const std::vector<uint8_t>&)>> gateway_ops_;

  std::vector<SessionFilter> filters_;
  bool filters_known_ = true;  // false: resumed broker session whose filters the gateway never saw

  OutQueue dev_out_;
  OutQueue up_out_;
  asio::steady_timer dev_read_gate_;  // the device reader waits here on upstream backpressure
  asio::steady_timer up_read_gate_;
  asio::steady_timer timer_;          // connect deadline, keep-alive, certificate expiry
  asio::steady_timer force_close_;
  std::chrono::steady_clock::time_point last_device_rx_{};
  std::chrono::steady_clock::time_point last_upstream_tx_{};

  monitor::DenyLimiter deny_limiter_;
  std::string close_reason_;
  bool dev_done_ = false, up_done_ = false;
  bool was_connected_ = false;
  bool purge_ = false;
  std::optional<uint8_t> sent_disconnect_code_;
  std::vector<std::function<void()>> on_closed_;
  // The broker holds this session's will until then (Will Delay); zero: no
  // delayed will.
  std::chrono::steady_clock::time_point will_deadline_{};
  bool will_cancel_running_ = false;
  std::vector<std::function<void()>> on_will_settled_;
};

}  // namespace warden::gateway
