#include "fs/vfs.h"

#include "base/crash_point.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace nosyncfs {
namespace {

constexpr uint64_t kMaxFileSize = static_cast<uint64_t>(INT64_MAX);
constexpr size_t kZeroBufferSize = 1 << 20;
constexpr size_t kMaxXattrValue = 65536;

Timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return {ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

Timespec FromTimespec(const struct timespec& ts) {
  return {ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

struct timespec ToTimespec(const Timespec& t) {
  struct timespec ts;
  ts.tv_sec = t.sec;
  ts.tv_nsec = t.nsec;
  return ts;
}

const char* ZeroBuffer() {
  static const std::vector<char> zeros(kZeroBufferSize, 0);
  return zeros.data();
}

Status CheckName(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return Status::Error(EINVAL, "invalid name");
  }
  if (name.size() > Vfs::kMaxNameLen) return Status::Error(ENAMETOOLONG, "name too long");
  return Status::Ok();
}

// Only these namespaces are stored; system.* (ACLs) is not supported.
Status CheckXattrName(std::string_view name) {
  if (name.empty() || name.size() > XATTR_NAME_MAX) return Status::Error(ERANGE, "bad xattr name");
  for (std::string_view ns : {"user.", "trusted.", "security."}) {
    if (name.substr(0, ns.size()) == ns && name.size() > ns.size()) return Status::Ok();
  }
  return Status::Error(EOPNOTSUPP, "xattr namespace not supported");
}

// A piece of a byte range that is uniformly mapped (at device offset `dev`,
// with `flags`) or a hole.
struct ByteRun {
  uint64_t pos, end;
  bool mapped;
  uint32_t flags;
  uint64_t dev;
};

// Calls fn(run) for the runs covering [off, end) in order; stops at the
// first error fn returns.
template <typename Fn>
Status ForEachByteRun(const ExtentMap& map, const Superblock& sb, uint64_t off, uint64_t end,
                      Fn&& fn) {
  const uint64_t bs = sb.block_size;
  for (uint64_t pos = off; pos < end;) {
    uint64_t lblk = pos / bs;
    ExtentMap::Segment seg = map.Find(lblk, (end - 1) / bs - lblk + 1);
    uint64_t run_end = std::min(end, (lblk + seg.len) * bs);
    uint64_t dev = seg.mapped ? sb.BlockOffset(seg.pblk) + pos % bs : 0;
    NSF_RETURN_IF_ERROR(fn(ByteRun{pos, run_end, seg.mapped, seg.flags, dev}));
    pos = run_end;
  }
  return Status::Ok();
}

void AddDirty(std::map<uint64_t, uint64_t>* dirty, uint64_t start, uint64_t end) {
  auto [it, inserted] = dirty->emplace(start, end);
  if (!inserted) it->second = std::max(it->second, end);
}

}  // namespace

Vfs::Vfs(std::unique_ptr<Volume> volume, VfsOptions options)
    : volume_(std::move(volume)), options_(options), bs_(volume_->block_size()) {}

Vfs::~Vfs() {
  Status st = Shutdown();
  if (!st.ok()) spdlog::error("shutdown: {}", st.ToString());
}

Status Vfs::Init() {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> orphans;
  NSF_RETURN_IF_ERROR(volume_->store().Scan(keys::kOrphanPrefix, "",
                                            [&](std::string_view k, std::string_view) {
                                              orphans.push_back(keys::InoOf(k));
                                              return true;
                                            }));
  for (uint64_t ino : orphans) {
    NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
    Transaction txn;
    NSF_RETURN_IF_ERROR(DestroyInode(&txn, inode));
    NSF_RETURN_IF_ERROR(volume_->Commit(std::move(txn), /*durable=*/false).status());
    inodes_.erase(ino);
  }
  if (!orphans.empty()) spdlog::info("freed {} unlinked-while-open inodes", orphans.size());
  return Status::Ok();
}

Status Vfs::Shutdown() {
  std::lock_guard lock(mu_);
  if (shut_down_) return Status::Ok();
  Status first;
  auto note = [&](Status st) {
    if (!st.ok() && first.ok()) first = st;
  };
  std::vector<uint64_t> inos;
  for (auto& [ino, inode] : inodes_) inos.push_back(ino);
  for (uint64_t ino : inos) {
    Inode* inode = inodes_[ino].get();
    note(PersistDirtyData(inode));
    if (inode->rec.nlink == 0) {
      Transaction txn;
      note(DestroyInode(&txn, inode));
      note(volume_->Commit(std::move(txn), false).status());
    } else {
      note(FlushLazyAttrs(inode));
    }
  }
  inodes_.clear();
  note(volume_->Checkpoint());
  shut_down_ = true;
  return first;
}

// ---- inode cache ----------------------------------------------------------

Result<Vfs::Inode*> Vfs::Get(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it != inodes_.end()) return it->second.get();
  NSF_ASSIGN_OR_RETURN(auto value, volume_->store().Get(keys::Inode(ino)));
  if (!value) return Status::Error(ENOENT, "no inode " + std::to_string(ino));
  NSF_ASSIGN_OR_RETURN(InodeRecord rec, InodeRecord::Decode(ino, *value));
  auto inode = std::make_unique<Inode>();
  inode->rec = rec;
  Inode* raw = inode.get();
  inodes_.emplace(ino, std::move(inode));
  return raw;
}

Result<Vfs::Inode*> Vfs::GetDir(uint64_t ino) {
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (!S_ISDIR(inode->rec.mode)) return Status::Error(ENOTDIR, "not a directory");
  return inode;
}

Status Vfs::LoadExtents(Inode* inode) {
  if (inode->extents_loaded) return Status::Ok();
  Status inner;
  NSF_RETURN_IF_ERROR(volume_->store().Scan(
      keys::ExtentPrefix(inode->rec.ino), "", [&](std::string_view k, std::string_view v) {
        auto e = DecodeExtent(k, v);
        if (!e.ok()) {
          inner = e.status();
          return false;
        }
        inode->extents.Load(*e);
        return true;
      }));
  NSF_RETURN_IF_ERROR(inner);
  inode->extents_loaded = true;
  return Status::Ok();
}

void Vfs::MaybeEvict(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it == inodes_.end() || ino == kRootIno) return;
  Inode* inode = it->second.get();
  if (inode->nlookup > 0 || inode->open_count > 0) return;
  Status st = PersistDirtyData(inode);
  if (st.ok()) {
    if (inode->rec.nlink == 0) {
      Transaction txn;
      st = DestroyInode(&txn, inode);
      if (st.ok()) st = volume_->Commit(std::move(txn), false).status();
    } else {
      st = FlushLazyAttrs(inode);
    }
  }
  if (!st.ok()) {
    // Keep it cached: Shutdown or the next mount's orphan pass retries.
    spdlog::error("evicting inode {}: {}", ino, st.ToString());
    return;
  }
  inodes_.erase(it);
}

