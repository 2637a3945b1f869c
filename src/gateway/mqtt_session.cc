#include "gateway/mqtt_session_impl.h"

#include <algorithm>

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "crypto/crypto.h"
#include "monitor/decision_json.h"
#include "monitor/event.h"
#include "policy/topic.h"

namespace warden::gateway {

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kForever = std::chrono::steady_clock::time_point::max();

// OneShot lets a coroutine wait for a callback: fire() may come before or
// during wait(), which returns then, or after |limit|.
class OneShot {
 public:
  explicit OneShot(asio::io_context& io) : timer_(io, kForever) {}
  void fire() {
    fired_ = true;
    timer_.cancel();
  }
  asio::awaitable<void> wait(std::optional<std::chrono::steady_clock::duration> limit = std::nullopt) {
    if (fired_) co_return;
    if (limit) timer_.expires_after(*limit);
    co_await timer_.async_wait(kNoThrow);
  }

 private:
  asio::steady_timer timer_;
  bool fired_ = false;
};

// The gateway keeps its upstream connection alive on its own; device
// PINGREQs are answered by the gateway.
constexpr uint16_t kUpstreamKeepAlive = 60;
constexpr auto kUpstreamPingAfter = std::chrono::seconds(30);
constexpr auto kCloseGrace = std::chrono::seconds(2);
constexpr auto kRestoreWait = std::chrono::seconds(2);
// Decisions a session remembers (per snapshot); the cache is emptied when full.
constexpr size_t kDecisionCacheSize = 64;
constexpr size_t kKeepBuffer = 16 * 1024;  // larger write buffers are released once written

using mqtt::ProtocolVersion;
namespace rc = mqtt::reason;
namespace er = monitor::reason;

// filterForMatching returns the topic filter part of a $share/<group>/<filter>.
std::string_view filterForMatching(std::string_view filter) {
  constexpr std::string_view kShare = "$share/";
  if (filter.substr(0, kShare.size()) == kShare) {
    std::string_view rest = filter.substr(kShare.size());
    size_t slash = rest.find('/');
    if (slash != std::string_view::npos) return rest.substr(slash + 1);
  }
  return filter;
}

std::span<const uint8_t> asBytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string_view eventReasonForDecodeError(uint8_t code) {
  switch (code) {
    case rc::kMalformedPacket: return er::kMalformedPacket;
    case rc::kPacketTooLarge: return er::kPacketTooLarge;
    case rc::kTopicAliasInvalid: return er::kTopicAliasInvalid;
    case rc::kTopicNameInvalid: return "topic_invalid";
    default: return er::kProtocolError;
  }
}

}  // namespace

MqttSession::MqttSession(Gateway::Impl& gw, tcp::socket device, std::string remote_address)
    : gw_(gw),
      dev_(std::move(device), gw.serverTls()),
      remote_(std::move(remote_address)),
      dev_decoder_(gw.config().limits.max_packet_size),
      dev_out_(gw.io().get_executor()),
      up_out_(gw.io().get_executor()),
      dev_read_gate_(gw.io()),
      up_read_gate_(gw.io()),
      timer_(gw.io()),
      force_close_(gw.io()) {
  // The request context of every decision of this session.
  boost::system::error_code ec;
  auto peer = dev_.socket().remote_endpoint(ec);
  if (!ec) context_.source_ip = policy::IpAddress::parse(peer.address().to_string());
  context_.protocol = "mqtt";
}

MqttSession::~MqttSession() = default;

void MqttSession::start() {
  asio::co_spawn(gw_.io(), run(), asio::detached);
  asio::co_spawn(gw_.io(), timers(), asio::detached);
}

// ---------------------------------------------------------------------------
// Events and decisions

void MqttSession::recordEvent(std::string_view type, std::string_view reason, std::string_view action,
                              std::string_view resource, std::string_view decision, std::string_view rule,
                              const policy::Decision* decided) {
  monitor::Event e;
  e.type = type;
  e.principal = peer_.spiffe_id;
  e.actor = peer_.spiffe_id;
  e.action = action;
  e.resource = resource;
  e.decision = decision;
  e.rule = rule;
  e.reason = reason;
  e.detail = nlohmann::json{{"remote", remote_}};
  if (decided != nullptr) {
    // The decision's short form: flow, missing flows, validity.
    nlohmann::json short_form = monitor::decisionToJson(*decided);
    e.detail["flow"] = std::move(short_form["flow"]);
    e.detail["missing_flows"] = std::move(short_form["missing_flows"]);
    e.detail["valid_until"] = std::move(short_form["valid_until"]);
  }
  gw_.record(std::move(e));
}

void MqttSession::recordDeny(std::string_view action, std::string_view resource, const policy::Decision& d,
                             std::string_view reason_override, bool own) {
  // Trust counts the policy's denials of the device's own requests (reaching
  // beyond its rights). Not counted: "you are quarantined" (a consequence of
  // the posture, not behaviour) and refusals by protocol limits or of
  // malformed requests (quota_exceeded, invalid_filter, ...), which one packet
  // can produce by the dozen and which say nothing about privileges.
  const bool policy_denial = d.reason == er::kForbidden || d.reason == er::kNoPermit || d.reason == er::kNoFlow;
  if (own && policy_denial) gw_.noteDenial(device_);
  monitor::DenyLimiter::DenyVerdict v = deny_limiter_.onDeny(gw_.clock().steadyNow());
  if (v.burst) {
    monitor::Event e;
    e.type = monitor::event_type::kDenyBurst;
    e.principal = peer_.spiffe_id;
    e.actor = peer_.spiffe_id;
    e.decision = "deny";
    e.reason = er::kRateLimited;
    e.detail = nlohmann::json{{"count", *v.burst}, {"remote", remote_}};
    gw_.record(std::move(e));
  }
  if (v.emit_deny) {
    recordEvent(monitor::event_type::kDeny, reason_override.empty() ? std::string_view(d.reason) : reason_override,
                action, resource, "deny", d.rule, &d);
  }
}

bool MqttSession::refreshPrincipal(const std::shared_ptr<const DecisionSnapshot>& snap, std::string* why) {
  if (snap.get() != principal_snap_) {
    principal_snap_ = snap.get();
    held_snap_ = snap;
    identity_valid_ = false;
    identity_why_.clear();
    const identity::DeviceEntry* dev =
        (snap && snap->fleet && snap->policy) ? snap->fleet->findDevice(device_) : nullptr;
    if (!snap || !snap->fleet || !snap->policy) {
      identity_why_ = "no_snapshot";
    } else if (dev == nullptr) {
      identity_why_ = er::kUnknownDevice;
    } else if (dev->state == store::DeviceState::kRevoked) {
      identity_why_ = er::kRevoked;
    } else if (!deviceStateAllowsSession(dev->state)) {
      identity_why_ = er::kDevicePending;
    } else if (dev->valid_serials.count(peer_.serial_hex) == 0) {
      identity_why_ = er::kRevoked;  // this certificate was revoked (or replaced and expired)
    } else {
      identity_valid_ = true;
      principal_.id = device_;
      principal_.kind = core::PrincipalKind::kDevice;
      principal_.role = dev->role;
      principal_.labels = dev->labels;
      principal_.quarantined = dev->state == store::DeviceState::kQuarantined;
      principal_.trust = dev->trust;
      principal_.firmware_approved = dev->firmware_approved;
      principal_.attestation_assurance.reset();
      if (dev->attestation_assurance == "tpm") principal_.attestation_assurance = policy::AttestationAssurance::kTpm;
      if (dev->attestation_assurance == "software") {
        principal_.attestation_assurance = policy::AttestationAssurance::kSoftware;
      }
      last_good_attestation_.reset();
      if (dev->last_good_attestation > 0) last_good_attestation_ = core::fromUnixSeconds(dev->last_good_attestation);
    }
    entry_revision_ = dev != nullptr ? dev->revision : 0;
  }
  if (why) *why = identity_why_;
  return identity_valid_;
}

const policy::Decision& MqttSession::authorize(std::string_view action, std::string_view resource) {
  // The snapshot this session holds is current while the generation is;
  // the decision cache lives as long as the snapshot.
  const uint64_t generation = gw_.snapshots().generation();
  if (generation != held_generation_ || !held_snap_) {
    auto snap = gw_.snapshots().get();
    refreshPrincipal(snap);
    held_generation_ = generation;
  }
  // A change to another device (or to nothing this session reads) keeps the
  // cache; a new policy or a new entry for this device drops it.
  // An entry without a revision (built by hand) counts as changed with every
  // snapshot.
  if (held_snap_ && (held_snap_->policy.get() != cache_policy_ || entry_revision_ != cache_revision_ ||
                     (entry_revision_ == 0 && held_generation_ != cache_generation_))) {
    decision_cache_.clear();
    cache_policy_ = held_snap_->policy.get();
    cache_revision_ = entry_revision_;
    cache_generation_ = held_generation_;
  }
  if (!identity_valid_) {
    identity_denial_ = policy::Decision{false, "default-deny", identity_why_};
    return identity_denial_;
  }
  const core::SystemTime now = gw_.clock().now();
  if (const policy::Decision* hit = decision_cache_.find(action, resource, now)) return *hit;
  stampNow(principal_, context_, now);
  const policy::Decision& d = decision_cache_.insert(held_snap_->policy->authorize(principal_, action, resource, context_));
  if (d.valid_until) noteDeadline(*d.valid_until);
  return d;
}

