#include "policy/policy.h"

#include "policy/topic.h"
#include "unit/testing/policy_helpers.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace warden::policy {
namespace {

using testing::device;
using testing::mustParse;
using testing::parseError;

using core::PrincipalKind;

Principal quarantined(Principal p) {
  p.quarantined = true;
  return p;
}

Principal user(std::string id) { return Principal{std::move(id), PrincipalKind::kUser, "", {}, false}; }

std::string readRepoFile(const std::string& relative) {
  std::ifstream in(std::filesystem::path(WARDEN_SOURCE_DIR) / relative);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string readExample(const std::string& name) { return readRepoFile("examples/" + name); }

constexpr std::string_view kFactory = R"yaml(
rules:
  - id: operators
    effect: permit
    principals: {kind: user, id: admin}
    actions: ["admin:*"]
    resources: ["*"]
  - id: devices-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: no-firmware
    effect: forbid
    principals: {kind: device}
    actions: ["mqtt:*"]
    resources: ["firmware/#"]
  - id: sensors-publish-own-telemetry
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
  - id: actuators-own-commands
    effect: permit
    principals: {role: actuator}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/commands/${principal.id}/#"]
  - id: controllers-read-telemetry
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/telemetry/#"]
  - id: controllers-command
    effect: permit
    principals: {role: controller}
    actions: [mqtt:publish]
    resources: ["factory/commands/#"]
  - id: quarantine-report
    effect: permit
    principals: {segment: quarantine}
    actions: [mqtt:publish]
    resources: ["quarantine/${principal.id}"]
)yaml";

class FactoryPolicy : public ::testing::Test {
 protected:
  void SetUp() override { policy_ = mustParse(kFactory); }
  Decision ask(const Principal& p, std::string_view action, std::string_view resource) {
    return policy_->authorize(p, action, resource);
  }
  bool allowed(const Principal& p, std::string_view action, std::string_view resource) {
    return ask(p, action, resource).permit;
  }
  std::shared_ptr<const Policy> policy_;
  Principal sensor_ = device("s1", "sensor");
  Principal valve_ = device("v1", "actuator");
  Principal controller_ = device("c1", "controller");
};

// ---------------------------------------------------------------- parsing

TEST(PolicyParse, DefaultPolicyParses) { EXPECT_NE(mustParse(defaultPolicyYaml()), nullptr); }

TEST(PolicyParse, DefaultPolicyEqualsExampleFile) {
  EXPECT_EQ(readExample("policy-default.yaml"), defaultPolicyYaml());
}

TEST(PolicyParse, FactoryExampleParses) {
  std::string text = readExample("policy-factory.yaml");
  ASSERT_FALSE(text.empty());
  EXPECT_NE(mustParse(text), nullptr);
}

// Every rule example in docs/policy.md (a ```yaml block of "  - id:" items)
// parses, and so does every complete policy there.
TEST(PolicyParse, DocumentationExamplesParse) {
  std::string doc = readRepoFile("docs/policy.md");
  ASSERT_FALSE(doc.empty());
  size_t count = 0;
  for (size_t at = 0; (at = doc.find("```yaml\n", at)) != std::string::npos;) {
    at += 8;
    size_t end = doc.find("```", at);
    ASSERT_NE(end, std::string::npos);
    std::string block = doc.substr(at, end - at);
    if (block.rfind("policy:", 0) == 0 || block.rfind("tests:", 0) == 0) continue;  // a `policy test` file
    if (block.rfind("  - id:", 0) == 0) block = "rules:\n" + block;
    EXPECT_NE(mustParse(block), nullptr) << block;
    ++count;
  }
  EXPECT_GE(count, 8u);
}

TEST(PolicyParse, IssueExampleParses) {
  EXPECT_NE(mustParse(R"yaml(
rules:
  - id: operators
    effect: permit
    principals: {kind: user, id: admin}
    actions: ["admin:*"]
    resources: ["*"]
  - id: sensors-connect
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: sensors-publish-own-telemetry
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
  - id: nobody-touches-firmware
    effect: forbid
    principals: {role: "*"}
    actions: ["mqtt:*"]
    resources: ["firmware/#"]
)yaml"),
            nullptr);
}

TEST(PolicyParse, TextReturnsTheSource) {
  auto p = mustParse(defaultPolicyYaml());
  EXPECT_EQ(p->text(), defaultPolicyYaml());
}

TEST(PolicyParse, EmptyRuleListIsValid) { EXPECT_NE(mustParse("rules: []\n"), nullptr); }

TEST(PolicyParse, RejectsEmptyDocument) { EXPECT_NE(parseError("# nothing\n").find("test.yaml:1:1: the policy is empty"), std::string::npos); }

TEST(PolicyParse, RejectsMissingRules) {
  EXPECT_NE(parseError("{}\n").find("no 'rules:' list"), std::string::npos);
}

TEST(PolicyParse, RejectsUnknownRuleKeyWithLineAndColumn) {
  std::string e = parseError(R"yaml(rules:
  - id: a
    effect: permit
    actons: [mqtt:publish]
)yaml");
  EXPECT_EQ(e.rfind("test.yaml:4:5: unknown key 'actons' in a rule", 0), 0u) << e;
}

TEST(PolicyParse, RejectsUnknownTopLevelKey) {
  std::string e = parseError("rules: []\nsegmnts: {edge: {role: sensor}}\n");
  EXPECT_EQ(e.rfind("test.yaml:2:1: unknown top-level key 'segmnts'", 0), 0u) << e;
}

TEST(PolicyParse, RejectsUnknownSelectorKey) {
  std::string e = parseError(R"yaml(rules:
  - id: a
    effect: permit
    principals: {rol: sensor}
    actions: [mqtt:publish]
    resources: ["x"]
)yaml");
  EXPECT_EQ(e.rfind("test.yaml:4:18: unknown selector key 'rol'", 0), 0u) << e;
}

TEST(PolicyParse, RejectsAnchor) {
  std::string e = parseError(R"yaml(rules:
  - id: a
    effect: permit
    principals: &p {role: sensor}
    actions: [mqtt:publish]
    resources: ["x"]
)yaml");
  EXPECT_NE(e.find("test.yaml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("anchors"), std::string::npos) << e;
}

TEST(PolicyParse, RejectsAlias) {
  std::string e = parseError(R"yaml(x: &a [1]
rules:
  - id: a
    effect: permit
    principals: {role: sensor}
    actions: *a
    resources: ["x"]
)yaml");
  // The anchor comes first in the text, so it is the one reported.
  EXPECT_NE(e.find("test.yaml:1:"), std::string::npos) << e;
  EXPECT_NE(e.find("anchors"), std::string::npos) << e;
}

TEST(PolicyParse, RejectsAliasWithoutAnchor) {
  std::string e = parseError("rules: *undefined\n");
  EXPECT_FALSE(e.empty());
  EXPECT_EQ(e.rfind("test.yaml:1:", 0), 0u) << e;
}

TEST(PolicyParse, RejectsMergeKey) {
  EXPECT_FALSE(parseError(R"yaml(rules:
  - <<: {id: a}
    effect: permit
)yaml").empty());
}

TEST(PolicyParse, RejectsDuplicateKeyInRule) {
  std::string e = parseError(R"yaml(rules:
  - id: a
    effect: forbid
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["x"]
)yaml");
  EXPECT_EQ(e.rfind("test.yaml:4:5: duplicate key 'effect'", 0), 0u) << e;
}

TEST(PolicyParse, RejectsDuplicateKeyInSelector) {
  std::string e = parseError(R"yaml(rules:
  - id: a
    effect: permit
    principals: {role: sensor, role: controller}
    actions: [mqtt:publish]
    resources: ["x"]
)yaml");
  EXPECT_NE(e.find("duplicate key 'role'"), std::string::npos) << e;
}

TEST(PolicyParse, RejectsDuplicateQuotedAndPlainKey) {
  std::string e = parseError("rules: []\n\"rules\": []\n");
  EXPECT_EQ(e.rfind("test.yaml:2:1: duplicate key 'rules'", 0), 0u) << e;
}

TEST(PolicyParse, RejectsDuplicateRuleIds) {
  std::string e = parseError(R"yaml(rules:
  - id: a
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["x"]
  - id: a
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["y"]
)yaml");
  EXPECT_EQ(e.rfind("test.yaml:7:5: duplicate rule id 'a' (first used at line 2)", 0), 0u) << e;
}

TEST(PolicyParse, RejectsOversizedPolicy) {
  std::string big = "rules: []\n" + std::string(1 << 20, '#');
  EXPECT_NE(parseError(big).find("over the limit"), std::string::npos);
}

TEST(PolicyParse, RejectsNulByte) {
  std::string text = "rules: []\n";
  text.push_back('\0');
  EXPECT_NE(parseError(text).find("test.yaml:2:1: the policy contains a NUL byte"), std::string::npos);
}

TEST(PolicyParse, RejectsSyntaxErrorWithPosition) {
  std::string e = parseError("rules: [\n  - a\n");
  EXPECT_EQ(e.rfind("test.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(PolicyParse, RejectsSecondDocument) {
  EXPECT_NE(parseError("rules: []\n---\nrules: []\n").find("one YAML document"), std::string::npos);
}

TEST(PolicyParse, RejectsYamlTags) {
  EXPECT_NE(parseError("rules: !!seq []\n").find("tags"), std::string::npos);
}

TEST(PolicyParse, RejectsDeepNesting) {
  std::string deep = "rules: " + std::string(100, '[') + std::string(100, ']') + "\n";
  EXPECT_NE(parseError(deep).find("nesting deeper"), std::string::npos);
}

TEST(PolicyParse, RejectsVeryDeepNestingWithoutCrashing) {
  std::string deep = "rules: " + std::string(100000, '[') + "\n";
  EXPECT_FALSE(parseError(deep).empty());
}

TEST(PolicyParse, RejectsNonStringKey) {
  EXPECT_NE(parseError("? [a]\n: b\n").find("mapping key must be a plain string"), std::string::npos);
}

TEST(PolicyParse, RejectsRulesThatAreNotAList) {
  EXPECT_NE(parseError("rules: {id: a}\n").find("'rules' must be a list"), std::string::npos);
}

TEST(PolicyParse, RejectsMissingRuleId) {
  EXPECT_NE(parseError("rules:\n  - effect: permit\n").find("test.yaml:2:5: this rule has no 'id'"),
            std::string::npos);
}

TEST(PolicyParse, RejectsMissingEffect) {
  EXPECT_NE(parseError("rules:\n  - id: a\n").find("rule 'a' has no 'effect'"), std::string::npos);
}

std::string ruleError(std::string_view effect, std::string_view principals, std::string_view actions,
                      std::string_view resources, std::string_view id = "r") {
  std::string yaml = "rules:\n  - id: " + std::string(id) + "\n    effect: " + std::string(effect) +
                     "\n    principals: " + std::string(principals) + "\n    actions: " + std::string(actions) +
                     "\n    resources: " + std::string(resources) + "\n";
  return parseError(yaml);
}

TEST(PolicyParse, AcceptsWellFormedRule) {
  EXPECT_EQ(ruleError("permit", "{role: sensor}", "[mqtt:publish]", "[\"a/${principal.id}/#\"]"), "");
}

TEST(PolicyParse, RejectsInvalidRuleId) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:publish]", "[a]", "Bad Id").find("invalid rule id"),
            std::string::npos);
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:publish]", "[a]", "-a").find("invalid rule id"),
            std::string::npos);
}

TEST(PolicyParse, AcceptsRuleIdWithDotsAndUnderscores) {
  EXPECT_EQ(ruleError("permit", "{role: s}", "[mqtt:publish]", "[a]", "a.b_c-1"), "");
}

TEST(PolicyParse, RejectsReservedRuleIdDefaultDeny) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:publish]", "[a]", "default-deny").find("reserved"),
            std::string::npos);
}

