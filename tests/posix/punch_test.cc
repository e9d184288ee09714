// Hole punch and zero range against NF extents: SEMANTICS.md section 4.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kBlock = 4096;

std::string Xattr(const std::string& path, const char* name) {
  char buf[8192];
  ssize_t n = getxattr(path.c_str(), name, buf, sizeof(buf));
  return n < 0 ? std::string("<") + ErrnoName(errno) + ">" : std::string(buf, size_t(n));
}

// "logical:length:flags" for each extent, device offsets left out.
std::string Shape(const std::string& path) {
  std::istringstream in(Xattr(path, "user.nosync.extents"));
  uint64_t logical, length, device;
  std::string flags, out;
  while (in >> logical >> length >> device >> flags) {
    out += std::to_string(logical / kBlock) + "+" + std::to_string(length / kBlock) + ":" + flags +
           " ";
  }
  return out;
}

Errno Falloc(const std::string& path, int mode, uint64_t off, uint64_t len) {
  Fd fd = MustOpen(path, O_RDWR);
  return ErrnoOf(fallocate(fd.get(), mode, static_cast<off_t>(off), static_cast<off_t>(len)));
}

constexpr int kPunch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

}  // namespace

TEST_CASE("punch (split) in the middle of an NF extent: exact blocks freed, rest stays NF, "
          "durable on return",
          "[posix][punch][persistence]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(51, 16 * kBlock));
  REQUIRE(setxattr(f.c_str(), "user.nosync", "all", 3, 0) == 0);
  CHECK(Shape(f) == "0+16:nf ");
  uint64_t free_before = MustStatvfs(v.mountpoint()).f_bfree;
  // Blocks 1 and 2 whole, plus the last 96 bytes of block 0 and the first
  // 100 bytes of block 3, which are zeroed in place.
  REQUIRE(Falloc(f, kPunch, kBlock - 96, 2 * kBlock + 196) == 0);
  CHECK(Shape(f) == "0+1:nf 3+13:nf ");
  CHECK(Xattr(f, "user.nosync") == "0-4096,12288-65536");
  CHECK(MustStatvfs(v.mountpoint()).f_bfree == free_before + 2);
  std::string expect = Pattern(51, 16 * kBlock);
  expect.replace(kBlock - 96, 2 * kBlock + 196, std::string(2 * kBlock + 196, '\0'));
  CHECK(FirstMismatch(ReadFile(f), expect).empty());
  {
    Fd fd = MustOpen(f, O_RDONLY);
    CHECK(lseek(fd.get(), 0, SEEK_HOLE) == static_cast<off_t>(kBlock));
  }
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  CHECK(Shape(f) == "0+1:nf 3+13:nf ");
  CHECK(FirstMismatch(ReadFile(f), expect).empty());
  CHECK(MustStatvfs(v.mountpoint()).f_bfree == free_before + 2);
}

TEST_CASE("punch (deny) over an NF range fails with EPERM and changes nothing",
          "[posix][punch]") {
  TestVolume v;
  v.Mount("emulate=strict,nf_punch=deny");
  std::string f = v.Path("f");
  WriteFile(f, Pattern(52, 8 * kBlock));
  REQUIRE(setxattr(f.c_str(), "user.nosync", "8K-16K", 6, 0) == 0);
  std::string shape = Shape(f);
  CHECK(Falloc(f, kPunch, 3 * kBlock, 100) == EPERM);          // inside
  CHECK(Falloc(f, kPunch, kBlock, 2 * kBlock) == EPERM);       // overlapping
  CHECK(Shape(f) == shape);
  CHECK(ReadFile(f) == Pattern(52, 8 * kBlock));
  // Clear of the NF range it is an ordinary punch.
  CHECK(Falloc(f, kPunch, 5 * kBlock, 2 * kBlock) == 0);
  CHECK(Shape(f) == "0+2:- 2+2:nf 4+1:- 7+1:- ");
}

TEST_CASE("zero range inside an NF range zeroes in place, keeps blocks and flag, durable",
          "[posix][punch][persistence]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(53, 8 * kBlock));
  REQUIRE(setxattr(f.c_str(), "user.nosync", "all", 3, 0) == 0);
  std::string listing = Xattr(f, "user.nosync.extents");
  REQUIRE(Falloc(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 1000, 3 * kBlock) == 0);
  CHECK(Xattr(f, "user.nosync.extents") == listing);  // same blocks, same flag
  std::string expect = Pattern(53, 8 * kBlock);
  expect.replace(1000, 3 * kBlock, std::string(3 * kBlock, '\0'));
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  CHECK(FirstMismatch(ReadFile(f), expect).empty());
  CHECK(Xattr(f, "user.nosync.extents") == listing);
}

TEST_CASE("punch and zero range on unflagged files", "[posix][punch]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(54, 8 * kBlock));
  uint64_t blocks_before = static_cast<uint64_t>(MustStat(f).st_blocks);
  REQUIRE(Falloc(f, kPunch, 2 * kBlock, 3 * kBlock) == 0);
  CHECK(static_cast<uint64_t>(MustStat(f).st_blocks) == blocks_before - 3 * kBlock / 512);
  CHECK(MustStat(f).st_size == static_cast<off_t>(8 * kBlock));
  std::string expect = Pattern(54, 8 * kBlock);
  expect.replace(2 * kBlock, 3 * kBlock, std::string(3 * kBlock, '\0'));
  CHECK(ReadFile(f) == expect);
  // Zero range over the hole allocates it again; past EOF it grows the file.
  REQUIRE(Falloc(f, FALLOC_FL_ZERO_RANGE, 2 * kBlock, 8 * kBlock) == 0);
  CHECK(MustStat(f).st_size == static_cast<off_t>(10 * kBlock));
  CHECK(static_cast<uint64_t>(MustStat(f).st_blocks) == 10 * kBlock / 512);
  expect.replace(2 * kBlock, 6 * kBlock, std::string(6 * kBlock, '\0'));
  expect += std::string(2 * kBlock, '\0');
  CHECK(ReadFile(f) == expect);
  // Modes that are not implemented say so and change nothing.
  CHECK(Falloc(f, FALLOC_FL_COLLAPSE_RANGE, 0, kBlock) == EOPNOTSUPP);
  CHECK(Falloc(f, FALLOC_FL_INSERT_RANGE, 0, kBlock) == EOPNOTSUPP);
  CHECK(ReadFile(f) == expect);
}

}  // namespace nosyncfs::test
