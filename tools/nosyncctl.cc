// nosyncctl: set, clear and show no-fsync (NF) ranges, for people and
// scripts, and the fallocate modes the kernel's FUSE client does not pass
// on. It only uses the user.nosync and user.nosync.extents xattrs and the
// NSF_IOC_FALLOCATE ioctl, so it works on any nosyncfs mount and needs no
// privileges beyond the file's.
#include <fcntl.h>
#include <ftw.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
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

const char kUsage[] =
    "usage: nosyncctl set FILE RANGES     make FILE's NF set exactly RANGES\n"
    "       nosyncctl clear FILE [RANGES] drop all NF ranges, or just RANGES\n"
    "       nosyncctl show FILE...        the extent map with flags\n"
    "       nosyncctl summary DIR         NF bytes per file under DIR\n"
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

int Show(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Fail(path, errno);
  std::string listing;
  int err = 0;
  if (!ReadXattr(path, kExtents, &listing, &err)) return Fail(path, err);
  std::printf("%s:\n", path.c_str());
  std::printf(" %4s  %-27s %-27s %12s  %s\n", "EXT", "FILE-OFFSET", "DEVICE-OFFSET", "LENGTH",
              "FLAGS");
  std::istringstream in(listing);
  uint64_t logical, length, device, pos = 0, nf_bytes = 0;
  std::string flags;
  int ext = 0;
  auto range = [](uint64_t a, uint64_t len) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "[%" PRIu64 "..%" PRIu64 "]", a, a + len - 1);
    return std::string(buf);
  };
  while (in >> logical >> length >> device >> flags) {
    if (logical > pos) {
      std::printf(" %4s  %-27s %-27s %12" PRIu64 "  %s\n", "", range(pos, logical - pos).c_str(),
                  "hole", logical - pos, "");
    }
    bool nf = flags == "nf";
    if (nf) nf_bytes += length;
    std::printf(" %4d  %-27s %-27s %12" PRIu64 "  %s\n", ext++, range(logical, length).c_str(),
                range(device, length).c_str(), length, nf ? "NF" : "-");
    pos = logical + length;
  }
  auto size = static_cast<uint64_t>(st.st_size);
  if (pos < size) {
    std::printf(" %4s  %-27s %-27s %12" PRIu64 "\n", "", range(pos, size - pos).c_str(), "hole",
                size - pos);
  }
  std::printf(" size %" PRIu64 " bytes, %" PRIu64 " bytes no-fsync\n", size, nf_bytes);
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
  if (!ReadXattr(path, kNosync, &text, &err)) {
    // Files on other file systems simply have no NF ranges.
    if (err != ENOTSUP) {
      std::fprintf(stderr, "nosyncctl: %s: %s\n", path, std::strerror(err));
      ++g_summary->errors;
    }
    return 0;
  }
  if (text.empty()) return 0;
  auto ranges = ParseNosyncRanges(text, static_cast<uint64_t>(st->st_size), 512);
  if (!ranges.ok()) return 0;
  uint64_t bytes = 0;
  for (const ByteRange& r : *ranges) bytes += r.end - r.start;
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
  if ((cmd == "collapse" || cmd == "insert" || cmd == "unshare") && args.size() == 4) {
    return FallocateMode(cmd, args[1], args[2], args[3]);
  }
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace
}  // namespace nosyncfs

int main(int argc, char** argv) { return nosyncfs::Main(argc, argv); }
