// A whole nosyncfs volume without FUSE, for unit tests of the journal and
// file system layers, and a way to crash it.
//
// VolumeFixture makes an image file in a private temporary directory,
// formats it with Volume::Format and opens it (strict persistence emulation
// by default), so a test gets a Volume or a Vfs in a few lines.
//
// Crashes. Volume's destructor checkpoints and Vfs's destructor shuts down,
// so destroying either persists everything: the opposite of a power loss.
// A crash is therefore simulated in another process: RunAndCrash starts a
// fresh copy of the test binary that runs one named workload (registered
// with NSF_CRASH_WORKLOAD) on the fixture's image and then kills itself with
// SIGKILL. No destructor runs; under strict emulation the image holds only
// what the workload persisted, and the metadata store (RocksDB, WAL off)
// loses its unflushed memtable, exactly as in a real crash. The parent then
// reopens the image, which runs recovery.
//
// Why a new process image (fork + exec) and not a bare fork(): RocksDB's
// background thread pool is process-wide and is not fork-safe. A forked
// child inherits the pool's bookkeeping but none of its threads, so the
// first memtable flush in the child (a checkpoint) waits forever.
//
// Workloads run outside Catch's control (no REQUIRE in them): they use the
// CrashChild helpers, which end the child with a message on failure, and
// pass values back with CrashChild::Report. For a crash in the middle of a
// workload, arm the crash points of base/crash_point.h through RunInChild's
// environment (NSF_CRASH_AFTER=K) after counting them (NSF_CRASH_TRACE).
// Under NSF_EVICT_SEED (evict_mode.h) stores the workload did not persist
// may be in the image too, some of their 8-byte words.
//
// Example:
//   NSF_CRASH_WORKLOAD(Commit, "demo.commit") {
//     Volume& vol = child.OpenVolume();
//     Transaction t;
//     t.batch.Put("k", "v");
//     child.Report("seq", child.Must(vol.Commit(std::move(t), true), "commit"));
//   }
//   TEST_CASE(...) {
//     VolumeFixture fx;
//     CrashResult r = fx.RunAndCrash("demo.commit");
//     auto vol = fx.Open();  // recovery; "k" must be there
//   }
//
// Nothing here is thread-safe; use it from the Catch test thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "base/status.h"
#include "extent/block_run.h"
#include "fs/vfs.h"
#include "journal/volume.h"
#include "tests/harness/evict_mode.h"
#include "tests/harness/mount_fixture.h"  // TempDir, shared with the mount tests

namespace nosyncfs::test {

// A seed for a randomized test: $NSF_TEST_SEED if set (to replay a failure),
// otherwise a fresh random one. Tests INFO() it so a failure prints it.
uint64_t TestSeed();

// Creates (or truncates) `path` as a sparse file of `bytes` bytes. REQUIREs
// success.
void MakeImageFile(const std::string& path, uint64_t bytes);

// `len` bytes of a file from `off` (fewer at EOF), for inspecting an image.
// REQUIREs that the file opens.
std::string ReadFileBytes(const std::string& path, uint64_t off, size_t len);
// Overwrites bytes of a file in place with pwrite (to corrupt an image while
// nothing has it open). REQUIREs success.
void WriteFileBytes(const std::string& path, uint64_t off, std::string_view bytes);
// Flips every bit of one byte of a file.
void FlipFileByte(const std::string& path, uint64_t off);

// Opens a volume and wraps it in a Vfs (Init() included). Errors of either
// step are returned.
Result<std::unique_ptr<Vfs>> OpenVfsAt(const std::string& image, const VolumeOptions& options,
                                       const VfsOptions& vfs_options = {});

class CrashResult;

class VolumeFixture {
 public:
  struct Options {
    uint64_t image_bytes = uint64_t{64} << 20;
    uint32_t block_size = 4096;
    // false: leave the image all zeros (for tests of Format itself).
    bool format = true;
    // Open with strict persistence emulation (the only way a crash loses
    // unpersisted data).
    bool strict_emulation = true;
    // With strict emulation, nonzero: early evictions (evict_mode.h), seeded
    // with this in the test's own opens and with seeds derived from it in
    // crash children. From $NSF_EVICT_SEED unless set.
    uint64_t evict_seed = EvictSeed();
  };

