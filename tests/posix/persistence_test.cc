// Persistence on a real mount: everything survives a clean unmount; what
// fsync and fdatasync (and fsync of the directory, for names) made durable
// survives kill -9 of the daemon under emulate=strict, which loses exactly
// what a power failure would; remount after kill -9 always works. syncfs(2)
// is covered by its nosyncfs substitute, fsync of a directory (see
// SyncWholeFs in tests/harness/posix_util.h).

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

// What a path looks like: attributes, content (data or link target) and
// xattrs. atime is left out: reads may legitimately update it.
struct Node {
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
  nlink_t nlink = 0;
  ino_t ino = 0;
  dev_t rdev = 0;
  blkcnt_t blocks = 0;
  timespec mtim{};
  timespec ctim{};
  std::string content;
  std::map<std::string, std::string> xattrs;
};

void SnapshotInto(const std::string& root, const std::string& rel,
                  std::map<std::string, Node>* out) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  struct stat st = MustLstat(path);
  Node& n = (*out)[rel.empty() ? "." : rel];
  n.mode = st.st_mode;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.size = st.st_size;
  n.nlink = st.st_nlink;
  n.ino = st.st_ino;
  n.rdev = st.st_rdev;
  n.blocks = st.st_blocks;
  n.mtim = st.st_mtim;
  n.ctim = st.st_ctim;
  if (S_ISREG(st.st_mode)) {
    n.content = ReadFile(path);
  } else if (S_ISLNK(st.st_mode)) {
    std::string buf(8192, '\0');
    ssize_t len = ::readlink(path.c_str(), buf.data(), buf.size());
    REQUIRE(len >= 0);
    n.content = buf.substr(0, len);
  }
  ssize_t list_size = ::llistxattr(path.c_str(), nullptr, 0);
  REQUIRE(ErrnoOf(list_size) == 0);
  std::string list(list_size, '\0');
  REQUIRE(::llistxattr(path.c_str(), list.data(), list.size()) == list_size);
  for (size_t pos = 0; pos < list.size();) {
    std::string name = list.c_str() + pos;
    pos += name.size() + 1;
    ssize_t vs = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    REQUIRE(ErrnoOf(vs) == 0);
    std::string value(vs, '\0');
    REQUIRE(::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size()) == vs);
    n.xattrs[name] = value;
  }
  if (S_ISDIR(st.st_mode)) {
    for (const std::string& child : ListDir(path)) {
      SnapshotInto(root, rel.empty() ? child : rel + "/" + child, out);
    }
  }
}

std::map<std::string, Node> Snapshot(const TestVolume& vol) {
  std::map<std::string, Node> out;
  SnapshotInto(vol.mountpoint(), "", &out);
  return out;
}

void ExpectSameTree(const std::map<std::string, Node>& before,
                    const std::map<std::string, Node>& after) {
  std::set<std::string> names_before, names_after;
  for (const auto& [p, n] : before) names_before.insert(p);
  for (const auto& [p, n] : after) names_after.insert(p);
  CHECK(names_after == names_before);
  for (const auto& [path, b] : before) {
    auto it = after.find(path);
    if (it == after.end()) continue;
    const Node& a = it->second;
    INFO("path " << path);
    CHECK(a.mode == b.mode);
    CHECK(a.uid == b.uid);
    CHECK(a.gid == b.gid);
    CHECK(a.size == b.size);
    CHECK(a.nlink == b.nlink);
    CHECK(a.ino == b.ino);
    CHECK(a.rdev == b.rdev);
    CHECK(a.blocks == b.blocks);
    CHECK(a.mtim == b.mtim);
    CHECK(a.ctim == b.ctim);
    CHECK(FirstMismatch(a.content, b.content) == "");
    CHECK(a.xattrs == b.xattrs);
  }
}

void FsyncPath(const std::string& path) {
  Fd fd = MustOpen(path, O_RDONLY);
  INFO("fsync " << path);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
}

