// Pure logic of the operator CLI: validation before contacting the server,
// HTTP answer -> exit code mapping, JSON/text renderings.

#include <gtest/gtest.h>

#include "api/admin_client.h"

namespace warden::api {
namespace {

using nlohmann::json;

HttpResponse response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

TEST(CliExitCodes, MapTransportFailuresToThree) {
  EXPECT_EQ(exitCodeFor(core::unavailable("refused")), 3);
  EXPECT_EQ(exitCodeFor(core::Status(core::ErrorCode::kDeadlineExceeded, "slow")), 3);
  EXPECT_EQ(exitCodeFor(core::unauthenticated("bad cert")), 3);
}

TEST(CliExitCodes, MapValidationToTwoAndOthersToOne) {
  EXPECT_EQ(exitCodeFor(core::Status::ok()), 0);
  EXPECT_EQ(exitCodeFor(core::invalidArgument("x")), 2);
  EXPECT_EQ(exitCodeFor(core::notFound("x")), 1);
  EXPECT_EQ(exitCodeFor(core::alreadyExists("x")), 1);
  EXPECT_EQ(exitCodeFor(core::permissionDenied("x")), 1);
  EXPECT_EQ(exitCodeFor(core::internalError("x")), 1);
  EXPECT_EQ(exitCodeFor(core::dataLoss("x")), 1);
}

TEST(CliStatusFromResponse, SuccessIsOk) {
  EXPECT_TRUE(statusFromResponse(response(200, "{}")).isOk());
  EXPECT_TRUE(statusFromResponse(response(201, "{}")).isOk());
}

TEST(CliStatusFromResponse, CarriesServerMessage) {
  core::Status s = statusFromResponse(response(404, R"({"error":"not_found","message":"device 'x' does not exist"})"));
  EXPECT_EQ(s.code(), core::ErrorCode::kNotFound);
  EXPECT_EQ(s.message(), "device 'x' does not exist");
}

TEST(CliStatusFromResponse, ValidationErrorsExitTwo) {
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(400, R"({"error":"invalid_argument","message":"p.yaml:3:5: bad"})"))), 2);
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(422, R"({"error":"invalid_argument","message":"m"})"))), 2);
  EXPECT_EQ(statusFromResponse(response(400, R"({"error":"invalid_argument","message":"p.yaml:3:5: bad"})")).message(),
            "p.yaml:3:5: bad");
}

TEST(CliStatusFromResponse, PolicyLockoutIsARefusal) {
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(422, R"({"error":"policy_lockout","message":"refused"})"))), 1);
}

TEST(CliStatusFromResponse, AuthenticationFailuresExitThree) {
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(401, R"({"error":"unauthenticated","message":"m"})"))), 3);
  // 403 about the certificate's identity (no deciding rule).
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(403, R"({"error":"permission_denied","message":"not a user"})"))), 3);
}

TEST(CliStatusFromResponse, PolicyDenialExitsOne) {
  core::Status s = statusFromResponse(
      response(403, R"({"error":"permission_denied","message":"no","rule":"default-deny","reason":"no_permit"})"));
  EXPECT_EQ(s.code(), core::ErrorCode::kPermissionDenied);
  EXPECT_EQ(exitCodeFor(s), 1);
}

TEST(CliStatusFromResponse, ConflictAndServerErrorsExitOne) {
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(409, R"({"error":"already_exists","message":"taken"})"))), 1);
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(500, "boom"))), 1);
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(503, ""))), 1);
  EXPECT_EQ(exitCodeFor(statusFromResponse(response(429, ""))), 1);
}

TEST(CliStatusFromResponse, NonJsonBodyGivesFirstLine) {
  core::Status s = statusFromResponse(response(500, "line one\nline two"));
  EXPECT_NE(s.message().find("line one"), std::string::npos);
  EXPECT_EQ(s.message().find("line two"), std::string::npos);
}

