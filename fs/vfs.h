// Vfs: the file system core behind the FUSE glue. Inodes, directories,
// file data, xattrs and the no-fsync flag, on top of a Volume.
//
// Methods are named after the FUSE operation they serve. Each returns a
// Status/Result carrying a positive errno; the glue turns it into exactly
// one reply. Nothing here includes <fuse_lowlevel.h>, so the core is tested
// without a mount (tests/harness).
//
// Durability (SEMANTICS.md): metadata changes are committed to the log
// without a persist; fsync/fsyncdir persist the log. Data written to newly
// allocated blocks is persisted before the mapping is committed, so a
// mapping never exposes a block's old contents. Writes into NF extents are
// persisted before the call returns.
//
// Thread-safety: every public method may be called from any thread.
//
// Lock order (acquire top to bottom; release in any order):
//   1. rename_mu_       cross-directory renames only: keeps the tree still for
//                       the "not into its own subtree" check, as the
//                       kernel's s_vfs_rename_mutex does
//   2. Inode::mu        of directories, by ascending inode number, then
//                       of other inodes, by ascending inode number
//                       (LockSet takes several at once in this order; an
//                       operation that learns of an inode only under a lock
//                       either can lock it without breaking the order, or
//                       drops its locks, takes them all in order and checks
//                       again what it looked up)
//   3. Inode::lazy_mu   a reader's atime update
//   4. dirty_mu_        the list of inodes with something to persist
//   5. InodeTable's shard mutexes
//   6. Volume's locks   (journal/volume.h)
// No lock of the whole file system is ever held across a data copy, a
// persist or a reply: the only lock held across a reply is one inode's mu,
// shared, while Read's reply copies from that inode's blocks, so that no
// truncate or punch can free (and so let another file reuse) a block that
// the kernel is still copying from.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/intrusive/list.hpp>

#include "base/status.h"
#include "extent/extent_map.h"
#include "fs/inode.h"
#include "fs/inode_table.h"
#include "fs/layout_leases.h"
#include "journal/schema.h"
#include "journal/volume.h"

namespace nosyncfs {

struct VfsOptions {
  enum class NfPunch { kSplit, kDeny };
  NfPunch nf_punch = NfPunch::kSplit;
  // When a read updates atime (mount options noatime, relatime,
  // strictatime; the kernel leaves atime of FUSE files to the daemon).
  enum class Atime { kNever, kRelative, kAlways };
  Atime atime = Atime::kRelative;
  bool dir_atime = true;  // false: nodiratime (readdir leaves atime alone)
};

// Who is asking: from the FUSE request context.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
};

// Who changes a file, as far as its set-user-ID and set-group-ID bits go.
// The daemon claims FUSE_HANDLE_KILLPRIV_V2, so the kernel leaves clearing
// them to it (Vfs::KillSetIdOnModify, KillSetIdOnChown). Each question is
// asked only when the answer decides something; the FUSE glue answers from
// the request and /proc. This base class is a caller with CAP_FSETID, in
// no group: what it changes keeps its bits, but for what chown clears for
// everyone. Thread-compatible; lives for the call it is passed to.
class Modifier {
 public:
  virtual ~Modifier() = default;
  // The caller holds CAP_FSETID.
  virtual bool HasFsetid() const { return true; }
  // `gid` is the caller's fsgid or one of its supplementary groups.
  virtual bool InGroup(gid_t) const { return false; }
};

struct Entry {
  uint64_t ino = 0;
  struct stat attr {};
};

// Which fields a Setattr changes (mirrors FUSE_SET_ATTR_*).
struct SetattrRequest {
  bool set_mode = false, set_uid = false, set_gid = false, set_size = false;
  bool set_atime = false, set_mtime = false, atime_now = false, mtime_now = false;
  bool set_ctime = false;
  // Who asks: a truncate or chown may clear set-ID bits (null: nobody is
  // asking for a change that would, e.g. a test's utimes).
  const Modifier* who = nullptr;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;
  struct timespec atime {}, mtime {}, ctime {};
};

