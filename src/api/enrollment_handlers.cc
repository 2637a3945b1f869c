// enrollment_handlers.cc: the admin API of issue 4's enrollment: manufacturers
// (factory identities), requests awaiting manual approval, and per-device
// certificate lifetimes.

// g++ 12 reports a false -Wmismatched-new-delete on Asio's awaitable frame
// allocator (aligned_new / operator delete pair) in some coroutines.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "api/api_json.h"
#include "api/api_server_impl.h"
#include "core/names.h"
#include "crypto/crypto.h"
#include "identity/factory_identity.h"
#include "monitor/event.h"
#include "monitor/event_log.h"
#include "pki/manufacturer_anchors.h"
#include "store/store.h"

namespace warden::api {
namespace {

constexpr size_t kMaxNamePrefix = 32;

std::string rfc3339(int64_t t) { return core::formatRfc3339(core::fromUnixSeconds(t)); }

nlohmann::json labelsJson(const core::Labels& labels) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : labels) j[k] = v;
  return j;
}

nlohmann::json manufacturerToJson(const store::ManufacturerRecord& m) {
  nlohmann::json cas = nlohmann::json::array();
  if (auto certs = crypto::certsFromPem(m.ca_pem); certs.isOk()) {
    for (const auto& c : *certs) {
      cas.push_back({{"subject", crypto::commonName(c.get())},
                     {"fingerprint", crypto::caFingerprint(c.get())},
                     {"not_after", core::formatRfc3339(crypto::notAfter(c.get()))}});
    }
  }
  return {{"name", m.name},
          {"role", m.role},
          {"labels", labelsJson(m.labels)},
          {"name_prefix", m.name_prefix},
          {"approval", m.approval.empty() ? "fleet" : m.approval},
          {"cert_ttl", m.cert_ttl_s > 0 ? nlohmann::json(core::formatDuration(m.cert_ttl_s)) : nlohmann::json(nullptr)},
          {"auto_register", m.auto_register},
          {"allowed_serials", m.serial_count},
          {"ca", std::move(cas)},
          {"created_at", rfc3339(m.created_at)}};
}

nlohmann::json requestToJson(const store::EnrollRequestRecord& r) {
  return {{"id", r.id},
          {"device", r.device},
          {"kind", r.manufacturer.empty() ? "token" : "factory"},
          {"manufacturer", r.manufacturer.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.manufacturer)},
          {"serial_number", r.serial_number.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.serial_number)},
          {"key_fingerprint", r.pubkey_fp},
          {"state", store::enrollRequestStateName(r.state)},
          {"created_at", rfc3339(r.created_at)},
          {"expires_at", rfc3339(r.expires_at)},
          {"remote", r.remote}};
}

