// The no-fsync policy on directories (docs/semantics.md, "A policy for new
// files"): `setfattr -n user.nosync -v all DIR` makes every regular file
// created in DIR NF for its whole life, growing by NF space allocated ahead
// of its size (given back at its last close), and every directory created
// in DIR inherit the policy. Durability is checked under emulate=strict by
// killing the daemon (a power loss) and mounting again.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kUnit = 2 << 20;  // the default growth unit

std::string Get(const std::string& path, const char* name = "user.nosync") {
  char buf[65536];
  ssize_t n = ::getxattr(path.c_str(), name, buf, sizeof(buf));
  return n < 0 ? "errno " + ErrnoName(errno) : std::string(buf, static_cast<size_t>(n));
}

Errno Set(const std::string& path, const std::string& value, int flags = 0) {
  return ErrnoOf(::setxattr(path.c_str(), "user.nosync", value.data(), value.size(), flags));
}

uint64_t Blocks512(const std::string& path) { return MustStat(path).st_blocks; }

// A file's flags once its last close has given its preallocation back:
// the kernel sends RELEASE after close(2) returns, so a look right after
// may come first.
std::string FlagsAfterClose(const std::string& path, const std::string& expected) {
  (void)WaitUntil([&] { return Get(path) == expected; }, std::chrono::seconds(5));
  return Get(path);
}

const std::string kUnset = "errno " + ErrnoName(ENODATA);

// The NF blocks of a file, from its extent listing, in bytes.
// The directory DIR of v, made with the policy `value`.
std::string PolicyDir(const TestVolume& v, const std::string& value) {
  const std::string d = v.Path("db");
  REQUIRE(ErrnoOf(::mkdir(d.c_str(), 0755)) == 0);
  REQUIRE(Set(d, value) == 0);
  return d;
}

}  // namespace

TEST_CASE("policy: set, shown, refused when malformed, cleared", "[posix][nosync][policy]") {
  TestVolume v;
  v.Mount();
  const std::string d = v.Path("db");
  REQUIRE(ErrnoOf(::mkdir(d.c_str(), 0755)) == 0);
  CHECK(Get(d) == kUnset);
  CHECK(Set(d, "all") == 0);
  CHECK(Get(d) == "all,grow=2097152");
  // listed, so that cp -a and rsync -X copy it
  char names[256];
  ssize_t n = ::listxattr(d.c_str(), names, sizeof(names));
  CHECK(std::string(names, n > 0 ? static_cast<size_t>(n) : 0) == std::string("user.nosync\0", 12));
  CHECK(Set(d, " all , grow=8M ") == 0);
  CHECK(Get(d) == "all,grow=8388608");
  CHECK(Set(d, "all,grow=5000") == 0);  // rounded up to whole blocks
  CHECK(Get(d) == "all,grow=8192");
  for (const std::string bad : {"0-1M", "all,0-4K", "all,grow=0", "all,grow=2G", "all,grow=",
                                "all,grow=1T", "all,size=1M", "some", "all,grow=-1"}) {
    INFO(bad);
    CHECK(Set(d, bad) == EINVAL);
    CHECK(Get(d) == "all,grow=8192");  // unchanged
  }
  CHECK(Set(d, "all", XATTR_CREATE) == EEXIST);
  CHECK(Set(d, "all", XATTR_REPLACE) == 0);
  CHECK(ErrnoOf(::removexattr(d.c_str(), "user.nosync")) == 0);
  CHECK(Get(d) == kUnset);
  CHECK(Set(d, "all", XATTR_REPLACE) == ENODATA);
  CHECK(Set(d, "all") == 0);
  CHECK(Set(d, "") == 0);  // the empty value clears too
  CHECK(Get(d) == kUnset);
  // Only with write permission on the directory, as for any user.* xattr.
  REQUIRE(ErrnoOf(::chmod(d.c_str(), 0755)) == 0);
  CHECK(RunAs(kNobody, kNogroup, [&] { return Set(d, "all").value; }) == EACCES);
  // Survives a remount.
  CHECK(Set(d, "all,grow=1M") == 0);
  v.Remount();
  CHECK(Get(d) == "all,grow=1048576");
}

