#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/api_client.h"
#include "core/names.h"
#include "core/status.h"

// The operator CLI's side of the admin API: request validation done before
// contacting the server, the mapping of HTTP answers and transport failures
// to exit codes, and the text/JSON renderings of `warden device|policy|events`.
namespace warden::api {

// Exit codes of `warden` and `warden-agent` (issue 2, "Operator CLI").
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;      // refused, not found, failed
inline constexpr int kExitUsage = 2;       // usage or validation error
inline constexpr int kExitNoServer = 3;    // unreachable, TLS or authentication failure

// exitCodeFor maps a failed Status to an exit code: kInvalidArgument -> 2;
// kUnavailable, kDeadlineExceeded, kUnauthenticated -> 3; everything else 1.
int exitCodeFor(const core::Status& status);

// statusFromResponse turns a non-2xx HTTP response into a Status whose code
// drives exitCodeFor: 400/413/415/422 kInvalidArgument (422 "policy_lockout":
// kFailedPrecondition); 401 kUnauthenticated; 403 kPermissionDenied when the
// answer names the deciding policy "rule", else kUnauthenticated (the
// certificate is not an operator's); 404 kNotFound; 409 kAlreadyExists; 429
// kResourceExhausted; others kInternal. The message is the server's
// "message" field (or the body's first line). 2xx -> ok.
core::Status statusFromResponse(const HttpResponse& response);

// DeviceAddRequest is `warden device add` after local validation.
struct DeviceAddRequest {
  std::string name;
  std::string role;
  core::Labels labels;
  std::optional<int64_t> token_ttl_seconds;
};

// validateDeviceAdd checks the name, role, each "k=v" label (no duplicate
// keys) and the optional duration text; kInvalidArgument with the reason.
core::Result<DeviceAddRequest> validateDeviceAdd(std::string_view name, std::string_view role,
                                                 const std::vector<std::string>& labels,
                                                 std::string_view token_ttl);

// deviceAddBody returns the JSON body of POST /v1/devices:
// {name, role, labels, token_ttl? (seconds)}.
nlohmann::json deviceAddBody(const DeviceAddRequest& request);

// tokenBody returns the JSON body of POST /v1/devices/{name}/token:
// {ttl? (seconds)}.
nlohmann::json tokenBody(std::optional<int64_t> ttl_seconds);

// eventsTarget returns "/v1/events" with since/limit/wait query parameters.
std::string eventsTarget(std::optional<int64_t> since, std::optional<int64_t> limit, std::optional<int64_t> wait);

// deviceView picks {name, spiffe_id, role, labels, state, cert_serial,
// cert_not_after, connected} from an API device object (missing -> null).
nlohmann::json deviceView(const nlohmann::json& device);
// deviceAddView picks {name, role, labels, token, token_expires_at, ca_fingerprint}.
nlohmann::json deviceAddView(const nlohmann::json& added);
// eventsFromBody accepts a JSON array of events or {"events": [...]}.
core::Result<std::vector<nlohmann::json>> eventsFromBody(const nlohmann::json& body);
// devicesFromBody accepts a JSON array of devices or {"devices": [...]}.
core::Result<std::vector<nlohmann::json>> devicesFromBody(const nlohmann::json& body);

// Text renderings (each ends with a newline).
std::string formatDeviceText(const nlohmann::json& device);
std::string formatDeviceTable(const std::vector<nlohmann::json>& devices);
std::string formatDeviceAddText(const nlohmann::json& added);
std::string formatEventText(const nlohmann::json& event);
// formatEventJson returns the event as one compact JSON line (NDJSON).
std::string formatEventJson(const nlohmann::json& event);

// AdminClient sends admin API requests and decodes JSON answers.
class AdminClient {
 public:
  explicit AdminClient(std::unique_ptr<ApiClient> client) : client_(std::move(client)) {}

  // call sends |method| |target| with an optional JSON body and returns the
  // decoded JSON answer (null for an empty 2xx body). Transport failures keep
  // their codes (see api_client.h); HTTP errors go through statusFromResponse.
  core::Result<nlohmann::json> call(std::string_view method, std::string target,
                                    const std::optional<nlohmann::json>& body = std::nullopt);
  // callRaw sends |body| as-is with |content_type| and extra |headers|.
  core::Result<nlohmann::json> callRaw(std::string_view method, std::string target, std::string body,
                                       std::string_view content_type, std::vector<HttpHeader> headers = {});

  const ServerUrl& server() const { return client_->server(); }

 private:
  core::Result<nlohmann::json> decode(const HttpResponse& response);
  std::unique_ptr<ApiClient> client_;
};

}  // namespace warden::api
