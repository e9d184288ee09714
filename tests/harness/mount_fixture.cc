// The listener below needs Catch's reporter interfaces, which catch.hpp only
// declares when this is defined before its first inclusion in this file.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include "tests/harness/mount_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "fs/mountinfo.h"
#include "tests/harness/evict_mode.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// Set when any assertion of the running test case fails, so that fixtures
// destroyed at the end of the test know whether to print the daemon's log.
std::atomic<bool> g_test_failed{false};

struct FailureListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    g_test_failed = false;
    TestEventListenerBase::testCaseStarting(info);
  }
  bool assertionEnded(Catch::AssertionStats const& stats) override {
    if (!stats.assertionResult.isOk()) g_test_failed = true;
    return true;
  }
};

// Starts argv with stdin from /dev/null and stdout/stderr on the given fds.
// With die_with_parent the child gets SIGKILL if the test process dies, so a
// crashed test binary does not leave a daemon behind. Returns the pid, or -1.
pid_t Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd, bool die_with_parent) {
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls are allowed.
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
  }
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) {
    ::_exit(127);
  }
  // Descriptors the test holds (files on the mount, pipes) must not leak
  // into the daemon: they would keep a dead mount busy.
  ::syscall(SYS_close_range, 3u, ~0u, 0u);
  ::execvp(cargv[0], cargv.data());
  ::_exit(127);
}

