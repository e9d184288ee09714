// Real-mount tests of the no-fsync flag: SEMANTICS.md sections 1, 2, 3 and 5.
// Durability claims are checked under emulate=strict by killing the daemon
// (a power loss: only persisted bytes survive) and remounting.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

// getxattr as a string; the errno on failure.
struct XattrValue {
  std::string value;
  Errno err;
};

XattrValue GetX(const std::string& path, const std::string& name) {
  char buf[65536];
  ssize_t n = getxattr(path.c_str(), name.c_str(), buf, sizeof(buf));
  if (n < 0) return {"", Errno{errno}};
  return {std::string(buf, static_cast<size_t>(n)), Errno{0}};
}

Errno SetX(const std::string& path, const std::string& name, const std::string& value,
           int flags = 0) {
  return ErrnoOf(setxattr(path.c_str(), name.c_str(), value.data(), value.size(), flags));
}

std::string Nosync(const std::string& path) { return GetX(path, "user.nosync").value; }

struct ExtentLine {
  uint64_t logical, length, device;
  std::string flags;
};

std::vector<ExtentLine> Extents(const std::string& path) {
  XattrValue v = GetX(path, "user.nosync.extents");
  REQUIRE(v.err == 0);
  std::vector<ExtentLine> out;
  std::istringstream in(v.value);
  ExtentLine e;
  while (in >> e.logical >> e.length >> e.device >> e.flags) out.push_back(e);
  return out;
}

std::string ListXattrs(const std::string& path) {
  char buf[4096];
  ssize_t n = listxattr(path.c_str(), buf, sizeof(buf));
  REQUIRE(n >= 0);
  return std::string(buf, static_cast<size_t>(n));
}

// Creates an empty file and makes it and its name durable.
void CreateDurably(const TestVolume& v, const std::string& path) {
  Fd fd = MustOpen(path, O_CREAT | O_RDWR);
  REQUIRE(fsync(fd.get()) == 0);
  Fd dir = MustOpen(v.mountpoint(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fsync(dir.get()) == 0);
}

constexpr size_t kKiB = 1024;
constexpr size_t kBlock = 4096;  // the default block size

}  // namespace

TEST_CASE("user.nosync: set, canonical get, clear, listxattr", "[posix][nosync]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(1, 40 * kKiB));

  // Unset: ENODATA and not listed.
  CHECK(GetX(f, "user.nosync").err == ENODATA);
  CHECK(ListXattrs(f).find("user.nosync") == std::string::npos);

  // Outward rounding, suffixes, unsorted and overlapping items.
  CHECK(SetX(f, "user.nosync", "20000+100, 1K-3K,4K-8K") == 0);
  CHECK(Nosync(f) == "0-8192,16384-20480");
  CHECK(ListXattrs(f).find(std::string("user.nosync\0", 12)) != std::string::npos);
  // Declarative and idempotent: the same text for the same state.
  CHECK(SetX(f, "user.nosync", "0-8192,16384-20480") == 0);
  CHECK(Nosync(f) == "0-8192,16384-20480");
  CHECK(SetX(f, "user.nosync", "all") == 0);
  CHECK(Nosync(f) == "0-40960");
  // The size did not change and the data is intact.
  CHECK(MustStat(f).st_size == static_cast<off_t>(40 * kKiB));
  CHECK(ReadFile(f) == Pattern(1, 40 * kKiB));

  // XATTR_CREATE / XATTR_REPLACE follow the usual xattr rules.
  CHECK(SetX(f, "user.nosync", "0-4K", XATTR_CREATE) == EEXIST);
  CHECK(SetX(f, "user.nosync", "0-4K", XATTR_REPLACE) == 0);
  CHECK(Nosync(f) == "0-4096");

  // Clearing: removexattr, and the empty value.
  CHECK(ErrnoOf(removexattr(f.c_str(), "user.nosync")) == 0);
  CHECK(GetX(f, "user.nosync").err == ENODATA);
  CHECK(ErrnoOf(removexattr(f.c_str(), "user.nosync")) == ENODATA);
  CHECK(SetX(f, "user.nosync", "0-4K", XATTR_REPLACE) == ENODATA);
  CHECK(SetX(f, "user.nosync", "0-4K") == 0);
  CHECK(SetX(f, "user.nosync", "") == 0);
  CHECK(GetX(f, "user.nosync").err == ENODATA);
  // Clearing keeps the blocks.
  CHECK(MustStat(f).st_blocks == static_cast<blkcnt_t>(40 * kKiB / 512));

  // The listing is read-only and never listed.
  CHECK(SetX(f, "user.nosync.extents", "x") == EPERM);
  CHECK(ListXattrs(f).find("user.nosync.extents") == std::string::npos);
}

