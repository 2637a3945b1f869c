// `warden manufacturer add|list|remove`: trusted makers of factory
// identities (IEEE 802.1AR IDevIDs).

#include <fmt/format.h>

#include "cli/cli_context.h"
#include "core/file_io.h"
#include "core/names.h"
#include "identity/factory_identity.h"

namespace warden::cli {
namespace {

using nlohmann::json;

struct ManufacturerFlags {
  ClientFlags client;
  std::string name;
  std::string ca_file;
  std::string allow_file;
  bool auto_register = false;
  std::string role;
  std::vector<std::string> labels;
  std::string name_prefix;
  std::string approval;
  std::string cert_ttl;
};

core::Result<json> addBody(const ManufacturerFlags& f) {
  WARDEN_RETURN_IF_ERROR(core::checkName("manufacturer name", f.name));
  WARDEN_RETURN_IF_ERROR(core::checkName("role", f.role));
  if (f.auto_register == !f.allow_file.empty()) {
    return core::invalidArgument("give exactly one of --allow SERIALS_FILE and --auto-register");
  }
  auto ca = core::readFile(f.ca_file, 1024 * 1024);
  if (!ca.isOk()) return core::invalidArgument(fmt::format("--ca {}: {}", f.ca_file, ca.status().message()));
  json body = {{"name", f.name}, {"ca_pem", *ca}, {"role", f.role}, {"labels", json::object()}};
  for (const auto& text : f.labels) {
    std::string key, value;
    WARDEN_RETURN_IF_ERROR(core::parseLabel(text, key, value));
    if (body["labels"].contains(key)) return core::invalidArgument(fmt::format("label '{}' is given twice", key));
    body["labels"][key] = value;
  }
  if (!f.name_prefix.empty()) body["name_prefix"] = f.name_prefix;
  if (!f.approval.empty()) body["approval"] = f.approval;
  if (!f.cert_ttl.empty()) {
    WARDEN_ASSIGN_OR_RETURN(int64_t ttl, identity::parseCertTtl(f.cert_ttl));
    body["cert_ttl"] = core::formatDuration(ttl);
  }
  if (f.auto_register) {
    body["auto_register"] = true;
  } else {
    auto text = core::readFile(f.allow_file, 64 * 1024 * 1024);
    if (!text.isOk()) return core::invalidArgument(fmt::format("--allow {}: {}", f.allow_file, text.status().message()));
    auto serials = identity::parseSerialAllowList(*text);
    if (!serials.isOk()) return core::invalidArgument(fmt::format("--allow {}: {}", f.allow_file, serials.status().message()));
    if (serials->empty()) return core::invalidArgument(fmt::format("--allow {}: no serial numbers", f.allow_file));
    body["serials"] = *serials;
  }
  return body;
}

std::string caText(const json& m) {
  std::string out;
  if (!m.contains("ca") || !m["ca"].is_array()) return "-";
  for (const auto& c : m["ca"]) {
    out += fmt::format("{}{} ({})", out.empty() ? "" : ", ", c.value("subject", "?"), c.value("fingerprint", "?"));
  }
  return out.empty() ? "-" : out;
}

std::string serialsText(const json& m) {
  if (m.value("auto_register", false)) return "any (auto-register)";
  return fmt::format("{} allowed", m.value("allowed_serials", 0));
}

int manufacturerAdd(const ManufacturerFlags& f, const GlobalFlags& global) {
  auto body = addBody(f);
  if (!body.isOk()) return reportError(body.status(), nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json m, s.client->call("POST", "/v1/manufacturers", *body));
    if (s.json) {
      printJson(m);
    } else {
      printOut(fmt::format("manufacturer {} added: its factory certificates (CA {}) enroll devices named {}<serialNumber>\n"
                           "  role {}, serial numbers: {}, approval: {}, certificate lifetime: {}\n"
                           "devices enroll with: warden-agent enroll --server URL --idevid CERT --idevid-key KEY "
                           "--ca-fingerprint sha256:... --dir DIR\n",
                           f.name, caText(m), m.value("name_prefix", ""), m.value("role", ""), serialsText(m),
                           m.value("approval", "fleet"),
                           m["cert_ttl"].is_string() ? m["cert_ttl"].get<std::string>() : "pki.cert_ttl"));
    }
    return core::Status::ok();
  });
}

int manufacturerList(const ManufacturerFlags& f, const GlobalFlags& global) {
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("GET", "/v1/manufacturers"));
    json list = answer.is_object() && answer.contains("manufacturers") ? answer["manufacturers"] : json::array();
    if (s.json) {
      printJson(list);
      return core::Status::ok();
    }
    if (list.empty()) {
      printOut("no manufacturers (add one with `warden manufacturer add NAME --ca FILE --allow FILE --role ROLE`)\n");
      return core::Status::ok();
    }
    std::string out = fmt::format("{:<20} {:<12} {:<12} {:<9} {:<10} {:<22} {}\n", "NAME", "ROLE", "PREFIX",
                                  "APPROVAL", "CERT TTL", "SERIALS", "CA");
    for (const json& m : list) {
      out += fmt::format("{:<20} {:<12} {:<12} {:<9} {:<10} {:<22} {}\n", m.value("name", ""), m.value("role", ""),
                         m.value("name_prefix", "").empty() ? "-" : m.value("name_prefix", ""),
                         m.value("approval", "fleet"),
                         m["cert_ttl"].is_string() ? m["cert_ttl"].get<std::string>() : "-", serialsText(m), caText(m));
    }
    printOut(out);
    return core::Status::ok();
  });
}

