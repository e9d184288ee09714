// Extended attributes on a real mount: set/get/list/remove, XATTR_CREATE and
// XATTR_REPLACE, ERANGE and size queries, ENODATA, binary and large values.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

// getxattr that must succeed; returns the value.
std::string GetX(const std::string& path, const std::string& name) {
  ssize_t size = ::getxattr(path.c_str(), name.c_str(), nullptr, 0);
  INFO("getxattr size of " << name << " on " << path);
  REQUIRE(ErrnoOf(size) == 0);
  std::string value(size, '\0');
  ssize_t n = ::getxattr(path.c_str(), name.c_str(), value.data(), value.size());
  REQUIRE(n == size);
  return value;
}

void SetX(const std::string& path, const std::string& name, const std::string& value,
          int flags = 0) {
  INFO("setxattr " << name << " on " << path);
  REQUIRE(ErrnoOf(::setxattr(path.c_str(), name.c_str(), value.data(), value.size(), flags)) == 0);
}

// Names from listxattr; the size query must agree with the real call.
// Names under user.nosync (the file system's own flag attributes, from the
// next issue on) are left out, so that these tests only see their own.
std::multiset<std::string> ListX(const std::string& path, bool nofollow = false) {
  auto list = nofollow ? ::llistxattr : ::listxattr;
  ssize_t size = list(path.c_str(), nullptr, 0);
  REQUIRE(ErrnoOf(size) == 0);
  std::string buf(size, '\0');
  ssize_t n = list(path.c_str(), buf.data(), buf.size());
  REQUIRE(n == size);
  std::multiset<std::string> names;
  for (size_t pos = 0; pos < buf.size();) {
    size_t end = buf.find('\0', pos);
    REQUIRE(end != std::string::npos);  // every name is NUL-terminated
    std::string name = buf.substr(pos, end - pos);
    if (name.rfind("user.nosync", 0) != 0) names.insert(name);
    pos = end + 1;
  }
  return names;
}

// Only user.* names (a file system may add attributes of other namespaces).
std::multiset<std::string> UserNames(const std::multiset<std::string>& all) {
  std::multiset<std::string> out;
  for (const std::string& n : all) {
    if (n.rfind("user.", 0) == 0) out.insert(n);
  }
  return out;
}

TEST_CASE("set get list and remove user xattrs", "[posix][xattr]") {
  TestVolume vol;
  vol.Mount();
  const std::string f = vol.Path("f");
  WriteFile(f, "data");

  CHECK(ListX(f).empty());
  SetX(f, "user.a", "value a");
  SetX(f, "user.b", "");
  SetX(f, "user.with.dots", "dots");
  CHECK(GetX(f, "user.a") == "value a");
  CHECK(GetX(f, "user.b").empty());
  CHECK(GetX(f, "user.with.dots") == "dots");
  CHECK(ListX(f) == std::multiset<std::string>{"user.a", "user.b", "user.with.dots"});

  // Replace with a value of another length.
  SetX(f, "user.a", "a much longer value than before");
  CHECK(GetX(f, "user.a") == "a much longer value than before");
  SetX(f, "user.a", "s");
  CHECK(GetX(f, "user.a") == "s");

  // Through a descriptor.
  {
    Fd fd = MustOpen(f, O_RDONLY);
    REQUIRE(ErrnoOf(::fsetxattr(fd.get(), "user.fd", "via fd", 6, 0)) == 0);
    char buf[16];
    CHECK(::fgetxattr(fd.get(), "user.fd", buf, sizeof buf) == 6);
    CHECK(std::string(buf, 6) == "via fd");
    REQUIRE(ErrnoOf(::fremovexattr(fd.get(), "user.fd")) == 0);
  }

  REQUIRE(ErrnoOf(::removexattr(f.c_str(), "user.b")) == 0);
  CHECK(ListX(f) == std::multiset<std::string>{"user.a", "user.with.dots"});
  char buf[8];
  CHECK(ErrnoOf(::getxattr(f.c_str(), "user.b", buf, sizeof buf)) == ENODATA);
  REQUIRE(ErrnoOf(::removexattr(f.c_str(), "user.a")) == 0);
  REQUIRE(ErrnoOf(::removexattr(f.c_str(), "user.with.dots")) == 0);
  CHECK(ListX(f).empty());
  // The file's data is unaffected.
  CHECK(ReadFile(f) == "data");
}

