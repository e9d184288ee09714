// The Vfs's side of direct access (fs/direct_server): a file's NF layout
// for a lease, the check of every layout change against the leases, and
// the timestamps of direct writes.
#include <mutex>
#include <shared_mutex>

#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using vfs_internal::Now;

NfLayout Vfs::NfLayoutLocked(const Inode& inode) const {
  NfLayout layout;
  if (inode.destroyed) return layout;
  layout.size = inode.rec.size;
  const Superblock& sb = volume_->superblock();
  uint64_t covered = 0;  // NF bytes from 0 without a gap
  for (const auto& [lblk, e] : inode.extents().extents()) {
    if (!(e.flags & kExtentNoFsync)) continue;
    const uint64_t from = e.lblk * bs_;
    const uint64_t whole = e.len * bs_;
    layout.extents.push_back(NfLayout::Extent{from, whole, sb.BlockOffset(e.pblk), e.pblk, e.len});
    if (from == covered) covered = from + whole;
    if (from <= layout.size && layout.size < from + whole && layout.size % bs_ != 0) {
      layout.tail_offset = sb.BlockOffset(e.pblk) + (layout.size - from);
      layout.tail_length = bs_ - layout.size % bs_;
    }
  }
  // As Fsync would find it: no data to persist, no attribute to commit,
  // and every transaction of the file (its create, say) durable already.
  layout.nothing_to_sync = covered >= layout.size && (!inode.dirty || inode.dirty->empty()) &&
                           !inode.attr_needs_sync &&
                           volume_->durable_seq() >= inode.last_seq &&
                           inode.write_opens.load() <= 1;
  return layout;
}

Status Vfs::GrantLayout(uint64_t ino, const std::function<void(const NfLayout&)>& grant) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  if (!inode->is_reg()) return Status::Error(EINVAL, "not a regular file");
  // Shared: every layout change takes the lock exclusively and checks the
  // leases first, so none can slip between this look and the grant.
  std::shared_lock lock(inode->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*inode));
  grant(NfLayoutLocked(*inode));
  return Status::Ok();
}

void Vfs::CheckLeases(const Transaction& txn, std::initializer_list<Inode*> touched) {
  for (uint64_t ino : txn.layout_changed) {
    if (!leases_->Leased(ino)) continue;
    const Inode* inode = nullptr;
    for (const Inode* t : touched) {
      if (t != nullptr && t->ino == ino) inode = t;
    }
    // An inode the commit does not name cannot be looked at safely here:
    // the empty layout revokes all of its leases, which is always safe.
    leases_->BeforeLayoutChange(ino, inode != nullptr ? NfLayoutLocked(*inode) : NfLayout{});
  }
}

Status Vfs::BeforeDirectWrites(uint64_t ino, const Modifier& who) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  {
    std::unique_lock lock(inode->mu);
    NSF_RETURN_IF_ERROR(CheckAlive(*inode));
    // A file without NF blocks gets no lease (GrantLayout would find no
    // extent): nothing will be written through one, and its bits stay.
    if (NosyncBlocks(*inode).empty()) return Status::Error(ENODATA, "the file has no NF extent");
    if (!KillSetIdOnModify(inode.get(), who)) return Status::Ok();
    NSF_RETURN_IF_ERROR(Commit(Transaction{}, {inode.get()}, false));
  }
  InvalidateKernelAttrs(ino);
  return Status::Ok();
}

void Vfs::AfterDirectWrites(uint64_t ino, const Modifier& who, bool wrote) {
  InodeRef inode = Find(ino);
  // Read-only: no write lease is left, whatever a client says; the sizes
  // were taken in before the last flush (AbsorbAllSizeSlots).
  if (!inode || read_only()) return;
  {
    std::unique_lock lock(inode->mu);
    if (inode->destroyed) return;
    if (wrote) {
      KillSetIdOnModify(inode.get(), who);
      // As for an NF write through FUSE: in memory now, persisted with the
      // next metadata commit (SEMANTICS.md section 1).
      inode->rec.mtime = inode->rec.ctime = Now();
      inode->attr_dirty = true;
      MarkDirty(inode.get());
    }
    // The slot keeps the size if this fails; recovery folds it.
    (void)FoldSizeSlotLocked(inode.get());
  }
  // No invalidation: while the file had a slot, the kernel cached none of
  // its attributes, so its next stat or read asks, and sees the new mtime.
}

