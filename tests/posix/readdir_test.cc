// Directory listing on a real mount: every entry once with its type and
// inode number, offsets (telldir/seekdir, getdents64 d_off cookies) that
// stay valid while other entries are added and removed, and a pass that
// ends however busily entries are renamed.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

struct Entry {
  unsigned char type = DT_UNKNOWN;
  ino_t ino = 0;
  int count = 0;
};

std::map<std::string, Entry> ReadAll(const std::string& path) {
  std::map<std::string, Entry> out;
  DIR* d = ::opendir(path.c_str());
  REQUIRE(d != nullptr);
  errno = 0;
  while (struct dirent* de = ::readdir(d)) {
    Entry& e = out[de->d_name];
    e.type = de->d_type;
    e.ino = de->d_ino;
    ++e.count;
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  REQUIRE(Errno{err} == 0);
  return out;
}

std::string Name(const char* prefix, int i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s-%05d", prefix, i);
  return buf;
}

void Touch(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
  REQUIRE(fd >= 0);
  ::close(fd);
}

TEST_CASE("readdir lists every entry with its type and inode number", "[posix][readdir]") {
  TestVolume vol;
  vol.Mount();

  REQUIRE(ErrnoOf(::mkdir(vol.Path("dir").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("dir/sub").c_str(), 0755)) == 0);
  WriteFile(vol.Path("dir/reg"), "r");
  REQUIRE(ErrnoOf(::link(vol.Path("dir/reg").c_str(), vol.Path("dir/hard").c_str())) == 0);
  REQUIRE(ErrnoOf(::symlink("reg", vol.Path("dir/sym").c_str())) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("dir/fifo").c_str(), S_IFIFO | 0644, 0)) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("dir/sock").c_str(), S_IFSOCK | 0644, 0)) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("dir/chr").c_str(), S_IFCHR | 0644, ::makedev(1, 3))) == 0);
  REQUIRE(ErrnoOf(::mknod(vol.Path("dir/blk").c_str(), S_IFBLK | 0644, ::makedev(7, 0))) == 0);

  std::map<std::string, Entry> entries = ReadAll(vol.Path("dir"));
  const std::map<std::string, unsigned char> expected = {
      {".", DT_DIR},     {"..", DT_DIR},    {"sub", DT_DIR},   {"reg", DT_REG},
      {"hard", DT_REG},  {"sym", DT_LNK},   {"fifo", DT_FIFO}, {"sock", DT_SOCK},
      {"chr", DT_CHR},   {"blk", DT_BLK}};
  CHECK(entries.size() == expected.size());
  for (const auto& [name, type] : expected) {
    INFO("entry " << name);
    REQUIRE(entries.count(name) == 1);
    CHECK(entries[name].count == 1);
    CHECK(static_cast<int>(entries[name].type) == static_cast<int>(type));
    if (name != "..") {
      CHECK(entries[name].ino == MustLstat(vol.Path("dir/" + name)).st_ino);
    }
  }
  CHECK(entries[".."].ino == MustStat(vol.Path("")).st_ino);
  CHECK(entries["hard"].ino == entries["reg"].ino);

  // The root's ".." is the root itself.
  std::map<std::string, Entry> root = ReadAll(vol.Path(""));
  CHECK(root.size() == 3);
  CHECK(root["."].ino == root[".."].ino);
  CHECK(root["dir"].type == DT_DIR);

  // rewinddir sees entries created after opendir.
  DIR* d = ::opendir(vol.Path("dir").c_str());
  REQUIRE(d != nullptr);
  int before = 0;
  while (::readdir(d) != nullptr) ++before;
  Touch(vol.Path("dir/late"));
  REQUIRE(ErrnoOf(::unlink(vol.Path("dir/fifo").c_str())) == 0);
  ::rewinddir(d);
  std::set<std::string> names;
  while (struct dirent* de = ::readdir(d)) names.insert(de->d_name);
  ::closedir(d);
  CHECK(before == 10);
  CHECK(names.count("late") == 1);
  CHECK(names.count("fifo") == 0);
  CHECK(names.size() == 10);
}

