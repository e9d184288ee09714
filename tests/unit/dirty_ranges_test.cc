// DirtyRanges: rounding to the granule, merging, truncation.
#include "fs/dirty_ranges.h"

#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

using Ranges = std::map<uint64_t, uint64_t>;

}  // namespace

TEST_CASE("dirty ranges: rounded out to the granule and merged when they touch", "[fs]") {
  DirtyRanges d(4096);
  CHECK(d.empty());
  d.Add(100, 200);
  CHECK(d.ranges() == Ranges{{0, 4096}});
  d.Add(4096 * 3 + 1, 4096 * 3 + 2);
  CHECK(d.ranges() == Ranges{{0, 4096}, {4096 * 3, 4096 * 4}});
  // Touching the first range merges with it; the gap to the second stays.
  d.Add(4096, 4097);
  CHECK(d.ranges() == Ranges{{0, 8192}, {4096 * 3, 4096 * 4}});
  // Filling the gap merges all three.
  d.Add(8192, 4096 * 3);
  CHECK(d.ranges() == Ranges{{0, 4096 * 4}});
  // An empty range changes nothing.
  d.Add(50000, 50000);
  CHECK(d.count() == 1);
}

TEST_CASE("dirty ranges: truncate drops and clips", "[fs]") {
  DirtyRanges d(64);
  d.Add(0, 64);
  d.Add(128, 256);
  d.Add(1024, 2048);
  d.Truncate(200);
  CHECK(d.ranges() == Ranges{{0, 64}, {128, 200}});
  d.Truncate(128);
  CHECK(d.ranges() == Ranges{{0, 64}});
  d.Truncate(0);
  CHECK(d.empty());
}

TEST_CASE("dirty ranges: 20,000 random small writes stay as small as the dirty pages",
          "[fs]") {
  const uint64_t seed = TestSeed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  constexpr uint64_t kFile = 16 << 20, kPage = 4096;
  DirtyRanges d(kPage);
  std::vector<bool> page_dirty(kFile / kPage);
  for (int i = 0; i < 20000; ++i) {
    uint64_t off = rng() % (kFile - 512);
    d.Add(off, off + 512);
    for (uint64_t p = off / kPage; p <= (off + 511) / kPage; ++p) page_dirty[p] = true;
  }
  // Exactly the dirty pages are covered, as maximal runs.
  Ranges want;
  for (uint64_t p = 0; p < page_dirty.size(); ++p) {
    if (!page_dirty[p]) continue;
    if (!want.empty() && std::prev(want.end())->second == p * kPage) {
      std::prev(want.end())->second += kPage;
    } else {
      want.emplace(p * kPage, (p + 1) * kPage);
    }
  }
  CHECK(d.ranges() == want);
  CHECK(d.count() <= kFile / kPage / 2);
}

}  // namespace nosyncfs::test
