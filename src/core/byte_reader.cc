#include "core/byte_reader.h"

namespace warden::core {

bool ByteReader::readU8(uint8_t& out) {
  if (data_.size() < 1) return false;
  out = data_[0];
  data_ = data_.subspan(1);
  return true;
}

bool ByteReader::readU16(uint16_t& out) {
  if (data_.size() < 2) return false;
  out = static_cast<uint16_t>((data_[0] << 8) | data_[1]);
  data_ = data_.subspan(2);
  return true;
}

bool ByteReader::readU32(uint32_t& out) {
  if (data_.size() < 4) return false;
  out = (uint32_t{data_[0]} << 24) | (uint32_t{data_[1]} << 16) | (uint32_t{data_[2]} << 8) | uint32_t{data_[3]};
  data_ = data_.subspan(4);
  return true;
}

bool ByteReader::readBytes(size_t n, std::span<const uint8_t>& out) {
  if (data_.size() < n) return false;
  out = data_.first(n);
  data_ = data_.subspan(n);
  return true;
}

bool ByteReader::readSub(size_t n, ByteReader& out) {
  std::span<const uint8_t> bytes;
  if (!readBytes(n, bytes)) return false;
  out = ByteReader(bytes);
  return true;
}

bool ByteReader::skip(size_t n) {
  if (data_.size() < n) return false;
  data_ = data_.subspan(n);
  return true;
}

bool ByteReader::peekU8(uint8_t& out) const {
  if (data_.empty()) return false;
  out = data_[0];
  return true;
}

}  // namespace warden::core
