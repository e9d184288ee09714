// Block sharing (fs/vfs_share.cc) without FUSE: copy_file_range shares
// whole unflagged blocks, every change to either side copies on write,
// freed blocks come back with their last reference, NF blocks are never
// shared, and the counts survive a remount and a crash.
#include <sys/xattr.h>

#include <catch2/catch.hpp>
#include <linux/falloc.h>

#include <fstream>
#include <random>
#include <string>

#include "journal/checker.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kBs = 4096;
constexpr uint64_t kMiB = uint64_t{1} << 20;
const Caller kRoot{};

uint64_t MustCreate(Vfs& vfs, const std::string& name) {
  auto e = vfs.Create(kRootIno, name, 0644, true, false, kRoot);
  REQUIRE(e.ok());
  return e->ino;
}

std::string Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

void MustWrite(Vfs& vfs, uint64_t ino, uint64_t off, const std::string& data) {
  Status st = VfsWriteAll(vfs, ino, off, data);
  INFO(st.ToString());
  REQUIRE(st.ok());
}

std::string MustRead(Vfs& vfs, uint64_t ino, uint64_t off, size_t n) {
  auto r = VfsRead(vfs, ino, off, n);
  REQUIRE(r.ok());
  return *r;
}

uint64_t Free(Vfs& vfs) {
  REQUIRE(vfs.volume().Sync().ok());  // frees count once durable
  auto s = vfs.Statfs();
  REQUIRE(s.ok());
  return s->f_bfree;
}

size_t MustCopy(Vfs& vfs, uint64_t in, uint64_t off_in, uint64_t out, uint64_t off_out,
                size_t len) {
  auto n = vfs.CopyFileRange(in, off_in, out, off_out, len, 0);
  INFO(n.status().ToString());
  REQUIRE(n.ok());
  return *n;
}

// A volume small enough to fill quickly.
VolumeFixture::Options SmallVolume() {
  VolumeFixture::Options o;
  o.image_bytes = 16 * kMiB;
  return o;
}

// Allocates every free block but `leave` to a file "filler"; returns it.
uint64_t FillDevice(Vfs& vfs, uint64_t leave) {
  uint64_t filler = MustCreate(vfs, "filler");
  auto s = vfs.Statfs();
  REQUIRE(s.ok());
  REQUIRE(vfs.Fallocate(filler, FALLOC_FL_KEEP_SIZE, 0, (s->f_bfree - leave) * kBs).ok());
  return filler;
}

void CheckClean(Vfs& vfs) {
  auto report = CheckVolume(vfs.volume());
  REQUIRE(report.ok());
  for (const auto& p : report->problems) FAIL_CHECK(p);
}

}  // namespace

TEST_CASE("share: an aligned copy between unflagged files shares whole blocks", "[fs][share]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  const std::string data = Pattern(2 * kMiB + 100, 1);
  uint64_t src = MustCreate(*vfs, "src"), dst = MustCreate(*vfs, "dst");
  MustWrite(*vfs, src, 0, data);
  uint64_t before = Free(*vfs);
  REQUIRE(MustCopy(*vfs, src, 0, dst, 0, data.size()) == data.size());
  // Only the partial last block is copied.
  CHECK(before - Free(*vfs) == 1);
  CHECK(MustRead(*vfs, dst, 0, data.size() + 10) == data);
  auto st = vfs->Getattr(dst);
  REQUIRE(st.ok());
  CHECK(static_cast<uint64_t>(st->st_size) == data.size());
  auto records = vfs->volume().RefcountRecords();
  REQUIRE(records.size() == 1);
  CHECK(records[0].run.len == 2 * kMiB / kBs);
  CHECK(records[0].refs == 2);
  CheckClean(*vfs);
}

