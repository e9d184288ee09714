// Namespace operations on a real mount: lookup/getattr, mkdir, rmdir,
// unlink, mknod, symlink, link, rename (all flavours), open/create flags.
// Expected results are what POSIX and Linux (ext4, tmpfs) give.

#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

// The d_ino that readdir reports for "..", which comes from the daemon
// (path lookups of ".." are answered by the kernel's dentry cache instead).
ino_t DotDotIno(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  ino_t ino = 0;
  while (struct dirent* de = ::readdir(d)) {
    if (std::strcmp(de->d_name, "..") == 0) ino = de->d_ino;
  }
  ::closedir(d);
  return ino;
}

TEST_CASE("lookup and getattr of new files and missing names", "[posix][namespace]") {
  TestVolume vol;
  vol.Mount();
  ::umask(022);

  struct stat root = MustStat(vol.Path(""));
  CHECK(S_ISDIR(root.st_mode));
  CHECK(root.st_nlink == 2);  // a fresh file system has no subdirectories

  timespec before = CoarseNow();
  Fd fd = MustOpen(vol.Path("file"), O_CREAT | O_WRONLY | O_EXCL, 0640);
  timespec after = RealNow();
  struct stat st = MustStat(vol.Path("file"));
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_uid == 0);
  CHECK(st.st_gid == 0);
  CHECK(st.st_size == 0);
  CHECK(st.st_blocks == 0);
  CHECK(st.st_nlink == 1);
  CHECK(st.st_ino != root.st_ino);
  CHECK(st.st_dev == root.st_dev);
  CHECK(before <= st.st_mtim);
  CHECK(st.st_mtim <= after);
  CHECK(before <= st.st_ctim);
  CHECK(st.st_ctim <= after);
  CHECK(before <= st.st_atim);
  CHECK(st.st_atim <= after);

  // fstat on the open descriptor agrees with stat on the name.
  struct stat fst = MustFstat(fd.get());
  CHECK(fst.st_ino == st.st_ino);
  CHECK(fst.st_mode == st.st_mode);

  // A second file gets another inode number.
  WriteFile(vol.Path("other"), "x");
  CHECK(MustStat(vol.Path("other")).st_ino != st.st_ino);

  struct stat missing {};
  CHECK(ErrnoOf(::stat(vol.Path("nope").c_str(), &missing)) == ENOENT);
  CHECK(ErrnoOf(::stat(vol.Path("nope/deeper").c_str(), &missing)) == ENOENT);
  CHECK(ErrnoOf(::stat(vol.Path("file/child").c_str(), &missing)) == ENOTDIR);
  CHECK(ErrnoOf(::access(vol.Path("nope").c_str(), F_OK)) == ENOENT);

  // Names up to NAME_MAX work; one byte more is ENAMETOOLONG.
  struct statvfs sv = MustStatvfs(vol.Path(""));
  CHECK(sv.f_namemax == 255);
  std::string longest(255, 'n');
  CHECK(OpenErrno(vol.Path(longest), O_CREAT | O_WRONLY | O_EXCL) == 0);
  CHECK(MustStat(vol.Path(longest)).st_size == 0);
  std::string too_long(256, 'n');
  CHECK(OpenErrno(vol.Path(too_long), O_CREAT | O_WRONLY) == ENAMETOOLONG);
  CHECK(ErrnoOf(::stat(vol.Path(too_long).c_str(), &missing)) == ENAMETOOLONG);
  CHECK(ErrnoOf(::mkdir(vol.Path(too_long).c_str(), 0755)) == ENAMETOOLONG);
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"file", "other", longest});
}

TEST_CASE("mkdir sets mode and link counts and reports errors", "[posix][namespace]") {
  TestVolume vol;
  vol.Mount();
  ::umask(022);

  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0777)) == 0);
  struct stat d = MustStat(vol.Path("d"));
  CHECK(S_ISDIR(d.st_mode));
  CHECK((d.st_mode & 07777) == 0755);  // umask applied
  CHECK(d.st_nlink == 2);
  CHECK(d.st_uid == 0);
  CHECK(MustStat(vol.Path("")).st_nlink == 3);

  REQUIRE(ErrnoOf(::mkdir(vol.Path("d/e").c_str(), 0700)) == 0);
  CHECK((MustStat(vol.Path("d/e")).st_mode & 07777) == 0700);
  CHECK(MustStat(vol.Path("d")).st_nlink == 3);
  CHECK(MustStat(vol.Path("")).st_nlink == 3);  // grandchildren do not count

  // The sticky bit is kept by mkdir.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("sticky").c_str(), 01777)) == 0);
  CHECK((MustStat(vol.Path("sticky")).st_mode & 07777) == 01755);

  WriteFile(vol.Path("file"), "data");
  CHECK(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == EEXIST);
  CHECK(ErrnoOf(::mkdir(vol.Path("file").c_str(), 0755)) == EEXIST);
  CHECK(ErrnoOf(::mkdir(vol.Path("missing/x").c_str(), 0755)) == ENOENT);
  CHECK(ErrnoOf(::mkdir(vol.Path("file/x").c_str(), 0755)) == ENOTDIR);
  CHECK(ReadFile(vol.Path("file")) == "data");  // the failed mkdir left it alone

  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"d", "file", "sticky"});
  CHECK(ListDir(vol.Path("d")) == std::set<std::string>{"e"});
  CHECK(ListDir(vol.Path("d/e")).empty());
}

