// Block sharing in the Vfs: copy_file_range, and the copy on write that
// keeps shared blocks unchanged for every other file mapping them.
//
// A copy between unflagged ranges maps the source's device blocks into the
// destination and counts the extra reference (Transaction::Share); the
// journal's reference counts free a block with its last reference. Nothing
// changes a shared block in place: every operation that would (a write,
// the zeroing of a punch or zero range, the tail a growing file zeroes,
// setting user.nosync) first calls UnshareLocked for the blocks it touches.
// NF blocks are never shared (SEMANTICS.md D1).
#include <cstring>

#include "fs/vfs.h"
#include "fs/vfs_internal.h"

namespace nosyncfs {

using namespace vfs_internal;

namespace {

// A copy stops short (and returns what it copied) after this many pieces
// of mapping or this many physically copied blocks, so that one transaction
// stays small next to the log and one call holds its locks for a bounded time.
constexpr size_t kMaxCopyPieces = 2048;
constexpr uint64_t kMaxCopyBlocks = 16384;

}  // namespace

Vfs::BlockRanges Vfs::SharedBlocksLocked(const Inode& inode, uint64_t first,
                                         uint64_t count) const {
  BlockRanges out;
  const uint64_t end = first + count;
  for (uint64_t pos = first; pos < end;) {
    ExtentMap::Segment seg = inode.extents().Find(pos, end - pos);
    if (seg.mapped && !(seg.flags & kExtentNoFsync)) {
      for (const BlockRun& part : volume_->SharedParts({seg.pblk, seg.len})) {
        out.emplace_back(pos + (part.start - seg.pblk), part.len);
      }
    }
    pos += seg.len;
  }
  return out;
}

Status Vfs::UnshareLocked(Inode* inode, uint64_t first, uint64_t count) {
  BlockRanges shared = SharedBlocksLocked(*inode, first, count);
  if (shared.empty()) return Status::Ok();
  uint64_t need = 0;
  for (const auto& r : shared) need += r.second;
  NSF_ASSIGN_OR_RETURN(std::vector<BlockRun> runs, volume_->Allocate(need, 0));
  std::vector<PlacedRun> pieces = PlaceRuns(shared, runs);
  // The copies are complete and persisted before a commit maps them.
  Device& dev = volume_->device();
  const Superblock& sb = volume_->superblock();
  for (const PlacedRun& p : pieces) {
    ExtentMap::Segment old = inode->extents().Find(p.lblk, p.count);
    dev.Write(sb.BlockOffset(p.pblk), dev.data() + sb.BlockOffset(old.pblk), p.count * bs_);
    Status st = dev.Persist(sb.BlockOffset(p.pblk), p.count * bs_);
    if (!st.ok()) {
      volume_->Unallocate(runs);
      return st;
    }
  }
  Transaction txn;
  ExtentMap& map = inode->mutable_extents();
  for (const PlacedRun& p : pieces) {
    uint32_t flags = map.Find(p.lblk, 1).flags;
    txn.Free(map.Unmap(p.lblk, p.count));
    map.Map(p.lblk, p.count, p.pblk, flags);
  }
  txn.PutExtentChanges(inode->ino, map);
  // NF blocks are never shared, so no lease covers these; but a layout
  // change is shown to the leases wherever it happens.
  if (leases_ != nullptr) CheckLeases(txn, {inode});
  // The inode record is not part of it: nothing the record holds changed,
  // and the caller may have changed the record in memory already.
  NSF_ASSIGN_OR_RETURN(uint64_t seq, volume_->Commit(std::move(txn), false));
  inode->last_seq = std::max(inode->last_seq, seq);
  return Status::Ok();
}

Result<size_t> Vfs::CopyFileRange(uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
                                  uint64_t off_out, size_t len, unsigned flags,
                                  const Modifier& who) {
  if (flags != 0) return Status::Error(EINVAL, "flags must be 0");
  NSF_ASSIGN_OR_RETURN(InodeRef in, Get(ino_in));
  NSF_ASSIGN_OR_RETURN(InodeRef out, Get(ino_out));
  if (!in->is_reg() || !out->is_reg()) {
    return Status::Error(in->is_dir() || out->is_dir() ? EISDIR : EINVAL, "not regular files");
  }
  if (ino_in == ino_out && off_in < off_out + len && off_out < off_in + len) {
    return Status::Error(EINVAL, "overlapping ranges in one file");
  }
  bool killed = false;
  size_t done = 0;
  {
    LockSet locks;
    locks.Add(in.get());
    locks.Add(out.get());
    locks.Lock();
    NSF_RETURN_IF_ERROR(CheckAlive(*out));
    AbsorbDirectWritesLocked(in.get());
    NSF_RETURN_IF_ERROR(SettleDirectWritesLocked(out.get()));
    if (off_in >= in->rec.size) return size_t{0};
    if (off_out >= kMaxFileSize) return Status::Error(EFBIG, "file too large");
    len = std::min<uint64_t>({len, in->rec.size - off_in, kMaxFileSize - off_out});
    const uint64_t first = off_out / bs_, last = (off_out + len - 1) / bs_;
    // A file under a no-fsync policy is NF for its whole life: its copies
    // are writes, into NF blocks of its own.
    bool shareable = off_in % bs_ == off_out % bs_ && NewBlockFlags(*out) == 0 &&
                     !HasNosyncBlocks(*out, first, last - first + 1);
    NSF_ASSIGN_OR_RETURN(done, shareable
                                   ? CopySharedLocked(in.get(), off_in, out.get(), off_out, len)
                                   : CopyBytesLocked(in.get(), off_in, out.get(), off_out, len));
    if (done > 0 && KillSetIdOnModify(out.get(), who)) {
      NSF_RETURN_IF_ERROR(Commit(Transaction{}, {out.get()}, false));
      killed = true;
    }
  }
  if (killed) InvalidateKernelAttrs(ino_out);
  return done;
}

Result<size_t> Vfs::CopySharedLocked(Inode* in, uint64_t off_in, Inode* out, uint64_t off_out,
                                     uint64_t len) {
  // The source's unpersisted bytes: the destination will map the same
  // blocks, and its fsync must find them durable.
  NSF_RETURN_IF_ERROR(PersistDirtyData(in));
  if (off_out > out->rec.size) NSF_RETURN_IF_ERROR(ZeroTailForGrowth(out, off_out));

  // The plan, from the mappings as they are: what each destination block
  // becomes. Whole blocks share the source's block, become a hole where the
  // source has one, or get a copy of an NF source block; partial blocks at
  // the edges get a new block holding the destination's old bytes with the
  // copied ones over them (so that the copy is one transaction, and never
  // changes a possibly shared block in place).
  enum class Kind { kShare, kHole, kCopy };
  struct Piece {
    uint64_t lblk, count;
    Kind kind;
    uint64_t src_pblk;  // kShare
  };
  std::vector<Piece> plan;
  uint64_t copy_blocks = 0;
  auto add = [&](uint64_t lblk, uint64_t count, Kind kind, uint64_t src_pblk) {
    if (kind == Kind::kCopy) copy_blocks += count;
    if (!plan.empty()) {
      Piece& p = plan.back();
      if (p.kind == kind && p.lblk + p.count == lblk &&
          (kind != Kind::kShare || p.src_pblk + p.count == src_pblk)) {
        p.count += count;
        return;
      }
    }
    plan.push_back({lblk, count, kind, src_pblk});
  };
  uint64_t end = off_out + len;
  const uint64_t first = off_out / bs_;
  const uint64_t whole_first = (off_out + bs_ - 1) / bs_, whole_end = end / bs_;
  // Source block of destination block b: b - first + off_in / bs_ (the
  // offsets are congruent, so whole blocks line up).
  const uint64_t src_first = off_in / bs_;
  if (whole_first >= whole_end) {
    for (uint64_t b = first; b * bs_ < end; ++b) add(b, 1, Kind::kCopy, 0);
  } else {
    if (first < whole_first) add(first, 1, Kind::kCopy, 0);
    for (uint64_t b = whole_first; b < whole_end;) {
      if (plan.size() >= kMaxCopyPieces || copy_blocks >= kMaxCopyBlocks) {
        end = b * bs_;  // a short copy, ending at a block boundary
        break;
      }
      ExtentMap::Segment seg = in->extents().Find(b - first + src_first, whole_end - b);
      if (!seg.mapped) {
        add(b, seg.len, Kind::kHole, 0);
      } else if (seg.flags & kExtentNoFsync) {
        seg.len = std::min(seg.len, kMaxCopyBlocks);
        add(b, seg.len, Kind::kCopy, 0);
      } else {
        add(b, seg.len, Kind::kShare, seg.pblk);
      }
      b += seg.len;
    }
    if (end % bs_ != 0) add(whole_end, 1, Kind::kCopy, 0);
  }

  // New blocks for the copied pieces, filled and persisted before the
  // commit maps them. ENOSPC here leaves both files as they were.
  BlockRanges copy_ranges;
  for (const Piece& p : plan) {
    if (p.kind == Kind::kCopy) copy_ranges.emplace_back(p.lblk, p.count);
  }
  std::vector<PlacedRun> placed;
  std::vector<BlockRun> runs;
  if (copy_blocks > 0) {
    NSF_ASSIGN_OR_RETURN(runs, volume_->Allocate(copy_blocks, 0));
    placed = PlaceRuns(copy_ranges, runs);
  }
  Device& dev = volume_->device();
  const Superblock& sb = volume_->superblock();
  for (const PlacedRun& p : placed) {
    const uint64_t piece_start = p.lblk * bs_, piece_end = (p.lblk + p.count) * bs_;
    const uint64_t from = std::max(piece_start, off_out), to = std::min(piece_end, end);
    const uint64_t dst = sb.BlockOffset(p.pblk);
    // Edge blocks: the destination's old bytes around the copied ones.
    auto keep_old = [&](uint64_t lblk) {
      ExtentMap::Segment old = out->extents().Find(lblk, 1);
      uint64_t at = dst + (lblk - p.lblk) * bs_;
      if (old.mapped) {
        dev.Write(at, dev.data() + sb.BlockOffset(old.pblk), bs_);
      } else {
        dev.Zero(at, bs_);
      }
    };
    if (from != piece_start) keep_old(p.lblk);
    if (to != piece_end && (p.count > 1 || from == piece_start)) keep_old(p.lblk + p.count - 1);
    const uint64_t src_from = from - off_out + off_in;
    Status st = ForEachByteRun(in->extents(), sb, src_from, src_from + (to - from),
                               [&](const ByteRun& r) {
                                 uint64_t at = dst + (r.pos - src_from) + (from - piece_start);
                                 if (r.mapped) {
                                   dev.Write(at, dev.data() + r.dev, r.end - r.pos);
                                 } else {
                                   dev.Zero(at, r.end - r.pos);
                                 }
                                 return Status::Ok();
                               });
    if (st.ok()) st = dev.Persist(dst, p.count * bs_);
    if (!st.ok()) {
      volume_->Unallocate(runs);
      return st;
    }
  }

  // The new mapping, in memory and in one transaction.
  Transaction txn;
  ExtentMap& map = out->mutable_extents();
  for (const Piece& p : plan) {
    txn.Free(map.Unmap(p.lblk, p.count));
    if (p.kind == Kind::kShare) {
      map.Map(p.lblk, p.count, p.src_pblk, 0);
      txn.Share({p.src_pblk, p.count});
    }
  }
  for (const PlacedRun& p : placed) map.Map(p.lblk, p.count, p.pblk, 0);
  txn.PutExtentChanges(out->ino, map);
  if (end > out->rec.size) out->rec.size = end;
  out->rec.mtime = out->rec.ctime = Now();
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), {out}, false));
  return end - off_out;
}

Result<size_t> Vfs::CopyBytesLocked(Inode* in, uint64_t off_in, Inode* out, uint64_t off_out,
                                    uint64_t len) {
  // A copy into NF blocks is durable like any NF write.
  std::vector<char> buf(std::min<size_t>(len, 1 << 20));
  size_t done = 0;
  while (done < len) {
    size_t chunk = std::min<uint64_t>(buf.size(), len - done);
    uint64_t start = off_in + done;
    NSF_RETURN_IF_ERROR(ForEachByteRun(
        in->extents(), volume_->superblock(), start, start + chunk, [&](const ByteRun& r) {
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
