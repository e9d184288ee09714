#include "extent/extent_map.h"

#include <algorithm>
#include <cassert>

namespace nosyncfs {

void ExtentMap::Load(const Extent& e) {
  // What the store holds already: no change for TakeNfBlocksDelta.
  const uint64_t before = nf_blocks_;
  auto [it, inserted] = map_.try_emplace(e.lblk, e);
  if (!inserted) {
    CountNf(it->second.flags, it->second.len, -1);
    it->second = e;
  }
  CountNf(e.flags, e.len, +1);
  nf_blocks_taken_ += nf_blocks_ - before;
}

void ExtentMap::Put(const Extent& e) {
  auto [it, inserted] = map_.try_emplace(e.lblk, e);
  if (!inserted) {
    CountNf(it->second.flags, it->second.len, -1);
    it->second = e;
  }
  CountNf(e.flags, e.len, +1);
  Touch(e.lblk);
}

void ExtentMap::Erase(std::map<uint64_t, Extent>::iterator it) {
  Touch(it->first);
  CountNf(it->second.flags, it->second.len, -1);
  map_.erase(it);
}

ExtentMap::Segment ExtentMap::Find(uint64_t lblk, uint64_t max_len) const {
  Segment seg;
  auto it = map_.upper_bound(lblk);
  if (it != map_.begin()) {
    const Extent& e = std::prev(it)->second;
    if (e.lend() > lblk) {
      seg.mapped = true;
      seg.pblk = e.pblk + (lblk - e.lblk);
      seg.flags = e.flags;
      seg.len = std::min(max_len, e.lend() - lblk);
      return seg;
    }
  }
  uint64_t hole_end = it == map_.end() ? UINT64_MAX : it->first;
  seg.len = std::min(max_len, hole_end - lblk);
  return seg;
}

void ExtentMap::SplitAt(uint64_t lblk) {
  auto it = map_.upper_bound(lblk);
  if (it == map_.begin()) return;
  --it;
  Extent e = it->second;
  if (e.lblk == lblk || e.lend() <= lblk) return;
  Extent left = e, right = e;
  left.len = lblk - e.lblk;
  right.lblk = lblk;
  right.pblk = e.pblk + left.len;
  right.len = e.len - left.len;
  Put(left);
  Put(right);
}

void ExtentMap::MergeAround(uint64_t key) {
  auto it = map_.find(key);
  if (it == map_.end()) return;
  // Merge with the following extent.
  auto next = std::next(it);
  if (next != map_.end()) {
    Extent& e = it->second;
    const Extent& n = next->second;
    if (e.lend() == n.lblk && e.pblk + e.len == n.pblk && e.flags == n.flags) {
      e.len += n.len;
      CountNf(e.flags, n.len, +1);  // Erase(next) takes them out again
      Touch(e.lblk);
      Erase(next);
    }
  }
  // Merge into the preceding extent.
  if (it != map_.begin()) {
    auto prev = std::prev(it);
    Extent& p = prev->second;
    const Extent& e = it->second;
    if (p.lend() == e.lblk && p.pblk + p.len == e.pblk && p.flags == e.flags) {
      p.len += e.len;
      CountNf(p.flags, e.len, +1);  // Erase(it) takes them out again
      Touch(p.lblk);
      Erase(it);
    }
  }
}

void ExtentMap::Map(uint64_t lblk, uint64_t len, uint64_t pblk, uint32_t flags) {
  if (len == 0) return;
  assert(Holes(lblk, len).size() == 1 && Holes(lblk, len)[0].second == len);
  Put({lblk, len, pblk, flags});
  MergeAround(lblk);
}

std::vector<BlockRun> ExtentMap::Unmap(uint64_t lblk, uint64_t len) {
  std::vector<BlockRun> freed;
  if (len == 0) return freed;
  uint64_t end = lblk + len;
  SplitAt(lblk);
  SplitAt(end);
  auto it = map_.lower_bound(lblk);
  while (it != map_.end() && it->first < end) {
    freed.push_back({it->second.pblk, it->second.len});
    auto victim = it++;
    Erase(victim);
  }
  return freed;
}

void ExtentMap::Shift(uint64_t from, uint64_t by, bool up) {
  if (by == 0) return;
  SplitAt(from);
  std::vector<Extent> moving;
  for (auto it = map_.lower_bound(from); it != map_.end();) {
    moving.push_back(it->second);
    auto victim = it++;
    Erase(victim);
  }
  for (Extent e : moving) {
    e.lblk = up ? e.lblk + by : e.lblk - by;
    Put(e);
  }
  if (!moving.empty()) MergeAround(up ? from + by : from - by);
}

void ExtentMap::SetFlags(uint64_t lblk, uint64_t len, uint32_t mask, uint32_t value) {
  if (len == 0) return;
  uint64_t end = lblk + len;
  SplitAt(lblk);
  SplitAt(end);
  std::vector<uint64_t> keys;
  for (auto it = map_.lower_bound(lblk); it != map_.end() && it->first < end; ++it) {
    uint32_t flags = (it->second.flags & ~mask) | (value & mask);
    if (flags != it->second.flags) {
      CountNf(it->second.flags, it->second.len, -1);
      CountNf(flags, it->second.len, +1);
      it->second.flags = flags;
      Touch(it->first);
    }
    keys.push_back(it->first);
  }
  // Re-merge everything in the range and the extents just outside it.
  auto before = map_.lower_bound(lblk);
  if (before != map_.begin()) keys.push_back(std::prev(before)->first);
  for (uint64_t k : keys) MergeAround(k);
  // SplitAt pieces outside [lblk, end) that found no change merge back too.
  MergeAround(end);
}

std::vector<std::pair<uint64_t, uint64_t>> ExtentMap::Holes(uint64_t lblk, uint64_t len) const {
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  uint64_t pos = lblk, end = lblk + len;
  while (pos < end) {
    Segment s = Find(pos, end - pos);
    if (!s.mapped) holes.emplace_back(pos, s.len);
    pos += s.len;
  }
  return holes;
}

bool ExtentMap::AllHave(uint64_t lblk, uint64_t len, uint32_t flags) const {
  uint64_t pos = lblk, end = lblk + len;
  while (pos < end) {
    Segment s = Find(pos, end - pos);
    if (!s.mapped || (s.flags & flags) != flags) return false;
    pos += s.len;
  }
  return true;
}

uint64_t ExtentMap::mapped_blocks() const {
  uint64_t n = 0;
  for (const auto& [k, e] : map_) n += e.len;
  return n;
}

std::vector<std::pair<uint64_t, std::optional<Extent>>> ExtentMap::TakeChanges() {
  std::vector<std::pair<uint64_t, std::optional<Extent>>> out;
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  for (uint64_t key : touched_) {
    auto it = map_.find(key);
    if (it == map_.end()) {
      out.emplace_back(key, std::nullopt);
    } else {
      out.emplace_back(key, it->second);
    }
  }
  touched_.clear();
  touched_.shrink_to_fit();
  return out;
}

int64_t ExtentMap::TakeNfBlocksDelta() {
  int64_t delta = static_cast<int64_t>(nf_blocks_) - static_cast<int64_t>(nf_blocks_taken_);
  nf_blocks_taken_ = nf_blocks_;
  return delta;
}

}  // namespace nosyncfs
