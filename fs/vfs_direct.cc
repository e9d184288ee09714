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
  for (const auto& [lblk, e] : inode.extents().extents()) {
    if (!(e.flags & kExtentNoFsync)) continue;
    const uint64_t from = e.lblk * bs_;
    if (from >= layout.size) break;
    layout.extents.push_back(NfLayout::Extent{from, std::min(e.len * bs_, layout.size - from),
                                              sb.BlockOffset(e.pblk), e.pblk, e.len});
  }
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
    if (!KillSetIdOnModify(inode.get(), who)) return Status::Ok();
    NSF_RETURN_IF_ERROR(Commit(Transaction{}, {inode.get()}, false));
  }
  InvalidateKernelAttrs(ino);
  return Status::Ok();
}

void Vfs::NoteDirectWrites(uint64_t ino, const Modifier& who) {
  InodeRef inode = Find(ino);
  // Read-only: no write lease is left, whatever a client says.
  if (!inode || read_only()) return;
  {
    std::unique_lock lock(inode->mu);
    if (inode->destroyed) return;
    if (KillSetIdOnModify(inode.get(), who)) {
      (void)Commit(Transaction{}, {inode.get()}, false);  // as Write does
    }
    // As for an NF write through FUSE: in memory now, persisted with the
    // next metadata commit (SEMANTICS.md section 1).
    inode->rec.mtime = inode->rec.ctime = Now();
    inode->attr_dirty = true;
    MarkDirty(inode.get());
  }
  InvalidateKernelAttrs(ino);
}

}  // namespace nosyncfs