TEST_CASE("rmdir and unlink remove entries and report errors", "[posix][namespace]") {
  TestVolume vol;
  vol.Mount();

  REQUIRE(ErrnoOf(::mkdir(vol.Path("full").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("full/sub").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("withfile").c_str(), 0755)) == 0);
  WriteFile(vol.Path("withfile/f"), "x");
  REQUIRE(ErrnoOf(::mkdir(vol.Path("empty").c_str(), 0755)) == 0);
  WriteFile(vol.Path("file"), "content");
  CHECK(MustStat(vol.Path("")).st_nlink == 5);

  CHECK(ErrnoOf(::rmdir(vol.Path("full").c_str())) == ENOTEMPTY);
  CHECK(ErrnoOf(::rmdir(vol.Path("withfile").c_str())) == ENOTEMPTY);
  CHECK(ErrnoOf(::rmdir(vol.Path("file").c_str())) == ENOTDIR);
  CHECK(ErrnoOf(::rmdir(vol.Path("missing").c_str())) == ENOENT);
  CHECK(ErrnoOf(::rmdir(vol.Path("empty/.").c_str())) == EINVAL);
  CHECK(ErrnoOf(::unlink(vol.Path("empty").c_str())) == EISDIR);
  CHECK(ErrnoOf(::unlink(vol.Path("missing").c_str())) == ENOENT);
  CHECK(ErrnoOf(::unlink(vol.Path("file/x").c_str())) == ENOTDIR);
  // Nothing was removed by the failures.
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"empty", "file", "full", "withfile"});
  CHECK(ListDir(vol.Path("full")) == std::set<std::string>{"sub"});
  CHECK(ReadFile(vol.Path("file")) == "content");

  CHECK(ErrnoOf(::rmdir(vol.Path("empty").c_str())) == 0);
  CHECK(MustStat(vol.Path("")).st_nlink == 4);
  CHECK(ErrnoOf(::unlink(vol.Path("withfile/f").c_str())) == 0);
  CHECK(ErrnoOf(::rmdir(vol.Path("withfile").c_str())) == 0);
  CHECK(ErrnoOf(::rmdir(vol.Path("full/sub").c_str())) == 0);
  CHECK(MustStat(vol.Path("full")).st_nlink == 2);
  CHECK(ErrnoOf(::rmdir(vol.Path("full").c_str())) == 0);
  CHECK(ErrnoOf(::unlink(vol.Path("file").c_str())) == 0);
  CHECK(MustStat(vol.Path("")).st_nlink == 2);
  CHECK(ListDir(vol.Path("")).empty());
  struct stat st {};
  CHECK(ErrnoOf(::stat(vol.Path("file").c_str(), &st)) == ENOENT);
  CHECK(ErrnoOf(::stat(vol.Path("full").c_str(), &st)) == ENOENT);

  // The names can be used again, for other types.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("file").c_str(), 0755)) == 0);
  WriteFile(vol.Path("full"), "now a file");
  CHECK(S_ISDIR(MustStat(vol.Path("file")).st_mode));
  CHECK(ReadFile(vol.Path("full")) == "now a file");
}

TEST_CASE("mknod creates regular files fifos and sockets", "[posix][namespace]") {
  TestVolume vol;
  vol.Mount();
  ::umask(0);

  REQUIRE(ErrnoOf(::mknod(vol.Path("reg").c_str(), S_IFREG | 0600, 0)) == 0);
  struct stat reg = MustLstat(vol.Path("reg"));
  CHECK(S_ISREG(reg.st_mode));
  CHECK((reg.st_mode & 07777) == 0600);
  CHECK(reg.st_size == 0);
  CHECK(reg.st_nlink == 1);
  WriteFile(vol.Path("reg"), "regular");
  CHECK(ReadFile(vol.Path("reg")) == "regular");

  REQUIRE(ErrnoOf(::mknod(vol.Path("fifo").c_str(), S_IFIFO | 0644, 0)) == 0);
  REQUIRE(ErrnoOf(::mkfifo(vol.Path("fifo2").c_str(), 0600)) == 0);
  struct stat fifo = MustLstat(vol.Path("fifo"));
  CHECK(S_ISFIFO(fifo.st_mode));
  CHECK((fifo.st_mode & 07777) == 0644);
  CHECK(S_ISFIFO(MustLstat(vol.Path("fifo2")).st_mode));
  {
    // The node works as a pipe (the kernel provides the pipe; the file
    // system only has to return the right type).
    Fd rd = MustOpen(vol.Path("fifo"), O_RDONLY | O_NONBLOCK);
    Fd wr = MustOpen(vol.Path("fifo"), O_WRONLY | O_NONBLOCK);
    REQUIRE(::write(wr.get(), "ping", 4) == 4);
    char buf[8] = {};
    CHECK(::read(rd.get(), buf, sizeof buf) == 4);
    CHECK(std::string(buf, 4) == "ping");
  }

  REQUIRE(ErrnoOf(::mknod(vol.Path("sock").c_str(), S_IFSOCK | 0755, 0)) == 0);
  struct stat sock = MustLstat(vol.Path("sock"));
  CHECK(S_ISSOCK(sock.st_mode));
  CHECK((sock.st_mode & 07777) == 0755);

  // bind() creates a socket node through mknod; connect() finds it again.
  std::string sock_path = vol.Path("live.sock");
  REQUIRE(sock_path.size() < sizeof(sockaddr_un::sun_path));
  Fd server(::socket(AF_UNIX, SOCK_STREAM, 0));
  REQUIRE(server.ok());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, sock_path.c_str());
  REQUIRE(ErrnoOf(::bind(server.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr)) == 0);
  REQUIRE(ErrnoOf(::listen(server.get(), 1)) == 0);
  CHECK(S_ISSOCK(MustLstat(sock_path).st_mode));
  Fd client(::socket(AF_UNIX, SOCK_STREAM, 0));
  CHECK(ErrnoOf(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr)) == 0);
  // A second bind to the same path fails: the name exists.
  Fd server2(::socket(AF_UNIX, SOCK_STREAM, 0));
  CHECK(ErrnoOf(::bind(server2.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr)) ==
        EADDRINUSE);

  CHECK(ErrnoOf(::mknod(vol.Path("reg").c_str(), S_IFIFO | 0644, 0)) == EEXIST);
  CHECK(ErrnoOf(::mknod(vol.Path("missing/x").c_str(), S_IFREG | 0644, 0)) == ENOENT);
  CHECK(S_ISREG(MustLstat(vol.Path("reg")).st_mode));
  CHECK(ListDir(vol.Path("")) ==
        std::set<std::string>{"fifo", "fifo2", "live.sock", "reg", "sock"});

  CHECK(ErrnoOf(::unlink(vol.Path("fifo").c_str())) == 0);
  CHECK(ErrnoOf(::unlink(vol.Path("sock").c_str())) == 0);
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"fifo2", "live.sock", "reg"});
}

