// A multi-threaded stress test with a model: many threads mix reads,
// writes, punch, zero range, truncate, copy_file_range, no-fsync flag
// changes, fsync, rename, link and unlink on a few shared files, and every
// byte read is checked against the model.
//
// The same driver runs against the Vfs directly (unit test, and its
// ThreadSanitizer build) and against a real mount (posix test), through
// StressFs.
//
// How the model stays exact while threads race:
//  - Each shared file is cut into one region per thread. Data operations
//    (write, read, punch, zero, copy into) touch only the calling thread's
//    regions, so its model bytes change only under its own hands. They hold
//    the file's model lock shared, so they run in parallel.
//  - A truncate changes every region: it holds the model lock exclusively.
//    The file size is an atomic maximum of the writes' ends otherwise.
//  - Names: each thread renames, links and unlinks only names it owns (in
//    shared directories), so names never collide between threads, but the
//    directories are shared and renames cross them concurrently.
// At the end every file's bytes, size and link count are compared with the
// model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace nosyncfs::test {

// The operations the stress test drives; paths are relative to the file
// system's root ("d1/t3_n2"). Every method may be called from any thread.
class StressFs {
 public:
  virtual ~StressFs() = default;
  using Handle = uint64_t;

  // Creates a regular file (O_CREAT|O_EXCL) and keeps it open.
  virtual Result<Handle> CreateFile(const std::string& path) = 0;
  // Opens an existing regular file and keeps it open.
  virtual Result<Handle> OpenFile(const std::string& path) = 0;
  virtual Status Mkdir(const std::string& path) = 0;
  virtual Result<std::string> Pread(Handle h, uint64_t off, size_t len) = 0;
  virtual Status Pwrite(Handle h, uint64_t off, std::string_view data) = 0;
  virtual Status Fallocate(Handle h, int mode, uint64_t off, uint64_t len) = 0;
  virtual Status Truncate(Handle h, uint64_t size) = 0;
  virtual Result<size_t> CopyRange(Handle in, uint64_t off_in, Handle out, uint64_t off_out,
                                   size_t len) = 0;
  virtual Status Fsync(Handle h) = 0;
  // fsync of the root directory: the whole file system.
  virtual Status SyncAll() = 0;
  // setfattr user.nosync (an empty value clears it).
  virtual Status SetNosync(Handle h, const std::string& ranges) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // A new name `to` for the file first created as `existing`.
  virtual Status Link(const std::string& existing, const std::string& to) = 0;
  virtual Status Unlink(const std::string& path) = 0;
  virtual Result<uint64_t> InoOfPath(const std::string& path) = 0;
  virtual Result<uint64_t> InoOf(Handle h) = 0;
  virtual Result<uint64_t> Size(Handle h) = 0;
  virtual Result<uint64_t> Nlink(Handle h) = 0;
  // Closes every handle CreateFile returned.
  virtual void CloseAll() = 0;
};

struct StressOptions {
  int threads = 6;
  int files = 3;
  int ops_per_thread = 1500;
  uint64_t region_bytes = 64 << 10;  // per thread and file; a block multiple
  uint64_t seed = 1;
};

class StressModel;

class StressTest {
 public:
  explicit StressTest(const StressOptions& options);
  ~StressTest();

  // Runs the threads on `fs` (an empty file system). Returns the first
  // discrepancy or error, with the seed and the operation that found it;
  // Status::Ok() when everything matched the model. Leaves the files and
  // names in place, and no handle open.
  Status Run(StressFs& fs);
  // Checks the state Run left (bytes, sizes, names, link counts) again,
  // e.g. after a remount, on a fresh `fs`.
  Status Verify(StressFs& fs);

 private:
  StressOptions options_;
  std::unique_ptr<StressModel> model_;
};

}  // namespace nosyncfs::test
