// The offline checker finds what it claims to find: each case breaks one
// invariant directly in the metadata store and expects one problem.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "journal/checker.h"
#include "journal/schema.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

// The extent of "f" from Populate.
Extent FirstExtent(Volume& v) {
  auto value = v.store().Get(keys::Extent(2, 0));
  REQUIRE(value.ok());
  REQUIRE(value->has_value());
  auto extent = DecodeExtent(keys::Extent(2, 0), **value);
  REQUIRE(extent.ok());
  return *extent;
}

std::vector<std::string> Problems(Volume& v) {
  auto report = CheckVolume(v);
  REQUIRE(report.ok());
  return report->problems;
}

}  // namespace

TEST_CASE("checker: a fresh and a populated volume are clean", "[journal][fsck]") {
  VolumeFixture fx;
  auto v = fx.Open();
  CHECK(Problems(*v).empty());
  PopulateOneFile(*v);
  auto report = CheckVolume(*v);
  REQUIRE(report.ok());
  CHECK(report->problems.empty());
  CHECK(report->inodes == 2);
  CHECK(report->extents == 1);
  CHECK(report->mapped_blocks == 4);
}

TEST_CASE("checker: each broken invariant is reported", "[journal][fsck]") {
  VolumeFixture fx;
  auto v = fx.Open();
  PopulateOneFile(*v);
  MetaBatch bad;
  std::string expect;
  SECTION("wrong link count") {
    InodeRecord f;
    f.ino = 2;
    f.mode = S_IFREG | 0644;
    f.nlink = 2;
    bad.Put(keys::Inode(2), f.Encode());
    expect = "link count 2";
  }
  SECTION("dangling entry") {
    DirentRecord d{99, S_IFREG, kFirstDirCookie + 5, "ghost"};
    bad.Put(keys::Dirent(kRootIno, "ghost"), d.Encode(false));
    bad.Put(keys::Cookie(kRootIno, d.cookie), d.Encode(true));
    expect = "points to missing inode 99";
  }
  SECTION("entry without its readdir twin") {
    bad.Delete(keys::Cookie(kRootIno, kFirstDirCookie));
    expect = "missing from the readdir order";
  }
  SECTION("unreachable inode") {
    bad.Delete(keys::Dirent(kRootIno, "f"));
    bad.Delete(keys::Cookie(kRootIno, kFirstDirCookie));
    expect = "unreachable";
  }
  SECTION("leaked extent") {
    bad.Put(keys::Extent(77, 0), EncodeExtentValue({0, 1, 500, 0}));
    expect = "leaked blocks";
  }
  SECTION("block mapped twice without a reference count") {
    const Extent extent = FirstExtent(*v);
    bad.Put(keys::Extent(2, 10), EncodeExtentValue({10, 1, extent.pblk + 1, 0}));
    expect = "mapped 2 times without a reference count";
  }
  SECTION("wrong reference count") {
    const Extent extent = FirstExtent(*v);
    bad.Put(keys::Refcount(extent.pblk), EncodeRefcountValue({{extent.pblk, 2}, 3}));
    expect = "reference count 3, but mapped 1 times";
  }
  SECTION("reference count of blocks nothing maps") {
    bad.Put(keys::Refcount(900), EncodeRefcountValue({{900, 2}, 2}));
    expect = "no file maps them (leaked)";
  }
  SECTION("inode count that does not add up") {
    auto a = v->store().Get(keys::kApplied);
    REQUIRE(a.ok());
    auto applied = AppliedRecord::Decode(**a);
    REQUIRE(applied.ok());
    applied->inode_count = 3;
    bad.Put(keys::kApplied, applied->Encode());
    expect = "inode count 3, found 2";
  }
  REQUIRE(v->store().Apply(bad).ok());
  auto problems = Problems(*v);
  INFO("expected a problem containing: " << expect);
  bool found = false;
  for (const auto& p : problems) {
    INFO(p);
    found = found || p.find(expect) != std::string::npos;
  }
  CHECK(found);
}

TEST_CASE("checker: a block mapped twice fails a mount but fsck opens and names it",
          "[journal][fsck]") {
  VolumeFixture fx;
  {
    auto v = fx.Open();
    PopulateOneFile(*v);
    const Extent extent = FirstExtent(*v);
    Transaction txn;
    txn.batch.Put(keys::Extent(2, 20), EncodeExtentValue({20, 2, extent.pblk, 0}));
    REQUIRE(v->Commit(std::move(txn), true).ok());
  }
  auto refused = fx.TryOpen();
  REQUIRE(!refused.ok());
  CHECK(refused.status().code() == EUCLEAN);
  VolumeOptions tolerant = fx.volume_options();
  tolerant.tolerate_double_mapping = true;
  auto v = Volume::Open(fx.image(), tolerant);
  REQUIRE(v.ok());
  auto problems = Problems(**v);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("mapped 2 times without a reference count") != std::string::npos);
}

}  // namespace nosyncfs::test
