// Unit tests for extent/extent_map.h: lookups, canonical merging, splitting
// by unmap and by flag changes, and the change log the journal consumes.
#include "extent/extent_map.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/harness/volume_fixture.h"

namespace Catch {
template <>
struct StringMaker<nosyncfs::Extent> {
  static std::string convert(const nosyncfs::Extent& e) {
    return "{l" + std::to_string(e.lblk) + "+" + std::to_string(e.len) + "->p" +
           std::to_string(e.pblk) + (e.flags ? " NF" : "") + "}";
  }
};
}  // namespace Catch

namespace nosyncfs::test {
namespace {

constexpr uint32_t NF = kExtentNoFsync;
using Extents = std::vector<Extent>;
using Runs = std::vector<BlockRun>;
using Holes = std::vector<std::pair<uint64_t, uint64_t>>;
using Changes = std::vector<std::pair<uint64_t, std::optional<Extent>>>;

Extents All(const ExtentMap& m) {
  Extents out;
  for (const auto& [k, e] : m.extents()) out.push_back(e);
  return out;
}

struct ChangeSummary {
  Extents puts;                // in key order
  std::set<uint64_t> deletes;  // keys reported removed
};

ChangeSummary Summarize(const Changes& changes) {
  ChangeSummary s;
  for (const auto& [key, e] : changes) {
    if (e) {
      CHECK(e->lblk == key);
      s.puts.push_back(*e);
    } else {
      s.deletes.insert(key);
    }
  }
  return s;
}

}  // namespace

TEST_CASE("extent map: Find on holes and extents", "[extent]") {
  ExtentMap m;
  CHECK(m.empty());
  auto s = m.Find(7, 100);
  CHECK_FALSE(s.mapped);
  CHECK(s.len == 100);  // an empty map is one endless hole

  m.Map(10, 5, 100, 0);
  m.Map(20, 3, 300, NF);
  CHECK(m.mapped_blocks() == 8);

  s = m.Find(0, 100);  // a hole up to the first extent
  CHECK_FALSE(s.mapped);
  CHECK(s.len == 10);
  s = m.Find(12, 100);  // inside an extent: device block and rest of it
  CHECK(s.mapped);
  CHECK(s.pblk == 102);
  CHECK(s.flags == 0);
  CHECK(s.len == 3);
  s = m.Find(12, 2);  // capped by max_len
  CHECK(s.len == 2);
  s = m.Find(15, 100);  // the hole between the extents
  CHECK_FALSE(s.mapped);
  CHECK(s.len == 5);
  s = m.Find(20, 100);
  CHECK(s.mapped);
  CHECK(s.pblk == 300);
  CHECK(s.flags == NF);
  CHECK(s.len == 3);
  s = m.Find(23, 1000);  // past the last extent
  CHECK_FALSE(s.mapped);
  CHECK(s.len == 1000);
}

TEST_CASE("extent map: Map merges only physically contiguous runs with equal flags",
          "[extent]") {
  ExtentMap m;
  SECTION("both neighbours") {
    m.Map(0, 4, 100, 0);
    m.Map(8, 4, 108, 0);
    m.Map(4, 4, 104, 0);
    CHECK(All(m) == Extents{{0, 12, 100, 0}});
  }
  SECTION("left neighbour only") {
    m.Map(0, 4, 100, 0);
    m.Map(8, 4, 500, 0);  // not contiguous on the device
    m.Map(4, 4, 104, 0);
    CHECK(All(m) == Extents{{0, 8, 100, 0}, {8, 4, 500, 0}});
  }
  SECTION("right neighbour only") {
    m.Map(0, 4, 50, 0);
    m.Map(8, 4, 108, 0);
    m.Map(4, 4, 104, 0);
    CHECK(All(m) == Extents{{0, 4, 50, 0}, {4, 8, 104, 0}});
  }
  SECTION("contiguous on the device but not logically") {
    m.Map(0, 4, 100, 0);
    m.Map(5, 4, 104, 0);
    CHECK(All(m) == Extents{{0, 4, 100, 0}, {5, 4, 104, 0}});
  }
  SECTION("contiguous but different flags") {
    m.Map(0, 4, 100, NF);
    m.Map(8, 4, 108, NF);
    m.Map(4, 4, 104, 0);
    CHECK(All(m) == Extents{{0, 4, 100, NF}, {4, 4, 104, 0}, {8, 4, 108, NF}});
  }
}

TEST_CASE("extent map: Unmap splits extents and returns the device runs", "[extent]") {
  ExtentMap m;
  m.Map(0, 10, 100, 0);

  SECTION("the middle of an extent") {
    CHECK(m.Unmap(3, 4) == Runs{{103, 4}});
    CHECK(All(m) == Extents{{0, 3, 100, 0}, {7, 3, 107, 0}});
  }
  SECTION("the head of an extent") {
    CHECK(m.Unmap(0, 2) == Runs{{100, 2}});
    CHECK(All(m) == Extents{{2, 8, 102, 0}});
  }
  SECTION("the tail of an extent, past its end") {
    CHECK(m.Unmap(8, 50) == Runs{{108, 2}});
    CHECK(All(m) == Extents{{0, 8, 100, 0}});
  }
  SECTION("across extents and holes") {
    m.Map(20, 5, 300, NF);
    m.Map(30, 5, 400, 0);
    CHECK(m.Unmap(5, 27) == Runs{{105, 5}, {300, 5}, {400, 2}});
    CHECK(All(m) == Extents{{0, 5, 100, 0}, {32, 3, 402, 0}});
  }
  SECTION("a hole") {
    CHECK(m.Unmap(10, 10).empty());
    CHECK(All(m) == Extents{{0, 10, 100, 0}});
  }
  SECTION("everything") {
    CHECK(m.Unmap(0, UINT64_MAX / 2) == Runs{{100, 10}});
    CHECK(m.empty());
    CHECK(m.mapped_blocks() == 0);
  }
}

TEST_CASE("extent map: SetFlags splits and re-merges", "[extent]") {
  ExtentMap m;
  m.Map(0, 10, 100, 0);

  // The middle of one extent becomes NF: three extents.
  m.SetFlags(3, 4, NF, NF);
  CHECK(All(m) == Extents{{0, 3, 100, 0}, {3, 4, 103, NF}, {7, 3, 107, 0}});
  CHECK(m.AllHave(3, 4, NF));
  CHECK_FALSE(m.AllHave(2, 4, NF));
  CHECK_FALSE(m.AllHave(3, 5, NF));

  // Clearing it again restores the single extent.
  m.SetFlags(3, 4, NF, 0);
  CHECK(All(m) == Extents{{0, 10, 100, 0}});

  // A range wider than the extent, with holes, only touches mapped blocks.
  m.Map(12, 2, 112, 0);
  m.SetFlags(5, 20, NF, NF);
  CHECK(All(m) == Extents{{0, 5, 100, 0}, {5, 5, 105, NF}, {12, 2, 112, NF}});
  CHECK_FALSE(m.AllHave(5, 9, NF));  // block 10-11 is a hole

  // Setting what is already set changes nothing.
  m.SetFlags(0, 14, NF, NF);
  CHECK(All(m) == Extents{{0, 10, 100, NF}, {12, 2, 112, NF}});
  CHECK(m.AllHave(0, 10, NF));
  m.SetFlags(0, 14, NF, 0);
  CHECK(All(m) == Extents{{0, 10, 100, 0}, {12, 2, 112, 0}});

  // A flag change that leaves the value as it was keeps one extent.
  m.SetFlags(2, 3, NF, 0);
  CHECK(All(m) == Extents{{0, 10, 100, 0}, {12, 2, 112, 0}});
}

TEST_CASE("extent map: SetFlags merges the piece split off at the end of the range",
          "[extent]") {
  ExtentMap m;
  m.Map(0, 4, 100, NF);
  m.Map(4, 6, 104, 0);
  // [2,4) loses NF and joins [4,6); the piece [6,10) split off at the end
  // of the range must join them too.
  m.SetFlags(2, 4, NF, 0);
  CHECK(All(m) == Extents{{0, 2, 100, NF}, {2, 8, 102, 0}});
}

TEST_CASE("extent map: Holes and AllHave", "[extent]") {
  ExtentMap m;
  CHECK(m.Holes(0, 10) == Holes{{0, 10}});
  m.Map(2, 3, 50, NF);
  m.Map(8, 4, 60, 0);
  CHECK(m.Holes(0, 14) == Holes{{0, 2}, {5, 3}, {12, 2}});
  CHECK(m.Holes(3, 2).empty());
  CHECK(m.Holes(9, 10) == Holes{{12, 7}});
  CHECK(m.AllHave(2, 3, NF));
  CHECK(m.AllHave(8, 4, 0));  // mapped, no flags asked for
  CHECK_FALSE(m.AllHave(8, 4, NF));
  CHECK_FALSE(m.AllHave(4, 2, 0));  // block 5 is a hole
  CHECK(m.AllHave(0, 0, NF));  // empty range: vacuously true
}

TEST_CASE("extent map: TakeChanges reports puts and deletes since the last call", "[extent]") {
  ExtentMap m;
  // Load is what the store already has: not a change.
  m.Load({0, 10, 100, 0});
  CHECK(m.TakeChanges().empty());

  m.Map(20, 2, 200, 0);
  CHECK(m.TakeChanges() == Changes{{20, Extent{20, 2, 200, 0}}});
  CHECK(m.TakeChanges().empty());  // taken

  // Extending an extent rewrites its key; the new piece's key is removed.
  m.Map(10, 3, 110, 0);
  CHECK(m.TakeChanges() == Changes{{0, Extent{0, 13, 100, 0}}, {10, std::nullopt}});

  // Punching the middle: the left piece shrinks, a right piece appears.
  // (A key that only existed in between may be reported deleted too: a
  // delete of an absent key is harmless, so only live keys are checked.)
  CHECK(m.Unmap(4, 2) == Runs{{104, 2}});
  ChangeSummary c = Summarize(m.TakeChanges());
  CHECK(c.puts == Extents{{0, 4, 100, 0}, {6, 7, 106, 0}});
  CHECK(c.deletes.count(0) == 0);
  CHECK(c.deletes.count(6) == 0);
  CHECK(c.deletes.count(20) == 0);

  // Removing a whole extent is a delete of its key.
  CHECK(m.Unmap(20, 2) == Runs{{200, 2}});
  CHECK(m.TakeChanges() == Changes{{20, std::nullopt}});

  // Flag changes rewrite the pieces they split off.
  m.SetFlags(1, 2, NF, NF);
  c = Summarize(m.TakeChanges());
  CHECK(c.puts == Extents{{0, 1, 100, 0}, {1, 2, 101, NF}, {3, 1, 103, 0}});
  CHECK(c.deletes.empty());
  m.SetFlags(1, 2, NF, 0);
  c = Summarize(m.TakeChanges());
  CHECK(c.puts == Extents{{0, 4, 100, 0}});
  CHECK(c.deletes == std::set<uint64_t>{1, 3});
}

namespace {

// The per-block truth: logical block -> (device block, flags).
struct BlockInfo {
  uint64_t pblk;
  uint32_t flags;
};
using Model = std::map<uint64_t, BlockInfo>;

// The one canonical extent list for a block-level state: blocks join an
// extent while logically and physically consecutive with equal flags.
Extents Canonical(const Model& model) {
  Extents out;
  for (const auto& [l, b] : model) {
    if (!out.empty()) {
      Extent& e = out.back();
      if (e.lend() == l && e.pblk + e.len == b.pblk && e.flags == b.flags) {
        ++e.len;
        continue;
      }
    }
    out.push_back({l, 1, b.pblk, b.flags});
  }
  return out;
}

std::string Describe(const Extents& es) {
  std::ostringstream out;
  for (const Extent& e : es) {
    out << "{l" << e.lblk << "+" << e.len << "->p" << e.pblk << (e.flags ? " NF" : "") << "}";
  }
  return out.str();
}

}  // namespace

TEST_CASE("extent map: random operations match a per-block model", "[extent]") {
  const uint64_t seed = TestSeed();
  INFO("seed " << seed << " (rerun with NSF_TEST_SEED=" << seed << ")");
  std::mt19937_64 rng(seed);
  constexpr uint64_t kSpan = 64;  // logical blocks in play
  ExtentMap m;
  Model model;
  // What a store fed only by TakeChanges would hold.
  std::map<uint64_t, Extent> store;
  uint64_t next_pblk = 1000;

  for (int step = 0; step < 5000; ++step) {
    int op = static_cast<int>(rng() % 100);
    std::ostringstream what;
    if (op < 40) {
      // Map part of a hole, sometimes physically continuing a neighbour so
      // that merges happen.
      uint64_t l = rng() % kSpan;
      if (model.count(l)) continue;
      uint64_t max = 0;
      while (l + max < kSpan && !model.count(l + max)) ++max;
      uint64_t len = 1 + rng() % max;
      uint32_t flags = rng() % 2 ? NF : 0;
      uint64_t pblk;
      int how = static_cast<int>(rng() % 3);
      if (how == 0 && l > 0 && model.count(l - 1)) {
        pblk = model[l - 1].pblk + 1;
      } else if (how == 1 && model.count(l + len)) {
        pblk = model[l + len].pblk - len;
      } else {
        pblk = next_pblk;
      }
      next_pblk = std::max(next_pblk, pblk + len) + 1 + rng() % 3;
      what << "Map(" << l << ", " << len << ", " << pblk << ", " << flags << ")";
      m.Map(l, len, pblk, flags);
      for (uint64_t i = 0; i < len; ++i) model[l + i] = {pblk + i, flags};
    } else if (op < 65) {
      uint64_t l = rng() % kSpan, len = 1 + rng() % 16;
      what << "Unmap(" << l << ", " << len << ")";
      // The runs come out per canonical extent piece within the range.
      Model cut;
      for (uint64_t i = l; i < l + len; ++i) {
        if (model.count(i)) cut[i] = model[i];
      }
      Runs want;
      for (const Extent& e : Canonical(cut)) want.push_back({e.pblk, e.len});
      Runs got = m.Unmap(l, len);
      for (uint64_t i = l; i < l + len; ++i) model.erase(i);
      INFO("step " << step << ": " << what.str());
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        REQUIRE(got[i].start == want[i].start);
        REQUIRE(got[i].len == want[i].len);
      }
    } else {
      uint64_t l = rng() % kSpan, len = 1 + rng() % 24;
      uint32_t value = rng() % 2 ? NF : 0;
      what << "SetFlags(" << l << ", " << len << ", NF, " << value << ")";
      m.SetFlags(l, len, NF, value);
      for (uint64_t i = l; i < l + len; ++i) {
        if (model.count(i)) model[i].flags = value;
      }
    }

    INFO("step " << step << ": after " << what.str());
    // The canonical-merge invariant: exactly one representation.
    REQUIRE(Describe(All(m)) == Describe(Canonical(model)));
    uint64_t mapped = model.size();
    REQUIRE(m.mapped_blocks() == mapped);
    // The change log reproduces the map in a store that only sees it.
    for (auto& [key, e] : m.TakeChanges()) {
      if (e) {
        REQUIRE(e->lblk == key);
        store[key] = *e;
      } else {
        store.erase(key);
      }
    }
    Extents stored;
    for (const auto& [k, e] : store) stored.push_back(e);
    REQUIRE(Describe(stored) == Describe(All(m)));
    // Lookups agree with the model block by block.
    uint64_t probe = rng() % (kSpan + 4);
    auto seg = m.Find(probe, 1);
    REQUIRE(seg.mapped == (model.count(probe) == 1));
    if (seg.mapped) {
      REQUIRE(seg.pblk == model[probe].pblk);
      REQUIRE(seg.flags == model[probe].flags);
    }
    uint64_t ql = rng() % kSpan, qlen = 1 + rng() % 10;
    Holes want_holes;
    for (uint64_t i = ql; i < ql + qlen; ++i) {
      if (model.count(i)) continue;
      if (!want_holes.empty() && want_holes.back().first + want_holes.back().second == i) {
        ++want_holes.back().second;
      } else {
        want_holes.emplace_back(i, 1);
      }
    }
    REQUIRE(m.Holes(ql, qlen) == want_holes);
    bool all_nf = true;
    for (uint64_t i = ql; i < ql + qlen; ++i) {
      all_nf = all_nf && model.count(i) && model[i].flags == NF;
    }
    REQUIRE(m.AllHave(ql, qlen, NF) == all_nf);
  }
}

