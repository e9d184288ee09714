// Attributes on a real mount: chmod, chown, utimensat (nanoseconds,
// UTIME_NOW, UTIME_OMIT), timestamps updated as Linux file systems do, and
// permission checks (default_permissions) as an unprivileged user.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

// A fixed time long ago, so that "the operation updated the timestamp" is
// visible without waiting for the clock.
constexpr timespec kOld = {1000000000, 123456789};  // 2001-09-09

void SetTimes(const std::string& path, timespec atime, timespec mtime, int flags = 0) {
  timespec t[2] = {atime, mtime};
  INFO("utimensat " << path);
  REQUIRE(ErrnoOf(::utimensat(AT_FDCWD, path.c_str(), t, flags)) == 0);
}

// Runs `fn` as nobody and returns the errno it reports.
int AsNobody(const std::function<int()>& fn) { return RunAs(kNobody, kNogroup, fn); }

TEST_CASE("chmod sets permission bits and updates ctime", "[posix][attr]") {
  TestVolume vol;
  vol.Mount();
  ::umask(0);

  WriteFile(vol.Path("f"), "data", 0644);
  SetTimes(vol.Path("f"), kOld, kOld);
  struct stat st0 = MustStat(vol.Path("f"));
  WaitClockPast(st0.st_ctim);

  REQUIRE(ErrnoOf(::chmod(vol.Path("f").c_str(), 0751)) == 0);
  struct stat st = MustStat(vol.Path("f"));
  CHECK((st.st_mode & 07777) == 0751);
  CHECK(S_ISREG(st.st_mode));
  CHECK(st0.st_ctim < st.st_ctim);
  CHECK(st.st_mtim == kOld);  // chmod does not touch mtime
  CHECK(st.st_atim == kOld);

  for (mode_t mode : {04755, 02755, 01755, 07777, 0000, 0600}) {
    INFO("mode 0" << std::oct << mode);
    REQUIRE(ErrnoOf(::chmod(vol.Path("f").c_str(), mode)) == 0);
    CHECK((MustStat(vol.Path("f")).st_mode & 07777) == mode);
  }
  {
    Fd fd = MustOpen(vol.Path("f"), O_RDONLY);
    REQUIRE(ErrnoOf(::fchmod(fd.get(), 0640)) == 0);
    CHECK((MustFstat(fd.get()).st_mode & 07777) == 0640);
  }
  CHECK(ReadFile(vol.Path("f")) == "data");

  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::chmod(vol.Path("d").c_str(), 01777)) == 0);
  CHECK(MustStat(vol.Path("d")).st_mode == (S_IFDIR | 01777));

  // chmod follows symlinks.
  REQUIRE(ErrnoOf(::symlink("f", vol.Path("sym").c_str())) == 0);
  REQUIRE(ErrnoOf(::chmod(vol.Path("sym").c_str(), 0604)) == 0);
  CHECK((MustStat(vol.Path("f")).st_mode & 07777) == 0604);
  CHECK((MustLstat(vol.Path("sym")).st_mode & 0777) == 0777);

  CHECK(ErrnoOf(::chmod(vol.Path("missing").c_str(), 0644)) == ENOENT);
}

