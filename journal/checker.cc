#include "journal/checker.h"

#include <sys/stat.h>

#include <map>
#include <set>

namespace nosyncfs {
namespace {

struct InodeFacts {
  InodeRecord rec;
  uint32_t links_found = 0;   // entries naming it (plus "." and ".." for dirs)
  uint64_t mapped = 0;
};

std::string Ino(uint64_t ino) { return "inode " + std::to_string(ino); }

// Per data block: how many extents map it and the reference count its
// record gives (0 without one), kept as runs of blocks that agree.
class BlockCounts {
 public:
  struct Count {
    int64_t mapped = 0;
    int64_t recorded = 0;
  };
  void Add(uint64_t start, uint64_t len, int64_t Count::*field, int64_t n) {
    deltas_[start].*field += n;
    deltas_[start + len].*field -= n;
  }
  // Calls fn(start, end, count) for each maximal run of blocks in use
  // (mapped or recorded) whose counts agree, in order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    Count c;
    uint64_t run_start = 0;
    Count run;
    bool open = false;
    for (const auto& [block, d] : deltas_) {
      Count next{c.mapped + d.mapped, c.recorded + d.recorded};
      if (open && (next.mapped != run.mapped || next.recorded != run.recorded)) {
        fn(run_start, block, run);
        open = false;
      }
      c = next;
      if (!open && (c.mapped != 0 || c.recorded != 0)) {
        run_start = block;
        run = c;
        open = true;
      }
    }
  }

 private:
  std::map<uint64_t, Count> deltas_;
};

}  // namespace