// What the Vfs did for durability since it was made: relaxed atomic
// counters, bumped where the Vfs decides (no lock on any path), each exact
// once the calls it counts have returned.
struct VfsStats {
  // Fsync calls on files: fsync(2) and fdatasync(2) together, and the
  // fdatasync(2) among them.
  std::atomic<uint64_t> fsync_calls{0};
  std::atomic<uint64_t> fdatasync_calls{0};
  // Of fsync_calls, those that succeeded with nothing to do: no dirty data
  // to persist, no attributes to commit, no log to wait for (SEMANTICS.md
  // D3: what an fsync of NF-only changes must be).
  std::atomic<uint64_t> fsync_no_media_work{0};
  // Fsyncdir calls (each makes the whole file system durable).
  std::atomic<uint64_t> fsyncdir_calls{0};
  // Writes (write, and copy_file_range by bytes) with bytes in NF extents,
  // and those bytes, persisted before the write returned (D2).
  std::atomic<uint64_t> nf_writes{0};
  std::atomic<uint64_t> nf_write_bytes_persisted{0};
};

class Vfs {
 public:
  static constexpr size_t kMaxNameLen = 255;
  static constexpr uint32_t kMaxLinks = 65000;

  Vfs(std::unique_ptr<Volume> volume, VfsOptions options);
  ~Vfs();

  // Caches the root and finishes what a crash left: frees unlinked-while-
  // open (orphan) inodes, reporting to `progress` if given (phase "freeing
  // orphan inodes"). Call once, before anything else.
  Status Init(Progress* progress = nullptr);
  // Persists all pending data and metadata and checkpoints. Idempotent.
  // Call when no other method runs any more.
  Status Shutdown();

  // On a read-only volume (VolumeOptions::read_only, mount -o ro), and
  // once remounted read-only, the Vfs itself changes nothing: no atime
  // updates, no orphan freed (the volume refuses to open with orphans to
  // free; after a remount they wait for the next read-write one), no
  // checkpoint at shutdown. The requests that would change the file system
  // are refused with EROFS before they reach the Vfs (fuse_ops.cc, which
  // takes a ChangeTicket): on a volume opened read-only the device is
  // mapped read-only, so a store into it would fault.
  bool read_only() const {
    return volume_->read_only() || read_only_now_.load(std::memory_order_seq_cst);
  }

  // ---- remount (docs/semantics.md, "Remount") ----
  // Every request that changes the file system holds a ticket while it
  // runs, so that a remount read-only can wait for the changes in flight.
  class ChangeTicket {
   public:
    explicit ChangeTicket(std::atomic<uint32_t>* in_flight) : in_flight_(in_flight) {}
    ChangeTicket(ChangeTicket&& o) noexcept : in_flight_(std::exchange(o.in_flight_, nullptr)) {}
    ChangeTicket& operator=(ChangeTicket&& o) noexcept {
      Return();
      in_flight_ = std::exchange(o.in_flight_, nullptr);
      return *this;
    }
    ~ChangeTicket() { Return(); }

   private:
    void Return() {
      if (in_flight_ != nullptr) in_flight_->fetch_sub(1, std::memory_order_seq_cst);
      in_flight_ = nullptr;
    }
    std::atomic<uint32_t>* in_flight_;
  };
  // A ticket, or nullopt when read-only (the caller answers EROFS). Two
  // atomic operations; thread-safe.
  std::optional<ChangeTicket> BeginChange();
  // Remount read-only: no new change gets a ticket; waits for those in
  // flight; revokes the write leases of direct access; makes everything
  // durable, as an fsync of a directory does, and checkpoints; then
  // freezes the volume (Volume::Freeze). If making it durable fails
  // (EIO), the Vfs is read-write again and the error is returned. Not
  // concurrently with RemountReadWrite.
  Status RemountReadOnly();
  // Remount read-write: changes are let in again, and files unlinked while
  // open whose last user went meanwhile are freed. EROFS if the volume was
  // opened read-only (mount -o ro): its device is mapped read-only.
  Status RemountReadWrite();
  // The options a remount may change (nf_punch, atime, dir_atime), and
  // what they are now. Thread-safe; requests see a change at once.
  void SetOptions(const VfsOptions& options);
  VfsOptions options() const;