TEST_CASE("readdir of a large directory returns every entry once", "[posix][readdir]") {
  TestVolume vol;
  vol.Mount();

  constexpr int kCount = 3000;
  REQUIRE(ErrnoOf(::mkdir(vol.Path("big").c_str(), 0755)) == 0);
  for (int i = 0; i < kCount; ++i) Touch(vol.Path("big/" + Name("entry", i)));
  std::map<std::string, Entry> entries = ReadAll(vol.Path("big"));
  CHECK(entries.size() == kCount + 2);
  int wrong = 0;
  for (int i = 0; i < kCount; ++i) {
    auto it = entries.find(Name("entry", i));
    if (it == entries.end() || it->second.count != 1 || it->second.type != DT_REG) ++wrong;
  }
  CHECK(wrong == 0);
  for (const auto& [name, e] : entries) {
    INFO(name);
    CHECK(e.count == 1);
  }
  // Unlinking every other entry leaves exactly the rest.
  for (int i = 0; i < kCount; i += 2) {
    REQUIRE(ErrnoOf(::unlink(vol.Path("big/" + Name("entry", i)).c_str())) == 0);
  }
  std::set<std::string> left = ListDir(vol.Path("big"));
  CHECK(left.size() == kCount / 2);
  CHECK(left.count(Name("entry", 1)) == 1);
  CHECK(left.count(Name("entry", 0)) == 0);
}

TEST_CASE("telldir and seekdir stay valid while entries are added and removed",
          "[posix][readdir]") {
  TestVolume vol;
  vol.Mount();

  constexpr int kKeep = 1500;
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  for (int i = 0; i < kKeep; ++i) Touch(vol.Path("d/" + Name("keep", i)));
  std::deque<int> churn;
  int next_churn = 0;
  for (; next_churn < 300; ++next_churn) {
    Touch(vol.Path("d/" + Name("churn", next_churn)));
    churn.push_back(next_churn);
  }

  std::map<std::string, int> seen;
  DIR* d = ::opendir(vol.Path("d").c_str());
  REQUIRE(d != nullptr);
  int calls = 0;
  int peeks = 0;
  for (;;) {
    ++calls;
    if (calls % 37 == 0) {
      // Change the directory under the open stream: the kept entries must
      // still be returned exactly once.
      for (int k = 0; k < 5; ++k) {
        Touch(vol.Path("d/" + Name("churn", next_churn)));
        churn.push_back(next_churn++);
        REQUIRE(ErrnoOf(::unlink(vol.Path("d/" + Name("churn", churn.front())).c_str())) == 0);
        churn.pop_front();
      }
    }
    if (calls % 101 == 0) {
      // Look ahead, then go back: what was read after telldir() is returned
      // again after seekdir(), so it is not counted here.
      long pos = ::telldir(d);
      REQUIRE(pos != -1);
      for (int k = 0; k < 10 && ::readdir(d) != nullptr; ++k) {
      }
      ::seekdir(d, pos);
      ++peeks;
    }
    errno = 0;
    struct dirent* de = ::readdir(d);
    if (de == nullptr) {
      REQUIRE(Errno{errno} == 0);
      break;
    }
    ++seen[de->d_name];
  }
  ::closedir(d);

  CHECK(peeks > 10);
  int missing = 0;
  int duplicated = 0;
  for (int i = 0; i < kKeep; ++i) {
    int n = seen.count(Name("keep", i)) ? seen[Name("keep", i)] : 0;
    if (n == 0) ++missing;
    if (n > 1) ++duplicated;
  }
  CHECK(missing == 0);
  CHECK(duplicated == 0);
  CHECK(seen["."] == 1);
  CHECK(seen[".."] == 1);
  // Churn entries may or may not be seen, but never twice.
  for (const auto& [name, n] : seen) {
    INFO(name);
    CHECK(n == 1);
  }
}

