// Mounting as a Linux file system is mounted: the options fstab, mount(8)
// and systemd pass (honoured or ignored, never rejected), mount(8) itself
// through mount.fuse3 and an fstab line, and where the daemon's log goes.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

// mount(8) runs helpers with a clean PATH, so the build tree's daemon is
// named by mount.fuse3's "PROGRAM#SOURCE" form of type fuse. The installed
// package is mounted as -t fuse.nosyncfs (tests/install).
std::string FuseSource(const TestVolume& vol) { return BinPath("nosyncfs") + "#" + vol.image(); }

bool HaveMountFuseHelper() {
  struct stat st;
  return ::stat("/sbin/mount.fuse3", &st) == 0 || ::stat("/usr/sbin/mount.fuse3", &st) == 0;
}

TEST_CASE("fstab and systemd mount options are honoured or ignored, never rejected",
          "[posix][mount][options]") {
  TestVolume vol;
  vol.Mount(
      "emulate=strict,defaults,rw,noatime,nodev,nosuid,noexec,_netdev,noauto,nofail,auto,"
      "user,users,nouser,owner,group,comment=systemd.automount,x-systemd.automount,"
      "x-systemd.device-timeout=5s,x-systemd.requires=pmem.service,x-mount.mkdir,"
      "x-initrd.mount,lazytime,dirsync,nodiratime");
  std::string opts = MountPointOptions(vol.mountpoint()).value_or("");
  INFO("mount options: " << opts);
  CHECK(HasOption(opts, "rw"));
  CHECK(HasOption(opts, "nodev"));
  CHECK(HasOption(opts, "nosuid"));
  CHECK(HasOption(opts, "noexec"));
  CHECK(HasOption(opts, "noatime"));

  // noexec is real: a script with its x bits set cannot be executed.
  WriteFile(vol.Path("script"), "#!/bin/sh\nexit 0\n", 0755);
  CHECK(ErrnoOf(::access(vol.Path("script").c_str(), X_OK)) == EACCES);
  CommandResult run = RunCommand({vol.Path("script")});
  CHECK(run.exit_status != 0);
  vol.Unmount();

  // relatime (the kernel's default) and atime flags also pass.
  vol.Mount("emulate=strict,relatime,exec,dev,suid,async");
  opts = MountPointOptions(vol.mountpoint()).value_or("");
  INFO("mount options: " << opts);
  CHECK(HasOption(opts, "relatime"));
  CHECK_FALSE(HasOption(opts, "noexec"));
  CHECK(RunCommand({vol.Path("script")}).exit_status == 0);
  vol.Unmount();
}

TEST_CASE("an unknown mount option is one clear error", "[posix][mount][options]") {
  TestVolume vol;
  for (std::string bad : {"bogus", "emulate=strict,noatimes", "lock_wait=soon", "nosymfollow"}) {
    CommandResult r = TestVolume::RunDaemon({vol.image(), vol.mountpoint(), "-o", bad});
    INFO("-o " << bad << ": " << r.Describe());
    CHECK(r.exit_status == 1);
    CHECK(r.err.rfind("nosyncfs: ", 0) == 0);
    CHECK_FALSE(IsMounted(vol.mountpoint()));
  }
  CommandResult r = TestVolume::RunDaemon({vol.image(), vol.mountpoint(), "-o", "bogus"});
  CHECK(Contains(r.err, "unknown mount option 'bogus'"));
  r = TestVolume::RunDaemon({vol.image(), vol.mountpoint(), "-t", "ext4"});
  CHECK(r.exit_status == 1);
  CHECK(Contains(r.err, "cannot mount type ext4"));
}