std::string stringField(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// parseManufacturer validates a POST /v1/manufacturers body.
core::Result<store::ManufacturerRecord> parseManufacturer(const nlohmann::json& body) {
  WARDEN_RETURN_IF_ERROR(checkKnownKeys(body, {"name", "ca_pem", "role", "labels", "name_prefix", "approval", "cert_ttl",
                                           "auto_register", "serials"}));
  store::ManufacturerRecord m;
  m.name = stringField(body, "name");
  WARDEN_RETURN_IF_ERROR(core::checkName("manufacturer name", m.name));
  m.role = stringField(body, "role");
  WARDEN_RETURN_IF_ERROR(core::checkName("role", m.role));
  m.ca_pem = stringField(body, "ca_pem");
  if (auto s = pki::checkManufacturerCa(m.ca_pem); !s.isOk()) {
    return core::invalidArgument("'ca_pem': " + s.message());
  }
  if (auto it = body.find("labels"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return core::invalidArgument("'labels' must be an object of strings");
    for (auto l = it->begin(); l != it->end(); ++l) {
      if (!l.value().is_string()) return core::invalidArgument("'labels' values must be strings");
      std::string key, value;
      WARDEN_RETURN_IF_ERROR(core::parseLabel(l.key() + "=" + l.value().get<std::string>(), key, value));
      m.labels[key] = value;
    }
  }
  m.name_prefix = stringField(body, "name_prefix");
  if (m.name_prefix.size() > kMaxNamePrefix) return core::invalidArgument("'name_prefix' is at most 32 characters");
  for (char c : m.name_prefix) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return core::invalidArgument("'name_prefix' may hold only a-z, 0-9 and '-' (device names are lowercase)");
    }
  }
  if (!m.name_prefix.empty() && m.name_prefix.front() == '-') {
    return core::invalidArgument("'name_prefix' must start with a letter or digit");
  }
  m.approval = stringField(body, "approval");
  if (m.approval != "" && m.approval != "auto" && m.approval != "manual") {
    return core::invalidArgument("'approval' must be \"auto\" or \"manual\" (or absent: the fleet's setting)");
  }
  if (std::string ttl = stringField(body, "cert_ttl"); !ttl.empty()) {
    WARDEN_ASSIGN_OR_RETURN(m.cert_ttl_s, identity::parseCertTtl(ttl));
  }
  auto ar = body.find("auto_register");
  m.auto_register = ar != body.end() && ar->is_boolean() && ar->get<bool>();
  auto serials = body.find("serials");
  const bool has_serials = serials != body.end() && !serials->is_null();
  if (m.auto_register == has_serials) {
    return core::invalidArgument("give exactly one of 'serials' (an allow-list) and 'auto_register': true");
  }
  if (has_serials) {
    if (!serials->is_array()) return core::invalidArgument("'serials' must be a list of strings");
    std::string text;
    for (const auto& v : *serials) {
      if (!v.is_string()) return core::invalidArgument("'serials' must be a list of strings");
      text += v.get<std::string>() + "\n";
    }
    WARDEN_ASSIGN_OR_RETURN(m.serials, identity::parseSerialAllowList(text));
    if (m.serials.empty()) return core::invalidArgument("the serial allow-list is empty");
  }
  return m;
}

}  // namespace

