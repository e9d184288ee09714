// Crash at every crash point a workload reaches (base/crash_point.h), then
// recover, check, and verify SEMANTICS.md section 6 against what the
// workload saw acknowledged: a file-level operation in flight (punch, zero
// range, flag change, truncate, a copy sharing blocks) whole or not at all,
// a write in flight byte by byte. The daemon dies by SIGKILL under emulate=strict,
// so the image holds only what was persisted; "device.persist" points also
// tear the persist in progress.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

namespace nosyncfs::test {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kRecord = 8 * kKiB;
constexpr int kRecords = 12;

// What the file system must show after recovery, derived from the steps
// that were acknowledged. `pending` is the step in flight at the crash (it
// may have happened or not, and a data write may be partly there).
struct Model {
  std::string plain;        // contents of the fsynced plain file
  std::string plain_name;   // "plain" or, after the durable rename, "renamed"
  std::string nf;           // contents of the NF file
  std::string nf_flags;     // canonical user.nosync ("" = not created yet)
  bool copy_exists = false; // "copy": made by copy_file_range from the plain file
  std::string copy;
};

struct Step {
  const char* name;
  // Performs the step against the mount; false when a syscall failed.
  std::function<bool(const TestVolume&)> run;
  // Applies the step's effect to the model.
  std::function<void(Model&)> apply;
  // A file-level operation (punch, zero range, flag change, truncate): after
  // a crash in it the NF file is exactly as before it or exactly as after
  // it, bytes and flags together. Otherwise a write in flight may be there
  // byte by byte.
  bool whole = false;
};

bool WriteAt(const std::string& path, const std::string& data, uint64_t off, bool sync) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  if (fd < 0) return false;
  bool ok = pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)) ==
            static_cast<ssize_t>(data.size());
  if (ok && sync) ok = fsync(fd) == 0;
  return close(fd) == 0 && ok;
}

bool FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return false;
  bool ok = fsync(fd) == 0;
  return close(fd) == 0 && ok;
}

void Put(std::string& s, uint64_t off, const std::string& data) {
  if (s.size() < off + data.size()) s.resize(off + data.size(), '\0');
  s.replace(off, data.size(), data);
}

