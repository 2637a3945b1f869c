// load_scenarios.cc: latency, max-rate, idle and revoke for warden-load.

#include "bench/load/load_scenarios.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <numeric>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <iterator>
#include <sstream>
#include <thread>

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "bench/load/load_client.h"
#include "crypto/crypto.h"

namespace warden::bench {
namespace {

using namespace std::chrono_literals;

std::string randomSuffix() { return fmt::format("{:x}{:x}", ::getpid(), nowNs() & 0xffffff); }

// buildPayload fills |size| bytes (at least 16): send time, sequence, padding.
void stampPayload(std::string& payload, int64_t sent_ns, int64_t seq) {
  std::memcpy(payload.data(), &sent_ns, 8);
  std::memcpy(payload.data() + 8, &seq, 8);
}

// Receiver is the subscriber side shared by latency and max-rate.
struct Receiver {
  std::vector<int64_t> latencies_ns;
  std::atomic<int64_t> received{0};
  std::atomic<int64_t> last_ns{0};
  std::atomic<bool> stop{false};
};

asio::awaitable<void> receiveLoop(DeviceConnection& c, Receiver& r, bool keep_latencies) {
  for (;;) {
    Frame f = co_await c.readFrame();
    if ((f.first_byte & 0xf0) != kPublish) continue;
    int64_t now = nowNs();
    std::string_view p = publishPayload(f);
    if (p.size() < 16) continue;
    int64_t sent = 0;
    std::memcpy(&sent, p.data(), 8);
    if (keep_latencies) r.latencies_ns.push_back(now - sent);
    r.last_ns.store(now);
    r.received.fetch_add(1);
  }
}

// PubSubPair runs a subscriber (own thread) and a publisher (own thread) on
// a fresh topic under bench/.
struct PubSubPair {
  explicit PubSubPair(const TargetOptions& t) : target(t) {
    auto names = readDeviceNames(t.certs);
    if (names.size() < 2) throw std::runtime_error("need at least 2 provisioned devices in " + t.certs);
    pub_name = names[0];
    sub_name = names[1];
    topic = "bench/" + randomSuffix();
    ctx = makeClientContext(t.ca);
  }

  // startSubscriber connects and subscribes; returns once SUBACK arrived.
  void startSubscriber(Receiver& r, bool keep_latencies) {
    std::promise<void> ready;
    auto ready_f = ready.get_future();
    sub_conn = std::make_unique<DeviceConnection>(sub_io.get_executor(), *ctx);
    asio::co_spawn(
        sub_io,
        [&, keep_latencies]() -> asio::awaitable<void> {
          co_await sub_conn->open(target, sub_name);
          co_await sub_conn->subscribe(topic);
          ready.set_value();
          co_await receiveLoop(*sub_conn, r, keep_latencies);
        },
        [&](std::exception_ptr e) {
          if (e && ready_f.valid()) {
            try {
              ready.set_exception(e);
            } catch (...) {
            }
          }
        });
    sub_thread = std::thread([this] { sub_io.run(); });
    ready_f.get();
  }

  void stopSubscriber() {
    asio::post(sub_io, [this] { sub_conn->closeNow(); });
    sub_io.stop();
    if (sub_thread.joinable()) sub_thread.join();
  }

