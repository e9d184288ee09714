// The Vfs's attributes: getattr, setattr (with truncate), and the clearing
// of set-ID bits that the kernel leaves to the file system
// (FUSE_HANDLE_KILLPRIV_V2, fs/transport/fuse_channel.h).
#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using namespace vfs_internal;

Result<struct stat> Vfs::Getattr(uint64_t ino) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  CatchUp(inode.get());
  std::shared_lock lock(inode->mu);
  return StatOf(inode.get());
}

namespace {

// The kernel's setattr_should_drop_sgid: set-group-ID goes with group
// execute, and without it (a plain group-ID inheritance mark) when the
// caller could not have set it: not in the file's group, no CAP_FSETID.
bool DropsSetGid(uint32_t mode, gid_t gid, const Modifier& who) {
  if (!(mode & S_ISGID)) return false;
  if (mode & S_IXGRP) return true;
  return !who.InGroup(gid) && !who.HasFsetid();
}

bool SetModeKeepingType(Inode* inode, uint32_t mode) {
  if (mode == inode->rec.mode) return false;
  inode->rec.mode = mode;
  inode->rec.ctime = Now();
  return true;
}

}  // namespace

bool Vfs::KillSetIdOnModify(Inode* inode, const Modifier& who) {
  const uint32_t mode = inode->rec.mode;
  if (!inode->is_reg() || !(mode & (S_ISUID | S_ISGID)) || who.HasFsetid()) return false;
  const uint32_t sgid = DropsSetGid(mode, inode->rec.gid, who) ? S_ISGID : 0;
  return SetModeKeepingType(inode, mode & ~(S_ISUID | sgid));
}

bool Vfs::KillSetIdOnChown(Inode* inode, const Modifier& who) {
  const uint32_t mode = inode->rec.mode;
  if (inode->is_dir() || !(mode & (S_ISUID | S_ISGID))) return false;
  const uint32_t sgid = DropsSetGid(mode, inode->rec.gid, who) ? S_ISGID : 0;
  return SetModeKeepingType(inode, mode & ~(S_ISUID | sgid));
}

void Vfs::InvalidateKernelAttrs(uint64_t ino) {
  if (attr_invalidator_) attr_invalidator_(ino);
}

Result<struct stat> Vfs::Setattr(uint64_t ino, const SetattrRequest& req) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  std::unique_lock lock(inode->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*inode));
  NSF_RETURN_IF_ERROR(SettleDirectWritesLocked(inode.get()));
  InodeRecord& r = inode->rec;
  const InodeRecord before = r;
  Timespec now = Now();
  Transaction txn;
  bool durable = false;
  if (req.set_size) {
    if (inode->is_dir()) return Status::Error(EISDIR, "is a directory");
    if (!inode->is_reg()) return Status::Error(EINVAL, "not a regular file");
    if (req.size > kMaxFileSize) return Status::Error(EFBIG, "file too large");
    // A size change updates mtime and ctime (truncate(2)); the kernel does
    // not always say so.
    if (req.size != r.size) r.mtime = now;
    NSF_RETURN_IF_ERROR(TruncateLocked(inode.get(), req.size, &txn, &durable));
  }
  if (req.set_mode) r.mode = (r.mode & S_IFMT) | (req.mode & 07777);
  if (req.who != nullptr) {
    // A request that sets nothing is a chown(f, -1, -1) (or the kernel
    // asking for the set-ID bits a write will clear, which the same rule
    // clears); the group in the rule is the one before the change.
    const bool sets_nothing = !req.set_mode && !req.set_uid && !req.set_gid && !req.set_size &&
                              !req.set_atime && !req.set_mtime && !req.set_ctime;
    if (req.set_uid || req.set_gid || sets_nothing) KillSetIdOnChown(inode.get(), *req.who);
    if (req.set_size) KillSetIdOnModify(inode.get(), *req.who);
  }
  if (req.set_uid) r.uid = req.uid;
  if (req.set_gid) r.gid = req.gid;
  if (req.set_atime) {
    std::lock_guard lazy(inode->lazy_mu);
    r.atime = req.atime_now ? now : FromTimespec(req.atime);
  }
  if (req.set_mtime) r.mtime = req.mtime_now ? now : FromTimespec(req.mtime);
  r.ctime = req.set_ctime ? FromTimespec(req.ctime) : now;
  Status st = Commit(std::move(txn), {inode.get()}, durable);
  if (!st.ok()) {
    if (!req.set_size) r = before;  // a truncate already changed the mapping
    return st;
  }
  return StatOf(inode.get());
}

Status Vfs::TruncateLocked(Inode* inode, uint64_t size, Transaction* txn, bool* durable) {
  InodeRecord& r = inode->rec;
  if (size < r.size) {
    uint64_t keep_blocks = (size + bs_ - 1) / bs_;
    uint64_t old_blocks = UINT64_MAX / 2;
    bool touches_nf = false;
    for (const auto& [k, e] : inode->extents().extents()) {
      if (e.lend() > keep_blocks && (e.flags & kExtentNoFsync)) touches_nf = true;
    }
    if (touches_nf && nf_punch_.load(std::memory_order_relaxed) == VfsOptions::NfPunch::kDeny) {
      return Status::Error(EPERM, "truncate would cut no-fsync extents (nf_punch=deny)");
    }
    // The old bytes past the new EOF in the last block stay until the file
    // grows again (ZeroTailForGrowth): zeroing them now could reach media
    // before this truncate is durable and corrupt the old state.
    txn->Free(inode->mutable_extents().Unmap(keep_blocks, old_blocks - keep_blocks));
    txn->PutExtentChanges(r.ino, inode->mutable_extents());
    if (inode->dirty != nullptr) inode->dirty->Truncate(size);
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
  NSF_RETURN_IF_ERROR(UnshareLocked(inode, old / bs_, 1));
  return ZeroInPlace(inode, old, end);
}

}  // namespace nosyncfs