std::string ReadWhole(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

// Decodes a wait status into an exit code, or 128 + signal number.
int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::optional<MountInfoEntry> FindMount(const std::string& mountpoint) {
  std::optional<MountInfoEntry> found;
  // The last entry wins: it is the one on top if mounts are stacked.
  for (MountInfoEntry& e : ReadMountInfo()) {
    if (e.mount_point == mountpoint) found = std::move(e);
  }
  return found;
}

bool AnyMountBelow(const std::string& dir) {
  for (const MountInfoEntry& e : ReadMountInfo()) {
    if (e.mount_point == dir || e.mount_point.rfind(dir + "/", 0) == 0) return true;
  }
  return false;
}

std::string SizeArg(uint64_t bytes) {
  if (bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + "M";
  if (bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + "K";
  return std::to_string(bytes);
}

std::string JoinArgs(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

CATCH_REGISTER_LISTENER(FailureListener)

std::string BinPath(const std::string& name) { return std::string(NSF_BIN_DIR) + "/" + name; }

std::string CommandResult::Describe() const {
  std::string s = timed_out ? "timed out" : "exit status " + std::to_string(exit_status);
  if (!err.empty()) s += "; stderr: " + err;
  if (!out.empty()) s += "; stdout: " + out;
  return s;
}

bool AbortFuseConnection(const std::string& mountpoint) {
  std::optional<MountInfoEntry> e = FindMount(mountpoint);
  if (!e) return false;
  const std::string minor = e->dev.substr(e->dev.find(':') + 1);
  const std::string connections = "/sys/fs/fuse/connections";
  const std::string abort = connections + "/" + minor + "/abort";
  if (::access(abort.c_str(), W_OK) != 0) {
    RunCommand({"mount", "-t", "fusectl", "none", connections}, seconds(10));
  }
  std::ofstream knob(abort);
  knob << "1";
  knob.flush();
  return static_cast<bool>(knob);
}

std::string KernelStacks(pid_t pid) {
  std::string out;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = ::opendir(tasks.c_str());
  if (dir == nullptr) return "(no " + tasks + ")";
  while (struct dirent* de = ::readdir(dir)) {
    if (de->d_name[0] == '.') continue;
    std::ifstream comm(tasks + "/" + de->d_name + "/comm");
    std::ifstream stack(tasks + "/" + de->d_name + "/stack");
    std::string name;
    std::getline(comm, name);
    std::stringstream ss;
    ss << stack.rdbuf();
    out += "thread " + std::string(de->d_name) + " (" + name + "):\n" + ss.str();
  }
  ::closedir(dir);
  return out;
}

std::optional<int> WaitChild(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  // A pidfd becomes readable when the process exits: an exact wait with a
  // timeout, no polling loop.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd pfd{pidfd, POLLIN, 0};
    int rc;
    do {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      rc = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    } while (rc < 0 && errno == EINTR);
    ::close(pidfd);
  }
  int status = 0;
  pid_t r;
  // Without a pidfd, fall back to a bounded poll until the same deadline.
  while ((r = ::waitpid(pid, &status, WNOHANG)) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  if (r == pid) return status;
  return std::nullopt;
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  CommandResult result;
  int out_fd = ::memfd_create("nsf-stdout", MFD_CLOEXEC);
  int err_fd = ::memfd_create("nsf-stderr", MFD_CLOEXEC);
  if (out_fd < 0 || err_fd < 0) {
    result.err = "memfd_create failed: " + std::string(std::strerror(errno));
    if (out_fd >= 0) ::close(out_fd);
    if (err_fd >= 0) ::close(err_fd);
    return result;
  }
  pid_t pid = Spawn(argv, out_fd, err_fd, /*die_with_parent=*/false);
  if (pid < 0) {
    result.err = "fork failed: " + std::string(std::strerror(errno));
  } else {
    std::optional<int> status = WaitChild(pid, timeout);
    if (!status) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);  // our own child, stuck
      status = WaitChild(pid, seconds(10));
    }
    if (status && !result.timed_out && WIFEXITED(*status)) result.exit_status = WEXITSTATUS(*status);
  }
  result.out = ReadWhole(out_fd);
  result.err += ReadWhole(err_fd);
  ::close(out_fd);
  ::close(err_fd);
  return result;
}

std::optional<std::string> MountedFsType(const std::string& mountpoint) {
  std::optional<MountInfoEntry> e = FindMount(mountpoint);
  if (!e) return std::nullopt;
  return e->fstype;
}

std::optional<std::string> MountSuperOptions(const std::string& mountpoint) {
  std::optional<MountInfoEntry> e = FindMount(mountpoint);
  if (!e) return std::nullopt;
  return e->super_options;
}

std::optional<std::string> MountPointOptions(const std::string& mountpoint) {
  std::optional<MountInfoEntry> e = FindMount(mountpoint);
  if (!e) return std::nullopt;
  return e->mount_options;
}

bool ForceUnmount(const std::string& mountpoint, std::chrono::milliseconds timeout) {
  // Busy is usually transient (a descriptor being closed, a reader finishing
  // with a dead connection), so retry the clean unmount for a while.
  WaitUntil(
      [&] {
        if (!IsMounted(mountpoint)) return true;
        RunCommand({"fusermount3", "-u", mountpoint}, seconds(20));
        return !IsMounted(mountpoint);
      },
      timeout, milliseconds(50));
  if (IsMounted(mountpoint)) RunCommand({"fusermount3", "-uz", mountpoint}, seconds(20));
  return !IsMounted(mountpoint);
}

TempDir::TempDir() {
  std::string base;
  struct stat st {};
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0) {
    base = "/dev/shm";
  } else if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') {
    base = t;
  } else {
    base = "/tmp";
  }
  std::string templ = base + "/nsf-test-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("mkdtemp in " + base + ": " + std::strerror(errno));
  }
  // Mount points are compared with /proc/self/mountinfo, which shows
  // resolved paths (TMPDIR may well be a symlink).
  char* resolved = ::realpath(buf.data(), nullptr);
  path_ = resolved != nullptr ? resolved : buf.data();
  std::free(resolved);
  // mkdtemp makes it 0700; the permission tests run as uid 65534 and must be
  // able to reach the mount point inside.
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  // Never recurse into a mounted file system: that would delete through it,
  // or hang on a dead connection.
  if (AnyMountBelow(path_)) {
    std::cerr << "nosyncfs test: leaving " << path_ << " in place: something is still mounted below it\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) std::cerr << "nosyncfs test: could not remove " << path_ << ": " << ec.message() << "\n";
}

