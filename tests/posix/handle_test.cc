// File handles (name_to_handle_at, open_by_handle_at: what an NFS server
// keeps) stay valid after the kernel has forgotten the inode, across an
// unmount and a new mount, until the file is deleted; then they are stale.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

// A file handle as name_to_handle_at gives it, in its own storage.
class Handle {
 public:
  explicit Handle(const std::string& path) : buf_(sizeof(file_handle) + MAX_HANDLE_SZ) {
    h()->handle_bytes = MAX_HANDLE_SZ;
    int mount_id = 0;
    REQUIRE(ErrnoOf(::name_to_handle_at(AT_FDCWD, path.c_str(), h(), &mount_id, 0)) == 0);
  }
  file_handle* h() { return reinterpret_cast<file_handle*>(buf_.data()); }
  std::string bytes() {
    return std::string(reinterpret_cast<const char*>(h()->f_handle), h()->handle_bytes);
  }

 private:
  std::vector<char> buf_;
};

// open_by_handle_at on the mount at `mountpoint`: the descriptor, or -errno.
int OpenByHandle(const std::string& mountpoint, Handle& handle, int flags) {
  Fd mount_fd = MustOpen(mountpoint, O_RDONLY | O_DIRECTORY);
  int fd = ::open_by_handle_at(mount_fd.get(), handle.h(), flags | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

// Whether opening `handle` fails with ESTALE within a few seconds
// (descriptors it opens meanwhile are closed).
bool StaleSoon(const std::string& mountpoint, Handle& handle, int flags) {
  return WaitUntil(
      [&] {
        int fd = OpenByHandle(mountpoint, handle, flags);
        if (fd >= 0) ::close(fd);
        return fd == -ESTALE;
      },
      std::chrono::seconds(5));
}

std::string FdPath(int fd) {
  char buf[4096];
  ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf);
  REQUIRE(n > 0);
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

TEST_CASE("file handles outlive the kernel's cache and a remount", "[posix][handle]") {
  TestVolume vol;
  vol.Mount();
  REQUIRE(ErrnoOf(::mkdir(vol.Path("a").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("a/b").c_str(), 0755)) == 0);
  WriteFile(vol.Path("a/b/f"), "contents of f");
  REQUIRE(ErrnoOf(::link(vol.Path("a/b/f").c_str(), vol.Path("g").c_str())) == 0);
  const ino_t f_ino = MustStat(vol.Path("a/b/f")).st_ino;
  const ino_t b_ino = MustStat(vol.Path("a/b")).st_ino;

  Handle file(vol.Path("a/b/f"));
  Handle link(vol.Path("g"));
  Handle dir(vol.Path("a/b"));
  Handle root(vol.mountpoint());
  // Both names of one file give one handle: it names the inode.
  CHECK(file.bytes() == link.bytes());

  // While the kernel still knows the inodes.
  {
    int fd = OpenByHandle(vol.mountpoint(), file, O_RDONLY);
    REQUIRE(fd >= 0);
    Fd f(fd);
    CHECK(MustPread(f.get(), 4096, 0) == "contents of f");
  }

  // A new mount: a new kernel inode cache and a new daemon.
  vol.Unmount();
  vol.Mount();

  SECTION("a file, by either link") {
    for (Handle* h : {&file, &link}) {
      int fd = OpenByHandle(vol.mountpoint(), *h, O_RDWR);
      REQUIRE(fd >= 0);
      Fd f(fd);
      CHECK(MustFstat(f.get()).st_ino == f_ino);
      CHECK(MustPread(f.get(), 4096, 0) == "contents of f");
    }
    // Writable through the handle like through a name.
    {
      int fd = OpenByHandle(vol.mountpoint(), file, O_WRONLY | O_APPEND);
      REQUIRE(fd >= 0);
      Fd f(fd);
      MustPwrite(f.get(), "!", 0);  // O_APPEND: at the end
    }
    CHECK(ReadFile(vol.Path("g")) == "contents of f!");
  }

  SECTION("a directory, reconnected to its path through \"..\"") {
    int fd = OpenByHandle(vol.mountpoint(), dir, O_RDONLY | O_DIRECTORY);
    REQUIRE(fd >= 0);
    Fd d(fd);
    CHECK(MustFstat(d.get()).st_ino == b_ino);
    CHECK(FdPath(d.get()) == vol.Path("a/b"));
    int child = ::openat(d.get(), "f", O_RDONLY | O_CLOEXEC);
    REQUIRE(child >= 0);
    Fd c(child);
    CHECK(MustPread(c.get(), 4096, 0) == "contents of f");
  }

  SECTION("the root") {
    int fd = OpenByHandle(vol.mountpoint(), root, O_RDONLY | O_DIRECTORY);
    REQUIRE(fd >= 0);
    Fd d(fd);
    CHECK(MustFstat(d.get()).st_ino == MustStat(vol.mountpoint()).st_ino);
  }

  SECTION("one link removed: the other keeps the handle good") {
    REQUIRE(ErrnoOf(::unlink(vol.Path("a/b/f").c_str())) == 0);
    vol.Unmount();
    vol.Mount();
    int fd = OpenByHandle(vol.mountpoint(), file, O_RDONLY);
    REQUIRE(fd >= 0);
    Fd f(fd);
    CHECK(MustPread(f.get(), 4096, 0) == "contents of f");
  }
}

TEST_CASE("handles of deleted files and directories are stale", "[posix][handle]") {
  TestVolume vol;
  vol.Mount();
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  WriteFile(vol.Path("f"), "x");
  Handle file(vol.Path("f"));
  Handle dir(vol.Path("d"));
  REQUIRE(ErrnoOf(::unlink(vol.Path("f").c_str())) == 0);
  REQUIRE(ErrnoOf(::rmdir(vol.Path("d").c_str())) == 0);

  // As soon as the kernel drops the inodes: with their last link, once
  // nothing holds them. The kernel holds a file until the daemon has
  // answered the RELEASE of its last close, which it sends without
  // waiting; until then the handle opens the deleted file, as a descriptor
  // still open would.
  CHECK(StaleSoon(vol.mountpoint(), file, O_RDONLY));
  CHECK(StaleSoon(vol.mountpoint(), dir, O_RDONLY | O_DIRECTORY));
  // ... and after a remount.
  vol.Unmount();
  vol.Mount();
  CHECK(OpenByHandle(vol.mountpoint(), file, O_RDONLY) == -ESTALE);
  CHECK(OpenByHandle(vol.mountpoint(), dir, O_RDONLY | O_DIRECTORY) == -ESTALE);
  // A new file does not take over the old one's handle.
  WriteFile(vol.Path("f"), "new");
  CHECK(OpenByHandle(vol.mountpoint(), file, O_RDONLY) == -ESTALE);
}

TEST_CASE("a forged file handle is stale and the daemon carries on", "[posix][handle][badinput]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "x");
  Handle h(vol.Path("f"));
  // Every byte flipped in turn: an inode number that does not exist, a
  // wrong generation, or garbage; never another file, never a crash.
  const std::string good = h.bytes();
  for (size_t i = 0; i < good.size(); ++i) {
    h.h()->f_handle[i] = static_cast<unsigned char>(good[i] ^ 0x5a);
    int fd = OpenByHandle(vol.mountpoint(), h, O_RDONLY);
    if (fd >= 0) {
      Fd f(fd);
      INFO("byte " << i);
      CHECK(MustPread(f.get(), 4096, 0) == "x");  // only its own file, if any
    } else {
      CHECK((fd == -ESTALE || fd == -EINVAL));
    }
    h.h()->f_handle[i] = static_cast<unsigned char>(good[i]);
  }
  CHECK(ReadFile(vol.Path("f")) == "x");
}

}  // namespace nosyncfs::test
