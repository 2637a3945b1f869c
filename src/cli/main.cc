// warden: the operator CLI and the server (`warden serve`).

#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/cli_context.h"

int main(int argc, char** argv) {
  using namespace warden;
  CLI::App app{"warden: zero-trust control plane and MQTT gateway for IoT fleets"};
  app.require_subcommand(1);
  // Options of the root app are accepted after any subcommand too, so
  // `-o json` works anywhere on the line. Set before adding subcommands: it
  // is inherited.
  app.fallthrough();
  cli::GlobalFlags global;
  cli::addOutputOption(&app, global.output);
  app.add_option("--dir", global.dir, "Warden data directory D")->envname("WARDEN_DIR");
  app.footer(R"(
Quick start:
  warden init --dir D
  warden broker config --dir D --out D/broker && mosquitto -c D/broker/mosquitto.conf &
  warden serve --dir D &
  warden device add sensor-1 --role sensor --dir D
  warden-agent enroll --server https://127.0.0.1:8443 --name sensor-1 --token T --ca-fingerprint sha256:... --dir A
  warden device list --dir D -o json
  warden events --follow --dir D

Run `warden COMMAND --help` for each command's options and examples.
Exit codes: 0 ok; 1 refused, not found or failed; 2 usage or validation error;
3 server unreachable or TLS/authentication failure.)");

  cli::CommandTable table;
  cli::addServerCommands(app, table, global);
  cli::addDeviceCommands(app, table, global);
  cli::addManufacturerCommands(app, table, global);
  cli::addTpmCommands(app, table, global);
  cli::addFirmwareCommands(app, table, global);
  cli::addPolicyCommands(app, table, global);
  cli::addEventsCommand(app, table, global);
  cli::addPkiCommands(app, table, global);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? api::kExitOk : api::kExitUsage;
  }
  return table.runParsed();
}