struct stat Vfs::StatOf(Inode* inode) {
  struct stat st {};
  const InodeRecord& r = inode->rec;
  st.st_ino = r.ino;
  st.st_mode = r.mode;
  st.st_nlink = r.nlink;
  st.st_uid = r.uid;
  st.st_gid = r.gid;
  st.st_rdev = r.rdev;
  st.st_size = static_cast<off_t>(r.size);
  st.st_blksize = bs_;
  uint64_t blocks = 0;
  if (S_ISREG(r.mode)) {
    Status loaded = LoadExtents(inode);
    if (!loaded.ok()) spdlog::error("inode {}: {}", r.ino, loaded.ToString());
    blocks = inode->extents.mapped_blocks();
  }
  st.st_blocks = static_cast<blkcnt_t>(blocks * (bs_ / 512));
  st.st_atim = ToTimespec(r.atime);
  st.st_mtim = ToTimespec(r.mtime);
  st.st_ctim = ToTimespec(r.ctime);
  return st;
}

Entry Vfs::EntryOf(Inode* inode) {
  ++inode->nlookup;
  return Entry{inode->rec.ino, StatOf(inode)};
}

Status Vfs::Commit(Transaction&& txn, std::initializer_list<Inode*> touched, bool durable) {
  for (Inode* inode : touched) {
    if (inode != nullptr && inode->rec.nlink > 0) txn.PutInode(inode->rec);
  }
  NSF_ASSIGN_OR_RETURN(uint64_t seq, volume_->Commit(std::move(txn), durable));
  for (Inode* inode : touched) {
    if (inode == nullptr) continue;
    inode->attr_dirty = inode->attr_needs_sync = false;
    inode->last_seq = seq;
  }
  return Status::Ok();
}

Status Vfs::PersistDirtyData(Inode* inode) {
  for (const auto& [start, end] : inode->dirty) {
    // Re-resolve the mapping: blocks may have been freed since the write.
    NSF_RETURN_IF_ERROR(ForEachByteRun(inode->extents, volume_->superblock(), start, end,
                                       [&](const ByteRun& r) {
                                         if (!r.mapped) return Status::Ok();
                                         return volume_->device().Persist(r.dev, r.end - r.pos);
                                       }));
  }
  inode->dirty.clear();
  return Status::Ok();
}

Status Vfs::FlushLazyAttrs(Inode* inode) {
  if (!inode->attr_dirty && !inode->attr_needs_sync) return Status::Ok();
  return Commit(Transaction{}, {inode}, false);
}

// ---- namespace --------------------------------------------------------------

Result<std::optional<DirentRecord>> Vfs::FindDirent(uint64_t dir, std::string_view name) {
  NSF_ASSIGN_OR_RETURN(auto value, volume_->store().Get(keys::Dirent(dir, name)));
  if (!value) return std::optional<DirentRecord>();
  NSF_ASSIGN_OR_RETURN(DirentRecord d, DirentRecord::Decode(*value));
  d.name = std::string(name);
  return std::optional<DirentRecord>(std::move(d));
}

void Vfs::AddDirent(Transaction* txn, Inode* dir, std::string_view name, const Inode& child) {
  DirentRecord d;
  d.ino = child.rec.ino;
  d.type = child.rec.mode & S_IFMT;
  d.cookie = dir->rec.next_cookie++;
  d.name = std::string(name);
  txn->batch.Put(keys::Dirent(dir->rec.ino, name), d.Encode(false));
  txn->batch.Put(keys::Cookie(dir->rec.ino, d.cookie), d.Encode(true));
}

void Vfs::RemoveDirent(Transaction* txn, uint64_t dir, const DirentRecord& d) {
  txn->batch.Delete(keys::Dirent(dir, d.name));
  txn->batch.Delete(keys::Cookie(dir, d.cookie));
}

Status Vfs::DestroyInode(Transaction* txn, Inode* inode) {
  if (inode->destroyed) return Status::Ok();
  inode->destroyed = true;
  uint64_t ino = inode->rec.ino;
  if (S_ISREG(inode->rec.mode)) {
    NSF_RETURN_IF_ERROR(LoadExtents(inode));
    txn->Free(inode->extents.Unmap(0, UINT64_MAX / 2));
    txn->PutExtentChanges(ino, inode->extents);
  }
  NSF_RETURN_IF_ERROR(volume_->store().Scan(keys::XattrPrefix(ino), "",
                                            [&](std::string_view k, std::string_view) {
                                              txn->batch.Delete(std::string(k));
                                              return true;
                                            }));
  if (S_ISLNK(inode->rec.mode)) txn->batch.Delete(keys::SymlinkTarget(ino));
  txn->batch.Delete(keys::Orphan(ino));
  txn->batch.Delete(keys::Inode(ino));
  ++txn->deleted_inodes;
  inode->dirty.clear();
  return Status::Ok();
}

Status Vfs::DropLink(Transaction* txn, Inode* inode) {
  if (S_ISDIR(inode->rec.mode)) {
    inode->rec.nlink = 0;
  } else if (inode->rec.nlink > 0) {
    --inode->rec.nlink;
  }
  inode->rec.ctime = Now();
  if (inode->rec.nlink > 0) return Status::Ok();
  if (inode->nlookup > 0 || inode->open_count > 0) {
    // Still referenced: freed at the last Forget/Release, or by the orphan
    // pass of the next mount if we crash first.
    txn->batch.Put(keys::Orphan(inode->rec.ino), "");
    txn->PutInode(inode->rec);
    return Status::Ok();
  }
  NSF_RETURN_IF_ERROR(DestroyInode(txn, inode));
  return Status::Ok();
}

Result<Entry> Vfs::Lookup(uint64_t parent, std::string_view name) {
  std::lock_guard lock(mu_);
  NSF_RETURN_IF_ERROR(GetDir(parent).status());
  if (name.size() > kMaxNameLen) return Status::Error(ENAMETOOLONG, "name too long");
  NSF_ASSIGN_OR_RETURN(auto d, FindDirent(parent, name));
  if (!d) return Status::Error(ENOENT, "no such entry");
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(d->ino));
  return EntryOf(inode);
}

