// A read-only Volume open (VolumeOptions::read_only) changes nothing: not
// one byte of the image or of the metadata store's directory, whether the
// open succeeds (a clean volume, the same state as a writable open) or
// fails with EROFS (a volume that needs recovery). Every mutating entry
// point answers EROFS.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "journal/checker.h"
#include "journal/in_place_work.h"
#include "journal/schema.h"
#include "tests/harness/posix_util.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

// The image and the metadata store's files, hashed.
std::map<std::string, size_t> Snapshot(const VolumeFixture& fx) { return SnapshotFiles({fx.dir()}); }

VolumeOptions ReadOnly(const VolumeFixture& fx) {
  VolumeOptions o = fx.volume_options();
  o.read_only = true;
  o.evict_seed = 0;  // evictions write; a read-only device has none
  return o;
}

// Writes records straight into the store of a volume nobody has open.
void PutOffline(const VolumeFixture& fx, const MetaBatch& batch) {
  auto store = MetaStore::Open(fx.meta_dir(), /*create=*/false);
  REQUIRE(store.ok());
  REQUIRE((*store)->Apply(batch).ok());
  REQUIRE((*store)->Flush().ok());
}

}  // namespace

TEST_CASE("read-only volume: a clean volume opens, reads the same state and changes nothing",
          "[journal][readonly]") {
  VolumeFixture fx;
  uint64_t free_blocks = 0, inodes = 0, durable = 0;
  {
    auto v = fx.Open();
    PopulateOneFile(*v);
    free_blocks = v->free_blocks();
    inodes = v->inode_count();
  }
  {
    auto v = fx.Open();  // what a writable open sees after the close
    durable = v->durable_seq();
  }
  const auto before = Snapshot(fx);
  bool strict = GENERATE(true, false);
  INFO("strict emulation " << strict);
  VolumeOptions options = ReadOnly(fx);
  options.strict_emulation = strict;
  {
    auto opened = Volume::Open(fx.image(), options);
    REQUIRE(opened.ok());
    Volume& v = **opened;
    CHECK(v.read_only());
    CHECK(v.device().read_only());
    CHECK(v.free_blocks() == free_blocks);
    CHECK(v.inode_count() == inodes);
    CHECK(v.durable_seq() == durable);
    auto f = v.store().Get(keys::Dirent(kRootIno, "f"));
    REQUIRE(f.ok());
    REQUIRE(f->has_value());
    auto extent = v.store().Get(keys::Extent(2, 0));
    REQUIRE(extent.ok());
    CHECK(extent->has_value());
    auto report = CheckVolume(v);
    REQUIRE(report.ok());
    CHECK(report->clean());
    CHECK(report->inodes == 2);
    CHECK(report->extents == 1);
    // Nothing to make durable: a sync (an fsync on a read-only mount) is a
    // no-op that succeeds.
    CHECK(v.Sync().ok());

    // Every way to change the volume answers EROFS.
    Transaction txn;
    txn.batch.Put("t/x", "y");
    auto commit = v.Commit(std::move(txn), true);
    CHECK(commit.status().code() == EROFS);
    InPlaceWork work;
    work.zero.push_back({v.superblock().data_offset, 4096});
    CHECK(v.CommitInPlace(Transaction(), work).status().code() == EROFS);
    CHECK(v.Allocate(1, 0).status().code() == EROFS);
    CHECK(v.Checkpoint().code() == EROFS);
    CHECK(v.SetCounters(100, 2).code() == EROFS);
    CHECK(v.Reload().code() == EROFS);
    CHECK(v.device().Persist(0, 4096).code() == EROFS);
    CHECK(v.store().Apply(MetaBatch()).code() == EROFS);
    CHECK(v.store().Flush().code() == EROFS);

    // Readers share the device; a writer is kept out.
    auto second = Volume::Open(fx.image(), options);
    CHECK(second.ok());
    auto writer = fx.TryOpen();
    CHECK(writer.status().code() == EBUSY);
  }
  CHECK(Snapshot(fx) == before);
  // And the volume is as good as before for a writable open.
  auto v = fx.Open();
  CHECK(v->inode_count() == inodes);
}

TEST_CASE("read-only volume: an open while a writer has the device fails with EBUSY",
          "[journal][readonly]") {
  VolumeFixture fx;
  auto writer = fx.Open();
  auto reader = Volume::Open(fx.image(), ReadOnly(fx));
  CHECK(reader.status().code() == EBUSY);
}

TEST_CASE("read-only volume: a volume that needs recovery is refused with EROFS, unchanged",
          "[journal][readonly]") {
  VolumeFixture fx;
  std::string pending;
  SECTION("log records to replay") {
    fx.RunAndCrash("journal.put-synced", {{"n", "3"}, {"tag", "ro"}});
    pending = "(log replay of 3 transactions)";
  }
  SECTION("an interrupted in-place operation") {
    InPlaceWork work;
    {
      auto v = fx.Open();
      work.zero.push_back({v->superblock().data_offset, 4096});
    }
    MetaBatch b;
    b.Put(keys::Intent(1), work.Encode());
    PutOffline(fx, b);
    pending = "(1 interrupted in-place operation to finish)";
  }
  SECTION("orphan inodes to free") {
    {
      auto v = fx.Open();
      PopulateOneFile(*v);
    }
    MetaBatch b;
    b.Put(keys::Orphan(2), "");
    b.Put(keys::Orphan(77), "");
    PutOffline(fx, b);
    pending = "(2 orphan inodes to free)";
    // fsck -n checks such a volume: orphans are valid state.
    VolumeOptions tolerant = ReadOnly(fx);
    tolerant.tolerate_orphans = true;
    const auto before = Snapshot(fx);
    {
      auto v = Volume::Open(fx.image(), tolerant);
      CHECK(v.ok());
    }
    CHECK(Snapshot(fx) == before);
  }
  const auto before = Snapshot(fx);
  auto refused = Volume::Open(fx.image(), ReadOnly(fx));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == EROFS);
  const std::string message = refused.status().message();
  INFO(message);
  CHECK(message.find(fx.image() + " needs recovery " + pending) == 0);
  CHECK(message.find("which a read-only open cannot do; mount it read-write once, or run "
                     "fsck.nosyncfs -p " + fx.image()) != std::string::npos);
  CHECK(message.find('\n') == std::string::npos);
  CHECK(Snapshot(fx) == before);
  // A writable open still recovers it, after which a read-only one works
  // (orphans are the file system's to free, so they stay pending).
  if (pending.find("orphan") == std::string::npos) {
    { auto v = fx.Open(); }
    CHECK(Volume::Open(fx.image(), ReadOnly(fx)).ok());
  }
}

}  // namespace nosyncfs::test
