#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace warden::core {

// ByteReader is the one bounds-checked cursor over untrusted bytes (in the
// spirit of BoringSSL's CBS). Every read checks the remaining length first
// and returns false, consuming nothing, when the input is too short. No other
// code does pointer arithmetic on wire data.
class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}
  ByteReader(const uint8_t* data, size_t size) : data_(data, size) {}

  size_t remaining() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  std::span<const uint8_t> rest() const { return data_; }

  bool readU8(uint8_t& out);
  bool readU16(uint16_t& out);  // big-endian (network order)
  bool readU32(uint32_t& out);  // big-endian
  // readBytes returns the next |n| bytes as a view into the input.
  bool readBytes(size_t n, std::span<const uint8_t>& out);
  // readSub splits the next |n| bytes off as their own reader.
  bool readSub(size_t n, ByteReader& out);
  bool skip(size_t n);
  // peekU8 returns the next byte without consuming it.
  bool peekU8(uint8_t& out) const;

 private:
  std::span<const uint8_t> data_;
};

// asStringView returns |bytes| as characters without copying.
inline std::string_view asStringView(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace warden::core
