// admin_handlers.cc: the operator's admin API (/v1/...), mutual TLS + policy.

// g++ 12 reports a false -Wmismatched-new-delete on Asio's awaitable frame
// allocator (aligned_new / operator delete pair) in some coroutines.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <set>
#include <unordered_set>

#include "api/api_json.h"
#include "api/api_server_impl.h"
#include "core/names.h"
#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "gateway/decision_snapshot.h"
#include "gateway/gateway.h"
#include "identity/factory_identity.h"
#include "identity/registry.h"
#include "monitor/event.h"
#include "monitor/event_log.h"
#include "policy/policy.h"
#include "policy/policy_impact.h"
#include "policy/policy_test_suite.h"
#include "store/store.h"
#include "trust/posture.h"

namespace warden::api {

namespace {

// queryFlag reports whether |query| ("a=1&b=true") sets |name| to true or 1.
bool queryFlag(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair == std::string(name) + "=true" || pair == std::string(name) + "=1") return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

constexpr size_t kDryRunPrincipals = 10000;

}  // namespace
namespace {

constexpr int64_t kDefaultEventLimit = 1000;

std::string unknownDeviceMessage(std::string_view name) {
  return fmt::format("device '{}' does not exist; `warden device list` shows the fleet", name);
}

// parseTtl reads a TTL given as a duration string ("2h") or whole seconds.
// The first of |fields| present is used.
core::Result<std::optional<core::Seconds>> parseTtl(const nlohmann::json& body,
                                                    std::initializer_list<const char*> fields) {
  auto it = body.end();
  const char* field = "";
  for (const char* f : fields) {
    it = body.find(f);
    field = f;
    if (it != body.end()) break;
  }
  if (it == body.end() || it->is_null()) return std::optional<core::Seconds>();
  if (it->is_string()) {
    auto secs = core::parseDuration(it->get<std::string>());
    if (!secs.isOk()) {
      return core::invalidArgument(fmt::format("'{}': {} (e.g. \"30m\", \"24h\", \"7d\")", field,
                                               secs.status().message()));
    }
    return std::optional<core::Seconds>(core::Seconds(*secs));
  }
  if (it->is_number_integer() && it->get<int64_t>() > 0) {
    return std::optional<core::Seconds>(core::Seconds(it->get<int64_t>()));
  }
  return core::invalidArgument(
      fmt::format("'{}' must be a duration such as \"24h\" or a positive number of seconds", field));
}



// operatorPrincipal and operatorContext are what every decision on an
// operator's call is taken with: the same inputs the gateway passes for a
// device (docs/policy.md, "What the admin API passes").
policy::Principal operatorPrincipal(const OperatorIdentity& op, core::SystemTime now) {
  policy::Principal principal;
  principal.id = op.name;
  principal.kind = core::PrincipalKind::kUser;
  principal.cert_age = std::chrono::duration_cast<std::chrono::seconds>(now - op.cert_not_before);
  return principal;
}

// devicePrincipal is device |name| as the gateway passes it to the policy:
// role, labels, quarantine and posture (docs/policy.md, posture attributes),
// its attestation age measured at |now|.
policy::Principal devicePrincipal(const std::string& name, const identity::DeviceEntry& dev, core::SystemTime now) {
  policy::Principal p;
  p.id = name;
  p.kind = core::PrincipalKind::kDevice;
  p.role = dev.role;
  p.labels = dev.labels;
  p.quarantined = dev.state == store::DeviceState::kQuarantined;
  p.trust = dev.trust;
  p.firmware_approved = dev.firmware_approved;
  if (dev.attestation_assurance == "tpm") p.attestation_assurance = policy::AttestationAssurance::kTpm;
  if (dev.attestation_assurance == "software") p.attestation_assurance = policy::AttestationAssurance::kSoftware;
  if (dev.last_good_attestation > 0) {
    p.attestation_age = std::max(std::chrono::seconds(0), std::chrono::duration_cast<std::chrono::seconds>(
                                                              now - core::fromUnixSeconds(dev.last_good_attestation)));
  }
  return p;
}

policy::Context operatorContext(const OperatorIdentity& op, core::SystemTime now) {
  policy::Context context;
  context.time = now;
  context.source_ip = policy::IpAddress::parse(op.address);
  context.protocol = "http";
  return context;
}

}  // namespace

core::Result<nlohmann::json> parseJsonBody(const ServerRequest& req, bool required) {
  std::string type = mediaType(req[http::field::content_type]);
  if (req.body().empty()) {
    if (required) return core::invalidArgument("the request needs a JSON object body");
    return nlohmann::json::object();
  }
  if (!type.empty() && type != "application/json") {
    return core::invalidArgument("Content-Type must be application/json");
  }
  nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return core::invalidArgument("the request body must be a JSON object");
  }
  return body;
}

core::Status checkKnownKeys(const nlohmann::json& body, std::initializer_list<std::string_view> known) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || it.key() == k;
    if (!ok) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return core::invalidArgument(fmt::format("unknown field '{}'; known fields: {}", it.key().substr(0, 64), list));
    }
  }
  return core::Status::ok();
}

