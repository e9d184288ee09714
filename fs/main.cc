// nosyncfs: the daemon. Opens and recovers the volume, mounts, serves.
//
// Without -f it forks first and the parent waits on a pipe until the child
// has mounted (exit 0) or failed (prints the child's one-line error, exit
// 1), so scripts can trust the exit status. The child opens the metadata
// store itself: its background threads would not survive a later fork.
#define FUSE_USE_VERSION 312
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "base/crash_point.h"
#include "base/progress.h"
#include "extent/device.h"
#include "fs/transport/fuse_channel.h"
#include "fs/fuse_ops.h"
#include "fs/mountinfo.h"
#include "fs/shared_mount.h"
#include "fs/mount_options.h"
#include "fs/remount.h"
#include "fs/vfs.h"

namespace nosyncfs {
namespace {

// Reports the outcome of mounting to the waiting parent (or stderr).
class StartupReporter {
 public:
  explicit StartupReporter(int fd) : fd_(fd) {}
  void Fail(const std::string& msg) {
    std::string line = "nosyncfs: " + msg + "\n";
    if (fd_ >= 0) {
      (void)!write(fd_, line.data(), line.size());
      close(fd_);
      fd_ = -1;
    } else {
      std::fputs(line.c_str(), stderr);
    }
  }
  void Ready() {
    if (fd_ >= 0) {
      (void)!write(fd_, "", 1);  // a single NUL byte means mounted
      close(fd_);
      fd_ = -1;
    }
  }

 private:
  int fd_;
};

int WaitForChild(pid_t child, int fd) {
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) msg.append(buf, static_cast<size_t>(n));
  close(fd);
  if (msg.size() == 1 && msg[0] == '\0') return 0;
  if (!msg.empty()) {
    std::fputs(msg.c_str(), stderr);
  } else {
    int status = 0;
    waitpid(child, &status, 0);
    std::fprintf(stderr, "nosyncfs: daemon exited during startup\n");
  }
  return 1;
}

// The log: stderr with time stamps in the foreground (-f), syslog
// otherwise, from the first line on. A mount that succeeds prints nothing
// on stderr (as mount(8) and ext4); stderr is for what explains a failure.
void SetUpLogging(const MountOptions& mo) {
  // Every line names the device: one journal or syslog may hold several
  // mounts. Syslog (journald) stamps time, host and pid itself.
  std::string device;  // as a pattern: '%' doubled
  for (char c : mo.device) device += c == '%' ? std::string("%%") : std::string(1, c);
  if (!mo.foreground) {
    spdlog::set_default_logger(spdlog::syslog_logger_mt("nosyncfs", "nosyncfs", LOG_PID, LOG_DAEMON,
                                                        /*enable_formatting=*/true));
    spdlog::set_pattern(device + ": %v");
  } else {
    spdlog::set_default_logger(spdlog::stderr_logger_mt("nosyncfs"));
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e nosyncfs[%P] %l: " + device + ": %v");
  }
  if (mo.debug) spdlog::set_level(spdlog::level::debug);
}

// After `umount` returns, the previous daemon may still be finishing its
// durable shutdown (the last flush and checkpoint) with the device locked:
// a few milliseconds (docs/architecture.md, "Unmount"). A mount right
// behind it waits for that, bounded, and logs it; if the lock stays,
// Volume::Open then fails with the usual "in use" error, to which the
// returned text (how long it waited) is added.
std::string WaitForDeviceLock(const MountOptions& mo) {
  auto locked = Device::Locked(mo.device);
  if (!locked.ok() || !*locked || mo.lock_wait_seconds == 0) return "";
  spdlog::info("the device is locked by another process (a nosyncfs still shutting down?); "
               "waiting up to {} s",
               mo.lock_wait_seconds);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(mo.lock_wait_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    locked = Device::Locked(mo.device);
    if (!locked.ok() || !*locked) {
      spdlog::info("the device was released after {} ms",
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count());
      return "";
    }
  }
  return " (waited " + std::to_string(mo.lock_wait_seconds) + " s for it)";
}

void Detach() {
  setsid();
  if (chdir("/") != 0) return;
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) close(null);
  }
}