TEST_CASE("chown changes owner and group and clears set-id bits", "[posix][attr]") {
  TestVolume vol;
  vol.Mount();
  ::umask(0);

  WriteFile(vol.Path("f"), "data", 0644);
  struct stat st0 = MustStat(vol.Path("f"));
  WaitClockPast(st0.st_ctim);
  REQUIRE(ErrnoOf(::chown(vol.Path("f").c_str(), 1000, 2000)) == 0);
  struct stat st = MustStat(vol.Path("f"));
  CHECK(st.st_uid == 1000);
  CHECK(st.st_gid == 2000);
  CHECK(st0.st_ctim < st.st_ctim);
  CHECK(st.st_mtim == st0.st_mtim);

  // -1 leaves that id alone.
  REQUIRE(ErrnoOf(::chown(vol.Path("f").c_str(), -1, 3000)) == 0);
  CHECK(MustStat(vol.Path("f")).st_uid == 1000);
  CHECK(MustStat(vol.Path("f")).st_gid == 3000);
  REQUIRE(ErrnoOf(::chown(vol.Path("f").c_str(), 4000, -1)) == 0);
  CHECK(MustStat(vol.Path("f")).st_uid == 4000);
  CHECK(MustStat(vol.Path("f")).st_gid == 3000);
  {
    Fd fd = MustOpen(vol.Path("f"), O_RDONLY);
    REQUIRE(ErrnoOf(::fchown(fd.get(), 0, 0)) == 0);
    CHECK(MustFstat(fd.get()).st_uid == 0);
  }

  // lchown changes the link, not its target.
  REQUIRE(ErrnoOf(::symlink("f", vol.Path("sym").c_str())) == 0);
  REQUIRE(ErrnoOf(::lchown(vol.Path("sym").c_str(), 77, 88)) == 0);
  CHECK(MustLstat(vol.Path("sym")).st_uid == 77);
  CHECK(MustLstat(vol.Path("sym")).st_gid == 88);
  CHECK(MustStat(vol.Path("f")).st_uid == 0);

  // Changing the owner of a regular file clears set-user-ID, and
  // set-group-ID when group execute is set (chown(2), Linux).
  REQUIRE(ErrnoOf(::chmod(vol.Path("f").c_str(), 06755)) == 0);
  REQUIRE(ErrnoOf(::chown(vol.Path("f").c_str(), 5, 5)) == 0);
  CHECK((MustStat(vol.Path("f")).st_mode & 07777) == 0755);
  // Directories keep set-group-ID. (mkdir(2) ignores S_ISGID in its mode
  // argument on Linux, so chmod sets it.)
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::chmod(vol.Path("d").c_str(), 02755)) == 0);
  REQUIRE(ErrnoOf(::chown(vol.Path("d").c_str(), 5, 5)) == 0);
  CHECK((MustStat(vol.Path("d")).st_mode & 07777) == 02755);
  CHECK(MustStat(vol.Path("d")).st_uid == 5);
}

TEST_CASE("utimensat sets nanosecond timestamps with UTIME_NOW and UTIME_OMIT", "[posix][attr]") {
  TestVolume vol;
  vol.Mount();

  WriteFile(vol.Path("f"), "data");
  const timespec a = {1234567890, 123456789};
  const timespec m = {1111111111, 987654321};
  timespec before = CoarseNow();
  SetTimes(vol.Path("f"), a, m);
  timespec after = RealNow();
  struct stat st = MustStat(vol.Path("f"));
  CHECK(st.st_atim == a);
  CHECK(st.st_mtim == m);
  // ctime is set to the current time by any attribute change.
  CHECK(before <= st.st_ctim);
  CHECK(st.st_ctim <= after);

  // UTIME_OMIT leaves one alone.
  SetTimes(vol.Path("f"), timespec{0, UTIME_OMIT}, timespec{2000000000, 1});
  st = MustStat(vol.Path("f"));
  CHECK(st.st_atim == a);
  CHECK(st.st_mtim == (timespec{2000000000, 1}));
  SetTimes(vol.Path("f"), timespec{3, 999999999}, timespec{0, UTIME_OMIT});
  st = MustStat(vol.Path("f"));
  CHECK(st.st_atim == (timespec{3, 999999999}));
  CHECK(st.st_mtim == (timespec{2000000000, 1}));

  // UTIME_NOW sets the current time.
  before = CoarseNow();
  SetTimes(vol.Path("f"), timespec{0, UTIME_OMIT}, timespec{0, UTIME_NOW});
  after = RealNow();
  st = MustStat(vol.Path("f"));
  CHECK(st.st_atim == (timespec{3, 999999999}));
  CHECK(before <= st.st_mtim);
  CHECK(st.st_mtim <= after);

  // NULL times: both now.
  before = CoarseNow();
  REQUIRE(ErrnoOf(::utimensat(AT_FDCWD, vol.Path("f").c_str(), nullptr, 0)) == 0);
  after = RealNow();
  st = MustStat(vol.Path("f"));
  CHECK(before <= st.st_atim);
  CHECK(st.st_atim <= after);
  CHECK(before <= st.st_mtim);
  CHECK(st.st_mtim <= after);

  // Far future (past 2038) and through a descriptor.
  {
    Fd fd = MustOpen(vol.Path("f"), O_RDONLY);
    timespec t[2] = {{4102444800, 5}, {4102444801, 999999999}};
    REQUIRE(ErrnoOf(::futimens(fd.get(), t)) == 0);
  }
  st = MustStat(vol.Path("f"));
  CHECK(st.st_atim == (timespec{4102444800, 5}));
  CHECK(st.st_mtim == (timespec{4102444801, 999999999}));

  // On a symlink itself with AT_SYMLINK_NOFOLLOW; the target is untouched.
  REQUIRE(ErrnoOf(::symlink("f", vol.Path("sym").c_str())) == 0);
  SetTimes(vol.Path("sym"), timespec{100, 1}, timespec{200, 2}, AT_SYMLINK_NOFOLLOW);
  CHECK(MustLstat(vol.Path("sym")).st_mtim == (timespec{200, 2}));
  CHECK(MustStat(vol.Path("f")).st_mtim == (timespec{4102444801, 999999999}));

  // Directories too.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  SetTimes(vol.Path("d"), a, m);
  CHECK(MustStat(vol.Path("d")).st_mtim == m);
  CHECK(MustStat(vol.Path("d")).st_atim == a);
}

