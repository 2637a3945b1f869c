// `warden device add|token|list|show|set|revoke|quarantine|release|pending|approve|deny`.

#include <algorithm>
#include <atomic>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "cli/cli_context.h"
#include "core/names.h"
#include "identity/factory_identity.h"

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
  std::vector<std::string> names;  // revoke, quarantine, release
  std::string role;
  std::vector<std::string> labels;
  std::string ttl;
  std::string cert_ttl;
  std::string id;
  int64_t limit = 200;
};

int deviceAdd(const DeviceFlags& f, const GlobalFlags& global) {
  auto request = api::validateDeviceAdd(f.name, f.role, f.labels, f.ttl);
  if (!request.isOk()) return reportError(request.status(), nullptr);
  json body = api::deviceAddBody(*request);
  if (!f.cert_ttl.empty()) {
    auto ttl = identity::parseCertTtl(f.cert_ttl);
    if (!ttl.isOk()) return reportError(ttl.status(), nullptr);
    body["cert_ttl"] = core::formatDuration(*ttl);
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json added, s.client->call("POST", "/v1/devices", body));
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

int deviceHistory(const DeviceFlags& f, const GlobalFlags& global) {
  if (auto st = core::checkName("device name", f.name); !st.isOk()) return reportError(st, nullptr);
  if (f.limit <= 0 || f.limit > 10000) {
    return reportError(core::invalidArgument("--limit must be from 1 to 10000"), nullptr);
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer,
                            s.client->call("GET", fmt::format("/v1/devices/{}/history?limit={}", f.name, f.limit)));
    if (s.json) {
      printJson(answer);
      return core::Status::ok();
    }
    std::string out;
    if (answer.contains("state")) {
      out += fmt::format("{}: {} (trust {})\n", f.name, answer.value("state", ""), answer.value("trust", 0));
    }
    const json events = answer.value("events", json::array());
    if (events.empty()) out += "no events about this device\n";
    for (const json& e : events) {
      std::string detail;
      if (e.contains("detail") && e["detail"].is_object()) {
        if (e["detail"].contains("reasons")) detail = " reasons=" + e["detail"]["reasons"].dump();
        if (e["detail"].contains("trust")) detail += " trust=" + e["detail"]["trust"].dump();
      }
      const std::string actor = e.value("actor", "");
      out += fmt::format("{}  {:<18} {:<24} {}{}\n", e.value("time", ""), e.value("type", ""), e.value("reason", ""),
                         actor.empty() ? "" : "by " + actor, detail);
    }
    printOut(out);
    return core::Status::ok();
  });
}

int deviceSet(const DeviceFlags& f, const GlobalFlags& global) {
  if (auto st = core::checkName("device name", f.name); !st.isOk()) return reportError(st, nullptr);
  json body = {{"cert_ttl", nullptr}};
  if (f.cert_ttl != "default") {
    auto ttl = identity::parseCertTtl(f.cert_ttl);
    if (!ttl.isOk()) return reportError(ttl.status(), nullptr);
    body["cert_ttl"] = core::formatDuration(*ttl);
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json device, s.client->call("PATCH", "/v1/devices/" + f.name, body));
    json ttl = device.is_object() && device.contains("cert_ttl") ? device["cert_ttl"] : json(nullptr);
    if (s.json) {
      printJson({{"name", f.name}, {"cert_ttl", ttl}});
    } else {
      printOut(fmt::format("device {}: certificates from its next enrollment or renewal live {}\n", f.name,
                           ttl.is_string() ? ttl.get<std::string>() : "as its manufacturer or the fleet (pki.cert_ttl) says"));
    }
    return core::Status::ok();
  });
}

int devicePending(const DeviceFlags& f, const GlobalFlags& global) {
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("GET", "/v1/enrollments"));
    json list = answer.is_object() && answer.contains("requests") ? answer["requests"] : json::array();
    if (s.json) {
      printJson(list);
      return core::Status::ok();
    }
    if (list.empty()) {
      printOut("no enrollment requests await approval\n");
      return core::Status::ok();
    }
    std::string out = fmt::format("{:<18} {:<24} {:<8} {:<9} {:<22} {}\n", "ID", "DEVICE", "KIND", "STATE", "EXPIRES",
                                  "IDENTITY / REMOTE");
    for (const json& r : list) {
      std::string who = r.value("kind", "") == "factory"
                            ? fmt::format("{}/{}", r["manufacturer"].is_string() ? r["manufacturer"].get<std::string>() : "-",
                                          r["serial_number"].is_string() ? r["serial_number"].get<std::string>() : "-")
                            : r.value("remote", "");
      out += fmt::format("{:<18} {:<24} {:<8} {:<9} {:<22} {}\n", r.value("id", ""), r.value("device", ""),
                         r.value("kind", ""), r.value("state", ""), r.value("expires_at", ""), who);
    }
    printOut(out);
    return core::Status::ok();
  });
}

