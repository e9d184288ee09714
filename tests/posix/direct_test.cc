// Direct access through libnosyncfs on a real mount (docs/semantics.md,
// "Direct access"): writes inside NF extents reach the device without a
// FUSE request and are durable on return; everything else goes through
// FUSE; only the direct= principals get it; leases are revoked before the
// file's layout changes, under load too; a client that does not answer is
// cut off and its blocks quarantined; and kill -9 of daemon and client
// keeps every acknowledged direct write and loses every unpersisted store.
// Processes that must be stopped or killed are tests/clients/direct_client.
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/nosyncfs.h"
#include "client/protocol.h"
#include "tests/clients/direct_records.h"
#include "tests/harness/client_process.h"
#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr char kDirect[] = "emulate=strict,direct=root";

nsf_counters Counters() {
  nsf_counters c{};
  nsf_get_counters(&c);
  return c;
}

uint64_t Stat(const TestVolume& v, const std::string& key) {
  auto stats = MountStats(v.mountpoint());
  INFO("statistic " << key);
  REQUIRE(stats.count(key) == 1);
  return stats.at(key);
}

void SetNosync(const std::string& path, const std::string& ranges) {
  INFO("setfattr user.nosync=" << ranges << " on " << path);
  REQUIRE(setxattr(path.c_str(), "user.nosync", ranges.data(), ranges.size(), 0) == 0);
}

// A file of `size` bytes of Pattern(seed), flagged NF over `ranges`.
void MakeNfFile(const std::string& path, uint64_t size, uint64_t seed,
                const std::string& ranges = "all") {
  WriteFile(path, Pattern(seed, size));
  SetNosync(path, ranges);
}

// Every extent's device offset in user.nosync.extents, as [start, end).
std::vector<std::pair<uint64_t, uint64_t>> DeviceRanges(const std::string& path) {
  char buf[65536];
  ssize_t n = getxattr(path.c_str(), "user.nosync.extents", buf, sizeof(buf));
  REQUIRE(n >= 0);
  std::istringstream in(std::string(buf, static_cast<size_t>(n)));
  std::vector<std::pair<uint64_t, uint64_t>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    uint64_t logical = 0, length = 0, device = 0;
    if (fields >> logical >> length >> device) out.push_back({device, device + length});
  }
  return out;
}

using Client = ClientProcess;

// The file is `count` records of kBlock (Record(i, kBlock) at i * kBlock),
// and no byte more.
void ExpectRecords(const std::string& path, uint64_t count) {
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == count * kBlock);
  Fd fd = MustOpen(path, O_RDONLY);
  for (uint64_t i = 0; i < count; ++i) {
    INFO("record " << i);
    CHECK(FirstMismatch(MustPread(fd.get(), kBlock, i * kBlock), Record(i, kBlock)) == "");
  }
}

// A directory with the no-fsync policy, and an empty file in it; the file.
std::string PolicyFile(const TestVolume& v) {
  const std::string dir = v.Path("db");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  SetNosync(dir, "all");
  const std::string file = dir + "/wal";
  Fd fd = MustOpen(file, O_WRONLY | O_CREAT, 0644);
  return file;
}

// Reads the writer's acknowledgements up to its "done": how many, and how
// many of them were direct.
std::pair<uint64_t, uint64_t> Acks(Client& writer) {
  uint64_t acked = 0, direct = 0;
  for (std::string line = writer.Line(); line.rfind("ack ", 0) == 0; line = writer.Line()) {
    ++acked;
    direct += Contains(line, "direct");
  }
  return {acked, direct};
}

}  // namespace

