#include "pki/pki_files.h"

#include <utility>

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

}  // namespace warden::pki
