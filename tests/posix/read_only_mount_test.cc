// Read-only mounts (-o ro): nothing on the device or in its metadata store
// changes, whatever is read; a device that needs recovery is refused with
// one line saying what is pending; the daemon refuses changes itself when
// the kernel's read-only flag is lifted behind its back; and a second mount
// of a device keeps the read-only rules a block device's mounts follow.

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

// The image and the metadata store's files, hashed (not the daemon's log,
// which the fixture keeps in the same directory).
std::map<std::string, size_t> VolumeFiles(const TestVolume& vol) {
  return SnapshotFiles({vol.image(), vol.meta_dir()});
}

// The changes a read-only mount must refuse, each with EROFS.
void ExpectEveryChangeRefused(const TestVolume& vol) {
  CHECK(OpenErrno(vol.Path("f"), O_WRONLY) == EROFS);
  CHECK(OpenErrno(vol.Path("f"), O_RDONLY | O_TRUNC) == EROFS);
  CHECK(OpenErrno(vol.Path("new"), O_WRONLY | O_CREAT) == EROFS);
  CHECK(ErrnoOf(::mkdir(vol.Path("d2").c_str(), 0755)) == EROFS);
  CHECK(ErrnoOf(::mknod(vol.Path("fifo").c_str(), S_IFIFO | 0644, 0)) == EROFS);
  CHECK(ErrnoOf(::symlink("f", vol.Path("sl").c_str())) == EROFS);
  CHECK(ErrnoOf(::link(vol.Path("f").c_str(), vol.Path("hard").c_str())) == EROFS);
  CHECK(ErrnoOf(::unlink(vol.Path("f").c_str())) == EROFS);
  CHECK(ErrnoOf(::rmdir(vol.Path("d").c_str())) == EROFS);
  CHECK(ErrnoOf(::rename(vol.Path("f").c_str(), vol.Path("g").c_str())) == EROFS);
  CHECK(ErrnoOf(::truncate(vol.Path("f").c_str(), 0)) == EROFS);
  CHECK(ErrnoOf(::setxattr(vol.Path("f").c_str(), "user.nosync", "all", 3, 0)) == EROFS);
  CHECK(ErrnoOf(::setxattr(vol.Path("f").c_str(), "user.x", "1", 1, 0)) == EROFS);
  CHECK(ErrnoOf(::removexattr(vol.Path("f").c_str(), "user.kept")) == EROFS);
  CHECK(ErrnoOf(::chmod(vol.Path("f").c_str(), 0600)) == EROFS);
  CHECK(ErrnoOf(::chown(vol.Path("f").c_str(), 1, 1)) == EROFS);
  const timespec times[2] = {{1, 0}, {2, 0}};
  CHECK(ErrnoOf(::utimensat(AT_FDCWD, vol.Path("f").c_str(), times, 0)) == EROFS);
}

// A file "f" with an NF range and an xattr, and a directory "d", all durable.
void Populate(TestVolume& vol) {
  vol.Mount();
  WriteFile(vol.Path("f"), std::string(3 * 4096, 'a'));
  REQUIRE(::setxattr(vol.Path("f").c_str(), "user.nosync", "0-4096", 6, 0) == 0);
  REQUIRE(::setxattr(vol.Path("f").c_str(), "user.kept", "v", 1, 0) == 0);
  REQUIRE(::mkdir(vol.Path("d").c_str(), 0755) == 0);
  vol.Unmount();
}

