// O_TMPFILE: a file without a name, which linkat(AT_EMPTY_PATH) can name
// later; until then nothing of it outlives its last close or a crash.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <string>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

int OpenTmpfile(const std::string& dir, int extra_flags = 0) {
  return ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC | extra_flags, 0640);
}

int LinkFd(int fd, const std::string& path) {
  return ::linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH) == 0 ? 0 : errno;
}

uint64_t FreeBlocks(const std::string& mountpoint) { return MustStatvfs(mountpoint).f_bfree; }

}  // namespace

TEST_CASE("O_TMPFILE makes an unnamed file that linkat names", "[posix][tmpfile]") {
  TestVolume vol;
  vol.Mount();
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  const std::string data = Pattern(31, 3 * kMiB + 17, 0);

  int raw = OpenTmpfile(vol.Path("d"));
  REQUIRE(ErrnoOf(raw) == 0);
  Fd fd(raw);
  struct stat st = MustFstat(fd.get());
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_nlink == 0);
  CHECK(ListDir(vol.Path("d")).empty());
  MustPwrite(fd.get(), data, 0);
  CHECK(MustPread(fd.get(), data.size(), 0) == data);

  REQUIRE(LinkFd(fd.get(), vol.Path("d/named")) == 0);
  CHECK(MustFstat(fd.get()).st_nlink == 1);
  CHECK(MustStat(vol.Path("d/named")).st_ino == st.st_ino);
  CHECK(ReadFile(vol.Path("d/named")) == data);
  // A second link is an ordinary one.
  REQUIRE(LinkFd(fd.get(), vol.Path("second")) == 0);
  CHECK(MustFstat(fd.get()).st_nlink == 2);
  fd = Fd();

  vol.Remount();
  CHECK(ReadFile(vol.Path("d/named")) == data);
  CHECK(MustStat(vol.Path("second")).st_nlink == 2);
  vol.Unmount();
  ExpectFsckClean(vol);
}

TEST_CASE("O_TMPFILE files never linked leave nothing behind", "[posix][tmpfile]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t free_before = FreeBlocks(vol.mountpoint());
  const std::string data = Pattern(32, 2 * kMiB, 0);

  SECTION("closed") {
    {
      Fd fd(OpenTmpfile(vol.mountpoint()));
      REQUIRE(fd.get() >= 0);
      MustPwrite(fd.get(), data, 0);
    }
    // The kernel releases the file after close returns.
    CHECK(WaitUntil([&] { return FreeBlocks(vol.mountpoint()) == free_before; }));
    vol.Remount();
  }

  SECTION("open when the daemon is killed") {
    Fd fd(OpenTmpfile(vol.mountpoint()));
    REQUIRE(fd.get() >= 0);
    MustPwrite(fd.get(), data, 0);
    REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
    SyncWholeFs(vol.mountpoint());  // its records are durable, as an orphan
    vol.SigkillDaemon();
    fd = Fd();
    vol.ClearDeadMount();
    vol.Mount();
  }

  CHECK(ListDir(vol.mountpoint()).empty());
  CHECK(FreeBlocks(vol.mountpoint()) == free_before);
  vol.Unmount();
  ExpectFsckClean(vol);
}

TEST_CASE("O_TMPFILE linked and made durable survives kill -9", "[posix][tmpfile][persistence]") {
  TestVolume vol;
  vol.Mount();
  const std::string data = Pattern(33, 100000, 0);
  {
    Fd fd(OpenTmpfile(vol.mountpoint()));
    REQUIRE(fd.get() >= 0);
    MustPwrite(fd.get(), data, 0);
    REQUIRE(LinkFd(fd.get(), vol.Path("kept")) == 0);
    REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
    SyncWholeFs(vol.mountpoint());
  }
  vol.KillDaemon();
  vol.Mount();
  CHECK(ReadFile(vol.Path("kept")) == data);
  CHECK(MustStat(vol.Path("kept")).st_nlink == 1);
  vol.Unmount();
  ExpectFsckClean(vol);
}

TEST_CASE("O_TMPFILE rules: O_EXCL, permissions, not a directory", "[posix][tmpfile]") {
  TestVolume vol;
  vol.Mount();
  // O_EXCL: never linkable (the kernel refuses the link).
  {
    Fd fd(OpenTmpfile(vol.mountpoint(), O_EXCL));
    REQUIRE(fd.get() >= 0);
    CHECK(LinkFd(fd.get(), vol.Path("x")) == ENOENT);
  }
  // Write and search permission on the directory are needed.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("ro").c_str(), 0555)) == 0);
  CHECK(RunAs(kNobody, kNogroup, [&] {
          int fd = OpenTmpfile(vol.Path("ro"));
          if (fd >= 0) ::close(fd);
          return fd >= 0 ? 0 : errno;
        }) == EACCES);
  // An unprivileged user's temporary file is theirs.
  REQUIRE(ErrnoOf(::chmod(vol.mountpoint().c_str(), 0777)) == 0);
  CHECK(RunAs(kNobody, kNogroup, [&] {
          int fd = OpenTmpfile(vol.mountpoint());
          if (fd < 0) return errno;
          struct stat st;
          int rc = ::fstat(fd, &st) == 0 && st.st_uid == kNobody ? 0 : EPERM;
          if (rc == 0) rc = LinkFd(fd, vol.Path("nobodys"));
          ::close(fd);
          return rc;
        }) == 0);
  CHECK(MustStat(vol.Path("nobodys")).st_uid == kNobody);
  // A regular file is not a directory.
  WriteFile(vol.Path("f"), "x");
  CHECK(ErrnoOf(OpenTmpfile(vol.Path("f"))) == ENOTDIR);
}

}  // namespace nosyncfs::test
