// The FUSE transport (fs/transport/): which one a mount gets, what the
// statistics say of it, and the requests that behave differently on a ring
// if anything does: one that waits in the daemon, one whose caller is
// killed, and an unmount while one is in flight. Every other real-mount test
// runs on both transports (tests/CMakeLists.txt), these too.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "tests/harness/client_process.h"
#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"
#include "tests/harness/transport_mode.h"

namespace nosyncfs::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// No Catch assertion here: it may run on a thread of the test's own.
bool PinToCpu0() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(0, &cpus);
  return pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus) == 0;
}

// A file whose truncation waits lease_break for a holder that never
// answers: a request that stays in the daemon for a second.
struct SlowTruncate {
  explicit SlowTruncate(TestVolume& v) : path(v.Path("held")) {
    WriteFile(path, Pattern(1, 256 << 10));
    REQUIRE(setxattr(path.c_str(), "user.nosync", "all", 3, 0) == 0);
    holder = std::make_unique<ClientProcess>(std::vector<std::string>{"hold", path});
    REQUIRE(holder->Line() == "leased");
    holder->Stop();  // it cannot acknowledge the revocation
  }
  std::string path;
  std::unique_ptr<ClientProcess> holder;
};

constexpr char kSlowOptions[] = "emulate=strict,direct=root,lease_break=1";

}  // namespace

TEST_CASE("transport: the mount serves over the transport the kernel offers, and says which",
          "[posix][transport]") {
  TestVolume v;
  SECTION("enable_uring off: /dev/fuse, and the log says why") {
    v.set_transport(Transport::kDevFuse);
    v.Mount();
    auto stats = MountStatsText(v.mountpoint());
    CHECK(stats["transport"] == "dev_fuse");
    CHECK(stats["uring_queues"] == "0");
    CHECK(stats["uring_threads"] == "0");
    if (KernelHasUring()) CHECK(Contains(v.DaemonLog(), "enable_uring on"));
  }
  SECTION("enable_uring on: one ring queue per possible CPU, and requests counted as ever") {
    if (!KernelHasUring()) {
      WARN("this kernel has no FUSE over io_uring: section skipped");
      return;
    }
    v.set_transport(Transport::kUring);
    v.Mount();
    auto stats = MountStats(v.mountpoint());
    CHECK(MountStatsText(v.mountpoint())["transport"] == "uring");
    // The kernel's queues: one per possible CPU (the configured ones, as
    // glibc counts them, on any ordinary machine).
    CHECK(stats["uring_queues"] == static_cast<uint64_t>(get_nprocs_conf()));
    CHECK(stats["uring_threads"] >= stats["uring_queues"]);
    // Requests from the rings go through the same inspection (counted
    // here; setid_test.cc has the kill-set-ID flags, on both transports).
    const uint64_t writes = stats["requests_write"];
    WriteFile(v.Path("f"), Pattern(2, 64 << 10));
    {
      Fd fd = MustOpen(v.Path("f"), O_WRONLY);
      MustPwrite(fd.get(), "x", 0);
    }
    CHECK(MountStats(v.mountpoint())["requests_write"] > writes);
    CHECK(ReadFile(v.Path("f")) == "x" + Pattern(2, 64 << 10).substr(1));
  }
  SECTION("uring=off: /dev/fuse even where the kernel offers rings") {
    if (!KernelHasUring()) {
      WARN("this kernel has no FUSE over io_uring: section skipped");
      return;
    }
    v.set_transport(Transport::kUring);
    v.Mount("emulate=strict,uring=off");
    CHECK(MountStatsText(v.mountpoint())["transport"] == "dev_fuse");
    CHECK(Contains(v.DaemonLog(), "transport: /dev/fuse (uring=off)"));
  }
  v.Unmount();
}

TEST_CASE("transport: uring= takes auto or off, and a remount cannot change it",
          "[posix][transport]") {
  TestVolume v;
  auto r = TestVolume::RunDaemon({v.image(), v.mountpoint(), "-f", "-o", "uring=on"},
                                 seconds(20));
  CHECK(r.exit_status == 1);
  CHECK(Contains(r.err, "uring must be auto or off, not 'on'"));
  CHECK(!IsMounted(v.mountpoint()));

  v.Mount();  // uring=auto, the default
  CommandResult changed = v.RunRemount("uring=off");
  CHECK(changed.exit_status != 0);
  CHECK(Contains(changed.err, "uring= cannot change on a remount"));
  CHECK(v.RunRemount("uring=auto").exit_status == 0);  // no change
  WriteFile(v.Path("still"), "works");
  v.Unmount();
}

