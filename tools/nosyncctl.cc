// nosyncctl: set, clear and show no-fsync (NF) ranges, for people and
// scripts, the fallocate modes the kernel's FUSE client does not pass on,
// and the mount's durability statistics. It only uses the user.nosync and
// user.nosync.extents xattrs (paged: user.nosync.extents@OFFSET), the
// root's user.nosyncfs.stats and the NSF_IOC_FALLOCATE ioctl, so it works
// on any nosyncfs mount and needs no privileges beyond the file's.
#include <fcntl.h>
#include <ftw.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fs/ioctl.h"
#include "fs/nosync_ranges.h"
#include "tools/size_arg.h"

namespace nosyncfs {
namespace {

constexpr char kNosync[] = "user.nosync";
constexpr char kExtents[] = "user.nosync.extents";
constexpr char kStats[] = "user.nosyncfs.stats";

const char kUsage[] =
    "usage: nosyncctl set FILE RANGES     make FILE's NF set exactly RANGES\n"
    "       nosyncctl set DIR POLICY      files made in DIR from now on are NF for\n"
    "                                     life: POLICY is all or all,grow=SIZE\n"
    "       nosyncctl clear FILE [RANGES] drop all NF ranges, or just RANGES\n"
    "       nosyncctl clear DIR           drop DIR's policy (no file changes)\n"
    "       nosyncctl show FILE...        the extent map with flags, and what\n"
    "                                     persistence a write into each part gets;\n"
    "                                     for a directory, its policy\n"
    "       nosyncctl summary DIR         NF bytes per file under DIR\n"
    "       nosyncctl stats MOUNTPOINT    the mount's durability statistics\n"
    "       nosyncctl collapse|insert|unshare FILE OFFSET LENGTH\n"
    "                                     fallocate COLLAPSE_RANGE, INSERT_RANGE\n"
    "                                     or UNSHARE_RANGE (K/M/G suffixes)\n"
    "RANGES: all | START-END | START+LENGTH, comma-separated, K/M/G suffixes;\n"
    "rounded outward to the file system's block size.\n";

int Fail(const std::string& what, int err) {
  std::fprintf(stderr, "nosyncctl: %s: %s\n", what.c_str(), std::strerror(err));
  return 1;
}

// The xattr's value; ENODATA gives an empty value and ok = true.
bool ReadXattr(const std::string& path, const char* name, std::string* out, int* err) {
  std::vector<char> buf(65536);
  ssize_t n = getxattr(path.c_str(), name, buf.data(), buf.size());
  if (n < 0) {
    if (errno == ENODATA) {
      out->clear();
      return true;
    }
    *err = errno;
    return false;
  }
  out->assign(buf.data(), static_cast<size_t>(n));
  return true;
}

int Set(const std::string& path, const std::string& ranges) {
  if (setxattr(path.c_str(), kNosync, ranges.data(), ranges.size(), 0) != 0) {
    return Fail(path, errno);
  }
  return 0;
}

int Clear(const std::string& path, const std::string* ranges) {
  if (ranges == nullptr) {
    if (removexattr(path.c_str(), kNosync) != 0 && errno != ENODATA) return Fail(path, errno);
    return 0;
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Fail(path, errno);
  std::string current_text;
  int err = 0;
  if (!ReadXattr(path, kNosync, &current_text, &err)) return Fail(path, err);
  auto bs = static_cast<uint32_t>(st.st_blksize);
  auto current = ParseNosyncRanges(current_text, static_cast<uint64_t>(st.st_size), bs);
  auto drop = ParseNosyncRanges(*ranges, static_cast<uint64_t>(st.st_size), bs);
  if (!current.ok()) return Fail(path + ": current user.nosync", current.status().code());
  if (!drop.ok()) {
    std::fprintf(stderr, "nosyncctl: %s\n", drop.status().message().c_str());
    return 1;
  }
  // Subtract `drop` from `current` (both sorted and merged).
  std::vector<ByteRange> keep;
  for (ByteRange r : *current) {
    for (const ByteRange& d : *drop) {
      if (d.end <= r.start || d.start >= r.end) continue;
      if (d.start > r.start) keep.push_back({r.start, d.start});
      r.start = std::min(r.end, d.end);
      if (r.start >= r.end) break;
    }
    if (r.start < r.end) keep.push_back(r);
  }
  std::string text = FormatNosyncRanges(keep);
  if (text.empty()) return Clear(path, nullptr);
  return Set(path, text);
}

// One line of the extent listing.
struct ExtentLine {
  uint64_t logical = 0, length = 0, device = 0;
  bool nf = false;
};

// Calls fn for every extent of `path`, in order, reading the listing page
// by page (user.nosync.extents, then user.nosync.extents@NEXT while a page
// ends with "more NEXT"). False with *err set on failure (EPROTO for a
// listing that does not parse or does not move on).
bool ForEachExtent(const std::string& path, const std::function<void(const ExtentLine&)>& fn,
                   int* err) {
  std::string name = kExtents;
  uint64_t asked = 0;
  for (;;) {
    std::string page;
    if (!ReadXattr(path, name.c_str(), &page, err)) return false;
    std::istringstream in(page);
    std::string line;
    std::optional<uint64_t> next;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string first;
      fields >> first;
      if (first == "more") {
        uint64_t n = 0;
        if (!(fields >> n) || n <= asked) {
          *err = EPROTO;
          return false;
        }
        next = n;
        break;
      }
      ExtentLine e;
      std::string flags;
      char* end = nullptr;
      e.logical = std::strtoull(first.c_str(), &end, 10);
      if (first.empty() || *end != '\0' || !(fields >> e.length >> e.device >> flags)) {
        *err = EPROTO;
        return false;
      }
      e.nf = flags == "nf";
      fn(e);
    }
    if (!next) return true;
    asked = *next;
    name = std::string(kExtents) + "@" + std::to_string(asked);
  }
}

// The statistics of the mount `path` is on, found by walking up to the
// mount's root (the directory whose user.nosyncfs.stats reads); empty if
// none is reachable.
std::map<std::string, std::string> StatsOfMountOf(const std::string& path) {
  std::map<std::string, std::string> stats;
  char* real = realpath(path.c_str(), nullptr);
  if (real == nullptr) return stats;
  std::string dir = real;
  std::free(real);
  struct stat first;
  if (stat(dir.c_str(), &first) != 0) return stats;
  for (;;) {
    struct stat st;
    if (stat(dir.c_str(), &st) != 0 || st.st_dev != first.st_dev) break;
    std::string text;
    int err = 0;
    if (ReadXattr(dir, kStats, &text, &err) && !text.empty()) {
      std::istringstream in(text);
      std::string line;
      while (std::getline(in, line)) {
        size_t sp = line.find(' ');
        if (sp != std::string::npos) stats[line.substr(0, sp)] = line.substr(sp + 1);
      }
      break;
    }
    if (dir == "/") break;
    size_t slash = dir.rfind('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
  }
  return stats;
}

// What a write into an NF extent gets on a device of this persistence.
std::string NfPersistence(const std::string& persistence) {
  if (persistence == "cache_line") return "durable on return (NF, cache-line flush)";
  if (persistence == "page") return "durable on return (NF, msync)";
  if (persistence == "strict_emulation") return "durable on return (NF, strict emulation)";
  return "durable on return (NF)";
}

int Show(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Fail(path, errno);
  if (S_ISDIR(st.st_mode)) {
    std::string policy;
    int err = 0;
    if (!ReadXattr(path, kNosync, &policy, &err)) return Fail(path, err);
    std::printf("%s: %s\n", path.c_str(),
                policy.empty() ? "no no-fsync policy"
                               : ("no-fsync policy " + policy +
                                  ": files made here are NF for life").c_str());
    return 0;
  }
  const std::string nf_text = NfPersistence(StatsOfMountOf(path)["persistence"]);
  const char kPlainText[] = "durable at fsync";
  const char kHoleText[] = "hole: a write allocates, durable at fsync";
  std::printf("%s:\n", path.c_str());
  std::printf(" %4s  %-27s %-27s %12s  %-5s %s\n", "EXT", "FILE-OFFSET", "DEVICE-OFFSET",
              "LENGTH", "FLAGS", "A WRITE HERE IS");
  uint64_t pos = 0, nf_bytes = 0;
  int ext = 0;
  auto range = [](uint64_t a, uint64_t len) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "[%" PRIu64 "..%" PRIu64 "]", a, a + len - 1);
    return std::string(buf);
  };
  auto hole = [&](uint64_t from, uint64_t to) {
    std::printf(" %4s  %-27s %-27s %12" PRIu64 "  %-5s %s\n", "", range(from, to - from).c_str(),
                "hole", to - from, "", kHoleText);
  };
  int err = 0;
  bool ok = ForEachExtent(
      path,
      [&](const ExtentLine& e) {
        if (e.logical > pos) hole(pos, e.logical);
        if (e.nf) nf_bytes += e.length;
        std::printf(" %4d  %-27s %-27s %12" PRIu64 "  %-5s %s\n", ext++,
                    range(e.logical, e.length).c_str(), range(e.device, e.length).c_str(),
                    e.length, e.nf ? "NF" : "-", e.nf ? nf_text.c_str() : kPlainText);
        pos = std::max(pos, e.logical + e.length);
      },
      &err);
  if (!ok) return Fail(path + ": " + kExtents, err);
  auto size = static_cast<uint64_t>(st.st_size);
  if (pos < size) hole(pos, size);
  std::printf(" size %" PRIu64 " bytes, %" PRIu64 " bytes no-fsync, %d extents\n", size,
              nf_bytes, ext);
  return 0;
}

struct Summary {
  uint64_t files = 0, nf_files = 0, nf_bytes = 0, errors = 0;
};
Summary* g_summary = nullptr;

int SummaryVisit(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
  ++g_summary->files;
  std::string text;
  int err = 0;
  uint64_t bytes = 0;
  if (!ReadXattr(path, kNosync, &text, &err)) {
    if (err == E2BIG) {
      // More NF ranges than one xattr value holds: count them from the
      // extent listing, which is paged.
      err = 0;
      if (ForEachExtent(path, [&](const ExtentLine& e) { bytes += e.nf ? e.length : 0; }, &err)) {
        text = "-";
      }
    }
    if (text.empty()) {
      // Files on other file systems simply have no NF ranges.
      if (err != ENOTSUP) {
        std::fprintf(stderr, "nosyncctl: %s: %s\n", path, std::strerror(err));
        ++g_summary->errors;
      }
      return 0;
    }
  } else {
    if (text.empty()) return 0;
    auto ranges = ParseNosyncRanges(text, static_cast<uint64_t>(st->st_size), 512);
    if (!ranges.ok()) return 0;
    for (const ByteRange& r : *ranges) bytes += r.end - r.start;
  }
  ++g_summary->nf_files;
  g_summary->nf_bytes += bytes;
  std::printf("%14" PRIu64 "  %s\n", bytes, path);
  return 0;
}

int SummaryOf(const std::string& dir) {
  Summary s;
  g_summary = &s;
  std::printf("%14s  %s\n", "NF-BYTES", "FILE");
  if (nftw(dir.c_str(), SummaryVisit, 32, FTW_PHYS) != 0) return Fail(dir, errno);
  std::printf("%14" PRIu64 "  total in %" PRIu64 " of %" PRIu64 " files\n", s.nf_bytes,
              s.nf_files, s.files);
  return s.errors == 0 ? 0 : 1;
}

// "12.5 MiB" for people.
std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%" PRIu64 " bytes", bytes);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
  }
  return buf;
}

