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
// Thread-safety: every public method takes mu_, one lock for the whole
// file system; the read and write paths copy data under it. There is no
// other lock, so there is no lock order to keep.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/status.h"
#include "extent/extent_map.h"
#include "journal/schema.h"
#include "journal/volume.h"

namespace nosyncfs {

struct VfsOptions {
  enum class NfPunch { kSplit, kDeny };
  NfPunch nf_punch = NfPunch::kSplit;
};

// Who is asking: from the FUSE request context.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
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
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;
  struct timespec atime {}, mtime {}, ctime {};
};

class Vfs {
 public:
  static constexpr size_t kMaxNameLen = 255;
  static constexpr uint32_t kMaxLinks = 65000;

  Vfs(std::unique_ptr<Volume> volume, VfsOptions options);
  ~Vfs();

  // Finishes what a crash left: frees unlinked-while-open (orphan) inodes.
  Status Init();
  // Persists all pending data and metadata and checkpoints. Idempotent.
  Status Shutdown();

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
  // and its mtime/ctime set, as open(2) specifies.
  Status Open(uint64_t ino, bool truncate = false);
  Result<Entry> Create(uint64_t parent, std::string_view name, mode_t mode, bool exclusive,
                       bool truncate, const Caller& caller);
  void Release(uint64_t ino);
  Status Opendir(uint64_t ino);

  // Calls sink with iovecs that point into the device mapping (and a zero
  // buffer for holes), under the lock: sink must copy before returning.
  using ReadSink = std::function<void(const struct iovec* iov, int count)>;
  Status Read(uint64_t ino, uint64_t off, size_t size, const ReadSink& sink);
  Result<size_t> Write(uint64_t ino, uint64_t off, const char* data, size_t size);
  Status Fsync(uint64_t ino, bool datasync);
  Status Fsyncdir(uint64_t ino);

  // Emits entries after offset `off`; emit(name, attr, next_off) returns
  // false when the reply buffer is full. With `plus`, attr is complete and
  // each emitted entry (but "." and "..") counts as a lookup.
  using DirSink = std::function<bool(std::string_view name, const struct stat& attr,
                                     uint64_t next_off)>;
  Status Readdir(uint64_t ino, uint64_t off, bool plus, const DirSink& emit);

  Result<struct statvfs> Statfs();

  // flags: 0, XATTR_CREATE or XATTR_REPLACE.
  Status Setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags);
  Result<std::string> Getxattr(uint64_t ino, std::string_view name);
  // NUL-terminated names, concatenated.
  Result<std::string> Listxattr(uint64_t ino);
  Status Removexattr(uint64_t ino, std::string_view name);

  Status Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len);
  Result<uint64_t> Lseek(uint64_t ino, uint64_t off, int whence);
  Result<size_t> CopyFileRange(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                               uint64_t off_out, size_t len, unsigned flags);

  uint32_t block_size() const { return bs_; }
  // The volume underneath, for tools and tests (e.g. Device::persist_calls).
  // Callers must not use it concurrently with Vfs methods.
  Volume& volume() { return *volume_; }

 private:
  struct Inode {
    InodeRecord rec;
    uint64_t nlookup = 0;
    uint32_t open_count = 0;
    bool extents_loaded = false;
    ExtentMap extents;
    // rec differs from the store. Timestamps of NF writes stay here until
    // the next commit (SEMANTICS.md section 1).
    bool attr_dirty = false;
    // A change fsync must make durable (an unflagged write's mtime/size).
    bool attr_needs_sync = false;
    // Its records are deleted (in a committed or committing transaction):
    // destroying it again must not count it twice.
    bool destroyed = false;
    uint64_t last_seq = 0;  // last transaction that touched this inode
    // Unflagged data written but not persisted: byte start -> end.
    std::map<uint64_t, uint64_t> dirty;
  };

  Result<Inode*> Get(uint64_t ino);
  Result<Inode*> GetDir(uint64_t ino);
  Status LoadExtents(Inode* inode);
  Result<std::optional<DirentRecord>> FindDirent(uint64_t dir, std::string_view name);
  struct stat StatOf(Inode* inode);
  Entry EntryOf(Inode* inode);

  // Adds every inode's current record to txn, commits, and notes the seq.
  Status Commit(Transaction&& txn, std::initializer_list<Inode*> touched, bool durable);
  Result<Entry> MakeNode(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                         std::string_view symlink_target, const Caller& caller);
  void AddDirent(Transaction* txn, Inode* dir, std::string_view name, const Inode& child);
  void RemoveDirent(Transaction* txn, uint64_t dir, const DirentRecord& d);
  // Drops a link from `inode`; frees it now, or marks it an orphan while
  // referenced.
  Status DropLink(Transaction* txn, Inode* inode);
  Status DestroyInode(Transaction* txn, Inode* inode);
  void MaybeEvict(uint64_t ino);
  Status PersistDirtyData(Inode* inode);
  // Reading data or listing a directory: atime as relatime updates it.
  void TouchAtime(Inode* inode);
  Status FlushLazyAttrs(Inode* inode);

  Result<size_t> WriteLocked(Inode* inode, uint64_t off, const char* data, size_t size);
  // Allocates, zero-fills and persists the holes of the block ranges
  // (first, count), mapping them with `flags`; all-or-nothing (ENOSPC).
  using BlockRanges = std::vector<std::pair<uint64_t, uint64_t>>;
  Status FillHoles(Inode* inode, const BlockRanges& ranges, uint32_t flags);

  // The user.nosync interface (vfs_nosync.cc).
  static bool IsNosyncXattr(std::string_view name);
  Status SetNosyncLocked(Inode* inode, std::string_view value, int flags);
  Status ClearNosyncLocked(Inode* inode);
  Result<std::string> GetNosyncLocked(Inode* inode, std::string_view name);
  // Makes the NF set of `inode` exactly `target` (block ranges), durably.
  Status ApplyNosyncSet(Inode* inode, const BlockRanges& target);
  BlockRanges NosyncBlocks(const Inode& inode) const;
  Status TruncateLocked(Inode* inode, uint64_t size, Transaction* txn, bool* durable);
  // fallocate PUNCH_HOLE / ZERO_RANGE over [off, off+len) (vfs.cc).
  Status PunchHoleLocked(Inode* inode, uint64_t off, uint64_t len);
  Status ZeroRangeLocked(Inode* inode, uint64_t off, uint64_t len, bool keep_size);
  // Zeroes bytes of mapped blocks in [off, end) in place; persists NF parts
  // (setting *touched_nf) and records the rest as dirty.
  Status ZeroInPlace(Inode* inode, uint64_t off, uint64_t end, bool* touched_nf);
  // Before the size grows from rec.size to cover `new_start`: zeroes the
  // old bytes a shrinking truncate left past EOF in the last block (NF:
  // persisted now; else dirty, so fsync persists them before the new size).
  Status ZeroTailForGrowth(Inode* inode, uint64_t new_start);
  // O_TRUNC: truncate to 0, update mtime/ctime, commit.
  Status OpenTruncateLocked(Inode* inode);
  bool IsAncestor(uint64_t maybe_ancestor, uint64_t dir);
  Result<bool> IsDirEmpty(uint64_t dir);

  std::unique_ptr<Volume> volume_;
  VfsOptions options_;
  uint32_t bs_;
  std::mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<Inode>> inodes_;
  bool shut_down_ = false;

};

}  // namespace nosyncfs
