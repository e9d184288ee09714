#include "tests/harness/stress.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace nosyncfs::test {
namespace {

constexpr int kDirs = 4;
constexpr int kNamesPerThread = 6;

std::string FileName(int i) { return "f" + std::to_string(i); }
std::string DirName(int d) { return "d" + std::to_string(d); }
std::string OwnName(int dir, int thread, int k) {
  return DirName(dir) + "/t" + std::to_string(thread) + "_n" + std::to_string(k);
}
std::string OwnDir(int parent, int thread) {
  return DirName(parent) + "/t" + std::to_string(thread) + "_dir";
}

}  // namespace

// What the file system must hold.
class StressModel {
 public:
  struct File {
    std::shared_mutex mu;  // shared: data operations; exclusive: truncate
    std::vector<char> bytes;
    std::atomic<uint64_t> size{0};
    uint64_t ino = 0;
    StressFs::Handle handle = 0;
  };
  // A thread's own names: k -> (directory, file).
  using Names = std::map<int, std::pair<int, int>>;

  explicit StressModel(const StressOptions& o) : options(o) {
    files.resize(o.files);
    for (auto& f : files) {
      f = std::make_unique<File>();
      f->bytes.assign(capacity(), '\0');
    }
    names.resize(o.threads);
    own_dir_parent.assign(o.threads, 0);
  }
  uint64_t capacity() const { return options.region_bytes * options.threads; }

  StressOptions options;
  std::vector<std::unique_ptr<File>> files;
  std::vector<Names> names;          // per thread, touched by that thread only
  std::vector<int> own_dir_parent;   // per thread

  std::mutex failure_mu;
  std::atomic<bool> failed{false};
  Status failure;

  void Fail(const Status& st) {
    std::lock_guard lock(failure_mu);
    if (!failed.exchange(true)) failure = st;
  }
};

namespace {

// One thread of the stress test.
class Worker {
 public:
  Worker(StressModel& m, StressFs& fs, int id)
      : m_(m), fs_(fs), id_(id), rng_(m.options.seed * 1000003 + static_cast<uint64_t>(id)) {}

  void Run() {
    for (int op = 0; op < m_.options.ops_per_thread && !m_.failed.load(); ++op) {
      op_ = op;
      Status st = Step();
      if (!st.ok()) {
        m_.Fail(st.WithContext("seed " + std::to_string(m_.options.seed) + ", thread " +
                               std::to_string(id_) + ", op " + std::to_string(op) + " (" +
                               what_ + ")"));
      }
    }
  }

 private:
  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  uint64_t RegionStart() const { return m_.options.region_bytes * static_cast<uint64_t>(id_); }
  uint64_t RegionEnd() const { return RegionStart() + m_.options.region_bytes; }