TEST_CASE("XATTR_CREATE and XATTR_REPLACE", "[posix][xattr]") {
  TestVolume vol;
  vol.Mount();
  const std::string f = vol.Path("f");
  WriteFile(f, "");

  SetX(f, "user.x", "first", XATTR_CREATE);
  CHECK(ErrnoOf(::setxattr(f.c_str(), "user.x", "second", 6, XATTR_CREATE)) == EEXIST);
  CHECK(GetX(f, "user.x") == "first");
  SetX(f, "user.x", "third", XATTR_REPLACE);
  CHECK(GetX(f, "user.x") == "third");
  CHECK(ErrnoOf(::setxattr(f.c_str(), "user.y", "v", 1, XATTR_REPLACE)) == ENODATA);
  char buf[8];
  CHECK(ErrnoOf(::getxattr(f.c_str(), "user.y", buf, sizeof buf)) == ENODATA);
  CHECK(ListX(f) == std::multiset<std::string>{"user.x"});
  CHECK(GetX(f, "user.x") == "third");
}

TEST_CASE("xattr size queries and ERANGE", "[posix][xattr]") {
  TestVolume vol;
  vol.Mount();
  const std::string f = vol.Path("f");
  WriteFile(f, "");
  SetX(f, "user.ten", "0123456789");
  SetX(f, "user.other", "o");

  CHECK(::getxattr(f.c_str(), "user.ten", nullptr, 0) == 10);
  char buf[64];
  CHECK(ErrnoOf(::getxattr(f.c_str(), "user.ten", buf, 9)) == ERANGE);
  CHECK(::getxattr(f.c_str(), "user.ten", buf, 10) == 10);
  CHECK(::getxattr(f.c_str(), "user.ten", buf, sizeof buf) == 10);

  // The list is "user.ten\0user.other\0": 20 bytes.
  ssize_t list_size = ::listxattr(f.c_str(), nullptr, 0);
  CHECK(list_size == 20);
  CHECK(ErrnoOf(::listxattr(f.c_str(), buf, list_size - 1)) == ERANGE);
  CHECK(ErrnoOf(::listxattr(f.c_str(), buf, 1)) == ERANGE);
  CHECK(::listxattr(f.c_str(), buf, sizeof buf) == list_size);
}

TEST_CASE("missing xattrs answer ENODATA", "[posix][xattr]") {
  TestVolume vol;
  vol.Mount();
  const std::string f = vol.Path("f");
  WriteFile(f, "");
  char buf[8];
  CHECK(ErrnoOf(::getxattr(f.c_str(), "user.none", buf, sizeof buf)) == ENODATA);
  CHECK(ErrnoOf(::getxattr(f.c_str(), "user.none", nullptr, 0)) == ENODATA);
  CHECK(ErrnoOf(::removexattr(f.c_str(), "user.none")) == ENODATA);
  SetX(f, "user.once", "1");
  REQUIRE(ErrnoOf(::removexattr(f.c_str(), "user.once")) == 0);
  CHECK(ErrnoOf(::removexattr(f.c_str(), "user.once")) == ENODATA);
  CHECK(ErrnoOf(::getxattr(vol.Path("missing").c_str(), "user.none", buf, sizeof buf)) == ENOENT);
}