const policy::Decision& MqttSession::authorizePublish(std::string_view topic, bool retain, std::string_view& action) {
  action = "mqtt:publish";
  const policy::Decision* d = &authorize(action, topic);
  if (d->permit && retain) {
    action = "mqtt:retain";
    d = &authorize(action, topic);
  }
  return *d;
}

void MqttSession::stampNow(policy::Principal& principal, policy::Context& context, core::SystemTime now) const {
  principal.cert_age = std::chrono::duration_cast<std::chrono::seconds>(now - peer_.not_before);
  principal.attestation_age.reset();
  if (last_good_attestation_) {
    principal.attestation_age =
        std::max(std::chrono::seconds(0), std::chrono::duration_cast<std::chrono::seconds>(now - *last_good_attestation_));
  }
  context.time = now;
}

std::optional<SessionImpact> MqttSession::dryRun(const policy::Policy& candidate) {
  if (state_ != State::kConnected || !identity_valid_) return std::nullopt;
  const core::SystemTime now = gw_.clock().now();
  policy::Principal principal = principal_;
  policy::Context context = context_;
  stampNow(principal, context, now);
  SessionImpact impact;
  impact.device = device_;
  policy::Decision connect = candidate.authorize(principal, "mqtt:connect", device_, context);
  if (!connect.permit) {
    impact.would_cut = true;
    impact.reason = connect.reason;
    impact.rule = connect.rule;
    return impact;
  }
  for (const SessionFilter& f : filters_) {
    bool permitted = candidate.authorize(principal, "mqtt:subscribe", f.sub.filter, context).permit;
    if (!f.suspended && !permitted) impact.filters_lost.push_back(f.sub.filter);
    if (f.suspended && permitted) impact.filters_restored.push_back(f.sub.filter);
  }
  return impact;
}

void MqttSession::noteDeadline(core::SystemTime t) {
  if (next_deadline_ && *next_deadline_ <= t) return;
  next_deadline_ = t;
  // The keep-alive loop sleeps up to 5 s: wake it to sleep until |t| instead.
  if (state_ == State::kConnected) timer_.cancel();
}

// ---------------------------------------------------------------------------
// Output

void MqttSession::enqueue(Side side, std::string bytes) {
  if (bytes.empty()) return;
  OutQueue& q = queue(side);
  if (q.finished) return;
  q.bytes += bytes.size();
  if (q.pending.empty()) {
    q.pending = std::move(bytes);
  } else {
    q.pending += bytes;
  }
  q.signal.cancel();
}

void MqttSession::sendDevice(const mqtt::Packet& packet) { enqueue(Side::kDevice, mqtt::encode(packet, version_)); }

void MqttSession::sendUpstream(const mqtt::Packet& packet) {
  if (!up_) return;
  enqueue(Side::kUpstream, mqtt::encode(packet, ProtocolVersion::k5));
}

asio::awaitable<void> MqttSession::writer(Side side) {
  auto self = shared_from_this();
  OutQueue& q = queue(side);
  q.writer_running = true;
  std::string batch;
  for (;;) {
    if (q.pending.empty()) {
      if (state_ >= State::kClosing) break;
      q.signal.expires_at(kForever);
      co_await q.signal.async_wait(kNoThrow);
      continue;
    }
    // Everything queued goes out in one write (backpressure bounds it).
    batch.clear();
    batch.swap(q.pending);
    boost::system::error_code ec;
    if (side == Side::kDevice) {
      ec = co_await dev_.writeAll(asBytes(batch));
    } else {
      ec = co_await up_->stream->writeAll(asBytes(batch));
      last_upstream_tx_ = gw_.clock().steadyNow();
    }
    q.bytes -= std::min(q.bytes, batch.size());
    // An idle session keeps no large buffer.
    if (batch.capacity() > kKeepBuffer) std::string().swap(batch);
    if (q.pending.empty() && q.pending.capacity() > kKeepBuffer) std::string().swap(q.pending);
    // Backpressure: the reader of the other side may continue.
    (side == Side::kDevice ? up_read_gate_ : dev_read_gate_).cancel();
    if (ec) {
      if (state_ < State::kClosing) {
        if (side == Side::kDevice) {
          terminate(std::nullopt, UpstreamEnd::kWillIfPermitted, std::string(er::kConnectionLost));
        } else {
          terminate(rc::kUnspecifiedError, UpstreamEnd::kNoWill, std::string(er::kUpstreamUnavailable));
        }
      }
      break;
    }
  }
  q.finished = true;
  q.pending.clear();
  q.bytes = 0;
  closeSocket(side);
  if (side == Side::kDevice) {
    dev_done_ = true;
  } else {
    up_done_ = true;
  }
  onSideFinished();
}

// ---------------------------------------------------------------------------
// Session start: TLS, identity, CONNECT

asio::awaitable<void> MqttSession::run() {
  auto self = shared_from_this();
  auto hec = co_await dev_.handshake(TlsStream::Role::kServer);
  if (state_ >= State::kClosing) co_return;
  SSL* ssl = dev_.native_handle();
  if (hec) {
    long vr = SSL_get_verify_result(ssl);
    // A TCP probe or a client without a certificate: still a refused handshake.
    monitor::Event e;
    e.type = monitor::event_type::kTlsReject;
    e.action = "tls:handshake";
    e.reason = vr == X509_V_ERR_CERT_HAS_EXPIRED ? er::kCertExpired : er::kUntrustedIssuer;
    e.decision = "deny";
    e.detail = nlohmann::json{{"remote", remote_}, {"error", hec.message()}};
    if (vr != X509_V_OK) e.detail["verify"] = X509_verify_cert_error_string(vr);
    gw_.record(std::move(e));
    terminate(std::nullopt, UpstreamEnd::kNoWill, "tls_handshake_failed");
    co_return;
  }
  crypto::X509Ptr cert(SSL_get1_peer_certificate(ssl));
  auto snap = gw_.snapshots().get();
  peer_ = checkDevicePeer(cert.get(), SSL_get_verify_result(ssl), snap ? snap->fleet.get() : nullptr,
                          gw_.config().trust_domain, gw_.clock().now());
  if (!peer_.ok) {
    monitor::Event e;
    e.type = monitor::event_type::kTlsReject;
    e.action = "tls:handshake";
    e.principal = peer_.spiffe_id;
    e.actor = peer_.spiffe_id;
    e.reason = peer_.reason;
    e.decision = "deny";
    e.detail = nlohmann::json{{"remote", remote_}, {"error", peer_.detail}};
    if (!peer_.serial_hex.empty()) e.detail["serial"] = peer_.serial_hex;
    gw_.record(std::move(e));
    spdlog::info("MQTT TLS client {} refused: {} ({})", remote_, peer_.reason, peer_.detail);
    terminate(std::nullopt, UpstreamEnd::kNoWill, peer_.reason);
    co_return;
  }
  device_ = peer_.device;
  state_ = State::kAwaitConnect;
  last_device_rx_ = gw_.clock().steadyNow();
  asio::co_spawn(gw_.io(), writer(Side::kDevice), asio::detached);
  co_await deviceReadLoop();
}

asio::awaitable<void> MqttSession::timers() {
  auto self = shared_from_this();
  const MqttLimits& limits = gw_.config().limits;
  timer_.expires_after(limits.connect_timeout);
  co_await timer_.async_wait(kNoThrow);
  if (state_ >= State::kClosing) co_return;
  if (state_ != State::kConnected) {
    terminate(std::nullopt, UpstreamEnd::kNoWill, std::string(er::kConnectTimeout));
    co_return;
  }
  // Connected: keep-alive (MQTT 5.0 §3.1.2.10: 1.5 x), upstream pings and the
  // certificate's expiry (checked here too because a resumed TLS session
  // may outlive it).
  const auto keepalive_limit = std::chrono::milliseconds(keep_alive_ * 1500);
  for (;;) {
    auto now = gw_.clock().steadyNow();
    auto until_expiry = std::chrono::duration_cast<std::chrono::milliseconds>(peer_.not_after - gw_.clock().now());
    if (until_expiry <= std::chrono::milliseconds(0)) {
      terminate(rc::kNotAuthorized, UpstreamEnd::kNoWill, std::string(er::kCertExpired));
      co_return;
    }
    if (now - last_device_rx_ >= keepalive_limit) {
      terminate(rc::kKeepAliveTimeout, UpstreamEnd::kWillIfPermitted, std::string(er::kKeepaliveTimeout));
      co_return;
    }
    if (now - last_upstream_tx_ >= kUpstreamPingAfter) {
      sendUpstream(mqtt::Pingreq{});
      last_upstream_tx_ = now;
    }
    // A decision in effect reached its deadline (a time window's boundary,
    // an age threshold): re-evaluate as after a policy change.
    if (next_deadline_ && gw_.clock().now() >= *next_deadline_) {
      next_deadline_.reset();
      decision_cache_.clear();
      reevaluate(nullptr);
      if (state_ >= State::kClosing) co_return;
    }
    auto until_deadline = std::chrono::milliseconds(5000);
    if (next_deadline_) {
      until_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(*next_deadline_ - gw_.clock().now()) +
                       std::chrono::milliseconds(1);
    }
    auto tick = std::min<std::chrono::milliseconds>(
        {std::chrono::milliseconds(5000), until_expiry, until_deadline,
         std::chrono::duration_cast<std::chrono::milliseconds>(keepalive_limit - (now - last_device_rx_)) +
             std::chrono::milliseconds(10)});
    timer_.expires_after(tick);
    co_await timer_.async_wait(kNoThrow);
    if (state_ >= State::kClosing) co_return;
  }
}