// Raw getdents64 with a small buffer (many calls), cookies from d_off used
// with lseek to go back, while another thread keeps creating and removing
// entries in the same directory.
TEST_CASE("getdents64 cookies stay valid under concurrent change", "[posix][readdir]") {
  TestVolume vol;
  vol.Mount();

  constexpr int kKeep = 1200;
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  for (int i = 0; i < kKeep; ++i) Touch(vol.Path("d/" + Name("keep", i)));

  std::atomic<bool> stop{false};
  std::atomic<int> churn_ops{0};
  std::atomic<int> churn_errors{0};
  std::thread churner([&] {
    // Bounded: stops when told or after a fixed number of operations.
    std::deque<std::string> live;
    for (int i = 0; i < 20000 && !stop; ++i) {
      std::string p = vol.Path("d/" + Name("churn", i));
      int fd = ::open(p.c_str(), O_CREAT | O_WRONLY, 0644);
      if (fd < 0) {
        ++churn_errors;
      } else {
        ::close(fd);
        live.push_back(p);
      }
      if (live.size() > 50) {
        if (::unlink(live.front().c_str()) != 0) ++churn_errors;
        live.pop_front();
      }
      ++churn_ops;
    }
  });

  // Start reading only once the churn is under way.
  REQUIRE(WaitUntil([&] { return churn_ops >= 50; }));
  Fd dir = MustOpen(vol.Path("d"), O_RDONLY | O_DIRECTORY);
  std::mt19937 rng(12345);
  struct Read {
    std::string name;
    off_t next;  // d_off: the cookie for "continue after this entry"
  };
  std::vector<Read> order;  // entries counted so far, in stream order
  std::map<std::string, int> seen;
  int rewinds = 0;
  alignas(8) char buf[200];  // a few entries per call
  for (int calls = 0; calls < 100000; ++calls) {
    ssize_t n = ::getdents64(dir.get(), buf, sizeof buf);
    REQUIRE(ErrnoOf(n) == 0);
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      auto* de = reinterpret_cast<struct dirent64*>(buf + off);
      order.push_back({de->d_name, de->d_off});
      ++seen[de->d_name];
      off += de->d_reclen;
    }
    if (calls % 4 == 3 && order.size() > 20) {
      // Go back to the cookie of an entry read a little earlier; entries
      // after it will be read again, so their counts are taken back.
      size_t back = 1 + rng() % 15;
      size_t keep = order.size() - back;
      for (size_t i = keep; i < order.size(); ++i) --seen[order[i].name];
      off_t cookie = order[keep - 1].next;
      order.resize(keep);
      REQUIRE(::lseek(dir.get(), cookie, SEEK_SET) == cookie);
      ++rewinds;
    }
  }
  stop = true;
  churner.join();

  INFO("churn ops " << churn_ops << ", rewinds " << rewinds);
  CHECK(churn_errors == 0);
  CHECK(rewinds > 10);
  int missing = 0;
  int duplicated = 0;
  for (int i = 0; i < kKeep; ++i) {
    auto it = seen.find(Name("keep", i));
    if (it == seen.end() || it->second == 0) ++missing;
    else if (it->second > 1) ++duplicated;
  }
  CHECK(missing == 0);
  CHECK(duplicated == 0);
  for (const auto& [name, count] : seen) {
    INFO(name);
    CHECK(count <= 1);
  }
  CHECK(seen["."] == 1);
  CHECK(seen[".."] == 1);
}