TEST_CASE("mknod creates character and block device nodes as root", "[posix][namespace]") {
  REQUIRE(::geteuid() == 0);
  TestVolume vol;
  vol.Mount();
  ::umask(0);

  const dev_t chr = ::makedev(1, 3);
  const dev_t blk = ::makedev(7, 0);
  const dev_t big = ::makedev(259, 70000);  // needs the full 12+20 bit encoding
  REQUIRE(ErrnoOf(::mknod(vol.Path("null").c_str(), S_IFCHR | 0666, chr)) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("loop").c_str(), S_IFBLK | 0660, blk)) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("big").c_str(), S_IFCHR | 0600, big)) == 0);

  struct stat c = MustLstat(vol.Path("null"));
  CHECK(S_ISCHR(c.st_mode));
  CHECK((c.st_mode & 07777) == 0666);
  CHECK(c.st_rdev == chr);
  CHECK(c.st_size == 0);
  struct stat b = MustLstat(vol.Path("loop"));
  CHECK(S_ISBLK(b.st_mode));
  CHECK((b.st_mode & 07777) == 0660);
  CHECK(b.st_rdev == blk);
  struct stat g = MustLstat(vol.Path("big"));
  CHECK(::major(g.st_rdev) == 259);
  CHECK(::minor(g.st_rdev) == 70000);

  // Regular files report no device number.
  WriteFile(vol.Path("plain"), "x");
  CHECK(MustLstat(vol.Path("plain")).st_rdev == 0);
  CHECK(ErrnoOf(::mknod(vol.Path("null").c_str(), S_IFCHR | 0666, chr)) == EEXIST);
}

TEST_CASE("symlink and readlink", "[posix][namespace]") {
  TestVolume vol;
  vol.Mount();

  const std::string target = "some/relative/target";
  REQUIRE(ErrnoOf(::symlink(target.c_str(), vol.Path("link").c_str())) == 0);
  struct stat l = MustLstat(vol.Path("link"));
  CHECK(S_ISLNK(l.st_mode));
  CHECK((l.st_mode & 0777) == 0777);
  CHECK(l.st_size == static_cast<off_t>(target.size()));
  CHECK(l.st_nlink == 1);

  // readlink returns the length and does not NUL-terminate.
  char buf[256];
  std::memset(buf, 'X', sizeof buf);
  ssize_t n = ::readlink(vol.Path("link").c_str(), buf, sizeof buf);
  REQUIRE(n == static_cast<ssize_t>(target.size()));
  CHECK(std::string(buf, n) == target);
  CHECK(buf[n] == 'X');
  // A small buffer gets the truncated target.
  std::memset(buf, 'X', sizeof buf);
  CHECK(::readlink(vol.Path("link").c_str(), buf, 4) == 4);
  CHECK(std::string(buf, 5) == "someX");

  // Dangling: stat follows and fails, lstat does not.
  struct stat st {};
  CHECK(ErrnoOf(::stat(vol.Path("link").c_str(), &st)) == ENOENT);

  // Links to a file and to a directory resolve.
  WriteFile(vol.Path("file"), "through the link");
  REQUIRE(ErrnoOf(::mkdir(vol.Path("dir").c_str(), 0755)) == 0);
  WriteFile(vol.Path("dir/inner"), "inner");
  REQUIRE(ErrnoOf(::symlink("file", vol.Path("flink").c_str())) == 0);
  REQUIRE(ErrnoOf(::symlink("dir", vol.Path("dlink").c_str())) == 0);
  REQUIRE(ErrnoOf(::symlink(vol.Path("file").c_str(), vol.Path("abslink").c_str())) == 0);
  CHECK(MustStat(vol.Path("flink")).st_ino == MustStat(vol.Path("file")).st_ino);
  CHECK(ReadFile(vol.Path("flink")) == "through the link");
  CHECK(ReadFile(vol.Path("abslink")) == "through the link");
  CHECK(ReadFile(vol.Path("dlink/inner")) == "inner");
  CHECK(S_ISDIR(MustStat(vol.Path("dlink")).st_mode));

  // A long target (ext4 allows up to 4095 bytes).
  std::string long_target(4000, 'a');
  for (size_t i = 100; i < long_target.size(); i += 100) long_target[i] = '/';
  REQUIRE(ErrnoOf(::symlink(long_target.c_str(), vol.Path("long").c_str())) == 0);
  std::string big(8192, '\0');
  n = ::readlink(vol.Path("long").c_str(), big.data(), big.size());
  REQUIRE(n == static_cast<ssize_t>(long_target.size()));
  CHECK(big.substr(0, n) == long_target);
  CHECK(MustLstat(vol.Path("long")).st_size == 4000);

  CHECK(ErrnoOf(::symlink("x", vol.Path("file").c_str())) == EEXIST);
  CHECK(ErrnoOf(::symlink("x", vol.Path("link").c_str())) == EEXIST);
  CHECK(ErrnoOf(::readlink(vol.Path("file").c_str(), buf, sizeof buf)) == EINVAL);
  CHECK(ErrnoOf(::readlink(vol.Path("dir").c_str(), buf, sizeof buf)) == EINVAL);
  CHECK(ErrnoOf(::readlink(vol.Path("missing").c_str(), buf, sizeof buf)) == ENOENT);

  // Removing the link leaves the target.
  REQUIRE(ErrnoOf(::unlink(vol.Path("flink").c_str())) == 0);
  CHECK(ReadFile(vol.Path("file")) == "through the link");
}

