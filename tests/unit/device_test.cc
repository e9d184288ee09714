// Unit tests for extent/device.h: the strict persistence emulation that the
// crash tests rely on (with and without early evictions), the libpmem2
// backend, and Device::Open's errors.
#include "extent/device.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>
#include <vector>

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

DeviceOptions Evicting(uint64_t seed) {
  DeviceOptions o = Strict();
  o.evict_seed = seed;
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

TEST_CASE("strict emulation keeps persisted writes and loses the others", "[extent][device]") {
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

TEST_CASE("the libpmem2 backend writes through to a regular file", "[extent][device]") {
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

TEST_CASE("Device::Open reports missing or empty or busy devices", "[extent][device]") {
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

// ---- Early evictions ------------------------------------------------------------

namespace {

// One store of the eviction workload: where, what, and whether persisted.
struct Store {
  uint64_t off;
  std::string bytes;
  bool persisted;
};

// Non-overlapping stores of many sizes at unaligned offsets, every third one
// persisted, every fifth of the others a Zero; then the device closes
// without persisting the rest: a crash.
std::vector<Store> RunEvictionWorkload(const std::string& path, uint64_t seed) {
  std::vector<Store> stores;
  auto dev = MustOpenDevice(path, Evicting(seed));
  for (uint64_t i = 0; i < 300; ++i) {
    Store st{65536 + i * 1000 + i % 7, "", i % 3 == 0};
    const size_t len = 1 + (i * 37) % 900;
    if (!st.persisted && i % 5 == 0) {
      st.bytes.assign(len, '\0');
      dev->Zero(st.off, len);
    } else {
      st.bytes = DataPattern(100 + i, len, st.off);
      dev->Write(st.off, st.bytes.data(), len);
    }
    if (st.persisted) REQUIRE(dev->Persist(st.off, len).ok());
    stores.push_back(std::move(st));
  }
  // The process sees its own stores, evicted or not.
  for (const Store& st : stores) REQUIRE(DeviceBytes(*dev, st.off, st.bytes.size()) == st.bytes);
  return stores;
}

}  // namespace

TEST_CASE("early evictions put some unpersisted 8-byte words in the image, by seed",
          "[extent][device]") {
  TempDir tmp;
  const std::string old = DataPattern(1, kImageBytes);
  const uint64_t seed = 0x5eed;
  INFO("evict seed " << seed);

  std::string path = MakeOldImage(tmp);
  const std::vector<Store> stores = RunEvictionWorkload(path, seed);
  const std::string image = ReadFileBytes(path, 0, kImageBytes);
  // What the process saw before the crash: the old image with every store.
  std::string seen = old;
  for (const Store& st : stores) seen.replace(st.off, st.bytes.size(), st.bytes);

  // Persisted stores are there whole. Every aligned word touched by another
  // store is either as before or as the process last saw it (whole, never
  // torn: a word is the unit of eviction), and both kinds occur.
  size_t evicted = 0, kept = 0;
  for (const Store& st : stores) {
    INFO("store at " << st.off << ", " << st.bytes.size() << " bytes");
    if (st.persisted) {
      REQUIRE(image.substr(st.off, st.bytes.size()) == st.bytes);
      continue;
    }
    for (uint64_t w = st.off & ~uint64_t{7}; w < st.off + st.bytes.size(); w += 8) {
      INFO("word at " << w);
      const std::string got = image.substr(w, 8), before = old.substr(w, 8);
      const std::string after = seen.substr(w, 8);
      if (before == after) continue;  // a Zero store over zeros, say
      REQUIRE((got == before || got == after));
      (got == after ? evicted : kept)++;
    }
  }
  INFO(evicted << " unpersisted words evicted, " << kept << " not");
  CHECK(evicted > 100);
  CHECK(kept > evicted);  // most stores stay wholly volatile
  // Bytes no store touched are unchanged.
  CHECK(image.substr(0, 65536) == old.substr(0, 65536));
  CHECK(image.substr(400000) == old.substr(400000));

  SECTION("the same seed gives the same image; another seed another") {
    TempDir tmp2;
    std::string again = MakeOldImage(tmp2);
    RunEvictionWorkload(again, seed);
    CHECK(ReadFileBytes(again, 0, kImageBytes) == image);
    TempDir tmp3;
    std::string other = MakeOldImage(tmp3);
    RunEvictionWorkload(other, seed + 1);
    CHECK(ReadFileBytes(other, 0, kImageBytes) != image);
  }
  SECTION("reopened, the device reads the image as it was left") {
    auto dev = MustOpenDevice(path, Strict());
    CHECK(DeviceBytes(*dev, 0, kImageBytes) == image);
  }
}

TEST_CASE("early evictions need strict emulation and a seed", "[extent][device]") {
  TempDir tmp;
  std::string path = MakeOldImage(tmp);
  DeviceOptions o = Pmem2();
  o.evict_seed = 7;
  auto d = Device::Open(path, o);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == EINVAL);
  {
    auto pmem = MustOpenDevice(path, Pmem2());
    CHECK(pmem->StartEvicting(7).code() == EINVAL);
  }
  auto strict = MustOpenDevice(path, Strict());
  CHECK(strict->StartEvicting(0).code() == EINVAL);
  CHECK(strict->StartEvicting(7).ok());
}

}  // namespace nosyncfs::test
