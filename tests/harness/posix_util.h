// Small helpers for the real-mount POSIX tests (tests/posix): errno checks
// that print readable names, RAII file descriptors, deterministic data
// patterns, bounded polling, and running code as an unprivileged user.
//
// Everything here is meant for the test process's main thread unless a
// function says otherwise; helpers that use REQUIRE must only be called from
// the Catch test thread (never from a forked child or a worker thread).
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

namespace nosyncfs::test {

// uid/gid of "nobody", used to test permission errors as a non-root user.
inline constexpr uid_t kNobody = 65534;
inline constexpr gid_t kNogroup = 65534;

// An errno value that Catch prints by name ("ENOENT(2)") in failed checks.
// Zero means success.
struct Errno {
  int value = 0;
  friend bool operator==(Errno a, int b) { return a.value == b; }
  friend bool operator!=(Errno a, int b) { return a.value != b; }
};

// Returns Errno{errno} when `rc` is -1 and Errno{0} otherwise. Wrap the
// system call directly so that nothing runs between it and the errno read:
//   CHECK(ErrnoOf(mkdir(p.c_str(), 0755)) == EEXIST);
Errno ErrnoOf(long rc);

// "ENOENT" for ENOENT, or the number as text for unknown values.
std::string ErrnoName(int err);

// Owns one file descriptor; closes it on destruction. Remembers the errno of
// a failed open so that callers can check it after construction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd, int err = 0) : fd_(fd), err_(err) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_), err_(other.err_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  // errno of the failed open, 0 if the open succeeded.
  Errno error() const { return Errno{err_}; }
  // Closes the descriptor now; returns close()'s errno (0 on success), so a
  // test can check that close itself succeeds.
  int reset();

 private:
  int fd_ = -1;
  int err_ = 0;
};

// open(2) wrapped in an Fd (the errno is kept on failure).
Fd Open(const std::string& path, int flags, mode_t mode = 0644);
// open(2) that must succeed; fails the test (REQUIRE) otherwise.
Fd MustOpen(const std::string& path, int flags, mode_t mode = 0644);
// Opens, closes again, and returns the open's errno (0 on success).
Errno OpenErrno(const std::string& path, int flags, mode_t mode = 0644);

// Deterministic, never-zero bytes for [offset, offset + n) of a stream
// identified by `seed`; a byte depends on its absolute offset, so data that
// lands in the wrong place, or another file's data, is detected, and zero
// always means "hole / never written".
std::string Pattern(uint64_t seed, size_t n, uint64_t offset = 0);
// The byte that Pattern(seed, 1, offset) returns.
char PatternByte(uint64_t seed, uint64_t offset);

// "" when a == b, otherwise a short description of the first difference
// (lengths, offset, bytes); keeps failed checks readable for MiB-sized data.
std::string FirstMismatch(std::string_view actual, std::string_view expected);

// Writes all of `data` at `offset` with pwrite, retrying short writes; fails
// the test on error.
void MustPwrite(int fd, std::string_view data, uint64_t offset);
// Reads up to n bytes at offset (less only at EOF); fails the test on error.
std::string MustPread(int fd, size_t n, uint64_t offset);
// Creates/truncates `path` and writes `data`; fails the test on error.
void WriteFile(const std::string& path, std::string_view data, mode_t mode = 0644);
// Whole content of `path`; fails the test on error.
std::string ReadFile(const std::string& path);

// stat/lstat/statvfs that must succeed (REQUIRE).
struct stat MustStat(const std::string& path);
struct stat MustLstat(const std::string& path);
struct stat MustFstat(int fd);
struct statvfs MustStatvfs(const std::string& path);

// Makes everything on the mount durable: fsync(2) of the directory `dir`.
// syncfs(2) cannot do this on a FUSE file system (Linux forwards FUSE_SYNCFS
// to virtiofs only, so the daemon never hears of it); nosyncfs therefore
// commits the whole file system on fsync of any directory.
void SyncWholeFs(const std::string& dir);

