// The Vfs's inode cache, commit and flush machinery, and statfs. The
// operations live in vfs_namespace.cc, vfs_data.cc, vfs_attr.cc,
// vfs_space.cc, vfs_xattr.cc and vfs_nosync.cc.
#include "fs/vfs.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <thread>

#include "fs/vfs_internal.h"

namespace nosyncfs {

using namespace vfs_internal;

namespace {

// Inodes whose attributes one transaction of FlushAll commits, holding all
// their locks (ThreadSanitizer follows at most 64 locks held at once).
constexpr size_t kFlushBatch = 32;

// Lock order between two inodes (fs/vfs.h): directories first, then by
// inode number.
bool LockedBefore(const Inode* a, const Inode* b) {
  if (a->is_dir() != b->is_dir()) return a->is_dir();
  return a->ino < b->ino;
}

}  // namespace

// ---- pins and lock sets -----------------------------------------------------

Vfs::InodeRef& Vfs::InodeRef::operator=(InodeRef&& o) noexcept {
  if (this != &o) {
    reset();
    vfs_ = o.vfs_;
    inode_ = o.inode_;
    o.inode_ = nullptr;
  }
  return *this;
}

void Vfs::InodeRef::reset() {
  if (inode_ != nullptr) vfs_->Unpin(inode_);
  inode_ = nullptr;
}

void Vfs::LockSet::Add(Inode* inode) {
  if (inode != nullptr) inodes_.push_back(inode);
}

void Vfs::LockSet::Lock() {
  std::sort(inodes_.begin(), inodes_.end(), LockedBefore);
  inodes_.erase(std::unique(inodes_.begin(), inodes_.end()), inodes_.end());
  for (Inode* inode : inodes_) inode->mu.lock();
  locked_ = true;
}

void Vfs::LockSet::AddLocked(Inode* inode) {
  assert(locked_ && (inodes_.empty() || LockedBefore(inodes_.back(), inode)));
  inode->mu.lock();
  inodes_.push_back(inode);
}

void Vfs::LockSet::Unlock() {
  if (!locked_) return;
  for (Inode* inode : inodes_) inode->mu.unlock();
  locked_ = false;
}

// ---- construction, Init, Shutdown ------------------------------------------

namespace {

uint64_t DirtyGranuleOf(const Volume& volume) {
  uint64_t granule = 64;  // a cache line
  if (volume.device().granularity() != PersistGranularity::kCacheLine) {
    granule = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));  // msync and the emulation
  }
  return std::min<uint64_t>(granule, volume.block_size());
}

}  // namespace

Vfs::Vfs(std::unique_ptr<Volume> volume, VfsOptions options)
    : volume_(std::move(volume)),
      nf_punch_(options.nf_punch),
      atime_(options.atime),
      dir_atime_(options.dir_atime),
      bs_(volume_->block_size()),
      dirty_granule_(DirtyGranuleOf(*volume_)) {}

void Vfs::SetOptions(const VfsOptions& options) {
  nf_punch_.store(options.nf_punch, std::memory_order_relaxed);
  atime_.store(options.atime, std::memory_order_relaxed);
  dir_atime_.store(options.dir_atime, std::memory_order_relaxed);
}

VfsOptions Vfs::options() const {
  VfsOptions o;
  o.nf_punch = nf_punch_.load(std::memory_order_relaxed);
  o.atime = atime_.load(std::memory_order_relaxed);
  o.dir_atime = dir_atime_.load(std::memory_order_relaxed);
  return o;
}

// ---- remount ------------------------------------------------------------------------

std::optional<Vfs::ChangeTicket> Vfs::BeginChange() {
  // Dekker with RemountReadOnly: either it sees this ticket and waits for
  // it, or this sees its flag and refuses.
  changes_in_flight_.fetch_add(1, std::memory_order_seq_cst);
  ChangeTicket ticket(&changes_in_flight_);
  if (read_only()) return std::nullopt;  // the ticket gives its count back
  return ticket;
}

