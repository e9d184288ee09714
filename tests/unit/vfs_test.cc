// Unit tests for fs/vfs.h without FUSE: the file system core on a volume
// from the harness, including what survives a crash.
#include "fs/vfs.h"

#include <catch2/catch.hpp>
#include <linux/fs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "journal/checker.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kBs = 4096;
constexpr uint64_t kMiB = uint64_t{1} << 20;
const Caller kRoot{};

Entry MustCreate(Vfs& vfs, uint64_t parent, const std::string& name) {
  auto e = vfs.Create(parent, name, 0644, /*exclusive=*/true, /*truncate=*/false, kRoot);
  INFO("create " << name << ": " << e.status().ToString());
  REQUIRE(e.ok());
  return *e;
}

Entry MustMkdir(Vfs& vfs, uint64_t parent, const std::string& name) {
  auto e = vfs.Mkdir(parent, name, 0755, kRoot);
  INFO("mkdir " << name << ": " << e.status().ToString());
  REQUIRE(e.ok());
  return *e;
}

void MustWrite(Vfs& vfs, uint64_t ino, uint64_t off, std::string_view data) {
  Status st = VfsWriteAll(vfs, ino, off, data);
  INFO("write " << data.size() << " bytes at " << off << ": " << st.ToString());
  REQUIRE(st.ok());
}

std::string MustRead(Vfs& vfs, uint64_t ino, uint64_t off, size_t n) {
  auto r = VfsRead(vfs, ino, off, n);
  INFO("read " << n << " bytes at " << off << ": " << r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

struct stat MustGetattr(Vfs& vfs, uint64_t ino) {
  auto st = vfs.Getattr(ino);
  INFO("getattr " << ino << ": " << st.status().ToString());
  REQUIRE(st.ok());
  return *st;
}

uint64_t LookupIno(Vfs& vfs, uint64_t parent, const std::string& name) {
  auto e = vfs.Lookup(parent, name);
  INFO("lookup " << name << ": " << e.status().ToString());
  REQUIRE(e.ok());
  return e->ino;
}

int LookupErr(Vfs& vfs, uint64_t parent, const std::string& name) {
  return vfs.Lookup(parent, name).status().code();
}

uint64_t FreeBlocks(Vfs& vfs) {
  auto s = vfs.Statfs();
  REQUIRE(s.ok());
  return s->f_bfree;
}

uint64_t TotalBlocks(Vfs& vfs) {
  auto s = vfs.Statfs();
  REQUIRE(s.ok());
  return s->f_blocks;
}

std::vector<std::string> Names(const std::vector<DirEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.name);
  return out;
}

std::vector<std::string> ListNames(Vfs& vfs, uint64_t dir) {
  auto r = VfsReaddir(vfs, dir, 0);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return Names(*r);
}

Status Truncate(Vfs& vfs, uint64_t ino, uint64_t size) {
  SetattrRequest req;
  req.set_size = true;
  req.size = size;
  return vfs.Setattr(ino, req).status();
}

}  // namespace

TEST_CASE("vfs: create then lookup then write and read back", "[fs]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  Entry f = MustCreate(*vfs, kRootIno, "file");
  CHECK(S_ISREG(f.attr.st_mode));
  CHECK((f.attr.st_mode & 07777) == 0644);
  CHECK(f.attr.st_size == 0);
  CHECK(f.attr.st_nlink == 1);
  CHECK(LookupIno(*vfs, kRootIno, "file") == f.ino);
  CHECK(LookupErr(*vfs, kRootIno, "other") == ENOENT);
  CHECK(vfs->Create(kRootIno, "file", 0644, /*exclusive=*/true, false, kRoot).status().code() == EEXIST);

  const std::string data = DataPattern(1, 10000);
  MustWrite(*vfs, f.ino, 0, data);
  CHECK(MustRead(*vfs, f.ino, 0, 10000) == data);
  struct stat st = MustGetattr(*vfs, f.ino);
  CHECK(st.st_size == 10000);
  CHECK(st.st_blocks == 3 * (kBs / 512));  // three 4 KiB blocks

  // Reads stop at EOF.
  CHECK(MustRead(*vfs, f.ino, 5000, 100000) == data.substr(5000));
  CHECK(MustRead(*vfs, f.ino, 10000, 10).empty());
  CHECK(MustRead(*vfs, f.ino, 50000, 10).empty());

  // An overwrite across a block boundary.
  MustWrite(*vfs, f.ino, 4090, "0123456789AB");
  std::string want = data;
  want.replace(4090, 12, "0123456789AB");
  CHECK(MustRead(*vfs, f.ino, 0, 10000) == want);
  CHECK(MustGetattr(*vfs, f.ino).st_size == 10000);

  // A non-exclusive create opens the existing file.
  auto again = vfs->Create(kRootIno, "file", 0600, /*exclusive=*/false, false, kRoot);
  REQUIRE(again.ok());
  CHECK(again->ino == f.ino);
  CHECK(again->attr.st_size == 10000);
}

