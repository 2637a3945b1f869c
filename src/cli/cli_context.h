#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "api/admin_client.h"
#include "core/status.h"

// Shared plumbing of the `warden` command groups: global and per-command
// options, finding the server and the operator's credentials, and printing
// results and errors with the documented exit codes.
namespace warden::cli {

// GlobalFlags are accepted anywhere on the line (CLI11 fallthrough).
struct GlobalFlags {
  std::string output;  // "text" | "json" | "" (text)
  std::string dir;     // --dir or WARDEN_DIR
};

// ClientFlags are the options of every command that talks to the admin API.
struct ClientFlags {
  std::string dir;
  std::string server;
  std::string cert;
  std::string key;
  std::string ca;
  std::string output;
};

// CommandTable maps each leaf subcommand to the function that runs it.
class CommandTable {
 public:
  void add(CLI::App* app, std::function<int()> run) { entries_.push_back({app, std::move(run)}); }
  // runParsed runs the command the user chose; 2 if none was.
  int runParsed() const;

 private:
  struct Entry {
    CLI::App* app;
    std::function<int()> run;
  };
  std::vector<Entry> entries_;
};

// kApiFooter ends the --help of the commands that talk to the admin
// API: where the server and credentials come from, and the exit codes.
inline constexpr const char* kApiFooter = R"(
The server and credentials come from --dir D (or $WARDEN_DIR), or --server
URL --cert FILE --key FILE --ca FILE. -o json|text works anywhere on the line.

Exit codes: 0 ok; 1 refused, not found or failed; 2 usage or validation
error; 3 server unreachable or TLS/authentication failure.)";

// addOutputOption adds "-o,--output text|json".
void addOutputOption(CLI::App* app, std::string& output);
// addClientOptions adds --dir, --server, --cert, --key, --ca and -o. A
// command whose own --ca means something else (manufacturer add) passes
// |ca_option| "--server-ca" for the server's CA bundle.
void addClientOptions(CLI::App* app, ClientFlags& flags, const std::string& ca_option = "--ca");

// wantsJson resolves -o: the command's own value, else the global one.
bool wantsJson(const std::string& local_output, const GlobalFlags& global);
// resolveDir returns the command's --dir, else the global --dir/WARDEN_DIR.
std::string resolveDir(const std::string& local_dir, const GlobalFlags& global);

// Session is a connection setup to the admin API.
struct Session {
  std::unique_ptr<api::AdminClient> client;
  std::string server;  // https://host:port, for messages
  std::string dir;     // data directory, if known (for hints)
  bool json = false;
};

// openSession finds the server and credentials (--server/--cert/--key/--ca,
// else D/warden.yaml and D/pki/{admin.pem,admin.key,ca-bundle.pem}). Local
// problems (no directory, unreadable files) are kInvalidArgument (exit 2).
core::Result<Session> openSession(const ClientFlags& flags, const GlobalFlags& global);

// reportError prints |status| as an actionable message on stderr and
// returns its exit code. |session| may be null (before connecting).
int reportError(const core::Status& status, const Session* session);

// withSession opens the session (reporting a failure) and runs |body|;
// returns the exit code of the first error, else 0.
int withSession(const ClientFlags& flags, const GlobalFlags& global,
                const std::function<core::Status(Session&)>& body);

// printOut writes |text| to stdout and flushes (NDJSON consumers read lines).
void printOut(std::string_view text);
// printJson prints |value| as one line of JSON.
void printJson(const nlohmann::json& value);

// Registration of the command groups (one file each).
void addServerCommands(CLI::App& app, CommandTable& table, GlobalFlags& global);
void addDeviceCommands(CLI::App& app, CommandTable& table, GlobalFlags& global);
void addManufacturerCommands(CLI::App& app, CommandTable& table, GlobalFlags& global);
void addFirmwareCommands(CLI::App& app, CommandTable& table, GlobalFlags& global);
void addPolicyCommands(CLI::App& app, CommandTable& table, GlobalFlags& global);
void addEventsCommand(CLI::App& app, CommandTable& table, GlobalFlags& global);
void addPkiCommands(CLI::App& app, CommandTable& table, GlobalFlags& global);
void addTpmCommands(CLI::App& app, CommandTable& table, GlobalFlags& global);

}  // namespace warden::cli
