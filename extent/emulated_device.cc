// Strict persistence emulation.
//
// The volatile state of the device (what the CPU caches would hold) is a
// shared-memory object (memfd) the size of the device, filled from the
// image at open and mapped MAP_SHARED: loads and stores go there, and die
// with the last process that has it. Persist() copies the range into the
// image with pwrite, so the image holds exactly what was persisted, as
// persistent memory would after a power failure. Being a file of its own,
// the volatile copy is mapped by direct-access clients too (fs/direct_server.h
// hands it out), whose stores are then exactly as volatile as the daemon's. The image contents survive the daemon's death
// in the host's page cache; nothing here models a crash of the host kernel
// itself. A read-only open maps the image itself, read-only.
//
// Early evictions (DeviceOptions::evict_seed). Real persistent memory may
// also keep stores that were never persisted: the CPU writes a dirty cache
// line back whenever it likes, and only aligned 8-byte words are
// failure-atomic, landing in any order between fences. So in this mode,
// after each Write or Zero a seeded PRNG picks some of the store's aligned
// words and pwrites them from the volatile copy into the image at once:
// most stores stay wholly volatile, the others leave a random subset of their
// words behind. A word goes out whole with what the mapping holds now (the
// bytes of neighbouring unpersisted stores included), as a cache line would.
// Any word of the image after a crash then holds its last persisted value
// or a value it took on later: what a crash on the hardware can leave.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <mutex>

#include "base/crash_point.h"
#include "extent/device_backends.h"

namespace nosyncfs {
namespace {

// One store in kEvictOneIn leaves words in the image early.
constexpr uint64_t kEvictOneIn = 4;
// A store of at most kMaxWords words loses each to the image with
// probability 1/2; a larger one (a 1 MiB write) gets kMaxWords words picked
// at random, which keeps the cost of a store bounded.
constexpr size_t kMaxWords = 64;
constexpr uint64_t kWord = 8;

class EmulatedDevice final : public Device {
 public:
  // `volatile_fd` is the memfd behind the mapping, or -1 (read-only).
  EmulatedDevice(int fd, int volatile_fd, char* base, uint64_t size)
      : Device(base, size), fd_(fd), volatile_fd_(volatile_fd) {}
  // The image (and its lock) goes first: a mount waiting for the device
  // need not wait for the volatile copy to be freed, tens of milliseconds
  // per GiB. Nothing reaches the image after this.
  ~EmulatedDevice() override {
    ::close(fd_);
    munmap(base_, size_);
    if (volatile_fd_ >= 0) ::close(volatile_fd_);
  }

  PersistGranularity granularity() const override {
    return PersistGranularity::kStrictEmulation;
  }
  std::string persistence_source() const override {
    return evicting_ ? "strict emulation with early evictions (mount option emulate=evict): "
                       "stores reach the image only when persisted, or evicted at random"
                     : "strict emulation (mount option emulate=strict): stores reach the "
                       "image only when persisted";
  }

  SharedFds shared_fds() const override {
    if (volatile_fd_ < 0) return {};
    return {volatile_fd_, fd_};
  }

  Status StartEvicting(uint64_t seed) override {
    if (seed == 0) return Status::Error(EINVAL, "the eviction seed must not be 0");
    rng_ = seed;
    evicting_ = true;
    return Status::Ok();
  }

  Status DoPersist(uint64_t off, size_t len) override {
    if (CrashPointHit("device.persist")) {
      // A power failure in the middle of a persist: only a prefix lands.
      (void)!::pwrite(fd_, base_ + off, (len / 2) & ~size_t{7}, static_cast<off_t>(off));
      CrashNow();
    }
    return CopyToImage(off, len);
  }