TEST_CASE("a ro mount changes nothing on the device or in its metadata store",
          "[posix][mount][ro]") {
  TestVolume vol;
  Populate(vol);
  const auto before = VolumeFiles(vol);
  REQUIRE(before.count(vol.image()) == 1);
  REQUIRE(before.size() > 1);  // the metadata store's files too

  // strictatime: a writable mount would update atime on every read.
  vol.Mount("emulate=strict,ro,strictatime");
  CHECK(HasOption(MountPointOptions(vol.mountpoint()).value_or(""), "ro"));
  const struct stat st = MustStat(vol.Path("f"));
  CHECK(ReadFile(vol.Path("f")) == std::string(3 * 4096, 'a'));
  CHECK(ListDir(vol.mountpoint()) == std::set<std::string>{"f", "d"});
  CHECK(MustStat(vol.Path("f")).st_atim == st.st_atim);
  char value[64];
  CHECK(::getxattr(vol.Path("f").c_str(), "user.nosync", value, sizeof(value)) > 0);
  CHECK(::getxattr(vol.mountpoint().c_str(), "user.nosyncfs.stats", nullptr, 0) > 0);
  CommandResult show = RunCommand({BinPath("nosyncctl"), "show", vol.Path("f")});
  CHECK(show.exit_status == 0);
  int fd = ::open(vol.Path("f").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  CHECK(::fsync(fd) == 0);  // nothing to make durable is no error
  ::close(fd);
  ExpectEveryChangeRefused(vol);
  vol.Unmount();  // CHECKs a clean exit: no failed checkpoint at shutdown

  INFO("the image or a file of " << vol.meta_dir() << " changed");
  CHECK(VolumeFiles(vol) == before);
  vol.Mount();
  CHECK(ReadFile(vol.Path("f")) == std::string(3 * 4096, 'a'));
  vol.Unmount();
  ExpectFsckClean(vol);
}

TEST_CASE("a ro mount of a device that needs recovery is refused with what is pending",
          "[posix][mount][ro]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("kept"), "acknowledged");
  SyncWholeFs(vol.mountpoint());
  vol.KillDaemon();  // the log holds transactions the store has not applied
  const auto before = VolumeFiles(vol);

  CommandResult r = TestVolume::RunDaemon({vol.image(), vol.mountpoint(), "-o", "ro"});
  INFO(r.Describe());
  CHECK(r.exit_status == 1);
  CHECK_FALSE(IsMounted(vol.mountpoint()));
  CHECK(Contains(r.err, vol.image() + " needs recovery (log replay of "));
  CHECK(Contains(r.err, "fsck.nosyncfs -p " + vol.image()));
  // One line: the error and nothing after it.
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(VolumeFiles(vol) == before);

  // fsck -p recovers it, as the message says; then ro mounts.
  CommandResult fsck = RunCommand({BinPath("fsck.nosyncfs"), "-p", vol.image()});
  INFO(fsck.Describe() << "\n" << fsck.out);
  CHECK(fsck.exit_status == 0);
  vol.Mount("emulate=strict,ro");
  CHECK(ReadFile(vol.Path("kept")) == "acknowledged");
  vol.Unmount();
}

TEST_CASE("after remount,rw behind its back a ro daemon still refuses every change",
          "[posix][mount][ro]") {
  TestVolume vol;
  Populate(vol);
  const auto before = VolumeFiles(vol);
  vol.Mount("emulate=strict,ro");
  // mount(2) itself, as `mount -i -o remount,rw` does: the kernel lifts its
  // read-only flag and tells the daemon nothing.
  REQUIRE(::mount(nullptr, vol.mountpoint().c_str(), nullptr, MS_REMOUNT, nullptr) == 0);
  REQUIRE(HasOption(MountPointOptions(vol.mountpoint()).value_or(""), "rw"));
  ExpectEveryChangeRefused(vol);
  CHECK(ReadFile(vol.Path("f")) == std::string(3 * 4096, 'a'));  // still serving
  vol.Unmount();
  CHECK(VolumeFiles(vol) == before);
}

TEST_CASE("a second mount of a device: ro beside rw is read-only, rw beside ro is refused",
          "[posix][mount][ro]") {
  TestVolume vol;
  Populate(vol);
  const std::string second = vol.NewMountPoint("second");

  vol.Mount("emulate=strict,nosuid");
  CommandResult ro = TestVolume::RunDaemon({vol.image(), second, "-o", "ro"});
  INFO(ro.Describe());
  REQUIRE(ro.exit_status == 0);
  CHECK(ro.err.empty());  // said in the log only
  const std::string opts = MountPointOptions(second).value_or("");
  INFO("second mount: " << opts);
  CHECK(HasOption(opts, "ro"));
  CHECK(HasOption(opts, "nosuid"));  // the first mount's flags are kept
  CHECK(OpenErrno(second + "/f", O_WRONLY) == EROFS);
  WriteFile(vol.Path("new"), "through the rw mount");
  CHECK(ReadFile(second + "/new") == "through the rw mount");
  CHECK(RunCommand({"umount", second}).exit_status == 0);

  vol.Remount("emulate=strict,ro");
  CommandResult rw = TestVolume::RunDaemon({vol.image(), second});
  INFO(rw.Describe());
  CHECK(rw.exit_status == 1);
  CHECK(Contains(rw.err, "mounted read-only on " + vol.mountpoint()));
  CHECK_FALSE(IsMounted(second));
  vol.Unmount();
}

}  // namespace
}  // namespace nosyncfs::test
