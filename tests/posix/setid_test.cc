// Set-user-ID and set-group-ID bits when a file is modified or its owner
// changes. The daemon claims FUSE_HANDLE_KILLPRIV_V2, so it clears them
// itself, by the kernel's rules (fs/attr.c), checked here against what
// ext4 and tmpfs do:
//  - a caller without CAP_FSETID who writes, truncates, O_TRUNC-opens,
//    fallocates or copies into a regular file clears set-user-ID, and
//    set-group-ID when group execute is set or the caller is not in the
//    file's group; root keeps both;
//  - chown and chgrp of anything but a directory, even chown(f, -1, -1),
//    clear set-user-ID for everyone, root included, and set-group-ID when
//    group execute is set or the caller is neither in the file's group
//    nor root.
// The kernel still removes security.capability on a write.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <functional>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

// What each modification does, run by the caller (root, or nobody in a
// forked child). Returns 0 or an errno.
struct Modification {
  const char* name;
  std::function<int(const std::string& path, const std::string& other)> run;
  bool nf = false;  // the file is flagged user.nosync=all first
};

// Opens `path` with `flags`, runs op(fd) (0, or -1 with errno set), closes
// it; returns 0 or the errno of what failed.
int OnFile(const std::string& path, int flags, const std::function<int(int)>& op) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return errno;
  int rc = op(fd) == 0 ? 0 : (errno != 0 ? errno : EIO);
  ::close(fd);
  return rc;
}

int WriteOneByte(const std::string& p) {
  return OnFile(p, O_WRONLY, [](int fd) { return ::pwrite(fd, "x", 1, 0) == 1 ? 0 : -1; });
}

std::vector<Modification> Modifications() {
  return {
      {"write", [](const std::string& p, const std::string&) { return WriteOneByte(p); }},
      {"write into an NF range",
       [](const std::string& p, const std::string&) { return WriteOneByte(p); }, true},
      {"ftruncate",
       [](const std::string& p, const std::string&) {
         return OnFile(p, O_WRONLY, [](int fd) { return ::ftruncate(fd, 100); });
       }},
      {"open O_TRUNC",
       [](const std::string& p, const std::string&) {
         return OnFile(p, O_WRONLY | O_TRUNC, [](int) { return 0; });
       }},
      {"fallocate",
       [](const std::string& p, const std::string&) {
         return OnFile(p, O_WRONLY, [](int fd) { return ::fallocate(fd, 0, 0, 8192); });
       }},
      {"punch hole",
       [](const std::string& p, const std::string&) {
         return OnFile(p, O_WRONLY, [](int fd) {
           return ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
         });
       }},
      {"fallocate KEEP_SIZE",
       [](const std::string& p, const std::string&) {
         return OnFile(p, O_WRONLY,
                       [](int fd) { return ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 65536); });
       }},
      {"zero range",
       [](const std::string& p, const std::string&) {
         return OnFile(p, O_WRONLY,
                       [](int fd) { return ::fallocate(fd, FALLOC_FL_ZERO_RANGE, 100, 5000); });
       }},
      {"zero range KEEP_SIZE",
       [](const std::string& p, const std::string&) {
         return OnFile(p, O_WRONLY, [](int fd) {
           return ::fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 4096, 8192);
         });
       }},
      {"copy_file_range into it",
       [](const std::string& p, const std::string& other) {
         return OnFile(other, O_RDONLY, [&](int in) {
           return OnFile(p, O_WRONLY, [&](int out) {
             return ::copy_file_range(in, nullptr, out, nullptr, 10, 0) == 10 ? 0 : -1;
           });
         });
       }},
  };
}

mode_t ModeOf(const std::string& path) { return MustStat(path).st_mode & 07777; }

// Groups of the chown tests, as in the POSIX conformance suites: the owner
// 65534 is in kGroupA and kGroupB, not in kGroupC.
constexpr gid_t kGroupA = 65533, kGroupB = 65532, kGroupC = 65531;

// One node of each kind that is not a directory, made by root.
struct NodeKind {
  const char* name;
  std::function<void(const std::string&)> make;
};

std::vector<NodeKind> NodeKinds() {
  auto node = [](mode_t type, dev_t rdev = 0) {
    return [type, rdev](const std::string& p) {
      REQUIRE(ErrnoOf(::mknod(p.c_str(), type | 0644, rdev)) == 0);
    };
  };
  return {{"regular file", [](const std::string& p) { WriteFile(p, "data"); }},
          {"FIFO", node(S_IFIFO)},
          {"socket", node(S_IFSOCK)},
          {"character device", node(S_IFCHR, makedev(1, 3))},
          {"block device", node(S_IFBLK, makedev(7, 0))}};
}

