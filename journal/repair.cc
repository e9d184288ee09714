#include "journal/repair.h"

#include <sys/stat.h>

#include <ctime>
#include <map>
#include <optional>
#include <set>

#include "journal/block_counts.h"

namespace nosyncfs {
namespace {

constexpr char kLostAndFound[] = "lost+found";

Timespec Now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return {ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

std::string Ino(uint64_t ino) { return "inode " + std::to_string(ino); }

std::string EntryName(uint64_t dir, std::string_view name) {
  return "entry '" + std::string(name) + "' in directory " + std::to_string(dir);
}

bool InDataArea(const Volume& v, uint64_t pblk, uint64_t len) {
  return pblk < v.total_blocks() && len <= v.total_blocks() - pblk;
}

bool IsRefcountProblem(ProblemKind k) {
  return k == ProblemKind::kBadRefcountRecord || k == ProblemKind::kLeakedRefcount ||
         k == ProblemKind::kWrongRefcount;
}

// One repair run over one volume: reads the records a repair touches again
// (the check's view may be stale), commits each repair durably, and
// collects the lines that describe them.
class Repairer {
 public:
  Repairer(Volume& volume, RepairMode mode) : v_(volume), store_(volume.store()), mode_(mode) {}

  std::vector<std::string> TakeLines() { return std::move(lines_); }

  // Round 1, from the first check.
  Status FirstRound(const CheckReport& report, Progress* progress);
  // Round 2, from a check after round 1.
  Status SecondRound(const CheckReport& report, Progress* progress);

 private:
  Status Commit(Transaction&& txn, std::string what) {
    NSF_RETURN_IF_ERROR(v_.Commit(std::move(txn), /*durable=*/true).status());
    lines_.push_back(std::move(what));
    return Status::Ok();
  }
  Result<std::optional<InodeRecord>> GetInode(uint64_t ino) {
    NSF_ASSIGN_OR_RETURN(auto value, store_.Get(keys::Inode(ino)));
    if (!value) return std::optional<InodeRecord>();
    auto rec = InodeRecord::Decode(ino, *value);
    if (!rec.ok()) return std::optional<InodeRecord>();  // not ours to touch
    return std::optional<InodeRecord>(*rec);
  }
  Result<std::optional<DirentRecord>> GetDirent(uint64_t dir, std::string_view name) {
    NSF_ASSIGN_OR_RETURN(auto value, store_.Get(keys::Dirent(dir, name)));
    if (!value) return std::optional<DirentRecord>();
    auto d = DirentRecord::Decode(*value);
    if (!d.ok()) return std::optional<DirentRecord>();
    d->name = std::string(name);
    return std::optional<DirentRecord>(*d);
  }
  static void PutDirent(Transaction* txn, uint64_t dir, const DirentRecord& d) {
    txn->batch.Put(keys::Dirent(dir, d.name), d.Encode(false));
    txn->batch.Put(keys::Cookie(dir, d.cookie), d.Encode(true));
  }

  Status RepairExtent(const Problem& p);
  Status DropOrphanRecord(const Problem& p);
  Status FreeOrphan(uint64_t ino);
  Status RepairEntry(const Problem& p);
  Status RepairInodeCounter();
  Status LinkIntoLostAndFound(const std::vector<uint64_t>& inos);
  Result<std::optional<InodeRecord>> LostAndFound();
  Status RepairLinkCount(const Problem& p);
  Status RepairNextCookie(uint64_t dir);
  Status RebuildReferenceCounts();
  Status RepairInodeCount();

  Volume& v_;
  MetaStore& store_;
  RepairMode mode_;
  std::vector<std::string> lines_;
};

// ---- round 1 ----------------------------------------------------------------

Status Repairer::RepairExtent(const Problem& p) {
  NSF_ASSIGN_OR_RETURN(auto value, store_.Get(p.key));
  if (!value) return Status::Ok();  // an earlier repair removed it
  auto e = DecodeExtent(p.key, *value);
  Transaction txn;
  if (!e.ok()) {
    // Nothing in it can be trusted, not even its blocks: dropped without
    // freeing any (the allocator is rebuilt from the extents anyway).
    txn.batch.Delete(p.key);
    return Commit(std::move(txn), "removed the malformed extent record of " + Ino(p.ino));
  }
  const std::string where = "the extent at block " + std::to_string(e->lblk) + " of " + Ino(p.ino);
  switch (p.kind) {
    case ProblemKind::kExtentOutsideData: {
      if (InDataArea(v_, e->pblk, e->len)) return Status::Ok();
      if (e->pblk >= v_.total_blocks()) {
        txn.batch.Delete(p.key);
        return Commit(std::move(txn), "removed " + where +
                                          ", which lay outside the data area (it reads as a hole)");
      }
      Extent cut = *e;
      cut.len = v_.total_blocks() - e->pblk;
      txn.batch.Put(p.key, EncodeExtentValue(cut));
      return Commit(std::move(txn), "cut " + where + " to the data area: " +
                                        std::to_string(cut.len) + " of " + std::to_string(e->len) +
                                        " blocks kept (the rest reads as a hole)");
    }
    case ProblemKind::kExtentOfMissingInode:
    case ProblemKind::kExtentOfNonRegular: {
      if (p.kind == ProblemKind::kExtentOfMissingInode) {
        NSF_ASSIGN_OR_RETURN(auto raw, store_.Get(keys::Inode(p.ino)));
        if (raw) return Status::Ok();
      } else {
        NSF_ASSIGN_OR_RETURN(auto inode, GetInode(p.ino));
        if (!inode || S_ISREG(inode->mode)) return Status::Ok();
      }
      txn.batch.Delete(p.key);
      std::string freed;
      if (InDataArea(v_, e->pblk, e->len)) {
        txn.Free({{e->pblk, e->len}});
        freed = " (freed blocks " + std::to_string(e->pblk) + ".." +
                std::to_string(e->pblk + e->len - 1) + ")";
      }
      return Commit(std::move(txn),
                    "removed " + where +
                        (p.kind == ProblemKind::kExtentOfMissingInode
                             ? ", a missing inode" + freed
                             : ", which is not a regular file" + freed));
    }
    case ProblemKind::kUnknownExtentFlags: {
      if (!(e->flags & ~uint32_t{kExtentNoFsync})) return Status::Ok();
      Extent fixed = *e;
      fixed.flags &= kExtentNoFsync;
      txn.batch.Put(p.key, EncodeExtentValue(fixed));
      return Commit(std::move(txn), "cleared unknown flags of " + where);
    }
    default:
      return Status::Ok();  // decodes now: an earlier repair rewrote it
  }
}

Status Repairer::DropOrphanRecord(const Problem& p) {
  NSF_ASSIGN_OR_RETURN(auto value, store_.Get(keys::Orphan(p.ino)));
  if (!value) return Status::Ok();
  Transaction txn;
  txn.batch.Delete(keys::Orphan(p.ino));
  return Commit(std::move(txn), p.kind == ProblemKind::kDanglingOrphan
                                    ? "dropped the orphan record of missing " + Ino(p.ino)
                                    : "dropped the orphan record of " + Ino(p.ino) +
                                          ", which entries still name");
}

Status Repairer::FreeOrphan(uint64_t ino) {
  NSF_ASSIGN_OR_RETURN(auto orphan, store_.Get(keys::Orphan(ino)));
  NSF_ASSIGN_OR_RETURN(auto inode, GetInode(ino));
  if (!orphan || !inode) return Status::Ok();
  // As a mount frees it (Vfs::DestroyInode): its extents (with their
  // blocks), xattrs, symlink target, orphan record and inode, in one
  // transaction.
  Transaction txn;
  uint64_t blocks = 0;
  NSF_RETURN_IF_ERROR(store_.Scan(keys::ExtentPrefix(ino), "", [&](std::string_view k,
                                                                   std::string_view val) {
    txn.batch.Delete(std::string(k));
    auto e = DecodeExtent(k, val);
    if (e.ok() && InDataArea(v_, e->pblk, e->len)) {
      txn.Free({{e->pblk, e->len}});
      blocks += e->len;
    }
    return true;
  }));
  NSF_RETURN_IF_ERROR(store_.Scan(keys::XattrPrefix(ino), "", [&](std::string_view k,
                                                                  std::string_view) {
    txn.batch.Delete(std::string(k));
    return true;
  }));
  if (S_ISLNK(inode->mode)) txn.batch.Delete(keys::SymlinkTarget(ino));
  txn.batch.Delete(keys::Orphan(ino));
  txn.batch.Delete(keys::Inode(ino));
  txn.deleted_inodes = 1;
  return Commit(std::move(txn), "freed orphan " + Ino(ino) + " (unlinked while open; " +
                                    std::to_string(blocks) + " blocks)");
}

Status Repairer::RepairEntry(const Problem& p) {
  Transaction txn;
  switch (p.kind) {
    case ProblemKind::kBadEntryRecord: {
      NSF_ASSIGN_OR_RETURN(auto value, store_.Get(p.key));
      if (!value || DirentRecord::Decode(*value).ok()) return Status::Ok();
      txn.batch.Delete(p.key);
      return Commit(std::move(txn), "removed the malformed " + EntryName(p.dir, p.name));
    }
    case ProblemKind::kEntryOutsideDirectory:
    case ProblemKind::kDanglingEntry: {
      NSF_ASSIGN_OR_RETURN(auto d, GetDirent(p.dir, p.name));
      if (!d || d->ino != p.ino) return Status::Ok();
      if (p.kind == ProblemKind::kDanglingEntry) {
        NSF_ASSIGN_OR_RETURN(auto raw, store_.Get(keys::Inode(p.ino)));
        if (raw) return Status::Ok();
      }
      txn.batch.Delete(keys::Dirent(p.dir, p.name));
      txn.batch.Delete(keys::Cookie(p.dir, d->cookie));
      return Commit(std::move(txn),
                    "removed " + EntryName(p.dir, p.name) +
                        (p.kind == ProblemKind::kDanglingEntry
                             ? ", which pointed to missing " + Ino(p.ino)
                             : ", which is not in a directory"));
    }
    case ProblemKind::kWrongEntryType: {
      NSF_ASSIGN_OR_RETURN(auto d, GetDirent(p.dir, p.name));
      NSF_ASSIGN_OR_RETURN(auto inode, GetInode(p.ino));
      if (!d || !inode || d->ino != p.ino || d->type == (inode->mode & S_IFMT)) {
        return Status::Ok();
      }
      d->type = inode->mode & S_IFMT;
      PutDirent(&txn, p.dir, *d);
      return Commit(std::move(txn), "corrected the file type in " + EntryName(p.dir, p.name));
    }
    case ProblemKind::kWrongParent: {
      NSF_ASSIGN_OR_RETURN(auto inode, GetInode(p.ino));
      if (!inode || !S_ISDIR(inode->mode) || inode->parent == p.dir) return Status::Ok();
      inode->parent = p.dir;
      txn.PutInode(*inode);
      return Commit(std::move(txn), "set the parent pointer of " + Ino(p.ino) + " to directory " +
                                        std::to_string(p.dir));
    }
    case ProblemKind::kCookieWithoutName: {
      NSF_ASSIGN_OR_RETURN(auto value, store_.Get(p.key));
      if (!value) return Status::Ok();
      const uint64_t cookie = keys::TrailingU64(p.key);
      auto c = DirentRecord::Decode(*value);
      if (c.ok()) {
        NSF_ASSIGN_OR_RETURN(auto named, GetDirent(p.dir, c->name));
        if (named && named->cookie == cookie) return Status::Ok();  // twins again
        NSF_ASSIGN_OR_RETURN(auto inode, GetInode(c->ino));
        if (!named && inode && c->cookie == cookie && !c->name.empty()) {
          txn.batch.Put(keys::Dirent(p.dir, c->name), c->Encode(false));
          return Commit(std::move(txn), "restored the name of " + EntryName(p.dir, c->name) +
                                            " from its readdir entry");
        }
      }
      txn.batch.Delete(p.key);
      return Commit(std::move(txn), "removed readdir entry " + std::to_string(cookie) +
                                        " in directory " + std::to_string(p.dir) +
                                        ", which had no name entry");
    }
    case ProblemKind::kNameWithoutCookie: {
      NSF_ASSIGN_OR_RETURN(auto d, GetDirent(p.dir, p.name));
      if (!d) return Status::Ok();
      NSF_ASSIGN_OR_RETURN(auto twin, store_.Get(keys::Cookie(p.dir, d->cookie)));
      if (twin) return Status::Ok();
      txn.batch.Put(keys::Cookie(p.dir, d->cookie), d->Encode(true));
      return Commit(std::move(txn), "restored the readdir entry of " + EntryName(p.dir, p.name));
    }
    default:
      return Status::Ok();
  }
}

Status Repairer::RepairInodeCounter() {
  uint64_t max_ino = kRootIno;
  NSF_RETURN_IF_ERROR(store_.Scan(keys::kInodePrefix, "", [&](std::string_view k,
                                                              std::string_view) {
    max_ino = std::max(max_ino, keys::InoOf(k));
    return true;
  }));
  if (max_ino < v_.next_inode_number()) return Status::Ok();
  NSF_RETURN_IF_ERROR(v_.SetCounters(max_ino + 1, v_.inode_count()));
  lines_.push_back("set the inode counter to " + std::to_string(max_ino + 1) +
                   ", past every inode");
  return Status::Ok();
}

Result<std::optional<InodeRecord>> Repairer::LostAndFound() {
  NSF_ASSIGN_OR_RETURN(auto d, GetDirent(kRootIno, kLostAndFound));
  if (d) {
    NSF_ASSIGN_OR_RETURN(auto inode, GetInode(d->ino));
    if (inode && S_ISDIR(inode->mode)) return inode;
    return Status::Error(EEXIST, "/lost+found exists and is not a directory");
  }
  NSF_ASSIGN_OR_RETURN(auto root, GetInode(kRootIno));
  if (!root || !S_ISDIR(root->mode)) return Status::Error(ENOENT, "the root directory is missing");
  // As e2fsck makes it: a directory in the root, 0700, owned by root.
  Transaction txn;
  InodeRecord lf;
  lf.ino = v_.NextInodeNumber(&txn);
  lf.mode = S_IFDIR | 0700;
  lf.uid = lf.gid = 0;
  lf.nlink = 2;
  lf.parent = kRootIno;
  lf.atime = lf.mtime = lf.ctime = Now();
  txn.PutInode(lf);
  DirentRecord entry{lf.ino, S_IFDIR, root->next_cookie++, kLostAndFound};
  PutDirent(&txn, kRootIno, entry);
  ++root->nlink;  // the new directory's ".."
  root->mtime = root->ctime = lf.mtime;
  txn.PutInode(*root);
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), "created /lost+found (" + Ino(lf.ino) + ")"));
  return std::optional<InodeRecord>(lf);
}

