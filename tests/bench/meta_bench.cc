// meta_bench: metadata rates on any mounted file system, for tools/bench.sh.
//
//   meta_bench DIR COUNT                create, stat and unlink COUNT empty
//                                       files in DIR/meta_bench (a new
//                                       directory); prints "create R",
//                                       "stat R", "unlink R" (operations/s)
//   meta_bench --grow DIR COUNT STEP [FIRST]
//                                       creates COUNT empty files in DIR
//                                       (kept, named from fFIRST on),
//                                       printing the create rate of every
//                                       STEP files: "at N rate R"
//
// A benchmark, not a test: it prints figures and asserts nothing about them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "meta_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

std::string Name(const std::string& dir, long i) { return dir + "/f" + std::to_string(i); }

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Create(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) Die("create " + path);
  if (::close(fd) != 0) Die("close " + path);
}

int CreateStatUnlink(const std::string& root, long count) {
  std::string dir = root + "/meta_bench";
  if (::mkdir(dir.c_str(), 0755) != 0) Die("mkdir " + dir);
  auto t = Clock::now();
  for (long i = 0; i < count; ++i) Create(Name(dir, i));
  std::printf("create %.0f\n", static_cast<double>(count) / Seconds(t));
  t = Clock::now();
  struct stat st;
  for (long i = 0; i < count; ++i) {
    if (::stat(Name(dir, i).c_str(), &st) != 0) Die("stat");
  }
  std::printf("stat %.0f\n", static_cast<double>(count) / Seconds(t));
  t = Clock::now();
  for (long i = 0; i < count; ++i) {
    if (::unlink(Name(dir, i).c_str()) != 0) Die("unlink");
  }
  std::printf("unlink %.0f\n", static_cast<double>(count) / Seconds(t));
  if (::rmdir(dir.c_str()) != 0) Die("rmdir " + dir);
  return 0;
}

int Grow(const std::string& dir, long count, long step, long first) {
  auto t = Clock::now();
  for (long i = 0; i < count; ++i) {
    Create(Name(dir, first + i));
    if ((i + 1) % step == 0) {
      std::printf("at %ld rate %.0f\n", first + i + 1, static_cast<double>(step) / Seconds(t));
      std::fflush(stdout);
      t = Clock::now();
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3) return CreateStatUnlink(argv[1], std::atol(argv[2]));
  if ((argc == 5 || argc == 6) && std::strcmp(argv[1], "--grow") == 0) {
    return Grow(argv[2], std::atol(argv[3]), std::atol(argv[4]), argc == 6 ? std::atol(argv[5]) : 0);
  }
  std::fprintf(stderr, "usage: meta_bench DIR COUNT | meta_bench --grow DIR COUNT STEP [FIRST]\n");
  return 2;
}
