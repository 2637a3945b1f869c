// `warden policy apply|show`.

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "api/api_json.h"
#include "cli/cli_context.h"
#include "core/file_io.h"
#include "policy/policy.h"
#include "policy/policy_diff.h"
#include "policy/policy_lint.h"
#include "policy/policy_test_suite.h"

namespace warden::cli {
namespace {

using nlohmann::json;

constexpr size_t kMaxPolicyBytes = 1024 * 1024;

struct PolicyFlags {
  ClientFlags client;
  std::string file;
  bool force = false;
  bool dry_run = false;  // apply --dry-run
  std::string policy_file;  // test --policy
  bool strict = false;      // lint --strict
  std::string a, b;         // diff
  std::string principal, action, resource;  // explain
  std::vector<std::string> context;         // explain --context
  int64_t version = 0;                      // rollback
};

// readPolicyText reads a policy (or test) file, at most 1 MiB.
core::Result<std::string> readPolicyText(const std::string& path) {
  auto text = core::readFile(path, kMaxPolicyBytes);
  if (text.isOk()) return text;
  if (text.status().code() == core::ErrorCode::kInvalidArgument) {
    return core::invalidArgument(fmt::format("{}: a policy file may not exceed 1 MiB", path));
  }
  return core::invalidArgument(fmt::format("cannot read {}: {}", path, text.status().message()));
}

// usageError prints |message| on stderr and returns exit code 2.
int usageError(std::string_view message) {
  std::fprintf(stderr, "%.*s\n", static_cast<int>(message.size()), message.data());
  return api::kExitUsage;
}

int policyApply(const PolicyFlags& f, const GlobalFlags& global) {
  auto text = core::readFile(f.file, kMaxPolicyBytes);
  if (!text.isOk()) {
    if (text.status().code() == core::ErrorCode::kInvalidArgument) {
      return reportError(core::invalidArgument(fmt::format("{}: a policy file may not exceed 1 MiB", f.file)), nullptr);
    }
    return reportError(core::invalidArgument(fmt::format("cannot read {}: {}", f.file, text.status().message())), nullptr);
  }
  // Validate here first, so errors read FILE:LINE:COL with the user's file
  // name without a round trip; the server validates again before storing.
  auto parsed = policy::Policy::parse(*text, f.file);
  if (!parsed.isOk()) {
    std::fprintf(stderr, "%s\n", parsed.status().message().c_str());
    return api::kExitUsage;
  }
  auto session = openSession(f.client, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  std::string target = f.dry_run ? "/v1/policy?dry_run=true" : f.force ? "/v1/policy?force=true" : "/v1/policy";
  auto answer = session->client->callRaw("PUT", target, *text, "application/yaml",
                                         {{"X-Warden-Filename", f.file}});
  if (!answer.isOk()) {
    if (answer.status().code() == core::ErrorCode::kInvalidArgument) {
      std::fprintf(stderr, "%s\n", answer.status().message().c_str());  // already FILE:LINE:COL: message
      return api::kExitUsage;
    }
    return reportError(answer.status(), &*session);
  }
  if (session->json) {
    printJson(*answer);
  } else if (f.dry_run) {
    const nlohmann::json& a = *answer;
    std::string out = fmt::format("{}: valid; nothing was stored (dry run)\n", f.file);
    if (a.value("would_lock_out", false)) {
      out += "WARNING: you would lose admin:policy.apply under this policy (apply refuses it without --force)\n";
    }
    out += fmt::format("{} of {} principals checked with {} requests; {} would see decisions change\n",
                       a.value("principals_checked", 0), a.value("principals_total", 0),
                       a.value("requests_checked", 0), a.contains("changed_principals") ? a["changed_principals"].size() : 0);
    if (a.contains("changes") && a["changes"].is_array()) {
      for (const auto& c : a["changes"]) {
        auto side = [](const nlohmann::json& d) {
          return fmt::format("{} ({})", d.value("decision", "?"), d.value("reason", "?"));
        };
        out += fmt::format("  {:20} {:16} {:40} {} -> {}\n", c.value("principal", ""), c.value("action", ""),
                           c.value("resource", ""), side(c["before"]), side(c["after"]));
      }
    }
    if (a.value("changes_truncated", false)) out += "  ... more changes not listed\n";
    if (a.contains("sessions") && a["sessions"].is_object()) {
      const nlohmann::json& live = a["sessions"];
      out += fmt::format("{} live sessions: {} would be cut, {} would lose subscriptions, {} would get some back\n",
                         live.value("live", 0), live["would_cut"].size(), live["would_lose_subscriptions"].size(),
                         live["would_restore_subscriptions"].size());
      for (const auto& c : live["would_cut"]) {
        out += fmt::format("  cut      {:20} ({}, {})\n", c.value("device", ""), c.value("reason", ""),
                           c.value("rule", ""));
      }
      for (const auto& l : live["would_lose_subscriptions"]) {
        for (const auto& filter : l["filters"]) {
          out += fmt::format("  suspend  {:20} {}\n", l.value("device", ""), filter.get<std::string>());
        }
      }
      for (const auto& r : live["would_restore_subscriptions"]) {
        for (const auto& filter : r["filters"]) {
          out += fmt::format("  restore  {:20} {}\n", r.value("device", ""), filter.get<std::string>());
        }
      }
    }
    printOut(out);
  } else {
    std::string version = answer->is_object() && answer->contains("version") ? answer->at("version").dump() : "?";
    printOut(fmt::format("policy version {} applied from {}; live sessions were re-evaluated\n", version, f.file));
  }
  return api::kExitOk;
}

int policyShow(const PolicyFlags& f, const GlobalFlags& global) {
  auto session = openSession(f.client, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  auto answer = session->client->call("GET", "/v1/policy");
  if (!answer.isOk()) return reportError(answer.status(), &*session);
  if (session->json) {
    printJson(*answer);
    return api::kExitOk;
  }
  const json& p = *answer;
  std::string text = p.is_object() && p.contains("text") && p["text"].is_string() ? p["text"].get<std::string>() : "";
  auto field = [&](const char* k) { return p.is_object() && p.contains(k) ? (p[k].is_string() ? p[k].get<std::string>() : p[k].dump()) : "?"; };
  // The header is a YAML comment, so the output can be applied again as is.
  std::string out = fmt::format("# active policy version {}, applied {} by {}\n", field("version"), field("created_at"),
                                field("actor"));
  out += text;
  if (!text.empty() && text.back() != '\n') out += "\n";
  printOut(out);
  return api::kExitOk;
}

// resolveTestPolicy finds the policy a test file runs against: --policy,
// else the file's `policy:` key (relative to the test file), else the
// sibling NAME.yaml of NAME.test.yaml / NAME_test.yaml / NAME.tests.yaml.
std::string resolveTestPolicy(const PolicyFlags& f, const policy::PolicyTestFile& file) {
  namespace fs = std::filesystem;
  if (!f.policy_file.empty()) return f.policy_file;
  fs::path test(f.file);
  if (!file.policy.empty()) return (test.parent_path() / file.policy).string();
  std::string name = test.filename().string();
  for (std::string_view suffix : {".test.yaml", "_test.yaml", ".tests.yaml", "_tests.yaml", ".test.yml"}) {
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      fs::path sibling = test.parent_path() / (name.substr(0, name.size() - suffix.size()) + ".yaml");
      if (fs::exists(sibling)) return sibling.string();
    }
  }
  return "";
}

int policyTest(const PolicyFlags& f, const GlobalFlags& global) {
  const bool json = wantsJson(f.client.output, global);
  auto text = readPolicyText(f.file);
  if (!text.isOk()) return usageError(text.status().message());
  auto file = policy::parsePolicyTestFile(*text, f.file);
  if (!file.isOk()) return usageError(file.status().message());
  std::string policy_path = resolveTestPolicy(f, *file);
  if (policy_path.empty()) {
    return usageError(fmt::format("{}: which policy? pass --policy POLICY, add 'policy: FILE' to the test file, or "
                                  "name it NAME.test.yaml next to NAME.yaml",
                                  f.file));
  }
  auto policy_text = readPolicyText(policy_path);
  if (!policy_text.isOk()) return usageError(policy_text.status().message());
  auto parsed = policy::Policy::parse(*policy_text, policy_path);
  if (!parsed.isOk()) return usageError(parsed.status().message());
  std::vector<policy::PolicyTestResult> results = policy::runPolicyTests(**parsed, *file);
  int passed = 0;
  int failed = 0;
  nlohmann::json items = nlohmann::json::array();
  std::string out;
  for (const policy::PolicyTestResult& r : results) {
    (r.passed ? passed : failed)++;
    if (json) {
      nlohmann::json item = {{"name", r.test->name},
                             {"line", r.test->line},
                             {"passed", r.passed},
                             {"expected", r.test->expect_permit ? "permit" : "deny"},
                             {"actual", api::decisionToJson(r.decision)}};
      if (!r.passed) item["diff"] = r.diff;
      items.push_back(std::move(item));
    } else if (r.passed) {
      out += fmt::format("PASS  {}\n", r.test->name);
    } else {
      out += fmt::format("FAIL  {} ({}:{})\n      {} {} {}\n", r.test->name, f.file, r.test->line, r.test->action,
                         r.test->resource, r.test->principal.id);
      std::string diff = r.diff;
      size_t pos = 0;
      while ((pos = diff.find('\n', pos)) != std::string::npos) diff.replace(pos, 1, "\n      "), pos += 7;
      out += "      " + diff + "\n";
    }
  }
  if (json) {
    printJson({{"passed", passed}, {"failed", failed}, {"policy", policy_path}, {"results", std::move(items)}});
  } else {
    out += fmt::format("{} passed, {} failed ({} against {})\n", passed, failed, f.file, policy_path);
    printOut(out);
  }
  return failed == 0 ? api::kExitOk : api::kExitFailed;
}

// fetchPolicy returns the text of version |version| (0 = the active one)
// from the server, with a display name.
core::Result<std::pair<std::string, std::string>> fetchPolicy(const PolicyFlags& f, const GlobalFlags& global,
                                                               int64_t version, int* exit_code) {
  auto session = openSession(f.client, global);
  if (!session.isOk()) {
    *exit_code = reportError(session.status(), nullptr);
    return session.status();
  }
  auto answer = session->client->call("GET", version == 0 ? std::string("/v1/policy")
                                                          : fmt::format("/v1/policy/versions/{}", version));
  if (!answer.isOk()) {
    *exit_code = reportError(answer.status(), &*session);
    return answer.status();
  }
  const nlohmann::json& p = *answer;
  if (!p.is_object() || !p.contains("text") || !p["text"].is_string()) {
    *exit_code = api::kExitFailed;
    return core::internalError("the server answered without a policy text");
  }
  std::string name = fmt::format("policy v{}", p.contains("version") ? p["version"].dump() : "?");
  return std::make_pair(p["text"].get<std::string>(), name);
}

int policyLint(const PolicyFlags& f, const GlobalFlags& global) {
  const bool json = wantsJson(f.client.output, global);
  std::string text;
  std::string name = f.file;
  if (f.file.empty()) {
    int code = api::kExitFailed;
    auto fetched = fetchPolicy(f, global, 0, &code);
    if (!fetched.isOk()) return code;
    text = fetched->first;
    name = fetched->second;
  } else {
    auto read = readPolicyText(f.file);
    if (!read.isOk()) return usageError(read.status().message());
    text = *read;
  }
  auto parsed = policy::Policy::parse(text, name);
  if (!parsed.isOk()) return usageError(parsed.status().message());
  std::vector<policy::LintFinding> findings = policy::lintPolicy(**parsed);
  if (json) {
    nlohmann::json items = nlohmann::json::array();
    for (const policy::LintFinding& finding : findings) items.push_back(api::lintFindingToJson(finding));
    printJson({{"file", name}, {"warnings", findings.size()}, {"findings", std::move(items)}});
  } else {
    std::string out;
    for (const policy::LintFinding& x : findings) {
      out += fmt::format("{}:{}:{}: warning [{}] {}: {}\n", x.file, x.line, x.column, x.code, x.rule, x.message);
    }
    out += fmt::format("{}: {} warning(s)\n", name, findings.size());
    printOut(out);
  }
  return f.strict && !findings.empty() ? api::kExitFailed : api::kExitOk;
}

bool isVersionNumber(const std::string& s) {
  return !s.empty() && s.size() < 12 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int policyDiff(const PolicyFlags& f, const GlobalFlags& global) {
  const bool json = wantsJson(f.client.output, global);
  std::string texts[2];
  std::string names[2];
  const std::string* args[2] = {&f.a, &f.b};
  for (int i = 0; i < 2; ++i) {
    if (isVersionNumber(*args[i]) && !std::filesystem::exists(*args[i])) {
      int code = api::kExitFailed;
      auto fetched = fetchPolicy(f, global, std::stoll(*args[i]), &code);
      if (!fetched.isOk()) return code;
      texts[i] = fetched->first;
      names[i] = fetched->second;
    } else {
      auto read = readPolicyText(*args[i]);
      if (!read.isOk()) return usageError(read.status().message());
      texts[i] = *read;
      names[i] = *args[i];
    }
  }
  auto a = policy::Policy::parse(texts[0], names[0]);
  if (!a.isOk()) return usageError(a.status().message());
  auto b = policy::Policy::parse(texts[1], names[1]);
  if (!b.isOk()) return usageError(b.status().message());
  policy::PolicyDiff diff = policy::diffPolicies(**a, **b);
  if (json) {
    auto section = [](const policy::NameDiff& d) {
      return nlohmann::json{{"added", d.added}, {"removed", d.removed}, {"changed", d.changed}};
    };
    printJson({{"from", names[0]},
               {"to", names[1]},
               {"identical", diff.identical()},
               {"rules", section(diff.rules)},
               {"segments", section(diff.segments)},
               {"services", section(diff.services)},
               {"flows", section(diff.flows)},
               {"timezone_changed", diff.timezone_changed},
               {"text", diff.text}});
  } else {
    std::string out = fmt::format("--- {}\n+++ {}\n", names[0], names[1]);
    auto section = [&](std::string_view what, const policy::NameDiff& d) {
      for (const std::string& n : d.added) out += fmt::format("{} added:   {}\n", what, n);
      for (const std::string& n : d.removed) out += fmt::format("{} removed: {}\n", what, n);
      for (const std::string& n : d.changed) out += fmt::format("{} changed: {}\n", what, n);
    };
    section("rule", diff.rules);
    section("segment", diff.segments);
    section("service", diff.services);
    section("flow", diff.flows);
    if (diff.timezone_changed) out += "timezone changed\n";
    if (diff.identical()) out += "no change in meaning\n";
    out += diff.text;
    printOut(out);
  }
  return api::kExitOk;
}

int policyExplain(const PolicyFlags& f, const GlobalFlags& global) {
  nlohmann::json context = nlohmann::json::object();
  policy::Context check;
  for (const std::string& kv : f.context) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return usageError(fmt::format("--context '{}': write KEY=VALUE, e.g. --context source_ip=10.1.2.3", kv));
    }
    core::Status st = policy::setContextField(check, kv.substr(0, eq), kv.substr(eq + 1));
    if (!st.isOk()) return usageError(fmt::format("--context {}: {}", kv, st.message()));
    context[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (!std::any_of(policy::kActions.begin(), policy::kActions.end(), [&](std::string_view a) { return a == f.action; })) {
    return usageError(fmt::format("unknown action '{}': see `warden policy explain --help`", f.action));
  }
  auto session = openSession(f.client, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  nlohmann::json body = {{"principal", f.principal}, {"action", f.action}, {"resource", f.resource},
                         {"context", context}};
  auto answer = session->client->call("POST", "/v1/policy/explain", body);
  if (!answer.isOk()) {
    if (answer.status().code() == core::ErrorCode::kInvalidArgument) return usageError(answer.status().message());
    return reportError(answer.status(), &*session);
  }
  if (session->json) {
    printJson(*answer);
    return api::kExitOk;
  }
  const nlohmann::json& e = *answer;
  auto str = [](const nlohmann::json& j, const char* k) {
    return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
  };
  std::string out = fmt::format("{} ({}) by rule {}", str(e, "decision"), str(e, "reason"), str(e, "rule"));
  if (!str(e, "flow").empty()) out += fmt::format(" through flow {}", str(e, "flow"));
  out += "\n";
  if (e.contains("principal") && e["principal"].is_object()) {
    out += fmt::format("principal: {} segments [{}]\n", str(e["principal"], "spiffe_id"),
                       e["principal"].contains("segments") ? e["principal"]["segments"].dump() : "");
  }
  if (e.contains("missing_flows") && e["missing_flows"].is_array()) {
    for (const auto& m : e["missing_flows"]) {
      out += fmt::format("missing flow: from {} to {} for {}\n", str(m, "from"), str(m, "to"), str(m, "action"));
    }
  }
  out += fmt::format("valid until: {}\n", str(e, "valid_until"));
  if (e.contains("rules") && e["rules"].is_array()) {
    out += "rules (file order):\n";
    for (const auto& r : e["rules"]) {
      bool matched = r.contains("matched") && r["matched"].is_boolean() && r["matched"].get<bool>();
      out += fmt::format("  {:6} {:30} {}\n", str(r, "effect"), str(r, "id"),
                         matched ? std::string("matched") : "no: " + str(r, "why_not"));
    }
  }
  printOut(out);
  return api::kExitOk;
}

int policyHistory(const PolicyFlags& f, const GlobalFlags& global) {
  auto session = openSession(f.client, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  auto answer = session->client->call("GET", "/v1/policy/versions");
  if (!answer.isOk()) return reportError(answer.status(), &*session);
  if (session->json) {
    printJson(*answer);
    return api::kExitOk;
  }
  std::string out = fmt::format("{:>8}  {:20}  {}\n", "VERSION", "CREATED", "ACTOR");
  if (answer->contains("versions") && (*answer)["versions"].is_array()) {
    for (const auto& v : (*answer)["versions"]) {
      out += fmt::format("{:>8}  {:20}  {}\n", v.value("version", int64_t{0}), v.value("created_at", ""),
                         v.value("actor", ""));
    }
  }
  printOut(out);
  return api::kExitOk;
}

int policyRollback(const PolicyFlags& f, const GlobalFlags& global) {
  if (f.version <= 0) return usageError("VERSION must be a policy version number (see `warden policy history`)");
  auto session = openSession(f.client, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  auto answer = session->client->call("POST", "/v1/policy/rollback", nlohmann::json{{"version", f.version}, {"force", f.force}});
  if (!answer.isOk()) return reportError(answer.status(), &*session);
  if (session->json) {
    printJson(*answer);
  } else {
    printOut(fmt::format("policy version {} applied (the text of version {}); live sessions were re-evaluated\n",
                         answer->value("version", int64_t{0}), f.version));
  }
  return api::kExitOk;
}

constexpr const char* kClientFooter = R"(
The server and credentials come from --dir D (or $WARDEN_DIR), or from
--server URL --cert FILE --key FILE --ca FILE. -o json|text works anywhere.

Exit codes: 0 ok; 1 refused or failed; 2 usage or validation error (policy
errors print FILE:LINE:COL: message); 3 server unreachable or TLS/
authentication failure.)";

}  // namespace

void addPolicyCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  CLI::App* policy = app.add_subcommand("policy", "write, test, explain, apply and roll back the authorization policy");
  policy->require_subcommand(1);
  policy->footer("\nRun `warden policy COMMAND --help` for a command's options and examples.");
  auto flags = std::make_shared<PolicyFlags>();

  CLI::App* apply = policy->add_subcommand("apply", "validate, store and activate a policy file (a new version)");
  apply->add_option("FILE", flags->file, "policy YAML file (at most 1 MiB)")->required();
  apply->add_flag("--force", flags->force, "apply even if you would lose admin:policy.apply under the new policy");
  apply->add_flag("--dry-run", flags->dry_run,
                  "validate and show the impact (live sessions cut or restricted, principals whose decisions change) without storing anything");
  addClientOptions(apply, flags->client);
  apply->footer(std::string(R"(
Examples:
  warden policy apply examples/demo-policy.yaml
  warden policy apply policy.yaml -o json      # {"version": N}

The file is validated locally and again by the server; a new version is
stored and switched to atomically, and live sessions are re-evaluated before
the command returns (connections no longer allowed are closed, subscriptions
no longer allowed are suspended, restored ones resubscribed). A policy under
which you would lose admin:policy.apply is refused (exit 1) unless --force.

--dry-run stores nothing: it validates the file on the server, reports
whether you would lose admin:policy.apply, and lists, for the registered
principals (up to 10,000), the requests whose decision would change (probed
with connect under the principal's own id, every resource pattern of either
policy expanded for it, every service pattern, and admin actions for users).
JSON: {dry_run, valid, would_lock_out, principals_total, principals_checked,
requests_checked, changed_principals, changes: [{principal, action,
resource, before, after}], changes_truncated, sessions: {live, would_cut:
[{device, reason, rule}], would_lose_subscriptions: [{device, filters}],
would_restore_subscriptions: [{device, filters}]}}. It exits 0
whenever it answers.)") + kClientFooter);
  table.add(apply, [flags, &global] { return policyApply(*flags, global); });

  CLI::App* show = policy->add_subcommand("show", "print the active policy version and its exact text");
  addClientOptions(show, flags->client);
  show->footer(std::string(R"(
Examples:
  warden policy show > current.yaml    # a comment line with the version, then the text
  warden policy show -o json           # {version, text, created_at, actor})") + kClientFooter);
  table.add(show, [flags, &global] { return policyShow(*flags, global); });

  CLI::App* test = policy->add_subcommand("test", "run a table of requests with expected decisions against a policy (offline)");
  test->add_option("FILE", flags->file, "test file (YAML, `tests:` list)")->required();
  test->add_option("--policy", flags->policy_file, "the policy file to test (default: the test file's `policy:` key, "
                                                   "else NAME.yaml next to NAME.test.yaml)");
  addOutputOption(test, flags->client.output);
  test->footer(R"(
A test file (docs/policy.md, "Testing a policy"):

  policy: factory.yaml            # optional, relative to this file
  tests:
    - name: sensor publishes its telemetry in the day shift
      principal: {id: s1, role: sensor, labels: {site: plant1}, trust: 90}
      action: mqtt:publish
      resource: factory/telemetry/s1/temp
      context: {source_ip: 10.1.2.3, time: "2026-03-02T10:00:00+01:00"}
      expect: permit              # permit | deny
      reason: permitted           # optional: also check the reason
      rule: sensors-telemetry     # optional: also check the deciding rule

Principal keys: id (required), kind, role, labels, quarantined, trust,
firmware_approved, attestation_assurance (none|software|tpm),
attestation_age, cert_age (30s, 5m, 2h, 7d). Segments are computed from
the policy, never given. Context keys: time (RFC 3339), source_ip,
protocol, mfa. Absent attributes fail closed, as in production.

Examples:
  warden policy test examples/policies/factory.test.yaml
  warden policy test cases.yaml --policy draft.yaml -o json   # {passed, failed, results: [...]}

Runs offline: no server needed. Exit codes: 0 every test passed; 1 a test
failed (each failure shows the expected and the actual decision); 2 the
test file or the policy is invalid (FILE:LINE:COL: message).)");
  table.add(test, [flags, &global] { return policyTest(*flags, global); });

  CLI::App* lint = policy->add_subcommand("lint", "warn about rules, segments and flows that probably do not say what you mean");
  lint->add_option("FILE", flags->file, "policy file (default: the server's active policy)");
  lint->add_flag("--strict", flags->strict, "exit 1 if there is any warning");
  addClientOptions(lint, flags->client);
  lint->footer(std::string(R"(
Warnings (each with the rule, segment or flow id, FILE:LINE:COL):
  never-matches          a rule no request can match (an impossible condition, or a
                         permit whose topics lie in services its segments have no flow to)
  shadowed-by-forbid     a permit that an unconditional forbid covers entirely
  broader-than-segment   a publish/subscribe permit on '#', '+/...' or on topics of
                         services in several segments
  unused-segment         a segment no rule, service, flow or condition names
  unused-flow            a flow that no permit of its actions makes use of

Examples:
  warden policy lint policy.yaml
  warden policy lint --strict -o json      # {file, warnings, findings: [{code, rule, file, line, column, message}]}

Exit codes: 0 no warnings, or warnings without --strict; 1 warnings with
--strict; 2 the policy is invalid.)") + kClientFooter);
  table.add(lint, [flags, &global] { return policyLint(*flags, global); });

  CLI::App* diff = policy->add_subcommand("diff", "compare two policies: stored versions or files");
  diff->add_option("A", flags->a, "version number or file")->required();
  diff->add_option("B", flags->b, "version number or file")->required();
  addClientOptions(diff, flags->client);
  diff->footer(std::string(R"(
Lists the rules, segments, services and flows added, removed and changed
(by id or name, compared by meaning, not by formatting), then a line diff of
the texts. A number is a stored version (see `warden policy history`) and
needs the server; anything else is a file.

Examples:
  warden policy diff 3 4
  warden policy diff 4 draft.yaml -o json   # {from, to, identical, rules: {added, removed, changed}, ...}

Exit codes: 0 answered (different or not); 2 invalid input.)") + kClientFooter);
  table.add(diff, [flags, &global] { return policyDiff(*flags, global); });

  CLI::App* explain = policy->add_subcommand("explain", "explain the decision the active policy makes for one request");
  explain->add_option("--principal", flags->principal, "a registered name (sensor-1, admin) or SPIFFE ID")->required();
  explain->add_option("--action", flags->action, "an action, e.g. mqtt:publish (list: docs/policy.md)")->required();
  explain->add_option("--resource", flags->resource, "topic, filter, client id or name")->required();
  explain->add_option("--context", flags->context, "KEY=VALUE: time (RFC 3339), source_ip, protocol, mfa (repeatable)");
  addClientOptions(explain, flags->client);
  explain->footer(std::string(R"(
The server resolves the principal (its kind, role, labels, quarantine and
posture), computes its segments and decides with the active policy, like the
gateway. Without --context time=..., the time is now; other context values
are absent unless given (absent values fail closed).

Examples:
  warden policy explain --principal sensor-1 --action mqtt:publish --resource factory/telemetry/sensor-1/t
  warden policy explain --principal spiffe://example.org/device/ivi-1 --action mqtt:publish \
      --resource vehicle/v1/brake/cmd --context source_ip=10.0.0.7 -o json

JSON: {decision, reason, rule, flow, missing_flows: [{from, to, action}],
valid_until, principal: {spiffe_id, segments}, rules: [{id, effect, matched,
why_not}]} with every rule naming the action, in file order. Needs
admin:policy.explain.

Exit codes: 0 answered (permit or deny alike); 1 refused or unknown
principal; 2 invalid input; 3 server unreachable.)") + kClientFooter);
  table.add(explain, [flags, &global] { return policyExplain(*flags, global); });

  CLI::App* history = policy->add_subcommand("history", "list the stored policy versions, newest first");
  addClientOptions(history, flags->client);
  history->footer(std::string(R"(
Examples:
  warden policy history
  warden policy history -o json     # {active, versions: [{version, created_at, actor}]}

Needs admin:policy.history.)") + kClientFooter);
  table.add(history, [flags, &global] { return policyHistory(*flags, global); });

  CLI::App* rollback = policy->add_subcommand("rollback", "apply the text of an earlier version again (as a new version)");
  rollback->add_option("VERSION", flags->version, "the version to go back to (see `warden policy history`)")->required();
  rollback->add_flag("--force", flags->force, "roll back even if you would lose admin:policy.apply");
  addClientOptions(rollback, flags->client);
  rollback->footer(std::string(R"(
Rollback never rewrites history: it stores the text of VERSION as a new
version, switches to it atomically and re-evaluates live sessions, exactly
like `warden policy apply`. Like apply, it needs admin:policy.apply and
refuses (exit 1) a version under which you would lose admin:policy.apply,
unless --force.

Examples:
  warden policy rollback 3
  warden policy rollback 3 -o json     # {version: NEW, from: 3})") + kClientFooter);
  table.add(rollback, [flags, &global] { return policyRollback(*flags, global); });
}

}  // namespace warden::cli
