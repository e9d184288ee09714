// The durability statistics of a mount (user.nosyncfs.stats, nosyncctl
// stats) and the extent listing of files with any number of extents
// (user.nosync.extents@OFFSET pages, nosyncctl show).
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <sstream>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kKiB = 1024;

// after[key] - before[key], with the key REQUIREd in both.
int64_t Delta(const std::map<std::string, uint64_t>& before,
              const std::map<std::string, uint64_t>& after, const std::string& key) {
  INFO("stats key " << key);
  REQUIRE(before.count(key) == 1);
  REQUIRE(after.count(key) == 1);
  return static_cast<int64_t>(after.at(key)) - static_cast<int64_t>(before.at(key));
}

CommandResult Ctl(std::vector<std::string> args) {
  args.insert(args.begin(), BinPath("nosyncctl"));
  return RunCommand(args);
}

// getxattr into a 64 KiB buffer; the errno on failure.
std::pair<std::string, int> GetX(const std::string& path, const std::string& name) {
  std::string buf(65536, '\0');
  ssize_t n = ::getxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
  if (n < 0) return {"", errno};
  buf.resize(static_cast<size_t>(n));
  return {buf, 0};
}

int CountLines(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("stats: the counters move as the operations they count happen", "[posix][stats]") {
  TestVolume vol;
  vol.Mount();
  const std::string& mp = vol.mountpoint();
  auto text = MountStatsText(mp);
  CHECK(text["persistence"] == "strict_emulation");
  CHECK(text["persistence_detected_by"].find("emulate=strict") != std::string::npos);
  CHECK(text["block_size"] == std::to_string(vol.block_size()));
  CHECK(text.count("transactions_per_log_persist") == 1);
  // Every request type has its key, counted or not.
  for (const char* op : {"requests_lookup", "requests_write", "requests_fsync",
                         "requests_fallocate", "requests_copy_file_range", "requests_mkdir"}) {
    INFO(op);
    CHECK(text.count(op) == 1);
  }
  struct statvfs sv = MustStatvfs(mp);
  auto s0 = MountStats(mp);
  CHECK(s0["free_bytes"] == sv.f_bfree * sv.f_frsize);
  CHECK(s0["total_bytes"] == sv.f_blocks * sv.f_frsize);
  CHECK(s0["nf_bytes"] == 0);

  const std::string nf_path = vol.Path("nf");
  Fd nf = MustOpen(nf_path, O_CREAT | O_RDWR);

  // Setting the flag allocates and flags 64 KiB, durably.
  auto before = MountStats(mp);
  REQUIRE(ErrnoOf(::fsetxattr(nf.get(), "user.nosync", "0-64K", 5, 0)) == 0);
  auto after = MountStats(mp);
  CHECK(Delta(before, after, "nf_bytes") == 64 * kKiB);
  CHECK(Delta(before, after, "free_bytes") == -static_cast<int64_t>(64 * kKiB));
  CHECK(Delta(before, after, "requests_setxattr") == 1);
  CHECK(Delta(before, after, "log_persists") >= 1);
  CHECK(Delta(before, after, "log_transactions") >= Delta(before, after, "log_persists"));
  CHECK(after["free_bytes"] == MustStatvfs(mp).f_bfree * sv.f_frsize);

  // An NF write persists its bytes before returning; fsync and fdatasync
  // then have no media work.
  before = MountStats(mp);
  MustPwrite(nf.get(), Pattern(1, 5000), 100);
  after = MountStats(mp);
  CHECK(Delta(before, after, "nf_write_bytes_persisted") == 5000);
  // (The kernel may send an unaligned write as more than one request.)
  CHECK(Delta(before, after, "requests_write") >= 1);
  CHECK(Delta(before, after, "nf_writes") == Delta(before, after, "requests_write"));
  before = after;
  REQUIRE(ErrnoOf(::fsync(nf.get())) == 0);
  REQUIRE(ErrnoOf(::fdatasync(nf.get())) == 0);
  after = MountStats(mp);
  CHECK(Delta(before, after, "requests_fsync") == 2);
  CHECK(Delta(before, after, "fsync_calls") == 2);
  CHECK(Delta(before, after, "fdatasync_calls") == 1);
  CHECK(Delta(before, after, "fsync_no_media_work") == 2);
  CHECK(Delta(before, after, "device_persists") == 0);
  CHECK(Delta(before, after, "log_persists") == 0);

  // An unflagged write leaves work for fsync: data and a log persist.
  Fd plain = MustOpen(vol.Path("plain"), O_CREAT | O_RDWR);
  MustPwrite(plain.get(), Pattern(2, 8192), 0);
  before = MountStats(mp);
  REQUIRE(ErrnoOf(::fsync(plain.get())) == 0);
  after = MountStats(mp);
  CHECK(Delta(before, after, "fsync_calls") == 1);
  CHECK(Delta(before, after, "fsync_no_media_work") == 0);
  CHECK(Delta(before, after, "log_persists") == 1);
  CHECK(Delta(before, after, "log_transactions") >= 1);
  CHECK(Delta(before, after, "nf_write_bytes_persisted") == 0);

  // Namespace operations are requests and transactions, durable at the
  // next fsync of a directory.
  before = MountStats(mp);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d1").c_str(), 0755)) == 0);
  REQUIRE(ErrnoOf(::mkdir(vol.Path("d2").c_str(), 0755)) == 0);
  SyncWholeFs(mp);
  after = MountStats(mp);
  CHECK(Delta(before, after, "requests_mkdir") == 2);
  CHECK(Delta(before, after, "fsyncdir_calls") == 1);
  CHECK(Delta(before, after, "log_persists") == 1);
  CHECK(Delta(before, after, "log_transactions") >= 2);

  // A punch of one NF block: NF bytes and free space follow at once.
  before = MountStats(mp);
  REQUIRE(ErrnoOf(::fallocate(nf.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * kKiB,
                              vol.block_size())) == 0);
  after = MountStats(mp);
  CHECK(Delta(before, after, "nf_bytes") == -static_cast<int64_t>(vol.block_size()));
  CHECK(Delta(before, after, "free_bytes") == vol.block_size());
  CHECK(Delta(before, after, "requests_fallocate") == 1);
  const uint64_t nf_left = after["nf_bytes"];
  CHECK(nf_left == 64 * kKiB - vol.block_size());
  nf = Fd();
  plain = Fd();

  // After a remount: NF bytes as they were (from the mount's scan), the
  // counters since this mount.
  vol.Remount();
  auto fresh = MountStats(mp);
  CHECK(fresh["nf_bytes"] == nf_left);
  CHECK(fresh["fsync_calls"] == 0);
  CHECK(fresh["nf_write_bytes_persisted"] == 0);
  CHECK(fresh["requests_mkdir"] == 0);
  CHECK(fresh["requests_init"] == 1);

  // Unlinking the file frees its NF blocks (once the kernel lets go of it).
  REQUIRE(ErrnoOf(::unlink(nf_path.c_str())) == 0);
  CHECK(WaitUntil([&] { return MountStats(mp)["nf_bytes"] == 0; }));
}

TEST_CASE("nosyncctl stats: readable statistics, one clear line off nosyncfs",
          "[posix][stats]") {
  TestVolume vol;
  vol.Mount();
  Fd fd = MustOpen(vol.Path("f"), O_CREAT | O_RDWR);
  REQUIRE(ErrnoOf(::fsetxattr(fd.get(), "user.nosync", "0-1M", 4, 0)) == 0);
  MustPwrite(fd.get(), Pattern(3, 4096), 0);
  REQUIRE(ErrnoOf(::fsync(fd.get())) == 0);

  CommandResult r = Ctl({"stats", vol.mountpoint()});
  INFO(r.Describe() << "\n" << r.out);
  REQUIRE(r.exit_status == 0);
  CHECK(r.out.find("persistence        strict emulation") != std::string::npos);
  CHECK(r.out.find("emulate=strict") != std::string::npos);
  CHECK(r.out.find("1.0 MiB in no-fsync extents") != std::string::npos);
  CHECK(r.out.find("1 calls (0 fdatasync), 1 answered with no media work") != std::string::npos);
  CHECK(r.out.find("no-fsync writes    1, 4.0 KiB persisted before they returned") !=
        std::string::npos);
  CHECK(r.out.find("    write            1\n") != std::string::npos);
  CHECK(r.out.find("    fsync            1\n") != std::string::npos);

  // Not the root of a nosyncfs mount: exit status 1 and one line.
  REQUIRE(ErrnoOf(::mkdir(vol.Path("sub").c_str(), 0755)) == 0);
  for (const std::string& path : {vol.dir(), vol.Path("sub"), vol.Path("f"), vol.Path("nope")}) {
    CommandResult bad = Ctl({"stats", path});
    INFO(path << ": " << bad.Describe());
    CHECK(bad.exit_status == 1);
    CHECK(bad.out.empty());
    CHECK(bad.err.find("not the root of a nosyncfs mount") != std::string::npos);
    CHECK(CountLines(bad.err, "") == 1);
  }
}

TEST_CASE("nosyncctl show: what persistence a write into each extent and hole gets",
          "[posix][stats][nosync]") {
  TestVolume vol;
  vol.Mount();
  const std::string f = vol.Path("f");
  WriteFile(f, Pattern(4, 64 * kKiB));
  REQUIRE(Ctl({"set", f, "16K-32K"}).exit_status == 0);
  Fd fd = MustOpen(f, O_RDWR);
  REQUIRE(ErrnoOf(::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 48 * kKiB,
                              8 * kKiB)) == 0);
  CommandResult r = Ctl({"show", f});
  INFO(r.Describe() << "\n" << r.out);
  REQUIRE(r.exit_status == 0);
  // [0,16K) unflagged, [16K,32K) NF, [32K,48K) unflagged, hole, [56K,64K).
  std::istringstream in(r.out);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 2 + 5 + 1);
  CHECK(lines[2].find("[0..16383]") != std::string::npos);
  CHECK(lines[2].find("durable at fsync") != std::string::npos);
  CHECK(lines[3].find("[16384..32767]") != std::string::npos);
  CHECK(lines[3].find("NF    durable on return (NF, strict emulation)") != std::string::npos);
  CHECK(lines[4].find("durable at fsync") != std::string::npos);
  CHECK(lines[5].find("[49152..57343]") != std::string::npos);
  CHECK(lines[5].find("hole: a write allocates, durable at fsync") != std::string::npos);
  CHECK(lines[6].find("[57344..65535]") != std::string::npos);
  CHECK(lines[7] == " size 65536 bytes, 16384 bytes no-fsync, 4 extents");
}

