// The Vfs's side of direct access (fs/direct_server): a file's NF layout
// for a lease, the check of every layout change against the leases, and
// the timestamps of direct writes.
#include <mutex>
#include <shared_mutex>

#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using vfs_internal::Now;

NfLayout Vfs::NfLayoutLocked(const Inode& inode, bool past_eof) const {
  NfLayout layout;
  if (inode.destroyed) return layout;
  layout.size = inode.rec.size;
  layout.past_eof = past_eof;
  const Superblock& sb = volume_->superblock();
  uint64_t covered = 0;  // NF bytes from 0 without a gap
  for (const auto& [lblk, e] : inode.extents().extents()) {
    if (!(e.flags & kExtentNoFsync)) continue;
    const uint64_t from = e.lblk * bs_;
    if (from >= layout.size && !past_eof) break;
    const uint64_t whole = e.len * bs_;
    const uint64_t length = past_eof ? whole : std::min(whole, layout.size - from);
    layout.extents.push_back(
        NfLayout::Extent{from, length, sb.BlockOffset(e.pblk), e.pblk, e.len});
    if (from == covered) covered = from + whole;
    if (from <= layout.size && layout.size < from + whole && layout.size % bs_ != 0) {
      layout.tail_offset = sb.BlockOffset(e.pblk) + (layout.size - from);
      layout.tail_length = bs_ - layout.size % bs_;
    }
  }
  layout.nothing_to_sync = covered >= layout.size && (!inode.dirty || inode.dirty->empty()) &&
                           !inode.attr_needs_sync && inode.write_opens.load() <= 1;
  return layout;
}

Status Vfs::GrantLayout(uint64_t ino, bool past_eof,
                        const std::function<void(const NfLayout&)>& grant) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  if (!inode->is_reg()) return Status::Error(EINVAL, "not a regular file");
  // Shared: every layout change takes the lock exclusively and checks the
  // leases first, so none can slip between this look and the grant.
  std::shared_lock lock(inode->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*inode));
  grant(NfLayoutLocked(*inode, past_eof));
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
    const uint64_t size = inode->rec.size;
    AbsorbDirectWritesLocked(inode.get());
    bool killed = false;
    if (wrote) {
      killed = KillSetIdOnModify(inode.get(), who);
      // As for an NF write through FUSE: in memory now, persisted with the
      // next metadata commit (SEMANTICS.md section 1).
      inode->rec.mtime = inode->rec.ctime = Now();
      inode->attr_dirty = true;
      MarkDirty(inode.get());
    }
    // The slot may go only once the store holds the size it published.
    if (inode->rec.size != size || killed) {
      Status st = Commit(Transaction{}, {inode.get()}, inode->rec.size != size);
      if (!st.ok()) return;  // the slot keeps the size; recovery folds it
    }
    if (leases_ != nullptr) leases_->SizeFolded(ino);
  }
  InvalidateKernelAttrs(ino);
}

bool Vfs::AbsorbDirectWritesLocked(Inode* inode) {
  if (leases_ == nullptr || !inode->is_reg() || inode->destroyed) return false;
  const DirectWrites w = leases_->TakeDirectWrites(inode->ino);
  if (!w.slotted) return false;
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
  return changed;
}

void Vfs::CatchUpWithDirectWrites(uint64_t ino) {
  if (leases_ == nullptr || !leases_->WriteLeased(ino)) return;
  InodeRef inode = Find(ino);
  if (!inode || !inode->is_reg()) return;
  std::unique_lock lock(inode->mu);
  AbsorbDirectWritesLocked(inode.get());
}

Status Vfs::SettleDirectWritesLocked(Inode* inode) {
  if (leases_ == nullptr || !inode->is_reg() || !leases_->WriteLeased(inode->ino)) {
    return Status::Ok();
  }
  const uint64_t size = inode->rec.size;
  leases_->EndAppends(inode->ino);
  AbsorbDirectWritesLocked(inode);
  if (inode->rec.size != size) NSF_RETURN_IF_ERROR(Commit(Transaction{}, {inode}, true));
  leases_->SizeFolded(inode->ino);
  return Status::Ok();
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
