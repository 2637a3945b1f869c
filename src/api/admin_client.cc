#include "api/admin_client.h"

#include <algorithm>
#include <fmt/format.h>

namespace warden::api {
namespace {

using core::Result;
using core::Status;
using nlohmann::json;

// scalarText renders a JSON scalar for text output ("-" for null/absent).
std::string scalarText(const json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
  return j.dump();
}

std::string fieldText(const json& obj, std::string_view key) {
  if (!obj.is_object()) return "-";
  auto it = obj.find(std::string(key));
  return it == obj.end() ? "-" : scalarText(*it);
}

std::string labelsText(const json& labels) {
  if (!labels.is_object() || labels.empty()) return "-";
  std::string out;
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (!out.empty()) out += ",";
    out += it.key() + "=" + scalarText(it.value());
  }
  return out;
}

json pick(const json& obj, std::initializer_list<const char*> keys) {
  json out = json::object();
  for (const char* k : keys) {
    auto it = obj.is_object() ? obj.find(k) : obj.end();
    out[k] = (obj.is_object() && it != obj.end()) ? *it : json(nullptr);
  }
  return out;
}

// oneLine keeps the first line of |s|, at most 300 characters, so a server's
// message can be printed safely.
std::string oneLine(std::string_view s) {
  s = s.substr(0, std::min(s.find('\n'), s.size()));
  std::string out;
  for (char c : s.substr(0, 300)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  return out;
}

}  // namespace

int exitCodeFor(const Status& status) {
  switch (status.code()) {
    case core::ErrorCode::kOk: return kExitOk;
    case core::ErrorCode::kInvalidArgument: return kExitUsage;
    case core::ErrorCode::kUnavailable:
    case core::ErrorCode::kDeadlineExceeded:
    case core::ErrorCode::kUnauthenticated: return kExitNoServer;
    default: return kExitFailed;
  }
}

Status statusFromResponse(const HttpResponse& response) {
  if (response.status >= 200 && response.status < 300) return Status::ok();
  std::string code;
  std::string message;
  bool policy_decision = false;  // a 403 carrying the deciding rule is a policy refusal
  auto parsed = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    auto e = parsed.find("error");
    if (e != parsed.end() && e->is_string()) code = e->get<std::string>();
    if (e != parsed.end() && e->is_object()) {  // {"error": {"code", "message"}}
      if (auto c = e->find("code"); c != e->end() && c->is_string()) code = c->get<std::string>();
      if (auto m = e->find("message"); m != e->end() && m->is_string()) message = m->get<std::string>();
    }
    if (auto m = parsed.find("message"); m != parsed.end() && m->is_string()) message = m->get<std::string>();
    policy_decision = parsed.contains("rule");
  }
  if (message.empty()) message = oneLine(response.body);
  if (message.empty()) message = fmt::format("HTTP {} {}", response.status, oneLine(response.reason));
  // Multi-line messages (policy errors list several problems) are kept whole.
  switch (response.status) {
    case 400:
    case 413:
    case 415: return core::invalidArgument(message);
    case 422:
      // A valid policy that would lock the operator out is refused, not invalid.
      if (code == "policy_lockout") return core::failedPrecondition(message);
      return core::invalidArgument(message);
    case 401: return core::unauthenticated(message);
    case 403:
      // The policy refused an authenticated operator: exit 1. Any other 403
      // is about the certificate's identity: exit 3 like a TLS failure.
      if (policy_decision) return core::permissionDenied(message);
      return core::unauthenticated(message);
    case 404: return core::notFound(message);
    case 409: return core::alreadyExists(message);
    case 429: return core::resourceExhausted(message);
    default: return core::internalError(fmt::format("server error (HTTP {}): {}", response.status, message));
  }
}

