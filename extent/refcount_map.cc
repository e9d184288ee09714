#include "extent/refcount_map.h"

#include <algorithm>
#include <cassert>
#include <tuple>

namespace nosyncfs {

void RefcountMap::Load(const Record& r) { map_[r.run.start] = Entry{r.run.len, r.refs, 0}; }

void RefcountMap::Set(uint64_t key, std::optional<Entry> e) {
  auto it = map_.find(key);
  std::optional<Entry> before;
  if (it != map_.end()) before = it->second;
  undo_.try_emplace(key, before);
  if (e) {
    map_[key] = *e;
  } else if (it != map_.end()) {
    map_.erase(it);
  }
}

void RefcountMap::SplitAt(uint64_t block) {
  auto it = map_.upper_bound(block);
  if (it == map_.begin()) return;
  --it;
  const uint64_t start = it->first;
  Entry e = it->second;
  if (start == block || start + e.len <= block) return;
  Entry left = e, right = e;
  left.len = block - start;
  right.len = e.len - left.len;
  Set(start, left);
  Set(block, right);
}

void RefcountMap::MergeAround(uint64_t key) {
  auto it = map_.find(key);
  if (it == map_.end()) return;
  auto continues = [](const Map::value_type& a, const Map::value_type& b) {
    return a.first + a.second.len == b.first && a.second.refs == b.second.refs &&
           a.second.settle == b.second.settle;
  };
  auto next = std::next(it);
  if (next != map_.end() && continues(*it, *next)) {
    Entry merged = it->second;
    merged.len += next->second.len;
    Set(next->first, std::nullopt);
    Set(key, merged);
    it = map_.find(key);
  }
  if (it != map_.begin()) {
    auto prev = std::prev(it);
    if (continues(*prev, *it)) {
      Entry merged = prev->second;
      merged.len += it->second.len;
      uint64_t prev_key = prev->first;
      Set(key, std::nullopt);
      Set(prev_key, merged);
    }
  }
}

template <typename Fn>
void RefcountMap::Update(BlockRun run, Fn&& fn) {
  if (run.len == 0) return;
  SplitAt(run.start);
  SplitAt(run.end());
  // The pieces first (entries and the gaps between them), then the changes:
  // changing the map while walking it would skip or repeat pieces.
  std::vector<std::tuple<uint64_t, uint64_t, std::optional<Entry>>> pieces;
  auto it = map_.lower_bound(run.start);
  for (uint64_t pos = run.start; pos < run.end();) {
    if (it != map_.end() && it->first == pos) {
      pieces.emplace_back(pos, it->second.len, it->second);
      pos += it->second.len;
      ++it;
    } else {
      uint64_t gap_end = it == map_.end() ? run.end() : std::min(run.end(), it->first);
      pieces.emplace_back(pos, gap_end - pos, std::nullopt);
      pos = gap_end;
    }
  }
  for (auto& [start, len, old] : pieces) {
    Set(start, fn(start, len, old ? &*old : nullptr));
  }
  for (auto& piece : pieces) MergeAround(std::get<0>(piece));
  MergeAround(run.end());
}

void RefcountMap::AddRef(BlockRun run) {
  Update(run, [](uint64_t, uint64_t len, const Entry* old) -> std::optional<Entry> {
    return Entry{len, old == nullptr ? 2u : old->refs + 1, 0};
  });
}

std::vector<BlockRun> RefcountMap::DropRef(BlockRun run, uint64_t seq) {
  std::vector<BlockRun> freed;
  Update(run, [&](uint64_t start, uint64_t len, const Entry* old) -> std::optional<Entry> {
    if (old == nullptr || old->refs <= 1) {
      // The last reference (a settling run has one left, too).
      if (!freed.empty() && freed.back().end() == start) {
        freed.back().len += len;
      } else {
        freed.push_back({start, len});
      }
      return std::nullopt;
    }
    if (old->refs == 2) return Entry{len, 1, seq};
    return Entry{len, old->refs - 1, 0};
  });
  return freed;
}

std::vector<BlockRun> RefcountMap::Shared(BlockRun run, uint64_t durable_seq) const {
  std::vector<BlockRun> out;
  auto it = map_.upper_bound(run.start);
  if (it != map_.begin()) --it;
  for (; it != map_.end() && it->first < run.end(); ++it) {
    const Entry& e = it->second;
    if (it->first + e.len <= run.start) continue;
    if (e.refs < 2 && e.settle <= durable_seq) continue;
    uint64_t start = std::max(run.start, it->first);
    uint64_t end = std::min(run.end(), it->first + e.len);
    if (!out.empty() && out.back().end() == start) {
      out.back().len += end - start;
    } else {
      out.push_back({start, end - start});
    }
  }
  return out;
}

uint32_t RefcountMap::RefsAt(uint64_t block) const {
  auto it = map_.upper_bound(block);
  if (it == map_.begin()) return 1;
  --it;
  if (it->first + it->second.len <= block || it->second.refs < 2) return 1;
  return it->second.refs;
}

std::vector<std::pair<uint64_t, std::optional<RefcountMap::Record>>> RefcountMap::Changes() const {
  auto persisted = [](uint64_t key, const std::optional<Entry>& e) -> std::optional<Record> {
    if (!e || e->refs < 2) return std::nullopt;
    return Record{{key, e->len}, e->refs};
  };
  std::vector<std::pair<uint64_t, std::optional<Record>>> out;
  for (const auto& [key, before] : undo_) {
    auto it = map_.find(key);
    std::optional<Record> now =
        persisted(key, it == map_.end() ? std::nullopt : std::optional<Entry>(it->second));
    if (now != persisted(key, before)) out.emplace_back(key, now);
  }
  return out;
}

void RefcountMap::Revert() {
  for (const auto& [key, before] : undo_) {
    if (before) {
      map_[key] = *before;
    } else {
      map_.erase(key);
    }
  }
  undo_.clear();
}

void RefcountMap::Prune(uint64_t durable_seq) {
  assert(undo_.empty());
  for (auto it = map_.begin(); it != map_.end();) {
    if (it->second.refs < 2 && it->second.settle <= durable_seq) {
      it = map_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<RefcountMap::Record> RefcountMap::Records() const {
  std::vector<Record> out;
  for (const auto& [start, e] : map_) {
    if (e.refs >= 2) out.push_back({{start, e.len}, e.refs});
  }
  return out;
}

}  // namespace nosyncfs
