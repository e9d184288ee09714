// The Vfs's namespace: lookup, create, link, unlink, rename, readdir, and
// the lifetime of inodes (forget, orphans, destruction).
//
// Locking (fs/vfs.h): a directory's mu guards its entries; an operation
// that changes an entry and the inode it names first finds the inode under
// the directory's lock, then takes both locks in lock order and checks the
// entry again (LockDirAndChild), since lock order may not allow taking the
// child's lock while holding the directory's.
#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>

#include <optional>

#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using namespace vfs_internal;

namespace {

// Entries one pass of Readdir collects under the directory's lock before
// emitting them without it.
constexpr size_t kReaddirChunk = 128;

Status CheckName(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return Status::Error(EINVAL, "invalid name");
  }
  if (name.size() > Vfs::kMaxNameLen) return Status::Error(ENAMETOOLONG, "name too long");
  return Status::Ok();
}

}  // namespace

// Members in this order, so that the locks go before the pins.
struct Vfs::LockedEntry {
  InodeRef dir;
  InodeRef child;
  DirentRecord entry;
  std::unique_ptr<LockSet> locks;
};

Result<std::optional<DirentRecord>> Vfs::FindDirent(Inode* dir, std::string_view name) {
  {
    std::lock_guard lazy(dir->lazy_mu);
    if (dir->dentries) {
      if (auto cached = dir->dentries->Find(name)) return *cached;
    }
  }
  NSF_ASSIGN_OR_RETURN(auto value, volume_->store().Get(keys::Dirent(dir->ino, name)));
  std::optional<DirentRecord> found;
  if (value) {
    NSF_ASSIGN_OR_RETURN(found, DirentRecord::Decode(*value));
    found->name = std::string(name);
  }
  CacheDirent(dir, name, found);
  return found;
}

void Vfs::CacheDirent(Inode* dir, std::string_view name, const std::optional<DirentRecord>& d) {
  std::lock_guard lazy(dir->lazy_mu);
  if (!dir->dentries) dir->dentries = std::make_unique<DentryCache>();
  dir->dentries->Put(name, d);
}

Result<Vfs::LockedEntry> Vfs::LockDirAndChild(uint64_t parent, std::string_view name) {
  NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(parent));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  {
    // The common case: the child comes after the directory in lock order
    // (not a directory, or one with a higher number), so its lock can be
    // taken under the directory's, and the entry cannot change meanwhile.
    InodeRef child;  // before `locks`: unpinned after they are released
    auto locks = std::make_unique<LockSet>();
    locks->Add(dir.get());
    locks->Lock();
    NSF_RETURN_IF_ERROR(CheckAlive(*dir));
    NSF_ASSIGN_OR_RETURN(auto d, FindDirent(dir.get(), name));
    if (!d) return Status::Error(ENOENT, "no such entry");
    NSF_ASSIGN_OR_RETURN(child, Get(d->ino));
    if (!child->is_dir() || child->ino > dir->ino) {
      locks->AddLocked(child.get());
      return LockedEntry{std::move(dir), std::move(child), std::move(*d), std::move(locks)};
    }
  }
  for (;;) {
    InodeRef child;
    uint64_t child_ino = 0;
    {
      std::shared_lock lock(dir->mu);
      NSF_RETURN_IF_ERROR(CheckAlive(*dir));
      NSF_ASSIGN_OR_RETURN(auto d, FindDirent(dir.get(), name));
      if (!d) return Status::Error(ENOENT, "no such entry");
      child_ino = d->ino;
      NSF_ASSIGN_OR_RETURN(child, Get(child_ino));
    }
    auto locks = std::make_unique<LockSet>();
    locks->Add(dir.get());
    locks->Add(child.get());
    locks->Lock();
    NSF_ASSIGN_OR_RETURN(auto again, FindDirent(dir.get(), name));
    if (!again) return Status::Error(ENOENT, "no such entry");
    if (again->ino == child_ino) {
      return LockedEntry{std::move(dir), std::move(child), std::move(*again), std::move(locks)};
    }
    // Renamed or replaced between the two looks: look again.
  }
}