void Vfs::Forget(uint64_t ino, uint64_t n) {
  std::lock_guard lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  Inode* inode = it->second.get();
  inode->nlookup = n >= inode->nlookup ? 0 : inode->nlookup - n;
  MaybeEvict(ino);
}

Result<struct stat> Vfs::Getattr(uint64_t ino) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  return StatOf(inode);
}

Result<Entry> Vfs::MakeNode(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                            std::string_view symlink_target, const Caller& caller) {
  NSF_RETURN_IF_ERROR(CheckName(name));
  NSF_ASSIGN_OR_RETURN(Inode * dir, GetDir(parent));
  if (dir->rec.nlink == 0) return Status::Error(ENOENT, "directory was removed");
  NSF_ASSIGN_OR_RETURN(auto existing, FindDirent(parent, name));
  if (existing) return Status::Error(EEXIST, "entry exists");
  if (S_ISDIR(mode) && dir->rec.nlink >= kMaxLinks) return Status::Error(EMLINK, "too many links");

  Transaction txn;
  auto inode = std::make_unique<Inode>();
  InodeRecord& r = inode->rec;
  r.ino = volume_->NextInodeNumber(&txn);
  r.mode = mode;
  r.uid = caller.uid;
  r.gid = caller.gid;
  if (dir->rec.mode & S_ISGID) {
    // BSD group semantics for setgid directories, as Linux file systems do.
    r.gid = dir->rec.gid;
    if (S_ISDIR(mode)) r.mode |= S_ISGID;
  }
  r.nlink = S_ISDIR(mode) ? 2 : 1;
  r.rdev = (S_ISCHR(mode) || S_ISBLK(mode)) ? rdev : 0;
  r.atime = r.mtime = r.ctime = Now();
  if (S_ISDIR(mode)) r.parent = parent;
  if (S_ISLNK(mode)) {
    r.size = symlink_target.size();
    txn.batch.Put(keys::SymlinkTarget(r.ino), std::string(symlink_target));
  }
  inode->extents_loaded = true;  // a new file has no extents
  AddDirent(&txn, dir, name, *inode);
  if (S_ISDIR(mode)) ++dir->rec.nlink;
  dir->rec.mtime = dir->rec.ctime = r.ctime;
  Inode* raw = inode.get();
  inodes_.emplace(r.ino, std::move(inode));
  Status st = Commit(std::move(txn), {raw, dir}, false);
  if (!st.ok()) {
    inodes_.erase(raw->rec.ino);
    return st;
  }
  return EntryOf(raw);
}

Result<Entry> Vfs::Mknod(uint64_t parent, std::string_view name, mode_t mode, dev_t rdev,
                         const Caller& caller) {
  std::lock_guard lock(mu_);
  mode_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  type = mode & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
      type != S_IFBLK) {
    return Status::Error(EINVAL, "bad file type for mknod");
  }
  return MakeNode(parent, name, mode, rdev, {}, caller);
}

Result<Entry> Vfs::Mkdir(uint64_t parent, std::string_view name, mode_t mode,
                         const Caller& caller) {
  std::lock_guard lock(mu_);
  return MakeNode(parent, name, S_IFDIR | (mode & 07777), 0, {}, caller);
}

Result<Entry> Vfs::Symlink(uint64_t parent, std::string_view name, std::string_view target,
                           const Caller& caller) {
  std::lock_guard lock(mu_);
  if (target.empty() || target.size() >= PATH_MAX) {
    return Status::Error(target.empty() ? ENOENT : ENAMETOOLONG, "bad symlink target");
  }
  return MakeNode(parent, name, S_IFLNK | 0777, 0, target, caller);
}

Result<std::string> Vfs::Readlink(uint64_t ino) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (!S_ISLNK(inode->rec.mode)) return Status::Error(EINVAL, "not a symlink");
  NSF_ASSIGN_OR_RETURN(auto target, volume_->store().Get(keys::SymlinkTarget(ino)));
  if (!target) return Status::Error(EUCLEAN, "symlink without target");
  return *target;
}

Status Vfs::Unlink(uint64_t parent, std::string_view name) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * dir, GetDir(parent));
  NSF_ASSIGN_OR_RETURN(auto d, FindDirent(parent, name));
  if (!d) return Status::Error(ENOENT, "no such entry");
  NSF_ASSIGN_OR_RETURN(Inode * child, Get(d->ino));
  if (S_ISDIR(child->rec.mode)) return Status::Error(EISDIR, "is a directory");
  Transaction txn;
  RemoveDirent(&txn, parent, *d);
  dir->rec.mtime = dir->rec.ctime = Now();
  NSF_RETURN_IF_ERROR(DropLink(&txn, child));
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), {dir, child}, false));
  MaybeEvict(child->rec.ino);
  return Status::Ok();
}