TEST_CASE("xattrs on directories with binary and large values", "[posix][xattr]") {
  TestVolume vol;
  vol.Mount();
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  const std::string d = vol.Path("d");

  std::string binary("\0\x01\xff\0zero\0", 9);
  SetX(d, "user.bin", binary);
  CHECK(GetX(d, "user.bin") == binary);

  // Large values: 4000 bytes and 60000 bytes (below the 64 KiB VFS limit).
  std::string v4k = Pattern(50, 4000, 0);
  std::string v60k = Pattern(51, 60000, 0);
  SetX(d, "user.v4k", v4k);
  SetX(d, "user.v60k", v60k);
  CHECK(FirstMismatch(GetX(d, "user.v4k"), v4k) == "");
  CHECK(FirstMismatch(GetX(d, "user.v60k"), v60k) == "");

  // Many attributes on one inode.
  for (int i = 0; i < 100; ++i) SetX(d, "user.n" + std::to_string(i), std::to_string(i * i));
  std::multiset<std::string> names = ListX(d);
  CHECK(names.size() == 103);
  CHECK(GetX(d, "user.n77") == std::to_string(77 * 77));

  // Names longer than XATTR_NAME_MAX (255) are refused by the kernel.
  std::string long_name = "user." + std::string(251, 'n');
  CHECK(ErrnoOf(::setxattr(d.c_str(), long_name.c_str(), "v", 1, 0)) == ERANGE);
  std::string max_name = "user." + std::string(250, 'n');
  SetX(d, max_name, "max");
  CHECK(GetX(d, max_name) == "max");
  // Values larger than 64 KiB are refused (E2BIG).
  std::string too_big(65537, 'x');
  CHECK(ErrnoOf(::setxattr(d.c_str(), "user.big", too_big.data(), too_big.size(), 0)) == E2BIG);

  // Different inodes have separate attributes.
  WriteFile(vol.Path("d/child"), "");
  CHECK(UserNames(ListX(vol.Path("d/child"))).empty());
}

TEST_CASE("xattrs belong to the inode across link and rename", "[posix][xattr]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "");
  SetX(vol.Path("f"), "user.tag", "inode");
  REQUIRE(ErrnoOf(::link(vol.Path("f").c_str(), vol.Path("g").c_str())) == 0);
  CHECK(GetX(vol.Path("g"), "user.tag") == "inode");
  SetX(vol.Path("g"), "user.tag", "changed via g");
  CHECK(GetX(vol.Path("f"), "user.tag") == "changed via g");
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::rename(vol.Path("f").c_str(), vol.Path("d/moved").c_str())) == 0);
  CHECK(GetX(vol.Path("d/moved"), "user.tag") == "changed via g");

  // A new file with a reused name starts without attributes.
  REQUIRE(ErrnoOf(::unlink(vol.Path("g").c_str())) == 0);
  WriteFile(vol.Path("g"), "");
  char buf[8];
  CHECK(ErrnoOf(::getxattr(vol.Path("g").c_str(), "user.tag", buf, sizeof buf)) == ENODATA);

  // user.* attributes are not allowed on symlinks (xattr(7)).
  REQUIRE(ErrnoOf(::symlink("d", vol.Path("sym").c_str())) == 0);
  CHECK(ErrnoOf(::lsetxattr(vol.Path("sym").c_str(), "user.x", "v", 1, 0)) == EPERM);
  // Without NOFOLLOW the call reaches the directory behind the link.
  SetX(vol.Path("sym"), "user.via_link", "dir");
  CHECK(GetX(vol.Path("d"), "user.via_link") == "dir");
}

TEST_CASE("trusted and security xattrs for root", "[posix][xattr]") {
  REQUIRE(::geteuid() == 0);
  TestVolume vol;
  vol.Mount();
  const std::string f = vol.Path("f");
  WriteFile(f, "");
  SetX(f, "trusted.t", "only for root");
  SetX(f, "security.s", "label");
  CHECK(GetX(f, "trusted.t") == "only for root");
  CHECK(GetX(f, "security.s") == "label");
  std::multiset<std::string> names = ListX(f);
  CHECK(names.count("trusted.t") == 1);
  CHECK(names.count("security.s") == 1);
  // Others may not touch trusted.* (xattr(7)); the kernel enforces it.
  CHECK(RunAs(kNobody, kNogroup, [&] {
          return ErrnoOf(::setxattr(f.c_str(), "trusted.t", "x", 1, 0)).value;
        }) == EPERM);
  REQUIRE(ErrnoOf(::removexattr(f.c_str(), "trusted.t")) == 0);
  REQUIRE(ErrnoOf(::removexattr(f.c_str(), "security.s")) == 0);
  CHECK(ListX(f).empty());
}

}  // namespace
}  // namespace nosyncfs::test
