// `warden policy apply|show`.

#include <fmt/format.h>

#include "cli/cli_context.h"
#include "core/file_io.h"
#include "policy/policy.h"

namespace warden::cli {
namespace {

using nlohmann::json;

constexpr size_t kMaxPolicyBytes = 1024 * 1024;

struct PolicyFlags {
  ClientFlags client;
  std::string file;
};

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
  auto answer = session->client->callRaw("PUT", "/v1/policy", *text, "application/yaml",
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

constexpr const char* kClientFooter = R"(
The server and credentials come from --dir D (or $WARDEN_DIR), or from
--server URL --cert FILE --key FILE --ca FILE. -o json|text works anywhere.

Exit codes: 0 ok; 1 refused or failed; 2 usage or validation error (policy
errors print FILE:LINE:COL: message); 3 server unreachable or TLS/
authentication failure.)";

}  // namespace

void addPolicyCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  CLI::App* policy = app.add_subcommand("policy", "apply and show the authorization policy");
  policy->require_subcommand(1);
  policy->footer("\nRun `warden policy COMMAND --help` for a command's options and examples.");
  auto flags = std::make_shared<PolicyFlags>();

  CLI::App* apply = policy->add_subcommand("apply", "validate, store and activate a policy file (a new version)");
  apply->add_option("FILE", flags->file, "policy YAML file (at most 1 MiB)")->required();
  addClientOptions(apply, flags->client);
  apply->footer(std::string(R"(
Examples:
  warden policy apply examples/demo-policy.yaml
  warden policy apply policy.yaml -o json      # {"version": N}

The file is validated locally and again by the server; a new version is
stored and switched to atomically, and live sessions are re-evaluated before
the command returns (connections no longer allowed are closed, subscriptions
no longer allowed are suspended, restored ones resubscribed). A policy under
which you would lose admin:policy.apply is refused (exit 1).)") + kClientFooter);
  table.add(apply, [flags, &global] { return policyApply(*flags, global); });

  CLI::App* show = policy->add_subcommand("show", "print the active policy version and its exact text");
  addClientOptions(show, flags->client);
  show->footer(std::string(R"(
Examples:
  warden policy show > current.yaml    # a comment line with the version, then the text
  warden policy show -o json           # {version, text, created_at, actor})") + kClientFooter);
  table.add(show, [flags, &global] { return policyShow(*flags, global); });
}

}  // namespace warden::cli