TEST_CASE("vfs: data survives a clean shutdown", "[fs]") {
  VolumeFixture fx;
  const std::string data = DataPattern(2, 3 * kBs + 17);
  uint64_t ino;
  {
    auto vfs = fx.OpenVfs();
    ino = MustCreate(*vfs, kRootIno, "f").ino;
    MustWrite(*vfs, ino, 0, data);
    REQUIRE(vfs->Shutdown().ok());
    REQUIRE(vfs->Shutdown().ok());  // idempotent
  }
  auto vfs = fx.OpenVfs();
  CHECK(LookupIno(*vfs, kRootIno, "f") == ino);
  CHECK(MustGetattr(*vfs, ino).st_size == static_cast<off_t>(data.size()));
  CHECK(MustRead(*vfs, ino, 0, data.size()) == data);
}

TEST_CASE("vfs: holes read as zeros", "[fs]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  uint64_t ino = MustCreate(*vfs, kRootIno, "sparse").ino;
  const uint64_t off = kMiB + 10;
  const std::string data = DataPattern(3, 100);
  MustWrite(*vfs, ino, off, data);

  struct stat st = MustGetattr(*vfs, ino);
  CHECK(st.st_size == static_cast<off_t>(off + 100));
  CHECK(st.st_blocks == kBs / 512);  // only the written block is allocated
  std::string all = MustRead(*vfs, ino, 0, off + 100);
  REQUIRE(all.size() == off + 100);
  CHECK(all.substr(0, off) == std::string(off, '\0'));
  CHECK(all.substr(off) == data);

  auto data_at = vfs->Lseek(ino, 0, SEEK_DATA);
  REQUIRE(data_at.ok());
  CHECK(*data_at == kMiB);  // the block holding the data
  auto hole_at = vfs->Lseek(ino, kMiB, SEEK_HOLE);
  REQUIRE(hole_at.ok());
  CHECK(*hole_at == off + 100);  // EOF ends the last data run
}

TEST_CASE("vfs: truncate down then up reads zeros in the old tail", "[fs]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  uint64_t ino = MustCreate(*vfs, kRootIno, "t").ino;
  const std::string data = DataPattern(4, 3 * kBs + 500);
  MustWrite(*vfs, ino, 0, data);
  const uint64_t free_full = FreeBlocks(*vfs);

  const uint64_t cut = GENERATE(as<uint64_t>{}, 5000, 2 * kBs, 1);
  INFO("truncate to " << cut);
  REQUIRE(Truncate(*vfs, ino, cut).ok());
  struct stat st = MustGetattr(*vfs, ino);
  CHECK(st.st_size == static_cast<off_t>(cut));
  const uint64_t kept_blocks = (cut + kBs - 1) / kBs;
  CHECK(st.st_blocks == static_cast<blkcnt_t>(kept_blocks * (kBs / 512)));
  CHECK(FreeBlocks(*vfs) == free_full + 4 - kept_blocks);
  CHECK(MustRead(*vfs, ino, 0, data.size()) == data.substr(0, cut));

  REQUIRE(Truncate(*vfs, ino, data.size()).ok());
  std::string back = MustRead(*vfs, ino, 0, data.size());
  REQUIRE(back.size() == data.size());
  CHECK(back.substr(0, cut) == data.substr(0, cut));
  CHECK(back.substr(cut) == std::string(data.size() - cut, '\0'));
}

TEST_CASE("vfs: an unlinked file lives until the last reference goes", "[fs]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  const uint64_t free0 = FreeBlocks(*vfs);
  Entry f = MustCreate(*vfs, kRootIno, "f");  // one open handle, one lookup
  const std::string data = DataPattern(5, 5 * kBs);
  MustWrite(*vfs, f.ino, 0, data);
  REQUIRE(vfs->Fsync(f.ino, false).ok());
  CHECK(FreeBlocks(*vfs) == free0 - 5);

  REQUIRE(vfs->Unlink(kRootIno, "f").ok());
  CHECK(LookupErr(*vfs, kRootIno, "f") == ENOENT);
  CHECK(MustGetattr(*vfs, f.ino).st_nlink == 0);
  CHECK(MustRead(*vfs, f.ino, 0, data.size()) == data);
  CHECK(FreeBlocks(*vfs) == free0 - 5);
  // Still writable through the open handle.
  MustWrite(*vfs, f.ino, 0, "still here");
  CHECK(MustRead(*vfs, f.ino, 0, 10) == "still here");

  vfs->Release(f.ino);  // closed, but the kernel still holds a lookup
  CHECK(FreeBlocks(*vfs) == free0 - 5);
  CHECK(MustGetattr(*vfs, f.ino).st_nlink == 0);

  vfs->Forget(f.ino, 1);  // the last reference: now the blocks come back
  CHECK(FreeBlocks(*vfs) == free0);
  CHECK(vfs->Getattr(f.ino).status().code() == ENOENT);
}

