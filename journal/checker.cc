#include "journal/checker.h"

#include <sys/stat.h>

#include <map>
#include <set>

#include "journal/block_counts.h"

namespace nosyncfs {
namespace {

struct InodeFacts {
  InodeRecord rec;
  uint32_t links_found = 0;   // entries naming it (plus "." and ".." for dirs)
};

std::string Ino(uint64_t ino) { return "inode " + std::to_string(ino); }

// Reports pass `pass` of the check to a Progress that may be null.
class Pass {
 public:
  Pass(Progress* progress, uint64_t total, int pass, std::string what) : progress_(progress) {
    if (progress_) progress_->Begin(total, pass, "pass " + std::to_string(pass) + ", " + what);
  }
  ~Pass() {
    if (progress_) progress_->Finish();
  }
  void Update(uint64_t done) {
    if (progress_) progress_->Update(done);
  }

 private:
  Progress* progress_;
};

}  // namespace

RepairClass Problem::repair_class() const {
  switch (kind) {
    case ProblemKind::kExtentOfMissingInode:
    case ProblemKind::kCookieNotBelowNext:
    case ProblemKind::kBadRefcountRecord:
    case ProblemKind::kLeakedRefcount:
    case ProblemKind::kWrongRefcount:
    case ProblemKind::kDanglingOrphan:
    case ProblemKind::kOrphanWithLinks:
    case ProblemKind::kInodeNotBelowCounter:
    case ProblemKind::kWrongInodeCount:
      return RepairClass::kSafe;
    case ProblemKind::kWrongLinkCount:
      // An inode no entry names keeps its count until -y links it into
      // lost+found: a count of zero would make it look free.
      return count == 0 ? RepairClass::kFull : RepairClass::kSafe;
    case ProblemKind::kBadEntryRecord:
    case ProblemKind::kEntryOutsideDirectory:
    case ProblemKind::kDanglingEntry:
    case ProblemKind::kWrongEntryType:
    case ProblemKind::kWrongParent:
    case ProblemKind::kCookieWithoutName:
    case ProblemKind::kNameWithoutCookie:
    case ProblemKind::kBadExtentRecord:
    case ProblemKind::kExtentOutsideData:
    case ProblemKind::kExtentOfNonRegular:
    case ProblemKind::kUnknownExtentFlags:
    case ProblemKind::kUnreachable:
      return RepairClass::kFull;
    case ProblemKind::kBadInodeRecord:
    case ProblemKind::kMissingRoot:
    case ProblemKind::kMappedTwice:
    case ProblemKind::kSymlinkWithoutTarget:
    case ProblemKind::kBlockAccounting:
      return RepairClass::kNone;
  }
  return RepairClass::kNone;
}

Result<CheckReport> CheckVolume(Volume& volume, Progress* progress) {
  CheckReport report;
  auto problem = [&](Problem p) {
    report.problems.push_back(p.message);
    report.findings.push_back(std::move(p));
  };
  MetaStore& store = volume.store();
  std::map<uint64_t, InodeFacts> inodes;
  const uint64_t data_blocks = volume.total_blocks();

  // ---- pass 1: inodes, then extents ----------------------------------------
  {
    Pass pass(progress, volume.inode_count(), 1, "inodes");
    uint64_t done = 0;
    NSF_RETURN_IF_ERROR(store.Scan(keys::kInodePrefix, "", [&](std::string_view k,
                                                               std::string_view v) {
      pass.Update(++done);
      uint64_t ino = keys::InoOf(k);
      auto rec = InodeRecord::Decode(ino, v);
      if (!rec.ok()) {
        problem({.kind = ProblemKind::kBadInodeRecord, .message = rec.status().message(),
                 .ino = ino, .key = std::string(k)});
        return true;
      }
      inodes[ino].rec = *rec;
      return true;
    }));
  }
  report.inodes = inodes.size();
  if (!inodes.count(kRootIno)) {
    problem({.kind = ProblemKind::kMissingRoot, .message = "the root directory inode is missing"});
  }

  // Each extent also counts, in `refs`, as one reference to its blocks.
  BlockCounts refs;
  {
    Pass pass(progress, volume.total_blocks() - volume.free_blocks(), 1, "extents");
    uint64_t done = 0;
    NSF_RETURN_IF_ERROR(store.Scan(keys::kExtentPrefixAll, "", [&](std::string_view k,
                                                                   std::string_view v) {
      ++report.extents;
      const uint64_t ino = keys::InoOf(k);
      const std::string key(k);
      auto e = DecodeExtent(k, v);
      if (!e.ok()) {
        problem({.kind = ProblemKind::kBadExtentRecord, .message = Ino(ino) + ": bad extent record",
                 .ino = ino, .key = key});
        return true;
      }
      done += e->len;
      pass.Update(done);
      report.mapped_blocks += e->len;
      const std::string where = "extent at block " + std::to_string(e->lblk);
      if (e->pblk >= data_blocks || e->len > data_blocks - e->pblk) {
        problem({.kind = ProblemKind::kExtentOutsideData,
                 .message = Ino(ino) + ": " + where + " lies outside the data area",
                 .ino = ino, .key = key});
      } else {
        refs.Add(e->pblk, e->len, &BlockCounts::Count::mapped, 1);
      }
      auto it = inodes.find(ino);
      if (it == inodes.end()) {
        problem({.kind = ProblemKind::kExtentOfMissingInode,
                 .message = where + " of missing " + Ino(ino) + " (leaked blocks)", .ino = ino,
                 .key = key});
      } else if (!S_ISREG(it->second.rec.mode)) {
        problem({.kind = ProblemKind::kExtentOfNonRegular,
                 .message = Ino(ino) + " is not a regular file but has extents (" + where + ")",
                 .ino = ino, .key = key});
      }
      if (e->flags & ~uint32_t{kExtentNoFsync}) {
        problem({.kind = ProblemKind::kUnknownExtentFlags,
                 .message = Ino(ino) + ": unknown extent flags (" + where + ")", .ino = ino,
                 .key = key});
      }
      return true;
    }));
  }

  // ---- pass 2: directory entries, by name and by cookie --------------------
  uint64_t entry_bound = 0;  // entries ever made: a bound for the progress
  for (const auto& [ino, f] : inodes) {
    if (S_ISDIR(f.rec.mode) && f.rec.next_cookie > kFirstDirCookie) {
      entry_bound += f.rec.next_cookie - kFirstDirCookie;
    }
  }
  std::map<std::pair<uint64_t, uint64_t>, std::string> cookies_by_name;  // (dir, cookie)
  {
    Pass pass(progress, entry_bound, 2, "directory entries");
    NSF_RETURN_IF_ERROR(store.Scan("d", "", [&](std::string_view k, std::string_view v) {
      pass.Update(++report.entries);
      uint64_t dir = keys::InoOf(k);
      std::string name(k.substr(9));
      const std::string in = "entry '" + name + "' in directory " + std::to_string(dir);
      auto d = DirentRecord::Decode(v);
      if (!d.ok()) {
        problem({.kind = ProblemKind::kBadEntryRecord, .message = in + ": bad record", .dir = dir,
                 .name = name, .key = std::string(k)});
        return true;
      }
      cookies_by_name[{dir, d->cookie}] = name;
      auto parent = inodes.find(dir);
      if (parent == inodes.end() || !S_ISDIR(parent->second.rec.mode)) {
        problem({.kind = ProblemKind::kEntryOutsideDirectory,
                 .message = "entry '" + name + "' lives in " + Ino(dir) +
                            ", which is not a directory",
                 .ino = d->ino, .dir = dir, .name = name});
      }
      auto child = inodes.find(d->ino);
      if (child == inodes.end()) {
        problem({.kind = ProblemKind::kDanglingEntry,
                 .message = in + " points to missing " + Ino(d->ino), .ino = d->ino, .dir = dir,
                 .name = name});
        return true;
      }
      InodeFacts& c = child->second;
      if ((c.rec.mode & S_IFMT) != d->type) {
        problem({.kind = ProblemKind::kWrongEntryType,
                 .message = in + " records the wrong file type for " + Ino(d->ino),
                 .ino = d->ino, .dir = dir, .name = name});
      }
      ++c.links_found;
      if (S_ISDIR(c.rec.mode)) {
        if (c.rec.parent != dir) {
          problem({.kind = ProblemKind::kWrongParent,
                   .message = Ino(d->ino) + ": parent pointer " + std::to_string(c.rec.parent) +
                              " but listed in directory " + std::to_string(dir),
                   .ino = d->ino, .dir = dir, .name = name});
        }
        if (parent != inodes.end()) ++parent->second.links_found;  // the child's ".."
      }
      if (d->cookie >= (parent != inodes.end() ? parent->second.rec.next_cookie : 0)) {
        problem({.kind = ProblemKind::kCookieNotBelowNext,
                 .message = in + ": cookie not below its directory's next cookie", .dir = dir,
                 .name = name});
      }
      return true;
    }));
  }
  {
    Pass pass(progress, entry_bound, 2, "readdir entries");
    uint64_t done = 0;
    NSF_RETURN_IF_ERROR(store.Scan("c", "", [&](std::string_view k, std::string_view v) {
      pass.Update(++done);
      uint64_t dir = keys::InoOf(k);
      auto d = DirentRecord::Decode(v);
      if (!d.ok() || !cookies_by_name.erase({dir, keys::TrailingU64(k)})) {
        problem({.kind = ProblemKind::kCookieWithoutName,
                 .message = "readdir entry " + std::to_string(keys::TrailingU64(k)) +
                            " in directory " + std::to_string(dir) + " has no matching name entry",
                 .dir = dir, .key = std::string(k)});
      }
      return true;
    }));
  }
  for (const auto& [at, name] : cookies_by_name) {
    problem({.kind = ProblemKind::kNameWithoutCookie,
             .message = "entry '" + name + "' (cookie " + std::to_string(at.second) +
                        ") in directory " + std::to_string(at.first) +
                        " is missing from the readdir order",
             .dir = at.first, .name = name});
  }

  // ---- pass 3: connectivity and link counts --------------------------------
  std::set<uint64_t> orphans;
  NSF_RETURN_IF_ERROR(store.Scan(keys::kOrphanPrefix, "", [&](std::string_view k, std::string_view) {
    orphans.insert(keys::InoOf(k));
    return true;
  }));
  {
    Pass pass(progress, inodes.size(), 3, "connectivity and link counts");
    uint64_t done = 0;
    for (auto& [ino, f] : inodes) {
      pass.Update(++done);
      const InodeRecord& r = f.rec;
      const bool orphan = orphans.count(ino) != 0;
      if (S_ISDIR(r.mode)) {
        ++report.directories;
        uint32_t expected = f.links_found + (ino == kRootIno ? 2 : 1);  // "." (and root's "..")
        if (r.nlink != expected && !(r.nlink == 0 && orphan)) {
          problem({.kind = ProblemKind::kWrongLinkCount,
                   .message = Ino(ino) + " (directory): link count " + std::to_string(r.nlink) +
                              ", found " + std::to_string(expected),
                   .ino = ino, .count = f.links_found == 0 && ino != kRootIno ? 0 : expected});
        }
      } else if (r.nlink != f.links_found && !(r.nlink == 0 && orphan)) {
        problem({.kind = ProblemKind::kWrongLinkCount,
                 .message = Ino(ino) + ": link count " + std::to_string(r.nlink) + ", found " +
                            std::to_string(f.links_found) + " entries",
                 .ino = ino, .count = f.links_found});
      }
      if (f.links_found == 0 && ino != kRootIno && !orphan) {
        problem({.kind = ProblemKind::kUnreachable,
                 .message = Ino(ino) + " is unreachable and not an orphan", .ino = ino});
      }
      if (S_ISLNK(r.mode)) {
        NSF_ASSIGN_OR_RETURN(auto target, store.Get(keys::SymlinkTarget(ino)));
        if (!target) {
          problem({.kind = ProblemKind::kSymlinkWithoutTarget,
                   .message = Ino(ino) + ": symlink without a target", .ino = ino});
        }
      }
    }
  }
  for (uint64_t ino : orphans) {
    auto it = inodes.find(ino);
    if (it == inodes.end()) {
      problem({.kind = ProblemKind::kDanglingOrphan,
               .message = "orphan record for missing " + Ino(ino), .ino = ino});
    } else if (it->second.links_found > 0) {
      problem({.kind = ProblemKind::kOrphanWithLinks,
               .message = "orphan record for " + Ino(ino) + ", which entries still name",
               .ino = ino});
    } else {
      report.orphans.push_back(ino);
    }
  }

  // ---- pass 4: reference counts of shared blocks ---------------------------
  NSF_RETURN_IF_ERROR(store.Scan(keys::kRefcountPrefix, "", [&](std::string_view k,
                                                               std::string_view v) {
    auto r = DecodeRefcount(k, v);
    if (!r.ok() || r->run.start >= data_blocks || r->run.len > data_blocks - r->run.start) {
      problem({.kind = ProblemKind::kBadRefcountRecord,
               .message = "bad reference count record for block " +
                          std::to_string(keys::TrailingU64(k)),
               .key = std::string(k)});
    } else {
      refs.Add(r->run.start, r->run.len, &BlockCounts::Count::recorded, r->refs);
    }
    return true;
  }));
  uint64_t used_blocks = 0;
  {
    Pass pass(progress, refs.boundaries(), 4, "reference counts");
    uint64_t done = 0;
    refs.ForEach([&](uint64_t start, uint64_t end, const BlockCounts::Count& c) {
      pass.Update(++done);
      used_blocks += end - start;
      std::string blocks = "blocks " + std::to_string(start) + ".." + std::to_string(end - 1);
      if (c.recorded == 0 && c.mapped >= 2) {
        problem({.kind = ProblemKind::kMappedTwice,
                 .message = blocks + " are mapped " + std::to_string(c.mapped) +
                            " times without a reference count"});
      } else if (c.recorded > 0 && c.mapped == 0) {
        problem({.kind = ProblemKind::kLeakedRefcount,
                 .message = blocks + " have a reference count of " + std::to_string(c.recorded) +
                            " but no file maps them (leaked)"});
      } else if (c.recorded > 0 && c.mapped != c.recorded) {
        problem({.kind = ProblemKind::kWrongRefcount,
                 .message = blocks + ": reference count " + std::to_string(c.recorded) +
                            ", but mapped " + std::to_string(c.mapped) + " times"});
      }
    });
  }

  // ---- pass 5: the kept counters and block accounting ----------------------
  {
    Pass pass(progress, inodes.size(), 5, "counters and block accounting");
    NSF_ASSIGN_OR_RETURN(auto applied_value, store.Get(keys::kApplied));
    AppliedRecord applied;
    applied.next_ino = 0;
    if (applied_value) {
      auto decoded = AppliedRecord::Decode(*applied_value);
      if (decoded.ok()) applied = *decoded;
    }
    uint64_t done = 0;
    for (const auto& [ino, f] : inodes) {
      pass.Update(++done);
      if (ino >= applied.next_ino) {
        problem({.kind = ProblemKind::kInodeNotBelowCounter,
                 .message = Ino(ino) + " is not below the inode counter", .ino = ino});
      }
    }
    if (!applied_value || applied.legacy || applied.inode_count != inodes.size()) {
      problem({.kind = ProblemKind::kWrongInodeCount,
               .message = "inode count " + std::to_string(applied.inode_count) + ", found " +
                          std::to_string(inodes.size()) + " inodes"});
    }
    if (used_blocks + volume.free_blocks() != volume.total_blocks()) {
      problem({.kind = ProblemKind::kBlockAccounting,
               .message = "block accounting: " + std::to_string(used_blocks) + " in use + " +
                          std::to_string(volume.free_blocks()) + " free != " +
                          std::to_string(volume.total_blocks()) + " blocks"});
    }
  }
  report.used_blocks = used_blocks;
  return report;
}

}  // namespace nosyncfs