void Vfs::AddDirent(Transaction* txn, Inode* dir, std::string_view name, const Inode& child) {
  DirentRecord d;
  d.ino = child.ino;
  d.type = child.type;
  d.cookie = dir->rec.next_cookie++;
  d.name = std::string(name);
  PutDirent(txn, dir, d);
}

void Vfs::PutDirent(Transaction* txn, Inode* dir, const DirentRecord& d) {
  txn->batch.Put(keys::Dirent(dir->ino, d.name), d.Encode(false));
  txn->batch.Put(keys::Cookie(dir->ino, d.cookie), d.Encode(true));
  CacheDirent(dir, d.name, d);
}

void Vfs::RemoveDirent(Transaction* txn, Inode* dir, const DirentRecord& d) {
  txn->batch.Delete(keys::Dirent(dir->ino, d.name));
  txn->batch.Delete(keys::Cookie(dir->ino, d.cookie));
  CacheDirent(dir, d.name, std::nullopt);
}

Status Vfs::DestroyInode(Transaction* txn, Inode* inode) {
  uint64_t ino = inode->ino;
  if (inode->extent_map) {
    txn->Free(inode->extent_map->Unmap(0, UINT64_MAX / 2));
    txn->PutExtentChanges(ino, *inode->extent_map);
  }
  if (inode->maybe_xattrs) {
    NSF_RETURN_IF_ERROR(volume_->store().Scan(keys::XattrPrefix(ino), "",
                                              [&](std::string_view k, std::string_view) {
                                                txn->batch.Delete(std::string(k));
                                                return true;
                                              }));
  }
  if (inode->type == S_IFLNK) txn->batch.Delete(keys::SymlinkTarget(ino));
  if (inode->maybe_orphan_record) txn->batch.Delete(keys::Orphan(ino));
  txn->batch.Delete(keys::Inode(ino));
  ++txn->deleted_inodes;
  inode->dirty.reset();
  inode->attr_dirty = inode->attr_needs_sync = inode->atime_dirty = false;
  inode->destroyed = true;
  MarkCleanIfClean(inode);
  return Status::Ok();
}

Status Vfs::DropLink(Transaction* txn, Inode* inode) {
  if (inode->is_dir()) {
    inode->rec.nlink = 0;
  } else if (inode->rec.nlink > 0) {
    --inode->rec.nlink;
  }
  inode->rec.ctime = Now();
  if (inode->rec.nlink > 0) return Status::Ok();
  if (inode->open_count.load() > 0) {
    // Still open: freed when the last handle goes (Retire), or by the
    // orphan pass of the next mount if we crash first.
    txn->batch.Put(keys::Orphan(inode->ino), "");
    inode->maybe_orphan_record = true;
    txn->PutInode(inode->rec);
    return Status::Ok();
  }
  // Not open: nothing can reach its data any more, so it goes now, in this
  // transaction. The kernel's lookup references (forgotten later) only pin
  // the Inode, which answers ENOENT from now on.
  return DestroyInode(txn, inode);
}

Result<Entry> Vfs::Lookup(uint64_t parent, std::string_view name) {
  if (name == "." || name == "..") return LookupByIno(parent, name == "..");
  NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(parent));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  if (name.size() > kMaxNameLen) return Status::Error(ENAMETOOLONG, "name too long");
  InodeRef child;
  {
    std::shared_lock lock(dir->mu);
    NSF_ASSIGN_OR_RETURN(auto d, FindDirent(dir.get(), name));
    if (!d) return Status::Error(ENOENT, "no such entry");
    NSF_ASSIGN_OR_RETURN(child, Get(d->ino));
  }
  // The directory's lock is gone (lock order); an unlink in between leaves
  // the inode either alive (then this lookup simply came first) or
  // destroyed (then it fails as if it came second).
  std::shared_lock lock(child->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*child));
  child->nlookup.fetch_add(1);
  return Entry{child->ino, StatOf(child.get())};
}