TEST_CASE("direct: writes inside NF extents reach the device without FUSE and are durable",
          "[direct]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string f = v.Path("f");
  MakeNfFile(f, 256 * 1024, 1);
  const nsf_counters before = Counters();
  int fd = nsf_open(f.c_str(), O_RDWR);
  INFO("nsf_open: " << nsf_errmsg());
  REQUIRE(fd >= 0);
  const uint64_t writes_before = Stat(v, "requests_write");
  const uint64_t grants_before = Stat(v, "direct_grants");
  CHECK(grants_before == 1);
  const timespec t0 = CoarseNow();
  WaitClockPast(t0);

  const std::string a = Pattern(2, kBlock), b = Pattern(3, 64 * 1024, 100 * 1024);
  CHECK(nsf_pwrite(fd, a.data(), a.size(), 8 * 1024) == static_cast<ssize_t>(a.size()));
  CHECK(nsf_pwrite(fd, b.data(), b.size(), 100 * 1024) == static_cast<ssize_t>(b.size()));
  std::string back(b.size(), '\0');
  CHECK(nsf_pread(fd, back.data(), back.size(), 100 * 1024) == static_cast<ssize_t>(b.size()));
  CHECK(FirstMismatch(back, b) == "");
  const nsf_counters after = Counters();
  CHECK(after.direct_writes - before.direct_writes == 2);
  CHECK(after.fallback_writes == before.fallback_writes);
  CHECK(after.direct_reads - before.direct_reads == 1);
  // Not one write request reached the daemon.
  CHECK(Stat(v, "requests_write") == writes_before);

  // Another descriptor, through FUSE, reads what the library wrote.
  {
    Fd other = MustOpen(f, O_RDONLY);
    CHECK(FirstMismatch(MustPread(other.get(), a.size(), 8 * 1024), a) == "");
    CHECK(FirstMismatch(MustPread(other.get(), b.size(), 100 * 1024), b) == "");
  }
  // Closing tells the daemon that the file was written: mtime moves. The
  // release goes out without an answer; a stat may see the new mtime
  // before the daemon has read it (the write count in the file's slot moved).
  REQUIRE(nsf_close(fd) == 0);
  CHECK(WaitUntil([&] { return t0 < MustStat(f).st_mtim; }));
  CHECK(WaitUntil([&] { return Stat(v, "direct_leases") == 0; }));

  // Power loss: acknowledged direct writes are durable.
  v.KillDaemon();
  v.Mount(kDirect);
  std::string expect = Pattern(1, 256 * 1024);
  expect.replace(8 * 1024, a.size(), a);
  expect.replace(100 * 1024, b.size(), b);
  CHECK(FirstMismatch(ReadFile(f), expect) == "");
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("direct: what the lease does not cover goes through FUSE", "[direct]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string f = v.Path("f");
  // [0, 32K) NF; [32K, 64K) a hole; [64K, 68K) unflagged data; size 96K.
  MakeNfFile(f, 32 * 1024, 1);
  {
    Fd w = MustOpen(f, O_WRONLY);
    MustPwrite(w.get(), Pattern(1, kBlock, 64 * 1024), 64 * 1024);
    REQUIRE(ftruncate(w.get(), 96 * 1024) == 0);
  }
  int fd = nsf_open(f.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  std::string expect = ReadFile(f);
  auto write = [&](uint64_t off, uint64_t len, uint64_t seed) {
    const std::string data = Pattern(seed, len, off);
    REQUIRE(nsf_pwrite(fd, data.data(), len, static_cast<off_t>(off)) ==
            static_cast<ssize_t>(len));
    if (expect.size() < off + len) expect.resize(off + len, '\0');
    expect.replace(off, len, data);
  };
  struct Case {
    const char* what;
    uint64_t off, len;
    bool direct;
  } cases[] = {
      {"inside the NF extent", 4 * 1024, kBlock, true},
      {"into unflagged data", 64 * 1024, kBlock, false},
      {"into a hole", 40 * 1024, kBlock, false},
      {"partly inside the NF extent", 28 * 1024, 8 * 1024, false},
      {"past the end of the file", 96 * 1024, kBlock, false},
  };
  uint64_t seed = 10;
  for (const Case& c : cases) {
    INFO(c.what);
    const uint64_t writes = Stat(v, "requests_write");
    const nsf_counters before = Counters();
    write(c.off, c.len, seed++);
    const nsf_counters after = Counters();
    CHECK(after.direct_writes - before.direct_writes == (c.direct ? 1u : 0u));
    CHECK(Stat(v, "requests_write") - writes == (c.direct ? 0u : 1u));
  }
  CHECK(MustStat(f).st_size == 100 * 1024);
  CHECK(FirstMismatch(ReadFile(f), expect) == "");

  // read/write at the position, which the library keeps and hands back.
  CHECK(nsf_lseek(fd, 4096, SEEK_SET) == 4096);
  const std::string small = Pattern(30, 100, 4096);
  CHECK(nsf_write(fd, small.data(), small.size()) == 100);
  CHECK(nsf_lseek(fd, 0, SEEK_CUR) == 4196);
  char c = 0;
  CHECK(nsf_read(fd, &c, 1) == 1);
  CHECK(c == expect[4196]);
  CHECK(nsf_lseek(fd, -10, SEEK_END) == 100 * 1024 - 10);
  CHECK(nsf_lseek(fd, 0, SEEK_SET) == 0);
  CHECK(nsf_lseek(fd, 4197, SEEK_SET) == 4197);
  REQUIRE(nsf_detach(fd) == 0);
  CHECK(lseek(fd, 0, SEEK_CUR) == 4197);
  ::close(fd);
  expect.replace(4096, small.size(), small);
  CHECK(FirstMismatch(ReadFile(f), expect) == "");

  // A read-only descriptor reads in place; its writes fail as pwrite(2)'s do.
  int ro = nsf_open(f.c_str(), O_RDONLY);
  REQUIRE(ro >= 0);
  const nsf_counters before = Counters();
  std::string got(kBlock, '\0');
  CHECK(nsf_pread(ro, got.data(), got.size(), 0) == static_cast<ssize_t>(kBlock));
  CHECK(FirstMismatch(got, expect.substr(0, kBlock)) == "");
  CHECK(Counters().direct_reads - before.direct_reads == 1);
  CHECK(ErrnoOf(nsf_pwrite(ro, got.data(), got.size(), 0)) == EBADF);
  CHECK(nsf_close(ro) == 0);
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("direct: only the users and groups of direct= get direct access", "[direct]") {
  TestVolume v;
  const std::string f = v.Path("f");
  SECTION("a mount without direct= refuses, with a reason") {
    v.Mount("emulate=strict");
    MakeNfFile(f, 64 * 1024, 1);
    Fd fd = MustOpen(f, O_RDWR);
    CHECK(ErrnoOf(nsf_attach(fd.get())) == EPERM);
    CHECK(Contains(nsf_errmsg(), "direct="));
    CHECK(ErrnoOf(nsf_open(f.c_str(), O_RDWR)) == EPERM);
    // The data calls still work, through FUSE.
    const std::string data = Pattern(2, kBlock);
    CHECK(nsf_pwrite(fd.get(), data.data(), data.size(), 0) == static_cast<ssize_t>(kBlock));
    CHECK(FirstMismatch(MustPread(fd.get(), kBlock, 0), data) == "");
  }
  SECTION("a file elsewhere is not nosyncfs's") {
    v.Mount(kDirect);
    const std::string local = v.TempPath("local");
    WriteFile(local, "x");
    Fd fd = MustOpen(local, O_RDWR);
    CHECK(ErrnoOf(nsf_attach(fd.get())) == ENOTSUP);
  }
  SECTION("a user outside direct= is refused; one inside it is let in") {
    v.Mount(kDirect);
    MakeNfFile(f, 64 * 1024, 1);
    REQUIRE(chmod(f.c_str(), 0666) == 0);
    const std::vector<std::string> as_nobody = {"setpriv", "--reuid=65534", "--regid=65534",
                                                "--clear-groups"};
    {
      Client nobody({"hold", f}, as_nobody);
      const std::string line = nobody.Line();
      CHECK(Contains(line, "error nsf_open"));
      CHECK(Contains(line, "Operation not permitted"));
    }
    v.Unmount();
    v.Mount("emulate=strict,direct=@65534");
    Client nobody({"hold", f}, as_nobody);
    CHECK(nobody.Line() == "leased");
    // root is not on that list.
    CHECK(ErrnoOf(nsf_open(f.c_str(), O_RDWR)) == EPERM);
  }
  SECTION("a writer's lease takes the set-ID bits, as its write would; a refusal leaves them") {
    v.Mount("emulate=strict,direct=@65534");
    const std::vector<std::string> as_nobody = {"setpriv", "--reuid=65534", "--regid=65534",
                                                "--clear-groups"};
    const std::string plain = v.Path("plain");
    WriteFile(plain, "#!/bin/sh\n");
    MakeNfFile(f, 64 * 1024, 1);
    for (const std::string& file : {plain, f}) REQUIRE(chmod(file.c_str(), 06777) == 0);
    {
      Client nobody({"hold", plain}, as_nobody);
      CHECK(nobody.Line() == "no-lease");  // nothing NF to lease
    }
    CHECK((MustStat(plain).st_mode & 07777) == 06777);
    Client nobody({"hold", f}, as_nobody);
    CHECK(nobody.Line() == "leased");
    CHECK((MustStat(f).st_mode & 07777) == 0777);
  }
  SECTION("bad direct= and lease_break= values fail the mount") {
    for (const char* opt : {"direct=no_such_group_here", "direct=@no_such_user_here", "direct=",
                            "direct=root,lease_break=0", "direct=root,ro"}) {
      INFO(opt);
      auto r = TestVolume::RunDaemon({v.image(), v.mountpoint(), "-f", "-o", opt},
                                     std::chrono::seconds(20));
      CHECK(r.exit_status == 1);
      CHECK(!r.err.empty());
      CHECK(!IsMounted(v.mountpoint()));
    }
  }
}

TEST_CASE("direct: leases are revoked before punch, flag clear, truncate and destroy",
          "[direct]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string f = v.Path("f");
  MakeNfFile(f, 1024 * 1024, 1);
  int fd = nsf_open(f.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  REQUIRE(nsf_map_valid(fd, 0, kBlock) == 1);
  Fd other = MustOpen(f, O_RDWR);
  // After a change: the lease was revoked, and the library asked again.
  auto revoked = [&](uint64_t revocations_before, uint64_t library_before) {
    CHECK(Stat(v, "direct_revocations") == revocations_before + 1);
    CHECK(Counters().leases_revoked == library_before + 1);
  };
  std::string expect = Pattern(1, 1024 * 1024);

  SECTION("punch") {
    const uint64_t r0 = Stat(v, "direct_revocations"), l0 = Counters().leases_revoked;
    REQUIRE(fallocate(other.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 64 * 1024) == 0);
    revoked(r0, l0);
    CHECK(nsf_map_valid(fd, 0, kBlock) == 0);
    // Into the hole: through FUSE, and it reads back.
    const uint64_t writes = Stat(v, "requests_write");
    const std::string data = Pattern(5, kBlock);
    CHECK(nsf_pwrite(fd, data.data(), kBlock, 0) == static_cast<ssize_t>(kBlock));
    CHECK(Stat(v, "requests_write") == writes + 1);
    expect.replace(0, 64 * 1024, std::string(64 * 1024, '\0'));
    expect.replace(0, kBlock, data);
    // The rest is leased again, without being asked.
    CHECK(WaitUntil([&] { return nsf_map_valid(fd, 128 * 1024, kBlock) == 1; }));
  }
  SECTION("flag clear") {
    const uint64_t r0 = Stat(v, "direct_revocations"), l0 = Counters().leases_revoked;
    REQUIRE(removexattr(f.c_str(), "user.nosync") == 0);
    revoked(r0, l0);
    const nsf_counters before = Counters();
    const std::string data = Pattern(6, kBlock, 8192);
    CHECK(nsf_pwrite(fd, data.data(), kBlock, 8192) == static_cast<ssize_t>(kBlock));
    CHECK(Counters().fallback_writes == before.fallback_writes + 1);
    expect.replace(8192, kBlock, data);
    // Flagged again: nsf_refresh leases it at once.
    SetNosync(f, "all");
    CHECK(nsf_refresh(fd) == 0);
    CHECK(nsf_map_valid(fd, 0, kBlock) == 1);
  }
  SECTION("truncate, even one that frees no block") {
    const uint64_t r0 = Stat(v, "direct_revocations"), l0 = Counters().leases_revoked;
    REQUIRE(ftruncate(other.get(), 1024 * 1024 - 100) == 0);
    revoked(r0, l0);
    expect.resize(1024 * 1024 - 100);
    // The new lease holds for the new size only.
    CHECK(WaitUntil([&] { return nsf_map_valid(fd, 0, kBlock) == 1; }));
    CHECK(nsf_map_valid(fd, 1024 * 1024 - kBlock, kBlock) == 0);
  }
  SECTION("destroy, once the file is closed and unlinked") {
    // close(2) behind the library's back: the lease outlives the
    // descriptor, and the destroy must revoke it.
    const uint64_t r0 = Stat(v, "direct_revocations");
    REQUIRE(::close(fd) == 0);
    other.reset();
    REQUIRE(unlink(f.c_str()) == 0);
    CHECK(WaitUntil([&] { return Stat(v, "direct_revocations") == r0 + 1; }));
    CHECK(WaitUntil([&] { return Stat(v, "direct_leases") == 0; }));
    (void)nsf_detach(fd);
    v.Unmount();
    ExpectFsckClean(v);
    return;
  }
  CHECK(FirstMismatch(ReadFile(f), expect) == "");
  CHECK(nsf_close(fd) == 0);
  other.reset();
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("direct: a holder that does not acknowledge is cut off, its blocks quarantined",
          "[direct]") {
  TestVolume v;
  v.Mount(std::string(kDirect) + ",lease_break=1");
  const std::string f = v.Path("f");
  MakeNfFile(f, 256 * 1024, 1);
  const auto leased = DeviceRanges(f);
  REQUIRE(!leased.empty());
  Client holder({"hold", f});
  REQUIRE(holder.Line() == "leased");
  holder.Stop();
  const uint64_t free_before = MustStatvfs(v.mountpoint()).f_bfree;
  {
    // The open for writing ends the holder's appending lease (a second
    // writer), or else the punch does: either waits out the lease break.
    const auto t0 = std::chrono::steady_clock::now();
    Fd fd = MustOpen(f, O_RDWR);
    REQUIRE(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 256 * 1024) == 0);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(900));
  }
  CHECK(Stat(v, "direct_cutoffs") == 1);
  CHECK(Stat(v, "direct_quarantined_blocks") == 64);
  CHECK(MustStatvfs(v.mountpoint()).f_bfree == free_before);
  // No other file is given those blocks while the holder lives.
  const std::string g = v.Path("g");
  MakeNfFile(g, 1024 * 1024, 2);
  for (auto [start, end] : DeviceRanges(g)) {
    for (auto [ls, le] : leased) {
      INFO("new extent " << start << "-" << end << ", quarantined " << ls << "-" << le);
      CHECK((end <= ls || le <= start));
    }
  }
  // Once it is gone, they are free again.
  holder.Kill(SIGKILL);
  CHECK(WaitUntil([&] { return Stat(v, "direct_quarantined_blocks") == 0; }));
  CHECK(MustStatvfs(v.mountpoint()).f_bfree == free_before - 256 + 64);
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("direct: revocation under load never shows a late write in another file",
          "[direct]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string f = v.Path("a");
  constexpr uint64_t kSize = 512 * 1024;
  MakeNfFile(f, kSize, 1);
  Client writer({"churn", f, "7"});
  REQUIRE(writer.Line() == "started");
  std::mt19937_64 rng(11);
  Fd fd = MustOpen(f, O_RDWR);
  int checked = 0;
  for (int round = 0; round < 40; ++round) {
    INFO("round " << round);
    switch (round % 4) {
      case 0: {  // punch some blocks
        const uint64_t off = (rng() % (kSize / kBlock - 16)) * kBlock;
        REQUIRE(fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          static_cast<off_t>(off), 16 * kBlock) == 0);
        break;
      }
      case 1:  // clear the flag, and set it again (which reallocates the holes)
        REQUIRE(removexattr(f.c_str(), "user.nosync") == 0);
        SetNosync(f, "all");
        break;
      case 2:  // truncate to half, grow back, flag again
        REQUIRE(ftruncate(fd.get(), kSize / 2) == 0);
        REQUIRE(ftruncate(fd.get(), kSize) == 0);
        SetNosync(f, "all");
        break;
      case 3: {  // zero a range: in place, so the lease survives it
        const uint64_t off = (rng() % (kSize / kBlock - 16)) * kBlock;
        REQUIRE(fallocate(fd.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                          static_cast<off_t>(off), 16 * kBlock) == 0);
        break;
      }
    }
    // A new file gets the freed blocks, zero-filled. If a late write of the
    // writer reached them, it shows here.
    const std::string b = v.Path("b" + std::to_string(round));
    {
      Fd bf = MustOpen(b, O_RDWR | O_CREAT, 0644);
      REQUIRE(ftruncate(bf.get(), 256 * 1024) == 0);
    }
    SetNosync(b, "all");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const std::string content = ReadFile(b);
    CHECK(content.find_first_not_of('\0') == std::string::npos);
    ++checked;
    REQUIRE(unlink(b.c_str()) == 0);
  }
  // The last round: unlink the writer's file under it.
  REQUIRE(unlink(f.c_str()) == 0);
  writer.Signal(SIGTERM);
  auto counts = writer.KeyValuesToEof();
  INFO("writer: " << counts.size() << " counters");
  CHECK(counts["errors"] == 0);
  CHECK(counts["direct_writes"] > 0);
  CHECK(counts["leases_revoked"] > 0);
  CHECK(Stat(v, "direct_revocations") > 0);
  CHECK(checked == 40);
  writer.Kill(SIGKILL);
  fd.reset();
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("direct: kill -9 keeps every acknowledged direct write and loses unpersisted stores",
          "[direct][crash]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string r = v.Path("records"), m = v.Path("mapped");
  constexpr uint64_t kCount = 256;
  {
    Fd fd = MustOpen(r, O_RDWR | O_CREAT, 0644);
    REQUIRE(ftruncate(fd.get(), static_cast<off_t>(kCount * kBlock)) == 0);
  }
  SetNosync(r, "all");
  {
    Fd fd = MustOpen(m, O_RDWR | O_CREAT, 0644);
    REQUIRE(ftruncate(fd.get(), 64 * 1024) == 0);
  }
  SetNosync(m, "all");

  // One after the other: the second one's open revokes the first one's
  // lease (it was the file's appender), which must not come between the
  // first one's nsf_map and its store.
  Client kept({"map", m, "8192", "4096", "persist"});
  REQUIRE(kept.Line() == "stored");
  Client lost({"map", m, "0", "4096", "nopersist"});
  REQUIRE(lost.Line() == "stored");
  Client writer({"records", r, std::to_string(kCount), std::to_string(kBlock)});
  // Kill in the middle of the stream.
  uint64_t acked = 0;
  for (std::string line = writer.Line(); !line.empty(); line = writer.Line()) {
    if (line.rfind("ack ", 0) != 0) break;
    CHECK(Contains(line, "direct"));
    if (++acked == kCount / 2) break;
  }
  REQUIRE(acked == kCount / 2);
  // Power loss: every process with the volatile copy mapped dies.
  v.SigkillDaemon();
  writer.Kill(SIGKILL);
  kept.Kill(SIGKILL);
  lost.Kill(SIGKILL);
  v.ClearDeadMount();
  v.Mount(kDirect);
  {
    Fd fd = MustOpen(r, O_RDONLY);
    for (uint64_t i = 0; i < acked; ++i) {
      INFO("record " << i);
      CHECK(FirstMismatch(MustPread(fd.get(), kBlock, i * kBlock), Record(i, kBlock)) == "");
    }
  }
  {
    Fd fd = MustOpen(m, O_RDONLY);
    CHECK(FirstMismatch(MustPread(fd.get(), kBlock, 8192), Record(7, kBlock)) == "");
    CHECK(MustPread(fd.get(), kBlock, 0) == std::string(kBlock, '\0'));
  }
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("direct: appends under a directory's policy are served in place, durable with their "
          "size, seen by other processes, and fdatasync costs nothing",
          "[direct][append][crash]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string wal = PolicyFile(v);
  constexpr uint64_t kCount = 200;
  const uint64_t syncs_before = Stat(v, "fsync_calls");
  Client writer({"append", wal, std::to_string(kCount), std::to_string(kBlock)});
  const auto [acked, direct] = Acks(writer);
  REQUIRE(acked == kCount);
  // The first append allocates the policy's first unit through FUSE; the
  // rest land in it with no request.
  CHECK(direct >= kCount - 2);
  CHECK(Stat(v, "fsync_calls") - syncs_before <= kCount - direct);
  // Another process, without the library, sees size and data at once.
  ExpectRecords(wal, kCount);
  // Power loss with the appender alive: every acknowledged append is
  // there, and the size covers nothing more.
  v.SigkillDaemon();
  writer.Kill(SIGKILL);
  v.ClearDeadMount();
  v.Mount(kDirect);
  ExpectRecords(wal, kCount);
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("direct: a fresh lease of the appending file keeps the right to append",
          "[direct][append]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string wal = PolicyFile(v);
  constexpr uint64_t kCount = 100;
  // A refresh every 10 appends (as after the shim's fallocate): the
  // successor appends in place of the lease it replaces.
  Client writer({"append", wal, std::to_string(kCount), std::to_string(kBlock), "10"});
  const auto [acked, direct] = Acks(writer);
  REQUIRE(acked == kCount);
  CHECK(direct >= kCount - 2);
  ExpectRecords(wal, kCount);
}

TEST_CASE("direct: fdatasync is skipped only while the appender's descriptor is the file's one "
          "writer",
          "[direct][append]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string wal = PolicyFile(v);
  constexpr uint64_t kCount = 50;
  // Alone: its syncs have nothing to do and cost nothing.
  uint64_t before = Stat(v, "fsync_calls");
  {
    Client writer({"append", wal, std::to_string(kCount), std::to_string(kBlock)});
    REQUIRE(Acks(writer).first == kCount);
    CHECK(Stat(v, "fsync_calls") - before <= 2);
  }
  // With another descriptor open for writing (which could hold unflagged
  // data, or dirty pages of a shared mapping), every sync is real.
  Fd other = MustOpen(wal, O_RDWR);
  before = Stat(v, "fsync_calls");
  Client writer({"append", wal, std::to_string(kCount), std::to_string(kBlock)});
  REQUIRE(Acks(writer).first == kCount);
  CHECK(Stat(v, "fsync_calls") - before >= kCount);
}

// A chmod or an xattr change is not durable when it returns, and a sync
// would make it so: the change ends the lease that let the appender skip
// its syncs, and the appender skips none until the change is durable.
TEST_CASE("direct: a chmod or an xattr change of the appending file is durable before the "
          "appender skips another sync",
          "[direct][append][persistence][crash]") {
  // Room for the writer to go on for seconds, on a fast machine too.
  TestVolume v(TestVolume::Options{.image_bytes = 256ull << 20, .block_size = 0, .format = true,
                                   .mkfs_args = {}});
  v.Mount(kDirect);
  const std::string wal = PolicyFile(v);
  constexpr uint64_t kAppends = 150000, kSize = 1024;
  Client writer({"append", wal, std::to_string(kAppends), std::to_string(kSize)});
  REQUIRE(writer.LineStarting("ack ") != "");
  // Its acknowledgements are read, or it would stop once the pipe is full;
  // the reader ends when the writer is killed, in every outcome.
  std::thread drain([&] {
    while (!writer.Line().empty()) {
    }
  });
  struct Joined {
    Client& writer;
    std::thread& drain;
    ~Joined() {
      writer.Signal(SIGKILL);
      drain.join();
    }
  } joined{writer, drain};
  auto size = [&] { return static_cast<uint64_t>(MustStat(wal).st_size); };
  // It skips them: the file grows, and no sync reaches the daemon.
  uint64_t at = size();
  const uint64_t before = Stat(v, "fsync_calls");
  REQUIRE(WaitUntil([&] { return size() >= at + 64 * kSize; }));
  CHECK(Stat(v, "fsync_calls") - before <= 1);
  const bool chmod_section = [&] {
    bool chmodded = false;
    SECTION("chmod") {
      REQUIRE(chmod(wal.c_str(), 0600) == 0);
      chmodded = true;
    }
    SECTION("xattr") { REQUIRE(setxattr(wal.c_str(), "user.tag", "x", 1, 0) == 0); }
    return chmodded;
  }();
  // Sixteen more appends, each after the sync of the one before, then a
  // power loss.
  at = size();
  const bool grew = WaitUntil([&] { return size() >= at + 16 * kSize; });
  const bool writing = size() < kAppends * kSize;
  v.SigkillDaemon();
  writer.Signal(SIGKILL);
  REQUIRE(grew);
  CHECK(writing);
  v.ClearDeadMount();
  v.Mount(kDirect);
  if (chmod_section) {
    CHECK((MustStat(wal).st_mode & 07777) == 0600);
  } else {
    char value[8] = {};
    CHECK(getxattr(wal.c_str(), "user.tag", value, sizeof value) == 1);
    CHECK(value[0] == 'x');
  }
}

TEST_CASE("direct: the size an appender published is durable in the store before its slot "
          "goes, even when a stat took it in long before",
          "[direct][append][crash]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string wal = PolicyFile(v);
  constexpr uint64_t kCount = 50;
  Client writer({"append", wal, std::to_string(kCount), std::to_string(kBlock)});
  REQUIRE(Acks(writer).first == kCount);
  ExpectRecords(wal, kCount);  // the stat takes the size in, with no commit
  writer.Kill(SIGKILL);        // the lease ends; the slot is folded and goes
  REQUIRE(WaitUntil([&] { return Stat(v, "direct_size_slots") == 0; }));
  v.SigkillDaemon();
  v.ClearDeadMount();
  v.Mount(kDirect);
  ExpectRecords(wal, kCount);
  v.Unmount();
  ExpectFsckClean(v);
}

// Every "ack I ..." line the client printed, to its end: how many.
uint64_t AcksToEof(Client& c) {
  uint64_t acked = 0;
  for (std::string line = c.Line(); !line.empty(); line = c.Line()) {
    acked += line.rfind("ack ", 0) == 0 && (Contains(line, " direct") || Contains(line, " fallback"));
  }
  return acked;
}

TEST_CASE("direct: kill -9 in a loop: appends to logs created under the policy and overwrites "
          "are there after every power loss, and nothing past them",
          "[direct][append][persistence][crash]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string dir = v.Path("db");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  SetNosync(dir, "all");
  SyncWholeFs(v.mountpoint());  // the directory; the logs are the clients'
  constexpr int kRounds = 8;
  constexpr uint64_t kOverwrites = 128;
  std::mt19937 rng(42);
  for (int round = 0; round < kRounds; ++round) {
    INFO("round " << round);
    const std::string log = dir + "/log." + std::to_string(round);
    const std::string ow = v.Path("ow." + std::to_string(round));
    {
      Fd fd = MustOpen(ow, O_RDWR | O_CREAT, 0644);
      REQUIRE(ftruncate(fd.get(), static_cast<off_t>(kOverwrites * kBlock)) == 0);
    }
    SetNosync(ow, "all");
    SyncWholeFs(v.mountpoint());
    Client appender({"append", log, "100000", std::to_string(kBlock)});
    Client writer({"records", ow, std::to_string(kOverwrites), std::to_string(kBlock)});
    // Power loss somewhere in both streams.
    const uint64_t appends = 1 + rng() % 400, overwrites = 1 + rng() % kOverwrites;
    for (uint64_t i = 0; i < appends; ++i) REQUIRE(appender.LineStarting("ack ") != "");
    for (uint64_t i = 0; i < overwrites; ++i) REQUIRE(writer.LineStarting("ack ") != "");
    v.SigkillDaemon();
    appender.Kill(SIGKILL);
    writer.Kill(SIGKILL);
    const uint64_t acked = appends + AcksToEof(appender);
    const uint64_t written = overwrites + AcksToEof(writer);
    v.ClearDeadMount();
    v.Mount(kDirect);
    // Every acknowledged append, and at most the one in flight: the size
    // never covers a record that was not written whole.
    struct stat st;
    REQUIRE(stat(log.c_str(), &st) == 0);
    const uint64_t records = static_cast<uint64_t>(st.st_size) / kBlock;
    CHECK(static_cast<uint64_t>(st.st_size) % kBlock == 0);
    CHECK(records >= acked);
    CHECK(records <= acked + 1);
    CHECK(NfBytes(log) >= static_cast<uint64_t>(st.st_size));  // NF, as created
    ExpectRecords(log, records);
    Fd fd = MustOpen(ow, O_RDONLY);
    for (uint64_t i = 0; i < std::min(written, kOverwrites); ++i) {
      INFO("overwrite " << i);
      CHECK(FirstMismatch(MustPread(fd.get(), kBlock, i * kBlock), Record(i, kBlock)) == "");
    }
  }
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("direct: an append past the size leaves zeros between, whatever a truncate left in "
          "the last block",
          "[direct][append]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string f = PolicyFile(v);
  WriteFile(f, Pattern(5, 2 * kBlock));
  // An NF truncate leaves the old bytes past the size in its block; the
  // space after it comes back zeroed. Held open: the last close would give
  // that space back.
  Fd fd = MustOpen(f, O_RDWR);
  REQUIRE(ftruncate(fd.get(), 100) == 0);
  REQUIRE(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, 16 * kBlock) == 0);
  Client writer({"at", f, std::to_string(kBlock), std::to_string(kBlock)});
  REQUIRE(writer.Line() == "ack 0 direct");
  const std::string got = ReadFile(f);
  REQUIRE(got.size() == 2 * kBlock);
  CHECK(got.substr(0, 100) == Pattern(5, 100));
  CHECK(got.substr(100, kBlock - 100) == std::string(kBlock - 100, '\0'));
  CHECK(FirstMismatch(got.substr(kBlock), Record(0, kBlock)) == "");
}

TEST_CASE("direct: a read through FUSE that starts after a direct write returned sees it",
          "[direct][append]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string f = v.Path("f");
  MakeNfFile(f, 64 * 1024, 3);
  Fd reader = MustOpen(f, O_RDONLY);
  // The kernel caches the block first.
  CHECK(MustPread(reader.get(), kBlock, 0) == Pattern(3, 64 * 1024).substr(0, kBlock));
  Client writer({"records", f, "1", std::to_string(kBlock)});
  REQUIRE(writer.Line() == "ack 0 direct");
  CHECK(FirstMismatch(MustPread(reader.get(), kBlock, 0), Record(0, kBlock)) == "");
  REQUIRE(writer.Line() == "done");
  // And again, with the writer still holding its lease.
  Client again({"records", f, "2", std::to_string(kBlock)});
  REQUIRE(again.Line() == "ack 0 direct");
  REQUIRE(again.Line() == "ack 1 direct");
  CHECK(FirstMismatch(MustPread(reader.get(), kBlock, kBlock), Record(1, kBlock)) == "");
}

// [shim]: not in the ThreadSanitizer run, whose shim cannot be preloaded
// into an uninstrumented program.
TEST_CASE("direct: the shim serves writev, pwritev, pwritev2 (RWF_DSYNC) and fortified reads",
          "[direct][shim]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string f = v.Path("log");
  MakeNfFile(f, 16 * kBlock, 1);
  const uint64_t writes = Stat(v, "requests_write"), reads = Stat(v, "requests_read");
  auto r = RunCommand({"env", std::string("LD_PRELOAD=") + NSF_SHIM, BinPath("nsf_shim_probe"),
                       f});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  std::map<std::string, uint64_t> counters;
  std::istringstream out(r.out);
  std::string first, key;
  std::getline(out, first);
  CHECK(first == "ok");
  for (uint64_t value; out >> key >> value;) counters[key] = value;
  CHECK(counters["direct_writes"] == 3);
  CHECK(counters["fallback_writes"] == 0);
  CHECK(counters["direct_reads"] == 5);
  CHECK(counters["fallback_reads"] == 0);
  // Nothing of it reached the daemon as a request.
  CHECK(Stat(v, "requests_write") == writes);
  CHECK(Stat(v, "requests_read") == reads);
  // Without the shim the same program goes through FUSE, with the same
  // bytes in the end.
  auto plain = RunCommand({BinPath("nsf_shim_probe"), f});
  INFO(plain.Describe());
  CHECK(plain.out == "ok\n");
  CHECK(Stat(v, "requests_write") == writes + 3);
  v.KillDaemon();  // and what the shim wrote is durable
  v.Mount(kDirect);
  std::string expect(12288, '\0');
  expect.replace(0, 2048, std::string(2048, 'a'));
  expect.replace(2048, 2048, std::string(2048, 'b'));
  expect.replace(4096, 1000, std::string(1000, 'c'));
  expect.replace(5096, 3096, std::string(3096, 'd'));
  expect.replace(8192, 4096, std::string(4096, 'e'));
  CHECK(FirstMismatch(ReadFile(f).substr(0, 12288), expect) == "");
  v.Unmount();
}

// SQLite extends its -shm file with one-byte writes, which go direct under
// the policy, and maps it right after: a kernel that did not know the size
// would fault the mapping's last pages (SIGBUS).
TEST_CASE("direct: under the shim, a descriptor is detached before it is mapped: its fdatasync "
          "is real and a mapping past the size it appended to does not fault",
          "[direct][append][shim]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string wal = PolicyFile(v);
  const std::vector<std::string> shimmed = {"env", std::string("LD_PRELOAD=") + NSF_SHIM,
                                            BinPath("nsf_shim_probe"), "commits", wal, "50"};
  uint64_t before = Stat(v, "fsync_calls");
  auto plain = RunCommand(shimmed);
  INFO(plain.Describe());
  REQUIRE(plain.out == "ok\n");
  CHECK(Stat(v, "fsync_calls") - before <= 2);
  std::vector<std::string> mapped = shimmed;
  mapped.push_back("mmap");
  before = Stat(v, "fsync_calls");
  auto r = RunCommand(mapped);
  INFO(r.Describe());
  REQUIRE(r.out == "ok\n");
  // The first four syncs come before the mapping; every later one is real.
  CHECK(Stat(v, "fsync_calls") - before >= 46);
  CHECK(MustStat(wal).st_size == 100 * 4096);
}

TEST_CASE("direct: the shim asks the file system once per mount, not once per open",
          "[direct][shim]") {
  TestVolume v;
  v.Mount(kDirect);
  std::vector<std::string> cat = {"cat"};
  for (int i = 0; i < 20; ++i) {
    WriteFile(v.Path("f" + std::to_string(i)), "plain file " + std::to_string(i));
    cat.push_back(v.Path("f" + std::to_string(i)));
  }
  auto requests_of = [&](const std::vector<std::string>& argv) {
    auto before = MountStats(v.mountpoint());
    CommandResult r = RunCommand(argv);
    INFO(r.Describe());
    CHECK(r.exit_status == 0);
    // The kernel sends a close's RELEASE without waiting for its answer;
    // over io_uring the daemon may count it after the command has exited.
    // Read the counters once every file the command opened is released.
    std::map<std::string, uint64_t> after;
    uint64_t looks = 0;  // each look at the counters is one more GETXATTR
    CHECK(WaitUntil([&] {
      after = MountStats(v.mountpoint());
      ++looks;
      return after["requests_open"] - before["requests_open"] ==
                 after["requests_release"] - before["requests_release"] &&
             after["requests_opendir"] - before["requests_opendir"] ==
                 after["requests_releasedir"] - before["requests_releasedir"];
    }));
    std::map<std::string, uint64_t> delta;
    for (const auto& [k, value] : after) {
      if (k.rfind("requests_", 0) == 0 && value > before[k]) delta[k] = value - before[k];
    }
    delta["requests_getxattr"] -= looks;
    if (delta["requests_getxattr"] == 0) delta.erase("requests_getxattr");
    return delta;
  };
  auto plain = requests_of(cat);
  std::vector<std::string> shimmed = {"env", std::string("LD_PRELOAD=") + NSF_SHIM};
  shimmed.insert(shimmed.end(), cat.begin(), cat.end());
  auto with_shim = requests_of(shimmed);
  // 20 files opened and read: one statfs (is it FUSE?) and one getxattr
  // (which socket?) in all, and otherwise what the plain run sends.
  CHECK(with_shim["requests_statfs"] == 1);
  CHECK(with_shim["requests_getxattr"] == plain["requests_getxattr"] + 1);
  with_shim.erase("requests_statfs");
  with_shim.erase("requests_getxattr");
  plain.erase("requests_getxattr");
  auto text = [](const std::map<std::string, uint64_t>& m) {
    std::string s;
    for (const auto& [k, n] : m) s += k + "=" + std::to_string(n) + " ";
    return s;
  };
  INFO("with the shim: " << text(with_shim) << "\nplain: " << text(plain));
  CHECK(with_shim == plain);
  v.Unmount();
}

TEST_CASE("direct: the LD_PRELOAD shim serves an unmodified program, and falls back silently",
          "[direct][shim]") {
  TestVolume v;
  const std::string f = v.Path("f"), src = v.TempPath("src");
  const std::string data = Pattern(4, 16 * kBlock);
  WriteFile(src, data);
  // dd opens, seeks and writes with the plain calls the shim wraps.
  const std::vector<std::string> dd = {"env", std::string("LD_PRELOAD=") + NSF_SHIM, "dd",
                                       "if=" + src, "of=" + f, "bs=4096", "seek=2",
                                       "conv=notrunc", "status=none"};
  SECTION("on a mount with direct=, in place") {
    v.Mount(kDirect);
    MakeNfFile(f, 64 * kBlock, 1);
    const uint64_t writes = Stat(v, "requests_write");
    const uint64_t grants = Stat(v, "direct_grants");
    auto r = RunCommand(dd);
    INFO(r.Describe());
    REQUIRE(r.exit_status == 0);
    CHECK(Stat(v, "requests_write") == writes);
    CHECK(Stat(v, "direct_grants") > grants);  // dd moves its descriptor: one per number
  }
  SECTION("on a mount without it, through FUSE") {
    v.Mount("emulate=strict");
    MakeNfFile(f, 64 * kBlock, 1);
    const uint64_t writes = Stat(v, "requests_write");
    auto r = RunCommand(dd);
    INFO(r.Describe());
    REQUIRE(r.exit_status == 0);
    CHECK(r.err == "");
    CHECK(Stat(v, "requests_write") == writes + 16);
  }
  std::string expect = Pattern(1, 64 * kBlock);
  expect.replace(2 * kBlock, data.size(), data);
  CHECK(FirstMismatch(ReadFile(f), expect) == "");
  // And durable: the power goes. (Mounted with direct= again, the new
  // daemon takes over and then removes the dead one's socket.)
  v.KillDaemon();
  v.Mount(kDirect);
  CHECK(FirstMismatch(ReadFile(f), expect) == "");
  v.Unmount();
}

TEST_CASE("direct: a malformed message makes the daemon hang up on that client alone",
          "[direct]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string f = v.Path("f");
  MakeNfFile(f, 64 * 1024, 1);
  char path[256];
  ssize_t n = getxattr(v.mountpoint().c_str(), NSF_DIRECT_XATTR, path, sizeof(path) - 1);
  REQUIRE(n > 0);
  path[n] = '\0';
  auto hung_up_after = [&](const std::vector<std::string>& packets) {
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    REQUIRE(s >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path);
    REQUIRE(connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    for (const std::string& p : packets) (void)send(s, p.data(), p.size(), MSG_NOSIGNAL);
    // Whatever the daemon answered, it ends with a hang-up.
    char buf[512];
    bool eof = false;
    for (int i = 0; i < 10 && !eof; ++i) {
      pollfd p{s, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) break;
      eof = recv(s, buf, sizeof(buf), 0) <= 0;
    }
    ::close(s);
    return eof;
  };
  auto bytes = [](const auto& msg) {
    return std::string(reinterpret_cast<const char*>(&msg), sizeof(msg));
  };
  const std::string hello = bytes(nsf_msg_hello{NSF_MSG_HELLO, NSF_PROTOCOL_VERSION});
  CHECK(hung_up_after({"garbage, no message at all"}));
  CHECK(hung_up_after({"ab"}));
  CHECK(hung_up_after({bytes(nsf_msg_hello{NSF_MSG_HELLO, 99})}));
  CHECK(hung_up_after({hello, hello}));
  CHECK(hung_up_after({bytes(nsf_msg_lease{NSF_MSG_LEASE, 0, 1, 0})}));  // before HELLO
  CHECK(hung_up_after({hello, bytes(nsf_msg_lease{NSF_MSG_LEASE, 0, 1, 0})}));  // no fd
  CHECK(hung_up_after({hello, bytes(nsf_msg_ack{99, 0, 1})}));
  CHECK(hung_up_after({hello, std::string(1000, 'x')}));
  // The daemon serves on.
  int fd = nsf_open(f.c_str(), O_RDWR);
  INFO(nsf_errmsg());
  REQUIRE(fd >= 0);
  CHECK(nsf_map_valid(fd, 0, kBlock) == 1);
  CHECK(nsf_close(fd) == 0);
  v.Unmount();
}

TEST_CASE("direct: remount,ro is refused while a write lease's descriptor is open, and revokes "
          "the write leases that outlive theirs",
          "[direct][remount]") {
  TestVolume v;
  v.Mount(std::string(kDirect) + ",lease_break=1");
  const std::string f = v.Path("f");
  MakeNfFile(f, 64 * 1024, 1);
  {
    // A write lease comes with a descriptor open for writing: busy, as any.
    Client holder({"hold", f});
    REQUIRE(holder.Line() == "leased");
    CommandResult busy = v.RunRemount("ro");
    INFO(busy.Describe());
    CHECK(busy.exit_status == 1);
    CHECK(Contains(busy.err, "open for writing"));
    CHECK(Stat(v, "direct_leases") == 1);
  }
  CHECK(WaitUntil([&] { return Stat(v, "direct_leases") == 0; }));
  // A lease whose descriptor went behind the library's back holds on: the
  // kernel lets the remount through, and the daemon revokes it first.
  Client orphaned({"hold-closed", f});
  REQUIRE(orphaned.Line() == "leased");
  REQUIRE(orphaned.Line() == "closed");
  REQUIRE(Stat(v, "direct_leases") == 1);
  const uint64_t revoked = Stat(v, "direct_revocations");
  CommandResult ro = v.RunRemount("ro");
  INFO(ro.Describe());
  REQUIRE(ro.exit_status == 0);
  CHECK(Stat(v, "direct_leases") == 0);
  CHECK(Stat(v, "direct_revocations") == revoked + 1);
  CHECK(Stat(v, "direct_cutoffs") == 0);  // it acknowledged
  REQUIRE(v.RunRemount("rw").exit_status == 0);

  // One that does not acknowledge is cut off after lease_break, and the
  // remount goes on.
  Client stopped({"hold-closed", f});
  REQUIRE(stopped.Line() == "leased");
  REQUIRE(stopped.Line() == "closed");
  stopped.Stop();
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(v.RunRemount("ro").exit_status == 0);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(900));
  CHECK(Stat(v, "direct_cutoffs") == 1);
  stopped.Kill(SIGKILL);
  REQUIRE(v.RunRemount("rw").exit_status == 0);
  WriteFile(v.Path("g"), "read-write again");
  v.Unmount();
  ExpectFsckClean(v);
}

}  // namespace nosyncfs::test