TEST_CASE("write truncate and O_TRUNC update mtime and ctime", "[posix][attr][time]") {
  TestVolume vol;
  vol.Mount();

  WriteFile(vol.Path("f"), "0123456789");
  Fd fd = MustOpen(vol.Path("f"), O_RDWR);

  auto expect_modified = [&](const char* what, const std::function<void()>& op) {
    INFO(what);
    SetTimes(vol.Path("f"), kOld, kOld);
    struct stat st0 = MustStat(vol.Path("f"));
    WaitClockPast(st0.st_ctim);
    timespec before = CoarseNow();
    op();
    timespec after = RealNow();
    struct stat st = MustStat(vol.Path("f"));
    CHECK(before <= st.st_mtim);
    CHECK(st.st_mtim <= after);
    CHECK(st0.st_ctim < st.st_ctim);
    CHECK(st.st_ctim <= after);
  };
  expect_modified("pwrite", [&] { MustPwrite(fd.get(), "abc", 3); });
  expect_modified("write extending", [&] { MustPwrite(fd.get(), "tail", 10); });
  expect_modified("ftruncate down", [&] { REQUIRE(::ftruncate(fd.get(), 5) == 0); });
  expect_modified("truncate up", [&] { REQUIRE(::truncate(vol.Path("f").c_str(), 100) == 0); });
  expect_modified("open O_TRUNC", [&] {
    Fd t = MustOpen(vol.Path("f"), O_WRONLY | O_TRUNC);
  });
  expect_modified("fallocate", [&] { REQUIRE(::fallocate(fd.get(), 0, 0, 8192) == 0); });
  // open(2): O_TRUNC of an existing file marks mtime and ctime for update,
  // even when it was already empty.
  REQUIRE(::ftruncate(fd.get(), 0) == 0);
  expect_modified("open O_TRUNC of an empty file", [&] {
    Fd t = MustOpen(vol.Path("f"), O_WRONLY | O_TRUNC);
  });

  // Reading changes neither mtime nor ctime.
  SetTimes(vol.Path("f"), kOld, kOld);
  struct stat st0 = MustStat(vol.Path("f"));
  WaitClockPast(st0.st_ctim);
  MustPread(fd.get(), 100, 0);
  struct stat st = MustStat(vol.Path("f"));
  CHECK(st.st_mtim == kOld);
  CHECK(st.st_ctim == st0.st_ctim);
}

// The mount is relatime (the kernel's default): reading updates atime when
// it is not newer than mtime or ctime, or is more than a day old, and
// otherwise leaves it alone. With FUSE the file system keeps atime itself.
TEST_CASE("reads update atime as relatime does", "[posix][attr][time]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "some data");
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  WriteFile(vol.Path("d/entry"), "");

  // atime older than mtime (and ctime): a read sets it to now.
  SetTimes(vol.Path("f"), kOld, timespec{kOld.tv_sec + 10, 0});
  timespec before = CoarseNow();
  ReadFile(vol.Path("f"));
  timespec after = RealNow();
  struct stat st = MustStat(vol.Path("f"));
  CHECK(before <= st.st_atim);
  CHECK(st.st_atim <= after);
  CHECK(st.st_mtim == (timespec{kOld.tv_sec + 10, 0}));

  // Now newer than both and less than a day old: another read keeps it.
  timespec first = st.st_atim;
  WaitClockPast(first);
  ReadFile(vol.Path("f"));
  CHECK(MustStat(vol.Path("f")).st_atim == first);

  // Listing a directory is a read of it, too.
  SetTimes(vol.Path("d"), kOld, timespec{kOld.tv_sec + 10, 0});
  before = CoarseNow();
  ListDir(vol.Path("d"));
  after = RealNow();
  st = MustStat(vol.Path("d"));
  CHECK(before <= st.st_atim);
  CHECK(st.st_atim <= after);
  CHECK(st.st_mtim == (timespec{kOld.tv_sec + 10, 0}));

  // Writing is not reading: atime stays.
  SetTimes(vol.Path("f"), kOld, kOld);
  {
    Fd fd = MustOpen(vol.Path("f"), O_WRONLY);
    MustPwrite(fd.get(), "x", 0);
  }
  CHECK(MustStat(vol.Path("f")).st_atim == kOld);
}