Status Repairer::LinkIntoLostAndFound(const std::vector<uint64_t>& inos) {
  if (inos.empty()) return Status::Ok();
  auto found = LostAndFound();
  if (!found.ok()) {
    lines_.push_back("could not link " + std::to_string(inos.size()) +
                     " unreachable inodes anywhere: " + found.status().message());
    return Status::Ok();  // left for the re-check to report
  }
  InodeRecord lf = **found;
  for (uint64_t ino : inos) {
    NSF_ASSIGN_OR_RETURN(auto inode, GetInode(ino));
    if (!inode || ino == lf.ino) continue;
    const std::string name = "#" + std::to_string(ino);
    NSF_ASSIGN_OR_RETURN(auto existing, GetDirent(lf.ino, name));
    if (existing) continue;
    Transaction txn;
    DirentRecord entry{ino, inode->mode & S_IFMT, lf.next_cookie++, name};
    PutDirent(&txn, lf.ino, entry);
    if (S_ISDIR(inode->mode)) {
      // Its own subdirectories' ".." stay; "." and the new entry add two.
      uint32_t subdirs = 0;
      NSF_RETURN_IF_ERROR(store_.Scan(keys::DirentPrefix(ino), "", [&](std::string_view,
                                                                       std::string_view v) {
        auto d = DirentRecord::Decode(v);
        if (d.ok() && d->type == S_IFDIR) ++subdirs;
        return true;
      }));
      inode->nlink = subdirs + 2;
      inode->parent = lf.ino;
      ++lf.nlink;
    } else {
      inode->nlink = 1;  // no entry named it
    }
    inode->ctime = Now();
    lf.mtime = lf.ctime = inode->ctime;
    txn.PutInode(*inode);
    txn.PutInode(lf);
    NSF_RETURN_IF_ERROR(Commit(std::move(txn), "linked unreachable " + Ino(ino) +
                                                   " into /lost+found as " + name));
  }
  return Status::Ok();
}

