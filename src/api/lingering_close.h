#pragma once

// lingering_close.h: what an HTTP listener does after refusing a request
// whose body is still arriving (413). Closing with the client's bytes unread
// makes the kernel answer with a reset, and a client that is still writing
// then loses the 413. So the connection first reads and discards what the
// client sends, at most kMaxDrainBytes or for kDrainTime ("lingering close",
// as web servers do). Includes Asio: only for the listeners' .cc files.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/stream_traits.hpp>

namespace warden::api {

inline constexpr uint64_t kMaxDrainBytes = 8 * 1024 * 1024;
inline constexpr std::chrono::seconds kDrainTime{2};

// drainRequest reads and discards up to |at_most| bytes (capped at
// kMaxDrainBytes) from |stream|, for at most kDrainTime; it stops at the
// first error or end of stream. |Stream|'s lowest layer is a beast::tcp_stream.
template <typename Stream>
boost::asio::awaitable<void> drainRequest(Stream& stream, uint64_t at_most) {
  boost::beast::get_lowest_layer(stream).expires_after(kDrainTime);
  std::vector<char> scratch(16 * 1024);
  uint64_t left = std::min(at_most, kMaxDrainBytes);
  while (left > 0) {
    auto [ec, n] = co_await stream.async_read_some(boost::asio::buffer(scratch),
                                                   boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec) break;
    left -= std::min<uint64_t>(left, n);
  }
}

}  // namespace warden::api