Status Vfs::Rmdir(uint64_t parent, std::string_view name) {
  std::lock_guard lock(mu_);
  if (name == ".") return Status::Error(EINVAL, "cannot remove .");
  if (name == "..") return Status::Error(ENOTEMPTY, "cannot remove ..");
  NSF_ASSIGN_OR_RETURN(Inode * dir, GetDir(parent));
  NSF_ASSIGN_OR_RETURN(auto d, FindDirent(parent, name));
  if (!d) return Status::Error(ENOENT, "no such entry");
  NSF_ASSIGN_OR_RETURN(Inode * child, Get(d->ino));
  if (!S_ISDIR(child->rec.mode)) return Status::Error(ENOTDIR, "not a directory");
  NSF_ASSIGN_OR_RETURN(bool empty, IsDirEmpty(child->rec.ino));
  if (!empty) return Status::Error(ENOTEMPTY, "directory not empty");
  Transaction txn;
  RemoveDirent(&txn, parent, *d);
  --dir->rec.nlink;
  dir->rec.mtime = dir->rec.ctime = Now();
  NSF_RETURN_IF_ERROR(DropLink(&txn, child));
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), {dir, child}, false));
  MaybeEvict(child->rec.ino);
  return Status::Ok();
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
  std::lock_guard lock(mu_);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
    return Status::Error(EINVAL, "unsupported rename flags");
  }
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) {
    return Status::Error(EINVAL, "NOREPLACE with EXCHANGE");
  }
  NSF_RETURN_IF_ERROR(CheckName(new_name));
  NSF_ASSIGN_OR_RETURN(Inode * src_dir, GetDir(parent));
  NSF_ASSIGN_OR_RETURN(Inode * dst_dir, GetDir(new_parent));
  NSF_ASSIGN_OR_RETURN(auto src, FindDirent(parent, name));
  if (!src) return Status::Error(ENOENT, "no such entry");
  NSF_ASSIGN_OR_RETURN(auto dst, FindDirent(new_parent, new_name));
  NSF_ASSIGN_OR_RETURN(Inode * moved, Get(src->ino));
  bool moved_is_dir = S_ISDIR(moved->rec.mode);

  if ((flags & RENAME_NOREPLACE) && dst) return Status::Error(EEXIST, "target exists");
  if ((flags & RENAME_EXCHANGE) && !dst) return Status::Error(ENOENT, "no target to exchange");
  if (parent == new_parent && name == new_name) return Status::Ok();
  if (dst && dst->ino == src->ino) {
    // Two links to one inode: POSIX says do nothing.
    return Status::Ok();
  }
  if (moved_is_dir && parent != new_parent && IsAncestor(moved->rec.ino, new_parent)) {
    return Status::Error(EINVAL, "cannot move a directory into itself");
  }
  Inode* target = nullptr;
  if (dst) {
    NSF_ASSIGN_OR_RETURN(target, Get(dst->ino));
  }
  bool target_is_dir = target && S_ISDIR(target->rec.mode);
  Timespec now = Now();
  Transaction txn;

  if (flags & RENAME_EXCHANGE) {
    if (target_is_dir && new_parent != parent && IsAncestor(target->rec.ino, parent)) {
      return Status::Error(EINVAL, "cannot move a directory into itself");
    }
    // Each name now points at the other inode; cookies stay with the names.
    DirentRecord a = *src, b = *dst;
    a.ino = dst->ino;
    a.type = dst->type;
    b.ino = src->ino;
    b.type = src->type;
    txn.batch.Put(keys::Dirent(parent, a.name), a.Encode(false));
    txn.batch.Put(keys::Cookie(parent, a.cookie), a.Encode(true));
    txn.batch.Put(keys::Dirent(new_parent, b.name), b.Encode(false));
    txn.batch.Put(keys::Cookie(new_parent, b.cookie), b.Encode(true));
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

  if (target) {
    if (moved_is_dir && !target_is_dir) return Status::Error(ENOTDIR, "target is not a directory");
    if (!moved_is_dir && target_is_dir) return Status::Error(EISDIR, "target is a directory");
    if (target_is_dir) {
      NSF_ASSIGN_OR_RETURN(bool empty, IsDirEmpty(target->rec.ino));
      if (!empty) return Status::Error(ENOTEMPTY, "target directory not empty");
    }
    RemoveDirent(&txn, new_parent, *dst);
    if (target_is_dir) --dst_dir->rec.nlink;
    NSF_RETURN_IF_ERROR(DropLink(&txn, target));
  }
  if (moved_is_dir && dst_dir->rec.nlink >= kMaxLinks && parent != new_parent) {
    return Status::Error(EMLINK, "too many links");
  }
  RemoveDirent(&txn, parent, *src);
  AddDirent(&txn, dst_dir, new_name, *moved);
  if (moved_is_dir && parent != new_parent) {
    moved->rec.parent = new_parent;
    --src_dir->rec.nlink;
    ++dst_dir->rec.nlink;
  }
  moved->rec.ctime = now;
  src_dir->rec.mtime = src_dir->rec.ctime = dst_dir->rec.mtime = dst_dir->rec.ctime = now;
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), {moved, target, src_dir, dst_dir}, false));
  if (target) MaybeEvict(target->rec.ino);
  return Status::Ok();
}

Result<Entry> Vfs::Link(uint64_t ino, uint64_t new_parent, std::string_view new_name) {
  std::lock_guard lock(mu_);
  NSF_RETURN_IF_ERROR(CheckName(new_name));
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (S_ISDIR(inode->rec.mode)) return Status::Error(EPERM, "hard link to a directory");
  if (inode->rec.nlink == 0) return Status::Error(ENOENT, "file was removed");
  if (inode->rec.nlink >= kMaxLinks) return Status::Error(EMLINK, "too many links");
  NSF_ASSIGN_OR_RETURN(Inode * dir, GetDir(new_parent));
  if (dir->rec.nlink == 0) return Status::Error(ENOENT, "directory was removed");
  NSF_ASSIGN_OR_RETURN(auto existing, FindDirent(new_parent, new_name));
  if (existing) return Status::Error(EEXIST, "entry exists");
  Transaction txn;
  AddDirent(&txn, dir, new_name, *inode);
  ++inode->rec.nlink;
  Timespec now = Now();
  inode->rec.ctime = now;
  dir->rec.mtime = dir->rec.ctime = now;
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), {inode, dir}, false));
  return EntryOf(inode);
}

// ---- open files ---------------------------------------------------------------

Status Vfs::Open(uint64_t ino, bool truncate) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (S_ISDIR(inode->rec.mode)) return Status::Error(EISDIR, "is a directory");
  if (truncate && S_ISREG(inode->rec.mode)) NSF_RETURN_IF_ERROR(OpenTruncateLocked(inode));
  ++inode->open_count;
  return Status::Ok();
}

Status Vfs::OpenTruncateLocked(Inode* inode) {
  Transaction txn;
  bool durable = false;
  NSF_RETURN_IF_ERROR(TruncateLocked(inode, 0, &txn, &durable));
  inode->rec.mtime = inode->rec.ctime = Now();
  return Commit(std::move(txn), {inode}, durable);
}

Result<Entry> Vfs::Create(uint64_t parent, std::string_view name, mode_t mode, bool exclusive,
                          bool truncate, const Caller& caller) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(auto existing, FindDirent(parent, name));
  Inode* inode = nullptr;
  Entry entry;
  if (existing) {
    if (exclusive) return Status::Error(EEXIST, "entry exists");
    NSF_ASSIGN_OR_RETURN(inode, Get(existing->ino));
    if (S_ISDIR(inode->rec.mode)) return Status::Error(EISDIR, "is a directory");
    if (truncate && S_ISREG(inode->rec.mode)) NSF_RETURN_IF_ERROR(OpenTruncateLocked(inode));
    entry = EntryOf(inode);
  } else {
    NSF_ASSIGN_OR_RETURN(entry, MakeNode(parent, name, S_IFREG | (mode & 07777), 0, {}, caller));
    NSF_ASSIGN_OR_RETURN(inode, Get(entry.ino));
  }
  ++inode->open_count;
  return entry;
}