// A tree with every kind of inode and attribute worth persisting.
void BuildTree(const TestVolume& vol) {
  ::umask(0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("a").c_str(), 0750)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("a/b").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("a/b/c").c_str(), 01777)) == 0);
  WriteFile(vol.Path("a/b/file"), Pattern(100, kMiB + 5, 0), 0640);
  REQUIRE(ErrnoOf(::setxattr(vol.Path("a/b/file").c_str(), "user.k", "v", 1, 0)) == 0);
  REQUIRE(ErrnoOf(::setxattr(vol.Path("a").c_str(), "user.dir", "on a dir", 8, 0)) == 0);
  REQUIRE(ErrnoOf(::link(vol.Path("a/b/file").c_str(), vol.Path("hard").c_str())) == 0);
  REQUIRE(ErrnoOf(::symlink("a/b/file", vol.Path("sym").c_str())) == 0);
  WriteFile(vol.Path("empty"), "");
  {
    Fd fd = MustOpen(vol.Path("sparse"), O_CREAT | O_WRONLY, 0600);
    MustPwrite(fd.get(), "s", 5 * kMiB);
  }
  WriteFile(vol.Path("big"), Pattern(101, 8 * kMiB, 0));
  {
    Fd fd = MustOpen(vol.Path("prealloc"), O_CREAT | O_WRONLY, 0644);
    MustPwrite(fd.get(), "0123456789", 0);
    REQUIRE(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, 64 * 1024)) == 0);
  }
  REQUIRE(ErrnoOf(::mknod(vol.Path("fifo").c_str(), S_IFIFO | 0640, 0)) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("sock").c_str(), S_IFSOCK | 0600, 0)) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("chr").c_str(), S_IFCHR | 0600, ::makedev(1, 3))) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("blk").c_str(), S_IFBLK | 0600, ::makedev(259, 70000))) == 0);
  REQUIRE(ErrnoOf(::chown(vol.Path("a").c_str(), 1000, 1001)) == 0);
  REQUIRE(ErrnoOf(::lchown(vol.Path("sym").c_str(), 7, 8)) == 0);
  WriteFile(vol.Path("to_rename"), "renamed");
  REQUIRE(ErrnoOf(::rename(vol.Path("to_rename").c_str(), vol.Path("a/renamed").c_str())) == 0);
  WriteFile(vol.Path("to_delete"), Pattern(102, 100000, 0));
  REQUIRE(ErrnoOf(::unlink(vol.Path("to_delete").c_str())) == 0);
  timespec t[2] = {{1234567890, 123456789}, {1111111111, 987654321}};
  REQUIRE(ErrnoOf(::utimensat(AT_FDCWD, vol.Path("big").c_str(), t, 0)) == 0);
}

TEST_CASE("namespace data and attributes survive unmount and remount", "[posix][persistence]") {
  TestVolume vol;
  vol.Mount();
  BuildTree(vol);
  std::map<std::string, Node> before = Snapshot(vol);
  REQUIRE(before.size() == 16);
  struct statvfs sv = MustStatvfs(vol.Path(""));

  vol.Remount();
  ExpectSameTree(before, Snapshot(vol));
  struct statvfs sv2 = MustStatvfs(vol.Path(""));
  CHECK(sv2.f_bfree == sv.f_bfree);
  CHECK(sv2.f_blocks == sv.f_blocks);
  CHECK(ReadFile(vol.Path("sym")) == Pattern(100, kMiB + 5, 0));

  // Changes after a remount persist too, and a second remount is the same.
  WriteFile(vol.Path("a/after"), "after remount");
  REQUIRE(ErrnoOf(::unlink(vol.Path("hard").c_str())) == 0);
  before = Snapshot(vol);
  vol.Remount();
  ExpectSameTree(before, Snapshot(vol));
  CHECK(MustStat(vol.Path("a/b/file")).st_nlink == 1);
}

TEST_CASE("emulate=none mounts and persists across a clean unmount", "[posix][persistence]") {
  TestVolume vol;
  vol.Mount("emulate=none");
  BuildTree(vol);
  std::map<std::string, Node> before = Snapshot(vol);
  vol.Remount("emulate=strict");
  ExpectSameTree(before, Snapshot(vol));
  vol.Remount("emulate=none");
  ExpectSameTree(before, Snapshot(vol));
}

