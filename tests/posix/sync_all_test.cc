// syncfs(2) does not reach FUSE daemons (Linux forwards FUSE_SYNCFS to
// virtiofs only), so on nosyncfs an fsync of any directory makes the whole
// file system durable. These tests pin both halves of that statement.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {

TEST_CASE("fsync of a directory makes every file's data durable (the syncfs substitute)",
          "[posix][persistence]") {
  TestVolume v;
  v.Mount();
  REQUIRE(ErrnoOf(mkdir(v.Path("d").c_str(), 0755)) == 0);
  // Two files in different directories, written and never fsynced.
  {
    Fd a = MustOpen(v.Path("a"), O_CREAT | O_WRONLY);
    MustPwrite(a.get(), Pattern(31, 50000), 0);
    Fd b = MustOpen(v.Path("d/b"), O_CREAT | O_WRONLY);
    MustPwrite(b.get(), Pattern(32, 70000), 0);
    // Overwrite after the blocks exist, so the data is not durable by way
    // of block allocation (new blocks are persisted when zero-filled).
    MustPwrite(a.get(), Pattern(33, 50000), 0);
    MustPwrite(b.get(), Pattern(34, 70000), 0);
    Fd dir = MustOpen(v.Path("d"), O_RDONLY | O_DIRECTORY);
    REQUIRE(fsync(dir.get()) == 0);
  }
  v.KillDaemon();
  v.Mount();
  CHECK(FirstMismatch(ReadFile(v.Path("a")), Pattern(33, 50000)).empty());
  CHECK(FirstMismatch(ReadFile(v.Path("d/b")), Pattern(34, 70000)).empty());
}

TEST_CASE("syncfs(2) returns success but, through FUSE, makes nothing durable",
          "[posix][persistence]") {
  TestVolume v;
  v.Mount();
  {
    Fd a = MustOpen(v.Path("a"), O_CREAT | O_WRONLY);
    MustPwrite(a.get(), Pattern(35, 8192), 0);
    REQUIRE(fsync(a.get()) == 0);
    Fd root = MustOpen(v.mountpoint(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fsync(root.get()) == 0);
    MustPwrite(a.get(), Pattern(36, 8192), 0);
    CHECK(syncfs(a.get()) == 0);
  }
  v.KillDaemon();
  v.Mount();
  // The kernel never told the daemon: the overwrite is lost. If a future
  // kernel forwards syncfs, this fails and the docs must change.
  CHECK(FirstMismatch(ReadFile(v.Path("a")), Pattern(35, 8192)).empty());
}

}  // namespace nosyncfs::test