// The bytes of `path` its user.nosync.extents lists as NF.
uint64_t NfBytes(const std::string& path);

// The daemon's statistics (the user.nosyncfs.stats xattr of the mount's
// root, "key value" lines): FUSE requests by opcode ("requests_write"), and
// counters such as "device_persists". Reading them is itself one GETXATTR
// request, counted in what it returns. REQUIREs that they can be read, and
// that every line is "key value". MountStats keeps the integer values;
// MountStatsText every value as text.
std::map<std::string, uint64_t> MountStats(const std::string& mountpoint);
std::map<std::string, std::string> MountStatsText(const std::string& mountpoint);
// The FUSE requests among MountStats (the requests_* keys), summed.
uint64_t RequestCount(const std::map<std::string, uint64_t>& stats);

// Whether `text` contains `part`.
inline bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}
// Whether the comma-separated option list `options` (a mount's) has `name`.
inline bool HasOption(const std::string& options, const std::string& name) {
  return ("," + options + ",").find("," + name + ",") != std::string::npos;
}

// Names in a directory, without "." and "..", via opendir/readdir.
std::set<std::string> ListDir(const std::string& path);

// Every regular file among `paths` and under those that are directories,
// by path, with a hash of its bytes: equal snapshots mean nothing was
// written, created or removed (to show that a read-only open or fsck -n
// changed nothing). Skips anything mounted below a directory.
std::map<std::string, size_t> SnapshotFiles(const std::vector<std::string>& paths);

// Polls `done` every `interval` until it returns true or `timeout` passes.
// Returns the last result. For effects that the kernel delivers
// asynchronously (FUSE release/forget after close or unlink).
bool WaitUntil(const std::function<bool()>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(10),
               std::chrono::milliseconds interval = std::chrono::milliseconds(5));

// Timestamps. (The comparison operators for timespec live in the global
// namespace, below, so that Catch's expression templates find them by ADL.)
std::string ToString(const timespec& t);
// CLOCK_REALTIME now: an upper bound for any timestamp taken before it.
timespec RealNow();
// CLOCK_REALTIME_COARSE now: a lower bound for any timestamp taken after it,
// whether the daemon (or kernel) reads the fine or the coarse clock.
timespec CoarseNow();
// Returns once the real-time clock, read with the coarse clock that kernels
// and daemons may use for timestamps, has moved past `t`, so that a
// timestamp taken after this call is strictly later than `t`. Bounded (1 s).
void WaitClockPast(const timespec& t);

// Runs `fn` in a forked child that first drops to uid/gid (and no
// supplementary groups), and returns fn's result. Made for checking errno as
// an unprivileged user:
//   CHECK(RunAs(kNobody, kNogroup, [&] { return ErrnoOf(open(...)).value; }) == EACCES);
// `fn` runs in the child: it must not use Catch macros, and should only make
// system calls. Returns kRunAsFailed if the child could not switch user,
// crashed, or did not finish within `timeout` (it is then killed).
inline constexpr int kRunAsFailed = -1000;
int RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn,
          std::chrono::milliseconds timeout = std::chrono::seconds(30));
// The same with these supplementary groups.
int RunAs(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<int()>& fn,
          std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace nosyncfs::test

// Ordering of timestamps, for checks such as CHECK(before < st.st_mtim).
bool operator<(const timespec& a, const timespec& b);
bool operator==(const timespec& a, const timespec& b);
inline bool operator!=(const timespec& a, const timespec& b) { return !(a == b); }
inline bool operator<=(const timespec& a, const timespec& b) { return !(b < a); }

namespace Catch {
template <>
struct StringMaker<nosyncfs::test::Errno> {
  static std::string convert(const nosyncfs::test::Errno& e) {
    return nosyncfs::test::ErrnoName(e.value);
  }
};
template <>
struct StringMaker<timespec> {
  static std::string convert(const timespec& t) { return nosyncfs::test::ToString(t); }
};
}  // namespace Catch
