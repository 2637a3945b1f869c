// Tests of the full policy language (issue 3): segments, services, flows,
// conditions, time, substitution, decision order, explanations, limits.

#include <chrono>
#include <sstream>
#include <string>

#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include "policy/policy.h"
#include "unit/testing/policy_helpers.h"

namespace warden::policy {
namespace {

using testing::device;
using testing::mustParse;
using testing::parseError;

using core::PrincipalKind;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;

// utc parses "YYYY-MM-DDTHH:MM:SSZ".
TimePoint utc(const std::string& text) {
  std::istringstream in(text);
  date::sys_seconds tp;
  in >> date::parse("%FT%TZ", tp);
  EXPECT_FALSE(in.fail()) << text;
  return tp;
}

Context at(const std::string& text) {
  Context c;
  c.time = utc(text);
  return c;
}

// The example of issue 3, as written.
constexpr std::string_view kIssueExample = R"yaml(
timezone: Europe/Berlin
segments:
  edge:          {role: sensor}
  manufacturing: {role: [controller, actuator], labels: {site: plant1}}
  infotainment:  {labels: {subsystem: infotainment}}
  chassis:       {labels: {subsystem: chassis}}
services:
  telemetry: {segment: manufacturing, mqtt: ["factory/telemetry/#"]}
  commands:  {segment: manufacturing, mqtt: ["factory/commands/#"]}
  brakes:    {segment: chassis, mqtt: ["vehicle/+/brake/#"]}
flows:
  - {from: edge, to: telemetry, actions: [mqtt:publish]}
rules:
  - id: sensors-publish-own-telemetry
    effect: permit
    principals: {segment: edge}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
    when:
      - principal.trust >= 70
      - context.source_ip in 10.0.0.0/8
      - context.time in 06:00-22:00
      - context.weekday in [mon, tue, wed, thu, fri]
  - id: careless
    effect: permit
    principals: {labels: {subsystem: "*"}}
    actions: [mqtt:publish, mqtt:subscribe]
    resources: ["#"]
)yaml";

Context dayShift() {
  Context c = at("2026-03-02T09:00:00Z");  // Monday 10:00 in Berlin
  c.source_ip = IpAddress::parse("10.1.2.3");
  return c;
}

Principal sensor() {
  Principal p = device("s1", "sensor", {{"site", "plant1"}});
  p.trust = 90;
  return p;
}

TEST(PolicyLanguage, IssueExampleParsesAndPermitsSensorInDayShift) {
  auto p = mustParse(kIssueExample);
  Decision d = p->authorize(sensor(), "mqtt:publish", "factory/telemetry/s1/temp", dayShift());
  EXPECT_TRUE(d.permit) << d.reason;
  EXPECT_EQ(d.rule, "sensors-publish-own-telemetry");
  EXPECT_EQ(d.reason, "permitted");
  EXPECT_EQ(d.flow, "edge->telemetry");
  ASSERT_TRUE(d.valid_until.has_value());
  // The next boundary: 22:00 Berlin (21:00 UTC) comes before Tuesday's midnight.
  EXPECT_EQ(*d.valid_until, utc("2026-03-02T21:00:00Z"));
}

TEST(PolicyLanguage, SegmentsAreComputedFromSelectors) {
  auto p = mustParse(kIssueExample);
  EXPECT_EQ(p->segmentsOf(sensor()), std::vector<std::string>{"edge"});
  Principal c = device("c1", "controller", {{"site", "plant1"}});
  EXPECT_EQ(p->segmentsOf(c), std::vector<std::string>{"manufacturing"});
  Principal q = sensor();
  q.quarantined = true;
  EXPECT_EQ(p->segmentsOf(q), std::vector<std::string>{"quarantine"});
}

TEST(PolicyLanguage, WindowOutsideDeniesAndDeadlineIsWindowStart) {
  auto p = mustParse(kIssueExample);
  Context c = dayShift();
  c.time = utc("2026-03-02T21:30:00Z");  // 22:30 Berlin
  Decision d = p->authorize(sensor(), "mqtt:publish", "factory/telemetry/s1/temp", c);
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.reason, "no_permit");
  ASSERT_TRUE(d.valid_until.has_value());
  // The window opens at 06:00 Berlin; the weekday condition after it was not reached.
  EXPECT_EQ(*d.valid_until, utc("2026-03-03T05:00:00Z"));
}