TEST_CASE("vfs: rename rules", "[fs]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  Entry a = MustMkdir(*vfs, kRootIno, "a");
  Entry sub = MustMkdir(*vfs, a.ino, "sub");
  Entry f = MustCreate(*vfs, kRootIno, "f");
  Entry g = MustCreate(*vfs, kRootIno, "g");
  Entry full = MustMkdir(*vfs, kRootIno, "full");
  MustCreate(*vfs, full.ino, "inside");
  Entry empty = MustMkdir(*vfs, kRootIno, "empty");
  const auto before = ListNames(*vfs, kRootIno);

  CHECK(vfs->Rename(kRootIno, "f", kRootIno, "g", RENAME_NOREPLACE).code() == EEXIST);
  CHECK(vfs->Rename(kRootIno, "empty", kRootIno, "full", 0).code() == ENOTEMPTY);
  CHECK(vfs->Rename(kRootIno, "f", kRootIno, "empty", 0).code() == EISDIR);
  CHECK(vfs->Rename(kRootIno, "empty", kRootIno, "f", 0).code() == ENOTDIR);
  CHECK(vfs->Rename(kRootIno, "a", a.ino, "x", 0).code() == EINVAL);
  CHECK(vfs->Rename(kRootIno, "a", sub.ino, "x", 0).code() == EINVAL);
  CHECK(vfs->Rename(kRootIno, "missing", kRootIno, "y", 0).code() == ENOENT);
  CHECK(vfs->Rename(kRootIno, "f", kRootIno, "y", RENAME_NOREPLACE | RENAME_EXCHANGE).code() ==
        EINVAL);
  // The failures changed nothing.
  CHECK(ListNames(*vfs, kRootIno) == before);
  CHECK(LookupIno(*vfs, kRootIno, "f") == f.ino);
  CHECK(LookupIno(*vfs, kRootIno, "g") == g.ino);
  CHECK(LookupIno(*vfs, a.ino, "sub") == sub.ino);

  SECTION("a file replaces a file") {
    REQUIRE(vfs->Rename(kRootIno, "f", kRootIno, "g", 0).ok());
    CHECK(LookupIno(*vfs, kRootIno, "g") == f.ino);
    CHECK(LookupErr(*vfs, kRootIno, "f") == ENOENT);
    CHECK(MustGetattr(*vfs, g.ino).st_nlink == 0);  // still referenced, unlinked
  }
  SECTION("a directory moves to another parent") {
    CHECK(MustGetattr(*vfs, kRootIno).st_nlink == 5);  // ., .., a, full, empty
    CHECK(MustGetattr(*vfs, a.ino).st_nlink == 3);
    REQUIRE(vfs->Rename(kRootIno, "empty", a.ino, "moved", 0).ok());
    CHECK(LookupIno(*vfs, a.ino, "moved") == empty.ino);
    CHECK(LookupErr(*vfs, kRootIno, "empty") == ENOENT);
    CHECK(MustGetattr(*vfs, kRootIno).st_nlink == 4);
    CHECK(MustGetattr(*vfs, a.ino).st_nlink == 4);
    auto dots = VfsReaddir(*vfs, empty.ino, 0);
    REQUIRE(dots.ok());
    REQUIRE(dots->size() == 2);
    CHECK((*dots)[1].name == "..");
    CHECK((*dots)[1].ino == a.ino);
  }
  SECTION("a directory replaces an empty directory") {
    Entry target = MustMkdir(*vfs, kRootIno, "target");
    REQUIRE(vfs->Rename(kRootIno, "full", kRootIno, "target", 0).ok());
    CHECK(LookupIno(*vfs, kRootIno, "target") == full.ino);
    CHECK(LookupIno(*vfs, full.ino, "inside") != 0);
    CHECK(MustGetattr(*vfs, target.ino).st_nlink == 0);
    CHECK(MustGetattr(*vfs, kRootIno).st_nlink == 5);  // ., .., a, empty, target
  }
  SECTION("exchange swaps the two names") {
    REQUIRE(vfs->Rename(kRootIno, "g", kRootIno, "a", RENAME_EXCHANGE).ok());
    CHECK(LookupIno(*vfs, kRootIno, "g") == a.ino);
    CHECK(LookupIno(*vfs, kRootIno, "a") == g.ino);
    CHECK(LookupIno(*vfs, a.ino, "sub") == sub.ino);
  }
}

