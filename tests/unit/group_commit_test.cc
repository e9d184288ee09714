// The Volume from many threads: commits interleave in one log order, share
// log persists (group commit), and keep the inode counter and count exact.
#include <catch2/catch.hpp>

#include <atomic>
#include <barrier>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/encoding.h"
#include "extent/device_wrapper.h"
#include "journal/schema.h"
#include "journal/volume.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr int kThreads = 8;
constexpr int kCommitsPerThread = 50;

// Persists that take a millisecond, as on slow media: while one thread
// persists, the others have time to commit behind it.
class SlowPersistDevice final : public DeviceWrapper {
 public:
  using DeviceWrapper::DeviceWrapper;

 protected:
  Status DoPersist(uint64_t off, size_t len) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return DeviceWrapper::DoPersist(off, len);
  }
};

std::string Key(int thread, int i) { return "t/" + std::to_string(thread) + "/" + std::to_string(i); }

}  // namespace

TEST_CASE("volume: durable commits from many threads share log persists", "[journal]") {
  VolumeFixture fx;
  {
    VolumeOptions options = fx.volume_options();
    options.wrap_device = [](std::unique_ptr<Device> d) -> std::unique_ptr<Device> {
      return std::make_unique<SlowPersistDevice>(std::move(d));
    };
    auto opened = Volume::Open(fx.image(), options);
    REQUIRE(opened.ok());
    auto vol = std::move(opened).value();
    std::barrier start(kThreads);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kCommitsPerThread; ++i) {
          Transaction txn;
          txn.batch.Put(Key(t, i), std::to_string(i));
          auto seq = vol->Commit(std::move(txn), /*durable=*/true);
          if (!seq.ok() || vol->durable_seq() < *seq) failures.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(failures.load() == 0);
    const uint64_t commits = kThreads * kCommitsPerThread;
    INFO("log persists for " << commits << " durable commits: " << vol->log_persists());
    // Every commit was durable on return, with far fewer persists than
    // commits: threads that committed while another persisted were covered
    // by the next persist, one for all of them. (Without group commit,
    // each commit persists on its own.)
    CHECK(vol->log_persists() <= commits / 2);
    CHECK(vol->durable_seq() == vol->committed_seq());
  }
  // Everything is there after a reopen, in one consistent order.
  auto vol = fx.Open();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kCommitsPerThread; ++i) {
      auto v = vol->store().Get(Key(t, i));
      REQUIRE(v.ok());
      REQUIRE(v->has_value());
      CHECK(**v == std::to_string(i));
    }
  }
}

NSF_CRASH_WORKLOAD(ConcurrentInodes, "volume.concurrent-inodes") {
  Volume& vol = child.OpenVolume();
  std::vector<std::thread> threads;
  std::atomic<uint64_t> highest{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        // Allocate two numbers, create one inode with the first; commits of
        // other threads land between allocation and commit.
        Transaction txn;
        uint64_t ino = vol.NextInodeNumber(&txn);
        uint64_t spare = vol.NextInodeNumber(&txn);
        InodeRecord r;
        r.ino = ino;
        r.mode = S_IFREG | 0644;
        r.nlink = 1;
        txn.PutInode(r);
        --txn.created_inodes;  // `spare` is only burnt, never created
        uint64_t h = highest.load();
        while (spare > h && !highest.compare_exchange_weak(h, spare)) {
        }
        child.Must(vol.Commit(std::move(txn), /*durable=*/(i % 7) == t % 7), "commit");
      }
    });
  }
  for (auto& th : threads) th.join();
  child.Check(vol.Sync(), "sync");
  child.Report("highest", highest.load());
}

TEST_CASE("volume crash: concurrent creates keep the inode counter and count exact",
          "[journal][crash]") {
  VolumeFixture fx;
  CrashResult r = fx.RunAndCrash("volume.concurrent-inodes");
  auto vol = fx.Open();
  // Every inode is in the store, and the counter is past every number
  // handed out, whichever commit came last.
  uint64_t count = 0, max_ino = 0;
  REQUIRE(vol->store()
              .Scan(keys::kInodePrefix, "",
                    [&](std::string_view k, std::string_view) {
                      ++count;
                      max_ino = std::max(max_ino, keys::InoOf(k));
                      return true;
                    })
              .ok());
  CHECK(count == 1 + kThreads * 50);
  CHECK(vol->inode_count() == count);
  Transaction t;
  CHECK(vol->NextInodeNumber(&t) > r.GetU64("highest"));
  CHECK(r.GetU64("highest") >= max_ino);
}

}  // namespace nosyncfs::test
