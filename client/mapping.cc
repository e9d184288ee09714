// Mapping the device in the three persistence modes of protocol.h:
// - strict emulation: the daemon's volatile copy (a memfd) is mapped, and a
//   persist pwrites the range into the image, as the daemon's own persist
//   does (extent/emulated_device.cc);
// - otherwise the device itself, through libpmem2, which picks the persist
//   for the medium (cache-line flush and fence on DAX, msync on page-cache
//   files); libpmem2 maps no block devices, which get mmap and msync.
#include "client/mapping.h"

#include <libpmem2.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "client/error.h"
#include "client/syscalls.h"

namespace nsf {
namespace {

// The live mappings, for nsf_persist. A reader lock is held across the
// persist itself, so that a mapping is never unmapped (connection lost)
// under a persist, and never while fork copies the list. Writers first, or
// a steady stream of persists would hold off the unmap and fork forever.
// A plain pthread lock: statically initialised, usable before main, and no
// destructor at exit, when the listener threads may still run.
pthread_rwlock_t mappings_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
std::vector<const DeviceMapping*>* mappings = nullptr;  // never freed

// The bytes behind fd, where the kernel can tell; mapping past them would
// turn a bad WELCOME into SIGBUS on the first access.
uint64_t BytesBehind(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return 0;
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  uint64_t bytes = 0;
  if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &bytes) == 0) return bytes;
  return UINT64_MAX;  // devdax: libpmem2 checks the size itself
}

int FailMapping(int error, const std::string& what) {
  return Fail(error, "cannot map the nosyncfs device: " + what + ": " + std::strerror(error));
}

}  // namespace

std::unique_ptr<DeviceMapping> DeviceMapping::Create(const nsf_msg_welcome& welcome,
                                                     const int* fds, int fd_count) {
  const bool strict = welcome.persistence == NSF_PERSIST_STRICT;
  const bool known = strict || welcome.persistence == NSF_PERSIST_CACHE_LINE ||
                     welcome.persistence == NSF_PERSIST_PAGE;
  bool usable = known && fd_count == (strict ? 2 : 1) && welcome.device_size > 0 &&
                welcome.device_size <= SIZE_MAX / 2;
  for (int i = 0; usable && i < fd_count; ++i) usable = BytesBehind(fds[i]) >= welcome.device_size;
  if (!usable) {
    for (int i = 0; i < fd_count; ++i) ::close(fds[i]);
    FailMapping(EPROTO, "the daemon's WELCOME does not describe a device this library can map");
    return nullptr;
  }

  std::unique_ptr<DeviceMapping> m(new DeviceMapping);
  m->size_ = welcome.device_size;
  const int map_fd = fds[0];
  if (strict) {
    m->kind_ = Kind::kStrict;
    m->fd_ = fds[1];
  } else if (pmem2_source_from_fd(&m->source_, map_fd) == 0) {
    pmem2_config* config = nullptr;
    if (pmem2_config_new(&config) == 0) {
      // Page granularity is the weakest requirement, so every medium
      // qualifies; libpmem2 still uses the strongest one the medium has.
      pmem2_config_set_required_store_granularity(config, PMEM2_GRANULARITY_PAGE);
      if (pmem2_config_set_length(config, m->size_) == 0 &&
          pmem2_map_new(&m->map_, config, m->source_) == 0) {
        m->kind_ = Kind::kPmem2;
        m->fd_ = map_fd;
        m->base_ = static_cast<uint8_t*>(pmem2_map_get_address(m->map_));
        m->pmem2_memcpy_ = pmem2_get_memcpy_fn(m->map_);
        m->pmem2_persist_ = pmem2_get_persist_fn(m->map_);
      }
      pmem2_config_delete(&config);
    }
    if (m->kind_ != Kind::kPmem2) pmem2_source_delete(&m->source_);
  }
  if (m->kind_ != Kind::kPmem2) {
    void* base = mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    const int error = errno;
    ::close(map_fd);  // the mapping keeps the device; msync needs no fd
    if (base == MAP_FAILED) {
      FailMapping(error, "mmap");
      return nullptr;  // the destructor closes the image fd, if any
    }
    m->base_ = static_cast<uint8_t*>(base);
  }

  pthread_rwlock_wrlock(&mappings_lock);
  if (mappings == nullptr) mappings = new std::vector<const DeviceMapping*>;
  mappings->push_back(m.get());
  pthread_rwlock_unlock(&mappings_lock);
  return m;
}

DeviceMapping::~DeviceMapping() {
  pthread_rwlock_wrlock(&mappings_lock);
  if (mappings != nullptr) std::erase(*mappings, this);
  pthread_rwlock_unlock(&mappings_lock);
  if (kind_ == Kind::kPmem2) {
    pmem2_map_delete(&map_);
    pmem2_source_delete(&source_);
  } else if (base_ != nullptr) {
    munmap(base_, size_);
  }
  if (fd_ >= 0) ::close(fd_);
}

bool DeviceMapping::Contains(const void* addr, size_t length) const {
  const auto p = reinterpret_cast<uintptr_t>(addr);
  const auto b = reinterpret_cast<uintptr_t>(base_);
  return p >= b && p - b <= size_ && length <= size_ - (p - b);
}

bool DeviceMapping::Store(uint64_t offset, const void* src, size_t length) const {
  if (kind_ == Kind::kPmem2) {
    pmem2_memcpy_(base_ + offset, src, length, 0);  // flags 0: persisted on return
    return true;
  }
  std::memcpy(base_ + offset, src, length);
  return Persist(offset, length);
}

bool DeviceMapping::Persist(uint64_t offset, size_t length) const {
  if (length == 0) return true;
  switch (kind_) {
    case Kind::kPmem2:
      pmem2_persist_(base_ + offset, length);
      return true;
    case Kind::kMsync: {
      static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
      const uint64_t start = offset & ~(page - 1);
      return msync(base_ + start, length + (offset - start), MS_SYNC) == 0;
    }
    case Kind::kStrict:
      while (length > 0) {
        const ssize_t n = sys::pwrite(fd_, base_ + offset, length, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          if (n == 0) errno = EIO;
          return false;
        }
        offset += static_cast<uint64_t>(n);
        length -= static_cast<size_t>(n);
      }
      return true;
  }
  return false;
}

int PersistMappedRange(const void* addr, size_t length) {
  int error = EINVAL;
  pthread_rwlock_rdlock(&mappings_lock);
  if (mappings != nullptr) {
    auto it = std::find_if(mappings->begin(), mappings->end(),
                           [&](const DeviceMapping* m) { return m->Contains(addr, length); });
    if (it != mappings->end()) {
      const auto offset = static_cast<uint64_t>(static_cast<const uint8_t*>(addr) - (*it)->base());
      error = (*it)->Persist(offset, length) ? 0 : errno;
    }
  }
  pthread_rwlock_unlock(&mappings_lock);
  return error;
}

void LockMappingsForFork() { pthread_rwlock_wrlock(&mappings_lock); }

void UnlockMappingsAfterFork(bool in_child) {
  if (!in_child) {
    pthread_rwlock_unlock(&mappings_lock);
    return;
  }
  // glibc tells a writer's unlock by the thread id, which the child does
  // not share; the child is alone, so it starts with a fresh lock instead.
  const pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  std::memcpy(&mappings_lock, &fresh, sizeof fresh);
}

}  // namespace nsf
