// fsck's repairs are crash-safe: a crash at any crash point inside
// RepairVolume leaves a volume that recovers, whose check finds nothing
// but (some of) the damage it started with, and that a second repair
// makes clean.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <string>

#include "journal/checker.h"
#include "journal/repair.h"
#include "journal/schema.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

VolumeOptions Tolerant(VolumeOptions o) {
  o.tolerate_double_mapping = true;
  o.tolerate_bad_records = true;
  return o;
}

// Files f (ino 2, 4 blocks) and g (ino 3, 2 blocks) in the root, then
// several kinds of damage at once: g unreachable, an entry naming a
// missing inode, f's link count wrong, a leaked extent, an orphan record
// of a missing inode, a wrong inode count.
void Damage(const VolumeFixture& fx) {
  auto v = fx.Open();
  auto root_value = v->store().Get(keys::Inode(kRootIno));
  REQUIRE(root_value.ok());
  auto root = InodeRecord::Decode(kRootIno, **root_value);
  REQUIRE(root.ok());
  Transaction txn;
  for (const char* name : {"f", "g"}) {
    InodeRecord r;
    r.ino = v->NextInodeNumber(&txn);
    r.mode = S_IFREG | 0644;
    r.nlink = 1;
    const uint64_t blocks = r.ino == 2 ? 4 : 2;
    r.size = blocks * 4096;
    txn.PutInode(r);
    DirentRecord d{r.ino, S_IFREG, root->next_cookie++, name};
    txn.batch.Put(keys::Dirent(kRootIno, name), d.Encode(false));
    txn.batch.Put(keys::Cookie(kRootIno, d.cookie), d.Encode(true));
    auto runs = v->Allocate(blocks, 0);
    REQUIRE(runs.ok());
    txn.batch.Put(keys::Extent(r.ino, 0), EncodeExtentValue({0, blocks, (*runs)[0].start, 0}));
  }
  DirentRecord ghost{999, S_IFREG, root->next_cookie++, "ghost"};
  txn.batch.Put(keys::Dirent(kRootIno, "ghost"), ghost.Encode(false));
  txn.batch.Put(keys::Cookie(kRootIno, ghost.cookie), ghost.Encode(true));
  txn.PutInode(*root);
  REQUIRE(v->Commit(std::move(txn), true).ok());

  Transaction bad;
  auto g = v->store().Get(keys::Dirent(kRootIno, "g"));
  REQUIRE(g.ok());
  auto gd = DirentRecord::Decode(**g);
  REQUIRE(gd.ok());
  bad.batch.Delete(keys::Dirent(kRootIno, "g"));
  bad.batch.Delete(keys::Cookie(kRootIno, gd->cookie));
  InodeRecord f;
  f.ino = 2;
  f.mode = S_IFREG | 0644;
  f.nlink = 3;
  f.size = 4 * 4096;
  bad.PutInode(f);
  bad.batch.Put(keys::Extent(77, 0), EncodeExtentValue({0, 3, v->total_blocks() - 10, 0}));
  bad.batch.Put(keys::Orphan(4242), "");
  bad.created_inodes = 2;  // the kept count is off by two
  REQUIRE(v->Commit(std::move(bad), true).ok());
}

std::set<ProblemKind> Kinds(const CheckReport& r) {
  std::set<ProblemKind> kinds;
  for (const Problem& p : r.findings) kinds.insert(p.kind);
  return kinds;
}

}  // namespace

NSF_CRASH_WORKLOAD(Repair, "fsck.repair") {
  static std::unique_ptr<Volume> keep;  // never destroyed: no checkpoint
  keep = child.Must(Volume::Open(child.image(), Tolerant(child.volume_options())), "open");
  CheckReport report = child.Must(CheckVolume(*keep), "check");
  child.Expect(!report.clean(), "the damage is seen");
  child.StartCrashPoints();
  child.Must(RepairVolume(*keep, report, RepairMode::kAll), "repair");
  child.Report("repaired", 1);
}

TEST_CASE("repair crash: a crash anywhere in fsck's repairs leaves a repairable volume",
          "[journal][fsck][crash]") {
  std::set<ProblemKind> damage;
  uint64_t points = 0;
  {
    VolumeFixture fx;
    Damage(fx);
    {
      auto v = Volume::Open(fx.image(), Tolerant(fx.volume_options()));
      REQUIRE(v.ok());
      auto report = CheckVolume(**v);
      REQUIRE(report.ok());
      damage = Kinds(*report);
    }
    CHECK(damage.count(ProblemKind::kUnreachable) == 1);
    CHECK(damage.count(ProblemKind::kDanglingEntry) == 1);
    CHECK(damage.count(ProblemKind::kWrongLinkCount) == 1);
    CHECK(damage.count(ProblemKind::kExtentOfMissingInode) == 1);
    CHECK(damage.count(ProblemKind::kDanglingOrphan) == 1);
    CHECK(damage.count(ProblemKind::kWrongInodeCount) == 1);
    const std::string trace = fx.dir() + "/trace";
    CrashResult r = fx.RunAndCrash("fsck.repair", {}, {{"NSF_CRASH_TRACE", trace}});
    REQUIRE(r.Has("repaired"));
    std::ifstream in(trace);
    for (std::string line; std::getline(in, line);) ++points;
    auto v = Volume::Open(fx.image(), Tolerant(fx.volume_options()));
    REQUIRE(v.ok());
    auto report = CheckVolume(**v);
    REQUIRE(report.ok());
    for (const auto& p : report->problems) FAIL_CHECK(p);
  }
  REQUIRE(points >= 10);
  for (uint64_t k = 1; k <= points; ++k) {
    VolumeFixture fx;
    Damage(fx);
    CrashResult r = fx.RunInChild("fsck.repair", {}, {{"NSF_CRASH_AFTER", std::to_string(k)}});
    INFO("crash at point " << k << " of " << points << ": " << r.Describe());
    REQUIRE(r.killed());
    auto v = Volume::Open(fx.image(), Tolerant(fx.volume_options()));
    REQUIRE(v.ok());
    auto report = CheckVolume(**v);
    REQUIRE(report.ok());
    // Only what was damaged before: a half-done repair adds nothing new
    // (a block accounting line is the leaked extent's, seen another way).
    for (const Problem& p : report->findings) {
      INFO(p.message);
      CHECK((damage.count(p.kind) == 1 || p.kind == ProblemKind::kBlockAccounting));
    }
    // And the same repair finishes the job.
    auto lines = RepairVolume(**v, *report, RepairMode::kAll);
    REQUIRE(lines.ok());
    v->reset();
    auto again = Volume::Open(fx.image(), Tolerant(fx.volume_options()));
    REQUIRE(again.ok());
    auto clean = CheckVolume(**again);
    REQUIRE(clean.ok());
    for (const auto& p : clean->problems) FAIL_CHECK(p);
  }
}

}  // namespace nosyncfs::test