TEST_CASE("hard links share the inode and count links", "[posix][namespace]") {
  TestVolume vol;
  vol.Mount();

  WriteFile(vol.Path("a"), "shared content");
  REQUIRE(ErrnoOf(::mkdir(vol.Path("sub").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::link(vol.Path("a").c_str(), vol.Path("b").c_str())) == 0);
  REQUIRE(ErrnoOf(::link(vol.Path("a").c_str(), vol.Path("sub/c").c_str())) == 0);
  struct stat a = MustStat(vol.Path("a"));
  CHECK(a.st_nlink == 3);
  CHECK(MustStat(vol.Path("b")).st_ino == a.st_ino);
  CHECK(MustStat(vol.Path("sub/c")).st_ino == a.st_ino);
  CHECK(MustStat(vol.Path("sub/c")).st_nlink == 3);

  // Writing through one name is visible through the others.
  {
    Fd fd = MustOpen(vol.Path("b"), O_WRONLY);
    MustPwrite(fd.get(), "SHARED", 0);
  }
  CHECK(ReadFile(vol.Path("a")) == "SHARED content");
  CHECK(ReadFile(vol.Path("sub/c")) == "SHARED content");

  CHECK(ErrnoOf(::link(vol.Path("a").c_str(), vol.Path("b").c_str())) == EEXIST);
  CHECK(ErrnoOf(::link(vol.Path("a").c_str(), vol.Path("sub").c_str())) == EEXIST);
  CHECK(ErrnoOf(::link(vol.Path("missing").c_str(), vol.Path("x").c_str())) == ENOENT);
  CHECK(ErrnoOf(::link(vol.Path("a").c_str(), vol.Path("missing/x").c_str())) == ENOENT);
  CHECK(ErrnoOf(::link(vol.Path("sub").c_str(), vol.Path("subl").c_str())) == EPERM);
  CHECK(MustStat(vol.Path("a")).st_nlink == 3);

  REQUIRE(ErrnoOf(::unlink(vol.Path("a").c_str())) == 0);
  CHECK(MustStat(vol.Path("b")).st_nlink == 2);
  REQUIRE(ErrnoOf(::unlink(vol.Path("sub/c").c_str())) == 0);
  struct stat b = MustStat(vol.Path("b"));
  CHECK(b.st_nlink == 1);
  CHECK(b.st_ino == a.st_ino);
  CHECK(ReadFile(vol.Path("b")) == "SHARED content");

  // Links to symlinks link the symlink itself (linkat without FOLLOW).
  REQUIRE(ErrnoOf(::symlink("b", vol.Path("sym").c_str())) == 0);
  REQUIRE(ErrnoOf(::link(vol.Path("sym").c_str(), vol.Path("sym2").c_str())) == 0);
  CHECK(S_ISLNK(MustLstat(vol.Path("sym2")).st_mode));
  CHECK(MustLstat(vol.Path("sym2")).st_nlink == 2);
  CHECK(MustLstat(vol.Path("sym")).st_ino == MustLstat(vol.Path("sym2")).st_ino);
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"b", "sub", "sym", "sym2"});
}

