// The data path on a real mount: read/write (large, unaligned, sparse),
// truncate, fsync/fdatasync, fallocate, lseek SEEK_DATA/SEEK_HOLE,
// copy_file_range, mmap, and files that are unlinked while open.

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

uint64_t FreeBlocks(const TestVolume& vol) { return MustStatvfs(vol.Path("")).f_bfree; }

TEST_CASE("large and unaligned writes read back exactly", "[posix][data]") {
  TestVolume vol;
  vol.Mount();

  Fd fd = MustOpen(vol.Path("big"), O_CREAT | O_RDWR, 0644);
  // Odd chunk sizes at an odd starting offset, so chunks straddle block and
  // FUSE request boundaries everywhere.
  const size_t sizes[] = {1, 17, 4095, 4097, 70001, kMiB + 3, 333, 2 * kMiB - 1, 12345, 3 * kMiB};
  const uint64_t start = 123;
  uint64_t off = start;
  for (size_t n : sizes) {
    std::string chunk = Pattern(1, n, off);
    ssize_t w = ::pwrite(fd.get(), chunk.data(), chunk.size(), off);
    INFO("pwrite " << n << " at " << off);
    REQUIRE(w == static_cast<ssize_t>(n));
    off += n;
  }
  const uint64_t end = off;
  CHECK(MustFstat(fd.get()).st_size == static_cast<off_t>(end));

  std::string expected = std::string(start, '\0') + Pattern(1, end - start, start);
  CHECK(FirstMismatch(MustPread(fd.get(), end + 100, 0), expected) == "");

  // Read back through a fresh descriptor in odd-sized pieces.
  {
    Fd rd = MustOpen(vol.Path("big"), O_RDONLY);
    std::string got;
    std::string buf(77777, '\0');
    for (;;) {
      ssize_t n = ::read(rd.get(), buf.data(), buf.size());
      REQUIRE(ErrnoOf(n) == 0);
      if (n == 0) break;
      got.append(buf.data(), n);
    }
    CHECK(FirstMismatch(got, expected) == "");
  }

  // Overwrite a range in the middle that straddles several blocks.
  std::string patch = Pattern(2, 10000, 4000);
  MustPwrite(fd.get(), patch, 4000);
  expected.replace(4000, patch.size(), patch);
  CHECK(FirstMismatch(MustPread(fd.get(), end, 0), expected) == "");
  CHECK(MustFstat(fd.get()).st_size == static_cast<off_t>(end));

  // One big write call (split by FUSE into several requests).
  std::string big = Pattern(3, 6 * kMiB + 5, 0);
  MustPwrite(fd.get(), big, 0);
  expected.replace(0, big.size(), big);
  CHECK(FirstMismatch(ReadFile(vol.Path("big")), expected) == "");

  // Short reads only at EOF.
  CHECK(MustPread(fd.get(), 100, end - 10).size() == 10);
  CHECK(MustPread(fd.get(), 100, end).empty());
  CHECK(MustPread(fd.get(), 100, end + kMiB).empty());
}

TEST_CASE("sequential writes through the file offset", "[posix][data]") {
  TestVolume vol;
  vol.Mount();
  Fd fd = MustOpen(vol.Path("seq"), O_CREAT | O_RDWR | O_TRUNC, 0644);
  std::string all;
  for (int i = 0; i < 200; ++i) {
    std::string piece = Pattern(7, 1000 + i, all.size());
    REQUIRE(::write(fd.get(), piece.data(), piece.size()) == static_cast<ssize_t>(piece.size()));
    all += piece;
  }
  CHECK(::lseek(fd.get(), 0, SEEK_CUR) == static_cast<off_t>(all.size()));
  CHECK(::lseek(fd.get(), 0, SEEK_END) == static_cast<off_t>(all.size()));
  REQUIRE(::lseek(fd.get(), 0, SEEK_SET) == 0);
  std::string got(all.size(), '\0');
  size_t done = 0;
  while (done < got.size()) {
    ssize_t n = ::read(fd.get(), got.data() + done, got.size() - done);
    REQUIRE(n > 0);
    done += n;
  }
  CHECK(FirstMismatch(got, all) == "");
}

