// Real-mount test fixture: a fresh image formatted with mkfs.nosyncfs, the
// nosyncfs daemon started in the foreground on a private mount point, and
// cleanup that always unmounts and removes everything, whatever the test's
// outcome.
//
// Only processes this fixture started are ever signalled (by pid). Nothing
// here is thread-safe: use a TestVolume from the Catch test thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tests/harness/transport_mode.h"

namespace nosyncfs::test {

// Path of a built binary (mkfs.nosyncfs, nosyncfs) in NSF_BIN_DIR.
std::string BinPath(const std::string& name);

// Outcome of RunCommand.
struct CommandResult {
  // Exit status when the command exited normally, -1 otherwise (signal or
  // timeout).
  int exit_status = -1;
  bool timed_out = false;
  std::string out;  // standard output
  std::string err;  // standard error
  // One line for failure messages: status and stderr.
  std::string Describe() const;
};

// Runs argv[0] (looked up in PATH when it has no '/') with stdin from
// /dev/null, capturing stdout and stderr. Waits at most `timeout`, then kills
// the child (only the one it started) and reports timed_out. Output is
// captured into memory files, so a grandchild that keeps our stdout open (a
// daemon that forgot to close it) cannot make this hang.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The file system type of what is mounted exactly at `mountpoint` (as listed
// in /proc/self/mountinfo, e.g. "fuse.nosyncfs"), or nullopt if nothing is.
std::optional<std::string> MountedFsType(const std::string& mountpoint);
// The per-superblock options of that mount (e.g.
// "rw,user_id=0,group_id=0,default_permissions,allow_other"), or nullopt.
std::optional<std::string> MountSuperOptions(const std::string& mountpoint);
// The per-mount options (e.g. "rw,nosuid,nodev,noatime"), or nullopt.
std::optional<std::string> MountPointOptions(const std::string& mountpoint);
inline bool IsMounted(const std::string& mountpoint) {
  return MountedFsType(mountpoint).has_value();
}

// Unmounts whatever is mounted at `mountpoint` with fusermount3 -u, retrying
// for up to `timeout` while it is busy, then lazily (-uz) as a last resort.
// Returns true if nothing is mounted there afterwards.
bool ForceUnmount(const std::string& mountpoint,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Aborts the FUSE connection of what is mounted at `mountpoint`, through
// /sys/fs/fuse/connections (mounting fusectl there if needed): every request
// on it fails at once, so processes stuck on a daemon that cannot answer
// are freed, and a daemon stuck on its own mount can exit. True if the
// abort was written.
bool AbortFuseConnection(const std::string& mountpoint);

// The kernel stack of every thread of pid (/proc/PID/task/*/stack, root
// only), for a report of where a process hangs.
std::string KernelStacks(pid_t pid);

// Waits up to `timeout` for pid (a child of this process) to exit and reaps
// it. Returns its wait status, or nullopt if it is still running.
std::optional<int> WaitChild(pid_t pid, std::chrono::milliseconds timeout);

// A private temporary directory, removed with its contents on destruction
// unless something is still mounted below it (then it is kept and reported,
// never deleted through a mount).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One test file system: image + metadata store + mount point + daemon.
class TestVolume {
 public:
  struct Options {
    uint64_t image_bytes = 64ull << 20;
    uint32_t block_size = 0;       // 0: mkfs's default
    bool format = true;            // false: leave the image unformatted (empty)
    std::vector<std::string> mkfs_args;  // extra mkfs.nosyncfs arguments
  };

  // Creates the temp dir and the mount point, and formats a fresh image
  // (REQUIREs that mkfs succeeds). Does not mount.
  TestVolume();
  explicit TestVolume(const Options& options);
  // Unmounts (killing our daemon if it hangs), unmounts anything still
  // mounted on our mount points, and removes the temp dir. If the test has
  // failed, prints the daemon's log to stderr.
  ~TestVolume();
  TestVolume(const TestVolume&) = delete;
  TestVolume& operator=(const TestVolume&) = delete;

  // Starts `nosyncfs IMAGE MOUNTPOINT -f -o OPTIONS` and waits (at most 20 s)
  // until the mount shows in /proc/self/mountinfo and its daemon has said
  // which transport it serves over. Fails the test with the daemon's log
  // if it exits early, never mounts, or serves over another transport than
  // transport() (or /dev/fuse, with uring=off) (transport_mode.h). The
  // options are remembered for Remount(). Under NSF_EVICT_SEED,
  // emulate=strict is passed as emulate=evict:SEED (evict_mode.h).
  void Mount(const std::string& options = "emulate=strict");
  // fusermount3 -u, then waits for the daemon to exit and CHECKs that it
  // exited with status 0. Kills our daemon if it does not exit in time.
  void Unmount();
  // Unmount() + Mount() with the last options (or `options` if given).
  void Remount(std::optional<std::string> options = std::nullopt);
  // As a script does: fusermount3 -u, then at once (without waiting for the
  // daemon to finish its shutdown) a new mount with the same options; then
  // CHECKs that the old daemon exited with status 0. With `hold`, the old
  // daemon is stopped (SIGSTOP) before the unmount and continued only after
  // `hold`, so the new mount certainly finds the device still locked.
  void RemountAtOnce(std::chrono::milliseconds hold = std::chrono::milliseconds(0));
  // SIGKILL to our daemon (a power loss under emulate=strict), reap it, and
  // clear the dead mount so that the mount point can be used again.
  void KillDaemon();
  // The two halves of KillDaemon, for tests that must close descriptors on
  // the dead mount before it is unmounted. SigkillDaemon returns how long
  // the daemon took to exit; one that has not exited within `limit` fails
  // the test with every thread's kernel stack, after its connection is
  // aborted so that it can exit and nothing stays hung on the mount.
  std::chrono::milliseconds SigkillDaemon(
      std::chrono::milliseconds limit = std::chrono::seconds(10));
  void ClearDeadMount();

  // The transport the next mounts are made for: the run's
  // (NSF_TEST_TRANSPORT) unless set.
  Transport transport() const { return transport_; }
  void set_transport(Transport transport) { transport_ = transport; }

  bool mounted() const { return daemon_pid_ > 0; }
  pid_t daemon_pid() const { return daemon_pid_; }
  // Exit status of the last daemon that exited (wait status decoded: exit
  // code, or 128 + signal), or -1 if none exited yet.
  int last_daemon_exit() const { return last_exit_; }

  const std::string& dir() const { return tmp_.path(); }
  const std::string& image() const { return image_; }
  const std::string& mountpoint() const { return mountpoint_; }
  // The default metadata directory mkfs uses for an image file.
  std::string meta_dir() const { return image_ + ".meta"; }
  uint32_t block_size() const { return block_size_; }
  // mountpoint() + "/" + rel.
  std::string Path(const std::string& rel) const;

  // Creates another empty directory under dir() to mount on (for "in use"
  // tests) and registers it so the destructor unmounts it.
  std::string NewMountPoint(const std::string& name);
  // A path under dir() (not created).
  std::string TempPath(const std::string& name) const { return dir() + "/" + name; }

  // Runs mkfs.nosyncfs with `args` (RunCommand, 60 s).
  static CommandResult RunMkfs(const std::vector<std::string>& args);
  // Runs the daemon binary with `args` without the fixture's bookkeeping
  // (for tests of error exits and daemon mode). Any mount point in args
  // should come from mountpoint()/NewMountPoint(), so that a mount the test
  // did not expect is still cleaned up.
  static CommandResult RunDaemon(const std::vector<std::string>& args,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // `mount -o remount,OPTIONS MOUNTPOINT` as mount.fuse3 passes it on to
  // the daemon's program, mount(8) having added the mount's kernel options
  // (the whole way through mount(8) is tests/install/remount_test.sh).
  CommandResult RunRemount(const std::string& options) const;
  // Waits (bounded) until no process has a file under dir() open, e.g. a
  // daemonized nosyncfs finishing its shutdown after fusermount3 -u.
  // Returns false on timeout.
  bool WaitUntilReleased(std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  // The processes (other than this one) with a file under dir() open, e.g.
  // the daemon of a mount made by RunDaemon.
  std::vector<pid_t> Holders() const;

  // Everything the daemon(s) wrote to stdout/stderr so far.
  std::string DaemonLog() const;

 private:
  void Cleanup() noexcept;
  std::string log_path() const { return dir() + "/daemon.log"; }

  TempDir tmp_;
  std::string image_;
  std::string mountpoint_;
  std::vector<std::string> mountpoints_;  // every mount point to clean up
  uint32_t block_size_ = 4096;
  std::string options_ = "emulate=strict";
  pid_t daemon_pid_ = -1;
  int last_exit_ = -1;
  int mount_count_ = 0;
  Transport transport_ = TestTransport();
};

// Runs fsck.nosyncfs on the (unmounted) image: recovery plus the offline
// checker must find nothing wrong (SEMANTICS.md section 6). CHECKs.
void ExpectFsckClean(const TestVolume& v);

}  // namespace nosyncfs::test