TEST(PolicyParse, RejectsUnknownEffect) {
  EXPECT_NE(ruleError("allow", "{role: s}", "[mqtt:publish]", "[a]").find("test.yaml:3:13: 'effect' must be"),
            std::string::npos);
}

TEST(PolicyParse, RejectsEffectOfWrongType) {
  EXPECT_NE(ruleError("[permit]", "{role: s}", "[mqtt:publish]", "[a]").find("'effect' must be"),
            std::string::npos);
}

TEST(PolicyParse, RejectsEmptySelector) {
  EXPECT_NE(ruleError("permit", "{}", "[mqtt:publish]", "[a]").find("empty selector: write principals: {kind: device}"),
            std::string::npos);
}

TEST(PolicyParse, RejectsSelectorThatIsNotAMapping) {
  EXPECT_NE(ruleError("permit", "\"*\"", "[mqtt:publish]", "[a]").find("'principals' must be a mapping"),
            std::string::npos);
}

TEST(PolicyParse, RejectsUnknownSegment) {
  EXPECT_NE(ruleError("permit", "{segment: edge}", "[mqtt:publish]", "[a]").find("unknown segment 'edge'"),
            std::string::npos);
}

TEST(PolicyParse, RejectsUnknownKind) {
  EXPECT_NE(ruleError("permit", "{kind: robot}", "[mqtt:publish]", "[a]").find("invalid kind 'robot'"),
            std::string::npos);
}

TEST(PolicyParse, RejectsInvalidRoleName) {
  EXPECT_NE(ruleError("permit", "{role: Sensor}", "[mqtt:publish]", "[a]").find("invalid role"),
            std::string::npos);
}

TEST(PolicyParse, RejectsStarInsideAList) {
  EXPECT_NE(ruleError("permit", "{role: [a, \"*\"]}", "[mqtt:publish]", "[a]").find("must stand alone"),
            std::string::npos);
}

TEST(PolicyParse, RejectsEmptyValueList) {
  EXPECT_NE(ruleError("permit", "{role: []}", "[mqtt:publish]", "[a]").find("empty list"), std::string::npos);
}

TEST(PolicyParse, RejectsEmptyLabels) {
  EXPECT_NE(ruleError("permit", "{labels: {}}", "[mqtt:publish]", "[a]").find("'labels' is empty"),
            std::string::npos);
}

TEST(PolicyParse, RejectsInvalidLabelValue) {
  EXPECT_NE(ruleError("permit", "{labels: {site: \"a/b\"}}", "[mqtt:publish]", "[a]").find("invalid label value"),
            std::string::npos);
}

