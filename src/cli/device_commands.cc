// `warden device add|token|list|show|revoke|quarantine|release`.

#include <fmt/format.h>

#include "cli/cli_context.h"
#include "core/names.h"

namespace warden::cli {
namespace {

using nlohmann::json;

constexpr const char* kClientFooter = R"(
The server and credentials come from --dir D (or $WARDEN_DIR): D/warden.yaml
(api.listen) and D/pki/admin.pem, admin.key, ca-bundle.pem; or give --server
URL --cert FILE --key FILE --ca FILE. -o json|text works anywhere on the line.

Exit codes: 0 ok; 1 refused, not found or failed; 2 usage or validation
error; 3 server unreachable or TLS/authentication failure.)";

std::string footer(const char* examples) { return std::string("\nExamples:\n") + examples + kClientFooter; }

struct DeviceFlags {
  ClientFlags client;
  std::string name;
  std::string role;
  std::vector<std::string> labels;
  std::string ttl;
};

// withSession validates nothing further, opens the session and runs |body|.
int withSession(const ClientFlags& flags, const GlobalFlags& global,
                const std::function<core::Status(Session&)>& body) {
  auto session = openSession(flags, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  core::Status s = body(*session);
  if (!s.isOk()) return reportError(s, &*session);
  return api::kExitOk;
}

int deviceAdd(const DeviceFlags& f, const GlobalFlags& global) {
  auto request = api::validateDeviceAdd(f.name, f.role, f.labels, f.ttl);
  if (!request.isOk()) return reportError(request.status(), nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json added, s.client->call("POST", "/v1/devices", api::deviceAddBody(*request)));
    if (s.json) {
      printJson(api::deviceAddView(added));
    } else {
      printOut(api::formatDeviceAddText(added));
    }
    return core::Status::ok();
  });
}

int deviceToken(const DeviceFlags& f, const GlobalFlags& global) {
  if (auto st = core::checkName("device name", f.name); !st.isOk()) return reportError(st, nullptr);
  std::optional<int64_t> ttl;
  if (!f.ttl.empty()) {
    auto parsed = core::parseDuration(f.ttl);
    if (!parsed.isOk()) return reportError(parsed.status(), nullptr);
    ttl = *parsed;
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("POST", fmt::format("/v1/devices/{}/token", f.name), api::tokenBody(ttl)));
    json out = {{"name", f.name}, {"token", answer.value("token", "")}, {"token_expires_at", answer.value("token_expires_at", "")}};
    if (s.json) {
      printJson(out);
    } else {
      printOut(fmt::format("new one-time enrollment token for {}: {}\n"
                           "expires at {}; any earlier unused token of {} no longer works\n",
                           f.name, out["token"].get<std::string>(), out["token_expires_at"].get<std::string>(), f.name));
    }
    return core::Status::ok();
  });
}

int deviceList(const DeviceFlags& f, const GlobalFlags& global) {
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("GET", "/v1/devices"));
    WARDEN_ASSIGN_OR_RETURN(std::vector<json> devices, api::devicesFromBody(answer));
    if (s.json) {
      json list = json::array();
      for (const auto& d : devices) list.push_back(api::deviceView(d));
      printJson(list);
    } else {
      printOut(api::formatDeviceTable(devices));
    }
    return core::Status::ok();
  });
}

int deviceShow(const DeviceFlags& f, const GlobalFlags& global) {
  if (auto st = core::checkName("device name", f.name); !st.isOk()) return reportError(st, nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json device, s.client->call("GET", "/v1/devices/" + f.name));
    if (s.json) {
      printJson(api::deviceView(device));
    } else {
      printOut(api::formatDeviceText(device));
    }
    return core::Status::ok();
  });
}