TEST_CASE("rename moves and replaces files", "[posix][namespace][rename]") {
  TestVolume vol;
  vol.Mount();

  WriteFile(vol.Path("a"), "from a");
  WriteFile(vol.Path("b"), "old b");
  REQUIRE(ErrnoOf(::link(vol.Path("b").c_str(), vol.Path("b2").c_str())) == 0);
  ino_t a_ino = MustStat(vol.Path("a")).st_ino;
  ino_t b_ino = MustStat(vol.Path("b")).st_ino;
  // An open descriptor keeps the replaced file readable.
  Fd old_b = MustOpen(vol.Path("b"), O_RDONLY);

  REQUIRE(ErrnoOf(::rename(vol.Path("a").c_str(), vol.Path("b").c_str())) == 0);
  struct stat st {};
  CHECK(ErrnoOf(::stat(vol.Path("a").c_str(), &st)) == ENOENT);
  CHECK(MustStat(vol.Path("b")).st_ino == a_ino);
  CHECK(ReadFile(vol.Path("b")) == "from a");
  CHECK(MustStat(vol.Path("b2")).st_ino == b_ino);
  CHECK(MustStat(vol.Path("b2")).st_nlink == 1);  // one of its two names is gone
  CHECK(MustPread(old_b.get(), 100, 0) == "old b");

  // Into another directory, and to a fresh name.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::rename(vol.Path("b").c_str(), vol.Path("d/moved").c_str())) == 0);
  CHECK(ReadFile(vol.Path("d/moved")) == "from a");
  CHECK(MustStat(vol.Path("d/moved")).st_ino == a_ino);
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"b2", "d"});
  CHECK(ListDir(vol.Path("d")) == std::set<std::string>{"moved"});

  // Renaming to itself, or onto another link of the same inode, does nothing.
  CHECK(ErrnoOf(::rename(vol.Path("b2").c_str(), vol.Path("b2").c_str())) == 0);
  REQUIRE(ErrnoOf(::link(vol.Path("b2").c_str(), vol.Path("b3").c_str())) == 0);
  CHECK(ErrnoOf(::rename(vol.Path("b2").c_str(), vol.Path("b3").c_str())) == 0);
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"b2", "b3", "d"});
  CHECK(MustStat(vol.Path("b3")).st_nlink == 2);

  CHECK(ErrnoOf(::rename(vol.Path("missing").c_str(), vol.Path("x").c_str())) == ENOENT);
  CHECK(ErrnoOf(::rename(vol.Path("b2").c_str(), vol.Path("missing/x").c_str())) == ENOENT);
  CHECK(ErrnoOf(::rename(vol.Path("b2").c_str(), vol.Path("b3/x").c_str())) == ENOTDIR);
  CHECK(ReadFile(vol.Path("b2")) == "old b");

  // A symlink is renamed, not its target.
  REQUIRE(ErrnoOf(::symlink("b2", vol.Path("sym").c_str())) == 0);
  REQUIRE(ErrnoOf(::rename(vol.Path("sym").c_str(), vol.Path("d/sym").c_str())) == 0);
  CHECK(S_ISLNK(MustLstat(vol.Path("d/sym")).st_mode));
  CHECK(ReadFile(vol.Path("b2")) == "old b");
}

TEST_CASE("rename with RENAME_NOREPLACE", "[posix][namespace][rename]") {
  TestVolume vol;
  vol.Mount();

  WriteFile(vol.Path("a"), "aaa");
  WriteFile(vol.Path("b"), "bbb");
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  CHECK(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("a").c_str(), AT_FDCWD, vol.Path("b").c_str(),
                            RENAME_NOREPLACE)) == EEXIST);
  CHECK(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("a").c_str(), AT_FDCWD, vol.Path("d").c_str(),
                            RENAME_NOREPLACE)) == EEXIST);
  CHECK(ReadFile(vol.Path("a")) == "aaa");
  CHECK(ReadFile(vol.Path("b")) == "bbb");

  CHECK(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("a").c_str(), AT_FDCWD, vol.Path("c").c_str(),
                            RENAME_NOREPLACE)) == 0);
  CHECK(ReadFile(vol.Path("c")) == "aaa");
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"b", "c", "d"});
  CHECK(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("d").c_str(), AT_FDCWD, vol.Path("e").c_str(),
                            RENAME_NOREPLACE)) == 0);
  CHECK(S_ISDIR(MustStat(vol.Path("e")).st_mode));
  CHECK(MustStat(vol.Path("")).st_nlink == 3);
}

TEST_CASE("rename with RENAME_EXCHANGE of two files", "[posix][namespace][rename]") {
  TestVolume vol;
  vol.Mount();

  WriteFile(vol.Path("a"), "content of a");
  WriteFile(vol.Path("b"), "b");
  ino_t a_ino = MustStat(vol.Path("a")).st_ino;
  ino_t b_ino = MustStat(vol.Path("b")).st_ino;
  REQUIRE(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("a").c_str(), AT_FDCWD, vol.Path("b").c_str(),
                              RENAME_EXCHANGE)) == 0);
  CHECK(ReadFile(vol.Path("a")) == "b");
  CHECK(ReadFile(vol.Path("b")) == "content of a");
  CHECK(MustStat(vol.Path("a")).st_ino == b_ino);
  CHECK(MustStat(vol.Path("b")).st_ino == a_ino);

  CHECK(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("a").c_str(), AT_FDCWD,
                            vol.Path("missing").c_str(), RENAME_EXCHANGE)) == ENOENT);
  CHECK(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("a").c_str(), AT_FDCWD, vol.Path("b").c_str(),
                            RENAME_EXCHANGE | RENAME_NOREPLACE)) == EINVAL);
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"a", "b"});
  CHECK(ReadFile(vol.Path("a")) == "b");
}

