// fallocate COLLAPSE_RANGE, INSERT_RANGE and UNSHARE_RANGE in the Vfs
// (reached through NSF_IOC_FALLOCATE, since the kernel's FUSE client does
// not send them): bytes move by whole blocks, ext4's errno rules, NF blocks
// never move.
#include <catch2/catch.hpp>
#include <linux/falloc.h>

#include <string>

#include "journal/checker.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kBs = 4096;
const Caller kRoot{};

struct ShiftFixture {
  VolumeFixture fx;
  std::unique_ptr<Vfs> vfs = fx.OpenVfs();
  uint64_t ino = 0;
  std::string model = DataPattern(9, 10 * kBs + 123);

  ShiftFixture() {
    auto e = vfs->Create(kRootIno, "f", 0644, true, false, kRoot);
    REQUIRE(e.ok());
    ino = e->ino;
    REQUIRE(VfsWriteAll(*vfs, ino, 0, model).ok());
  }
  int Err(int mode, uint64_t off, uint64_t len) {
    return vfs->Fallocate(ino, mode, off, len).code();
  }
  std::string Contents() {
    auto r = VfsRead(*vfs, ino, 0, model.size() + 10 * kBs);
    REQUIRE(r.ok());
    return *r;
  }
  void CheckClean() {
    auto report = CheckVolume(vfs->volume());
    REQUIRE(report.ok());
    for (const auto& p : report->problems) FAIL_CHECK(p);
  }
};

}  // namespace

TEST_CASE("shift range: collapse removes whole blocks and moves the rest down", "[fs][shift]") {
  ShiftFixture f;
  REQUIRE(f.Err(FALLOC_FL_COLLAPSE_RANGE, 2 * kBs, 3 * kBs) == 0);
  f.model.erase(2 * kBs, 3 * kBs);
  CHECK(f.Contents() == f.model);
  // Then insert a hole where the blocks were: zeros, and the rest moves up.
  REQUIRE(f.Err(FALLOC_FL_INSERT_RANGE, 2 * kBs, 2 * kBs) == 0);
  f.model.insert(2 * kBs, std::string(2 * kBs, '\0'));
  CHECK(f.Contents() == f.model);
  auto st = f.vfs->Getattr(f.ino);
  REQUIRE(st.ok());
  CHECK(static_cast<uint64_t>(st->st_size) == f.model.size());
  // The inserted range is a hole: no blocks for it.
  CHECK(static_cast<uint64_t>(st->st_blocks) == (f.model.size() / kBs + 1 - 2) * (kBs / 512));
  f.CheckClean();
  // It all survives a remount.
  f.vfs.reset();
  f.vfs = f.fx.OpenVfs();
  CHECK(f.Contents() == f.model);
}

TEST_CASE("shift range: ext4's errors", "[fs][shift]") {
  ShiftFixture f;
  const uint64_t size = f.model.size();
  // Unaligned offset or length.
  CHECK(f.Err(FALLOC_FL_COLLAPSE_RANGE, 100, kBs) == EINVAL);
  CHECK(f.Err(FALLOC_FL_COLLAPSE_RANGE, kBs, 100) == EINVAL);
  CHECK(f.Err(FALLOC_FL_INSERT_RANGE, 100, kBs) == EINVAL);
  // Reaching EOF (collapse), starting at or past it (insert).
  CHECK(f.Err(FALLOC_FL_COLLAPSE_RANGE, 8 * kBs, 3 * kBs) == EINVAL);
  CHECK(f.Err(FALLOC_FL_INSERT_RANGE, 11 * kBs, kBs) == EINVAL);
  // Combined with other flags.
  CHECK(f.Err(FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, kBs) == EOPNOTSUPP);
  CHECK(f.Err(FALLOC_FL_INSERT_RANGE | FALLOC_FL_KEEP_SIZE, 0, kBs) == EOPNOTSUPP);
  // Too large.
  CHECK(f.Err(FALLOC_FL_INSERT_RANGE, 0, (INT64_MAX / kBs) * kBs) == EFBIG);
  // Nothing changed.
  CHECK(f.Contents() == f.model);
  // Over NF blocks: refused, they are sealed.
  REQUIRE(f.vfs->Setxattr(f.ino, "user.nosync", "8K-12K", 0).ok());
  CHECK(f.Err(FALLOC_FL_COLLAPSE_RANGE, 0, kBs) == EPERM);
  CHECK(f.Err(FALLOC_FL_INSERT_RANGE, kBs, kBs) == EPERM);
  // ... but not when they stay where they are.
  REQUIRE(f.Err(FALLOC_FL_COLLAPSE_RANGE, 4 * kBs, kBs) == 0);
  f.model.erase(4 * kBs, kBs);
  CHECK(f.Contents() == f.model);
  CHECK(static_cast<uint64_t>(f.vfs->Getattr(f.ino)->st_size) == size - kBs);
  f.CheckClean();
}

TEST_CASE("shift range: collapse and insert over shared blocks, unshare range", "[fs][shift]") {
  ShiftFixture f;
  auto g = f.vfs->Create(kRootIno, "g", 0644, true, false, kRoot);
  REQUIRE(g.ok());
  REQUIRE(f.vfs->CopyFileRange(f.ino, 0, g->ino, 0, f.model.size(), 0).ok());
  REQUIRE(f.Err(FALLOC_FL_COLLAPSE_RANGE, 0, 2 * kBs) == 0);
  REQUIRE(f.Err(FALLOC_FL_INSERT_RANGE, kBs, kBs) == 0);
  std::string fm = f.model;
  fm.erase(0, 2 * kBs);
  fm.insert(kBs, std::string(kBs, '\0'));
  CHECK(f.Contents() == fm);
  auto gr = VfsRead(*f.vfs, g->ino, 0, f.model.size() + 1);
  REQUIRE(gr.ok());
  CHECK(*gr == f.model);
  // Unshare: g's blocks become its own; nothing else changes.
  auto before = f.vfs->Statfs();
  REQUIRE(f.vfs->Fallocate(g->ino, FALLOC_FL_UNSHARE_RANGE, 0, f.model.size()).ok());
  auto after = f.vfs->Statfs();
  CHECK(before->f_bfree - after->f_bfree == 8);  // the blocks f still shared with g
  CHECK(f.vfs->volume().RefcountRecords().empty());
  gr = VfsRead(*f.vfs, g->ino, 0, f.model.size() + 1);
  CHECK(*gr == f.model);
  f.CheckClean();
}

}  // namespace nosyncfs::test