TEST(PolicyParse, RejectsUnknownAction) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:write]", "[a]").find("unknown action 'mqtt:write'"),
            std::string::npos);
}

TEST(PolicyParse, RejectsActionsThatAreNotAList) {
  EXPECT_NE(ruleError("permit", "{role: s}", "mqtt:publish", "[a]").find("'actions' must be a list"),
            std::string::npos);
}

TEST(PolicyParse, RejectsEmptyActions) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[]", "[a]").find("empty list"), std::string::npos);
}

TEST(PolicyParse, RejectsEmptyResources) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:publish]", "[]").find("empty list"), std::string::npos);
}

TEST(PolicyParse, RejectsStarAsTopicPattern) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:publish]", "[\"*\"]").find("'*' is not an MQTT wildcard"),
            std::string::npos);
}

TEST(PolicyParse, RejectsStarLevelInTopicPattern) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:subscribe]", "[\"a/*/b\"]").find("topic level '*'"),
            std::string::npos);
}

TEST(PolicyParse, RejectsInvalidTopicPattern) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:subscribe]", "[\"a/#/b\"]").find("not a valid topic pattern"),
            std::string::npos);
}

TEST(PolicyParse, RejectsMalformedSharePattern) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:subscribe]", "[\"$share/g\"]").find("shared subscription"),
            std::string::npos);
}

TEST(PolicyParse, RejectsUnknownSubstitution) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:publish]", "[\"a/${principal.name}\"]")
                .find("unknown substitution '${principal.name}'"),
            std::string::npos);
}

TEST(PolicyParse, RejectsUnterminatedSubstitution) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:publish]", "[\"a/${principal.id\"]").find("unterminated"),
            std::string::npos);
}

TEST(PolicyParse, RejectsSubstitutionSharingALevelWithAWildcard) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:publish]", "[\"a/+${principal.id}\"]")
                .find("not a valid topic pattern"),
            std::string::npos);
}

TEST(PolicyParse, RejectsTopicPatternForAdminActionInMixedRule) {
  std::string e = ruleError("permit", "{role: s}", "[mqtt:publish, admin:device.show]", "[\"a/#\"]");
  EXPECT_NE(e.find("not a name pattern for admin:device.show"), std::string::npos) << e;
}

TEST(PolicyParse, RejectsStarForTopicActionInMixedRule) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:connect, mqtt:publish]", "[\"*\"]").find("mqtt:publish"),
            std::string::npos);
}

TEST(PolicyParse, AcceptsTopicPatternInMqttStarRule) {
  EXPECT_EQ(ruleError("forbid", "{role: \"*\"}", "[\"mqtt:*\"]", "[\"firmware/#\"]"), "");
}

TEST(PolicyParse, RejectsGlobClientId) {
  EXPECT_NE(ruleError("permit", "{role: s}", "[mqtt:connect]", "[\"sensor-*\"]").find("no globs"),
            std::string::npos);
}

TEST(PolicyParse, RejectsDescriptionOfWrongType) {
  EXPECT_NE(parseError(R"yaml(rules:
  - id: a
    description: [x]
)yaml").find("'description' must be a string"),
            std::string::npos);
}

// ---------------------------------------------------------- authorization

TEST(PolicyAuthorize, EmptyPolicyDeniesByDefault) {
  auto p = mustParse("rules: []\n");
  Decision d = p->authorize(device("s1"), "mqtt:connect", "s1");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.rule, "default-deny");
  EXPECT_EQ(d.reason, "no_permit");
}

TEST(PolicyAuthorize, DefaultPolicyLetsDeviceConnectOnlyAsItself) {
  auto p = mustParse(defaultPolicyYaml());
  Decision d = p->authorize(device("s1"), "mqtt:connect", "s1");
  EXPECT_TRUE(d.permit);
  EXPECT_EQ(d.rule, "devices-connect-as-themselves");
  EXPECT_EQ(d.reason, "permitted");
  EXPECT_FALSE(p->authorize(device("s1"), "mqtt:connect", "s2").permit);
  EXPECT_FALSE(p->authorize(device("s1"), "mqtt:publish", "s1").permit);
}

TEST(PolicyAuthorize, DefaultPolicyGivesOperatorEveryAdminAction) {
  auto p = mustParse(defaultPolicyYaml());
  for (std::string_view action : kActions) {
    if (action.substr(0, 6) != "admin:") continue;
    EXPECT_TRUE(p->authorize(user("admin"), action, "*").permit) << action;
    EXPECT_TRUE(p->authorize(user("admin"), action, "sensor-1").permit) << action;
  }
}

TEST(PolicyAuthorize, CertificateAndCaActionsAreAdminActions) {
  auto p = mustParse(defaultPolicyYaml());
  for (std::string_view action :
       {"admin:cert.list", "admin:cert.revoke", "admin:ca.list", "admin:ca.rotate", "admin:ca.retire"}) {
    EXPECT_TRUE(p->authorize(user("admin"), action, "issuing-1").permit) << action;
    EXPECT_FALSE(p->authorize(device("admin"), action, "*").permit) << action;
  }
  auto narrow = mustParse(R"(rules:
  - id: auditors
    effect: permit
    principals: {kind: user, id: auditor}
    actions: [admin:cert.list, admin:ca.list]
    resources: ["*"]
)");
  EXPECT_TRUE(narrow->authorize(user("auditor"), "admin:cert.list", "*").permit);
  EXPECT_FALSE(narrow->authorize(user("auditor"), "admin:cert.revoke", "0a").permit);
}

TEST(PolicyAuthorize, DefaultPolicyGivesDeviceNoAdminAction) {
  auto p = mustParse(defaultPolicyYaml());
  EXPECT_FALSE(p->authorize(device("admin"), "admin:policy.apply", "*").permit);
  EXPECT_FALSE(p->authorize(user("alice"), "admin:policy.apply", "*").permit);
}

TEST(PolicyAuthorize, BareStarDoesNotCoverAdmin) {
  auto p = mustParse(R"yaml(rules:
  - id: all
    effect: permit
    principals: {kind: user}
    actions: ["*"]
    resources: ["#"]
)yaml");
  EXPECT_TRUE(p->authorize(user("admin"), "mqtt:publish", "a/b").permit);
  EXPECT_FALSE(p->authorize(user("admin"), "admin:device.revoke", "#").permit);
  EXPECT_FALSE(p->authorize(user("admin"), "admin:policy.apply", "*").permit);
}

TEST(PolicyAuthorize, MqttStarDoesNotCoverAdmin) {
  auto p = mustParse(R"yaml(rules:
  - id: all
    effect: permit
    principals: {kind: user}
    actions: ["mqtt:*"]
    resources: ["#"]
)yaml");
  EXPECT_TRUE(p->authorize(user("admin"), "mqtt:subscribe", "#").permit);
  EXPECT_FALSE(p->authorize(user("admin"), "admin:device.list", "#").permit);
}

TEST(PolicyAuthorize, AdminStarDoesNotCoverMqtt) {
  auto p = mustParse(defaultPolicyYaml());
  EXPECT_FALSE(p->authorize(user("admin"), "mqtt:publish", "*").permit);
  EXPECT_FALSE(p->authorize(user("admin"), "mqtt:connect", "admin").permit);
}