TEST_CASE("sparse files read zeros in holes", "[posix][data]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();

  Fd fd = MustOpen(vol.Path("sparse"), O_CREAT | O_RDWR, 0644);
  const uint64_t far = 10 * kMiB + 7;
  std::string tail = Pattern(4, 100, far);
  MustPwrite(fd.get(), tail, far);
  struct stat st = MustFstat(fd.get());
  CHECK(st.st_size == static_cast<off_t>(far + 100));
  // Only the one block that holds the data is allocated.
  CHECK(st.st_blocks * 512 == static_cast<blkcnt_t>(bs));

  std::string expected = std::string(far, '\0') + tail;
  CHECK(FirstMismatch(MustPread(fd.get(), far + 1000, 0), expected) == "");

  // Fill a piece in the middle; the holes around it still read zeros.
  std::string mid = Pattern(5, 3 * bs, 5 * bs + 1);
  MustPwrite(fd.get(), mid, 5 * bs + 1);
  expected.replace(5 * bs + 1, mid.size(), mid);
  CHECK(FirstMismatch(ReadFile(vol.Path("sparse")), expected) == "");
  // The middle write touched blocks 5..8.
  CHECK(MustFstat(fd.get()).st_blocks * 512 == static_cast<blkcnt_t>(5 * bs));

  // Far offsets (1 TiB) work the same way.
  Fd huge = MustOpen(vol.Path("huge"), O_CREAT | O_RDWR, 0644);
  const uint64_t tib = 1ull << 40;
  MustPwrite(huge.get(), "far away", tib + 3);
  CHECK(MustFstat(huge.get()).st_size == static_cast<off_t>(tib + 11));
  CHECK(MustFstat(huge.get()).st_blocks * 512 == static_cast<blkcnt_t>(bs));
  CHECK(MustPread(huge.get(), 20, tib) == std::string(3, '\0') + "far away");
  CHECK(MustPread(huge.get(), 4096, tib / 2) == std::string(4096, '\0'));

  // A file made sparse with ftruncate alone has no blocks and reads zeros.
  Fd empty = MustOpen(vol.Path("holes-only"), O_CREAT | O_RDWR, 0644);
  REQUIRE(ErrnoOf(::ftruncate(empty.get(), 3 * kMiB)) == 0);
  CHECK(MustFstat(empty.get()).st_blocks == 0);
  CHECK(MustPread(empty.get(), 3 * kMiB, 0) == std::string(3 * kMiB, '\0'));
}

TEST_CASE("truncate up reads zeros and truncate down drops data", "[posix][data]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();

  const uint64_t len = 3 * bs + 100;
  std::string data = Pattern(6, len, 0);
  WriteFile(vol.Path("t"), data);
  Fd fd = MustOpen(vol.Path("t"), O_RDWR);
  CHECK(MustFstat(fd.get()).st_blocks * 512 == static_cast<blkcnt_t>(4 * bs));

  // Down into the middle of a block.
  const uint64_t cut = bs + bs / 2;
  REQUIRE(ErrnoOf(::ftruncate(fd.get(), cut)) == 0);
  CHECK(MustFstat(fd.get()).st_size == static_cast<off_t>(cut));
  CHECK(MustFstat(fd.get()).st_blocks * 512 == static_cast<blkcnt_t>(2 * bs));
  CHECK(FirstMismatch(MustPread(fd.get(), len, 0), data.substr(0, cut)) == "");

  // Back up: everything past the cut reads zeros, including the rest of the
  // block that was cut in the middle (its old bytes must not come back).
  REQUIRE(ErrnoOf(::truncate(vol.Path("t").c_str(), 4 * bs)) == 0);
  CHECK(MustStat(vol.Path("t")).st_size == static_cast<off_t>(4 * bs));
  std::string expected = data.substr(0, cut) + std::string(4 * bs - cut, '\0');
  CHECK(FirstMismatch(MustPread(fd.get(), 8 * bs, 0), expected) == "");

  // Far beyond the device size is fine for a sparse file.
  REQUIRE(ErrnoOf(::ftruncate(fd.get(), 1ll << 30)) == 0);
  CHECK(MustFstat(fd.get()).st_size == (1ll << 30));
  CHECK(MustPread(fd.get(), 4096, 512 * kMiB) == std::string(4096, '\0'));
  CHECK(MustFstat(fd.get()).st_blocks * 512 == static_cast<blkcnt_t>(2 * bs));

  // Writing after a truncate-down re-extends with zeros in between.
  REQUIRE(ErrnoOf(::ftruncate(fd.get(), 10)) == 0);
  MustPwrite(fd.get(), "END", 2 * bs);
  expected = data.substr(0, 10) + std::string(2 * bs - 10, '\0') + "END";
  CHECK(FirstMismatch(ReadFile(vol.Path("t")), expected) == "");

  // To zero: no blocks left.
  REQUIRE(ErrnoOf(::ftruncate(fd.get(), 0)) == 0);
  CHECK(MustFstat(fd.get()).st_size == 0);
  CHECK(MustFstat(fd.get()).st_blocks == 0);
  CHECK(ReadFile(vol.Path("t")).empty());

  REQUIRE(ErrnoOf(::mkdir(vol.Path("dir").c_str(), 0755)) == 0);
  CHECK(ErrnoOf(::truncate(vol.Path("dir").c_str(), 0)) == EISDIR);
  CHECK(ErrnoOf(::truncate(vol.Path("missing").c_str(), 0)) == ENOENT);
  CHECK(ErrnoOf(::truncate(vol.Path("t").c_str(), -1)) == EINVAL);
}

