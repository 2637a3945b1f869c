#include "cli/cli_context.h"

#include <cstdio>
#include <sys/stat.h>

#include <fmt/format.h>

#include "core/file_io.h"
#include "server/config.h"

namespace warden::cli {
namespace {

using core::Result;
using core::Status;

bool fileExists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// readCredential reads a PEM file named by an option; any failure is the
// user's to fix locally (exit 2), never "server unreachable".
Result<std::string> readCredential(const std::string& path, std::string_view what, const std::string& dir) {
  auto text = core::readFile(path, 1024 * 1024);
  if (text.isOk()) return text;
  std::string hint = dir.empty() ? std::string("check the path")
                                 : fmt::format("is {} a Warden data directory made by `warden init --dir {}`?", dir, dir);
  return core::invalidArgument(fmt::format("cannot read the {} {}: {}; {}", what, path, text.status().message(), hint));
}

}  // namespace

int CommandTable::runParsed() const {
  for (const auto& e : entries_) {
    if (e.app->parsed()) return e.run();
  }
  std::fputs("warden: error: no command given; see `warden --help`\n", stderr);
  return api::kExitUsage;
}

void addOutputOption(CLI::App* app, std::string& output) {
  app->add_option("-o,--output", output, "output format: text (default) or json; accepted anywhere on the line")
      ->check(CLI::IsMember({"text", "json"}));
}

void addClientOptions(CLI::App* app, ClientFlags& flags, const std::string& ca_option) {
  app->add_option("--dir", flags.dir,
                  "Warden data directory D (default: $WARDEN_DIR): the server address comes from D/warden.yaml and "
                  "the operator credentials from D/pki/admin.pem, admin.key, ca-bundle.pem");
  app->add_option("--server", flags.server, "admin API URL, e.g. https://127.0.0.1:8443 (instead of D/warden.yaml)");
  app->add_option("--cert", flags.cert, "operator client certificate PEM (default D/pki/admin.pem)");
  app->add_option("--key", flags.key, "operator client key PEM (default D/pki/admin.key)");
  app->add_option(ca_option, flags.ca, "CA bundle PEM to verify the server (default D/pki/ca-bundle.pem)");
  addOutputOption(app, flags.output);
}

bool wantsJson(const std::string& local_output, const GlobalFlags& global) {
  return (local_output.empty() ? global.output : local_output) == "json";
}

std::string resolveDir(const std::string& local_dir, const GlobalFlags& global) {
  return local_dir.empty() ? global.dir : local_dir;
}

Result<Session> openSession(const ClientFlags& flags, const GlobalFlags& global) {
  Session session;
  session.dir = resolveDir(flags.dir, global);
  session.json = wantsJson(flags.output, global);
  const std::string& dir = session.dir;
  if (dir.empty() && (flags.server.empty() || flags.cert.empty() || flags.key.empty() || flags.ca.empty())) {
    return core::invalidArgument(
        "no server given: pass --dir D (or set WARDEN_DIR=D) for a local installation, or all of --server URL --cert "
        "FILE --key FILE --ca FILE");
  }

  api::ApiClientOptions options;
  if (!flags.server.empty()) {
    WARDEN_ASSIGN_OR_RETURN(options.server, api::parseServerUrl(flags.server));
  } else {
    auto config = server::loadServerConfig(dir);
    if (!config.isOk()) {
      return core::invalidArgument(fmt::format("cannot find the server address: {}", config.status().message()));
    }
    WARDEN_ASSIGN_OR_RETURN(options.server, api::urlFromListen(config->api_listen.toString()));
  }
  session.server = options.server.text;

  std::string pki = dir + "/pki/";
  std::string cert = flags.cert.empty() ? pki + "admin.pem" : flags.cert;
  std::string key = flags.key.empty() ? pki + "admin.key" : flags.key;
  WARDEN_ASSIGN_OR_RETURN(options.tls.cert_pem, readCredential(cert, "operator certificate", dir));
  WARDEN_ASSIGN_OR_RETURN(options.tls.key_pem, readCredential(key, "operator key", dir));
  if (!flags.ca.empty()) {
    WARDEN_ASSIGN_OR_RETURN(options.tls.trust_pem, readCredential(flags.ca, "CA bundle", dir));
  } else if (fileExists(pki + "ca-bundle.pem") || !fileExists(pki + "root.pem")) {
    WARDEN_ASSIGN_OR_RETURN(options.tls.trust_pem, readCredential(pki + "ca-bundle.pem", "CA bundle", dir));
  } else {  // older layouts: root + issuing CA as separate files
    WARDEN_ASSIGN_OR_RETURN(std::string root, readCredential(pki + "root.pem", "root CA", dir));
    WARDEN_ASSIGN_OR_RETURN(std::string issuing, readCredential(pki + "issuing.pem", "issuing CA", dir));
    options.tls.trust_pem = root + "\n" + issuing;
  }

  auto client = api::ApiClient::create(std::move(options));
  if (!client.isOk()) return core::invalidArgument(client.status().message());
  session.client = std::make_unique<api::AdminClient>(std::move(client).value());
  return session;
}

int withSession(const ClientFlags& flags, const GlobalFlags& global,
                const std::function<core::Status(Session&)>& body) {
  auto session = openSession(flags, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  core::Status s = body(*session);
  if (!s.isOk()) return reportError(s, &*session);
  return api::kExitOk;
}

int reportError(const Status& status, const Session* session) {
  std::string server = session ? session->server : std::string("the server");
  std::string dir = (session && !session->dir.empty()) ? session->dir : std::string("D");
  std::string message;
  switch (status.code()) {
    case core::ErrorCode::kUnavailable:
    case core::ErrorCode::kDeadlineExceeded:
      message = fmt::format("cannot reach the Warden API at {}: {}. Is `warden serve --dir {}` running?", server,
                            status.message(), dir);
      break;
    case core::ErrorCode::kUnauthenticated:
      message = fmt::format(
          "the Warden API at {} did not accept this connection: {}. Check the operator credentials (--cert/--key, "
          "default {}/pki/admin.pem and admin.key) and the CA bundle (--ca, default {}/pki/ca-bundle.pem).",
          server, status.message(), dir, dir);
      break;
    case core::ErrorCode::kPermissionDenied:
      message = fmt::format("refused: {}", status.message());
      break;
    default:
      message = status.message();
  }
  std::fprintf(stderr, "warden: error: %s\n", message.c_str());
  return api::exitCodeFor(status);
}

void printOut(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void printJson(const nlohmann::json& value) {
  printOut(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace warden::cli