TEST(CliValidation, AcceptsValidDeviceAdd) {
  auto r = validateDeviceAdd("sensor-1", "sensor", {"site=plant-1", "line=3"}, "2h");
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->labels.at("site"), "plant-1");
  EXPECT_EQ(r->labels.at("line"), "3");
  EXPECT_EQ(r->token_ttl_seconds, 7200);
  json body = deviceAddBody(*r);
  EXPECT_EQ(body["name"], "sensor-1");
  EXPECT_EQ(body["role"], "sensor");
  EXPECT_EQ(body["labels"]["site"], "plant-1");
  EXPECT_EQ(body["token_ttl"], 7200);
}

TEST(CliValidation, OmitsTtlWhenNotGiven) {
  auto r = validateDeviceAdd("a", "b", {}, "");
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(deviceAddBody(*r).contains("token_ttl"));
  EXPECT_TRUE(deviceAddBody(*r)["labels"].is_object());
}

TEST(CliValidation, RejectsInvalidNames) {
  for (const char* name : {"", "Sensor", "-a", "a-", "a_b", "a.b", "a/b"}) {
    auto r = validateDeviceAdd(name, "sensor", {}, "");
    EXPECT_FALSE(r.isOk()) << name;
    EXPECT_EQ(exitCodeFor(r.status()), 2) << name;
  }
  EXPECT_FALSE(validateDeviceAdd(std::string(64, 'a'), "sensor", {}, "").isOk());
  EXPECT_FALSE(validateDeviceAdd("ok", "Bad Role", {}, "").isOk());
}

TEST(CliValidation, RejectsInvalidLabels) {
  for (const char* label : {"novalue", "=v", "k=", "K=v", "k=v w", "k=v/x"}) {
    auto r = validateDeviceAdd("a", "b", {label}, "");
    EXPECT_FALSE(r.isOk()) << label;
    EXPECT_EQ(exitCodeFor(r.status()), 2) << label;
  }
}

TEST(CliValidation, RejectsDuplicateLabelKey) {
  auto r = validateDeviceAdd("a", "b", {"k=1", "k=2"}, "");
  EXPECT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("twice"), std::string::npos);
}

TEST(CliValidation, RejectsInvalidDurations) {
  for (const char* ttl : {"0s", "10", "h", "-1h", "1w", "1.5h"}) {
    EXPECT_FALSE(validateDeviceAdd("a", "b", {}, ttl).isOk()) << ttl;
  }
}

TEST(CliRequests, TokenBodyUsesTtlSeconds) {
  EXPECT_EQ(tokenBody(std::nullopt), json::object());
  EXPECT_EQ(tokenBody(3600)["ttl"], 3600);
}

TEST(CliRequests, EventsTargetAddsOnlyGivenParameters) {
  EXPECT_EQ(eventsTarget(std::nullopt, std::nullopt, std::nullopt), "/v1/events");
  EXPECT_EQ(eventsTarget(12, std::nullopt, 25), "/v1/events?since=12&wait=25");
  EXPECT_EQ(eventsTarget(std::nullopt, 1, std::nullopt), "/v1/events?limit=1");
  EXPECT_EQ(eventsTarget(0, 100, 0), "/v1/events?since=0&limit=100&wait=0");
}

TEST(CliOutput, DeviceViewHasExactlyTheDocumentedKeys) {
  json api = {{"name", "s1"}, {"spiffe_id", "spiffe://warden.local/device/s1"}, {"role", "sensor"},
              {"labels", {{"site", "p1"}}}, {"state", "active"}, {"cert_serial", "ab"},
              {"cert_not_after", "2026-11-27T00:00:00Z"}, {"connected", true}, {"extra", 1}};
  json v = deviceView(api);
  EXPECT_EQ(v.size(), 10u);
  for (const char* k : {"name", "spiffe_id", "role", "labels", "state", "cert_serial", "cert_not_after", "connected",
                        "key_store", "cert_ttl"}) {
    EXPECT_TRUE(v.contains(k)) << k;
  }
  EXPECT_FALSE(v.contains("extra"));
  EXPECT_EQ(v["connected"], true);
}

