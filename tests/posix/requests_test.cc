// What a write costs in FUSE requests: exactly one, flagged or not. (The
// kernel asks for security.capability before a write unless the daemon has
// claimed FUSE_HANDLE_KILLPRIV_V2; see fs/transport/fuse_channel.h.) And a close:
// none (FOPEN_NOFLUSH).
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr int kWrites = 200;
constexpr size_t k4K = 4096;

// Requests the daemon received for `writes` 4 KiB pwrites at `offset(i)`,
// after one warm-up write (which may ask for security.capability once,
// since creating the file refreshed its attributes).
std::map<std::string, uint64_t> RequestsForWrites(const TestVolume& vol, int fd,
                                                  const std::function<uint64_t(int)>& offset) {
  const std::string block = Pattern(5, k4K);
  MustPwrite(fd, block, offset(0));
  auto before = MountStats(vol.mountpoint());
  for (int i = 1; i <= kWrites; ++i) {
    REQUIRE(::pwrite(fd, block.data(), block.size(), static_cast<off_t>(offset(i))) ==
            static_cast<ssize_t>(k4K));
  }
  auto after = MountStats(vol.mountpoint());
  std::map<std::string, uint64_t> delta;
  for (const auto& [name, value] : after) delta[name] = value - before[name];
  // The second MountStats is one GETXATTR, counted in its own answer.
  --delta["requests_getxattr"];
  return delta;
}

}  // namespace

TEST_CASE("a 4 KiB write costs exactly one FUSE request", "[posix][requests]") {
  TestVolume vol;
  vol.Mount();
  SECTION("overwriting an unflagged file") {
    Fd fd = MustOpen(vol.Path("plain"), O_CREAT | O_RDWR);
    REQUIRE(::ftruncate(fd.get(), (kWrites + 1) * k4K) == 0);
    auto delta = RequestsForWrites(vol, fd.get(), [](int i) { return i * k4K; });
    CHECK(delta["requests_write"] == kWrites);
    CHECK(RequestCount(delta) == kWrites);
  }
  SECTION("appending to an unflagged file") {
    Fd fd = MustOpen(vol.Path("log"), O_CREAT | O_RDWR);
    auto delta = RequestsForWrites(vol, fd.get(), [](int i) { return i * k4K; });
    CHECK(delta["requests_write"] == kWrites);
    CHECK(RequestCount(delta) == kWrites);
  }
  SECTION("into a no-fsync range, durable on return") {
    Fd fd = MustOpen(vol.Path("nf"), O_CREAT | O_RDWR);
    REQUIRE(::fsetxattr(fd.get(), "user.nosync", "0-1M", 4, 0) == 0);
    auto delta = RequestsForWrites(vol, fd.get(), [](int i) { return (i % 200) * k4K; });
    CHECK(delta["requests_write"] == kWrites);
    CHECK(RequestCount(delta) == kWrites);
  }
}

TEST_CASE("close(2) costs no request: every open is FOPEN_NOFLUSH", "[posix][requests]") {
  TestVolume vol;
  vol.Mount();
  WriteFile(vol.Path("f"), "data");
  auto before = MountStats(vol.mountpoint());
  constexpr int kOpens = 50;
  for (int i = 0; i < kOpens; ++i) {
    Fd fd = MustOpen(vol.Path("f"), i % 2 == 0 ? O_RDONLY : O_WRONLY);
    Fd twin(::dup(fd.get()));  // a close that is not the last one, too
  }
  auto after = MountStats(vol.mountpoint());
  // No FLUSH for any of the 100 closes; RELEASE (sent without waiting)
  // once per open file.
  CHECK(after["requests_flush"] == before["requests_flush"]);
  CHECK(after["requests_open"] - before["requests_open"] == kOpens);
  CHECK(WaitUntil([&] {
    auto now = MountStats(vol.mountpoint());
    return now["requests_release"] - before["requests_release"] == kOpens;
  }));
}

TEST_CASE("large I/O travels in 1 MiB requests, reads with 1 MiB readahead", "[posix][requests]") {
  TestVolume vol;
  vol.Mount();
  constexpr size_t k1M = 1 << 20;
  constexpr int kMiBs = 16;
  const std::string data = Pattern(9, kMiBs * k1M);
  {
    Fd fd = MustOpen(vol.Path("big"), O_CREAT | O_WRONLY);
    auto before = MountStats(vol.mountpoint());
    for (int i = 0; i < kMiBs; ++i) MustPwrite(fd.get(), data.substr(i * k1M, k1M), i * k1M);
    auto after = MountStats(vol.mountpoint());
    CHECK(after["requests_write"] - before["requests_write"] == kMiBs);
  }
  // Opening again drops the file's page cache; reading it in 4 KiB
  // read(2)s then reaches the daemon as readahead, 1 MiB at a time.
  Fd fd = MustOpen(vol.Path("big"), O_RDONLY);
  auto before = MountStats(vol.mountpoint());
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  auto after = MountStats(vol.mountpoint());
  CHECK(FirstMismatch(got, data) == "");
  uint64_t reads = after["requests_read"] - before["requests_read"];
  INFO("READ requests for " << kMiBs << " MiB read in 4 KiB steps: " << reads);
  // 128 KiB readahead would take 128 requests; a few more than 16 allows
  // for the first, smaller, readahead window.
  CHECK(reads <= kMiBs + 8);
}

}  // namespace nosyncfs::test