TEST_CASE("vfs: readdir cookies stay valid while entries come and go", "[fs]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  std::vector<std::string> names;
  for (int i = 0; i < 20; ++i) {
    std::string name = (i < 10 ? "f0" : "f") + std::to_string(i);
    names.push_back(name);
    vfs->Release(MustCreate(*vfs, kRootIno, name).ino);
  }

  // The first "buffer": . and .. and five entries.
  auto page = VfsReaddir(*vfs, kRootIno, 0, 7);
  REQUIRE(page.ok());
  CHECK(Names(*page) == std::vector<std::string>{".", "..", "f00", "f01", "f02", "f03", "f04"});
  const uint64_t resume = page->back().next_off;
  const uint64_t f02_off = (*page)[4].next_off;

  // Between two readdir calls: remove a seen and two unseen entries, add
  // two new ones.
  REQUIRE(vfs->Unlink(kRootIno, "f02").ok());
  REQUIRE(vfs->Unlink(kRootIno, "f10").ok());
  REQUIRE(vfs->Unlink(kRootIno, "f11").ok());
  vfs->Release(MustCreate(*vfs, kRootIno, "n1").ino);
  vfs->Release(MustCreate(*vfs, kRootIno, "n2").ino);

  // Continuing neither repeats nor skips a surviving entry, and shows no
  // removed one.
  auto rest = VfsReaddir(*vfs, kRootIno, resume);
  REQUIRE(rest.ok());
  CHECK(Names(*rest) == std::vector<std::string>{"f05", "f06", "f07", "f08", "f09", "f12", "f13",
                                                 "f14", "f15", "f16", "f17", "f18", "f19", "n1",
                                                 "n2"});
  // Each entry's offset resumes right after it.
  for (size_t i = 0; i + 1 < rest->size(); ++i) {
    auto next = VfsReaddir(*vfs, kRootIno, (*rest)[i].next_off, 1);
    REQUIRE(next.ok());
    REQUIRE(next->size() == 1);
    CHECK((*next)[0].name == (*rest)[i + 1].name);
  }
  // The offset of an entry removed since is still a valid place to resume.
  auto after_removed = VfsReaddir(*vfs, kRootIno, f02_off, 2);
  REQUIRE(after_removed.ok());
  CHECK(Names(*after_removed) == std::vector<std::string>{"f03", "f04"});
  // Past the end: nothing.
  auto end = VfsReaddir(*vfs, kRootIno, rest->back().next_off);
  REQUIRE(end.ok());
  CHECK(end->empty());
}

TEST_CASE("vfs: readdir pages through a directory that changes concurrently", "[fs]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  std::set<std::string> stable;
  for (int i = 0; i < 150; ++i) {
    std::string name = "s" + std::to_string(1000 + i);
    stable.insert(name);
    vfs->Release(MustCreate(*vfs, kRootIno, name).ino);
  }

  // Another thread keeps adding and removing entries while this one lists
  // the directory in small pages, resuming from the last offset each time.
  std::atomic<bool> stop{false};
  std::atomic<int> churn_rounds{0};
  std::string churn_error;
  std::thread churn([&] {
    std::vector<uint64_t> inos;
    for (int i = 0; !stop; ++i) {
      auto e = vfs->Create(kRootIno, "c" + std::to_string(i), 0644, true, false, kRoot);
      if (!e.ok()) {
        churn_error = "create: " + e.status().ToString();
        return;
      }
      vfs->Release(e->ino);
      inos.push_back(e->ino);
      if (i >= 5) {
        Status st = vfs->Unlink(kRootIno, "c" + std::to_string(i - 5));
        if (!st.ok()) {
          churn_error = "unlink: " + st.ToString();
          return;
        }
        vfs->Forget(inos[i - 5], 1);
      }
      ++churn_rounds;
    }
  });

  std::string failure;
  for (int round = 0; round < 30 && failure.empty(); ++round) {
    std::multiset<std::string> seen;
    uint64_t off = 0;
    // Bounded: an offset that does not advance must fail the test, not hang.
    for (int pages = 0;; ++pages) {
      if (pages > 10000) {
        failure = "round " + std::to_string(round) + ": readdir never reaches the end";
        break;
      }
      auto page = VfsReaddir(*vfs, kRootIno, off, 3);
      if (!page.ok()) {
        failure = "readdir: " + page.status().ToString();
        break;
      }
      if (page->empty()) break;
      for (const auto& e : *page) seen.insert(e.name);
      off = page->back().next_off;
    }
    for (const auto& name : seen) {
      if (seen.count(name) != 1) failure = "round " + std::to_string(round) + ": " + name + " listed twice";
    }
    for (const auto& name : stable) {
      if (seen.count(name) != 1) failure = "round " + std::to_string(round) + ": " + name + " missing";
    }
  }
  stop = true;
  churn.join();
  CHECK(failure == "");
  CHECK(churn_error == "");
  CHECK(churn_rounds > 0);
}

