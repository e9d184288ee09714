// Helpers shared by the Vfs's source files (vfs*.cc); not part of its API.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>

#include "base/status.h"
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

}  // namespace nosyncfs::vfs_internal