TEST_CASE("fsync fdatasync and syncfs succeed", "[posix][data]") {
  TestVolume vol;
  vol.Mount();
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  Fd fd = MustOpen(vol.Path("d/f"), O_CREAT | O_RDWR, 0644);
  MustPwrite(fd.get(), Pattern(8, 100000, 0), 0);
  CHECK(ErrnoOf(::fsync(fd.get())) == 0);
  MustPwrite(fd.get(), Pattern(8, 5000, 100000), 100000);
  CHECK(ErrnoOf(::fdatasync(fd.get())) == 0);
  CHECK(ErrnoOf(::fsync(fd.get())) == 0);  // nothing left to do: still fine
  Fd ro = MustOpen(vol.Path("d/f"), O_RDONLY);
  CHECK(ErrnoOf(::fsync(ro.get())) == 0);
  CHECK(ErrnoOf(::fdatasync(ro.get())) == 0);
  Fd dir = MustOpen(vol.Path("d"), O_RDONLY | O_DIRECTORY);
  CHECK(ErrnoOf(::fsync(dir.get())) == 0);
  CHECK(ErrnoOf(::fdatasync(dir.get())) == 0);
  CHECK(ErrnoOf(::syncfs(fd.get())) == 0);
  ::sync();
  CHECK(FirstMismatch(ReadFile(vol.Path("d/f")), Pattern(8, 105000, 0)) == "");
}

TEST_CASE("fallocate mode 0 extends the size and allocates zeroed blocks", "[posix][data][fallocate]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();

  Fd fd = MustOpen(vol.Path("f"), O_CREAT | O_RDWR, 0644);
  std::string head = Pattern(9, 100, 0);
  MustPwrite(fd.get(), head, 0);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  uint64_t free0 = FreeBlocks(vol);

  REQUIRE(ErrnoOf(::fallocate(fd.get(), 0, 0, 10 * bs)) == 0);
  struct stat st = MustFstat(fd.get());
  CHECK(st.st_size == static_cast<off_t>(10 * bs));
  CHECK(st.st_blocks * 512 == static_cast<blkcnt_t>(10 * bs));
  // The existing data stays; the new blocks read zeros.
  CHECK(FirstMismatch(MustPread(fd.get(), 20 * bs, 0), head + std::string(10 * bs - 100, '\0')) ==
        "");
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  CHECK(FreeBlocks(vol) == free0 - 9);  // block 0 was already allocated

  // Overlapping and past EOF: only the new blocks are added.
  REQUIRE(ErrnoOf(::fallocate(fd.get(), 0, 5 * bs, 10 * bs)) == 0);
  st = MustFstat(fd.get());
  CHECK(st.st_size == static_cast<off_t>(15 * bs));
  CHECK(st.st_blocks * 512 == static_cast<blkcnt_t>(15 * bs));

  // Unaligned: the size is exact, whole blocks are allocated.
  REQUIRE(ErrnoOf(::fallocate(fd.get(), 0, 20 * bs + 100, 10)) == 0);
  st = MustFstat(fd.get());
  CHECK(st.st_size == static_cast<off_t>(20 * bs + 110));
  CHECK(st.st_blocks * 512 == static_cast<blkcnt_t>(16 * bs));
  CHECK(MustPread(fd.get(), 5 * bs + 110, 15 * bs) == std::string(5 * bs + 110, '\0'));

  // Inside the size: nothing changes in size.
  REQUIRE(ErrnoOf(::fallocate(fd.get(), 0, 0, bs)) == 0);
  CHECK(MustFstat(fd.get()).st_size == static_cast<off_t>(20 * bs + 110));

  // Writes into preallocated blocks take no further space.
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  uint64_t free1 = FreeBlocks(vol);
  MustPwrite(fd.get(), Pattern(10, 3 * bs, 2 * bs), 2 * bs);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  CHECK(FreeBlocks(vol) == free1);

  CHECK(ErrnoOf(::fallocate(fd.get(), 0, 0, 0)) == EINVAL);
  CHECK(ErrnoOf(::fallocate(fd.get(), 0, -1, bs)) == EINVAL);
  Fd ro = MustOpen(vol.Path("f"), O_RDONLY);
  CHECK(ErrnoOf(::fallocate(ro.get(), 0, 0, bs)) == EBADF);
  // More than the device holds.
  CHECK(ErrnoOf(::fallocate(fd.get(), 0, 0, 1ll << 30)) == ENOSPC);
}