TEST_CASE("vfs: ENOSPC and partial writes", "[fs]") {
  VolumeFixture::Options o;
  o.image_bytes = 16 * kMiB;
  VolumeFixture fx(o);
  auto vfs = fx.OpenVfs();
  const uint64_t free0 = FreeBlocks(*vfs);
  REQUIRE(free0 == (16 * kMiB - 4096 - 2 * kMiB) / kBs);

  SECTION("a write larger than the free space writes what fits") {
    uint64_t ino = MustCreate(*vfs, kRootIno, "big").ino;
    const std::string data = DataPattern(6, (free0 + 10) * kBs);
    auto n = vfs->Write(ino, 0, data.data(), data.size());
    REQUIRE(n.ok());
    CHECK(*n == free0 * kBs);
    CHECK(MustGetattr(*vfs, ino).st_size == static_cast<off_t>(free0 * kBs));
    CHECK(FreeBlocks(*vfs) == 0);
    CHECK(MustRead(*vfs, ino, 0, kBs) == data.substr(0, kBs));
    CHECK(MustRead(*vfs, ino, (free0 - 1) * kBs, kBs) == data.substr((free0 - 1) * kBs, kBs));

    // Nothing more fits past EOF...
    auto more = vfs->Write(ino, free0 * kBs, "x", 1);
    CHECK(more.status().code() == ENOSPC);
    CHECK(MustGetattr(*vfs, ino).st_size == static_cast<off_t>(free0 * kBs));
    // ...but allocated blocks can still be overwritten.
    MustWrite(*vfs, ino, 100, "overwrite");
    CHECK(MustRead(*vfs, ino, 100, 9) == "overwrite");
  }
  SECTION("a partial write from an unaligned offset") {
    uint64_t big = MustCreate(*vfs, kRootIno, "big").ino;
    MustWrite(*vfs, big, 0, std::string((free0 - 3) * kBs, 'b'));
    REQUIRE(FreeBlocks(*vfs) == 3);
    uint64_t ino = MustCreate(*vfs, kRootIno, "g").ino;
    const std::string data = DataPattern(7, 5 * kBs);
    auto n = vfs->Write(ino, 100, data.data(), data.size());
    REQUIRE(n.ok());
    CHECK(*n == 3 * kBs - 100);
    CHECK(MustGetattr(*vfs, ino).st_size == static_cast<off_t>(3 * kBs));
    std::string back = MustRead(*vfs, ino, 0, 3 * kBs);
    CHECK(back.substr(0, 100) == std::string(100, '\0'));
    CHECK(back.substr(100) == data.substr(0, 3 * kBs - 100));
    CHECK(FreeBlocks(*vfs) == 0);

    // A write that cannot place a single byte fails and changes nothing.
    uint64_t h = MustCreate(*vfs, kRootIno, "h").ino;
    CHECK(vfs->Write(h, 0, "y", 1).status().code() == ENOSPC);
    CHECK(MustGetattr(*vfs, h).st_size == 0);

    // Freeing space makes writes possible again.
    REQUIRE(vfs->Unlink(kRootIno, "g").ok());
    vfs->Release(ino);
    vfs->Forget(ino, 1);
    CHECK(FreeBlocks(*vfs) == 3);
    MustWrite(*vfs, h, 0, DataPattern(8, 3 * kBs));
    CHECK(FreeBlocks(*vfs) == 0);
  }
}

// ---- crashes ----------------------------------------------------------------------

namespace {

constexpr uint64_t kKeptSize = 3 * kBs + 123;

}  // namespace

NSF_CRASH_WORKLOAD(FsyncVsUnsynced, "vfs.fsync-vs-unsynced") {
  Vfs& vfs = child.OpenVfs();
  Entry kept = child.Must(vfs.Create(kRootIno, "kept", 0644, true, false, kRoot), "create kept");
  child.Check(VfsWriteAll(vfs, kept.ino, 0, DataPattern(11, kKeptSize)), "write kept");
  child.Check(vfs.Fsync(kept.ino, false), "fsync kept");
  // After the fsync: an unsynced overwrite of kept's first bytes, and a new
  // file nobody syncs.
  child.Check(VfsWriteAll(vfs, kept.ino, 0, DataPattern(13, 100)), "overwrite kept");
  Entry lost = child.Must(vfs.Create(kRootIno, "lost", 0644, true, false, kRoot), "create lost");
  child.Check(VfsWriteAll(vfs, lost.ino, 0, DataPattern(12, 5000)), "write lost");
  child.Report("kept", kept.ino);
}

TEST_CASE("vfs crash: an fsynced file survives and an unsynced new file vanishes",
          "[fs][crash]") {
  VolumeFixture fx;
  CrashResult r = fx.RunAndCrash("vfs.fsync-vs-unsynced");
  auto vfs = fx.OpenVfs();
  CHECK(LookupIno(*vfs, kRootIno, "kept") == r.GetU64("kept"));
  CHECK(LookupErr(*vfs, kRootIno, "lost") == ENOENT);
  CHECK(ListNames(*vfs, kRootIno) == std::vector<std::string>{".", "..", "kept"});

  uint64_t ino = r.GetU64("kept");
  CHECK(MustGetattr(*vfs, ino).st_size == static_cast<off_t>(kKeptSize));
  std::string back = MustRead(*vfs, ino, 0, kKeptSize);
  REQUIRE(back.size() == kKeptSize);
  const std::string synced = DataPattern(11, kKeptSize);
  CHECK(back.substr(100) == synced.substr(100));
  // The unsynced overwrite may or may not have made it, byte by byte (with
  // early evictions some of its 8-byte words can), but nothing else.
  const std::string overwrite = DataPattern(13, 100);
  for (size_t i = 0; i < 100; ++i) {
    if (back[i] != synced[i] && back[i] != overwrite[i]) {
      FAIL("byte " << i << " is neither the fsynced nor the unsynced data");
    }
  }
  // The lost file's blocks were not leaked.
  CHECK(FreeBlocks(*vfs) == TotalBlocks(*vfs) - 4);
}

