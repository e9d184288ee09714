// The no-fsync flag in the Vfs core, where media work is observable:
// Device::persist_calls counts every persist (SEMANTICS.md D2, D3, section 5).
#include <sys/xattr.h>

#include <catch2/catch.hpp>

#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr size_t kBlock = 4096;

Entry MustCreate(Vfs& vfs, const std::string& name) {
  auto e = vfs.Create(kRootIno, name, 0644, true, false, Caller{});
  REQUIRE(e.ok());
  return *e;
}

void MustWrite(Vfs& vfs, uint64_t ino, uint64_t off, const std::string& data) {
  auto n = vfs.Write(ino, off, data.data(), data.size());
  REQUIRE(n.ok());
  REQUIRE(*n == data.size());
}

uint64_t Persists(Vfs& vfs) { return vfs.volume().device().persist_calls(); }

}  // namespace

TEST_CASE("D3: fsync after NF-only writes does no media work", "[fs][nosync]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  Entry nf = MustCreate(*vfs, "nf");
  MustWrite(*vfs, nf.ino, 0, std::string(4 * kBlock, 'a'));
  REQUIRE(vfs->Setxattr(nf.ino, "user.nosync", "0-64K", 0).ok());
  REQUIRE(vfs->Fsync(nf.ino, false).ok());

  // An overwrite inside the range persists its data before returning...
  uint64_t before_write = Persists(*vfs);
  MustWrite(*vfs, nf.ino, 100, std::string(5000, 'b'));
  CHECK(Persists(*vfs) > before_write);
  // ...so fsync and fdatasync have nothing left to do.
  uint64_t before_fsync = Persists(*vfs);
  REQUIRE(vfs->Fsync(nf.ino, false).ok());
  REQUIRE(vfs->Fsync(nf.ino, true).ok());
  CHECK(Persists(*vfs) == before_fsync);

  // Section 5: an append inside the preallocated range commits the new size
  // durably on the write path (data + one log record), and fsync again has
  // nothing to do.
  uint64_t before_append = Persists(*vfs);
  MustWrite(*vfs, nf.ino, 4 * kBlock, std::string(kBlock, 'c'));
  CHECK(Persists(*vfs) == before_append + 2);
  CHECK(vfs->Getattr(nf.ino)->st_size == static_cast<off_t>(5 * kBlock));
  uint64_t after_append = Persists(*vfs);
  REQUIRE(vfs->Fsync(nf.ino, false).ok());
  CHECK(Persists(*vfs) == after_append);
}

TEST_CASE("D3 contrast: fsync after an unflagged overwrite persists data and metadata",
          "[fs][nosync]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  Entry plain = MustCreate(*vfs, "plain");
  MustWrite(*vfs, plain.ino, 0, std::string(4 * kBlock, 'a'));
  REQUIRE(vfs->Fsync(plain.ino, false).ok());
  uint64_t before_write = Persists(*vfs);
  MustWrite(*vfs, plain.ino, 100, std::string(5000, 'b'));
  // Overwriting allocated, unflagged blocks persists nothing on the write path.
  CHECK(Persists(*vfs) == before_write);
  REQUIRE(vfs->Fsync(plain.ino, false).ok());
  CHECK(Persists(*vfs) > before_write);
}

TEST_CASE("D1: NF blocks keep their device blocks through writes and flag changes",
          "[fs][nosync]") {
  VolumeFixture fx;
  auto vfs = fx.OpenVfs();
  Entry f = MustCreate(*vfs, "f");
  MustWrite(*vfs, f.ino, 0, std::string(8 * kBlock, 'a'));
  REQUIRE(vfs->Setxattr(f.ino, "user.nosync", "8K-24K", 0).ok());
  auto before = vfs->Getxattr(f.ino, "user.nosync.extents");
  REQUIRE(before.ok());
  for (int i = 0; i < 20; ++i) {
    MustWrite(*vfs, f.ino, static_cast<uint64_t>(i) * 1000, std::string(3000, 'x'));
  }
  REQUIRE(vfs->Setxattr(f.ino, "user.nosync", "8K-24K", 0).ok());
  CHECK(*vfs->Getxattr(f.ino, "user.nosync.extents") == *before);
  CHECK(*vfs->Getxattr(f.ino, "user.nosync") == "8192-24576");
}

}  // namespace nosyncfs::test