Status Vfs::RemountReadOnly() {
  if (read_only()) return Status::Ok();
  read_only_now_.store(true, std::memory_order_seq_cst);
  while (changes_in_flight_.load(std::memory_order_seq_cst) != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // A write lease's holder stores in place without a request: it must be
  // done before the last flush.
  if (leases_ != nullptr) leases_->RevokeWriteLeases();
  AbsorbAllSizeSlots();
  Status st = FlushAll();
  if (st.ok()) st = volume_->Sync();
  if (st.ok()) st = volume_->Checkpoint();
  if (!st.ok()) {
    read_only_now_.store(false, std::memory_order_seq_cst);
    return st;
  }
  volume_->Freeze(true);
  spdlog::info("remounted read-only");
  return Status::Ok();
}

Status Vfs::RemountReadWrite() {
  if (volume_->read_only()) {
    return Status::Error(EROFS, "it was mounted with -o ro, which opens the device read-only: "
                                "unmount it and mount it read-write");
  }
  if (!read_only_now_.load(std::memory_order_seq_cst)) return Status::Ok();
  volume_->Freeze(false);
  read_only_now_.store(false, std::memory_order_seq_cst);
  // Unlinked files whose last user went while read-only kept their orphan
  // records (Retire): a look at each frees those nobody uses now.
  std::vector<uint64_t> orphans;
  NSF_RETURN_IF_ERROR(volume_->store().Scan(keys::kOrphanPrefix, "",
                                            [&](std::string_view k, std::string_view) {
                                              orphans.push_back(keys::InoOf(k));
                                              return true;
                                            }));
  for (uint64_t ino : orphans) (void)Get(ino);  // unpinned at once: Retire frees it if idle
  spdlog::info("remounted read-write");
  return Status::Ok();
}

Vfs::~Vfs() {
  Status st = Shutdown();
  if (!st.ok()) spdlog::error("shutdown: {}", st.ToString());
}

Status Vfs::Init(Progress* progress) {
  NSF_ASSIGN_OR_RETURN(root_, Get(kRootIno));
  std::vector<uint64_t> orphans;
  NSF_RETURN_IF_ERROR(volume_->store().Scan(keys::kOrphanPrefix, "",
                                            [&](std::string_view k, std::string_view) {
                                              orphans.push_back(keys::InoOf(k));
                                              return true;
                                            }));
  if (progress != nullptr && !orphans.empty()) {
    progress->Begin(orphans.size(), 1, "freeing orphan inodes");
  }
  size_t freed = 0;
  for (size_t i = 0; i < orphans.size(); ++i) {
    if (progress != nullptr) progress->Update(i);
    Transaction txn;
    auto inode = Get(orphans[i]);
    if (!inode.ok() && inode.status().code() != ENOENT) return inode.status();
    // Only damage leaves an orphan record of a missing inode or of a linked
    // one (the transaction that links an inode drops its record): drop the
    // record alone, as fsck -p does, and never free a file a path reaches.
    if (!inode.ok() || (*inode)->rec.nlink > 0) {
      spdlog::warn("dropped the orphan record of inode {}: {}", orphans[i],
                   inode.ok() ? "the inode is linked" : "no such inode");
      txn.batch.Delete(keys::Orphan(orphans[i]));
      NSF_RETURN_IF_ERROR(volume_->Commit(std::move(txn), /*durable=*/false).status());
      continue;
    }
    std::unique_lock lock((*inode)->mu);
    NSF_RETURN_IF_ERROR(DestroyInode(&txn, inode->get()));
    NSF_RETURN_IF_ERROR(volume_->Commit(std::move(txn), /*durable=*/false).status());
    ++freed;
  }
  if (progress != nullptr) progress->Finish();
  if (freed > 0) {
    spdlog::info("freed {} orphan inodes (unlinked while open, or O_TMPFILE never linked)", freed);
  }
  return Status::Ok();
}

Status Vfs::Shutdown() {
  std::lock_guard shutdown_lock(shutdown_mu_);
  if (shut_down_) return Status::Ok();
  // Sizes appenders published but nobody asked for: the store gets them
  // now, so that a read-only open finds nothing to fold.
  if (!read_only()) AbsorbAllSizeSlots();
  Status first = FlushAll();
  auto note = [&](Status st) {
    if (!st.ok() && first.ok()) first = st;
  };
  // Unlinked files the kernel never let go of: free them now (a crash
  // would leave them to the next mount's orphan pass). Read-only: nothing
  // changes, the next mount frees them.
  for (Inode* raw : read_only() ? std::vector<Inode*>{} : table_.PinAll()) {
    InodeRef inode(this, raw);
    if (!WaitLoaded(raw)) continue;
    std::unique_lock lock(inode->mu);
    if (inode->rec.nlink > 0 || inode->destroyed) continue;
    Transaction txn;
    note(DestroyInode(&txn, inode.get()));
    note(volume_->Commit(std::move(txn), false).status());
  }
  if (!read_only()) note(volume_->Checkpoint());  // remounted read-only: done then
  shut_down_ = true;
  return first;
}

// ---- inode cache ------------------------------------------------------------

Status Vfs::LoadInto(Inode* inode) {
  NSF_ASSIGN_OR_RETURN(auto value, volume_->store().Get(keys::Inode(inode->ino)));
  if (!value) return Status::Error(ENOENT, "no inode " + std::to_string(inode->ino));
  NSF_ASSIGN_OR_RETURN(inode->rec, InodeRecord::Decode(inode->ino, *value));
  inode->type = inode->rec.mode & S_IFMT;
  // Only an inode unlinked while open has an orphan record (and no way
  // back to a link).
  inode->maybe_orphan_record = inode->rec.nlink == 0;
  if (!inode->is_reg()) return Status::Ok();
  Status inner;
  NSF_RETURN_IF_ERROR(volume_->store().Scan(
      keys::ExtentPrefix(inode->ino), "", [&](std::string_view k, std::string_view v) {
        auto e = DecodeExtent(k, v);
        if (!e.ok()) {
          inner = e.status();
          return false;
        }
        inode->mutable_extents().Load(*e);
        return true;
      }));
  return inner;
}

Result<Vfs::InodeRef> Vfs::Get(uint64_t ino) {
  auto [raw, created] = table_.FindOrCreate(ino);
  InodeRef inode(this, raw);
  if (created) {
    // Ours to fill; nobody else touches it before `loaded`.
    Status st = LoadInto(raw);
    if (!st.ok()) raw->load_failed = raw->destroyed = true;  // freed with its last pin
    raw->loaded.store(true, std::memory_order_release);
    raw->loaded.notify_all();
    if (!st.ok()) return st;
    return inode;
  }
  if (!WaitLoaded(raw)) return Status::Error(ENOENT, "no inode " + std::to_string(ino));
  return inode;
}

bool Vfs::WaitLoaded(Inode* inode) {
  inode->loaded.wait(false, std::memory_order_acquire);
  return !inode->load_failed;
}

Vfs::InodeRef Vfs::Find(uint64_t ino) {
  InodeRef inode(this, table_.FindAndPin(ino));
  if (inode && !WaitLoaded(inode.get())) return InodeRef();
  return inode;
}

Status Vfs::CheckAlive(const Inode& inode) {
  if (inode.destroyed) return Status::Error(ENOENT, "inode " + std::to_string(inode.ino) + " was removed");
  return Status::Ok();
}

void Vfs::Unpin(Inode* inode) {
  if (table_.Unpin(inode) == InodeTable::Unpinned::kIdle) Retire(inode);
}

void Vfs::Retire(Inode* inode) {
  std::unique_lock lock(inode->mu);
  if (inode->nlookup.load() > 0 || inode->open_count.load() > 0) {
    // Referenced again meanwhile: an ordinary unpin after all.
    lock.unlock();
    Unpin(inode);
    return;
  }
  Status st;
  if (inode->rec.nlink == 0 && !inode->destroyed && read_only()) {
    // Remounted read-only: its orphan record stays, and a remount
    // read-write (or the next mount) frees it.
  } else if (inode->rec.nlink == 0 && !inode->destroyed) {
    Transaction txn;
    st = DestroyInode(&txn, inode);
    if (st.ok() && leases_ != nullptr) CheckLeases(txn, {inode});
    if (st.ok()) st = volume_->Commit(std::move(txn), false).status();
  } else if (!inode->destroyed) {
    st = PersistDirtyData(inode);
    if (st.ok()) st = FlushLazyAttrs(inode);
  }
  if (!st.ok()) {
    // Keep it cached: Shutdown, or the next mount's orphan pass, retries.
    spdlog::error("retiring inode {}: {}", inode->ino, st.ToString());
    lock.unlock();
    (void)table_.UnpinAndRemove(inode).release();  // never the last: see below
    return;
  }
  std::unique_ptr<Inode> removed = table_.UnpinAndRemove(inode);
  lock.unlock();
  // `removed` (if we held the last pin) is deleted here, unlocked.
}

// ---- attributes and commits ----------------------------------------------------

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
  uint64_t blocks = inode->is_reg() ? inode->extents().mapped_blocks() : 0;
  st.st_blocks = static_cast<blkcnt_t>(blocks * (bs_ / 512));
  {
    std::lock_guard lazy(inode->lazy_mu);
    st.st_atim = ToTimespec(r.atime);
  }
  st.st_mtim = ToTimespec(r.mtime);
  st.st_ctim = ToTimespec(r.ctime);
  return st;
}