TEST(PolicyLanguage, WeekendDenies) {
  auto p = mustParse(kIssueExample);
  Context c = dayShift();
  c.time = utc("2026-03-07T09:00:00Z");  // Saturday
  EXPECT_FALSE(p->authorize(sensor(), "mqtt:publish", "factory/telemetry/s1/temp", c).permit);
}

TEST(PolicyLanguage, AbsentTrustFailsClosedInPermit) {
  auto p = mustParse(kIssueExample);
  Principal s = sensor();
  s.trust.reset();
  Decision d = p->authorize(s, "mqtt:publish", "factory/telemetry/s1/temp", dayShift());
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.reason, "no_permit");
  Explanation e = p->explain(s, "mqtt:publish", "factory/telemetry/s1/temp", dayShift());
  ASSERT_FALSE(e.rules.empty());
  EXPECT_EQ(e.rules[0].id, "sensors-publish-own-telemetry");
  EXPECT_FALSE(e.rules[0].matched);
  EXPECT_NE(e.rules[0].why_not.find("principal.trust = absent"), std::string::npos) << e.rules[0].why_not;
}

TEST(PolicyLanguage, SourceIpOutsideCidrDenies) {
  auto p = mustParse(kIssueExample);
  Context c = dayShift();
  c.source_ip = IpAddress::parse("192.168.1.1");
  EXPECT_FALSE(p->authorize(sensor(), "mqtt:publish", "factory/telemetry/s1/temp", c).permit);
  c.source_ip.reset();
  EXPECT_FALSE(p->authorize(sensor(), "mqtt:publish", "factory/telemetry/s1/temp", c).permit);
}

TEST(PolicyLanguage, InfotainmentCannotReachBrakesThroughCarelessPermit) {
  auto p = mustParse(kIssueExample);
  Principal head = device("ivi", "headunit", {{"subsystem", "infotainment"}});
  Decision d = p->authorize(head, "mqtt:publish", "vehicle/v1/brake/cmd", Context{});
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.reason, "no_flow");
  ASSERT_EQ(d.missing_flows.size(), 1u);
  EXPECT_EQ(d.missing_flows[0], (MissingFlow{"infotainment", "brakes", "mqtt:publish"}));
  // A topic in no service needs no flow: the careless permit applies.
  EXPECT_TRUE(p->authorize(head, "mqtt:publish", "media/now-playing", Context{}).permit);
  // A wildcard subscription that intersects the brakes needs a flow too.
  Decision s = p->authorize(head, "mqtt:subscribe", "vehicle/#", Context{});
  EXPECT_EQ(s.reason, "no_flow");
  // Chassis devices are in the brakes' segment: no flow needed.
  Principal ecu = device("ecu", "brake", {{"subsystem", "chassis"}});
  EXPECT_TRUE(p->authorize(ecu, "mqtt:publish", "vehicle/v1/brake/cmd", Context{}).permit);
}

TEST(PolicyLanguage, NoFlowNamesEveryMissingFlow) {
  auto p = mustParse(kIssueExample);
  Principal head = device("ivi", "headunit", {{"subsystem", "infotainment"}});
  Decision d = p->authorize(head, "mqtt:subscribe", "#", Context{});
  EXPECT_EQ(d.reason, "no_flow");
  ASSERT_EQ(d.missing_flows.size(), 3u);
  EXPECT_EQ(d.missing_flows[0].to, "telemetry");
  EXPECT_EQ(d.missing_flows[1].to, "commands");
  EXPECT_EQ(d.missing_flows[2].to, "brakes");
}

TEST(PolicyLanguage, FlowNeverPermitsByItself) {
  auto p = mustParse(R"yaml(
segments:
  edge: {role: sensor}
  plant: {role: controller}
services:
  telemetry: {segment: plant, mqtt: ["t/#"]}
flows:
  - {from: edge, to: telemetry, actions: [mqtt:publish]}
rules: []
)yaml");
  Decision d = p->authorize(device("s1", "sensor"), "mqtt:publish", "t/x", Context{});
  EXPECT_FALSE(d.permit);
  EXPECT_EQ(d.reason, "no_permit");
}

