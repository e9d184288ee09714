// Space accounting on a real mount: statfs geometry and exact free counts,
// ENOSPC on a full device with nothing broken and space back after delete,
// and newly allocated blocks that never show another file's old data.

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

uint64_t FreeBlocks(const TestVolume& vol) { return MustStatvfs(vol.Path("")).f_bfree; }

// Commits everything, so that freed blocks become reusable.
void SyncFs(const TestVolume& vol) { SyncWholeFs(vol.Path("")); }

// Freed space reaches statfs when the daemon has processed release/forget,
// which the kernel sends asynchronously after close/unlink.
void ExpectFreeBlocks(const TestVolume& vol, uint64_t expected) {
  bool ok = WaitUntil([&] { return FreeBlocks(vol) == expected; });
  INFO("f_bfree " << FreeBlocks(vol) << ", expected " << expected);
  CHECK(ok);
}

// Writes `seed`'s pattern with write(2) until ENOSPC; returns bytes written.
uint64_t WriteUntilFull(int fd, uint64_t seed, uint64_t limit) {
  uint64_t total = 0;
  for (;;) {
    std::string chunk = Pattern(seed, 256 * 1024, total);
    ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      REQUIRE(Errno{errno} == ENOSPC);
      return total;
    }
    REQUIRE(n > 0);
    total += n;
    // A file system that never says ENOSPC would loop forever.
    REQUIRE(total <= limit);
  }
}

TEST_CASE("statfs reports the geometry and exact free blocks", "[posix][space]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();

  struct statvfs sv = MustStatvfs(vol.Path(""));
  CHECK(sv.f_bsize == bs);
  CHECK(sv.f_frsize == bs);
  CHECK(sv.f_blocks * bs <= 64 * kMiB);
  CHECK(sv.f_blocks * bs >= 32 * kMiB);  // most of the device holds data
  CHECK(sv.f_bfree <= sv.f_blocks);
  CHECK(sv.f_bavail <= sv.f_bfree);
  CHECK(sv.f_bfree * bs >= 32 * kMiB);  // an empty file system is mostly free
  CHECK(sv.f_namemax == 255);
  const uint64_t free0 = sv.f_bfree;

  // Ten full blocks.
  Fd a = MustOpen(vol.Path("a"), O_CREAT | O_RDWR, 0644);
  MustPwrite(a.get(), Pattern(1, 10 * bs, 0), 0);
  REQUIRE(ErrnoOf(::fsync(a.get())) == 0);
  CHECK(FreeBlocks(vol) == free0 - 10);
  CHECK(MustFstat(a.get()).st_blocks * 512 == static_cast<blkcnt_t>(10 * bs));

  // One byte far out: one block.
  Fd b = MustOpen(vol.Path("b"), O_CREAT | O_RDWR, 0644);
  MustPwrite(b.get(), "x", kMiB);
  REQUIRE(ErrnoOf(::fsync(b.get())) == 0);
  CHECK(FreeBlocks(vol) == free0 - 11);

  // Overwriting allocated data takes no more space; a partial block appended
  // takes one.
  MustPwrite(a.get(), Pattern(2, 5 * bs, 3), 3);
  MustPwrite(a.get(), "tail", 10 * bs);
  REQUIRE(ErrnoOf(::fsync(a.get())) == 0);
  CHECK(FreeBlocks(vol) == free0 - 12);

  // Files and directories without data take no blocks.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  CHECK(OpenErrno(vol.Path("d/empty"), O_CREAT | O_WRONLY) == 0);
  REQUIRE(ErrnoOf(::symlink("a", vol.Path("sym").c_str())) == 0);
  CHECK(FreeBlocks(vol) == free0 - 12);

  // Truncate gives back whole blocks past the new size.
  REQUIRE(ErrnoOf(::ftruncate(a.get(), 4 * bs + 1)) == 0);
  CHECK(MustFstat(a.get()).st_blocks * 512 == static_cast<blkcnt_t>(5 * bs));
  ExpectFreeBlocks(vol, free0 - 6);

  // Unlink gives back the rest once the file is closed.
  a.reset();
  b.reset();
  REQUIRE(ErrnoOf(::unlink(vol.Path("a").c_str())) == 0);
  ExpectFreeBlocks(vol, free0 - 1);
  REQUIRE(ErrnoOf(::unlink(vol.Path("b").c_str())) == 0);
  ExpectFreeBlocks(vol, free0);
  CHECK(MustStatvfs(vol.Path("")).f_blocks == sv.f_blocks);
}