TEST_CASE("fallocate KEEP_SIZE allocates without changing the size", "[posix][data][fallocate]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();

  Fd fd = MustOpen(vol.Path("f"), O_CREAT | O_RDWR, 0644);
  std::string head = Pattern(11, 100, 0);
  MustPwrite(fd.get(), head, 0);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  uint64_t free0 = FreeBlocks(vol);

  REQUIRE(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, 8 * bs)) == 0);
  struct stat st = MustFstat(fd.get());
  CHECK(st.st_size == 100);
  CHECK(st.st_blocks * 512 == static_cast<blkcnt_t>(8 * bs));
  CHECK(MustPread(fd.get(), 10 * bs, 0) == head);

  // Preallocation wholly beyond EOF.
  REQUIRE(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 16 * bs, 4 * bs)) == 0);
  st = MustFstat(fd.get());
  CHECK(st.st_size == 100);
  CHECK(st.st_blocks * 512 == static_cast<blkcnt_t>(12 * bs));
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  CHECK(FreeBlocks(vol) == free0 - 11);

  // Growing the size into the preallocated range shows zeros there.
  REQUIRE(ErrnoOf(::ftruncate(fd.get(), 20 * bs)) == 0);
  CHECK(MustFstat(fd.get()).st_blocks * 512 == static_cast<blkcnt_t>(12 * bs));
  CHECK(FirstMismatch(MustPread(fd.get(), 20 * bs, 0), head + std::string(20 * bs - 100, '\0')) ==
        "");
  // A write into it needs no new block.
  MustPwrite(fd.get(), "xyz", 17 * bs);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  CHECK(FreeBlocks(vol) == free0 - 11);
  CHECK(MustFstat(fd.get()).st_blocks * 512 == static_cast<blkcnt_t>(12 * bs));

  // Preallocation past EOF goes away with a shrinking truncate, like all
  // blocks past the new end.
  REQUIRE(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 20 * bs, 10 * bs)) == 0);
  CHECK(MustFstat(fd.get()).st_blocks * 512 == static_cast<blkcnt_t>(22 * bs));
  REQUIRE(ErrnoOf(::ftruncate(fd.get(), bs + 1)) == 0);
  CHECK(MustFstat(fd.get()).st_blocks * 512 == static_cast<blkcnt_t>(2 * bs));
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  bool freed = WaitUntil([&] { return FreeBlocks(vol) == free0 + 1 - 2; });
  INFO("f_bfree " << FreeBlocks(vol) << ", expected " << free0 - 1);
  CHECK(freed);
}

// Issue 2 allows PUNCH_HOLE and ZERO_RANGE to answer EOPNOTSUPP until the
// journal makes them real; either way nothing may be corrupted. So each
// call must either fail with EOPNOTSUPP and change nothing, or succeed with
// exactly the fallocate(2) semantics.
TEST_CASE("punch hole and zero range work or answer EOPNOTSUPP and change nothing",
          "[posix][data][fallocate]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();

  std::string expected = Pattern(12, 8 * bs, 0);
  WriteFile(vol.Path("f"), expected);
  Fd fd = MustOpen(vol.Path("f"), O_RDWR);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  uint64_t blocks = 8;  // allocated blocks of the file
  const uint64_t free0 = FreeBlocks(vol);

  auto check_state = [&](const char* what) {
    INFO("after " << what);
    struct stat st = MustFstat(fd.get());
    CHECK(st.st_size == static_cast<off_t>(expected.size()));
    CHECK(st.st_blocks * 512 == static_cast<blkcnt_t>(blocks * bs));
    CHECK(FirstMismatch(ReadFile(vol.Path("f")), expected) == "");
    // Freed blocks reach statfs once the daemon has committed the change.
    bool ok = WaitUntil([&] { return FreeBlocks(vol) == free0 + 8 - blocks; });
    INFO("f_bfree " << FreeBlocks(vol) << ", expected " << free0 + 8 - blocks);
    CHECK(ok);
  };
  auto zero = [&](uint64_t off, uint64_t len) {
    if (off + len > expected.size()) len = expected.size() - off;
    expected.replace(off, len, std::string(len, '\0'));
  };

  // Whole blocks 1 and 2.
  Errno e = ErrnoOf(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, bs, 2 * bs));
  CHECK((e == 0 || e == EOPNOTSUPP));
  if (e == 0) {
    zero(bs, 2 * bs);
    blocks -= 2;
  }
  check_state("punch of two whole blocks");

  // Parts of blocks 3 and 4: zeroed, but both blocks stay allocated.
  e = ErrnoOf(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * bs + 100,
                          bs + 100));
  CHECK((e == 0 || e == EOPNOTSUPP));
  if (e == 0) zero(3 * bs + 100, bs + 100);
  check_state("punch of two partial blocks");

  // Across EOF: the size stays.
  e = ErrnoOf(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 7 * bs, 4 * bs));
  CHECK((e == 0 || e == EOPNOTSUPP));
  if (e == 0) {
    zero(7 * bs, 4 * bs);
    blocks -= 1;
  }
  check_state("punch across EOF");

  // Zero range inside the file.
  e = ErrnoOf(::fallocate(fd.get(), FALLOC_FL_ZERO_RANGE, 5 * bs + 10, bs));
  CHECK((e == 0 || e == EOPNOTSUPP));
  if (e == 0) zero(5 * bs + 10, bs);
  check_state("zero range");

  // Zero range past EOF with KEEP_SIZE: the size stays.
  e = ErrnoOf(::fallocate(fd.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 6 * bs, 4 * bs));
  CHECK((e == 0 || e == EOPNOTSUPP));
  if (e == 0) {
    zero(6 * bs, 4 * bs);
    blocks += 3;  // block 7 again, and 8 and 9 preallocated
  }
  check_state("zero range with KEEP_SIZE past EOF");

  // Always refused: punch without KEEP_SIZE (vfs_fallocate), and the modes
  // FUSE does not pass on.
  CHECK(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE, 0, bs)) == EOPNOTSUPP);
  CHECK(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_COLLAPSE_RANGE, bs, bs)) == EOPNOTSUPP);
  CHECK(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_INSERT_RANGE, bs, bs)) == EOPNOTSUPP);
  check_state("refused modes");

  // The file still works normally afterwards.
  MustPwrite(fd.get(), "ok", 8 * bs);
  CHECK(MustFstat(fd.get()).st_size == static_cast<off_t>(8 * bs + 2));
}