 protected:
  void Evict(uint64_t off, size_t len) override {
    const uint64_t first = off / kWord;
    const uint64_t end = std::min((off + len + kWord - 1) / kWord, (size_ + kWord - 1) / kWord);
    if (end <= first) return;
    const uint64_t n = end - first;
    std::array<uint64_t, kMaxWords> words;
    size_t count = 0;
    {
      std::lock_guard<std::mutex> lock(rng_mu_);
      if (NextRandom() % kEvictOneIn != 0) return;
      if (n <= kMaxWords) {
        uint64_t bits = NextRandom();
        for (uint64_t i = 0; i < n; ++i) {
          if ((bits >> i) & 1) words[count++] = first + i;
        }
      } else {
        while (count < kMaxWords) words[count++] = first + NextRandom() % n;
        std::sort(words.begin(), words.end());
        count = static_cast<size_t>(std::unique(words.begin(), words.end()) - words.begin());
      }
    }
    // Outside the lock: concurrent stores may evict in any order, as they
    // would on the hardware. Consecutive words go out in one pwrite. A
    // failed write-through is an eviction that did not happen.
    for (size_t i = 0; i < count;) {
      size_t j = i + 1;
      while (j < count && words[j] == words[j - 1] + 1) ++j;
      const uint64_t from = words[i] * kWord;
      const uint64_t to = std::min((words[j - 1] + 1) * kWord, size_);
      (void)CopyToImage(from, to - from);
      i = j;
    }
  }

 private:
  // pwrites [off, off+len) of the volatile copy into the image.
  Status CopyToImage(uint64_t off, size_t len) {
    while (len > 0) {
      ssize_t n = ::pwrite(fd_, base_ + off, len, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("persist (emulated)");
      }
      off += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  // SplitMix64: tiny, fast, and a different stream for every seed.
  uint64_t NextRandom() {
    uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  int fd_;
  int volatile_fd_;
  // Guards rng_: the daemon stores from many threads. With one storing
  // thread the sequence of evictions is a function of the seed.
  std::mutex rng_mu_;
  uint64_t rng_ = 0;
};

}  // namespace

namespace {

// Copies the image's data into the volatile copy at `base`, skipping holes
// (SEEK_DATA), so that the copy stays as sparse as the image.
Status FillFromImage(int fd, char* base, uint64_t size, const std::string& path) {
  off_t pos = 0;
  while (static_cast<uint64_t>(pos) < size) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    off_t hole = data < 0 ? -1 : ::lseek(fd, data, SEEK_HOLE);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0 || hole < 0) {
      if (errno != EINVAL) return ErrnoStatus(path + ": seek");
      data = pos;  // no SEEK_DATA here: all of it is data
      hole = static_cast<off_t>(size);
    }
    const uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    for (uint64_t off = static_cast<uint64_t>(data); off < end;) {
      ssize_t n = ::pread(fd, base + off, end - off, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n < 0 ? ErrnoStatus(path + ": read") : Status::Error(EIO, path + ": short read");
      off += static_cast<uint64_t>(n);
    }
    pos = hole;
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Device>> OpenEmulatedDevice(int fd, uint64_t size, bool read_only,
                                                   const std::string& path) {
  FdCloser closer{fd};
  if (read_only) {
    // No volatile copy: a stray store faults.
    void* base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED) return ErrnoStatus(path + ": mmap");
    closer.fd = -1;
    return std::unique_ptr<Device>(new EmulatedDevice(fd, -1, static_cast<char*>(base), size));
  }
  int mem = ::memfd_create("nosyncfs-volatile", MFD_CLOEXEC);
  if (mem < 0) return ErrnoStatus("memfd_create (the emulation's volatile copy)");
  FdCloser mem_closer{mem};
  if (::ftruncate(mem, static_cast<off_t>(size)) != 0) {
    return ErrnoStatus("sizing the emulation's volatile copy");
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mem, 0);
  if (base == MAP_FAILED) return ErrnoStatus(path + ": mmap of the volatile copy");
  Status filled = FillFromImage(fd, static_cast<char*>(base), size, path);
  if (!filled.ok()) {
    munmap(base, size);
    return filled;
  }
  closer.fd = -1;
  mem_closer.fd = -1;
  return std::unique_ptr<Device>(new EmulatedDevice(fd, mem, static_cast<char*>(base), size));
}

}  // namespace nosyncfs
