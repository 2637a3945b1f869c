// posture_handlers.cc: the admin API of issue 6's posture: firmware
// reference values (approve, list, revoke-approval) and a device's timeline.

// g++ 12 reports a false -Wmismatched-new-delete on Asio's awaitable frame
// allocator (aligned_new / operator delete pair) in some coroutines.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "api/api_json.h"
#include "api/api_server_impl.h"
#include "core/names.h"
#include "monitor/event.h"
#include "monitor/event_log.h"
#include "store/store.h"
#include "trust/measurement.h"
#include "trust/posture.h"

namespace warden::api {
namespace {

constexpr size_t kMaxVersion = 64;
constexpr int64_t kDefaultHistory = 200;
constexpr int64_t kMaxHistory = 10000;

nlohmann::json approvalToJson(const store::FirmwareApproval& a) {
  auto when = [](int64_t t) {
    return t == 0 ? nlohmann::json(nullptr) : nlohmann::json(core::formatRfc3339(core::fromUnixSeconds(t)));
  };
  return {{"digest", a.digest},
          {"model", a.model},
          {"version", a.version},
          {"approved_at", when(a.approved_at)},
          {"approved_by", a.approved_by},
          {"state", a.revoked_at == 0 ? "approved" : "revoked"},
          {"revoked_at", when(a.revoked_at)},
          {"revoked_by", a.revoked_at == 0 ? nlohmann::json(nullptr) : nlohmann::json(a.revoked_by)}};
}

std::string stringField(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// parseDigest reads 'digest' as sha256:HEX (normalized to lowercase).
core::Result<trust::Digest> parseDigest(const nlohmann::json& body) {
  auto digest = trust::parseDigestText(stringField(body, "digest"));
  if (!digest) {
    return core::invalidArgument("'digest' must be sha256: followed by 64 hex digits (the SHA-256 of the image, "
                                 "e.g. from `sha256sum`)");
  }
  return *digest;
}

core::Status checkModel(const std::string& model) {
  if (!core::isValidLabelValue(model)) {
    return core::invalidArgument("'model' must be a device model as in the devices' `model` label: 1-63 of A-Z a-z "
                                 "0-9 . _ -");
  }
  return core::Status::ok();
}

std::optional<int64_t> limitParam(std::string_view query) {
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    if (pair.starts_with("limit=")) {
      std::string_view v = pair.substr(6);
      if (v.empty() || v.size() > 6) return std::nullopt;
      int64_t n = 0;
      for (char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
      }
      return n;
    }
    size_t amp = query.find('&');
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return kDefaultHistory;
}

ServerResponse noPosture() {
  return errorResponse(http::status::service_unavailable, "unavailable",
                       "this server runs without the posture engine");
}

}  // namespace

asio::awaitable<ServerResponse> ApiServer::Impl::firmwareList() {
  auto work = [this]() { return deps_.store.listFirmware(); };
  auto list = co_await onWorker(work);
  if (!list.isOk()) co_return statusResponse(list.status());
  nlohmann::json out = nlohmann::json::array();
  for (const store::FirmwareApproval& a : *list) out.push_back(approvalToJson(a));
  co_return jsonResponse(http::status::ok, {{"firmware", std::move(out)}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::firmwareApprove(const OperatorIdentity& op, const ServerRequest& req) {
  if (deps_.posture == nullptr) co_return noPosture();
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {"digest", "model", "version"}); !s.isOk()) co_return statusResponse(s);
  auto digest = parseDigest(*body);
  if (!digest.isOk()) co_return statusResponse(digest.status());
  const std::string model = stringField(*body, "model");
  if (auto s = checkModel(model); !s.isOk()) co_return statusResponse(s);
  const std::string version = stringField(*body, "version");
  bool printable = !version.empty() && version.size() <= kMaxVersion;
  for (char c : version) printable = printable && c > 0x20 && c < 0x7f;
  if (!printable) {
    co_return errorResponse(http::status::bad_request, "invalid_argument",
                            "'version' must be 1-64 printable characters without spaces, e.g. \"2.1.0\"");
  }
  store::FirmwareApproval a;
  a.digest = trust::digestText(*digest);
  a.model = model;
  a.version = version;
  a.approved_by = op.spiffe_id;
  auto result = std::make_shared<std::optional<core::Result<bool>>>();
  std::function<void(std::function<void()>)> start = [this, a, result](std::function<void()> done) {
    deps_.posture->approveFirmware(a, [result, done](core::Result<bool> r) {
      result->emplace(std::move(r));
      done();
    });
  };
  co_await awaitCallback(start, std::chrono::milliseconds(0), "firmware approve");
  if (!result->has_value()) co_return statusResponse(core::internalError("firmware approval did not finish"));
  const core::Result<bool>& r = **result;
  if (!r.isOk()) {
    if (r.status().code() == core::ErrorCode::kFailedPrecondition) {
      co_return errorResponse(http::status::conflict, "conflict", r.status().message());
    }
    co_return statusResponse(r.status());
  }
  recordEvent(monitor::event_type::kFirmwareApprove, "", op.spiffe_id, "admin:firmware.approve", "*", "permit", op.rule,
              std::string(monitor::reason::kPermitted),
              {{"digest", a.digest}, {"model", a.model}, {"version", a.version}, {"changed", *r}});
  co_return jsonResponse(http::status::ok, {{"digest", a.digest}, {"model", a.model}, {"version", a.version},
                                            {"changed", *r}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::firmwareRevoke(const OperatorIdentity& op, const ServerRequest& req) {
  if (deps_.posture == nullptr) co_return noPosture();
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {"digest", "model", "apply"}); !s.isOk()) co_return statusResponse(s);
  auto digest = parseDigest(*body);
  if (!digest.isOk()) co_return statusResponse(digest.status());
  std::optional<std::string> model;
  if (auto it = body->find("model"); it != body->end() && !it->is_null()) {
    model = it->is_string() ? it->get<std::string>() : std::string();
    if (auto s = checkModel(*model); !s.isOk()) co_return statusResponse(s);
  }
  bool apply = false;
  if (auto it = body->find("apply"); it != body->end() && !it->is_null()) {
    if (!it->is_boolean()) {
      co_return errorResponse(http::status::bad_request, "invalid_argument", "'apply' must be true or false");
    }
    apply = it->get<bool>();
  }
  auto result = std::make_shared<std::optional<core::Result<trust::RevokeOutcome>>>();
  const trust::Digest d = *digest;
  const std::string actor = op.spiffe_id;
  std::function<void(std::function<void()>)> start = [this, d, model, actor, apply,
                                                       result](std::function<void()> done) {
    deps_.posture->revokeApproval(d, model, actor, apply, [result, done](core::Result<trust::RevokeOutcome> r) {
      result->emplace(std::move(r));
      done();
    });
  };
  co_await awaitCallback(start, std::chrono::milliseconds(0), "firmware revoke");
  if (!result->has_value()) co_return statusResponse(core::internalError("firmware revocation did not finish"));
  const core::Result<trust::RevokeOutcome>& r = **result;
  if (!r.isOk()) {
    if (r.status().code() == core::ErrorCode::kNotFound) {
      co_return errorResponse(http::status::not_found, "not_found", r.status().message());
    }
    co_return statusResponse(r.status());
  }
  const std::string text = trust::digestText(d);
  nlohmann::json revoked = nlohmann::json::array();
  for (const store::FirmwareApproval& a : r->revoked) revoked.push_back(approvalToJson(a));
  nlohmann::json out = {{"digest", text},
                        {"model", model ? nlohmann::json(*model) : nlohmann::json(nullptr)},
                        {"applied", r->applied},
                        {"devices", r->devices},
                        {"quarantine", r->would_quarantine},
                        {"quarantine_count", r->would_quarantine.size()},
                        {"revoked", std::move(revoked)}};
  if (r->applied) {
    recordEvent(monitor::event_type::kFirmwareRevoke, "", op.spiffe_id, "admin:firmware.revoke", "*", "permit",
                op.rule, std::string(monitor::reason::kPermitted),
                {{"digest", text},
                 {"model", model ? nlohmann::json(*model) : nlohmann::json(nullptr)},
                 {"devices", r->devices.size()},
                 {"quarantined", r->would_quarantine.size()}});
  }
  co_return jsonResponse(http::status::ok, out);
}

asio::awaitable<ServerResponse> ApiServer::Impl::deviceHistory(const std::string& name, const Route& route) {
  auto limit = limitParam(route.query);
  if (!limit || *limit <= 0 || *limit > kMaxHistory) {
    co_return errorResponse(http::status::bad_request, "invalid_argument",
                            fmt::format("'limit' must be an integer from 1 to {}", kMaxHistory));
  }
  const std::string spiffe = deviceSpiffeId(name);
  struct History {
    core::Status status;
    std::vector<store::EventRecord> events;
  };
  auto work = [this, name, spiffe, n = static_cast<size_t>(*limit)]() -> History {
    History h;
    if (auto d = deps_.store.getDevice(name); !d.isOk()) {
      h.status = d.status();
      return h;
    }
    auto events = deps_.store.listEventsAbout(spiffe, n);
    if (!events.isOk()) {
      h.status = events.status();
      return h;
    }
    h.events = std::move(events).value();
    return h;
  };
  History h = co_await onWorker(work);
  if (!h.status.isOk()) {
    if (h.status.code() == core::ErrorCode::kNotFound) {
      co_return errorResponse(http::status::not_found, "not_found",
                              fmt::format("device '{}' does not exist; `warden device list` shows the fleet", name));
    }
    co_return statusResponse(h.status);
  }
  nlohmann::json list = nlohmann::json::array();
  for (const store::EventRecord& e : h.events) list.push_back(monitor::eventRecordToJson(e));
  nlohmann::json out = {{"name", name}, {"spiffe_id", spiffe}, {"events", std::move(list)}};
  if (deps_.posture != nullptr) {
    out["state"] = deps_.posture->stateOf(name);
    out["trust"] = deps_.posture->trustOf(name);
  }
  co_return jsonResponse(http::status::ok, out);
}

}  // namespace warden::api