TEST(PolicyAuthorize, UnknownActionIsDenied) {
  auto p = mustParse(defaultPolicyYaml());
  Decision d = p->authorize(user("admin"), "admin:everything", "*");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.reason, "unknown_action");
  EXPECT_FALSE(p->authorize(user("admin"), "admin:*", "*").permit);
}

TEST(PolicyAuthorize, AdminLiteralNameMatchesOnlyThatName) {
  auto p = mustParse(R"yaml(rules:
  - id: helpdesk
    effect: permit
    principals: {kind: user, id: helpdesk}
    actions: [admin:device.show, admin:device.token]
    resources: ["sensor-1"]
)yaml");
  EXPECT_TRUE(p->authorize(user("helpdesk"), "admin:device.show", "sensor-1").permit);
  EXPECT_FALSE(p->authorize(user("helpdesk"), "admin:device.show", "sensor-2").permit);
  EXPECT_FALSE(p->authorize(user("helpdesk"), "admin:device.show", "*").permit);
  EXPECT_FALSE(p->authorize(user("helpdesk"), "admin:device.revoke", "sensor-1").permit);
}

TEST(PolicyAuthorize, AdminForbidOnNameBeatsStarPermit) {
  auto p = mustParse(R"yaml(rules:
  - id: operators
    effect: permit
    principals: {kind: user}
    actions: ["admin:*"]
    resources: ["*"]
  - id: keep-gateway
    effect: forbid
    principals: {kind: user}
    actions: [admin:device.revoke]
    resources: ["core-gw"]
)yaml");
  Decision d = p->authorize(user("admin"), "admin:device.revoke", "core-gw");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.rule, "keep-gateway");
  EXPECT_TRUE(p->authorize(user("admin"), "admin:device.revoke", "sensor-1").permit);
}

TEST(PolicyAuthorize, ConnectStarPermitsAnyClientId) {
  auto p = mustParse(R"yaml(rules:
  - id: svc
    effect: permit
    principals: {kind: service}
    actions: [mqtt:connect]
    resources: ["*"]
)yaml");
  Principal svc{"bridge", PrincipalKind::kService, "", {}, false};
  EXPECT_TRUE(p->authorize(svc, "mqtt:connect", "anything").permit);
  EXPECT_FALSE(p->authorize(device("bridge"), "mqtt:connect", "anything").permit);
}

TEST(PolicyAuthorize, ConnectPatternWithSubstitutionInsideId) {
  auto p = mustParse(R"yaml(rules:
  - id: c
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["gw-${principal.id}"]
)yaml");
  EXPECT_TRUE(p->authorize(device("s1"), "mqtt:connect", "gw-s1").permit);
  EXPECT_FALSE(p->authorize(device("s1"), "mqtt:connect", "s1").permit);
}

TEST_F(FactoryPolicy, DeviceConnectsOnlyWithItsOwnId) {
  EXPECT_TRUE(allowed(sensor_, "mqtt:connect", "s1"));
  EXPECT_FALSE(allowed(sensor_, "mqtt:connect", "v1"));
  EXPECT_FALSE(allowed(sensor_, "mqtt:connect", ""));
}

TEST_F(FactoryPolicy, SensorPublishesItsOwnTelemetry) {
  Decision d = ask(sensor_, "mqtt:publish", "factory/telemetry/s1/temp");
  EXPECT_TRUE(d.permit);
  EXPECT_EQ(d.rule, "sensors-publish-own-telemetry");
  EXPECT_TRUE(allowed(sensor_, "mqtt:publish", "factory/telemetry/s1"));
}

TEST_F(FactoryPolicy, SensorCannotPublishAnotherDevicesTelemetry) {
  EXPECT_FALSE(allowed(sensor_, "mqtt:publish", "factory/telemetry/s2/temp"));
  EXPECT_FALSE(allowed(sensor_, "mqtt:publish", "factory/telemetry/s1x/temp"));
}

TEST_F(FactoryPolicy, SensorCannotCommandTheValve) {
  Decision d = ask(sensor_, "mqtt:publish", "factory/commands/v1/open");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.rule, "default-deny");
  EXPECT_EQ(d.reason, "no_permit");
}

TEST_F(FactoryPolicy, SensorCannotSubscribeToItsOwnTelemetry) {
  EXPECT_FALSE(allowed(sensor_, "mqtt:subscribe", "factory/telemetry/s1/#"));
}

TEST_F(FactoryPolicy, PublishWithWildcardTopicIsInvalid) {
  Decision d = ask(sensor_, "mqtt:publish", "factory/telemetry/s1/+");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.reason, "invalid_topic");
  EXPECT_EQ(ask(sensor_, "mqtt:publish", "").reason, "invalid_topic");
}

TEST_F(FactoryPolicy, ValveSubscribesToItsOwnCommands) {
  EXPECT_TRUE(allowed(valve_, "mqtt:subscribe", "factory/commands/v1/#"));
  EXPECT_TRUE(allowed(valve_, "mqtt:subscribe", "factory/commands/v1/open"));
  EXPECT_TRUE(allowed(valve_, "mqtt:subscribe", "factory/commands/v1/+"));
  EXPECT_TRUE(allowed(valve_, "mqtt:receive", "factory/commands/v1/open"));
}

TEST_F(FactoryPolicy, ValveCannotPublish) {
  EXPECT_FALSE(allowed(valve_, "mqtt:publish", "factory/commands/v1/open"));
}

TEST_F(FactoryPolicy, SubscribeToHashIsNotASubsetOfOwnPattern) {
  EXPECT_FALSE(allowed(valve_, "mqtt:subscribe", "#"));
  EXPECT_FALSE(allowed(valve_, "mqtt:subscribe", "factory/#"));
  EXPECT_FALSE(allowed(valve_, "mqtt:subscribe", "factory/commands/#"));
}

TEST_F(FactoryPolicy, SubscribePlusInPlaceOfOwnIdIsDenied) {
  EXPECT_FALSE(allowed(valve_, "mqtt:subscribe", "factory/commands/+/open"));
  EXPECT_FALSE(allowed(valve_, "mqtt:subscribe", "factory/commands/+/#"));
}

TEST_F(FactoryPolicy, SubscribePlusAtFirstLevelIsDenied) {
  EXPECT_FALSE(allowed(valve_, "mqtt:subscribe", "+/commands/v1/#"));
  EXPECT_FALSE(allowed(valve_, "mqtt:subscribe", "+/+/v1/open"));
}

TEST_F(FactoryPolicy, ValveCannotSubscribeToAnotherValve) {
  EXPECT_FALSE(allowed(valve_, "mqtt:subscribe", "factory/commands/v2/#"));
  EXPECT_FALSE(allowed(valve_, "mqtt:receive", "factory/commands/v2/open"));
}

TEST_F(FactoryPolicy, InvalidSubscribeFilterIsDenied) {
  Decision d = ask(valve_, "mqtt:subscribe", "factory/commands/#/x");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.reason, "invalid_filter");
  EXPECT_EQ(ask(valve_, "mqtt:subscribe", "factory/commands/v1/op+").reason, "invalid_filter");
}