TEST_CASE("ctime changes when links and ownership change", "[posix][attr][time]") {
  TestVolume vol;
  vol.Mount();

  WriteFile(vol.Path("f"), "x");
  auto expect_ctime = [&](const char* what, const std::function<void()>& op) {
    INFO(what);
    SetTimes(vol.Path("f"), kOld, kOld);
    struct stat st0 = MustStat(vol.Path("f"));
    WaitClockPast(st0.st_ctim);
    op();
    struct stat st = MustStat(vol.Path("f"));
    CHECK(st0.st_ctim < st.st_ctim);
    CHECK(st.st_mtim == kOld);  // none of these modify the data
  };
  expect_ctime("link", [&] { REQUIRE(::link(vol.Path("f").c_str(), vol.Path("g").c_str()) == 0); });
  expect_ctime("unlink of another name", [&] { REQUIRE(::unlink(vol.Path("g").c_str()) == 0); });
  expect_ctime("chmod", [&] { REQUIRE(::chmod(vol.Path("f").c_str(), 0600) == 0); });
  expect_ctime("chown", [&] { REQUIRE(::chown(vol.Path("f").c_str(), 1, 1) == 0); });
  expect_ctime("setxattr", [&] {
    REQUIRE(::setxattr(vol.Path("f").c_str(), "user.t", "v", 1, 0) == 0);
  });
  expect_ctime("removexattr", [&] { REQUIRE(::removexattr(vol.Path("f").c_str(), "user.t") == 0); });
}

TEST_CASE("directory mtime and ctime change when entries change", "[posix][attr][time]") {
  TestVolume vol;
  vol.Mount();

  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("other").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("bystander").c_str(), 0755)) == 0);

  auto expect_changed = [&](const char* what, std::vector<std::string> dirs,
                            const std::function<void()>& op) {
    INFO(what);
    dirs.push_back("bystander");
    std::vector<struct stat> before_st;
    for (const std::string& d : dirs) {
      SetTimes(vol.Path(d), kOld, kOld);
      before_st.push_back(MustStat(vol.Path(d)));
    }
    for (const struct stat& s : before_st) WaitClockPast(s.st_ctim);
    timespec before = CoarseNow();
    op();
    timespec after = RealNow();
    for (size_t i = 0; i < dirs.size(); ++i) {
      INFO("directory " << dirs[i]);
      struct stat st = MustStat(vol.Path(dirs[i]));
      if (dirs[i] == "bystander") {
        CHECK(st.st_mtim == kOld);
        CHECK(st.st_ctim == before_st[i].st_ctim);
      } else {
        CHECK(before <= st.st_mtim);
        CHECK(st.st_mtim <= after);
        CHECK(before_st[i].st_ctim < st.st_ctim);
      }
    }
  };
  expect_changed("create", {"d"}, [&] { WriteFile(vol.Path("d/f"), "x"); });
  expect_changed("mkdir", {"d"}, [&] { REQUIRE(::mkdir(vol.Path("d/sub").c_str(), 0755) == 0); });
  expect_changed("symlink", {"d"}, [&] { REQUIRE(::symlink("f", vol.Path("d/sym").c_str()) == 0); });
  expect_changed("mknod", {"d"}, [&] {
    REQUIRE(::mknod(vol.Path("d/fifo").c_str(), S_IFIFO | 0644, 0) == 0);
  });
  expect_changed("link", {"d"}, [&] {
    REQUIRE(::link(vol.Path("d/f").c_str(), vol.Path("d/hard").c_str()) == 0);
  });
  expect_changed("rename within", {"d"}, [&] {
    REQUIRE(::rename(vol.Path("d/hard").c_str(), vol.Path("d/hard2").c_str()) == 0);
  });
  expect_changed("rename across", {"d", "other"}, [&] {
    REQUIRE(::rename(vol.Path("d/hard2").c_str(), vol.Path("other/moved").c_str()) == 0);
  });
  expect_changed("unlink", {"other"}, [&] { REQUIRE(::unlink(vol.Path("other/moved").c_str()) == 0); });
  expect_changed("rmdir", {"d"}, [&] { REQUIRE(::rmdir(vol.Path("d/sub").c_str()) == 0); });
  expect_changed("exchange", {"d", "other"}, [&] {
    WriteFile(vol.Path("other/x"), "x");
    SetTimes(vol.Path("other"), kOld, kOld);
    REQUIRE(::renameat2(AT_FDCWD, vol.Path("d/f").c_str(), AT_FDCWD, vol.Path("other/x").c_str(),
                        RENAME_EXCHANGE) == 0);
  });

  // Writing a file's data does not change its directory.
  SetTimes(vol.Path("d"), kOld, kOld);
  {
    Fd fd = MustOpen(vol.Path("d/f"), O_WRONLY);
    MustPwrite(fd.get(), "more data", 0);
  }
  CHECK(MustStat(vol.Path("d")).st_mtim == kOld);
}