Result<Entry> Vfs::LookupByIno(uint64_t ino, bool parent_of_dir) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  if (parent_of_dir) {
    uint64_t up;
    {
      std::shared_lock lock(inode->mu);
      NSF_RETURN_IF_ERROR(CheckAlive(*inode));
      if (!inode->is_dir()) return Status::Error(ENOTDIR, "not a directory");
      up = inode->rec.parent ? inode->rec.parent : kRootIno;
    }
    NSF_ASSIGN_OR_RETURN(inode, Get(up));
  }
  std::shared_lock lock(inode->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*inode));
  // Unlinked (and open elsewhere): its handles are stale, as on ext4.
  if (inode->rec.nlink == 0) return Status::Error(ENOENT, "inode was unlinked");
  inode->nlookup.fetch_add(1);
  return Entry{inode->ino, StatOf(inode.get())};
}

void Vfs::Forget(uint64_t ino, uint64_t n) {
  InodeRef inode = Find(ino);
  if (!inode) return;
  std::shared_lock lock(inode->mu);
  uint64_t cur = inode->nlookup.load();
  while (!inode->nlookup.compare_exchange_weak(cur, n >= cur ? 0 : cur - n)) {
  }
  // Dropping the pin (after the lock) retires the inode if it is idle now.
}

Result<Entry> Vfs::MakeNode(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                            std::string_view symlink_target, const Caller& caller, bool open) {
  NSF_RETURN_IF_ERROR(CheckName(name));
  NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(parent));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  std::unique_lock lock(dir->mu);
  if (dir->rec.nlink == 0 || dir->destroyed) return Status::Error(ENOENT, "directory was removed");
  NSF_ASSIGN_OR_RETURN(auto existing, FindDirent(dir.get(), name));
  if (existing) return Status::Error(EEXIST, "entry exists");
  if (S_ISDIR(mode) && dir->rec.nlink >= kMaxLinks) return Status::Error(EMLINK, "too many links");

  Transaction txn;
  InodeRecord r = NewInodeRecord(&txn, *dir, mode, rdev, caller);
  if (S_ISLNK(mode)) {
    r.size = symlink_target.size();
    txn.batch.Put(keys::SymlinkTarget(r.ino), std::string(symlink_target));
  }
  // Nobody else can reach the new inode before its entry exists (under the
  // directory's lock) and it is in the table, so it needs no lock yet.
  auto fresh = std::make_unique<Inode>(r);
  fresh->maybe_orphan_record = fresh->maybe_xattrs = false;
  const InodeRecord dir_before = dir->rec;
  AddDirent(&txn, dir.get(), name, *fresh);
  if (S_ISDIR(mode)) ++dir->rec.nlink;
  dir->rec.mtime = dir->rec.ctime = r.ctime;
  Status st = Commit(std::move(txn), {fresh.get(), dir.get()}, false);
  if (!st.ok()) {
    dir->rec = dir_before;
    return st;
  }
  return AdoptNewInode(std::move(fresh), open);
}

InodeRecord Vfs::NewInodeRecord(Transaction* txn, const Inode& dir, mode_t mode, dev_t rdev,
                                const Caller& caller) {
  InodeRecord r;
  r.ino = volume_->NextInodeNumber(txn);
  r.mode = mode;
  r.uid = caller.uid;
  r.gid = caller.gid;
  if (dir.rec.mode & S_ISGID) {
    // BSD group semantics for setgid directories, as Linux file systems do.
    r.gid = dir.rec.gid;
    if (S_ISDIR(mode)) r.mode |= S_ISGID;
  }
  r.nlink = S_ISDIR(mode) ? 2 : 1;
  r.rdev = (S_ISCHR(mode) || S_ISBLK(mode)) ? rdev : 0;
  r.atime = r.mtime = r.ctime = Now();
  if (S_ISDIR(mode)) r.parent = dir.ino;
  // The directory's no-fsync policy: in the same record, so after a crash
  // the new file or directory has it, or does not exist.
  if (S_ISDIR(mode) || S_ISREG(mode)) r.nf_grow_blocks = dir.rec.nf_grow_blocks;
  return r;
}

Entry Vfs::AdoptNewInode(std::unique_ptr<Inode> fresh, bool open) {
  fresh->nlookup.store(1);
  if (open) fresh->open_count.store(1);
  Entry entry{fresh->ino, StatOf(fresh.get())};
  InodeRef child(this, table_.InsertAndPin(std::move(fresh)));
  return entry;
}