TEST_CASE("user.nosync: malformed values fail with EINVAL and change nothing",
          "[posix][nosync][badinput]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(2, 8 * kKiB));
  REQUIRE(SetX(f, "user.nosync", "4K-8K") == 0);
  auto before = Extents(f);
  for (const char* bad : {"bogus", "8K-4K", "0+0", "-5", "1-2,,3-4", "1-2,", "all,0-4K",
                          "99999999999999999999", "0-99999999999G", "1 - 2", "0x10-0x20"}) {
    INFO("value: " << bad);
    CHECK(SetX(f, "user.nosync", bad) == EINVAL);
    CHECK(Nosync(f) == "4096-8192");
  }
  auto after = Extents(f);
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    CHECK(after[i].device == before[i].device);
    CHECK(after[i].flags == before[i].flags);
  }
  // Directories have no NF set.
  REQUIRE(ErrnoOf(mkdir(v.Path("d").c_str(), 0755)) == 0);
  CHECK(SetX(v.Path("d"), "user.nosync", "0-4K") == EINVAL);
}

TEST_CASE("user.nosync: holes are allocated, ranges past EOF preallocated", "[posix][nosync]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("sparse");
  {
    Fd fd = MustOpen(f, O_CREAT | O_RDWR);
    REQUIRE(ftruncate(fd.get(), 8 * kKiB) == 0);
  }
  uint64_t free_before = MustStatvfs(v.mountpoint()).f_bfree;
  CHECK(SetX(f, "user.nosync", "0-16K") == 0);
  // 4 blocks allocated (2 inside the file, 2 past EOF), zero-filled; size kept.
  CHECK(MustStatvfs(v.mountpoint()).f_bfree == free_before - 4);
  CHECK(MustStat(f).st_size == static_cast<off_t>(8 * kKiB));
  CHECK(MustStat(f).st_blocks == static_cast<blkcnt_t>(16 * kKiB / 512));
  CHECK(ReadFile(f) == std::string(8 * kKiB, '\0'));
  auto ext = Extents(f);
  REQUIRE(ext.size() == 1);
  CHECK(ext[0].logical == 0);
  CHECK(ext[0].length == 16 * kKiB);
  CHECK(ext[0].flags == "nf");
  // Clearing keeps them allocated.
  CHECK(ErrnoOf(removexattr(f.c_str(), "user.nosync")) == 0);
  CHECK(MustStatvfs(v.mountpoint()).f_bfree == free_before - 4);
}

TEST_CASE("user.nosync.extents: extents split and merge as flags change", "[posix][nosync]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(3, 16 * kKiB));  // one contiguous allocation
  auto one = Extents(f);
  REQUIRE(one.size() == 1);
  CHECK(one[0].length == 16 * kKiB);
  CHECK(one[0].flags == "-");
  uint64_t dev = one[0].device;

  REQUIRE(SetX(f, "user.nosync", "4K-8K") == 0);
  auto three = Extents(f);
  REQUIRE(three.size() == 3);
  CHECK((three[0].logical == 0 && three[0].length == 4 * kKiB && three[0].flags == "-"));
  CHECK((three[1].logical == 4 * kKiB && three[1].length == 4 * kKiB && three[1].flags == "nf"));
  CHECK((three[2].logical == 8 * kKiB && three[2].length == 8 * kKiB && three[2].flags == "-"));
  // Sealed mapping: flagging moved nothing.
  CHECK(three[1].device == dev + 4 * kKiB);
  CHECK(three[2].device == dev + 8 * kKiB);

  REQUIRE(SetX(f, "user.nosync", "4K-8K,12K-16K") == 0);
  CHECK(Extents(f).size() == 4);
  REQUIRE(SetX(f, "user.nosync", "4K-16K") == 0);
  auto two = Extents(f);
  REQUIRE(two.size() == 2);
  CHECK((two[1].logical == 4 * kKiB && two[1].length == 12 * kKiB && two[1].flags == "nf"));
  // Clearing merges back into one extent at the same place.
  REQUIRE(ErrnoOf(removexattr(f.c_str(), "user.nosync")) == 0);
  auto merged = Extents(f);
  REQUIRE(merged.size() == 1);
  CHECK(merged[0].device == dev);
  CHECK(merged[0].length == 16 * kKiB);
  CHECK(ReadFile(f) == Pattern(3, 16 * kKiB));
}

