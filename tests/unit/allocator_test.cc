// Unit tests for extent/allocator.h: free-space bookkeeping, placement, and
// the rule that freed blocks wait for their transaction to be durable.
#include "extent/allocator.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

using Runs = std::vector<BlockRun>;

Runs MustAllocate(Allocator& a, uint64_t count, uint64_t goal) {
  auto r = a.Allocate(count, goal);
  INFO("Allocate(" << count << ", " << goal << "): " << r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("allocator: allocate and unallocate", "[extent]") {
  Allocator a(100);
  CHECK(a.total_blocks() == 100);
  CHECK(a.free_blocks() == 100);
  CHECK(a.FreeRuns() == Runs{{0, 100}});

  CHECK(MustAllocate(a, 10, 0) == Runs{{0, 10}});
  CHECK(a.free_blocks() == 90);
  CHECK(a.FreeRuns() == Runs{{10, 90}});

  a.Unallocate({0, 10});
  CHECK(a.free_blocks() == 100);
  CHECK(a.FreeRuns() == Runs{{0, 100}});
  CHECK(a.pending_blocks() == 0);
}

TEST_CASE("allocator: returned runs coalesce with both neighbours", "[extent]") {
  Allocator a(100);
  CHECK(MustAllocate(a, 10, 0) == Runs{{0, 10}});
  CHECK(MustAllocate(a, 10, 10) == Runs{{10, 10}});
  CHECK(MustAllocate(a, 10, 20) == Runs{{20, 10}});
  CHECK(a.FreeRuns() == Runs{{30, 70}});

  a.Unallocate({10, 10});  // no free neighbour
  CHECK(a.FreeRuns() == Runs{{10, 10}, {30, 70}});
  a.Unallocate({0, 10});  // merges with the run after it
  CHECK(a.FreeRuns() == Runs{{0, 20}, {30, 70}});
  a.Unallocate({20, 10});  // fills the gap: merges on both sides
  CHECK(a.FreeRuns() == Runs{{0, 100}});
  CHECK(a.free_blocks() == 100);
}

TEST_CASE("allocator: placement prefers the goal and what follows it", "[extent]") {
  Allocator a(100);
  CHECK(MustAllocate(a, 5, 50) == Runs{{50, 5}});
  // The next file block goes right after the previous one.
  CHECK(MustAllocate(a, 5, 55) == Runs{{55, 5}});
  // A used goal: first free block after it.
  CHECK(MustAllocate(a, 3, 52) == Runs{{60, 3}});
  // A goal past the end starts over at block 0.
  CHECK(MustAllocate(a, 2, 1000) == Runs{{0, 2}});
  CHECK(a.FreeRuns() == Runs{{2, 48}, {63, 37}});
}

TEST_CASE("allocator: wraps around to the start when the end is used up", "[extent]") {
  Allocator a(100);
  REQUIRE(a.MarkUsed({0, 10}).ok());
  REQUIRE(a.MarkUsed({20, 70}).ok());
  CHECK(a.FreeRuns() == Runs{{10, 10}, {90, 10}});
  // Five blocks from the goal to the end, the other ten after wrapping.
  CHECK(MustAllocate(a, 15, 95) == Runs{{95, 5}, {10, 10}});
  CHECK(a.FreeRuns() == Runs{{90, 5}});
  CHECK(a.free_blocks() == 5);
}

TEST_CASE("allocator: ENOSPC is all-or-nothing", "[extent]") {
  Allocator a(100);
  CHECK(MustAllocate(a, 60, 0) == Runs{{0, 60}});
  auto r = a.Allocate(41, 0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ENOSPC);
  // Nothing was taken by the failed call.
  CHECK(a.free_blocks() == 40);
  CHECK(a.FreeRuns() == Runs{{60, 40}});
  CHECK(MustAllocate(a, 40, 0) == Runs{{60, 40}});
  CHECK(a.free_blocks() == 0);
  CHECK(a.FreeRuns().empty());
  auto full = a.Allocate(1, 0);
  REQUIRE_FALSE(full.ok());
  CHECK(full.status().code() == ENOSPC);
}

TEST_CASE("allocator: MarkUsed rejects blocks used twice or out of range", "[extent]") {
  Allocator a(100);
  REQUIRE(a.MarkUsed({10, 10}).ok());
  CHECK(a.FreeRuns() == Runs{{0, 10}, {20, 80}});

  SECTION("overlap at the end of an earlier run") {
    Status st = a.MarkUsed({15, 10});
    CHECK(st.code() == EUCLEAN);
    CHECK_THAT(st.message(), Catch::Contains("block 15 is mapped twice"));
  }
  SECTION("overlap at the start of an earlier run") {
    Status st = a.MarkUsed({5, 10});
    CHECK(st.code() == EUCLEAN);
    CHECK_THAT(st.message(), Catch::Contains("block 10 is mapped twice"));
  }
  SECTION("exactly the same run") {
    CHECK(a.MarkUsed({10, 10}).code() == EUCLEAN);
  }
  SECTION("a run covering a used one") {
    CHECK(a.MarkUsed({0, 30}).code() == EUCLEAN);
  }
  SECTION("past the end of the data area") {
    Status st = a.MarkUsed({95, 10});
    CHECK(st.code() == EUCLEAN);
    CHECK_THAT(st.message(), Catch::Contains("outside the data area"));
    CHECK(a.MarkUsed({100, 1}).code() == EUCLEAN);
  }
  SECTION("a length that wraps around 2^64") {
    CHECK(a.MarkUsed({UINT64_MAX - 1, 5}).code() == EUCLEAN);
  }
  SECTION("pending blocks are in use too") {
    REQUIRE(a.MarkUsed({50, 5}).ok());
    a.FreeAfter(3, {50, 5});
    CHECK(a.MarkUsed({52, 1}).code() == EUCLEAN);
    CHECK(a.FreeRuns() == Runs{{0, 10}, {20, 30}, {55, 45}});
    return;
  }
  // A rejected run changes nothing.
  CHECK(a.free_blocks() == 90);
  CHECK(a.FreeRuns() == Runs{{0, 10}, {20, 80}});
  // An empty run is trivially fine.
  CHECK(a.MarkUsed({10, 0}).ok());
}

TEST_CASE("allocator: freed blocks are not reusable until their transaction is durable",
          "[extent]") {
  Allocator a(20);
  CHECK(MustAllocate(a, 20, 0) == Runs{{0, 20}});
  a.FreeAfter(5, {0, 4});
  a.FreeAfter(7, {10, 2});
  a.FreeAfter(5, {16, 1});
  CHECK(a.free_blocks() == 0);
  CHECK(a.pending_blocks() == 7);
  CHECK(a.FreeRuns().empty());
  CHECK(a.Allocate(1, 0).status().code() == ENOSPC);

  a.ReleaseUpTo(4);  // nothing freed by transactions up to 4
  CHECK(a.free_blocks() == 0);
  CHECK(a.pending_blocks() == 7);

  a.ReleaseUpTo(5);  // both runs of transaction 5, not 7's
  CHECK(a.free_blocks() == 5);
  CHECK(a.pending_blocks() == 2);
  CHECK(a.FreeRuns() == Runs{{0, 4}, {16, 1}});
  // Blocks 10-11 are still pending: a goal there skips them.
  CHECK(MustAllocate(a, 5, 10) == Runs{{16, 1}, {0, 4}});

  a.ReleaseUpTo(100);
  CHECK(a.pending_blocks() == 0);
  CHECK(a.FreeRuns() == Runs{{10, 2}});
  CHECK(MustAllocate(a, 2, 0) == Runs{{10, 2}});
}

namespace {

// The allocator as a plain bitmap, with first-fit-from-goal placement
// written the obvious way.
class AllocatorModel {
 public:
  enum State : uint8_t { kFree, kUsed, kPending };

  explicit AllocatorModel(uint64_t n) : state_(n, kFree), seq_(n, 0) {}

  uint64_t size() const { return state_.size(); }
  State at(uint64_t b) const { return state_[b]; }

  uint64_t Count(State s) const {
    uint64_t n = 0;
    for (State x : state_) n += x == s;
    return n;
  }

  // nullopt for ENOSPC.
  std::optional<Runs> Allocate(uint64_t count, uint64_t goal) {
    if (count > Count(kFree)) return std::nullopt;
    uint64_t n = size();
    uint64_t start = goal < n ? goal : 0;
    Runs out;
    for (uint64_t i = 0; i < n && count > 0; ++i) {
      uint64_t b = (start + i) % n;
      if (state_[b] != kFree) continue;
      state_[b] = kUsed;
      --count;
      if (!out.empty() && out.back().end() == b && b != 0) {
        ++out.back().len;
      } else {
        out.push_back({b, 1});
      }
    }
    return out;
  }

  void Set(BlockRun r, State s, uint64_t seq = 0) {
    for (uint64_t b = r.start; b < r.end(); ++b) {
      state_[b] = s;
      seq_[b] = seq;
    }
  }

  bool AllFree(BlockRun r) const {
    if (r.end() > size() || r.end() < r.start) return false;
    for (uint64_t b = r.start; b < r.end(); ++b) {
      if (state_[b] != kFree) return false;
    }
    return true;
  }

  void ReleaseUpTo(uint64_t seq) {
    for (uint64_t b = 0; b < size(); ++b) {
      if (state_[b] == kPending && seq_[b] <= seq) state_[b] = kFree;
    }
  }

  Runs FreeRuns() const {
    Runs out;
    for (uint64_t b = 0; b < size(); ++b) {
      if (state_[b] != kFree) continue;
      if (!out.empty() && out.back().end() == b) {
        ++out.back().len;
      } else {
        out.push_back({b, 1});
      }
    }
    return out;
  }

  // A random run of used blocks (a piece of something allocated), or an
  // empty run if none is used.
  BlockRun RandomUsedRun(std::mt19937_64& rng) const {
    std::vector<uint64_t> used;
    for (uint64_t b = 0; b < size(); ++b) {
      if (state_[b] == kUsed) used.push_back(b);
    }
    if (used.empty()) return {0, 0};
    uint64_t start = used[rng() % used.size()];
    uint64_t max = 0;
    while (start + max < size() && state_[start + max] == kUsed) ++max;
    return {start, 1 + rng() % max};
  }

 private:
  std::vector<State> state_;
  std::vector<uint64_t> seq_;
};

std::string Describe(const Runs& runs) {
  std::ostringstream out;
  for (const BlockRun& r : runs) out << "{" << r.start << "+" << r.len << "}";
  return out.str();
}

}  // namespace

TEST_CASE("allocator: random operations match a bitmap model", "[extent]") {
  const uint64_t seed = TestSeed();
  INFO("seed " << seed << " (rerun with NSF_TEST_SEED=" << seed << ")");
  std::mt19937_64 rng(seed);
  constexpr uint64_t kBlocks = 257;
  Allocator a(kBlocks);
  AllocatorModel m(kBlocks);
  uint64_t released = 0;  // highest seq passed to ReleaseUpTo

  for (int step = 0; step < 4000; ++step) {
    int op = static_cast<int>(rng() % 100);
    std::ostringstream what;
    if (op < 35) {
      uint64_t count = 1 + rng() % 40;
      uint64_t goal = rng() % (kBlocks + 20);
      what << "Allocate(" << count << ", " << goal << ")";
      auto got = a.Allocate(count, goal);
      auto want = m.Allocate(count, goal);
      INFO("step " << step << ": " << what.str());
      if (!want) {
        REQUIRE_FALSE(got.ok());
        REQUIRE(got.status().code() == ENOSPC);
      } else {
        INFO("got " << (got.ok() ? Describe(*got) : got.status().ToString()) << ", want "
                    << Describe(*want));
        REQUIRE(got.ok());
        REQUIRE(*got == *want);
      }
    } else if (op < 50) {
      BlockRun r = m.RandomUsedRun(rng);
      if (r.len == 0) continue;
      what << "Unallocate({" << r.start << "+" << r.len << "})";
      a.Unallocate(r);
      m.Set(r, AllocatorModel::kFree);
    } else if (op < 70) {
      BlockRun r = m.RandomUsedRun(rng);
      if (r.len == 0) continue;
      uint64_t seq = released + 1 + rng() % 6;
      what << "FreeAfter(" << seq << ", {" << r.start << "+" << r.len << "})";
      a.FreeAfter(seq, r);
      m.Set(r, AllocatorModel::kPending, seq);
    } else if (op < 80) {
      released += rng() % 4;
      what << "ReleaseUpTo(" << released << ")";
      a.ReleaseUpTo(released);
      m.ReleaseUpTo(released);
    } else {
      BlockRun r{rng() % (kBlocks + 5), rng() % 12};
      what << "MarkUsed({" << r.start << "+" << r.len << "})";
      Status st = a.MarkUsed(r);
      bool want_ok = r.len == 0 || m.AllFree(r);
      INFO("step " << step << ": " << what.str() << " -> " << st.ToString());
      REQUIRE(st.ok() == want_ok);
      if (!want_ok) REQUIRE(st.code() == EUCLEAN);
      if (want_ok) m.Set(r, AllocatorModel::kUsed);
    }
    INFO("step " << step << ": after " << what.str());
    REQUIRE(a.free_blocks() == m.Count(AllocatorModel::kFree));
    REQUIRE(a.pending_blocks() == m.Count(AllocatorModel::kPending));
    REQUIRE(Describe(a.FreeRuns()) == Describe(m.FreeRuns()));
  }
}

TEST_CASE("allocator: quarantined blocks stay held once freed, until every holder lifts",
          "[extent]") {
  Allocator a(20);
  CHECK(MustAllocate(a, 20, 0) == Runs{{0, 20}});
  // Client 1 was leased blocks 2..8, client 2 blocks 6..10; both cut off.
  a.Quarantine(1, {{2, 6}});
  a.Quarantine(2, {{6, 4}});
  a.FreeAfter(3, {0, 12});
  a.ReleaseUpTo(3);
  CHECK(a.FreeRuns() == Runs{{0, 2}, {10, 2}});
  CHECK(a.held_blocks() == 8);
  CHECK(a.free_blocks() == 4);
  // Nothing can hand out a held block.
  CHECK(a.Allocate(5, 0).status().code() == ENOSPC);

  a.LiftQuarantine(1);  // 2..6 go back; 6..10 are still client 2's
  CHECK(a.FreeRuns() == Runs{{0, 6}, {10, 2}});
  CHECK(a.held_blocks() == 4);
  a.LiftQuarantine(7);  // an unknown holder changes nothing
  CHECK(a.held_blocks() == 4);
  a.LiftQuarantine(2);
  CHECK(a.FreeRuns() == Runs{{0, 12}});
  CHECK(a.held_blocks() == 0);
  CHECK(a.free_blocks() == 12);

  // Blocks freed after the lift are not held.
  a.Quarantine(3, {{14, 2}});
  a.LiftQuarantine(3);
  a.FreeAfter(4, {12, 8});
  a.ReleaseUpTo(4);
  CHECK(a.FreeRuns() == Runs{{0, 20}});
}

}  // namespace nosyncfs::test