TEST_CASE("lseek SEEK_DATA and SEEK_HOLE on a sparse file", "[posix][data][seek]") {
  TestVolume vol;
  vol.Mount();
  const off_t bs = vol.block_size();
  const off_t m = kMiB;

  Fd fd = MustOpen(vol.Path("s"), O_CREAT | O_RDWR, 0644);
  MustPwrite(fd.get(), Pattern(13, bs, 0), 0);             // block 0
  MustPwrite(fd.get(), Pattern(13, bs, m), m);             // the block at 1 MiB
  MustPwrite(fd.get(), Pattern(13, 100, m + m / 2 + 10), m + m / 2 + 10);  // inside a block
  REQUIRE(ErrnoOf(::ftruncate(fd.get(), 2 * m)) == 0);
  const int f = fd.get();

  CHECK(::lseek(f, 0, SEEK_DATA) == 0);
  CHECK(::lseek(f, 0, SEEK_HOLE) == bs);
  CHECK(::lseek(f, 10, SEEK_HOLE) == bs);
  CHECK(::lseek(f, bs, SEEK_HOLE) == bs);
  CHECK(::lseek(f, bs, SEEK_DATA) == m);
  CHECK(::lseek(f, bs + 5, SEEK_DATA) == m);
  CHECK(::lseek(f, m, SEEK_HOLE) == m + bs);
  CHECK(::lseek(f, m + 7, SEEK_DATA) == m + 7);  // inside data: the offset itself
  CHECK(::lseek(f, m + bs, SEEK_DATA) == m + m / 2);  // block granularity
  CHECK(::lseek(f, m + m / 2, SEEK_HOLE) == m + m / 2 + bs);
  // The trailing hole up to EOF has no data after it.
  CHECK(ErrnoOf(::lseek(f, m + m / 2 + bs, SEEK_DATA)) == ENXIO);
  CHECK(::lseek(f, m + m / 2 + bs + 1, SEEK_HOLE) == m + m / 2 + bs + 1);
  CHECK(::lseek(f, 2 * m - 1, SEEK_HOLE) == 2 * m - 1);
  // At or past EOF: ENXIO for both.
  CHECK(ErrnoOf(::lseek(f, 2 * m, SEEK_DATA)) == ENXIO);
  CHECK(ErrnoOf(::lseek(f, 2 * m, SEEK_HOLE)) == ENXIO);
  CHECK(ErrnoOf(::lseek(f, 3 * m, SEEK_DATA)) == ENXIO);
  // Before the start: ENXIO too (not EINVAL), as on ext4 and xfs.
  CHECK(ErrnoOf(::lseek(f, -1, SEEK_DATA)) == ENXIO);
  CHECK(ErrnoOf(::lseek(f, -static_cast<off_t>(bs), SEEK_HOLE)) == ENXIO);
  // The file offset moved to the last successful answer.
  CHECK(::lseek(f, bs, SEEK_DATA) == m);
  CHECK(::lseek(f, 0, SEEK_CUR) == m);
  CHECK(ErrnoOf(::lseek(f, 2 * m, SEEK_DATA)) == ENXIO);
  CHECK(::lseek(f, 0, SEEK_CUR) == m);  // a failed seek leaves it

  // Data up to EOF: the only hole is the virtual one at EOF.
  Fd full = MustOpen(vol.Path("full"), O_CREAT | O_RDWR, 0644);
  MustPwrite(full.get(), Pattern(14, 3 * bs + 5, 0), 0);
  CHECK(::lseek(full.get(), 0, SEEK_HOLE) == 3 * bs + 5);
  CHECK(::lseek(full.get(), 3 * bs, SEEK_DATA) == 3 * bs);

  // Only holes.
  Fd holes = MustOpen(vol.Path("holes"), O_CREAT | O_RDWR, 0644);
  REQUIRE(ErrnoOf(::ftruncate(holes.get(), m)) == 0);
  CHECK(ErrnoOf(::lseek(holes.get(), 0, SEEK_DATA)) == ENXIO);
  CHECK(::lseek(holes.get(), 0, SEEK_HOLE) == 0);
  CHECK(::lseek(holes.get(), 100, SEEK_HOLE) == 100);

  // Empty.
  Fd empty = MustOpen(vol.Path("empty"), O_CREAT | O_RDWR, 0644);
  CHECK(ErrnoOf(::lseek(empty.get(), 0, SEEK_DATA)) == ENXIO);
  CHECK(ErrnoOf(::lseek(empty.get(), 0, SEEK_HOLE)) == ENXIO);
}