TestVolume::TestVolume() : TestVolume(Options{}) {}

TestVolume::TestVolume(const Options& options) {
  image_ = dir() + "/image";
  mountpoint_ = NewMountPoint("mnt");
  if (options.block_size != 0) block_size_ = options.block_size;
  if (options.format) {
    std::vector<std::string> args = {"-s", SizeArg(options.image_bytes)};
    if (options.block_size != 0) {
      args.push_back("-b");
      args.push_back(std::to_string(options.block_size));
    }
    args.insert(args.end(), options.mkfs_args.begin(), options.mkfs_args.end());
    args.push_back(image_);
    CommandResult r = RunMkfs(args);
    INFO("mkfs.nosyncfs " << JoinArgs(args) << ": " << r.Describe());
    REQUIRE(r.exit_status == 0);
  } else {
    Fd fd = MustOpen(image_, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(ErrnoOf(::ftruncate(fd.get(), static_cast<off_t>(options.image_bytes))) == 0);
  }
}

TestVolume::~TestVolume() { Cleanup(); }

std::string TestVolume::Path(const std::string& rel) const {
  return rel.empty() ? mountpoint_ : mountpoint_ + "/" + rel;
}

std::string TestVolume::NewMountPoint(const std::string& name) {
  std::string path = dir() + "/" + name;
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    throw std::runtime_error("mkdir " + path + ": " + std::strerror(errno));
  }
  mountpoints_.push_back(path);
  return path;
}

CommandResult TestVolume::RunMkfs(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinPath("mkfs.nosyncfs")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, seconds(60));
}

CommandResult TestVolume::RunDaemon(const std::vector<std::string>& args,
                                    std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {BinPath("nosyncfs")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, timeout);
}

CommandResult TestVolume::RunRemount(const std::string& options) const {
  return RunDaemon({image_, mountpoint_, "-o",
                    options + ",remount,user_id=0,group_id=0,default_permissions,allow_other"});
}

void TestVolume::Mount(const std::string& options) {
  REQUIRE_FALSE(mounted());
  options_ = options;
  ++mount_count_;
  // Under NSF_EVICT_SEED, emulate=strict becomes early evictions, seeded
  // after this mount and the crash point armed for it (evict_mode.h).
  const char* crash_after = std::getenv("NSF_CRASH_AFTER");
  std::string label = "mount " + std::to_string(mount_count_) + " crash " +
                      (crash_after != nullptr ? crash_after : "none");
  std::string daemon_options = WithEvictions(options, label);
  std::vector<std::string> argv = {BinPath("nosyncfs"), image_, mountpoint_, "-f"};
  if (!daemon_options.empty()) {
    argv.push_back("-o");
    argv.push_back(daemon_options);
  }
  // The kernel's parameter as this mount needs it, until its INIT is answered.
  std::optional<TransportForMount> kernel_transport(std::in_place, transport_);
  const Transport expected =
      HasOption(options, "uring=off") ? Transport::kDevFuse : transport_;
  int log_fd = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  REQUIRE(log_fd >= 0);
  std::string header = "==== mount #" + std::to_string(mount_count_) + ": " + JoinArgs(argv) + "\n";
  (void)!::write(log_fd, header.data(), header.size());
  pid_t pid = Spawn(argv, log_fd, log_fd, /*die_with_parent=*/true);
  ::close(log_fd);
  REQUIRE(pid > 0);
  daemon_pid_ = pid;

  std::optional<int> early_exit;
  bool up = WaitUntil(
      [&] {
        if (IsMounted(mountpoint_)) return true;
        early_exit = WaitChild(pid, milliseconds(0));
        return early_exit.has_value();
      },
      seconds(20), milliseconds(5));
  if (early_exit) {
    daemon_pid_ = -1;
    last_exit_ = DecodeStatus(*early_exit);
    FAIL("nosyncfs exited with status " << last_exit_ << " before mounting " << mountpoint_
                                        << "; its output:\n"
                                        << DaemonLog());
  }
  if (!up || !IsMounted(mountpoint_)) {
    ::kill(pid, SIGKILL);  // our own daemon, which never mounted
    if (std::optional<int> st = WaitChild(pid, seconds(10))) last_exit_ = DecodeStatus(*st);
    daemon_pid_ = -1;
    ForceUnmount(mountpoint_);
    FAIL("nosyncfs did not mount " << mountpoint_ << " within 20 s; its output:\n" << DaemonLog());
  }
  // This mount's lines of the log: after its header.
  auto this_mount = [&] {
    std::string log = DaemonLog();
    size_t at = log.rfind(header);
    return at == std::string::npos ? log : log.substr(at);
  };
  bool told = WaitUntil([&] { return Contains(this_mount(), "transport: "); }, seconds(20),
                        milliseconds(2));
  kernel_transport.reset();
  INFO("daemon output:\n" << DaemonLog());
  REQUIRE(told);
  REQUIRE(Contains(this_mount(), TransportLogLine(expected)));
}

