// Read-only mounts (-o ro): nothing on the device or in its metadata store
// changes, whatever is read; a device that needs recovery is refused with
// one line saying what is pending; the daemon refuses changes itself when
// the kernel's read-only flag is lifted behind its back; and a second mount
// of a device keeps the read-only rules a block device's mounts follow.
// Remount (fs/remount.h): ro and back to rw on a live mount, everything
// durable first, EBUSY while a file is open for writing, the options that
// may change and one line for those that may not.

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
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
// ---- remount (fs/remount.h) ----------------------------------------------------------

namespace {

CommandResult Remount(const TestVolume& vol, const std::string& options) {
  return vol.RunRemount(options);
}

bool SuperReadOnly(const TestVolume& vol) {
  return HasOption(MountSuperOptions(vol.mountpoint()).value_or(""), "ro");
}

size_t Lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

// A remount with `options` that must fail, saying why in one line whose
// text contains `why`.
void ExpectRemountRefused(const TestVolume& vol, const std::string& options,
                          const std::string& why = "") {
  CommandResult r = Remount(vol, options);
  INFO(r.Describe());
  CHECK(r.exit_status == 1);
  CHECK(Lines(r.err) == 1);
  CHECK(Contains(r.err, why));
}

}  // namespace

TEST_CASE(
    "remount,ro refuses every change with EROFS and keeps reads, and remount,rw lets them in",
          "[posix][mount][ro][remount]") {
  TestVolume vol;
  Populate(vol);
  vol.Mount();
  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    CommandResult ro = Remount(vol, "ro");
    INFO(ro.Describe());
    REQUIRE(ro.exit_status == 0);
    CHECK(ro.err.empty());
    CHECK(SuperReadOnly(vol));
    CHECK(HasOption(MountPointOptions(vol.mountpoint()).value_or(""), "ro"));
    ExpectEveryChangeRefused(vol);
    CHECK(ReadFile(vol.Path("f")) == std::string(3 * 4096, 'a'));
    CHECK(ListDir(vol.mountpoint()).count("d") == 1);
    char value[64];
    CHECK(::getxattr(vol.Path("f").c_str(), "user.kept", value, sizeof(value)) == 1);
    // Again: nothing to do, and no error.
    CHECK(Remount(vol, "ro").exit_status == 0);

    CommandResult rw = Remount(vol, "rw");
    INFO(rw.Describe());
    REQUIRE(rw.exit_status == 0);
    CHECK(rw.err.empty());
    CHECK_FALSE(SuperReadOnly(vol));
    WriteFile(vol.Path("new" + std::to_string(round)), "after remount,rw");
    REQUIRE(ErrnoOf(::mkdir(vol.Path("newdir" + std::to_string(round)).c_str(), 0755)) == 0);
    CHECK(ErrnoOf(::setxattr(vol.Path("f").c_str(), "user.x", "1", 1, 0)) == 0);
  }
  vol.Unmount();
  ExpectFsckClean(vol);
  vol.Mount();
  CHECK(ReadFile(vol.Path("new1")) == "after remount,rw");
}

TEST_CASE("remount,ro makes everything durable first", "[posix][mount][ro][remount][crash]") {
  TestVolume vol;
  vol.Mount();
  // Nothing of this is fsynced: only the remount can make it durable.
  WriteFile(vol.Path("unsynced"), Pattern(7, 300000));
  REQUIRE(ErrnoOf(::mkdir(vol.Path("dir").c_str(), 0755)) == 0);
  WriteFile(vol.Path("dir/inner"), "inner");
  REQUIRE(ErrnoOf(::chmod(vol.Path("dir/inner").c_str(), 0600)) == 0);
  CommandResult ro = Remount(vol, "ro");
  INFO(ro.Describe());
  REQUIRE(ro.exit_status == 0);
  // Read-only, nothing changes any more: unmounting writes nothing to the
  // device (the image holds only what was persisted: strict emulation).
  const auto before = SnapshotFiles({vol.image()});
  vol.KillDaemon();  // a power loss right after the remount
  CHECK(SnapshotFiles({vol.image()}) == before);
  vol.Mount();
  CHECK(ReadFile(vol.Path("unsynced")) == Pattern(7, 300000));
  CHECK(ReadFile(vol.Path("dir/inner")) == "inner");
  CHECK((MustStat(vol.Path("dir/inner")).st_mode & 07777) == 0600);
  vol.Unmount();
  ExpectFsckClean(vol);
}

TEST_CASE("remounted ro, the daemon refuses changes itself, and unmounting writes nothing",
          "[posix][mount][ro][remount]") {
  TestVolume vol;
  Populate(vol);
  vol.Mount();
  REQUIRE(Remount(vol, "ro").exit_status == 0);
  // mount(2) behind the daemon's back lifts the kernel's flag only.
  REQUIRE(::mount(nullptr, vol.mountpoint().c_str(), nullptr, MS_REMOUNT, nullptr) == 0);
  REQUIRE_FALSE(SuperReadOnly(vol));
  ExpectEveryChangeRefused(vol);
  const auto before = SnapshotFiles({vol.image()});
  vol.Unmount();
  CHECK(SnapshotFiles({vol.image()}) == before);
  ExpectFsckClean(vol);
}