Status Vfs::Commit(Transaction&& txn, std::initializer_list<Inode*> touched, bool durable) {
  return CommitWith(std::move(txn), touched, [&](Transaction&& t) {
    return volume_->Commit(std::move(t), durable);
  });
}

Status Vfs::CommitInPlace(Transaction&& txn, std::initializer_list<Inode*> touched,
                          const InPlaceWork& work) {
  return CommitWith(std::move(txn), touched, [&](Transaction&& t) {
    return volume_->CommitInPlace(std::move(t), work);
  });
}

Status Vfs::CommitWith(Transaction&& txn, std::initializer_list<Inode*> touched,
                       const std::function<Result<uint64_t>(Transaction&&)>& commit) {
  for (Inode* inode : touched) {
    if (inode != nullptr && inode->rec.nlink > 0 && !inode->destroyed) txn.PutInode(inode->rec);
  }
  if (leases_ != nullptr && !txn.layout_changed.empty()) CheckLeases(txn, touched);
  auto committed = commit(std::move(txn));
  if (!committed.ok()) {
    // Entry changes already went into the directories' caches.
    for (Inode* inode : touched) {
      if (inode != nullptr) inode->dentries.reset();
    }
    return committed.status();
  }
  const uint64_t seq = *committed;
  for (Inode* inode : touched) {
    if (inode == nullptr) continue;
    inode->attr_dirty = inode->attr_needs_sync = inode->atime_dirty = false;
    inode->last_seq = seq;
    MarkCleanIfClean(inode);
  }
  return Status::Ok();
}