void Vfs::Release(uint64_t ino) {
  std::lock_guard lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  if (it->second->open_count > 0) --it->second->open_count;
  MaybeEvict(ino);
}

Status Vfs::Opendir(uint64_t ino) {
  std::lock_guard lock(mu_);
  return GetDir(ino).status();
}

// ---- attributes -----------------------------------------------------------------

Result<struct stat> Vfs::Setattr(uint64_t ino, const SetattrRequest& req) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  InodeRecord& r = inode->rec;
  Timespec now = Now();
  Transaction txn;
  bool durable = false;
  if (req.set_size) {
    if (S_ISDIR(r.mode)) return Status::Error(EISDIR, "is a directory");
    if (!S_ISREG(r.mode)) return Status::Error(EINVAL, "not a regular file");
    if (req.size > kMaxFileSize) return Status::Error(EFBIG, "file too large");
    // A size change updates mtime and ctime (truncate(2)); the kernel does
    // not always say so.
    if (req.size != r.size) r.mtime = now;
    NSF_RETURN_IF_ERROR(TruncateLocked(inode, req.size, &txn, &durable));
  }
  if (req.set_mode) r.mode = (r.mode & S_IFMT) | (req.mode & 07777);
  if (req.set_uid) r.uid = req.uid;
  if (req.set_gid) r.gid = req.gid;
  if (req.set_atime) r.atime = req.atime_now ? now : FromTimespec(req.atime);
  if (req.set_mtime) r.mtime = req.mtime_now ? now : FromTimespec(req.mtime);
  r.ctime = req.set_ctime ? FromTimespec(req.ctime) : now;
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), {inode}, durable));
  return StatOf(inode);
}

Status Vfs::TruncateLocked(Inode* inode, uint64_t size, Transaction* txn, bool* durable) {
  NSF_RETURN_IF_ERROR(LoadExtents(inode));
  InodeRecord& r = inode->rec;
  if (size < r.size) {
    uint64_t keep_blocks = (size + bs_ - 1) / bs_;
    uint64_t old_blocks = UINT64_MAX / 2;
    bool touches_nf = false;
    for (const auto& [k, e] : inode->extents.extents()) {
      if (e.lend() > keep_blocks && (e.flags & kExtentNoFsync)) touches_nf = true;
    }
    if (touches_nf && options_.nf_punch == VfsOptions::NfPunch::kDeny) {
      return Status::Error(EPERM, "truncate would cut no-fsync extents (nf_punch=deny)");
    }
    // The old bytes past the new EOF in the last block stay until the file
    // grows again (ZeroTailForGrowth): zeroing them now could reach media
    // before this truncate is durable and corrupt the old state.
    txn->Free(inode->extents.Unmap(keep_blocks, old_blocks - keep_blocks));
    txn->PutExtentChanges(r.ino, inode->extents);
    // Drop dirty tracking past the new end.
    for (auto it = inode->dirty.begin(); it != inode->dirty.end();) {
      if (it->first >= size) {
        it = inode->dirty.erase(it);
      } else {
        it->second = std::min(it->second, size);
        ++it;
      }
    }
    *durable = *durable || touches_nf;
  } else if (size > r.size) {
    NSF_RETURN_IF_ERROR(ZeroTailForGrowth(inode, size));
  }
  r.size = size;
  return Status::Ok();
}

Status Vfs::ZeroTailForGrowth(Inode* inode, uint64_t new_start) {
  uint64_t old = inode->rec.size;
  uint64_t block_end = (old + bs_ - 1) / bs_ * bs_;
  uint64_t end = std::min(new_start, block_end);
  if (end <= old) return Status::Ok();
  bool touched_nf = false;
  return ZeroInPlace(inode, old, end, &touched_nf);
}

// ---- data ---------------------------------------------------------------------

Status Vfs::Read(uint64_t ino, uint64_t off, size_t size, const ReadSink& sink) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (S_ISDIR(inode->rec.mode)) return Status::Error(EISDIR, "is a directory");
  NSF_RETURN_IF_ERROR(LoadExtents(inode));
  uint64_t fsize = inode->rec.size;
  std::vector<struct iovec> iov;
  if (off < fsize && size > 0) {
    uint64_t end = std::min<uint64_t>(fsize, off + size);
    NSF_RETURN_IF_ERROR(ForEachByteRun(
        inode->extents, volume_->superblock(), off, end, [&](const ByteRun& r) {
          if (r.mapped) {
            iov.push_back({volume_->device().data() + r.dev, r.end - r.pos});
            return Status::Ok();
          }
          for (uint64_t z = r.pos; z < r.end; z += kZeroBufferSize) {
            iov.push_back({const_cast<char*>(ZeroBuffer()),
                           std::min<uint64_t>(kZeroBufferSize, r.end - z)});
          }
          return Status::Ok();
        }));
    TouchAtime(inode);
  }
  sink(iov.data(), static_cast<int>(iov.size()));
  return Status::Ok();
}

void Vfs::TouchAtime(Inode* inode) {
  // relatime: only when atime is not newer than mtime and ctime, or is a
  // day old. Lazy: written with the inode's next commit.
  InodeRecord& r = inode->rec;
  Timespec now = Now();
  auto before = [](const Timespec& a, const Timespec& b) {
    return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec);
  };
  if (!before(r.mtime, r.atime) || !before(r.ctime, r.atime) ||
      now.sec - r.atime.sec >= 24 * 3600) {
    r.atime = now;
    inode->attr_dirty = true;
  }
}

