// enroll_load.cc: `warden-load enroll` — EST simpleenroll throughput.
//
// Every device enrolls like a real one: a new TCP connection and a full TLS
// handshake (the server's chain verified against --ca), then POST
// /.well-known/est/simpleenroll with its one-time token (HTTP Basic) and a
// PKCS#10 request. Keys and CSRs are made before the clock starts, so the
// figure is the server's rate, not the generator's key generation.

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
#include "crypto/crypto.h"

namespace warden::bench {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

struct Enrollee {
  std::string name, authorization, csr_base64;
};

std::vector<Enrollee> prepare(const std::string& tokens_file) {
  std::ifstream in(tokens_file);
  if (!in) throw std::runtime_error("cannot read " + tokens_file + " (run warden-load provision --tokens first)");
  std::vector<Enrollee> out;
  for (std::string line; std::getline(in, line);) {
    size_t space = line.find(' ');
    if (line.empty() || space == std::string::npos) continue;
    std::string name = line.substr(0, space), token = line.substr(space + 1);
    auto key = crypto::generateEcKey();
    if (!key.isOk()) throw std::runtime_error(key.status().toString());
    auto csr = api::buildCsr(key->get(), name);
    if (!csr.isOk()) throw std::runtime_error(csr.status().toString());
    out.push_back(Enrollee{name, api::basicAuthorization(name, token), api::csrBody(csr->get())});
  }
  if (out.empty()) throw std::runtime_error(tokens_file + " lists no devices");
  return out;
}

struct Tally {
  std::atomic<size_t> next{0};
  std::vector<int64_t> latencies;
  std::map<unsigned, int> by_status;  // non-200 answers
  int transport_errors = 0;
  std::string first_error;
};

asio::awaitable<void> enrollOne(ssl::context& ctx, const tcp::endpoint& ep, const std::string& host,
                                const Enrollee& e, Tally& tally) {
  auto ex = co_await asio::this_coro::executor;
  const int64_t start = nowNs();
  beast::ssl_stream<beast::tcp_stream> stream(ex, ctx);
  SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  co_await beast::get_lowest_layer(stream).async_connect(ep, asio::use_awaitable);
  co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);
  http::request<http::string_body> req{http::verb::post, "/.well-known/est/simpleenroll", 11};
  req.set(http::field::host, host);
  req.set(http::field::content_type, "application/pkcs10");
  req.set(http::field::accept, "application/pkcs7-mime");
  req.set(http::field::authorization, e.authorization);
  req.set(http::field::connection, "close");
  req.body() = e.csr_base64;
  req.prepare_payload();
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, asio::use_awaitable);
  if (res.result_int() == 200) {
    tally.latencies.push_back(nowNs() - start);
  } else {
    ++tally.by_status[res.result_int()];
    if (tally.first_error.empty()) tally.first_error = fmt::format("{} {}: {}", res.result_int(), e.name, res.body().substr(0, 200));
  }
  boost::system::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
}

asio::awaitable<void> worker(ssl::context& ctx, tcp::endpoint ep, std::string host, const std::vector<Enrollee>& all,
                             Tally& tally) {
  for (size_t i = tally.next++; i < all.size(); i = tally.next++) {
    try {
      co_await enrollOne(ctx, ep, host, all[i], tally);
    } catch (const std::exception& ex) {
      ++tally.transport_errors;
      if (tally.first_error.empty()) tally.first_error = fmt::format("{}: {}", all[i].name, ex.what());
    }
  }
}

int enroll(const EnrollLoadOptions& o) {
  fmt::print(stderr, "preparing keys and CSRs from {}\n", o.tokens);
  const std::vector<Enrollee> all = prepare(o.tokens);
  auto ctx = makeClientContext(o.ca);
  asio::io_context io;
  tcp::endpoint ep(asio::ip::make_address(o.api_host), o.api_port);
  Tally tally;
  tally.latencies.reserve(all.size());
  const CpuMeter cpu(o.cpu_pids);
  const int64_t t0 = nowNs();
  for (int w = 0; w < o.concurrency; ++w) asio::co_spawn(io, worker(*ctx, ep, o.api_host, all, tally), asio::detached);
  io.run();
  const double seconds = static_cast<double>(nowNs() - t0) / 1e9;
  std::sort(tally.latencies.begin(), tally.latencies.end());
  const StatusSummary refused = summarizeStatuses(tally.by_status);
  if (!tally.first_error.empty()) fmt::print(stderr, "first failure: {}\n", tally.first_error);
  fmt::print("RESULT enroll count={} ok={} refused={} statuses={} transport_errors={} concurrency={} seconds={:.3f} "
             "rate={:.1f} p50_ms={:.2f} p99_ms={:.2f}{}\n",
             all.size(), tally.latencies.size(), refused.refused, refused.text, tally.transport_errors,
             o.concurrency, seconds, static_cast<double>(tally.latencies.size()) / seconds,
             static_cast<double>(percentileNs(tally.latencies, 0.50)) / 1e6,
             static_cast<double>(percentileNs(tally.latencies, 0.99)) / 1e6, cpu.fields());
  return tally.latencies.size() == all.size() ? 0 : 1;
}

}  // namespace

int runEnroll(const EnrollLoadOptions& options) {
  try {
    return enroll(options);
  } catch (const std::exception& e) {
    fmt::print(stderr, "warden-load enroll: {}\n", e.what());
    return 1;
  }
}

}  // namespace warden::bench