TEST_F(FactoryPolicy, ControllerReadsTelemetryAndCommandsValves) {
  EXPECT_TRUE(allowed(controller_, "mqtt:subscribe", "factory/telemetry/#"));
  EXPECT_TRUE(allowed(controller_, "mqtt:subscribe", "factory/telemetry/+/temp"));
  EXPECT_TRUE(allowed(controller_, "mqtt:receive", "factory/telemetry/s1/temp"));
  EXPECT_TRUE(allowed(controller_, "mqtt:publish", "factory/commands/v1/open"));
  EXPECT_FALSE(allowed(controller_, "mqtt:publish", "factory/telemetry/s1/temp"));
}

TEST_F(FactoryPolicy, ForbidBeatsPermit) {
  auto p = mustParse(std::string(kFactory) + R"yaml(
  - id: controllers-everything
    effect: permit
    principals: {role: controller}
    actions: [mqtt:publish]
    resources: ["#"]
)yaml");
  Decision d = p->authorize(controller_, "mqtt:publish", "firmware/image");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.rule, "no-firmware");
  EXPECT_EQ(d.reason, "forbidden");
  EXPECT_TRUE(p->authorize(controller_, "mqtt:publish", "other/topic").permit);
}

TEST_F(FactoryPolicy, ForbidDeniesEveryFilterOverlappingIt) {
  auto p = mustParse(std::string(kFactory) + R"yaml(
  - id: controllers-everything
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["#"]
)yaml");
  EXPECT_EQ(p->authorize(controller_, "mqtt:subscribe", "#").reason, "forbidden");
  EXPECT_EQ(p->authorize(controller_, "mqtt:subscribe", "+/image").reason, "forbidden");
  EXPECT_EQ(p->authorize(controller_, "mqtt:subscribe", "firmware").reason, "forbidden");
  EXPECT_TRUE(p->authorize(controller_, "mqtt:subscribe", "factory/#").permit);
  EXPECT_TRUE(p->authorize(controller_, "mqtt:subscribe", "factory/+/x").permit);
  // firmware/telemetry/x is in both.
  EXPECT_FALSE(p->authorize(controller_, "mqtt:subscribe", "+/telemetry/#").permit);
}

TEST_F(FactoryPolicy, SysTopicsAreNotCoveredByHash) {
  auto p = mustParse(R"yaml(rules:
  - id: everything
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish, mqtt:subscribe, mqtt:receive]
    resources: ["#"]
)yaml");
  EXPECT_TRUE(p->authorize(sensor_, "mqtt:subscribe", "#").permit);
  EXPECT_FALSE(p->authorize(sensor_, "mqtt:subscribe", "$SYS/#").permit);
  EXPECT_FALSE(p->authorize(sensor_, "mqtt:receive", "$SYS/broker/clients").permit);
  EXPECT_FALSE(p->authorize(sensor_, "mqtt:publish", "$SYS/x").permit);
  EXPECT_FALSE(p->authorize(sensor_, "mqtt:subscribe", "$share/g/#").permit);
}

TEST(PolicyAuthorize, DollarTopicNeedsLiteralFirstLevel) {
  auto p = mustParse(R"yaml(rules:
  - id: monitor
    effect: permit
    principals: {role: monitor}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["$SYS/broker/#"]
)yaml");
  Principal m = device("m1", "monitor");
  EXPECT_TRUE(p->authorize(m, "mqtt:subscribe", "$SYS/broker/#").permit);
  EXPECT_TRUE(p->authorize(m, "mqtt:receive", "$SYS/broker/load").permit);
  EXPECT_FALSE(p->authorize(m, "mqtt:subscribe", "$SYS/#").permit);
  EXPECT_FALSE(p->authorize(m, "mqtt:subscribe", "+/broker/#").permit);
}

TEST_F(FactoryPolicy, ForbidAppliesToQuarantinedDevice) {
  Decision d = ask(quarantined(sensor_), "mqtt:publish", "firmware/x");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.reason, "forbidden");
}

TEST_F(FactoryPolicy, QuarantinedDeviceLosesItsPermits) {
  Decision d = ask(quarantined(sensor_), "mqtt:publish", "factory/telemetry/s1/temp");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.rule, "default-deny");
  EXPECT_EQ(d.reason, "quarantined");
  EXPECT_FALSE(allowed(quarantined(sensor_), "mqtt:connect", "s1"));
}

TEST_F(FactoryPolicy, QuarantinedDeviceWithoutAnyPermitGetsNoPermit) {
  EXPECT_EQ(ask(quarantined(sensor_), "mqtt:publish", "factory/commands/v1").reason, "no_permit");
}

TEST_F(FactoryPolicy, QuarantinePermitAppliesToQuarantinedDevice) {
  Decision d = ask(quarantined(sensor_), "mqtt:publish", "quarantine/s1");
  EXPECT_TRUE(d.permit);
  EXPECT_EQ(d.rule, "quarantine-report");
}

TEST_F(FactoryPolicy, QuarantineSelectorDoesNotMatchActiveDevice) {
  EXPECT_FALSE(allowed(sensor_, "mqtt:publish", "quarantine/s1"));
}

TEST(PolicyAuthorize, QuarantineSegmentCombinesWithOtherKeys) {
  auto p = mustParse(R"yaml(rules:
  - id: q
    effect: permit
    principals: {segment: quarantine, role: sensor}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
)yaml");
  EXPECT_TRUE(p->authorize(quarantined(device("s1", "sensor")), "mqtt:connect", "s1").permit);
  EXPECT_FALSE(p->authorize(quarantined(device("v1", "actuator")), "mqtt:connect", "v1").permit);
}

constexpr std::string_view kSitePolicy = R"yaml(rules:
  - id: site-telemetry
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish, mqtt:subscribe]
    resources: ["site/${principal.labels.site}/${principal.role}/#"]
  - id: no-site-secrets
    effect: forbid
    principals: {kind: device}
    actions: [mqtt:publish, mqtt:subscribe]
    resources: ["site/${principal.labels.site}/secret"]
)yaml";

TEST(PolicyAuthorize, LabelAndRoleSubstitution) {
  auto p = mustParse(kSitePolicy);
  Principal d = device("s1", "sensor", {{"site", "plant1"}});
  EXPECT_TRUE(p->authorize(d, "mqtt:publish", "site/plant1/sensor/t").permit);
  EXPECT_FALSE(p->authorize(d, "mqtt:publish", "site/plant2/sensor/t").permit);
  EXPECT_FALSE(p->authorize(d, "mqtt:publish", "site/plant1/actuator/t").permit);
}

TEST(PolicyAuthorize, LabelValueWithSlashDoesNotMatchPermit) {
  auto p = mustParse(kSitePolicy);
  Principal d = device("s1", "sensor", {{"site", "plant1/sensor"}});
  EXPECT_FALSE(p->authorize(d, "mqtt:publish", "site/plant1/sensor/sensor/t").permit);
}

TEST(PolicyAuthorize, LabelValueWithWildcardDoesNotMatchPermit) {
  auto p = mustParse(kSitePolicy);
  EXPECT_FALSE(p->authorize(device("s1", "sensor", {{"site", "+"}}), "mqtt:subscribe", "site/+/sensor/#").permit);
  EXPECT_FALSE(p->authorize(device("s1", "sensor", {{"site", "#"}}), "mqtt:subscribe", "site/#").permit);
}

