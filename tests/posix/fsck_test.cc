// fsck.nosyncfs: clean after ordinary use and after a crash; refuses a
// mounted device; reports real inconsistencies.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {

TEST_CASE("fsck.nosyncfs: clean after a busy workload and a kill -9, refuses a mounted device",
          "[posix][fsck][persistence]") {
  TestVolume v;
  v.Mount();
  REQUIRE(ErrnoOf(mkdir(v.Path("a").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(mkdir(v.Path("a/b").c_str(), 0755)) == 0);
  WriteFile(v.Path("a/f"), Pattern(41, 50000));
  REQUIRE(ErrnoOf(link(v.Path("a/f").c_str(), v.Path("a/b/g").c_str())) == 0);
  REQUIRE(ErrnoOf(symlink("a/f", v.Path("s").c_str())) == 0);
  REQUIRE(ErrnoOf(rename(v.Path("a/b").c_str(), v.Path("b2").c_str())) == 0);
  // An unlinked-but-open file is an orphan at the moment of the crash.
  Fd open_file = MustOpen(v.Path("doomed"), O_CREAT | O_RDWR);
  MustPwrite(open_file.get(), Pattern(42, 20000), 0);
  REQUIRE(ErrnoOf(unlink(v.Path("doomed").c_str())) == 0);
  {
    Fd root = MustOpen(v.mountpoint(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fsync(root.get()) == 0);
  }
  CommandResult busy = RunCommand({BinPath("fsck.nosyncfs"), v.image()});
  CHECK(busy.exit_status == 8);
  CHECK(busy.err.find("in use") != std::string::npos);

  v.SigkillDaemon();
  open_file.reset();
  v.ClearDeadMount();
  CommandResult r = RunCommand({BinPath("fsck.nosyncfs"), v.image()});
  INFO(r.Describe() << "\n" << r.out);
  CHECK(r.exit_status == 0);
  CHECK(r.out.find(": clean") != std::string::npos);
  v.Mount();
  CHECK(ReadFile(v.Path("b2/g")) == Pattern(41, 50000));
  CHECK(OpenErrno(v.Path("doomed"), O_RDONLY) == ENOENT);
}

TEST_CASE("fsck.nosyncfs: a missing metadata store is reported, not guessed at",
          "[posix][fsck][badinput]") {
  TestVolume v;
  CommandResult r = RunCommand({BinPath("fsck.nosyncfs"), "-m", v.TempPath("nowhere"), v.image()});
  CHECK(r.exit_status == 8);
  CHECK(r.err.find("missing") != std::string::npos);
}

}  // namespace nosyncfs::test