TEST(PolicyLanguage, FlowToSegmentCoversItsServices) {
  auto p = mustParse(R"yaml(
segments:
  edge: {role: sensor}
  plant: {role: controller}
services:
  telemetry: {segment: plant, mqtt: ["t/#"]}
  other: {segment: plant, mqtt: ["o/#"]}
flows:
  - {id: edge-to-plant, from: edge, to: plant, actions: [mqtt:publish]}
rules:
  - {id: all, effect: permit, principals: {kind: device}, actions: [mqtt:publish, mqtt:subscribe], resources: ["#"]}
)yaml");
  Decision d = p->authorize(device("s1", "sensor"), "mqtt:publish", "o/x", Context{});
  EXPECT_TRUE(d.permit);
  EXPECT_EQ(d.flow, "edge-to-plant");
  // The flow lists publish only.
  EXPECT_EQ(p->authorize(device("s1", "sensor"), "mqtt:subscribe", "o/x", Context{}).reason, "no_flow");
  // A principal in no segment has no flows.
  Decision none = p->authorize(device("x"), "mqtt:publish", "o/x", Context{});
  EXPECT_EQ(none.reason, "no_flow");
  ASSERT_EQ(none.missing_flows.size(), 1u);
  EXPECT_EQ(none.missing_flows[0].from, "");
}

TEST(PolicyLanguage, ForbidBeatsFlowAndPermit) {
  auto p = mustParse(R"yaml(
segments:
  edge: {role: sensor}
services:
  fw: {segment: edge, mqtt: ["firmware/#"]}
rules:
  - {id: all, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["#"]}
  - {id: no-fw, effect: forbid, principals: {segment: edge}, actions: [mqtt:publish], resources: ["firmware/#"]}
)yaml");
  Decision d = p->authorize(device("s1", "sensor"), "mqtt:publish", "firmware/x", Context{});
  EXPECT_EQ(d.reason, "forbidden");
  EXPECT_EQ(d.rule, "no-fw");
}

TEST(PolicyLanguage, QuarantinedPrincipalOnlyGetsQuarantinePermitsAndFlows) {
  auto p = mustParse(R"yaml(
segments:
  edge: {role: sensor}
  ops: {role: ota}
services:
  ota: {segment: ops, mqtt: ["ota/#"]}
flows:
  - {from: quarantine, to: ota, actions: [mqtt:subscribe, mqtt:receive]}
rules:
  - {id: edge-all, effect: permit, principals: {segment: edge}, actions: ["mqtt:*"], resources: ["#"]}
  - {id: q-ota, effect: permit, principals: {segment: quarantine}, actions: [mqtt:subscribe], resources: ["ota/${principal.id}/#"]}
  - {id: no-secrets, effect: forbid, principals: {segment: edge}, actions: [mqtt:subscribe], resources: ["secret/#"]}
)yaml");
  Principal q = device("s1", "sensor");
  q.quarantined = true;
  EXPECT_TRUE(p->authorize(q, "mqtt:subscribe", "ota/s1/#", Context{}).permit);
  EXPECT_EQ(p->authorize(q, "mqtt:publish", "x/y", Context{}).reason, "quarantined");
  // Forbids always apply, by the segments its attributes select.
  EXPECT_EQ(p->authorize(q, "mqtt:subscribe", "secret/a", Context{}).reason, "forbidden");
  // Not quarantined: the OTA service is in another segment and edge has no flow.
  Principal s = device("s1", "sensor");
  EXPECT_EQ(p->authorize(s, "mqtt:subscribe", "ota/s1/#", Context{}).reason, "no_flow");
}

TEST(PolicyLanguage, AbsentValueSatisfiesForbidCondition) {
  auto p = mustParse(R"yaml(
rules:
  - {id: all, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["#"]}
  - id: low-trust
    effect: forbid
    principals: {kind: device}
    actions: [mqtt:publish]
    resources: ["#"]
    when: ["principal.trust < 50"]
)yaml");
  Principal d = device("d");
  EXPECT_EQ(p->authorize(d, "mqtt:publish", "a", Context{}).reason, "forbidden");  // trust absent
  d.trust = 40;
  EXPECT_EQ(p->authorize(d, "mqtt:publish", "a", Context{}).reason, "forbidden");
  d.trust = 80;
  EXPECT_TRUE(p->authorize(d, "mqtt:publish", "a", Context{}).permit);
}