void TestVolume::Unmount() {
  REQUIRE(mounted());
  pid_t pid = daemon_pid_;
  // Clean unmount first; retry while busy (a descriptor being released).
  bool unmounted = WaitUntil(
      [&] {
        if (!IsMounted(mountpoint_)) return true;
        RunCommand({"fusermount3", "-u", mountpoint_}, seconds(20));
        return !IsMounted(mountpoint_);
      },
      seconds(10), milliseconds(50));
  std::optional<int> status = WaitChild(pid, seconds(30));
  bool hung = !status.has_value();
  if (hung) {
    ::kill(pid, SIGKILL);  // our own daemon, which did not exit after unmount
    status = WaitChild(pid, seconds(10));
  }
  daemon_pid_ = -1;
  last_exit_ = status ? DecodeStatus(*status) : -1;
  if (IsMounted(mountpoint_)) ForceUnmount(mountpoint_);
  INFO("daemon output:\n" << DaemonLog());
  CHECK(unmounted);
  CHECK_FALSE(hung);
  CHECK(last_exit_ == 0);
  REQUIRE_FALSE(IsMounted(mountpoint_));
}

void TestVolume::Remount(std::optional<std::string> options) {
  Unmount();
  Mount(options.value_or(options_));
}

void TestVolume::RemountAtOnce(milliseconds hold) {
  REQUIRE(mounted());
  const pid_t old = daemon_pid_;
  // Continues (our own, stopped) old daemon after `hold`, and reaps it,
  // whatever happens below.
  struct Reaper {
    pid_t pid;
    std::thread resume;
    std::optional<int> status;
    ~Reaper() {
      if (resume.joinable()) resume.join();
      if (!status) status = WaitChild(pid, seconds(30));
    }
  } reaper{old, {}, std::nullopt};
  if (hold.count() > 0) {
    REQUIRE(::kill(old, SIGSTOP) == 0);
    reaper.resume = std::thread([old, hold] {
      std::this_thread::sleep_for(hold);
      ::kill(old, SIGCONT);
    });
  }
  bool unmounted = WaitUntil(
      [&] {
        RunCommand({"fusermount3", "-u", mountpoint_}, seconds(20));
        return !IsMounted(mountpoint_);
      },
      seconds(10), milliseconds(50));
  REQUIRE(unmounted);
  daemon_pid_ = -1;
  Mount(options_);
  reaper.status = WaitChild(old, seconds(30));
  INFO("daemon output:\n" << DaemonLog());
  REQUIRE(reaper.status.has_value());
  CHECK(DecodeStatus(*reaper.status) == 0);
}

