// RefcountMap: how many extents map each shared data block.
//
// A block mapped by one extent has no entry (its count is 1, implicitly);
// only runs of blocks shared by copy_file_range have one, with their count
// (at least 2). That keeps the map empty on a volume without copies, and
// one entry per shared run however large the run is.
//
// "Settling" runs: when a count drops back to 1, the block is private again
// only once that drop is durable. Until then a crash could bring the other
// mapping back, so the one remaining owner must not change the block in
// place yet (as a freed block must not be reused before its free is
// durable). Such runs keep an entry with count 1 and the sequence number of
// the dropping transaction; Shared() reports them until that transaction is
// durable. They are never persisted.
//
// Mutations are remembered, with the state before them, until Accept() (the
// transaction carrying Changes() is in the log) or Revert() (it never got
// there), so that a commit that has to start over can undo its effect.
//
// Thread-safety: none; the Volume serializes calls.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "extent/block_run.h"

namespace nosyncfs {

class RefcountMap {
 public:
  // A persisted record: `refs` (>= 2) references to each block of `run`.
  struct Record {
    BlockRun run;
    uint32_t refs = 0;
    bool operator==(const Record&) const = default;
  };

  // Adds a record read from the store, without recording a change. The
  // caller has checked that records do not overlap and that refs >= 2.
  void Load(const Record& r);

  // One more reference to every block of `run`, each of which is mapped
  // now (so counted at least once).
  void AddRef(BlockRun run);
  // One reference fewer to every block of `run`, dropped by transaction
  // `seq`. Returns the runs whose last reference went: free them.
  std::vector<BlockRun> DropRef(BlockRun run, uint64_t seq);

  // The parts of `run` that other extents may map too: counted at least
  // twice, or settling after a transaction later than `durable_seq`.
  std::vector<BlockRun> Shared(BlockRun run, uint64_t durable_seq) const;
  // The count of one block as persisted (1 for a block without a record,
  // whether or not anything maps it).
  uint32_t RefsAt(uint64_t block) const;

  // The persisted view of every key changed since the last Accept/Revert:
  // the record now stored under it, or nullopt to delete it.
  std::vector<std::pair<uint64_t, std::optional<Record>>> Changes() const;
  void Accept() { undo_.clear(); }
  void Revert();

  // Forgets settling runs whose drop is durable.
  void Prune(uint64_t durable_seq);

  // The persisted records, in block order.
  std::vector<Record> Records() const;
  bool empty() const { return map_.empty(); }

 private:
  struct Entry {
    uint64_t len = 0;
    uint32_t refs = 0;    // >= 2, or 1 while settling
    uint64_t settle = 0;  // refs == 1: the transaction that dropped the count
    bool operator==(const Entry&) const = default;
  };
  using Map = std::map<uint64_t, Entry>;

  // Makes entries start at `block` if one spans it.
  void SplitAt(uint64_t block);
  // Merges the entry at `key` with neighbours that continue it exactly.
  void MergeAround(uint64_t key);
  // Changes an entry's state under `key` (nullopt removes it), remembering
  // what was there for Revert.
  void Set(uint64_t key, std::optional<Entry> e);
  // Calls fn(start, len, entry or null) for the pieces of [run) in order,
  // after splitting at both ends; fn returns the new state of the piece.
  template <typename Fn>
  void Update(BlockRun run, Fn&& fn);

  Map map_;
  std::map<uint64_t, std::optional<Entry>> undo_;  // key -> state before
};

}  // namespace nosyncfs