Result<Entry> Vfs::CreateTmpfile(uint64_t parent, mode_t mode, const Caller& caller) {
  NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(parent));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  std::shared_lock lock(dir->mu);  // its mode and group; no entry changes
  if (dir->rec.nlink == 0 || dir->destroyed) return Status::Error(ENOENT, "directory was removed");
  Transaction txn;
  InodeRecord r = NewInodeRecord(&txn, *dir, S_IFREG | (mode & 07777), 0, caller);
  r.nlink = 0;
  // Committed with its orphan record: whatever happens to this daemon, the
  // next mount frees it unless a link (which deletes the record) came first.
  txn.batch.Put(keys::Orphan(r.ino), "");
  txn.PutInode(r);  // Commit puts only linked inodes
  auto fresh = std::make_unique<Inode>(r);
  fresh->maybe_orphan_record = true;
  fresh->maybe_xattrs = false;
  fresh->linkable = true;
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), {fresh.get()}, false));
  return AdoptNewInode(std::move(fresh), /*open=*/true);
}

Result<Entry> Vfs::Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                         const Caller& caller) {
  mode_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  type = mode & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
      type != S_IFBLK) {
    return Status::Error(EINVAL, "bad file type for mknod");
  }
  return MakeNode(parent, name, mode, rdev, {}, caller, false);
}

Result<Entry> Vfs::Mkdir(uint64_t parent, std::string_view name, mode_t mode,
                         const Caller& caller) {
  return MakeNode(parent, name, S_IFDIR | (mode & 07777), 0, {}, caller, false);
}

Result<Entry> Vfs::Symlink(uint64_t parent, std::string_view name, std::string_view target,
                           const Caller& caller) {
  if (target.empty() || target.size() >= PATH_MAX) {
    return Status::Error(target.empty() ? ENOENT : ENAMETOOLONG, "bad symlink target");
  }
  return MakeNode(parent, name, S_IFLNK | 0777, 0, target, caller, false);
}

Result<std::string> Vfs::Readlink(uint64_t ino) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  if (inode->type != S_IFLNK) return Status::Error(EINVAL, "not a symlink");
  std::shared_lock lock(inode->mu);
  NSF_ASSIGN_OR_RETURN(auto target, volume_->store().Get(keys::SymlinkTarget(ino)));
  if (!target) return Status::Error(EUCLEAN, "symlink without target");
  return *target;
}

Result<Entry> Vfs::Create(uint64_t parent, std::string_view name, mode_t mode, bool exclusive,
                          bool truncate, const Caller& caller, const Modifier& who) {
  for (;;) {
    auto made = MakeNode(parent, name, S_IFREG | (mode & 07777), 0, {}, caller, /*open=*/true);
    if (made.ok() || made.status().code() != EEXIST || exclusive) return made;
    // It exists: open it, as open(2) without O_EXCL does.
    NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(parent));
    InodeRef inode;
    {
      std::shared_lock lock(dir->mu);
      NSF_ASSIGN_OR_RETURN(auto d, FindDirent(dir.get(), name));
      if (!d) continue;  // removed meanwhile: create it after all
      NSF_ASSIGN_OR_RETURN(inode, Get(d->ino));
    }
    if (inode->is_dir()) return Status::Error(EISDIR, "is a directory");
    std::unique_lock lock(inode->mu);
    if (inode->destroyed) continue;
    if (truncate && inode->is_reg()) NSF_RETURN_IF_ERROR(OpenTruncateLocked(inode.get(), who));
    inode->nlookup.fetch_add(1);
    inode->open_count.fetch_add(1);
    return Entry{inode->ino, StatOf(inode.get())};
  }
}

Status Vfs::Unlink(uint64_t parent, std::string_view name) {
  NSF_ASSIGN_OR_RETURN(LockedEntry e, LockDirAndChild(parent, name));
  if (e.child->is_dir()) return Status::Error(EISDIR, "is a directory");
  Transaction txn;
  RemoveDirent(&txn, e.dir.get(), e.entry);
  e.dir->rec.mtime = e.dir->rec.ctime = Now();
  NSF_RETURN_IF_ERROR(DropLink(&txn, e.child.get()));
  return Commit(std::move(txn), {e.dir.get(), e.child.get()}, false);
}