TEST_CASE("rename with RENAME_EXCHANGE of a file and a directory across parents",
          "[posix][namespace][rename]") {
  TestVolume vol;
  vol.Mount();

  REQUIRE(ErrnoOf(::mkdir(vol.Path("p1").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("p2").c_str(), 0755)) == 0);
  WriteFile(vol.Path("p1/f"), "file");
  REQUIRE(ErrnoOf(::mkdir(vol.Path("p2/d").c_str(), 0755)) == 0);
  WriteFile(vol.Path("p2/d/x"), "inside");
  CHECK(MustStat(vol.Path("p1")).st_nlink == 2);
  CHECK(MustStat(vol.Path("p2")).st_nlink == 3);

  REQUIRE(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("p1/f").c_str(), AT_FDCWD,
                              vol.Path("p2/d").c_str(), RENAME_EXCHANGE)) == 0);
  CHECK(S_ISDIR(MustStat(vol.Path("p1/f")).st_mode));
  CHECK(ReadFile(vol.Path("p1/f/x")) == "inside");
  CHECK(S_ISREG(MustStat(vol.Path("p2/d")).st_mode));
  CHECK(ReadFile(vol.Path("p2/d")) == "file");
  // The subdirectory moved from p2 to p1: link counts and ".." follow.
  CHECK(MustStat(vol.Path("p1")).st_nlink == 3);
  CHECK(MustStat(vol.Path("p2")).st_nlink == 2);
  CHECK(DotDotIno(vol.Path("p1/f")) == MustStat(vol.Path("p1")).st_ino);
}

TEST_CASE("rename with RENAME_EXCHANGE of two directories across parents",
          "[posix][namespace][rename]") {
  TestVolume vol;
  vol.Mount();
  for (const char* d : {"p1", "p2", "p1/a", "p1/a/sub", "p2/b"}) {
    REQUIRE(ErrnoOf(::mkdir(vol.Path(d).c_str(), 0755)) == 0);
  }
  WriteFile(vol.Path("p1/a/in-a"), "a");
  WriteFile(vol.Path("p2/b/in-b"), "b");
  ino_t a_ino = MustStat(vol.Path("p1/a")).st_ino;
  ino_t b_ino = MustStat(vol.Path("p2/b")).st_ino;

  REQUIRE(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("p1/a").c_str(), AT_FDCWD,
                              vol.Path("p2/b").c_str(), RENAME_EXCHANGE)) == 0);
  CHECK(MustStat(vol.Path("p1/a")).st_ino == b_ino);
  CHECK(MustStat(vol.Path("p2/b")).st_ino == a_ino);
  CHECK(ReadFile(vol.Path("p1/a/in-b")) == "b");
  CHECK(ReadFile(vol.Path("p2/b/in-a")) == "a");
  CHECK(ListDir(vol.Path("p2/b/sub")).empty());
  // Each parent still has one subdirectory; each moved one knows its parent.
  CHECK(MustStat(vol.Path("p1")).st_nlink == 3);
  CHECK(MustStat(vol.Path("p2")).st_nlink == 3);
  CHECK(MustStat(vol.Path("p2/b")).st_nlink == 3);
  CHECK(MustStat(vol.Path("p1/a")).st_nlink == 2);
  CHECK(DotDotIno(vol.Path("p1/a")) == MustStat(vol.Path("p1")).st_ino);
  CHECK(DotDotIno(vol.Path("p2/b")) == MustStat(vol.Path("p2")).st_ino);

  // Exchanging a directory with its own descendant is refused.
  CHECK(ErrnoOf(::renameat2(AT_FDCWD, vol.Path("p2").c_str(), AT_FDCWD,
                            vol.Path("p2/b/sub").c_str(), RENAME_EXCHANGE)) == EINVAL);
}