TEST_CASE("permission checks for an unprivileged user", "[posix][attr][perm]") {
  REQUIRE(::geteuid() == 0);
  TestVolume vol;
  vol.Mount();
  ::umask(0);

  WriteFile(vol.Path("secret"), "secret", 0600);
  WriteFile(vol.Path("public"), "public", 0644);
  WriteFile(vol.Path("shared"), "shared", 0666);
  WriteFile(vol.Path("none"), "none", 0000);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("private").c_str(), 0700)) == 0);
  WriteFile(vol.Path("private/inner"), "inner", 0644);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("open").c_str(), 0777)) == 0);
  WriteFile(vol.Path("open/rootfile"), "root", 0644);
  const std::string secret = vol.Path("secret");
  const std::string pub = vol.Path("public");
  const std::string shared = vol.Path("shared");

  // The mount point itself is reachable for others (allow_other).
  CHECK(AsNobody([&] { return ErrnoOf(::access(vol.Path("").c_str(), R_OK | X_OK)).value; }) == 0);

  CHECK(AsNobody([&] { return OpenErrno(secret, O_RDONLY).value; }) == EACCES);
  CHECK(AsNobody([&] { return OpenErrno(secret, O_WRONLY).value; }) == EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::access(secret.c_str(), R_OK)).value; }) == EACCES);
  CHECK(AsNobody([&] { return OpenErrno(pub, O_RDONLY).value; }) == 0);
  CHECK(AsNobody([&] { return OpenErrno(pub, O_WRONLY).value; }) == EACCES);
  CHECK(AsNobody([&] { return OpenErrno(pub, O_RDWR | O_TRUNC).value; }) == EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::truncate(pub.c_str(), 0)).value; }) == EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::access(pub.c_str(), W_OK)).value; }) == EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::access(pub.c_str(), X_OK)).value; }) == EACCES);
  // Not the owner: chmod, chown and explicit times are EPERM; "now" needs
  // write permission, so EACCES on a file it cannot write.
  CHECK(AsNobody([&] { return ErrnoOf(::chmod(pub.c_str(), 0666)).value; }) == EPERM);
  CHECK(AsNobody([&] { return ErrnoOf(::chown(pub.c_str(), kNobody, -1)).value; }) == EPERM);
  CHECK(AsNobody([&] {
          timespec t[2] = {{1, 0}, {1, 0}};
          return ErrnoOf(::utimensat(AT_FDCWD, pub.c_str(), t, 0)).value;
        }) == EPERM);
  CHECK(AsNobody([&] { return ErrnoOf(::utimensat(AT_FDCWD, pub.c_str(), nullptr, 0)).value; }) ==
        EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::setxattr(pub.c_str(), "user.x", "v", 1, 0)).value; }) ==
        EACCES);
  // A file it may write: writing and "now" times work, chmod still not.
  CHECK(AsNobody([&] {
          int fd = ::open(shared.c_str(), O_WRONLY);
          if (fd < 0) return errno;
          int rc = ::pwrite(fd, "SH", 2, 0) == 2 ? 0 : errno;
          ::close(fd);
          return rc;
        }) == 0);
  CHECK(AsNobody([&] { return ErrnoOf(::utimensat(AT_FDCWD, shared.c_str(), nullptr, 0)).value; }) ==
        0);
  CHECK(AsNobody([&] { return ErrnoOf(::chmod(shared.c_str(), 0600)).value; }) == EPERM);
  CHECK(ReadFile(shared) == "SHared");

  // Directory permissions: no entries added or removed in root's 0755 dir.
  CHECK(AsNobody([&] { return OpenErrno(vol.Path("new"), O_CREAT | O_WRONLY).value; }) == EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::mkdir(vol.Path("newdir").c_str(), 0755)).value; }) == EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::unlink(pub.c_str())).value; }) == EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::rename(pub.c_str(), vol.Path("p2").c_str())).value; }) ==
        EACCES);
  CHECK(AsNobody([&] { return ErrnoOf(::symlink("x", vol.Path("sym").c_str())).value; }) == EACCES);
  // (A file it can read and write, so that fs.protected_hardlinks, which
  // would answer EPERM first, does not apply.)
  CHECK(AsNobody([&] { return ErrnoOf(::link(shared.c_str(), vol.Path("l").c_str())).value; }) ==
        EACCES);
  // No search or read permission in a 0700 directory.
  CHECK(AsNobody([&] {
          struct stat st;
          return ErrnoOf(::stat(vol.Path("private/inner").c_str(), &st)).value;
        }) == EACCES);
  CHECK(AsNobody([&] { return OpenErrno(vol.Path("private"), O_RDONLY | O_DIRECTORY).value; }) ==
        EACCES);
  // In a 0777 directory (no sticky bit) anyone may remove anyone's entry.
  CHECK(AsNobody([&] { return ErrnoOf(::unlink(vol.Path("open/rootfile").c_str())).value; }) == 0);

  // Nothing changed by the refused attempts.
  CHECK(ReadFile(pub) == "public");
  struct stat st = MustStat(pub);
  CHECK((st.st_mode & 07777) == 0644);
  CHECK(st.st_uid == 0);
  CHECK(ListDir(vol.Path("")) ==
        std::set<std::string>{"none", "open", "private", "public", "secret", "shared"});

  // Writing to or truncating a set-user-ID file as another user clears the
  // bit (the kernel asks the file system to, as for chown).
  WriteFile(vol.Path("suid"), "suid", 0);
  REQUIRE(ErrnoOf(::chmod(vol.Path("suid").c_str(), 04777)) == 0);
  CHECK(AsNobody([&] {
          int fd = ::open(vol.Path("suid").c_str(), O_WRONLY);
          if (fd < 0) return errno;
          int rc = ::pwrite(fd, "S", 1, 0) == 1 ? 0 : errno;
          ::close(fd);
          return rc;
        }) == 0);
  CHECK((MustStat(vol.Path("suid")).st_mode & 07777) == 0777);
  REQUIRE(ErrnoOf(::chmod(vol.Path("suid").c_str(), 04777)) == 0);
  CHECK(AsNobody([&] { return ErrnoOf(::truncate(vol.Path("suid").c_str(), 1)).value; }) == 0);
  CHECK((MustStat(vol.Path("suid")).st_mode & 07777) == 0777);
  CHECK(ReadFile(vol.Path("suid")) == "S");

  // Root is not bound by the mode bits (CAP_DAC_OVERRIDE).
  CHECK(OpenErrno(vol.Path("none"), O_RDWR) == 0);
  CHECK(ReadFile(vol.Path("none")) == "none");
}