TEST_CASE("extent map: Shift moves the extents from a block on, splitting and merging",
          "[extent]") {
  ExtentMap m;
  m.Map(0, 4, 100, 0);
  m.Map(10, 6, 200, 0);
  m.TakeChanges();
  // Collapse blocks 4..9 (a hole): the second extent moves down onto the
  // first's end, but its device blocks do not continue the first's.
  m.Shift(10, 6, /*up=*/false);
  CHECK(All(m) == Extents{{0, 4, 100, 0}, {4, 6, 200, 0}});
  auto changes = Summarize(m.TakeChanges());
  CHECK(changes.deletes == std::set<uint64_t>{10});
  CHECK(changes.puts == Extents{{4, 6, 200, 0}});
  // Insert 3 blocks in the middle of an extent: it splits.
  m.Shift(6, 3, /*up=*/true);
  CHECK(All(m) == Extents{{0, 4, 100, 0}, {4, 2, 200, 0}, {9, 4, 202, 0}});
  // And back: the two halves continue each other on the device again.
  m.Shift(9, 3, /*up=*/false);
  CHECK(All(m) == Extents{{0, 4, 100, 0}, {4, 6, 200, 0}});
  // Contiguous on the device and in the file after the move: merged.
  ExtentMap n;
  n.Map(0, 2, 50, 0);
  n.Map(5, 2, 52, 0);
  n.Shift(5, 3, /*up=*/false);
  CHECK(All(n) == Extents{{0, 4, 50, 0}});
}


}  // namespace nosyncfs::test
