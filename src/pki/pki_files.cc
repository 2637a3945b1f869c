#include "pki/pki_files.h"

#include <utility>

#include <fmt/format.h>

namespace warden::pki {

PkiPaths::PkiPaths(std::string data_dir) : dir_(std::move(data_dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  dir_ += "/pki";
}

std::string PkiPaths::dir() const { return dir_; }
std::string PkiPaths::root_cert() const { return dir_ + "/root.pem"; }
std::string PkiPaths::root_key() const { return dir_ + "/root.key"; }
std::string PkiPaths::issuing_cert() const { return dir_ + "/issuing.pem"; }
std::string PkiPaths::issuing_key() const { return dir_ + "/issuing.key"; }
std::string PkiPaths::gateway_cert() const { return dir_ + "/gateway.pem"; }
std::string PkiPaths::gateway_key() const { return dir_ + "/gateway.key"; }
std::string PkiPaths::admin_cert() const { return dir_ + "/admin.pem"; }
std::string PkiPaths::admin_key() const { return dir_ + "/admin.key"; }
std::string PkiPaths::upstream_ca_cert() const { return dir_ + "/upstream-ca.pem"; }
std::string PkiPaths::upstream_ca_key() const { return dir_ + "/upstream-ca.key"; }
std::string PkiPaths::upstream_client_cert() const { return dir_ + "/upstream-client.pem"; }
std::string PkiPaths::upstream_client_key() const { return dir_ + "/upstream-client.key"; }
std::string PkiPaths::broker_cert() const { return dir_ + "/broker.pem"; }
std::string PkiPaths::broker_key() const { return dir_ + "/broker.key"; }
std::string PkiPaths::ca_dir() const { return dir_ + "/ca"; }
std::string PkiPaths::ca_cert(const std::string& name) const { return fmt::format("{}/ca/{}.pem", dir_, name); }
std::string PkiPaths::ca_key(const std::string& name) const { return fmt::format("{}/ca/{}.key", dir_, name); }
std::string PkiPaths::crl_dir() const { return dir_ + "/crl"; }
std::string PkiPaths::root_crl() const { return dir_ + "/crl/root.crl"; }
std::string PkiPaths::root_crl(const std::string& name) const { return dir_ + "/crl/" + name + ".crl"; }

}  // namespace warden::pki