  TargetOptions target;
  std::string pub_name, sub_name, topic;
  std::unique_ptr<ssl::context> ctx;
  asio::io_context sub_io, pub_io;
  std::unique_ptr<DeviceConnection> sub_conn;
  std::thread sub_thread;
};

int latency(const LatencyOptions& o) {
  if (o.payload < 16) throw std::runtime_error("--payload must be at least 16 bytes");
  PubSubPair pair(o.target);
  const int64_t total = static_cast<int64_t>(std::llround(o.rate * o.duration_s));
  Receiver r;
  r.latencies_ns.reserve(static_cast<size_t>(total) + 16);
  pair.startSubscriber(r, true);

  std::vector<int64_t> cpu_before, cpu_after;
  int64_t self_before = 0;
  MachineTicks machine_before;
  int64_t pub_start = 0, pub_end = 0;
  std::exception_ptr pub_error;
  DeviceConnection pub(pair.pub_io.get_executor(), *pair.ctx);
  asio::co_spawn(
      pair.pub_io,
      [&]() -> asio::awaitable<void> {
        co_await pub.open(o.target, pair.pub_name);
        std::string payload(o.payload, 'x');
        std::string batch;
        asio::steady_timer timer(pair.pub_io);
        for (int pid : o.cpu_pids) cpu_before.push_back(cpuTicks(pid));
        self_before = cpuTicks(::getpid());
        machine_before = machineTicks();
        pub_start = nowNs();
        const double per_ns = o.rate / 1e9;
        int64_t sent = 0;
        while (sent < total) {
          int64_t now = nowNs();
          int64_t due = std::min<int64_t>(total, static_cast<int64_t>(static_cast<double>(now - pub_start) * per_ns) + 1);
          batch.clear();
          for (; sent < due; ++sent) {
            stampPayload(payload, nowNs(), sent);
            appendPublish(batch, pair.topic, payload);
          }
          if (!batch.empty()) co_await pub.write(batch);
          // Sleep until the next message is due (timer resolution ~50 us).
          int64_t next_due_ns = pub_start + static_cast<int64_t>(static_cast<double>(sent) / per_ns);
          int64_t wait = next_due_ns - nowNs();
          if (wait > 0) {
            timer.expires_after(std::chrono::nanoseconds(wait));
            co_await timer.async_wait(asio::use_awaitable);
          }
        }
        pub_end = nowNs();
      },
      [&](std::exception_ptr e) { pub_error = e; });
  pair.pub_io.run();
  if (pub_error) std::rethrow_exception(pub_error);
  // Drain: wait until everything arrived or 2 s without progress.
  int64_t last_progress = nowNs(), seen = r.received.load();
  while (r.received.load() < total && nowNs() - last_progress < 2'000'000'000) {
    std::this_thread::sleep_for(5ms);
    if (r.received.load() != seen) {
      seen = r.received.load();
      last_progress = nowNs();
    }
  }
  for (int pid : o.cpu_pids) cpu_after.push_back(cpuTicks(pid));
  const int64_t self_after = cpuTicks(::getpid());
  const MachineTicks machine_after = machineTicks();
  pair.stopSubscriber();
  pub.closeNow();

  std::vector<int64_t> v = r.latencies_ns;
  std::sort(v.begin(), v.end());
  const double secs = static_cast<double>(pub_end - pub_start) / 1e9;
  std::string cpu;
  const double tick_us = 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (size_t i = 0; i < o.cpu_pids.size(); ++i) {
    double us = static_cast<double>(cpu_after[i] - cpu_before[i]) * tick_us;
    cpu += fmt::format(" cpu_us_{}={:.0f} cpu_us_per_msg_{}={:.3f}", o.cpu_pids[i], us, o.cpu_pids[i],
                       v.empty() ? 0.0 : us / static_cast<double>(v.size()));
  }
  // The load generator's own CPU and how busy the whole machine was: on a
  // small box the clients compete with the servers they measure.
  const double self_us = static_cast<double>(self_after - self_before) * tick_us;
  const int64_t machine_total = machine_after.total - machine_before.total;
  cpu += fmt::format(" load_cpu_us_per_msg={:.3f} machine_busy_pct={:.1f}",
                     v.empty() ? 0.0 : self_us / static_cast<double>(v.size()),
                     machine_total > 0 ? 100.0 * static_cast<double>(machine_after.busy - machine_before.busy) /
                                             static_cast<double>(machine_total)
                                       : 0.0);
  fmt::print("RESULT latency target={}:{} payload={} rate={:.0f} duration_s={:.2f} sent={} received={} p50_us={:.1f} "
             "p90_us={:.1f} p99_us={:.1f} p999_us={:.1f} max_us={:.1f} mean_us={:.1f}{}\n",
             o.target.host, o.target.port, o.payload, o.rate, secs, total, v.size(),
             static_cast<double>(percentileNs(v, 0.50)) / 1e3, static_cast<double>(percentileNs(v, 0.90)) / 1e3,
             static_cast<double>(percentileNs(v, 0.99)) / 1e3, static_cast<double>(percentileNs(v, 0.999)) / 1e3,
             v.empty() ? 0.0 : static_cast<double>(v.back()) / 1e3,
             v.empty() ? 0.0 : static_cast<double>(std::accumulate(v.begin(), v.end(), int64_t{0})) / 1e3 /
                                   static_cast<double>(v.size()),
             cpu);
  return static_cast<int64_t>(v.size()) == total ? 0 : 2;
}

int maxRate(const MaxRateOptions& o) {
  if (o.payload < 16) throw std::runtime_error("--payload must be at least 16 bytes");
  PubSubPair pair(o.target);
  Receiver r;
  pair.startSubscriber(r, false);
  int64_t pub_start = 0, sent = 0;
  std::exception_ptr pub_error;
  DeviceConnection pub(pair.pub_io.get_executor(), *pair.ctx);
  asio::co_spawn(
      pair.pub_io,
      [&]() -> asio::awaitable<void> {
        co_await pub.open(o.target, pair.pub_name);
        std::string payload(o.payload, 'x');
        std::string batch;
        pub_start = nowNs();
        const int64_t end = pub_start + static_cast<int64_t>(o.duration_s * 1e9);
        while (nowNs() < end) {
          batch.clear();
          for (int i = 0; i < o.batch; ++i, ++sent) {
            stampPayload(payload, nowNs(), sent);
            appendPublish(batch, pair.topic, payload);
          }
          co_await pub.write(batch);
        }
      },
      [&](std::exception_ptr e) { pub_error = e; });
  pair.pub_io.run();
  if (pub_error) std::rethrow_exception(pub_error);
  int64_t last_progress = nowNs(), seen = r.received.load();
  while (r.received.load() < sent && nowNs() - last_progress < 1'000'000'000) {
    std::this_thread::sleep_for(5ms);
    if (r.received.load() != seen) {
      seen = r.received.load();
      last_progress = nowNs();
    }
  }
  pair.stopSubscriber();
  pub.closeNow();
  const int64_t received = r.received.load();
  const double secs = received > 0 ? static_cast<double>(r.last_ns.load() - pub_start) / 1e9 : 0.0;
  fmt::print("RESULT max-rate target={}:{} payload={} duration_s={:.2f} sent={} received={} rate={:.0f}\n",
             o.target.host, o.target.port, o.payload, secs, sent, received,
             secs > 0 ? static_cast<double>(received) / secs : 0.0);
  return received > 0 ? 0 : 2;
}

// openMany opens sessions for |names| with at most |concurrency| handshakes
// in flight; |on_open| runs on the io thread for each session that reached
// CONNACK, |on_fail| for each failure. Returns when all attempts finished.
struct ManySessions {
  std::vector<std::unique_ptr<DeviceConnection>> conns;
  std::vector<int64_t> closed_ns;  // 0 while open
  int ok = 0, failed = 0;
  std::string first_error;
};

void openMany(asio::io_context& io, ssl::context& ctx, const TargetOptions& target,
              const std::vector<std::string>& names, int concurrency, ManySessions& m, int filters = 0) {
  m.conns.resize(names.size());
  m.closed_ns.assign(names.size(), 0);
  size_t next = 0;
  for (int w = 0; w < concurrency; ++w) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          while (next < names.size()) {
            size_t i = next++;
            m.conns[i] = std::make_unique<DeviceConnection>(io.get_executor(), ctx);
            try {
              co_await m.conns[i]->open(target, names[i]);
              for (int f = 0; f < filters; ++f) {
                const std::string filter = fmt::format("bench/{}/f{}", names[i], f);
                co_await m.conns[i]->subscribe(filter);
              }
              ++m.ok;
              asio::co_spawn(
                  io,
                  [&m, i]() -> asio::awaitable<void> {
                    int64_t t = co_await m.conns[i]->waitClosed();
                    __atomic_store_n(&m.closed_ns[i], t, __ATOMIC_RELEASE);
                  },
                  asio::detached);
            } catch (const std::exception& e) {
              if (m.first_error.empty()) m.first_error = fmt::format("{}: {}", names[i], e.what());
              ++m.failed;
              m.conns[i]->closeNow();
            }
          }
        },
        asio::detached);
  }
  // Run until every attempt has finished; watchers keep the context busy,
  // so poll instead of run().
  while (m.ok + m.failed < static_cast<int>(names.size())) io.run_one_for(100ms);
}