void Vfs::MarkDirty(Inode* inode) {
  std::lock_guard lock(dirty_mu_);
  if (!inode->dirty_hook.is_linked()) dirty_list_.push_back(*inode);
}

void Vfs::MarkCleanIfClean(Inode* inode) {
  bool clean = !inode->attr_dirty && !inode->attr_needs_sync && !inode->atime_dirty &&
               (inode->dirty == nullptr || inode->dirty->empty());
  if (!clean) return;
  std::lock_guard lock(dirty_mu_);
  if (inode->dirty_hook.is_linked()) dirty_list_.erase(dirty_list_.iterator_to(*inode));
}

Status Vfs::PersistDirtyData(Inode* inode) {
  if (inode->dirty == nullptr || inode->dirty->empty()) return Status::Ok();
  // Re-resolve the mapping (blocks may have been unmapped since the
  // writes), and persist device-contiguous pieces as one range each.
  uint64_t run_start = 0, run_end = 0;
  auto flush_run = [&]() -> Status {
    if (run_end == run_start) return Status::Ok();
    Status st = volume_->device().Persist(run_start, run_end - run_start);
    run_start = run_end = 0;
    return st;
  };
  for (const auto& [start, end] : inode->dirty->ranges()) {
    NSF_RETURN_IF_ERROR(ForEachByteRun(inode->extents(), volume_->superblock(), start, end,
                                       [&](const ByteRun& r) -> Status {
                                         if (!r.mapped) return Status::Ok();
                                         if (r.dev != run_end) NSF_RETURN_IF_ERROR(flush_run());
                                         if (run_end == run_start) run_start = r.dev;
                                         run_end = r.dev + (r.end - r.pos);
                                         return Status::Ok();
                                       }));
  }
  NSF_RETURN_IF_ERROR(flush_run());
  inode->dirty.reset();
  MarkCleanIfClean(inode);
  return Status::Ok();
}

