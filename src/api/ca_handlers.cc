// ca_handlers.cc: certificates and CAs on the admin API: `warden cert
// list|revoke` and `warden ca list|rotate|retire`.

// g++ 12 reports a false -Wmismatched-new-delete on Asio's awaitable frame
// allocator (aligned_new / operator delete pair) in some coroutines.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <openssl/x509v3.h>

#include <limits>
#include <optional>

#include "api/api_server_impl.h"
#include "core/file_io.h"
#include "core/names.h"
#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "monitor/event.h"
#include "monitor/event_log.h"
#include "pki/ca_key.h"
#include "pki/ca_set.h"
#include "pki/certificate_authority.h"
#include "pki/cross_certificate.h"
#include "pki/revocation_list.h"
#include "store/store.h"

namespace warden::api {
namespace {

constexpr int64_t kMaxExpiringSeconds = 100LL * 365 * 86400;
constexpr std::string_view kForcedRetireReason = "superseded";

core::Result<nlohmann::json> jsonBody(const ServerRequest& req) {
  if (req.body().empty()) return nlohmann::json::object();
  nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) return core::invalidArgument("the request body must be a JSON object");
  return body;
}

std::string rfc3339(int64_t t) { return core::formatRfc3339(core::fromUnixSeconds(t)); }

nlohmann::json certToJson(const store::CertRecord& c, int64_t now) {
  nlohmann::json j = {{"serial", c.serial_hex},
                      {"principal", c.device},
                      {"kind", c.kind},
                      {"issuer", c.issuer},
                      {"not_before", rfc3339(c.not_before)},
                      {"not_after", rfc3339(c.not_after)},
                      {"expired", c.not_after <= now},
                      {"revoked", c.revoked}};
  if (c.revoked) {
    j["revoked_at"] = rfc3339(c.revoked_at);
    j["reason"] = c.revocation_reason;
  }
  return j;
}

// parseExpiring reads "expiring=SECONDS" from the query (nullopt if absent).
core::Result<std::optional<int64_t>> parseExpiring(std::string_view query) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.substr(0, 9) != "expiring=") continue;
    std::string_view v = pair.substr(9);
    int64_t n = 0;
    if (v.empty() || v.size() > 12) return core::invalidArgument("'expiring' must be a number of seconds");
    for (char c : v) {
      if (c < '0' || c > '9') return core::invalidArgument("'expiring' must be a number of seconds");
      n = n * 10 + (c - '0');
    }
    return std::optional<int64_t>(std::min(n, kMaxExpiringSeconds));
  }
  return std::optional<int64_t>();
}

// RootRollover is the "root" member of POST /v1/cas: a new root and the
// cross certificates between it and the active root (RFC 4210 §4.4).
struct RootRollover {
  std::string name;  // root-N
  std::string cert_pem, new_with_old_pem, old_with_new_pem;
};

core::Result<RootRollover> parseRootRollover(const nlohmann::json& j) {
  constexpr size_t kMaxPem = 64 * 1024;
  auto field = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() && it->get_ref<const std::string&>().size() <= kMaxPem ? it->get<std::string>()
                                                                                                   : std::string();
  };
  RootRollover r;
  if (j.is_object()) {
    r.name = field("name");
    r.cert_pem = field("cert_pem");
    r.new_with_old_pem = field("new_with_old_pem");
    r.old_with_new_pem = field("old_with_new_pem");
  }
  if (!core::isValidName(r.name) || r.name.rfind("root-", 0) != 0 || r.cert_pem.empty() || r.new_with_old_pem.empty() ||
      r.old_with_new_pem.empty()) {
    return core::invalidArgument(
        "'root' needs 'name' (root-N), 'cert_pem', 'new_with_old_pem' and 'old_with_new_pem': use `warden ca rotate "
        "--root`, which makes them with the old and the new root key");
  }
  return r;
}

struct CheckedRollover {
  std::string name;
  crypto::X509Ptr root, new_with_old, old_with_new;
};

