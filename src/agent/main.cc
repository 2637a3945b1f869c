// warden-agent: enrolls a device with a Warden server (EST, RFC 7030), keeps
// its certificate renewed and attests its firmware (docs/attestation.md).

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <openssl/crypto.h>

#include "agent/attest_command.h"
#include "agent/enroll.h"
#include "agent/renewer.h"
#include "api/admin_client.h"
#include "core/names.h"

namespace {

constexpr const char* kEnrollExamples = R"(
Examples:
  # On the operator's machine: `warden device add sensor-1 --role sensor` prints
  # the token and the CA fingerprint. On the device:
  warden-agent enroll --server https://gateway.example:8443 --name sensor-1 \
      --token 3q2-7wX... --ca-fingerprint sha256:6f1c... --dir /var/lib/warden-agent
  warden-agent enroll ... -o json     # machine-readable summary

  # The key inside a TPM 2.0 (through tpm2-abrmd), or in a secure element:
  warden-agent enroll ... --key-store tpm2 --tpm tabrmd:bus_type=system
  warden-agent enroll ... --key-store pkcs11 --pkcs11-module /usr/lib/libse05x.so \
      --key-uri 'pkcs11:token=se;object=device-key?pin-source=file:/etc/warden/se.pin'
  # Factory identity (IEEE 802.1AR): a device whose IDevID chains to a
  # manufacturer the fleet trusts (`warden manufacturer add`) needs no token;
  # the server names it (name prefix + subject serialNumber):
  warden-agent enroll --server https://gateway.example:8443 --idevid /factory/idevid.pem \
      --idevid-key /factory/idevid.key --ca-fingerprint sha256:6f1c... --dir /var/lib/warden-agent

The agent first connects without sending anything secret, fetches the CA
certificates and checks that the server's certificate chains to the root
whose SHA-256 fingerprint you pinned; only then does it send the token. The
private key is generated on the device and never leaves it. The factory
certificate is sent only as the TLS client certificate of simpleenroll.

With manual approval the server answers 202 + Retry-After: the agent waits as
told (1 s to 5 min per try) and retries with the same key until approved, for
at most --approval-timeout; the key is kept (file: DIR/pending-key.pem, 0600;
tpm2: the TPM-wrapped DIR/key.pem.next; pkcs11: the token key), so running
the command again later continues the same request.

Writes DIR (0700): key.pem (0600), cert.pem (certificate + issuing CA),
ca.pem (root + issuing CA) and agent.yaml (server, name, pin, key store); each
file is written to a temporary name and renamed. With --key-store tpm2 the key
is created inside the TPM under the storage root key (persistent handle
0x81000001, created if absent) and key.pem holds only the TPM-wrapped blob
("TSS2 PRIVATE KEY"), usable by OpenSSL 3 clients through the tpm2 provider.
With --key-store pkcs11 the key is generated in the token, not extractable
(an existing non-extractable key with that label is reused), and there is no
key.pem. The agent tells the server which key store it used (a claim, shown
by `warden device show`).

Exit codes: 0 enrolled; 1 failed; 2 invalid options; 3 server unreachable,
TLS/pin verification failed or the token was refused (it works once and
expires: `warden device token NAME` makes a new one).)";

constexpr const char* kRunExamples = R"(
Examples:
  warden-agent run --dir /var/lib/warden-agent
  warden-agent run --dir A --renew-now --once    # renew immediately, then exit

Renews the certificate at 2/3 of its life through EST simplereenroll, over
mutual TLS with the current certificate, with a new key unless --keep-key
(a new TPM key with --key-store tpm2; a token key is always kept).
The old key and certificate stay in place until the new ones are written.
Each renewal also refreshes ca.pem from /.well-known/est/cacerts (the pinned
fingerprint still decides which root is trusted). After `warden ca rotate
--root`, a newer root is accepted only through a NewWithOld cross
certificate that verifies under the pinned root (RFC 4210 §4.4): ca.pem then
holds both roots and agent.yaml's ca_fingerprint moves to the new root
(logged as "root CA rollover"); a new root without one is logged as
"refused root update" and the pin stays. Failures are retried with
exponential backoff (5 s doubling to 5 min, with jitter). SIGTERM or SIGINT
stops it with exit code 0.

