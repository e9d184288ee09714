// Durability statistics (Vfs::StatsText, VfsStats, Volume's log and NF
// counters, ExtentMap's NF accounting) and the paged extent listing
// (user.nosync.extents@OFFSET), without a mount.
#include <linux/falloc.h>
#include <sys/xattr.h>

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "extent/extent_map.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr size_t kBlock = 4096;

Entry MustCreate(Vfs& vfs, const std::string& name) {
  auto e = vfs.Create(kRootIno, name, 0644, true, false, Caller{});
  REQUIRE(e.ok());
  return *e;
}

void MustWrite(Vfs& vfs, uint64_t ino, uint64_t off, const std::string& data) {
  REQUIRE(VfsWriteAll(vfs, ino, off, data).ok());  // a short write is EIO there
}

// Vfs::StatsText as key -> value; REQUIREs "key value" lines, keys unique.
std::map<std::string, std::string> StatsOf(const Vfs& vfs) {
  std::map<std::string, std::string> out;
  std::istringstream in(vfs.StatsText());
  std::string line;
  while (std::getline(in, line)) {
    INFO("line: " << line);
    size_t sp = line.find(' ');
    REQUIRE(sp != std::string::npos);
    REQUIRE(out.count(line.substr(0, sp)) == 0);
    out[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return out;
}

uint64_t Stat(const Vfs& vfs, const std::string& key) {
  auto stats = StatsOf(vfs);
  INFO("key " << key);
  REQUIRE(stats.count(key) == 1);
  return std::stoull(stats[key]);
}

// The NF blocks of `map`, counted the slow way.
uint64_t RecountNf(const ExtentMap& map) {
  uint64_t n = 0;
  for (const auto& [k, e] : map.extents()) n += (e.flags & kExtentNoFsync) ? e.len : 0;
  return n;
}

struct ListedExtent {
  uint64_t logical, length, device;
  std::string flags;
  bool operator==(const ListedExtent&) const = default;
};

// One page of the listing: its extents, and the offset its "more" line
// names (0 if it has none). REQUIREs every line to be well formed, the
// "more" line to be the last.
std::vector<ListedExtent> ParsePage(const std::string& page, uint64_t* more) {
  std::vector<ListedExtent> out;
  *more = 0;
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    INFO("line: " << line);
    REQUIRE(*more == 0);
    std::istringstream f(line);
    if (line.rfind("more ", 0) == 0) {
      std::string word;
      REQUIRE(f >> word >> *more);
      REQUIRE(*more > 0);
      continue;
    }
    ListedExtent e;
    REQUIRE(f >> e.logical >> e.length >> e.device >> e.flags);
    out.push_back(e);
  }
  return out;
}

}  // namespace

TEST_CASE("extent map: the NF block count follows every change", "[extent][stats]") {
  uint64_t seed = TestSeed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  ExtentMap map;
  // Loaded extents count in nf_blocks but are no change.
  map.Load({0, 4, 1000, kExtentNoFsync});
  map.Load({10, 2, 2000, 0});
  CHECK(map.nf_blocks() == 4);
  CHECK(map.TakeNfBlocksDelta() == 0);
  int64_t taken = 0;
  uint64_t next_pblk = 5000;
  const uint32_t kNf = kExtentNoFsync;
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  for (int step = 0; step < 3000; ++step) {
    uint64_t lblk = pick(200), len = 1 + pick(16);
    switch (pick(4)) {
      case 0:
        for (auto [hole, hlen] : map.Holes(lblk, len)) {
          // Often right after the last blocks mapped, so that merges happen.
          map.Map(hole, hlen, next_pblk, pick(2) ? kNf : 0u);
          next_pblk += hlen + pick(2);
        }
        break;
      case 1:
        map.Unmap(lblk, len);
        break;
      case 2:
        map.SetFlags(lblk, len, kExtentNoFsync, pick(2) ? kNf : 0u);
        break;
      case 3:
        // Collapse [lblk, lblk+len) when it is a hole, else insert one there.
        if (map.Holes(lblk, len).size() == 1 && map.Holes(lblk, len)[0].second == len) {
          map.Shift(lblk + len, len, /*up=*/false);
        } else {
          map.Shift(lblk, len, /*up=*/true);
        }
        break;
    }
    INFO("step " << step);
    REQUIRE(map.nf_blocks() == RecountNf(map));
    if (pick(5) == 0) taken += map.TakeNfBlocksDelta();
  }
  taken += map.TakeNfBlocksDelta();
  CHECK(static_cast<int64_t>(map.nf_blocks()) - 4 == taken);
  CHECK(map.TakeNfBlocksDelta() == 0);
}