Status Vfs::FlushLazyAttrs(Inode* inode) {
  if (!inode->attr_dirty && !inode->attr_needs_sync && !inode->atime_dirty) return Status::Ok();
  return Commit(Transaction{}, {inode}, false);
}

Status Vfs::FlushAll() {
  std::vector<InodeRef> pinned;
  {
    std::lock_guard lock(dirty_mu_);
    // Only loaded inodes become dirty, and they stay cached while dirty.
    for (Inode& inode : dirty_list_) {
      if (Inode* p = table_.FindAndPin(inode.ino)) pinned.emplace_back(this, p);
    }
  }
  std::sort(pinned.begin(), pinned.end(),
            [](const InodeRef& a, const InodeRef& b) { return LockedBefore(a.get(), b.get()); });
  // Batches of inodes, locked in order and kept locked until their records
  // are committed, so that no newer record of one can be committed first.
  for (size_t at = 0; at < pinned.size(); at += kFlushBatch) {
    size_t end = std::min(pinned.size(), at + kFlushBatch);
    LockSet locks;
    for (size_t i = at; i < end; ++i) locks.Add(pinned[i].get());
    locks.Lock();
    Transaction txn;
    for (size_t i = at; i < end; ++i) {
      Inode* inode = pinned[i].get();
      NSF_RETURN_IF_ERROR(PersistDirtyData(inode));
      bool lazy = inode->attr_dirty || inode->attr_needs_sync || inode->atime_dirty;
      if (lazy && inode->rec.nlink > 0 && !inode->destroyed) txn.PutInode(inode->rec);
    }
    if (txn.empty()) continue;
    NSF_ASSIGN_OR_RETURN(uint64_t seq, volume_->Commit(std::move(txn), false));
    for (size_t i = at; i < end; ++i) {
      Inode* inode = pinned[i].get();
      if (inode->rec.nlink == 0 || inode->destroyed) continue;
      inode->attr_dirty = inode->attr_needs_sync = inode->atime_dirty = false;
      inode->last_seq = std::max(inode->last_seq, seq);
      MarkCleanIfClean(inode);
    }
  }
  return Status::Ok();
}

Result<struct statvfs> Vfs::Statfs() {
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

std::string Vfs::StatsText() const {
  const Volume& vol = *volume_;
  const Device& dev = vol.device();
  std::string out;
  auto line = [&](const char* key, uint64_t value) {
    out += key;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
  };
  auto counter = [&](const char* key, const std::atomic<uint64_t>& c) {
    line(key, c.load(std::memory_order_relaxed));
  };
  out += "persistence ";
  out += PersistGranularityKey(dev.granularity());
  out += "\npersistence_detected_by " + dev.persistence_source() + "\n";
  line("block_size", bs_);
  line("total_bytes", vol.total_blocks() * bs_);
  line("free_bytes", vol.free_blocks() * bs_);
  line("nf_bytes", vol.nf_blocks() * bs_);
  counter("fsync_calls", stats_.fsync_calls);
  counter("fdatasync_calls", stats_.fdatasync_calls);
  counter("fsync_no_media_work", stats_.fsync_no_media_work);
  counter("fsyncdir_calls", stats_.fsyncdir_calls);
  counter("nf_writes", stats_.nf_writes);
  counter("nf_write_bytes_persisted", stats_.nf_write_bytes_persisted);
  const uint64_t persists = vol.log_persists(), txns = vol.log_transactions();
  line("log_persists", persists);
  line("log_transactions", txns);
  char mean[64];
  std::snprintf(mean, sizeof(mean), "transactions_per_log_persist %.2f\n",
                persists == 0 ? 0.0 : static_cast<double>(txns) / static_cast<double>(persists));
  out += mean;
  line("device_persists", dev.persist_calls());
  line("cached_inodes", cached_inodes());
  return out;
}

}  // namespace nosyncfs