std::variant<OperatorIdentity, ServerResponse> ApiServer::Impl::authenticateOperator(const PeerInfo& peer,
                                                                                   const Route& route) {
  const std::string action(adminAction(route.kind));
  auto deny = [&](http::status status, std::string_view code, std::string principal, std::string_view cause,
                  std::string message) {
    recordEvent(monitor::event_type::kAdminDeny, principal, principal, action, route.device, "deny", "",
                std::string(monitor::reason::kUnauthenticated),
                {{"remote", peer.remote}, {"cause", cause}, {"message", message}});
    return errorResponse(status, code, message);
  };
  if (!peer.cert) {
    return deny(http::status::unauthorized, "unauthenticated", "", monitor::reason::kUntrustedIssuer,
                "the admin API requires the operator's client certificate: use `warden --dir D` or "
                "--cert/--key/--ca");
  }
  if (peer.anchor.kind != pki::ClientAnchor::Kind::kFleet) {
    // A factory certificate is a trust anchor for EST simpleenroll only.
    return deny(http::status::forbidden, "not_an_operator", "", monitor::reason::kFactoryCertificate,
                fmt::format("a factory certificate (manufacturer '{}') is accepted only for enrollment, never by the "
                            "admin API",
                            peer.anchor.manufacturer));
  }
  X509* cert = peer.cert.get();
  std::vector<std::string> uris = crypto::uriSans(cert);
  if (uris.size() != 1) {
    return deny(http::status::forbidden, "not_an_operator", "", monitor::reason::kBadIdentity,
                "the client certificate must carry exactly one URI SAN spiffe://<trust-domain>/user/<name>");
  }
  auto id = core::parseSpiffeId(uris.front());
  if (!id.isOk() || id->trust_domain != config_.trust_domain) {
    return deny(http::status::forbidden, "not_an_operator", "", monitor::reason::kBadIdentity,
                "the client certificate's SPIFFE ID is not in this server's trust domain");
  }
  const std::string spiffe = id->toString();
  if (id->kind != core::PrincipalKind::kUser) {
    return deny(http::status::forbidden, "not_an_operator", spiffe, monitor::reason::kBadIdentity,
                fmt::format("{} is not an operator: the admin API accepts only user certificates", spiffe));
  }
  core::SystemTime now = deps_.clock.now();
  if (now >= crypto::notAfter(cert) || now < crypto::notBefore(cert)) {
    return deny(http::status::unauthorized, "unauthenticated", spiffe, monitor::reason::kCertExpired,
                "the operator certificate has expired or is not yet valid");
  }
  auto snapshot = deps_.snapshot.get();
  if (!snapshot || !snapshot->fleet) {
    return errorResponse(http::status::service_unavailable, "unavailable", "the server is still starting; retry");
  }
  const std::string* user = snapshot->fleet->userForSerial(crypto::serialHex(cert));
  if (user == nullptr || *user != id->name) {
    return deny(http::status::unauthorized, "unauthenticated", spiffe, monitor::reason::kUnknownSerial,
                "the operator certificate is unknown to this server or has been revoked");
  }
  return OperatorIdentity{id->name, spiffe, "", peer.address, crypto::notBefore(cert)};
}

std::optional<ServerResponse> ApiServer::Impl::authorizeOperator(OperatorIdentity& op, RouteKind kind,
                                                               const std::string& resource) {
  const std::string action(adminAction(kind));
  auto snapshot = deps_.snapshot.get();
  policy::Decision decision;
  if (snapshot && snapshot->policy) {
    const core::SystemTime now = deps_.clock.now();
    decision = snapshot->policy->authorize(operatorPrincipal(op, now), action, resource, operatorContext(op, now));
  } else {
    decision = {false, "default-deny", std::string(monitor::reason::kNoPermit)};  // nothing decided: deny
  }
  if (decision.permit) {
    op.rule = decision.rule;
    return std::nullopt;
  }
  // The short form of the decision (docs/policy.md, "Explanations").
  nlohmann::json short_form = decisionToJson(decision);
  nlohmann::json detail = {{"missing_flows", short_form["missing_flows"]}, {"valid_until", short_form["valid_until"]}};
  recordEvent(monitor::event_type::kAdminDeny, op.spiffe_id, op.spiffe_id, action, resource, "deny", decision.rule,
              decision.reason, detail);
  std::string message = fmt::format("the policy does not allow {} to perform {} on '{}' ({}, rule {})", op.spiffe_id,
                                    action, resource, decision.reason, decision.rule);
  nlohmann::json body = {{"error", "permission_denied"},
                         {"message", message},
                         {"rule", decision.rule},
                         {"reason", decision.reason}};
  return jsonResponse(http::status::forbidden, body);
}