TEST_CASE("mount(8) and an fstab line mount through mount.fuse3",
          "[posix][mount][options]") {
  if (!HaveMountFuseHelper()) {
    WARN("skipped: no /sbin/mount.fuse3 (package fuse3)");
    return;
  }
  TestVolume vol;
  CommandResult m = RunCommand({"mount", "-t", "fuse", "-o", "emulate=strict,noatime,nodev",
                                FuseSource(vol), vol.mountpoint()});
  INFO("mount -t: " << m.Describe());
  REQUIRE(m.exit_status == 0);
  REQUIRE(IsMounted(vol.mountpoint()));
  CHECK(MountedFsType(vol.mountpoint()) == std::optional<std::string>("fuse.nosyncfs"));
  CHECK(HasOption(MountPointOptions(vol.mountpoint()).value_or(""), "nodev"));
  WriteFile(vol.Path("via-mount"), "mount(8)");
  CommandResult u = RunCommand({"umount", vol.mountpoint()});
  INFO("umount: " << u.Describe());
  CHECK(u.exit_status == 0);
  REQUIRE(vol.WaitUntilReleased());

  // The fstab line of conf/fstab.example, in a private fstab.
  std::string fstab = vol.TempPath("fstab");
  WriteFile(fstab, "# test fstab\n" + FuseSource(vol) + " " + vol.mountpoint() +
                       " fuse defaults,emulate=strict,nf_punch=split,_netdev,noauto,"
                       "nofail,x-systemd.automount 0 0\n");
  m = RunCommand({"mount", "-T", fstab, vol.mountpoint()});
  INFO("mount -T: " << m.Describe());
  REQUIRE(m.exit_status == 0);
  REQUIRE(IsMounted(vol.mountpoint()));
  CHECK(ReadFile(vol.Path("via-mount")) == "mount(8)");
  u = RunCommand({"umount", vol.mountpoint()});
  CHECK(u.exit_status == 0);
  CHECK(vol.WaitUntilReleased());
  ExpectFsckClean(vol);
}

