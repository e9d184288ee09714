// The Vfs's data path: open and release, read, write, fsync.
#include <spdlog/spdlog.h>

#include <cstring>

#include "base/crash_point.h"
#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using namespace vfs_internal;

namespace {

constexpr size_t kZeroBufferSize = 1 << 20;

const char* ZeroBuffer() {
  static const std::vector<char> zeros(kZeroBufferSize, 0);
  return zeros.data();
}

}  // namespace

// ---- open files ---------------------------------------------------------------

Status Vfs::Open(uint64_t ino, bool truncate, const Modifier& who) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  if (inode->is_dir()) return Status::Error(EISDIR, "is a directory");
  if (truncate && inode->is_reg()) {
    bool killed = false;
    {
      std::unique_lock lock(inode->mu);
      NSF_RETURN_IF_ERROR(CheckAlive(*inode));
      uint32_t mode = inode->rec.mode;
      NSF_RETURN_IF_ERROR(OpenTruncateLocked(inode.get(), who));
      killed = inode->rec.mode != mode;
      inode->open_count.fetch_add(1);
    }
    if (killed) InvalidateKernelAttrs(ino);
    return Status::Ok();
  }
  std::shared_lock lock(inode->mu);
  NSF_RETURN_IF_ERROR(CheckAlive(*inode));
  inode->open_count.fetch_add(1);
  return Status::Ok();
}

Status Vfs::OpenTruncateLocked(Inode* inode, const Modifier& who) {
  NSF_RETURN_IF_ERROR(SettleDirectWritesLocked(inode));
  Transaction txn;
  bool durable = false;
  NSF_RETURN_IF_ERROR(TruncateLocked(inode, 0, &txn, &durable));
  KillSetIdOnModify(inode, who);
  inode->rec.mtime = inode->rec.ctime = Now();
  return Commit(std::move(txn), {inode}, durable);
}

void Vfs::Release(uint64_t ino) {
  InodeRef inode = Find(ino);
  if (!inode) return;
  bool last = false;
  {
    std::shared_lock lock(inode->mu);
    uint32_t cur = inode->open_count.load();
    while (cur > 0 && !inode->open_count.compare_exchange_weak(cur, cur - 1)) {
    }
    last = cur == 1;
  }
  if (last && NewBlockFlags(*inode) != 0) GiveBackPreallocation(inode.get());
  // Dropping the pin (after the lock) retires the inode if it is idle now.
}

void Vfs::GiveBackPreallocation(Inode* inode) {
  std::unique_lock lock(inode->mu);
  if (inode->destroyed || inode->open_count.load() != 0 || read_only()) return;
  if (!SettleDirectWritesLocked(inode).ok()) return;
  // The blocks wholly past EOF, as ext4 gives back its preallocations at
  // the last close. Not durable: after a crash they are still the file's,
  // which is as harmless as any preallocation.
  const uint64_t keep_blocks = (inode->rec.size + bs_ - 1) / bs_;
  const auto& extents = inode->extents().extents();
  if (extents.empty() || std::prev(extents.end())->second.lend() <= keep_blocks) return;
  Transaction txn;
  const uint64_t all_blocks = UINT64_MAX / 2;  // as TruncateLocked
  txn.Free(inode->mutable_extents().Unmap(keep_blocks, all_blocks - keep_blocks));
  txn.PutExtentChanges(inode->ino, inode->mutable_extents());
  Status st = Commit(std::move(txn), {inode}, false);
  if (!st.ok()) {
    spdlog::warn("inode {}: giving back preallocated space: {}", inode->ino, st.ToString());
    return;
  }
  lock.unlock();
  InvalidateKernelAttrs(inode->ino);  // st_blocks
}

// ---- reads ------------------------------------------------------------------------