void MqttSession::refuseConnect(uint8_t v311_code, uint8_t v5_code, std::string_view reason) {
  mqtt::Connack ack;
  ack.reason_code = version_ == ProtocolVersion::k5 ? v5_code : v311_code;
  sendDevice(ack);
  terminate(std::nullopt, UpstreamEnd::kNoWill, std::string(reason));
}

asio::awaitable<void> MqttSession::handleConnect(mqtt::Frame frame) {
  auto self = shared_from_this();
  const GatewayConfig& cfg = gw_.config();
  const MqttLimits& limits = cfg.limits;
  if ((frame.first_byte >> 4) != static_cast<uint8_t>(mqtt::PacketType::kConnect)) {
    // MQTT 5.0 §3.1: the first packet must be CONNECT; nothing may be sent before CONNACK.
    terminate(std::nullopt, UpstreamEnd::kNoWill, std::string(er::kProtocolError));
    co_return;
  }
  auto version = mqtt::peekConnectVersion(frame.body);
  if (!version) {
    if (version.error().reason_code == rc::kUnsupportedProtocolVersion) {
      // MQTT 3.1.1 §3.2.2.3: return code 1 in the format the client understands.
      mqtt::Connack ack;
      ack.reason_code = rc::kV311UnacceptableProtocolVersion;
      enqueue(Side::kDevice, mqtt::encode(ack, ProtocolVersion::k311));
    }
    terminate(std::nullopt, UpstreamEnd::kNoWill, std::string(er::kProtocolError));
    co_return;
  }
  version_ = version.value();
  auto decoded = mqtt::decodeConnect(frame.first_byte, frame.body);
  if (!decoded) {
    if (version_ == ProtocolVersion::k5) {
      mqtt::Connack ack;
      ack.reason_code = decoded.error().reason_code;
      sendDevice(ack);
    }
    terminate(std::nullopt, UpstreamEnd::kNoWill, std::string(eventReasonForDecodeError(decoded.error().reason_code)));
    co_return;
  }
  connect_ = std::move(decoded).value();
  // The gateway authenticates by certificate only: credentials never travel on.
  connect_.username.reset();
  connect_.password.reset();
  connect_.properties.authentication_method.reset();
  connect_.properties.authentication_data.reset();

  bool assigned_id = false;
  if (connect_.client_id.empty()) {
    if (version_ == ProtocolVersion::k311 && !connect_.clean_start) {
      recordEvent(monitor::event_type::kDeny, er::kClientIdMismatch, "mqtt:connect", "", "deny", "");
      refuseConnect(rc::kV311IdentifierRejected, rc::kClientIdentifierNotValid, er::kClientIdMismatch);
      co_return;
    }
    assigned_id = version_ == ProtocolVersion::k5;
  } else if (connect_.client_id != device_) {
    recordEvent(monitor::event_type::kDeny, er::kClientIdMismatch, "mqtt:connect", connect_.client_id, "deny", "");
    refuseConnect(rc::kV311IdentifierRejected, rc::kClientIdentifierNotValid, er::kClientIdMismatch);
    co_return;
  }
  const policy::Decision& d = authorize("mqtt:connect", device_);
  if (!d.permit) {
    recordDeny("mqtt:connect", device_, d);
    refuseConnect(rc::kV311NotAuthorized, rc::kNotAuthorized, d.reason);
    co_return;
  }
  if (connect_.will) {
    const mqtt::Will& will = *connect_.will;
    if (!policy::validateTopicName(will.topic, limits.max_topic_length, limits.max_topic_levels).isOk()) {
      refuseConnect(rc::kV311NotAuthorized, rc::kTopicNameInvalid, er::kWillDenied);
      co_return;
    }
    std::string_view action;
    const policy::Decision& wd = authorizePublish(will.topic, will.retain, action);
    if (!wd.permit) {
      recordDeny(action, will.topic, wd, er::kWillDenied);
      refuseConnect(rc::kV311NotAuthorized, rc::kNotAuthorized, er::kWillDenied);
      co_return;
    }
  }

  // Keep-alive: 0 or above the maximum becomes the maximum (MQTT 5: Server
  // Keep Alive; 3.1.1 cannot be told, so it is simply enforced).
  bool server_keep_alive = connect_.keep_alive == 0 || connect_.keep_alive > limits.keepalive_max;
  keep_alive_ = server_keep_alive ? limits.keepalive_max : connect_.keep_alive;
  if (version_ == ProtocolVersion::k5) {
    session_expiry_ = std::min<uint32_t>(connect_.properties.session_expiry_interval.value_or(0),
                                         static_cast<uint32_t>(limits.session_expiry_max.count()));
    device_max_packet_ = connect_.properties.maximum_packet_size.value_or(0);
  } else {
    session_expiry_ = connect_.clean_start ? 0 : static_cast<uint32_t>(limits.session_expiry_max.count());
  }

  state_ = State::kConnecting;
  // A new connection cancels a delayed will at the broker by itself
  // (MQTT 5.0 §3.1.3.2.2); one that the gateway is cancelling must finish
  // first, or its upstream connection would take over this one's.
  if (auto parked = gw_.registry().takeWill(device_)) {
    auto settled = std::make_shared<OneShot>(gw_.io());
    parked->whenWillSettled([settled] { settled->fire(); });
    co_await settled->wait();  // the cancellation's upstream connection has its own timeout
  }
  if (state_ >= State::kClosing) co_return;
  // Session takeover (MQTT 5.0 §3.1.4-3): the old session ends first, so the
  // broker never sees two connections of one client id. As with Mosquitto
  // alone, the old connection's will goes out (after its Will Delay, which
  // the new connection cancels by resuming the session), if still permitted.
  auto old = gw_.registry().bindDevice(device_, self);
  if (old && old.get() != this) {
    auto closed = std::make_shared<OneShot>(gw_.io());
    old->whenClosed([closed] { closed->fire(); });
    if (old->state_ < State::kClosing) {
      old->recordEvent(monitor::event_type::kSessionTakeover, er::kSessionTakeover);
      old->terminate(rc::kSessionTakenOver, UpstreamEnd::kWillIfPermitted, std::string(er::kSessionTakeover));
    }
    co_await closed->wait(kCloseGrace + std::chrono::milliseconds(500));
    old.reset();
    // The old connection may have parked a delayed will: this connection
    // resumes the session, which cancels it at the broker.
    gw_.registry().takeWill(device_);
  }
  if (state_ >= State::kClosing) co_return;

  mqtt::Connect up;
  up.version = ProtocolVersion::k5;
  up.clean_start = connect_.clean_start;
  up.keep_alive = kUpstreamKeepAlive;
  up.client_id = device_;
  if (session_expiry_ > 0) up.properties.session_expiry_interval = session_expiry_;
  uint32_t max_to_device = limits.max_packet_size;
  if (device_max_packet_ > 0) max_to_device = std::min(max_to_device, device_max_packet_);
  up.properties.maximum_packet_size = max_to_device;
  if (version_ == ProtocolVersion::k5) {
    up.properties.receive_maximum = connect_.properties.receive_maximum;
    up.properties.request_problem_information = connect_.properties.request_problem_information;
    up.properties.request_response_information = connect_.properties.request_response_information;
    up.properties.user_properties = connect_.properties.user_properties;
  }
  if (connect_.will) {
    up.will = *connect_.will;
    will_sent_upstream_ = true;
  }
  auto link = co_await connectUpstream(gw_, up);
  if (state_ >= State::kClosing) {
    if (link) {
      // Cut while connecting: leave the broker without a will.
      std::string bytes = mqtt::encode(mqtt::Disconnect{}, ProtocolVersion::k5);
      auto& stream = *(*link)->stream;
      co_await stream.writeAll(asBytes(bytes));
      stream.close();
    }
    co_return;
  }
  if (!link) {
    spdlog::warn("MQTT session of {}: {}", device_, link.status().message());
    gw_.registry().unbindDevice(device_, this);
    recordEvent(monitor::event_type::kDisconnect, er::kUpstreamUnavailable);
    refuseConnect(rc::kV311ServerUnavailable, rc::kServerUnavailable, er::kUpstreamUnavailable);
    co_return;
  }
  up_ = std::move(link).value();
  state_ = State::kConnected;
  was_connected_ = true;
  last_upstream_tx_ = gw_.clock().steadyNow();
  timer_.cancel();

  const mqtt::Properties& bp = up_->connack.properties;
  upstream_max_packet_ = bp.maximum_packet_size.value_or(0);
  uint32_t max_from_device = limits.max_packet_size;
  if (upstream_max_packet_ > 0) max_from_device = std::min(max_from_device, upstream_max_packet_);
  dev_decoder_.setMaxPacketSize(max_from_device);

  // MQTT 3.1.1 has no Receive Maximum; the same bound applies.
  receive_max_ = std::min<uint16_t>(limits.receive_maximum, bp.receive_maximum.value_or(65535));
  mqtt::Connack ack;
  ack.session_present = up_->connack.session_present;
  ack.reason_code = rc::kSuccess;
  if (version_ == ProtocolVersion::k5) {
    ack.properties.topic_alias_maximum = limits.topic_alias_max;
    ack.properties.maximum_packet_size = max_from_device;
    ack.properties.receive_maximum = receive_max_;
    ack.properties.shared_subscription_available = 1;
    ack.properties.wildcard_subscription_available = 1;
    ack.properties.subscription_identifier_available = bp.subscription_identifier_available;
    ack.properties.retain_available = bp.retain_available;
    ack.properties.maximum_qos = bp.maximum_qos;
    ack.properties.response_information = bp.response_information;
    if (assigned_id) ack.properties.assigned_client_identifier = device_;
    if (server_keep_alive) ack.properties.server_keep_alive = keep_alive_;
    if (connect_.properties.session_expiry_interval.value_or(0) != session_expiry_) {
      ack.properties.session_expiry_interval = session_expiry_;
    }
  }
  sendDevice(ack);
  {
    monitor::Event e;
    e.type = monitor::event_type::kConnect;
    e.principal = peer_.spiffe_id;
    e.actor = peer_.spiffe_id;
    e.action = "mqtt:connect";
    e.resource = device_;
    e.decision = "permit";
    e.rule = d.rule;
    e.reason = d.reason;
    e.detail = nlohmann::json{{"remote", remote_},
                              {"protocol", version_ == ProtocolVersion::k5 ? "5.0" : "3.1.1"},
                              {"serial", peer_.serial_hex},
                              {"keep_alive", keep_alive_},
                              {"clean_start", connect_.clean_start}};
    gw_.record(std::move(e));
  }
  spdlog::debug("MQTT session of {} from {} connected (MQTT {})", device_, remote_,
                version_ == ProtocolVersion::k5 ? "5" : "3.1.1");

  // A resumed broker session keeps the subscriptions of the last connection.
  if (ack.session_present) {
    auto remembered = gw_.registry().takeSession(device_);
    if (remembered) {
      filters_ = std::move(remembered->filters);
      staged_qos2_ = std::move(remembered->staged);
    } else {
      filters_known_ = false;  // e.g. the gateway restarted: see filterActiveFor
    }
  } else {
    gw_.registry().forgetSession(device_);
  }
  asio::co_spawn(gw_.io(), writer(Side::kUpstream), asio::detached);
  asio::co_spawn(gw_.io(), upstreamReadLoop(), asio::detached);
  // The snapshot may have changed while the upstream connection was opened:
  // re-check the identity, CONNECT and the remembered filters against it.
  reevaluate(nullptr);
}