// ext4 reports preallocated (unwritten) extents as holes. nosyncfs has no
// unwritten state: fallocate allocates zeroed blocks, and NF ranges take
// writes (durable on return) without any metadata change that could mark a
// block written, so allocated blocks are data, whoever wrote them. What is
// beyond EOF is never reported.
TEST_CASE("lseek SEEK_DATA and SEEK_HOLE over preallocated ranges", "[posix][data][seek]") {
  TestVolume vol;
  vol.Mount();
  const off_t bs = vol.block_size();

  // A preallocated range in the middle of a sparse file is data.
  Fd fd = MustOpen(vol.Path("p"), O_CREAT | O_RDWR, 0644);
  REQUIRE(ErrnoOf(::ftruncate(fd.get(), 16 * bs)) == 0);
  REQUIRE(ErrnoOf(::fallocate(fd.get(), 0, 4 * bs, 2 * bs)) == 0);
  CHECK(::lseek(fd.get(), 0, SEEK_DATA) == 4 * bs);
  CHECK(::lseek(fd.get(), 4 * bs, SEEK_HOLE) == 6 * bs);
  CHECK(ErrnoOf(::lseek(fd.get(), 6 * bs, SEEK_DATA)) == ENXIO);  // ends in a hole

  // Preallocated past EOF (KEEP_SIZE): the virtual hole at EOF, no data after.
  Fd k = MustOpen(vol.Path("k"), O_CREAT | O_RDWR, 0644);
  MustPwrite(k.get(), Pattern(21, 100, 0), 0);
  REQUIRE(ErrnoOf(::fallocate(k.get(), FALLOC_FL_KEEP_SIZE, 0, 8 * bs)) == 0);
  CHECK(::lseek(k.get(), 0, SEEK_HOLE) == 100);
  CHECK(::lseek(k.get(), 99, SEEK_DATA) == 99);
  CHECK(ErrnoOf(::lseek(k.get(), 100, SEEK_DATA)) == ENXIO);
  CHECK(ErrnoOf(::lseek(k.get(), 5 * bs, SEEK_HOLE)) == ENXIO);

  // An NF range preallocated past EOF: the same.
  Fd nf = MustOpen(vol.Path("nf"), O_CREAT | O_RDWR, 0644);
  MustPwrite(nf.get(), Pattern(22, 2 * bs, 0), 0);
  const std::string ranges = "0-" + std::to_string(8 * bs);
  REQUIRE(ErrnoOf(::fsetxattr(nf.get(), "user.nosync", ranges.data(), ranges.size(), 0)) == 0);
  CHECK(MustFstat(nf.get()).st_size == 2 * bs);
  CHECK(::lseek(nf.get(), 0, SEEK_DATA) == 0);
  CHECK(::lseek(nf.get(), 0, SEEK_HOLE) == 2 * bs);
  CHECK(ErrnoOf(::lseek(nf.get(), 2 * bs, SEEK_DATA)) == ENXIO);
  CHECK(ErrnoOf(::lseek(nf.get(), 2 * bs, SEEK_HOLE)) == ENXIO);
  // Growing the size over the preallocated NF blocks makes them data.
  REQUIRE(ErrnoOf(::ftruncate(nf.get(), 6 * bs)) == 0);
  CHECK(::lseek(nf.get(), 3 * bs, SEEK_DATA) == 3 * bs);
  CHECK(::lseek(nf.get(), 0, SEEK_HOLE) == 6 * bs);
}

TEST_CASE("copy_file_range copies the right bytes", "[posix][data][copy]") {
  TestVolume vol;
  vol.Mount();

  const size_t len = 3 * kMiB + 123;
  std::string src_data = Pattern(15, len, 0);
  WriteFile(vol.Path("src"), src_data);
  Fd src = MustOpen(vol.Path("src"), O_RDONLY);
  Fd dst = MustOpen(vol.Path("dst"), O_CREAT | O_RDWR, 0644);

  // Whole file through the file offsets (NULL offset pointers).
  size_t copied = 0;
  while (copied < len) {
    ssize_t n = ::copy_file_range(src.get(), nullptr, dst.get(), nullptr, len - copied, 0);
    REQUIRE(ErrnoOf(n) == 0);
    REQUIRE(n > 0);
    copied += n;
  }
  CHECK(::lseek(src.get(), 0, SEEK_CUR) == static_cast<off_t>(len));
  CHECK(::lseek(dst.get(), 0, SEEK_CUR) == static_cast<off_t>(len));
  CHECK(FirstMismatch(ReadFile(vol.Path("dst")), src_data) == "");
  // At EOF of the source: 0.
  CHECK(::copy_file_range(src.get(), nullptr, dst.get(), nullptr, 100, 0) == 0);

  // A piece into the middle of another file, with explicit offsets: the
  // file offsets do not move.
  std::string other = Pattern(16, 20000, 0);
  WriteFile(vol.Path("other"), other);
  Fd out = MustOpen(vol.Path("other"), O_RDWR);
  loff_t in_off = 1000;
  loff_t out_off = 77;
  ssize_t n = ::copy_file_range(src.get(), &in_off, out.get(), &out_off, 5000, 0);
  REQUIRE(n == 5000);
  CHECK(in_off == 6000);
  CHECK(out_off == 5077);
  CHECK(::lseek(out.get(), 0, SEEK_CUR) == 0);
  other.replace(77, 5000, src_data.substr(1000, 5000));
  CHECK(FirstMismatch(ReadFile(vol.Path("other")), other) == "");

  // Past the end of the destination: it grows, with a hole in between.
  in_off = 0;
  out_off = 30000;
  REQUIRE(::copy_file_range(src.get(), &in_off, out.get(), &out_off, 100, 0) == 100);
  other += std::string(30000 - other.size(), '\0') + src_data.substr(0, 100);
  CHECK(FirstMismatch(ReadFile(vol.Path("other")), other) == "");

  // A range running past the source's EOF copies up to EOF.
  in_off = len - 10;
  out_off = 0;
  CHECK(::copy_file_range(src.get(), &in_off, out.get(), &out_off, 1000, 0) == 10);

  // Errors checked by the kernel before the file system is asked.
  Fd wronly = MustOpen(vol.Path("src"), O_WRONLY);
  in_off = 0;
  out_off = 0;
  CHECK(ErrnoOf(::copy_file_range(wronly.get(), &in_off, out.get(), &out_off, 10, 0)) == EBADF);
  CHECK(ErrnoOf(::copy_file_range(src.get(), &in_off, out.get(), &out_off, 10, 1)) == EINVAL);
}

