#include "base/crash_point.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace nosyncfs {
namespace {

struct Config {
  bool armed = false;
  unsigned long crash_after = 0;  // 0: never
  int trace_fd = -1;
};

const Config& GetConfig() {
  static const Config config = [] {
    Config c;
    if (const char* after = std::getenv("NSF_CRASH_AFTER")) {
      c.crash_after = std::strtoul(after, nullptr, 10);
    }
    if (const char* trace = std::getenv("NSF_CRASH_TRACE")) {
      c.trace_fd = open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    c.armed = c.crash_after > 0 || c.trace_fd >= 0;
    return c;
  }();
  return config;
}

std::atomic<unsigned long> g_hits{0};
std::atomic<bool> g_started{false};

}  // namespace

bool CrashPointHit(const char* name) {
  const Config& c = GetConfig();
  if (!c.armed || !g_started.load(std::memory_order_relaxed)) return false;
  unsigned long hit = g_hits.fetch_add(1) + 1;
  if (c.trace_fd >= 0) {
    // One write per line, so concurrent hits do not interleave.
    char line[128];
    size_t n = std::strlen(name);
    if (n > sizeof(line) - 2) n = sizeof(line) - 2;
    std::memcpy(line, name, n);
    line[n] = '\n';
    (void)!write(c.trace_fd, line, n + 1);
  }
  return hit == c.crash_after;
}

void CrashNow() {
  kill(getpid(), SIGKILL);
  _exit(137);  // not reached
}

void StartCrashPoints() {
  g_hits.store(0);
  g_started.store(true);
}

}  // namespace nosyncfs
