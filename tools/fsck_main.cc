// fsck.nosyncfs: checks a nosyncfs volume and, when asked, repairs it, with
// the options and exit codes fsck(8) and systemd-fsck expect (see kUsage).
//
// Without a repair option it recovers the volume exactly as a mount would
// (log replay, interrupted in-place operations: Volume::Open), checks it
// and changes nothing else; it never asks questions, so such a run only
// reports. Orphan inodes (unlinked while open before a crash) are valid
// state that the next mount frees; this run only notes them.
//
// -n opens the volume read-only (VolumeOptions::read_only) and changes
// nothing at all. A volume that needs recovery is then not checked: that
// it needs it is the one problem reported (exit 4). Orphan inodes not yet
// freed count as a problem left uncorrected too (a mount or -p frees them).
//
// -p/-a and -y recover, check, repair (journal/repair.h), then close, open
// and check again: exit 1 only if that check is clean. Problems left make
// it exit 4 ("run fsck.nosyncfs -y DEVICE manually" when -y would do more).
//
// NSF_PROGRESS_AT_ONCE=1 in the environment (a test hook of Progress) shows
// progress from the start of each pass instead of after its first second.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/progress.h"
#include "journal/checker.h"
#include "journal/repair.h"
#include "journal/volume.h"

namespace nosyncfs {
namespace {

constexpr int kExitClean = 0;
constexpr int kExitCorrected = 1;
constexpr int kExitUncorrected = 4;
constexpr int kExitError = 8;
constexpr int kExitUsage = 16;

constexpr char kUsage[] =
    "usage: fsck.nosyncfs [-p|-a|-n|-y] [-f] [-C FD] [-V] [-m METADIR] DEVICE\n"
    "  -p, -a      repair what is safe without asking: leaked blocks, orphan inodes,\n"
    "              link counts, the kept counters, reference counts\n"
    "  -y          repair everything repairable: also entries naming missing inodes,\n"
    "              unreachable inodes (into /lost+found) and bad extent records\n"
    "  -n          open the device read-only and change nothing\n"
    "              (without -p, -a, -n or -y: recover the volume as a mount would,\n"
    "              check it and repair nothing; fsck.nosyncfs never asks)\n"
    "  -f          accepted for fsck(8); the check always runs in full\n"
    "  -C FD       progress lines \"PASS DONE TOTAL DEVICE\" on FD for fsck(8);\n"
    "              -C 0: a progress bar on standard output\n"
    "  -V          print the version and exit\n"
    "  -m METADIR  the metadata store (default: the one the superblock names)\n"
    "exit status: 0 clean, 1 errors corrected, 4 errors left uncorrected,\n"
    "  8 operational error, 16 usage error\n";

enum class Mode { kReport, kReadOnly, kSafe, kAll };

struct Args {
  Mode mode = Mode::kReport;
  bool version = false;
  int progress_fd = -1;  // -C
  std::string meta_dir;
  std::string device;
};

// Parses argv as fsck(8) passes it: flags may be combined ("-pf"), and an
// option's value may be attached ("-C3", "-mDIR") or the next argument.
// Returns false (after a message on stderr) for a usage error.
bool ParseArgs(int argc, char** argv, Args* args) {
  auto usage_error = [](const std::string& why) {
    std::fprintf(stderr, "fsck.nosyncfs: %s\n%s", why.c_str(), kUsage);
    return false;
  };
  bool p = false, n = false, y = false, only_operands = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (only_operands || arg.size() < 2 || arg[0] != '-') {
      if (!args->device.empty()) return usage_error("more than one device: " + arg);
      args->device = arg;
      continue;
    }
    if (arg == "--") {
      only_operands = true;
      continue;
    }
    for (size_t j = 1; j < arg.size(); ++j) {
      const char c = arg[j];
      if (c == 'a' || c == 'p') {
        p = true;
      } else if (c == 'n') {
        n = true;
      } else if (c == 'y') {
        y = true;
      } else if (c == 'f') {
        // The check always runs in full.
      } else if (c == 'V') {
        args->version = true;
      } else if (c == 'C' || c == 'm') {
        std::string value = arg.substr(j + 1);
        if (value.empty()) {
          if (i + 1 >= argc) return usage_error(std::string("-") + c + " needs a value");
          value = argv[++i];
        }
        if (c == 'm') {
          args->meta_dir = value;
        } else {
          char* end = nullptr;
          errno = 0;
          long fd = std::strtol(value.c_str(), &end, 10);
          if (errno != 0 || *end != '\0' || fd < 0 || fd > 1 << 20) {
            return usage_error("-C needs a file descriptor number, not '" + value + "'");
          }
          args->progress_fd = static_cast<int>(fd);
        }
        break;  // the rest of the argument was the value
      } else {
        return usage_error(std::string("unknown option -") + c);
      }
    }
  }
  if (p + n + y > 1) return usage_error("only one of -p/-a, -n or -y may be given");
  args->mode = p ? Mode::kSafe : n ? Mode::kReadOnly : y ? Mode::kAll : Mode::kReport;
  if (!args->version && args->device.empty()) return usage_error("no device given");
  return true;
}

void PrintSummary(const std::string& device, const CheckReport& r, const Volume& v) {
  std::printf("%s: %llu inodes (%llu directories), %llu entries, %llu extents, %llu blocks mapped, "
              "%llu free: %s\n",
              device.c_str(), static_cast<unsigned long long>(r.inodes),
              static_cast<unsigned long long>(r.directories),
              static_cast<unsigned long long>(r.entries),
              static_cast<unsigned long long>(r.extents),
              static_cast<unsigned long long>(r.mapped_blocks),
              static_cast<unsigned long long>(v.free_blocks()),
              r.clean() ? "clean" : "PROBLEMS FOUND");
}

int OperationalError(const Status& st) {
  std::fprintf(stderr, "fsck.nosyncfs: %s\n", st.message().c_str());
  return kExitError;
}

std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

int Run(const Args& args) {
  std::unique_ptr<Progress> progress;
  if (args.progress_fd == 0) {
    progress = std::make_unique<Progress>(Progress::Style::kHuman, STDOUT_FILENO, args.device);
  } else if (args.progress_fd > 0) {
    progress = std::make_unique<Progress>(Progress::Style::kFsckFd, args.progress_fd, args.device);
  } else {
    progress = std::make_unique<Progress>(Progress::Style::kHuman, STDERR_FILENO, args.device);
  }

  VolumeOptions options;
  options.meta_dir = args.meta_dir;
  // The checker names what a mount would refuse.
  options.tolerate_double_mapping = true;
  options.tolerate_bad_records = true;
  options.read_only = args.mode == Mode::kReadOnly;
  options.tolerate_orphans = true;
  auto volume = Volume::Open(args.device, options);
  if (!volume.ok()) {
    if (args.mode == Mode::kReadOnly && volume.status().code() == EROFS) {
      std::printf("problem: %s\n", volume.status().message().c_str());
      std::fprintf(stderr, "fsck.nosyncfs: %s: not checked (-n): recovery is pending\n",
                   args.device.c_str());
      return kExitUncorrected;
    }
    return OperationalError(volume.status());
  }
  auto report = CheckVolume(**volume, progress.get());
  progress->Finish();
  if (!report.ok()) return OperationalError(report.status());
  for (const auto& p : report->problems) std::printf("problem: %s\n", p.c_str());
  const uint64_t orphans = report->orphans.size();

  if (args.mode == Mode::kReport || args.mode == Mode::kReadOnly) {
    const bool ro = args.mode == Mode::kReadOnly;
    if (orphans > 0) {
      std::printf("%s: %s (unlinked while open before a crash), freed by the next mount "
                  "or by fsck.nosyncfs -p\n",
                  ro ? "problem" : "note",
                  Plural(orphans, "orphan inode not freed yet", "orphan inodes not freed yet")
                      .c_str());
    }
    PrintSummary(args.device, *report, **volume);
    const uint64_t left = report->problems.size() + (ro ? orphans : 0);
    if (left == 0) return kExitClean;
    std::fprintf(stderr,
                 "fsck.nosyncfs: %s: %s left uncorrected; fsck.nosyncfs -p repairs the safe "
                 "ones, -y all it can\n",
                 args.device.c_str(), Plural(left, "problem", "problems").c_str());
    return kExitUncorrected;
  }

  if (report->clean() && orphans == 0) {
    PrintSummary(args.device, *report, **volume);
    return kExitClean;
  }
  const RepairMode mode = args.mode == Mode::kAll ? RepairMode::kAll : RepairMode::kSafe;
  uint64_t repairs = 0;
  // A repair can uncover another (an entry dropped from a missing
  // directory leaves its inode unreachable): a few rounds, while they
  // make progress. Each checks the volume as a new open sees it.
  for (int round = 0; round < 3; ++round) {
    auto lines = RepairVolume(**volume, *report, mode, progress.get());
    progress->Finish();
    if (!lines.ok()) return OperationalError(lines.status());
    for (const auto& line : *lines) std::printf("repaired: %s\n", line.c_str());
    repairs += lines->size();
    volume->reset();  // checkpoints: the repairs are durable anyway
    volume = Volume::Open(args.device, options);
    if (!volume.ok()) return OperationalError(volume.status());
    report = CheckVolume(**volume);
    if (!report.ok()) return OperationalError(report.status());
    if ((report->clean() && report->orphans.empty()) || lines->empty()) break;
  }
  for (const auto& p : report->problems) std::printf("uncorrected: %s\n", p.c_str());
  PrintSummary(args.device, *report, **volume);
  if (report->clean()) return repairs > 0 ? kExitCorrected : kExitClean;
  bool needs_y = false;
  for (const auto& p : report->findings) {
    needs_y = needs_y || (mode == RepairMode::kSafe && Repairs(RepairMode::kAll, p));
  }
  if (needs_y) {
    std::fprintf(stderr,
                 "fsck.nosyncfs: %s: UNEXPECTED INCONSISTENCY; run fsck.nosyncfs -y %s manually\n",
                 args.device.c_str(), args.device.c_str());
  } else {
    std::fprintf(stderr, "fsck.nosyncfs: %s: %s left uncorrected\n", args.device.c_str(),
                 Plural(report->problems.size(), "problem", "problems").c_str());
  }
  return kExitUncorrected;
}

}  // namespace
}  // namespace nosyncfs

int main(int argc, char** argv) {
  // Progress may share stdout (-C 0, -C 1): whole lines, in order.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(nosyncfs::kUsage, stdout);
      return nosyncfs::kExitClean;
    }
  }
  nosyncfs::Args args;
  if (!nosyncfs::ParseArgs(argc, argv, &args)) return nosyncfs::kExitUsage;
  if (args.version) {
    std::printf("fsck.nosyncfs %s\n", NSF_VERSION);
    return nosyncfs::kExitClean;
  }
  return nosyncfs::Run(args);
}