TEST_CASE("share: a write to either side copies on write and leaves the other alone",
          "[fs][share]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  const std::string data = Pattern(kMiB, 2);
  uint64_t src = MustCreate(*vfs, "src"), dst = MustCreate(*vfs, "dst");
  MustWrite(*vfs, src, 0, data);
  MustCopy(*vfs, src, 0, dst, 0, data.size());
  uint64_t shared_free = Free(*vfs);

  std::string src_now = data, dst_now = data;
  MustWrite(*vfs, dst, 10, "destination");
  dst_now.replace(10, 11, "destination");
  MustWrite(*vfs, src, 5 * kBs + 7, "source");
  src_now.replace(5 * kBs + 7, 6, "source");
  CHECK(MustRead(*vfs, src, 0, kMiB) == src_now);
  CHECK(MustRead(*vfs, dst, 0, kMiB) == dst_now);
  // One block each was copied.
  CHECK(shared_free - Free(*vfs) == 2);
  // Writing again to a block that is private now copies nothing.
  MustWrite(*vfs, dst, 20, "again");
  dst_now.replace(20, 5, "again");
  CHECK(shared_free - Free(*vfs) == 2);
  CHECK(MustRead(*vfs, dst, 0, kMiB) == dst_now);
  CheckClean(*vfs);

  // The contents and the counts survive a remount.
  vfs.reset();
  vfs = fx.OpenVfs();
  auto se = vfs->Lookup(kRootIno, "src");
  auto de = vfs->Lookup(kRootIno, "dst");
  REQUIRE(se.ok());
  REQUIRE(de.ok());
  CHECK(MustRead(*vfs, se->ino, 0, kMiB) == src_now);
  CHECK(MustRead(*vfs, de->ino, 0, kMiB) == dst_now);
  MustWrite(*vfs, de->ino, 100 * kBs, "after remount");
  CHECK(MustRead(*vfs, se->ino, 100 * kBs, 13) == data.substr(100 * kBs, 13));
  CheckClean(*vfs);
}

TEST_CASE("share: punch, zero range, truncate and unlink of one side", "[fs][share]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  const std::string data = Pattern(kMiB, 3);
  uint64_t initial = Free(*vfs);
  uint64_t src = MustCreate(*vfs, "src"), dst = MustCreate(*vfs, "dst");
  MustWrite(*vfs, src, 0, data);
  MustCopy(*vfs, src, 0, dst, 0, data.size());
  std::string dst_now = data;

  SECTION("on the copy") {
    REQUIRE(vfs->Fallocate(dst, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 3 * kBs).ok());
    dst_now.replace(100, 3 * kBs, std::string(3 * kBs, '\0'));
    REQUIRE(vfs->Fallocate(dst, FALLOC_FL_ZERO_RANGE, 10 * kBs + 5, 2 * kBs).ok());
    dst_now.replace(10 * kBs + 5, 2 * kBs, std::string(2 * kBs, '\0'));
    SetattrRequest req;
    req.set_size = true;
    req.size = 20 * kBs + 30;
    REQUIRE(vfs->Setattr(dst, req).ok());
    dst_now.resize(req.size);
    // Growing again zeroes the old tail of the last block, of this file only.
    req.size = 21 * kBs;
    REQUIRE(vfs->Setattr(dst, req).ok());
    dst_now.resize(req.size, '\0');
    CHECK(MustRead(*vfs, dst, 0, kMiB) == dst_now);
    CHECK(MustRead(*vfs, src, 0, kMiB) == data);
  }
  SECTION("on the original") {
    REQUIRE(vfs->Fallocate(src, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 3 * kBs).ok());
    REQUIRE(vfs->Fallocate(src, FALLOC_FL_ZERO_RANGE, 10 * kBs + 5, 2 * kBs).ok());
    SetattrRequest req;
    req.set_size = true;
    req.size = 7;
    REQUIRE(vfs->Setattr(src, req).ok());
    req.size = kBs;
    REQUIRE(vfs->Setattr(src, req).ok());
    CHECK(MustRead(*vfs, dst, 0, kMiB) == data);
  }
  CheckClean(*vfs);
  // The blocks come back with the last reference, not before.
  REQUIRE(vfs->Unlink(kRootIno, "src").ok());
  vfs->Release(src);
  vfs->Forget(src, 1);
  CHECK(MustRead(*vfs, dst, 0, kMiB).size() == dst_now.size());
  CHECK(Free(*vfs) < initial);
  REQUIRE(vfs->Unlink(kRootIno, "dst").ok());
  vfs->Release(dst);
  vfs->Forget(dst, 1);
  CHECK(Free(*vfs) == initial);
  CHECK(vfs->volume().RefcountRecords().empty());
  CheckClean(*vfs);
}