// checkRootRollover checks a rollover against the active root |old_root|
// before anything changes: a new self-signed root with another key, a
// NewWithOld that the old root signed and an OldWithNew that the new root
// signed, each certifying exactly the other root's name and key.
core::Result<CheckedRollover> checkRootRollover(const RootRollover& r, X509* old_root, core::SystemTime now) {
  CheckedRollover out;
  out.name = r.name;
  WARDEN_ASSIGN_OR_RETURN(out.root, crypto::certFromPem(r.cert_pem));
  WARDEN_ASSIGN_OR_RETURN(out.new_with_old, crypto::certFromPem(r.new_with_old_pem));
  WARDEN_ASSIGN_OR_RETURN(out.old_with_new, crypto::certFromPem(r.old_with_new_pem));
  if (!pki::isSelfSignedRoot(out.root.get())) return core::invalidArgument("the new root is not a self-signed CA certificate");
  if (EVP_PKEY_eq(X509_get0_pubkey(out.root.get()), X509_get0_pubkey(old_root)) == 1) {
    return core::invalidArgument("the new root has the key of the active one: a root rotation needs a new key");
  }
  if (X509_NAME_cmp(X509_get_subject_name(out.root.get()), X509_get_subject_name(old_root)) == 0) {
    return core::invalidArgument("the new root has the subject name of the active one: give it a distinct name");
  }
  if (crypto::notBefore(out.root.get()) <= crypto::notBefore(old_root)) {
    return core::invalidArgument("the new root must be newer (a later notBefore) than the active one");
  }
  if (auto s = pki::checkCrossCertificate(out.new_with_old.get(), out.root.get(), old_root, now); !s.isOk()) {
    return core::invalidArgument("NewWithOld: " + s.message());
  }
  if (auto s = pki::checkCrossCertificate(out.old_with_new.get(), old_root, out.root.get(), now); !s.isOk()) {
    return core::invalidArgument("OldWithNew: " + s.message());
  }
  return out;
}

}  // namespace

