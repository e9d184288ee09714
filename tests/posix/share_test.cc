// Block sharing on a real mount: cp (coreutils copies with copy_file_range)
// of an unflagged file costs no data blocks, both copies then change
// independently, the space comes back with the last of them, setting
// user.nosync on a copy unshares it, and fsck is clean throughout.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

uint64_t FreeBlocks(const TestVolume& vol) {
  // Blocks freed by an unlink count once the unlink is durable.
  Fd root = MustOpen(vol.mountpoint(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fsync(root.get()) == 0);
  return MustStatvfs(vol.Path("")).f_bfree;
}

void CheckFsckClean(TestVolume& vol) {
  vol.Unmount();
  CommandResult r = RunCommand({BinPath("fsck.nosyncfs"), vol.image()});
  INFO(r.Describe() << "\n" << r.out);
  CHECK(r.exit_status == 0);
  vol.Mount();
}

}  // namespace

TEST_CASE("cp of an unflagged file shares its blocks and either copy then changes alone",
          "[posix][share]") {
  TestVolume::Options o;
  o.image_bytes = 256 * kMiB;
  TestVolume vol(o);
  vol.Mount();
  const uint64_t bs = vol.block_size();
  const std::string data = Pattern(61, 48 * kMiB + 1000);
  WriteFile(vol.Path("src"), data);
  const uint64_t empty = MustStatvfs(vol.Path("")).f_bfree + (data.size() + bs - 1) / bs;
  const uint64_t before = FreeBlocks(vol);

  CommandResult cp = RunCommand({"cp", vol.Path("src"), vol.Path("dst")});
  INFO(cp.Describe());
  REQUIRE(cp.exit_status == 0);
  // No data blocks but the partial last one: statfs counts a shared block once.
  uint64_t after = FreeBlocks(vol);
  INFO("free blocks before cp " << before << ", after " << after);
  CHECK(before - after <= 1);
  CHECK(FirstMismatch(ReadFile(vol.Path("dst")), data) == "");

  // Copy on write, both ways.
  std::string src_now = data, dst_now = data;
  {
    Fd dst = MustOpen(vol.Path("dst"), O_RDWR);
    MustPwrite(dst.get(), "changed in the copy", 5 * kMiB + 3);
    dst_now.replace(5 * kMiB + 3, 19, "changed in the copy");
    Fd src = MustOpen(vol.Path("src"), O_RDWR);
    MustPwrite(src.get(), "changed in the original", 7 * kMiB);
    src_now.replace(7 * kMiB, 23, "changed in the original");
    REQUIRE(fsync(src.get()) == 0);
    REQUIRE(fsync(dst.get()) == 0);
  }
  CHECK(FirstMismatch(ReadFile(vol.Path("src")), src_now) == "");
  CHECK(FirstMismatch(ReadFile(vol.Path("dst")), dst_now) == "");
  CheckFsckClean(vol);
  // And after the remount that fsck needed.
  CHECK(FirstMismatch(ReadFile(vol.Path("src")), src_now) == "");
  CHECK(FirstMismatch(ReadFile(vol.Path("dst")), dst_now) == "");

  // Setting user.nosync on the copy gives it private blocks; the original
  // keeps its bytes.
  const std::string range = "0-" + std::to_string(8 * kMiB);
  REQUIRE(ErrnoOf(setxattr(vol.Path("dst").c_str(), "user.nosync", range.data(), range.size(),
                           0)) == 0);
  {
    Fd dst = MustOpen(vol.Path("dst"), O_RDWR);
    MustPwrite(dst.get(), "nf", 0);
    dst_now.replace(0, 2, "nf");
  }
  CHECK(FirstMismatch(ReadFile(vol.Path("src")), src_now) == "");
  CHECK(FirstMismatch(ReadFile(vol.Path("dst")), dst_now) == "");

  // The blocks come back with the last reference.
  REQUIRE(ErrnoOf(unlink(vol.Path("src").c_str())) == 0);
  CHECK(FirstMismatch(ReadFile(vol.Path("dst")), dst_now) == "");
  CHECK(FreeBlocks(vol) < empty);
  REQUIRE(ErrnoOf(unlink(vol.Path("dst").c_str())) == 0);
  CHECK(FreeBlocks(vol) == empty);
  CheckFsckClean(vol);
}

}  // namespace nosyncfs::test