asio::awaitable<ServerResponse> ApiServer::Impl::manufacturerList() {
  auto work = [this]() { return deps_.store.listManufacturers(); };
  auto list = co_await onWorker(work);
  if (!list.isOk()) co_return statusResponse(list.status());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : *list) out.push_back(manufacturerToJson(m));
  co_return jsonResponse(http::status::ok, {{"manufacturers", std::move(out)}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::manufacturerAdd(const OperatorIdentity& op, const ServerRequest& req) {
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return statusResponse(body.status());
  auto parsed = parseManufacturer(*body);
  if (!parsed.isOk()) co_return statusResponse(parsed.status());
  store::ManufacturerRecord m = std::move(parsed).value();
  m.created_at = core::unixSeconds(deps_.clock.now());
  auto work = [this, m]() -> core::Result<store::ManufacturerRecord> {
    WARDEN_RETURN_IF_ERROR(deps_.store.insertManufacturer(m));
    WARDEN_ASSIGN_OR_RETURN(std::optional<store::ManufacturerRecord> stored, deps_.store.getManufacturer(m.name));
    if (!stored) return core::internalError("the manufacturer vanished after it was stored");
    return std::move(*stored);
  };
  auto stored = co_await onWorker(work);
  if (!stored.isOk()) co_return statusResponse(stored.status());
  co_await reloadManufacturerAnchors();
  nlohmann::json view = manufacturerToJson(*stored);
  recordEvent(monitor::event_type::kManufacturerAdd, "", op.spiffe_id, "admin:manufacturer.add", m.name, "permit",
              op.rule, std::string(monitor::reason::kPermitted),
              {{"role", m.role}, {"auto_register", m.auto_register}, {"allowed_serials", stored->serial_count},
               {"ca", view["ca"]}});
  co_return jsonResponse(http::status::created, view);
}

asio::awaitable<ServerResponse> ApiServer::Impl::manufacturerRemove(const OperatorIdentity& op, const std::string& name) {
  auto work = [this, name]() { return deps_.store.deleteManufacturer(name); };
  auto removed = co_await onWorker(work);
  if (!removed.isOk()) co_return statusResponse(removed.status());
  if (!*removed) {
    co_return errorResponse(http::status::not_found, "not_found",
                            fmt::format("manufacturer '{}' does not exist; `warden manufacturer list` shows them", name));
  }
  // Handshakes from now on no longer accept its factory certificates.
  co_await reloadManufacturerAnchors();
  recordEvent(monitor::event_type::kManufacturerRemove, "", op.spiffe_id, "admin:manufacturer.remove", name, "permit",
              op.rule, std::string(monitor::reason::kPermitted));
  co_return jsonResponse(http::status::ok, {{"name", name}, {"removed", true}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::enrollList() {
  auto work = [this]() { return deps_.store.listEnrollRequests(); };
  auto list = co_await onWorker(work);
  if (!list.isOk()) co_return statusResponse(list.status());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : *list) out.push_back(requestToJson(r));
  co_return jsonResponse(http::status::ok, {{"requests", std::move(out)}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::enrollDecide(const OperatorIdentity& op, const std::string& id,
                                                            bool approve) {
  if (id.empty() || id.size() > 64) {
    co_return errorResponse(http::status::bad_request, "invalid_argument", "invalid enrollment request id");
  }
  const std::string actor = op.spiffe_id;
  auto work = [this, id, approve, actor]() { return deps_.store.decideEnrollRequest(id, approve, actor); };
  auto decided = co_await onWorker(work);
  if (!decided.isOk()) co_return statusResponse(decided.status());
  recordEvent(approve ? monitor::event_type::kEnrollApprove : monitor::event_type::kEnrollDeny,
              deviceSpiffeId(decided->device), op.spiffe_id, "admin:device.approve", decided->device, "permit", op.rule,
              std::string(monitor::reason::kPermitted), {{"request", id}});
  co_return jsonResponse(http::status::ok, requestToJson(*decided));
}

asio::awaitable<ServerResponse> ApiServer::Impl::deviceSet(const OperatorIdentity& op, const std::string& name,
                                                         const ServerRequest& req) {
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {"cert_ttl"}); !s.isOk()) co_return statusResponse(s);
  auto it = body->find("cert_ttl");
  if (it == body->end()) {
    co_return errorResponse(http::status::bad_request, "invalid_argument", "nothing to set: give 'cert_ttl'");
  }
  int64_t ttl = 0;  // null or "": back to the manufacturer's or the fleet's lifetime
  if (it->is_string() && !it->get<std::string>().empty()) {
    auto parsed = identity::parseCertTtl(it->get<std::string>());
    if (!parsed.isOk()) co_return statusResponse(parsed.status());
    ttl = *parsed;
  } else if (!it->is_null() && !it->is_string()) {
    co_return errorResponse(http::status::bad_request, "invalid_argument",
                            "'cert_ttl' must be a lifetime such as \"12h\", or null for the default");
  }
  auto work = [this, name, ttl]() -> core::Result<store::DeviceRecord> {
    WARDEN_RETURN_IF_ERROR(deps_.store.setDeviceCertTtl(name, ttl));
    return deps_.store.getDevice(name);
  };
  auto device = co_await onWorker(work);
  if (!device.isOk()) {
    if (device.status().code() == core::ErrorCode::kNotFound) {
      co_return errorResponse(http::status::not_found, "not_found",
                              fmt::format("device '{}' does not exist; `warden device list` shows the fleet", name));
    }
    co_return statusResponse(device.status());
  }
  recordEvent(monitor::event_type::kDeviceSet, deviceSpiffeId(name), op.spiffe_id, "admin:device.set", name, "permit",
              op.rule, std::string(monitor::reason::kPermitted),
              {{"cert_ttl", ttl > 0 ? nlohmann::json(core::formatDuration(ttl)) : nlohmann::json(nullptr)}});
  co_return jsonResponse(http::status::ok, deviceToJson(*device, std::nullopt, false, config_.trust_domain));
}

}  // namespace warden::api
