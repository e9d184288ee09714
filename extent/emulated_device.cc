// Strict persistence emulation.
//
// The image is mapped MAP_PRIVATE: loads see the image, stores land in
// private copy-on-write pages that die with the process. Persist() copies the
// range into the image with pwrite, so the image holds exactly what was
// persisted, as persistent memory would after a power failure. The image
// contents survive the daemon's death in the host's page cache; nothing here
// models a crash of the host kernel itself.
//
// Early evictions (DeviceOptions::evict_seed). Real persistent memory may
// also keep stores that were never persisted: the CPU writes a dirty cache
// line back whenever it likes, and only aligned 8-byte words are
// failure-atomic, landing in any order between fences. So in this mode,
// after each Write or Zero a seeded PRNG picks some of the store's aligned
// words and pwrites them from the private mapping into the image at once:
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
  EmulatedDevice(int fd, char* base, uint64_t size) : Device(base, size), fd_(fd) {}
  ~EmulatedDevice() override {
    munmap(base_, size_);
    ::close(fd_);
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
  // pwrites [off, off+len) of the private mapping into the image.
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
  // Guards rng_: the daemon stores from many threads. With one storing
  // thread the sequence of evictions is a function of the seed.
  std::mutex rng_mu_;
  uint64_t rng_ = 0;
};

}  // namespace

Result<std::unique_ptr<Device>> OpenEmulatedDevice(int fd, uint64_t size, bool read_only,
                                                   const std::string& path) {
  FdCloser closer{fd};
  // Read-only: no private copies either, so a stray store faults.
  const int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  void* base = mmap(nullptr, size, prot, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) return ErrnoStatus(path + ": mmap");
  closer.fd = -1;
  return std::unique_ptr<Device>(new EmulatedDevice(fd, static_cast<char*>(base), size));
}

}  // namespace nosyncfs