TEST(PolicyLanguage, EveryAttributeAndOperator) {
  auto p = mustParse(R"yaml(
segments:
  edge: {role: sensor}
rules:
  - id: r
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish]
    resources: ["#"]
    when:
      - principal.id != evil
      - principal.kind == device
      - principal.role in [sensor, actuator]
      - edge in principal.segments
      - principal.labels.site == plant1
      - has principal.labels.line
      - principal.trust > 50
      - principal.firmware.approved
      - principal.attestation.assurance >= software
      - principal.attestation.age < 1h
      - principal.cert.age <= 30d
      - context.protocol == mqtt
      - context.mfa == false
      - context.source_ip not in [192.168.0.0/16, fd00::/8]
      - context.weekday != sun
      - context.time not in 01:00-02:00 UTC
)yaml");
  Principal d = device("s1", "sensor", {{"site", "plant1"}, {"line", "l1"}});
  d.trust = 60;
  d.firmware_approved = true;
  d.attestation_assurance = AttestationAssurance::kTpm;
  d.attestation_age = minutes(10);
  d.cert_age = hours(24);
  Context c = at("2026-03-02T09:00:00Z");
  c.protocol = "mqtt";
  c.mfa = false;
  c.source_ip = IpAddress::parse("2001:db8::1");
  Decision ok = p->authorize(d, "mqtt:publish", "a", c);
  EXPECT_TRUE(ok.permit) << p->explain(d, "mqtt:publish", "a", c).rules[0].why_not;
  // The attestation age flips first: in 50 minutes.
  ASSERT_TRUE(ok.valid_until.has_value());
  EXPECT_EQ(*ok.valid_until, utc("2026-03-02T09:50:00Z"));
  auto fails = [&](auto mutate) {
    Principal d2 = d;
    Context c2 = c;
    mutate(d2, c2);
    return !p->authorize(d2, "mqtt:publish", "a", c2).permit;
  };
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.id = "evil"; }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.role = "camera"; }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.labels.erase("line"); }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.trust = 50; }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.firmware_approved = false; }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.firmware_approved.reset(); }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.attestation_assurance = AttestationAssurance::kNone; }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.attestation_age = hours(2); }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.cert_age = hours(24 * 31); }));
  EXPECT_TRUE(fails([](Principal&, Context& y) { y.protocol = "http"; }));
  EXPECT_TRUE(fails([](Principal&, Context& y) { y.mfa = true; }));
  EXPECT_TRUE(fails([](Principal&, Context& y) { y.source_ip = IpAddress::parse("fd00::5"); }));
  EXPECT_TRUE(fails([](Principal&, Context& y) { y.source_ip = IpAddress::parse("192.168.3.4"); }));
  EXPECT_TRUE(fails([](Principal&, Context& y) { y.time = utc("2026-03-01T09:00:00Z"); }));  // Sunday
  EXPECT_TRUE(fails([](Principal&, Context& y) { y.time = utc("2026-03-02T01:30:00Z"); }));
  EXPECT_TRUE(fails([](Principal& x, Context&) { x.quarantined = true; }));
}

TEST(PolicyLanguage, WindowWrapsMidnightAndUsesRuleZone) {
  auto p = mustParse(R"yaml(
timezone: Europe/Berlin
rules:
  - id: night
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish]
    resources: ["#"]
    timezone: America/New_York
    when: ["context.time in 22:00-06:00"]
  - id: utc-window
    effect: permit
    principals: {kind: device}
    actions: [mqtt:subscribe]
    resources: ["#"]
    when: ["context.time in [08:00-09:00 UTC, 12:00-13:00 Asia/Tokyo]"]
)yaml");
  Principal d = device("d");
  // 03:00 UTC = 22:00 New York (EST, UTC-5) on 2026-01-14.
  EXPECT_TRUE(p->authorize(d, "mqtt:publish", "a", at("2026-01-15T03:00:00Z")).permit);
  EXPECT_FALSE(p->authorize(d, "mqtt:publish", "a", at("2026-01-15T02:59:00Z")).permit);
  Decision in = p->authorize(d, "mqtt:publish", "a", at("2026-01-15T10:00:00Z"));  // 05:00 NY
  EXPECT_TRUE(in.permit);
  EXPECT_EQ(*in.valid_until, utc("2026-01-15T11:00:00Z"));  // 06:00 NY, end exclusive
  EXPECT_FALSE(p->authorize(d, "mqtt:publish", "a", at("2026-01-15T11:00:00Z")).permit);
  EXPECT_TRUE(p->authorize(d, "mqtt:subscribe", "a", at("2026-01-15T08:30:00Z")).permit);
  EXPECT_TRUE(p->authorize(d, "mqtt:subscribe", "a", at("2026-01-15T03:30:00Z")).permit);  // 12:30 Tokyo
  EXPECT_FALSE(p->authorize(d, "mqtt:subscribe", "a", at("2026-01-15T09:30:00Z")).permit);
}