TEST_CASE("remount,ro with a file open for writing is refused with EBUSY, and changes nothing",
          "[posix][mount][ro][remount]") {
  TestVolume vol;
  vol.Mount();
  Fd writer = MustOpen(vol.Path("f"), O_WRONLY | O_CREAT);
  ExpectRemountRefused(vol, "ro", "open for writing");
  CHECK_FALSE(SuperReadOnly(vol));
  MustPwrite(writer.get(), "still writable", 0);
  writer = Fd();
  CHECK(Remount(vol, "ro").exit_status == 0);  // once it is closed
  CHECK(Remount(vol, "rw").exit_status == 0);
  vol.Unmount();
}

TEST_CASE("remount changes atime, nf_punch and lease_break, and refuses the rest in one line",
          "[posix][mount][remount]") {
  TestVolume vol;
  vol.Mount("emulate=strict,noatime");
  WriteFile(vol.Path("f"), std::string(8 * 4096, 'a'));
  REQUIRE(ErrnoOf(::setxattr(vol.Path("f").c_str(), "user.nosync", "all", 3, 0)) == 0);
  const timespec old_atime = MustStat(vol.Path("f")).st_atim;
  WaitClockPast(old_atime);
  ReadFile(vol.Path("f"));
  CHECK(MustStat(vol.Path("f")).st_atim == old_atime);  // noatime
  REQUIRE(Remount(vol, "strictatime").exit_status == 0);
  ReadFile(vol.Path("f"));
  CHECK(old_atime < MustStat(vol.Path("f")).st_atim);

  REQUIRE(Remount(vol, "nf_punch=deny").exit_status == 0);
  {
    Fd fd = MustOpen(vol.Path("f"), O_RDWR);
    CHECK(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)) ==
          EPERM);
  }
  REQUIRE(Remount(vol, "nf_punch=split,lease_break=2").exit_status == 0);
  {
    Fd fd = MustOpen(vol.Path("f"), O_RDWR);
    CHECK(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)) ==
          0);
  }
  // Options named with their present values are taken (fstab may repeat
  // them); others cannot change on a live mount: one line each, nothing
  // changed, read-only included.
  CHECK(Remount(vol, "emulate=strict,lock_wait=3").exit_status == 0);
  for (const std::string opts : {"ro,emulate=none", "ro,meta=/tmp", "ro,direct=root",
                                 "ro,no_such_option", "ro,lease_break=0"}) {
    INFO(opts);
    ExpectRemountRefused(vol, opts);
    CHECK_FALSE(SuperReadOnly(vol));
  }
  CHECK(Contains(Remount(vol, "emulate=none").err, "emulate= cannot change"));
  WriteFile(vol.Path("g"), "still read-write");
  vol.Unmount();
}

TEST_CASE("a mount started with -o ro refuses remount,rw in one line",
          "[posix][mount][ro][remount]") {
  TestVolume vol;
  Populate(vol);
  vol.Mount("emulate=strict,ro");
  ExpectRemountRefused(vol, "rw", "-o ro");
  CHECK(SuperReadOnly(vol));
  ExpectEveryChangeRefused(vol);
  CHECK(Remount(vol, "ro").exit_status == 0);
  vol.Unmount();
}

TEST_CASE("remount needs a nosyncfs mount and root", "[posix][mount][remount]") {
  TestVolume vol;
  CommandResult none = Remount(vol, "ro");
  CHECK(none.exit_status == 1);
  CHECK(Contains(none.err, "nothing is mounted"));
  vol.Mount();
  CHECK(RunAs(kNobody, kNogroup, [&] {
          CommandResult r = Remount(vol, "ro");
          return r.exit_status == 1 && Contains(r.err, "CAP_SYS_ADMIN") ? 0 : 1;
        }) == 0);
  CHECK_FALSE(SuperReadOnly(vol));
  vol.Unmount();
}

TEST_CASE("remount,ro waits for files unlinked while open to be freed, as ext4",
          "[posix][mount][ro][remount]") {
  TestVolume vol;
  vol.Mount();
  const uint64_t free_before = MustStatvfs(vol.mountpoint()).f_bfree;
  WriteFile(vol.Path("f"), std::string(1 << 20, 'x'));
  Fd reader = MustOpen(vol.Path("f"), O_RDONLY);
  REQUIRE(ErrnoOf(::unlink(vol.Path("f").c_str())) == 0);
  // The kernel counts such a file as a removal still to come: busy.
  CommandResult busy = Remount(vol, "ro");
  INFO(busy.Describe());
  CHECK(busy.exit_status == 1);
  CHECK(Contains(busy.err, "EBUSY"));
  CHECK_FALSE(SuperReadOnly(vol));
  reader = Fd();
  CHECK(WaitUntil([&] { return MustStatvfs(vol.mountpoint()).f_bfree >= free_before; },
                  std::chrono::seconds(5)));
  CHECK(Remount(vol, "ro").exit_status == 0);
  vol.Unmount();
  ExpectFsckClean(vol);
}

}  // namespace nosyncfs::test