asio::awaitable<ServerResponse> ApiServer::Impl::certList(const Route& route) {
  auto expiring = parseExpiring(route.query);
  if (!expiring.isOk()) co_return statusResponse(expiring.status());
  const int64_t now = core::unixSeconds(deps_.clock.now());
  const int64_t to = expiring->has_value() ? now + **expiring : std::numeric_limits<int64_t>::max();
  auto work = [this, now, to]() { return deps_.store.listCertsExpiring(now, to); };
  auto certs = co_await onWorker(work);
  if (!certs.isOk()) co_return statusResponse(certs.status());
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : *certs) list.push_back(certToJson(c, now));
  co_return jsonResponse(http::status::ok, {{"certs", std::move(list)}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::certRevoke(const OperatorIdentity& op, const std::string& serial,
                                                            const ServerRequest& req) {
  auto body = jsonBody(req);
  if (!body.isOk()) co_return statusResponse(body.status());
  std::string reason;
  if (auto it = body->find("reason"); it != body->end() && it->is_string()) reason = it->get<std::string>();
  if (reason.empty()) {
    co_return errorResponse(http::status::bad_request, "invalid_argument",
                            "'reason' is required: keyCompromise, superseded, cessationOfOperation, "
                            "affiliationChanged, caCompromise or unspecified");
  }
  auto code = pki::parseCrlReason(reason);
  if (!code.isOk()) co_return statusResponse(code.status());
  const std::string caller = op.name;
  struct Revoked {
    store::CertRecord cert;
    bool changed = false;
    std::string replaced_by;  // the gateway's new serial, when its current certificate was revoked
  };
  auto work = [this, serial, reason, caller]() -> core::Result<Revoked> {
    // Like `policy apply`, refuse what would lock the caller out: its last
    // valid operator certificate.
    WARDEN_ASSIGN_OR_RETURN(store::CertRecord target, deps_.store.findCert(serial));
    if (target.kind == "user" && target.device == caller && !target.revoked) {
      WARDEN_ASSIGN_OR_RETURN(std::vector<store::CertRecord> own, deps_.store.listCerts(caller));
      const int64_t now_s = core::unixSeconds(deps_.clock.now());
      int64_t others = 0;
      for (const auto& c : own) others += (c.kind == "user" && !c.revoked && c.not_after > now_s && c.serial_hex != serial);
      if (others == 0) {
        return core::failedPrecondition(
            "refused: this is your only valid operator certificate and revoking it would lock you out of the admin "
            "API; get another one first (`warden ca rotate` issues you a new one)");
      }
    }
    Revoked out;
    WARDEN_ASSIGN_OR_RETURN(std::tie(out.cert, out.changed), deps_.store.revokeCert(serial, reason));
    // The gateway's own server certificate is replaced at once (from the
    // active CA): clients must never be shown a revoked certificate.
    if (out.cert.kind == "service" && out.cert.device == "gateway") {
      WARDEN_ASSIGN_OR_RETURN(std::string pem, core::readFile(config_.server_cert_file, 1024 * 1024));
      WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr current, crypto::certFromPem(pem));
      if (crypto::serialHex(current.get()) == serial) {
        std::shared_ptr<const pki::CaSet> cas = cas_->get();
        WARDEN_ASSIGN_OR_RETURN(out.replaced_by, issueGatewayCert(*cas->active(), cas->rootLink()));
      }
    }
    return out;
  };
  auto revoked = co_await onWorker(work);
  if (!revoked.isOk()) co_return statusResponse(revoked.status());
  const store::CertRecord& cert = revoked->cert;
  const bool changed = revoked->changed;
  if (!revoked->replaced_by.empty()) co_await reloadCas();  // the gateway and the API present the new certificate
  if (changed) {
    // The gateway drops the serial with the new snapshot and cuts a live
    // session that uses it before we answer.
    co_await publishChange();
    if (cert.kind == "device") co_await purgeBrokerSession(cert.device);
    co_await publishRevocation();
  }
  std::string principal;
  if (cert.kind == "device") principal = deviceSpiffeId(cert.device);
  if (cert.kind == "user") principal = core::makeSpiffeId(config_.trust_domain, core::PrincipalKind::kUser, cert.device);
  recordEvent(monitor::event_type::kRevoke, principal, op.spiffe_id, "admin:cert.revoke", serial, "permit", op.rule,
              std::string(monitor::reason::kPermitted),
              {{"serial", serial}, {"kind", cert.kind}, {"issuer", cert.issuer}, {"revocation_reason", reason},
               {"changed", changed}, {"replaced_by", revoked->replaced_by}});
  const int64_t now = core::unixSeconds(deps_.clock.now());
  nlohmann::json out = certToJson(cert, now);
  out["changed"] = changed;
  if (!revoked->replaced_by.empty()) out["replaced_by"] = revoked->replaced_by;
  co_return jsonResponse(http::status::ok, out);
}

asio::awaitable<ServerResponse> ApiServer::Impl::caList() {
  const int64_t now = core::unixSeconds(deps_.clock.now());
  struct Row {
    store::CaRecord ca;
    int64_t valid = 0, revoked = 0, last_not_after = 0;
  };
  auto work = [this, now]() -> core::Result<std::vector<Row>> {
    WARDEN_ASSIGN_OR_RETURN(std::vector<store::CaRecord> cas, deps_.store.listCas());
    std::vector<Row> rows;
    for (auto& ca : cas) {
      Row r;
      r.ca = std::move(ca);
      if (r.ca.kind == "issuing") {
        WARDEN_ASSIGN_OR_RETURN(std::vector<store::CertRecord> certs, deps_.store.listCertsIssuedBy(r.ca.name, now));
        for (const auto& c : certs) {
          if (c.kind == "ocsp") continue;
          (c.revoked ? r.revoked : r.valid)++;
          r.last_not_after = std::max(r.last_not_after, c.not_after);
        }
      }
      rows.push_back(std::move(r));
    }
    return rows;
  };
  auto rows = co_await onWorker(work);
  if (!rows.isOk()) co_return statusResponse(rows.status());
  nlohmann::json list = nlohmann::json::array();
  for (const Row& r : *rows) {
    auto cert = crypto::certFromPem(r.ca.cert_pem);
    nlohmann::json j = {{"name", r.ca.name},
                        {"kind", r.ca.kind},
                        {"state", std::string(store::caStateName(r.ca.state))},
                        {"key_id", r.ca.key_id},
                        {"created_at", rfc3339(r.ca.created_at)}};
    if (cert.isOk()) {
      j["subject"] = crypto::commonName(cert->get());
      j["not_before"] = core::formatRfc3339(crypto::notBefore(cert->get()));
      j["not_after"] = core::formatRfc3339(crypto::notAfter(cert->get()));
    }
    if (r.ca.kind == "issuing") {
      j["certs_valid"] = r.valid;
      j["certs_revoked_unexpired"] = r.revoked;
      j["last_cert_expires"] = r.last_not_after > 0 ? nlohmann::json(rfc3339(r.last_not_after)) : nlohmann::json();
    }
    if (r.ca.retired_at > 0) j["retired_at"] = rfc3339(r.ca.retired_at);
    list.push_back(std::move(j));
  }
  co_return jsonResponse(http::status::ok, {{"cas", std::move(list)}});
}

core::Result<std::string> ApiServer::Impl::issueGatewayCert(const pki::CaMaterial& ca, X509* link) {
  WARDEN_ASSIGN_OR_RETURN(std::string old_pem, core::readFile(config_.server_cert_file, 1024 * 1024));
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr old_cert, crypto::certFromPem(old_pem));
  pki::LeafProfile server;
  server.common_name = crypto::commonName(old_cert.get());
  server.uri_sans = crypto::uriSans(old_cert.get());
  server.dns_sans = crypto::dnsSans(old_cert.get());
  server.ip_sans = crypto::ipSans(old_cert.get());
  server.client_auth = false;
  server.server_auth = true;
  server.lifetime = core::Seconds(365LL * 86400);
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, crypto::generateEcKey());
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr cert, pki::issueLeaf(ca, key.get(), server, deps_.clock));
  store::CertRecord rec;
  rec.serial_hex = crypto::serialHex(cert.get());
  rec.device = "gateway";
  rec.kind = "service";
  rec.pubkey_fp = crypto::publicKeyFingerprint(key.get());
  rec.not_before = core::unixSeconds(crypto::notBefore(cert.get()));
  rec.not_after = core::unixSeconds(crypto::notAfter(cert.get()));
  rec.pem = crypto::certToPem(cert.get());
  rec.issuer = ca.name;
  WARDEN_RETURN_IF_ERROR(deps_.store.insertCert(rec));
  // Key first: the TLS contexts are rebuilt only after both are written.
  WARDEN_RETURN_IF_ERROR(crypto::writePrivateKeyFile(config_.server_key_file, key.get()));
  std::vector<X509*> presented{cert.get(), ca.cert.get()};
  if (link != nullptr) presented.push_back(link);
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(config_.server_cert_file, crypto::certsToPem(presented), 0644));
  return rec.serial_hex;
}

