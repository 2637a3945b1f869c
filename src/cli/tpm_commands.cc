// `warden tpm-ca add|list|remove` (TPM vendor CAs: EK certificates that
// chain to one prove a genuine TPM) and `warden tpm-ek add|remove` (an
// endorsement key the operator registers for one device).

#include <fmt/format.h>

#include "cli/cli_context.h"
#include "core/file_io.h"
#include "core/names.h"
#include "trust/measurement.h"

namespace warden::cli {
namespace {

using nlohmann::json;

struct TpmFlags {
  ClientFlags client;
  std::string file;
  std::string fingerprint;
  std::string device;
};

core::Result<std::string> readPem(const std::string& path, std::string_view what) {
  auto text = core::readFile(path, 256 * 1024);
  if (!text.isOk()) return core::invalidArgument(fmt::format("{} {}: {}", what, path, text.status().message()));
  return std::move(text).value();
}

int tpmCaAdd(const TpmFlags& f, const GlobalFlags& global) {
  auto pem = readPem(f.file, "TPM vendor CA file");
  if (!pem.isOk()) return reportError(pem.status(), nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("POST", "/v1/tpm-cas", json{{"pem", *pem}}));
    json list = answer.value("tpm_cas", json::array());
    if (s.json) {
      printJson(list);
      return core::Status::ok();
    }
    std::string out;
    for (const json& ca : list) {
      out += fmt::format("{} {} ({}), valid until {}\n", ca.value("added", false) ? "trusted" : "already trusted",
                         ca.value("subject", ""), ca.value("fingerprint", ""), ca.value("not_after", ""));
    }
    printOut(out + "EK certificates that chain to these CAs now bind TPMs to devices (warden-agent run --tpm ...)\n");
    return core::Status::ok();
  });
}

int tpmCaList(const TpmFlags& f, const GlobalFlags& global) {
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("GET", "/v1/tpm-cas"));
    json list = answer.value("tpm_cas", json::array());
    if (s.json) {
      printJson(list);
      return core::Status::ok();
    }
    if (list.empty()) {
      printOut("no TPM vendor CAs (add one with `warden tpm-ca add FILE`)\n");
      return core::Status::ok();
    }
    std::string out = fmt::format("{:<72} {:<21} {}\n", "FINGERPRINT", "NOT AFTER", "SUBJECT");
    for (const json& ca : list) {
      out += fmt::format("{:<72} {:<21} {}\n", ca.value("fingerprint", ""), ca.value("not_after", ""),
                         ca.value("subject", ""));
    }
    printOut(out);
    return core::Status::ok();
  });
}

int tpmCaRemove(const TpmFlags& f, const GlobalFlags& global) {
  if (!trust::parseDigestText(f.fingerprint)) {
    return reportError(core::invalidArgument("give the CA's fingerprint, sha256:<64 hex> (`warden tpm-ca list`)"),
                       nullptr);
  }
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("DELETE", "/v1/tpm-cas/" + f.fingerprint));
    if (s.json) {
      printJson(answer);
    } else {
      printOut(fmt::format("TPM vendor CA {} removed: new attestation keys no longer bind through it; TPMs already "
                           "bound stay bound (unbind one with `warden tpm-ek remove DEVICE`)\n",
                           f.fingerprint));
    }
    return core::Status::ok();
  });
}

int tpmEkAdd(const TpmFlags& f, const GlobalFlags& global) {
  if (auto st = core::checkName("device name", f.device); !st.isOk()) return reportError(st, nullptr);
  auto pem = readPem(f.file, "EK file");
  if (!pem.isOk()) return reportError(pem.status(), nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("PUT", "/v1/devices/" + f.device + "/ek", json{{"ek", *pem}}));
    if (s.json) {
      printJson(answer);
    } else {
      printOut(fmt::format("device {} is bound to the TPM with EK {}: its agent may now register an attestation "
                           "key there\n",
                           f.device, answer.value("ek", "")));
    }
    return core::Status::ok();
  });
}

