// `warden init`, `warden serve`, `warden broker config`: option parsing only;
// the work is done by the server module (src/server/commands.h).

#include <fmt/format.h>

#include "cli/cli_context.h"
#include "server/commands.h"

namespace warden::cli {
namespace {

struct ServerFlags {
  server::InitOptions init;
  std::vector<std::string> server_names;
  server::ServeOptions serve;
  server::BrokerConfigOptions broker;
  std::string dir;
  std::string output;
};

// needDir resolves --dir / WARDEN_DIR or reports a usage error.
bool needDir(const ServerFlags& f, const GlobalFlags& global, std::string& out) {
  out = resolveDir(f.dir, global);
  if (!out.empty()) return true;
  std::fputs("warden: error: --dir D is required (or set WARDEN_DIR=D)\n", stderr);
  return false;
}

}  // namespace

void addServerCommands(CLI::App& app, CommandTable& table, GlobalFlags& global) {
  auto f = std::make_shared<ServerFlags>();

  CLI::App* init = app.add_subcommand("init", "create a new Warden data directory (CAs, certificates, store, policy)");
  init->add_option("--dir", f->dir, "data directory D to create (default: $WARDEN_DIR)");
  init->add_option("--trust-domain", f->init.trust_domain, "SPIFFE trust domain (a DNS name)")->capture_default_str();
  init->add_option("--api-listen", f->init.api_listen, "HOST:PORT of the admin API and EST")->capture_default_str();
  init->add_option("--mqtt-listen", f->init.mqtt_listen, "HOST:PORT of the MQTT gateway (mutual TLS)")->capture_default_str();
  init->add_option("--mqtt-upstream", f->init.mqtt_upstream, "HOST:PORT of the Mosquitto broker behind the gateway")
      ->capture_default_str();
  init->add_option("--pki-listen", f->init.pki_listen,
                   "HOST:PORT of the plain-HTTP PKI listener (CRLs, CA certificates, OCSP)")
      ->capture_default_str();
  init->add_option("--pki-url", f->init.pki_url,
                   "base URL written into every certificate's CRL distribution point and AIA (OCSP, caIssuers); "
                   "default http://<pki-listen>");
  init->add_option("--server-name", f->server_names,
                   "DNS name or IP address in the server certificate (repeatable; default localhost, 127.0.0.1, ::1)")
      ->allow_extra_args(false);
  init->add_option("--ca-key", f->init.ca_key,
                   "PKCS#11 URI of the issuing CA's key in an HSM (RFC 7512; module from ?module-path=, PIN only from "
                   "&pin-source=file:PATH, a 0600 file)");
  init->add_option("--root-key", f->init.root_key, "PKCS#11 URI of the root CA's key in an HSM (same form)");
  init->add_flag("--ca-key-generate", f->init.ca_key_generate,
                 "create the keys named by --ca-key / --root-key in the token (EC P-256, CKA_SENSITIVE, not "
                 "extractable) instead of using existing ones");
  addOutputOption(init, f->output);
  init->footer(R"(
Examples:
  warden init --dir ./warden-data
  warden init --dir /var/lib/warden --trust-domain factory.example \
      --api-listen 0.0.0.0:8443 --mqtt-listen 0.0.0.0:8883 --server-name gw.factory.example
  # CA keys in an HSM (here SoftHSM2), created there and never extractable:
  warden init --dir /var/lib/warden --ca-key-generate \
      --ca-key 'pkcs11:token=warden;object=issuing-ca;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/warden/hsm.pin' \
      --root-key 'pkcs11:token=warden;object=root-ca;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/warden/hsm.pin'

With --ca-key, the issuing CA's key stays in the token: warden.yaml records
the URI (pki.issuing_ca_key; never a PIN) and `warden serve` signs every
certificate through libp11's engine. Without --root-key the root key is a
file as usual; with it, the root key is in the token too.

Creates D (0700) with the store (warden.db), a root CA (10 years) and an
issuing CA (5 years) on EC P-256, the gateway's server certificate, the
operator's client certificate (D/pki/admin.pem), a separate upstream CA for
the broker link, the default policy (version 1) and warden.yaml. Keys are
0600. The root key is needed only to renew the issuing CA: keep D/pki/root.key
offline if you can. If D already holds warden.yaml or warden.db, init exits 1
and changes nothing. Every certificate names its revocation sources under
--pki-url: <url>/pki/<ca>.crl (CRL distribution point), <url>/ocsp and
<url>/pki/<ca>.crt (AIA); `warden serve` answers them on --pki-listen.

Exit codes: 0 created; 1 already initialized or failed; 2 invalid options.)");
  table.add(init, [f, &global] {
    if (!needDir(*f, global, f->init.dir)) return api::kExitUsage;
    if (!f->server_names.empty()) f->init.server_names = f->server_names;
    f->init.output_json = wantsJson(f->output, global);
    return server::runInit(f->init);
  });

  CLI::App* serve = app.add_subcommand("serve", "run the control plane (admin API, EST) and the MQTT gateway");
  serve->add_option("--dir", f->dir, "data directory D made by `warden init` (default: $WARDEN_DIR)");
  serve->add_option("--log-level", f->serve.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical"}))
      ->capture_default_str();
  addOutputOption(serve, f->output);
  serve->footer(R"(
Examples:
  warden serve --dir ./warden-data
  WARDEN_DIR=./warden-data warden serve --log-level debug

Runs until SIGTERM or SIGINT: then devices get MQTT 5 DISCONNECT 0x8B, the
broker links are closed cleanly, the store is closed and it exits 0. Start
the broker first (`warden broker config --dir D --out DIR`, then
`mosquitto -c DIR/mosquitto.conf`). serve never reads the root CA key.

Exit codes: 0 clean shutdown; 1 could not start (port busy, bad files).)");
  table.add(serve, [f, &global] {
    if (!needDir(*f, global, f->serve.dir)) return api::kExitUsage;
    f->serve.output_json = wantsJson(f->output, global);
    return server::runServe(f->serve);
  });

  CLI::App* broker = app.add_subcommand("broker", "configure the Mosquitto broker behind the gateway");
  broker->require_subcommand(1);
  broker->footer("\nRun `warden broker config --help` for options and examples.");
  CLI::App* config = broker->add_subcommand("config", "write a mosquitto.conf that only the gateway can use");
  config->add_option("--dir", f->dir, "data directory D made by `warden init` (default: $WARDEN_DIR)");
  config->add_option("--out", f->broker.out, "directory for mosquitto.conf, its certificates and the ACL")->required();
  addOutputOption(config, f->output);
  config->footer(R"(
Examples:
  warden broker config --dir ./warden-data --out ./broker
  mosquitto -c ./broker/mosquitto.conf

Reads D locally and writes OUT/mosquitto.conf with its credentials: one TLS
listener on the --mqtt-upstream address (TLS 1.2+, AEAD ciphers only) that
requires a client certificate from the upstream CA, uses the certificate
identity as user name, refuses anonymous clients, and an ACL granting only
the gateway's identity; persistence in OUT/. The files are made readable by
the user Mosquitto drops privileges to; the permissions of OUT's parent
directories are the caller's business.

Exit codes: 0 written; 1 failed; 2 invalid options.)");
  table.add(config, [f, &global] {
    if (!needDir(*f, global, f->broker.dir)) return api::kExitUsage;
    f->broker.output_json = wantsJson(f->output, global);
    return server::runBrokerConfig(f->broker);
  });
}

}  // namespace warden::cli