TEST_CASE("ENOSPC when the device is full and space comes back after delete", "[posix][space]") {
  TestVolume::Options opt;
  opt.image_bytes = 24 * kMiB;
  TestVolume vol(opt);
  vol.Mount();
  const uint64_t bs = vol.block_size();

  std::string keep = Pattern(30, 3 * bs + 17, 0);
  WriteFile(vol.Path("keep"), keep);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("dir").c_str(), 0755)) == 0);
  SyncFs(vol);
  struct statvfs sv0 = MustStatvfs(vol.Path(""));
  REQUIRE(sv0.f_bavail > 0);

  Fd fill = MustOpen(vol.Path("fill"), O_CREAT | O_RDWR, 0644);
  uint64_t total = WriteUntilFull(fill.get(), 31, 24 * kMiB);
  uint64_t blocks = (total + bs - 1) / bs;
  INFO("wrote " << total << " bytes; f_bavail was " << sv0.f_bavail << ", f_bfree "
                << sv0.f_bfree);
  // statfs told the truth about what fits.
  CHECK(blocks >= sv0.f_bavail);
  CHECK(blocks <= sv0.f_bfree);
  CHECK(MustStatvfs(vol.Path("")).f_bavail == 0);
  CHECK(MustFstat(fill.get()).st_size == static_cast<off_t>(total));
  CHECK(MustFstat(fill.get()).st_blocks * 512 == static_cast<blkcnt_t>(blocks * bs));

  // Still full: another write fails the same way, and fallocate too.
  CHECK(ErrnoOf(::write(fill.get(), "more", 4)) == ENOSPC);
  {
    Fd other = MustOpen(vol.Path("other"), O_CREAT | O_RDWR, 0644);
    CHECK(ErrnoOf(::pwrite(other.get(), "x", 1, 0)) == ENOSPC);
    CHECK(ErrnoOf(::fallocate(other.get(), 0, 0, bs)) == ENOSPC);
    CHECK(MustFstat(other.get()).st_size == 0);
  }

  // Nothing else broke: everything written is intact and syncs work.
  CHECK(ErrnoOf(::fsync(fill.get())) == 0);
  CHECK(FirstMismatch(MustPread(fill.get(), total + 100, 0), Pattern(31, total, 0)) == "");
  CHECK(FirstMismatch(ReadFile(vol.Path("keep")), keep) == "");
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"dir", "fill", "keep", "other"});
  // Namespace operations need no data blocks and still work.
  CHECK(ErrnoOf(::rename(vol.Path("keep").c_str(), vol.Path("dir/keep").c_str())) == 0);
  CHECK(FirstMismatch(ReadFile(vol.Path("dir/keep")), keep) == "");

  // Delete and the space is back.
  fill.reset();
  REQUIRE(ErrnoOf(::unlink(vol.Path("fill").c_str())) == 0);
  REQUIRE(ErrnoOf(::unlink(vol.Path("other").c_str())) == 0);
  SyncFs(vol);
  ExpectFreeBlocks(vol, sv0.f_bfree);

  // And it can be filled again, to the same amount.
  Fd again = MustOpen(vol.Path("again"), O_CREAT | O_RDWR, 0644);
  uint64_t total2 = WriteUntilFull(again.get(), 32, 24 * kMiB);
  CHECK((total2 + bs - 1) / bs == blocks);
  CHECK(FirstMismatch(MustPread(again.get(), total2, 0), Pattern(32, total2, 0)) == "");
  CHECK(FirstMismatch(ReadFile(vol.Path("dir/keep")), keep) == "");
}