Result<DeviceAddRequest> validateDeviceAdd(std::string_view name, std::string_view role,
                                           const std::vector<std::string>& labels, std::string_view token_ttl) {
  DeviceAddRequest out;
  WARDEN_RETURN_IF_ERROR(core::checkName("device name", name));
  WARDEN_RETURN_IF_ERROR(core::checkName("role", role));
  out.name = std::string(name);
  out.role = std::string(role);
  for (const auto& text : labels) {
    std::string key, value;
    WARDEN_RETURN_IF_ERROR(core::parseLabel(text, key, value));
    if (out.labels.count(key) != 0) return core::invalidArgument(fmt::format("label '{}' is given twice", key));
    out.labels.emplace(std::move(key), std::move(value));
  }
  if (!token_ttl.empty()) {
    WARDEN_ASSIGN_OR_RETURN(int64_t ttl, core::parseDuration(token_ttl));
    out.token_ttl_seconds = ttl;
  }
  return out;
}

json deviceAddBody(const DeviceAddRequest& request) {
  json labels = json::object();
  for (const auto& [k, v] : request.labels) labels[k] = v;
  json body = {{"name", request.name}, {"role", request.role}, {"labels", std::move(labels)}};
  if (request.token_ttl_seconds) body["token_ttl"] = *request.token_ttl_seconds;
  return body;
}

json tokenBody(std::optional<int64_t> ttl_seconds) {
  json body = json::object();
  if (ttl_seconds) body["ttl"] = *ttl_seconds;
  return body;
}

std::string eventsTarget(std::optional<int64_t> since, std::optional<int64_t> limit, std::optional<int64_t> wait) {
  std::string target = "/v1/events";
  char sep = '?';
  auto add = [&](const char* key, std::optional<int64_t> v) {
    if (!v) return;
    target += fmt::format("{}{}={}", sep, key, *v);
    sep = '&';
  };
  add("since", since);
  add("limit", limit);
  add("wait", wait);
  return target;
}

json deviceView(const json& device) {
  json out = pick(device, {"name", "spiffe_id", "role", "labels", "state", "cert_serial", "cert_not_after", "connected",
                           "key_store", "cert_ttl"});
  if (out["labels"].is_null()) out["labels"] = json::object();
  if (out["connected"].is_null()) out["connected"] = false;
  if (!out["key_store"].is_object()) out["key_store"] = {{"claimed", nullptr}, {"verified", false}};
  // The posture engine's view (issue 6), when the server has one.
  if (device.is_object() && device.contains("posture") && device["posture"].is_object()) out["posture"] = device["posture"];
  return out;
}

json deviceAddView(const json& added) {
  json out = pick(added, {"name", "role", "labels", "token", "token_expires_at", "ca_fingerprint"});
  if (out["labels"].is_null()) out["labels"] = json::object();
  return out;
}

namespace {
Result<std::vector<json>> arrayFrom(const json& body, const char* key) {
  const json* arr = &body;
  if (body.is_object()) {
    auto it = body.find(key);
    if (it == body.end()) return core::dataLoss(fmt::format("unexpected answer from the server: no '{}' list", key));
    arr = &*it;
  }
  if (!arr->is_array()) return core::dataLoss(fmt::format("unexpected answer from the server: '{}' is not a list", key));
  std::vector<json> out;
  out.reserve(arr->size());
  for (const auto& e : *arr) out.push_back(e);
  return out;
}
}  // namespace

Result<std::vector<json>> eventsFromBody(const json& body) { return arrayFrom(body, "events"); }
Result<std::vector<json>> devicesFromBody(const json& body) { return arrayFrom(body, "devices"); }

// keyStoreText renders the key_store posture: "tpm2 (claimed by the
// device, not verified)", or "not stated".
std::string keyStoreText(const json& ks) {
  if (!ks.is_object() || !ks.contains("claimed") || !ks["claimed"].is_string()) return "not stated";
  bool verified = ks.contains("verified") && ks["verified"].is_boolean() && ks["verified"].get<bool>();
  return fmt::format("{} (claimed by the device, {})", ks["claimed"].get<std::string>(),
                     verified ? "verified" : "not verified");
}