TEST_CASE("fsynced files and directories survive kill -9 under strict emulation",
          "[posix][persistence][crash]") {
  TestVolume vol;
  vol.Mount("emulate=strict");

  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d/sub").c_str(), 0700)) == 0);
  std::string data = Pattern(200, 3 * kMiB + 7, 0);
  {
    Fd fd = MustOpen(vol.Path("d/f"), O_CREAT | O_WRONLY, 0640);
    MustPwrite(fd.get(), data, 0);
    REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  }
  {
    Fd fd = MustOpen(vol.Path("d/sub/g"), O_CREAT | O_WRONLY, 0600);
    MustPwrite(fd.get(), "small", 0);
    REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  }
  // Rewritten and fsynced again: the newest content counts.
  std::string newer = Pattern(201, 10000, 4000);
  {
    Fd fd = MustOpen(vol.Path("d/f"), O_WRONLY);
    MustPwrite(fd.get(), newer, 4000);
    REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  }
  data.replace(4000, newer.size(), newer);
  // Renamed after its fsync; the directory fsync makes the new name durable.
  WriteFile(vol.Path("d/old-name"), "renamed content");
  FsyncPath(vol.Path("d/old-name"));
  REQUIRE(ErrnoOf(::rename(vol.Path("d/old-name").c_str(), vol.Path("d/new-name").c_str())) == 0);
  // Directory entries: each directory fsynced after its entries changed,
  // parents first so that every level is reachable.
  FsyncPath(vol.Path("d/sub"));
  FsyncPath(vol.Path("d"));
  FsyncPath(vol.Path(""));

  vol.KillDaemon();
  vol.Mount("emulate=strict");

  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"d"});
  CHECK(ListDir(vol.Path("d")) == std::set<std::string>{"f", "new-name", "sub"});
  struct stat st = MustStat(vol.Path("d/f"));
  CHECK(st.st_size == static_cast<off_t>(data.size()));
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(FirstMismatch(ReadFile(vol.Path("d/f")), data) == "");
  CHECK(ReadFile(vol.Path("d/sub/g")) == "small");
  CHECK((MustStat(vol.Path("d/sub")).st_mode & 07777) == 0700);
  CHECK(ReadFile(vol.Path("d/new-name")) == "renamed content");
  CHECK(MustStat(vol.Path("d")).st_nlink == 3);

  // The file system is fully usable, and a clean cycle keeps it all.
  WriteFile(vol.Path("d/later"), "later");
  vol.Remount();
  CHECK(ReadFile(vol.Path("d/later")) == "later");
  CHECK(FirstMismatch(ReadFile(vol.Path("d/f")), data) == "");
}

// syncfs(2) never reaches a FUSE daemon (see SyncWholeFs); its substitute on
// nosyncfs, fsync of a directory, must make every kind of change durable,
// attributes and timestamps included.
TEST_CASE("fsync of a directory makes every change durable before kill -9",
          "[posix][persistence][crash]") {
  TestVolume vol;
  vol.Mount("emulate=strict");
  BuildTree(vol);
  SyncWholeFs(vol.Path("a/b"));
  // A second round of changes on top of synced state, then sync again.
  REQUIRE(ErrnoOf(::unlink(vol.Path("hard").c_str())) == 0);
  REQUIRE(ErrnoOf(::rename(vol.Path("big").c_str(), vol.Path("a/b/c/big").c_str())) == 0);
  REQUIRE(ErrnoOf(::truncate(vol.Path("a/b/file").c_str(), 1000)) == 0);
  REQUIRE(ErrnoOf(::chmod(vol.Path("empty").c_str(), 0604)) == 0);
  REQUIRE(ErrnoOf(::removexattr(vol.Path("a").c_str(), "user.dir")) == 0);
  REQUIRE(ErrnoOf(::setxattr(vol.Path("empty").c_str(), "user.new", "x", 1, 0)) == 0);
  REQUIRE(ErrnoOf(::rmdir(vol.Path("a/b/c").c_str())) == ENOTEMPTY);
  WriteFile(vol.Path("a/b/c/new"), Pattern(300, 50000, 0));
  std::map<std::string, Node> before = Snapshot(vol);
  SyncWholeFs(vol.Path(""));
  struct statvfs sv = MustStatvfs(vol.Path(""));

  vol.KillDaemon();
  vol.Mount("emulate=strict");
  ExpectSameTree(before, Snapshot(vol));
  CHECK(MustStatvfs(vol.Path("")).f_bfree == sv.f_bfree);
}