// The kernel offers 128 KiB of readahead in INIT, and the reply can only
// lower it; reads of 1 MiB (max_pages) need the bdi's readahead raised
// through sysfs (root only), after INIT. Finds the mount's device number in
// /proc/self/mountinfo: the mount itself cannot be asked anything while
// the session is busy with INIT.
void RaiseReadahead(const std::string& real_mountpoint) {
  constexpr int kReadaheadKiB = 1024;
  std::string device;
  for (const MountInfoEntry& e : ReadMountInfo()) {
    if (e.mount_point == real_mountpoint) device = e.dev;  // the last one is on top
  }
  if (device.empty()) return;
  std::ofstream knob("/sys/class/bdi/" + device + "/read_ahead_kb");
  knob << kReadaheadKiB;
  knob.flush();
  if (!knob) spdlog::debug("cannot raise readahead of {} (not root?)", device);
}

// `lock_wait_note` is WaitForDeviceLock's, for an "in use" failure.
int Serve(const MountOptions& mo, StartupReporter* reporter, bool background,
          const std::string& lock_wait_note) {
  // Recovery after a crash may take a while: a person at a terminal sees
  // its progress (after a quiet second), on stderr, which is still the
  // mount command's until the daemon detaches. Anywhere else a mount that
  // succeeds says nothing; the log gets the summary.
  Progress progress(::isatty(STDERR_FILENO) ? Progress::Style::kHuman : Progress::Style::kNone,
                    STDERR_FILENO, "nosyncfs: " + mo.device + ":");
  VolumeOptions volume_options = mo.volume;
  volume_options.progress = &progress;
  auto volume = Volume::Open(mo.device, volume_options);
  if (!volume.ok()) {
    reporter->Fail(volume.status().message() +
                   (volume.status().code() == EBUSY ? lock_wait_note : std::string()));
    return 1;
  }
  // The store opens files by path as it runs: under the mount point they
  // would be files of this very mount, which the daemon must never wait on.
  const std::string real_meta = RealPath((*volume)->meta_dir());
  // Resolved before mounting: afterwards that would ask the mount.
  const std::string real_mountpoint = RealPath(mo.mountpoint);
  if (real_meta == real_mountpoint || real_meta.starts_with(real_mountpoint + "/")) {
    reporter->Fail("the metadata directory " + real_meta + " is inside the mount point " +
                   real_mountpoint + " (meta= elsewhere)");
    return 1;
  }
  spdlog::info("uuid {}, persistence: {}{}, metadata in {}{}",
               (*volume)->superblock().UuidString(),
               PersistGranularityName((*volume)->device().granularity()),
               mo.volume.evict_seed != 0
                   ? " with early evictions, seed " + std::to_string(mo.volume.evict_seed)
                   : std::string(),
               (*volume)->meta_dir(), mo.volume.read_only ? ", read-only" : "");
  Vfs vfs(std::move(volume).value(), mo.vfs);
  Status st = vfs.Init(&progress);
  if (!st.ok()) {
    reporter->Fail(st.message());
    return 1;
  }

  // The device's real path, by which a second mount finds this one.
  std::string opts = "fsname=" + RealPath(mo.device) + ",subtype=nosyncfs,default_permissions";
  if (geteuid() == 0) opts += ",allow_other";
  for (const auto& o : mo.fuse_options) opts += "," + o;
  std::vector<std::string> argv_s = {"nosyncfs", "-o", opts};
  if (mo.trace_requests) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  FuseContext ctx;
  ctx.vfs = &vfs;
  fuse_session* se = fuse_session_new(&args, &FuseOps(), sizeof(fuse_lowlevel_ops), &ctx);
  if (se == nullptr) {
    reporter->Fail("cannot start FUSE session (bad -o option?)");
    return 1;
  }
  ctx.session = se;
  // Set-ID bits the daemon clears on a write, and changes the kernel did
  // not send (direct writes, the fallocate ioctl), are news to the
  // kernel's attribute cache: drop the cached attributes. Never the page
  // cache from here: that waits for page locks that reads in flight to
  // this daemon hold, so a daemon killed meanwhile could never exit; the
  // kernel drops pages itself when it sees the new mtime or size
  // (FUSE_AUTO_INVAL_DATA, fuse_ops.cc).
  vfs.set_attr_invalidator(
      [se](uint64_t ino) { (void)fuse_lowlevel_notify_inval_inode(se, ino, -1, 0); });
  std::unique_ptr<DirectServer> direct;
  if (mo.direct.enabled()) {
    auto started = DirectServer::Start(&vfs, mo.direct, vfs.volume().superblock().UuidString(),
                                       real_mountpoint);
    if (!started.ok()) {
      reporter->Fail(started.status().message());
      vfs.set_attr_invalidator(nullptr);
      fuse_session_destroy(se);
      (void)vfs.Shutdown();
      return 1;
    }
    direct = std::move(started).value();
    ctx.direct = direct.get();
    vfs.set_layout_leases(direct.get());
  }
  Remounter remounter(&vfs, direct.get(), mo);
  ctx.remounter = &remounter;
  int rc = 1;
  if (fuse_set_signal_handlers(se) != 0) {
    reporter->Fail("cannot install signal handlers");
  } else if (fuse_session_mount(se, mo.mountpoint.c_str()) != 0) {
    reporter->Fail("cannot mount on " + mo.mountpoint + " (is /dev/fuse available?)");
    fuse_remove_signal_handlers(se);
  } else if (int err = AttachFuseChannel(se, &ctx.stats, mo.transport,
                                         [&] { RaiseReadahead(real_mountpoint); });
             err != 0) {
    reporter->Fail(std::string("cannot attach to the FUSE channel: ") + std::strerror(-err));
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
  } else {
    spdlog::info("mounted on {}", mo.mountpoint);
    // Out of the mount command's session before it is told: once it exits,
    // its terminal may go, and a SIGHUP from it would end this mount.
    if (background) Detach();
    reporter->Ready();
    // Crash tests count crash points from here: the workload's, not mount's.
    StartCrashPoints();
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, 16);
    rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : 1;
    fuse_loop_cfg_destroy(cfg);
    // The rings' threads too: the requests they are processing finish.
    DetachFuseChannel();
    // No request runs any more: revoke every lease and hang up. The
    // server's worker calls into the Vfs until it is joined (the folds of
    // sizes that clients published), so the Vfs forgets it only after.
    ctx.direct = nullptr;
    direct.reset();
    vfs.set_layout_leases(nullptr);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
  }
  ctx.direct = nullptr;
  direct.reset();
  vfs.set_layout_leases(nullptr);
  vfs.set_attr_invalidator(nullptr);
  fuse_session_destroy(se);
  st = vfs.Shutdown();
  if (!st.ok()) {
    spdlog::error("unmount: {}", st.ToString());
    rc = 1;
  }
  spdlog::info("unmounted {}", mo.mountpoint);
  return rc;
}