int deviceDecide(const DeviceFlags& f, const GlobalFlags& global, bool approve) {
  if (f.id.empty() || f.id.size() > 64 || f.id.find_first_of("/?#% ") != std::string::npos) {
    return reportError(core::invalidArgument("give the request ID that `warden device pending` lists (e.g. r0123abcd...)"),
                       nullptr);
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json r, s.client->call("POST", fmt::format("/v1/enrollments/{}/{}", f.id,
                                                                       approve ? "approve" : "deny"),
                                                   json::object()));
    if (s.json) {
      printJson(r);
    } else if (approve) {
      printOut(fmt::format("request {} approved: device {} gets its certificate at its next try with the same key\n",
                           f.id, r.value("device", "?")));
    } else {
      printOut(fmt::format("request {} denied: device {} is refused (a new token with `warden device token` starts "
                           "over)\n",
                           f.id, r.value("device", "?")));
    }
    return core::Status::ok();
  });
}

// Several devices named to revoke, quarantine or release are changed this
// many at a time: a revocation is answered once the CRL that lists it is
// published, at most once a second, and requests sent together share it.
constexpr size_t kMaxConcurrentStateChanges = 64;

// stateChange makes one device's change over |s| and returns {name, state, changed}.
core::Result<json> stateChange(Session& s, const std::string& name, std::string_view verb) {
  WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("POST", fmt::format("/v1/devices/{}/{}", name, verb), json::object()));
  json out = {{"name", name}, {"state", nullptr}, {"changed", nullptr}};
  if (answer.is_object()) {
    if (answer.contains("state")) out["state"] = answer["state"];
    if (answer.contains("changed")) out["changed"] = answer["changed"];
  }
  return out;
}

void printStateChange(const json& out, std::string_view verb, bool as_json) {
  if (as_json) {
    printJson(out);
    return;
  }
  const std::string name = out["name"].get<std::string>();
  std::string state = out["state"].is_string() ? out["state"].get<std::string>() : std::string(verb);
  bool changed = !out["changed"].is_boolean() || out["changed"].get<bool>();
  if (!changed) {
    printOut(fmt::format("device {} is already {}; nothing changed\n", name, state));
  } else if (verb == "revoke") {
    printOut(fmt::format("device {} revoked: its certificates and unused tokens are revoked and its live sessions "
                         "closed (the name stays taken)\n",
                         name));
  } else if (verb == "quarantine") {
    printOut(fmt::format("device {} quarantined: it keeps only what rules for the quarantine segment allow; live "
                         "sessions were restricted or closed\n",
                         name));
  } else {
    printOut(fmt::format("device {} released: state {}\n", name, state));
  }
}