int idle(const IdleOptions& o) {
  auto names = readDeviceNames(o.target.certs);
  if (static_cast<int>(names.size()) < o.count) {
    throw std::runtime_error(fmt::format("only {} devices in {}, asked for {}", names.size(), o.target.certs, o.count));
  }
  names.resize(o.count);
  auto ctx = makeClientContext(o.target.ca);
  asio::io_context io;
  ManySessions m;
  const int64_t t0 = nowNs();
  openMany(io, *ctx, o.target, names, o.concurrency, m, o.filters);
  const double secs = static_cast<double>(nowNs() - t0) / 1e9;
  fmt::print("READY ok={} failed={} open_s={:.1f}{}\n", m.ok, m.failed, secs,
             m.first_error.empty() ? "" : " first_error=\"" + m.first_error + "\"");
  std::fflush(stdout);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  bool stop = false;
  signals.async_wait([&](const boost::system::error_code&, int) { stop = true; });
  const int64_t hold_end = nowNs() + static_cast<int64_t>(o.hold_max_s * 1e9);
  while (!stop && nowNs() < hold_end) io.run_one_for(200ms);
  int closed_early = 0;
  for (size_t i = 0; i < m.conns.size(); ++i) closed_early += m.closed_ns[i] != 0 ? 1 : 0;
  for (auto& c : m.conns) {
    if (c) c->closeNow();
  }
  fmt::print("RESULT idle count={} ok={} failed={} closed_by_server={} open_s={:.1f}\n", o.count, m.ok, m.failed,
             closed_early, secs);
  return m.failed == 0 ? 0 : 2;
}

