// Tests of the policy tools: test files, lint, diff, request contexts, and
// that every example policy passes its own tests and lint.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "policy/policy.h"
#include "policy/policy_diff.h"
#include "policy/policy_impact.h"
#include "policy/policy_lint.h"
#include "policy/policy_test_suite.h"

namespace warden::policy {
namespace {

std::shared_ptr<const Policy> mustParse(std::string_view yaml, std::string_view name = "p.yaml") {
  auto result = Policy::parse(yaml, name);
  EXPECT_TRUE(result.isOk()) << result.status().message();
  return result.isOk() ? *result : nullptr;
}

std::vector<std::string> codes(const std::vector<LintFinding>& findings) {
  std::vector<std::string> out;
  for (const LintFinding& f : findings) out.push_back(f.code + ":" + f.rule);
  return out;
}

std::string readRepoFile(const std::string& relative) {
  std::ifstream in(std::filesystem::path(WARDEN_SOURCE_DIR) / relative);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PolicyTestFile, ParsesIssueShapeAndRuns) {
  auto policy = mustParse(R"yaml(
segments:
  edge: {role: sensor}
rules:
  - {id: own, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], resources: ["t/${principal.id}/#"], when: ["context.source_ip in 10.0.0.0/8"]}
)yaml");
  auto file = parsePolicyTestFile(R"yaml(
tests:
  - name: sensor publishes its telemetry in the day shift
    principal: {id: s1, role: sensor, labels: {site: plant1}, trust: 90}
    action: mqtt:publish
    resource: t/s1/temp
    context: {source_ip: 10.1.2.3, time: "2026-03-02T10:00:00+01:00"}
    expect: permit
  - name: wrong
    principal: {id: s1, role: sensor}
    action: mqtt:publish
    resource: t/s2/temp
    expect: permit
    reason: permitted
)yaml",
                                  "t.yaml");
  ASSERT_TRUE(file.isOk()) << file.status().message();
  ASSERT_EQ(file->tests.size(), 2u);
  EXPECT_EQ(file->tests[0].principal.trust, 90);
  ASSERT_TRUE(file->tests[0].context.time.has_value());
  EXPECT_EQ(formatTimestamp(*file->tests[0].context.time), "2026-03-02T09:00:00Z");
  auto results = runPolicyTests(*policy, *file);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].passed);
  EXPECT_FALSE(results[1].passed);
  EXPECT_NE(results[1].diff.find("- expected: permit (permitted)"), std::string::npos) << results[1].diff;
  EXPECT_NE(results[1].diff.find("+ got:      deny (no_permit)"), std::string::npos) << results[1].diff;
}

TEST(PolicyTestFile, SegmentsAreNeverGiven) {
  auto file = parsePolicyTestFile(R"yaml(
tests:
  - name: x
    principal: {id: s1, segments: [edge]}
    action: mqtt:publish
    resource: t
    expect: permit
)yaml",
                                  "t.yaml");
  ASSERT_FALSE(file.isOk());
  EXPECT_EQ(file.status().message().rfind("t.yaml:4:25: segments are computed", 0), 0u) << file.status().message();
}

TEST(PolicyTestFile, RejectsUnknownKeysAndBadValues) {
  for (std::string_view bad : {
           "tests:\n  - {name: x, principal: {id: a}, action: mqtt:publish, resource: t, expect: maybe}\n",
           "tests:\n  - {name: x, principal: {id: a}, action: mqtt:jump, resource: t, expect: permit}\n",
           "tests:\n  - {name: x, principal: {id: a, trust: 101}, action: mqtt:publish, resource: t, expect: permit}\n",
           "tests:\n  - {name: x, principal: {id: a}, action: mqtt:publish, resource: t, expect: permit, context: {time: "
           "yesterday}}\n",
           "tests:\n  - {name: x, principal: {id: a}, action: mqtt:publish, resource: t, expect: permit, extra: 1}\n",
           "tests:\n  - {name: x, action: mqtt:publish, resource: t, expect: permit}\n",
           "tests: &a []\n",
           "tset: []\n",
       }) {
    auto file = parsePolicyTestFile(bad, "t.yaml");
    EXPECT_FALSE(file.isOk()) << bad;
    if (!file.isOk()) {
      EXPECT_EQ(file.status().message().rfind("t.yaml:", 0), 0u) << file.status().message();
    }
  }
}

TEST(PolicyContext, SetsEveryField) {
  Context c;
  EXPECT_TRUE(setContextField(c, "time", "2026-03-02T10:00:00Z").isOk());
  EXPECT_TRUE(setContextField(c, "source_ip", "fd00::1").isOk());
  EXPECT_TRUE(setContextField(c, "protocol", "mqtt").isOk());
  EXPECT_TRUE(setContextField(c, "mfa", "true").isOk());
  EXPECT_EQ(c.protocol, "mqtt");
  EXPECT_EQ(c.mfa, true);
  EXPECT_TRUE(c.source_ip->v6);
  EXPECT_FALSE(setContextField(c, "time", "2026-03-02 10:00").isOk());
  EXPECT_FALSE(setContextField(c, "source_ip", "10.0.0").isOk());
  EXPECT_FALSE(setContextField(c, "mfa", "yes").isOk());
  EXPECT_FALSE(setContextField(c, "weekday", "mon").isOk());
  auto t = parseTimestamp("2026-03-02T10:00:00.250+01:00");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(formatTimestamp(*t), "2026-03-02T09:00:00Z");
}

