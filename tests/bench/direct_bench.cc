// direct_bench: durable 4 KiB writes into a preallocated NF file, through
// libnosyncfs or through the descriptor, for tools/bench.sh. Prints one
// figure, operations per second.
//
//   direct_bench overwrite-direct|overwrite-fd FILE SECONDS
//       random 4 KiB overwrites inside FILE (nsf_pwrite, or pwrite(2))
//   direct_bench wal-direct|wal-fd|wal-fdatasync FILE SECONDS
//       a write-ahead log: 4 KiB records one after another from the start,
//       wrapping at the end (nsf_write, write(2), or write(2) + fdatasync)
//   direct_bench append-direct|append-fd DIR SECONDS
//       durable 4 KiB appends to log files it creates in DIR (a directory
//       with the no-fsync policy), each followed by fdatasync, as a
//       database commits: nsf_write + nsf_fdatasync, or write(2) +
//       fdatasync(2) through FUSE. A log that reaches 64 MiB is removed and
//       the next one created, as a database rotates its logs.
//
// FILE must exist with its final size; for the direct and fd modes on
// nosyncfs it is flagged user.nosync=all, so every write is durable on
// return. The direct modes fail unless the file was leased.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "client/nosyncfs.h"

namespace {

constexpr size_t kRecord = 4096;

int Usage() {
  std::fprintf(stderr, "usage: direct_bench MODE FILE SECONDS (see direct_bench.cc)\n");
  return 2;
}

constexpr uint64_t kLogBytes = 64ull << 20;

int Appends(const std::string& dir, bool direct, double seconds) {
  std::vector<char> buf(kRecord, 'a');
  uint64_t ops = 0, logs = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    const std::string path = dir + "/log." + std::to_string(logs++);
    const int flags = O_WRONLY | O_CREAT | O_APPEND;
    const int fd = direct ? nsf_open(path.c_str(), flags, 0644) : ::open(path.c_str(), flags, 0644);
    if (fd < 0) {
      std::fprintf(stderr, "direct_bench: open %s: %s\n", path.c_str(), std::strerror(errno));
      return 1;
    }
    for (uint64_t written = 0; written < kLogBytes; written += kRecord * 64) {
      if (std::chrono::steady_clock::now() >= end) break;
      for (int i = 0; i < 64; ++i, ++ops) {
        std::memcpy(buf.data(), &ops, sizeof(ops));
        const bool ok = direct ? nsf_write(fd, buf.data(), kRecord) == static_cast<ssize_t>(kRecord) &&
                                     nsf_fdatasync(fd) == 0
                               : ::write(fd, buf.data(), kRecord) == static_cast<ssize_t>(kRecord) &&
                                     ::fdatasync(fd) == 0;
        if (!ok) {
          std::fprintf(stderr, "direct_bench: append: %s\n", std::strerror(errno));
          return 1;
        }
      }
    }
    if (direct ? nsf_close(fd) : ::close(fd)) return 1;
    ::unlink(path.c_str());
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.0f\n", static_cast<double>(ops) / elapsed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return Usage();
  const std::string mode = argv[1];
  if (mode.starts_with("append-")) return Appends(argv[2], mode == "append-direct", std::atof(argv[3]));
  const bool direct = mode.ends_with("-direct");
  const bool wal = mode.starts_with("wal-");
  const bool fdatasync_each = mode == "wal-fdatasync";
  const double seconds = std::atof(argv[3]);
  int fd = direct ? nsf_open(argv[2], O_RDWR) : ::open(argv[2], O_RDWR);
  if (fd < 0) {
    std::fprintf(stderr, "direct_bench: open %s: %s %s\n", argv[2], std::strerror(errno),
                 direct ? nsf_errmsg() : "");
    return 1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kRecord)) return Usage();
  const uint64_t records = static_cast<uint64_t>(st.st_size) / kRecord;
  if (direct && nsf_map_valid(fd, 0, kRecord) != 1) {
    std::fprintf(stderr, "direct_bench: %s has no lease (not NF?)\n", argv[2]);
    return 1;
  }
  std::vector<char> buf(kRecord, 'w');
  std::mt19937_64 rng(1);
  uint64_t ops = 0, next = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  for (auto now = start; now < end; now = std::chrono::steady_clock::now()) {
    // Check the clock every 64 operations: it costs as much as a direct write.
    for (int i = 0; i < 64; ++i, ++ops) {
      std::memcpy(buf.data(), &ops, sizeof(ops));
      ssize_t n;
      if (wal) {
        if (next == records) {
          next = 0;
          if ((direct ? nsf_lseek(fd, 0, SEEK_SET) : ::lseek(fd, 0, SEEK_SET)) != 0) return 1;
        }
        ++next;
        n = direct ? nsf_write(fd, buf.data(), kRecord) : ::write(fd, buf.data(), kRecord);
        if (fdatasync_each && ::fdatasync(fd) != 0) return 1;
      } else {
        const off_t off = static_cast<off_t>((rng() % records) * kRecord);
        n = direct ? nsf_pwrite(fd, buf.data(), kRecord, off) : ::pwrite(fd, buf.data(), kRecord, off);
      }
      if (n != static_cast<ssize_t>(kRecord)) {
        std::fprintf(stderr, "direct_bench: write: %s\n", std::strerror(errno));
        return 1;
      }
    }
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (direct) {
    nsf_counters c{};
    nsf_get_counters(&c);
    if (c.fallback_writes > 0) {
      std::fprintf(stderr, "direct_bench: %llu writes fell back to FUSE\n",
                   static_cast<unsigned long long>(c.fallback_writes));
    }
    nsf_close(fd);
  } else {
    ::close(fd);
  }
  std::printf("%.0f\n", static_cast<double>(ops) / elapsed);
  return 0;
}