// ---------------------------------------------------------------------------
// Device -> gateway

asio::awaitable<void> MqttSession::deviceReadLoop() {
  auto self = shared_from_this();
  const size_t max_buffered = gw_.config().limits.max_buffered;
  for (;;) {
    while (state_ < State::kClosing && up_out_.bytes > max_buffered) {
      dev_read_gate_.expires_at(kForever);
      co_await dev_read_gate_.async_wait(kNoThrow);
    }
    if (state_ >= State::kClosing) co_return;
    const std::span<uint8_t> buf = gw_.readScratch();
    auto [ec, n] = co_await dev_.readSome(buf);
    if (state_ >= State::kClosing) co_return;
    if (ec) {
      terminate(std::nullopt, UpstreamEnd::kWillIfPermitted, std::string(er::kConnectionLost));
      co_return;
    }
    last_device_rx_ = gw_.clock().steadyNow();
    dev_decoder_.append(std::span<const uint8_t>(buf.data(), n));
    for (;;) {
      auto next = dev_decoder_.nextView();
      if (!next) {
        if (state_ == State::kAwaitConnect && next.error().reason_code == rc::kPacketTooLarge) {
          refuseOversizedConnect();
          co_return;
        }
        protocolViolation(next.error().reason_code, eventReasonForDecodeError(next.error().reason_code),
                          next.error().message);
        co_return;
      }
      if (!next.value().has_value()) break;
      const mqtt::FrameView view = *next.value();
      if (state_ == State::kAwaitConnect) {
        // CONNECT outlives the view (handleConnect waits for the upstream).
        mqtt::Frame frame{view.first_byte, {view.body.begin(), view.body.end()}, view.size};
        co_await handleConnect(std::move(frame));
      } else {
        handleDeviceFrame(view);
      }
      if (state_ >= State::kClosing) co_return;
    }
  }
}

void MqttSession::refuseOversizedConnect() {
  // The CONNECT is refused from its Remaining Length, before its body is
  // read. An MQTT 5 client is told why (CONNACK 0x95, MQTT 5.0 §3.2.2.2) if
  // the bytes that arrived show its Protocol Level; 3.1.1 has no code for it.
  auto refused = dev_decoder_.refusedFrame();
  if (refused && refused->first_byte == 0x10) {
    auto version = mqtt::peekConnectVersion(refused->body);
    if (version && version.value() == ProtocolVersion::k5) {
      mqtt::Connack ack;
      ack.reason_code = rc::kPacketTooLarge;
      enqueue(Side::kDevice, mqtt::encode(ack, ProtocolVersion::k5));
    }
  }
  spdlog::info("MQTT session of {} from {}: CONNECT larger than {} bytes", device_, remote_,
               dev_decoder_.maxPacketSize());
  terminate(std::nullopt, UpstreamEnd::kNoWill, std::string(er::kPacketTooLarge));
}

void MqttSession::protocolViolation(uint8_t reason_code, std::string_view reason, std::string message) {
  spdlog::info("MQTT session of {} from {}: {} (0x{:02x})", device_, remote_, message, reason_code);
  // MQTT 5.0 §4.13: DISCONNECT with the reason code, then close. A will is
  // published after a protocol error, if the policy still permits it.
  terminate(reason_code, UpstreamEnd::kWillIfPermitted, std::string(reason));
}

void MqttSession::handleDeviceFrame(const mqtt::FrameView& frame) {
  auto decoded = mqtt::decodePacket(frame.first_byte, frame.body, version_);
  if (!decoded) {
    protocolViolation(decoded.error().reason_code, eventReasonForDecodeError(decoded.error().reason_code),
                      decoded.error().message);
    return;
  }
  mqtt::Packet& packet = decoded.value();
  if (auto* p = std::get_if<mqtt::Publish>(&packet)) {
    handleDevicePublish(*p);
  } else if (auto* a = std::get_if<mqtt::Puback>(&packet)) {
    sendUpstream(*a);  // ack of a broker delivery: server-originated ids pass through
  } else if (auto* r = std::get_if<mqtt::Pubrec>(&packet)) {
    sendUpstream(*r);
  } else if (auto* c = std::get_if<mqtt::Pubcomp>(&packet)) {
    sendUpstream(*c);
  } else if (auto* rel = std::get_if<mqtt::Pubrel>(&packet)) {
    handleDevicePubrel(*rel);
  } else if (auto* s = std::get_if<mqtt::Subscribe>(&packet)) {
    handleDeviceSubscribe(*s);
  } else if (auto* u = std::get_if<mqtt::Unsubscribe>(&packet)) {
    handleDeviceUnsubscribe(*u);
  } else if (std::holds_alternative<mqtt::Pingreq>(packet)) {
    sendDevice(mqtt::Pingresp{});
  } else if (auto* dc = std::get_if<mqtt::Disconnect>(&packet)) {
    handleDeviceDisconnect(*dc);
  } else {
    // A second CONNECT, AUTH without an authentication method, or a
    // server-to-client packet.
    protocolViolation(rc::kProtocolError, er::kProtocolError,
                      fmt::format("unexpected {} from the client", mqtt::packetTypeName(mqtt::packetType(packet))));
  }
}

void MqttSession::handleDevicePublish(mqtt::Publish& p) {
  const MqttLimits& limits = gw_.config().limits;
  if (!p.properties.subscription_identifiers.empty()) {
    // MQTT 5.0 §3.3.4: a client PUBLISH must not carry Subscription Identifiers.
    protocolViolation(rc::kProtocolError, er::kProtocolError, "Subscription Identifier in a client PUBLISH");
    return;
  }
  // Topic aliases end at the gateway (MQTT 5.0 §3.3.2.3.4).
  if (p.properties.topic_alias) {
    uint16_t alias = *p.properties.topic_alias;
    if (alias == 0 || alias > limits.topic_alias_max) {
      protocolViolation(rc::kTopicAliasInvalid, er::kTopicAliasInvalid, fmt::format("topic alias {} out of range", alias));
      return;
    }
    if (!p.topic.empty()) {
      aliases_[alias] = p.topic;  // recorded even if this PUBLISH is denied
    } else {
      auto it = aliases_.find(alias);
      if (it == aliases_.end()) {
        protocolViolation(rc::kProtocolError, er::kProtocolError, fmt::format("unknown topic alias {}", alias));
        return;
      }
      p.topic = it->second;
    }
    p.properties.topic_alias.reset();
  }
  if (p.topic.empty()) {
    protocolViolation(rc::kProtocolError, er::kProtocolError, "PUBLISH without a topic");
    return;
  }
  if (!policy::validateTopicName(p.topic, limits.max_topic_length, limits.max_topic_levels).isOk()) {
    protocolViolation(rc::kTopicNameInvalid, "topic_invalid", "invalid topic name");
    return;
  }
  std::string_view action;
  const policy::Decision& d = authorizePublish(p.topic, p.retain, action);
  if (!d.permit) {
    recordDeny(action, p.topic, d);
    if (p.qos == 1) {
      mqtt::Puback ack;
      ack.packet_id = p.packet_id;
      ack.reason_code = rc::kNotAuthorized;
      answerPublish(p.packet_id, ack);
    } else if (p.qos == 2) {
      mqtt::Pubrec rec;
      rec.packet_id = p.packet_id;
      rec.reason_code = rc::kNotAuthorized;
      answerPublish(p.packet_id, rec);
      // MQTT 5: a PUBREC >= 0x80 ends the exchange; 3.1.1 continues with PUBREL.
      if (version_ == ProtocolVersion::k311) denied_qos2_from_device_.insert(p.packet_id);
    }
    return;
  }
  if (p.qos == 2) {
    if (staged_qos2_.count(p.packet_id) == 0 && staged_qos2_.size() >= receive_max_) {
      // MQTT 5.0 §3.3.4: more QoS 2 PUBLISHes in flight than Receive Maximum.
      protocolViolation(rc::kReceiveMaximumExceeded, er::kProtocolError,
                        fmt::format("more than {} QoS 2 PUBLISHes awaiting PUBCOMP", receive_max_));
      return;
    }
    staged_qos2_[p.packet_id] = StagedPublish{p.topic, p.retain};
  }
  if (p.qos > 0) {
    awaitAnswer(p.packet_id);
    p.packet_id = mapDeviceId(p.packet_id);
  }
  sendUpstream(p);
}