TEST_CASE("fdatasync makes extending and overwriting writes durable before kill -9",
          "[posix][persistence][crash]") {
  TestVolume vol;
  vol.Mount("emulate=strict");

  {
    Fd fd = MustOpen(vol.Path("log"), O_CREAT | O_WRONLY, 0644);
    MustPwrite(fd.get(), "header", 0);
    REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  }
  FsyncPath(vol.Path(""));

  std::string expected = "header";
  Fd fd = MustOpen(vol.Path("log"), O_WRONLY);
  // Appends, each followed by fdatasync (which must persist the new size,
  // needed to read the data back).
  for (int i = 0; i < 5; ++i) {
    std::string rec = Pattern(400 + i, 100000 + i * 333, expected.size());
    MustPwrite(fd.get(), rec, expected.size());
    expected += rec;
    REQUIRE(ErrnoOf(::fdatasync(fd.get())) == 0);
  }
  // An overwrite in the middle.
  std::string patch = Pattern(450, 5000, 70000);
  MustPwrite(fd.get(), patch, 70000);
  expected.replace(70000, patch.size(), patch);
  REQUIRE(ErrnoOf(::fdatasync(fd.get())) == 0);

  vol.SigkillDaemon();
  fd.reset();  // closing on a dead connection only drops our reference
  vol.ClearDeadMount();
  vol.Mount("emulate=strict");
  CHECK(MustStat(vol.Path("log")).st_size == static_cast<off_t>(expected.size()));
  CHECK(FirstMismatch(ReadFile(vol.Path("log")), expected) == "");
}

TEST_CASE("space of a file unlinked while open comes back after kill -9",
          "[posix][persistence][crash]") {
  TestVolume vol;
  vol.Mount("emulate=strict");
  const uint64_t bs = vol.block_size();
  WriteFile(vol.Path("keep"), "keep");
  FsyncPath(vol.Path("keep"));
  Fd root = MustOpen(vol.Path(""), O_RDONLY | O_DIRECTORY);
  REQUIRE(ErrnoOf(::fsync(root.get())) == 0);
  const uint64_t free0 = MustStatvfs(vol.Path("")).f_bfree;

  Fd fd = MustOpen(vol.Path("orphan"), O_CREAT | O_RDWR, 0644);
  MustPwrite(fd.get(), Pattern(500, 2 * kMiB, 0), 0);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
  REQUIRE(ErrnoOf(::fsync(root.get())) == 0);
  REQUIRE(ErrnoOf(::unlink(vol.Path("orphan").c_str())) == 0);
  REQUIRE(ErrnoOf(::fsync(root.get())) == 0);
  CHECK(MustStatvfs(vol.Path("")).f_bfree == free0 - 2 * kMiB / bs);

  // Power loss while the orphan is still open.
  vol.SigkillDaemon();
  fd.reset();
  root.reset();
  vol.ClearDeadMount();
  vol.Mount("emulate=strict");
  CHECK(ListDir(vol.Path("")) == std::set<std::string>{"keep"});
  CHECK(MustStatvfs(vol.Path("")).f_bfree == free0);
  CHECK(ReadFile(vol.Path("keep")) == "keep");
}

// Files written by the in-flight workers: name "w<worker>-<n>", content
// Pattern(seed(worker, n)) of a known size.
uint64_t WorkerSeed(int worker, int n) { return 1000000ull * (worker + 1) + n; }