TEST_CASE("newly allocated blocks never show old data", "[posix][space]") {
  TestVolume::Options opt;
  opt.image_bytes = 24 * kMiB;
  TestVolume vol(opt);
  vol.Mount();
  const uint64_t bs = vol.block_size();
  const uint64_t free0 = FreeBlocks(vol);
  const uint64_t avail0 = MustStatvfs(vol.Path("")).f_bavail;

  // Cover (nearly) every data block with non-zero bytes, then free them.
  {
    Fd old = MustOpen(vol.Path("old"), O_CREAT | O_RDWR, 0644);
    WriteUntilFull(old.get(), 40, 24 * kMiB);
    REQUIRE(ErrnoOf(::fsync(old.get())) == 0);
  }
  REQUIRE(ErrnoOf(::unlink(vol.Path("old").c_str())) == 0);
  SyncFs(vol);
  ExpectFreeBlocks(vol, free0);

  // Preallocated blocks read zeros.
  {
    Fd pre = MustOpen(vol.Path("pre"), O_CREAT | O_RDWR, 0644);
    REQUIRE(ErrnoOf(::fallocate(pre.get(), 0, 0, 4 * kMiB)) == 0);
    CHECK(MustPread(pre.get(), 4 * kMiB, 0) == std::string(4 * kMiB, '\0'));
    REQUIRE(ErrnoOf(::fallocate(pre.get(), FALLOC_FL_KEEP_SIZE, 4 * kMiB, 2 * kMiB)) == 0);
    REQUIRE(ErrnoOf(::ftruncate(pre.get(), 6 * kMiB)) == 0);
    CHECK(MustPread(pre.get(), 2 * kMiB, 4 * kMiB) == std::string(2 * kMiB, '\0'));
  }
  REQUIRE(ErrnoOf(::unlink(vol.Path("pre").c_str())) == 0);
  SyncFs(vol);
  ExpectFreeBlocks(vol, free0);

  // One byte in every block until the device is full: the rest of each
  // freshly allocated block must read zeros, never the old pattern.
  Fd fresh = MustOpen(vol.Path("fresh"), O_CREAT | O_RDWR, 0644);
  uint64_t nblocks = 0;
  for (;; ++nblocks) {
    REQUIRE(nblocks <= 24 * kMiB / bs);
    char c = PatternByte(41, nblocks);
    ssize_t n = ::pwrite(fresh.get(), &c, 1, nblocks * bs + nblocks % bs);
    if (n < 0) {
      REQUIRE(Errno{errno} == ENOSPC);
      break;
    }
    REQUIRE(n == 1);
  }
  INFO(nblocks << " blocks written, " << free0 << " were free");
  CHECK(nblocks >= avail0);
  CHECK(nblocks <= free0);
  std::string got = MustPread(fresh.get(), nblocks * bs, 0);
  uint64_t bad_blocks = 0;
  uint64_t first_bad = ~0ull;
  for (uint64_t i = 0; i < nblocks; ++i) {
    std::string expected(bs, '\0');
    expected[i % bs] = PatternByte(41, i);
    // The last block may end at the written byte (EOF).
    std::string_view actual = std::string_view(got).substr(i * bs, bs);
    if (actual != std::string_view(expected).substr(0, actual.size())) {
      if (bad_blocks++ == 0) first_bad = i;
    }
  }
  INFO("first block with foreign bytes: " << first_bad);
  CHECK(bad_blocks == 0);
}

}  // namespace
}  // namespace nosyncfs::test

namespace nosyncfs::test {

TEST_CASE("statfs counts inodes exactly, across remount", "[posix][space]") {
  TestVolume vol;
  vol.Mount();
  auto ffree = [&] { return MustStatvfs(vol.mountpoint()).f_ffree; };
  uint64_t start = ffree();
  WriteFile(vol.Path("a"), "a");
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::symlink("a", vol.Path("s").c_str())) == 0);
  CHECK(ffree() == start - 3);
  // A hard link is not a new inode.
  REQUIRE(ErrnoOf(::link(vol.Path("a").c_str(), vol.Path("b").c_str())) == 0);
  CHECK(ffree() == start - 3);
  REQUIRE(ErrnoOf(::unlink(vol.Path("s").c_str())) == 0);
  CHECK(WaitUntil([&] { return ffree() == start - 2; }));
  vol.Remount();
  CHECK(ffree() == start - 2);
}

}  // namespace nosyncfs::test

namespace nosyncfs::test {

TEST_CASE("after a crash, reused blocks never show the previous file's data",
          "[posix][space][persistence]") {
  TestVolume vol;
  vol.Mount();
  // A's blocks hold a recognizable pattern on media (written over
  // preallocated blocks and fsynced, and checked after a crash, so it is
  // there whatever the write path does with new blocks); then A is
  // deleted, durably, so its blocks are free for reuse.
  const std::string old_data = Pattern(81, 1 << 20);
  {
    Fd a = MustOpen(vol.Path("a"), O_CREAT | O_WRONLY);
    REQUIRE(::fallocate(a.get(), 0, 0, static_cast<off_t>(old_data.size())) == 0);
    MustPwrite(a.get(), old_data, 0);
    REQUIRE(fsync(a.get()) == 0);
  }
  vol.KillDaemon();
  vol.Mount();
  REQUIRE(FirstMismatch(ReadFile(vol.Path("a")), old_data) == "");
  REQUIRE(ErrnoOf(::unlink(vol.Path("a").c_str())) == 0);
  SyncWholeFs(vol.mountpoint());
  // B reuses them. B's data is never fsynced, but its mapping and size
  // become durable through C's fsync (the log is one sequence).
  {
    Fd b = MustOpen(vol.Path("b"), O_CREAT | O_WRONLY);
    MustPwrite(b.get(), std::string(256 << 10, 'B'), 0);
    Fd c = MustOpen(vol.Path("c"), O_CREAT | O_WRONLY);
    MustPwrite(c.get(), "c", 0);
    REQUIRE(fsync(c.get()) == 0);
  }
  vol.KillDaemon();
  ExpectFsckClean(vol);
  vol.Mount();
  std::string got = ReadFile(vol.Path("b"));
  REQUIRE(got.size() == size_t{256} << 10);
  // Each byte is B's (if it reached media) or zero; never A's.
  size_t foreign = 0;
  for (char ch : got) foreign += (ch != 'B' && ch != '\0');
  CHECK(foreign == 0);
}

}  // namespace nosyncfs::test
