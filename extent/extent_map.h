// ExtentMap: one file's mapping from logical blocks to device blocks, with
// per-extent flags (the persistent no-fsync flag among them).
//
// Invariants: extents never overlap; adjacent extents whose blocks are
// contiguous on both sides and whose flags are equal are merged, so the map
// is canonical for a given block-level state.
//
// Every key (logical start block) that a mutation adds, changes or removes
// is remembered until TakeChanges(), which is how the journal layer turns an
// in-memory mutation into the metadata records of one transaction.
//
// Thread-safety: none; the owning inode's lock serializes access.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "extent/block_run.h"

namespace nosyncfs {

// Extent flags, persisted with each extent.
enum ExtentFlag : uint32_t {
  kExtentNoFsync = 1u << 0,  // NF: writes durable on return, mapping sealed
};

struct Extent {
  uint64_t lblk = 0;   // first logical block
  uint64_t len = 0;    // blocks
  uint64_t pblk = 0;   // first device block (data-area relative)
  uint32_t flags = 0;
  uint64_t lend() const { return lblk + len; }
  bool operator==(const Extent&) const = default;
};

class ExtentMap {
 public:
  // What lies at one logical block: a mapped run or a hole, and for how many
  // blocks (at most the `max_len` asked for) that stays the same.
  struct Segment {
    bool mapped = false;
    uint64_t pblk = 0;   // valid when mapped
    uint32_t flags = 0;  // valid when mapped
    uint64_t len = 0;
  };

  // Adds an extent read from the store, without recording a change.
  void Load(const Extent& e);

  Segment Find(uint64_t lblk, uint64_t max_len) const;

  // Maps [lblk, lblk+len) to device blocks starting at pblk. The logical
  // range must be a hole.
  void Map(uint64_t lblk, uint64_t len, uint64_t pblk, uint32_t flags);

  // Unmaps [lblk, lblk+len), splitting extents at the edges. Returns the
  // device runs that were mapped there.
  std::vector<BlockRun> Unmap(uint64_t lblk, uint64_t len);

  // Moves every extent at or after logical block `from` up or down by `by`
  // blocks (collapse and insert range). Moving down, [from - by, from) must
  // be a hole; moving up, nothing may be pushed past the largest block.
  void Shift(uint64_t from, uint64_t by, bool up);

  // Sets the flags of every mapped block in [lblk, lblk+len) to
  // (old & ~mask) | (value & mask), splitting and merging as needed.
  void SetFlags(uint64_t lblk, uint64_t len, uint32_t mask, uint32_t value);

  // Holes in [lblk, lblk+len), in order.
  std::vector<std::pair<uint64_t, uint64_t>> Holes(uint64_t lblk, uint64_t len) const;

  // True if every block of [lblk, lblk+len) is mapped with all of `flags`.
  bool AllHave(uint64_t lblk, uint64_t len, uint32_t flags) const;

  // Extents in logical order.
  const std::map<uint64_t, Extent>& extents() const { return map_; }
  uint64_t mapped_blocks() const;
  bool empty() const { return map_.empty(); }
  // Blocks mapped with kExtentNoFsync, kept as the map changes (O(1)).
  uint64_t nf_blocks() const { return nf_blocks_; }

  // The keys changed since the last call, each with the extent now stored
  // under it or nullopt if it was removed.
  std::vector<std::pair<uint64_t, std::optional<Extent>>> TakeChanges();
  // How many NF blocks the map gained (or, negative, lost) since the last
  // call, not counting Load(): what the changes TakeChanges() hands out do
  // to the file system's NF total.
  int64_t TakeNfBlocksDelta();

 private:
  // Splits the extent containing `lblk` (if any, and not starting there) so
  // that an extent starts at `lblk`.
  void SplitAt(uint64_t lblk);
  // Merges the extent at `key` with its neighbours where possible.
  void MergeAround(uint64_t key);
  void Put(const Extent& e);
  void Erase(std::map<uint64_t, Extent>::iterator it);

  void Touch(uint64_t key) { touched_.push_back(key); }
  // Counts `len` blocks with `flags` in (sign +1) or out (-1) of nf_blocks_.
  void CountNf(uint32_t flags, uint64_t len, int sign) {
    if (flags & kExtentNoFsync) nf_blocks_ += sign > 0 ? len : -len;
  }

  std::map<uint64_t, Extent> map_;
  // Keys changed since TakeChanges(), with repeats (a vector, not a set:
  // an inode caches one map, and most are never changed).
  std::vector<uint64_t> touched_;
  // NF blocks now, and as of the last TakeNfBlocksDelta() (or Load()).
  uint64_t nf_blocks_ = 0;
  uint64_t nf_blocks_taken_ = 0;
};

}  // namespace nosyncfs