milliseconds TestVolume::SigkillDaemon(milliseconds limit) {
  REQUIRE(mounted());
  pid_t pid = daemon_pid_;
  const auto start = Clock::now();
  REQUIRE(::kill(pid, SIGKILL) == 0);  // our own daemon: simulated power loss
  std::optional<int> status = WaitChild(pid, limit);
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  if (!status) {
    // Stuck in the kernel: free it (and everything waiting on the mount)
    // before failing, or the whole test run would hang behind it.
    std::string stacks = KernelStacks(pid);
    bool aborted = AbortFuseConnection(mountpoint_);
    status = WaitChild(pid, seconds(10));
    daemon_pid_ = -1;
    last_exit_ = status ? DecodeStatus(*status) : -1;
    FAIL("the daemon did not exit within " << limit.count() << " ms of SIGKILL"
         << (aborted ? "; its connection was aborted" : "; its connection could not be aborted")
         << (status ? ", then it exited" : ", and it still has not exited")
         << ". Its threads' kernel stacks:\n" << stacks);
  }
  daemon_pid_ = -1;
  last_exit_ = DecodeStatus(*status);
  return took;
}

void TestVolume::ClearDeadMount() {
  REQUIRE_FALSE(mounted());
  REQUIRE(ForceUnmount(mountpoint_));
}

void TestVolume::KillDaemon() {
  SigkillDaemon();
  ClearDeadMount();
}

std::vector<pid_t> TestVolume::Holders() const {
  const std::string prefix = dir() + "/";
  const pid_t self = ::getpid();
  std::vector<pid_t> holders;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return holders;
  while (struct dirent* de = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(de->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self) continue;
    std::string fd_dir = std::string("/proc/") + de->d_name + "/fd";
    DIR* fds = ::opendir(fd_dir.c_str());
    if (fds == nullptr) continue;
    bool found = false;
    while (struct dirent* fe = ::readdir(fds)) {
      char target[4096];
      std::string link = fd_dir + "/" + fe->d_name;
      ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      if (std::strncmp(target, prefix.c_str(), prefix.size()) == 0) found = true;
    }
    ::closedir(fds);
    if (found) holders.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return holders;
}

bool TestVolume::WaitUntilReleased(std::chrono::milliseconds timeout) const {
  return WaitUntil([&] { return Holders().empty(); }, timeout, milliseconds(20));
}

std::string TestVolume::DaemonLog() const {
  std::ifstream in(log_path());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void TestVolume::Cleanup() noexcept {
  try {
    if (daemon_pid_ > 0) {
      pid_t pid = daemon_pid_;
      ForceUnmount(mountpoint_);
      std::optional<int> status = WaitChild(pid, seconds(20));
      if (!status) {
        std::cerr << "nosyncfs test: daemon " << pid << " did not exit after unmount; killing it\n";
        ::kill(pid, SIGKILL);  // our own daemon
        status = WaitChild(pid, seconds(10));
      }
      daemon_pid_ = -1;
      last_exit_ = status ? DecodeStatus(*status) : -1;
      if (last_exit_ != 0) {
        std::cerr << "nosyncfs test: daemon exited with status " << last_exit_ << " at cleanup\n";
      }
    }
    // Mounts the test made by other means (a daemonized nosyncfs, a second
    // mount point), including ones it did not expect to succeed.
    for (const std::string& mp : mountpoints_) {
      if (IsMounted(mp) && !ForceUnmount(mp)) {
        std::cerr << "nosyncfs test: could not unmount " << mp << "\n";
      }
    }
    // A daemonized nosyncfs may still be shutting down after its unmount;
    // let it finish before its files are removed.
    if (!WaitUntilReleased(seconds(20))) {
      std::cerr << "nosyncfs test: a process still holds files under " << dir() << "\n";
    }
    if (g_test_failed || std::uncaught_exceptions() > 0) {
      std::cerr << "---- nosyncfs daemon output (" << dir() << ") ----\n"
                << DaemonLog() << "---- end of daemon output ----\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "nosyncfs test: cleanup failed: " << e.what() << "\n";
  }
}

void ExpectFsckClean(const TestVolume& v) {
  CommandResult r = RunCommand({BinPath("fsck.nosyncfs"), v.image()});
  INFO(r.Describe() << "\n" << r.out);
  CHECK(r.exit_status == 0);
  CHECK(r.out.find(": clean") != std::string::npos);
}

}  // namespace nosyncfs::test
