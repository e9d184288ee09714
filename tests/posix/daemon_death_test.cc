// Whatever kills the daemon, it exits (docs/semantics.md, "The daemon"): a
// kill -9 loop with direct-access clients attaching, writing and detaching
// as fast as they can (each attach passes the daemon a descriptor of a file
// on its own mount) and FUSE clients reading, writing and syncing beside
// them. Each round the daemon must be gone within a few seconds, the dead
// mount must answer ENOTCONN, and the next mount must recover.
//
// NSF_DEATH_ROUNDS sets the number of rounds (default 100); NSF_DEATH_SEED
// replays a run (the seed is printed when a round fails).
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/client_process.h"
#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

using std::chrono::milliseconds;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : fallback;
}

}  // namespace

TEST_CASE("kill -9 in a loop: the daemon always exits, under direct-access and FUSE clients",
          "[death][direct]") {
  const uint64_t rounds = EnvOr("NSF_DEATH_ROUNDS", 100);
  const uint64_t seed = EnvOr("NSF_DEATH_SEED", std::random_device{}());
  std::mt19937_64 rng(seed);
  INFO("NSF_DEATH_SEED=" << seed);

  TestVolume v;
  const std::string options = "emulate=strict,direct=root";
  v.Mount(options);
  const std::vector<std::string> files = {"nf0", "nf1", "plain"};
  for (const std::string& f : files) {
    WriteFile(v.Path(f), Pattern(1, 256 << 10));
    if (f != "plain") REQUIRE(setxattr(v.Path(f).c_str(), "user.nosync", "all", 3, 0) == 0);
  }
  // Durable before the first power loss (a create is not, until an fsync).
  SyncWholeFs(v.mountpoint());

  milliseconds slowest{0}, total{0};
  for (uint64_t round = 0; round < rounds; ++round) {
    INFO("round " << round);
    if (!v.mounted()) v.Mount(options);
    std::vector<std::unique_ptr<ClientProcess>> clients;
    // Three attach/detach loops (two on one file), two FUSE loops beside.
    for (const char* f : {"nf0", "nf0", "nf1"}) {
      clients.push_back(std::make_unique<ClientProcess>(
          std::vector<std::string>{"cycle", v.Path(f), std::to_string(rng())}));
    }
    for (const char* f : {"nf0", "plain"}) {
      clients.push_back(std::make_unique<ClientProcess>(
          std::vector<std::string>{"fuse", v.Path(f), std::to_string(rng())}));
    }
    for (auto& c : clients) REQUIRE(c->Line() == "started");
    std::this_thread::sleep_for(milliseconds(rng() % 150));

    const milliseconds took = v.SigkillDaemon(std::chrono::seconds(5));
    slowest = std::max(slowest, took);
    total += took;
    // statfs always asks the daemon (a stat may be answered from the
    // kernel's cache): the dead mount answers ENOTCONN. Over io_uring the
    // kernel ends the connection only once it has cancelled the dead
    // daemon's rings, a moment after the process is gone: a request made
    // in that moment was in flight, and fails as those do, ECONNABORTED
    // (or ECANCELED, if it was on its way to a ring of the dead process).
    struct statvfs sv;
    const Errno first = ErrnoOf(::statvfs(v.mountpoint().c_str(), &sv));
    if (v.transport() == Transport::kUring && (first == ECONNABORTED || first == ECANCELED)) {
      CHECK(WaitUntil([&] { return ErrnoOf(::statvfs(v.mountpoint().c_str(), &sv)) == ENOTCONN; },
                      std::chrono::seconds(5)));
    } else {
      CHECK(first == ENOTCONN);
    }
    clients.clear();  // killed and reaped
    v.ClearDeadMount();
  }
  WARN(rounds << " rounds; the daemon exited " << (rounds ? total.count() / rounds : 0)
              << " ms after SIGKILL on average, " << slowest.count() << " ms at most");

  v.Mount(options);
  for (const std::string& f : files) CHECK(MustStat(v.Path(f)).st_size == (256 << 10));
  v.Unmount();
  ExpectFsckClean(v);
}

}  // namespace nosyncfs::test