// chown(path, uid, gid) as the owner, kNobody in kGroupA and kGroupB;
// `how` picks chown, lchown, or chown through a symlink `link`.
int ChownAsOwner(const std::string& how, const std::string& path, const std::string& link,
                 uid_t uid, gid_t gid) {
  return RunAs(kNobody, kGroupA, {kGroupB}, [&] {
    if (how == "lchown") return ErrnoOf(::lchown(path.c_str(), uid, gid)).value;
    if (how == "chown through a symlink") return ErrnoOf(::chown(link.c_str(), uid, gid)).value;
    return ErrnoOf(::chown(path.c_str(), uid, gid)).value;
  });
}

// The mode as the kernel has it cached: statx asking for the mode only,
// which a valid cached mode answers without asking the daemon.
mode_t CachedModeOf(const std::string& path) {
  struct statx stx {};
  REQUIRE(::statx(AT_FDCWD, path.c_str(), 0, STATX_MODE, &stx) == 0);
  return stx.stx_mode & 07777;
}

}  // namespace

TEST_CASE("set-ID bits: unprivileged modifications clear them, root's keep them",
          "[posix][attr][setid]") {
  TestVolume vol;
  vol.Mount();
  ::umask(0);
  const std::string other = vol.Path("other");
  WriteFile(other, "0123456789abcdef", 0644);
  for (const Modification& m : Modifications()) {
    INFO(m.name);
    const std::string f = vol.Path("f");
    WriteFile(f, std::string(8192, 'a'), 0777);
    if (m.nf) REQUIRE(ErrnoOf(::setxattr(f.c_str(), "user.nosync", "all", 3, 0)) == 0);

    // An unprivileged caller clears set-user-ID and (with group execute)
    // set-group-ID.
    REQUIRE(ErrnoOf(::chmod(f.c_str(), 06777)) == 0);
    REQUIRE(ModeOf(f) == 06777);
    CHECK(RunAs(kNobody, kNogroup, [&] { return m.run(f, other); }) == 0);
    // The kernel was told: its cached mode is the new one at once (a stale
    // set-user-ID bit would survive into permission checks and exec until
    // the attribute timeout). Asked first, before a full stat refreshes it.
    CHECK(CachedModeOf(f) == 0777);
    CHECK(ModeOf(f) == 0777);

    // Set-group-ID without group execute goes for a caller outside the
    // file's group (root's group here)...
    REQUIRE(ErrnoOf(::chmod(f.c_str(), 06767)) == 0);
    CHECK(RunAs(kNobody, kNogroup, [&] { return m.run(f, other); }) == 0);
    CHECK(ModeOf(f) == 0767);
    // ... and stays for one inside it, by a supplementary group or the
    // primary one.
    REQUIRE(ErrnoOf(::chown(f.c_str(), 0, kGroupA)) == 0);
    REQUIRE(ErrnoOf(::chmod(f.c_str(), 06767)) == 0);
    CHECK(RunAs(kNobody, kNogroup, {kGroupA}, [&] { return m.run(f, other); }) == 0);
    CHECK(ModeOf(f) == 02767);
    REQUIRE(ErrnoOf(::chmod(f.c_str(), 06767)) == 0);
    CHECK(RunAs(kNobody, kGroupA, [&] { return m.run(f, other); }) == 0);
    CHECK(ModeOf(f) == 02767);

    // Root (CAP_FSETID) keeps both.
    REQUIRE(ErrnoOf(::chmod(f.c_str(), 06777)) == 0);
    CHECK(m.run(f, other) == 0);
    CHECK(ModeOf(f) == 06777);
    REQUIRE(ErrnoOf(::unlink(f.c_str())) == 0);
  }
}