Status Vfs::Rmdir(uint64_t parent, std::string_view name) {
  if (name == ".") return Status::Error(EINVAL, "cannot remove .");
  if (name == "..") return Status::Error(ENOTEMPTY, "cannot remove ..");
  NSF_ASSIGN_OR_RETURN(LockedEntry e, LockDirAndChild(parent, name));
  if (!e.child->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  NSF_ASSIGN_OR_RETURN(bool empty, IsDirEmpty(e.child->ino));
  if (!empty) return Status::Error(ENOTEMPTY, "directory not empty");
  Transaction txn;
  RemoveDirent(&txn, e.dir.get(), e.entry);
  --e.dir->rec.nlink;
  e.dir->rec.mtime = e.dir->rec.ctime = Now();
  NSF_RETURN_IF_ERROR(DropLink(&txn, e.child.get()));
  return Commit(std::move(txn), {e.dir.get(), e.child.get()}, false);
}

Result<bool> Vfs::IsDirEmpty(uint64_t dir) {
  bool empty = true;
  NSF_RETURN_IF_ERROR(volume_->store().Scan(keys::DirentPrefix(dir), "",
                                            [&](std::string_view, std::string_view) {
                                              empty = false;
                                              return false;
                                            }));
  return empty;
}

bool Vfs::IsAncestor(uint64_t maybe_ancestor, uint64_t dir) {
  // Walk up the parent pointers of directories from `dir` to the root.
  // Only cross-directory renames change them, under rename_mu_, which the
  // caller holds: the walk sees a still tree without the directories' locks.
  for (int depth = 0; depth < 4096; ++depth) {
    if (dir == maybe_ancestor) return true;
    if (dir == kRootIno) return false;
    auto inode = Get(dir);
    if (!inode.ok()) return false;
    dir = (*inode)->rec.parent;
  }
  return false;
}

Status Vfs::Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                   std::string_view new_name, unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    return Status::Error(EINVAL, "unsupported rename flags");
  }
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) {
    return Status::Error(EINVAL, "NOREPLACE with EXCHANGE");
  }
  NSF_RETURN_IF_ERROR(CheckName(new_name));
  NSF_ASSIGN_OR_RETURN(InodeRef src_dir, Get(parent));
  NSF_ASSIGN_OR_RETURN(InodeRef dst_dir, Get(new_parent));
  if (!src_dir->is_dir() || !dst_dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  std::unique_lock<std::mutex> tree_lock;
  if (parent != new_parent) tree_lock = std::unique_lock(rename_mu_);
  for (;;) {
    // Find both entries under the directories' locks, then lock all four
    // inodes in order and check that the entries still say the same.
    std::optional<DirentRecord> src, dst;
    InodeRef moved, target;
    {
      LockSet dirs;
      dirs.Add(src_dir.get());
      dirs.Add(dst_dir.get());
      dirs.Lock();
      NSF_ASSIGN_OR_RETURN(src, FindDirent(src_dir.get(), name));
      if (!src) return Status::Error(ENOENT, "no such entry");
      NSF_ASSIGN_OR_RETURN(dst, FindDirent(dst_dir.get(), new_name));
      NSF_ASSIGN_OR_RETURN(moved, Get(src->ino));
      if (dst) {
        NSF_ASSIGN_OR_RETURN(target, Get(dst->ino));
      }
    }
    LockSet all;
    all.Add(src_dir.get());
    all.Add(dst_dir.get());
    all.Add(moved.get());
    all.Add(target.get());
    all.Lock();
    NSF_ASSIGN_OR_RETURN(auto src_now, FindDirent(src_dir.get(), name));
    NSF_ASSIGN_OR_RETURN(auto dst_now, FindDirent(dst_dir.get(), new_name));
    bool same = src_now && src_now->ino == src->ino &&
                (dst ? (dst_now && dst_now->ino == dst->ino) : !dst_now);
    if (!same) continue;
    return RenameLocked(src_dir.get(), *src_now, dst_dir.get(), new_name, dst_now, moved.get(),
                        target.get(), flags);
  }
}