TEST_CASE("share: setting user.nosync unshares, and NF blocks are never shared", "[fs][share]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  const std::string data = Pattern(64 * kBs, 4);
  uint64_t src = MustCreate(*vfs, "src"), dst = MustCreate(*vfs, "dst");
  MustWrite(*vfs, src, 0, data);
  MustCopy(*vfs, src, 0, dst, 0, data.size());
  REQUIRE(!vfs->volume().RefcountRecords().empty());

  SECTION("flagging the copy") {
    uint64_t before = Free(*vfs);
    REQUIRE(vfs->Setxattr(dst, "user.nosync", "0-" + std::to_string(64 * kBs), 0).ok());
    CHECK(before - Free(*vfs) == 64);  // private copies of every shared block
    CHECK(vfs->volume().RefcountRecords().empty());
    MustWrite(*vfs, dst, 0, "flagged");
    CHECK(MustRead(*vfs, src, 0, 64 * kBs) == data);
    CHECK(MustRead(*vfs, dst, 7, 64 * kBs - 7) == data.substr(7));
  }
  SECTION("an NF source is copied, not shared") {
    REQUIRE(vfs->Setxattr(src, "user.nosync", "0-" + std::to_string(64 * kBs), 0).ok());
    uint64_t other = MustCreate(*vfs, "other");
    uint64_t before = Free(*vfs);
    REQUIRE(MustCopy(*vfs, src, 0, other, 0, data.size()) == data.size());
    CHECK(before - Free(*vfs) == 64);
    CHECK(MustRead(*vfs, other, 0, 64 * kBs) == data);
    CHECK(vfs->volume().RefcountRecords().empty());
  }
  SECTION("an NF destination is written in place") {
    uint64_t nf = MustCreate(*vfs, "nf");
    REQUIRE(vfs->Fallocate(nf, 0, 0, 64 * kBs).ok());
    REQUIRE(vfs->Setxattr(nf, "user.nosync", "0-" + std::to_string(64 * kBs), 0).ok());
    auto records = vfs->volume().RefcountRecords();
    uint64_t before = Free(*vfs);
    REQUIRE(MustCopy(*vfs, src, 0, nf, 0, data.size()) == data.size());
    CHECK(before == Free(*vfs));
    CHECK(vfs->volume().RefcountRecords() == records);
    CHECK(MustRead(*vfs, nf, 0, 64 * kBs) == data);
  }
  CheckClean(*vfs);
}

TEST_CASE("share: misaligned, partial and same-file copies copy the right bytes",
          "[fs][share]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  std::mt19937_64 rng(TestSeed());
  INFO("seed " << TestSeed());
  uint64_t a = MustCreate(*vfs, "a"), b = MustCreate(*vfs, "b");
  std::string ma = Pattern(40 * kBs, 5), mb = Pattern(20 * kBs + 11, 6);
  MustWrite(*vfs, a, 0, ma);
  MustWrite(*vfs, b, 0, mb);
  // A hole in the source, to be copied as one.
  REQUIRE(vfs->Fallocate(a, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * kBs, 4 * kBs).ok());
  ma.replace(8 * kBs, 4 * kBs, std::string(4 * kBs, '\0'));
  for (int i = 0; i < 200; ++i) {
    bool same = rng() % 4 == 0;
    uint64_t in = a, out = same ? a : b;
    std::string& min = ma;
    std::string& mout = same ? ma : mb;
    uint64_t off_in = rng() % ma.size();
    uint64_t len = 1 + rng() % (16 * kBs);
    uint64_t off_out = rng() % 2 ? off_in % kBs + (rng() % 30) * kBs : rng() % (50 * kBs);
    if (same && off_in < off_out + len && off_out < off_in + len) continue;
    INFO("copy " << len << " at " << off_in << " to " << off_out << (same ? " (same file)" : ""));
    size_t n = MustCopy(*vfs, in, off_in, out, off_out, len);
    size_t expect = std::min<uint64_t>(len, min.size() - off_in);
    REQUIRE(n == expect);
    std::string piece = min.substr(off_in, n);
    if (mout.size() < off_out + n) mout.resize(off_out + n, '\0');
    mout.replace(off_out, n, piece);
    // Writes now and then, so that copies on write happen too.
    if (rng() % 3 == 0) {
      uint64_t at = rng() % mb.size();
      MustWrite(*vfs, b, at, "w");
      mb[at] = 'w';
    }
    REQUIRE(MustRead(*vfs, a, 0, ma.size() + 1) == ma);
    REQUIRE(MustRead(*vfs, b, 0, mb.size() + 1) == mb);
  }
  CheckClean(*vfs);
}

TEST_CASE("share: a copy fails whole with ENOSPC and leaves both files as they were",
          "[fs][share]") {
  VolumeFixture fx(SmallVolume());
  auto vfs = fx.OpenVfs();
  uint64_t src = MustCreate(*vfs, "src"), dst = MustCreate(*vfs, "dst");
  const std::string data = Pattern(16 * kBs, 7);
  MustWrite(*vfs, src, 0, data);
  REQUIRE(vfs->Setxattr(src, "user.nosync", "0-" + std::to_string(16 * kBs), 0).ok());
  // Too little space left for a copy of the NF source.
  FillDevice(*vfs, 4);
  auto n = vfs->CopyFileRange(src, 0, dst, 0, data.size(), 0);
  REQUIRE(!n.ok());
  CHECK(n.status().code() == ENOSPC);
  CHECK(MustRead(*vfs, dst, 0, 10).empty());
  CHECK(MustRead(*vfs, src, 0, data.size()) == data);
  CheckClean(*vfs);
}