TEST_CASE("policy: new files are NF for their whole life, grow ahead by whole units, give back "
          "at last close",
          "[posix][nosync][policy]") {
  TestVolume v(TestVolume::Options{.image_bytes = 128ull << 20, .block_size = 0, .format = true,
                                   .mkfs_args = {}});
  v.Mount();
  const std::string d = PolicyDir(v, "all");
  const std::string f = d + "/log";
  const uint64_t free0 = MustStatvfs(v.mountpoint()).f_bfree;
  {
    Fd fd = MustOpen(f, O_CREAT | O_WRONLY | O_APPEND);
    CHECK(Get(f) == kUnset);  // no blocks yet
    MustPwrite(fd.get(), Pattern(1, 5000), 0);
    // One unit of NF space, past the size: in st_blocks and statfs, not
    // in st_size.
    CHECK(MustStat(f).st_size == 5000);
    CHECK(Get(f) == "0-2097152");
    CHECK(NfBytes(f) == kUnit);
    CHECK(Blocks512(f) == kUnit / 512);
    CHECK(free0 - MustStatvfs(v.mountpoint()).f_bfree == kUnit / kBlock);
    // Appends land in the sealed space; past it, the next unit.
    for (int i = 0; i < 31; ++i) {
      const std::string rec = Pattern(i, 100000);
      REQUIRE(::write(fd.get(), rec.data(), rec.size()) == static_cast<ssize_t>(rec.size()));
    }
    CHECK(MustStat(f).st_size == 5000 + 31 * 100000);
    CHECK(Get(f) == "0-" + std::to_string(2 * kUnit));
    CHECK(NfBytes(f) == 2 * kUnit);
  }
  // Closed for the last time: what lies wholly past the size goes back
  // (RELEASE is asynchronous: wait for it).
  const uint64_t size = 5000 + 31 * 100000;
  const uint64_t kept = (size + kBlock - 1) / kBlock * kBlock;
  CHECK(WaitUntil([&] { return NfBytes(f) == kept; }, std::chrono::seconds(5)));
  CHECK(Get(f) == "0-" + std::to_string(kept));
  CHECK(WaitUntil([&] { return Blocks512(f) == kept / 512; }, std::chrono::seconds(5)));
  CHECK(free0 - MustStatvfs(v.mountpoint()).f_bfree == kept / kBlock);
  // Reopened, it grows NF again; a truncate gives back too.
  {
    Fd fd = MustOpen(f, O_WRONLY);
    MustPwrite(fd.get(), "tail", size);
    CHECK(NfBytes(f) == 2 * kUnit);
    REQUIRE(ErrnoOf(::ftruncate(fd.get(), 10000)) == 0);
    CHECK(NfBytes(f) == 3 * kBlock);
    // fallocate allocates NF blocks too, and copies into the file are
    // writes into NF blocks, never shared ones.
    REQUIRE(ErrnoOf(::fallocate(fd.get(), 0, 0, 5 * kUnit)) == 0);
    CHECK(NfBytes(f) == 5 * kUnit);
    const std::string plain = v.Path("plain");
    WriteFile(plain, Pattern(9, 64 * kBlock));
    Fd in = MustOpen(plain, O_RDONLY);
    loff_t off_in = 0, off_out = 0;
    REQUIRE(::copy_file_range(in.get(), &off_in, fd.get(), &off_out, 64 * kBlock, 0) ==
            static_cast<ssize_t>(64 * kBlock));
    CHECK(NfBytes(f) == 5 * kUnit);
  }
  CHECK(ReadFile(f).substr(0, 64 * kBlock) == Pattern(9, 64 * kBlock));
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("policy: writes under it are durable on return, and a file created under it is NF "
          "after a crash",
          "[posix][nosync][policy][persistence][crash]") {
  TestVolume v;
  v.Mount();
  const std::string d = PolicyDir(v, "all,grow=64K");
  SyncWholeFs(v.mountpoint());  // the directory; never the files below
  std::string expected;
  {
    Fd fd = MustOpen(d + "/wal", O_CREAT | O_WRONLY | O_APPEND);
    for (int i = 0; i < 40; ++i) {
      const std::string rec = Pattern(100 + i, 3000);
      REQUIRE(::write(fd.get(), rec.data(), rec.size()) == static_cast<ssize_t>(rec.size()));
      expected += rec;
    }
    // Acknowledged, no fsync: a power loss now.
    v.SigkillDaemon();
  }
  v.ClearDeadMount();
  v.Mount();
  CHECK(ReadFile(d + "/wal") == expected);
  CHECK(Get(d + "/wal") != kUnset);
  CHECK(NfBytes(d + "/wal") >= expected.size());
  // Its policy came back with it: it still grows NF.
  {
    Fd fd = MustOpen(d + "/wal", O_WRONLY | O_APPEND);
    MustPwrite(fd.get(), std::string(200000, 'z'), expected.size());
  }
  CHECK(NfBytes(d + "/wal") >= expected.size() + 200000);
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("policy: subdirectories inherit it, clearing it changes no file, rename keeps flags",
          "[posix][nosync][policy]") {
  TestVolume v;
  v.Mount();
  const std::string d = PolicyDir(v, "all,grow=1M");
  REQUIRE(ErrnoOf(::mkdir((d + "/sub").c_str(), 0755)) == 0);
  CHECK(Get(d + "/sub") == "all,grow=1048576");
  WriteFile(d + "/sub/f", "in a subdirectory");
  CHECK(FlagsAfterClose(d + "/sub/f", "0-4096") == "0-4096");  // closed: the unit went back
  WriteFile(v.Path("outside"), "plain");
  // A file renamed in keeps its own (no) flags; one renamed out keeps NF.
  REQUIRE(ErrnoOf(::rename(v.Path("outside").c_str(), (d + "/moved").c_str())) == 0);
  CHECK(Get(d + "/moved") == kUnset);
  WriteFile(d + "/g", "under the policy");
  REQUIRE(ErrnoOf(::rename((d + "/g").c_str(), v.Path("g").c_str())) == 0);
  CHECK(FlagsAfterClose(v.Path("g"), "0-4096") == "0-4096");
  // Other kinds of file are not flagged.
  REQUIRE(ErrnoOf(::symlink("g", (d + "/link").c_str())) == 0);
  REQUIRE(ErrnoOf(::mknod((d + "/fifo").c_str(), S_IFIFO | 0644, 0)) == 0);
  CHECK(Get(d + "/fifo") == kUnset);
  // Clearing the directory's policy changes no file: the file made under
  // it still grows NF; a file made afterwards does not.
  REQUIRE(ErrnoOf(::removexattr(d.c_str(), "user.nosync")) == 0);
  {
    Fd fd = MustOpen(d + "/sub/f", O_WRONLY | O_APPEND);
    MustPwrite(fd.get(), std::string(50000, 'x'), 17);
  }
  CHECK(FlagsAfterClose(d + "/sub/f", "0-53248") == "0-53248");
  WriteFile(d + "/after", "made after the clear");
  CHECK(Get(d + "/after") == kUnset);
  CHECK(Get(d + "/sub") == "all,grow=1048576");  // its own policy stays
  // Clearing a file's flags ends the policy it was made under.
  REQUIRE(ErrnoOf(::removexattr((d + "/sub/f").c_str(), "user.nosync")) == 0);
  {
    Fd fd = MustOpen(d + "/sub/f", O_WRONLY | O_APPEND);
    MustPwrite(fd.get(), std::string(50000, 'y'), 50017);
  }
  CHECK(Get(d + "/sub/f") == kUnset);
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("policy: cp -a and rsync -X carry it", "[posix][nosync][policy]") {
  TestVolume v;
  v.Mount();
  const std::string d = PolicyDir(v, "all,grow=4M");
  WriteFile(d + "/f", Pattern(3, 10000));
  CommandResult cp = RunCommand({"cp", "-a", d, v.Path("copy")});
  INFO(cp.Describe());
  REQUIRE(cp.exit_status == 0);
  CHECK(Get(v.Path("copy")) == "all,grow=4194304");
  CHECK(FlagsAfterClose(v.Path("copy/f"), "0-12288") == "0-12288");
  WriteFile(v.Path("copy/new"), "x");
  CHECK(FlagsAfterClose(v.Path("copy/new"), "0-4096") == "0-4096");
  CommandResult rsync = RunCommand({"rsync", "-aX", d + "/", v.Path("synced")});
  INFO(rsync.Describe());
  REQUIRE(rsync.exit_status == 0);
  CHECK(Get(v.Path("synced")) == "all,grow=4194304");
  CHECK(ReadFile(v.Path("synced/f")) == Pattern(3, 10000));
  v.Unmount();
  ExpectFsckClean(v);
}

}  // namespace nosyncfs::test