// deviceStateChange: `device revoke|quarantine|release NAME...`. Every name
// is checked before anything is sent. Several devices are changed
// concurrently, each on its own connection; the results are printed in the
// order given, and the exit code is that of the first name that failed (the
// others are changed all the same).
int deviceStateChange(const DeviceFlags& f, const GlobalFlags& global, std::string_view verb) {
  std::vector<std::string> names;
  for (const std::string& name : f.names) {
    if (auto st = core::checkName("device name", name); !st.isOk()) return reportError(st, nullptr);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  if (names.size() == 1) {
    return withSession(f.client, global, [&](Session& s) -> core::Status {
      WARDEN_ASSIGN_OR_RETURN(json out, stateChange(s, names.front(), verb));
      printStateChange(out, verb, s.json);
      return core::Status::ok();
    });
  }
  auto session = openSession(f.client, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  std::vector<std::optional<core::Result<json>>> results(names.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    auto own = openSession(f.client, global);
    for (size_t i; (i = next.fetch_add(1)) < names.size();) {
      results[i] = own.isOk() ? stateChange(*own, names[i], verb) : core::Result<json>(own.status());
    }
  };
  std::vector<std::thread> workers;
  for (size_t i = 0; i < std::min(names.size(), kMaxConcurrentStateChanges); ++i) workers.emplace_back(worker);
  for (std::thread& t : workers) t.join();
  int exit_code = api::kExitOk;
  std::set<std::string> reported;  // an unreachable server is said once, not once a name
  for (const auto& result : results) {
    if (result->isOk()) {
      printStateChange(result->value(), verb, session->json);
      continue;
    }
    const core::Status& failed = result->status();
    if (reported.insert(failed.toString()).second) {
      int code = reportError(failed, &*session);
      if (exit_code == api::kExitOk) exit_code = code;
    }
  }
  return exit_code;
}

}  // namespace

void addDeviceCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  CLI::App* device = app.add_subcommand(
      "device", "add, enroll-token, list, show, set, revoke, quarantine and release devices; approve enrollments");
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
  add->add_option("--cert-ttl", flags->cert_ttl,
                  "lifetime of its certificates, Nm|Nh|Nd from 1m to 30d (default: pki.cert_ttl)");
  add->footer(footer("  warden device add sensor-1 --role sensor --label site=plant-1 --label line=3\n"
                     "  warden device add valve-7 --role actuator --token-ttl 2h -o json\n"
                     "  warden device add cam-2 --role camera --cert-ttl 6h\n"
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

  CLI::App* history = named("history", "show a device's timeline (the events about it, oldest first)");
  history->add_option("NAME", flags->name, "device name")->required();
  history->add_option("--limit", flags->limit, "the last N events (default 200, at most 10000)");
  history->footer(footer("  warden device history plc-1\n"
                         "  warden -o json device history plc-1   # {name, spiffe_id, state, trust, events: [...]}\n"
                         "Shows enrollment, sessions, denials, attestations (attestation_failed), posture changes\n"
                         "(posture_healthy, posture_suspect) and quarantine/release with their actor (an operator, or\n"
                         "trust for automatic ones) and reasons."));
  table.add(history, [flags, &global] { return deviceHistory(*flags, global); });

  CLI::App* set = named("set", "change a device's settings (certificate lifetime)");
  set->add_option("NAME", flags->name, "device name")->required();
  set->add_option("--cert-ttl", flags->cert_ttl,
                  "lifetime of its next certificates, Nm|Nh|Nd from 1m to 30d, or 'default'")
      ->required();
  set->footer(footer("  warden device set sensor-1 --cert-ttl 12h\n"
                     "  warden device set sensor-1 --cert-ttl default   # back to the manufacturer's or pki.cert_ttl\n"
                     "Precedence: the device's own lifetime, else its manufacturer's (`manufacturer add --cert-ttl`),\n"
                     "else pki.cert_ttl in warden.yaml. It applies from the next enrollment or renewal."));
  table.add(set, [flags, &global] { return deviceSet(*flags, global); });

  CLI::App* pending = named("pending", "list enrollment requests awaiting approval");
  pending->footer(footer("  warden device pending\n"
                         "  warden device pending -o json   # [{id, device, kind, manufacturer, serial_number,\n"
                         "                                  #   key_fingerprint, state, created_at, expires_at, remote}]\n"
                         "With enrollment.approval: manual (warden.yaml) or a manufacturer added with --approval manual,\n"
                         "a device's first valid simpleenroll creates a request bound to its CSR's key and is answered\n"
                         "202 + Retry-After. Requests expire after 7 days."));
  table.add(pending, [flags, &global] { return devicePending(*flags, global); });

  CLI::App* approve = named("approve", "approve an enrollment request (the device's next try gets its certificate)");
  approve->add_option("ID", flags->id, "request ID from `warden device pending`")->required();
  approve->footer(footer("  warden device approve r3f9c0a1b2d4e5f60\n"
                         "Only the key of the first request can complete it; a one-time token is consumed at issuance."));
  table.add(approve, [flags, &global] { return deviceDecide(*flags, global, true); });

  CLI::App* deny = named("deny", "deny an enrollment request");
  deny->add_option("ID", flags->id, "request ID from `warden device pending`")->required();
  deny->footer(footer("  warden device deny r3f9c0a1b2d4e5f60\n"
                      "The device is refused until the request expires (7 days) or a new token is issued."));
  table.add(deny, [flags, &global] { return deviceDecide(*flags, global, false); });

  struct Verb {
    const char* name;
    const char* help;
    const char* example;
  };
  for (const Verb& v : {
           Verb{"revoke", "revoke devices for good: certificates, unused tokens, live sessions",
                "  warden device revoke sensor-1\n  warden device revoke sensor-1 sensor-2 valve-7\n"
                "Returns once every live session of the device is closed and the CRL lists its certificates. "
                "Revoking again is a no-op (exit 0). CRLs are remade at most once a second: revoke a batch in one "
                "command (or in parallel), not one after another."},
           Verb{"quarantine", "restrict devices to the rules of the quarantine segment",
                "  warden device quarantine sensor-1\nReturns once its live sessions are restricted or closed."},
           Verb{"release", "lift a quarantine", "  warden device release sensor-1\nRestores the device's "
                                                 "subscriptions before it returns."},
       }) {
    CLI::App* cmd = named(v.name, v.help);
    cmd->add_option("NAME", flags->names,
                    "device names: several are changed concurrently (64 at a time), printed in the order given "
                    "(-o json: one object a line); the exit code is the first failure's, the others change anyway")
        ->required();
    cmd->footer(footer(v.example));
    std::string verb = v.name;
    table.add(cmd, [flags, &global, verb] { return deviceStateChange(*flags, global, verb); });
  }
}

}  // namespace warden::cli