void MqttSession::answerPublish(uint16_t device_id, mqtt::Packet answer) {
  if (ack_order_.empty()) {
    sendDevice(answer);
    return;
  }
  ack_order_.push_back(AckSlot{device_id, std::move(answer)});
}

void MqttSession::awaitAnswer(uint16_t device_id) {
  // A PUBLISH sent again (DUP) while its answer is awaited keeps its place.
  for (const AckSlot& slot : ack_order_) {
    if (slot.device_id == device_id && !slot.answer) return;
  }
  ack_order_.push_back(AckSlot{device_id, std::nullopt});
}

void MqttSession::brokerAnswered(uint16_t device_id, mqtt::Packet answer) {
  auto slot = std::find_if(ack_order_.begin(), ack_order_.end(),
                           [&](const AckSlot& s) { return s.device_id == device_id && !s.answer; });
  if (slot == ack_order_.end()) {
    sendDevice(answer);  // e.g. a PUBLISH of an earlier connection of this session
    return;
  }
  slot->answer = std::move(answer);
  while (!ack_order_.empty() && ack_order_.front().answer) {
    sendDevice(*ack_order_.front().answer);
    ack_order_.pop_front();
  }
}

void MqttSession::handleDevicePubrel(const mqtt::Pubrel& rel) {
  mqtt::Pubcomp comp;
  comp.packet_id = rel.packet_id;
  if (denied_qos2_from_device_.erase(rel.packet_id) != 0) {
    // The gateway answered this denied QoS 2 PUBLISH itself (MQTT 3.1.1).
    sendDevice(comp);
    return;
  }
  auto staged = staged_qos2_.find(rel.packet_id);
  if (staged == staged_qos2_.end()) {
    // A PUBREL for a PUBLISH the gateway never saw (it restarted in between,
    // or the device invents one): the topic cannot be checked, so the
    // message is not released.
    spdlog::info("MQTT session of {}: PUBREL {} for an unknown QoS 2 PUBLISH: not released", device_, rel.packet_id);
    comp.reason_code = rc::kPacketIdentifierNotFound;
    sendDevice(comp);
    return;
  }
  // The broker hands the message to subscribers only now: what the device
  // may publish is decided now, as for a new PUBLISH (a cut in between
  // stops it).
  std::string_view action;
  const policy::Decision& d = authorizePublish(staged->second.topic, staged->second.retain, action);
  if (!d.permit) {
    recordDeny(action, staged->second.topic, d, {}, /*own=*/false);
    staged_qos2_.erase(staged);
    // Not released: the broker drops it when the id is used again or the
    // session ends. The device learns that nothing was delivered.
    auto up = dev_to_up_.find(rel.packet_id);
    if (up != dev_to_up_.end()) releaseUpstreamId(up->second);
    comp.reason_code = rc::kPacketIdentifierNotFound;
    sendDevice(comp);
    return;
  }
  auto it = dev_to_up_.find(rel.packet_id);
  mqtt::Pubrel out = rel;
  out.packet_id = it != dev_to_up_.end() ? it->second : mapDeviceId(rel.packet_id);
  sendUpstream(out);
}

void MqttSession::handleDeviceSubscribe(mqtt::Subscribe& s) {
  const MqttLimits& limits = gw_.config().limits;
  const bool v5 = version_ == ProtocolVersion::k5;
  const uint8_t denied = v5 ? rc::kNotAuthorized : rc::kV311SubackFailure;
  PendingSubscribe pending;
  pending.device_id = s.packet_id;
  pending.codes.assign(s.subscriptions.size(), rc::kSuccess);
  pending.subs = s.subscriptions;
  if (!s.properties.subscription_identifiers.empty()) pending.subscription_id = s.properties.subscription_identifiers[0];
  mqtt::Subscribe up;
  up.properties = s.properties;
  const bool too_many = s.subscriptions.size() > limits.max_filters_per_subscribe;
  // Filters of SUBSCRIBEs still waiting for their SUBACK count too: a device
  // that pipelines SUBSCRIBEs gets no more than one that waits.
  size_t session_count = filters_.size();
  for (const auto& [_, pending_sub] : pending_subs_) {
    for (size_t i : pending_sub.forwarded) {
      const std::string& f = pending_sub.subs[i].filter;
      if (std::none_of(filters_.begin(), filters_.end(), [&](const SessionFilter& x) { return x.sub.filter == f; })) {
        ++session_count;
      }
    }
  }
  for (size_t i = 0; i < s.subscriptions.size(); ++i) {
    const mqtt::Subscription& sub = s.subscriptions[i];
    if (too_many) {
      pending.codes[i] = v5 ? rc::kQuotaExceeded : rc::kV311SubackFailure;
      recordDeny("mqtt:subscribe", sub.filter, policy::Decision{false, "", "quota_exceeded"}, "quota_exceeded");
      continue;
    }
    bool valid = policy::validateTopicFilter(sub.filter, limits.max_topic_length, limits.max_topic_levels).isOk();
    if (!valid) {
      if (!v5) {
        // MQTT 3.1.1 has no reason code for an invalid filter: close.
        protocolViolation(rc::kTopicFilterInvalid, er::kInvalidFilter, "invalid topic filter");
        return;
      }
      pending.codes[i] = rc::kTopicFilterInvalid;
      recordDeny("mqtt:subscribe", sub.filter, policy::Decision{false, "", std::string(er::kInvalidFilter)});
      continue;
    }
    auto share = policy::parseSharedSubscription(sub.filter);
    if (!share) {
      pending.codes[i] = v5 ? rc::kTopicFilterInvalid : rc::kV311SubackFailure;
      recordDeny("mqtt:subscribe", sub.filter, policy::Decision{false, "", std::string(er::kInvalidFilter)});
      continue;
    }
    if (share->has_value() && sub.no_local && v5) {
      // MQTT 5.0 §3.8.3.1: No Local on a shared subscription is a protocol error.
      protocolViolation(rc::kProtocolError, er::kProtocolError, "No Local on a shared subscription");
      return;
    }
    const policy::Decision& d = authorize("mqtt:subscribe", sub.filter);
    if (!d.permit) {
      pending.codes[i] = denied;
      recordDeny("mqtt:subscribe", sub.filter, d);
      continue;
    }
    bool known = std::any_of(filters_.begin(), filters_.end(),
                             [&](const SessionFilter& f) { return f.sub.filter == sub.filter; });
    if (!known) {
      if (session_count >= limits.max_filters_per_session) {
        pending.codes[i] = v5 ? rc::kQuotaExceeded : rc::kV311SubackFailure;
        recordDeny("mqtt:subscribe", sub.filter, policy::Decision{false, "", "quota_exceeded"}, "quota_exceeded");
        continue;
      }
      ++session_count;
    }
    pending.forwarded.push_back(i);
    up.subscriptions.push_back(sub);
  }
  if (up.subscriptions.empty()) {
    mqtt::Suback ack;
    ack.packet_id = s.packet_id;
    ack.reason_codes = std::move(pending.codes);
    sendDevice(ack);
    return;
  }
  up.packet_id = mapDeviceId(s.packet_id);
  pending_subs_[up.packet_id] = std::move(pending);
  sendUpstream(up);
}

void MqttSession::handleDeviceUnsubscribe(mqtt::Unsubscribe& u) {
  const MqttLimits& limits = gw_.config().limits;
  const bool v5 = version_ == ProtocolVersion::k5;
  PendingSubscribe pending;
  pending.device_id = u.packet_id;
  pending.codes.assign(u.filters.size(), rc::kSuccess);
  mqtt::Unsubscribe up;
  up.properties = u.properties;
  for (size_t i = 0; i < u.filters.size(); ++i) {
    const std::string& f = u.filters[i];
    if (!policy::validateTopicFilter(f, limits.max_topic_length, limits.max_topic_levels).isOk()) {
      if (!v5) {
        protocolViolation(rc::kTopicFilterInvalid, er::kInvalidFilter, "invalid topic filter");
        return;
      }
      pending.codes[i] = rc::kTopicFilterInvalid;
      continue;
    }
    auto it = std::find_if(filters_.begin(), filters_.end(), [&](const SessionFilter& s) { return s.sub.filter == f; });
    if (it != filters_.end()) {
      bool suspended = it->suspended;
      filters_.erase(it);
      if (suspended) continue;  // already unsubscribed upstream; the device sees success
    }
    pending.forwarded.push_back(i);
    up.filters.push_back(f);
  }
  if (up.filters.empty()) {
    mqtt::Unsuback ack;
    ack.packet_id = u.packet_id;
    if (v5) ack.reason_codes = std::move(pending.codes);
    sendDevice(ack);
    return;
  }
  up.packet_id = mapDeviceId(u.packet_id);
  pending_unsubs_[up.packet_id] = std::move(pending);
  sendUpstream(up);
}