  // A random range inside this thread's region.
  std::pair<uint64_t, uint64_t> RandomRange(uint64_t max_len) {
    uint64_t off = RegionStart() + Rand(m_.options.region_bytes);
    if (Rand(4) == 0) off &= ~uint64_t{4095};
    uint64_t len = 1 + Rand(std::min(max_len, RegionEnd() - off));
    return {off, len};
  }

  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    uint64_t x = rng_() | 1;
    for (auto& c : s) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = static_cast<char>((x & 0xfe) | 1);  // never zero
    }
    return s;
  }

  static void GrowTo(StressModel::File& f, uint64_t end) {
    uint64_t cur = f.size.load();
    while (end > cur && !f.size.compare_exchange_weak(cur, end)) {
    }
  }

  static Status Mismatch(const std::string& what) { return Status::Error(EIO, what); }

  Status Step() {
    uint64_t dice = Rand(100);
    int fi = static_cast<int>(Rand(m_.files.size()));
    StressModel::File& f = *m_.files[fi];
    if (dice < 28) return Write(f);
    if (dice < 52) return Read(f);
    if (dice < 58) return Punch(f);
    if (dice < 63) return Zero(f);
    if (dice < 66) return Allocate(f);
    if (dice < 72) return Copy(fi);
    if (dice < 75) return Truncate(f);
    if (dice < 78) return Nosync(f);
    if (dice < 81) return Sync(f);
    if (dice < 87) return RenameName();
    if (dice < 91) return LinkName(fi);
    if (dice < 94) return UnlinkName();
    if (dice < 97) return CheckName();
    return MoveOwnDir();
  }

  Status Write(StressModel::File& f) {
    what_ = "write";
    std::shared_lock lock(f.mu);
    auto [off, len] = RandomRange(Rand(3) == 0 ? m_.options.region_bytes : 16384);
    std::string data = Bytes(len);
    NSF_RETURN_IF_ERROR(fs_.Pwrite(f.handle, off, data));
    std::copy(data.begin(), data.end(), f.bytes.begin() + static_cast<ptrdiff_t>(off));
    GrowTo(f, off + len);
    return Status::Ok();
  }

  Status Read(StressModel::File& f) {
    what_ = "read";
    std::shared_lock lock(f.mu);
    auto [off, len] = RandomRange(m_.options.region_bytes);
    uint64_t size_before = f.size.load();
    NSF_ASSIGN_OR_RETURN(std::string got, fs_.Pread(f.handle, off, len));
    // The size only grows while we hold the lock shared; bytes past the
    // old size in our region are ours and still zero.
    uint64_t at_least = off < size_before ? std::min<uint64_t>(len, size_before - off) : 0;
    if (got.size() < at_least || got.size() > len) {
      return Mismatch("read " + std::to_string(got.size()) + " bytes at " + std::to_string(off) +
                      ", expected at least " + std::to_string(at_least));
    }
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] != f.bytes[off + i]) {
        return Mismatch("byte " + std::to_string(off + i) + " reads " +
                        std::to_string(static_cast<unsigned char>(got[i])) + ", model has " +
                        std::to_string(static_cast<unsigned char>(f.bytes[off + i])));
      }
    }
    return Status::Ok();
  }

  Status Punch(StressModel::File& f) {
    what_ = "punch";
    std::shared_lock lock(f.mu);
    auto [off, len] = RandomRange(32768);
    NSF_RETURN_IF_ERROR(fs_.Fallocate(f.handle, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len));
    std::fill_n(f.bytes.begin() + static_cast<ptrdiff_t>(off), len, '\0');
    return Status::Ok();
  }

  Status Zero(StressModel::File& f) {
    what_ = "zero range";
    std::shared_lock lock(f.mu);
    auto [off, len] = RandomRange(32768);
    bool keep = Rand(2) == 0;
    NSF_RETURN_IF_ERROR(fs_.Fallocate(
        f.handle, FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0), off, len));
    std::fill_n(f.bytes.begin() + static_cast<ptrdiff_t>(off), len, '\0');
    if (!keep) GrowTo(f, off + len);
    return Status::Ok();
  }

  Status Allocate(StressModel::File& f) {
    what_ = "fallocate";
    std::shared_lock lock(f.mu);
    auto [off, len] = RandomRange(65536);
    NSF_RETURN_IF_ERROR(fs_.Fallocate(f.handle, 0, off, len));
    GrowTo(f, off + len);
    return Status::Ok();
  }

  Status Copy(int from) {
    what_ = "copy_file_range";
    if (m_.files.size() < 2) return Status::Ok();
    int to = static_cast<int>((from + 1 + Rand(m_.files.size() - 1)) % m_.files.size());
    StressModel::File& in = *m_.files[from];
    StressModel::File& out = *m_.files[to];
    // Model locks in file order (a shared lock waits behind a queued
    // exclusive one, so two files' locks need an order too).
    std::shared_lock first(m_.files[std::min(from, to)]->mu);
    std::shared_lock second(m_.files[std::max(from, to)]->mu);
    auto [off_in, len] = RandomRange(65536);
    uint64_t off_out = RegionStart() + Rand(m_.options.region_bytes - len + 1);
    uint64_t size_before = in.size.load();
    NSF_ASSIGN_OR_RETURN(size_t n, fs_.CopyRange(in.handle, off_in, out.handle, off_out, len));
    uint64_t at_least = off_in < size_before ? std::min<uint64_t>(len, size_before - off_in) : 0;
    if (n < at_least || n > len) {
      return Mismatch("copied " + std::to_string(n) + " bytes, expected at least " +
                      std::to_string(at_least));
    }
    std::copy_n(in.bytes.begin() + static_cast<ptrdiff_t>(off_in), n,
                out.bytes.begin() + static_cast<ptrdiff_t>(off_out));
    if (n > 0) GrowTo(out, off_out + n);
    return Status::Ok();
  }

  Status Truncate(StressModel::File& f) {
    what_ = "truncate";
    std::unique_lock lock(f.mu);
    uint64_t size = Rand(m_.capacity() + 1);
    NSF_RETURN_IF_ERROR(fs_.Truncate(f.handle, size));
    std::fill(f.bytes.begin() + static_cast<ptrdiff_t>(size), f.bytes.end(), '\0');
    f.size.store(size);
    return Status::Ok();
  }

  Status Nosync(StressModel::File& f) {
    what_ = "user.nosync";
    std::shared_lock lock(f.mu);
    // Setting and clearing the flag never changes a byte.
    switch (Rand(3)) {
      case 0: return fs_.SetNosync(f.handle, "0-" + std::to_string(m_.capacity()));
      case 1: {
        uint64_t start = RegionStart() & ~uint64_t{4095};
        return fs_.SetNosync(f.handle, std::to_string(start) + "+" +
                                           std::to_string(m_.options.region_bytes));
      }
      default: return fs_.SetNosync(f.handle, "");
    }
  }

  Status Sync(StressModel::File& f) {
    what_ = "fsync";
    if (Rand(5) == 0) return fs_.SyncAll();
    return fs_.Fsync(f.handle);
  }

  int RandomOwnName(bool existing) {
    auto& names = m_.names[id_];
    if (existing) {
      if (names.empty()) return -1;
      auto it = names.begin();
      std::advance(it, static_cast<long>(Rand(names.size())));
      return it->first;
    }
    return static_cast<int>(Rand(kNamesPerThread));
  }

  Status LinkName(int fi) {
    what_ = "link";
    auto& names = m_.names[id_];
    int k = RandomOwnName(false);
    if (names.count(k)) return Status::Ok();
    int dir = static_cast<int>(Rand(kDirs));
    NSF_RETURN_IF_ERROR(fs_.Link(FileName(fi), OwnName(dir, id_, k)));
    names[k] = {dir, fi};
    return Status::Ok();
  }

  Status RenameName() {
    what_ = "rename";
    auto& names = m_.names[id_];
    int k = RandomOwnName(true);
    if (k < 0) return Status::Ok();
    int k2 = RandomOwnName(false);
    int dir2 = static_cast<int>(Rand(kDirs));
    // An existing own name k2 lives in one directory: renaming onto it
    // replaces it (own names are unique by k).
    if (names.count(k2)) dir2 = names[k2].first;
    auto [dir, fi] = names[k];
    NSF_RETURN_IF_ERROR(fs_.Rename(OwnName(dir, id_, k), OwnName(dir2, id_, k2)));
    auto victim = names.find(k2);
    bool same_path = k == k2 && dir == dir2;
    if (same_path) return Status::Ok();
    if (victim != names.end() && victim->second == std::make_pair(dir2, fi)) {
      // Both names are links to one file: rename does nothing.
      return Status::Ok();
    }
    names.erase(k);
    names[k2] = {dir2, fi};
    return Status::Ok();
  }

  Status UnlinkName() {
    what_ = "unlink";
    auto& names = m_.names[id_];
    int k = RandomOwnName(true);
    if (k < 0) return Status::Ok();
    auto [dir, fi] = names[k];
    NSF_RETURN_IF_ERROR(fs_.Unlink(OwnName(dir, id_, k)));
    names.erase(k);
    return Status::Ok();
  }

  Status CheckName() {
    what_ = "lookup";
    auto& names = m_.names[id_];
    int k = RandomOwnName(true);
    if (k < 0) return Status::Ok();
    auto [dir, fi] = names[k];
    NSF_ASSIGN_OR_RETURN(uint64_t ino, fs_.InoOfPath(OwnName(dir, id_, k)));
    if (ino != m_.files[fi]->ino) return Mismatch(OwnName(dir, id_, k) + " names the wrong inode");
    return Status::Ok();
  }

  Status MoveOwnDir() {
    what_ = "rename directory";
    int from = m_.own_dir_parent[id_];
    int to = static_cast<int>(Rand(kDirs));
    NSF_RETURN_IF_ERROR(fs_.Rename(OwnDir(from, id_), OwnDir(to, id_)));
    m_.own_dir_parent[id_] = to;
    // A directory never moves into itself.
    Status st = fs_.Rename(DirName(to), OwnDir(to, id_) + "/sub/x");
    if (st.code() != EINVAL) {
      return Mismatch("moving a directory into its own subtree: " + st.ToString());
    }
    return Status::Ok();
  }

  StressModel& m_;
  StressFs& fs_;
  int id_;
  std::mt19937_64 rng_;
  int op_ = 0;
  const char* what_ = "";
};

