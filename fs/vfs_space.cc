// The Vfs's space operations: fallocate (allocate, punch, zero range),
// SEEK_DATA/SEEK_HOLE. (copy_file_range is in vfs_share.cc.)
#include <fcntl.h>
#include <linux/falloc.h>

#include <cstring>

#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using namespace vfs_internal;

Status Vfs::Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, const Modifier& who) {
  if (len == 0) return Status::Error(EINVAL, "zero length");
  if (off > kMaxFileSize || len > kMaxFileSize - off) return Status::Error(EFBIG, "too large");
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  if (!inode->is_reg()) return Status::Error(ENODEV, "not a regular file");
  bool killed = false;
  Status st;
  {
    std::unique_lock lock(inode->mu);
    NSF_RETURN_IF_ERROR(CheckAlive(*inode));
    NSF_RETURN_IF_ERROR(SettleDirectWritesLocked(inode.get()));
    // As file_modified() does before any change: the commit of the
    // operation carries the new mode.
    killed = KillSetIdOnModify(inode.get(), who);
    if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
      st = PunchHoleLocked(inode.get(), off, len);
    } else if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE) {
      st = ZeroRangeLocked(inode.get(), off, len, mode & FALLOC_FL_KEEP_SIZE);
    } else if (mode == FALLOC_FL_COLLAPSE_RANGE || mode == FALLOC_FL_INSERT_RANGE) {
      st = ShiftRangeLocked(inode.get(), off, len, mode == FALLOC_FL_INSERT_RANGE);
    } else if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_UNSHARE_RANGE) {
      // Private blocks for the range, then allocated as by mode 0 (as XFS).
      uint64_t first = off / bs_, last = (off + len - 1) / bs_;
      st = UnshareLocked(inode.get(), first, last - first + 1);
      if (st.ok()) st = AllocateLocked(inode.get(), off, len, mode & FALLOC_FL_KEEP_SIZE);
    } else if (mode & ~FALLOC_FL_KEEP_SIZE) {
      st = Status::Error(EOPNOTSUPP, "fallocate mode not supported");
    } else {
      st = AllocateLocked(inode.get(), off, len, mode & FALLOC_FL_KEEP_SIZE);
    }
    if (killed && !st.ok()) {
      Status mode_st = Commit(Transaction{}, {inode.get()}, false);
      if (!mode_st.ok()) st = mode_st;
    }
  }
  if (killed) InvalidateKernelAttrs(ino);
  return st;
}

Status Vfs::AllocateLocked(Inode* inode, uint64_t off, uint64_t len, bool keep_size) {
  uint64_t first = off / bs_, last = (off + len - 1) / bs_;
  bool grows = !keep_size && off + len > inode->rec.size;
  if (grows) NSF_RETURN_IF_ERROR(ZeroTailForGrowth(inode, off + len));
  const uint32_t new_flags = NewBlockFlags(*inode);
  NSF_RETURN_IF_ERROR(FillHoles(inode, {{first, last - first + 1}}, new_flags));
  Transaction txn;
  txn.PutExtentChanges(inode->ino, inode->mutable_extents());
  inode->rec.ctime = Now();
  if (grows) {
    inode->rec.size = off + len;
    inode->rec.mtime = inode->rec.ctime;  // the size changed, as ext4 does
  }
  // NF space (a no-fsync policy) is sealed on return, as setting the flag is.
  return Commit(std::move(txn), {inode}, new_flags != 0);
}

Status Vfs::ZeroInPlace(Inode* inode, uint64_t off, uint64_t end) {
  return ForEachByteRun(inode->extents(), volume_->superblock(), off, end, [&](const ByteRun& r) {
    if (!r.mapped) return Status::Ok();
    volume_->device().Zero(r.dev, r.end - r.pos);
    if (!(r.flags & kExtentNoFsync)) {
      if (inode->dirty == nullptr) inode->dirty = std::make_unique<DirtyRanges>(dirty_granule_);
      inode->dirty->Add(r.pos, r.end);
      MarkDirty(inode);
      return Status::Ok();
    }
    return volume_->device().Persist(r.dev, r.end - r.pos);
  });
}

void Vfs::AddZeroWork(const Inode* inode, uint64_t off, uint64_t end, InPlaceWork* work) const {
  (void)ForEachByteRun(inode->extents(), volume_->superblock(), off, end, [&](const ByteRun& r) {
    if (r.mapped) work->zero.push_back({r.dev, r.end - r.pos});
    return Status::Ok();
  });
}