// keyInTpmText renders the posture's key_in_tpm: "verified (TPM2_Certify
// at T)", "failed (REASON at T)", "claimed (not proven yet)", ...
std::string keyInTpmText(const json& p) {
  const json state = p.value("key_in_tpm", json());
  if (!state.is_string()) return "unknown";
  const json proof = p.value("key_proof", json());
  const std::string when = proof.is_object() ? scalarText(proof.value("at", json())) : std::string("-");
  const std::string s = state.get<std::string>();
  if (s == "verified") return fmt::format("verified (TPM2_Certify by the attestation key, {})", when);
  if (s == "failed") {
    return fmt::format("failed ({}, {})", proof.is_object() ? scalarText(proof.value("reason", json())) : "-", when);
  }
  if (s == "claimed") return "claimed (not proven for the current key yet)";
  if (s == "not_claimed") return "not claimed (the key is not in a TPM)";
  return s;
}

// postureText renders the posture block of `warden device show` ("" without one).
std::string postureText(const json& p) {
  if (!p.is_object()) return {};
  auto at = [](const json& j, const char* a, const char* b) -> json {
    if (!j.is_object() || !j.contains(a) || !j[a].is_object() || !j[a].contains(b)) return json();
    return j[a][b];
  };
  std::string reasons;
  if (p.contains("reasons") && p["reasons"].is_array()) {
    for (const auto& r : p["reasons"]) reasons += (reasons.empty() ? "" : ", ") + scalarText(r);
  }
  std::string components;
  if (p.contains("trust_components") && p["trust_components"].is_array()) {
    for (const auto& c : p["trust_components"]) {
      components += fmt::format("{}{} {} (-{})", components.empty() ? "" : ", ", scalarText(c.value("name", json())),
                                scalarText(c.value("value", json())), scalarText(c.value("cost", json())));
    }
  }
  const json att = p.value("attestation", json());
  std::string deadline = "none (no segment requires attestation)";
  if (att.is_object() && att.value("required", false)) {
    deadline = fmt::format("next due {}, stale at {}", scalarText(att.value("next_due", json())),
                           scalarText(att.value("stale_at", json())));
  }
  return fmt::format(
      "posture:        {}{}\n"
      "trust:          {} ({})\n"
      "attestation:    last {} {} {}{}\n"
      "last good:      {} ({})\n"
      "firmware:       {} {} approved: {}\n"
      "key in TPM:     {}\n"
      "deadline:       {}\n",
      scalarText(p.value("state", json())), reasons.empty() ? std::string() : fmt::format(" ({})", reasons),
      scalarText(p.value("trust", json())), components, scalarText(at(p, "last_attestation", "at")),
      scalarText(at(p, "last_attestation", "assurance")), scalarText(at(p, "last_attestation", "result")),
      at(p, "last_attestation", "reason").is_string() ? fmt::format(" {}", scalarText(at(p, "last_attestation", "reason")))
                                                      : std::string(),
      scalarText(at(p, "last_good", "at")), scalarText(at(p, "last_good", "assurance")),
      scalarText(at(p, "firmware", "model")), scalarText(at(p, "firmware", "version")),
      scalarText(at(p, "firmware", "approved")), keyInTpmText(p), deadline);
}

std::string formatDeviceText(const json& device) {
  json d = deviceView(device);
  return fmt::format(
      "name:           {}\n"
      "spiffe id:      {}\n"
      "role:           {}\n"
      "labels:         {}\n"
      "state:          {}\n"
      "connected:      {}\n"
      "cert serial:    {}\n"
      "cert not after: {}\n"
      "key store:      {}\n"
      "cert ttl:       {}\n",
      scalarText(d["name"]), scalarText(d["spiffe_id"]), scalarText(d["role"]), labelsText(d["labels"]),
      scalarText(d["state"]), scalarText(d["connected"]), scalarText(d["cert_serial"]), scalarText(d["cert_not_after"]),
      keyStoreText(d["key_store"]),
      d["cert_ttl"].is_null() ? std::string("fleet or manufacturer default") : scalarText(d["cert_ttl"])) +
         postureText(d.value("posture", json()));
}