TEST_CASE("NF writes are durable on return without fsync and unflagged ones are not",
          "[posix][nosync][persistence]") {
  TestVolume v;
  v.Mount();
  std::string nf = v.Path("nf"), plain = v.Path("plain");
  // Both files start with durable contents A.
  for (const auto& p : {nf, plain}) {
    Fd fd = MustOpen(p, O_CREAT | O_RDWR);
    MustPwrite(fd.get(), Pattern(10, 64 * kKiB), 0);
    REQUIRE(fsync(fd.get()) == 0);
  }
  {
    Fd dir = MustOpen(v.mountpoint(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fsync(dir.get()) == 0);
  }
  REQUIRE(SetX(nf, "user.nosync", "all") == 0);
  // Overwrite both with B, unaligned and in several calls, and never fsync.
  for (const auto& p : {nf, plain}) {
    Fd fd = MustOpen(p, O_RDWR);
    MustPwrite(fd.get(), Pattern(11, 30000, 100), 100);
    MustPwrite(fd.get(), Pattern(11, 20000, 40000), 40000);
  }
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  std::string expect = Pattern(10, 64 * kKiB);
  expect.replace(100, 30000, Pattern(11, 30000, 100));
  expect.replace(40000, 20000, Pattern(11, 20000, 40000));
  CHECK(FirstMismatch(ReadFile(nf), expect).empty());
  // The emulation is honest: the unflagged overwrite was not persisted.
  CHECK(FirstMismatch(ReadFile(plain), Pattern(10, 64 * kKiB)).empty());
  CHECK(Nosync(nf) == "0-65536");
}

TEST_CASE("append into a preallocated NF range: data and size durable on return",
          "[posix][nosync][persistence]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("log");
  CreateDurably(v, f);
  REQUIRE(SetX(f, "user.nosync", "0-1M") == 0);
  CHECK(MustStat(f).st_size == 0);
  std::string all;
  {
    Fd fd = MustOpen(f, O_WRONLY | O_APPEND);
    for (int i = 0; i < 37; ++i) {
      std::string rec = Pattern(100 + static_cast<uint64_t>(i), 1000 + static_cast<size_t>(i));
      REQUIRE(write(fd.get(), rec.data(), rec.size()) == static_cast<ssize_t>(rec.size()));
      all += rec;
    }
  }
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  CHECK(MustStat(f).st_size == static_cast<off_t>(all.size()));
  CHECK(FirstMismatch(ReadFile(f), all).empty());
  CHECK(Nosync(f) == "0-1048576");
}

TEST_CASE("flag changes are durable on return and survive remount", "[posix][nosync][persistence]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(4, 20 * kKiB));
  REQUIRE(SetX(f, "user.nosync", "0-8K,12K-20K") == 0);
  v.Remount();
  CHECK(Nosync(f) == "0-8192,12288-20480");
  REQUIRE(SetX(f, "user.nosync", "8K-12K") == 0);
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  CHECK(Nosync(f) == "8192-12288");
  // Clearing is durable on return too.
  REQUIRE(ErrnoOf(removexattr(f.c_str(), "user.nosync")) == 0);
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  CHECK(GetX(f, "user.nosync").err == ENODATA);
  CHECK(ReadFile(f) == Pattern(4, 20 * kKiB));
}

TEST_CASE("setting user.nosync is all-or-nothing under ENOSPC", "[posix][nosync]") {
  TestVolume::Options o;
  o.image_bytes = 24ull << 20;
  TestVolume v(o);
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(5, 8 * kKiB));
  REQUIRE(SetX(f, "user.nosync", "0-4K") == 0);
  // Fill the device, leaving a few blocks free.
  {
    Fd fill = MustOpen(v.Path("fill"), O_CREAT | O_WRONLY);
    std::string chunk(64 * kKiB, 'x');
    while (write(fill.get(), chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size())) {
    }
  }
  REQUIRE(unlink(v.Path("fill").c_str()) == 0);
  REQUIRE(WaitUntil([&] { return MustStatvfs(v.mountpoint()).f_bfree > 100; }));
  {
    Fd fill = MustOpen(v.Path("fill2"), O_CREAT | O_WRONLY);
    uint64_t free_blocks = MustStatvfs(v.mountpoint()).f_bfree;
    std::string chunk((free_blocks - 10) * kBlock, 'y');
    REQUIRE(write(fill.get(), chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()));
  }
  uint64_t free_before = MustStatvfs(v.mountpoint()).f_bfree;
  REQUIRE(free_before == 10);
  auto ext_before = Extents(f);
  // Needs 30 new blocks: ENOSPC, and nothing changed.
  CHECK(SetX(f, "user.nosync", "0-4K,8K+120K") == ENOSPC);
  CHECK(Nosync(f) == "0-4096");
  CHECK(MustStatvfs(v.mountpoint()).f_bfree == free_before);
  CHECK(MustStat(f).st_size == static_cast<off_t>(8 * kKiB));
  auto ext_after = Extents(f);
  REQUIRE(ext_after.size() == ext_before.size());
  for (size_t i = 0; i < ext_after.size(); ++i) {
    CHECK(ext_after[i].device == ext_before[i].device);
    CHECK(ext_after[i].length == ext_before[i].length);
    CHECK(ext_after[i].flags == ext_before[i].flags);
  }
  // A set that fits still works.
  CHECK(SetX(f, "user.nosync", "0-8K,8K+16K") == 0);
  CHECK(Nosync(f) == "0-24576");
}

