// nsf_direct_client: a process that uses libnosyncfs the way an application
// would, for the real-mount tests of direct access (tests/posix/direct_test.cc)
// that need a second process: one that can be killed, stopped, or left
// writing while the test changes the file under it.
//
//   records FILE COUNT SIZE   writes record i (Record(i, SIZE)) at i*SIZE for
//                             i < COUNT with nsf_pwrite, printing "ack I" after
//                             each returns, then "done" and waits to be killed
//   map FILE OFF LEN persist|nopersist
//                             stores Record(7, LEN) through nsf_map at OFF
//                             (asking for a new lease if it has none now),
//                             persists it or not, prints "stored", waits
//   hold FILE                 attaches, prints "leased" or "no-lease", waits
//   hold-closed FILE          as hold, then closes the descriptor behind the
//                             library's back (close(2) itself): the write
//                             lease outlives it; prints "closed", waits
//   churn FILE SEED           overwrites random blocks of FILE with nsf_pwrite
//                             (words of Marked()) until SIGTERM, then prints
//                             the library's counters as "key value" lines
//   cycle FILE SEED           as fast as it can, forever: nsf_open (which
//                             passes a descriptor of FILE to the daemon for
//                             the lease), a few nsf_pwrite, nsf_close; prints
//                             "started" once, and ignores every error (the
//                             daemon may be killed under it at any moment)
//   at FILE OFFSET SIZE       one nsf_pwrite of Record(0, SIZE) at OFFSET,
//                             printing "ack 0 direct|fallback", then "done",
//                             and waits to be killed
//   append FILE COUNT SIZE [REFRESH]
//                             opens FILE O_WRONLY|O_APPEND|O_CREAT with nsf_open and
//                             appends record i (Record(i, SIZE)) for i < COUNT
//                             with nsf_write, each followed by nsf_fdatasync,
//                             printing "ack I direct|fallback" after each,
//                             then "done" and waits to be killed; with
//                             REFRESH, asks for a fresh lease (nsf_refresh)
//                             after every REFRESH appends
//   fuse FILE SEED            the same file through plain FUSE, forever:
//                             open, pread, pwrite, fstat, fsync, close
//
// Every line goes out at once (the test reads them as they come).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "client/nosyncfs.h"
#include "tests/clients/direct_records.h"