Result<CheckReport> CheckVolume(Volume& volume) {
  CheckReport report;
  auto problem = [&](std::string what) { report.problems.push_back(std::move(what)); };
  MetaStore& store = volume.store();
  std::map<uint64_t, InodeFacts> inodes;
  Status inner;

  NSF_RETURN_IF_ERROR(store.Scan(keys::kInodePrefix, "", [&](std::string_view k, std::string_view v) {
    uint64_t ino = keys::InoOf(k);
    auto rec = InodeRecord::Decode(ino, v);
    if (!rec.ok()) {
      problem(rec.status().message());
      return true;
    }
    inodes[ino].rec = *rec;
    return true;
  }));
  report.inodes = inodes.size();
  if (!inodes.count(kRootIno)) problem("the root directory inode is missing");

  // Directory entries, by name and by cookie.
  std::set<std::pair<uint64_t, uint64_t>> cookies_by_name;  // (dir, cookie)
  NSF_RETURN_IF_ERROR(store.Scan("d", "", [&](std::string_view k, std::string_view v) {
    ++report.entries;
    uint64_t dir = keys::InoOf(k);
    std::string name(k.substr(9));
    auto d = DirentRecord::Decode(v);
    if (!d.ok()) {
      problem("entry '" + name + "' in directory " + std::to_string(dir) + ": bad record");
      return true;
    }
    cookies_by_name.insert({dir, d->cookie});
    auto parent = inodes.find(dir);
    if (parent == inodes.end() || !S_ISDIR(parent->second.rec.mode)) {
      problem("entry '" + name + "' lives in " + Ino(dir) + ", which is not a directory");
    }
    auto child = inodes.find(d->ino);
    if (child == inodes.end()) {
      problem("entry '" + name + "' in directory " + std::to_string(dir) + " points to missing " +
              Ino(d->ino));
      return true;
    }
    InodeFacts& c = child->second;
    if ((c.rec.mode & S_IFMT) != d->type) {
      problem("entry '" + name + "' records the wrong file type for " + Ino(d->ino));
    }
    ++c.links_found;
    if (S_ISDIR(c.rec.mode)) {
      if (c.rec.parent != dir) {
        problem(Ino(d->ino) + ": parent pointer " + std::to_string(c.rec.parent) +
                " but listed in directory " + std::to_string(dir));
      }
      if (parent != inodes.end()) ++parent->second.links_found;  // the child's ".."
    }
    if (d->cookie >= (parent != inodes.end() ? parent->second.rec.next_cookie : 0)) {
      problem("entry '" + name + "': cookie not below its directory's next cookie");
    }
    return true;
  }));
  NSF_RETURN_IF_ERROR(store.Scan("c", "", [&](std::string_view k, std::string_view v) {
    uint64_t dir = keys::InoOf(k);
    auto d = DirentRecord::Decode(v);
    if (!d.ok() || !cookies_by_name.erase({dir, keys::TrailingU64(k)})) {
      problem("readdir entry " + std::to_string(keys::TrailingU64(k)) + " in directory " +
              std::to_string(dir) + " has no matching name entry");
    }
    return true;
  }));
  for (const auto& [dir, cookie] : cookies_by_name) {
    problem("entry with cookie " + std::to_string(cookie) + " in directory " +
            std::to_string(dir) + " is missing from the readdir order");
  }

  std::set<uint64_t> orphans;
  NSF_RETURN_IF_ERROR(store.Scan(keys::kOrphanPrefix, "", [&](std::string_view k, std::string_view) {
    orphans.insert(keys::InoOf(k));
    return true;
  }));

  // Extents. Each also counts, in `refs`, as one reference to its blocks.
  BlockCounts refs;
  const uint64_t data_blocks = volume.total_blocks();
  NSF_RETURN_IF_ERROR(store.Scan(keys::kExtentPrefixAll, "", [&](std::string_view k, std::string_view v) {
    ++report.extents;
    uint64_t ino = keys::InoOf(k);
    auto e = DecodeExtent(k, v);
    if (!e.ok()) {
      problem(Ino(ino) + ": bad extent record");
      return true;
    }
    report.mapped_blocks += e->len;
    if (e->pblk >= data_blocks || e->len > data_blocks - e->pblk) {
      problem(Ino(ino) + ": extent at block " + std::to_string(e->lblk) +
              " lies outside the data area");
    } else {
      refs.Add(e->pblk, e->len, &BlockCounts::Count::mapped, 1);
    }
    auto it = inodes.find(ino);
    if (it == inodes.end()) {
      problem("extent at block " + std::to_string(e->lblk) + " of missing " + Ino(ino) +
              " (leaked blocks)");
    } else if (!S_ISREG(it->second.rec.mode)) {
      problem(Ino(ino) + " is not a regular file but has extents");
    }
    if (e->flags & ~uint32_t{kExtentNoFsync}) problem(Ino(ino) + ": unknown extent flags");
    return true;
  }));

  // Reference counts of shared blocks against the extents that map them.
  NSF_RETURN_IF_ERROR(store.Scan(keys::kRefcountPrefix, "", [&](std::string_view k,
                                                               std::string_view v) {
    auto r = DecodeRefcount(k, v);
    if (!r.ok() || r->run.start >= data_blocks || r->run.len > data_blocks - r->run.start) {
      problem("bad reference count record for block " + std::to_string(keys::TrailingU64(k)));
    } else {
      refs.Add(r->run.start, r->run.len, &BlockCounts::Count::recorded, r->refs);
    }
    return true;
  }));
  uint64_t used_blocks = 0;
  refs.ForEach([&](uint64_t start, uint64_t end, const BlockCounts::Count& c) {
    used_blocks += end - start;
    std::string blocks = "blocks " + std::to_string(start) + ".." + std::to_string(end - 1);
    if (c.recorded == 0 && c.mapped >= 2) {
      problem(blocks + " are mapped " + std::to_string(c.mapped) +
              " times without a reference count");
    } else if (c.recorded > 0 && c.mapped == 0) {
      problem(blocks + " have a reference count of " + std::to_string(c.recorded) +
              " but no file maps them (leaked)");
    } else if (c.recorded > 0 && c.mapped != c.recorded) {
      problem(blocks + ": reference count " + std::to_string(c.recorded) + ", but mapped " +
              std::to_string(c.mapped) + " times");
    }
  });

  NSF_ASSIGN_OR_RETURN(auto applied_value, store.Get(keys::kApplied));
  AppliedRecord applied;
  applied.next_ino = 0;
  if (applied_value) {
    auto decoded = AppliedRecord::Decode(*applied_value);
    if (decoded.ok()) applied = *decoded;
  }
  const uint64_t next_ino = applied.next_ino;

  for (auto& [ino, f] : inodes) {
    const InodeRecord& r = f.rec;
    if (ino >= next_ino) problem(Ino(ino) + " is not below the inode counter");
    if (S_ISDIR(r.mode)) {
      ++report.directories;
      uint32_t expected = f.links_found + (ino == kRootIno ? 2 : 1);  // "." (and root's "..")
      if (r.nlink != expected && !(r.nlink == 0 && orphans.count(ino))) {
        problem(Ino(ino) + " (directory): link count " + std::to_string(r.nlink) + ", found " +
                std::to_string(expected));
      }
    } else if (r.nlink != f.links_found) {
      problem(Ino(ino) + ": link count " + std::to_string(r.nlink) + ", found " +
              std::to_string(f.links_found) + " entries");
    }
    if (f.links_found == 0 && ino != kRootIno && !orphans.count(ino)) {
      problem(Ino(ino) + " is unreachable and not an orphan");
    }
    if (S_ISLNK(r.mode)) {
      NSF_ASSIGN_OR_RETURN(auto target, store.Get(keys::SymlinkTarget(ino)));
      if (!target) problem(Ino(ino) + ": symlink without a target");
    }
  }
  for (uint64_t ino : orphans) {
    if (!inodes.count(ino)) problem("orphan record for missing " + Ino(ino));
  }
  if (!applied_value || applied.legacy || applied.inode_count != inodes.size()) {
    problem("inode count " + std::to_string(applied.inode_count) + ", found " +
            std::to_string(inodes.size()) + " inodes");
  }
  if (used_blocks + volume.free_blocks() != volume.total_blocks()) {
    problem("block accounting: " + std::to_string(used_blocks) + " in use + " +
            std::to_string(volume.free_blocks()) + " free != " +
            std::to_string(volume.total_blocks()) + " blocks");
  }
  report.used_blocks = used_blocks;
  return report;
}

}  // namespace nosyncfs
