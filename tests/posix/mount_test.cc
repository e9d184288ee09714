// Mounting and unmounting: the mount as the kernel lists it, daemon mode
// (the parent returns only once mounted), mount options, clean exit after
// fusermount3 -u, and a second mount of a mounted device.

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

TEST_CASE("the mount is fuse.nosyncfs with default_permissions and allow_other",
          "[posix][mount]") {
  TestVolume vol;
  vol.Mount();
  CHECK(MountedFsType(vol.mountpoint()) == std::optional<std::string>("fuse.nosyncfs"));
  std::string opts = MountSuperOptions(vol.mountpoint()).value_or("");
  INFO("super options: " << opts);
  CHECK(HasOption(opts, "default_permissions"));
  if (::geteuid() == 0) CHECK(HasOption(opts, "allow_other"));
  // The root of the mount is a directory the file system answers for.
  struct stat st = MustStat(vol.Path(""));
  CHECK(S_ISDIR(st.st_mode));
  CHECK(st.st_dev != MustStat(vol.dir()).st_dev);
  vol.Unmount();  // checks that the daemon exits with status 0
  CHECK(vol.last_daemon_exit() == 0);
  CHECK_FALSE(IsMounted(vol.mountpoint()));
}

TEST_CASE("without -f the daemon returns only once mounted", "[posix][mount]") {
  TestVolume vol;
  CommandResult r = TestVolume::RunDaemon({vol.image(), vol.mountpoint()}, std::chrono::seconds(60));
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  // No waiting: the parent's exit promises the mount is there.
  REQUIRE(IsMounted(vol.mountpoint()));
  CHECK(MountedFsType(vol.mountpoint()) == std::optional<std::string>("fuse.nosyncfs"));
  WriteFile(vol.Path("f"), "daemonized");
  CHECK(ReadFile(vol.Path("f")) == "daemonized");

  CommandResult u = RunCommand({"fusermount3", "-u", vol.mountpoint()});
  INFO(u.Describe());
  CHECK(u.exit_status == 0);
  CHECK_FALSE(IsMounted(vol.mountpoint()));
  // The background daemon finishes its shutdown and lets go of the device.
  CHECK(vol.WaitUntilReleased());
  vol.Mount();
  CHECK(ReadFile(vol.Path("f")) == "daemonized");
  vol.Unmount();
}

TEST_CASE("mount options are accepted", "[posix][mount]") {
  TestVolume vol;
  for (const char* opts : {"emulate=strict", "emulate=none", "emulate=strict,nf_punch=split",
                           "nf_punch=deny,emulate=strict", "emulate=strict,meta="}) {
    std::string o = opts;
    if (o.back() == '=') o += vol.meta_dir();
    INFO("options " << o);
    vol.Mount(o);
    WriteFile(vol.Path(std::string("f-") + std::to_string(o.size())), o);
    vol.Unmount();
  }
  vol.Mount("");  // no -o at all
  CHECK(ListDir(vol.Path("")).size() == 5);
  vol.Unmount();
}

TEST_CASE("umount followed at once by a mount of the same device works, in a loop",
          "[posix][mount]") {
  TestVolume vol;
  vol.Mount();
  for (int i = 0; i < 12; ++i) {
    INFO("cycle " << i);
    WriteFile(vol.Path("f" + std::to_string(i)), Pattern(200 + i, 100000));
    // Every other cycle the old daemon is still shutting down (held, so
    // certainly) when the new mount starts: it must wait for the lock.
    vol.RemountAtOnce(std::chrono::milliseconds(i % 2 == 1 ? 400 : 0));
  }
  for (int i = 0; i < 12; ++i) {
    CHECK(ReadFile(vol.Path("f" + std::to_string(i))) == Pattern(200 + i, 100000));
  }
  // The waiting mounts said so.
  const std::string log = vol.DaemonLog();
  size_t waits = 0;
  for (size_t at = log.find("waiting up to"); at != std::string::npos;
       at = log.find("waiting up to", at + 1)) {
    ++waits;
  }
  CHECK(waits >= 6);
  vol.Unmount();
}

TEST_CASE("a mount that succeeds prints nothing, even right behind an unmount", "[posix][mount]") {
  TestVolume vol;
  const std::vector<std::string> mount = {vol.image(), vol.mountpoint(), "-o", "emulate=strict"};
  CommandResult first = TestVolume::RunDaemon(mount);
  REQUIRE(first.exit_status == 0);
  for (int i = 0; i < 4; ++i) {
    INFO("cycle " << i);
    WriteFile(vol.Path("f" + std::to_string(i)), Pattern(i, 1 << 20));
    // As a script does: umount, then mount at once. Every other cycle the
    // old daemon is held (stopped) for a while after the unmount, so the
    // new mount certainly finds the device still locked, and waits.
    std::vector<pid_t> old = vol.Holders();
    REQUIRE(old.size() == 1);
    const bool hold = i % 2 == 0;
    // Continued 300 ms after the unmount, and in every outcome.
    struct Resume {
      pid_t pid;
      std::thread thread;
      ~Resume() {
        if (thread.joinable()) thread.join();
        ::kill(pid, SIGCONT);
      }
    } resume{old[0], {}};
    if (hold) REQUIRE(::kill(old[0], SIGSTOP) == 0);  // our daemon, by pid
    // umount(2) itself: umount(8) would look at the mount point first,
    // which a stopped daemon cannot answer.
    REQUIRE(ErrnoOf(::umount2(vol.mountpoint().c_str(), 0)) == 0);
    resume.thread = std::thread([pid = old[0]] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      ::kill(pid, SIGCONT);
    });
    CommandResult r = TestVolume::RunDaemon(mount);
    INFO(r.Describe());
    REQUIRE(r.exit_status == 0);
    CHECK(r.err.empty());
    CHECK(r.out.empty());
  }
  CHECK(ReadFile(vol.Path("f3")) == Pattern(3, 1 << 20));
  REQUIRE(RunCommand({"umount", vol.mountpoint()}).exit_status == 0);
  REQUIRE(vol.WaitUntilReleased());
}