  // Makes dir()/image of options.image_bytes and, unless told not to,
  // formats it (REQUIREs success). Opens nothing.
  VolumeFixture();
  explicit VolumeFixture(const Options& options);
  VolumeFixture(const VolumeFixture&) = delete;
  VolumeFixture& operator=(const VolumeFixture&) = delete;

  const std::string& dir() const { return tmp_.path(); }
  const std::string& image() const { return image_; }
  // Where Format puts the metadata store of the image (the default,
  // IMAGE.meta).
  std::string meta_dir() const { return image_ + ".meta"; }
  const Options& options() const { return options_; }
  VolumeOptions volume_options() const;
  FormatOptions format_options() const;

  // Volume::Format with format_options() (plus `force`).
  Result<Superblock> Format(bool force = false) const;

  // Volume::Open with volume_options().
  Result<std::unique_ptr<Volume>> TryOpen() const;
  // TryOpen, REQUIRE-ing success.
  std::unique_ptr<Volume> Open() const;
  // A Vfs over a freshly opened volume, Init() done; REQUIREs success.
  std::unique_ptr<Vfs> OpenVfs(const VfsOptions& vfs_options = {}) const;

  // Runs the crash workload `name` in a child process on this image (which
  // nothing in this process may have open), with `args` available through
  // CrashChild::Arg. REQUIREs that the workload ran to its end and that the
  // child then died by SIGKILL; returns what it reported.
  // `env` is added to the child's environment, e.g. NSF_CRASH_AFTER or
  // NSF_CRASH_TRACE (base/crash_point.h; the workload calls
  // CrashChild::StartCrashPoints). Those two are otherwise never inherited,
  // so a child runs unarmed unless asked.
  CrashResult RunAndCrash(const std::string& name,
                          const std::map<std::string, std::string>& args = {},
                          const std::map<std::string, std::string>& env = {}) const;
  // The same without the REQUIRE: for workloads that may end otherwise (at
  // an armed crash point, or by a crash bug of the code under test, which
  // must fail one test, not take the whole test binary down). Check
  // crashed() or killed() and print Describe().
  CrashResult RunInChild(const std::string& name,
                         const std::map<std::string, std::string>& args = {},
                         const std::map<std::string, std::string>& env = {}) const;

 private:
  Options options_;
  TempDir tmp_;
  std::string image_;
  // Children started so far, for their eviction seeds.
  mutable int children_ = 0;
};

// What a crash workload reported, and how its process ended.
class CrashResult {
 public:
  // The workload returned and the child then died by SIGKILL.
  bool crashed() const { return crashed_; }
  // The child died by SIGKILL, whether the workload had returned or not (a
  // crash point fires in the middle of it).
  bool killed() const { return killed_; }
  // The workload returned.
  bool finished() const { return values_.count("!done") != 0; }
  // The value reported under `key` ("" if none).
  std::string Get(const std::string& key) const;
  uint64_t GetU64(const std::string& key) const;
  bool Has(const std::string& key) const { return values_.count(key) != 0; }
  // Exit status, reports and the child's output, for failure messages.
  std::string Describe() const;

 private:
  friend class VolumeFixture;
  bool crashed_ = false;
  bool killed_ = false;
  std::string how_;  // how the child ended
  std::map<std::string, std::string> values_;
  std::string log_;  // the child's stdout and stderr
};

// The context of a crash workload, inside the child process.
class CrashChild {
 public:
  CrashChild(std::string image, VolumeOptions options, std::map<std::string, std::string> args,
             int report_fd);

  const std::string& image() const { return image_; }
  const VolumeOptions& volume_options() const { return options_; }
  // The argument `name` passed to RunAndCrash; fails the workload if absent.
  const std::string& Arg(const std::string& name);
  uint64_t ArgU64(const std::string& name);

