// BlockCounts: per data block, how many extents map it and the reference
// count its record gives, for the checker and fsck's repair of the counts.
// Internal to journal/.
#pragma once

#include <cstdint>
#include <map>

namespace nosyncfs {

// Kept as deltas at run boundaries, so adding a run costs two map updates
// however long it is.
//
// Thread-safety: none.
class BlockCounts {
 public:
  struct Count {
    int64_t mapped = 0;    // extents mapping the block
    int64_t recorded = 0;  // its reference count record's count (0: none)
  };
  void Add(uint64_t start, uint64_t len, int64_t Count::*field, int64_t n) {
    deltas_[start].*field += n;
    deltas_[start + len].*field -= n;
  }
  // Run boundaries so far (an upper bound of the runs ForEach visits).
  uint64_t boundaries() const { return deltas_.size(); }
  // Calls fn(start, end, count) for each maximal run of blocks in use
  // (mapped or recorded) whose counts agree, in order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    Count c;
    uint64_t run_start = 0;
    Count run;
    bool open = false;
    for (const auto& [block, d] : deltas_) {
      Count next{c.mapped + d.mapped, c.recorded + d.recorded};
      if (open && (next.mapped != run.mapped || next.recorded != run.recorded)) {
        fn(run_start, block, run);
        open = false;
      }
      c = next;
      if (!open && (c.mapped != 0 || c.recorded != 0)) {
        run_start = block;
        run = c;
        open = true;
      }
    }
  }

 private:
  std::map<uint64_t, Count> deltas_;
};

}  // namespace nosyncfs