int deviceStateChange(const DeviceFlags& f, const GlobalFlags& global, std::string_view verb) {
  if (auto st = core::checkName("device name", f.name); !st.isOk()) return reportError(st, nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("POST", fmt::format("/v1/devices/{}/{}", f.name, verb), json::object()));
    json out = {{"name", f.name}, {"state", nullptr}, {"changed", nullptr}};
    if (answer.is_object()) {
      if (answer.contains("state")) out["state"] = answer["state"];
      if (answer.contains("changed")) out["changed"] = answer["changed"];
    }
    if (s.json) {
      printJson(out);
      return core::Status::ok();
    }
    std::string state = out["state"].is_string() ? out["state"].get<std::string>() : std::string(verb);
    bool changed = !out["changed"].is_boolean() || out["changed"].get<bool>();
    if (!changed) {
      printOut(fmt::format("device {} is already {}; nothing changed\n", f.name, state));
    } else if (verb == "revoke") {
      printOut(fmt::format("device {} revoked: its certificates and unused tokens are revoked and its live sessions "
                           "closed (the name stays taken)\n",
                           f.name));
    } else if (verb == "quarantine") {
      printOut(fmt::format("device {} quarantined: it keeps only what rules for the quarantine segment allow; live "
                           "sessions were restricted or closed\n",
                           f.name));
    } else {
      printOut(fmt::format("device {} released: state {}\n", f.name, state));
    }
    return core::Status::ok();
  });
}

}  // namespace

void addDeviceCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  CLI::App* device = app.add_subcommand("device", "add, enroll-token, list, show, revoke, quarantine and release devices");
  device->require_subcommand(1);
  device->footer("\nRun `warden device COMMAND --help` for a command's options and examples.");

  auto flags = std::make_shared<DeviceFlags>();  // lives as long as the table's closures
  auto named = [&](const char* name, const char* help) {
    CLI::App* cmd = device->add_subcommand(name, help);
    addClientOptions(cmd, flags->client);
    return cmd;
  };

  CLI::App* add = named("add", "register a device and print its one-time enrollment token");
  add->add_option("NAME", flags->name, "device name: lowercase letters, digits and '-', at most 63")->required();
  add->add_option("--role", flags->role, "role (same alphabet as names), selected by policy rules")->required();
  add->add_option("--label", flags->labels, "label k=v (repeatable)")->allow_extra_args(false);
  add->add_option("--token-ttl", flags->ttl, "token lifetime, e.g. 30m, 24h (default), 7d");
  add->footer(footer("  warden device add sensor-1 --role sensor --label site=plant-1 --label line=3\n"
                     "  warden device add valve-7 --role actuator --token-ttl 2h -o json\n"
                     "Prints the token and the CA fingerprint the device needs for\n"
                     "`warden-agent enroll`. Names are never reused, even after revoke."));
  table.add(add, [flags, &global] { return deviceAdd(*flags, global); });

  CLI::App* token = named("token", "issue a new one-time enrollment token (the old one stops working)");
  token->add_option("NAME", flags->name, "device name")->required();
  token->add_option("--ttl", flags->ttl, "token lifetime, e.g. 30m, 24h (default), 7d");
  token->footer(footer("  warden device token sensor-1\n  warden device token sensor-1 --ttl 1h -o json"));
  table.add(token, [flags, &global] { return deviceToken(*flags, global); });

  CLI::App* list = named("list", "list the fleet");
  list->footer(footer("  warden device list\n  warden device list -o json   # [{name, spiffe_id, role, labels, state, "
                      "cert_serial, cert_not_after, connected, key_store: {claimed, verified}}]"));
  table.add(list, [flags, &global] { return deviceList(*flags, global); });

  CLI::App* show = named("show", "show one device");
  show->add_option("NAME", flags->name, "device name")->required();
  show->footer(footer("  warden device show sensor-1\n  warden -o json device show sensor-1"));
  table.add(show, [flags, &global] { return deviceShow(*flags, global); });

  struct Verb {
    const char* name;
    const char* help;
    const char* example;
  };
  for (const Verb& v : {
           Verb{"revoke", "revoke a device for good: certificates, unused tokens, live sessions",
                "  warden device revoke sensor-1\nReturns once every live session of the device is closed. Revoking "
                "again is a no-op (exit 0)."},
           Verb{"quarantine", "restrict a device to the rules of the quarantine segment",
                "  warden device quarantine sensor-1\nReturns once its live sessions are restricted or closed."},
           Verb{"release", "lift a quarantine", "  warden device release sensor-1\nRestores the device's "
                                                 "subscriptions before it returns."},
       }) {
    CLI::App* cmd = named(v.name, v.help);
    cmd->add_option("NAME", flags->name, "device name")->required();
    cmd->footer(footer(v.example));
    std::string verb = v.name;
    table.add(cmd, [flags, &global, verb] { return deviceStateChange(*flags, global, verb); });
  }
}

}  // namespace warden::cli