TEST(CliOutput, DeviceViewFillsMissingFields) {
  json v = deviceView({{"name", "s1"}});
  EXPECT_TRUE(v["cert_serial"].is_null());
  EXPECT_EQ(v["labels"], json::object());
  EXPECT_EQ(v["connected"], false);
  EXPECT_EQ(v["key_store"], json({{"claimed", nullptr}, {"verified", false}}));
}

TEST(CliOutput, DeviceTextShowsTheKeyStoreClaim) {
  json d = {{"name", "s1"}, {"key_store", {{"claimed", "tpm2"}, {"verified", false}}}};
  EXPECT_NE(formatDeviceText(d).find("key store:      tpm2 (claimed by the device, not verified)"), std::string::npos);
  EXPECT_NE(formatDeviceText({{"name", "s1"}}).find("key store:      not stated"), std::string::npos);
}

TEST(CliOutput, DeviceAddViewHasExactlyTheDocumentedKeys) {
  json added = {{"name", "s1"}, {"role", "sensor"}, {"labels", json::object()}, {"token", "t"},
                {"token_expires_at", "2026-11-27T00:00:00Z"}, {"ca_fingerprint", "sha256:00"}};
  json v = deviceAddView(added);
  EXPECT_EQ(v, added);
  std::string text = formatDeviceAddText(added);
  EXPECT_NE(text.find("t"), std::string::npos);
  EXPECT_NE(text.find("warden-agent enroll"), std::string::npos);
}

TEST(CliOutput, AcceptsWrappedAndBareLists) {
  json wrapped = {{"devices", json::array({{{"name", "a"}}})}};
  auto a = devicesFromBody(wrapped);
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->size(), 1u);
  auto b = eventsFromBody(json::array({{{"id", 1}}, {{"id", 2}}}));
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->size(), 2u);
  EXPECT_FALSE(eventsFromBody(json{{"nope", 1}}).isOk());
  EXPECT_FALSE(devicesFromBody(json{{"devices", 3}}).isOk());
}

TEST(CliOutput, DeviceTableAlignsColumns) {
  std::string table = formatDeviceTable({{{"name", "sensor-1"}, {"role", "sensor"}, {"state", "active"}, {"connected", true}},
                                         {{"name", "v"}, {"role", "actuator"}, {"state", "pending"}}});
  EXPECT_EQ(table.rfind("NAME", 0), 0u);
  EXPECT_NE(table.find("sensor-1  sensor"), std::string::npos);
  EXPECT_NE(table.find("pending"), std::string::npos);
  EXPECT_NE(formatDeviceTable({}).find("no devices"), std::string::npos);
}

TEST(CliOutput, EventJsonIsOneLine) {
  json e = {{"id", 7}, {"time", "2026-11-26T02:00:00Z"}, {"type", "deny"}, {"reason", "line\nbreak"}};
  std::string line = formatEventJson(e);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_EQ(json::parse(line), e);
}

TEST(CliOutput, EventTextNamesFields) {
  json e = {{"id", 7}, {"time", "2026-11-26T02:00:00Z"}, {"type", "deny"}, {"principal", "spiffe://td/device/s"},
            {"action", "mqtt:publish"}, {"resource", "valve/cmd"}, {"decision", "deny"}, {"rule", "default-deny"},
            {"reason", "no_permit"}, {"actor", ""}};
  std::string line = formatEventText(e);
  EXPECT_NE(line.find("deny"), std::string::npos);
  EXPECT_NE(line.find("action=mqtt:publish"), std::string::npos);
  EXPECT_NE(line.find("reason=no_permit"), std::string::npos);
  EXPECT_EQ(line.find("actor="), std::string::npos);  // empty fields are left out
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

}  // namespace
}  // namespace warden::api
