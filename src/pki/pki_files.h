#pragma once

// pki_files.h: the names of PKI files inside a Warden data directory D.
// Everything lives under D/pki/. Keys are written 0600.

#include <string>

namespace warden::pki {

// PkiPaths names the files of D/pki/. |data_dir| is D (not D/pki).
struct PkiPaths {
  explicit PkiPaths(std::string data_dir);

  std::string dir() const;                  // D/pki
  std::string root_cert() const;            // root.pem         Warden Root CA
  std::string root_key() const;             // root.key         (serve never reads it)
  std::string issuing_cert() const;         // issuing.pem      Warden Issuing CA
  std::string issuing_key() const;          // issuing.key
  std::string gateway_cert() const;         // gateway.pem      leaf + issuing (server cert, API and MQTT)
  std::string gateway_key() const;          // gateway.key
  std::string admin_cert() const;           // admin.pem        operator client cert (leaf + issuing)
  std::string admin_key() const;            // admin.key
  std::string upstream_ca_cert() const;     // upstream-ca.pem  Upstream CA (broker trust anchor)
  std::string upstream_ca_key() const;      // upstream-ca.key
  std::string upstream_client_cert() const; // upstream-client.pem gateway's client cert to the broker
  std::string upstream_client_key() const;  // upstream-client.key
  std::string broker_cert() const;          // broker.pem       Mosquitto's server cert
  std::string broker_key() const;           // broker.key
  std::string ca_dir() const;               // ca/              issuing CAs made by `warden ca rotate`, new roots and
                                            //                  cross certificates made by `warden ca rotate --root`
  std::string ca_cert(const std::string& name) const;  // ca/<name>.pem
  std::string ca_key(const std::string& name) const;   // ca/<name>.key
  std::string crl_dir() const;              // crl/
  std::string root_crl() const;             // crl/root.crl     DER, signed offline (`warden ca crl --root`)
  std::string root_crl(const std::string& name) const;  // crl/<name>.crl  a root's CRL (root-2, ... after `ca rotate --root`)

 private:
  std::string dir_;
};

}  // namespace warden::pki