int Main(int argc, char** argv) {
  auto parsed = ParseMountOptions(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "nosyncfs: %s (nosyncfs --help lists the options)\n",
                 parsed.status().message().c_str());
    return 1;
  }
  const MountOptions& mo = *parsed;
  if (mo.help) {
    std::fputs(kMountUsage, stdout);
    return 0;
  }
  // A remount changes the live mount; the process that asks mounts nothing.
  if (mo.remount) return RunRemount(mo);
  SetUpLogging(mo);
  struct stat st;
  if (stat(mo.mountpoint.c_str(), &st) != 0) {
    std::fprintf(stderr, "nosyncfs: mount point %s does not exist\n", mo.mountpoint.c_str());
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "nosyncfs: mount point %s is not a directory\n", mo.mountpoint.c_str());
    return 1;
  }
  if (auto existing = FindLiveMount(mo.device)) {
    // Its daemon holds the device: share that mount instead of failing.
    Status bound = BindExistingMount(*existing, mo.mountpoint, mo.volume.read_only);
    if (!bound.ok()) {
      std::fprintf(stderr, "nosyncfs: %s is in use by the nosyncfs mount on %s: %s\n",
                   mo.device.c_str(), existing->mount_point.c_str(), bound.message().c_str());
      return 1;
    }
    spdlog::info("already mounted on {}; {} now shows the same file system{}, served by that "
                 "mount's daemon",
                 existing->mount_point, mo.mountpoint, mo.volume.read_only ? " (read-only)" : "");
    return 0;
  }
  const std::string lock_wait_note = WaitForDeviceLock(mo);
  if (mo.foreground) {
    StartupReporter reporter(-1);
    return Serve(mo, &reporter, false, lock_wait_note);
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("nosyncfs: pipe");
    return 1;
  }
  pid_t child = fork();
  if (child < 0) {
    std::perror("nosyncfs: fork");
    return 1;
  }
  if (child > 0) {
    close(fds[1]);
    return WaitForChild(child, fds[0]);
  }
  close(fds[0]);
  StartupReporter reporter(fds[1]);
  return Serve(mo, &reporter, true, lock_wait_note);
}

}  // namespace
}  // namespace nosyncfs

int main(int argc, char** argv) { return nosyncfs::Main(argc, argv); }