// Compares one file with the model (no thread runs).
Status VerifyFile(StressFs& fs, StressModel& m, int fi, StressFs::Handle h) {
  StressModel::File& f = *m.files[fi];
  std::string where = FileName(fi) + ": ";
  NSF_ASSIGN_OR_RETURN(uint64_t size, fs.Size(h));
  if (size != f.size.load()) {
    return Status::Error(EIO, where + "size " + std::to_string(size) + ", model " +
                                  std::to_string(f.size.load()));
  }
  NSF_ASSIGN_OR_RETURN(std::string got, fs.Pread(h, 0, m.capacity() + 4096));
  if (got.size() != size) return Status::Error(EIO, where + "read " + std::to_string(got.size()));
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != f.bytes[i]) return Status::Error(EIO, where + "byte " + std::to_string(i));
  }
  uint64_t names = 1;
  for (const auto& own : m.names) {
    for (const auto& [k, where_to] : own) names += where_to.second == fi;
  }
  NSF_ASSIGN_OR_RETURN(uint64_t nlink, fs.Nlink(h));
  if (nlink != names) {
    return Status::Error(EIO, where + "nlink " + std::to_string(nlink) + ", model " +
                                  std::to_string(names));
  }
  return Status::Ok();
}

Status VerifyNames(StressFs& fs, StressModel& m) {
  for (size_t t = 0; t < m.names.size(); ++t) {
    for (const auto& [k, where_to] : m.names[t]) {
      std::string path = OwnName(where_to.first, static_cast<int>(t), k);
      NSF_ASSIGN_OR_RETURN(uint64_t ino, fs.InoOfPath(path));
      if (ino != m.files[where_to.second]->ino) return Status::Error(EIO, path + ": wrong inode");
    }
  }
  return Status::Ok();
}

}  // namespace

