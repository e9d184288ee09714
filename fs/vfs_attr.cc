// The Vfs's attributes: getattr, setattr (with truncate), and the clearing
// of set-ID bits that the kernel leaves to the file system
// (FUSE_HANDLE_KILLPRIV_V2, fs/fuse_channel.h).
#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using namespace vfs_internal;

Result<struct stat> Vfs::Getattr(uint64_t ino) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  std::shared_lock lock(inode->mu);
  return StatOf(inode.get());
}

bool Vfs::KillSetId(Inode* inode, bool kill_suidgid) {
  if (!kill_suidgid || !inode->is_reg()) return false;
  uint32_t mode = inode->rec.mode;
  // Set-user-ID always goes; set-group-ID only with group execute (without
  // it, the bit marks mandatory locking, which Linux leaves alone).
  mode &= ~S_ISUID;
  if (mode & S_IXGRP) mode &= ~S_ISGID;
  if (mode == inode->rec.mode) return false;
  inode->rec.mode = mode;
  inode->rec.ctime = Now();
  return true;
}

void Vfs::InvalidateKernelAttrs(uint64_t ino) {
  if (attr_invalidator_) attr_invalidator_(ino);
}

Result<struct stat> Vfs::Setattr(uint64_t ino, const SetattrRequest& req) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  std::unique_lock lock(inode->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*inode));
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
  if (req.set_uid) r.uid = req.uid;
  if (req.set_gid) r.gid = req.gid;
  KillSetId(inode.get(), req.kill_suidgid);
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
    if (touches_nf && options_.nf_punch == VfsOptions::NfPunch::kDeny) {
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