// Sets f's atime to a minute after its mtime (newer than mtime and ctime,
// and not a day old: relatime leaves it), reads f, returns the new atime.
timespec AtimeAfterRead(const TestVolume& vol, const std::string& name) {
  std::string path = vol.Path(name);
  struct stat st = MustStat(path);
  timespec times[2] = {{st.st_mtim.tv_sec + 60, 0}, {0, UTIME_OMIT}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
  (void)ReadFile(path);
  return MustStat(path).st_atim;
}

TEST_CASE("noatime, relatime and strictatime decide when a read updates atime",
          "[posix][mount][options]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "atime");
  const time_t set_to = MustStat(vol.Path("f")).st_mtim.tv_sec + 60;
  CHECK(AtimeAfterRead(vol, "f").tv_sec == set_to);  // relatime by default
  vol.Remount("emulate=strict,strictatime");
  CHECK(AtimeAfterRead(vol, "f").tv_sec != set_to);
  vol.Remount("emulate=strict,strictatime,noatime");
  timespec old_atime = {set_to - 86400 * 2, 0};  // two days old: relatime would update
  timespec times[2] = {old_atime, {0, UTIME_OMIT}};
  REQUIRE(::utimensat(AT_FDCWD, vol.Path("f").c_str(), times, 0) == 0);
  (void)ReadFile(vol.Path("f"));
  CHECK(MustStat(vol.Path("f")).st_atim.tv_sec == old_atime.tv_sec);
  CHECK(HasOption(MountPointOptions(vol.mountpoint()).value_or(""), "noatime"));
  // nodiratime: listing a directory leaves its atime alone.
  REQUIRE(::mkdir(vol.Path("d").c_str(), 0755) == 0);
  vol.Remount("emulate=strict,strictatime,nodiratime");
  REQUIRE(::utimensat(AT_FDCWD, vol.Path("d").c_str(), times, 0) == 0);
  (void)ListDir(vol.Path("d"));
  CHECK(MustStat(vol.Path("d")).st_atim.tv_sec == old_atime.tv_sec);
  vol.Remount("emulate=strict,strictatime");
  (void)ListDir(vol.Path("d"));
  CHECK(MustStat(vol.Path("d")).st_atim.tv_sec != old_atime.tv_sec);
  vol.Unmount();
}

TEST_CASE("in the foreground every log line names the device", "[posix][mount][log]") {
  TestVolume vol;
  vol.Mount();
  vol.Unmount();
  std::string log = vol.DaemonLog();
  INFO(log);
  CHECK(Contains(log, "info: " + vol.image() + ": mounted on " + vol.mountpoint()));
  CHECK(Contains(log, "info: " + vol.image() + ": unmounted " + vol.mountpoint()));
  CHECK(Contains(log, " nosyncfs["));
}

TEST_CASE("recovery at mount shows its progress on a terminal, and nothing elsewhere",
          "[posix][mount][log]") {
  TestVolume vol;
  vol.Mount();
  for (int i = 0; i < 50; ++i) WriteFile(vol.Path("f" + std::to_string(i)), "x");
  SyncWholeFs(vol.mountpoint());
  vol.KillDaemon();  // 50 and more transactions for the next mount to replay
  // Progress is silent for work done within a second, as this replay is:
  // the test hook shows it from the start. On a terminal (script(1) gives
  // the daemon one) a bar is drawn in place.
  const std::string command = "env NSF_PROGRESS_AT_ONCE=1 " + BinPath("nosyncfs") + " " +
                              vol.image() + " " + vol.mountpoint() + " -o emulate=strict";
  CommandResult r = RunCommand({"script", "-qec", command, "/dev/null"});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  CHECK(Contains(r.out, "nosyncfs: " + vol.image() + ": replaying the log"));
  CHECK(Contains(r.out, "100%"));
  CHECK(ListDir(vol.mountpoint()).size() == 50);
  CHECK(RunCommand({"fusermount3", "-u", vol.mountpoint()}).exit_status == 0);
  REQUIRE(vol.WaitUntilReleased());

  // Anywhere else a mount that succeeds prints nothing, even with the hook.
  vol.Mount();
  WriteFile(vol.Path("h"), "z");
  SyncWholeFs(vol.mountpoint());
  vol.KillDaemon();
  CommandResult silent = RunCommand({"env", "NSF_PROGRESS_AT_ONCE=1", BinPath("nosyncfs"),
                                     vol.image(), vol.mountpoint(), "-o", "emulate=strict"});
  INFO(silent.Describe());
  REQUIRE(silent.exit_status == 0);
  CHECK(silent.err.empty());
  CHECK(RunCommand({"fusermount3", "-u", vol.mountpoint()}).exit_status == 0);
  REQUIRE(vol.WaitUntilReleased());

  // Without the hook, a quick recovery prints nothing.
  vol.Mount();
  WriteFile(vol.Path("g"), "y");
  SyncWholeFs(vol.mountpoint());
  vol.KillDaemon();
  CommandResult quiet =
      TestVolume::RunDaemon({vol.image(), vol.mountpoint(), "-o", "emulate=strict"});
  INFO(quiet.Describe());
  REQUIRE(quiet.exit_status == 0);
  CHECK_FALSE(Contains(quiet.err, "replaying the log"));
  CHECK(RunCommand({"fusermount3", "-u", vol.mountpoint()}).exit_status == 0);
  REQUIRE(vol.WaitUntilReleased());
}

// Stands in for syslog: a datagram socket at /dev/log, removed in every
// outcome. Only made where /dev/log does not exist (a machine without a
// syslog daemon), so nothing real is ever replaced.
class FakeSyslog {
 public:
  FakeSyslog() {
    struct stat st;
    if (::lstat("/dev/log", &st) == 0) return;
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "/dev/log");
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }
  }
  ~FakeSyslog() {
    if (fd_ < 0) return;
    ::close(fd_);
    ::unlink("/dev/log");
  }
  bool ok() const { return fd_ >= 0; }
  // Every message received so far, one per line.
  std::string Drain() {
    std::string out;
    char buf[2048];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n)) += "\n";
    return out;
  }

 private:
  int fd_ = -1;
};

TEST_CASE("a daemonized nosyncfs logs to syslog, each line naming the device",
          "[posix][mount][log]") {
  FakeSyslog syslog;
  if (!syslog.ok()) {
    WARN("skipped: /dev/log exists (a real syslog) or cannot be created");
    return;
  }
  TestVolume vol;
  CommandResult r = TestVolume::RunDaemon({vol.image(), vol.mountpoint(), "-o", "emulate=strict"});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  REQUIRE(IsMounted(vol.mountpoint()));
  CHECK(RunCommand({"fusermount3", "-u", vol.mountpoint()}).exit_status == 0);
  REQUIRE(vol.WaitUntilReleased());
  std::string messages = syslog.Drain();
  INFO("syslog:\n" << messages);
  // <priority>TIMESTAMP nosyncfs[PID]: DEVICE: message (LOG_DAEMON|LOG_INFO is 30).
  CHECK(Contains(messages, "<30>"));
  CHECK(Contains(messages, "nosyncfs["));
  CHECK(Contains(messages, "]: " + vol.image() + ": mounted on " + vol.mountpoint()));
  CHECK(Contains(messages, "]: " + vol.image() + ": unmounted " + vol.mountpoint()));
}

}  // namespace
}  // namespace nosyncfs::test