std::vector<Step> Workload() {
  std::vector<Step> steps;
  steps.push_back({"create plain, fsync",
                   [](const TestVolume& v) {
                     return WriteAt(v.Path("plain"), Pattern(61, 40000), 0, true) &&
                            FsyncDir(v.mountpoint());
                   },
                   [](Model& m) { m.plain = Pattern(61, 40000); }});
  steps.push_back({"create nf, set user.nosync 0-256K",
                   [](const TestVolume& v) {
                     return WriteAt(v.Path("nf"), "", 0, true) && FsyncDir(v.mountpoint()) &&
                            setxattr(v.Path("nf").c_str(), "user.nosync", "0-256K", 6, 0) == 0;
                   },
                   [](Model& m) { m.nf_flags = "0-262144"; }});
  for (int i = 0; i < kRecords; ++i) {
    steps.push_back({"append NF record",
                     [i](const TestVolume& v) {
                       return WriteAt(v.Path("nf"), Pattern(70 + i, kRecord), i * kRecord, false);
                     },
                     [i](Model& m) { Put(m.nf, i * kRecord, Pattern(70 + i, kRecord)); }});
  }
  steps.push_back({"overwrite NF head",
                   [](const TestVolume& v) {
                     return WriteAt(v.Path("nf"), Pattern(90, 5000), 100, false);
                   },
                   [](Model& m) { Put(m.nf, 100, Pattern(90, 5000)); }});
  steps.push_back({"punch NF 32K..48K+10",
                   [](const TestVolume& v) {
                     int fd = open(v.Path("nf").c_str(), O_RDWR);
                     if (fd < 0) return false;
                     bool ok = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                         32 * kKiB, 16 * kKiB + 10) == 0;
                     return close(fd) == 0 && ok;
                   },
                   [](Model& m) {
                     Put(m.nf, 32 * kKiB, std::string(16 * kKiB + 10, '\0'));
                     m.nf_flags = "0-32768,49152-262144";
                   },
                   /*whole=*/true});
  steps.push_back({"overwrite plain, no fsync (may be lost)",
                   [](const TestVolume& v) {
                     return WriteAt(v.Path("plain"), Pattern(62, 40000), 0, false);
                   },
                   [](Model&) {}});
  steps.push_back({"overwrite plain again and fsync",
                   [](const TestVolume& v) {
                     return WriteAt(v.Path("plain"), Pattern(63, 40000), 0, true);
                   },
                   [](Model& m) { m.plain = Pattern(63, 40000); }});
  steps.push_back({"rename plain, fsync dir",
                   [](const TestVolume& v) {
                     return rename(v.Path("plain").c_str(), v.Path("renamed").c_str()) == 0 &&
                            FsyncDir(v.mountpoint());
                   },
                   [](Model& m) { m.plain_name = "renamed"; }});
  steps.push_back({"create copy, fsync dir",
                   [](const TestVolume& v) {
                     return WriteAt(v.Path("copy"), "", 0, true) && FsyncDir(v.mountpoint());
                   },
                   [](Model& m) { m.copy_exists = true; }});
  // Shares the plain file's whole blocks (one transaction), copies the
  // partial last one.
  steps.push_back({"copy_file_range renamed to copy, fsync copy",
                   [](const TestVolume& v) {
                     int in = open(v.Path("renamed").c_str(), O_RDONLY);
                     int out = open(v.Path("copy").c_str(), O_WRONLY);
                     loff_t a = 0, b = 0;
                     bool ok = in >= 0 && out >= 0 &&
                               copy_file_range(in, &a, out, &b, 40000, 0) == 40000 &&
                               fsync(out) == 0;
                     if (in >= 0) close(in);
                     if (out >= 0) ok = close(out) == 0 && ok;
                     return ok;
                   },
                   [](Model& m) { m.copy = Pattern(63, 40000); },
                   /*whole=*/true});
  steps.push_back({"overwrite copy 1000..6000 (copy on write), fsync",
                   [](const TestVolume& v) {
                     return WriteAt(v.Path("copy"), Pattern(64, 5000), 1000, true);
                   },
                   [](Model& m) { Put(m.copy, 1000, Pattern(64, 5000)); }});
  steps.push_back({"overwrite renamed 30000..34000 (copy on write), fsync",
                   [](const TestVolume& v) {
                     return WriteAt(v.Path("renamed"), Pattern(65, 4000), 30000, true);
                   },
                   [](Model& m) { Put(m.plain, 30000, Pattern(65, 4000)); }});
  steps.push_back({"shrink NF set",
                   [](const TestVolume& v) {
                     return setxattr(v.Path("nf").c_str(), "user.nosync", "0-64K", 5, 0) == 0;
                   },
                   // Setting flags fills the punched hole (with zeros).
                   [](Model& m) { m.nf_flags = "0-65536"; },
                   /*whole=*/true});
  steps.push_back({"zero range NF 4K+100..20K",
                   [](const TestVolume& v) {
                     int fd = open(v.Path("nf").c_str(), O_RDWR);
                     if (fd < 0) return false;
                     bool ok = fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                                         4 * kKiB + 100, 16 * kKiB) == 0;
                     return close(fd) == 0 && ok;
                   },
                   [](Model& m) { Put(m.nf, 4 * kKiB + 100, std::string(16 * kKiB, '\0')); },
                   /*whole=*/true});
  steps.push_back({"truncate NF to 60000",
                   [](const TestVolume& v) { return truncate(v.Path("nf").c_str(), 60000) == 0; },
                   [](Model& m) {
                     m.nf.resize(60000);
                     m.nf_flags = "0-61440";  // blocks past EOF freed
                   },
                   /*whole=*/true});
  return steps;
}