TEST_CASE("remount after kill -9 with unsynced work in flight", "[posix][persistence][crash]") {
  TestVolume vol;
  vol.Mount("emulate=strict");

  std::string base = Pattern(600, kMiB + 1, 0);
  WriteFile(vol.Path("base"), base);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("work").c_str(), 0755)) == 0);
  FsyncPath(vol.Path("base"));
  FsyncPath(vol.Path(""));

  struct Durable {
    std::string name;
    uint64_t seed;
    size_t size;
  };
  std::mutex mu;
  std::map<std::string, Durable> durable;  // must survive: guarded by mu
  std::map<std::string, size_t> intended;  // every file a worker meant to write
  std::atomic<int> ops{0};
  std::atomic<bool> stop{false};
  const std::string work = vol.Path("work");

  // Workers only make system calls and record results; they never use Catch
  // macros (Catch is not thread-safe). They stop at their first error, which
  // is what the kill produces.
  auto worker = [&](int id) {
    int dirfd = ::open(work.c_str(), O_RDONLY | O_DIRECTORY);
    if (dirfd < 0) return;
    for (int n = 0; n < 100000 && !stop; ++n) {
      std::string name = "w" + std::to_string(id) + "-" + std::to_string(n);
      std::string tmp = work + "/" + name + ".tmp";
      size_t size = 1000 + (n * 7919) % (200 * 1024);
      uint64_t seed = WorkerSeed(id, n);
      {
        std::lock_guard<std::mutex> lock(mu);
        intended[name] = size;
        intended[name + ".tmp"] = size;
      }
      int fd = ::open(tmp.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      if (fd < 0) break;
      std::string data = Pattern(seed, size, 0);
      bool ok = ::pwrite(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(size);
      bool sync = n % 3 == 0;
      if (ok && sync) ok = ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) break;
      if (::rename(tmp.c_str(), (work + "/" + name).c_str()) != 0) break;
      if (sync) {
        if (::fsync(dirfd) != 0) break;
        std::lock_guard<std::mutex> lock(mu);
        durable[name] = {name, seed, size};
      }
      if (n % 5 == 4) {
        // Delete an older file; it no longer has to survive.
        std::string victim = "w" + std::to_string(id) + "-" + std::to_string(n - 4);
        {
          std::lock_guard<std::mutex> lock(mu);
          durable.erase(victim);
        }
        if (::unlink((work + "/" + victim).c_str()) != 0) break;
      }
      ++ops;
    }
    ::close(dirfd);
  };
  std::thread t1(worker, 0);
  std::thread t2(worker, 1);
  // Let the workers get going, then pull the plug while they run.
  bool busy = WaitUntil([&] { return ops >= 200; }, std::chrono::seconds(60));
  vol.SigkillDaemon();
  stop = true;
  t1.join();
  t2.join();
  REQUIRE(busy);
  vol.ClearDeadMount();

  vol.Mount("emulate=strict");
  INFO(ops << " worker operations, " << durable.size() << " files durable");
  CHECK(FirstMismatch(ReadFile(vol.Path("base")), base) == "");
  std::set<std::string> present = ListDir(work);
  for (const auto& [name, d] : durable) {
    INFO("durable file " << name);
    REQUIRE(present.count(name) == 1);
    CHECK(FirstMismatch(ReadFile(work + "/" + name), Pattern(d.seed, d.size, 0)) == "");
  }
  // Everything else is old or new content of that same file: each byte is
  // the file's own pattern byte or zero, never another file's data.
  for (const std::string& name : present) {
    INFO("file " << name);
    REQUIRE(intended.count(name) == 1);
    std::string stem = name.substr(0, name.find('.'));
    int id = std::stoi(stem.substr(1, stem.find('-') - 1));
    int n = std::stoi(stem.substr(stem.find('-') + 1));
    std::string content = ReadFile(work + "/" + name);
    CHECK(content.size() <= intended[name]);
    size_t foreign = 0;
    for (size_t i = 0; i < content.size(); ++i) {
      if (content[i] != 0 && content[i] != PatternByte(WorkerSeed(id, n), i)) ++foreign;
    }
    CHECK(foreign == 0);
  }

  // Fully usable: new work, a clean cycle, and all of it is still there.
  WriteFile(vol.Path("after-crash"), "after");
  std::map<std::string, Node> before = Snapshot(vol);
  vol.Remount();
  ExpectSameTree(before, Snapshot(vol));
}

TEST_CASE("repeated kill -9 and remount cycles keep synced data", "[posix][persistence][crash]") {
  TestVolume vol;
  vol.Mount("emulate=strict");
  std::map<std::string, std::string> files;
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    std::string name = "r" + std::to_string(round);
    files[name] = Pattern(700 + round, 300000 + round, 0);
    WriteFile(vol.Path(name), files[name]);
    // Unsynced extra work that may or may not survive.
    WriteFile(vol.Path("unsynced" + std::to_string(round)), Pattern(800 + round, 5000, 0));
    FsyncPath(vol.Path(name));
    FsyncPath(vol.Path(""));
    WriteFile(vol.Path("unsynced-late" + std::to_string(round)), "late");
    vol.KillDaemon();
    vol.Mount("emulate=strict");
    for (const auto& [n, content] : files) {
      INFO("file " << n);
      CHECK(FirstMismatch(ReadFile(vol.Path(n)), content) == "");
    }
  }
}

}  // namespace
}  // namespace nosyncfs::test