// The user.nosyncfs.stats of a mount's root, for people.
int Stats(const std::string& mountpoint) {
  std::string text;
  int err = 0;
  if (!ReadXattr(mountpoint, kStats, &text, &err) || text.empty()) {
    std::fprintf(stderr, "nosyncctl: %s: not the root of a nosyncfs mount (%s)\n",
                 mountpoint.c_str(), text.empty() && err == 0 ? "no statistics there"
                                                              : std::strerror(err));
    return 1;
  }
  std::map<std::string, std::string> kv;
  std::vector<std::pair<std::string, uint64_t>> requests;
  std::istringstream in(text);
  std::string line;
  uint64_t total_requests = 0;
  while (std::getline(in, line)) {
    size_t sp = line.find(' ');
    if (sp == std::string::npos) continue;
    std::string key = line.substr(0, sp), value = line.substr(sp + 1);
    if (key.rfind("requests_", 0) == 0) {
      uint64_t n = std::strtoull(value.c_str(), nullptr, 10);
      total_requests += n;
      if (n > 0) requests.emplace_back(key.substr(9), n);
    } else {
      kv[key] = value;
    }
  }
  auto num = [&](const char* key) -> uint64_t {
    return std::strtoull(kv[key].c_str(), nullptr, 10);
  };
  const std::string& p = kv["persistence"];
  const char* persistence = p == "cache_line"         ? "cache line (flush + fence)"
                            : p == "page"             ? "page (msync)"
                            : p == "strict_emulation" ? "strict emulation"
                                                      : p.c_str();
  std::printf("nosyncfs on %s, since mount:\n", mountpoint.c_str());
  std::printf("  persistence        %s\n", persistence);
  std::printf("    detected by      %s\n", kv["persistence_detected_by"].c_str());
  std::printf("  space              %s free of %s; %s in no-fsync extents\n",
              HumanBytes(num("free_bytes")).c_str(), HumanBytes(num("total_bytes")).c_str(),
              HumanBytes(num("nf_bytes")).c_str());
  std::printf("  fsync, fdatasync   %" PRIu64 " calls (%" PRIu64 " fdatasync), %" PRIu64
              " answered with no media work\n",
              num("fsync_calls"), num("fdatasync_calls"), num("fsync_no_media_work"));
  std::printf("  fsync of a dir     %" PRIu64 " (each makes the file system durable)\n",
              num("fsyncdir_calls"));
  std::printf("  no-fsync writes    %" PRIu64 ", %s persisted before they returned\n",
              num("nf_writes"), HumanBytes(num("nf_write_bytes_persisted")).c_str());
  std::printf("  log persists       %" PRIu64 ", making %" PRIu64
              " transactions durable (%s per persist)\n",
              num("log_persists"), num("log_transactions"),
              kv["transactions_per_log_persist"].c_str());
  std::printf("  device persists    %" PRIu64 "\n", num("device_persists"));
  std::printf("  FUSE requests      %" PRIu64 "\n", total_requests);
  for (const auto& [op, n] : requests) std::printf("    %-16s %" PRIu64 "\n", op.c_str(), n);
  return 0;
}