TEST_CASE("directory rename rules", "[posix][namespace][rename]") {
  TestVolume vol;
  vol.Mount();

  for (const char* d : {"src", "src/a", "src/a/b", "full", "empty", "p1", "p2", "p1/moving"}) {
    REQUIRE(ErrnoOf(::mkdir(vol.Path(d).c_str(), 0755)) == 0);
  }
  WriteFile(vol.Path("full/f"), "x");
  WriteFile(vol.Path("src/a/b/deep"), "deep");
  WriteFile(vol.Path("file"), "file");
  WriteFile(vol.Path("p1/moving/payload"), "payload");

  // Into its own subtree: EINVAL.
  CHECK(ErrnoOf(::rename(vol.Path("src").c_str(), vol.Path("src/a/b/c").c_str())) == EINVAL);
  CHECK(ErrnoOf(::rename(vol.Path("src").c_str(), vol.Path("src/new").c_str())) == EINVAL);
  // Over a non-empty directory: ENOTEMPTY (EEXIST is also allowed by POSIX,
  // Linux file systems answer ENOTEMPTY).
  CHECK(ErrnoOf(::rename(vol.Path("src").c_str(), vol.Path("full").c_str())) == ENOTEMPTY);
  // File over directory and directory over file.
  CHECK(ErrnoOf(::rename(vol.Path("file").c_str(), vol.Path("empty").c_str())) == EISDIR);
  CHECK(ErrnoOf(::rename(vol.Path("src").c_str(), vol.Path("file").c_str())) == ENOTDIR);
  // Nothing changed.
  CHECK(ListDir(vol.Path("")) ==
        std::set<std::string>{"empty", "file", "full", "p1", "p2", "src"});
  CHECK(ReadFile(vol.Path("src/a/b/deep")) == "deep");
  CHECK(ReadFile(vol.Path("full/f")) == "x");
  CHECK(ReadFile(vol.Path("file")) == "file");
  CHECK(MustStat(vol.Path("")).st_nlink == 2 + 5);

  // Over an empty directory: replaces it, and the parent loses a link.
  ino_t src_ino = MustStat(vol.Path("src")).st_ino;
  REQUIRE(ErrnoOf(::rename(vol.Path("src").c_str(), vol.Path("empty").c_str())) == 0);
  CHECK(MustStat(vol.Path("empty")).st_ino == src_ino);
  CHECK(ReadFile(vol.Path("empty/a/b/deep")) == "deep");
  CHECK(MustStat(vol.Path("")).st_nlink == 2 + 4);
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"empty", "file", "full", "p1", "p2"});

  // Across parents: link counts of both parents and ".." of the moved one.
  CHECK(MustStat(vol.Path("p1")).st_nlink == 3);
  CHECK(MustStat(vol.Path("p2")).st_nlink == 2);
  REQUIRE(ErrnoOf(::rename(vol.Path("p1/moving").c_str(), vol.Path("p2/moved").c_str())) == 0);
  CHECK(MustStat(vol.Path("p1")).st_nlink == 2);
  CHECK(MustStat(vol.Path("p2")).st_nlink == 3);
  CHECK(MustStat(vol.Path("p2/moved")).st_nlink == 2);
  CHECK(DotDotIno(vol.Path("p2/moved")) == MustStat(vol.Path("p2")).st_ino);
  CHECK(ReadFile(vol.Path("p2/moved/payload")) == "payload");
  CHECK(ListDir(vol.Path("p1")).empty());

  // A directory can be renamed within its parent and keeps its children.
  REQUIRE(ErrnoOf(::rename(vol.Path("p2/moved").c_str(), vol.Path("p2/renamed").c_str())) == 0);
  CHECK(ListDir(vol.Path("p2/renamed")) == std::set<std::string>{"payload"});
  CHECK(MustStat(vol.Path("p2")).st_nlink == 3);
}

TEST_CASE("open and create flags", "[posix][namespace][open]") {
  TestVolume vol;
  vol.Mount();
  ::umask(022);

  // O_CREAT|O_EXCL creates once, then EEXIST.
  {
    Fd fd = MustOpen(vol.Path("f"), O_CREAT | O_EXCL | O_RDWR, 0666);
    CHECK((MustFstat(fd.get()).st_mode & 07777) == 0644);
    MustPwrite(fd.get(), "0123456789", 0);
  }
  CHECK(OpenErrno(vol.Path("f"), O_CREAT | O_EXCL | O_RDWR) == EEXIST);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  CHECK(OpenErrno(vol.Path("d"), O_CREAT | O_EXCL | O_RDONLY) == EEXIST);
  // O_EXCL does not follow a symlink, even a dangling one.
  REQUIRE(ErrnoOf(::symlink("target", vol.Path("dangling").c_str())) == 0);
  CHECK(OpenErrno(vol.Path("dangling"), O_CREAT | O_EXCL | O_WRONLY) == EEXIST);
  struct stat st {};
  CHECK(ErrnoOf(::stat(vol.Path("target").c_str(), &st)) == ENOENT);
  // Without O_EXCL, O_CREAT through a dangling symlink creates its target.
  CHECK(OpenErrno(vol.Path("dangling"), O_CREAT | O_WRONLY, 0600) == 0);
  CHECK(S_ISREG(MustStat(vol.Path("target")).st_mode));

  // O_CREAT of an existing file opens it without truncating or re-moding.
  CHECK(OpenErrno(vol.Path("f"), O_CREAT | O_RDWR, 0600) == 0);
  CHECK(ReadFile(vol.Path("f")) == "0123456789");
  CHECK((MustStat(vol.Path("f")).st_mode & 07777) == 0644);

  // O_TRUNC empties the file.
  {
    Fd fd = MustOpen(vol.Path("f"), O_WRONLY | O_TRUNC);
    CHECK(MustFstat(fd.get()).st_size == 0);
  }
  CHECK(MustStat(vol.Path("f")).st_size == 0);
  CHECK(ReadFile(vol.Path("f")).empty());

  // O_APPEND: every write goes to the end, whatever the offset; on Linux
  // even pwrite appends (pwrite(2), BUGS).
  WriteFile(vol.Path("log"), "abc");
  {
    Fd fd = MustOpen(vol.Path("log"), O_WRONLY | O_APPEND);
    REQUIRE(::lseek(fd.get(), 0, SEEK_SET) == 0);
    REQUIRE(::write(fd.get(), "XYZ", 3) == 3);
    CHECK(::lseek(fd.get(), 0, SEEK_CUR) == 6);
    REQUIRE(::pwrite(fd.get(), "123", 3, 0) == 3);
    // Another writer extends the file; the appender follows the new end.
    {
      Fd other = MustOpen(vol.Path("log"), O_WRONLY);
      MustPwrite(other.get(), "----", 9);
    }
    REQUIRE(::write(fd.get(), "!", 1) == 1);
  }
  CHECK(ReadFile(vol.Path("log")) == "abcXYZ123----!");

  // Type and existence errors.
  CHECK(OpenErrno(vol.Path("d"), O_WRONLY) == EISDIR);
  CHECK(OpenErrno(vol.Path("d"), O_RDWR) == EISDIR);
  CHECK(OpenErrno(vol.Path("f"), O_RDONLY | O_DIRECTORY) == ENOTDIR);
  CHECK(OpenErrno(vol.Path("missing"), O_RDONLY) == ENOENT);
  CHECK(OpenErrno(vol.Path("missing/x"), O_CREAT | O_WRONLY) == ENOENT);
  CHECK(OpenErrno(vol.Path("f/x"), O_CREAT | O_WRONLY) == ENOTDIR);
  CHECK(OpenErrno(vol.Path("d"), O_RDONLY | O_DIRECTORY) == 0);

  // A descriptor opened read-only cannot write, and vice versa.
  {
    WriteFile(vol.Path("ro"), "ro");
    Fd rd = MustOpen(vol.Path("ro"), O_RDONLY);
    CHECK(ErrnoOf(::write(rd.get(), "x", 1)) == EBADF);
    Fd wr = MustOpen(vol.Path("ro"), O_WRONLY);
    char c;
    CHECK(ErrnoOf(::read(wr.get(), &c, 1)) == EBADF);
  }
  CHECK(ReadFile(vol.Path("ro")) == "ro");
}

