// The data the direct-access test client writes, so that the test can
// recognise it: a record tells its number and each byte's place in it, and
// a marked word is never zero (a hole or a fresh block reads as zeros).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace nosyncfs::test {

// Word `word` of a block written as the client's `write`-th write.
inline uint64_t Marked(uint64_t write, uint64_t word) {
  return 0x8000000000000000ull | (write << 16) | (word & 0xffff);
}

// Record `index`, `size` bytes (a multiple of 8): words of Marked(index, w).
inline std::string Record(uint64_t index, uint64_t size) {
  std::string out(size, '\0');
  for (uint64_t w = 0; w * 8 < size; ++w) {
    uint64_t v = Marked(index, w);
    std::memcpy(out.data() + w * 8, &v, sizeof(v));
  }
  return out;
}

}  // namespace nosyncfs::test
