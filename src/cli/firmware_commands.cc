// `warden firmware approve|revoke-approval|list`: the reference values of
// continuous verification (issue 6), the digests of released firmware images
// per device model.

#include <fmt/format.h>

#include "cli/cli_context.h"
#include "core/names.h"
#include "trust/measurement.h"

namespace warden::cli {
namespace {

using nlohmann::json;

struct FirmwareFlags {
  ClientFlags client;
  std::string digest;
  std::string model;
  std::string version;
  bool yes = false;
};

core::Status checkDigest(const std::string& digest) {
  if (!trust::parseDigestText(digest)) {
    return core::invalidArgument(fmt::format("'{}' is not a digest: write sha256: followed by the 64 hex digits of the "
                                             "image's SHA-256 (e.g. from `sha256sum IMAGE`)",
                                             digest.substr(0, 80)));
  }
  return core::Status::ok();
}

core::Status checkModel(const std::string& model) {
  if (!core::isValidLabelValue(model)) {
    return core::invalidArgument("--model must be a device model as in the devices' `model` label (1-63 of A-Z a-z "
                                 "0-9 . _ -)");
  }
  return core::Status::ok();
}

int firmwareApprove(const FirmwareFlags& f, const GlobalFlags& global) {
  if (auto st = checkDigest(f.digest); !st.isOk()) return reportError(st, nullptr);
  if (auto st = checkModel(f.model); !st.isOk()) return reportError(st, nullptr);
  if (f.version.empty() || f.version.size() > 64) {
    return reportError(core::invalidArgument("--version must be 1-64 characters, e.g. 2.1.0"), nullptr);
  }
  json body = {{"digest", f.digest}, {"model", f.model}, {"version", f.version}};
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("POST", "/v1/firmware", body));
    if (s.json) {
      printJson(answer);
    } else {
      printOut(fmt::format("{} approved as {} version {}{}\n", answer.value("digest", f.digest), f.model, f.version,
                           answer.value("changed", true) ? "" : " (already approved)"));
    }
    return core::Status::ok();
  });
}

int firmwareRevoke(const FirmwareFlags& f, const GlobalFlags& global) {
  if (auto st = checkDigest(f.digest); !st.isOk()) return reportError(st, nullptr);
  if (!f.model.empty()) {
    if (auto st = checkModel(f.model); !st.isOk()) return reportError(st, nullptr);
  }
  json body = {{"digest", f.digest}, {"apply", f.yes}};
  if (!f.model.empty()) body["model"] = f.model;
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("POST", "/v1/firmware/revoke", body));
    const size_t n = answer.value("quarantine_count", size_t{0});
    const size_t running = answer.contains("devices") && answer["devices"].is_array() ? answer["devices"].size() : 0;
    if (s.json) {
      printJson(answer);
    } else if (f.yes) {
      printOut(fmt::format("approval of {} revoked{}: {} device(s) run it, {} quarantined (approval_revoked)\n",
                           f.digest, f.model.empty() ? "" : " for model " + f.model, running, n));
    } else {
      std::string names;
      if (answer.contains("quarantine") && answer["quarantine"].is_array()) {
        for (const auto& d : answer["quarantine"]) names += (names.empty() ? "" : ", ") + d.get<std::string>();
      }
      printOut(fmt::format("revoking the approval of {}{} would quarantine {} device(s){}{}\n"
                           "nothing changed: run again with --yes to revoke\n",
                           f.digest, f.model.empty() ? "" : " for model " + f.model, n,
                           names.empty() ? "" : ": ", names));
    }
    return core::Status::ok();
  });
}

int firmwareList(const FirmwareFlags& f, const GlobalFlags& global) {
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("GET", "/v1/firmware"));
    json list = answer.is_object() && answer.contains("firmware") ? answer["firmware"] : json::array();
    if (s.json) {
      printJson(list);
      return core::Status::ok();
    }
    if (list.empty()) {
      printOut("no approved firmware (approve a release with `warden firmware approve sha256:HEX --model M --version V`)\n");
      return core::Status::ok();
    }
    std::string out = fmt::format("{:<16} {:<12} {:<9} {:<21} {}\n", "MODEL", "VERSION", "STATE", "APPROVED AT", "DIGEST");
    for (const json& a : list) {
      out += fmt::format("{:<16} {:<12} {:<9} {:<21} {}\n", a.value("model", ""), a.value("version", ""),
                         a.value("state", ""), a["approved_at"].is_string() ? a["approved_at"].get<std::string>() : "-",
                         a.value("digest", ""));
    }
    printOut(out);
    return core::Status::ok();
  });
}

}  // namespace

void addFirmwareCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  CLI::App* cmd = app.add_subcommand("firmware", "approve firmware releases (reference values for attestation)");
  cmd->require_subcommand(1);
  cmd->footer("\nRun `warden firmware COMMAND --help` for a command's options and examples.");
  auto flags = std::make_shared<FirmwareFlags>();

  CLI::App* approve = cmd->add_subcommand("approve", "approve a firmware image digest for a device model");
  addClientOptions(approve, flags->client);
  approve->add_option("DIGEST", flags->digest, "sha256:HEX, the SHA-256 of the image")->required();
  approve->add_option("--model", flags->model, "device model: the `model` label of the devices that run it")->required();
  approve->add_option("--version", flags->version, "the release's version, e.g. 2.1.0")->required();
  approve->footer(std::string(R"(
Examples:
  warden firmware approve sha256:$(sha256sum gw-2.1.0.bin | cut -d' ' -f1) --model gw-100 --version 2.1.0
  warden firmware approve sha256:3f2a...  --model gw-100 --version 2.1.0 -o json   # {digest, model, version, changed}

Every measurement in a device's attestation log must be an approved digest for
the device's `model` label (`warden device add ... --label model=gw-100`);
otherwise the attestation fails (unapproved_firmware) and the device is
quarantined. Approving again with the same version is a no-op.)") + kApiFooter);
  table.add(approve, [flags, &global] { return firmwareApprove(*flags, global); });

  CLI::App* revoke = cmd->add_subcommand("revoke-approval",
                                         "withdraw a firmware approval; devices running it are quarantined");
  addClientOptions(revoke, flags->client);
  revoke->add_option("DIGEST", flags->digest, "sha256:HEX of the approved image")->required();
  revoke->add_option("--model", flags->model, "only for this model (default: every model it is approved for)");
  revoke->add_flag("--yes", flags->yes, "do it (without --yes: print how many devices it would quarantine)");
  revoke->footer(std::string(R"(
Examples:
  warden firmware revoke-approval sha256:3f2a...            # dry run: how many devices it would quarantine
  warden firmware revoke-approval sha256:3f2a... --yes      # revoke; prints how many were quarantined
  warden -o json firmware revoke-approval sha256:3f2a... --model gw-100 --yes
      # {digest, model, applied, devices, quarantine, quarantine_count, revoked}

Postures are re-judged at once: every active device whose last attestation
log holds the digest (for that model) is quarantined with reason
approval_revoked, and is re-admitted after it attests with an approved image.)") +
                  kApiFooter);
  table.add(revoke, [flags, &global] { return firmwareRevoke(*flags, global); });

  CLI::App* list = cmd->add_subcommand("list", "list firmware approvals (revoked ones included)");
  addClientOptions(list, flags->client);
  list->footer(std::string(R"(
Examples:
  warden firmware list
  warden firmware list -o json   # [{digest, model, version, approved_at, approved_by, state, revoked_at, revoked_by}])") +
               kApiFooter);
  table.add(list, [flags, &global] { return firmwareList(*flags, global); });
}

}  // namespace warden::cli
