// Helpers shared by the Vfs's source files (vfs*.cc); not part of its API.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "base/status.h"
#include "extent/block_run.h"
#include "extent/extent_map.h"
#include "journal/schema.h"
#include "journal/superblock.h"

namespace nosyncfs::vfs_internal {

inline constexpr uint64_t kMaxFileSize = static_cast<uint64_t>(INT64_MAX);

inline Timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return {ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

inline Timespec FromTimespec(const struct timespec& ts) {
  return {ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

inline struct timespec ToTimespec(const Timespec& t) {
  struct timespec ts;
  ts.tv_sec = t.sec;
  ts.tv_nsec = t.nsec;
  return ts;
}

// A piece of a byte range that is uniformly mapped (at device offset `dev`,
// with `flags`) or a hole.
struct ByteRun {
  uint64_t pos, end;
  bool mapped;
  uint32_t flags;
  uint64_t dev;
};

// Calls fn(run) for the runs covering [off, end) in order; stops at the
// first error fn returns.
template <typename Fn>
Status ForEachByteRun(const ExtentMap& map, const Superblock& sb, uint64_t off, uint64_t end,
                      Fn&& fn) {
  const uint64_t bs = sb.block_size;
  for (uint64_t pos = off; pos < end;) {
    uint64_t lblk = pos / bs;
    ExtentMap::Segment seg = map.Find(lblk, (end - 1) / bs - lblk + 1);
    uint64_t run_end = std::min(end, (lblk + seg.len) * bs);
    uint64_t dev = seg.mapped ? sb.BlockOffset(seg.pblk) + pos % bs : 0;
    NSF_RETURN_IF_ERROR(fn(ByteRun{pos, run_end, seg.mapped, seg.flags, dev}));
    pos = run_end;
  }
  return Status::Ok();
}

// A run of logical blocks and the new device blocks that will hold it.
struct PlacedRun {
  uint64_t lblk, count, pblk;
};

// Pairs logical ranges (first block, count) with freshly allocated device
// runs of the same total length, in order.
inline std::vector<PlacedRun> PlaceRuns(const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                                        const std::vector<BlockRun>& runs) {
  std::vector<PlacedRun> out;
  size_t ri = 0;
  uint64_t used_in_run = 0;
  for (auto [lblk, len] : ranges) {
    while (len > 0) {
      const BlockRun& run = runs[ri];
      uint64_t take = std::min(len, run.len - used_in_run);
      out.push_back({lblk, take, run.start + used_in_run});
      lblk += take;
      len -= take;
      used_in_run += take;
      if (used_in_run == run.len) {
        ++ri;
        used_in_run = 0;
      }
    }
  }
  return out;
}

}  // namespace nosyncfs::vfs_internal