int tpmEkRemove(const TpmFlags& f, const GlobalFlags& global) {
  if (auto st = core::checkName("device name", f.device); !st.isOk()) return reportError(st, nullptr);
  return withSession(f.client, global, [&](Session& s) -> core::Status {
    WARDEN_ASSIGN_OR_RETURN(json answer, s.client->call("DELETE", "/v1/devices/" + f.device + "/ek"));
    if (s.json) {
      printJson(answer);
    } else {
      printOut(fmt::format("device {} is no longer bound to a TPM: its attestation key is forgotten; its next TPM "
                           "must register a new one\n",
                           f.device));
    }
    return core::Status::ok();
  });
}

}  // namespace

void addTpmCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  auto flags = std::make_shared<TpmFlags>();

  CLI::App* ca = app.add_subcommand("tpm-ca", "trust TPM vendor CAs that certify endorsement keys (attestation)");
  ca->require_subcommand(1);
  ca->footer("\nRun `warden tpm-ca COMMAND --help` for a command's options and examples.");

  CLI::App* add = ca->add_subcommand("add", "trust a TPM vendor's EK CA (PEM, one or more certificates)");
  addClientOptions(add, flags->client);
  add->add_option("FILE", flags->file, "PEM file with the vendor's CA certificate(s), root and intermediates")
      ->required();
  add->footer(std::string(R"(
Examples:
  warden tpm-ca add infineon-ek-root.pem
  warden tpm-ca add swtpm-localca.pem -o json

A device's agent registers its attestation key (AK) by sending its TPM's
endorsement key (EK) and EK certificate (NV index 0x01c00002). The EK
certificate must chain to a CA added here, or the operator must register the
EK for the device (`warden tpm-ek add`); Warden never trusts an EK merely
because a device presents it. One EK binds to exactly one device.)") + kApiFooter);
  table.add(add, [flags, &global] { return tpmCaAdd(*flags, global); });

  CLI::App* list = ca->add_subcommand("list", "list trusted TPM vendor CAs");
  addClientOptions(list, flags->client);
  list->footer(std::string(R"(
Examples:
  warden tpm-ca list
  warden tpm-ca list -o json   # [{fingerprint, subject, not_after, added_at, added_by}])") + kApiFooter);
  table.add(list, [flags, &global] { return tpmCaList(*flags, global); });

  CLI::App* remove = ca->add_subcommand("remove", "stop trusting a TPM vendor CA");
  addClientOptions(remove, flags->client);
  remove->add_option("FINGERPRINT", flags->fingerprint, "the CA's fingerprint, sha256:<64 hex>")->required();
  remove->footer(std::string(R"(
Examples:
  warden tpm-ca remove sha256:3f2a...
TPMs already bound to devices stay bound.)") + kApiFooter);
  table.add(remove, [flags, &global] { return tpmCaRemove(*flags, global); });

  CLI::App* ek = app.add_subcommand("tpm-ek", "bind a device to its TPM's endorsement key without a vendor CA");
  ek->require_subcommand(1);
  ek->footer("\nRun `warden tpm-ek COMMAND --help` for a command's options and examples.");

  CLI::App* ek_add = ek->add_subcommand("add", "register the EK of a device's TPM (certificate or public key, PEM)");
  addClientOptions(ek_add, flags->client);
  ek_add->add_option("DEVICE", flags->device, "device name")->required();
  ek_add->add_option("FILE", flags->file, "PEM: the EK certificate or its public key (BEGIN PUBLIC KEY)")->required();
  ek_add->footer(std::string(R"(
Examples:
  tpm2_createek -c ek.ctx -G rsa -u ek.pub -f pem   # on the device, read out of band
  warden tpm-ek add plc-7 ek.pub

For TPMs without an EK certificate, or whose vendor CA you do not want to
trust fleet-wide. An EK is bound to one device; a device with a registered
attestation key must be unbound first (`warden tpm-ek remove`).)") + kApiFooter);
  table.add(ek_add, [flags, &global] { return tpmEkAdd(*flags, global); });

  CLI::App* ek_remove = ek->add_subcommand("remove", "unbind a device from its TPM (EK and attestation key)");
  addClientOptions(ek_remove, flags->client);
  ek_remove->add_option("DEVICE", flags->device, "device name")->required();
  ek_remove->footer(std::string(R"(
Examples:
  warden tpm-ek remove plc-7   # after replacing the device's TPM or mainboard
The device's next TPM must register a new attestation key before its quotes count.)") + kApiFooter);
  table.add(ek_remove, [flags, &global] { return tpmEkRemove(*flags, global); });
}

}  // namespace warden::cli