TEST(PolicyAuthorize, LabelValueWithNulDoesNotMatchPermit) {
  auto p = mustParse(kSitePolicy);
  std::string nul("a\0b", 3);
  EXPECT_FALSE(p->authorize(device("s1", "sensor", {{"site", nul}}), "mqtt:publish", "site/a/sensor/x").permit);
}

TEST(PolicyAuthorize, MissingLabelDoesNotMatchPermit) {
  auto p = mustParse(kSitePolicy);
  Principal d = device("s1", "sensor");
  EXPECT_FALSE(p->authorize(d, "mqtt:publish", "site//sensor/t").permit);
  EXPECT_FALSE(p->authorize(d, "mqtt:publish", "site/x/sensor/t").permit);
}

TEST(PolicyAuthorize, EmptyRoleDoesNotMatchPermit) {
  auto p = mustParse(kSitePolicy);
  EXPECT_FALSE(p->authorize(device("s1", "", {{"site", "p"}}), "mqtt:publish", "site/p//t").permit);
}

TEST(PolicyAuthorize, DollarValueDoesNotMatchPermit) {
  auto p = mustParse(R"yaml(rules:
  - id: own
    effect: permit
    principals: {kind: device}
    actions: [mqtt:subscribe]
    resources: ["${principal.id}/#"]
)yaml");
  EXPECT_TRUE(p->authorize(device("s1"), "mqtt:subscribe", "s1/#").permit);
  EXPECT_FALSE(p->authorize(device("$SYS"), "mqtt:subscribe", "$SYS/#").permit);
}

TEST(PolicyAuthorize, ForbidWithFailedSubstitutionMatchesAsPlus) {
  auto p = mustParse(R"yaml(rules:
  - id: all
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish, mqtt:subscribe]
    resources: ["site/#"]
  - id: no-site-secrets
    effect: forbid
    principals: {kind: device}
    actions: [mqtt:publish, mqtt:subscribe]
    resources: ["site/${principal.labels.site}/secret"]
)yaml");
  Principal no_label = device("s1");
  Decision d = p->authorize(no_label, "mqtt:publish", "site/anything/secret");
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.rule, "no-site-secrets");
  EXPECT_TRUE(p->authorize(no_label, "mqtt:publish", "site/anything/public").permit);
  Principal bad = device("s1", "", {{"site", "a/b"}});
  EXPECT_FALSE(p->authorize(bad, "mqtt:publish", "site/x/secret").permit);
  EXPECT_FALSE(p->authorize(bad, "mqtt:subscribe", "site/+/+").permit);
  Principal good = device("s1", "", {{"site", "p1"}});
  EXPECT_FALSE(p->authorize(good, "mqtt:publish", "site/p1/secret").permit);
  EXPECT_TRUE(p->authorize(good, "mqtt:publish", "site/p2/secret").permit);
}

TEST(PolicyAuthorize, ForbidWithFailedSubstitutionOnConnectMatchesEveryId) {
  auto p = mustParse(R"yaml(rules:
  - id: all
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["*"]
  - id: not-the-line-id
    effect: forbid
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.labels.line}"]
)yaml");
  EXPECT_EQ(p->authorize(device("s1"), "mqtt:connect", "s1").rule, "not-the-line-id");
  Principal d = device("s1", "", {{"line", "l1"}});
  EXPECT_FALSE(p->authorize(d, "mqtt:connect", "l1").permit);
  EXPECT_TRUE(p->authorize(d, "mqtt:connect", "s1").permit);
}

TEST(PolicyAuthorize, SubstitutionInsideALevel) {
  auto p = mustParse(R"yaml(rules:
  - id: own
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish]
    resources: ["dev-${principal.id}/out"]
)yaml");
  EXPECT_TRUE(p->authorize(device("s1"), "mqtt:publish", "dev-s1/out").permit);
  EXPECT_FALSE(p->authorize(device("s1"), "mqtt:publish", "dev-s2/out").permit);
  EXPECT_FALSE(p->authorize(device("s1"), "mqtt:publish", "s1/out").permit);
}

TEST(PolicyAuthorize, SharedSubscriptionNeedsAPermitNamingTheGroup) {
  auto p = mustParse(R"yaml(rules:
  - id: plain
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["factory/telemetry/#"]
  - id: shared
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["$share/line1/factory/telemetry/#"]
)yaml");
  Principal c = device("c1", "controller");
  Decision d = p->authorize(c, "mqtt:subscribe", "$share/line1/factory/telemetry/+/temp");
  EXPECT_TRUE(d.permit);
  EXPECT_EQ(d.rule, "shared");
  EXPECT_FALSE(p->authorize(c, "mqtt:subscribe", "$share/line2/factory/telemetry/#").permit);
  EXPECT_FALSE(p->authorize(c, "mqtt:subscribe", "$share/line1x/factory/telemetry/#").permit);
  EXPECT_FALSE(p->authorize(c, "mqtt:subscribe", "$share/line/factory/telemetry/#").permit);
  EXPECT_FALSE(p->authorize(c, "mqtt:subscribe", "$share/line1/factory/#").permit);
}

TEST(PolicyAuthorize, PlainPermitDoesNotCoverSharedSubscription) {
  auto p = mustParse(R"yaml(rules:
  - id: plain
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["#"]
)yaml");
  EXPECT_FALSE(p->authorize(device("c1", "controller"), "mqtt:subscribe", "$share/g/factory/#").permit);
}

TEST(PolicyAuthorize, MalformedSharedSubscriptionIsInvalidFilter) {
  auto p = mustParse(R"yaml(rules:
  - id: shared
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["$share/g/#"]
)yaml");
  Principal c = device("c1", "controller");
  for (std::string_view f : {"$share/g", "$share//x", "$share/g+/x", "$share", "$share/g/", "$share/g/a/#/b"}) {
    Decision d = p->authorize(c, "mqtt:subscribe", f);
    EXPECT_FALSE(d.permit) << f;
    EXPECT_EQ(d.reason, "invalid_filter") << f;
  }
}

TEST(PolicyAuthorize, SharedSubscriptionForbidOverlapsInnerFilter) {
  auto p = mustParse(R"yaml(rules:
  - id: shared
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["$share/g/#"]
  - id: no-firmware
    effect: forbid
    principals: {kind: device}
    actions: [mqtt:subscribe]
    resources: ["firmware/#"]
)yaml");
  Principal c = device("c1", "controller");
  EXPECT_EQ(p->authorize(c, "mqtt:subscribe", "$share/g/firmware/x").rule, "no-firmware");
  EXPECT_EQ(p->authorize(c, "mqtt:subscribe", "$share/g/#").rule, "no-firmware");
  EXPECT_EQ(p->authorize(c, "mqtt:subscribe", "$share/g/+/x").rule, "no-firmware");
  EXPECT_TRUE(p->authorize(c, "mqtt:subscribe", "$share/g/factory/#").permit);
}

TEST(PolicyAuthorize, SharedSubscriptionForbidOnWholeShareFilter) {
  auto p = mustParse(R"yaml(rules:
  - id: shared
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["$share/g/#"]
  - id: no-shares
    effect: forbid
    principals: {kind: device}
    actions: [mqtt:subscribe]
    resources: ["$share/#"]
)yaml");
  EXPECT_EQ(p->authorize(device("c1", "controller"), "mqtt:subscribe", "$share/g/a").rule, "no-shares");
}

