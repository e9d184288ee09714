#include "extent/allocator.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace nosyncfs {

Allocator::Allocator(uint64_t total_blocks) : total_(total_blocks) {
  if (total_blocks > 0) InsertFree({0, total_blocks});
}

void Allocator::InsertFree(BlockRun run) {
  if (run.len == 0) return;
  free_count_ += run.len;
  auto next = free_.lower_bound(run.start);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    assert(prev->first + prev->second <= run.start);
    if (prev->first + prev->second == run.start) {
      run.start = prev->first;
      run.len += prev->second;
      free_.erase(prev);
    }
  }
  if (next != free_.end()) {
    assert(run.end() <= next->first);
    if (run.end() == next->first) {
      run.len += next->second;
      free_.erase(next);
    }
  }
  free_.emplace(run.start, run.len);
}

Status Allocator::MarkUsed(BlockRun run) {
  if (run.len == 0) return Status::Ok();
  if (run.end() > total_ || run.end() < run.start) {
    return Status::Error(EUCLEAN, "blocks " + std::to_string(run.start) + "+" +
                                      std::to_string(run.len) + " lie outside the data area");
  }
  auto it = free_.upper_bound(run.start);
  if (it == free_.begin()) {
    return Status::Error(EUCLEAN, "block " + std::to_string(run.start) + " is mapped twice");
  }
  --it;
  uint64_t fstart = it->first, flen = it->second;
  if (run.end() > fstart + flen) {
    uint64_t dup = std::max(run.start, fstart + flen);
    return Status::Error(EUCLEAN, "block " + std::to_string(dup) + " is mapped twice");
  }
  free_.erase(it);
  free_count_ -= flen;
  InsertFree({fstart, run.start - fstart});
  InsertFree({run.end(), fstart + flen - run.end()});
  return Status::Ok();
}

Result<std::vector<BlockRun>> Allocator::Allocate(uint64_t count, uint64_t goal) {
  if (count > free_count_) return Status::Error(ENOSPC, "no space left on device");
  std::vector<BlockRun> out;
  uint64_t want = count;
  uint64_t cursor = goal < total_ ? goal : 0;
  // First fit from the goal onward, wrapping to the start once the end is
  // reached; free_count_ >= want guarantees the loop finds enough.
  while (want > 0) {
    auto it = free_.upper_bound(cursor);
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second > cursor) it = prev;
    }
    if (it == free_.end()) {
      cursor = 0;
      continue;
    }
    uint64_t fstart = it->first, flen = it->second;
    uint64_t from = std::max(cursor, fstart);
    uint64_t take = std::min(want, fstart + flen - from);
    free_.erase(it);
    free_count_ -= flen;
    InsertFree({fstart, from - fstart});
    InsertFree({from + take, fstart + flen - from - take});
    out.push_back({from, take});
    want -= take;
    cursor = from + take;
  }
  return out;
}

void Allocator::Unallocate(BlockRun run) { InsertFree(run); }

void Allocator::FreeAfter(uint64_t seq, BlockRun run) {
  if (run.len == 0) return;
  pending_.emplace(seq, run);
  pending_count_ += run.len;
}

void Allocator::ReleaseUpTo(uint64_t durable_seq) {
  auto end = pending_.upper_bound(durable_seq);
  for (auto it = pending_.begin(); it != end; ++it) {
    pending_count_ -= it->second.len;
    Release(it->second);
  }
  pending_.erase(pending_.begin(), end);
}

void Allocator::Release(BlockRun run) {
  if (quarantine_.empty()) return InsertFree(run);
  std::vector<BlockRun> cover;  // the quarantined parts of run, in order
  for (const auto& [holder, q] : quarantine_) {
    uint64_t from = std::max(q.start, run.start), to = std::min(q.end(), run.end());
    if (from < to) cover.push_back({from, to - from});
  }
  std::sort(cover.begin(), cover.end(),
            [](const BlockRun& a, const BlockRun& b) { return a.start < b.start; });
  uint64_t pos = run.start;
  for (const BlockRun& c : cover) {
    if (c.end() <= pos) continue;
    const uint64_t from = std::max(c.start, pos);
    InsertFree({pos, from - pos});
    held_.push_back({from, c.end() - from});
    held_count_ += c.end() - from;
    pos = c.end();
  }
  InsertFree({pos, run.end() - pos});
}

void Allocator::Quarantine(uint64_t holder, const std::vector<BlockRun>& runs) {
  for (const BlockRun& r : runs) {
    if (r.len > 0) quarantine_.emplace(holder, r);
  }
}

void Allocator::LiftQuarantine(uint64_t holder) {
  if (quarantine_.erase(holder) == 0) return;
  std::vector<BlockRun> held = std::move(held_);
  held_.clear();
  held_count_ = 0;
  for (const BlockRun& r : held) Release(r);  // others' quarantine may still cover it
}

std::vector<BlockRun> Allocator::FreeRuns() const {
  std::vector<BlockRun> out;
  for (const auto& [start, len] : free_) out.push_back({start, len});
  return out;
}

}  // namespace nosyncfs