Status Vfs::FillHoles(Inode* inode, const BlockRanges& ranges, uint32_t flags) {
  BlockRanges holes;
  for (auto [first, count] : ranges) {
    auto h = inode->extents.Holes(first, count);
    holes.insert(holes.end(), h.begin(), h.end());
  }
  uint64_t need = 0;
  for (const auto& h : holes) need += h.second;
  if (need == 0) return Status::Ok();
  // Goal: right after the block mapped before the first hole, for contiguity.
  uint64_t goal = 0;
  if (holes[0].first > 0) {
    auto prev = inode->extents.Find(holes[0].first - 1, 1);
    if (prev.mapped) goal = prev.pblk + 1;
  }
  NSF_ASSIGN_OR_RETURN(std::vector<BlockRun> runs, volume_->Allocate(need, goal));
  // Zero and persist every new block before anything maps it: a block's
  // previous contents (another file's data) must never become readable.
  const Superblock& sb = volume_->superblock();
  for (const BlockRun& run : runs) {
    volume_->device().Zero(sb.BlockOffset(run.start), run.len * bs_);
    Status st = volume_->device().Persist(sb.BlockOffset(run.start), run.len * bs_);
    if (!st.ok()) {
      volume_->Unallocate(runs);
      return st;
    }
  }
  size_t ri = 0;
  uint64_t used_in_run = 0;
  for (auto [lblk, len] : holes) {
    while (len > 0) {
      const BlockRun& run = runs[ri];
      uint64_t take = std::min(len, run.len - used_in_run);
      inode->extents.Map(lblk, take, run.start + used_in_run, flags);
      lblk += take;
      len -= take;
      used_in_run += take;
      if (used_in_run == run.len) {
        ++ri;
        used_in_run = 0;
      }
    }
  }
  return Status::Ok();
}

Result<size_t> Vfs::Write(uint64_t ino, uint64_t off, const char* data, size_t size) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  return WriteLocked(inode, off, data, size);
}

Result<size_t> Vfs::WriteLocked(Inode* inode, uint64_t off, const char* data, size_t size) {
  if (!S_ISREG(inode->rec.mode)) return Status::Error(EINVAL, "not a regular file");
  if (size == 0) return size_t{0};
  if (off >= kMaxFileSize) return Status::Error(EFBIG, "file too large");
  size = std::min<uint64_t>(size, kMaxFileSize - off);
  NSF_RETURN_IF_ERROR(LoadExtents(inode));
  uint64_t first = off / bs_;
  uint64_t last = (off + size - 1) / bs_;
  Status filled = FillHoles(inode, {{first, last - first + 1}}, 0);
  if (filled.code() == ENOSPC) {
    // Write what fits: the longest prefix whose holes can be allocated.
    uint64_t avail = volume_->free_blocks();
    uint64_t blk = first;
    for (auto [hole, len] : inode->extents.Holes(first, last - first + 1)) {
      if (len > avail) {
        blk = hole + avail;
        break;
      }
      avail -= len;
      blk = hole + len;
    }
    if (blk * bs_ <= off) return filled;
    size = blk * bs_ - off;
    last = blk - 1;
    filled = FillHoles(inode, {{first, last - first + 1}}, 0);
  }
  NSF_RETURN_IF_ERROR(filled);
  if (off > inode->rec.size) NSF_RETURN_IF_ERROR(ZeroTailForGrowth(inode, off));

  // Copy, then persist NF ranges now and remember unflagged ones for fsync.
  uint64_t end = off + size;
  bool wrote_plain = false, end_in_nf = false;
  NSF_RETURN_IF_ERROR(ForEachByteRun(
      inode->extents, volume_->superblock(), off, end, [&](const ByteRun& r) {
        // Every block is mapped now (FillHoles above).
        volume_->device().Write(r.dev, data + (r.pos - off), r.end - r.pos);
        CrashPoint("vfs.write.copied");
        end_in_nf = (r.flags & kExtentNoFsync) && r.end == end;
        if (r.flags & kExtentNoFsync) return volume_->device().Persist(r.dev, r.end - r.pos);
        AddDirty(&inode->dirty, r.pos, r.end);
        wrote_plain = true;
        return Status::Ok();
      }));

  InodeRecord& r = inode->rec;
  bool grew = end > r.size;
  if (grew) r.size = end;
  r.mtime = r.ctime = Now();
  inode->attr_dirty = true;
  if (wrote_plain) inode->attr_needs_sync = true;
  Transaction txn;
  txn.PutExtentChanges(r.ino, inode->extents);
  if (grew && end_in_nf) {
    // A size extension inside a preallocated NF range is durable before
    // the reply (SEMANTICS.md D2): one small durable record.
    NSF_RETURN_IF_ERROR(Commit(std::move(txn), {inode}, /*durable=*/true));
  } else if (!txn.empty() || grew) {
    NSF_RETURN_IF_ERROR(Commit(std::move(txn), {inode}, false));
    if (wrote_plain) inode->attr_needs_sync = true;
  }
  return size;
}

Status Vfs::Fsync(uint64_t ino, bool datasync) {
  std::lock_guard lock(mu_);
  (void)datasync;  // size and mapping changes are metadata fdatasync needs too
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  NSF_RETURN_IF_ERROR(PersistDirtyData(inode));
  if (inode->attr_needs_sync) {
    NSF_RETURN_IF_ERROR(Commit(Transaction{}, {inode}, false));
  }
  if (inode->last_seq > volume_->durable_seq()) NSF_RETURN_IF_ERROR(volume_->Sync());
  return Status::Ok();
}

Status Vfs::Fsyncdir(uint64_t ino) {
  std::lock_guard lock(mu_);
  NSF_RETURN_IF_ERROR(GetDir(ino).status());
  // syncfs(2) never reaches a FUSE daemon (the kernel forwards FUSE_SYNCFS
  // to virtiofs only), so fsync of a directory stands in for it: it makes
  // the whole file system durable, data of every file included. Unflagged
  // dirty data only lives in cached inodes (eviction persists it).
  Transaction txn;
  for (auto& [i, inode] : inodes_) {
    NSF_RETURN_IF_ERROR(PersistDirtyData(inode.get()));
    if (inode->attr_needs_sync && inode->rec.nlink > 0) {
      txn.PutInode(inode->rec);
      inode->attr_dirty = inode->attr_needs_sync = false;
    }
  }
  if (!txn.empty()) NSF_RETURN_IF_ERROR(volume_->Commit(std::move(txn), false).status());
  return volume_->Sync();
}