TEST_CASE("two processes writing one NF file both get durable-on-return",
          "[posix][nosync][persistence]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("shared");
  CreateDurably(v, f);
  REQUIRE(SetX(f, "user.nosync", "0-256K") == 0);
  pid_t kids[2];
  for (int k = 0; k < 2; ++k) {
    kids[k] = fork();
    REQUIRE(kids[k] >= 0);
    if (kids[k] == 0) {
      // A writer that knows nothing of the flag: plain pwrite, no fsync.
      int fd = open(f.c_str(), O_WRONLY);
      if (fd < 0) _exit(2);
      for (int i = 0; i < 16; ++i) {
        uint64_t off = static_cast<uint64_t>(k) * 128 * kKiB + static_cast<uint64_t>(i) * 8 * kKiB;
        std::string data = Pattern(200 + static_cast<uint64_t>(k), 8 * kKiB, off);
        if (pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)) !=
            static_cast<ssize_t>(data.size())) {
          _exit(3);
        }
      }
      _exit(0);
    }
  }
  for (pid_t kid : kids) {
    auto status = WaitChild(kid, std::chrono::seconds(60));
    REQUIRE(status.has_value());
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
  }
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  std::string expect = Pattern(200, 128 * kKiB, 0) + Pattern(201, 128 * kKiB, 128 * kKiB);
  CHECK(MustStat(f).st_size == static_cast<off_t>(256 * kKiB));
  CHECK(FirstMismatch(ReadFile(f), expect).empty());
}