TEST(PolicyAuthorize, SharedGroupFromSubstitution) {
  auto p = mustParse(R"yaml(rules:
  - id: shared
    effect: permit
    principals: {kind: device}
    actions: [mqtt:subscribe]
    resources: ["$share/${principal.labels.line}/factory/#"]
)yaml");
  Principal d = device("c1", "", {{"line", "l1"}});
  EXPECT_TRUE(p->authorize(d, "mqtt:subscribe", "$share/l1/factory/x").permit);
  EXPECT_FALSE(p->authorize(d, "mqtt:subscribe", "$share/l2/factory/x").permit);
  EXPECT_FALSE(p->authorize(device("c2"), "mqtt:subscribe", "$share/l1/factory/x").permit);
}

TEST(PolicyAuthorize, RetainNeedsTheRetainAction) {
  auto p = mustParse(R"yaml(rules:
  - id: pub
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish]
    resources: ["status/${principal.id}"]
  - id: retain
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:retain]
    resources: ["status/${principal.id}"]
)yaml");
  EXPECT_TRUE(p->authorize(device("v1"), "mqtt:publish", "status/v1").permit);
  EXPECT_FALSE(p->authorize(device("v1"), "mqtt:retain", "status/v1").permit);
  EXPECT_TRUE(p->authorize(device("s1", "sensor"), "mqtt:retain", "status/s1").permit);
}

TEST(PolicyAuthorize, SubscribePermitDoesNotGrantReceive) {
  auto p = mustParse(R"yaml(rules:
  - id: sub
    effect: permit
    principals: {kind: device}
    actions: [mqtt:subscribe]
    resources: ["a/#"]
)yaml");
  EXPECT_TRUE(p->authorize(device("d"), "mqtt:subscribe", "a/#").permit);
  EXPECT_FALSE(p->authorize(device("d"), "mqtt:receive", "a/b").permit);
}

TEST(PolicyAuthorize, SelectorListMatchesAnyOfItsValues) {
  auto p = mustParse(R"yaml(rules:
  - id: r
    effect: permit
    principals: {role: [sensor, actuator]}
    actions: [mqtt:publish]
    resources: ["x"]
)yaml");
  EXPECT_TRUE(p->authorize(device("a", "sensor"), "mqtt:publish", "x").permit);
  EXPECT_TRUE(p->authorize(device("b", "actuator"), "mqtt:publish", "x").permit);
  EXPECT_FALSE(p->authorize(device("c", "controller"), "mqtt:publish", "x").permit);
}

TEST(PolicyAuthorize, SelectorStarNeedsAValuePresent) {
  auto p = mustParse(R"yaml(rules:
  - id: r
    effect: permit
    principals: {role: "*", labels: {site: "*"}}
    actions: [mqtt:publish]
    resources: ["x"]
)yaml");
  EXPECT_TRUE(p->authorize(device("a", "sensor", {{"site", "p"}}), "mqtt:publish", "x").permit);
  EXPECT_FALSE(p->authorize(device("a", "", {{"site", "p"}}), "mqtt:publish", "x").permit);
  EXPECT_FALSE(p->authorize(device("a", "sensor"), "mqtt:publish", "x").permit);
  EXPECT_FALSE(p->authorize(device("a", "sensor", {{"site", ""}}), "mqtt:publish", "x").permit);
}

TEST(PolicyAuthorize, SelectorKeysAreAnded) {
  auto p = mustParse(R"yaml(rules:
  - id: r
    effect: permit
    principals: {kind: device, role: sensor, labels: {site: [p1, p2], line: l1}}
    actions: [mqtt:publish]
    resources: ["x"]
)yaml");
  EXPECT_TRUE(p->authorize(device("a", "sensor", {{"site", "p2"}, {"line", "l1"}}), "mqtt:publish", "x").permit);
  EXPECT_FALSE(p->authorize(device("a", "sensor", {{"site", "p3"}, {"line", "l1"}}), "mqtt:publish", "x").permit);
  EXPECT_FALSE(p->authorize(device("a", "sensor", {{"site", "p1"}}), "mqtt:publish", "x").permit);
  EXPECT_FALSE(p->authorize(device("a", "actuator", {{"site", "p1"}, {"line", "l1"}}), "mqtt:publish", "x").permit);
  Principal u{"a", PrincipalKind::kUser, "sensor", {{"site", "p1"}, {"line", "l1"}}, false};
  EXPECT_FALSE(p->authorize(u, "mqtt:publish", "x").permit);
}

TEST(PolicyAuthorize, SelectorOnIdDistinguishesKinds) {
  auto p = mustParse(defaultPolicyYaml());
  EXPECT_TRUE(p->authorize(user("admin"), "admin:policy.show", "*").permit);
  EXPECT_FALSE(p->authorize(device("admin"), "admin:policy.show", "*").permit);
}

TEST(PolicyAuthorize, FirstMatchingPermitInFileOrderIsReported) {
  auto p = mustParse(R"yaml(rules:
  - id: first
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish]
    resources: ["a/+"]
  - id: second
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish]
    resources: ["a/#"]
)yaml");
  EXPECT_EQ(p->authorize(device("d"), "mqtt:publish", "a/b").rule, "first");
  EXPECT_EQ(p->authorize(device("d"), "mqtt:publish", "a/b/c").rule, "second");
}