  // Open the image. The child owns what they return and never destroys it:
  // a destructor would checkpoint or shut down, the opposite of a crash.
  // (Holding the result in a local unique_ptr would do exactly that when the
  // workload returns.)
  Volume& OpenVolume();
  Vfs& OpenVfs(const VfsOptions& vfs_options = {});

  // Passes `value` (any bytes) back to the test under `key`. Written at
  // once, so it survives the crash that follows.
  void Report(const std::string& key, const std::string& value);
  void Report(const std::string& key, uint64_t value) { Report(key, std::to_string(value)); }

  // Ends the workload as failed: the test sees `what` and no crash.
  [[noreturn]] void Fail(const std::string& what);
  // Fail()s with `what` and the status when it is an error.
  void Check(const Status& st, const std::string& what);
  template <typename T>
  T Must(Result<T> r, const std::string& what) {
    Check(r.status(), what);
    return std::move(r).value();
  }
  // Starts counting crash points (base/crash_point.h) from here, so that
  // NSF_CRASH_AFTER=K indexes the points the workload itself reaches, not
  // those of opening the volume.
  void StartCrashPoints();

  // Fail()s with `what` unless `cond`.
  void Expect(bool cond, const std::string& what) {
    if (!cond) Fail(what);
  }

 private:
  std::string image_;
  VolumeOptions options_;
  std::map<std::string, std::string> args_;
  int report_fd_;
  // Never destroyed: the child dies by SIGKILL (or _exit) first.
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::vector<std::unique_ptr<Vfs>> vfses_;
};

using CrashWorkloadFn = void (*)(CrashChild& child);
// Registers a workload under `name` (unique); used by NSF_CRASH_WORKLOAD.
bool RegisterCrashWorkload(const char* name, CrashWorkloadFn fn);

// Defines a crash workload at namespace scope:
//   NSF_CRASH_WORKLOAD(CommitAndCrash, "journal.commit") { ... child ... }
#define NSF_CRASH_WORKLOAD(ident, name)                                                 \
  static void ident(::nosyncfs::test::CrashChild& child);                               \
  [[maybe_unused]] static const bool ident##_registered =                               \
      ::nosyncfs::test::RegisterCrashWorkload(name, &ident);                            \
  static void ident([[maybe_unused]] ::nosyncfs::test::CrashChild& child)

// A root with one file "f" (the first new inode, one 4-block extent, no
// data written), committed durably through the Volume alone (no Vfs).
// REQUIREs that each step succeeds; returns the file's inode number.
uint64_t PopulateOneFile(Volume& v);

// ---- Vfs conveniences (REQUIRE-free; the caller asserts) -------------------

// Reads [off, off+size) through Vfs::Read into a string.
Result<std::string> VfsRead(Vfs& vfs, uint64_t ino, uint64_t off, size_t size);
// Writes all of `data` at `off`; a short write is an error (EIO) here.
Status VfsWriteAll(Vfs& vfs, uint64_t ino, uint64_t off, std::string_view data);

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  uint64_t next_off = 0;
};
// Readdir from `off`, at most `max` entries (0: all), "." and ".." included
// when off is 0.
Result<std::vector<DirEntry>> VfsReaddir(Vfs& vfs, uint64_t dir, uint64_t off, size_t max = 0);

// Deterministic, never-zero bytes; byte i depends on (seed, off + i), so data
// from another file or another offset is detected.
std::string DataPattern(uint64_t seed, size_t n, uint64_t off = 0);

}  // namespace nosyncfs::test

// How Catch prints a BlockRun in failed checks.
namespace Catch {
template <>
struct StringMaker<nosyncfs::BlockRun> {
  static std::string convert(const nosyncfs::BlockRun& r) {
    return "{" + std::to_string(r.start) + "+" + std::to_string(r.len) + "}";
  }
};
}  // namespace Catch
