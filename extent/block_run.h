// A run of consecutive device blocks, counted in blocks from the start of
// the data area.
#pragma once

#include <cstdint>

namespace nosyncfs {

struct BlockRun {
  uint64_t start = 0;
  uint64_t len = 0;
  uint64_t end() const { return start + len; }
  bool operator==(const BlockRun&) const = default;
};

}  // namespace nosyncfs
