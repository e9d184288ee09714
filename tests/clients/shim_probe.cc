// nsf_shim_probe: an unmodified program as databases write their logs, for
// the shim's tests (tests/posix/direct_test.cc): plain libc calls only,
// built with _FORTIFY_SOURCE so that read and pread become __read_chk and
// __pread_chk. Run under LD_PRELOAD=libnosyncfs_shim.so.
//
//   nsf_shim_probe FILE   FILE at least 16 KiB: writev at 0, pwritev at 4096,
//                         pwritev2(RWF_DSYNC) at 8192, then reads them back
//                         with readv, preadv, preadv2, read and pread; prints
//                         "ok" or "mismatch ...", then the library's counters
//                         (when the shim is there) as "key value" lines
//   nsf_shim_probe commits FILE COUNT [mmap]
//                         a database's commits: COUNT times a 4 KiB append
//                         (O_APPEND) and fdatasync; with mmap, after the
//                         fourth commit all that was appended is mapped
//                         shared and writable (its last byte read), and one
//                         byte is stored through the mapping before each
//                         later fdatasync; prints "ok"
#include <dlfcn.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

struct Counters {  // struct nsf_counters, as nosyncfs.h has it
  uint64_t direct_reads, direct_writes, fallback_reads, fallback_writes, leases_granted,
      leases_revoked;
};

std::string Bytes(char c, size_t n) { return std::string(n, c); }

}  // namespace

int Commits(const char* path, long count, bool map) {
  const int fd = open(path, O_RDWR | O_APPEND);
  if (fd < 0) return std::perror("open"), 1;
  const std::string record(4096, 'r');
  char* mapped = nullptr;
  for (long i = 0; i < count; ++i) {
    if (write(fd, record.data(), record.size()) != 4096) return std::perror("write"), 1;
    if (map && mapped == nullptr && (i == 3 || i + 1 == count)) {
      // All it appended so far, which went direct: the last page faults
      // only if the kernel knows the size.
      const off_t end = lseek(fd, 0, SEEK_CUR);  // where the last append ended
      if (end <= 0) return std::perror("lseek"), 1;
      const size_t length = static_cast<size_t>(end);
      void* m = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) return std::perror("mmap"), 1;
      mapped = static_cast<char*>(m);
      if (mapped[length - 1] != 'r') return std::fprintf(stderr, "mapped tail wrong\n"), 1;
    }
    if (mapped != nullptr) mapped[0] = static_cast<char>('A' + i % 26);
    if (fdatasync(fd) != 0) return std::perror("fdatasync"), 1;
  }
  std::printf("ok\n");
  return close(fd) == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if ((argc == 4 || argc == 5) && std::strcmp(argv[1], "commits") == 0) {
    return Commits(argv[2], std::atol(argv[3]), argc == 5 && std::strcmp(argv[4], "mmap") == 0);
  }
  if (argc != 2) {
    std::fprintf(stderr, "usage: nsf_shim_probe FILE\n");
    return 2;
  }
  const int fd = open(argv[1], O_RDWR);
  if (fd < 0) return std::perror("open"), 1;
  std::string a = Bytes('a', 2048), b = Bytes('b', 2048), c = Bytes('c', 1000),
              d = Bytes('d', 3096), e = Bytes('e', 4096);
  iovec w1[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  iovec w2[2] = {{c.data(), c.size()}, {d.data(), d.size()}};
  iovec w3[1] = {{e.data(), e.size()}};
  if (writev(fd, w1, 2) != 4096 || pwritev(fd, w2, 2, 4096) != 4096 ||
      pwritev2(fd, w3, 1, 8192, RWF_DSYNC) != 4096) {
    return std::perror("write"), 1;
  }
  const std::string expected = a + b + c + d + e;
  char r1[6000], r2[6288];
  iovec rv[2] = {{r1, sizeof r1}, {r2, sizeof r2}};
  std::string got;
  if (lseek(fd, 0, SEEK_SET) != 0 || readv(fd, rv, 2) != 12288) return std::perror("readv"), 1;
  got.assign(r1, sizeof r1).append(r2, sizeof r2);
  bool same = got == expected;
  if (preadv(fd, rv, 2, 0) != 12288) return std::perror("preadv"), 1;
  same = same && std::string(r1, sizeof r1).append(r2, sizeof r2) == expected;
  if (preadv2(fd, rv, 2, 0, 0) != 12288) return std::perror("preadv2"), 1;
  same = same && std::string(r1, sizeof r1).append(r2, sizeof r2) == expected;
  // The count is known only at run time, so fortified builds check it.
  volatile size_t count = 4096;
  char buf[8192];
  if (lseek(fd, 4096, SEEK_SET) != 4096 || read(fd, buf, count) != 4096) {
    return std::perror("read"), 1;
  }
  same = same && std::string(buf, 4096) == expected.substr(4096, 4096);
  if (pread(fd, buf, count, 8192) != 4096) return std::perror("pread"), 1;
  same = same && std::string(buf, 4096) == expected.substr(8192, 4096);
  std::printf("%s\n", same ? "ok" : "mismatch");
  if (auto get = reinterpret_cast<void (*)(Counters*)>(dlsym(RTLD_DEFAULT, "nsf_get_counters"))) {
    Counters k{};
    get(&k);
    std::printf("direct_reads %llu\ndirect_writes %llu\nfallback_reads %llu\n"
                "fallback_writes %llu\n",
                static_cast<unsigned long long>(k.direct_reads),
                static_cast<unsigned long long>(k.direct_writes),
                static_cast<unsigned long long>(k.fallback_reads),
                static_cast<unsigned long long>(k.fallback_writes));
  }
  return close(fd) == 0 ? 0 : 1;
}