// A pass of readdir that another thread renames entries under: every rename
// gives the entry a new cookie, and a pass that followed them would list
// them again and again. The pass ends at the cookie in use when it began.
TEST_CASE("one pass of readdir ends while entries are renamed", "[posix][readdir]") {
  TestVolume vol;
  vol.Mount();

  constexpr int kKeep = 1500;
  constexpr int kMoving = 1500;
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  for (int i = 0; i < kKeep; ++i) Touch(vol.Path("d/" + Name("keep", i)));
  for (int i = 0; i < kMoving; ++i) Touch(vol.Path("d/" + Name("a", i)));

  // Renames each moving entry between its two names, round after round,
  // until told to stop (or, bounded, after a minute's worth).
  std::atomic<bool> stop{false};
  std::atomic<int> renames{0};
  std::atomic<int> rename_errors{0};
  std::thread renamer([&] {
    for (int round = 0; round < 200 && !stop; ++round) {
      const char* from = round % 2 == 0 ? "a" : "b";
      const char* to = round % 2 == 0 ? "b" : "a";
      for (int i = 0; i < kMoving && !stop; ++i) {
        if (::rename(vol.Path("d/" + Name(from, i)).c_str(),
                     vol.Path("d/" + Name(to, i)).c_str()) != 0) {
          ++rename_errors;
        }
        ++renames;
      }
    }
  });
  REQUIRE(WaitUntil([&] { return renames >= 100; }));

  Fd dir = MustOpen(vol.Path("d"), O_RDONLY | O_DIRECTORY);
  std::map<std::string, int> seen;
  size_t listed = 0;
  bool ended = false;
  alignas(8) char buf[256];  // a few entries per call: a slow reader
  const size_t cap = 20 * (kKeep + kMoving);  // a pass that never ends fails here
  while (listed < cap) {
    ssize_t n = ::getdents64(dir.get(), buf, sizeof buf);
    REQUIRE(ErrnoOf(n) == 0);
    if (n == 0) {
      ended = true;
      break;
    }
    for (ssize_t off = 0; off < n;) {
      auto* de = reinterpret_cast<struct dirent64*>(buf + off);
      ++seen[de->d_name];
      ++listed;
      off += de->d_reclen;
    }
    // Renames happen between any two reads, however the two threads are
    // scheduled (bounded: a stuck renamer fails the count below).
    const int target = renames + 1;
    for (int spin = 0; spin < 1000000 && renames < target; ++spin) std::this_thread::yield();
  }
  int renames_during = renames;
  stop = true;
  renamer.join();

  INFO("renames while reading " << renames_during << ", entries listed " << listed);
  CHECK(rename_errors == 0);
  REQUIRE(ended);
  CHECK(renames_during > 200);
  // No more entries than the directory held when the pass began.
  CHECK(listed <= static_cast<size_t>(kKeep + kMoving + 2));
  for (const auto& [name, count] : seen) {
    INFO(name);
    CHECK(count == 1);
  }
  int missing = 0;
  for (int i = 0; i < kKeep; ++i) missing += seen.count(Name("keep", i)) ? 0 : 1;
  CHECK(missing == 0);

  // A new pass (rewinddir) sees the directory as it is now.
  Touch(vol.Path("d/new"));
  REQUIRE(::lseek(dir.get(), 0, SEEK_SET) == 0);
  bool found_new = false;
  for (;;) {
    ssize_t n = ::getdents64(dir.get(), buf, sizeof buf);
    REQUIRE(ErrnoOf(n) == 0);
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      auto* de = reinterpret_cast<struct dirent64*>(buf + off);
      found_new = found_new || std::strcmp(de->d_name, "new") == 0;
      off += de->d_reclen;
    }
  }
  CHECK(found_new);
}

