// unmount_bench: how long a device stays locked after umount(2) returns,
// that is how long a mount right behind an unmount may have to wait for
// the old daemon's durable shutdown (docs/architecture.md, "Unmount").
//
//   unmount_bench BIN_DIR WORK_DIR [ROUNDS]
//
// For each workload (idle, light: one small file; heavy: 2,000 files, 256
// MiB of unflagged data not yet synced, 4,000 random 4 KiB NF writes) and
// each persistence (emulate=strict with a 1 GiB volatile copy, emulate=none),
// ROUNDS times (default 5): mkfs, mount (daemonized), the workload, then
// umount(2), timed, and the time until the device's lock can be taken,
// polled every 50 us. Prints one line per case: medians and maxima in ms.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int Run(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void Die(const std::string& what) {
  std::perror(what.c_str());
  std::exit(1);
}

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) Die(path);
  close(fd);
}

void Workload(const std::string& kind, const std::string& mnt) {
  if (kind == "idle") return;
  WriteFile(mnt + "/small", "hello\n");
  if (kind == "light") return;
  mkdir((mnt + "/d").c_str(), 0755);
  for (int i = 0; i < 2000; ++i) WriteFile(mnt + "/d/f" + std::to_string(i), std::to_string(i));
  std::string mib(1 << 20, 'x');
  int fd = open((mnt + "/big").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  for (int i = 0; i < 256; ++i) {
    if (write(fd, mib.data(), mib.size()) != static_cast<ssize_t>(mib.size())) Die("big");
  }
  close(fd);
  const std::string nf = mnt + "/nf";
  fd = open(nf.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ftruncate(fd, 64 << 20) != 0) Die(nf);
  if (setxattr(nf.c_str(), "user.nosync", "all", 3, 0) != 0) Die("setxattr");
  std::mt19937_64 rng(1);
  std::string block(4096, 'n');
  for (int i = 0; i < 4000; ++i) {
    const off_t off = static_cast<off_t>((rng() % 16384) * 4096);
    if (pwrite(fd, block.data(), block.size(), off) != 4096) Die("pwrite");
  }
  close(fd);
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: unmount_bench BIN_DIR WORK_DIR [ROUNDS]\n");
    return 2;
  }
  const std::string bin = argv[1], work = argv[2];
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  const std::string image = work + "/unmount_bench.img", mnt = work + "/unmount_bench.mnt";
  mkdir(mnt.c_str(), 0755);
  std::printf("%-8s %-15s %16s %16s %16s\n", "workload", "persistence", "umount(2) ms",
              "locked after ms", "(max) ms");
  for (const std::string emulate : {"strict", "none"}) {
    for (const std::string kind : {"idle", "light", "heavy"}) {
      std::vector<double> umount_ms, held_ms;
      for (int r = 0; r < rounds; ++r) {
        unlink(image.c_str());
        Run({"/bin/rm", "-rf", image + ".meta"});
        if (Run({bin + "/mkfs.nosyncfs", "-s", "1G", image}) != 0) Die("mkfs");
        if (Run({bin + "/nosyncfs", image, mnt, "-o", "emulate=" + emulate}) != 0) Die("mount");
        Workload(kind, mnt);
        const auto t0 = Clock::now();
        if (umount2(mnt.c_str(), 0) != 0) Die("umount2");
        const auto t1 = Clock::now();
        int fd = open(image.c_str(), O_RDONLY);
        while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        const auto t2 = Clock::now();
        close(fd);
        umount_ms.push_back(Ms(t1 - t0));
        held_ms.push_back(Ms(t2 - t1));
      }
      std::printf("%-8s %-15s %16.2f %16.2f %16.2f\n", kind.c_str(),
                  ("emulate=" + emulate).c_str(), Median(umount_ms), Median(held_ms),
                  *std::max_element(held_ms.begin(), held_ms.end()));
      std::fflush(stdout);
    }
  }
  unlink(image.c_str());
  Run({"/bin/rm", "-rf", image + ".meta"});
  rmdir(mnt.c_str());
  return 0;
}