Status Repairer::FirstRound(const CheckReport& report, Progress* progress) {
  if (progress) progress->Begin(report.findings.size() + report.orphans.size(), 5, "repairs");
  uint64_t done = 0;
  auto step = [&] {
    if (progress) progress->Update(++done);
  };
  // Extents first, so that what follows sees only sound ones.
  for (const Problem& p : report.findings) {
    switch (p.kind) {
      case ProblemKind::kBadExtentRecord:
      case ProblemKind::kExtentOutsideData:
      case ProblemKind::kExtentOfMissingInode:
      case ProblemKind::kExtentOfNonRegular:
      case ProblemKind::kUnknownExtentFlags:
        if (Repairs(mode_, p)) NSF_RETURN_IF_ERROR(RepairExtent(p));
        step();
        break;
      default:
        break;
    }
  }
  for (const Problem& p : report.findings) {
    if ((p.kind == ProblemKind::kDanglingOrphan || p.kind == ProblemKind::kOrphanWithLinks) &&
        Repairs(mode_, p)) {
      NSF_RETURN_IF_ERROR(DropOrphanRecord(p));
      step();
    }
  }
  for (uint64_t ino : report.orphans) {
    NSF_RETURN_IF_ERROR(FreeOrphan(ino));
    step();
  }
  bool counter = false;
  std::vector<uint64_t> unreachable;
  for (const Problem& p : report.findings) {
    if (!Repairs(mode_, p)) continue;
    switch (p.kind) {
      case ProblemKind::kBadEntryRecord:
      case ProblemKind::kEntryOutsideDirectory:
      case ProblemKind::kDanglingEntry:
      case ProblemKind::kWrongEntryType:
      case ProblemKind::kWrongParent:
      case ProblemKind::kCookieWithoutName:
      case ProblemKind::kNameWithoutCookie:
        NSF_RETURN_IF_ERROR(RepairEntry(p));
        step();
        break;
      case ProblemKind::kInodeNotBelowCounter:
        counter = true;
        break;
      case ProblemKind::kUnreachable:
        unreachable.push_back(p.ino);
        break;
      default:
        break;
    }
  }
  // The counter before lost+found takes a new inode number from it.
  if (counter) NSF_RETURN_IF_ERROR(RepairInodeCounter());
  NSF_RETURN_IF_ERROR(LinkIntoLostAndFound(unreachable));
  if (progress) progress->Finish();
  return Status::Ok();
}