Status Vfs::Readdir(uint64_t ino, uint64_t off, bool plus, const DirSink& emit) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * dir, GetDir(ino));
  // Cookies are below 2^64 - 1; an offset at the end lists nothing (and
  // must not wrap around to the start).
  if (off == UINT64_MAX) return Status::Ok();
  TouchAtime(dir);
  struct stat st {};
  if (off < 1) {
    st.st_ino = ino;
    st.st_mode = S_IFDIR;
    if (plus) st = StatOf(dir);
    if (!emit(".", st, 1)) return Status::Ok();
    off = 1;
  }
  if (off < 2) {
    NSF_ASSIGN_OR_RETURN(Inode * up, Get(dir->rec.parent ? dir->rec.parent : kRootIno));
    st = {};
    st.st_ino = up->rec.ino;
    st.st_mode = S_IFDIR;
    if (plus) st = StatOf(up);
    if (!emit("..", st, 2)) return Status::Ok();
    off = 2;
  }
  Status inner;
  NSF_RETURN_IF_ERROR(volume_->store().Scan(
      keys::CookiePrefix(ino), keys::Cookie(ino, off + 1),
      [&](std::string_view, std::string_view v) {
        auto d = DirentRecord::Decode(v);
        if (!d.ok()) {
          inner = d.status();
          return false;
        }
        struct stat est {};
        est.st_ino = d->ino;
        est.st_mode = d->type;
        Inode* child = nullptr;
        if (plus) {
          auto c = Get(d->ino);
          if (!c.ok()) {
            inner = c.status();
            return false;
          }
          child = *c;
          est = StatOf(child);
        }
        if (!emit(d->name, est, d->cookie)) return false;
        if (child != nullptr) ++child->nlookup;
        return true;
      }));
  return inner;
}

Result<struct statvfs> Vfs::Statfs() {
  std::lock_guard lock(mu_);
  struct statvfs s {};
  s.f_bsize = bs_;
  s.f_frsize = bs_;
  s.f_blocks = volume_->total_blocks();
  s.f_bfree = volume_->free_blocks();
  s.f_bavail = s.f_bfree;
  s.f_files = 1ull << 32;
  s.f_ffree = s.f_files - std::min<uint64_t>(s.f_files, volume_->inode_count());
  s.f_favail = s.f_ffree;
  s.f_namemax = kMaxNameLen;
  return s;
}

// ---- xattrs ---------------------------------------------------------------------

Status Vfs::Setxattr(uint64_t ino, std::string_view name, std::string_view value, int flags) {
  std::lock_guard lock(mu_);
  NSF_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kMaxXattrValue) return Status::Error(E2BIG, "xattr value too large");
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (IsNosyncXattr(name)) {
    if (name != "user.nosync") return Status::Error(EPERM, "user.nosync.extents is read-only");
    return SetNosyncLocked(inode, value, flags);
  }
  NSF_ASSIGN_OR_RETURN(auto existing, volume_->store().Get(keys::Xattr(ino, name)));
  if ((flags & XATTR_CREATE) && existing) return Status::Error(EEXIST, "xattr exists");
  if ((flags & XATTR_REPLACE) && !existing) return Status::Error(ENODATA, "no such xattr");
  Transaction txn;
  txn.batch.Put(keys::Xattr(ino, name), std::string(value));
  inode->rec.ctime = Now();
  return Commit(std::move(txn), {inode}, false);
}

Result<std::string> Vfs::Getxattr(uint64_t ino, std::string_view name) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (name.substr(0, 7) == "system.") return Status::Error(EOPNOTSUPP, "not supported");
  if (IsNosyncXattr(name)) return GetNosyncLocked(inode, name);
  NSF_ASSIGN_OR_RETURN(auto value, volume_->store().Get(keys::Xattr(ino, name)));
  if (!value) return Status::Error(ENODATA, "no such xattr");
  return *value;
}

Result<std::string> Vfs::Listxattr(uint64_t ino) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  std::string out;
  if (S_ISREG(inode->rec.mode)) {
    NSF_RETURN_IF_ERROR(LoadExtents(inode));
    // Listed only when set, so cp -a and rsync -X copy exactly the NF set;
    // user.nosync.extents is never listed (it cannot be set on a copy).
    if (!NosyncBlocks(*inode).empty()) out.append("user.nosync", sizeof("user.nosync"));
  }
  std::string prefix = keys::XattrPrefix(ino);
  NSF_RETURN_IF_ERROR(volume_->store().Scan(prefix, "", [&](std::string_view k, std::string_view) {
    out.append(k.substr(prefix.size()));
    out.push_back('\0');
    return true;
  }));
  return out;
}

Status Vfs::Removexattr(uint64_t ino, std::string_view name) {
  std::lock_guard lock(mu_);
  NSF_RETURN_IF_ERROR(CheckXattrName(name));
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (IsNosyncXattr(name)) {
    if (name != "user.nosync") return Status::Error(EPERM, "user.nosync.extents is read-only");
    return ClearNosyncLocked(inode);
  }
  NSF_ASSIGN_OR_RETURN(auto existing, volume_->store().Get(keys::Xattr(ino, name)));
  if (!existing) return Status::Error(ENODATA, "no such xattr");
  Transaction txn;
  txn.batch.Delete(keys::Xattr(ino, name));
  inode->rec.ctime = Now();
  return Commit(std::move(txn), {inode}, false);
}

// ---- space ----------------------------------------------------------------------

Status Vfs::Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len) {
  std::lock_guard lock(mu_);
  if (len == 0) return Status::Error(EINVAL, "zero length");
  if (off > kMaxFileSize || len > kMaxFileSize - off) return Status::Error(EFBIG, "too large");
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  if (!S_ISREG(inode->rec.mode)) return Status::Error(ENODEV, "not a regular file");
  NSF_RETURN_IF_ERROR(LoadExtents(inode));
  if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
    return PunchHoleLocked(inode, off, len);
  }
  if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE) {
    return ZeroRangeLocked(inode, off, len, mode & FALLOC_FL_KEEP_SIZE);
  }
  if (mode & ~FALLOC_FL_KEEP_SIZE) return Status::Error(EOPNOTSUPP, "fallocate mode not supported");
  uint64_t first = off / bs_, last = (off + len - 1) / bs_;
  NSF_RETURN_IF_ERROR(FillHoles(inode, {{first, last - first + 1}}, 0));
  if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > inode->rec.size) {
    NSF_RETURN_IF_ERROR(ZeroTailForGrowth(inode, off + len));
  }
  Transaction txn;
  txn.PutExtentChanges(ino, inode->extents);
  inode->rec.ctime = Now();
  if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > inode->rec.size) {
    inode->rec.size = off + len;
    inode->rec.mtime = inode->rec.ctime;  // the size changed, as ext4 does
  }
  return Commit(std::move(txn), {inode}, false);
}