void MqttSession::handleDeviceDisconnect(mqtt::Disconnect& d) {
  if (version_ == ProtocolVersion::k5 && d.reason_code != rc::kSuccess) {
    // Any reason but 0x00 keeps the will (MQTT 5.0 §3.14.4), if still permitted.
    terminate(std::nullopt, UpstreamEnd::kWillIfPermitted, std::string(er::kClientDisconnect));
    return;
  }
  mqtt::Disconnect out;
  out.reason_code = rc::kSuccess;
  if (version_ == ProtocolVersion::k5) {
    if (d.properties.session_expiry_interval) {
      uint32_t requested = *d.properties.session_expiry_interval;
      if (session_expiry_ == 0 && requested != 0) {
        // MQTT 5.0 §3.14.2.2.2.
        protocolViolation(rc::kProtocolError, er::kProtocolError, "Session Expiry set on DISCONNECT after 0");
        return;
      }
      session_expiry_ = std::min<uint32_t>(requested, static_cast<uint32_t>(gw_.config().limits.session_expiry_max.count()));
      out.properties.session_expiry_interval = session_expiry_;
    }
    out.properties.user_properties = d.properties.user_properties;
    out.properties.reason_string = d.properties.reason_string;
  }
  terminate(std::nullopt, UpstreamEnd::kForward, std::string(er::kClientDisconnect), out);
}

// ---------------------------------------------------------------------------
// Broker -> gateway

asio::awaitable<void> MqttSession::upstreamReadLoop() {
  auto self = shared_from_this();
  const size_t max_buffered = gw_.config().limits.max_buffered;
  for (;;) {
    for (;;) {
      auto next = up_->decoder.nextView();
      if (!next) {
        spdlog::warn("MQTT session of {}: bad packet from the broker: {}", device_, next.error().message);
        terminate(rc::kUnspecifiedError, UpstreamEnd::kNoWill, std::string(er::kUpstreamUnavailable));
        co_return;
      }
      if (!next.value().has_value()) break;
      handleUpstreamFrame(*next.value());
      if (state_ >= State::kClosing) co_return;
    }
    while (state_ < State::kClosing && dev_out_.bytes > max_buffered) {
      up_read_gate_.expires_at(kForever);
      co_await up_read_gate_.async_wait(kNoThrow);
    }
    if (state_ >= State::kClosing) co_return;
    const std::span<uint8_t> buf = gw_.readScratch();
    auto [ec, n] = co_await up_->stream->readSome(buf);
    if (state_ >= State::kClosing) co_return;
    if (ec) {
      spdlog::info("MQTT session of {}: upstream connection lost: {}", device_, ec.message());
      terminate(rc::kUnspecifiedError, UpstreamEnd::kNoWill, std::string(er::kUpstreamUnavailable));
      co_return;
    }
    up_->decoder.append(std::span<const uint8_t>(buf.data(), n));
  }
}

void MqttSession::handleUpstreamFrame(const mqtt::FrameView& frame) {
  auto decoded = mqtt::decodePacket(frame.first_byte, frame.body, ProtocolVersion::k5);
  if (!decoded) {
    spdlog::warn("MQTT session of {}: bad packet from the broker: {}", device_, decoded.error().message);
    terminate(rc::kUnspecifiedError, UpstreamEnd::kNoWill, std::string(er::kUpstreamUnavailable));
    return;
  }
  mqtt::Packet& packet = decoded.value();
  if (auto* p = std::get_if<mqtt::Publish>(&packet)) {
    handleBrokerPublish(*p);
  } else if (auto* a = std::get_if<mqtt::Puback>(&packet)) {
    auto it = up_ids_.find(a->packet_id);
    if (it != up_ids_.end() && it->second.gateway) return;
    uint16_t id = a->packet_id;
    a->packet_id = it != up_ids_.end() ? it->second.device_id : id;
    releaseUpstreamId(id);
    brokerAnswered(a->packet_id, *a);
  } else if (auto* r = std::get_if<mqtt::Pubrec>(&packet)) {
    auto it = up_ids_.find(r->packet_id);
    if (it != up_ids_.end() && it->second.gateway) return;
    uint16_t id = r->packet_id;
    r->packet_id = it != up_ids_.end() ? it->second.device_id : id;
    if (r->reason_code >= 0x80) {
      staged_qos2_.erase(r->packet_id);
      releaseUpstreamId(id);
    }
    brokerAnswered(r->packet_id, *r);
  } else if (auto* c = std::get_if<mqtt::Pubcomp>(&packet)) {
    auto it = up_ids_.find(c->packet_id);
    if (it != up_ids_.end() && it->second.gateway) return;
    uint16_t id = c->packet_id;
    c->packet_id = it != up_ids_.end() ? it->second.device_id : id;
    staged_qos2_.erase(c->packet_id);
    releaseUpstreamId(id);
    sendDevice(*c);
  } else if (auto* rel = std::get_if<mqtt::Pubrel>(&packet)) {
    if (dropped_qos2_from_broker_.erase(rel->packet_id) != 0) {
      mqtt::Pubcomp comp;
      comp.packet_id = rel->packet_id;
      sendUpstream(comp);
      return;
    }
    sendDevice(*rel);
  } else if (auto* s = std::get_if<mqtt::Suback>(&packet)) {
    handleUpstreamSuback(*s);
  } else if (auto* u = std::get_if<mqtt::Unsuback>(&packet)) {
    handleUpstreamUnsuback(*u);
  } else if (std::holds_alternative<mqtt::Pingresp>(packet)) {
    // The gateway's own keep-alive.
  } else if (auto* dc = std::get_if<mqtt::Disconnect>(&packet)) {
    spdlog::info("MQTT session of {}: the broker disconnected with 0x{:02x}", device_, dc->reason_code);
    uint8_t code = dc->reason_code == rc::kSuccess ? rc::kUnspecifiedError : dc->reason_code;
    terminate(code, UpstreamEnd::kNoWill, std::string(er::kUpstreamUnavailable));
  } else {
    spdlog::warn("MQTT session of {}: unexpected {} from the broker", device_,
                 mqtt::packetTypeName(mqtt::packetType(packet)));
    terminate(rc::kUnspecifiedError, UpstreamEnd::kNoWill, std::string(er::kUpstreamUnavailable));
  }
}

bool MqttSession::filterActiveFor(std::string_view topic) {
  for (const SessionFilter& f : filters_) {
    if (!f.suspended && policy::topicMatchesFilter(filterForMatching(f.sub.filter), topic)) return true;
  }
  if (filters_known_) return false;
  // A resumed broker session whose earlier filters the gateway never saw (it
  // restarted since): it cannot suspend them, so it delivers only what a
  // filter the device may subscribe to now could have matched. A filter that
  // matches |topic| and is a subset of a permit (overlapping no forbid)
  // exists only if subscribing to |topic| itself is permitted.
  return authorize("mqtt:subscribe", topic).permit;
}

void MqttSession::handleBrokerPublish(mqtt::Publish& p) {
  p.properties.topic_alias.reset();  // never requested upstream (Topic Alias Maximum 0)
  bool deliver = !p.topic.empty() && filterActiveFor(p.topic);
  if (deliver) {
    const policy::Decision& d = authorize("mqtt:receive", p.topic);
    if (!d.permit) {
      deliver = false;
      recordDeny("mqtt:receive", p.topic, d, {}, /*own=*/false);  // a delivery, not the device's request
    }
  }
  std::string bytes;
  if (deliver) {
    bytes = mqtt::encode(p, version_);
    // MQTT 5.0 §3.1.2.11.4: too large for the client: discard as if delivered.
    if (bytes.empty() || (device_max_packet_ > 0 && bytes.size() > device_max_packet_)) deliver = false;
  }
  if (!deliver) {
    acknowledgeUndelivered(p);
    return;
  }
  enqueue(Side::kDevice, std::move(bytes));
}

void MqttSession::acknowledgeUndelivered(const mqtt::Publish& p) {
  if (p.qos == 1) {
    mqtt::Puback ack;
    ack.packet_id = p.packet_id;
    sendUpstream(ack);
  } else if (p.qos == 2) {
    mqtt::Pubrec rec;
    rec.packet_id = p.packet_id;
    sendUpstream(rec);
    dropped_qos2_from_broker_.insert(p.packet_id);
  }
}

void MqttSession::completeGatewayOp(uint16_t upstream_id, const std::vector<uint8_t>& codes) {
  std::function<void(const std::vector<uint8_t>&)> continuation;
  if (auto op = gateway_ops_.find(upstream_id); op != gateway_ops_.end()) {
    continuation = std::move(op->second);
    gateway_ops_.erase(op);
  }
  releaseUpstreamId(upstream_id);
  if (continuation) continuation(codes);
}

std::optional<MqttSession::PendingSubscribe> MqttSession::takeAcknowledged(
    std::unordered_map<uint16_t, PendingSubscribe>& pending, uint16_t upstream_id,
    const std::vector<uint8_t>& codes) {
  auto id_it = up_ids_.find(upstream_id);
  if (id_it == up_ids_.end()) return std::nullopt;
  if (id_it->second.gateway) {
    completeGatewayOp(upstream_id, codes);
    return std::nullopt;
  }
  std::optional<PendingSubscribe> out;
  if (auto it = pending.find(upstream_id); it != pending.end()) {
    out = std::move(it->second);
    pending.erase(it);
  }
  releaseUpstreamId(upstream_id);
  return out;
}