TEST_CASE("share: setting user.nosync over shared blocks with no space left changes nothing",
          "[fs][share]") {
  VolumeFixture fx(SmallVolume());
  auto vfs = fx.OpenVfs();
  uint64_t src = MustCreate(*vfs, "src"), dst = MustCreate(*vfs, "dst");
  const std::string data = Pattern(32 * kBs, 8);
  MustWrite(*vfs, src, 0, data);
  MustCopy(*vfs, src, 0, dst, 0, data.size());
  uint64_t filler = FillDevice(*vfs, 8);
  Status st = vfs->Setxattr(dst, "user.nosync", "0-" + std::to_string(32 * kBs), 0);
  CHECK(st.code() == ENOSPC);
  CHECK(vfs->Getxattr(dst, "user.nosync").status().code() == ENODATA);
  CHECK(MustRead(*vfs, dst, 0, data.size()) == data);
  CHECK(MustRead(*vfs, src, 0, data.size()) == data);
  // A write to a shared block needs a block of its own, too.
  auto s = vfs->Statfs();
  REQUIRE(s.ok());
  auto fst = vfs->Getattr(filler);
  REQUIRE(fst.ok());
  uint64_t used = static_cast<uint64_t>(fst->st_blocks) / (kBs / 512);
  // The rest of the device, after the filler's blocks.
  REQUIRE(vfs->Fallocate(filler, FALLOC_FL_KEEP_SIZE, 0, (used + s->f_bfree) * kBs).ok());
  CHECK(VfsWriteAll(*vfs, dst, 0, "x").code() == ENOSPC);
  CHECK(MustRead(*vfs, src, 0, data.size()) == data);
  CheckClean(*vfs);
}

// f and g share f's blocks; g is then written (copy on write, not made
// durable), and f written in place and fsynced, with a crash at any point of
// that. f's new bytes must never show in g: the block g shared is f's alone
// only once g's unsharing is durable.
NSF_CRASH_WORKLOAD(ShareSettle, "vfs.share_settle") {
  Vfs& vfs = child.OpenVfs();
  uint64_t f = child.Must(vfs.Create(kRootIno, "f", 0644, true, false, kRoot), "create f").ino;
  uint64_t g = child.Must(vfs.Create(kRootIno, "g", 0644, true, false, kRoot), "create g").ino;
  child.Check(VfsWriteAll(vfs, f, 0, DataPattern(1, 4 * kBs)), "write f");
  child.Check(vfs.Fsync(f, false), "fsync f");
  child.Expect(child.Must(vfs.CopyFileRange(f, 0, g, 0, 4 * kBs, 0), "copy") == 4 * kBs, "copy");
  child.Check(vfs.Fsync(g, false), "fsync g");
  child.StartCrashPoints();
  child.Check(VfsWriteAll(vfs, g, kBs, DataPattern(2, 10)), "write g");
  child.Check(VfsWriteAll(vfs, f, 0, DataPattern(3, 4 * kBs)), "write f again");
  child.Check(vfs.Fsync(f, false), "fsync f again");
}

TEST_CASE("share crash: a block that was shared changes in place only once it is private",
          "[fs][share][crash]") {
  uint64_t points = 0;
  {
    VolumeFixture fx;
    const std::string trace = fx.dir() + "/trace";
    fx.RunAndCrash("vfs.share_settle", {}, {{"NSF_CRASH_TRACE", trace}});
    std::ifstream in(trace);
    for (std::string line; std::getline(in, line);) ++points;
  }
  REQUIRE(points >= 3);
  const std::string copied = DataPattern(1, 4 * kBs);
  const std::string g_write = DataPattern(2, 10);
  for (uint64_t k = 1; k <= points + 1; ++k) {
    VolumeFixture fx;
    CrashResult r = fx.RunInChild("vfs.share_settle", {},
                                  {{"NSF_CRASH_AFTER", std::to_string(k)}});
    INFO("crash at point " << k << " of " << points << ": " << r.Describe());
    REQUIRE(r.killed());
    auto vfs = fx.OpenVfs();
    auto g = vfs->Lookup(kRootIno, "g");
    REQUIRE(g.ok());
    std::string got = MustRead(*vfs, g->ino, 0, 4 * kBs);
    REQUIRE(got.size() == 4 * kBs);
    for (size_t i = 0; i < got.size(); ++i) {
      bool in_write = i >= kBs && i < kBs + g_write.size();
      if (got[i] != copied[i] && !(in_write && got[i] == g_write[i - kBs])) {
        FAIL("g's byte " << i << " is neither the copy's nor g's own write");
      }
    }
    CheckClean(*vfs);
  }
}

}  // namespace nosyncfs::test