TEST_CASE("copy_file_range within one file", "[posix][data][copy]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();

  std::string data = Pattern(17, 4 * bs, 0);
  WriteFile(vol.Path("f"), data);
  Fd fd = MustOpen(vol.Path("f"), O_RDWR);

  // Disjoint ranges of the same file work.
  loff_t in_off = 0;
  loff_t out_off = 2 * bs + 10;
  REQUIRE(::copy_file_range(fd.get(), &in_off, fd.get(), &out_off, bs, 0) ==
          static_cast<ssize_t>(bs));
  data.replace(2 * bs + 10, bs, data.substr(0, bs));
  CHECK(FirstMismatch(ReadFile(vol.Path("f")), data) == "");

  // Overlapping ranges of the same file: EINVAL (copy_file_range(2)), and
  // nothing changes.
  in_off = 0;
  out_off = bs / 2;
  CHECK(ErrnoOf(::copy_file_range(fd.get(), &in_off, fd.get(), &out_off, bs, 0)) == EINVAL);
  in_off = bs;
  out_off = 0;
  CHECK(ErrnoOf(::copy_file_range(fd.get(), &in_off, fd.get(), &out_off, 2 * bs, 0)) == EINVAL);
  CHECK(FirstMismatch(ReadFile(vol.Path("f")), data) == "");
}

TEST_CASE("mmap shared writes reach the file", "[posix][data][mmap]") {
  TestVolume vol;
  vol.Mount();
  const size_t bs = vol.block_size();

  std::string initial = Pattern(18, 3 * bs, 0);
  WriteFile(vol.Path("m"), initial);
  Fd fd = MustOpen(vol.Path("m"), O_RDWR);
  void* p = ::mmap(nullptr, 3 * bs, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  REQUIRE(p != MAP_FAILED);
  char* mem = static_cast<char*>(p);
  // What write(2) put there is visible through the mapping.
  CHECK(FirstMismatch(std::string_view(mem, 3 * bs), initial) == "");
  std::string patch = Pattern(19, bs + 10, bs - 5);
  std::memcpy(mem + bs - 5, patch.data(), patch.size());
  CHECK(ErrnoOf(::msync(mem, 3 * bs, MS_SYNC)) == 0);
  CHECK(ErrnoOf(::munmap(mem, 3 * bs)) == 0);
  initial.replace(bs - 5, patch.size(), patch);
  CHECK(FirstMismatch(MustPread(fd.get(), 3 * bs, 0), initial) == "");
  fd.reset();
  CHECK(FirstMismatch(ReadFile(vol.Path("m")), initial) == "");
}

// The daemon serves requests from several threads: concurrent writers to
// separate files, to disjoint ranges of one file, and appenders through
// O_APPEND must all end up with exactly their bytes.
TEST_CASE("concurrent writers and appenders", "[posix][data][concurrency]") {
  TestVolume vol;
  vol.Mount();
  constexpr int kThreads = 4;
  constexpr size_t kChunk = 64 * 1024;
  constexpr int kChunks = 32;
  constexpr size_t kRecord = 1000;
  constexpr int kRecords = 200;

  // Worker threads never use Catch macros; they count their failures.
  std::atomic<int> failures{0};
  {
    Fd shared = MustOpen(vol.Path("shared"), O_CREAT | O_RDWR, 0644);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::string own = vol.Path("own" + std::to_string(t));
        int fd = ::open(own.c_str(), O_CREAT | O_WRONLY, 0644);
        int app = ::open(vol.Path("log").c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
        if (fd < 0 || app < 0) {
          ++failures;
          return;
        }
        for (int c = 0; c < kChunks; ++c) {
          uint64_t off = c * kChunk;
          std::string data = Pattern(60 + t, kChunk, off);
          if (::pwrite(fd, data.data(), kChunk, off) != static_cast<ssize_t>(kChunk)) ++failures;
          // Interleaved stripes of the shared file.
          uint64_t soff = (static_cast<uint64_t>(c) * kThreads + t) * kChunk;
          std::string sdata = Pattern(70, kChunk, soff);
          if (::pwrite(shared.get(), sdata.data(), kChunk, soff) != static_cast<ssize_t>(kChunk)) {
            ++failures;
          }
        }
        for (int r = 0; r < kRecords; ++r) {
          // A record: its writer and number, then filler of that byte.
          std::string rec(kRecord, static_cast<char>('A' + t));
          std::snprintf(rec.data(), 16, "%d:%05d", t, r);
          rec[15] = static_cast<char>('A' + t);
          if (::write(app, rec.data(), rec.size()) != static_cast<ssize_t>(rec.size())) ++failures;
        }
        ::close(fd);
        ::close(app);
      });
    }
    for (std::thread& th : threads) th.join();
  }
  CHECK(failures == 0);

  for (int t = 0; t < kThreads; ++t) {
    INFO("file own" << t);
    CHECK(FirstMismatch(ReadFile(vol.Path("own" + std::to_string(t))),
                        Pattern(60 + t, kChunk * kChunks, 0)) == "");
  }
  CHECK(FirstMismatch(ReadFile(vol.Path("shared")), Pattern(70, kChunk * kChunks * kThreads, 0)) ==
        "");
  // Every appended record is whole and appears once; each writer's records
  // are in its own order.
  std::string log = ReadFile(vol.Path("log"));
  REQUIRE(log.size() == kRecord * kRecords * kThreads);
  std::vector<int> next(kThreads, 0);
  int torn = 0;
  for (size_t off = 0; off < log.size(); off += kRecord) {
    int t = log[off] - '0';
    if (t < 0 || t >= kThreads) {
      ++torn;
      continue;
    }
    char expect[16];
    std::snprintf(expect, sizeof expect, "%d:%05d", t, next[t]);
    std::string rec = log.substr(off, kRecord);
    if (rec.compare(0, std::strlen(expect), expect) != 0 ||
        rec.find_first_not_of(static_cast<char>('A' + t), 16) != std::string::npos) {
      ++torn;
    }
    ++next[t];
  }
  CHECK(torn == 0);
  for (int t = 0; t < kThreads; ++t) CHECK(next[t] == kRecords);
}

