// Transaction: the metadata changes, block frees and new block references
// of one atomic operation, committed through Volume::Commit.
#pragma once

#include <vector>

#include "extent/block_run.h"
#include "extent/extent_map.h"
#include "journal/meta_batch.h"
#include "journal/schema.h"

namespace nosyncfs {

struct Transaction {
  MetaBatch batch;
  // Device blocks this transaction unmaps: each loses one reference, and a
  // block whose last reference goes is reusable once this is durable.
  std::vector<BlockRun> freed;
  // Device blocks it maps a second (or further) time: a copy sharing them.
  // Counted before `freed`, so a block both shared and freed here (a copy
  // over a range already sharing it) never reaches zero on the way.
  std::vector<BlockRun> shared;
  // Inodes it creates (Volume::NextInodeNumber counts them) and deletes:
  // the Volume records the inode counter and the inode count (statfs) in
  // the same batch, so both stay exact across crashes.
  uint32_t created_inodes = 0;
  uint32_t deleted_inodes = 0;
  // NF blocks its extent changes add (or, negative, remove): the Volume
  // keeps the file system's NF total (Volume::nf_blocks) by it.
  int64_t nf_blocks_delta = 0;
  // Inodes whose block mapping or size this transaction may change: a
  // direct-access lease on one must be checked before it commits
  // (fs/layout_leases.h). Every extent change and truncate lands here.
  std::vector<uint64_t> layout_changed;

  void PutInode(const InodeRecord& r) { batch.Put(keys::Inode(r.ino), r.Encode()); }

  // Records every extent `map` changed since its last TakeChanges(), and
  // what that did to its NF blocks.
  void PutExtentChanges(uint64_t ino, ExtentMap& map) {
    if (layout_changed.empty() || layout_changed.back() != ino) layout_changed.push_back(ino);
    nf_blocks_delta += map.TakeNfBlocksDelta();
    for (auto& [lblk, extent] : map.TakeChanges()) {
      if (extent) {
        batch.Put(keys::Extent(ino, lblk), EncodeExtentValue(*extent));
      } else {
        batch.Delete(keys::Extent(ino, lblk));
      }
    }
  }

  void Free(const std::vector<BlockRun>& runs) { freed.insert(freed.end(), runs.begin(), runs.end()); }
  void Share(BlockRun run) { shared.push_back(run); }

  bool empty() const {
    return batch.empty() && freed.empty() && shared.empty() && created_inodes == 0 && deleted_inodes == 0;
  }
};

}  // namespace nosyncfs
