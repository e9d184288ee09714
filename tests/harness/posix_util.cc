#include "tests/harness/posix_util.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace nosyncfs::test {

Errno ErrnoOf(long rc) { return Errno{rc == -1 ? errno : 0}; }

std::string ErrnoName(int err) {
  if (err == 0) return "OK(0)";
  const char* name = strerrorname_np(err);
  return std::string(name != nullptr ? name : "E?") + "(" + std::to_string(err) + ")";
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.fd_;
    err_ = other.err_;
    other.fd_ = -1;
  }
  return *this;
}

int Fd::reset() {
  if (fd_ < 0) return 0;
  int rc = ::close(fd_);
  fd_ = -1;
  return rc == 0 ? 0 : errno;
}

Fd Open(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags, mode);
  return Fd(fd, fd < 0 ? errno : 0);
}

Fd MustOpen(const std::string& path, int flags, mode_t mode) {
  Fd fd = Open(path, flags, mode);
  INFO("open " << path << " flags 0" << std::oct << flags);
  REQUIRE(fd.error() == 0);
  return fd;
}

Errno OpenErrno(const std::string& path, int flags, mode_t mode) {
  Fd fd = Open(path, flags, mode);
  return fd.error();
}

char PatternByte(uint64_t seed, uint64_t offset) {
  // A cheap mix of seed and offset (splitmix64 finaliser); mapped to 1..255
  // so that 0 never appears in written data.
  uint64_t x = offset * 0x9E3779B97F4A7C15ull + (seed + 1) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return static_cast<char>(1 + x % 255);
}

std::string Pattern(uint64_t seed, size_t n, uint64_t offset) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = PatternByte(seed, offset + i);
  return out;
}

std::string FirstMismatch(std::string_view actual, std::string_view expected) {
  size_t n = std::min(actual.size(), expected.size());
  for (size_t i = 0; i < n; ++i) {
    if (actual[i] != expected[i]) {
      size_t run = 0;
      while (i + run < n && actual[i + run] != expected[i + run]) ++run;
      return "first difference at offset " + std::to_string(i) + ": got byte " +
             std::to_string(static_cast<unsigned char>(actual[i])) + ", expected " +
             std::to_string(static_cast<unsigned char>(expected[i])) + " (" +
             std::to_string(run) + " differing bytes in a row); sizes " +
             std::to_string(actual.size()) + " vs " + std::to_string(expected.size());
    }
  }
  if (actual.size() != expected.size()) {
    return "same first " + std::to_string(n) + " bytes but size " +
           std::to_string(actual.size()) + " instead of " + std::to_string(expected.size());
  }
  return "";
}

void MustPwrite(int fd, std::string_view data, uint64_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    INFO("pwrite of " << data.size() - done << " bytes at " << offset + done);
    REQUIRE(ErrnoOf(n) == 0);
    REQUIRE(n > 0);
    done += static_cast<size_t>(n);
  }
}

std::string MustPread(int fd, size_t n, uint64_t offset) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd, out.data() + done, n - done, offset + done);
    if (got < 0 && errno == EINTR) continue;
    INFO("pread of " << n - done << " bytes at " << offset + done);
    REQUIRE(ErrnoOf(got) == 0);
    if (got == 0) break;  // EOF
    done += static_cast<size_t>(got);
  }
  out.resize(done);
  return out;
}

