// Inode: one inode cached by the Vfs, with the lock that guards it.
//
// The InodeTable owns every Inode; operations hold pins (Vfs::InodeRef) so
// that an inode cannot leave the table under them, and take `mu` to read
// (shared) or change (exclusive) it. The lock order is written once, in
// fs/vfs.h.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>

#include <boost/intrusive/list_hook.hpp>
#include <boost/intrusive/unordered_set_hook.hpp>

#include "base/spin_lock.h"
#include "extent/extent_map.h"
#include "fs/dentry_cache.h"
#include "fs/dirty_ranges.h"
#include "journal/schema.h"

namespace nosyncfs {

struct Inode {
  // A new inode, complete.
  explicit Inode(const InodeRecord& r) : ino(r.ino), type(r.mode & S_IFMT), rec(r) {
    loaded.store(true);
  }
  // A placeholder, filled by whoever inserted it (InodeTable::FindOrCreate)
  // before it sets `loaded`; whoever else finds it waits for that (an
  // atomic wait, not a lock, so no lock order is involved). One load per
  // inode: a load can never bring back an older record than one another
  // thread has just committed and evicted.
  explicit Inode(uint64_t number) : ino(number) { rec.ino = number; }
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  bool is_dir() const { return type == S_IFDIR; }
  bool is_reg() const { return type == S_IFREG; }

  const uint64_t ino;
  // S_IFMT bits. Fixed once `loaded` is set: readable without a lock from
  // then on.
  uint32_t type = 0;
  // Set (release) once the fields are filled; read (acquire) before any use.
  std::atomic<bool> loaded{false};
  // The load failed (no such inode, a bad record); written before `loaded`.
  bool load_failed = false;

  // The InodeTable's, under its shard lock.
  boost::intrusive::unordered_set_member_hook<> table_hook;
  uint32_t pins = 0;

  std::shared_mutex mu;

  // ---- guarded by mu: shared to read, exclusive to change (but see atime) ----
  InodeRecord rec;
  // Regular files: the whole extent map, loaded with the inode; null while
  // the file has none (most cached inodes), so read it through extents().
  std::unique_ptr<ExtentMap> extent_map;
  const ExtentMap& extents() const { return extent_map ? *extent_map : NoExtents(); }
  ExtentMap& mutable_extents() {
    if (!extent_map) extent_map = std::make_unique<ExtentMap>();
    return *extent_map;
  }
  static const ExtentMap& NoExtents() {
    static const ExtentMap none;
    return none;
  }
  // Unflagged data written but not yet persisted (null when clean).
  std::unique_ptr<DirtyRanges> dirty;
  uint64_t last_seq = 0;  // the last transaction that changed this inode
  // Its records are deleted: lookups fail; it leaves the table with its
  // last pin.
  bool destroyed = false;
  // Whether the store may hold an orphan record or xattrs for it (false
  // only when known: an inode made in this mount), so that destroying it
  // deletes only what can exist.
  bool maybe_orphan_record = true;
  bool maybe_xattrs = true;
  // Made by O_TMPFILE and not linked yet: the one inode without links that
  // link(2) may give a name (the kernel allows it unless O_EXCL was given).
  bool linkable = false;
  // rec differs from the store: timestamps of writes that committed
  // nothing, kept until the next commit (SEMANTICS.md section 1).
  bool attr_dirty = false;
  // ... and fsync must commit it (an unflagged write's mtime or size).
  bool attr_needs_sync = false;

  // ---- changed with mu held (either mode), so atomic; read anywhere ----
  std::atomic<uint64_t> nlookup{0};  // the kernel's references
  std::atomic<uint32_t> open_count{0};
  std::atomic<uint32_t> write_opens{0};  // of open_count, those open for writing

  // Readers (mu shared) update rec.atime, atime_dirty and dentries under
  // lazy_mu; a holder of mu in exclusive mode needs no lazy_mu.
  SpinLock lazy_mu;
  bool atime_dirty = false;
  // Directories: recently used entries (allocated on first use). Changes to
  // the directory's entries update it, under mu exclusive.
  std::unique_ptr<DentryCache> dentries;

  // The Vfs's list of inodes with something to persist or commit (dirty
  // data or lazy attributes), under Vfs::dirty_mu_.
  boost::intrusive::list_member_hook<> dirty_hook;
};

}  // namespace nosyncfs
