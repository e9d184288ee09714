// Allocator: free space of the data area, in blocks.
//
// The allocator keeps no state of its own on media: at mount it is rebuilt
// from the extent maps (MarkUsed), so it can never disagree with them.
//
// Freed blocks are not reusable at once. A block freed by metadata
// transaction `seq` stays pending until that transaction is durable
// (ReleaseUpTo): otherwise a crash could bring back the old mapping while
// the block already holds another file's data (the "revoke" problem).
//
// Quarantine (direct access, fs/direct_server): a client that did not
// acknowledge the revocation of its lease in time may still be storing
// into the blocks it was leased. Those runs are quarantined under the
// client's key; a block of them that is freed meanwhile is held back
// instead of becoming allocatable, until the quarantine is lifted (the
// client's connection closed). Nothing of it is on media: after a restart
// no client holds a lease.
//
// Thread-safety: none; the owner serializes calls.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "base/status.h"
#include "extent/block_run.h"

namespace nosyncfs {

class Allocator {
 public:
  // All `total_blocks` blocks start free.
  explicit Allocator(uint64_t total_blocks);

  // Marks a run used while rebuilding from the extent maps. EUCLEAN if any
  // block of it is already used (a block mapped twice) or out of range.
  Status MarkUsed(BlockRun run);

  // Allocates exactly `count` blocks as one or more runs, preferring blocks
  // at or after `goal` (to keep files contiguous). All-or-nothing: ENOSPC if
  // fewer than `count` blocks are allocatable now (pending ones are not).
  Result<std::vector<BlockRun>> Allocate(uint64_t count, uint64_t goal);

  // Gives back blocks that were allocated but never committed.
  void Unallocate(BlockRun run);

  // Blocks freed by transaction `seq`; allocatable after ReleaseUpTo(>= seq).
  void FreeAfter(uint64_t seq, BlockRun run);

  // Makes the blocks of every transaction up to `durable_seq` allocatable.
  void ReleaseUpTo(uint64_t durable_seq);

  // Quarantines `runs` under `holder`; holders may overlap each other.
  void Quarantine(uint64_t holder, const std::vector<BlockRun>& runs);
  // Ends `holder`'s quarantine: held blocks no other holder covers become
  // allocatable.
  void LiftQuarantine(uint64_t holder);

  uint64_t total_blocks() const { return total_; }
  // Allocatable now.
  uint64_t free_blocks() const { return free_count_; }
  // Freed, waiting for their transaction to become durable.
  uint64_t pending_blocks() const { return pending_count_; }
  // Freed, held back by a quarantine.
  uint64_t held_blocks() const { return held_count_; }

  // The free runs, in order (for the checker and tests).
  std::vector<BlockRun> FreeRuns() const;

 private:
  void InsertFree(BlockRun run);
  // Makes a freed run allocatable, except its quarantined blocks (held).
  void Release(BlockRun run);

  uint64_t total_;
  uint64_t free_count_ = 0;
  uint64_t pending_count_ = 0;
  std::map<uint64_t, uint64_t> free_;                    // start -> len, coalesced
  std::multimap<uint64_t, BlockRun> pending_;            // seq -> run
  std::multimap<uint64_t, BlockRun> quarantine_;         // holder -> run
  std::vector<BlockRun> held_;                           // freed, quarantined
  uint64_t held_count_ = 0;
};

}  // namespace nosyncfs