asio::awaitable<ServerResponse> ApiServer::Impl::caRotate(const OperatorIdentity& op, const ServerRequest& req) {
  auto body = jsonBody(req);
  if (!body.isOk()) co_return statusResponse(body.status());
  auto str = [&](const char* k) {
    auto it = body->find(k);
    return it != body->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string name = str("name");
  const std::string cert_pem = str("cert_pem");
  const std::string key_ref = str("key_ref");
  const std::string operator_pem = str("operator_cert_pem");
  if (!core::isValidName(name) || name.rfind("issuing-", 0) != 0 || cert_pem.empty() || key_ref.empty()) {
    co_return errorResponse(http::status::bad_request, "invalid_argument",
                            "'name' (issuing-N), 'cert_pem' and 'key_ref' are required: use `warden ca rotate`, which "
                            "makes the new CA with the root key and sends them");
  }
  // A root rollover (`warden ca rotate --root`) also carries the new root and
  // the two cross certificates, all made offline with the root keys.
  std::optional<RootRollover> rollover;
  if (auto it = body->find("root"); it != body->end()) {
    auto parsed = parseRootRollover(*it);
    if (!parsed.isOk()) co_return statusResponse(parsed.status());
    rollover = std::move(parsed).value();
  }
  struct Rotated {
    core::Status status;
    std::string previous;
    std::string previous_root;
    std::string gateway_serial;
  };
  const std::string op_name = op.name;
  const std::string op_spiffe = op.spiffe_id;
  auto work = [this, name, cert_pem, key_ref, operator_pem, op_name, op_spiffe, rollover]() -> Rotated {
    Rotated out;
    auto run = [&]() -> core::Status {
      std::shared_ptr<const pki::CaSet> cas = cas_->get();
      // Everything is checked before anything changes.
      WARDEN_ASSIGN_OR_RETURN(pki::CaMaterial ca, pki::loadCa(name, cert_pem, key_ref, config_.pki_url));
      if (X509_check_ca(ca.cert.get()) != 1) return core::invalidArgument("the new certificate is not a CA certificate");
      std::optional<CheckedRollover> root;
      if (rollover) {
        WARDEN_ASSIGN_OR_RETURN(root, checkRootRollover(*rollover, cas->root.get(), deps_.clock.now()));
      }
      // The issuing CA's parent: the new root in a rollover, else the active one.
      X509* parent = root ? root->root.get() : cas->root.get();
      // What a client that still pins the old root needs to reach the
      // active root: its NewWithOld, presented after the issuing CA.
      X509* link = root ? root->new_with_old.get() : cas->rootLink();
      WARDEN_RETURN_IF_ERROR(pki::verifyChain(ca.cert.get(), {}, {parent}, deps_.clock.now()));
      if (crypto::subjectKeyIdHex(ca.cert.get()) == crypto::subjectKeyIdHex(cas->active()->cert.get())) {
        return core::invalidArgument("the new CA has the key of the active one: a rotation needs a new key");
      }
      // The caller's new operator certificate (made by `warden ca rotate`
      // with the new CA's key): it must be the caller's own identity.
      crypto::X509Ptr op_cert;
      if (!operator_pem.empty()) {
        WARDEN_ASSIGN_OR_RETURN(op_cert, crypto::certFromPem(operator_pem));
        WARDEN_RETURN_IF_ERROR(pki::verifyChain(op_cert.get(), {ca.cert.get()}, {parent}, deps_.clock.now()));
        std::vector<std::string> uris = crypto::uriSans(op_cert.get());
        if (uris.size() != 1 || uris.front() != op_spiffe) {
          return core::invalidArgument("the new operator certificate must carry exactly the caller's SPIFFE ID");
        }
      }

      store::CaRecord record;
      record.name = name;
      record.kind = "issuing";
      record.state = store::CaState::kActive;
      record.key_id = crypto::subjectKeyIdHex(ca.cert.get());
      record.cert_pem = crypto::certToPem(ca.cert.get());
      record.key_ref = key_ref;
      WARDEN_ASSIGN_OR_RETURN(std::vector<store::CaRecord> all, deps_.store.listCas());
      if (root) {
        // The new root first: the issuing CA's AKI must resolve to it.
        for (const store::CaRecord& c : all) {
          if (c.name == root->name) return core::alreadyExists(fmt::format("CA '{}' is already in the inventory", c.name));
        }
        store::CaRecord r;
        r.name = root->name;
        r.kind = "root";
        r.state = store::CaState::kActive;
        r.key_id = crypto::subjectKeyIdHex(root->root.get());
        r.cert_pem = crypto::certToPem(root->root.get());
        WARDEN_RETURN_IF_ERROR(deps_.store.insertCa(r));
      }
      WARDEN_RETURN_IF_ERROR(deps_.store.insertCa(record));
      for (const store::CaRecord& c : all) {
        if (c.kind == "issuing" && c.state == store::CaState::kActive) {
          WARDEN_RETURN_IF_ERROR(deps_.store.setCaState(c.name, store::CaState::kRetiring));
          out.previous = c.name;
        }
        if (root && c.kind == "root" && c.state == store::CaState::kActive) {
          // Trusted, signs nothing new, until its last issuing CA is retired.
          WARDEN_RETURN_IF_ERROR(deps_.store.setCaState(c.name, store::CaState::kRetiring));
          WARDEN_RETURN_IF_ERROR(deps_.store.insertCrossCert(
              {fmt::format("{}-by-{}", root->name, c.name), root->name, c.name, crypto::certToPem(root->new_with_old.get()), 0}));
          WARDEN_RETURN_IF_ERROR(deps_.store.insertCrossCert(
              {fmt::format("{}-by-{}", c.name, root->name), c.name, root->name, crypto::certToPem(root->old_with_new.get()), 0}));
          out.previous_root = c.name;
        }
      }
      if (op_cert) {
        store::CertRecord oprec;
        oprec.serial_hex = crypto::serialHex(op_cert.get());
        oprec.device = op_name;
        oprec.kind = "user";
        oprec.pubkey_fp = crypto::publicKeyFingerprint(X509_get0_pubkey(op_cert.get()));
        oprec.not_before = core::unixSeconds(crypto::notBefore(op_cert.get()));
        oprec.not_after = core::unixSeconds(crypto::notAfter(op_cert.get()));
        oprec.pem = crypto::certToPem(op_cert.get());
        oprec.issuer = name;
        WARDEN_RETURN_IF_ERROR(deps_.store.insertCert(oprec));
      }
      // The gateway's new server certificate: same names, new key, new CA.
      WARDEN_ASSIGN_OR_RETURN(out.gateway_serial, issueGatewayCert(ca, link));
      return core::Status::ok();
    };
    out.status = run();
    return out;
  };
  Rotated rotated = co_await onWorker(work);
  if (!rotated.status.isOk()) co_return statusResponse(rotated.status);
  // The new operator certificate must be known before the CLI uses it.
  co_await publishChange();
  co_await reloadCas();
  nlohmann::json detail = {{"ca", name}, {"previous", rotated.previous}, {"gateway_serial", rotated.gateway_serial}};
  if (rollover) {
    detail["root"] = rollover->name;
    detail["previous_root"] = rotated.previous_root;
  }
  recordEvent(monitor::event_type::kCaRotate, "", op.spiffe_id, "admin:ca.rotate", rollover ? rollover->name : name,
              "permit", op.rule, std::string(monitor::reason::kPermitted), detail);
  nlohmann::json answer = {{"name", name},
                           {"state", "active"},
                           {"previous", rotated.previous},
                           {"gateway_serial", rotated.gateway_serial}};
  if (rollover) {
    answer["root"] = rollover->name;
    answer["previous_root"] = rotated.previous_root;
  }
  co_return jsonResponse(http::status::ok, answer);
}

asio::awaitable<ServerResponse> ApiServer::Impl::caRetire(const OperatorIdentity& op, const std::string& name,
                                                          const ServerRequest& req) {
  auto body = jsonBody(req);
  if (!body.isOk()) co_return statusResponse(body.status());
  bool force = false;
  if (auto it = body->find("force"); it != body->end() && it->is_boolean()) force = it->get<bool>();
  struct Retired {
    core::Status status;
    int64_t revoked = 0;
    std::vector<std::string> retired_roots;
  };
  const int64_t now = core::unixSeconds(deps_.clock.now());
  auto work = [this, name, force, now]() -> Retired {
    Retired out;
    auto run = [&]() -> core::Status {
      WARDEN_ASSIGN_OR_RETURN(std::vector<store::CaRecord> cas, deps_.store.listCas());
      const store::CaRecord* ca = nullptr;
      for (const auto& c : cas) {
        if (c.name == name) ca = &c;
      }
      if (ca == nullptr) return core::notFound(fmt::format("there is no CA '{}' (see `warden ca list`)", name));
      if (ca->kind != "issuing") return core::invalidArgument("only issuing CAs are retired; the root rotates");
      if (ca->state == store::CaState::kRetired) return core::failedPrecondition(fmt::format("CA '{}' is retired already", name));
      if (ca->state == store::CaState::kActive) {
        return core::failedPrecondition(
            fmt::format("CA '{}' is the active issuing CA: run `warden ca rotate` first", name));
      }
      WARDEN_ASSIGN_OR_RETURN(std::vector<store::CertRecord> certs, deps_.store.listCertsIssuedBy(name, now));
      int64_t valid = 0;
      for (const auto& c : certs) valid += (!c.revoked && c.kind != "ocsp") ? 1 : 0;
      if (valid > 0 && !force) {
        return core::failedPrecondition(fmt::format(
            "CA '{}' still has {} unexpired certificate(s) (`warden cert list -o json`): wait until devices renew "
            "(or they expire), or pass --force to revoke them",
            name, valid));
      }
      if (valid > 0) {
        WARDEN_ASSIGN_OR_RETURN(std::vector<store::CertRecord> revoked,
                                deps_.store.revokeCertsIssuedBy(name, kForcedRetireReason, now));
        out.revoked = static_cast<int64_t>(revoked.size());
      }
      WARDEN_RETURN_IF_ERROR(deps_.store.setCaState(name, store::CaState::kRetired));
      // An old root leaves the trust sets with its last issuing CA: every
      // device has renewed under the new root meanwhile (that is what retire
      // waits for), so every agent has seen the NewWithOld and moved its pin.
      WARDEN_ASSIGN_OR_RETURN(std::vector<store::CaRecord> after, deps_.store.listCas());
      for (const store::CaRecord& root : after) {
        if (root.kind != "root" || root.state != store::CaState::kRetiring) continue;
        bool in_use = false;
        for (const store::CaRecord& c : after) {
          if (c.kind != "issuing" || c.state == store::CaState::kRetired) continue;
          auto cert = crypto::certFromPem(c.cert_pem);
          in_use = in_use || !cert.isOk() || crypto::authorityKeyIdHex(cert->get()) == root.key_id;
        }
        if (!in_use) {
          WARDEN_RETURN_IF_ERROR(deps_.store.setCaState(root.name, store::CaState::kRetired));
          out.retired_roots.push_back(root.name);
        }
      }
      return core::Status::ok();
    };
    out.status = run();
    return out;
  };
  Retired retired = co_await onWorker(work);
  if (!retired.status.isOk()) {
    if (retired.status.code() == core::ErrorCode::kFailedPrecondition) {
      co_return errorResponse(http::status::conflict, "failed_precondition", retired.status.message());
    }
    co_return statusResponse(retired.status);
  }
  // Cut the sessions of certificates that were revoked, then drop the CA
  // from every trust bundle.
  if (retired.revoked > 0) co_await publishChange();
  co_await reloadCas();
  recordEvent(monitor::event_type::kCaRetire, "", op.spiffe_id, "admin:ca.retire", name, "permit", op.rule,
              std::string(monitor::reason::kPermitted),
              {{"ca", name}, {"force", force}, {"revoked", retired.revoked}, {"retired_roots", retired.retired_roots}});
  co_return jsonResponse(http::status::ok, {{"name", name},
                                            {"state", "retired"},
                                            {"revoked", retired.revoked},
                                            {"retired_roots", retired.retired_roots}});
}

}  // namespace warden::api
