#pragma once

#include <chrono>
#include <string>

namespace warden::agent {

struct EnrollOptions {
  std::string server;          // https://HOST:PORT of the Warden API
  std::string name;            // device name the token was issued for (token enrollment)
  std::string token;           // one-time enrollment token (secret)
  std::string idevid_cert;     // factory certificate file (IEEE 802.1AR IDevID), instead of name + token
  std::string idevid_key;      // its private key file
  std::string ca_fingerprint;  // sha256:HEX of the root CA (pin)
  std::string dir;             // agent directory A
  // Where the device key is made: "file" (A/key.pem), "tpm2" (inside the
  // TPM at |tpm|, a TCTI through tpm2-abrmd) or "pkcs11" (in the token
  // |key_uri| names, module |pkcs11_module| unless the URI has module-path).
  std::string key_store = "file";
  std::string tpm;
  std::string pkcs11_module;
  std::string key_uri;
  // How long to keep retrying while the server answers 202 (manual approval).
  std::chrono::seconds approval_timeout{15 * 60};
  bool output_json = false;
};

// runEnroll performs the first enrollment (RFC 7030 §4.1.1 bootstrap, then
// simpleenroll) and writes the agent directory. Returns the process exit
// code: 0, 1 failed, 2 invalid options, 3 unreachable / TLS / token refused.
int runEnroll(const EnrollOptions& options);

}  // namespace warden::agent