void Vfs::ApplyDirectWritesLocked(Inode* inode, const DirectWrites& w) {
  bool changed = false;
  // Durable already: the appender persisted the size in its slot.
  if (w.published_size > inode->rec.size) {
    inode->rec.size = w.published_size;
    changed = true;
  }
  if (w.wrote) {
    // The kernel drops its pages when mtime moves (FUSE_AUTO_INVAL_DATA):
    // a read that starts after a direct write returned sees it.
    inode->rec.mtime = inode->rec.ctime = Now();
    changed = true;
  }
  if (changed) {
    inode->attr_dirty = true;
    MarkDirty(inode);
  }
}

void Vfs::AbsorbDirectWritesLocked(Inode* inode) {
  if (leases_ == nullptr || !inode->is_reg() || inode->destroyed) return;
  const DirectWrites w = leases_->TakeDirectWrites(inode->ino);
  if (w.slotted) ApplyDirectWritesLocked(inode, w);
}

void Vfs::CatchUp(Inode* inode) {
  if (leases_ == nullptr || !inode->is_reg()) return;
  const DirectWrites w = leases_->TakeDirectWrites(inode->ino);
  if (!w.slotted) return;
  if (!w.wrote) {
    std::shared_lock lock(inode->mu);
    if (w.published_size <= inode->rec.size) return;  // nothing new: no exclusive lock
  }
  std::unique_lock lock(inode->mu);
  if (!inode->destroyed) ApplyDirectWritesLocked(inode, w);
}

void Vfs::CatchUpWithDirectWrites(uint64_t ino) {
  if (InodeRef inode = Find(ino)) CatchUp(inode.get());
}

Status Vfs::FoldSizeSlotLocked(Inode* inode) {
  AbsorbDirectWritesLocked(inode);
  // The slot may go only once the store holds what it published, durably:
  // a getattr may have taken the size in long ago, with no commit since, or
  // with one that is not durable yet.
  NSF_RETURN_IF_ERROR(Commit(Transaction{}, {inode}, /*durable=*/true));
  leases_->SizeFolded(inode->ino);
  return Status::Ok();
}

Status Vfs::SettleDirectWritesLocked(Inode* inode) {
  if (leases_ == nullptr || !inode->is_reg() || !leases_->WriteLeased(inode->ino)) {
    return Status::Ok();
  }
  leases_->EndAppends(inode->ino);
  return FoldSizeSlotLocked(inode);
}

void Vfs::AbsorbAllSizeSlots() {
  for (const SizeSlots::Recorded& r : volume_->size_slots().Valid()) {
    InodeRef inode = Find(r.ino);
    if (!inode) continue;
    std::unique_lock lock(inode->mu);
    if (inode->destroyed || !inode->is_reg() || r.size <= inode->rec.size) continue;
    inode->rec.size = r.size;
    inode->attr_dirty = true;
    MarkDirty(inode.get());
  }
}

double Vfs::AttrTimeout(uint64_t ino, double usual) const {
  return leases_ != nullptr && leases_->WriteLeased(ino) ? 0.0 : usual;
}

void Vfs::WriterOpened(uint64_t ino) {
  InodeRef inode = Find(ino);
  if (!inode) return;
  inode->write_opens.fetch_add(1);
  if (leases_ == nullptr || !leases_->WriteLeased(ino)) return;
  // An appender's lease may skip fsync only while its descriptor is the
  // file's one writer: this one could dirty pages (a shared mapping) that
  // only a real fsync writes back.
  std::unique_lock lock(inode->mu);
  (void)SettleDirectWritesLocked(inode.get());
}

void Vfs::WriterClosed(uint64_t ino) {
  InodeRef inode = Find(ino);
  if (!inode) return;
  uint32_t cur = inode->write_opens.load();
  while (cur > 0 && !inode->write_opens.compare_exchange_weak(cur, cur - 1)) {
  }
}

}  // namespace nosyncfs