// ---- round 2 ----------------------------------------------------------------

Status Repairer::RepairLinkCount(const Problem& p) {
  NSF_ASSIGN_OR_RETURN(auto inode, GetInode(p.ino));
  if (!inode || p.count == 0 || inode->nlink == p.count) return Status::Ok();
  const uint32_t was = inode->nlink;
  inode->nlink = static_cast<uint32_t>(p.count);
  Transaction txn;
  txn.PutInode(*inode);
  return Commit(std::move(txn), "set the link count of " + Ino(p.ino) + " to " +
                                    std::to_string(p.count) + " (was " + std::to_string(was) + ")");
}

Status Repairer::RepairNextCookie(uint64_t dir) {
  NSF_ASSIGN_OR_RETURN(auto inode, GetInode(dir));
  if (!inode || !S_ISDIR(inode->mode)) return Status::Ok();
  uint64_t next = kFirstDirCookie;
  auto past = [&](std::string_view, std::string_view v) {
    auto d = DirentRecord::Decode(v);
    if (d.ok()) next = std::max(next, d->cookie + 1);
    return true;
  };
  NSF_RETURN_IF_ERROR(store_.Scan(keys::DirentPrefix(dir), "", past));
  NSF_RETURN_IF_ERROR(store_.Scan(keys::CookiePrefix(dir), "", past));
  if (inode->next_cookie >= next) return Status::Ok();
  inode->next_cookie = next;
  Transaction txn;
  txn.PutInode(*inode);
  return Commit(std::move(txn), "set the next readdir cookie of directory " +
                                    std::to_string(dir) + " to " + std::to_string(next));
}