asio::awaitable<ServerResponse> ApiServer::Impl::handleAdmin(const Route& route, const ServerRequest& req,
                                                           const PeerInfo& peer) {
  auto auth = authenticateOperator(peer, route);
  if (auto* res = std::get_if<ServerResponse>(&auth)) co_return std::move(*res);
  OperatorIdentity op = std::get<OperatorIdentity>(std::move(auth));

  std::string resource = "*";
  if (!route.device.empty()) {
    if (!core::isValidName(route.device)) {
      co_return errorResponse(http::status::bad_request, "invalid_argument",
                              route.kind == RouteKind::kCertRevoke
                                  ? "invalid serial in the path: give it as lowercase hex (`warden cert list`)"
                                  : "invalid name in the path: names match ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
    }
    resource = route.device;
  }
  if (route.kind == RouteKind::kManufacturerRemove && !core::isValidName(route.id)) {
    co_return errorResponse(http::status::bad_request, "invalid_argument",
                            "invalid manufacturer name in the path: names match ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
  }
  nlohmann::json add_body;
  if (route.kind == RouteKind::kDeviceAdd) {
    auto body = parseJsonBody(req, /*required=*/true);
    if (!body.isOk()) co_return statusResponse(body.status());
    add_body = std::move(body).value();
    auto name = add_body.find("name");
    if (name == add_body.end() || !name->is_string()) {
      co_return errorResponse(http::status::bad_request, "invalid_argument",
                              "'name' is required: a device name such as \"temp-sensor-1\"");
    }
    if (!core::isValidName(name->get<std::string>())) {
      co_return errorResponse(http::status::bad_request, "invalid_argument",
                              "invalid device name: names are 1-63 characters of a-z, 0-9 and '-', starting and "
                              "ending with a letter or digit");
    }
    resource = name->get<std::string>();
  }
  if (auto denied = authorizeOperator(op, route.kind, resource)) co_return std::move(*denied);

  switch (route.kind) {
    case RouteKind::kDeviceAdd: co_return co_await deviceAdd(op, add_body);
    case RouteKind::kDeviceList: co_return co_await deviceList();
    case RouteKind::kDeviceShow: co_return co_await deviceShow(route.device);
    case RouteKind::kDeviceToken: co_return co_await deviceToken(op, route.device, req);
    case RouteKind::kDeviceRevoke:
    case RouteKind::kDeviceQuarantine:
    case RouteKind::kDeviceRelease: co_return co_await deviceStateChange(op, route.kind, route.device);
    case RouteKind::kPolicyApply: {
      const bool force = queryFlag(route.query, "force");
      if (queryFlag(route.query, "dry_run")) co_return co_await policyDryRun(op, req);
      co_return co_await policyApply(op, req, force);
    }
    case RouteKind::kPolicyShow: co_return co_await policyShow();
    case RouteKind::kPolicyExplain: co_return co_await policyExplain(req);
    case RouteKind::kPolicyHistory: co_return co_await policyHistory();
    case RouteKind::kPolicyVersion: co_return co_await policyVersion(route);
    case RouteKind::kPolicyRollback: co_return co_await policyRollback(op, req);
    case RouteKind::kEventsRead: co_return co_await eventsRead(route);
    case RouteKind::kCertList: co_return co_await certList(route);
    case RouteKind::kCertRevoke: co_return co_await certRevoke(op, route.device, req);
    case RouteKind::kCaList: co_return co_await caList();
    case RouteKind::kCaRotate: co_return co_await caRotate(op, req);
    case RouteKind::kCaRetire: co_return co_await caRetire(op, route.device, req);
    case RouteKind::kDeviceSet: co_return co_await deviceSet(op, route.device, req);
    case RouteKind::kEnrollList: co_return co_await enrollList();
    case RouteKind::kEnrollApprove: co_return co_await enrollDecide(op, route.id, true);
    case RouteKind::kEnrollDeny: co_return co_await enrollDecide(op, route.id, false);
    case RouteKind::kManufacturerList: co_return co_await manufacturerList();
    case RouteKind::kManufacturerAdd: co_return co_await manufacturerAdd(op, req);
    case RouteKind::kManufacturerRemove: co_return co_await manufacturerRemove(op, route.id);
    case RouteKind::kTpmCaList: co_return co_await tpmCaList();
    case RouteKind::kTpmCaAdd: co_return co_await tpmCaAdd(op, req);
    case RouteKind::kTpmCaRemove: co_return co_await tpmCaRemove(op, route.id);
    case RouteKind::kDeviceEkSet: co_return co_await deviceEkSet(op, route.device, req);
    case RouteKind::kDeviceEkRemove: co_return co_await deviceEkRemove(op, route.device);
    case RouteKind::kFirmwareList: co_return co_await firmwareList();
    case RouteKind::kFirmwareApprove: co_return co_await firmwareApprove(op, req);
    case RouteKind::kFirmwareRevoke: co_return co_await firmwareRevoke(op, req);
    case RouteKind::kDeviceHistory: co_return co_await deviceHistory(route.device, route);
    default: co_return errorResponse(http::status::not_found, "not_found", "no such endpoint");
  }
}

asio::awaitable<ServerResponse> ApiServer::Impl::deviceAdd(const OperatorIdentity& op, const nlohmann::json& body) {
  if (auto s = checkKnownKeys(body, {"name", "role", "labels", "token_ttl", "token_ttl_seconds", "cert_ttl"}); !s.isOk()) co_return statusResponse(s);
  int64_t cert_ttl = 0;
  if (auto it = body.find("cert_ttl"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) {
      co_return errorResponse(http::status::bad_request, "invalid_argument", "'cert_ttl' must be a lifetime such as \"12h\"");
    }
    auto parsed = identity::parseCertTtl(it->get<std::string>());
    if (!parsed.isOk()) co_return statusResponse(parsed.status());
    cert_ttl = *parsed;
  }
  const std::string name = body.at("name").get<std::string>();
  auto role_it = body.find("role");
  if (role_it == body.end() || !role_it->is_string()) {
    co_return errorResponse(http::status::bad_request, "invalid_argument",
                            "'role' is required: a role name such as \"sensor\" (policies select on it)");
  }
  const std::string role = role_it->get<std::string>();
  core::Labels labels;
  if (auto it = body.find("labels"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) {
      co_return errorResponse(http::status::bad_request, "invalid_argument",
                              "'labels' must be an object of string values, e.g. {\"site\": \"plant-1\"}");
    }
    for (auto l = it->begin(); l != it->end(); ++l) {
      if (!l.value().is_string()) {
        co_return errorResponse(http::status::bad_request, "invalid_argument",
                                "'labels' values must be strings, e.g. {\"site\": \"plant-1\"}");
      }
      labels[l.key()] = l.value().get<std::string>();
    }
  }
  auto ttl = parseTtl(body, {"token_ttl_seconds", "token_ttl"});
  if (!ttl.isOk()) co_return statusResponse(ttl.status());

  auto work1 = [this, name, role, labels, ttl = *ttl, cert_ttl]() {
    return deps_.registry.addDevice(name, role, labels, ttl, cert_ttl);
  };
  auto added = co_await onWorker(work1);
  if (!added.isOk()) {
    if (added.status().code() == core::ErrorCode::kAlreadyExists) {
      co_return errorResponse(http::status::conflict, "already_exists",
                              fmt::format("device '{}' already exists (names are never reused, even after revoke): "
                                          "choose another name",
                                          name));
    }
    co_return statusResponse(added.status());
  }
  const identity::NewDevice& nd = *added;
  recordEvent(monitor::event_type::kDeviceAdd, deviceSpiffeId(name), op.spiffe_id, "admin:device.add", name, "permit",
              op.rule, std::string(monitor::reason::kPermitted), {{"role", role}});
  nlohmann::json label_json = nlohmann::json::object();
  for (const auto& [k, v] : nd.record.labels) label_json[k] = v;
  co_return jsonResponse(http::status::created,
                         {{"name", nd.record.name},
                          {"role", nd.record.role},
                          {"labels", label_json},
                          {"token", nd.token},
                          {"token_expires_at", core::formatRfc3339(core::fromUnixSeconds(nd.token_expires_at))},
                          {"ca_fingerprint", ca_fingerprint_},
                          {"cert_ttl", cert_ttl > 0 ? nlohmann::json(core::formatDuration(cert_ttl)) : nlohmann::json(nullptr)}});
}

namespace {

using DeviceView = std::pair<store::DeviceRecord, std::optional<store::CertRecord>>;

core::Result<DeviceView> loadDeviceView(store::Store& store, const std::string& name) {
  WARDEN_ASSIGN_OR_RETURN(store::DeviceRecord device, store.getDevice(name));
  WARDEN_ASSIGN_OR_RETURN(std::optional<store::CertRecord> cert, store.latestCert(name));
  return DeviceView{std::move(device), std::move(cert)};
}

}  // namespace

asio::awaitable<ServerResponse> ApiServer::Impl::deviceList() {
  auto work2 = [this]() -> core::Result<std::vector<DeviceView>> {
    WARDEN_ASSIGN_OR_RETURN(std::vector<store::DeviceRecord> devices, deps_.store.listDevices());
    std::vector<DeviceView> out;
    out.reserve(devices.size());
    for (auto& d : devices) {
      WARDEN_ASSIGN_OR_RETURN(std::optional<store::CertRecord> cert, deps_.store.latestCert(d.name));
      out.emplace_back(std::move(d), std::move(cert));
    }
    return out;
  };
  auto views = co_await onWorker(work2);
  if (!views.isOk()) co_return statusResponse(views.status());
  std::vector<std::string> live = deps_.gateway.connectedDevices();
  std::unordered_set<std::string> connected(live.begin(), live.end());
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [device, cert] : *views) {
    list.push_back(deviceToJson(device, cert, connected.count(device.name) != 0, config_.trust_domain));
  }
  co_return jsonResponse(http::status::ok, {{"devices", std::move(list)}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::deviceShow(const std::string& name) {
  auto work3 = [this, name]() { return loadDeviceView(deps_.store, name); };
  auto view = co_await onWorker(work3);
  if (!view.isOk()) {
    if (view.status().code() == core::ErrorCode::kNotFound) {
      co_return errorResponse(http::status::not_found, "not_found", unknownDeviceMessage(name));
    }
    co_return statusResponse(view.status());
  }
  bool connected = false;
  for (const auto& d : deps_.gateway.connectedDevices()) connected = connected || d == name;
  nlohmann::json out = deviceToJson(view->first, view->second, connected, config_.trust_domain);
  if (deps_.posture != nullptr) {
    nlohmann::json posture = deps_.posture->describe(name);
    // The rest of the posture the issue names: where the key lives and how
    // old the current certificate is.
    posture["key_location"] = out["key_store"];
    posture.update(keyInTpmToJson(view->first, view->second));
    posture["cert_age_s"] = view->second ? nlohmann::json(core::unixSeconds(deps_.clock.now()) - view->second->not_before)
                                         : nlohmann::json(nullptr);
    out["posture"] = std::move(posture);
  }
  co_return jsonResponse(http::status::ok, out);
}

asio::awaitable<ServerResponse> ApiServer::Impl::deviceToken(const OperatorIdentity& op, const std::string& name,
                                                           const ServerRequest& req) {
  auto body = parseJsonBody(req, /*required=*/false);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {"ttl", "token_ttl", "token_ttl_seconds"}); !s.isOk()) co_return statusResponse(s);
  auto ttl = parseTtl(*body, {"token_ttl_seconds", "token_ttl", "ttl"});
  if (!ttl.isOk()) co_return statusResponse(ttl.status());
  auto work4 = [this, name, ttl = *ttl]() { return deps_.registry.newToken(name, ttl); };
  auto token = co_await onWorker(work4);
  if (!token.isOk()) {
    if (token.status().code() == core::ErrorCode::kNotFound) {
      co_return errorResponse(http::status::not_found, "not_found", unknownDeviceMessage(name));
    }
    co_return statusResponse(token.status());
  }
  recordEvent(monitor::event_type::kTokenIssue, deviceSpiffeId(name), op.spiffe_id, "admin:device.token", name, "permit",
              op.rule, std::string(monitor::reason::kPermitted),
              {{"expires_at", core::formatRfc3339(core::fromUnixSeconds(token->expires_at))}});
  co_return jsonResponse(http::status::ok,
                         {{"name", name},
                          {"token", token->token},
                          {"token_expires_at", core::formatRfc3339(core::fromUnixSeconds(token->expires_at))}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::deviceStateChange(const OperatorIdentity& op, RouteKind kind,
                                                                 const std::string& name) {
  std::string_view type;
  std::string state;
  switch (kind) {
    case RouteKind::kDeviceRevoke: type = monitor::event_type::kRevoke; state = "revoked"; break;
    case RouteKind::kDeviceQuarantine: type = monitor::event_type::kQuarantine; state = "quarantined"; break;
    default: type = monitor::event_type::kRelease; state = "active"; break;
  }
  auto work5 = [this, kind, name]() -> core::Result<bool> {
    switch (kind) {
      case RouteKind::kDeviceRevoke: return deps_.registry.revoke(name);
      case RouteKind::kDeviceQuarantine: return deps_.registry.quarantine(name);
      default: return deps_.registry.release(name);
    }
  };
  auto changed = co_await onWorker(work5);
  if (!changed.isOk()) {
    if (changed.status().code() == core::ErrorCode::kNotFound) {
      co_return errorResponse(http::status::not_found, "not_found", unknownDeviceMessage(name));
    }
    co_return statusResponse(changed.status());
  }
  // Reply only once every affected live session was cut or restricted.
  if (*changed) co_await publishChange(identity::ChangeScope::device(name));
  // The posture engine keeps the quarantine's reasons: an operator's is manual,
  // and a release clears them all.
  if (deps_.posture != nullptr && kind == RouteKind::kDeviceQuarantine) deps_.posture->operatorQuarantined(name);
  if (deps_.posture != nullptr && kind == RouteKind::kDeviceRelease && *changed) deps_.posture->operatorReleased(name);
  if (kind == RouteKind::kDeviceRevoke) co_await purgeBrokerSession(name);
  if (kind == RouteKind::kDeviceRevoke && *changed) co_await publishRevocation();
  recordEvent(type, deviceSpiffeId(name), op.spiffe_id, std::string(adminAction(kind)), name, "permit", op.rule,
              std::string(monitor::reason::kPermitted), {{"changed", *changed}});
  co_return jsonResponse(http::status::ok, {{"name", name}, {"state", state}, {"changed", *changed}});
}


asio::awaitable<ServerResponse> ApiServer::Impl::policyDryRun(const OperatorIdentity& op, const ServerRequest& req) {
  std::string filename = "policy";
  if (auto h = req["X-Warden-Filename"]; !h.empty()) filename = sanitizeFilename(std::string_view(h.data(), h.size()));
  auto snapshot = deps_.snapshot.get();
  if (!snapshot || !snapshot->policy || !snapshot->fleet) {
    co_return errorResponse(http::status::service_unavailable, "unavailable", "no policy is loaded yet");
  }
  struct DryRun {
    core::Status status = core::Status::ok();
    nlohmann::json answer;
    std::shared_ptr<const policy::Policy> parsed;
  };
  auto work = [snapshot, text = req.body(), filename, op, now = deps_.clock.now()]() -> DryRun {
    DryRun out;
    auto parsed = policy::Policy::parse(text, filename);
    if (!parsed.isOk()) {
      out.status = parsed.status();
      return out;
    }
    // The principal side: every registered principal (sampled), probed with
    // the requests either policy talks about.
    std::vector<policy::Principal> principals;
    size_t total = snapshot->fleet->devices.size();
    for (const auto& [name, dev] : snapshot->fleet->devices) {
      if (principals.size() >= kDryRunPrincipals) break;
      if (dev.state == store::DeviceState::kRevoked) continue;
      principals.push_back(devicePrincipal(name, dev, now));
    }
    std::set<std::string> users;
    for (const auto& [serial, u] : snapshot->fleet->user_serials) users.insert(u);
    total += users.size();
    for (const std::string& u : users) {
      if (principals.size() >= kDryRunPrincipals) break;
      policy::Principal p;
      p.id = u;
      p.kind = core::PrincipalKind::kUser;
      principals.push_back(std::move(p));
    }
    out.parsed = *parsed;
    policy::Context ctx;
    ctx.time = std::chrono::system_clock::now();
    policy::PolicyImpact impact = policy::comparePolicies(*snapshot->policy, **parsed, principals, ctx);
    bool keeps_apply =
        (*parsed)->authorize(operatorPrincipal(op, now), "admin:policy.apply", "*", operatorContext(op, now)).permit;
    nlohmann::json changes = nlohmann::json::array();
    for (const policy::DecisionChange& c : impact.changes) {
      changes.push_back({{"principal", c.principal},
                         {"action", c.action},
                         {"resource", c.resource},
                         {"before", decisionToJson(c.before)},
                         {"after", decisionToJson(c.after)}});
    }
    out.answer = {{"dry_run", true},
                  {"valid", true},
                  {"would_lock_out", !keeps_apply},
                  {"principals_total", total},
                  {"principals_checked", impact.principals_checked},
                  {"requests_checked", impact.requests_checked},
                  {"changed_principals", impact.changed_principals},
                  {"changes", std::move(changes)},
                  {"changes_truncated", impact.truncated}};
    return out;
  };
  DryRun result = co_await onWorker(work);
  if (!result.status.isOk()) {
    co_return errorResponse(http::status::bad_request, "invalid_argument", result.status.message());
  }
  // The live-session side, from the gateway's sessions (back on the io thread).
  std::vector<gateway::SessionImpact> impacts = deps_.gateway.dryRun(*result.parsed);
  nlohmann::json cut = nlohmann::json::array();
  nlohmann::json lose = nlohmann::json::array();
  nlohmann::json restore = nlohmann::json::array();
  for (const gateway::SessionImpact& i : impacts) {
    if (i.would_cut) cut.push_back({{"device", i.device}, {"reason", i.reason}, {"rule", i.rule}});
    if (!i.filters_lost.empty()) lose.push_back({{"device", i.device}, {"filters", i.filters_lost}});
    if (!i.filters_restored.empty()) restore.push_back({{"device", i.device}, {"filters", i.filters_restored}});
  }
  result.answer["sessions"] = {{"live", impacts.size()},
                               {"would_cut", std::move(cut)},
                               {"would_lose_subscriptions", std::move(lose)},
                               {"would_restore_subscriptions", std::move(restore)}};
  co_return jsonResponse(http::status::ok, result.answer);
}

asio::awaitable<ServerResponse> ApiServer::Impl::policyApply(const OperatorIdentity& op, const ServerRequest& req,
                                                           bool force) {
  std::string filename = "policy";
  if (auto h = req["X-Warden-Filename"]; !h.empty()) filename = sanitizeFilename(std::string_view(h.data(), h.size()));
  std::string text = req.body();
  co_return co_await storePolicy(op, text, filename, force, 0);
}

asio::awaitable<ServerResponse> ApiServer::Impl::storePolicy(const OperatorIdentity& op, const std::string& text,
                                                           const std::string& filename, bool force,
                                                           int64_t rolled_back_from) {
  struct Applied {
    core::Status status;
    int http_status = 200;
    std::string rule;
    int64_t version = 0;
  };
  const std::string spiffe = op.spiffe_id;
  const std::string user = op.name;
  auto work6 = [this, text, filename, spiffe, user, force, op, now = deps_.clock.now()]() -> Applied {
    Applied out;
    auto parsed = policy::Policy::parse(text, filename);
    if (!parsed.isOk()) {
      out.status = parsed.status();
      out.http_status = 400;
      return out;
    }
    // Refuse a policy that would lock the caller out of policy changes
    // (decided as its next call would be: same address, protocol, time).
    policy::Decision keep =
        (*parsed)->authorize(operatorPrincipal(op, now), "admin:policy.apply", "*", operatorContext(op, now));
    if (!keep.permit && !force) {
      out.status = core::failedPrecondition(fmt::format(
          "refused: under this policy {} would lose admin:policy.apply ({}, rule {}); keep a rule that permits "
          "admin:policy.apply for kind: user, id: {}, or pass --force",
          spiffe, keep.reason, keep.rule, user));
      out.http_status = 409;
      out.rule = keep.rule;
      return out;
    }
    auto version = deps_.store.insertPolicyVersion(text, spiffe);
    if (!version.isOk()) {
      out.status = version.status();
      out.http_status = 0;
      return out;
    }
    out.version = *version;
    return out;
  };
  Applied applied = co_await onWorker(work6);
  if (!applied.status.isOk()) {
    if (applied.http_status == 400) {
      co_return errorResponse(http::status::bad_request, "invalid_argument", applied.status.message());
    }
    if (applied.http_status == 409) {
      recordEvent(monitor::event_type::kAdminDeny, op.spiffe_id, op.spiffe_id, "admin:policy.apply", "*", "deny",
                  applied.rule, std::string(monitor::reason::kWouldLockOut));
      co_return errorResponse(http::status::conflict, "policy_lockout", applied.status.message());
    }
    co_return statusResponse(applied.status);
  }
  co_await publishChange();
  nlohmann::json detail = {{"version", applied.version}};
  if (rolled_back_from > 0) detail["rolled_back_from"] = rolled_back_from;
  if (force) detail["force"] = true;
  recordEvent(monitor::event_type::kPolicyApply, op.spiffe_id, op.spiffe_id, "admin:policy.apply", "*", "permit",
              op.rule, std::string(monitor::reason::kPermitted), detail);
  nlohmann::json answer = {{"version", applied.version}};
  if (rolled_back_from > 0) answer["from"] = rolled_back_from;
  co_return jsonResponse(http::status::ok, answer);
}

asio::awaitable<ServerResponse> ApiServer::Impl::policyExplain(const ServerRequest& req) {
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {"principal", "action", "resource", "context"}); !s.isOk()) {
    co_return statusResponse(s);
  }
  auto text = [&](const char* key) -> std::string {
    auto it = body->find(key);
    return it != body->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string who = text("principal");
  const std::string action = text("action");
  const std::string resource = text("resource");
  if (who.empty() || action.empty() || resource.empty()) {
    co_return errorResponse(http::status::bad_request, "invalid_argument",
                            "'principal', 'action' and 'resource' are required strings");
  }
  policy::Context ctx;
  ctx.time = std::chrono::system_clock::now();
  if (auto it = body->find("context"); it != body->end() && !it->is_null()) {
    if (!it->is_object()) {
      co_return errorResponse(http::status::bad_request, "invalid_argument", "'context' must be an object");
    }
    for (auto c = it->begin(); c != it->end(); ++c) {
      std::string value = c.value().is_string() ? c.value().get<std::string>() : c.value().dump();
      core::Status st = policy::setContextField(ctx, c.key(), value);
      if (!st.isOk()) co_return errorResponse(http::status::bad_request, "invalid_argument", st.message());
    }
  }
  auto snapshot = deps_.snapshot.get();
  if (!snapshot || !snapshot->policy || !snapshot->fleet) {
    co_return errorResponse(http::status::service_unavailable, "unavailable", "no policy is loaded yet");
  }
  // Resolve the principal as the gateway and the admin API see it.
  policy::Principal p;
  std::string name = who;
  std::optional<core::PrincipalKind> kind;
  if (who.rfind("spiffe://", 0) == 0) {
    auto id = core::parseSpiffeId(who);
    if (!id.isOk() || id->trust_domain != config_.trust_domain) {
      co_return errorResponse(http::status::bad_request, "invalid_argument",
                              fmt::format("'{}' is not a SPIFFE ID of trust domain {}", who.substr(0, 200),
                                          config_.trust_domain));
    }
    name = id->name;
    kind = id->kind;
  }
  const identity::DeviceEntry* dev = snapshot->fleet->findDevice(name);
  bool is_user = false;
  for (const auto& [serial, user] : snapshot->fleet->user_serials) is_user = is_user || user == name;
  if ((!kind || *kind == core::PrincipalKind::kDevice) && dev != nullptr) {
    p = devicePrincipal(name, *dev, ctx.time.value_or(deps_.clock.now()));
  } else if ((!kind || *kind == core::PrincipalKind::kUser) && is_user) {
    p.id = name;
    p.kind = core::PrincipalKind::kUser;
  } else {
    co_return errorResponse(http::status::not_found, "not_found",
                            fmt::format("no registered principal '{}': give a device or user name, or its SPIFFE ID",
                                        who.substr(0, 200)));
  }
  policy::Explanation e = snapshot->policy->explain(p, action, resource, ctx);
  nlohmann::json out = explanationToJson(e);
  out["principal"] = {{"id", p.id},
                      {"kind", std::string(core::principalKindName(p.kind))},
                      {"spiffe_id", core::makeSpiffeId(config_.trust_domain, p.kind, p.id)},
                      {"segments", snapshot->policy->segmentsOf(p)}};
  out["action"] = action;
  out["resource"] = resource;
  co_return jsonResponse(http::status::ok, out);
}

asio::awaitable<ServerResponse> ApiServer::Impl::policyHistory() {
  auto work = [this]() { return deps_.store.listPolicyVersions(10000); };
  auto versions = co_await onWorker(work);
  if (!versions.isOk()) co_return statusResponse(versions.status());
  nlohmann::json list = nlohmann::json::array();
  for (const store::PolicyVersion& v : *versions) {
    list.push_back({{"version", v.version},
                    {"created_at", core::formatRfc3339(core::fromUnixSeconds(v.created_at))},
                    {"actor", v.actor}});
  }
  int64_t active = versions->empty() ? 0 : versions->front().version;
  co_return jsonResponse(http::status::ok, {{"active", active}, {"versions", list}});
}

namespace {

std::optional<int64_t> parseVersion(std::string_view s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v > 0 ? std::optional<int64_t>(v) : std::nullopt;
}

}  // namespace

asio::awaitable<ServerResponse> ApiServer::Impl::policyVersion(const Route& route) {
  auto version = parseVersion(route.version);
  if (!version) {
    co_return errorResponse(http::status::bad_request, "invalid_argument", "the version must be a positive integer");
  }
  auto work = [this, v = *version]() { return deps_.store.policyVersion(v); };
  auto found = co_await onWorker(work);
  if (!found.isOk()) co_return statusResponse(found.status());
  if (!found->has_value()) {
    co_return errorResponse(http::status::not_found, "not_found",
                            fmt::format("there is no policy version {} (see `warden policy history`)", *version));
  }
  co_return jsonResponse(http::status::ok, policyToJson(**found));
}

asio::awaitable<ServerResponse> ApiServer::Impl::policyRollback(const OperatorIdentity& op, const ServerRequest& req) {
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {"version", "force"}); !s.isOk()) co_return statusResponse(s);
  auto it = body->find("version");
  if (it == body->end() || !it->is_number_integer() || it->get<int64_t>() <= 0) {
    co_return errorResponse(http::status::bad_request, "invalid_argument", "'version' must be a positive integer");
  }
  const int64_t version = it->get<int64_t>();
  bool force = false;
  if (auto f = body->find("force"); f != body->end() && f->is_boolean()) force = f->get<bool>();
  auto work = [this, version]() { return deps_.store.policyVersion(version); };
  auto found = co_await onWorker(work);
  if (!found.isOk()) co_return statusResponse(found.status());
  if (!found->has_value()) {
    co_return errorResponse(http::status::not_found, "not_found",
                            fmt::format("there is no policy version {} (see `warden policy history`)", version));
  }
  std::string text = (*found)->text;
  std::string filename = fmt::format("policy v{}", version);
  co_return co_await storePolicy(op, text, filename, force, version);
}

asio::awaitable<ServerResponse> ApiServer::Impl::policyShow() {
  auto work7 = [this]() { return deps_.store.activePolicy(); };
  auto active = co_await onWorker(work7);
  if (!active.isOk()) co_return statusResponse(active.status());
  if (!active->has_value()) {
    co_return errorResponse(http::status::not_found, "not_found",
                            "no policy is stored yet; apply one with `warden policy apply FILE`");
  }
  co_return jsonResponse(http::status::ok, policyToJson(**active));
}

asio::awaitable<ServerResponse> ApiServer::Impl::eventsRead(const Route& route) {
  auto query = parseEventsQuery(route.query, config_.limits.max_event_wait.count());
  if (!query.isOk()) co_return statusResponse(query.status());
  const std::optional<int64_t> since = query->since;
  const size_t limit = static_cast<size_t>(query->limit.value_or(kDefaultEventLimit));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(query->wait_seconds);
  struct Page {
    core::Status status;
    std::vector<store::EventRecord> events;
    int64_t last_id = 0;
  };
  for (;;) {
    const int64_t committed_before = last_committed_event_id_;
    auto work8 = [this, since, limit]() -> Page {
      Page p;
      auto events = deps_.store.listEvents(since, limit);
      if (!events.isOk()) {
        p.status = events.status();
        return p;
      }
      p.events = std::move(events).value();
      auto last = deps_.store.lastEventId();
      if (!last.isOk()) {
        p.status = last.status();
        return p;
      }
      p.last_id = *last;
      return p;
    };
    Page page = co_await onWorker(work8);
    if (!page.status.isOk()) co_return statusResponse(page.status);
    bool respond = !page.events.empty() || !since || query->wait_seconds == 0 || stopping_ ||
                   std::chrono::steady_clock::now() >= deadline;
    if (!respond && last_committed_event_id_ != committed_before) continue;  // committed while we queried
    if (respond) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& e : page.events) list.push_back(monitor::eventRecordToJson(e));
      co_return jsonResponse(http::status::ok, {{"events", std::move(list)}, {"last_id", page.last_id}});
    }
    // Long-poll: sleep until an event commits or the wait ends.
    asio::steady_timer timer(io_, deadline);
    const uint64_t waiter = next_waiter_id_++;
    event_waiters_.emplace(waiter, &timer);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    (void)ec;
    event_waiters_.erase(waiter);
  }
}

}  // namespace warden::api
