// The multi-threaded stress test (tests/harness/stress.h) against the Vfs
// itself, as the FUSE glue would drive it: lookups counted and forgotten,
// handles opened and released. The ThreadSanitizer build runs this test.
#include <linux/falloc.h>
#include <sys/xattr.h>

#include <catch2/catch.hpp>

#include <mutex>
#include <vector>

#include "journal/checker.h"
#include "tests/harness/stress.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

class VfsStressFs final : public StressFs {
 public:
  explicit VfsStressFs(Vfs& vfs) : vfs_(vfs) {}

  Result<Handle> CreateFile(const std::string& path) override {
    NSF_ASSIGN_OR_RETURN(auto parent, Parent(path));
    NSF_ASSIGN_OR_RETURN(Entry e, vfs_.Create(parent.first, parent.second, 0644,
                                              /*exclusive=*/true, false, Caller{}));
    Keep(e.ino);  // one lookup and one open handle, as the kernel holds
    return e.ino;
  }
  Result<Handle> OpenFile(const std::string& path) override {
    NSF_ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    NSF_RETURN_IF_ERROR(vfs_.Open(ino));
    Keep(ino);
    return ino;
  }
  Status Mkdir(const std::string& path) override {
    NSF_ASSIGN_OR_RETURN(auto parent, Parent(path));
    NSF_ASSIGN_OR_RETURN(Entry e, vfs_.Mkdir(parent.first, parent.second, 0755, Caller{}));
    vfs_.Forget(e.ino, 1);
    return Status::Ok();
  }
  Result<std::string> Pread(Handle h, uint64_t off, size_t len) override {
    return VfsRead(vfs_, h, off, len);
  }
  Status Pwrite(Handle h, uint64_t off, std::string_view data) override {
    return VfsWriteAll(vfs_, h, off, data);
  }
  Status Fallocate(Handle h, int mode, uint64_t off, uint64_t len) override {
    return vfs_.Fallocate(h, mode, off, len);
  }
  Status Truncate(Handle h, uint64_t size) override {
    SetattrRequest req;
    req.set_size = true;
    req.size = size;
    return vfs_.Setattr(h, req).status();
  }
  Result<size_t> CopyRange(Handle in, uint64_t off_in, Handle out, uint64_t off_out,
                           size_t len) override {
    return vfs_.CopyFileRange(in, off_in, out, off_out, len, 0);
  }
  Status Fsync(Handle h) override { return vfs_.Fsync(h, false); }
  Status SyncAll() override { return vfs_.Fsyncdir(kRootIno); }
  Status SetNosync(Handle h, const std::string& ranges) override {
    if (!ranges.empty()) return vfs_.Setxattr(h, "user.nosync", ranges, 0);
    Status st = vfs_.Removexattr(h, "user.nosync");
    return st.code() == ENODATA ? Status::Ok() : st;
  }
  Status Rename(const std::string& from, const std::string& to) override {
    NSF_ASSIGN_OR_RETURN(auto a, Parent(from));
    NSF_ASSIGN_OR_RETURN(auto b, Parent(to));
    return vfs_.Rename(a.first, a.second, b.first, b.second, 0);
  }
  Status Link(const std::string& existing, const std::string& to) override {
    NSF_ASSIGN_OR_RETURN(uint64_t ino, Resolve(existing));
    auto parent = Parent(to);
    if (!parent.ok()) {
      vfs_.Forget(ino, 1);
      return parent.status();
    }
    auto linked = vfs_.Link(ino, parent->first, parent->second);
    vfs_.Forget(ino, linked.ok() ? 2 : 1);
    return linked.status();
  }
  Status Unlink(const std::string& path) override {
    NSF_ASSIGN_OR_RETURN(auto parent, Parent(path));
    return vfs_.Unlink(parent.first, parent.second);
  }
  Result<uint64_t> InoOfPath(const std::string& path) override {
    NSF_ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    vfs_.Forget(ino, 1);
    return ino;
  }
  Result<uint64_t> InoOf(Handle h) override { return h; }
  Result<uint64_t> Size(Handle h) override {
    NSF_ASSIGN_OR_RETURN(struct stat st, vfs_.Getattr(h));
    return static_cast<uint64_t>(st.st_size);
  }
  Result<uint64_t> Nlink(Handle h) override {
    NSF_ASSIGN_OR_RETURN(struct stat st, vfs_.Getattr(h));
    return static_cast<uint64_t>(st.st_nlink);
  }
  void CloseAll() override {
    std::lock_guard lock(mu_);
    for (uint64_t ino : kept_) {
      vfs_.Release(ino);
      vfs_.Forget(ino, 1);
    }
    kept_.clear();
  }

 private:
  void Keep(uint64_t ino) {
    std::lock_guard lock(mu_);
    kept_.push_back(ino);
  }
  // Looks up every component (each lookup counted, as by the kernel), and
  // forgets all but the last.
  Result<uint64_t> Resolve(const std::string& path) {
    uint64_t ino = kRootIno;
    size_t start = 0;
    while (start < path.size()) {
      size_t slash = path.find('/', start);
      std::string name = path.substr(start, slash == std::string::npos ? std::string::npos
                                                                      : slash - start);
      auto e = vfs_.Lookup(ino, name);
      if (ino != kRootIno) vfs_.Forget(ino, 1);
      NSF_RETURN_IF_ERROR(e.status());
      ino = e->ino;
      start = slash == std::string::npos ? path.size() : slash + 1;
    }
    if (ino == kRootIno) return Status::Error(EINVAL, "the root has no entry");
    return ino;
  }
  // The parent directory's inode (its lookup already forgotten: the
  // operation uses it at once) and the last name.
  Result<std::pair<uint64_t, std::string>> Parent(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) return std::make_pair(kRootIno, path);
    NSF_ASSIGN_OR_RETURN(uint64_t dir, Resolve(path.substr(0, slash)));
    vfs_.Forget(dir, 1);
    return std::make_pair(dir, path.substr(slash + 1));
  }

  Vfs& vfs_;
  std::mutex mu_;
  std::vector<uint64_t> kept_;
};

}  // namespace

TEST_CASE("vfs stress: threads racing on shared files match the model", "[fs][stress]") {
  StressOptions o;
  o.seed = TestSeed();
  // NSF_STRESS_OPS scales the run (the ThreadSanitizer build runs fewer).
  if (const char* ops = std::getenv("NSF_STRESS_OPS")) o.ops_per_thread = std::atoi(ops);
  INFO("seed " << o.seed << " (NSF_TEST_SEED replays the operations; thread interleavings vary)");
  VolumeFixture::Options fo;
  fo.image_bytes = 256ull << 20;
  VolumeFixture fx(fo);
  StressTest test(o);
  {
    auto vfs = fx.OpenVfs();
    VfsStressFs fs(*vfs);
    Status st = test.Run(fs);
    INFO(st.ToString());
    REQUIRE(st.ok());
    // Nothing the threads did leaked a cached inode: only the root and
    // whatever the model's names keep no kernel reference to.
    CHECK(vfs->cached_inodes() == 1);
  }
  // A clean shutdown kept everything, and the checker agrees.
  auto vol = fx.Open();
  auto report = CheckVolume(*vol);
  REQUIRE(report.ok());
  INFO(report->problems.size() << " problems, first: "
                               << (report->problems.empty() ? "" : report->problems[0]));
  CHECK(report->clean());
  vol.reset();
  auto vfs = fx.OpenVfs();
  VfsStressFs fs(*vfs);
  Status st = test.Verify(fs);
  INFO(st.ToString());
  CHECK(st.ok());
}

}  // namespace nosyncfs::test
