// Volume: a mounted nosyncfs device with its metadata store, log and
// allocator; the durable-metadata service the file system core builds on.
//
// Crash story (journal/FORMAT.md has the details): each Commit appends the
// transaction's batch to the device log and applies it to the metadata
// store, whose own WAL is off. A commit is durable once the log range
// holding it is persisted (Sync, or Commit with durable = true). Checkpoint
// flushes the store and starts a new log epoch. Open replays the records the
// store has not applied, then checkpoints, so replay is idempotent.
//
// Thread-safety: none; the file system core serializes all calls.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "extent/allocator.h"
#include "extent/device.h"
#include "journal/log.h"
#include "journal/meta_store.h"
#include "journal/superblock.h"
#include "journal/transaction.h"

namespace nosyncfs {

struct FormatOptions {
  uint32_t block_size = 4096;
  // Where to create the metadata store; empty picks the default
  // (DefaultMetaDir).
  std::string meta_dir;
  // Overwrite an existing nosyncfs (and its metadata store).
  bool force = false;
};

struct VolumeOptions {
  bool strict_emulation = false;
  // Overrides the metadata directory named in the superblock.
  std::string meta_dir;
};

class Volume {
 public:
  // DEVICE.meta next to an image file; /var/lib/nosyncfs/UUID for a device.
  static std::string DefaultMetaDir(const std::string& device_path, const std::string& uuid);

  // mkfs: writes the superblock, an empty log and a new metadata store with
  // the root directory. EEXIST if the device already holds nosyncfs and
  // !force; ENOSPC if too small; EINVAL for a bad block size.
  static Result<Superblock> Format(const std::string& device_path, const FormatOptions& options);

  // Opens, checks, recovers and checkpoints. Errors carry a one-line message
  // naming the problem: EINVAL (not nosyncfs, version), EUCLEAN (checksum,
  // corrupted log or store), EBUSY (in use), ENOENT (store missing),
  // EXDEV (store belongs to another device).
  static Result<std::unique_ptr<Volume>> Open(const std::string& device_path,
                                              const VolumeOptions& options);

  ~Volume();

  Device& device() { return *device_; }
  const Superblock& superblock() const { return sb_; }
  MetaStore& store() { return *store_; }
  uint32_t block_size() const { return sb_.block_size; }
  uint64_t free_blocks() const { return allocator_->free_blocks() + allocator_->pending_blocks(); }
  uint64_t total_blocks() const { return allocator_->total_blocks(); }
  const std::string& meta_dir() const { return meta_dir_; }

  // Allocates `count` data blocks near `goal`; if only pending frees stand in
  // the way, makes them durable first. ENOSPC otherwise.
  Result<std::vector<BlockRun>> Allocate(uint64_t count, uint64_t goal);
  // Returns blocks allocated by a transaction that then failed.
  void Unallocate(const std::vector<BlockRun>& runs);

  // Appends the transaction to the log and applies it; with `durable`, also
  // persists the log before returning. Returns the sequence number.
  Result<uint64_t> Commit(Transaction&& txn, bool durable);
  // Makes every committed transaction durable.
  Status Sync();
  // Highest durable sequence number.
  uint64_t durable_seq() const { return log_->durable_seq(); }
  // Flushes the store and empties the log.
  Status Checkpoint();

  // Hands out a new inode number, recording the counter in `txn`.
  uint64_t NextInodeNumber(Transaction* txn);

 private:
  Volume() = default;
  Status Recover();
  Status RebuildAllocator();

  std::unique_ptr<Device> device_;
  Superblock sb_;
  std::string meta_dir_;
  std::unique_ptr<MetaStore> store_;
  std::unique_ptr<Log> log_;
  std::unique_ptr<Allocator> allocator_;
  uint64_t next_ino_ = kRootIno + 1;
  // Set once Open has fully succeeded: only then may the destructor
  // checkpoint. A half-open volume (failed recovery) must leave the store
  // and log exactly as they were, so every later open fails the same way.
  bool open_complete_ = false;
};

}  // namespace nosyncfs