TEST_CASE("volume: the NF total follows flag changes, punches, truncates and unlinks, and reopens",
          "[fs][journal][stats]") {
  VolumeFixture fx;
  Entry f{}, g{};
  {
    auto vfs = fx.OpenVfs();
    CHECK(vfs->volume().nf_blocks() == 0);
    f = MustCreate(*vfs, "f");
    g = MustCreate(*vfs, "g");
    MustWrite(*vfs, f.ino, 0, std::string(16 * kBlock, 'a'));
    REQUIRE(vfs->Setxattr(f.ino, "user.nosync", "0-64K", 0).ok());
    CHECK(vfs->volume().nf_blocks() == 16);
    // Past EOF: preallocated, NF.
    REQUIRE(vfs->Setxattr(g.ino, "user.nosync", "1M+32K", 0).ok());
    CHECK(vfs->volume().nf_blocks() == 24);
    // Replacing the set: 8K-24K instead of all 64K.
    REQUIRE(vfs->Setxattr(f.ino, "user.nosync", "8K-24K", 0).ok());
    CHECK(vfs->volume().nf_blocks() == 4 + 8);
    REQUIRE(vfs->Setxattr(f.ino, "user.nosync", "all", 0).ok());
    CHECK(vfs->volume().nf_blocks() == 16 + 8);
    // A punch of two whole blocks and part of a third.
    REQUIRE(vfs->Fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * kBlock,
                           2 * kBlock + 100)
                .ok());
    CHECK(vfs->volume().nf_blocks() == 14 + 8);
    // A shrinking truncate drops the NF blocks past the new EOF.
    SetattrRequest trunc;
    trunc.set_size = true;
    trunc.size = 10 * kBlock;
    REQUIRE(vfs->Setattr(f.ino, trunc).ok());
    CHECK(vfs->volume().nf_blocks() == 8 + 8);
    // Clearing keeps the blocks, drops the flag.
    REQUIRE(vfs->Removexattr(g.ino, "user.nosync").ok());
    CHECK(vfs->volume().nf_blocks() == 8);
    REQUIRE(vfs->Setxattr(g.ino, "user.nosync", "0-8K", 0).ok());
    CHECK(vfs->volume().nf_blocks() == 8 + 2);
    CHECK(Stat(*vfs, "nf_bytes") == 10 * kBlock);
  }
  {
    // Counted again by the scan at open.
    auto vfs = fx.OpenVfs();
    CHECK(vfs->volume().nf_blocks() == 10);
    REQUIRE(vfs->Unlink(kRootIno, "g").ok());
    CHECK(vfs->volume().nf_blocks() == 8);
  }
  auto vfs = fx.OpenVfs();
  CHECK(vfs->volume().nf_blocks() == 8);
  CHECK(Stat(*vfs, "nf_bytes") == 8 * kBlock);
}