// waitClosedNs waits up to 5 s for session |i| of |m| to see its close
// (the watcher thread records it) and returns when, or 0 if it did not.
int64_t waitClosedNs(const ManySessions& m, size_t i) {
  const int64_t deadline = nowNs() + 5'000'000'000;
  while (__atomic_load_n(&m.closed_ns[i], __ATOMIC_ACQUIRE) == 0 && nowNs() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return __atomic_load_n(&m.closed_ns[i], __ATOMIC_ACQUIRE);
}

// httpsPost sends one POST of |body| (JSON) over a fresh mutual-TLS
// connection (the client certificate is |ctx|'s or |cert|/|key|) and returns
// {status code, ns when the request was written, ns when the first response
// bytes arrived, response body}. The handshake happens before the clock
// starts: the figure is request -> effect, not TLS setup.
struct PostTiming {
  int status = 0;
  int64_t sent_ns = 0, response_ns = 0;
  std::string body;
};

PostTiming httpsPost(asio::io_context& io, ssl::context& ctx, const std::string& host, uint16_t port,
                     const std::string& path, const std::string& body = "{}", const std::string& cert = "",
                     const std::string& key = "") {
  ssl::stream<tcp::socket> s(io, ctx);
  if (!cert.empty() && (SSL_use_certificate_chain_file(s.native_handle(), cert.c_str()) != 1 ||
                        SSL_use_PrivateKey_file(s.native_handle(), key.c_str(), SSL_FILETYPE_PEM) != 1)) {
    throw std::runtime_error("cannot load " + cert + " / " + key);
  }
  s.next_layer().connect(tcp::endpoint(asio::ip::make_address(host), port));
  s.next_layer().set_option(tcp::no_delay(true));
  s.handshake(ssl::stream_base::client);
  std::string req = fmt::format(
      "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      path, host, port, body.size(), body);
  PostTiming t;
  t.sent_ns = nowNs();
  asio::write(s, asio::buffer(req));
  std::string resp;
  std::array<char, 4096> buf{};
  boost::system::error_code ec;
  while (!ec) {
    size_t n = s.read_some(asio::buffer(buf), ec);
    if (n > 0 && t.response_ns == 0) t.response_ns = nowNs();
    resp.append(buf.data(), n);
  }
  if (resp.size() > 12 && resp.compare(0, 5, "HTTP/") == 0) t.status = std::atoi(resp.c_str() + 9);
  if (size_t end = resp.find("\r\n\r\n"); end != std::string::npos) t.body = resp.substr(end + 4);
  s.next_layer().close(ec);
  return t;
}

int revoke(const RevokeOptions& o) {
  auto names = readDeviceNames(o.target.certs);
  if (static_cast<int>(names.size()) < o.count) {
    throw std::runtime_error(fmt::format("only {} devices in {}, asked for {}", names.size(), o.target.certs, o.count));
  }
  names.resize(o.count);
  auto ctx = makeClientContext(o.target.ca);
  asio::io_context io;
  ManySessions m;
  openMany(io, *ctx, o.target, names, 16, m);
  if (m.failed > 0) throw std::runtime_error(fmt::format("{} sessions failed to open: {}", m.failed, m.first_error));
  // Session watchers run on their own thread from here on.
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  ssl::context admin(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(admin.native_handle(), TLS1_2_VERSION);
  admin.set_verify_mode(ssl::verify_peer);
  admin.load_verify_file(o.admin_ca);
  admin.use_certificate_chain_file(o.admin_cert);
  admin.use_private_key_file(o.admin_key, ssl::context::pem);
  asio::io_context api_io;

  std::vector<int64_t> to_close, to_response;
  int bad_status = 0, not_closed = 0, closed_before_revoke = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (m.closed_ns[i] != 0) {
      ++closed_before_revoke;
      continue;
    }
    PostTiming t;
    try {
      t = httpsPost(api_io, admin, o.api_host, o.api_port, "/v1/devices/" + names[i] + "/revoke");
    } catch (const std::exception& e) {
      fmt::print(stderr, "revoke {}: API request failed: {}\n", names[i], e.what());
    }
    if (t.status != 200) {
      ++bad_status;
      fmt::print(stderr, "revoke {}: HTTP status {} (0 = no answer)\n", names[i], t.status);
      if (t.status == 0) break;  // the API is gone: the rest would measure nothing
      continue;
    }
    to_response.push_back(t.response_ns - t.sent_ns);
    const int64_t closed = waitClosedNs(m, i);
    if (closed == 0) {
      ++not_closed;
      continue;
    }
    to_close.push_back(closed - t.sent_ns);
  }
  work.reset();
  asio::post(io, [&] {
    for (auto& c : m.conns) c->closeNow();
  });
  io_thread.join();

  std::sort(to_close.begin(), to_close.end());
  std::sort(to_response.begin(), to_response.end());
  fmt::print("RESULT revoke count={} closed={} not_closed={} closed_before={} bad_status={} close_p50_ms={:.2f} "
             "close_p99_ms={:.2f} close_max_ms={:.2f} response_p50_ms={:.2f} response_p99_ms={:.2f}\n",
             o.count, to_close.size(), not_closed, closed_before_revoke, bad_status,
             static_cast<double>(percentileNs(to_close, 0.5)) / 1e6, static_cast<double>(percentileNs(to_close, 0.99)) / 1e6,
             to_close.empty() ? 0.0 : static_cast<double>(to_close.back()) / 1e6,
             static_cast<double>(percentileNs(to_response, 0.5)) / 1e6,
             static_cast<double>(percentileNs(to_response, 0.99)) / 1e6);
  return not_closed == 0 && bad_status == 0 ? 0 : 2;
}

// signedLogEvidence is a signed-log evidence body for |spiffe_id| and
// |nonce| with an empty log, signed by the key in |key_file|.
std::string signedLogEvidence(const std::string& nonce, const std::string& spiffe_id, const std::string& key_file) {
  std::ifstream in(key_file);
  std::stringstream pem;
  pem << in.rdbuf();
  auto key = crypto::privateKeyFromPem(pem.str());
  if (!key.isOk()) throw std::runtime_error(key.status().toString());
  const std::string payload = nlohmann::json{{"nonce", nonce}, {"spiffe_id", spiffe_id},
                                             {"boot_id", crypto::hexEncode(crypto::randomBytes(16))},
                                             {"log", nlohmann::json::array()}}
                                  .dump();
  crypto::EvpMdCtxPtr md(EVP_MD_CTX_new());
  size_t n = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(payload.data());
  if (EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key->get()) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &n, data, payload.size()) != 1) {
    throw std::runtime_error("cannot sign with " + key_file);
  }
  std::string sig(n, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &n, data, payload.size()) != 1) {
    throw std::runtime_error("cannot sign with " + key_file);
  }
  sig.resize(n);
  return nlohmann::json{{"nonce", nonce}, {"kind", "signed-log"}, {"payload", crypto::base64Encode(payload)},
                        {"signature", crypto::base64Encode(sig)}}
      .dump();
}