Status Vfs::RenameLocked(Inode* src_dir, const DirentRecord& src, Inode* dst_dir,
                         std::string_view new_name, const std::optional<DirentRecord>& dst,
                         Inode* moved, Inode* target, unsigned flags) {
  const uint64_t parent = src_dir->ino, new_parent = dst_dir->ino;
  bool moved_is_dir = moved->is_dir();
  if ((flags & RENAME_NOREPLACE) && dst) return Status::Error(EEXIST, "target exists");
  if ((flags & RENAME_EXCHANGE) && !dst) return Status::Error(ENOENT, "no target to exchange");
  if (parent == new_parent && src.name == new_name) return Status::Ok();
  if (dst && dst->ino == src.ino) {
    // Two links to one inode: POSIX says do nothing.
    return Status::Ok();
  }
  if (moved_is_dir && parent != new_parent && IsAncestor(moved->ino, new_parent)) {
    return Status::Error(EINVAL, "cannot move a directory into itself");
  }
  bool target_is_dir = target != nullptr && target->is_dir();
  Timespec now = Now();
  Transaction txn;

  if (flags & RENAME_EXCHANGE) {
    if (target_is_dir && new_parent != parent && IsAncestor(target->ino, parent)) {
      return Status::Error(EINVAL, "cannot move a directory into itself");
    }
    // Each name now points at the other inode; cookies stay with the names.
    DirentRecord a = src, b = *dst;
    a.ino = dst->ino;
    a.type = dst->type;
    b.ino = src.ino;
    b.type = src.type;
    PutDirent(&txn, src_dir, a);
    PutDirent(&txn, dst_dir, b);
    if (parent != new_parent) {
      if (moved_is_dir) {
        moved->rec.parent = new_parent;
        --src_dir->rec.nlink;
        ++dst_dir->rec.nlink;
      }
      if (target_is_dir) {
        target->rec.parent = parent;
        --dst_dir->rec.nlink;
        ++src_dir->rec.nlink;
      }
    }
    moved->rec.ctime = target->rec.ctime = now;
    src_dir->rec.mtime = src_dir->rec.ctime = dst_dir->rec.mtime = dst_dir->rec.ctime = now;
    return Commit(std::move(txn), {moved, target, src_dir, dst_dir}, false);
  }

  if (target != nullptr) {
    if (moved_is_dir && !target_is_dir) return Status::Error(ENOTDIR, "target is not a directory");
    if (!moved_is_dir && target_is_dir) return Status::Error(EISDIR, "target is a directory");
    if (target_is_dir) {
      NSF_ASSIGN_OR_RETURN(bool empty, IsDirEmpty(target->ino));
      if (!empty) return Status::Error(ENOTEMPTY, "target directory not empty");
    }
  }
  if (moved_is_dir && dst_dir->rec.nlink >= kMaxLinks && parent != new_parent) {
    return Status::Error(EMLINK, "too many links");
  }
  if (target != nullptr) {
    RemoveDirent(&txn, dst_dir, *dst);
    if (target_is_dir) --dst_dir->rec.nlink;
    NSF_RETURN_IF_ERROR(DropLink(&txn, target));
  }
  RemoveDirent(&txn, src_dir, src);
  AddDirent(&txn, dst_dir, new_name, *moved);
  if (moved_is_dir && parent != new_parent) {
    moved->rec.parent = new_parent;
    --src_dir->rec.nlink;
    ++dst_dir->rec.nlink;
  }
  moved->rec.ctime = now;
  src_dir->rec.mtime = src_dir->rec.ctime = dst_dir->rec.mtime = dst_dir->rec.ctime = now;
  return Commit(std::move(txn), {moved, target, src_dir, dst_dir}, false);
}

