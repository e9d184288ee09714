#include "tests/harness/transport_mode.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace nosyncfs::test {
namespace {

constexpr char kParameter[] = "/sys/module/fuse/parameters/enable_uring";
constexpr char kStateDir[] = "/run/nosyncfs-tests";
constexpr char kLockFile[] = "/run/nosyncfs-tests/enable_uring.lock";
// "ORIGINAL\nPID\nPID...": the value found by the first test process, and
// the processes that may still change it.
constexpr char kStateFile[] = "/run/nosyncfs-tests/enable_uring.state";

pid_t g_registered_pid = 0;

bool ReadParameter() {
  std::ifstream in(kParameter);
  char c = 'N';
  in >> c;
  return c == 'Y' || c == '1';
}

bool WriteParameter(bool on) {
  std::ofstream out(kParameter);
  out << (on ? "Y" : "N");
  out.flush();
  return static_cast<bool>(out);
}

// Holds the lock file for its lifetime.
class Lock {
 public:
  Lock() {
    ::mkdir(kStateDir, 0755);
    fd_ = ::open(kLockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~Lock() { Release(); }
  int Take() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Release() {
    if (fd_ >= 0) ::close(fd_);  // closing drops the flock
    fd_ = -1;
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct State {
  bool original = false;
  std::vector<pid_t> pids;  // live ones only
};

// Under the lock.
State ReadState() {
  State state;
  std::ifstream in(kStateFile);
  std::string first;
  if (!std::getline(in, first)) {
    state.original = ReadParameter();
    return state;
  }
  state.original = first == "Y";
  long pid = 0;
  while (in >> pid) {
    if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) {
      state.pids.push_back(static_cast<pid_t>(pid));
    }
  }
  if (state.pids.empty()) state.original = ReadParameter();  // a stale file
  return state;
}

void WriteState(const State& state) {
  if (state.pids.empty()) {
    ::unlink(kStateFile);
    return;
  }
  std::ofstream out(kStateFile, std::ios::trunc);
  out << (state.original ? "Y" : "N") << "\n";
  for (pid_t pid : state.pids) out << pid << "\n";
}

void Unregister() {
  if (g_registered_pid != ::getpid()) return;  // a forked child exiting
  Lock lock;
  if (!lock.ok()) return;
  State state = ReadState();
  std::erase(state.pids, g_registered_pid);
  if (state.pids.empty()) WriteParameter(state.original);
  WriteState(state);
}

// Once per process: joins the list, the first one noting the value to put back.
void Register() {
  if (g_registered_pid == ::getpid()) return;
  Lock lock;
  if (!lock.ok()) return;
  State state = ReadState();
  state.pids.push_back(::getpid());
  WriteState(state);
  g_registered_pid = ::getpid();
  std::atexit(Unregister);
}

}  // namespace

Transport TestTransport() {
  const char* value = std::getenv("NSF_TEST_TRANSPORT");
  if (value == nullptr || std::string(value).empty() || std::string(value) == "dev_fuse") {
    return Transport::kDevFuse;
  }
  if (std::string(value) == "uring") return Transport::kUring;
  FAIL("NSF_TEST_TRANSPORT must be uring or dev_fuse, not '" << value << "'");
  return Transport::kDevFuse;
}

std::string TransportLogLine(Transport transport) {
  return transport == Transport::kUring ? "transport: io_uring" : "transport: /dev/fuse";
}

bool KernelHasUring() { return ::access(kParameter, F_OK) == 0; }

TransportForMount::TransportForMount(Transport transport) {
  if (transport == Transport::kDevFuse && !KernelHasUring()) return;  // nothing to turn off
  REQUIRE(KernelHasUring());
  Register();
  Lock lock;
  REQUIRE(lock.ok());
  INFO("cannot set " << kParameter << " (not root?)");
  REQUIRE(WriteParameter(transport == Transport::kUring));
  lock_fd_ = lock.Take();
}

TransportForMount::~TransportForMount() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

}  // namespace nosyncfs::test