Status Vfs::ZeroInPlace(Inode* inode, uint64_t off, uint64_t end, bool* touched_nf) {
  return ForEachByteRun(inode->extents, volume_->superblock(), off, end, [&](const ByteRun& r) {
    if (!r.mapped) return Status::Ok();
    volume_->device().Zero(r.dev, r.end - r.pos);
    if (!(r.flags & kExtentNoFsync)) {
      AddDirty(&inode->dirty, r.pos, r.end);
      return Status::Ok();
    }
    *touched_nf = true;
    return volume_->device().Persist(r.dev, r.end - r.pos);
  });
}

Status Vfs::PunchHoleLocked(Inode* inode, uint64_t off, uint64_t len) {
  uint64_t end = off + len;
  uint64_t touched_first = off / bs_, touched_end = (end + bs_ - 1) / bs_;
  bool overlaps_nf = false;
  for (uint64_t pos = touched_first; pos < touched_end;) {
    auto seg = inode->extents.Find(pos, touched_end - pos);
    if (seg.mapped && (seg.flags & kExtentNoFsync)) overlaps_nf = true;
    pos += seg.len;
  }
  if (overlaps_nf && options_.nf_punch == VfsOptions::NfPunch::kDeny) {
    return Status::Error(EPERM, "hole punch over no-fsync extents (nf_punch=deny)");
  }
  // Whole blocks are unmapped; the partial blocks at the edges are zeroed in
  // place, so they keep their mapping (and flag).
  uint64_t full_first = (off + bs_ - 1) / bs_, full_end = end / bs_;
  bool touched_nf = false;
  if (full_first >= full_end) {
    NSF_RETURN_IF_ERROR(ZeroInPlace(inode, off, end, &touched_nf));
  } else {
    NSF_RETURN_IF_ERROR(ZeroInPlace(inode, off, full_first * bs_, &touched_nf));
    NSF_RETURN_IF_ERROR(ZeroInPlace(inode, full_end * bs_, end, &touched_nf));
  }
  CrashPoint("vfs.punch.zeroed");
  Transaction txn;
  if (full_first < full_end) {
    txn.Free(inode->extents.Unmap(full_first, full_end - full_first));
    // Dirty tracking of unmapped bytes is moot; PersistDirtyData skips holes.
  }
  txn.PutExtentChanges(inode->rec.ino, inode->extents);
  inode->rec.mtime = inode->rec.ctime = Now();
  // Over NF extents the punch is atomic (one transaction) and durable on
  // return (SEMANTICS.md section 4).
  return Commit(std::move(txn), {inode}, overlaps_nf || touched_nf);
}

Status Vfs::ZeroRangeLocked(Inode* inode, uint64_t off, uint64_t len, bool keep_size) {
  uint64_t end = off + len;
  uint64_t first = off / bs_, last = (end - 1) / bs_;
  // Like Linux file systems, zero range leaves the range allocated; new
  // blocks arrive zeroed, existing ones are zeroed in place (NF ones keep
  // their blocks and flag and are persisted now).
  NSF_RETURN_IF_ERROR(FillHoles(inode, {{first, last - first + 1}}, 0));
  bool touched_nf = false;
  if (!keep_size && off > inode->rec.size) NSF_RETURN_IF_ERROR(ZeroTailForGrowth(inode, off));
  NSF_RETURN_IF_ERROR(ZeroInPlace(inode, off, end, &touched_nf));
  Transaction txn;
  txn.PutExtentChanges(inode->rec.ino, inode->extents);
  inode->rec.mtime = inode->rec.ctime = Now();
  bool grew = !keep_size && end > inode->rec.size;
  if (grew) inode->rec.size = end;
  return Commit(std::move(txn), {inode}, touched_nf);
}

Result<uint64_t> Vfs::Lseek(uint64_t ino, uint64_t off, int whence) {
  std::lock_guard lock(mu_);
  NSF_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  NSF_RETURN_IF_ERROR(LoadExtents(inode));
  uint64_t size = inode->rec.size;
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Error(EINVAL, "bad whence");
  if (off >= size) return Status::Error(ENXIO, "past end of file");
  uint64_t pos = off;
  while (pos < size) {
    auto seg = inode->extents.Find(pos / bs_, UINT64_MAX / 2);
    bool is_data = seg.mapped;
    if ((whence == SEEK_DATA) == is_data) return pos;
    uint64_t next = (pos / bs_ + seg.len) * bs_;
    if (next <= pos) break;
    pos = next;
  }
  if (whence == SEEK_HOLE) return size;
  return Status::Error(ENXIO, "no data past offset");
}

Result<size_t> Vfs::CopyFileRange(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                                  uint64_t off_out, size_t len, unsigned flags) {
  std::lock_guard lock(mu_);
  if (flags != 0) return Status::Error(EINVAL, "flags must be 0");
  NSF_ASSIGN_OR_RETURN(Inode * in, Get(ino_in));
  NSF_ASSIGN_OR_RETURN(Inode * out, Get(ino_out));
  if (!S_ISREG(in->rec.mode) || !S_ISREG(out->rec.mode)) {
    return Status::Error(S_ISDIR(in->rec.mode) || S_ISDIR(out->rec.mode) ? EISDIR : EINVAL,
                         "not regular files");
  }
  if (ino_in == ino_out && off_in < off_out + len && off_out < off_in + len) {
    return Status::Error(EINVAL, "overlapping ranges in one file");
  }
  NSF_RETURN_IF_ERROR(LoadExtents(in));
  if (off_in >= in->rec.size) return size_t{0};
  len = std::min<uint64_t>(len, in->rec.size - off_in);
  // A physical byte copy: NF source blocks are never shared (SEMANTICS.md
  // section 3), and a copy into NF blocks is durable like any NF write.
  std::vector<char> buf(std::min<size_t>(len, 1 << 20));
  size_t done = 0;
  while (done < len) {
    size_t chunk = std::min(buf.size(), len - done);
    uint64_t start = off_in + done;
    NSF_RETURN_IF_ERROR(ForEachByteRun(
        in->extents, volume_->superblock(), start, start + chunk, [&](const ByteRun& r) {
          char* dst = buf.data() + (r.pos - start);
          if (r.mapped) {
            volume_->device().Read(r.dev, dst, r.end - r.pos);
          } else {
            std::memset(dst, 0, r.end - r.pos);
          }
          return Status::Ok();
        }));
    auto wrote = WriteLocked(out, off_out + done, buf.data(), chunk);
    if (!wrote.ok()) {
      if (done > 0) break;
      return wrote.status();
    }
    done += *wrote;
    if (*wrote < chunk) break;
  }
  return done;
}

}  // namespace nosyncfs