TEST_CASE("files created by an unprivileged user are owned by that user", "[posix][attr][perm]") {
  REQUIRE(::geteuid() == 0);
  TestVolume vol;
  vol.Mount();
  ::umask(0);

  REQUIRE(ErrnoOf(::mkdir(vol.Path("open").c_str(), 0777)) == 0);
  const std::string f = vol.Path("open/mine");
  CHECK(AsNobody([&] {
          ::umask(022);
          int fd = ::open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0666);
          if (fd < 0) return errno;
          int rc = ::write(fd, "by nobody", 9) == 9 ? 0 : errno;
          ::close(fd);
          if (rc != 0) return rc;
          if (::mkdir((f + "dir").c_str(), 0777) != 0) return errno;
          if (::symlink("mine", (f + "sym").c_str()) != 0) return errno;
          if (::mkfifo((f + "fifo").c_str(), 0666) != 0) return errno;
          return 0;
        }) == 0);
  for (const std::string& p : {f, f + "dir", f + "sym", f + "fifo"}) {
    INFO(p);
    struct stat st = MustLstat(p);
    CHECK(st.st_uid == kNobody);
    CHECK(st.st_gid == kNogroup);
    if (!S_ISLNK(st.st_mode)) CHECK((st.st_mode & 0777) == (S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) ? 0644u : 0755u));
  }
  CHECK(ReadFile(f) == "by nobody");

  // The owner may chmod its file, but not give it away or pick a group it
  // is not in.
  CHECK(AsNobody([&] { return ErrnoOf(::chmod(f.c_str(), 0600)).value; }) == 0);
  CHECK((MustStat(f).st_mode & 07777) == 0600);
  CHECK(AsNobody([&] { return ErrnoOf(::chown(f.c_str(), 0, -1)).value; }) == EPERM);
  CHECK(AsNobody([&] { return ErrnoOf(::chown(f.c_str(), -1, 0)).value; }) == EPERM);
  CHECK(AsNobody([&] {
          timespec t[2] = {{5, 5}, {6, 6}};
          return ErrnoOf(::utimensat(AT_FDCWD, f.c_str(), t, 0)).value;
        }) == 0);
  CHECK(MustStat(f).st_mtim == (timespec{6, 6}));
  // chmod(2): set-group-ID is silently dropped when the owner is not in the
  // file's group.
  REQUIRE(ErrnoOf(::chown(f.c_str(), -1, 1234)) == 0);
  CHECK(AsNobody([&] { return ErrnoOf(::chmod(f.c_str(), 02755)).value; }) == 0);
  CHECK((MustStat(f).st_mode & 07777) == 0755);
  CHECK(AsNobody([&] { return ErrnoOf(::chmod(f.c_str(), 04755)).value; }) == 0);
  CHECK((MustStat(f).st_mode & 07777) == 04755);

  // A set-group-ID directory passes its group on, and the bit to subdirectories.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("sg").c_str(), 0777)) == 0);
  REQUIRE(ErrnoOf(::chown(vol.Path("sg").c_str(), 0, 1234)) == 0);
  REQUIRE(ErrnoOf(::chmod(vol.Path("sg").c_str(), 02777)) == 0);
  CHECK(AsNobody([&] {
          int fd = ::open(vol.Path("sg/file").c_str(), O_CREAT | O_WRONLY, 0644);
          if (fd < 0) return errno;
          ::close(fd);
          return ErrnoOf(::mkdir(vol.Path("sg/sub").c_str(), 0755)).value;
        }) == 0);
  struct stat file = MustStat(vol.Path("sg/file"));
  CHECK(file.st_uid == kNobody);
  CHECK(file.st_gid == 1234);
  struct stat sub = MustStat(vol.Path("sg/sub"));
  CHECK(sub.st_uid == kNobody);
  CHECK(sub.st_gid == 1234);
  CHECK((sub.st_mode & S_ISGID) != 0);
}