std::string ReadOr(const std::string& path, bool* exists) {
  std::ifstream in(path, std::ios::binary);
  *exists = in.good();
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string NosyncOf(const std::string& path) {
  char buf[256];
  ssize_t n = getxattr(path.c_str(), "user.nosync", buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

// Every byte of `got` must come from one of `versions` (a write in flight
// may be partly there); bytes past them read as zeros.
bool EachByteFrom(const std::string& got, std::initializer_list<const std::string*> versions,
                  std::string* why) {
  for (size_t i = 0; i < got.size(); ++i) {
    bool found = false;
    for (const std::string* v : versions) found |= got[i] == (i < v->size() ? (*v)[i] : '\0');
    if (!found) {
      *why = "byte " + std::to_string(i);
      return false;
    }
  }
  return true;
}

bool EachByteFrom(const std::string& got, const std::string& before, const std::string& after,
                  std::string* why) {
  return EachByteFrom(got, {&before, &after}, why);
}

// Runs the workload; returns how many steps were acknowledged.
size_t RunWorkload(const TestVolume& v, const std::vector<Step>& steps) {
  size_t acked = 0;
  for (const Step& s : steps) {
    if (!s.run(v)) break;
    ++acked;
  }
  return acked;
}

// Arms the crash points for the daemons this test starts.
struct CrashEnv {
  CrashEnv(const char* name, const std::string& value) : name_(name) {
    setenv(name, value.c_str(), 1);
  }
  ~CrashEnv() { unsetenv(name_); }
  const char* name_;
};

}  // namespace

TEST_CASE("crash at every crash point: recovery, fsck and the durability contract",
          "[posix][crash][persistence]") {
  std::vector<Step> steps = Workload();
  // 1. Count the crash points the workload reaches.
  size_t points = 0;
  {
    TestVolume v;
    std::string trace = v.TempPath("trace");
    {
      CrashEnv env("NSF_CRASH_TRACE", trace);
      v.Mount();
    }
    REQUIRE(RunWorkload(v, steps) == steps.size());
    v.SigkillDaemon();
    v.ClearDeadMount();
    std::ifstream in(trace);
    std::string line;
    while (std::getline(in, line)) ++points;
  }
  INFO("crash points reached by the workload: " << points);
  REQUIRE(points > 50);

  // 2. Crash at each of them (every third when there are very many).
  size_t stride = points > 300 ? 3 : 1;
  for (size_t k = 1; k <= points; k += stride) {
    INFO("crash at point " << k << " of " << points);
    TestVolume v;
    {
      CrashEnv env("NSF_CRASH_AFTER", std::to_string(k));
      v.Mount();
    }
    size_t acked = RunWorkload(v, steps);
    INFO("steps acknowledged: " << acked);
    REQUIRE(acked < steps.size() + 1);
    v.SigkillDaemon();
    v.ClearDeadMount();

    CommandResult fsck = RunCommand({BinPath("fsck.nosyncfs"), v.image()});
    INFO(fsck.Describe() << "\n" << fsck.out);
    REQUIRE(fsck.exit_status == 0);
    v.Mount("emulate=strict");

    Model before{"", "plain", "", "", false, ""};
    for (size_t i = 0; i < acked; ++i) steps[i].apply(before);
    Model after = before;
    if (acked < steps.size()) steps[acked].apply(after);

    // The plain file: fsynced contents, under a durable name.
    if (!before.plain.empty()) {
      bool exists = false;
      std::string got = ReadOr(v.Path(before.plain_name), &exists);
      if (!exists && after.plain_name != before.plain_name) {
        got = ReadOr(v.Path(after.plain_name), &exists);
      }
      REQUIRE(exists);
      std::string why;
      // Step "overwrite plain, no fsync" may also show through until a later
      // fsync covers it: allow its bytes as well, mixed with the others (with
      // early evictions some of its words can be in the image while the
      // fsync after it is torn).
      const std::string unsynced = Pattern(62, 40000);
      bool ok = EachByteFrom(got, {&before.plain, &after.plain, &unsynced}, &why);
      INFO("plain: " << why);
      CHECK(ok);
      CHECK(got.size() == before.plain.size());
    }
    // The copy: there whole or not at all while copy_file_range is in
    // flight, each fsynced write to it or its source after that.
    if (before.copy_exists) {
      bool exists = false;
      std::string got = ReadOr(v.Path("copy"), &exists);
      REQUIRE(exists);
      if (acked < steps.size() && steps[acked].whole) {
        INFO("copy: " << FirstMismatch(got, before.copy) << " / "
                      << FirstMismatch(got, after.copy));
        CHECK((got == before.copy || got == after.copy));
      } else {
        std::string why;
        bool ok = EachByteFrom(got, before.copy, after.copy, &why);
        INFO("copy: " << why);
        CHECK(ok);
        CHECK(got.size() == std::max(before.copy.size(), after.copy.size()));
      }
    }
    // The NF file: every acknowledged write, its size, its flags.
    if (!before.nf_flags.empty()) {
      bool exists = false;
      std::string got = ReadOr(v.Path("nf"), &exists);
      REQUIRE(exists);
      std::string flags = NosyncOf(v.Path("nf"));
      INFO("nf flags \"" << flags << "\"");
      if (acked < steps.size() && steps[acked].whole) {
        INFO("nf: " << FirstMismatch(got, before.nf) << " / " << FirstMismatch(got, after.nf));
        CHECK(((got == before.nf && flags == before.nf_flags) ||
               (got == after.nf && flags == after.nf_flags)));
      } else {
        CHECK(got.size() >= before.nf.size());
        CHECK(got.size() <= std::max(before.nf.size(), after.nf.size()));
        std::string why;
        bool ok = EachByteFrom(got, before.nf, after.nf, &why);
        INFO("nf: " << why);
        CHECK(ok);
        CHECK((flags == before.nf_flags || flags == after.nf_flags));
      }
    }
    v.Unmount();
  }
}

}  // namespace nosyncfs::test