std::string formatDeviceTable(const std::vector<json>& devices) {
  if (devices.empty()) return "no devices (add one with `warden device add NAME --role ROLE`)\n";
  std::vector<std::array<std::string, 6>> rows;
  rows.push_back({"NAME", "ROLE", "STATE", "CONNECTED", "CERT NOT AFTER", "LABELS"});
  for (const auto& raw : devices) {
    json d = deviceView(raw);
    rows.push_back({scalarText(d["name"]), scalarText(d["role"]), scalarText(d["state"]), scalarText(d["connected"]),
                    scalarText(d["cert_not_after"]), labelsText(d["labels"])});
  }
  std::array<size_t, 6> width{};
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string formatDeviceAddText(const json& added) {
  json a = deviceAddView(added);
  std::string name = scalarText(a["name"]);
  return fmt::format(
      "device {} added (role {}, labels {})\n"
      "one-time enrollment token: {}\n"
      "token expires at:          {}\n"
      "CA fingerprint:            {}\n"
      "enroll the device with:\n"
      "  warden-agent enroll --server URL --name {} --token {} --ca-fingerprint {} --dir DIR\n",
      name, scalarText(a["role"]), labelsText(a["labels"]), scalarText(a["token"]), scalarText(a["token_expires_at"]),
      scalarText(a["ca_fingerprint"]), name, scalarText(a["token"]), scalarText(a["ca_fingerprint"]));
}

std::string formatEventText(const json& event) {
  std::string line = fmt::format("{:>6} {} {}", fieldText(event, "id"), fieldText(event, "time"), fieldText(event, "type"));
  for (const char* key : {"principal", "actor", "action", "resource", "decision", "rule", "reason"}) {
    std::string v = fieldText(event, key);
    if (v == "-" || v.empty()) continue;
    line += fmt::format(" {}={}", key, v);
  }
  if (event.is_object()) {
    auto it = event.find("detail");
    if (it != event.end() && !it->is_null() && !(it->is_object() && it->empty())) {
      line += " detail=" + it->dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  return oneLine(line) + "\n";
}

std::string formatEventJson(const json& event) {
  return event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

// ---------------------------------------------------------------------------

Result<json> AdminClient::call(std::string_view method, std::string target, const std::optional<json>& body) {
  HttpRequest req;
  req.method = std::string(method);
  req.target = std::move(target);
  req.headers.push_back({"Accept", "application/json"});
  if (body) {
    req.headers.push_back({"Content-Type", "application/json"});
    req.body = body->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  WARDEN_ASSIGN_OR_RETURN(HttpResponse resp, client_->send(req));
  return decode(resp);
}

Result<json> AdminClient::callRaw(std::string_view method, std::string target, std::string body,
                                  std::string_view content_type, std::vector<HttpHeader> headers) {
  HttpRequest req;
  req.method = std::string(method);
  req.target = std::move(target);
  req.headers = std::move(headers);
  req.headers.push_back({"Accept", "application/json"});
  req.headers.push_back({"Content-Type", std::string(content_type)});
  req.body = std::move(body);
  WARDEN_ASSIGN_OR_RETURN(HttpResponse resp, client_->send(req));
  return decode(resp);
}

Result<json> AdminClient::decode(const HttpResponse& response) {
  WARDEN_RETURN_IF_ERROR(statusFromResponse(response));
  if (response.body.empty()) return json(nullptr);
  json parsed = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return core::dataLoss("the server's answer is not valid JSON");
  return parsed;
}

}  // namespace warden::api
