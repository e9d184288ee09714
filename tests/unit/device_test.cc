// Unit tests for extent/device.h: the strict persistence emulation that the
// crash tests rely on, the libpmem2 backend, and Device::Open's errors.
#include "extent/device.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kImageBytes = 1 << 20;

DeviceOptions Strict() {
  DeviceOptions o;
  o.strict_emulation = true;
  return o;
}

DeviceOptions Pmem2() {
  DeviceOptions o;
  o.strict_emulation = false;
  return o;
}

std::unique_ptr<Device> MustOpenDevice(const std::string& path, const DeviceOptions& o) {
  auto d = Device::Open(path, o);
  INFO("Device::Open " << path << ": " << d.status().ToString());
  REQUIRE(d.ok());
  return std::move(d).value();
}

std::string DeviceBytes(const Device& d, uint64_t off, size_t len) {
  std::string out(len, '\0');
  d.Read(off, out.data(), len);
  return out;
}

// An image whose every byte is known ("old contents"), so that a lost write
// shows as the old bytes and not merely as zeros.
std::string MakeOldImage(const TempDir& tmp) {
  std::string path = tmp.path() + "/dev.img";
  MakeImageFile(path, kImageBytes);
  WriteFileBytes(path, 0, DataPattern(1, kImageBytes));
  return path;
}

}  // namespace

TEST_CASE("strict emulation keeps persisted writes and loses the others", "[extent]") {
  TempDir tmp;
  std::string path = MakeOldImage(tmp);
  const std::string old = DataPattern(1, kImageBytes);
  const std::string a = DataPattern(2, 100, 4096);
  const std::string b = DataPattern(3, 100, 8192);
  const std::string c = DataPattern(4, 200, 16384);
  {
    auto dev = MustOpenDevice(path, Strict());
    CHECK(dev->granularity() == PersistGranularity::kStrictEmulation);
    CHECK(dev->size() == kImageBytes);
    dev->Write(4096, a.data(), a.size());
    REQUIRE(dev->Persist(4096, a.size()).ok());
    dev->Write(8192, b.data(), b.size());
    // Half of C is persisted: persistence is exactly by byte range.
    dev->Write(16384, c.data(), c.size());
    REQUIRE(dev->Persist(16384, 100).ok());
    // A zeroing that is never persisted is lost like any other store.
    dev->Zero(32768, 4096);

    // The process sees its own stores, persisted or not...
    CHECK(DeviceBytes(*dev, 4096, 100) == a);
    CHECK(DeviceBytes(*dev, 8192, 100) == b);
    CHECK(DeviceBytes(*dev, 32768, 4096) == std::string(4096, '\0'));
    // ...but the image holds only what was persisted, even while open.
    CHECK(ReadFileBytes(path, 4096, 100) == a);
    CHECK(ReadFileBytes(path, 8192, 100) == old.substr(8192, 100));
  }
  // Closing the device without persisting is the power failure.
  auto dev = MustOpenDevice(path, Strict());
  CHECK(DeviceBytes(*dev, 4096, 100) == a);
  CHECK(DeviceBytes(*dev, 8192, 100) == old.substr(8192, 100));
  CHECK(DeviceBytes(*dev, 16384, 100) == c.substr(0, 100));
  CHECK(DeviceBytes(*dev, 16484, 100) == old.substr(16484, 100));
  CHECK(DeviceBytes(*dev, 32768, 4096) == old.substr(32768, 4096));
  // Untouched bytes around the writes are unchanged.
  CHECK(DeviceBytes(*dev, 0, 4096) == old.substr(0, 4096));
  CHECK(DeviceBytes(*dev, 4196, 100) == old.substr(4196, 100));
}

TEST_CASE("the libpmem2 backend writes through to a regular file", "[extent]") {
  TempDir tmp;
  std::string path = MakeOldImage(tmp);
  const std::string a = DataPattern(5, 3000, 12288);
  const std::string b = DataPattern(6, 64, 65536);
  {
    auto dev = MustOpenDevice(path, Pmem2());
    // A plain file is page-cache backed (msync), or real pmem under DAX;
    // never the emulation.
    CHECK(dev->granularity() != PersistGranularity::kStrictEmulation);
    CHECK(dev->size() == kImageBytes);
    dev->Write(12288, a.data(), a.size());
    REQUIRE(dev->Persist(12288, a.size()).ok());
    CHECK(ReadFileBytes(path, 12288, a.size()) == a);
    // A shared mapping: the file sees stores at once, persisted or not.
    dev->Write(65536, b.data(), b.size());
    CHECK(ReadFileBytes(path, 65536, b.size()) == b);
  }
  // Reopened with either backend, the data is there.
  auto dev = MustOpenDevice(path, Strict());
  CHECK(DeviceBytes(*dev, 12288, a.size()) == a);
  CHECK(DeviceBytes(*dev, 65536, b.size()) == b);
}

TEST_CASE("Device::Open reports missing or empty or busy devices", "[extent]") {
  TempDir tmp;

  SECTION("a missing file is ENOENT") {
    auto d = Device::Open(tmp.path() + "/nope.img", Strict());
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().code() == ENOENT);
  }

  SECTION("an empty file is EINVAL, with either backend") {
    std::string path = tmp.path() + "/empty.img";
    MakeImageFile(path, 0);
    for (const DeviceOptions& o : {Strict(), Pmem2()}) {
      auto d = Device::Open(path, o);
      REQUIRE_FALSE(d.ok());
      CHECK(d.status().code() == EINVAL);
      CHECK_THAT(d.status().message(), Catch::Contains("empty"));
    }
  }

  SECTION("a second open while the first holds the lock is EBUSY") {
    std::string path = tmp.path() + "/dev.img";
    MakeImageFile(path, kImageBytes);
    {
      auto first = MustOpenDevice(path, Strict());
      for (const DeviceOptions& o : {Strict(), Pmem2()}) {
        auto second = Device::Open(path, o);
        REQUIRE_FALSE(second.ok());
        CHECK(second.status().code() == EBUSY);
        CHECK_THAT(second.status().message(), Catch::Contains("in use"));
      }
      // Without the lock (what a checker reading alongside would do) the
      // open is allowed.
      DeviceOptions unlocked = Strict();
      unlocked.lock = false;
      CHECK(Device::Open(path, unlocked).ok());
    }
    // Closing the device releases the lock.
    CHECK(Device::Open(path, Strict()).ok());
  }
}

}  // namespace nosyncfs::test