Status Repairer::RebuildReferenceCounts() {
  // What the counts should be: for every block a record counted, the
  // extents that map it now, where that is two or more. Blocks mapped twice
  // without a record stay without one (kMappedTwice is not repaired here).
  BlockCounts counts;
  NSF_RETURN_IF_ERROR(store_.Scan(keys::kExtentPrefixAll, "", [&](std::string_view k,
                                                                  std::string_view v) {
    auto e = DecodeExtent(k, v);
    if (e.ok() && InDataArea(v_, e->pblk, e->len)) {
      counts.Add(e->pblk, e->len, &BlockCounts::Count::mapped, 1);
    }
    return true;
  }));
  Transaction txn;
  uint64_t old_records = 0;
  NSF_RETURN_IF_ERROR(store_.Scan(keys::kRefcountPrefix, "", [&](std::string_view k,
                                                                std::string_view v) {
    ++old_records;
    txn.batch.Delete(std::string(k));
    auto r = DecodeRefcount(k, v);
    if (r.ok() && InDataArea(v_, r->run.start, r->run.len)) {
      counts.Add(r->run.start, r->run.len, &BlockCounts::Count::recorded, 1);
    }
    return true;
  }));
  std::vector<RefcountMap::Record> records;
  counts.ForEach([&](uint64_t start, uint64_t end, const BlockCounts::Count& c) {
    if (c.recorded == 0 || c.mapped < 2) return;
    const auto refs = static_cast<uint32_t>(c.mapped);
    if (!records.empty() && records.back().run.end() == start && records.back().refs == refs) {
      records.back().run.len += end - start;
    } else {
      records.push_back({{start, end - start}, refs});
    }
  });
  for (const auto& r : records) {
    txn.batch.Put(keys::Refcount(r.run.start), EncodeRefcountValue(r));
  }
  NSF_RETURN_IF_ERROR(Commit(std::move(txn), "rewrote the reference counts from the extents (" +
                                                 std::to_string(records.size()) +
                                                 " records, were " +
                                                 std::to_string(old_records) + ")"));
  // The Volume's own copy of the counts was bypassed: reload it.
  return v_.Reload();
}

