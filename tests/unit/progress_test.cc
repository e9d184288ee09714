// Progress: silent for short work, percent lines off a terminal, fsck -C lines.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "base/progress.h"

namespace nosyncfs {
namespace {

// Runs `work` with a Progress writing into a pipe; returns what it wrote.
template <typename Work>
std::string Captured(Progress::Style style, Work work) {
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
  {
    Progress progress(style, fds[1], "work");
    work(progress);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  return out;
}

void Run(Progress& p, uint64_t total, bool slow) {
  p.Begin(total);
  for (uint64_t i = 0; i <= total; ++i) {
    if (slow && i == total / 2) std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    p.Update(i);
  }
  p.Finish();
}

TEST_CASE("progress: work that ends within a second shows nothing", "[base]") {
  CHECK(Captured(Progress::Style::kHuman, [](Progress& p) { Run(p, 1000, false); }).empty());
  CHECK(Captured(Progress::Style::kFsckFd, [](Progress& p) { Run(p, 1000, false); }).empty());
}

TEST_CASE("progress: slow work off a terminal prints percent lines by tenths", "[base]") {
  std::string out = Captured(Progress::Style::kHuman, [](Progress& p) { Run(p, 1000, true); });
  // Silent for the first half (under a second), then 50% .. 100%.
  CHECK(out == "work: 50%\nwork: 60%\nwork: 70%\nwork: 80%\nwork: 90%\nwork: 100%\n");
}

TEST_CASE("progress: fsck -C lines are PASS DONE TOTAL DEVICE", "[base]") {
  std::string out = Captured(Progress::Style::kFsckFd, [](Progress& p) {
    p.Begin(200, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    p.Update(100);
    p.Update(101);  // same percent: no new line
    p.Finish();
  });
  CHECK(out == "2 100 200 work\n2 200 200 work\n");
}

TEST_CASE("progress: style none prints nothing however slow", "[base]") {
  CHECK(Captured(Progress::Style::kNone, [](Progress& p) { Run(p, 100, true); }).empty());
}

}  // namespace
}  // namespace nosyncfs