TEST_CASE("a file with 100,000 NF extents is listed whole, page by page and by nosyncctl show",
          "[posix][stats][nosync]") {
  constexpr uint64_t kExtents = 100000;
  constexpr uint32_t kBs = 1024;
  TestVolume::Options options;
  options.block_size = kBs;
  options.image_bytes = 256ull << 20;
  TestVolume vol(options);
  // Built without FUSE (the daemon's own code, in this process) to keep the
  // test fast: 2 * kExtents blocks flagged NF, then every second block
  // punched out (nf_punch=split), each punch its own small transaction;
  // the last extent is left two blocks long, so that lengths are checked.
  {
    VolumeOptions vo;
    vo.strict_emulation = true;
    auto vfs = OpenVfsAt(vol.image(), vo);
    INFO(vfs.status().ToString());
    REQUIRE(vfs.ok());
    auto e = (*vfs)->Create(kRootIno, "many", 0644, true, false, Caller{});
    REQUIRE(e.ok());
    const std::string range = "0+" + std::to_string(2 * kExtents * kBs);
    REQUIRE((*vfs)->Setxattr(e->ino, "user.nosync", range, 0).ok());
    for (uint64_t i = 0; i < kExtents - 1; ++i) {
      Status st = (*vfs)->Fallocate(e->ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                    (2 * i + 1) * kBs, kBs);
      INFO("punch " << i << ": " << st.ToString());
      REQUIRE(st.ok());
    }
    (*vfs)->Release(e->ino);
  }
  vol.Mount();
  const std::string f = vol.Path("many");
  CHECK(MountStats(vol.mountpoint())["nf_bytes"] == (kExtents + 1) * kBs);

  // Page by page: each well under 64 KiB, each continuing where the last
  // one stopped, together every extent exactly once.
  uint64_t next = 0, count = 0, pages = 0, expect = 0;
  std::string name = "user.nosync.extents";
  for (;;) {
    auto [page, err] = GetX(f, name);
    INFO(name << ": errno " << err);
    REQUIRE(err == 0);
    REQUIRE(page.size() <= 32768);
    ++pages;
    std::istringstream in(page);
    std::string line;
    bool more = false;
    while (std::getline(in, line)) {
      INFO("line " << line);
      REQUIRE_FALSE(more);
      std::istringstream fields(line);
      if (line.rfind("more ", 0) == 0) {
        std::string word;
        REQUIRE(fields >> word >> next);
        REQUIRE(next == expect);
        more = true;
        continue;
      }
      uint64_t logical, length, device;
      std::string flags;
      REQUIRE(fields >> logical >> length >> device >> flags);
      REQUIRE(logical == expect);
      REQUIRE(length == (count == kExtents - 1 ? 2 * kBs : kBs));
      REQUIRE(flags == "nf");
      ++count;
      expect = logical + length + kBs;  // the hole after it
      if (count == kExtents) expect = logical + length;
    }
    if (!more) break;
    name = "user.nosync.extents@" + std::to_string(next);
  }
  CHECK(count == kExtents);
  CHECK(pages > 30);

  // nosyncctl show pages through all of it: every extent, every hole.
  CommandResult r = RunCommand({BinPath("nosyncctl"), "show", f}, std::chrono::seconds(120));
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  CHECK(CountLines(r.out, "durable on return (NF, strict emulation)") == kExtents);
  CHECK(CountLines(r.out, "hole: a write allocates") == kExtents - 1);
  CHECK(r.out.find(" size 0 bytes, " + std::to_string((kExtents + 1) * kBs) +
                   " bytes no-fsync, 100000 extents\n") != std::string::npos);
  // The last extent, as show prints it.
  const uint64_t last = 2 * (kExtents - 1) * kBs;
  CHECK(r.out.find("[" + std::to_string(last) + ".." + std::to_string(last + 2 * kBs - 1) + "]") !=
        std::string::npos);

  // nosyncctl summary counts them from the listing too (user.nosync itself
  // is longer than an xattr value can be).
  CHECK(GetX(f, "user.nosync").second == E2BIG);
  CommandResult sum = Ctl({"summary", vol.mountpoint()});
  INFO(sum.Describe());
  CHECK(sum.exit_status == 0);
  CHECK(sum.out.find(std::to_string((kExtents + 1) * kBs) + "  total in 1 of 1 files") !=
        std::string::npos);
}

}  // namespace nosyncfs::test
