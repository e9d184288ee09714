// Mounting and unmounting: the mount as the kernel lists it, daemon mode
// (the parent returns only once mounted), mount options, clean exit after
// fusermount3 -u.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

bool HasOption(const std::string& options, const std::string& name) {
  return ("," + options + ",").find("," + name + ",") != std::string::npos;
}

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
}  // namespace nosyncfs::test