TEST_CASE("set-ID bits: chown and chgrp clear them as Linux does, for every kind of file",
          "[posix][attr][setid]") {
  TestVolume vol;
  vol.Mount();
  ::umask(0);
  const std::string link = vol.Path("link");
  for (const NodeKind& kind : NodeKinds()) {
    for (const std::string how : {"chown", "lchown", "chown through a symlink"}) {
      INFO(kind.name << ", " << how);
      const std::string f = vol.Path("f");
      kind.make(f);
      REQUIRE(ErrnoOf(::symlink("f", link.c_str())) == 0);
      auto owned = [&](gid_t gid, mode_t mode) {
        REQUIRE(ErrnoOf(::chown(f.c_str(), kNobody, gid)) == 0);
        REQUIRE(ErrnoOf(::chmod(f.c_str(), mode)) == 0);
        REQUIRE(ModeOf(f) == mode);
      };
      // The owner changes the group, or only names it again, or nothing:
      // both bits go (group execute is set).
      owned(kGroupA, 06555);
      CHECK(ChownAsOwner(how, f, link, kNobody, kGroupB) == 0);
      CHECK(ModeOf(f) == 0555);
      CHECK(MustStat(f).st_gid == kGroupB);
      owned(kGroupB, 06555);
      CHECK(ChownAsOwner(how, f, link, -1, kGroupA) == 0);
      CHECK(ModeOf(f) == 0555);
      owned(kGroupA, 06555);
      CHECK(ChownAsOwner(how, f, link, -1, -1) == 0);
      CHECK(ModeOf(f) == 0555);
      // Without group execute, set-group-ID stays for an owner in the
      // file's group and goes for one outside it.
      owned(kGroupA, 06745);
      CHECK(ChownAsOwner(how, f, link, -1, -1) == 0);
      CHECK(ModeOf(f) == 02745);
      owned(kGroupC, 06745);
      CHECK(ChownAsOwner(how, f, link, -1, -1) == 0);
      CHECK(ModeOf(f) == 0745);
      // Root: set-user-ID goes all the same; set-group-ID goes with group
      // execute and stays without (CAP_FSETID).
      owned(kGroupA, 06555);
      CHECK(ErrnoOf(::chown(f.c_str(), kNobody - 2, kGroupC)) == 0);
      CHECK(ModeOf(f) == 0555);
      owned(kGroupA, 06745);
      CHECK(ErrnoOf(::chown(f.c_str(), kNobody - 2, kGroupC)) == 0);
      CHECK(ModeOf(f) == 02745);
      REQUIRE(ErrnoOf(::unlink(link.c_str())) == 0);
      REQUIRE(ErrnoOf(::unlink(f.c_str())) == 0);
    }
  }
  // A directory keeps both (set-group-ID there is inheritance).
  const std::string d = vol.Path("d");
  REQUIRE(ErrnoOf(::mkdir(d.c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::chmod(d.c_str(), 06755)) == 0);
  CHECK(ErrnoOf(::chown(d.c_str(), kNobody, kGroupA)) == 0);
  CHECK(ModeOf(d) == 06755);
  CHECK(ChownAsOwner("chown", d, link, -1, kGroupB) == 0);
  CHECK(ModeOf(d) == 06755);
}

TEST_CASE("set-ID bits survive a remount once cleared", "[posix][attr][setid][persistence]") {
  TestVolume vol;
  vol.Mount();
  const std::string f = vol.Path("f");
  WriteFile(f, "data");
  REQUIRE(ErrnoOf(::chmod(f.c_str(), 06777)) == 0);
  CHECK(RunAs(kNobody, kNogroup, [&] { return WriteOneByte(f); }) == 0);
  SyncWholeFs(vol.mountpoint());
  vol.KillDaemon();
  vol.Mount();
  CHECK(ModeOf(f) == 0777);
}

TEST_CASE("a write removes security.capability, as on ext4", "[posix][attr][setid]") {
  TestVolume vol;
  vol.Mount();
  const std::string f = vol.Path("f");
  WriteFile(f, "data");
  REQUIRE(ErrnoOf(::chmod(f.c_str(), 0777)) == 0);
  // struct vfs_cap_data, revision 2, with CAP_NET_RAW permitted.
  const unsigned char caps[20] = {0x00, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00};
  auto set_caps = [&] {
    REQUIRE(ErrnoOf(::setxattr(f.c_str(), "security.capability", caps, sizeof caps, 0)) == 0);
    REQUIRE(::getxattr(f.c_str(), "security.capability", nullptr, 0) > 0);
  };
  auto has_caps = [&] { return ::getxattr(f.c_str(), "security.capability", nullptr, 0) > 0; };
  SECTION("written by root") {
    set_caps();
    CHECK(WriteOneByte(f) == 0);
    CHECK_FALSE(has_caps());
  }
  SECTION("written by an unprivileged user") {
    set_caps();
    CHECK(RunAs(kNobody, kNogroup, [&] { return WriteOneByte(f); }) == 0);
    CHECK_FALSE(has_caps());
  }
}

}  // namespace nosyncfs::test