TEST(PolicyLanguage, AbsentTimeFailsClosed) {
  auto p = mustParse(R"yaml(
rules:
  - {id: w, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["#"], when: ["context.time in 00:00-23:59"]}
)yaml");
  Decision d = p->authorize(device("d"), "mqtt:publish", "a", Context{});
  EXPECT_FALSE(d.permit);
  EXPECT_FALSE(d.valid_until.has_value());
}

TEST(PolicyLanguage, DecisionWithoutTimeConditionHasNoDeadline) {
  auto p = mustParse(kIssueExample);
  Principal head = device("ivi", "headunit", {{"subsystem", "infotainment"}});
  Decision d = p->authorize(head, "mqtt:publish", "media/x", dayShift());
  EXPECT_TRUE(d.permit);
  EXPECT_FALSE(d.valid_until.has_value());
}

TEST(PolicyLanguage, ThreeArgumentAuthorizeUsesNow) {
  EXPECT_NE(parseError(R"yaml(
rules:
  - {id: always, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["#"], when: ["context.time in 00:00-00:00"]}
)yaml").find("needs different start and end"), std::string::npos);  // an empty window is an error
  auto q = mustParse(R"yaml(
rules:
  - {id: w, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["#"], when: ["context.weekday in [mon, tue, wed, thu, fri, sat, sun]"]}
)yaml");
  Decision d = q->authorize(device("d"), "mqtt:publish", "a");
  EXPECT_TRUE(d.permit);
  ASSERT_TRUE(d.valid_until.has_value());
  EXPECT_LE(*d.valid_until - std::chrono::system_clock::now(), hours(24));
}

TEST(PolicyLanguage, UnsafeSubstitutionValues) {
  auto p = mustParse(R"yaml(
rules:
  - {id: own, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["site/${principal.labels.site}/#"]}
  - {id: no-secret, effect: forbid, principals: {kind: device}, actions: [mqtt:publish], resources: ["secret/${principal.labels.site}/x"]}
)yaml");
  for (std::string bad : std::vector<std::string>{"", "$SYS", "a/b", "+", "#", std::string("a\0b", 3)}) {
    Principal d = device("d", "", {{"site", bad}});
    EXPECT_FALSE(p->authorize(d, "mqtt:publish", "site/" + (bad.empty() ? "x" : bad) + "/t", Context{}).permit)
        << bad;
    EXPECT_EQ(p->authorize(d, "mqtt:publish", "secret/other/x", Context{}).reason, "forbidden") << bad;
  }
  Principal ok = device("d", "", {{"site", "p1"}});
  EXPECT_TRUE(p->authorize(ok, "mqtt:publish", "site/p1/t", Context{}).permit);
  EXPECT_FALSE(p->authorize(ok, "mqtt:publish", "site/p2/t", Context{}).permit);
}

TEST(PolicyLanguage, ExplainListsRulesOfTheActionInFileOrder) {
  auto p = mustParse(kIssueExample);
  Principal head = device("ivi", "headunit", {{"subsystem", "infotainment"}});
  Explanation e = p->explain(head, "mqtt:publish", "vehicle/v1/brake/x", dayShift());
  EXPECT_EQ(e.decision.reason, "no_flow");
  ASSERT_EQ(e.rules.size(), 2u);
  EXPECT_EQ(e.rules[0].id, "sensors-publish-own-telemetry");
  EXPECT_EQ(e.rules[0].effect, "permit");
  EXPECT_FALSE(e.rules[0].matched);
  EXPECT_NE(e.rules[0].why_not.find("segment"), std::string::npos) << e.rules[0].why_not;
  EXPECT_EQ(e.rules[1].id, "careless");
  EXPECT_TRUE(e.rules[1].matched);
  EXPECT_EQ(e.rules[1].why_not, "");
}

TEST(PolicyLanguage, V0FileKeepsItsMeaning) {
  auto p = mustParse(defaultPolicyYaml());
  Principal admin;
  admin.id = "admin";
  admin.kind = PrincipalKind::kUser;
  EXPECT_TRUE(p->authorize(admin, "admin:policy.apply", "*").permit);
  EXPECT_TRUE(p->authorize(admin, "admin:policy.explain", "*").permit);
  EXPECT_TRUE(p->authorize(device("d1"), "mqtt:connect", "d1").permit);
  EXPECT_FALSE(p->authorize(device("d1"), "mqtt:connect", "d2").permit);
}

struct BadPolicy {
  std::string name;
  std::string yaml;
  std::string error_prefix;  // "test.yaml:LINE:COL: ..." (start of the message)
};

class PolicyLanguageErrors : public ::testing::TestWithParam<BadPolicy> {};

TEST_P(PolicyLanguageErrors, ReportsPositionAndReason) {
  const BadPolicy& b = GetParam();
  std::string e = parseError(b.yaml);
  EXPECT_EQ(e.rfind(b.error_prefix, 0), 0u) << "got: " << e;
}

constexpr std::string_view kRuleHead =
    "rules:\n  - id: r\n    effect: permit\n    principals: {kind: device}\n    actions: [mqtt:publish]\n"
    "    resources: [\"#\"]\n    when:\n";

std::string withCondition(std::string_view cond) { return std::string(kRuleHead) + "      - " + std::string(cond) + "\n"; }

INSTANTIATE_TEST_SUITE_P(
    All, PolicyLanguageErrors,
    ::testing::Values(
        BadPolicy{"UnknownAttribute", withCondition("principal.trsut >= 70"),
                  "test.yaml:8:9: condition 'principal.trsut >= 70': unknown attribute 'principal.trsut'"},
        BadPolicy{"TypeMismatchInteger", withCondition("principal.trust >= high"),
                  "test.yaml:8:28: condition 'principal.trust >= high': 'high' is not an integer"},
        BadPolicy{"OperatorNotForType", withCondition("context.source_ip >= 10.0.0.1"),
                  "test.yaml:8:27: condition 'context.source_ip >= 10.0.0.1': operator '>=' does not apply"},
        BadPolicy{"BareNonBoolean", withCondition("principal.trust"),
                  "test.yaml:8:9: condition 'principal.trust': 'principal.trust' is an integer, not a boolean"},
        BadPolicy{"BadDuration", withCondition("principal.cert.age < 3w"),
                  "test.yaml:8:30: condition 'principal.cert.age < 3w': '3w' is not a duration"},
        BadPolicy{"BadWindow", withCondition("context.time in 25:00-06:00"),
                  "test.yaml:8:25: condition 'context.time in 25:00-06:00': '25:00-06:00' is not a time window"},
        BadPolicy{"BadZoneInWindow", withCondition("context.time in 06:00-07:00 Mars/Base"),
                  "test.yaml:8:37: condition 'context.time in 06:00-07:00 Mars/Base': unknown time zone 'Mars/Base'"},
        BadPolicy{"BadCidr", withCondition("context.source_ip in 10.0.0.0/33"),
                  "test.yaml:8:30: condition 'context.source_ip in 10.0.0.0/33': '10.0.0.0/33' is not an IP"},
        BadPolicy{"BadWeekday", withCondition("context.weekday in [mon, funday]"),
                  "test.yaml:8:34: condition 'context.weekday in [mon, funday]': 'funday' is not a weekday"},
        BadPolicy{"UnknownSegmentInCondition", withCondition("nowhere in principal.segments"),
                  "test.yaml:8:9: condition 'nowhere in principal.segments': unknown segment 'nowhere'"},
        BadPolicy{"ListNeedsIn", withCondition("principal.role == [a, b]"),
                  "test.yaml:8:27: condition 'principal.role == [a, b]': a list needs 'in' or 'not in'"},
        BadPolicy{"MissingOperator", withCondition("principal.trust 70"),
                  "test.yaml:8:25: condition 'principal.trust 70': expected an operator"},
        BadPolicy{"BadKind", withCondition("principal.kind == robot"),
                  "test.yaml:8:27: condition 'principal.kind == robot': 'robot' is not a kind"},
        BadPolicy{"BadAssurance", withCondition("principal.attestation.assurance >= high"),
                  "test.yaml:8:44: condition 'principal.attestation.assurance >= high': 'high' is not an assurance"},
        BadPolicy{"ConditionNotString", std::string(kRuleHead) + "      - {a: b}\n",
                  "test.yaml:8:9: each condition must be a string"},
        BadPolicy{"EmptyWhen", "rules:\n  - {id: r, effect: permit, principals: {kind: device}, actions: "
                               "[mqtt:publish], resources: [\"#\"], when: []}\n",
                  "test.yaml:2:106: 'when' is an empty list"},
        BadPolicy{"UnknownTimezone", "timezone: Nowhere/City\nrules: []\n",
                  "test.yaml:1:11: unknown time zone 'Nowhere/City'"},
        BadPolicy{"UnknownSegmentInSelector",
                  "rules:\n  - {id: r, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], "
                  "resources: [\"#\"]}\n",
                  "test.yaml:2:51: unknown segment 'edge'"},
        BadPolicy{"EmptySegmentSelector", "segments:\n  edge: {}\nrules: []\n", "test.yaml:2:9: empty selector"},
        BadPolicy{"SegmentNamesLaterSegment", "segments:\n  a: {segment: b}\n  b: {role: x}\nrules: []\n",
                  "test.yaml:2:16: unknown segment 'b': a segment's selector may name only segments defined above"},
        BadPolicy{"QuarantineIsBuiltIn", "segments:\n  quarantine: {role: x}\nrules: []\n",
                  "test.yaml:2:3: 'quarantine' is the built-in segment"},
        BadPolicy{"SharedNamespace",
                  "segments:\n  edge: {role: x}\nservices:\n  edge: {segment: edge, mqtt: [\"a/#\"]}\nrules: []\n",
                  "test.yaml:4:3: 'edge' is already a segment or service name"},
        BadPolicy{"OverlappingServices",
                  "segments:\n  a: {role: x}\n  b: {role: y}\nservices:\n  s1: {segment: a, mqtt: [\"v/+/brake/#\"]}\n"
                  "  s2: {segment: b, mqtt: [\"v/car1/#\"]}\nrules: []\n",
                  "test.yaml:6:27: 'v/car1/#' of service 's2' (segment b) overlaps 'v/+/brake/#' of service 's1'"},
        BadPolicy{"ServiceUnknownSegment", "services:\n  s: {segment: nope, mqtt: [\"a\"]}\nrules: []\n",
                  "test.yaml:2:16: unknown segment 'nope'"},
        BadPolicy{"ServiceUnknownKey", "segments:\n  a: {role: x}\nservices:\n  s: {segment: a, http: [\"/x\"]}\nrules: []\n",
                  "test.yaml:4:19: unknown key 'http' in service 's'"},
        BadPolicy{"ServicePlaceholder",
                  "segments:\n  a: {role: x}\nservices:\n  s: {segment: a, mqtt: [\"d/${principal.id}\"]}\nrules: []\n",
                  "test.yaml:4:26: service patterns are fixed topic filters"},
        BadPolicy{"FlowUnknownFrom", "flows:\n  - {from: nope, to: quarantine, actions: [mqtt:publish]}\nrules: []\n",
                  "test.yaml:2:12: unknown segment 'nope' in 'from'"},
        BadPolicy{"FlowUnknownTo", "flows:\n  - {from: quarantine, to: nope, actions: [mqtt:publish]}\nrules: []\n",
                  "test.yaml:2:28: unknown service or segment 'nope' in 'to'"},
        BadPolicy{"FlowAdminAction",
                  "flows:\n  - {from: quarantine, to: quarantine, actions: [mqtt:connect]}\nrules: []\n",
                  "test.yaml:2:50: 'mqtt:connect' is not a flow action"},
        BadPolicy{"FlowUnknownKey", "flows:\n  - {from: quarantine, to: quarantine, actions: [mqtt:publish], x: 1}\n"
                                    "rules: []\n",
                  "test.yaml:2:65: unknown key 'x' in a flow"},
        BadPolicy{"SelectorNamesService",
                  "segments:\n  a: {role: x}\nservices:\n  s: {segment: a, mqtt: [\"a/#\"]}\nrules:\n  - {id: r, "
                  "effect: permit, principals: {segment: s}, actions: [mqtt:publish], resources: [\"#\"]}\n",
                  "test.yaml:6:51: 's' is a service, not a segment"},
        BadPolicy{"UnknownRuleKey", "rules:\n  - {id: r, effect: permit, principals: {kind: device}, actions: "
                                    "[mqtt:publish], resources: [\"#\"], wen: []}\n",
                  "test.yaml:2:100: unknown key 'wen' in a rule"}),
    [](const ::testing::TestParamInfo<BadPolicy>& info) { return info.param.name; });

TEST(PolicyLanguage, TooManyConditionsIsAnError) {
  std::string yaml(kRuleHead);
  for (int i = 0; i < 33; ++i) yaml += "      - principal.trust > 1\n";
  EXPECT_NE(parseError(yaml).find("over the limit of 32"), std::string::npos);
}

TEST(PolicyLanguage, HostileConditionsNeverCrash) {
  for (std::string cond : std::vector<std::string>{"in", "not in", "has", "==", "a ==", "[", "principal.role in [", "principal.role in [,]",
                           "context.time in -", "context.time in 1:2-3:4",
                           "context.source_ip in ::ffff:1.2.3.4/200", "\"\"", "principal.labels. == x",
                           "has nothing", "x in principal.segments extra", std::string(2000, 'a')}) {
    std::string e = parseError(withCondition("\"" + cond + "\""));
    EXPECT_FALSE(e.empty()) << cond;
  }
}

TEST(PolicyLanguage, IpAddressParsing) {
  EXPECT_TRUE(IpAddress::parse("10.0.0.1").has_value());
  EXPECT_TRUE(IpAddress::parse("::1").has_value());
  EXPECT_FALSE(IpAddress::parse("10.0.0.256").has_value());
  EXPECT_FALSE(IpAddress::parse("").has_value());
  auto mapped = IpAddress::parse("::ffff:10.1.2.3");
  ASSERT_TRUE(mapped.has_value());
  EXPECT_FALSE(mapped->v6);
  EXPECT_EQ(*mapped, *IpAddress::parse("10.1.2.3"));
}

}  // namespace
}  // namespace warden::policy