void WriteFile(const std::string& path, std::string_view data, mode_t mode) {
  Fd fd = MustOpen(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  MustPwrite(fd.get(), data, 0);
  INFO("close " << path);
  REQUIRE(fd.reset() == 0);
}

std::string ReadFile(const std::string& path) {
  Fd fd = MustOpen(path, O_RDONLY);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    INFO("read " << path);
    REQUIRE(ErrnoOf(n) == 0);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

struct stat MustStat(const std::string& path) {
  struct stat st {};
  INFO("stat " << path);
  REQUIRE(ErrnoOf(::stat(path.c_str(), &st)) == 0);
  return st;
}

struct stat MustLstat(const std::string& path) {
  struct stat st {};
  INFO("lstat " << path);
  REQUIRE(ErrnoOf(::lstat(path.c_str(), &st)) == 0);
  return st;
}

struct stat MustFstat(int fd) {
  struct stat st {};
  REQUIRE(ErrnoOf(::fstat(fd, &st)) == 0);
  return st;
}

struct statvfs MustStatvfs(const std::string& path) {
  struct statvfs sv {};
  INFO("statvfs " << path);
  REQUIRE(ErrnoOf(::statvfs(path.c_str(), &sv)) == 0);
  return sv;
}

void SyncWholeFs(const std::string& dir) {
  Fd fd = MustOpen(dir, O_RDONLY | O_DIRECTORY);
  INFO("fsync of directory " << dir);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);
}

uint64_t NfBytes(const std::string& path) {
  std::string buf(1 << 16, '\0');
  const ssize_t n = ::getxattr(path.c_str(), "user.nosync.extents", buf.data(), buf.size());
  INFO("getxattr user.nosync.extents of " << path);
  REQUIRE(n >= 0);
  std::istringstream in(buf.substr(0, static_cast<size_t>(n)));
  uint64_t total = 0, logical = 0, length = 0, device = 0;
  std::string flags;
  while (in >> logical >> length >> device >> flags) {
    if (flags == "nf") total += length;
  }
  return total;
}

std::map<std::string, std::string> MountStatsText(const std::string& mountpoint) {
  std::string buf(1 << 16, '\0');
  ssize_t n = ::getxattr(mountpoint.c_str(), "user.nosyncfs.stats", buf.data(), buf.size());
  INFO("getxattr user.nosyncfs.stats on " << mountpoint << ": " << ErrnoName(errno));
  REQUIRE(n >= 0);
  std::map<std::string, std::string> stats;
  std::istringstream in(buf.substr(0, static_cast<size_t>(n)));
  std::string line;
  while (std::getline(in, line)) {
    size_t sp = line.find(' ');
    INFO("stats line: " << line);
    REQUIRE(sp != std::string::npos);
    REQUIRE(sp > 0);
    REQUIRE(sp + 1 < line.size());
    REQUIRE(stats.count(line.substr(0, sp)) == 0);
    stats[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return stats;
}

std::map<std::string, uint64_t> MountStats(const std::string& mountpoint) {
  std::map<std::string, uint64_t> stats;
  for (const auto& [key, text] : MountStatsText(mountpoint)) {
    bool integer =
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (integer) stats[key] = std::stoull(text);
  }
  return stats;
}

uint64_t RequestCount(const std::map<std::string, uint64_t>& stats) {
  uint64_t total = 0;
  for (const auto& [name, value] : stats) {
    if (name.rfind("requests_", 0) == 0) total += value;
  }
  return total;
}

std::set<std::string> ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  INFO("opendir " << path);
  REQUIRE(dir != nullptr);
  std::set<std::string> names;
  errno = 0;
  while (struct dirent* de = ::readdir(dir)) {
    std::string name = de->d_name;
    if (name != "." && name != "..") names.insert(name);
    errno = 0;
  }
  int err = errno;
  ::closedir(dir);
  REQUIRE(Errno{err} == 0);
  return names;
}

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(interval);
  }
}

std::string ToString(const timespec& t) {
  char frac[16];
  std::snprintf(frac, sizeof frac, "%09ld", static_cast<long>(t.tv_nsec));
  return std::to_string(t.tv_sec) + "." + frac;
}

timespec RealNow() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

timespec CoarseNow() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &t);
  return t;
}

void WaitClockPast(const timespec& t) {
  // The coarse clock ticks once per jiffy; a timestamp source at least as
  // fine as it is then guaranteed to be past `t`.
  WaitUntil(
      [&] {
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
        return t < now;
      },
      std::chrono::seconds(1), std::chrono::milliseconds(1));
}

int RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn,
          std::chrono::milliseconds timeout) {
  return RunAs(uid, gid, {}, fn, timeout);
}

int RunAs(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<int()>& fn,
          std::chrono::milliseconds timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return kRunAsFailed;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return kRunAsFailed;
  }
  if (pid == 0) {
    ::close(fds[0]);
    // Group first: once the uid is dropped, setgid is no longer allowed.
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 ||
        ::setuid(uid) != 0) {
      ::_exit(101);
    }
    int result = fn();
    ssize_t n = ::write(fds[1], &result, sizeof result);
    ::_exit(n == sizeof result ? 0 : 102);
  }
  ::close(fds[1]);
  int result = kRunAsFailed;
  pollfd pfd{fds[0], POLLIN, 0};
  int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  if (ready == 1) {
    int value = 0;
    if (::read(fds[0], &value, sizeof value) == sizeof value) result = value;
  } else {
    ::kill(pid, SIGKILL);  // our own child, stuck
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return kRunAsFailed;
  return result;
}

std::map<std::string, size_t> SnapshotFiles(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::map<std::string, size_t> files;
  auto add = [&](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    files[path] = std::hash<std::string>()(bytes.str());
  };
  for (const std::string& top : paths) {
    const struct stat top_st = MustStat(top);
    if (!S_ISDIR(top_st.st_mode)) {
      add(top);
      continue;
    }
    for (auto it = fs::recursive_directory_iterator(top); it != fs::recursive_directory_iterator();
         ++it) {
      struct stat st;
      if (::lstat(it->path().c_str(), &st) != 0) continue;
      if (st.st_dev != top_st.st_dev) {  // a mount point: not ours to read
        if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
        continue;
      }
      if (S_ISREG(st.st_mode)) add(it->path().string());
    }
  }
  return files;
}

}  // namespace nosyncfs::test

bool operator<(const timespec& a, const timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec < b.tv_sec : a.tv_nsec < b.tv_nsec;
}

bool operator==(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}