Attestation (docs/attestation.md): between renewals the agent proves to the
server which firmware it runs. It asks for a challenge, answers with a TPM
quote of PCR 10 (--tpm) or with its measurement log signed by the device key
(no --tpm: `software` assurance), and logs each verdict (result, reason,
state, trust). The next round is due when the server says (next_due_s), or
after --attest-interval when no policy segment requires attestation of this
device. Errors are retried with backoff (5 s doubling to 5 min); a server
without attestation endpoints is asked again at the interval. Not with --once.

  warden-agent run --dir A --tpm tabrmd:bus_type=system --firmware /boot/fw.bin

Measured boot: --firmware FILE is the running image. Its SHA-256 is extended
into PCR 10 when the agent starts on a new boot and whenever it changes
(checked before each round), and appended to A/attestation-log.json with the
TPM's resetCount. An agent restart without a TPM reset resumes that log; a new
resetCount (a reboot) starts a new one. Extends cannot be undone: an image
measured once stays in the log until the next boot. The attestation key is
created once under the TPM's EK and kept in A/ak.pub and A/ak.priv (0600); it
is registered with the server by credential activation the first time, and
again whenever the server says it does not know it. Without --tpm, each agent
start is a new boot with a new random boot_id and nothing is kept on disk.

Device key in the TPM: when the device key is a TPM key (enrolled with
--key-store tpm2) and the agent attests with --tpm, every round also proves
it: the TPM certifies the key (TPM2_Certify by the attestation key over the
round's nonce) and the server then shows `key_in_tpm: verified` for it.

Exit codes: 0 stopped by a signal (or --once succeeded); 1 failed; 2 DIR is
not an enrolled agent directory; 3 (--once) server unreachable or TLS failure.)";

constexpr const char* kAttestExamples = R"(
Examples:
  warden-agent attest --dir /var/lib/warden-agent --tpm tabrmd:bus_type=system --firmware /boot/fw.bin
  warden-agent attest --dir A -o json      # the server's verdict as JSON

Runs one attestation round as `run` does (same files in DIR, same measured
boot: a TPM whose resetCount is unchanged resumes the log), then prints the
server's verdict: result, reason (the attestation_failed reason when the
result is failed), state and trust. With -o json it prints the verdict
exactly as the server sent it: {"result", "reason", "state", "trust",
"next_due_s"}.

Exit codes: 0 result ok; 1 result failed (the device is quarantined or
suspect); 2 the round did not complete (invalid options or DIR, no TPM,
server unreachable, the server refused the evidence or the AK).)";

}  // namespace