TEST_CASE("an unlinked open file keeps working until close and then frees its space",
          "[posix][data][unlinked]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();

  uint64_t free0 = FreeBlocks(vol);
  Fd fd = MustOpen(vol.Path("victim"), O_CREAT | O_RDWR, 0644);
  std::string data = Pattern(20, 2 * kMiB, 0);
  MustPwrite(fd.get(), data, 0);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  Fd second = MustOpen(vol.Path("victim"), O_RDONLY);
  CHECK(FreeBlocks(vol) == free0 - 2 * kMiB / bs);

  REQUIRE(ErrnoOf(::unlink(vol.Path("victim").c_str())) == 0);
  struct stat st {};
  CHECK(ErrnoOf(::stat(vol.Path("victim").c_str(), &st)) == ENOENT);
  CHECK(ListDir(vol.Path("")).empty());
  CHECK(MustFstat(fd.get()).st_nlink == 0);

  // Still readable and writable through both descriptors.
  CHECK(FirstMismatch(MustPread(fd.get(), 4 * kMiB, 0), data) == "");
  std::string more = Pattern(20, kMiB, 2 * kMiB);
  MustPwrite(fd.get(), more, 2 * kMiB);
  CHECK(ErrnoOf(::fsync(fd.get())) == 0);
  CHECK(MustFstat(fd.get()).st_size == static_cast<off_t>(3 * kMiB));
  CHECK(FirstMismatch(MustPread(second.get(), 4 * kMiB, 0), data + more) == "");
  CHECK(ErrnoOf(::ftruncate(fd.get(), 3 * kMiB - 1)) == 0);
  CHECK(MustFstat(second.get()).st_size == static_cast<off_t>(3 * kMiB - 1));

  // The space is still in use while a descriptor is open.
  CHECK(FreeBlocks(vol) == free0 - 3 * kMiB / bs);
  // The name can be reused for an unrelated (empty, so blockless) file.
  CHECK(OpenErrno(vol.Path("victim"), O_CREAT | O_EXCL | O_WRONLY) == 0);
  CHECK(MustStat(vol.Path("victim")).st_size == 0);
  CHECK(MustStat(vol.Path("victim")).st_ino != MustFstat(fd.get()).st_ino);
  CHECK(MustFstat(fd.get()).st_size == static_cast<off_t>(3 * kMiB - 1));
  REQUIRE(ErrnoOf(::unlink(vol.Path("victim").c_str())) == 0);

  fd.reset();
  CHECK(FirstMismatch(MustPread(second.get(), 100, 0), data.substr(0, 100)) == "");
  CHECK(FreeBlocks(vol) == free0 - 3 * kMiB / bs);
  REQUIRE(second.reset() == 0);

  // Release reaches the daemon asynchronously after close; wait for it.
  bool freed = WaitUntil([&] { return FreeBlocks(vol) == free0; });
  INFO("free blocks " << FreeBlocks(vol) << ", expected " << free0);
  CHECK(freed);
  if (!freed) {
    // Tell apart "freed only at the next commit" from "never freed".
    SyncWholeFs(vol.Path(""));
    CHECK(FreeBlocks(vol) == free0);
  }
}

}  // namespace
}  // namespace nosyncfs::test