Status Repairer::RepairInodeCount() {
  uint64_t count = 0;
  NSF_RETURN_IF_ERROR(store_.Scan(keys::kInodePrefix, "", [&](std::string_view,
                                                              std::string_view) {
    ++count;
    return true;
  }));
  const uint64_t was = v_.inode_count();
  NSF_RETURN_IF_ERROR(v_.SetCounters(v_.next_inode_number(), count));
  lines_.push_back("set the inode count to " + std::to_string(count) + " (was " +
                   std::to_string(was) + ")");
  return Status::Ok();
}

Status Repairer::SecondRound(const CheckReport& report, Progress* progress) {
  if (progress) progress->Begin(report.findings.size(), 5, "repairs, second round");
  uint64_t done = 0;
  bool refcounts = false, inode_count = false;
  std::set<uint64_t> cookie_dirs;
  for (const Problem& p : report.findings) {
    if (progress) progress->Update(++done);
    if (!Repairs(mode_, p)) continue;
    if (p.kind == ProblemKind::kWrongLinkCount) NSF_RETURN_IF_ERROR(RepairLinkCount(p));
    if (p.kind == ProblemKind::kCookieNotBelowNext) cookie_dirs.insert(p.dir);
    refcounts = refcounts || IsRefcountProblem(p.kind);
    inode_count = inode_count || p.kind == ProblemKind::kWrongInodeCount;
  }
  for (uint64_t dir : cookie_dirs) NSF_RETURN_IF_ERROR(RepairNextCookie(dir));
  if (refcounts) NSF_RETURN_IF_ERROR(RebuildReferenceCounts());
  // Last: every repair before may have freed or made inodes.
  if (inode_count) NSF_RETURN_IF_ERROR(RepairInodeCount());
  if (progress) progress->Finish();
  return Status::Ok();
}

}  // namespace

bool Repairs(RepairMode mode, const Problem& p) {
  switch (p.repair_class()) {
    case RepairClass::kSafe: return true;
    case RepairClass::kFull: return mode == RepairMode::kAll;
    case RepairClass::kNone: return false;
  }
  return false;
}

Result<std::vector<std::string>> RepairVolume(Volume& volume, const CheckReport& report,
                                              RepairMode mode, Progress* progress) {
  if (volume.read_only()) return Status::Error(EROFS, "cannot repair a read-only volume");
  Repairer repairer(volume, mode);
  NSF_RETURN_IF_ERROR(repairer.FirstRound(report, progress));
  // Extents removed or cut above bypassed the allocator's view of them
  // (blocks outside the data area, or never marked used): rebuild it.
  NSF_RETURN_IF_ERROR(volume.Reload());
  NSF_ASSIGN_OR_RETURN(CheckReport again, CheckVolume(volume));
  NSF_RETURN_IF_ERROR(repairer.SecondRound(again, progress));
  return repairer.TakeLines();
}

}  // namespace nosyncfs
