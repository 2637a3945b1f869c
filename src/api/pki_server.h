#pragma once

// pki_server.h: the plain-HTTP PKI listener for third parties (`pki.listen`
// in warden.yaml): CRLs, CA certificates (AIA caIssuers) and OCSP. Plain
// HTTP on purpose: everything it serves is signed, and HTTPS would make
// revocation checking circular (RFC 5280 §4.2.1.13, RFC 6960 Appendix A).
//
//   GET  /pki/<ca>.crl       DER CRL (application/pkix-crl)
//   GET  /pki/<ca>.crl.pem   PEM CRL
//   GET  /pki/<ca>.crt       DER CA certificate (application/pkix-cert)
//   GET  /ocsp/<base64 DER>  OCSP (RFC 6960 A.1.1)
//   POST /ocsp               OCSP, body application/ocsp-request

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "pki/ocsp_responder.h"
#include "pki/revocation_snapshot.h"

namespace warden::api {

struct PkiServerConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  // Requests per source address (IPv6: /64) per second, and burst.
  double rate_per_second = 50;
  double rate_burst = 200;
  size_t max_connections = 1024;
  std::chrono::seconds idle_timeout{15};
  // nextUpdate of OCSP answers: now + this.
  std::chrono::seconds ocsp_validity{3600};
};

struct PkiServerDeps {
  pki::RevocationSnapshotHolder& snapshot;
  const core::Clock& clock;
  // run_blocking runs |work| on the worker thread, then |then| on the io thread.
  std::function<void(std::function<void()> work, std::function<void()> then)> run_blocking;
  // ocsp_status says what CA |ca| knows about |serial_hex| (worker thread).
  std::function<pki::OcspStatus(const std::string& ca, const std::string& serial_hex)> ocsp_status;
};

class PkiServer {
 public:
  // |io_context| is a boost::asio::io_context*.
  PkiServer(void* io_context, PkiServerConfig config, PkiServerDeps deps);
  ~PkiServer();
  PkiServer(const PkiServer&) = delete;
  PkiServer& operator=(const PkiServer&) = delete;

  // start binds the listener (kUnavailable if the port is busy).
  core::Status start();
  void stop();
  uint16_t port() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace warden::api