TEST(PolicyAuthorize, AuthorizeIsSafeFromManyThreads) {
  auto p = mustParse(kSitePolicy);
  std::vector<std::thread> threads;
  std::vector<int> permits(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::string site = "p" + std::to_string(t);
      Principal d = device("s" + std::to_string(t), "sensor", {{"site", site}});
      for (int i = 0; i < 2000; ++i) {
        permits[t] += p->authorize(d, "mqtt:publish", "site/" + site + "/sensor/x").permit ? 1 : 0;
        permits[t] -= p->authorize(d, "mqtt:publish", "site/other/sensor/x").permit ? 1 : 0;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int n : permits) EXPECT_EQ(n, 2000);
}

// allStrings returns every '/'-joined sequence of 1..3 items of |levels|.
std::vector<std::string> allStrings(const std::vector<std::string>& levels) {
  std::vector<std::string> out;
  for (const auto& a : levels) {
    out.push_back(a);
    for (const auto& b : levels) {
      out.push_back(a + "/" + b);
      for (const auto& c : levels) out.push_back(a + "/" + b + "/" + c);
    }
  }
  return out;
}

std::string replaceId(std::string s, const std::string& id) {
  for (size_t at; (at = s.find("${principal.id}")) != std::string::npos;) s.replace(at, 15, id);
  return s;
}

// The engine's shortcuts (literal prefixes, index by action) must never
// change a decision: compare it with the topic functions applied directly.
TEST(PolicyAuthorize, PermitAgreesWithTopicFunctionsOnEveryPattern) {
  std::vector<std::string> patterns = allStrings({"a", "$x", "+", "#", "${principal.id}", "p${principal.id}"});
  std::vector<std::string> requests = allStrings({"a", "$x", "p1", "pp1", "+", "#"});
  Principal who = device("p1");
  size_t checked = 0;
  for (const std::string& pattern : patterns) {
    std::string expanded = replaceId(pattern, "p1");
    if (!validateTopicFilter(expanded).isOk()) continue;
    auto p = mustParse("rules:\n  - id: r\n    effect: permit\n    principals: {kind: device}\n"
                       "    actions: [mqtt:publish, mqtt:subscribe]\n    resources: [\"" + pattern + "\"]\n");
    ASSERT_NE(p, nullptr) << pattern;
    for (const std::string& req : requests) {
      if (validateTopicFilter(req).isOk()) {
        EXPECT_EQ(p->authorize(who, "mqtt:subscribe", req).permit, filterIsSubset(req, expanded))
            << pattern << " ? " << req;
      }
      if (validateTopicName(req).isOk()) {
        EXPECT_EQ(p->authorize(who, "mqtt:publish", req).permit, topicMatchesFilter(expanded, req))
            << pattern << " ? " << req;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 30000u);
}

TEST(PolicyAuthorize, ForbidAgreesWithTopicFunctionsOnEveryPattern) {
  std::vector<std::string> patterns = allStrings({"a", "$x", "+", "#", "${principal.id}", "${principal.role}"});
  std::vector<std::string> requests = allStrings({"a", "$x", "p1", "+", "#"});
  Principal who = device("p1");  // no role: ${principal.role} fails and reads as '+'
  for (const std::string& pattern : patterns) {
    std::string expanded = replaceId(pattern, "p1");
    for (size_t at; (at = expanded.find("${principal.role}")) != std::string::npos;) expanded.replace(at, 17, "+");
    if (!validateTopicFilter(expanded).isOk()) continue;
    auto p = mustParse("rules:\n  - id: f\n    effect: forbid\n    principals: {kind: device}\n"
                       "    actions: [mqtt:publish, mqtt:subscribe]\n    resources: [\"" + pattern + "\"]\n"
                       "  - id: all\n    effect: permit\n    principals: {kind: device}\n"
                       "    actions: [mqtt:publish, mqtt:subscribe]\n    resources: [\"#\", \"$x/#\"]\n");
    ASSERT_NE(p, nullptr) << pattern;
    for (const std::string& req : requests) {
      if (validateTopicFilter(req).isOk()) {
        bool expected = !filtersOverlap(expanded, req) && (filterIsSubset(req, "#") || filterIsSubset(req, "$x/#"));
        EXPECT_EQ(p->authorize(who, "mqtt:subscribe", req).permit, expected) << pattern << " ? " << req;
        std::string shared = "$share/g/" + req;
        bool shared_forbidden = filtersOverlap(expanded, req) || filtersOverlap(expanded, shared);
        EXPECT_EQ(p->authorize(who, "mqtt:subscribe", shared).reason == "forbidden", shared_forbidden)
            << pattern << " ? " << shared;
      }
      if (validateTopicName(req).isOk()) {
        bool expected = !topicMatchesFilter(expanded, req) &&
                        (topicMatchesFilter("#", req) || topicMatchesFilter("$x/#", req));
        EXPECT_EQ(p->authorize(who, "mqtt:publish", req).permit, expected) << pattern << " ? " << req;
      }
    }
  }
}

}  // namespace
}  // namespace warden::policy

namespace warden::policy {
namespace {

// --- attestation blocks on segments (issue 6) -------------------------------

constexpr std::string_view kAttestation = R"yaml(
segments:
  plc:
    role: controller
    attestation: {required: true, interval: 60s, grace: 120s, min_assurance: software}
  critical:
    labels: {tier: critical}
    attestation: {required: true, interval: 30s, grace: 5m, min_assurance: tpm}
  watched:
    role: sensor
    attestation: {required: false, min_assurance: software}
rules:
  - id: connect
    effect: permit
    principals: {segment: plc}
    actions: [mqtt:connect]
    resources: ["*"]
)yaml";

TEST(PolicyAttestation, SegmentsMergeShortestIntervalAndGraceAndStrictestAssurance) {
  auto p = mustParse(kAttestation);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->hasAttestation());
  Principal both = testing::device("plc-1", "controller", {{"tier", "critical"}});
  auto req = p->attestationFor(both);
  ASSERT_TRUE(req.has_value());
  EXPECT_TRUE(req->required);
  EXPECT_EQ(req->interval, std::chrono::seconds(30));
  EXPECT_EQ(req->grace, std::chrono::seconds(120));
  EXPECT_EQ(req->min_assurance, AttestationAssurance::kTpm);
  // Quarantine does not hide a device's deadlines.
  EXPECT_EQ(p->attestationFor(quarantined(both)), req);
  // The attestation block is not a selector key: the segment still selects.
  EXPECT_EQ(p->segmentsOf(both), (std::vector<std::string>{"plc", "critical"}));
  auto watched = p->attestationFor(testing::device("s-1", "sensor"));
  ASSERT_TRUE(watched.has_value());
  EXPECT_FALSE(watched->required);
  EXPECT_EQ(watched->min_assurance, AttestationAssurance::kSoftware);
  EXPECT_FALSE(p->attestationFor(testing::device("x-1", "other")).has_value());
  EXPECT_FALSE(p->readsAttestationAge());
}

TEST(PolicyAttestation, ReadsAttestationAgeWhenAConditionDoes) {
  auto p = mustParse(R"yaml(
rules:
  - id: fresh
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["*"]
    when: [principal.attestation.age < 10m]
)yaml");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->readsAttestationAge());
  EXPECT_FALSE(p->hasAttestation());
}

TEST(PolicyAttestation, StrictErrorsWithPositions) {
  const std::string head = "segments:\n  plc:\n    role: controller\n    attestation: ";
  const std::string tail = "\nrules: []\n";
  EXPECT_EQ(parseError(head + "{required: true, interval: 60s}" + tail),
            "test.yaml:4:18: required: true needs 'interval' (how often, e.g. 60s) and 'grace' (how late before "
            "quarantine, e.g. 120s)");
  EXPECT_NE(parseError(head + "{required: yes, interval: 60s, grace: 1m}" + tail).find("4:29: 'required' must be true or false"),
            std::string::npos);
  EXPECT_NE(parseError(head + "{required: true, interval: 60s, grace: 1m, min_assurance: hsm}" + tail)
                .find("'min_assurance' must be tpm or software"),
            std::string::npos);
  EXPECT_NE(parseError(head + "{required: true, interval: 60s, grace: 1m, every: 5s}" + tail)
                .find("unknown key 'every' in attestation"),
            std::string::npos);
  EXPECT_NE(parseError(head + "{required: true, interval: 31d, grace: 1m}" + tail).find("out of range"),
            std::string::npos);
  EXPECT_NE(parseError(head + "{required: true, interval: soon, grace: 1m}" + tail).find("'interval'"),
            std::string::npos);
  EXPECT_NE(parseError(head + "{required: false, interval: 60s}" + tail).find("apply only with required: true"),
            std::string::npos);
  EXPECT_NE(parseError(head + "[true]" + tail).find("must be a mapping"), std::string::npos);
  EXPECT_NE(parseError("segments:\n  plc:\n    attestation: {required: false}\nrules: []\n").find("no selector"),
            std::string::npos);
}

}  // namespace
}  // namespace warden::policy