TEST_CASE("unmount with open files waits for them and exits cleanly", "[posix][mount]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "data");
  {
    Fd fd = MustOpen(vol.Path("f"), O_RDONLY);
    // Busy: a plain unmount is refused while a file is open.
    CommandResult busy = RunCommand({"fusermount3", "-u", vol.mountpoint()});
    CHECK(busy.exit_status != 0);
    CHECK(IsMounted(vol.mountpoint()));
    CHECK(MustPread(fd.get(), 10, 0) == "data");
  }
  vol.Unmount();
  vol.Mount();
  CHECK(ReadFile(vol.Path("f")) == "data");
}

}  // namespace

TEST_CASE("a second mount of a mounted device shares the first", "[posix][mount]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "through the first");
  const std::string second = vol.NewMountPoint("second");
  for (bool foreground : {true, false}) {
    INFO((foreground ? "nosyncfs -f" : "nosyncfs"));
    std::vector<std::string> args = {vol.image(), second};
    if (foreground) args.push_back("-f");
    CommandResult r = TestVolume::RunDaemon(args);
    INFO(r.Describe());
    // It returns at once: the first mount's daemon serves it. It says so in
    // its log, which is stderr in the foreground only: a mount that
    // succeeds prints nothing.
    REQUIRE(r.exit_status == 0);
    if (foreground) {
      CHECK(r.err.find("already mounted on " + vol.mountpoint()) != std::string::npos);
    } else {
      CHECK(r.err.empty());
    }
    CHECK(MountedFsType(second) == "fuse.nosyncfs");

    // One file system under two names.
    const std::string p2 = second + "/f";
    CHECK(ReadFile(p2) == "through the first");
    CHECK(MustStat(p2).st_ino == MustStat(vol.Path("f")).st_ino);
    WriteFile(second + "/g", "through the second");
    CHECK(ReadFile(vol.Path("g")) == "through the second");
    REQUIRE(ErrnoOf(::mkdir((second + "/d").c_str(), 0755)) == 0);
    CHECK(S_ISDIR(MustStat(vol.Path("d")).st_mode));
    // Within one mount point rename and link work; between the two they
    // answer EXDEV, as for two mounts of an ext4 device.
    REQUIRE(ErrnoOf(::rename((second + "/g").c_str(), (second + "/d/g").c_str())) == 0);
    CHECK(ErrnoOf(::rename(vol.Path("d/g").c_str(), (second + "/h").c_str())) == EXDEV);
    CHECK(ErrnoOf(::link(vol.Path("f").c_str(), (second + "/f2").c_str())) == EXDEV);
    REQUIRE(ErrnoOf(::link((second + "/f").c_str(), (second + "/f2").c_str())) == 0);
    CHECK(MustStat(vol.Path("f")).st_nlink == 2);
    CHECK(ErrnoOf(::rename(vol.Path("f2").c_str(), vol.Path("d/f3").c_str())) == 0);

    // Unmounting the second leaves the first serving.
    REQUIRE(ErrnoOf(::umount2(second.c_str(), 0)) == 0);
    CHECK(MountedFsType(second) == std::nullopt);
    CHECK(ReadFile(vol.Path("d/f3")) == "through the first");
    REQUIRE(ErrnoOf(::unlink(vol.Path("d/f3").c_str())) == 0);
    REQUIRE(ErrnoOf(::unlink(vol.Path("d/g").c_str())) == 0);
    REQUIRE(ErrnoOf(::rmdir(vol.Path("d").c_str())) == 0);
  }
  // The data survive the daemon's ordinary end.
  vol.Remount();
  CHECK(ReadFile(vol.Path("f")) == "through the first");
  CHECK(MustStat(vol.Path("f")).st_nlink == 1);
}

TEST_CASE("the daemon of a shared mount lives until its last mount goes", "[posix][mount]") {
  TestVolume vol;
  vol.Mount();
  const std::string second = vol.NewMountPoint("second");
  CommandResult r = TestVolume::RunDaemon({vol.image(), second});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  // The first mount point goes; the file system stays, served through the
  // second, by the same daemon.
  REQUIRE(RunCommand({"fusermount3", "-u", vol.mountpoint()}).exit_status == 0);
  WriteFile(second + "/f", "still served");
  CHECK(ReadFile(second + "/f") == "still served");
  CHECK(::kill(vol.daemon_pid(), 0) == 0);
  // Once the last mount is gone the daemon finishes; Remount waits for it.
  REQUIRE(ErrnoOf(::umount2(second.c_str(), 0)) == 0);
  vol.Unmount();
  vol.Mount();
  CHECK(ReadFile(vol.Path("f")) == "still served");
}

}  // namespace nosyncfs::test