TEST(PolicyLint, ReportsEveryCodeWithPosition) {
  auto policy = mustParse(R"yaml(segments:
  edge: {role: sensor}
  plant: {role: controller}
  lonely: {role: nobody}
services:
  commands: {segment: plant, mqtt: ["cmd/#"]}
  telemetry: {segment: plant, mqtt: ["tel/#"]}
flows:
  - {from: edge, to: telemetry, actions: [mqtt:publish]}
rules:
  - {id: impossible, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["a"], when: ["principal.trust > 100"]}
  - {id: blocked, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], resources: ["cmd/x"]}
  - {id: shadowed, effect: permit, principals: {kind: device, role: sensor}, actions: [mqtt:publish], resources: ["fw/a/#"]}
  - {id: no-fw, effect: forbid, principals: {kind: device}, actions: ["mqtt:*"], resources: ["fw/#"]}
  - {id: everything, effect: permit, principals: {segment: plant}, actions: [mqtt:subscribe], resources: ["#"]}
)yaml",
                          "lint.yaml");
  auto findings = lintPolicy(*policy);
  auto got = codes(findings);
  std::vector<std::string> want = {"unused-segment:lonely",           "unused-flow:edge->telemetry",
                                   "never-matches:impossible",        "never-matches:blocked",
                                   "shadowed-by-forbid:shadowed",     "broader-than-segment:everything"};
  EXPECT_EQ(got, want);
  for (const LintFinding& f : findings) {
    EXPECT_EQ(f.file, "lint.yaml");
    EXPECT_GT(f.line, 0);
    EXPECT_GT(f.column, 0);
    EXPECT_FALSE(f.message.empty());
  }
  EXPECT_EQ(findings[0].line, 4);
  EXPECT_EQ(findings[0].column, 3);
}

TEST(PolicyLint, SegmentWithAnAttestationBlockIsUsed) {
  auto policy = mustParse(R"yaml(segments:
  plc:
    role: controller
    attestation: {required: true, interval: 60s, grace: 120s}
  lonely: {role: nobody}
rules: []
)yaml");
  EXPECT_EQ(codes(lintPolicy(*policy)), std::vector<std::string>{"unused-segment:lonely"});
}

TEST(PolicyLint, NeverMatchesFindsContradictions) {
  auto policy = mustParse(R"yaml(segments:
  edge: {role: sensor}
  plant: {role: controller}
rules:
  - {id: trust-range, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["a"], when: ["principal.trust >= 80", "principal.trust < 50"]}
  - {id: two-roles, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["a"], when: ["principal.role == sensor", "principal.role in [controller, actuator]"]}
  - {id: kind-vs-selector, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["a"], when: ["principal.kind == user"]}
  - {id: no-weekday, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["a"], when: ["context.weekday in [sat, sun]", "context.weekday in [mon, tue]"]}
  - {id: fw-both, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["a"], when: ["principal.firmware.approved", "principal.firmware.approved == false"]}
  - {id: young-and-old, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: ["a"], when: ["principal.cert.age > 7d", "principal.cert.age <= 2h"]}
  - {id: wrong-segment, effect: permit, principals: {role: sensor, segment: plant}, actions: [mqtt:publish], resources: ["a"]}
  - {id: forbid-absent-holds, effect: forbid, principals: {kind: device}, actions: [mqtt:publish], resources: ["b"], when: ["principal.trust >= 80", "principal.trust < 50"]}
  - {id: fine, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], resources: ["a"], when: ["principal.trust >= 50", "principal.trust <= 50", "principal.role == sensor", "context.weekday in [mon, sat]", "context.weekday not in [sat]"]}
)yaml",
                          "never.yaml");
  auto findings = lintPolicy(*policy);
  std::vector<std::string> want = {"never-matches:trust-range", "never-matches:two-roles",
                                   "never-matches:kind-vs-selector", "never-matches:no-weekday",
                                   "never-matches:fw-both", "never-matches:young-and-old",
                                   "never-matches:wrong-segment"};
  EXPECT_EQ(codes(findings), want);
  ASSERT_FALSE(findings.empty());
  EXPECT_NE(findings[0].message.find("'principal.trust < 50' contradicts 'principal.trust >= 80'"), std::string::npos)
      << findings[0].message;
}

TEST(PolicyLint, CleanPolicyHasNoFindings) {
  auto policy = mustParse(R"yaml(segments:
  edge: {role: sensor}
  plant: {role: controller}
services:
  telemetry: {segment: plant, mqtt: ["tel/#"]}
flows:
  - {from: edge, to: telemetry, actions: [mqtt:publish]}
rules:
  - {id: own, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], resources: ["tel/${principal.id}/#"]}
  - {id: read, effect: permit, principals: {segment: plant}, actions: [mqtt:subscribe], resources: ["tel/#"]}
)yaml");
  EXPECT_TRUE(lintPolicy(*policy).empty()) << codes(lintPolicy(*policy)).front();
}

