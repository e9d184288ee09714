// COLLAPSE_RANGE, INSERT_RANGE and UNSHARE_RANGE on a real mount. The
// kernel's FUSE client refuses these fallocate modes itself, so nosyncfs
// takes them through its NSF_IOC_FALLOCATE ioctl (fs/ioctl.h), which
// nosyncctl collapse|insert|unshare uses.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "fs/ioctl.h"
#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

Errno IoctlFallocate(int fd, uint32_t mode, uint64_t off, uint64_t len) {
  nsf_fallocate_args args{off, len, mode, 0};
  return ErrnoOf(ioctl(fd, NSF_IOC_FALLOCATE, &args));
}

}  // namespace

TEST_CASE("collapse, insert and unshare range through nosyncctl and the ioctl",
          "[posix][shift]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t bs = vol.block_size();
  std::string model = Pattern(71, 16 * bs + 10);
  WriteFile(vol.Path("f"), model);
  // Read once, so that the kernel caches pages the shift then makes stale.
  REQUIRE(ReadFile(vol.Path("f")) == model);

  // The kernel refuses the modes as fallocate(2), before nosyncfs sees them.
  {
    Fd fd = MustOpen(vol.Path("f"), O_RDWR);
    CHECK(ErrnoOf(fallocate(fd.get(), FALLOC_FL_COLLAPSE_RANGE, 0, bs)) == EOPNOTSUPP);
  }
  auto ctl = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv{BinPath("nosyncctl")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  };
  CommandResult r =
      ctl({"collapse", vol.Path("f"), std::to_string(2 * bs), std::to_string(3 * bs)});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  model.erase(2 * bs, 3 * bs);
  CHECK(FirstMismatch(ReadFile(vol.Path("f")), model) == "");
  r = ctl({"insert", vol.Path("f"), "4K", "8K"});
  REQUIRE(r.exit_status == 0);
  model.insert(4096, 8192, '\0');
  CHECK(FirstMismatch(ReadFile(vol.Path("f")), model) == "");
  struct stat st;
  REQUIRE(stat(vol.Path("f").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == model.size());

  // Errors: unaligned, reaching EOF, NF blocks that would move, a
  // read-only descriptor, not nosyncfs.
  r = ctl({"collapse", vol.Path("f"), "100", "4K"});
  CHECK(r.exit_status == 1);
  CHECK(r.err.find("Invalid argument") != std::string::npos);
  r = ctl({"collapse", vol.Path("f"), "0", std::to_string(model.size() / bs * bs + bs)});
  CHECK(r.exit_status == 1);
  CHECK(r.err.find("Invalid argument") != std::string::npos);
  r = ctl({"insert", vol.Path("f"), "1x", "4K"});
  CHECK(r.exit_status == 2);
  REQUIRE(ctl({"set", vol.Path("f"), "8K-12K"}).exit_status == 0);
  r = ctl({"insert", vol.Path("f"), "4K", "4K"});
  CHECK(r.exit_status == 1);
  CHECK(r.err.find("Operation not permitted") != std::string::npos);
  REQUIRE(ctl({"clear", vol.Path("f")}).exit_status == 0);
  {
    Fd ro = MustOpen(vol.Path("f"), O_RDONLY);
    CHECK(IoctlFallocate(ro.get(), FALLOC_FL_COLLAPSE_RANGE, 0, bs) == EBADF);
    CHECK(ErrnoOf(ioctl(ro.get(), _IO('N', 0x7f))) == ENOTTY);
  }
  {
    WriteFile(vol.TempPath("elsewhere"), "x");
    r = ctl({"collapse", vol.TempPath("elsewhere"), "0", "4K"});
    CHECK(r.exit_status == 1);
    CHECK(r.err.find("not on nosyncfs") != std::string::npos);
  }
  CHECK(FirstMismatch(ReadFile(vol.Path("f")), model) == "");

  // Unshare: a copy's blocks become its own; the bytes stay.
  CommandResult cp = RunCommand({"cp", vol.Path("f"), vol.Path("g")});
  REQUIRE(cp.exit_status == 0);
  uint64_t before = MustStatvfs(vol.Path("")).f_bfree;
  r = ctl({"unshare", vol.Path("g"), "0", std::to_string(model.size())});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  CHECK(before - MustStatvfs(vol.Path("")).f_bfree >= model.size() / bs - 3);
  CHECK(FirstMismatch(ReadFile(vol.Path("g")), model) == "");

  // All of it survives a remount, and fsck agrees.
  vol.Unmount();
  CommandResult fsck = RunCommand({BinPath("fsck.nosyncfs"), vol.image()});
  INFO(fsck.Describe() << "\n" << fsck.out);
  CHECK(fsck.exit_status == 0);
  vol.Mount();
  CHECK(FirstMismatch(ReadFile(vol.Path("f")), model) == "");
  CHECK(FirstMismatch(ReadFile(vol.Path("g")), model) == "");
}

}  // namespace nosyncfs::test