// The kernel forgets inodes it evicts (FORGET / BATCH_FORGET); the daemon
// must then still find them by name, with the same inode numbers, and keep
// serving inodes that are open. Eviction is forced with drop_caches.
TEST_CASE("inodes forgotten by the kernel are found again", "[posix][namespace][forget]") {
  REQUIRE(::geteuid() == 0);
  TestVolume vol;
  vol.Mount();

  constexpr int kFiles = 2000;
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  std::vector<ino_t> inos;
  for (int i = 0; i < kFiles; ++i) {
    std::string p = vol.Path("d/f" + std::to_string(i));
    WriteFile(p, std::to_string(i));
    inos.push_back(MustStat(p).st_ino);
  }
  Fd open_file = MustOpen(vol.Path("d/f7"), O_RDWR);
  Fd unlinked = MustOpen(vol.Path("d/f8"), O_RDWR);
  REQUIRE(ErrnoOf(::unlink(vol.Path("d/f8").c_str())) == 0);

  auto drop_caches = [] {
    Fd fd = MustOpen("/proc/sys/vm/drop_caches", O_WRONLY);
    REQUIRE(::write(fd.get(), "2", 1) == 1);  // dentries and inodes
  };
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    drop_caches();
    int wrong = 0;
    for (int i = 0; i < kFiles; ++i) {
      if (i == 8) continue;
      std::string p = vol.Path("d/f" + std::to_string(i));
      struct stat st {};
      if (::stat(p.c_str(), &st) != 0 || st.st_ino != inos[i] || ReadFile(p) != std::to_string(i)) {
        ++wrong;
      }
    }
    CHECK(wrong == 0);
    CHECK(MustFstat(open_file.get()).st_ino == inos[7]);
    CHECK(MustFstat(unlinked.get()).st_nlink == 0);
    CHECK(MustPread(unlinked.get(), 10, 0) == "8");
  }
  // Removing forgotten inodes works, and their names are gone.
  drop_caches();
  for (int i = 0; i < kFiles; i += 3) {
    if (i == 8) continue;
    REQUIRE(ErrnoOf(::unlink(vol.Path("d/f" + std::to_string(i)).c_str())) == 0);
  }
  drop_caches();
  std::set<std::string> left = ListDir(vol.Path("d"));
  CHECK(left.size() == static_cast<size_t>(kFiles - (kFiles + 2) / 3 - 1));
  CHECK(left.count("f3") == 0);
  CHECK(left.count("f4") == 1);
  MustPwrite(unlinked.get(), "still", 0);
  CHECK(MustPread(unlinked.get(), 10, 0) == "still");

  // Lookup counts: an inode looked up again and again (with evictions in
  // between) is freed exactly when its last name and last user are gone.
  const uint64_t free0 = MustStatvfs(vol.Path("")).f_bfree;
  const std::string big = vol.Path("d/big");
  WriteFile(big, Pattern(3, 1 << 20, 0));
  REQUIRE(ErrnoOf(::link(big.c_str(), vol.Path("big2").c_str())) == 0);
  const uint64_t used = MustStatvfs(vol.Path("")).f_bfree;
  CHECK(used < free0);
  for (int i = 0; i < 5; ++i) {
    MustStat(big);
    MustStat(vol.Path("big2"));
    drop_caches();
  }
  Fd held = MustOpen(big, O_RDONLY);
  REQUIRE(ErrnoOf(::unlink(big.c_str())) == 0);
  drop_caches();
  REQUIRE(ErrnoOf(::unlink(vol.Path("big2").c_str())) == 0);
  drop_caches();
  CHECK(MustStatvfs(vol.Path("")).f_bfree == used);  // still open
  CHECK(FirstMismatch(MustPread(held.get(), 2 << 20, 0), Pattern(3, 1 << 20, 0)) == "");
  held.reset();
  bool freed = WaitUntil([&] { return MustStatvfs(vol.Path("")).f_bfree == free0; });
  INFO("f_bfree " << MustStatvfs(vol.Path("")).f_bfree << ", expected " << free0);
  CHECK(freed);
}

}  // namespace
}  // namespace nosyncfs::test