TEST_CASE("vfs stats: fsync with no media work, NF bytes persisted, log persists",
          "[fs][stats]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  auto stats = StatsOf(*vfs);
  CHECK(stats["persistence"] == "strict_emulation");
  CHECK(stats["persistence_detected_by"].find("emulate=strict") != std::string::npos);
  CHECK(stats["block_size"] == "4096");
  CHECK(std::stoull(stats["free_bytes"]) == vfs->volume().free_blocks() * kBlock);
  CHECK(std::stoull(stats["total_bytes"]) == vfs->volume().total_blocks() * kBlock);
  for (const char* key : {"fsync_calls", "fdatasync_calls", "fsync_no_media_work",
                          "fsyncdir_calls", "nf_writes", "nf_write_bytes_persisted"}) {
    INFO(key);
    CHECK(stats[key] == "0");
  }

  Entry nf = MustCreate(*vfs, "nf");
  Entry plain = MustCreate(*vfs, "plain");
  MustWrite(*vfs, nf.ino, 0, std::string(4 * kBlock, 'a'));
  REQUIRE(vfs->Setxattr(nf.ino, "user.nosync", "0-64K", 0).ok());

  SECTION("an fsync of NF-only changes does no media work, and is counted so") {
    MustWrite(*vfs, nf.ino, 100, std::string(5000, 'b'));
    CHECK(Stat(*vfs, "nf_writes") == 1);
    CHECK(Stat(*vfs, "nf_write_bytes_persisted") == 5000);
    uint64_t persists = vfs->volume().device().persist_calls();
    REQUIRE(vfs->Fsync(nf.ino, false).ok());
    REQUIRE(vfs->Fsync(nf.ino, true).ok());
    CHECK(vfs->volume().device().persist_calls() == persists);
    CHECK(Stat(*vfs, "fsync_calls") == 2);
    CHECK(Stat(*vfs, "fdatasync_calls") == 1);
    CHECK(Stat(*vfs, "fsync_no_media_work") == 2);
  }
  SECTION("an fsync with dirty data, attributes or log is media work") {
    MustWrite(*vfs, plain.ino, 0, std::string(3 * kBlock, 'p'));
    REQUIRE(vfs->Fsync(plain.ino, false).ok());
    MustWrite(*vfs, plain.ino, 10, "overwrite");  // dirty data, nothing allocated
    REQUIRE(vfs->Fsync(plain.ino, true).ok());
    CHECK(Stat(*vfs, "fsync_calls") == 2);
    CHECK(Stat(*vfs, "fsync_no_media_work") == 0);
    // Nothing left: the third one has nothing to do.
    REQUIRE(vfs->Fsync(plain.ino, false).ok());
    CHECK(Stat(*vfs, "fsync_no_media_work") == 1);
    // Unflagged writes add no NF bytes.
    CHECK(Stat(*vfs, "nf_write_bytes_persisted") == 0);
  }
  SECTION("a write across NF and unflagged blocks counts only its NF bytes") {
    // NF is [0, 64K); the file is 16K long. Write [60K, 70K): 4K NF, 6K not.
    MustWrite(*vfs, nf.ino, 60 * 1024, std::string(10 * 1024, 'c'));
    CHECK(Stat(*vfs, "nf_writes") == 1);
    CHECK(Stat(*vfs, "nf_write_bytes_persisted") == 4 * 1024);
    // ... and copy_file_range into NF bytes is a write of them.
    MustWrite(*vfs, plain.ino, 0, std::string(2 * kBlock, 'q'));
    auto copied = vfs->CopyFileRange(plain.ino, 0, nf.ino, 100, 3000, 0);
    REQUIRE(copied.ok());
    CHECK(*copied == 3000);
    CHECK(Stat(*vfs, "nf_writes") == 2);
    CHECK(Stat(*vfs, "nf_write_bytes_persisted") == 4 * 1024 + 3000);
  }
  SECTION("log persists count the transactions they make durable") {
    REQUIRE(vfs->volume().Sync().ok());
    uint64_t persists = Stat(*vfs, "log_persists");
    uint64_t txns = Stat(*vfs, "log_transactions");
    CHECK(txns >= persists);
    // Five commits that wait for nothing, then one durable commit: one
    // persist makes all six durable.
    for (int i = 0; i < 5; ++i) {
      REQUIRE(vfs->Mkdir(kRootIno, "d" + std::to_string(i), 0755, Caller{}).ok());
    }
    CHECK(Stat(*vfs, "log_persists") == persists);
    REQUIRE(vfs->Fsyncdir(kRootIno).ok());
    CHECK(Stat(*vfs, "fsyncdir_calls") == 1);
    CHECK(Stat(*vfs, "log_persists") == persists + 1);
    CHECK(Stat(*vfs, "log_transactions") == txns + 5);
    auto s = StatsOf(*vfs);
    char mean[32];
    std::snprintf(mean, sizeof(mean), "%.2f",
                  static_cast<double>(txns + 5) / static_cast<double>(persists + 1));
    CHECK(s["transactions_per_log_persist"] == mean);
    // Nothing new to make durable: no persist.
    REQUIRE(vfs->Fsyncdir(kRootIno).ok());
    CHECK(Stat(*vfs, "log_persists") == persists + 1);
  }
}

