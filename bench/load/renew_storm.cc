// renew_storm.cc: `warden-load renew-storm` — a renewal storm: every
// provisioned device renews at once (EST simplereenroll, RFC 7030 §4.2.2).
//
// Each device does what the agent does at renewal time: a new TCP
// connection, a full mutual-TLS handshake with its current certificate, and
// POST /.well-known/est/simplereenroll with a CSR for a NEW key (the agent
// rekeys on every renewal by default). Keys and CSRs are made before the
// clock starts, so the figures are the server's. The storm is one window:
// all devices are due at t0, |concurrency| in flight; the time to drain is
// t0 -> the last answer. Around it the server's memory is read from
// /proc/PID/status: VmRSS and VmHWM before, then the peak is reset
// (clear_refs 5, proc(5)) so that VmHWM after is the storm's own peak.

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/core.h>

#include "api/est_client.h"
#include "bench/load/load_client.h"
#include "core/file_io.h"
#include "crypto/crypto.h"

namespace warden::bench {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

struct Renewer {
  std::string name;
  crypto::X509Ptr cert;
  std::vector<crypto::X509Ptr> chain;
  crypto::EvpPkeyPtr key;
  std::string csr_base64;  // for the new key
};

std::vector<Renewer> prepare(const std::string& certs, int limit) {
  std::vector<std::string> names = readDeviceNames(certs);
  if (limit > 0 && static_cast<size_t>(limit) < names.size()) names.resize(static_cast<size_t>(limit));
  std::vector<Renewer> out;
  out.reserve(names.size());
  for (const std::string& name : names) {
    auto crt = core::readFile(certs + "/" + name + ".crt");
    auto key = core::readFile(certs + "/" + name + ".key");
    if (!crt.isOk() || !key.isOk()) throw std::runtime_error("cannot read the certificate/key of " + name);
    auto all = crypto::certsFromPem(*crt);
    auto pkey = crypto::privateKeyFromPem(*key);
    if (!all.isOk() || all->empty() || !pkey.isOk()) throw std::runtime_error("cannot parse the certificate/key of " + name);
    Renewer r;
    r.name = name;
    r.cert = std::move((*all)[0]);
    for (size_t i = 1; i < all->size(); ++i) r.chain.push_back(std::move((*all)[i]));
    r.key = std::move(pkey).value();
    auto next = crypto::generateEcKey();
    if (!next.isOk()) throw std::runtime_error(next.status().toString());
    auto csr = api::buildCsr(next->get(), name);
    if (!csr.isOk()) throw std::runtime_error(csr.status().toString());
    r.csr_base64 = api::csrBody(csr->get());
    out.push_back(std::move(r));
  }
  if (out.empty()) throw std::runtime_error(certs + "/devices.txt lists no devices");
  return out;
}

// statusKb returns field |key| ("VmRSS", "VmHWM") of /proc/PID/status in KiB, or -1.
int64_t statusKb(int pid, const std::string& key) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  return -1;
}

// resetPeak resets VmHWM to the current RSS (proc(5): clear_refs, value 5).
bool resetPeak(int pid) {
  std::ofstream out(fmt::format("/proc/{}/clear_refs", pid));
  out << "5\n";
  out.flush();
  return static_cast<bool>(out);
}

struct Tally {
  std::atomic<size_t> next{0};
  std::vector<int64_t> latencies;
  std::map<unsigned, int> by_status;  // non-200 answers
  int transport_errors = 0;
  int bad_bodies = 0;
  std::string first_error;
};

asio::awaitable<void> renewOne(ssl::context& ctx, const tcp::endpoint& ep, const std::string& host, const Renewer& r,
                               Tally& tally) {
  auto ex = co_await asio::this_coro::executor;
  const int64_t start = nowNs();
  beast::ssl_stream<beast::tcp_stream> stream(ex, ctx);
  SSL* ssl = stream.native_handle();
  SSL_set_tlsext_host_name(ssl, host.c_str());
  if (SSL_use_certificate(ssl, r.cert.get()) != 1 || SSL_use_PrivateKey(ssl, r.key.get()) != 1) {
    throw std::runtime_error("cannot use the certificate/key of " + r.name);
  }
  for (const auto& c : r.chain) SSL_add1_chain_cert(ssl, c.get());
  co_await beast::get_lowest_layer(stream).async_connect(ep, asio::use_awaitable);
  co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);
  http::request<http::string_body> req{http::verb::post, "/.well-known/est/simplereenroll", 11};
  req.set(http::field::host, host);
  req.set(http::field::content_type, "application/pkcs10");
  req.set(http::field::accept, "application/pkcs7-mime");
  req.set("Warden-Key-Store", "file");
  req.set(http::field::connection, "close");
  req.body() = r.csr_base64;
  req.prepare_payload();
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, asio::use_awaitable);
  if (res.result_int() == 200 && !res.body().empty()) {
    tally.latencies.push_back(nowNs() - start);
  } else if (res.result_int() == 200) {
    ++tally.bad_bodies;
    if (tally.first_error.empty()) tally.first_error = r.name + ": 200 with an empty body";
  } else {
    ++tally.by_status[res.result_int()];
    if (tally.first_error.empty()) {
      tally.first_error = fmt::format("{} {}: {}", res.result_int(), r.name, res.body().substr(0, 200));
    }
  }
  boost::system::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
}