void MqttSession::handleUpstreamSuback(mqtt::Suback& s) {
  std::optional<PendingSubscribe> acked = takeAcknowledged(pending_subs_, s.packet_id, s.reason_codes);
  if (!acked) return;
  PendingSubscribe& pending = *acked;
  std::vector<std::string> to_suspend;
  for (size_t k = 0; k < pending.forwarded.size(); ++k) {
    size_t i = pending.forwarded[k];
    uint8_t code = k < s.reason_codes.size() ? s.reason_codes[k] : rc::kUnspecifiedError;
    if (version_ == ProtocolVersion::k311 && code >= 0x80) code = rc::kV311SubackFailure;
    pending.codes[i] = code;
    if (code < 0x80) {
      const mqtt::Subscription& sub = pending.subs[i];
      auto f = std::find_if(filters_.begin(), filters_.end(),
                            [&](const SessionFilter& x) { return x.sub.filter == sub.filter; });
      // A change that came while the broker was subscribing did not see this
      // filter: if it no longer allows it, the filter starts suspended.
      const bool suspended = !authorize("mqtt:subscribe", sub.filter).permit;
      if (suspended) to_suspend.push_back(sub.filter);
      SessionFilter entry{sub, pending.subscription_id, suspended};
      if (f != filters_.end()) {
        *f = std::move(entry);
      } else {
        filters_.push_back(std::move(entry));
      }
    }
  }
  mqtt::Suback ack;
  ack.packet_id = pending.device_id;
  ack.reason_codes = std::move(pending.codes);
  ack.properties.reason_string = s.properties.reason_string;
  ack.properties.user_properties = s.properties.user_properties;
  sendDevice(ack);
  suspendUpstream(std::move(to_suspend));
}

void MqttSession::suspendUpstream(std::vector<std::string> filters) {
  if (filters.empty()) return;
  mqtt::Unsubscribe u;
  u.packet_id = allocGatewayId();
  u.filters = std::move(filters);
  up_ids_[u.packet_id] = UpstreamId{true, 0};
  gateway_ops_[u.packet_id] = [](const std::vector<uint8_t>&) {};
  spdlog::info("MQTT session of {}: suspended {} subscription(s)", device_, u.filters.size());
  sendUpstream(u);
}

void MqttSession::handleUpstreamUnsuback(mqtt::Unsuback& u) {
  std::optional<PendingSubscribe> acked = takeAcknowledged(pending_unsubs_, u.packet_id, u.reason_codes);
  if (!acked) return;
  PendingSubscribe& pending = *acked;
  for (size_t k = 0; k < pending.forwarded.size(); ++k) {
    pending.codes[pending.forwarded[k]] = k < u.reason_codes.size() ? u.reason_codes[k] : rc::kSuccess;
  }
  mqtt::Unsuback ack;
  ack.packet_id = pending.device_id;
  if (version_ == ProtocolVersion::k5) ack.reason_codes = std::move(pending.codes);
  ack.properties.reason_string = u.properties.reason_string;
  ack.properties.user_properties = u.properties.user_properties;
  sendDevice(ack);
}

// ---------------------------------------------------------------------------
// Packet ids: the device's ids pass through unless the gateway's own
// (suspend/restore) packets hold the same id upstream.

uint16_t MqttSession::mapDeviceId(uint16_t device_id) {
  auto it = dev_to_up_.find(device_id);
  if (it != dev_to_up_.end()) return it->second;
  uint16_t up = device_id;
  if (up_ids_.count(up) != 0) up = allocGatewayId();
  up_ids_[up] = UpstreamId{false, device_id};
  dev_to_up_[device_id] = up;
  return up;
}

uint16_t MqttSession::allocGatewayId() {
  for (int tries = 0; tries < 65536; ++tries) {
    uint16_t id = next_gateway_id_;
    next_gateway_id_ = next_gateway_id_ <= 1 ? 0xFFFF : static_cast<uint16_t>(next_gateway_id_ - 1);
    if (id != 0 && up_ids_.count(id) == 0 && dev_to_up_.count(id) == 0) return id;
  }
  return 0;  // 65535 packets in flight: the broker's Receive Maximum makes this unreachable
}

void MqttSession::releaseUpstreamId(uint16_t upstream_id) {
  auto it = up_ids_.find(upstream_id);
  if (it == up_ids_.end()) return;
  if (!it->second.gateway) {
    auto d = dev_to_up_.find(it->second.device_id);
    if (d != dev_to_up_.end() && d->second == upstream_id) dev_to_up_.erase(d);
  }
  up_ids_.erase(it);
}

// ---------------------------------------------------------------------------
// Re-evaluation

void MqttSession::reevaluate(std::function<void()> done) {
  if (state_ >= State::kClosing) {
    whenClosed(std::move(done));
    return;
  }
  if (state_ == State::kHandshake) {
    // Checked against the then-current snapshot when the handshake completes.
    if (done) done();
    return;
  }
  auto snap = gw_.snapshots().get();
  std::string why;
  if (!refreshPrincipal(snap, &why)) {
    cut(rc::kNotAuthorized, why.empty() ? std::string(er::kRevoked) : why, why == er::kRevoked, std::move(done));
    return;
  }
  if (state_ != State::kConnected) {
    // CONNECT not yet authorized (or upstream still connecting: re-checked then).
    if (done) done();
    return;
  }
  policy::Decision d = authorize("mqtt:connect", device_);
  if (!d.permit) {
    recordDeny("mqtt:connect", device_, d, {}, /*own=*/false);
    std::string reason = principal_.quarantined ? std::string(er::kQuarantined) : std::string(er::kPolicyChanged);
    cut(rc::kNotAuthorized, std::move(reason), false, std::move(done));
    return;
  }
  reevaluateFilters(std::move(done));
}

void MqttSession::recallDeliveries() {
  OutQueue& q = dev_out_;
  if (q.pending.empty()) return;
  // Deliveries queued for the device but not yet handed to its socket are
  // decided again: what the change no longer allows is not forwarded (and
  // acknowledged upstream, as for a delivery refused on arrival).
  mqtt::FrameDecoder decoder(q.pending.size() + 16);
  decoder.append(std::span(reinterpret_cast<const uint8_t*>(q.pending.data()), q.pending.size()));
  std::string kept;
  size_t offset = 0, recalled = 0;
  for (;;) {
    auto next = decoder.nextView();
    if (!next || !next.value()) break;  // the queue holds only packets the gateway encoded
    const mqtt::FrameView view = *next.value();
    const size_t at = offset;
    offset += view.size;
    bool keep = true;
    if ((view.first_byte >> 4) == static_cast<uint8_t>(mqtt::PacketType::kPublish)) {
      auto decoded = mqtt::decodePacket(view.first_byte, view.body, version_);
      if (decoded) {
        if (auto* p = std::get_if<mqtt::Publish>(&decoded.value())) {
          keep = filterActiveFor(p->topic) && authorize("mqtt:receive", p->topic).permit;
          if (!keep) {
            ++recalled;
            acknowledgeUndelivered(*p);
          }
        }
      }
    }
    if (keep) kept.append(q.pending, at, view.size);
  }
  if (recalled == 0) return;
  kept.append(q.pending, offset, std::string::npos);  // nothing, unless a packet was cut short
  q.bytes -= std::min(q.bytes, q.pending.size() - kept.size());
  q.pending = std::move(kept);
  spdlog::info("MQTT session of {}: {} queued deliveries no longer allowed, not forwarded", device_, recalled);
}

void MqttSession::reevaluateFilters(std::function<void()> done) {
  if (state_ != State::kConnected) {
    if (done) done();
    return;
  }
  std::vector<std::string> to_unsubscribe;
  std::vector<size_t> to_restore;
  for (size_t i = 0; i < filters_.size(); ++i) {
    SessionFilter& f = filters_[i];
    bool permitted = authorize("mqtt:subscribe", f.sub.filter).permit;
    if (!f.suspended && !permitted) {
      // Suspended at once: from now on nothing is delivered for it, even
      // before the broker's UNSUBACK.
      f.suspended = true;
      to_unsubscribe.push_back(f.sub.filter);
    } else if (f.suspended && permitted) {
      to_restore.push_back(i);
    }
  }
  suspendUpstream(std::move(to_unsubscribe));
  recallDeliveries();
  if (to_restore.empty()) {
    if (done) done();
    return;
  }
  // |done| runs when every restoring SUBSCRIBE is acknowledged, or after 2 s.
  struct RestoreWait {
    size_t left;
    std::function<void()> done;
    std::shared_ptr<asio::steady_timer> timer;
    void fire() {
      if (timer) timer->cancel();
      if (done) {
        auto d = std::move(done);
        done = nullptr;
        d();
      }
    }
  };
  auto wait = std::make_shared<RestoreWait>();
  wait->left = to_restore.size();
  wait->done = std::move(done);
  wait->timer = std::make_shared<asio::steady_timer>(gw_.io(), kRestoreWait);
  wait->timer->async_wait([wait](const boost::system::error_code& ec) {
    if (!ec) wait->fire();
  });
  std::weak_ptr<MqttSession> weak = weak_from_this();
  for (size_t i : to_restore) {
    const SessionFilter& f = filters_[i];
    mqtt::Subscribe s;
    s.packet_id = allocGatewayId();
    s.subscriptions.push_back(f.sub);
    if (f.subscription_id) s.properties.subscription_identifiers.push_back(*f.subscription_id);
    up_ids_[s.packet_id] = UpstreamId{true, 0};
    std::string filter = f.sub.filter;
    gateway_ops_[s.packet_id] = [weak, wait, filter](const std::vector<uint8_t>& codes) {
      if (auto self = weak.lock()) {
        if (!codes.empty() && codes[0] < 0x80) {
          for (SessionFilter& x : self->filters_) {
            if (x.sub.filter == filter) x.suspended = false;
          }
        }
      }
      if (--wait->left == 0) wait->fire();
    };
    sendUpstream(s);
  }
  spdlog::info("MQTT session of {}: restoring {} subscription(s)", device_, to_restore.size());
}

