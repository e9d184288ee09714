#include "fs/dirty_ranges.h"

#include <algorithm>

namespace nosyncfs {

void DirtyRanges::Add(uint64_t start, uint64_t end) {
  if (end <= start) return;
  start &= ~(granule_ - 1);
  end = (end + granule_ - 1) & ~(granule_ - 1);
  // The first range that could touch [start, end): the one before start.
  auto it = ranges_.upper_bound(start);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= start) it = prev;
  }
  // Swallow every range that overlaps or touches.
  while (it != ranges_.end() && it->first <= end) {
    start = std::min(start, it->first);
    end = std::max(end, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(start, end);
}

void DirtyRanges::Truncate(uint64_t size) {
  for (auto it = ranges_.lower_bound(size); it != ranges_.end();) it = ranges_.erase(it);
  if (ranges_.empty()) return;
  auto last = std::prev(ranges_.end());
  last->second = std::min(last->second, size);
  if (last->second <= last->first) ranges_.erase(last);
}

}  // namespace nosyncfs