Status Vfs::PunchHoleLocked(Inode* inode, uint64_t off, uint64_t len) {
  uint64_t end = off + len;
  uint64_t touched_first = off / bs_, touched_end = (end + bs_ - 1) / bs_;
  bool overlaps_nf = HasNosyncBlocks(*inode, touched_first, touched_end - touched_first);
  if (overlaps_nf && nf_punch_.load(std::memory_order_relaxed) == VfsOptions::NfPunch::kDeny) {
    return Status::Error(EPERM, "hole punch over no-fsync extents (nf_punch=deny)");
  }
  // Whole blocks are unmapped; the partial blocks at the edges are zeroed in
  // place, so they keep their mapping (and flag). The zeroing is the
  // transaction's in-place work: it reaches the media only once the
  // transaction (unmapping the middle) is durable, and recovery finishes
  // it, so a crash leaves the punch whole or not begun.
  uint64_t full_first = (off + bs_ - 1) / bs_, full_end = end / bs_;
  // Partial edge blocks shared with another file get private copies first:
  // the zeroing below must reach this file's bytes only. (Whole blocks just
  // lose this file's reference.)
  if (off % bs_ != 0) NSF_RETURN_IF_ERROR(UnshareLocked(inode, off / bs_, 1));
  if (end % bs_ != 0) NSF_RETURN_IF_ERROR(UnshareLocked(inode, (end - 1) / bs_, 1));
  InPlaceWork edges;
  if (full_first >= full_end) {
    AddZeroWork(inode, off, end, &edges);
  } else {
    AddZeroWork(inode, off, full_first * bs_, &edges);
    AddZeroWork(inode, full_end * bs_, end, &edges);
  }
  Transaction txn;
  if (full_first < full_end) {
    txn.Free(inode->mutable_extents().Unmap(full_first, full_end - full_first));
    // Dirty tracking of unmapped bytes is moot; PersistDirtyData skips holes.
  }
  txn.PutExtentChanges(inode->ino, inode->mutable_extents());
  inode->rec.mtime = inode->rec.ctime = Now();
  // Over NF extents the punch is durable on return (SEMANTICS.md section 4).
  if (edges.empty()) return Commit(std::move(txn), {inode}, overlaps_nf);
  return CommitInPlace(std::move(txn), {inode}, edges);
}

Status Vfs::ZeroRangeLocked(Inode* inode, uint64_t off, uint64_t len, bool keep_size) {
  uint64_t end = off + len;
  uint64_t first = off / bs_, last = (end - 1) / bs_;
  // Like Linux file systems, zero range leaves the range allocated; new
  // blocks arrive zeroed, existing ones are zeroed in place (NF ones keep
  // their blocks and flag and are persisted now).
  // The zeroing is the transaction's in-place work, as for a punch: the
  // range is all zeros after a crash, or as it was.
  // Shared blocks get private copies first, so the zeroing never reaches
  // another file's data.
  NSF_RETURN_IF_ERROR(UnshareLocked(inode, first, last - first + 1));
  if (!keep_size && off > inode->rec.size) NSF_RETURN_IF_ERROR(ZeroTailForGrowth(inode, off));
  NSF_RETURN_IF_ERROR(FillHoles(inode, {{first, last - first + 1}}, NewBlockFlags(*inode)));
  InPlaceWork zeros;
  AddZeroWork(inode, off, end, &zeros);
  Transaction txn;
  txn.PutExtentChanges(inode->ino, inode->mutable_extents());
  inode->rec.mtime = inode->rec.ctime = Now();
  bool grew = !keep_size && end > inode->rec.size;
  if (grew) inode->rec.size = end;
  return CommitInPlace(std::move(txn), {inode}, zeros);
}

Status Vfs::ShiftRangeLocked(Inode* inode, uint64_t off, uint64_t len, bool insert) {
  // ext4's rules, in its order.
  if (off % bs_ != 0 || len % bs_ != 0) {
    return Status::Error(EINVAL, "collapse and insert range need block-aligned offset and length");
  }
  const uint64_t size = inode->rec.size;
  if (!insert && off + len >= size) {
    return Status::Error(EINVAL, "collapse range must end before the end of the file");
  }
  if (insert && off >= size) {
    return Status::Error(EINVAL, "insert range must start inside the file");
  }
  if (insert && len > kMaxFileSize - size) return Status::Error(EFBIG, "file too large");
  const uint64_t first = off / bs_, count = len / bs_;
  // Every block from `off` on moves: NF blocks are sealed (D1).
  if (HasNosyncBlocks(*inode, first, UINT64_MAX / 2)) {
    return Status::Error(EPERM, "collapse or insert range would move no-fsync extents");
  }
  // Dirty ranges are logical offsets, which are about to change meaning.
  NSF_RETURN_IF_ERROR(PersistDirtyData(inode));
  // One transaction: unmapping, moving and the new size, whole after a crash.
  Transaction txn;
  ExtentMap& map = inode->mutable_extents();
  if (insert) {
    map.Shift(first, count, /*up=*/true);
  } else {
    txn.Free(map.Unmap(first, count));
    map.Shift(first + count, count, /*up=*/false);
  }
  txn.PutExtentChanges(inode->ino, map);
  inode->rec.size = insert ? size + len : size - len;
  inode->rec.mtime = inode->rec.ctime = Now();
  return Commit(std::move(txn), {inode}, false);
}

Result<uint64_t> Vfs::Lseek(uint64_t ino, uint64_t off, int whence) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  CatchUp(inode.get());
  std::shared_lock lock(inode->mu);
  uint64_t size = inode->rec.size;
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Error(EINVAL, "bad whence");
  if (off >= size) return Status::Error(ENXIO, "past end of file");
  uint64_t pos = off;
  while (pos < size) {
    auto seg = inode->extents().Find(pos / bs_, UINT64_MAX / 2);
    bool is_data = seg.mapped;
    if ((whence == SEEK_DATA) == is_data) return pos;
    uint64_t next = (pos / bs_ + seg.len) * bs_;
    if (next <= pos) break;
    pos = next;
  }
  if (whence == SEEK_HOLE) return size;
  return Status::Error(ENXIO, "no data past offset");
}

}  // namespace nosyncfs
