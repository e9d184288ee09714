// The multi-threaded stress test (tests/harness/stress.h) through a real
// mount: the kernel's FUSE client sends the requests, the daemon's threads
// serve them in parallel.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <mutex>
#include <vector>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"
#include "tests/harness/stress.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

Status Errno(long rc, const std::string& what) {
  if (rc >= 0) return Status::Ok();
  return ErrnoStatus(what);
}

class PosixStressFs final : public StressFs {
 public:
  explicit PosixStressFs(std::string root) : root_(std::move(root)) {}

  Result<Handle> CreateFile(const std::string& path) override {
    return Keep(::open(P(path).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644), path);
  }
  Result<Handle> OpenFile(const std::string& path) override {
    return Keep(::open(P(path).c_str(), O_RDWR | O_CLOEXEC), path);
  }
  Status Mkdir(const std::string& path) override {
    return Errno(::mkdir(P(path).c_str(), 0755), "mkdir " + path);
  }
  Result<std::string> Pread(Handle h, uint64_t off, size_t len) override {
    std::string buf(len, '\0');
    size_t got = 0;
    while (got < len) {
      ssize_t n = ::pread(Fd(h), buf.data() + got, len - got, static_cast<off_t>(off + got));
      if (n < 0) return ErrnoStatus("pread");
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    buf.resize(got);
    return buf;
  }
  Status Pwrite(Handle h, uint64_t off, std::string_view data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(Fd(h), data.data() + done, data.size() - done,
                           static_cast<off_t>(off + done));
      if (n <= 0) return ErrnoStatus("pwrite");
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  Status Fallocate(Handle h, int mode, uint64_t off, uint64_t len) override {
    return Errno(::fallocate(Fd(h), mode, static_cast<off_t>(off), static_cast<off_t>(len)),
                 "fallocate");
  }
  Status Truncate(Handle h, uint64_t size) override {
    return Errno(::ftruncate(Fd(h), static_cast<off_t>(size)), "ftruncate");
  }
  Result<size_t> CopyRange(Handle in, uint64_t off_in, Handle out, uint64_t off_out,
                           size_t len) override {
    loff_t a = static_cast<loff_t>(off_in), b = static_cast<loff_t>(off_out);
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::copy_file_range(Fd(in), &a, Fd(out), &b, len - done, 0);
      if (n < 0) return ErrnoStatus("copy_file_range");
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }
  Status Fsync(Handle h) override { return Errno(::fsync(Fd(h)), "fsync"); }
  Status SyncAll() override {
    int fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open root");
    Status st = Errno(::fsync(fd), "fsync root");
    ::close(fd);
    return st;
  }
  Status SetNosync(Handle h, const std::string& ranges) override {
    if (!ranges.empty()) {
      return Errno(::fsetxattr(Fd(h), "user.nosync", ranges.data(), ranges.size(), 0),
                   "setxattr user.nosync");
    }
    if (::fremovexattr(Fd(h), "user.nosync") != 0 && errno != ENODATA) {
      return ErrnoStatus("removexattr user.nosync");
    }
    return Status::Ok();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    return Errno(::rename(P(from).c_str(), P(to).c_str()), "rename " + from + " " + to);
  }
  Status Link(const std::string& existing, const std::string& to) override {
    if (::link(P(existing).c_str(), P(to).c_str()) == 0) return Status::Ok();
    if (errno != ENOENT) return ErrnoStatus("link " + to);
    // The kernel's FUSE client keeps a file's link count itself and drops it
    // by one when an unlink returns; a GETATTR answered after the daemon
    // committed that unlink but applied before the unlink's reply lowers it
    // twice. At zero, link(2) fails with ENOENT before the daemon is asked,
    // until the entry's revalidation (after the file entry timeout of one
    // second) reads the true count. The existing file is linked once that
    // has happened; an ENOENT from the daemon itself would persist.
    ::usleep(1'200'000);
    return Errno(::link(P(existing).c_str(), P(to).c_str()), "link " + to + " (retried)");
  }
  Status Unlink(const std::string& path) override {
    return Errno(::unlink(P(path).c_str()), "unlink " + path);
  }
  Result<uint64_t> InoOfPath(const std::string& path) override {
    struct stat st;
    if (::stat(P(path).c_str(), &st) != 0) return ErrnoStatus("stat " + path);
    return static_cast<uint64_t>(st.st_ino);
  }
  Result<uint64_t> InoOf(Handle h) override {
    NSF_ASSIGN_OR_RETURN(struct stat st, Fstat(h));
    return static_cast<uint64_t>(st.st_ino);
  }
  Result<uint64_t> Size(Handle h) override {
    NSF_ASSIGN_OR_RETURN(struct stat st, Fstat(h));
    return static_cast<uint64_t>(st.st_size);
  }
  Result<uint64_t> Nlink(Handle h) override {
    NSF_ASSIGN_OR_RETURN(struct stat st, Fstat(h));
    return static_cast<uint64_t>(st.st_nlink);
  }
  void CloseAll() override {
    std::lock_guard lock(mu_);
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }
  ~PosixStressFs() override { CloseAll(); }

 private:
  std::string P(const std::string& rel) const { return root_ + "/" + rel; }
  static int Fd(Handle h) { return static_cast<int>(h); }
  Result<Handle> Keep(int fd, const std::string& path) {
    if (fd < 0) return ErrnoStatus("open " + path);
    std::lock_guard lock(mu_);
    fds_.push_back(fd);
    return static_cast<Handle>(fd);
  }
  Result<struct stat> Fstat(Handle h) {
    struct stat st;
    if (::fstat(Fd(h), &st) != 0) return ErrnoStatus("fstat");
    return st;
  }

  std::string root_;
  std::mutex mu_;
  std::vector<int> fds_;
};

}  // namespace

TEST_CASE("stress: threads racing on shared files through the mount match the model",
          "[posix][stress]") {
  StressOptions o;
  o.seed = TestSeed();
  o.ops_per_thread = 600;
  if (const char* ops = std::getenv("NSF_STRESS_OPS")) o.ops_per_thread = std::atoi(ops);
  INFO("seed " << o.seed << " (NSF_TEST_SEED replays the operations; thread interleavings vary)");
  TestVolume::Options vo;
  vo.image_bytes = 256ull << 20;
  TestVolume vol(vo);
  vol.Mount();
  StressTest test(o);
  {
    PosixStressFs fs(vol.mountpoint());
    Status st = test.Run(fs);
    INFO(st.ToString());
    REQUIRE(st.ok());
  }
  vol.Unmount();
  ExpectFsckClean(vol);
  vol.Mount();
  PosixStressFs fs(vol.mountpoint());
  Status st = test.Verify(fs);
  INFO(st.ToString());
  CHECK(st.ok());
}

}  // namespace nosyncfs::test