int attestCutoff(const AttestCutoffOptions& o) {
  auto names = readDeviceNames(o.target.certs);
  if (static_cast<int>(names.size()) < o.count + 1) {
    throw std::runtime_error(fmt::format("need {} devices in {} (one more signs the forgeries), have {}", o.count + 1,
                                         o.target.certs, names.size()));
  }
  const std::string forger_key = o.target.certs + "/" + names[o.count] + ".key";
  names.resize(o.count);
  auto ctx = makeClientContext(o.target.ca);
  asio::io_context io;
  ManySessions m;
  openMany(io, *ctx, o.target, names, 16, m);
  if (m.failed > 0) throw std::runtime_error(fmt::format("{} sessions failed to open: {}", m.failed, m.first_error));
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  auto api_ctx = makeClientContext(o.target.ca);
  asio::io_context api_io;
  std::vector<int64_t> to_close, to_response;
  int bad_status = 0, not_closed = 0, not_failed = 0, closed_before = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (m.closed_ns[i] != 0) {
      ++closed_before;
      continue;
    }
    const std::string crt = o.target.certs + "/" + names[i] + ".crt", key = o.target.certs + "/" + names[i] + ".key";
    PostTiming ch = httpsPost(api_io, *api_ctx, o.api_host, o.api_port, "/attest/v1/challenge", "{}", crt, key);
    if (ch.status != 200) {
      ++bad_status;
      fmt::print(stderr, "challenge {}: HTTP {} {}\n", names[i], ch.status, ch.body.substr(0, 200));
      if (ch.status == 0) break;
      continue;
    }
    const std::string nonce = nlohmann::json::parse(ch.body).at("nonce").get<std::string>();
    const std::string spiffe = fmt::format("spiffe://{}/device/{}", o.trust_domain, names[i]);
    // Tampered evidence: this device's payload, signed by another device's key.
    const std::string evidence = signedLogEvidence(nonce, spiffe, forger_key);
    PostTiming t = httpsPost(api_io, *api_ctx, o.api_host, o.api_port, "/attest/v1/evidence", evidence, crt, key);
    if (t.status != 200) {
      ++bad_status;
      fmt::print(stderr, "evidence {}: HTTP {} {}\n", names[i], t.status, t.body.substr(0, 200));
      continue;
    }
    if (nlohmann::json::parse(t.body).value("result", "") != "failed") ++not_failed;
    to_response.push_back(t.response_ns - t.sent_ns);
    const int64_t closed = waitClosedNs(m, i);
    if (closed == 0) {
      ++not_closed;
      continue;
    }
    to_close.push_back(closed - t.sent_ns);
  }
  work.reset();
  asio::post(io, [&] {
    for (auto& c : m.conns) c->closeNow();
  });
  io_thread.join();
  std::sort(to_close.begin(), to_close.end());
  std::sort(to_response.begin(), to_response.end());
  fmt::print("RESULT attest-cutoff count={} cut={} not_cut={} not_failed={} closed_before={} bad_status={} "
             "cut_p50_ms={:.2f} cut_p99_ms={:.2f} cut_max_ms={:.2f} response_p50_ms={:.2f} response_p99_ms={:.2f}\n",
             o.count, to_close.size(), not_closed, not_failed, closed_before, bad_status,
             static_cast<double>(percentileNs(to_close, 0.5)) / 1e6, static_cast<double>(percentileNs(to_close, 0.99)) / 1e6,
             to_close.empty() ? 0.0 : static_cast<double>(to_close.back()) / 1e6,
             static_cast<double>(percentileNs(to_response, 0.5)) / 1e6,
             static_cast<double>(percentileNs(to_response, 0.99)) / 1e6);
  return not_closed == 0 && bad_status == 0 && not_failed == 0 ? 0 : 2;
}

template <typename F>
int guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    fmt::print(stderr, "warden-load {}: {}\n", what, e.what());
    return 1;
  }
}

}  // namespace

int runLatency(const LatencyOptions& o) { return guarded("latency", [&] { return latency(o); }); }
int runMaxRate(const MaxRateOptions& o) { return guarded("max-rate", [&] { return maxRate(o); }); }
int runIdle(const IdleOptions& o) { return guarded("idle", [&] { return idle(o); }); }
int runRevoke(const RevokeOptions& o) { return guarded("revoke", [&] { return revoke(o); }); }
int runAttestCutoff(const AttestCutoffOptions& o) { return guarded("attest-cutoff", [&] { return attestCutoff(o); }); }

}  // namespace warden::bench
