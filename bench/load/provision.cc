// provision.cc: `warden-load provision` — bulk devices for the benchmarks.
// Benchmark devices take certificates straight from the library (issue 2,
// "Benchmarks") instead of through EST; they still go through Registry, so
// they are ordinary enrolled devices to the server (token consumed, cert
// recorded, state active).

#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <string>

#include <fmt/core.h>

#include "bench/load/load_scenarios.h"
#include "core/clock.h"
#include "core/file_io.h"
#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "identity/registry.h"
#include "pki/certificate_authority.h"
#include "pki/pki_files.h"
#include "policy/policy.h"
#include "server/config.h"
#include "store/sqlite_store.h"

namespace warden::bench {
namespace {

core::Status provision(const ProvisionOptions& o) {
  const core::Clock& clock = core::systemClock();
  WARDEN_ASSIGN_OR_RETURN(server::ServerConfig config, server::loadServerConfig(o.dir));
  pki::PkiPaths paths(o.dir);
  WARDEN_ASSIGN_OR_RETURN(std::string issuing_pem, core::readFile(paths.issuing_cert()));
  WARDEN_ASSIGN_OR_RETURN(std::string issuing_key, core::readFile(paths.issuing_key()));
  WARDEN_ASSIGN_OR_RETURN(pki::CaMaterial issuing, pki::caMaterialFromPem(issuing_pem, issuing_key));
  WARDEN_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> store, store::SqliteStore::open(o.dir + "/warden.db", clock));
  identity::Registry registry(*store, clock);
  WARDEN_RETURN_IF_ERROR(core::makePrivateDir(o.out));

  const std::string trust_domain = config.trust_domain;
  const core::Seconds lifetime{config.cert_ttl_s};
  identity::LeafIssuer issuer = [&](EVP_PKEY* key, const std::string& name) -> core::Result<identity::IssuedLeaf> {
    pki::LeafProfile profile;
    profile.common_name = name;
    profile.uri_sans = {core::makeSpiffeId(trust_domain, core::PrincipalKind::kDevice, name)};
    profile.client_auth = true;
    profile.lifetime = lifetime;
    WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr cert, pki::issueLeaf(issuing, key, profile, clock));
    return identity::IssuedLeaf{std::move(cert), issuing.name};
  };

  if (!o.policy_file.empty()) {
    // Stored directly (serve is stopped): the same validation as
    // `warden policy apply`, without needing the admin API.
    WARDEN_ASSIGN_OR_RETURN(std::string text, core::readFile(o.policy_file, 1 << 20));
    auto parsed = policy::Policy::parse(text, o.policy_file);
    if (!parsed.isOk()) return parsed.status();
    WARDEN_ASSIGN_OR_RETURN(int64_t version, store->insertPolicyVersion(text, "warden-load"));
    fmt::print(stderr, "stored {} as policy version {}\n", o.policy_file, version);
  }
  std::string list;
  if (o.tokens) {
    for (int i = 0; i < o.count; ++i) {
      const std::string name = fmt::format("{}{}", o.prefix, i);
      WARDEN_ASSIGN_OR_RETURN(identity::NewDevice added, registry.addDevice(name, o.role, {}));
      list += name + " " + added.token + "\n";
    }
    return core::writeFileAtomic(o.out + "/tokens.txt", list, 0600);
  }
  for (int i = 0; i < o.count; ++i) {
    const std::string name = fmt::format("{}{}", o.prefix, i);
    WARDEN_ASSIGN_OR_RETURN(identity::NewDevice added, registry.addDevice(name, o.role, {}));
    WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, crypto::generateEcKey());
    WARDEN_ASSIGN_OR_RETURN(identity::IssuedCert issued, registry.enroll(name, added.token, key.get(), issuer));
    WARDEN_ASSIGN_OR_RETURN(std::string key_pem, crypto::privateKeyToPem(key.get()));
    WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(o.out + "/" + name + ".key", key_pem, 0600));
    WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(o.out + "/" + name + ".crt",
                                                 crypto::certToPem(issued.cert.get()) + issuing_pem, 0644));
    list += name + "\n";
    if ((i + 1) % 1000 == 0) fmt::print(stderr, "provisioned {}/{}\n", i + 1, o.count);
  }
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(o.out + "/devices.txt", list, 0644));
  return core::Status::ok();
}

}  // namespace

int runProvision(const ProvisionOptions& options) {
  core::Status s = provision(options);
  if (!s.isOk()) {
    fmt::print(stderr, "warden-load provision: {}\n", s.toString());
    return 1;
  }
  fmt::print("RESULT provision count={} out={}\n", options.count, options.out);
  return 0;
}

}  // namespace warden::bench