NSF_CRASH_WORKLOAD(NoStaleData, "vfs.no-stale-data") {
  Vfs& vfs = child.OpenVfs();
  const uint64_t blocks = child.ArgU64("old_blocks");
  const uint64_t new_blocks = child.ArgU64("new_blocks");
  Entry old = child.Must(vfs.Create(kRootIno, "old", 0644, true, false, kRoot), "create old");
  child.Check(VfsWriteAll(vfs, old.ino, 0, DataPattern(21, blocks * kBs)), "write old");
  child.Check(vfs.Fsync(old.ino, false), "fsync old");
  // Close and forget it, as the kernel would, so that the unlink frees its
  // blocks at once (in a transaction nobody makes durable).
  vfs.Release(old.ino);
  vfs.Forget(old.ino, 1);
  child.Check(vfs.Unlink(kRootIno, "old"), "unlink old");
  // A new file wants blocks; the first free ones were old's.
  Entry fresh = child.Must(vfs.Create(kRootIno, "new", 0644, true, false, kRoot), "create new");
  child.Check(VfsWriteAll(vfs, fresh.ino, 0, DataPattern(22, new_blocks * kBs)), "write new");
  child.Report("old", old.ino);
  child.Report("new", fresh.ino);
}

TEST_CASE("vfs crash: blocks freed by an unlink are not reused before it is durable",
          "[fs][crash]") {
  SECTION("plenty of space: the old file's data is intact after the crash") {
    VolumeFixture fx;
    CrashResult r = fx.RunAndCrash("vfs.no-stale-data", {{"old_blocks", "8"}, {"new_blocks", "16"}});
    auto vfs = fx.OpenVfs();
    // The unlink was not durable, so the file is back, with its own data.
    uint64_t ino = LookupIno(*vfs, kRootIno, "old");
    CHECK(ino == r.GetU64("old"));
    CHECK(MustRead(*vfs, ino, 0, 8 * kBs) == DataPattern(21, 8 * kBs));
    CHECK(LookupErr(*vfs, kRootIno, "new") == ENOENT);
    CHECK(FreeBlocks(*vfs) == TotalBlocks(*vfs) - 8);
  }
  SECTION("a full device: the unlink is made durable before its blocks are reused") {
    VolumeFixture::Options o;
    o.image_bytes = 16 * kMiB;
    VolumeFixture fx(o);
    const uint64_t total = (16 * kMiB - 4096 - 2 * kMiB) / kBs;
    const uint64_t old_blocks = total - 100;
    CrashResult r = fx.RunAndCrash(
        "vfs.no-stale-data",
        {{"old_blocks", std::to_string(old_blocks)}, {"new_blocks", "1000"}});
    auto vfs = fx.OpenVfs();
    // Reusing old's blocks required the unlink to be durable first.
    CHECK(LookupErr(*vfs, kRootIno, "old") == ENOENT);
    // Whatever of the new file survived shows its own bytes or zeros, never
    // the old file's.
    auto e = vfs->Lookup(kRootIno, "new");
    if (e.ok()) {
      uint64_t size = static_cast<uint64_t>(e->attr.st_size);
      std::string back = MustRead(*vfs, e->ino, 0, size);
      std::string mine = DataPattern(22, size);
      uint64_t foreign = 0;
      for (uint64_t i = 0; i < size; ++i) foreign += back[i] != 0 && back[i] != mine[i];
      CHECK(foreign == 0);
      // No block leaked or mapped twice: the free count adds up.
      CHECK(FreeBlocks(*vfs) + e->attr.st_blocks / (kBs / 512) == TotalBlocks(*vfs));
    } else {
      CHECK(e.status().code() == ENOENT);
      CHECK(FreeBlocks(*vfs) == TotalBlocks(*vfs));
    }
    (void)r;
  }
}

namespace {

constexpr uint64_t kTruncFull = 3 * kBs + 500;
constexpr uint64_t kTruncCut = 5000;  // inside the second block

}  // namespace

NSF_CRASH_WORKLOAD(TruncateAfterFsync, "vfs.truncate-after-fsync") {
  Vfs& vfs = child.OpenVfs();
  Entry f = child.Must(vfs.Create(kRootIno, "f", 0644, true, false, kRoot), "create");
  child.Check(VfsWriteAll(vfs, f.ino, 0, DataPattern(41, kTruncFull)), "write");
  child.Check(vfs.Fsync(f.ino, false), "fsync");
  // A shrinking truncate that nobody makes durable.
  child.Check(Truncate(vfs, f.ino, kTruncCut), "truncate");
  child.Report("ino", f.ino);
}

TEST_CASE("vfs crash: a truncate that was not made durable is all or nothing",
          "[fs][crash]") {
  VolumeFixture fx;
  CrashResult r = fx.RunAndCrash("vfs.truncate-after-fsync");
  auto vfs = fx.OpenVfs();
  const uint64_t ino = r.GetU64("ino");
  const uint64_t size = static_cast<uint64_t>(MustGetattr(*vfs, ino).st_size);
  const std::string data = DataPattern(41, kTruncFull);
  INFO("size after recovery " << size);
  // Either the truncate happened (the new size, the bytes before it), or it
  // did not, and then the fsync'd bytes are all there: never the old size
  // with part of the old tail zeroed.
  CHECK((size == kTruncCut || size == kTruncFull));
  std::string back = MustRead(*vfs, ino, 0, size);
  REQUIRE(back.size() == size);
  uint64_t first_diff = size;
  for (uint64_t i = 0; i < size; ++i) {
    if (back[i] != data[i]) {
      first_diff = i;
      break;
    }
  }
  CHECK(first_diff == size);
}

