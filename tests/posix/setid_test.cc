// Set-user-ID and set-group-ID bits when a file is modified. The daemon
// claims FUSE_HANDLE_KILLPRIV_V2, so it clears them itself: as on ext4, a
// caller without CAP_FSETID who writes, truncates, O_TRUNC-opens,
// fallocates or copies into a file clears set-user-ID, and set-group-ID
// when group execute is set; root keeps them; chown clears them for
// everyone. The kernel still removes security.capability on a write.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
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

    // Set-group-ID without group execute (a mandatory-locking mark) stays.
    REQUIRE(ErrnoOf(::chmod(f.c_str(), 06767)) == 0);
    CHECK(RunAs(kNobody, kNogroup, [&] { return m.run(f, other); }) == 0);
    CHECK(ModeOf(f) == 02767);

    // Root (CAP_FSETID) keeps both.
    REQUIRE(ErrnoOf(::chmod(f.c_str(), 06777)) == 0);
    CHECK(m.run(f, other) == 0);
    CHECK(ModeOf(f) == 06777);
    REQUIRE(ErrnoOf(::unlink(f.c_str())) == 0);
  }
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