int main(int argc, char** argv) {
  // No OpenSSL cleanup at exit: it unloads the tpm2 provider, whose teardown
  // (tpm2-openssl 1.1.1) leaves its ESAPI context behind (a leak report in
  // sanitizer builds, nothing else); the process is ending anyway. Must be
  // the first OpenSSL call.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  CLI::App app{"warden-agent: enrolls this device with a Warden server, keeps its certificate renewed and attests its firmware"};
  app.require_subcommand(1);
  app.fallthrough();
  app.footer("\nRun `warden-agent COMMAND --help` for a command's options and examples.");
  std::string global_output;
  app.add_option("-o,--output", global_output, "output format: text or json")->check(CLI::IsMember({"text", "json"}));

  warden::agent::EnrollOptions enroll;
  std::string enroll_output;
  CLI::App* enroll_cmd = app.add_subcommand(
      "enroll", "enroll this device with a one-time token or its factory certificate (EST simpleenroll)");
  enroll_cmd->add_option("--server", enroll.server, "Warden API URL, https://HOST:PORT")->required();
  enroll_cmd->add_option("--name", enroll.name, "device name the token was issued for");
  enroll_cmd->add_option("--token", enroll.token, "one-time enrollment token");
  enroll_cmd->add_option("--idevid", enroll.idevid_cert,
                         "factory certificate (IEEE 802.1AR IDevID, PEM, leaf first), instead of --name/--token");
  enroll_cmd->add_option("--idevid-key", enroll.idevid_key, "the factory certificate's private key (PEM)");
  std::string approval_timeout = "15m";
  enroll_cmd->add_option("--approval-timeout", approval_timeout,
                         "how long to keep retrying while the request awaits approval (default 15m)");
  enroll_cmd->add_option("--ca-fingerprint", enroll.ca_fingerprint, "pinned root CA fingerprint, sha256:HEX")->required();
  enroll_cmd->add_option("--dir", enroll.dir, "agent directory to create or update")->required();
  enroll_cmd->add_option("--key-store", enroll.key_store, "where the device key is made: file, tpm2 or pkcs11")
      ->check(CLI::IsMember({"file", "tpm2", "pkcs11"}))
      ->capture_default_str();
  enroll_cmd->add_option("--tpm", enroll.tpm,
                         "tpm2: TCTI of the TPM through a resource manager (tabrmd:bus_type=system, "
                         "device:/dev/tpmrm0)");
  enroll_cmd->add_option("--pkcs11-module", enroll.pkcs11_module, "pkcs11: path of the token's PKCS#11 module (.so)");
  enroll_cmd->add_option("--key-uri", enroll.key_uri,
                         "pkcs11: RFC 7512 URI of the device key in the token, with object= and "
                         "?pin-source=file:PATH (a 0600 PIN file)");
  enroll_cmd->add_option("-o,--output", enroll_output, "output format: text or json")->check(CLI::IsMember({"text", "json"}));
  enroll_cmd->footer(kEnrollExamples);

  warden::agent::RunOptions run;
  std::string run_output;
  CLI::App* run_cmd = app.add_subcommand("run", "keep the certificate renewed and attest (runs until SIGTERM)");
  run_cmd->add_option("--dir", run.dir, "agent directory written by `warden-agent enroll`")->required();
  run_cmd->add_option("--log-level", run.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical"}));
  run_cmd->add_flag("--renew-now", run.renew_now, "renew at start instead of at 2/3 of the certificate's life");
  run_cmd->add_flag("--once", run.once, "exit after the first renewal attempt");
  run_cmd->add_flag("--keep-key", run.keep_key, "reuse the current key (default: a new key per renewal)");
  std::string run_attest_interval = "60s";
  run_cmd->add_option("--tpm", run.attestation.tpm,
                      "attest with this TPM (TCTI: tabrmd:bus_type=system, device:/dev/tpmrm0, swtpm:port=P); "
                      "default: a log signed by the device key");
  run_cmd->add_option("--firmware", run.attestation.firmware, "the firmware image measured into PCR 10");
  run_cmd->add_option("--attest-interval", run_attest_interval,
                      "time between attestations when the server sets none (default 60s)");
  run_cmd->add_option("-o,--output", run_output, "output format: text or json")->check(CLI::IsMember({"text", "json"}));
  run_cmd->footer(kRunExamples);

  warden::agent::AttestOptions attest;
  std::string attest_output;
  CLI::App* attest_cmd =
      app.add_subcommand("attest", "attest once: prove this device's firmware to the server and print the verdict");
  attest_cmd->add_option("--dir", attest.dir, "agent directory written by `warden-agent enroll`")->required();
  attest_cmd->add_option("--tpm", attest.settings.tpm,
                         "attest with this TPM (TCTI); default: a log signed by the device key");
  attest_cmd->add_option("--firmware", attest.settings.firmware, "the firmware image measured into PCR 10");
  attest_cmd->add_option("--log-level", attest.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical"}));
  attest_cmd->add_option("-o,--output", attest_output, "output format: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  attest_cmd->footer(kAttestExamples);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : warden::api::kExitUsage;
  }

  auto json = [&](const std::string& leaf) { return (leaf.empty() ? global_output : leaf) == "json"; };
  if (enroll_cmd->parsed()) {
    enroll.output_json = json(enroll_output);
    auto timeout = warden::core::parseDuration(approval_timeout);
    if (!timeout.isOk()) {
      std::fprintf(stderr, "warden-agent: error: --approval-timeout: %s\n", timeout.status().message().c_str());
      return warden::api::kExitUsage;
    }
    enroll.approval_timeout = std::chrono::seconds(*timeout);
    return warden::agent::runEnroll(enroll);
  }
  if (run_cmd->parsed()) {
    auto interval = warden::core::parseDuration(run_attest_interval);
    if (!interval.isOk()) {
      std::fprintf(stderr, "warden-agent: error: --attest-interval: %s\n", interval.status().message().c_str());
      return warden::api::kExitUsage;
    }
    run.attestation.interval = std::chrono::seconds(*interval);
    return warden::agent::runAgent(run);
  }
  if (attest_cmd->parsed()) {
    attest.output_json = json(attest_output);
    return warden::agent::runAttest(attest);
  }
  return warden::api::kExitUsage;
}
