// Real databases, unmodified, on a directory with the no-fsync policy and
// under the LD_PRELOAD shim: the sqlite3 program (WAL, synchronous=FULL)
// and RocksDB's db_bench (every write synced). What they must get: their
// commits served in user space (almost no write or fsync request reaches
// the daemon), and not one acknowledged commit lost to a kill -9 of the
// daemon and the database together, as in a power failure.
//
// [shim]: not in the ThreadSanitizer run, whose shim cannot be preloaded
// into an uninstrumented program.

#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/client_process.h"
#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

using namespace nosyncfs::test;

namespace {

constexpr char kDirect[] = "emulate=strict,direct=root";

uint64_t Stat(const TestVolume& v, const std::string& key) {
  auto stats = MountStats(v.mountpoint());
  INFO("statistic " << key);
  REQUIRE(stats.count(key) == 1);
  return stats.at(key);
}

// DIR under the mount, with the policy every file made in it inherits.
std::string PolicyDir(const TestVolume& v) {
  const std::string dir = v.Path("db");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  const std::string value = "all";
  REQUIRE(setxattr(dir.c_str(), "user.nosync", value.data(), value.size(), 0) == 0);
  SyncWholeFs(v.mountpoint());  // the directory; the database's files are its own
  return dir;
}

std::vector<std::string> Shimmed(std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"env", std::string("LD_PRELOAD=") + NSF_SHIM});
  return argv;
}

// Runs the database program argv under the shim to its end, and checks
// that what it made durable went direct: at most `writes` write requests
// and `fsyncs` fsync calls reached the daemon.
CommandResult RunServedDirect(const TestVolume& v, const std::vector<std::string>& argv,
                              uint64_t writes, uint64_t fsyncs) {
  const uint64_t writes_before = Stat(v, "requests_write");
  const uint64_t fsyncs_before = Stat(v, "fsync_calls");
  auto r = RunCommand(Shimmed(argv), std::chrono::seconds(120));
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  CHECK(Stat(v, "requests_write") - writes_before <= writes);
  CHECK(Stat(v, "fsync_calls") - fsyncs_before <= fsyncs);
  return r;
}

// SQL for the sqlite3 program: WAL, synchronous=FULL, then `count`
// single-row transactions, each followed by a line with its number (the
// shell prints it once the commit returned: an acknowledgement).
std::string SqliteScript(int count) {
  std::string sql =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      " CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT);";
  for (int i = 1; i <= count; ++i) {
    sql += " INSERT INTO t(v) VALUES('row " + std::to_string(i) + "'); SELECT " +
           std::to_string(i) + ";";
  }
  return sql;
}

// The database after recovery: intact, and its rows 1..N without a gap;
// returns N.
uint64_t SqliteRows(const std::string& db) {
  auto r = RunCommand({"sqlite3", db, "PRAGMA integrity_check; SELECT count(*), max(k) FROM t;"});
  INFO(r.Describe());
  REQUIRE(r.exit_status == 0);
  const auto bar = r.out.find('|');
  REQUIRE(r.out.rfind("ok\n", 0) == 0);
  REQUIRE(bar != std::string::npos);
  const uint64_t count = std::stoull(r.out.substr(3, bar - 3));
  const std::string max = r.out.substr(bar + 1, r.out.size() - bar - 2);
  CHECK(max == (count == 0 ? "" : std::to_string(count)));
  return count;
}

}  // namespace

TEST_CASE("database: SQLite in WAL mode with synchronous=FULL under the shim, in a policy "
          "directory: commits go direct, and kill -9 loses none that returned",
          "[direct][database][shim][persistence][crash]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string db = PolicyDir(v) + "/test.sqlite";
  constexpr int kCommits = 500;
  // Through FUSE each commit is three writes and an fsync; under the shim
  // the files' first writes (which allocate their NF space) and the
  // database's set-up remain.
  RunServedDirect(v, {"sqlite3", db, SqliteScript(kCommits)}, 50, 10);
  v.KillDaemon();
  v.Mount(kDirect);
  CHECK(SqliteRows(db) == kCommits);

  // Power losses in the middle of the commits: every acknowledged one is
  // there, the database intact.
  std::mt19937 rng(7);
  uint64_t rows = kCommits;
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    ClientProcess sqlite(ClientProcess::Program{Shimmed({"sqlite3", db, SqliteScript(2000)})});
    REQUIRE(sqlite.Line() == "wal");
    const int acks = 1 + static_cast<int>(rng() % 1500);
    std::string last;
    for (int i = 0; i < acks; ++i) REQUIRE((last = sqlite.Line()) != "");
    v.SigkillDaemon();
    sqlite.Kill(SIGKILL);
    for (std::string line = sqlite.Line(); !line.empty(); line = sqlite.Line()) last = line;
    v.ClearDeadMount();
    v.Mount(kDirect);
    // The shell's output comes in blocks, and the database goes on
    // committing after the daemon died (its stores reach the device
    // without it): what it printed is a lower bound.
    const uint64_t now = SqliteRows(db);
    CHECK(now >= rows + std::stoull(last));
    rows = now;
  }
  v.Unmount();
  ExpectFsckClean(v);
}

TEST_CASE("database: RocksDB db_bench with sync=1 under the shim, in a policy directory: "
          "writes go direct, and a kill -9 after it loses none",
          "[direct][database][shim][persistence][crash]") {
  TestVolume v;
  v.Mount(kDirect);
  const std::string db = PolicyDir(v) + "/rocksdb";
  constexpr int kOps = 2000;
  // Through FUSE each write is a write and an fsync.
  auto r = RunServedDirect(v,
                           {"db_bench", "--benchmarks=fillseq", "--sync=1",
                            "--num=" + std::to_string(kOps), "--value_size=100",
                            "--compression_type=none", "--threads=1", "--db=" + db},
                           kOps / 10, kOps / 10);
  CHECK(Contains(r.out, "fillseq"));
  v.KillDaemon();
  v.Mount(kDirect);
  // RocksDB replays its log on open: every key, one "0xKEY : 0xVALUE" line.
  auto scan = RunCommand({"ldb", "--db=" + db, "--hex", "scan"}, std::chrono::seconds(120));
  REQUIRE(scan.exit_status == 0);
  size_t keys = 0;
  std::istringstream lines(scan.out);
  for (std::string line; std::getline(lines, line);) keys += line.rfind("0x", 0) == 0;
  CHECK(keys == kOps);
  v.Unmount();
  ExpectFsckClean(v);
}
