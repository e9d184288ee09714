// fsync and unmount cost what the dirty data costs, not what the number of
// writes costs: unflagged dirty data is kept as coalesced ranges
// (fs/dirty_ranges.h) and persisted in as few calls as the media needs.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <random>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kFile = 16 << 20;
constexpr int kWrites = 20000;
constexpr size_t kWriteSize = 512;

// 20,000 random 512-byte writes over a preallocated 16 MiB file; returns
// the file's expected contents.
std::string RandomSmallWrites(int fd, uint64_t seed) {
  std::string model(kFile, '\0');
  std::mt19937_64 rng(seed);
  for (int i = 0; i < kWrites; ++i) {
    uint64_t off = rng() % (kFile - kWriteSize);
    std::string data = Pattern(seed + i, kWriteSize, off);
    MustPwrite(fd, data, off);
    model.replace(off, kWriteSize, data);
  }
  return model;
}

// A preallocated file "f" of kFile bytes on the mount.
Fd PreallocatedFile(const TestVolume& vol) {
  Fd fd = MustOpen(vol.Path("f"), O_CREAT | O_RDWR);
  REQUIRE(::fallocate(fd.get(), 0, 0, kFile) == 0);
  return fd;
}

}  // namespace

TEST_CASE("fsync after 20,000 random small writes persists each dirty range once",
          "[posix][persistence][writeback]") {
  const uint64_t seed = TestSeed();
  INFO("seed " << seed);
  TestVolume vol;
  vol.Mount();
  std::string model;
  {
    Fd fd = PreallocatedFile(vol);
    REQUIRE(::fsync(fd.get()) == 0);
    auto before = MountStats(vol.mountpoint());
    model = RandomSmallWrites(fd.get(), seed);
    auto written = MountStats(vol.mountpoint());
    // Overwrites of unflagged blocks persist nothing on the write path.
    CHECK(written["device_persists"] == before["device_persists"]);
    REQUIRE(::fsync(fd.get()) == 0);
    auto synced = MountStats(vol.mountpoint());
    // Nearly every page is dirty, and the file's blocks are contiguous, so
    // the fsync persists a handful of long ranges (and the log): far fewer
    // calls than writes or even dirty pages (4,096).
    uint64_t persists = synced["device_persists"] - written["device_persists"];
    INFO("persist calls for one fsync after " << kWrites << " writes: " << persists);
    CHECK(persists <= 100);
  }
  // And it all was durable.
  vol.KillDaemon();
  vol.Mount();
  CHECK(FirstMismatch(ReadFile(vol.Path("f")), model) == "");
}

TEST_CASE("unmount after 20,000 unsynced random small writes is prompt and loses nothing",
          "[posix][persistence][writeback]") {
  const uint64_t seed = TestSeed();
  INFO("seed " << seed);
  TestVolume vol;
  vol.Mount();
  std::string model;
  {
    Fd fd = PreallocatedFile(vol);
    model = RandomSmallWrites(fd.get(), seed);
  }
  // Unmount() fails the test unless the daemon has finished its durable
  // shutdown within its bounded wait.
  vol.Unmount();
  ExpectFsckClean(vol);
  vol.Mount();
  CHECK(FirstMismatch(ReadFile(vol.Path("f")), model) == "");
}

}  // namespace nosyncfs::test