namespace {

std::atomic<bool> g_stop{false};

int Fail(const char* what) {
  std::printf("error %s: %s (%s)\n", what, std::strerror(errno), nsf_errmsg());
  std::fflush(stdout);
  return 1;
}

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

[[noreturn]] void WaitForever() {
  for (;;) pause();
}

// Writes record i with write(fd, rec) (a call of the library), then says
// "ack I direct" or "ack I fallback"; false (after saying why) if it failed.
template <typename Write>
bool WriteRecord(uint64_t i, uint64_t size, Write write) {
  std::string rec = nosyncfs::test::Record(i, size);
  nsf_counters before{}, after{};
  nsf_get_counters(&before);
  if (!write(rec)) return false;
  nsf_get_counters(&after);
  Say("ack " + std::to_string(i) +
      (after.direct_writes > before.direct_writes ? " direct" : " fallback"));
  return true;
}

int Append(const char* path, uint64_t count, uint64_t size, uint64_t refresh) {
  int fd = nsf_open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return Fail("nsf_open");
  for (uint64_t i = 0; i < count; ++i) {
    if (refresh != 0 && i % refresh == refresh - 1 && nsf_refresh(fd) != 0) {
      return Fail("nsf_refresh");
    }
    bool ok = WriteRecord(i, size, [&](const std::string& rec) {
      if (nsf_write(fd, rec.data(), rec.size()) != static_cast<ssize_t>(rec.size())) {
        return Fail("nsf_write") == 0;
      }
      return nsf_fdatasync(fd) == 0 || Fail("nsf_fdatasync") == 0;
    });
    if (!ok) return 1;
  }
  Say("done");
  WaitForever();
}

// Record i at offset_of(i) for i < count.
template <typename OffsetOf>
int PwriteRecords(const char* path, uint64_t count, uint64_t size, OffsetOf offset_of) {
  int fd = nsf_open(path, O_RDWR);
  if (fd < 0) return Fail("nsf_open");
  for (uint64_t i = 0; i < count; ++i) {
    bool ok = WriteRecord(i, size, [&](const std::string& rec) {
      return nsf_pwrite(fd, rec.data(), rec.size(), offset_of(i)) ==
                 static_cast<ssize_t>(rec.size()) ||
             Fail("nsf_pwrite") == 0;
    });
    if (!ok) return 1;
  }
  Say("done");
  WaitForever();
}

int Records(const char* path, uint64_t count, uint64_t size) {
  return PwriteRecords(path, count, size, [size](uint64_t i) { return static_cast<off_t>(i * size); });
}

int Map(const char* path, uint64_t off, uint64_t len, bool persist) {
  int fd = nsf_open(path, O_RDWR);
  if (fd < 0) return Fail("nsf_open");
  void* addr = nullptr;
  // As nosyncfs.h tells a program: no lease now (another process's open for
  // writing revokes an appender's) means ask for a new one and map again.
  for (int tries = 1; nsf_map(fd, static_cast<off_t>(off), len, &addr) != 0; ++tries) {
    if (errno != ENODATA || tries == 10) return Fail("nsf_map");
    if (nsf_refresh(fd) != 0) return Fail("nsf_refresh");
  }
  std::string rec = nosyncfs::test::Record(7, len);
  std::memcpy(addr, rec.data(), len);
  if (persist && nsf_persist(addr, len) != 0) return Fail("nsf_persist");
  Say("stored");
  WaitForever();
}

int Hold(const char* path, bool close_fd) {
  int fd = nsf_open(path, O_RDWR);
  if (fd < 0) return Fail("nsf_open");
  Say(nsf_map_valid(fd, 0, 1) ? "leased" : "no-lease");
  if (close_fd) {
    if (syscall(SYS_close, fd) != 0) return Fail("close");
    Say("closed");
  }
  WaitForever();
}

int Churn(const char* path, uint64_t seed) {
  signal(SIGTERM, [](int) { g_stop = true; });
  int fd = nsf_open(path, O_RDWR);
  if (fd < 0) return Fail("nsf_open");
  constexpr uint64_t kBlock = 4096;
  std::vector<uint64_t> words(kBlock / 8);
  std::mt19937_64 rng(seed);
  Say("started");
  uint64_t writes = 0, errors = 0;
  while (!g_stop) {
    struct stat st;
    if (fstat(fd, &st) != 0) return Fail("fstat");
    const uint64_t blocks = static_cast<uint64_t>(st.st_size) / kBlock;
    if (blocks == 0) {
      usleep(100);
      continue;
    }
    for (size_t i = 0; i < words.size(); ++i) words[i] = nosyncfs::test::Marked(writes, i);
    const uint64_t off = (rng() % blocks) * kBlock;
    // Inside the size seen a moment ago: a truncate in between makes it an
    // extending write through FUSE, which is fine.
    if (nsf_pwrite(fd, words.data(), kBlock, static_cast<off_t>(off)) < 0) ++errors;
    ++writes;
  }
  nsf_counters c{};
  nsf_get_counters(&c);
  Say("writes " + std::to_string(writes));
  Say("errors " + std::to_string(errors));
  Say("direct_writes " + std::to_string(c.direct_writes));
  Say("fallback_writes " + std::to_string(c.fallback_writes));
  Say("leases_granted " + std::to_string(c.leases_granted));
  Say("leases_revoked " + std::to_string(c.leases_revoked));
  return nsf_close(fd) == 0 ? 0 : Fail("nsf_close");
}

// Random 4 KiB blocks inside the first `blocks` of the file, forever.
int Cycle(const char* path, uint64_t seed) {
  constexpr uint64_t kBlock = 4096;
  std::vector<uint64_t> words(kBlock / 8);
  std::mt19937_64 rng(seed);
  Say("started");
  for (uint64_t round = 0;; ++round) {
    int fd = nsf_open(path, O_RDWR);
    if (fd < 0) continue;
    struct stat st;
    const uint64_t blocks = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) / kBlock : 0;
    for (int i = 0; i < 4 && blocks > 0; ++i) {
      for (size_t w = 0; w < words.size(); ++w) words[w] = nosyncfs::test::Marked(round, w);
      (void)nsf_pwrite(fd, words.data(), kBlock, static_cast<off_t>((rng() % blocks) * kBlock));
    }
    (void)nsf_close(fd);
  }
}

int Fuse(const char* path, uint64_t seed) {
  constexpr uint64_t kBlock = 4096;
  std::vector<char> buf(kBlock);
  std::mt19937_64 rng(seed);
  Say("started");
  for (;;) {
    int fd = open(path, O_RDWR);
    if (fd < 0) continue;
    struct stat st;
    const uint64_t blocks = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) / kBlock : 0;
    for (int i = 0; i < 8 && blocks > 0; ++i) {
      const off_t off = static_cast<off_t>((rng() % blocks) * kBlock);
      if (rng() % 2 == 0) {
        (void)pread(fd, buf.data(), kBlock, off);
      } else {
        (void)pwrite(fd, buf.data(), kBlock, off);
      }
    }
    if (rng() % 4 == 0) (void)fsync(fd);
    close(fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  auto num = [&](int i) { return std::strtoull(argv[i], nullptr, 0); };
  if (mode == "records" && argc == 5) return Records(argv[2], num(3), num(4));
  if (mode == "append" && (argc == 5 || argc == 6)) {
    return Append(argv[2], num(3), num(4), argc == 6 ? num(5) : 0);
  }
  if (mode == "at" && argc == 5) {
    const auto offset = static_cast<off_t>(num(3));
    return PwriteRecords(argv[2], 1, num(4), [offset](uint64_t) { return offset; });
  }
  if (mode == "map" && argc == 6) return Map(argv[2], num(3), num(4), std::string(argv[5]) == "persist");
  if (mode == "hold" && argc == 3) return Hold(argv[2], false);
  if (mode == "hold-closed" && argc == 3) return Hold(argv[2], true);
  if (mode == "churn" && argc == 4) return Churn(argv[2], num(3));
  if (mode == "cycle" && argc == 4) return Cycle(argv[2], num(3));
  if (mode == "fuse" && argc == 4) return Fuse(argv[2], num(3));
  std::fprintf(stderr, "usage: see the comment at the top of direct_client.cc\n");
  return 2;
}
