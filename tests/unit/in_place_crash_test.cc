// File-level operations are whole or not begun after a crash at any crash
// point inside them: the file's bytes, size and NF set are exactly those
// before the operation or exactly those after it. Those that change bytes
// in place (hole punch with partial blocks at its edges, zero range) do so
// through an intent (journal/in_place_work.h, Volume::CommitInPlace); flag
// set and clear, a shrinking truncate, a copy sharing blocks, collapse and
// insert range are single transactions.
#include <fcntl.h>
#include <linux/falloc.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "fs/vfs.h"
#include "tests/harness/volume_fixture.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kFileBytes = 6 * 4096 + 300;
// Both ends inside a block, whole blocks between: edges zeroed in place,
// the middle unmapped.
constexpr uint64_t kOpOff = 1000;
constexpr uint64_t kOpLen = 3 * 4096 + 2000;
const Caller kRoot{0, 0};
const std::string kNfWrite(100, 'Z');

struct FileState {
  std::string bytes;
  std::string nosync;
  bool operator==(const FileState&) const = default;
};

Result<FileState> StateOf(Vfs& vfs, uint64_t ino) {
  NSF_ASSIGN_OR_RETURN(struct stat st, vfs.Getattr(ino));
  FileState s;
  NSF_ASSIGN_OR_RETURN(s.bytes, VfsRead(vfs, ino, 0, static_cast<size_t>(st.st_size) + 4096));
  auto flags = vfs.Getxattr(ino, "user.nosync");
  s.nosync = flags.ok() ? *flags : "";
  return s;
}

int ModeOf(const std::string& op) {
  if (op.rfind("punch", 0) == 0) return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  if (op == "zero-grow") return FALLOC_FL_ZERO_RANGE;
  return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

bool Flagged(const std::string& op) {
  return op.find("nf") != std::string::npos || op == "flag-clear";
}
// Operations after which an NF write lands on bytes the operation zeroed.
bool WritesAfter(const std::string& op) { return op == "punch-nf" || op == "zero-nf"; }

// For zero-grow the range runs past EOF, so the size changes too.
uint64_t OpOff(const std::string& op) { return op == "zero-grow" ? kFileBytes - 2000 : kOpOff; }

// Runs the operation under test.
Status RunOperation(Vfs& vfs, uint64_t ino, const std::string& op) {
  if (op == "flag-set") return vfs.Setxattr(ino, "user.nosync", "0-16384", 0);
  if (op == "flag-clear") return vfs.Removexattr(ino, "user.nosync");
  if (op == "truncate-nf") {
    SetattrRequest req;
    req.set_size = true;
    req.size = 5000;
    return vfs.Setattr(ino, req).status();
  }
  if (op == "copy-grow" || op == "copy-into") {
    // Within the file: whole blocks shared, partial edge blocks copied;
    // past EOF (the file grows), or over its own later bytes. Then fsync,
    // since the copy of an unflagged range is not durable before it.
    uint64_t off_in = op == "copy-grow" ? 0 : 100;
    uint64_t off_out = op == "copy-grow" ? 8 * 4096 : 4 * 4096 + 100;
    uint64_t len = op == "copy-grow" ? 3 * 4096 + 500 : 2 * 4096 + 200;
    NSF_ASSIGN_OR_RETURN(size_t n, vfs.CopyFileRange(ino, off_in, ino, off_out, len, 0));
    if (n != len) return Status::Error(EIO, "short copy");
    return vfs.Fsync(ino, false);
  }
  if (op == "collapse" || op == "insert") {
    Status st = vfs.Fallocate(ino, op == "collapse" ? FALLOC_FL_COLLAPSE_RANGE
                                                    : FALLOC_FL_INSERT_RANGE,
                              4096, 2 * 4096);
    return st.ok() ? vfs.Fsync(ino, false) : st;
  }
  return vfs.Fallocate(ino, ModeOf(op), OpOff(op), kOpLen);
}


}  // namespace

NSF_CRASH_WORKLOAD(InPlace, "vfs.in_place") {
  const std::string op = child.Arg("op");
  Vfs& vfs = child.OpenVfs();
  Entry f = child.Must(vfs.Create(kRootIno, "f", 0644, true, false, kRoot), "create");
  child.Check(VfsWriteAll(vfs, f.ino, 0, DataPattern(61, kFileBytes)), "write");
  if (Flagged(op)) child.Check(vfs.Setxattr(f.ino, "user.nosync", "all", 0), "flag");
  child.Check(vfs.Fsync(f.ino, false), "fsync");
  child.Report("stage", 1);
  if (child.Arg("skip") == "yes") return;  // for the state before
  child.StartCrashPoints();
  child.Check(RunOperation(vfs, f.ino, op), "operation");
  child.Report("stage", 2);
  if (!WritesAfter(op)) return;
  // An NF write over the zeroed edge, durable on return: the finished
  // operation must never be done again over it.
  child.Check(VfsWriteAll(vfs, f.ino, kOpOff, kNfWrite), "nf write");
  child.Report("stage", 3);
  child.Must(vfs.Create(kRootIno, "g", 0644, true, false, kRoot), "create g");
}