// fallocate(2) through NSF_IOC_FALLOCATE (fs/ioctl.h).
int FallocateMode(const std::string& op, const std::string& path, const std::string& off_text,
                  const std::string& len_text) {
  uint32_t mode = op == "collapse" ? FALLOC_FL_COLLAPSE_RANGE
                  : op == "insert" ? FALLOC_FL_INSERT_RANGE
                                   : FALLOC_FL_UNSHARE_RANGE;
  auto off = ParseSizeArg(off_text);
  auto len = ParseSizeArg(len_text);
  if (!off || !len) {
    std::fprintf(stderr, "nosyncctl: %s: bad offset or length\n", op.c_str());
    return 2;
  }
  int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0) return Fail(path, errno);
  nsf_fallocate_args args{*off, *len, mode, 0};
  int rc = ioctl(fd, NSF_IOC_FALLOCATE, &args);
  int err = errno;
  close(fd);
  if (rc != 0) {
    if (err == ENOTTY) return Fail(path + " (not on nosyncfs?)", err);
    return Fail(path, err);
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string& cmd = args[0];
  if (cmd == "set" && args.size() == 3) return Set(args[1], args[2]);
  if (cmd == "clear" && (args.size() == 2 || args.size() == 3)) {
    return Clear(args[1], args.size() == 3 ? &args[2] : nullptr);
  }
  if (cmd == "show" && args.size() >= 2) {
    int rc = 0;
    for (size_t i = 1; i < args.size(); ++i) rc |= Show(args[i]);
    return rc;
  }
  if (cmd == "summary" && args.size() == 2) return SummaryOf(args[1]);
  if (cmd == "stats" && args.size() == 2) return Stats(args[1]);
  if ((cmd == "collapse" || cmd == "insert" || cmd == "unshare") && args.size() == 4) {
    return FallocateMode(cmd, args[1], args[2], args[3]);
  }
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace
}  // namespace nosyncfs

int main(int argc, char** argv) { return nosyncfs::Main(argc, argv); }