namespace warden::policy {
namespace {

TEST(PolicyLimits, TooManySegmentsServicePatternsAndFlows) {
  std::string segments = "segments:\n";
  for (int i = 0; i < 256; ++i) segments += "  s" + std::to_string(i) + ": {role: r}\n";
  EXPECT_NE(parseError(segments + "rules: []\n").find("segments is over the limit of 255"), std::string::npos);

  std::string services = "segments:\n  a: {role: r}\nservices:\n";
  for (int i = 0; i < 1001; ++i) services += "  v" + std::to_string(i) + ": {segment: a, mqtt: [\"t" + std::to_string(i) + "\"]}\n";
  EXPECT_NE(parseError(services + "rules: []\n").find("services is over the limit of 1000"), std::string::npos);

  std::string patterns = "segments:\n  a: {role: r}\nservices:\n";
  for (int v = 0; v < 3; ++v) {
    patterns += "  v" + std::to_string(v) + ": {segment: a, mqtt: [";
    for (int i = 0; i < 700; ++i) patterns += std::string(i ? "," : "") + "\"t" + std::to_string(v) + "/" + std::to_string(i) + "\"";
    patterns += "]}\n";
  }
  patterns += "rules: []\n";
  EXPECT_NE(parseError(patterns).find("more than 2000 service patterns"), std::string::npos);
}

TEST(PolicyLimits, SegmentsMayNameEarlierSegments) {
  auto p = mustParse(R"yaml(
segments:
  sensors: {role: sensor}
  plant1-sensors: {segment: sensors, labels: {site: plant1}}
rules: []
)yaml");
  EXPECT_EQ(p->segmentsOf(device("s", "sensor", {{"site", "plant1"}})),
            (std::vector<std::string>{"sensors", "plant1-sensors"}));
  EXPECT_EQ(p->segmentsOf(device("s", "sensor", {{"site", "plant2"}})), (std::vector<std::string>{"sensors"}));
  EXPECT_TRUE(p->segmentsOf(device("c", "camera")).empty());
}

}  // namespace
}  // namespace warden::policy