TEST_CASE("user.nosync.extents: pages of at most 32 KiB, continued with more OFFSET",
          "[fs][nosync][stats]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  Entry f = MustCreate(*vfs, "f");

  SECTION("a small file keeps the one-page format, no continuation") {
    MustWrite(*vfs, f.ino, 0, std::string(8 * kBlock, 'a'));
    REQUIRE(vfs->Setxattr(f.ino, "user.nosync", "8K-16K", 0).ok());
    auto whole = vfs->Getxattr(f.ino, "user.nosync.extents");
    REQUIRE(whole.ok());
    uint64_t more = 0;
    auto listed = ParsePage(*whole, &more);
    CHECK(more == 0);
    REQUIRE(listed.size() == 3);
    CHECK(listed[1].logical == 8192);
    CHECK(listed[1].flags == "nf");
    CHECK(*vfs->Getxattr(f.ino, "user.nosync.extents@0") == *whole);
    // From the middle of the NF extent: that extent, then the rest.
    auto mid = vfs->Getxattr(f.ino, "user.nosync.extents@9000");
    REQUIRE(mid.ok());
    auto from_mid = ParsePage(*mid, &more);
    REQUIRE(from_mid.size() == 2);
    CHECK(from_mid[0] == listed[1]);
    CHECK(from_mid[1] == listed[2]);
    // Past the last extent: an empty page.
    CHECK(*vfs->Getxattr(f.ino, "user.nosync.extents@32768") == "");
  }

  SECTION("malformed page names are EINVAL, the names are read-only") {
    for (const char* name :
         {"user.nosync.extents@", "user.nosync.extents@x", "user.nosync.extents@-1",
          "user.nosync.extents@+1", "user.nosync.extents@1x", "user.nosync.extents@ 1",
          "user.nosync.extents@0x10", "user.nosync.extents@99999999999999999999",
          "user.nosync.extents@9223372036854775808", "user.nosync.extents@@0"}) {
      INFO(name);
      CHECK(vfs->Getxattr(f.ino, name).status().code() == EINVAL);
      CHECK(vfs->Getxattr(kRootIno, name).status().code() == EINVAL);
    }
    CHECK(vfs->Getxattr(f.ino, "user.nosync.extents@9223372036854775807").ok());
    CHECK(vfs->Getxattr(kRootIno, "user.nosync.extents@0").status().code() == ENODATA);
    CHECK(vfs->Setxattr(f.ino, "user.nosync.extents@0", "x", 0).code() == EPERM);
    CHECK(vfs->Removexattr(f.ino, "user.nosync.extents@0").code() == EPERM);
  }

  SECTION("thousands of extents: pages cover every extent once, in order") {
    // Block by block from the end: each block lands after the one written
    // before it, so no two neighbours merge. Every third block NF.
    constexpr uint64_t kExtents = 3000;
    for (uint64_t b = kExtents; b-- > 0;) MustWrite(*vfs, f.ino, b * kBlock, "x");
    std::string ranges;
    for (uint64_t b = 0; b < kExtents; b += 3) {
      ranges += (ranges.empty() ? "" : ",") + std::to_string(b * kBlock) + "+4K";
    }
    REQUIRE(vfs->Setxattr(f.ino, "user.nosync", ranges, 0).ok());

    std::vector<ListedExtent> all;
    uint64_t off = 0;
    int pages = 0;
    for (;;) {
      std::string name = pages == 0 ? "user.nosync.extents"
                                    : "user.nosync.extents@" + std::to_string(off);
      auto page = vfs->Getxattr(f.ino, name);
      REQUIRE(page.ok());
      CHECK(page->size() <= 32768);
      ++pages;
      uint64_t more = 0;
      auto listed = ParsePage(*page, &more);
      REQUIRE(!listed.empty());
      all.insert(all.end(), listed.begin(), listed.end());
      if (more == 0) break;
      // The next page starts where this one stopped: an extent's start.
      REQUIRE(more == listed.back().logical + listed.back().length);
      off = more;
    }
    CHECK(pages > 2);
    REQUIRE(all.size() == kExtents);
    for (uint64_t i = 0; i < kExtents; ++i) {
      INFO("extent " << i);
      REQUIRE(all[i].logical == i * kBlock);
      REQUIRE(all[i].length == kBlock);
      REQUIRE(all[i].flags == (i % 3 == 0 ? "nf" : "-"));
    }
    // A page asked for in the middle of an extent starts with that extent.
    auto page = vfs->Getxattr(f.ino, "user.nosync.extents@" + std::to_string(1500 * kBlock + 7));
    REQUIRE(page.ok());
    uint64_t more = 0;
    auto listed = ParsePage(*page, &more);
    REQUIRE(!listed.empty());
    CHECK(listed[0] == all[1500]);
  }
}

}  // namespace nosyncfs::test