// ---------------------------------------------------------------------------
// Ending

void MqttSession::whenClosed(std::function<void()> f) {
  if (!f) return;
  if (state_ == State::kClosed) {
    asio::post(gw_.io(), std::move(f));
    return;
  }
  on_closed_.push_back(std::move(f));
}

void MqttSession::cut(uint8_t reason_code, std::string reason, bool purge, std::function<void()> done) {
  whenClosed(std::move(done));
  if (state_ >= State::kClosing) return;
  std::optional<uint8_t> device_reason;
  if (state_ == State::kConnected) device_reason = reason_code;
  terminate(device_reason, UpstreamEnd::kNoWill, std::move(reason), std::nullopt, purge);
}

bool MqttSession::willStillPermitted(bool own) {
  if (!will_sent_upstream_ || !connect_.will) return false;
  const mqtt::Will& will = *connect_.will;
  std::string_view action;
  const policy::Decision& d = authorizePublish(will.topic, will.retain, action);
  const bool permit = d.permit;
  if (!permit) recordDeny(action, will.topic, d, er::kWillDenied, own);
  return permit;
}

void MqttSession::recheckParkedWill(std::function<void()> done) {
  if (will_cancel_running_) {
    whenWillSettled(std::move(done));
    return;
  }
  auto finish = [&] {
    gw_.registry().dropWill(device_, this);
    if (done) done();
  };
  if (std::chrono::steady_clock::now() >= will_deadline_) {
    finish();  // the broker has sent it already
    return;
  }
  if (gw_.registry().findDevice(device_)) {
    finish();  // the device connected again, which cancelled the will
    return;
  }
  auto snap = gw_.snapshots().get();
  const identity::DeviceEntry* dev = snap && snap->fleet ? snap->fleet->findDevice(device_) : nullptr;
  if (dev != nullptr && dev->state == store::DeviceState::kRevoked) {
    finish();  // the revocation purges the broker session, will included
    return;
  }
  if (willStillPermitted(/*own=*/false)) {
    if (done) done();
    return;
  }
  will_cancel_running_ = true;
  whenWillSettled(std::move(done));
  asio::co_spawn(gw_.io(), cancelParkedWill(), asio::detached);
}

asio::awaitable<void> MqttSession::cancelParkedWill() {
  auto self = shared_from_this();
  co_await cancelBrokerWill(gw_, device_, session_expiry_);
  will_cancel_running_ = false;
  gw_.registry().dropWill(device_, this);
  auto callbacks = std::move(on_will_settled_);
  on_will_settled_.clear();
  for (auto& f : callbacks) f();
}

void MqttSession::whenWillSettled(std::function<void()> f) {
  if (!f) return;
  if (!will_cancel_running_) {
    asio::post(gw_.io(), std::move(f));
    return;
  }
  on_will_settled_.push_back(std::move(f));
}

void MqttSession::terminate(std::optional<uint8_t> device_reason, UpstreamEnd upstream_end, std::string reason,
                            std::optional<mqtt::Disconnect> forwarded, bool purge) {
  if (state_ >= State::kClosing) return;
  const bool connected = state_ == State::kConnected;
  state_ = State::kClosing;
  close_reason_ = std::move(reason);
  purge_ = purge;
  timer_.cancel();
  dev_read_gate_.cancel();
  up_read_gate_.cancel();

  // MQTT 5.0 §3.14: DISCONNECT only after CONNACK, and only in MQTT 5.
  if (device_reason && connected && version_ == ProtocolVersion::k5) {
    mqtt::Disconnect d;
    d.reason_code = *device_reason;
    // A Reason String says why; it also makes the packet long enough for
    // clients (paho 1.6) that ignore a DISCONNECT reason code sent without
    // properties.
    d.properties.reason_string = close_reason_;
    sent_disconnect_code_ = *device_reason;
    sendDevice(d);
  }
  if (up_ && up_out_.writer_running && !up_out_.finished) {
    mqtt::Disconnect d;
    switch (upstream_end) {
      case UpstreamEnd::kForward:
        d = forwarded.value_or(mqtt::Disconnect{});
        break;
      case UpstreamEnd::kWillIfPermitted: {
        // 0x04: the broker publishes the will (MQTT 5.0 §3.14.2.1).
        const bool send = willStillPermitted();
        d.reason_code = send ? rc::kDisconnectWithWill : rc::kSuccess;
        const uint32_t delay = send ? connect_.will->properties.will_delay_interval.value_or(0) : 0;
        if (delay > 0 && session_expiry_ > 0) {
          // The broker holds it until the delay ends (or the session does):
          // a change before then must still be able to stop it.
          will_deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(std::min(delay, session_expiry_));
        }
        break;
      }
      case UpstreamEnd::kNoWill:
        d.reason_code = rc::kSuccess;
        // Session Expiry 0 ends the broker session (revocation purges it).
        if (purge) d.properties.session_expiry_interval = 0;
        break;
    }
    sendUpstream(d);
  }
  dev_out_.signal.cancel();
  up_out_.signal.cancel();
  if (!dev_out_.writer_running) {
    closeSocket(Side::kDevice);
    dev_done_ = true;
  }
  if (!up_ || !up_out_.writer_running) {
    if (up_) closeSocket(Side::kUpstream);
    up_done_ = true;
  }
  std::weak_ptr<MqttSession> weak = weak_from_this();
  force_close_.expires_after(kCloseGrace);
  force_close_.async_wait([weak](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto self = weak.lock()) {
      self->closeSocket(Side::kDevice);
      self->closeSocket(Side::kUpstream);
    }
  });
  onSideFinished();
}

void MqttSession::closeSocket(Side side) {
  if (side == Side::kDevice) {
    dev_.close();
  } else if (up_ && up_->stream) {
    up_->stream->close();
  }
}

void MqttSession::abort() {
  if (state_ < State::kClosing) {
    state_ = State::kClosing;
    close_reason_ = er::kShutdown;
  }
  closeSocket(Side::kDevice);
  closeSocket(Side::kUpstream);
  timer_.cancel();
  force_close_.cancel();
  dev_read_gate_.cancel();
  up_read_gate_.cancel();
  dev_out_.signal.cancel();
  up_out_.signal.cancel();
}

void MqttSession::onSideFinished() {
  if (state_ != State::kClosing || !dev_done_ || !up_done_) return;
  state_ = State::kClosed;
  // Run after the current handler: callers up the stack still use |this|.
  asio::post(gw_.io(), [self = shared_from_this()] { self->finalize(); });
}

void MqttSession::finalize() {
  force_close_.cancel();
  timer_.cancel();
  if (auto n = deny_limiter_.finish()) {
    monitor::Event e;
    e.type = monitor::event_type::kDenyBurst;
    e.principal = peer_.spiffe_id;
    e.actor = peer_.spiffe_id;
    e.decision = "deny";
    e.reason = er::kRateLimited;
    e.detail = nlohmann::json{{"count", *n}, {"remote", remote_}};
    gw_.record(std::move(e));
  }
  if (was_connected_) {
    monitor::Event e;
    e.type = monitor::event_type::kDisconnect;
    e.principal = peer_.spiffe_id;
    e.actor = peer_.spiffe_id;
    e.reason = close_reason_;
    e.detail = nlohmann::json{{"remote", remote_}};
    if (sent_disconnect_code_) e.detail["mqtt_reason_code"] = *sent_disconnect_code_;
    gw_.record(std::move(e));
    spdlog::debug("MQTT session of {} closed: {}", device_, close_reason_);
    // The broker keeps the session (and its subscriptions) if it has an expiry.
    if (session_expiry_ > 0 && !purge_) {
      gw_.registry().rememberSession(device_, RememberedSession{filters_, std::move(staged_qos2_)});
    } else {
      gw_.registry().forgetSession(device_);
    }
  }
  gateway_ops_.clear();
  pending_subs_.clear();
  pending_unsubs_.clear();
  if (will_deadline_ > std::chrono::steady_clock::now() && !purge_) {
    // Parked until the Will Delay ends: keep what authorizing the will needs
    // (identity, will, context), not a pin on today's snapshot.
    held_snap_.reset();
    principal_snap_ = nullptr;
    held_generation_ = 0;
    decision_cache_.clear();
    cache_policy_ = nullptr;
    aliases_.clear();
    filters_.clear();
    ack_order_.clear();
    gw_.registry().parkWill(device_, shared_from_this());
  }
  auto callbacks = std::move(on_closed_);
  on_closed_.clear();
  gw_.registry().remove(this);  // may drop the last owner but for the posted handler's |self|
  for (auto& f : callbacks) f();
}

}  // namespace warden::gateway
