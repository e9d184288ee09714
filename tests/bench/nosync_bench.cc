// nosync_bench DIR [COUNT]: 4 KiB write latency and throughput on a mounted
// nosyncfs, in one run on one mount:
//   plain+fsync   pwrite + fsync into an unflagged file (the usual contract)
//   nf+fsync      pwrite + fsync into an NF range (fsync has nothing to do)
//   nf append     append into a preallocated NF range, no fsync (durable
//                 on return: data and size)
// A benchmark, not a test: it prints figures and asserts nothing about them.
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kIo = 4096;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "nosync_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void Report(const char* name, std::vector<double>& us, double total_s) {
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[static_cast<size_t>(p * static_cast<double>(us.size() - 1))]; };
  double ops = static_cast<double>(us.size()) / total_s;
  std::printf("%-14s %8zu ops  p50 %8.1f us  p99 %8.1f us  %10.0f ops/s  %8.1f MiB/s\n", name,
              us.size(), pct(0.5), pct(0.99), ops, ops * kIo / (1 << 20));
}

void Run(const char* name, size_t count, const std::function<void(size_t)>& op) {
  std::vector<double> us;
  us.reserve(count);
  auto start = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    auto t0 = Clock::now();
    op(i);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  Report(name, us, std::chrono::duration<double>(Clock::now() - start).count());
}

int OpenFresh(const std::string& path, int extra) {
  unlink(path.c_str());
  int fd = open(path.c_str(), O_CREAT | O_RDWR | extra, 0644);
  if (fd < 0) Die(path);
  return fd;
}

void SetNosync(const std::string& path, const std::string& ranges) {
  if (setxattr(path.c_str(), "user.nosync", ranges.data(), ranges.size(), 0) != 0) {
    Die("setxattr user.nosync on " + path);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: nosync_bench DIR [COUNT]\n");
    return 2;
  }
  std::string dir = argv[1];
  size_t count = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 5000;
  size_t span = 256;  // blocks cycled through by the overwrite workloads
  std::vector<char> buf(kIo, 'x');

  std::string plain = dir + "/bench.plain", nf = dir + "/bench.nf", log = dir + "/bench.log";
  int pfd = OpenFresh(plain, 0);
  int nfd = OpenFresh(nf, 0);
  // Both files get their blocks allocated up front, so both runs overwrite.
  for (size_t b = 0; b < span; ++b) {
    if (pwrite(pfd, buf.data(), kIo, static_cast<off_t>(b * kIo)) != kIo) Die(plain);
    if (pwrite(nfd, buf.data(), kIo, static_cast<off_t>(b * kIo)) != kIo) Die(nf);
  }
  if (fsync(pfd) != 0 || fsync(nfd) != 0) Die("fsync");
  SetNosync(nf, "all");

  std::printf("4 KiB I/O, %zu ops each, on %s\n", count, dir.c_str());
  Run("plain+fsync", count, [&](size_t i) {
    if (pwrite(pfd, buf.data(), kIo, static_cast<off_t>((i % span) * kIo)) != kIo) Die(plain);
    if (fsync(pfd) != 0) Die("fsync");
  });
  Run("nf+fsync", count, [&](size_t i) {
    if (pwrite(nfd, buf.data(), kIo, static_cast<off_t>((i % span) * kIo)) != kIo) Die(nf);
    if (fsync(nfd) != 0) Die("fsync");
  });
  int lfd = OpenFresh(log, O_APPEND);
  SetNosync(log, "0+" + std::to_string(count * kIo));
  Run("nf append", count, [&](size_t) {
    if (write(lfd, buf.data(), kIo) != kIo) Die(log);
  });
  close(pfd);
  close(nfd);
  close(lfd);
  unlink(plain.c_str());
  unlink(nf.c_str());
  unlink(log.c_str());
  return 0;
}