TEST_CASE("vfs crash: punch, zero range, flags, truncate, copy, collapse, insert: whole or none",
          "[fs][crash][in_place]") {
  for (const char* op : {"punch-nf", "punch", "zero-nf", "zero", "zero-grow", "flag-set",
                         "flag-clear", "truncate-nf", "copy-grow", "copy-into", "collapse", "insert"}) {
    INFO("operation " << op);
    // The states before and after, from runs without a crash (the first
    // counts the crash points of the operation).
    uint64_t points = 0;
    auto state_after_run = [&](const std::string& skip) {
      VolumeFixture fx;
      const std::string trace = fx.dir() + "/trace";
      CrashResult r = fx.RunAndCrash("vfs.in_place", {{"op", op}, {"skip", skip}},
                                     {{"NSF_CRASH_TRACE", trace}});
      REQUIRE(r.GetU64("stage") == (skip == "yes" ? 1 : WritesAfter(op) ? 3 : 2));
      std::ifstream in(trace);
      points = 0;
      for (std::string line; std::getline(in, line);) ++points;
      auto vfs = fx.OpenVfs();
      auto e = vfs->Lookup(kRootIno, "f");
      REQUIRE(e.ok());
      auto s = StateOf(*vfs, e->ino);
      REQUIRE(s.ok());
      return *s;
    };
    const FileState before = state_after_run("yes");
    const FileState after_all = state_after_run("no");
    // The NF write, acknowledged before the kill, is there: the finished
    // operation was not done again over it.
    if (WritesAfter(op)) REQUIRE(after_all.bytes.substr(kOpOff, kNfWrite.size()) == kNfWrite);
    // The operation's own result: the NF write (flagged files) undone.
    FileState after = after_all;
    if (WritesAfter(op)) after.bytes.replace(kOpOff, kNfWrite.size(), kNfWrite.size(), '\0');
    REQUIRE(before.bytes == DataPattern(61, kFileBytes));
    if (std::string(op) == "copy-grow") {
      std::string expect = before.bytes;
      expect.resize(8 * 4096, '\0');
      expect += before.bytes.substr(0, 3 * 4096 + 500);
      REQUIRE(after.bytes == expect);
    } else if (std::string(op) == "collapse") {
      REQUIRE(after.bytes == std::string(before.bytes).erase(4096, 2 * 4096));
    } else if (std::string(op) == "insert") {
      REQUIRE(after.bytes == std::string(before.bytes).insert(4096, 2 * 4096, '\0'));
    } else if (std::string(op) == "copy-into") {
      std::string expect = before.bytes;
      expect.replace(4 * 4096 + 100, 2 * 4096 + 200, before.bytes.substr(100, 2 * 4096 + 200));
      REQUIRE(after.bytes == expect);
    }
    REQUIRE(!(before == after));
    REQUIRE(points >= 3);

    for (uint64_t k = 1; k <= points; ++k) {
      VolumeFixture fx;
      CrashResult r = fx.RunInChild("vfs.in_place", {{"op", op}, {"skip", "no"}},
                                    {{"NSF_CRASH_AFTER", std::to_string(k)}});
      INFO("crash at point " << k << " of " << points << ": " << r.Describe());
      REQUIRE(r.killed());
      const uint64_t stage = r.GetU64("stage");
      auto vfs = fx.OpenVfs();
      auto e = vfs->Lookup(kRootIno, "f");
      REQUIRE(e.ok());
      auto s = StateOf(*vfs, e->ino);
      REQUIRE(s.ok());
      INFO("stage " << stage << ", size " << s->bytes.size() << " (before "
                    << before.bytes.size() << ", after " << after.bytes.size()
                    << "), nosync \"" << s->nosync << "\"");
      if (stage == 1) {
        CHECK((*s == before || *s == after));
      } else if (stage == 2) {
        // The NF write in flight: each of its bytes old or new, the rest
        // exactly the operation's result.
        REQUIRE(s->bytes.size() == after.bytes.size());
        CHECK(s->nosync == after.nosync);
        for (size_t i = 0; i < after.bytes.size(); ++i) {
          bool in_write = i >= kOpOff && i < kOpOff + kNfWrite.size();
          bool ok = s->bytes[i] == after.bytes[i] || (in_write && s->bytes[i] == 'Z');
          if (!ok) {
            FAIL_CHECK("byte " << i);
            break;
          }
        }
      } else {
        CHECK(*s == after_all);
      }
    }
  }
}

}  // namespace nosyncfs::test