StressTest::StressTest(const StressOptions& options)
    : options_(options), model_(std::make_unique<StressModel>(options)) {}

StressTest::~StressTest() = default;

Status StressTest::Run(StressFs& fs) {
  StressModel& m = *model_;
  for (int d = 0; d < kDirs; ++d) NSF_RETURN_IF_ERROR(fs.Mkdir(DirName(d)));
  for (int t = 0; t < options_.threads; ++t) {
    NSF_RETURN_IF_ERROR(fs.Mkdir(OwnDir(0, t)));
    NSF_RETURN_IF_ERROR(fs.Mkdir(OwnDir(0, t) + "/sub"));
  }
  for (int i = 0; i < options_.files; ++i) {
    NSF_ASSIGN_OR_RETURN(m.files[i]->handle, fs.CreateFile(FileName(i)));
    NSF_ASSIGN_OR_RETURN(m.files[i]->ino, fs.InoOf(m.files[i]->handle));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < options_.threads; ++t) {
    threads.emplace_back([&, t] { Worker(m, fs, t).Run(); });
  }
  for (auto& th : threads) th.join();
  if (m.failed.load()) {
    fs.CloseAll();
    return m.failure;
  }
  for (int i = 0; i < options_.files; ++i) {
    Status st = VerifyFile(fs, m, i, m.files[i]->handle);
    if (!st.ok()) {
      fs.CloseAll();
      return st.WithContext("after the run (seed " + std::to_string(options_.seed) + ")");
    }
  }
  fs.CloseAll();
  return VerifyNames(fs, m);
}

Status StressTest::Verify(StressFs& fs) {
  StressModel& m = *model_;
  for (int i = 0; i < options_.files; ++i) {
    NSF_ASSIGN_OR_RETURN(StressFs::Handle h, fs.OpenFile(FileName(i)));
    NSF_ASSIGN_OR_RETURN(uint64_t ino, fs.InoOf(h));
    if (ino != m.files[i]->ino) return Status::Error(EIO, FileName(i) + ": another inode");
    Status st = VerifyFile(fs, m, i, h);
    if (!st.ok()) {
      fs.CloseAll();
      return st;
    }
  }
  fs.CloseAll();
  return VerifyNames(fs, m);
}

}  // namespace nosyncfs::test