asio::awaitable<void> worker(ssl::context& ctx, tcp::endpoint ep, std::string host, const std::vector<Renewer>& all,
                             Tally& tally, int64_t deadline_ns) {
  for (size_t i = tally.next++; i < all.size(); i = tally.next++) {
    if (nowNs() > deadline_ns) {  // bounded in time: the rest counts as not renewed
      ++tally.transport_errors;
      if (tally.first_error.empty()) tally.first_error = "time limit reached";
      continue;
    }
    try {
      co_await renewOne(ctx, ep, host, all[i], tally);
    } catch (const std::exception& ex) {
      ++tally.transport_errors;
      if (tally.first_error.empty()) tally.first_error = fmt::format("{}: {}", all[i].name, ex.what());
    }
  }
}

int renewStorm(const RenewStormOptions& o) {
  fmt::print(stderr, "preparing new keys and CSRs for the devices of {}\n", o.certs);
  const std::vector<Renewer> all = prepare(o.certs, o.devices);
  auto ctx = makeClientContext(o.ca);
  asio::io_context io;
  tcp::endpoint ep(asio::ip::make_address(o.api_host), o.api_port);
  Tally tally;
  tally.latencies.reserve(all.size());
  int64_t rss_before = -1, hwm_before = -1;
  bool reset = false;
  if (o.mem_pid > 0) {
    rss_before = statusKb(o.mem_pid, "VmRSS");
    hwm_before = statusKb(o.mem_pid, "VmHWM");
    reset = resetPeak(o.mem_pid);
  }
  const CpuMeter cpu(o.cpu_pids);
  const int64_t t0 = nowNs();
  const int64_t deadline = t0 + static_cast<int64_t>(o.max_seconds * 1e9);
  for (int w = 0; w < o.concurrency; ++w) {
    asio::co_spawn(io, worker(*ctx, ep, o.api_host, all, tally, deadline), asio::detached);
  }
  io.run();
  const double seconds = static_cast<double>(nowNs() - t0) / 1e9;
  std::string extra = cpu.fields();
  if (o.mem_pid > 0) {
    extra += fmt::format(" rss_before_kb={} rss_after_kb={} hwm_before_kb={} hwm_storm_kb={}{}", rss_before,
                         statusKb(o.mem_pid, "VmRSS"), hwm_before, statusKb(o.mem_pid, "VmHWM"),
                         reset ? "" : " hwm_reset=failed");
  }
  std::sort(tally.latencies.begin(), tally.latencies.end());
  const StatusSummary refused = summarizeStatuses(tally.by_status);
  const int errors = refused.refused + tally.transport_errors + tally.bad_bodies;
  if (!tally.first_error.empty()) fmt::print(stderr, "first failure: {}\n", tally.first_error);
  fmt::print("RESULT renew-storm devices={} ok={} errors={} statuses={} transport_errors={} concurrency={} "
             "seconds={:.3f} rate={:.1f} p50_ms={:.2f} p99_ms={:.2f} max_ms={:.2f}{}\n",
             all.size(), tally.latencies.size(), errors, refused.text,
             tally.transport_errors, o.concurrency, seconds, static_cast<double>(tally.latencies.size()) / seconds,
             static_cast<double>(percentileNs(tally.latencies, 0.50)) / 1e6,
             static_cast<double>(percentileNs(tally.latencies, 0.99)) / 1e6,
             static_cast<double>(tally.latencies.empty() ? 0 : tally.latencies.back()) / 1e6, extra);
  return errors == 0 && tally.latencies.size() == all.size() ? 0 : 1;
}

}  // namespace

int runRenewStorm(const RenewStormOptions& options) {
  try {
    return renewStorm(options);
  } catch (const std::exception& e) {
    fmt::print(stderr, "warden-load renew-storm: {}\n", e.what());
    return 1;
  }
}

}  // namespace warden::bench
