#pragma once

// load_client.h: an MQTT 3.1.1 device connection over mutual TLS for
// warden-load (Boost.Asio coroutines). Errors are thrown as
// boost::system::system_error / std::runtime_error and caught by the
// scenario that started the coroutine; they never leave the tool.

#include <openssl/ssl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <fmt/core.h>
#include <boost/asio/ssl.hpp>

#include "bench/load/load_scenarios.h"
#include "bench/load/mqtt_wire.h"

namespace warden::bench {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

inline int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// percentileNs returns the |q| quantile (nearest rank) of sorted |v|.
inline int64_t percentileNs(const std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// cpuTicks returns utime + stime of |pid| from /proc/PID/stat, in clock ticks.
inline int64_t cpuTicks(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = all.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream rest(all.substr(paren + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  // Fields after the command: 3 state ... 14 utime, 15 stime (proc(5)).
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return utime + stime;
}

// MachineTicks is the whole machine's CPU time from /proc/stat's "cpu" line
// (all CPUs, clock ticks): busy (user, nice, system, irq, softirq, steal)
// and total (busy plus idle and iowait).
struct MachineTicks {
  int64_t busy = 0, total = 0;
};
inline MachineTicks machineTicks() {
  std::ifstream in("/proc/stat");
  std::string label;
  int64_t v[8] = {};
  in >> label;
  for (int64_t& x : v) in >> x;
  MachineTicks t;
  if (label != "cpu") return t;
  // user nice system idle iowait irq softirq steal
  t.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  t.total = t.busy + v[3] + v[4];
  return t;
}

// CpuMeter reads the CPU time of |pids| when made; fields() returns what
// they used since, as the RESULT lines' " cpu_s_PID=S" fields.
class CpuMeter {
 public:
  explicit CpuMeter(std::vector<int> pids) : pids_(std::move(pids)) {
    for (int pid : pids_) before_.push_back(cpuTicks(pid));
  }
  std::string fields() const {
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    std::string out;
    for (size_t k = 0; k < pids_.size(); ++k) {
      out += fmt::format(" cpu_s_{}={:.2f}", pids_[k], static_cast<double>(cpuTicks(pids_[k]) - before_[k]) / tick);
    }
    return out;
  }

 private:
  std::vector<int> pids_;
  std::vector<int64_t> before_;
};

// StatusSummary counts the non-200 answers of a run and lists them as
// "20x401,1x429" ("none" when there were none).
struct StatusSummary {
  int refused = 0;
  std::string text = "none";
};
inline StatusSummary summarizeStatuses(const std::map<unsigned, int>& by_status) {
  StatusSummary out;
  std::string text;
  for (const auto& [status, n] : by_status) {
    out.refused += n;
    text += fmt::format("{}{}x{}", text.empty() ? "" : ",", n, status);
  }
  if (!text.empty()) out.text = std::move(text);
  return out;
}

// readDeviceNames returns the names listed in CERTS/devices.txt.
inline std::vector<std::string> readDeviceNames(const std::string& certs_dir) {
  std::ifstream in(certs_dir + "/devices.txt");
  if (!in) throw std::runtime_error("cannot read " + certs_dir + "/devices.txt (run warden-load provision first)");
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

// makeClientContext returns a TLS 1.2+ client context that verifies the
// server chain against |ca_file| (chain only: the target is a loopback
// address given by the operator).
inline std::unique_ptr<ssl::context> makeClientContext(const std::string& ca_file) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  ctx->set_verify_mode(ssl::verify_peer);
  ctx->load_verify_file(ca_file);
  return ctx;
}

// DeviceConnection is one device's MQTT session.
class DeviceConnection {
 public:
  DeviceConnection(asio::any_io_executor ex, ssl::context& ctx) : stream_(ex, ctx) {}

  // open connects to |target| as device |name| (certificate from the certs
  // directory), sends CONNECT and waits for a CONNACK with return code 0.
  asio::awaitable<void> open(const TargetOptions& target, const std::string& name, uint16_t keep_alive = 300) {
    SSL* ssl = stream_.native_handle();
    const std::string crt = target.certs + "/" + name + ".crt", key = target.certs + "/" + name + ".key";
    if (SSL_use_certificate_chain_file(ssl, crt.c_str()) != 1 ||
        SSL_use_PrivateKey_file(ssl, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw std::runtime_error("cannot load certificate/key of " + name + " from " + target.certs);
    }
    tcp::endpoint ep(asio::ip::make_address(target.host), target.port);
    co_await stream_.next_layer().async_connect(ep, asio::use_awaitable);
    stream_.next_layer().set_option(tcp::no_delay(true));
    co_await stream_.async_handshake(ssl::stream_base::client, asio::use_awaitable);
    co_await write(encodeConnect(name, keep_alive));
    Frame f = co_await readFrame();
    if (f.first_byte != kConnack || f.body.size() != 2 || f.body[1] != 0) {
      throw std::runtime_error(name + ": CONNACK refused (return code " +
                               std::to_string(f.body.size() == 2 ? static_cast<int>(f.body[1]) : -1) + ")");
    }
  }

  asio::awaitable<void> subscribe(const std::string& filter) {
    co_await write(encodeSubscribe(1, filter));
    for (;;) {
      Frame f = co_await readFrame();
      if ((f.first_byte & 0xf0) != kSuback) continue;
      if (f.body.size() < 3 || static_cast<uint8_t>(f.body[2]) >= 0x80) {
        throw std::runtime_error("SUBSCRIBE " + filter + " refused");
      }
      co_return;
    }
  }

  asio::awaitable<void> write(const std::string& bytes) {
    co_await asio::async_write(stream_, asio::buffer(bytes), asio::use_awaitable);
  }

  // readFrame returns the next frame; it throws at end of stream.
  asio::awaitable<Frame> readFrame() {
    for (;;) {
      if (auto f = splitter_.next()) co_return *f;
      if (splitter_.broken()) throw std::runtime_error("malformed frame from server");
      size_t n = co_await stream_.async_read_some(asio::buffer(buf_), asio::use_awaitable);
      splitter_.append(buf_.data(), n);
    }
  }

  // waitClosed reads (and drops) everything until the stream ends, and
  // returns the steady time in ns at which it ended.
  asio::awaitable<int64_t> waitClosed() {
    boost::system::error_code ec;
    while (!ec) {
      co_await stream_.async_read_some(asio::buffer(buf_), asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return nowNs();
  }

  void closeNow() {
    boost::system::error_code ec;
    stream_.next_layer().close(ec);
  }

 private:
  ssl::stream<tcp::socket> stream_;
  FrameSplitter splitter_;
  std::array<char, 16384> buf_{};
};

}  // namespace warden::bench