TEST_CASE("mmap: stores into an NF range are durable after msync(MS_SYNC)",
          "[posix][nosync][persistence]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("mapped");
  WriteFile(f, std::string(16 * kKiB, 'a'));
  {
    Fd fd = MustOpen(f, O_RDWR);
    REQUIRE(fsync(fd.get()) == 0);
    Fd dir = MustOpen(v.mountpoint(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fsync(dir.get()) == 0);
  }
  REQUIRE(SetX(f, "user.nosync", "all") == 0);
  {
    Fd fd = MustOpen(f, O_RDWR);
    void* p = mmap(nullptr, 16 * kKiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    REQUIRE(p != MAP_FAILED);
    std::string data = Pattern(7, 10000, 3000);
    std::memcpy(static_cast<char*>(p) + 3000, data.data(), data.size());
    CHECK(msync(p, 16 * kKiB, MS_SYNC) == 0);
    munmap(p, 16 * kKiB);
  }
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  std::string expect(16 * kKiB, 'a');
  expect.replace(3000, 10000, Pattern(7, 10000, 3000));
  CHECK(FirstMismatch(ReadFile(f), expect).empty());
}

TEST_CASE("copy_file_range: NF source copied physically, NF destination durable",
          "[posix][nosync][persistence]") {
  TestVolume v;
  v.Mount();
  std::string src = v.Path("src"), dst = v.Path("dst");
  WriteFile(src, Pattern(8, 32 * kKiB));
  WriteFile(dst, std::string(32 * kKiB, 'z'));
  {
    Fd a = MustOpen(src, O_RDWR), b = MustOpen(dst, O_RDWR);
    REQUIRE(fsync(a.get()) == 0);
    REQUIRE(fsync(b.get()) == 0);
    Fd dir = MustOpen(v.mountpoint(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fsync(dir.get()) == 0);
  }
  REQUIRE(SetX(src, "user.nosync", "all") == 0);
  REQUIRE(SetX(dst, "user.nosync", "all") == 0);
  auto dst_before = Extents(dst);
  {
    Fd a = MustOpen(src, O_RDONLY), b = MustOpen(dst, O_WRONLY);
    loff_t in = 0, out = 0;
    ssize_t n = copy_file_range(a.get(), &in, b.get(), &out, 32 * kKiB, 0);
    CHECK(n == static_cast<ssize_t>(32 * kKiB));
  }
  // In place: the destination's mapping did not move, and no block is shared.
  auto dst_after = Extents(dst);
  REQUIRE(dst_after.size() == dst_before.size());
  CHECK(dst_after[0].device == dst_before[0].device);
  CHECK(dst_after[0].device != Extents(src)[0].device);
  v.KillDaemon();
  ExpectFsckClean(v);
  v.Mount();
  CHECK(FirstMismatch(ReadFile(dst), Pattern(8, 32 * kKiB)).empty());
}

TEST_CASE("cp -a and cp --preserve=xattr re-create the NF ranges but plain cp does not",
          "[posix][nosync]") {
  TestVolume v;
  v.Mount();
  std::string src = v.Path("src");
  WriteFile(src, Pattern(9, 40 * kKiB));
  REQUIRE(SetX(src, "user.nosync", "4K-12K,32K-40K") == 0);
  auto cp = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "cp");
    CommandResult r = RunCommand(args);
    INFO(r.Describe());
    REQUIRE(r.exit_status == 0);
  };
  cp({"-a", src, v.Path("a")});
  cp({"--preserve=xattr", src, v.Path("x")});
  cp({src, v.Path("plain")});
  CHECK(Nosync(v.Path("a")) == "4096-12288,32768-40960");
  CHECK(Nosync(v.Path("x")) == "4096-12288,32768-40960");
  CHECK(GetX(v.Path("plain"), "user.nosync").err == ENODATA);
  CHECK(ReadFile(v.Path("a")) == Pattern(9, 40 * kKiB));
  CHECK(ReadFile(v.Path("plain")) == Pattern(9, 40 * kKiB));
  // DST's flags are its own: NF blocks are never shared with SRC.
  CHECK(Extents(v.Path("a"))[1].device != Extents(src)[1].device);
}

TEST_CASE("rsync -X re-creates the NF ranges", "[posix][nosync]") {
  TestVolume v;
  v.Mount();
  std::string src = v.Path("src");
  WriteFile(src, Pattern(12, 24 * kKiB));
  REQUIRE(SetX(src, "user.nosync", "0-8K") == 0);
  CommandResult r = RunCommand({"rsync", "-X", src, v.Path("dst")});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  CHECK(Nosync(v.Path("dst")) == "0-8192");
  CHECK(ReadFile(v.Path("dst")) == Pattern(12, 24 * kKiB));
}

TEST_CASE("rename and link keep the flag", "[posix][nosync]") {
  TestVolume v;
  v.Mount();
  WriteFile(v.Path("f"), Pattern(13, 8 * kKiB));
  REQUIRE(SetX(v.Path("f"), "user.nosync", "all") == 0);
  REQUIRE(ErrnoOf(mkdir(v.Path("d").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(rename(v.Path("f").c_str(), v.Path("d/g").c_str())) == 0);
  REQUIRE(ErrnoOf(link(v.Path("d/g").c_str(), v.Path("h").c_str())) == 0);
  CHECK(Nosync(v.Path("d/g")) == "0-8192");
  CHECK(Nosync(v.Path("h")) == "0-8192");
}

TEST_CASE("user.nosync permissions follow the user.* xattr rules", "[posix][nosync]") {
  TestVolume v;
  v.Mount();
  REQUIRE(chmod(v.mountpoint().c_str(), 0755) == 0);
  std::string readable = v.Path("readable"), secret = v.Path("secret");
  WriteFile(readable, Pattern(14, 8 * kKiB), 0644);
  WriteFile(secret, Pattern(14, 8 * kKiB), 0600);
  REQUIRE(SetX(readable, "user.nosync", "0-4K") == 0);
  REQUIRE(SetX(secret, "user.nosync", "0-4K") == 0);
  char buf[256];
  // Reading needs read permission.
  CHECK(RunAs(kNobody, kNogroup, [&] {
          return ErrnoOf(getxattr(readable.c_str(), "user.nosync", buf, sizeof(buf))).value;
        }) == 0);
  CHECK(RunAs(kNobody, kNogroup, [&] {
          return ErrnoOf(getxattr(secret.c_str(), "user.nosync", buf, sizeof(buf))).value;
        }) == EACCES);
  // Writing needs write permission.
  CHECK(RunAs(kNobody, kNogroup, [&] {
          return ErrnoOf(setxattr(readable.c_str(), "user.nosync", "all", 3, 0)).value;
        }) == EACCES);
  CHECK(RunAs(kNobody, kNogroup, [&] {
          return ErrnoOf(removexattr(readable.c_str(), "user.nosync")).value;
        }) == EACCES);
  CHECK(Nosync(readable) == "0-4096");
}

TEST_CASE("shrinking truncate over NF: split frees and drops flags durably, deny refuses",
          "[posix][nosync][persistence]") {
  SECTION("split") {
    TestVolume v;
    v.Mount();
    std::string f = v.Path("f");
    WriteFile(f, Pattern(15, 32 * kKiB));
    REQUIRE(SetX(f, "user.nosync", "all") == 0);
    uint64_t free_before = MustStatvfs(v.mountpoint()).f_bfree;
    REQUIRE(truncate(f.c_str(), 10 * kKiB) == 0);
    CHECK(Nosync(f) == "0-12288");
    CHECK(MustStatvfs(v.mountpoint()).f_bfree == free_before + 5);
    v.KillDaemon();
    ExpectFsckClean(v);
    v.Mount();
    CHECK(MustStat(f).st_size == static_cast<off_t>(10 * kKiB));
    CHECK(Nosync(f) == "0-12288");
    CHECK(ReadFile(f) == Pattern(15, 10 * kKiB));
  }
  SECTION("deny") {
    TestVolume v;
    v.Mount("emulate=strict,nf_punch=deny");
    std::string f = v.Path("f");
    WriteFile(f, Pattern(15, 32 * kKiB));
    REQUIRE(SetX(f, "user.nosync", "8K-16K") == 0);
    CHECK(ErrnoOf(truncate(f.c_str(), 10 * kKiB)) == EPERM);
    CHECK(MustStat(f).st_size == static_cast<off_t>(32 * kKiB));
    CHECK(Nosync(f) == "8192-16384");
    // A truncate that stays clear of the NF range is fine.
    CHECK(ErrnoOf(truncate(f.c_str(), 20 * kKiB)) == 0);
  }
}

TEST_CASE("nosyncctl: set, clear (all or part), show, summary", "[posix][nosync]") {
  TestVolume v;
  v.Mount();
  std::string f = v.Path("f");
  WriteFile(f, Pattern(16, 40 * kKiB));
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), BinPath("nosyncctl"));
    return RunCommand(args);
  };
  CommandResult r = ctl({"set", f, "4K-12K,16K+4K"});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  CHECK(Nosync(f) == "4096-12288,16384-20480");
  // Partial clear subtracts, rounded outward like any range.
  REQUIRE(ctl({"clear", f, "5000-6000"}).exit_status == 0);
  CHECK(Nosync(f) == "8192-12288,16384-20480");

  CommandResult show = ctl({"show", f});
  REQUIRE(show.exit_status == 0);
  CHECK(show.out.find("NF") != std::string::npos);
  CHECK(show.out.find("[8192..12287]") != std::string::npos);
  CHECK(show.out.find("8192 bytes no-fsync") != std::string::npos);

  REQUIRE(ErrnoOf(mkdir(v.Path("d").c_str(), 0755)) == 0);
  WriteFile(v.Path("d/g"), Pattern(17, 8 * kKiB));
  REQUIRE(ctl({"set", v.Path("d/g"), "all"}).exit_status == 0);
  CommandResult sum = ctl({"summary", v.mountpoint()});
  REQUIRE(sum.exit_status == 0);
  CHECK(sum.out.find("16384  total in 2 of 2 files") != std::string::npos);

  // Bad input: a clear message and a non-zero exit, nothing changed.
  CommandResult bad = ctl({"set", f, "12-4"});
  CHECK(bad.exit_status == 1);
  CHECK(bad.err.find("Invalid argument") != std::string::npos);
  CHECK(Nosync(f) == "8192-12288,16384-20480");
  CHECK(ctl({"frobnicate"}).exit_status == 2);

  REQUIRE(ctl({"clear", f}).exit_status == 0);
  CHECK(GetX(f, "user.nosync").err == ENODATA);
  // Clearing what is not set is not an error for the tool.
  CHECK(ctl({"clear", f}).exit_status == 0);
}

}  // namespace nosyncfs::test
