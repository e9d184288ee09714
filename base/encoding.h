// Fixed-width integer encoding for on-media and metadata-store records.
//
// Big-endian so that encoded keys sort in numeric order inside RocksDB;
// values use the same helpers for one convention everywhere.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace nosyncfs {

inline void PutFixed64(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  dst->append(buf, 8);
}

inline void PutFixed32(std::string* dst, uint32_t v) {
  char buf[4];
  for (int i = 3; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  dst->append(buf, 4);
}

inline uint64_t DecodeFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

inline uint32_t DecodeFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Sequential reader over an encoded value. Every Get* returns false (and
// leaves the output untouched) once the input is exhausted, so decoders can
// reject truncated records instead of reading past them.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}

  bool GetFixed64(uint64_t* v) {
    if (in_.size() < 8) return false;
    *v = DecodeFixed64(in_.data());
    in_.remove_prefix(8);
    return true;
  }
  bool GetFixed32(uint32_t* v) {
    if (in_.size() < 4) return false;
    *v = DecodeFixed32(in_.data());
    in_.remove_prefix(4);
    return true;
  }
  bool GetRaw(void* out, size_t n) {
    if (in_.size() < n) return false;
    std::memcpy(out, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  // A length-prefixed (fixed32) byte string.
  bool GetBytes(std::string* v) {
    uint32_t n;
    if (!GetFixed32(&n) || in_.size() < n) return false;
    v->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }
  std::string_view rest() const { return in_; }

 private:
  std::string_view in_;
};

inline void PutBytes(std::string* dst, std::string_view v) {
  PutFixed32(dst, static_cast<uint32_t>(v.size()));
  dst->append(v.data(), v.size());
}

}  // namespace nosyncfs