Result<Entry> Vfs::Link(uint64_t ino, uint64_t new_parent, std::string_view new_name) {
  NSF_RETURN_IF_ERROR(CheckName(new_name));
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  if (inode->is_dir()) return Status::Error(EPERM, "hard link to a directory");
  NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(new_parent));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  LockSet locks;
  locks.Add(inode.get());
  locks.Add(dir.get());
  locks.Lock();
  if (inode->destroyed || (inode->rec.nlink == 0 && !inode->linkable)) {
    return Status::Error(ENOENT, "file was removed");
  }
  if (inode->rec.nlink >= kMaxLinks) return Status::Error(EMLINK, "too many links");
  if (dir->rec.nlink == 0 || dir->destroyed) return Status::Error(ENOENT, "directory was removed");
  NSF_ASSIGN_OR_RETURN(auto existing, FindDirent(dir.get(), new_name));
  if (existing) return Status::Error(EEXIST, "entry exists");
  Transaction txn;
  AddDirent(&txn, dir.get(), new_name, *inode);
  // An O_TMPFILE file that gets its first name is no longer an orphan.
  const bool first_name = inode->rec.nlink == 0;
  if (first_name) txn.batch.Delete(keys::Orphan(inode->ino));
  ++inode->rec.nlink;
  Timespec now = Now();
  inode->rec.ctime = now;
  dir->rec.mtime = dir->rec.ctime = now;
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), {inode.get(), dir.get()}, false));
  if (first_name) inode->maybe_orphan_record = inode->linkable = false;
  inode->nlookup.fetch_add(1);
  return Entry{inode->ino, StatOf(inode.get())};
}

Result<uint64_t> Vfs::Opendir(uint64_t ino) {
  NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(ino));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  std::shared_lock lock(dir->mu);
  return dir->rec.next_cookie;
}

Status Vfs::Readdir(uint64_t ino, uint64_t off, uint64_t end, bool plus, const DirSink& emit) {
  NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(ino));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  // Cookies are below 2^64 - 1; an offset at the end lists nothing (and
  // must not wrap around to the start).
  if (off == UINT64_MAX) return Status::Ok();
  uint64_t parent_ino;
  {
    std::shared_lock lock(dir->mu);
    if (dir_atime_.load(std::memory_order_relaxed)) TouchAtime(dir.get());
    parent_ino = dir->rec.parent ? dir->rec.parent : kRootIno;
  }
  // Each inode is locked on its own below: never under the directory's
  // lock (lock order), so entries are collected first and emitted after.
  auto stat_of = [&](Inode* inode) {
    std::shared_lock lock(inode->mu);
    return StatOf(inode);
  };
  struct stat st {};
  if (off < 1) {
    st.st_ino = ino;
    st.st_mode = S_IFDIR;
    if (plus) st = stat_of(dir.get());
    if (!emit(".", st, 1)) return Status::Ok();
    off = 1;
  }
  if (off < 2) {
    NSF_ASSIGN_OR_RETURN(InodeRef up, Get(parent_ino));
    st = {};
    st.st_ino = up->ino;
    st.st_mode = S_IFDIR;
    if (plus) st = stat_of(up.get());
    if (!emit("..", st, 2)) return Status::Ok();
    off = 2;
  }
  for (;;) {
    std::vector<DirentRecord> chunk;
    std::vector<InodeRef> children;
    bool past_end = false;
    {
      std::shared_lock lock(dir->mu);
      Status inner;
      NSF_RETURN_IF_ERROR(volume_->store().Scan(
          keys::CookiePrefix(ino), keys::Cookie(ino, off + 1),
          [&](std::string_view, std::string_view v) {
            auto d = DirentRecord::Decode(v);
            if (!d.ok()) {
              inner = d.status();
              return false;
            }
            if (d->cookie >= end) {
              past_end = true;  // added or renamed after the pass began
              return false;
            }
            if (plus) {
              auto child = Get(d->ino);
              if (!child.ok()) {
                inner = child.status();
                return false;
              }
              children.push_back(std::move(child).value());
            }
            chunk.push_back(std::move(d).value());
            return chunk.size() < kReaddirChunk;
          }));
      NSF_RETURN_IF_ERROR(inner);
    }
    for (size_t i = 0; i < chunk.size(); ++i) {
      const DirentRecord& d = chunk[i];
      if (!plus) {
        struct stat est {};
        est.st_ino = d.ino;
        est.st_mode = d.type;
        if (!emit(d.name, est, d.cookie)) return Status::Ok();
        off = d.cookie;
        continue;
      }
      Inode* child = children[i].get();
      std::shared_lock lock(child->mu);
      if (child->destroyed) {
        off = d.cookie;  // unlinked since it was read: not listed
        continue;
      }
      if (!emit(d.name, StatOf(child), d.cookie)) return Status::Ok();
      child->nlookup.fetch_add(1);
      off = d.cookie;
    }
    if (past_end || chunk.size() < kReaddirChunk) return Status::Ok();
  }
}

}  // namespace nosyncfs