// With an empty inode cache the kernel fills attributes from READDIRPLUS
// replies; each entry must carry its own attributes, not a neighbour's.
TEST_CASE("attributes of entries after a listing with a cold cache", "[posix][readdir]") {
  REQUIRE(::geteuid() == 0);
  TestVolume vol;
  vol.Mount();
  ::umask(0);
  constexpr int kCount = 300;
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  for (int i = 0; i < kCount; ++i) {
    std::string p = vol.Path("d/" + Name("f", i));
    WriteFile(p, std::string(i, 'x'), i % 2 ? 0640 : 0604);
    if (i % 3 == 0) REQUIRE(ErrnoOf(::link(p.c_str(), (p + "-link").c_str())) == 0);
  }
  {
    Fd fd = MustOpen("/proc/sys/vm/drop_caches", O_WRONLY);
    REQUIRE(::write(fd.get(), "2", 1) == 1);
  }
  std::map<std::string, Entry> entries = ReadAll(vol.Path("d"));
  CHECK(entries.size() == kCount + (kCount + 2) / 3 + 2);
  int wrong = 0;
  for (int i = 0; i < kCount; ++i) {
    struct stat st = MustLstat(vol.Path("d/" + Name("f", i)));
    if (st.st_size != i || (st.st_mode & 07777) != (i % 2 ? 0640u : 0604u) ||
        st.st_nlink != (i % 3 == 0 ? 2u : 1u) || st.st_ino != entries[Name("f", i)].ino) {
      ++wrong;
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("names with unusual bytes are stored and listed exactly", "[posix][readdir]") {
  TestVolume vol;
  vol.Mount();
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  std::set<std::string> names = {" ", "  two  spaces ", "new\nline", "tab\there", "...", ".hidden",
                                 "-dash", "\\back", "quote\"'", "\x7f", "caf\xc3\xa9",
                                 "\xe6\x97\xa5\xe6\x9c\xac", "UPPER", "upper"};
  // Every byte value that may appear in a name, 1..255 without '/'.
  std::string all;
  for (int c = 1; c < 256; ++c) {
    if (c != '/') all.push_back(static_cast<char>(c));
  }
  names.insert(all.substr(0, 120));
  names.insert(all.substr(120));
  for (const std::string& n : names) {
    INFO("name of " << n.size() << " bytes");
    WriteFile(vol.Path("d/" + n), n);
  }
  CHECK(ListDir(vol.Path("d")) == names);
  for (const std::string& n : names) {
    INFO("name of " << n.size() << " bytes");
    CHECK(ReadFile(vol.Path("d/" + n)) == n);
  }
  // Names are case-sensitive and byte-exact: no folding, no normalization.
  CHECK(ReadFile(vol.Path("d/UPPER")) == "UPPER");
  struct stat st {};
  CHECK(ErrnoOf(::stat(vol.Path("d/Upper").c_str(), &st)) == ENOENT);
  CHECK(ErrnoOf(::stat(vol.Path("d/cafe\xcc\x81").c_str(), &st)) == ENOENT);
}

// Entries of one directory never show up in another, whatever the inode
// numbers and names (a key encoding that concatenates parent and name
// without a fixed width would mix up parent 1 + "2x" and parent 12 + "x").
TEST_CASE("each directory lists only its own entries", "[posix][readdir]") {
  TestVolume vol;
  vol.Mount();
  constexpr int kDirs = 40;
  std::set<std::string> root_names;
  for (int i = 0; i < kDirs; ++i) {
    std::string d = "d" + std::to_string(i);
    REQUIRE(ErrnoOf(::mkdir(vol.Path(d).c_str(), 0755)) == 0);
    root_names.insert(d);
  }
  for (int i = 0; i < kDirs; ++i) {
    std::string d = "d" + std::to_string(i);
    WriteFile(vol.Path(d + "/x"), d);
    // Names that start with digits, as inode numbers might be written.
    for (const std::string& n : {std::to_string(i) + "x", std::to_string(i), "0" + std::to_string(i)}) {
      std::string p = vol.Path(d + "/" + n);
      if (::access(p.c_str(), F_OK) != 0) WriteFile(p, "");
    }
  }
  for (int i = 0; i < 200; ++i) {
    std::string n = std::to_string(i) + "x";
    WriteFile(vol.Path(n), "");
    root_names.insert(n);
  }
  CHECK(ListDir(vol.Path("")) == root_names);
  for (int i = 0; i < kDirs; ++i) {
    std::string d = "d" + std::to_string(i);
    INFO(d);
    std::set<std::string> expected = {"x", std::to_string(i) + "x", std::to_string(i),
                                      "0" + std::to_string(i)};
    CHECK(ListDir(vol.Path(d)) == expected);
    CHECK(ReadFile(vol.Path(d + "/x")) == d);
    CHECK(MustStat(vol.Path(d)).st_nlink == 2);
  }
}

// A cookie stays usable after the entry it was taken at is removed: reading
// continues with what follows, and nothing that stayed is lost or repeated.
TEST_CASE("seeking to the cookie of a removed entry continues after it", "[posix][readdir]") {
  TestVolume vol;
  vol.Mount();
  constexpr int kCount = 100;
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  for (int i = 0; i < kCount; ++i) Touch(vol.Path("d/" + Name("e", i)));

  DIR* d = ::opendir(vol.Path("d").c_str());
  REQUIRE(d != nullptr);
  std::vector<std::string> first;
  long cookie = -1;
  while (first.size() < 30) {
    struct dirent* de = ::readdir(d);
    REQUIRE(de != nullptr);
    first.push_back(de->d_name);
    cookie = ::telldir(d);
  }
  // Remove the last entry read and the next few (whatever they are).
  std::vector<std::string> rest_before;
  while (struct dirent* de = ::readdir(d)) rest_before.push_back(de->d_name);
  REQUIRE(rest_before.size() >= 3);
  std::set<std::string> removed = {first.back(), rest_before[0], rest_before[1]};
  for (const std::string& n : removed) {
    REQUIRE(ErrnoOf(::unlink(vol.Path("d/" + n).c_str())) == 0);
  }
  ::seekdir(d, cookie);
  std::vector<std::string> rest_after;
  while (struct dirent* de = ::readdir(d)) rest_after.push_back(de->d_name);
  ::closedir(d);

  // Exactly the entries after the cookie that still exist, once each.
  std::vector<std::string> expected;
  for (const std::string& n : rest_before) {
    if (removed.count(n) == 0) expected.push_back(n);
  }
  std::multiset<std::string> got(rest_after.begin(), rest_after.end());
  std::multiset<std::string> want(expected.begin(), expected.end());
  CHECK(got == want);
}

}  // namespace
}  // namespace nosyncfs::test