int manufacturerRemove(const ManufacturerFlags& f, const GlobalFlags& global) {
  if (auto st = core::checkName("manufacturer name", f.name); !st.isOk()) return reportError(st, nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("DELETE", "/v1/manufacturers/" + f.name));
    if (s.json) {
      printJson({{"name", f.name}, {"removed", true}});
    } else {
      printOut(fmt::format("manufacturer {} removed: its factory certificates no longer enroll; devices it enrolled "
                           "keep their certificates (revoke them with `warden device revoke`)\n",
                           f.name));
    }
    return core::Status::ok();
  });
}

}  // namespace

void addManufacturerCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  CLI::App* cmd = app.add_subcommand("manufacturer", "trust device makers' factory certificates (IDevID) for enrollment");
  cmd->require_subcommand(1);
  cmd->footer("\nRun `warden manufacturer COMMAND --help` for a command's options and examples.");
  auto flags = std::make_shared<ManufacturerFlags>();

  CLI::App* add = cmd->add_subcommand("add", "trust a manufacturer's CA for factory-identity enrollment");
  // --ca is the manufacturer's CA here; the server's bundle is --server-ca.
  addClientOptions(add, flags->client, "--server-ca");
  add->add_option("NAME", flags->name, "manufacturer name (lowercase letters, digits, '-')")->required();
  add->add_option("--ca", flags->ca_file, "PEM file with the manufacturer's CA certificate(s)")->required();
  add->add_option("--allow", flags->allow_file,
                  "SERIALS_FILE: one subject serialNumber a line, '#' comments, exact match");
  add->add_flag("--auto-register", flags->auto_register, "enroll any serialNumber this CA certifies");
  add->add_option("--role", flags->role, "role of the enrolled devices")->required();
  add->add_option("--label", flags->labels, "label k=v for the enrolled devices (repeatable)")->allow_extra_args(false);
  add->add_option("--name-prefix", flags->name_prefix, "device name = PREFIX + serialNumber (else + CN)");
  add->add_option("--approval", flags->approval, "auto or manual (default: enrollment.approval in warden.yaml)")
      ->check(CLI::IsMember({"auto", "manual"}));
  add->add_option("--cert-ttl", flags->cert_ttl, "certificate lifetime of its devices, Nm|Nh|Nd from 1m to 30d");
  add->footer(std::string(R"(
Examples:
  warden manufacturer add acme --ca acme-idevid-ca.pem --allow acme-serials.txt \
      --role sensor --label vendor=acme --name-prefix acme-
  warden manufacturer add lab --ca lab-ca.pem --auto-register --role test --approval manual --cert-ttl 1h

A device presenting a factory certificate (IEEE 802.1AR IDevID, with or without
EKU; notAfter 99991231235959Z accepted) that chains to this CA enrolls over TLS
client authentication on /.well-known/est/simpleenroll without a token
(`warden-agent enroll --idevid CERT --idevid-key KEY ...`). It is named PREFIX
+ its subject serialNumber (OID 2.5.4.5), else + its CN; an invalid or taken
name is refused. The factory identity is (manufacturer, serialNumber): enrolling
again re-bootstraps the device only if it has no valid certificate and no live
gateway session (its old certificates are revoked); otherwise it is refused as
duplicate_identity (a clone). The CA is a trust anchor only for cacerts,
csrattrs and simpleenroll: never for the gateway, the admin API or
simplereenroll. (Here --ca is the manufacturer's CA; the CA bundle that
verifies the Warden server is --server-ca.))") + kApiFooter);
  table.add(add, [flags, &global] { return manufacturerAdd(*flags, global); });

  CLI::App* list = cmd->add_subcommand("list", "list trusted manufacturers");
  addClientOptions(list, flags->client);
  list->footer(std::string(R"(
Examples:
  warden manufacturer list
  warden manufacturer list -o json   # [{name, role, labels, name_prefix, approval, cert_ttl,
                                     #   auto_register, allowed_serials, ca: [{subject, fingerprint, not_after}], created_at}])") +
               kApiFooter);
  table.add(list, [flags, &global] { return manufacturerList(*flags, global); });

  CLI::App* remove = cmd->add_subcommand("remove", "stop trusting a manufacturer's factory certificates");
  addClientOptions(remove, flags->client);
  remove->add_option("NAME", flags->name, "manufacturer name")->required();
  remove->footer(std::string(R"(
Examples:
  warden manufacturer remove acme
Devices it enrolled keep their Warden certificates and renew normally.)") + kApiFooter);
  table.add(remove, [flags, &global] { return manufacturerRemove(*flags, global); });
}

}  // namespace warden::cli