NSF_CRASH_WORKLOAD(UnlinkedWhileOpen, "vfs.unlinked-while-open") {
  Vfs& vfs = child.OpenVfs();
  Entry f = child.Must(vfs.Create(kRootIno, "tmp", 0644, true, false, kRoot), "create");
  child.Check(VfsWriteAll(vfs, f.ino, 0, DataPattern(31, 4 * kBs)), "write");
  child.Check(vfs.Fsync(f.ino, false), "fsync");
  child.Check(vfs.Unlink(kRootIno, "tmp"), "unlink");
  child.Check(vfs.Fsyncdir(kRootIno), "fsyncdir");
  child.Report("ino", f.ino);
  // Crash with the file still open.
}

TEST_CASE("vfs crash: a file unlinked while open is freed at the next mount", "[fs][crash]") {
  VolumeFixture fx;
  CrashResult r = fx.RunAndCrash("vfs.unlinked-while-open");
  const uint64_t ino = r.GetU64("ino");
  {
    // Before the file system's orphan pass the blocks are still mapped.
    auto vol = fx.Open();
    CHECK(vol->free_blocks() == vol->total_blocks() - 4);
    auto orphan = vol->store().Get(keys::Orphan(ino));
    REQUIRE(orphan.ok());
    CHECK(orphan->has_value());
  }
  {
    auto vfs = fx.OpenVfs();  // Init() runs the orphan pass
    CHECK(FreeBlocks(*vfs) == TotalBlocks(*vfs));
    CHECK(vfs->Getattr(ino).status().code() == ENOENT);
    CHECK(LookupErr(*vfs, kRootIno, "tmp") == ENOENT);
  }
  auto vol = fx.Open();
  CHECK(vol->free_blocks() == vol->total_blocks());
  auto orphan = vol->store().Get(keys::Orphan(ino));
  REQUIRE(orphan.ok());
  CHECK_FALSE(orphan->has_value());
}

TEST_CASE("vfs: an orphan record of a linked or missing inode is dropped, the file kept",
          "[fs]") {
  VolumeFixture fx;
  uint64_t ino = 0;
  const std::string data = DataPattern(7, 2 * kBs);
  {
    auto vfs = fx.OpenVfs();
    ino = vfs->Create(kRootIno, "linked", 0644, true, false, kRoot).value().ino;
    REQUIRE(VfsWriteAll(*vfs, ino, 0, data).ok());
    vfs->Release(ino);
    // Damage: orphan records of a linked inode and of one that never was.
    Transaction txn;
    txn.batch.Put(keys::Orphan(ino), "");
    txn.batch.Put(keys::Orphan(ino + 1000), "");
    REQUIRE(vfs->volume().Commit(std::move(txn), /*durable=*/true).ok());
  }
  {
    auto vfs = fx.OpenVfs();  // Init() must not free the linked file
    CHECK(MustRead(*vfs, ino, 0, data.size()) == data);
    CHECK(vfs->Lookup(kRootIno, "linked").ok());
  }
  auto vol = fx.Open();
  for (uint64_t orphan : {ino, ino + 1000}) {
    auto rec = vol->store().Get(keys::Orphan(orphan));
    REQUIRE(rec.ok());
    CHECK_FALSE(rec->has_value());
  }
}

// ---- a crash at every crash point ------------------------------------------------

namespace {

constexpr uint64_t kSweepA = 2 * kBs;
constexpr uint64_t kSweepB = 5000;
constexpr uint64_t kSweepD = 3 * kBs;

// "" when every byte of `got` is the file's own (pattern) byte or zero
// (never written back): never another file's data or garbage.
std::string OwnOrZero(const std::string& got, const std::string& own) {
  for (size_t i = 0; i < got.size(); ++i) {
    if (i >= own.size() || (got[i] != 0 && got[i] != own[i])) {
      return "foreign byte at offset " + std::to_string(i);
    }
  }
  return "";
}

// The guarantees after a crash with the workload's last completed stage
// `stage` (0: none): "" or the first violation.
std::string CheckSweepState(Vfs& vfs, uint64_t stage) {
  auto file = [&](const char* name) -> std::optional<std::pair<uint64_t, std::string>> {
    auto e = vfs.Lookup(kRootIno, name);
    if (!e.ok()) return std::nullopt;
    auto data = VfsRead(vfs, e->ino, 0, static_cast<size_t>(e->attr.st_size));
    return std::make_pair(static_cast<uint64_t>(e->attr.st_size), data.ok() ? *data : "<EIO>");
  };
  auto exact = [](const std::optional<std::pair<uint64_t, std::string>>& f, const std::string& want,
                  const char* name) -> std::string {
    if (!f) return std::string(name) + " is missing";
    if (f->second != want) return std::string(name) + " has wrong contents (size " + std::to_string(f->first) + ")";
    return "";
  };
  auto loose = [](const std::optional<std::pair<uint64_t, std::string>>& f, const std::string& own,
                  const char* name) -> std::string {
    if (!f) return "";
    std::string bad = OwnOrZero(f->second, own);
    return bad.empty() ? "" : std::string(name) + ": " + bad;
  };
  std::string bad;
  const std::string pa = DataPattern(51, kSweepA), pb = DataPattern(52, kSweepB),
                    pd = DataPattern(54, kSweepD);
  auto a = file("a"), b = file("b"), c = file("c"), d = file("d");
  // a: durable from stage 1 until its unlink is durable (stage 4); while the
  // unlink runs (after stage 3) it may be gone already, but if it is there,
  // its data is intact.
  if (stage >= 4) {
    if (a) return "a is back after its unlink was made durable";
  } else if (stage == 3) {
    if (a && !(bad = exact(a, pa, "a")).empty()) return bad;
  } else if (stage >= 1) {
    if (!(bad = exact(a, pa, "a")).empty()) return bad;
  } else if (!(bad = loose(a, pa, "a")).empty()) {
    return bad;
  }
  // b, renamed to c in stage 3.
  if (stage >= 3) {
    if (b) return "b is still there after the rename was made durable";
    if (!(bad = exact(c, pb, "c")).empty()) return bad;
  } else if (stage == 2) {
    if (b.has_value() == c.has_value()) return "the rename of b to c is not atomic";
    if (!(bad = exact(b ? b : c, pb, b ? "b" : "c")).empty()) return bad;
  } else {
    if (c) return "c exists before the rename";
    if (!(bad = loose(b, pb, "b")).empty()) return bad;
  }
  // d: whatever of it exists is its own data.
  if (stage >= 4) {
    if (!(bad = exact(d, pd, "d")).empty()) return bad;
  } else if (!(bad = loose(d, pd, "d")).empty()) {
    return bad;
  }
  return "";
}

}  // namespace

