// Volume: a mounted nosyncfs device with its metadata store, log and
// allocator; the durable-metadata service the file system core builds on.
//
// Crash story (journal/FORMAT.md has the details): each Commit appends the
// transaction's batch to the device log and applies it to the metadata
// store, whose own WAL is off. A commit is durable once the log range
// holding it is persisted (WaitDurable, Sync, or Commit with durable =
// true). Checkpoint flushes the store and starts a new log epoch. Open
// replays the records the store has not applied, then checkpoints, so
// replay is idempotent.
//
// Thread-safety: after Open, every method may be called from any thread.
// Commits are appended and applied in one order (the log's), under mu_;
// making them durable is a group commit: one thread persists the log range
// of every commit so far, outside mu_, while the others wait for it or keep
// appending.
//
// Lock order: sync_mu_ before mu_. Neither is held across a call out of
// the journal layer, and mu_ is never held across a log persist.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "base/progress.h"
#include "base/status.h"
#include "extent/allocator.h"
#include "extent/device.h"
#include "journal/size_slots.h"
#include "extent/refcount_map.h"
#include "journal/in_place_work.h"
#include "journal/log.h"
#include "journal/meta_store.h"
#include "journal/size_slots.h"
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
  // With strict emulation, nonzero: early evictions seeded with this
  // (DeviceOptions::evict_seed).
  uint64_t evict_seed = 0;
  // Overrides the metadata directory named in the superblock.
  std::string meta_dir;
  // For tests: wraps the opened device (extent/device_wrapper.h), e.g. to
  // slow or fail its persists.
  std::function<std::unique_ptr<Device>(std::unique_ptr<Device>)> wrap_device;
  // fsck: open even when extents map a block twice without a reference
  // count (a mount refuses that), so that the checker can name them.
  bool tolerate_double_mapping = false;
  // fsck: open even when extent or reference count records are malformed
  // or name blocks outside the data area (a mount refuses them); the
  // allocator skips them, and the checker names them.
  bool tolerate_bad_records = false;
  // Open without changing anything on the device or in the metadata store:
  // the device without write access (a shared lock: read-only opens
  // coexist, a writer excludes them), the store with RocksDB's read-only
  // open, no recovery, no checkpoint at close. A volume that needs recovery
  // (log records to replay, interrupted in-place operations, orphan inodes
  // to free, an upgrade of its counters) fails to open with EROFS and a
  // one-line message saying what is pending. Every method that would change
  // the volume (Allocate, Commit, CommitInPlace, Checkpoint, SetCounters,
  // Reload) fails with EROFS, and so does Device::Persist.
  bool read_only = false;
  // With read_only: open even with orphan inodes to free (fsck -n checks
  // such a volume; orphans are valid state, freed by the next writable
  // mount). A read-only mount must not set it: it could not free them.
  bool tolerate_orphans = false;
  // Where recovery reports the progress of a log replay (phase "replaying
  // the log"), or nullptr. Must outlive Open.
  Progress* progress = nullptr;
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
  // The slots direct appenders publish sizes in (journal/size_slots.h).
  SizeSlots& size_slots() { return *size_slots_; }
  const Device& device() const { return *device_; }
  const Superblock& superblock() const { return sb_; }
  MetaStore& store() { return *store_; }
  uint32_t block_size() const { return sb_.block_size; }
  // Free blocks as statfs counts them: allocatable now, or once the
  // transaction that freed them is durable.
  uint64_t free_blocks() const;
  uint64_t total_blocks() const { return sb_.data_blocks; }
  // Inodes in the store (kept with each commit, never counted by a scan).
  uint64_t inode_count() const { return inode_count_.load(std::memory_order_relaxed); }
  // The next inode number NextInodeNumber would hand out.
  uint64_t next_inode_number() const { return next_ino_.load(std::memory_order_relaxed); }
  const std::string& meta_dir() const { return meta_dir_; }
  // Opened with VolumeOptions::read_only.
  bool read_only() const { return read_only_; }
  // A volume opened read-write can be frozen (remount read-only): every
  // change then fails with EROFS, and closing it writes nothing. The
  // caller makes everything durable first. Thread-safe.
  void Freeze(bool frozen) { frozen_.store(frozen, std::memory_order_seq_cst); }
  bool frozen() const { return frozen_.load(std::memory_order_seq_cst); }

  // Allocates `count` data blocks near `goal`; if only pending frees stand in
  // the way, makes them durable first. ENOSPC otherwise; EROFS if read-only.
  Result<std::vector<BlockRun>> Allocate(uint64_t count, uint64_t goal);
  // Returns blocks allocated by a transaction that then failed.
  void Unallocate(const std::vector<BlockRun>& runs);

  // Direct access: blocks that a client cut off from its lease may still be
  // storing into stay unallocatable, even once freed, until the quarantine
  // of `holder` is lifted (Allocator::Quarantine). In memory only.
  void Quarantine(uint64_t holder, const std::vector<BlockRun>& runs);
  void LiftQuarantine(uint64_t holder);
  // Freed blocks held back by a quarantine (not counted by free_blocks).
  uint64_t quarantined_blocks() const;

  // Appends the transaction to the log and applies it; with `durable`, also
  // waits until it is durable. Returns the sequence number. A full log is
  // checkpointed first. EFBIG when the transaction can never fit the log;
  // EROFS if read-only. The reference counts of the blocks it shares and frees change in the
  // same batch; only blocks whose last reference goes are freed.
  Result<uint64_t> Commit(Transaction&& txn, bool durable);
  // An operation that changes device bytes in place as well as metadata,
  // all or nothing across a crash: the transaction, carrying `work` as its
  // intent, is made durable first; then the work is done and persisted;
  // then the intent is retired, durably. Recovery (Open) does the work of
  // every intent not yet retired, so after a crash the operation happened
  // whole. The caller holds whatever keeps others off the work's bytes
  // until this returns: a retired intent can never be redone over later
  // writes. With no work, a durable Commit. Returns the transaction's
  // sequence number.
  Result<uint64_t> CommitInPlace(Transaction&& txn, const InPlaceWork& work);
  // Returns once transaction `seq` (and every earlier one) is durable:
  // persists the log unless another thread's persist already covers it.
  Status WaitDurable(uint64_t seq);
  // Makes every committed transaction durable.
  Status Sync();
  // Highest durable sequence number.
  uint64_t durable_seq() const { return durable_seq_.load(std::memory_order_acquire); }
  // Highest committed sequence number.
  uint64_t committed_seq() const;
  // Flushes the store and empties the log. EROFS if read-only.
  Status Checkpoint();

  // fsck's repairs of what the Volume itself keeps. Neither may run
  // concurrently with any other commit; both fail with EROFS if read-only.
  //
  // Sets the inode counter and the inode count to these values and
  // commits them durably (the caller makes sure that `next_ino` is past
  // every inode and that `inode_count` is what the store holds).
  Status SetCounters(uint64_t next_ino, uint64_t inode_count);
  // Makes everything durable, then reloads the reference counts and
  // rebuilds the allocator from the store: after a commit that put or
  // deleted reference count records directly (not through
  // Transaction::shared/freed).
  Status Reload();

  // The parts of a mapped run that another extent may map too, which
  // therefore must not be changed in place: shared, or shared until a
  // transaction that is not durable yet (RefcountMap's settling runs).
  std::vector<BlockRun> SharedParts(BlockRun run) const;
  // Blocks shared by more than one extent (each counted once), for tests.
  std::vector<RefcountMap::Record> RefcountRecords() const;

  // Hands out a new inode number for an inode that `txn` creates; the
  // commit of `txn` records the counter and the inode count.
  uint64_t NextInodeNumber(Transaction* txn);

  // Statistics since Open (relaxed counters; each is exact once the
  // operations it counts have returned):
  // Log persists: each makes every transaction appended before it durable
  // (group commit).
  uint64_t log_persists() const { return log_persists_.load(std::memory_order_relaxed); }
  // Transactions that log persists made durable (a checkpoint's flush,
  // which also makes them durable, does not count).
  uint64_t log_transactions() const {
    return log_transactions_.load(std::memory_order_relaxed);
  }
  // Blocks of all files mapped with the NF flag, as of the last commit:
  // counted by the extent scan in Open, then kept by each commit's
  // Transaction::nf_blocks_delta.
  uint64_t nf_blocks() const { return nf_blocks_.load(std::memory_order_relaxed); }

 private:
  Volume() = default;
  Status Recover(Progress* progress);
  // Read-only open: EROFS naming what recovery would do, if anything.
  Status CheckNothingToRecover(const std::string& device_path, bool tolerate_orphans);
  // EUCLEAN if the store is older than the log's epoch.
  Status CheckStoreNotOlder(uint64_t applied) const;
  // EROFS if read-only.
  Status CheckWritable() const;
  // Loads the reference counts, marks every mapped block used and counts
  // the NF blocks (nf_blocks_).
  Status RebuildAllocator();
  // Counts the references `txn` adds and drops into its batch (under mu_);
  // returns the runs to free.
  std::vector<BlockRun> CountReferences(Transaction* txn, uint64_t seq);
  // Does the work of every intent left by a crash, then retires them.
  Status FinishIntents();
  // Folds the size every named slot holds into its inode (a larger size
  // only), durably, then clears the table.
  Status FoldSizeSlots();
  // The slots that say more than their inode's record: recovery to do.
  Result<uint64_t> CountUnfoldedSizes();
  // EUCLEAN unless every range lies in the data area.
  Status CheckWork(const InPlaceWork& work) const;
  Status DoWork(const InPlaceWork& work);
  Result<AppliedRecord> ReadApplied();
  // The inode counter and count, from "a" (migrating an older store).
  Status LoadCounters();
  // Adds the "a" record (sequence number and counters) to the batch
  // (under mu_).
  void SealBatch(Transaction* txn, uint64_t seq);

  std::unique_ptr<Device> device_;
  Superblock sb_;
  std::string meta_dir_;
  std::unique_ptr<MetaStore> store_;
  std::unique_ptr<Log> log_;
  std::unique_ptr<SizeSlots> size_slots_;
  std::unique_ptr<Allocator> allocator_;
  RefcountMap refs_;  // mu_
  // !refs_.empty(), readable without mu_: most volumes share nothing, and
  // then SharedParts (asked on every write) takes no lock.
  std::atomic<bool> any_shared_{false};

  // Guards log_, allocator_, refs_, the store's apply order and inode_count_'s
  // updates. Held for appends and applies only, never for a persist.
  mutable std::mutex mu_;
  // Guards sync_running_: one thread at a time persists the log (or
  // checkpoints); the others wait on sync_cv_.
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool sync_running_ = false;

  std::atomic<uint64_t> next_ino_{kRootIno + 1};
  std::atomic<uint64_t> inode_count_{0};
  std::atomic<uint64_t> durable_seq_{0};
  std::atomic<uint64_t> log_persists_{0};
  std::atomic<uint64_t> log_transactions_{0};
  std::atomic<uint64_t> nf_blocks_{0};
  std::atomic<uint64_t> next_intent_{1};
  // Set once Open has fully succeeded: only then may the destructor
  // checkpoint. A half-open volume (failed recovery) must leave the store
  // and log exactly as they were, so every later open fails the same way.
  bool open_complete_ = false;
  bool read_only_ = false;
  std::atomic<bool> frozen_{false};
  // VolumeOptions of the same names, for RebuildAllocator.
  bool tolerate_double_mapping_ = false;
  bool tolerate_bad_records_ = false;
};

}  // namespace nosyncfs
