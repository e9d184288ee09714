// Unit tests for extent/refcount_map.h: counting, freeing at the last
// reference, settling runs, persisted changes and Revert.
#include "extent/refcount_map.h"

#include <catch2/catch.hpp>

#include <random>
#include <vector>

namespace nosyncfs {
namespace {

using Record = RefcountMap::Record;

std::vector<BlockRun> Shared(const RefcountMap& m, BlockRun run, uint64_t durable = UINT64_MAX) {
  return m.Shared(run, durable);
}

}  // namespace

TEST_CASE("refcount map: references are counted and the last one frees", "[extent]") {
  RefcountMap m;
  m.AddRef({10, 5});  // blocks 10..14 now mapped twice
  CHECK(m.RefsAt(9) == 1);
  CHECK(m.RefsAt(10) == 2);
  CHECK(m.RefsAt(14) == 2);
  CHECK(m.RefsAt(15) == 1);
  m.AddRef({12, 6});  // 12..14 three times, 15..17 twice
  CHECK(m.Records() == std::vector<Record>{{{10, 2}, 2}, {{12, 3}, 3}, {{15, 3}, 2}});

  // Dropping blocks without a record frees them at once.
  CHECK(m.DropRef({0, 4}, 1) == std::vector<BlockRun>{{0, 4}});
  // Dropping shared blocks frees nothing until the last reference.
  CHECK(m.DropRef({10, 8}, 2).empty());
  CHECK(m.Records() == std::vector<Record>{{{12, 3}, 2}});
  std::vector<BlockRun> freed = m.DropRef({8, 10}, 3);
  // 8, 9: unrecorded; 10, 11 and 15..17: their last reference; 12..14 keep one.
  CHECK(freed == std::vector<BlockRun>{{8, 4}, {15, 3}});
  CHECK(m.Records().empty());
}

TEST_CASE("refcount map: a drop to one reference settles until it is durable", "[extent]") {
  RefcountMap m;
  m.AddRef({100, 4});
  m.Accept();
  CHECK(Shared(m, {90, 20}) == std::vector<BlockRun>{{100, 4}});
  CHECK(m.DropRef({100, 2}, 7).empty());
  m.Accept();
  // Persisted view: 100..101 are private now.
  CHECK(m.Records() == std::vector<Record>{{{102, 2}, 2}});
  CHECK(m.RefsAt(100) == 1);
  // But until transaction 7 is durable they must be treated as shared.
  CHECK(Shared(m, {100, 4}, 6) == std::vector<BlockRun>{{100, 4}});
  CHECK(Shared(m, {100, 4}, 7) == std::vector<BlockRun>{{102, 2}});
  m.Prune(7);
  CHECK(Shared(m, {100, 4}, 0) == std::vector<BlockRun>{{102, 2}});
  // The remaining reference of a settling block frees it.
  RefcountMap n;
  n.AddRef({5, 1});
  n.DropRef({5, 1}, 1);
  CHECK(n.DropRef({5, 1}, 2) == std::vector<BlockRun>{{5, 1}});
}

TEST_CASE("refcount map: Changes gives the persisted records and Revert undoes", "[extent]") {
  RefcountMap m;
  m.Load({{0, 8}, 2});
  m.AddRef({4, 8});  // 0..3: 2, 4..7: 3, 8..11: 2
  auto changes = m.Changes();
  std::map<uint64_t, std::optional<Record>> by_key(changes.begin(), changes.end());
  CHECK(by_key.size() == 3);
  CHECK(by_key[0] == Record{{0, 4}, 2});
  CHECK(by_key[4] == Record{{4, 4}, 3});
  CHECK(by_key[8] == Record{{8, 4}, 2});
  m.Revert();
  CHECK(m.Records() == std::vector<Record>{{{0, 8}, 2}});
  CHECK(m.Changes().empty());

  // A drop to one reference deletes the record; a settling run is never
  // written.
  m.DropRef({0, 8}, 3);
  changes = m.Changes();
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].first == 0);
  CHECK(!changes[0].second);
  m.Accept();
  CHECK(m.Changes().empty());
}

TEST_CASE("refcount map: random operations agree with a per-block model", "[extent]") {
  std::mt19937_64 rng(GENERATE(1, 2, 3, 4));
  constexpr uint64_t kBlocks = 64;
  std::vector<uint32_t> model(kBlocks, 1);  // every block mapped once at first
  RefcountMap m;
  for (int step = 0; step < 3000; ++step) {
    uint64_t start = rng() % kBlocks, len = 1 + rng() % (kBlocks - start);
    bool add = rng() % 2 == 0;
    bool possible = true;
    for (uint64_t b = start; b < start + len; ++b) possible &= model[b] > 0;
    if (!possible) continue;
    if (add) {
      m.AddRef({start, len});
      for (uint64_t b = start; b < start + len; ++b) ++model[b];
    } else {
      std::vector<BlockRun> freed = m.DropRef({start, len}, step);
      std::vector<bool> freed_block(kBlocks);
      for (const BlockRun& r : freed) {
        for (uint64_t b = r.start; b < r.end(); ++b) freed_block[b] = true;
      }
      for (uint64_t b = start; b < start + len; ++b) {
        --model[b];
        INFO("step " << step << " block " << b);
        CHECK(freed_block[b] == (model[b] == 0));
      }
    }
    if (rng() % 5 == 0) {
      m.Revert();  // as if the commit had to start over: undo, then redo
      if (add) {
        m.AddRef({start, len});
      } else {
        m.DropRef({start, len}, step);
      }
    }
    m.Accept();
    for (uint64_t b = 0; b < kBlocks; ++b) {
      INFO("step " << step << " block " << b);
      REQUIRE(m.RefsAt(b) == std::max<uint32_t>(model[b], 1));
    }
    // Records are canonical: no two adjacent ones with the same count.
    auto records = m.Records();
    for (size_t i = 1; i < records.size(); ++i) {
      REQUIRE(!(records[i - 1].run.end() == records[i].run.start &&
                records[i - 1].refs == records[i].refs));
    }
    // Reviving a dead block would be a bug in the test, not the map.
    for (uint64_t b = 0; b < kBlocks; ++b) {
      if (model[b] == 0) model[b] = 1;  // reallocated to someone else
    }
    m.Prune(UINT64_MAX);
  }
}

}  // namespace nosyncfs
