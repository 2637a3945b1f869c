// `warden events [--since ID] [--limit N] [--follow]`.

#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include "cli/cli_context.h"

namespace warden::cli {
namespace {

using nlohmann::json;

constexpr int64_t kLongPollSeconds = 25;
constexpr int64_t kMaxLimit = 10000;

struct EventsFlags {
  ClientFlags client;
  int64_t since = -1;
  int64_t limit = -1;
  bool follow = false;
};

// Ctrl-C or SIGTERM ends --follow with exit code 0. Every line is flushed
// as it is printed, so there is nothing left to write.
extern "C" void exitOnSignal(int) { ::_exit(0); }

int64_t eventId(const json& e) {
  if (e.is_object() && e.contains("id") && e["id"].is_number_integer()) return e["id"].get<int64_t>();
  return -1;
}

void printEvent(const json& e, bool as_json) { printOut(as_json ? api::formatEventJson(e) : api::formatEventText(e)); }

int events(const EventsFlags& f, const GlobalFlags& global) {
  if (f.limit != -1 && (f.limit < 1 || f.limit > kMaxLimit)) {
    return reportError(core::invalidArgument(fmt::format("--limit must be between 1 and {}", kMaxLimit)), nullptr);
  }
  if (f.since != -1 && f.since < 0) return reportError(core::invalidArgument("--since must be an event id >= 0"), nullptr);
  std::optional<int64_t> since = f.since >= 0 ? std::optional<int64_t>(f.since) : std::nullopt;
  std::optional<int64_t> limit = f.limit > 0 ? std::optional<int64_t>(f.limit) : std::nullopt;

  auto session = openSession(f.client, global);
  if (!session.isOk()) return reportError(session.status(), nullptr);
  api::AdminClient& client = *session->client;
  const bool as_json = session->json;

  if (!f.follow) {
    auto answer = client.call("GET", api::eventsTarget(since, limit, std::nullopt));
    if (!answer.isOk()) return reportError(answer.status(), &*session);
    auto list = api::eventsFromBody(*answer);
    if (!list.isOk()) return reportError(list.status(), &*session);
    for (const auto& e : *list) printEvent(e, as_json);
    return api::kExitOk;
  }

  struct sigaction sa{};
  sa.sa_handler = exitOnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  // --follow starts from now unless --since replays from an id.
  int64_t last = 0;
  if (since) {
    last = *since;
  } else {
    auto answer = client.call("GET", api::eventsTarget(std::nullopt, 1, std::nullopt));
    if (!answer.isOk()) return reportError(answer.status(), &*session);
    if (answer->is_object() && answer->contains("last_id") && (*answer)["last_id"].is_number_integer()) {
      last = (*answer)["last_id"].get<int64_t>();
    } else if (auto list = api::eventsFromBody(*answer); list.isOk()) {
      for (const auto& e : *list) last = std::max(last, eventId(e));
    }
  }
  if (!as_json) std::fprintf(stderr, "following events after id %lld (Ctrl-C to stop)\n", static_cast<long long>(last));
  while (true) {
    auto answer = client.call("GET", api::eventsTarget(last, limit, kLongPollSeconds));
    if (!answer.isOk()) return reportError(answer.status(), &*session);
    auto list = api::eventsFromBody(*answer);
    if (!list.isOk()) return reportError(list.status(), &*session);
    for (const auto& e : *list) {
      int64_t id = eventId(e);
      if (id >= 0 && id <= last) continue;  // already printed
      printEvent(e, as_json);
      if (id > last) last = id;
    }
  }
}

}  // namespace

void addEventsCommand(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  auto flags = std::make_shared<EventsFlags>();
  CLI::App* cmd = app.add_subcommand("events", "print the event log (oldest first), or follow it live");
  cmd->add_option("--since", flags->since, "print events with an id greater than ID (replay); default: the last 1,000");
  cmd->add_option("--limit", flags->limit, "at most N events per request (1-10000)");
  cmd->add_flag("--follow,-f", flags->follow, "keep printing new events as they happen (Ctrl-C to stop)");
  addClientOptions(cmd, flags->client);
  cmd->footer(R"(
Examples:
  warden events                      # the last 1,000 events
  warden events --since 1200         # everything after event 1200
  warden events --follow -o json     # live, one JSON object per line (NDJSON)

Fields: id, time (RFC 3339 UTC), type, principal, actor, action, resource,
decision, rule, reason (and detail). Types: connect, disconnect,
session_takeover, tls_reject, deny, deny_burst, enroll, renew, token_failure,
device_add, revoke, quarantine, release, policy_apply, admin_deny.
--follow starts from now; with --since it replays first, then follows.

The server and credentials come from --dir D (or $WARDEN_DIR), or from
--server URL --cert FILE --key FILE --ca FILE. -o json|text works anywhere.

Exit codes: 0 ok (also Ctrl-C during --follow); 1 refused or failed; 2 usage
error; 3 server unreachable or TLS/authentication failure.)");
  table.add(cmd, [flags, &global] { return events(*flags, global); });
}

}  // namespace warden::cli