TEST_CASE("a sticky directory restricts unlink and rename to owners", "[posix][attr][perm]") {
  REQUIRE(::geteuid() == 0);
  TestVolume vol;
  vol.Mount();
  ::umask(0);

  REQUIRE(ErrnoOf(::mkdir(vol.Path("tmp").c_str(), 01777)) == 0);
  WriteFile(vol.Path("tmp/rootfile"), "root", 0666);
  CHECK(AsNobody([&] { return ErrnoOf(::unlink(vol.Path("tmp/rootfile").c_str())).value; }) == EPERM);
  CHECK(AsNobody([&] {
          return ErrnoOf(::rename(vol.Path("tmp/rootfile").c_str(), vol.Path("tmp/x").c_str())).value;
        }) == EPERM);
  CHECK(AsNobody([&] {
          int fd = ::open(vol.Path("tmp/mine").c_str(), O_CREAT | O_WRONLY, 0644);
          if (fd < 0) return errno;
          ::close(fd);
          if (::rename(vol.Path("tmp/mine").c_str(), vol.Path("tmp/mine2").c_str()) != 0) return errno;
          return ErrnoOf(::unlink(vol.Path("tmp/mine2").c_str())).value;
        }) == 0);
  CHECK(ListDir(vol.Path("tmp")) == std::set<std::string>{"rootfile"});
  // Root may remove anything.
  CHECK(ErrnoOf(::unlink(vol.Path("tmp/rootfile").c_str())) == 0);
}

}  // namespace
}  // namespace nosyncfs::test