  // "." and ".." are not entries here: the kernel asks for them to turn a
  // file handle into an inode it has forgotten (export support), so they
  // name `parent` itself (of any type) and, for a directory, its parent.
  // Inode numbers are never reused, so a handle stays good until its inode
  // is unlinked, and ENOENT (the kernel's ESTALE) after that.
  Result<Entry> Lookup(uint64_t parent, std::string_view name);
  // Drops `n` kernel references; an unlinked inode is freed at zero.
  void Forget(uint64_t ino, uint64_t n);
  Result<struct stat> Getattr(uint64_t ino);
  Result<struct stat> Setattr(uint64_t ino, const SetattrRequest& req);

  Result<Entry> Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                      const Caller& caller);
  Result<Entry> Mkdir(uint64_t parent, std::string_view name, mode_t mode, const Caller& caller);
  Result<Entry> Symlink(uint64_t parent, std::string_view name, std::string_view target,
                        const Caller& caller);
  Result<std::string> Readlink(uint64_t ino);
  Status Unlink(uint64_t parent, std::string_view name);
  Status Rmdir(uint64_t parent, std::string_view name);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
  Status Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                std::string_view new_name, unsigned flags);
  Result<Entry> Link(uint64_t ino, uint64_t new_parent, std::string_view new_name);

  // Open/Create count open handles; an unlinked file lives until the last
  // Release. With `truncate` (O_TRUNC) an existing regular file is emptied
  // and its mtime/ctime set, as open(2) specifies, and set-ID bits are
  // cleared as by any modification by `who`.
  Status Open(uint64_t ino, bool truncate = false, const Modifier& who = Modifier());
  Result<Entry> Create(uint64_t parent, std::string_view name, mode_t mode, bool exclusive,
                       bool truncate, const Caller& caller, const Modifier& who = Modifier());
  // O_TMPFILE: a regular file without a name in directory `parent`, open,
  // linkable with linkat(AT_EMPTY_PATH). Until then it is an orphan: freed
  // on its last close, or by the next mount's recovery after a crash.
  Result<Entry> CreateTmpfile(uint64_t parent, mode_t mode, const Caller& caller);
  void Release(uint64_t ino);
  // Starts a pass of readdir over a directory: returns the cookie that ends
  // it. Entries added or renamed from now on get cookies at or past it, so
  // a pass that stops there lists each entry that stays for the whole pass
  // exactly once and always ends, however busy the directory is.
  Result<uint64_t> Opendir(uint64_t ino);

  // Calls sink with iovecs that point into the device mapping (and a zero
  // buffer for holes), under the inode's shared lock: sink must copy (or
  // reply) before returning.
  using ReadSink = std::function<void(const struct iovec* iov, int count)>;
  Status Read(uint64_t ino, uint64_t off, size_t size, const ReadSink& sink);
  // A successful write clears set-ID bits as write(2) by `who` does on
  // ext4 (KillSetIdOnModify).
  Result<size_t> Write(uint64_t ino, uint64_t off, const char* data, size_t size,
                       const Modifier& who = Modifier());
  Status Fsync(uint64_t ino, bool datasync);
  Status Fsyncdir(uint64_t ino);

  // Emits entries after offset `off` and before cookie `end` (from
  // Opendir); emit(name, attr, next_off) returns false when the reply buffer
  // is full. With `plus`, attr is complete and each emitted entry (but "."
  // and "..") counts as a lookup.
  using DirSink = std::function<bool(std::string_view name, const struct stat& attr,
                                     uint64_t next_off)>;
  static constexpr uint64_t kReaddirToEnd = UINT64_MAX;
  Status Readdir(uint64_t ino, uint64_t off, uint64_t end, bool plus, const DirSink& emit);

  Result<struct statvfs> Statfs();

  // flags: 0, XATTR_CREATE or XATTR_REPLACE.
  Status Setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags);
  Result<std::string> Getxattr(uint64_t ino, std::string_view name);
  // NUL-terminated names, concatenated.
  Result<std::string> Listxattr(uint64_t ino);
  Status Removexattr(uint64_t ino, std::string_view name);

  // Clears the file's set-ID bits as any modification by `who` does
  // (file_modified() on ext4), whatever the mode.
  Status Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len,
                   const Modifier& who = Modifier());
  Result<uint64_t> Lseek(uint64_t ino, uint64_t off, int whence);
  // Between unflagged ranges at the same offset within a block, whole
  // blocks are shared (reference counted, copied on the next write to
  // either side) and the copy is one transaction: after a crash it is there
  // whole or not at all. Otherwise (an NF destination, a misaligned copy)
  // bytes are copied as by write(2); an NF source is always copied (D1).
  // A long copy may return a short count, as copy_file_range(2) allows.
  // The destination's set-ID bits go as for a write by `who`.
  Result<size_t> CopyFileRange(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                               uint64_t off_out, size_t len, unsigned flags,
                               const Modifier& who = Modifier());

  // Called (with the inode number) whenever the Vfs changes attributes the
  // kernel has cached without being told: set-ID bits cleared by a write,
  // an O_TRUNC open, fallocate or copy_file_range. The FUSE glue asks the
  // kernel to drop its cached attributes, so that no stale set-user-ID bit
  // survives into a permission check or an exec. Set before serving.
  // Direct access (fs/direct_server). With leases set, every transaction
  // that changes a file's mapping or size is shown to them first
  // (LayoutLeases::BeforeLayoutChange). Set before the Vfs is shared, and
  // cleared before `leases` goes away.
  void set_layout_leases(LayoutLeases* leases) { leases_ = leases; }
  // Calls grant(layout) with ino's NF layout, under the file's shared lock,
  // so a lease registered by grant is seen by the next layout change.
  // ENOENT (removed), EINVAL (not a regular file).
  Status GrantLayout(uint64_t ino, const std::function<void(const NfLayout&)>& grant);
  // A write lease on ino is about to be granted to `who`: its set-ID
  // bits go now, as for a write of its (KillSetIdOnModify), committed.
  // ENODATA, with the bits left alone, when the file has no NF extent to
  // lease.
  Status BeforeDirectWrites(uint64_t ino, const Modifier& who);
  // A write lease of `who` on ino ended (wrote: it wrote through it): the
  // size its appends published becomes durable in the store (its slot can
  // go), mtime and ctime become now, and set-ID bits go again (a chmod may
  // have come during the lease).
  void AfterDirectWrites(uint64_t ino, const Modifier& who, bool wrote);
  // Takes in what direct writers did to ino so far: the size an appender
  // published (durable in its slot), and new timestamps if they wrote.
  void CatchUpWithDirectWrites(uint64_t ino);
  // How long the kernel may cache ino's attributes: not at all while a
  // write lease lets a client change its data and size with no request.
  double AttrTimeout(uint64_t ino, double usual) const;
  // A descriptor of ino open for writing came (opened) or went (released):
  // a lease that skips fsync must end before another writer can dirty
  // anything (NfLayout::nothing_to_sync).
  void WriterOpened(uint64_t ino);
  void WriterClosed(uint64_t ino);

  // `fn(ino)` drops the kernel's cached attributes of ino (never its
  // pages: see main.cc); called after changes the kernel did not make
  // itself. Set before serving, cleared before `fn`'s target goes away.
  void set_attr_invalidator(std::function<void(uint64_t ino)> fn) {
    attr_invalidator_ = std::move(fn);
  }
  void InvalidateKernelAttrs(uint64_t ino);

  uint32_t block_size() const { return bs_; }
  // The volume underneath, for tools and tests (e.g. Device::persist_calls).
  Volume& volume() { return *volume_; }

  // Inodes cached now (for tests and statistics).
  size_t cached_inodes() const { return table_.size(); }

  const VfsStats& stats() const { return stats_; }
  // The durability statistics as "key value" lines, one per line, for the
  // user.nosyncfs.stats xattr: the device's persistence and how it was
  // found, free and NF bytes, fsync and NF write counters (VfsStats), log
  // persists and transactions (Volume), device persists. The FUSE glue
  // appends its request counts. Values hold no newline; only
  // persistence_detected_by's has spaces (the rest of its line).
  std::string StatsText() const;

 private:
  // A pin on a cached inode (see InodeTable): while one is held, the Inode
  // stays in memory. Dropping the last pin of an idle inode retires it
  // (persists, frees or evicts it), so hold pins only where a retire may
  // run: never under an inode lock of the same inode.
  class InodeRef {
   public:
    InodeRef() = default;
    InodeRef(Vfs* vfs, Inode* inode) : vfs_(vfs), inode_(inode) {}
    InodeRef(InodeRef&& o) noexcept : vfs_(o.vfs_), inode_(o.inode_) { o.inode_ = nullptr; }
    InodeRef& operator=(InodeRef&& o) noexcept;
    InodeRef(const InodeRef&) = delete;
    InodeRef& operator=(const InodeRef&) = delete;
    ~InodeRef() { reset(); }
    void reset();
    Inode* get() const { return inode_; }
    Inode* operator->() const { return inode_; }
    Inode& operator*() const { return *inode_; }
    explicit operator bool() const { return inode_ != nullptr; }

   private:
    Vfs* vfs_ = nullptr;
    Inode* inode_ = nullptr;
  };

  // Exclusive locks on several inodes, taken in the lock order.
  class LockSet {
   public:
    void Add(Inode* inode);
    void Lock();
    // Locks one more inode, which must come after all held ones in lock
    // order.
    void AddLocked(Inode* inode);
    void Unlock();
    ~LockSet() { Unlock(); }

   private:
    std::vector<Inode*> inodes_;
    bool locked_ = false;
  };

  // ---- inode cache (vfs.cc) ----
  // Pinned; loaded from the store when not cached. ENOENT if there is no
  // such inode. Callers hold a lock that keeps the inode's name (or the
  // kernel's reference) alive, so a loaded record cannot be stale.
  Result<InodeRef> Get(uint64_t ino);
  // Lookup of "." (the inode `ino`) or, with parent_of_dir, ".." (its
  // parent directory).
  Result<Entry> LookupByIno(uint64_t ino, bool parent_of_dir);
  // The cached inode, pinned, or an empty ref.
  InodeRef Find(uint64_t ino);
  // Waits until the placeholder is loaded; false if loading failed.
  static bool WaitLoaded(Inode* inode);
  // Reads the record (and extents) into a placeholder nobody else uses yet.
  Status LoadInto(Inode* inode);
  void Unpin(Inode* inode);
  // Called with the last pin of an idle inode: frees an unlinked one, or
  // persists and evicts it.
  void Retire(Inode* inode);
  // ENOENT for an inode whose records are deleted (a lookup raced an unlink).
  static Status CheckAlive(const Inode& inode);

  struct stat StatOf(Inode* inode);
  // Records rec of every inode (locked exclusively) in txn, commits, and
  // notes the sequence number in each.
  Status Commit(Transaction&& txn, std::initializer_list<Inode*> touched, bool durable);
  // Commit with device bytes changed in place, all or nothing across a
  // crash (Volume::CommitInPlace); durable on return.
  Status CommitInPlace(Transaction&& txn, std::initializer_list<Inode*> touched,
                       const InPlaceWork& work);
  // Commit's common part: puts the touched inodes, commits with `commit`,
  // and on success marks them committed (on failure resets their dentry
  // caches, which already hold the entry changes).
  Status CommitWith(Transaction&& txn, std::initializer_list<Inode*> touched,
                    const std::function<Result<uint64_t>(Transaction&&)>& commit);
  // The device ranges of the mapped bytes of [off, end), to zero in place.
  NfLayout NfLayoutLocked(const Inode& inode) const;
  // Shows the leases every layout change of txn (Transaction::layout_changed).
  void CheckLeases(const Transaction& txn, std::initializer_list<Inode*> touched);
  // What direct writers did (LayoutLeases::TakeDirectWrites), into the
  // record: CatchUp takes the lock (exclusively only when something is
  // new), the others need it held exclusively.
  void CatchUp(Inode* inode);
  void AbsorbDirectWritesLocked(Inode* inode);
  void ApplyDirectWritesLocked(Inode* inode, const DirectWrites& w);
  // Takes in what the file's slot holds, commits it durably, and lets the
  // slot go if no write lease uses it any more.
  Status FoldSizeSlotLocked(Inode* inode);
  // Exclusive lock held, before a change that depends on the size: the
  // appender's lease ends, and what it published is folded.
  Status SettleDirectWritesLocked(Inode* inode);
  // Every size a slot holds, into its cached inode (committed by the next
  // flush): before a remount read-only or the shutdown.
  void AbsorbAllSizeSlots();
  void AddZeroWork(const Inode* inode, uint64_t off, uint64_t end, InPlaceWork* work) const;
  // The inode has something to persist or commit later.
  void MarkDirty(Inode* inode);
  // The inode has nothing to persist or commit any more (mu exclusive).
  void MarkCleanIfClean(Inode* inode);
  Status PersistDirtyData(Inode* inode);
  Status FlushLazyAttrs(Inode* inode);
  // Persists every dirty inode's data and commits its attributes, in
  // batches; the log is left to the caller to persist.
  Status FlushAll();

  // ---- namespace (vfs_namespace.cc) ----
  // The entry `name` of `dir` (whose mu the caller holds), from its
  // DentryCache or the store.
  Result<std::optional<DirentRecord>> FindDirent(Inode* dir, std::string_view name);
  void CacheDirent(Inode* dir, std::string_view name, const std::optional<DirentRecord>& d);
  // With `open`, the new inode starts with one open handle (Create).
  Result<Entry> MakeNode(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                         std::string_view symlink_target, const Caller& caller, bool open);
  // The record of a new inode of `mode` made by `caller` in `dir` (whose
  // lock is held), with its inode number taken in txn.
  InodeRecord NewInodeRecord(Transaction* txn, const Inode& dir, mode_t mode, dev_t rdev,
                             const Caller& caller);
  // Puts a committed new inode into the table, referenced by one lookup
  // (and one open handle, with `open`).
  Entry AdoptNewInode(std::unique_ptr<Inode> fresh, bool open);
  // Entry changes, into txn and the directory's DentryCache (mu exclusive;
  // a failed commit clears the cache, see Commit).
  void AddDirent(Transaction* txn, Inode* dir, std::string_view name, const Inode& child);
  void PutDirent(Transaction* txn, Inode* dir, const DirentRecord& d);
  void RemoveDirent(Transaction* txn, Inode* dir, const DirentRecord& d);
  // Drops a link from `inode`; frees it now, or marks it an orphan while
  // referenced.
  Status DropLink(Transaction* txn, Inode* inode);
  Status DestroyInode(Transaction* txn, Inode* inode);
  // Under rename_mu_: whether `maybe_ancestor` is `dir` or above it.
  bool IsAncestor(uint64_t maybe_ancestor, uint64_t dir);
  Result<bool> IsDirEmpty(uint64_t dir);
  // Pins and locks the directory `parent` and the inode its entry `name`
  // names, in lock order; with the entry as seen under both locks.
  struct LockedEntry;
  Result<LockedEntry> LockDirAndChild(uint64_t parent, std::string_view name);
  Status RenameLocked(Inode* src_dir, const DirentRecord& src, Inode* dst_dir,
                      std::string_view new_name, const std::optional<DirentRecord>& dst,
                      Inode* moved, Inode* target, unsigned flags);

  // ---- data (vfs_data.cc) ----
  // Reading data or listing a directory: atime as relatime updates it
  // (mu shared or exclusive).
  void TouchAtime(Inode* inode);
  Result<size_t> WriteLocked(Inode* inode, uint64_t off, const char* data, size_t size);
  // Allocates blocks for the holes of the block ranges, mapping them with
  // `flags`; all-or-nothing (ENOSPC). New blocks are zero-filled and
  // persisted, except the bytes in [keep_off, keep_end), which the caller
  // fills and persists itself before anything commits the mapping.
  using BlockRanges = std::vector<std::pair<uint64_t, uint64_t>>;
  Status FillHoles(Inode* inode, const BlockRanges& ranges, uint32_t flags,
                   uint64_t keep_off = 0, uint64_t keep_end = 0,
                   BlockRanges* allocated = nullptr);
  // O_TRUNC: truncate to 0, update mtime/ctime, commit.
  Status OpenTruncateLocked(Inode* inode, const Modifier& who);

  // ---- attributes and privileges (vfs_attr.cc) ----
  Status TruncateLocked(Inode* inode, uint64_t size, Transaction* txn, bool* durable);
  // Before the size grows from rec.size to cover `new_start`: zeroes the
  // old bytes a shrinking truncate left past EOF in the last block (NF:
  // persisted now; else dirty, so fsync persists them before the new size).
  Status ZeroTailForGrowth(Inode* inode, uint64_t new_start);
  // The kernel's rules for set-ID bits (fs/attr.c), under mu exclusive.
  // Each returns whether the mode changed (ctime then too); the caller
  // commits it. (security.capability stays the kernel's: it removes it
  // through REMOVEXATTR before the change.)
  //  - A modification (write, truncate, O_TRUNC, fallocate, copy into) of
  //    a regular file by a caller without CAP_FSETID clears set-user-ID,
  //    and set-group-ID if group execute is set or the caller is not in
  //    the file's group (setattr_should_drop_suidgid).
  //  - chown or chgrp of anything but a directory, by anyone, even one
  //    that changes no id, clears set-user-ID, and set-group-ID if group
  //    execute is set or the caller is neither in the file's group (before
  //    the change) nor holds CAP_FSETID (chown_common).
  static bool KillSetIdOnModify(Inode* inode, const Modifier& who);
  static bool KillSetIdOnChown(Inode* inode, const Modifier& who);

  // ---- space (vfs_space.cc) ----
  // fallocate mode 0 or KEEP_SIZE: allocates (zeroed) blocks for the holes.
  Status AllocateLocked(Inode* inode, uint64_t off, uint64_t len, bool keep_size);
  Status PunchHoleLocked(Inode* inode, uint64_t off, uint64_t len);
  Status ZeroRangeLocked(Inode* inode, uint64_t off, uint64_t len, bool keep_size);
  // COLLAPSE_RANGE (remove [off, off+len), moving the rest down) or
  // INSERT_RANGE (a hole of len bytes at off, moving the rest up): whole
  // blocks, ext4's errno rules, EPERM when NF blocks would move.
  Status ShiftRangeLocked(Inode* inode, uint64_t off, uint64_t len, bool insert);
  // Zeroes bytes of mapped blocks in [off, end) in place; persists NF parts
  // and records the rest as dirty. Only for bytes past EOF (the old tail of
  // a growing file), which no reader sees before the growth commits, so it
  // needs no intent; visible bytes go through CommitInPlace.
  Status ZeroInPlace(Inode* inode, uint64_t off, uint64_t end);

  // ---- block sharing (vfs_share.cc) ----
  // The parts of logical blocks [first, first+count) whose device blocks
  // other extents may map too (never NF ones).
  BlockRanges SharedBlocksLocked(const Inode& inode, uint64_t first, uint64_t count) const;
  // Gives the shared blocks of [first, first+count) private copies and
  // commits the new mapping at once (not durably: it changes where the
  // bytes are, not what they are). ENOSPC leaves everything as it was.
  // Call it before the operation changes the inode's mapping in memory:
  // its commit takes every extent change made so far.
  Status UnshareLocked(Inode* inode, uint64_t first, uint64_t count);
  // copy_file_range by sharing whole blocks (offsets congruent modulo the
  // block size, no NF block in the destination range); one transaction.
  Result<size_t> CopySharedLocked(Inode* in, uint64_t off_in, Inode* out, uint64_t off_out,
                                  uint64_t len);
  // copy_file_range as a sequence of writes.
  Result<size_t> CopyBytesLocked(Inode* in, uint64_t off_in, Inode* out, uint64_t off_out,
                                 uint64_t len);

  // ---- the user.nosync interface (vfs_nosync.cc) ----
  // The flags of blocks newly allocated to a file: NF under a no-fsync
  // policy, else none.
  static uint32_t NewBlockFlags(const Inode& inode) {
    return inode.rec.nf_grow_blocks != 0 ? uint32_t{kExtentNoFsync} : uint32_t{0};
  }
  // At the last close of a file under a policy: the NF space it took past
  // its size goes back (mu not held).
  void GiveBackPreallocation(Inode* inode);
  static bool IsNosyncXattr(std::string_view name);
  // On a regular file, the NF set; on a directory, the no-fsync policy
  // (fs/nosync_policy.h). Clearing a file's NF set also ends a policy it
  // was created under (the user's word is the last); setting ranges keeps
  // it, so that what the file grows into stays NF.
  Status SetNosyncLocked(Inode* inode, std::string_view value, int flags);
  Status ClearNosyncLocked(Inode* inode);
  // A directory's policy (0: none), durable on return (mu exclusive).
  Status SetNosyncPolicyLocked(Inode* inode, uint32_t grow_blocks);
  // user.nosync, or a page of user.nosync.extents (the plain name or
  // user.nosync.extents@OFFSET). EINVAL for a malformed page name, ENODATA
  // for user.nosync unset or a file that is not regular, E2BIG for a
  // user.nosync longer than 64 KiB (never for a page: each is at most
  // 32 KiB).
  Result<std::string> GetNosyncLocked(Inode* inode, std::string_view name);
  // The page of the extent listing from byte `off`, each extent one line,
  // ending with "more NEXT" when extents from NEXT on did not fit (mu held).
  std::string ExtentsPageLocked(const Inode& inode, uint64_t off) const;
  // Makes the NF set of `inode` exactly `target` (block ranges), durably.
  Status ApplyNosyncSet(Inode* inode, const BlockRanges& target);
  BlockRanges NosyncBlocks(const Inode& inode) const;
  // Whether any block of [first, first+count) is mapped with the NF flag.
  static bool HasNosyncBlocks(const Inode& inode, uint64_t first, uint64_t count);

  std::unique_ptr<Volume> volume_;
  // VfsOptions, each read by requests without a lock (SetOptions).
  std::atomic<VfsOptions::NfPunch> nf_punch_;
  std::atomic<VfsOptions::Atime> atime_;
  std::atomic<bool> dir_atime_;
  // Remounted read-only, and the changes in flight (ChangeTicket).
  std::atomic<bool> read_only_now_{false};
  std::atomic<uint32_t> changes_in_flight_{0};
  uint32_t bs_;
  // Dirty data is tracked (and persisted) in units of this many bytes: the
  // device's persistence granularity, at most a block.
  uint64_t dirty_granule_;
  InodeTable table_;
  InodeRef root_;  // pinned for the Vfs's life
  std::mutex rename_mu_;

  using DirtyList = boost::intrusive::list<
      Inode, boost::intrusive::member_hook<Inode, boost::intrusive::list_member_hook<>,
                                           &Inode::dirty_hook>>;
  std::mutex dirty_mu_;
  DirtyList dirty_list_;  // dirty_mu_

  std::function<void(uint64_t)> attr_invalidator_;
  LayoutLeases* leases_ = nullptr;
  VfsStats stats_;
  std::mutex shutdown_mu_;
  bool shut_down_ = false;  // shutdown_mu_
};

}  // namespace nosyncfs