Status Vfs::Read(uint64_t ino, uint64_t off, size_t size, const ReadSink& sink) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  if (inode->is_dir()) return Status::Error(EISDIR, "is a directory");
  CatchUp(inode.get());
  // Shared, and held until the sink has copied: no truncate or punch can
  // free a block under the copy, and reads of one file run in parallel.
  std::shared_lock lock(inode->mu);
  uint64_t fsize = inode->rec.size;
  std::vector<struct iovec> iov;
  if (off < fsize && size > 0) {
    uint64_t end = std::min<uint64_t>(fsize, off + size);
    NSF_RETURN_IF_ERROR(ForEachByteRun(
        inode->extents(), volume_->superblock(), off, end, [&](const ByteRun& r) {
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
    TouchAtime(inode.get());
  }
  sink(iov.data(), static_cast<int>(iov.size()));
  return Status::Ok();
}

void Vfs::TouchAtime(Inode* inode) {
  // relatime (the default): only when atime is not newer than mtime and
  // ctime, or is a day old; strictatime: always; noatime: never. Lazy:
  // written with the inode's next commit.
  const VfsOptions::Atime atime = atime_.load(std::memory_order_relaxed);
  if (atime == VfsOptions::Atime::kNever || read_only()) return;
  const bool always = atime == VfsOptions::Atime::kAlways;
  const InodeRecord& r = inode->rec;
  Timespec now = Now();
  auto before = [](const Timespec& a, const Timespec& b) {
    return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec);
  };
  bool newly_dirty = false;
  {
    std::lock_guard lazy(inode->lazy_mu);
    if (always || !before(r.mtime, r.atime) || !before(r.ctime, r.atime) ||
        now.sec - r.atime.sec >= 24 * 3600) {
      inode->rec.atime = now;
      newly_dirty = !inode->atime_dirty;
      inode->atime_dirty = true;
    }
  }
  if (newly_dirty) MarkDirty(inode);
}

// ---- writes -----------------------------------------------------------------------

Status Vfs::FillHoles(Inode* inode, const BlockRanges& ranges, uint32_t flags, uint64_t keep_off,
                      uint64_t keep_end, BlockRanges* allocated) {
  BlockRanges holes;
  for (auto [first, count] : ranges) {
    auto h = inode->extents().Holes(first, count);
    holes.insert(holes.end(), h.begin(), h.end());
  }
  uint64_t need = 0;
  for (const auto& h : holes) need += h.second;
  if (need == 0) return Status::Ok();
  // Goal: right after the block mapped before the first hole, for contiguity.
  uint64_t goal = 0;
  if (holes[0].first > 0) {
    auto prev = inode->extents().Find(holes[0].first - 1, 1);
    if (prev.mapped) goal = prev.pblk + 1;
  }
  NSF_ASSIGN_OR_RETURN(std::vector<BlockRun> runs, volume_->Allocate(need, goal));
  std::vector<PlacedRun> pieces = PlaceRuns(holes, runs);
  // A new block's previous contents (another file's data) must never become
  // readable, after a crash either: every byte of it is zeroed, or lies in
  // [keep_off, keep_end), which the caller overwrites; and it is persisted
  // (here, or by the caller when it keeps bytes) before any commit maps it.
  const Superblock& sb = volume_->superblock();
  const bool keep = keep_end > keep_off;
  Device& dev = volume_->device();
  for (const PlacedRun& p : pieces) {
    uint64_t lstart = p.lblk * bs_, lend = (p.lblk + p.count) * bs_;
    uint64_t dstart = sb.BlockOffset(p.pblk);
    // Zero [lstart, keep_off) and [keep_end, lend), clipped to the piece.
    uint64_t head_end = keep ? std::clamp(keep_off, lstart, lend) : lend;
    uint64_t tail_start = keep ? std::clamp(keep_end, lstart, lend) : lend;
    if (head_end > lstart) dev.Zero(dstart, head_end - lstart);
    if (lend > tail_start) dev.Zero(dstart + (tail_start - lstart), lend - tail_start);
    if (keep) continue;
    Status st = dev.Persist(dstart, lend - lstart);
    if (!st.ok()) {
      volume_->Unallocate(runs);
      return st;
    }
  }
  for (const PlacedRun& p : pieces) {
    inode->mutable_extents().Map(p.lblk, p.count, p.pblk, flags);
    if (allocated != nullptr) allocated->emplace_back(p.lblk, p.count);
  }
  return Status::Ok();
}

Result<size_t> Vfs::Write(uint64_t ino, uint64_t off, const char* data, size_t size,
                          const Modifier& who) {
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  bool killed = false;
  Result<size_t> wrote = size_t{0};
  {
    std::unique_lock lock(inode->mu);
    NSF_RETURN_IF_ERROR(CheckAlive(*inode));
    // A write past what an appender published would race its appends for
    // the size: its lease ends first. One inside it only overwrites.
    AbsorbDirectWritesLocked(inode.get());
    if (off + size > inode->rec.size) NSF_RETURN_IF_ERROR(SettleDirectWritesLocked(inode.get()));
    wrote = WriteLocked(inode.get(), off, data, size);
    if (wrote.ok() && *wrote > 0 && KillSetIdOnModify(inode.get(), who)) {
      NSF_RETURN_IF_ERROR(Commit(Transaction{}, {inode.get()}, false));
      killed = true;
    }
  }
  if (killed) InvalidateKernelAttrs(ino);
  return wrote;
}

namespace {

// Device ranges to persist, merged where they touch.
class PersistList {
 public:
  void Add(uint64_t off, uint64_t len) {
    if (len > 0) ranges_.emplace_back(off, off + len);
  }
  Status Persist(Device& dev) {
    std::sort(ranges_.begin(), ranges_.end());
    for (size_t i = 0; i < ranges_.size();) {
      uint64_t start = ranges_[i].first, end = ranges_[i].second;
      for (++i; i < ranges_.size() && ranges_[i].first <= end; ++i) {
        end = std::max(end, ranges_[i].second);
      }
      NSF_RETURN_IF_ERROR(dev.Persist(start, end - start));
    }
    return Status::Ok();
  }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};

}  // namespace

Result<size_t> Vfs::WriteLocked(Inode* inode, uint64_t off, const char* data, size_t size) {
  if (!inode->is_reg()) return Status::Error(EINVAL, "not a regular file");
  if (size == 0) return size_t{0};
  if (off >= kMaxFileSize) return Status::Error(EFBIG, "file too large");
  size = std::min<uint64_t>(size, kMaxFileSize - off);
  uint64_t first = off / bs_;
  uint64_t last = (off + size - 1) / bs_;
  // Blocks shared with another file get private copies first (copy on
  // write); both steps below only change this file's own blocks.
  NSF_RETURN_IF_ERROR(UnshareLocked(inode, first, last - first + 1));
  if (off > inode->rec.size) NSF_RETURN_IF_ERROR(ZeroTailForGrowth(inode, off));
  // New blocks under the write: the write's own bytes are written once,
  // below; only the rest of each new block is zeroed. Under a no-fsync
  // policy they are NF, and the file takes NF space up to the end of the
  // growth unit the write ends in (preallocated past EOF, given back at
  // its last close: Release), so most appends find their space sealed.
  const uint32_t new_flags = NewBlockFlags(*inode);
  const uint64_t grow = inode->rec.nf_grow_blocks;
  BlockRanges fresh;
  Status filled;
  if (grow != 0) {
    const uint64_t unit_end = (last / grow + 1) * grow;  // blocks
    filled = FillHoles(inode, {{first, unit_end - first}}, new_flags, off, off + size, &fresh);
  }
  if (grow == 0 || filled.code() == ENOSPC) {
    fresh.clear();
    filled = FillHoles(inode, {{first, last - first + 1}}, new_flags, off, off + size, &fresh);
  }
  if (filled.code() == ENOSPC) {
    // Write what fits: the longest prefix whose holes can be allocated.
    uint64_t avail = volume_->free_blocks();
    uint64_t blk = first;
    for (auto [hole, len] : inode->extents().Holes(first, last - first + 1)) {
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
    fresh.clear();
    filled = FillHoles(inode, {{first, last - first + 1}}, new_flags, off, off + size, &fresh);
  }
  NSF_RETURN_IF_ERROR(filled);

  // Copy. Persisted before the reply: NF runs (D2), and new blocks, whole,
  // before the commit that maps them (so that a durable mapping never shows
  // a block's old contents). Other unflagged runs are left dirty for fsync.
  auto in_fresh = [&](uint64_t lblk) {
    for (auto [start, count] : fresh) {
      if (lblk >= start && lblk < start + count) return true;
    }
    return false;
  };
  const Superblock& sb = volume_->superblock();
  uint64_t end = off + size;
  bool wrote_plain = false, end_in_nf = false;
  uint64_t nf_bytes = 0;
  PersistList now;
  NSF_RETURN_IF_ERROR(ForEachByteRun(
      inode->extents(), sb, off, end, [&](const ByteRun& r) {
        // Every block is mapped now (FillHoles above).
        volume_->device().Write(r.dev, data + (r.pos - off), r.end - r.pos);
        CrashPoint("vfs.write.copied");
        end_in_nf = (r.flags & kExtentNoFsync) && r.end == end;
        if (r.flags & kExtentNoFsync) {
          now.Add(r.dev, r.end - r.pos);
          nf_bytes += r.end - r.pos;
          return Status::Ok();
        }
        wrote_plain = true;
        // Dirty unless it lies in a new block (persisted whole, below).
        for (uint64_t pos = r.pos; pos < r.end;) {
          uint64_t piece_end = std::min(r.end, (pos / bs_ + 1) * bs_);
          if (!in_fresh(pos / bs_)) {
            if (inode->dirty == nullptr) inode->dirty = std::make_unique<DirtyRanges>(dirty_granule_);
            inode->dirty->Add(pos, piece_end);
          }
          pos = piece_end;
        }
        return Status::Ok();
      }));
  for (auto [lblk, count] : fresh) {
    NSF_RETURN_IF_ERROR(ForEachByteRun(inode->extents(), sb, lblk * bs_, (lblk + count) * bs_,
                                       [&](const ByteRun& r) {
                                         now.Add(r.dev, r.end - r.pos);
                                         return Status::Ok();
                                       }));
  }
  NSF_RETURN_IF_ERROR(now.Persist(volume_->device()));
  if (nf_bytes > 0) {
    stats_.nf_writes.fetch_add(1, std::memory_order_relaxed);
    stats_.nf_write_bytes_persisted.fetch_add(nf_bytes, std::memory_order_relaxed);
  }

  InodeRecord& r = inode->rec;
  bool grew = end > r.size;
  if (grew) r.size = end;
  r.mtime = r.ctime = Now();
  inode->attr_dirty = true;
  if (wrote_plain) inode->attr_needs_sync = true;
  Transaction txn;
  txn.PutExtentChanges(r.ino, inode->mutable_extents());
  if ((grew && end_in_nf) || (new_flags != 0 && !fresh.empty())) {
    // A size extension inside a preallocated NF range is durable before
    // the reply (SEMANTICS.md D2): one small durable record. So is the
    // mapping of NF blocks a policy gave the write: NF data is only durable
    // with it.
    NSF_RETURN_IF_ERROR(Commit(std::move(txn), {inode}, /*durable=*/true));
  } else if (!txn.empty() || grew) {
    NSF_RETURN_IF_ERROR(Commit(std::move(txn), {inode}, false));
    if (wrote_plain) inode->attr_needs_sync = true;
  }
  if (inode->attr_dirty || inode->attr_needs_sync ||
      (inode->dirty != nullptr && !inode->dirty->empty())) {
    MarkDirty(inode);
  }
  return size;
}

// ---- durability --------------------------------------------------------------------

Status Vfs::Fsync(uint64_t ino, bool datasync) {
  // Size and mapping changes are metadata fdatasync needs too, so both do
  // the same; only the statistics tell them apart.
  stats_.fsync_calls.fetch_add(1, std::memory_order_relaxed);
  if (datasync) stats_.fdatasync_calls.fetch_add(1, std::memory_order_relaxed);
  NSF_ASSIGN_OR_RETURN(InodeRef inode, Get(ino));
  uint64_t seq;
  bool work = false;
  {
    std::unique_lock lock(inode->mu);
    work = inode->dirty != nullptr && !inode->dirty->empty();
    NSF_RETURN_IF_ERROR(PersistDirtyData(inode.get()));
    if (inode->attr_needs_sync) {
      work = true;
      NSF_RETURN_IF_ERROR(Commit(Transaction{}, {inode.get()}, false));
    }
    seq = inode->last_seq;
  }
  // Group commit: the wait shares one log persist with concurrent fsyncs.
  if (seq > volume_->durable_seq()) {
    work = true;
    NSF_RETURN_IF_ERROR(volume_->WaitDurable(seq));
  }
  if (!work) stats_.fsync_no_media_work.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Status Vfs::Fsyncdir(uint64_t ino) {
  stats_.fsyncdir_calls.fetch_add(1, std::memory_order_relaxed);
  NSF_ASSIGN_OR_RETURN(InodeRef dir, Get(ino));
  if (!dir->is_dir()) return Status::Error(ENOTDIR, "not a directory");
  // syncfs(2) never reaches a FUSE daemon (the kernel forwards FUSE_SYNCFS
  // to virtiofs only), so fsync of a directory stands in for it: it makes
  // the whole file system durable, data of every file included.
  NSF_RETURN_IF_ERROR(FlushAll());
  return volume_->Sync();
}

}  // namespace nosyncfs