TEST_CASE("transport: a request that waits in the daemon holds up no other request of its CPU",
          "[posix][transport][direct]") {
  TestVolume v;
  v.Mount(kSlowOptions);
  SlowTruncate slow(v);
  WriteFile(v.Path("other"), Pattern(3, 4096));
  // Both on CPU 0: over io_uring, the kernel hands both requests to queue 0.
  // Catch's assertions are for the test's thread: the truncator only
  // records what happened.
  std::atomic<bool> truncated{false};
  std::atomic<bool> truncator_pinned{false};
  std::atomic<int> truncate_result{-2};
  std::thread truncator([&] {
    truncator_pinned = PinToCpu0();
    truncate_result = truncate(slow.path.c_str(), 4096);
    truncated = true;
  });
  REQUIRE(PinToCpu0());
  std::this_thread::sleep_for(milliseconds(100));  // the truncate is waiting now
  const auto t0 = Clock::now();
  for (int i = 0; i < 20; ++i) {
    CHECK(ReadFile(v.Path("other")) == Pattern(3, 4096));
    WriteFile(v.Path("new" + std::to_string(i)), "n");
    struct statvfs sv = MustStatvfs(v.mountpoint());  // always a request
    CHECK(sv.f_bsize > 0);
  }
  const auto took = Clock::now() - t0;
  const bool still_waiting = !truncated.load();
  truncator.join();
  CHECK(truncator_pinned);
  CHECK(truncate_result == 0);
  // 60 requests and more, while the truncate waited for the lease break.
  CHECK(still_waiting);
  CHECK(took < milliseconds(900));
  CHECK(MustStat(slow.path).st_size == 4096);
  slow.holder->Kill(SIGKILL);
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("transport: a caller killed in the middle of a request, and an unmount with one in flight",
          "[posix][transport][direct]") {
  TestVolume v;
  v.Mount(kSlowOptions);
  SlowTruncate slow(v);

  SECTION("a caller killed in the middle: the daemon finishes the request, then it dies") {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) _exit(truncate(slow.path.c_str(), 8192) == 0 ? 0 : 1);
    std::this_thread::sleep_for(milliseconds(200));  // in the daemon now
    // A request the daemon has taken is waited out, killed or not (as
    // FUSE does over /dev/fuse too): the caller dies with its answer.
    REQUIRE(kill(child, SIGKILL) == 0);
    std::optional<int> status = WaitChild(child, seconds(10));
    REQUIRE(status.has_value());
    CHECK(WIFSIGNALED(*status));
    CHECK(WaitUntil([&] { return MustStat(slow.path).st_size == 8192; }, seconds(10)));
    // The connection is fine, the rings too.
    WriteFile(v.Path("after"), "ok");
    CHECK(ReadFile(v.Path("after")) == "ok");
    slow.holder->Kill(SIGKILL);
    v.Unmount();
  }
  SECTION("SIGINT to a caller with a handler: the call completes") {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      struct sigaction sa {};
      sa.sa_handler = [](int) {};
      sigaction(SIGINT, &sa, nullptr);
      int rc = truncate(slow.path.c_str(), 12288);
      _exit(rc == 0 ? 0 : (errno == EINTR ? 2 : 1));
    }
    std::this_thread::sleep_for(milliseconds(200));
    REQUIRE(kill(child, SIGINT) == 0);  // the kernel sends INTERRUPT on /dev/fuse
    std::optional<int> status = WaitChild(child, seconds(10));
    REQUIRE(status.has_value());
    REQUIRE(WIFEXITED(*status));
    // The daemon does not abort requests: the truncate is done.
    CHECK(WEXITSTATUS(*status) == 0);
    CHECK(MustStat(slow.path).st_size == 12288);
    slow.holder->Kill(SIGKILL);
    v.Unmount();
  }
  SECTION("a lazy unmount with a request in flight: it completes, then the daemon exits cleanly") {
    std::atomic<int> result{-2};
    std::thread truncator([&] { result = truncate(slow.path.c_str(), 4096); });
    std::this_thread::sleep_for(milliseconds(200));
    CommandResult lazy = RunCommand({"fusermount3", "-uz", v.mountpoint()}, seconds(20));
    INFO(lazy.Describe());
    CHECK(lazy.exit_status == 0);
    truncator.join();
    CHECK(result == 0);
    slow.holder->Kill(SIGKILL);
    v.Unmount();  // waits for the daemon, which must exit 0
  }
  ExpectFsckClean(v);
}

}  // namespace nosyncfs::test
