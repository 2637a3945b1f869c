#pragma once

#include <string>

namespace warden::server {

// caBundlePath returns D/pki/ca-bundle.pem: root + issuing CA, the trust
// anchors a client (the CLI, an agent) uses to verify the API and gateway.
inline std::string caBundlePath(const std::string& dir) { return dir + "/pki/ca-bundle.pem"; }

}  // namespace warden::server