NSF_CRASH_WORKLOAD(Sweep, "vfs.sweep") {
  Vfs& vfs = child.OpenVfs();
  child.StartCrashPoints();
  // Each stage ends with what makes it durable; "stage" is reported right
  // after, so the test knows what a crash may no longer undo.
  Entry a = child.Must(vfs.Create(kRootIno, "a", 0644, true, false, kRoot), "create a");
  child.Check(VfsWriteAll(vfs, a.ino, 0, DataPattern(51, kSweepA)), "write a");
  child.Check(vfs.Fsync(a.ino, false), "fsync a");
  child.Report("stage", 1);
  Entry b = child.Must(vfs.Create(kRootIno, "b", 0644, true, false, kRoot), "create b");
  child.Check(VfsWriteAll(vfs, b.ino, 0, DataPattern(52, kSweepB)), "write b");
  child.Check(vfs.Fsync(b.ino, false), "fsync b");
  child.Report("stage", 2);
  child.Check(vfs.Rename(kRootIno, "b", kRootIno, "c", 0), "rename");
  child.Check(vfs.Fsyncdir(kRootIno), "fsyncdir");
  child.Report("stage", 3);
  // a's blocks are freed by an unlink that is not durable yet when d wants
  // blocks.
  vfs.Release(a.ino);
  vfs.Forget(a.ino, 1);
  child.Check(vfs.Unlink(kRootIno, "a"), "unlink a");
  Entry d = child.Must(vfs.Create(kRootIno, "d", 0644, true, false, kRoot), "create d");
  child.Check(VfsWriteAll(vfs, d.ino, 0, DataPattern(54, kSweepD)), "write d");
  child.Check(vfs.Fsync(d.ino, false), "fsync d");
  child.Report("stage", 4);
}

TEST_CASE("vfs crash: a crash at every crash point keeps the guarantees", "[fs][crash]") {
  // Count the crash points the workload reaches.
  uint64_t points = 0;
  {
    VolumeFixture fx;
    const std::string trace = fx.dir() + "/trace";
    CrashResult r = fx.RunAndCrash("vfs.sweep", {}, {{"NSF_CRASH_TRACE", trace}});
    CHECK(r.GetU64("stage") == 4);
    std::ifstream in(trace);
    std::string line;
    while (std::getline(in, line)) ++points;
  }
  INFO(points << " crash points");
  REQUIRE(points >= 10);

  for (uint64_t k = 1; k <= points; ++k) {
    VolumeFixture fx;
    CrashResult r = fx.RunInChild("vfs.sweep", {}, {{"NSF_CRASH_AFTER", std::to_string(k)}});
    const uint64_t stage = r.GetU64("stage");
    INFO("crash at point " << k << " of " << points << ", after stage " << stage << ": "
                           << r.Describe());
    REQUIRE(r.killed());
    CHECK_FALSE(r.finished());

    // Recovery works and leaves a consistent file system...
    {
      auto vol = fx.TryOpen();
      INFO("open: " << vol.status().ToString());
      REQUIRE(vol.ok());
      auto report = CheckVolume(**vol);
      REQUIRE(report.ok());
      std::ostringstream problems;
      for (const auto& p : report->problems) problems << p << "; ";
      CHECK(problems.str() == "");
    }
    // ...that keeps every promise made before the crash.
    auto vfs = OpenVfsAt(fx.image(), fx.volume_options());
    INFO("open vfs: " << vfs.status().ToString());
    REQUIRE(vfs.ok());
    CHECK(CheckSweepState(**vfs, stage) == "");
  }
}

}  // namespace nosyncfs::test