TEST(PolicyDiff, ReportsChangesByMeaning) {
  auto a = mustParse(R"yaml(segments:
  edge: {role: sensor}
rules:
  - {id: keep, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], resources: ["a"]}
  - {id: change, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], resources: ["b"]}
  - {id: drop, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], resources: ["c"]}
)yaml");
  auto b = mustParse(R"yaml(segments:
  edge: {role: [sensor, camera]}
rules:
  - id: keep
    effect: permit
    principals: {segment: edge}
    actions: [mqtt:publish]
    resources: ["a"]
  - {id: change, effect: permit, principals: {segment: edge}, actions: [mqtt:publish], resources: ["b"], when: ["context.mfa"]}
  - {id: new, effect: forbid, principals: {segment: edge}, actions: [mqtt:publish], resources: ["d"]}
)yaml");
  PolicyDiff d = diffPolicies(*a, *b);
  EXPECT_EQ(d.rules.added, std::vector<std::string>{"new"});
  EXPECT_EQ(d.rules.removed, std::vector<std::string>{"drop"});
  EXPECT_EQ(d.rules.changed, std::vector<std::string>{"change"});
  EXPECT_EQ(d.segments.changed, std::vector<std::string>{"edge"});
  EXPECT_FALSE(d.identical());
  EXPECT_NE(d.text.find("+  - id: keep"), std::string::npos);
  PolicyDiff same = diffPolicies(*a, *a);
  EXPECT_TRUE(same.identical());
  EXPECT_EQ(same.text, "");
}

TEST(PolicyImpact, ListsPrincipalsWhoseDecisionsChange) {
  auto before = mustParse(R"yaml(rules:
  - {id: ops, effect: permit, principals: {kind: user, id: admin}, actions: ["admin:*"], resources: ["*"]}
  - {id: own, effect: permit, principals: {role: sensor}, actions: [mqtt:publish], resources: ["t/${principal.id}/#"]}
)yaml");
  auto after = mustParse(R"yaml(segments:
  edge: {role: sensor}
rules:
  - {id: ops, effect: permit, principals: {kind: user, id: admin}, actions: ["admin:device.list"], resources: ["*"]}
  - {id: own, effect: permit, principals: {role: sensor}, actions: [mqtt:publish], resources: ["t/${principal.id}/#"]}
  - {id: cam, effect: permit, principals: {role: camera}, actions: [mqtt:subscribe], resources: ["video/#"]}
)yaml");
  Principal sensor;
  sensor.id = "s1";
  sensor.role = "sensor";
  Principal camera;
  camera.id = "c1";
  camera.role = "camera";
  Principal admin;
  admin.id = "admin";
  admin.kind = core::PrincipalKind::kUser;
  Context ctx;
  PolicyImpact impact = comparePolicies(*before, *after, {sensor, camera, admin}, ctx);
  EXPECT_EQ(impact.principals_checked, 3u);
  EXPECT_EQ(impact.changed_principals, (std::vector<std::string>{"c1", "admin"}));
  bool camera_subscribe = false;
  bool admin_apply = false;
  for (const DecisionChange& c : impact.changes) {
    camera_subscribe = camera_subscribe || (c.principal == "c1" && c.action == "mqtt:subscribe" &&
                                            c.resource == "video/#" && !c.before.permit && c.after.permit);
    admin_apply = admin_apply || (c.principal == "admin" && c.action == "admin:policy.apply" && c.before.permit &&
                                  !c.after.permit);
  }
  EXPECT_TRUE(camera_subscribe);
  EXPECT_TRUE(admin_apply);
  EXPECT_TRUE(comparePolicies(*before, *before, {sensor, camera, admin}, ctx).changes.empty());
}

TEST(PolicyExamples, EveryExampleParsesPassesItsTestsAndLintsClean) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(WARDEN_SOURCE_DIR) / "examples/policies";
  int tested = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (name.size() < 10 || name.substr(name.size() - 10) != ".test.yaml") continue;
    std::string stem = name.substr(0, name.size() - 10);
    std::string policy_text = readRepoFile("examples/policies/" + stem + ".yaml");
    auto policy = mustParse(policy_text, stem + ".yaml");
    ASSERT_NE(policy, nullptr);
    EXPECT_TRUE(lintPolicy(*policy).empty()) << stem << ": " << codes(lintPolicy(*policy)).front();
    auto file = parsePolicyTestFile(readRepoFile("examples/policies/" + name), name);
    ASSERT_TRUE(file.isOk()) << file.status().message();
    for (const PolicyTestResult& r : runPolicyTests(*policy, *file)) {
      EXPECT_TRUE(r.passed) << stem << ": " << r.test->name << "\n" << r.diff;
    }
    ++tested;
  }
  EXPECT_GE(tested, 2);
}

}  // namespace
}  // namespace warden::policy
