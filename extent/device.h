// Device: byte-addressable access to the medium that holds file data and
// the metadata log.
//
// The whole device is mapped into memory. Stores through Write()/Zero() (or
// through data()) are volatile until Persist() covers them; Persist() returns
// only when the range is durable. Implementations:
//  - Pmem2Device: a devdax character device or a regular file through
//    libpmem2 (cache-line persistence on real pmem, msync on page-cache
//    backed files); a block device falls back to mmap + msync.
//  - Strict persistence emulation: stores land in a volatile copy (a memfd,
//    mapped shared) and only Persist() copies ranges to the backing image,
//    so losing the process loses exactly what a power failure would lose.
//
// Thread-safety: Read/Write/Persist on disjoint ranges may run concurrently;
// callers order overlapping access.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace nosyncfs {

// How the medium makes stores durable.
enum class PersistGranularity {
  kCacheLine,         // real persistent memory: flush + fence
  kPage,              // page-cache backed: msync
  kStrictEmulation,   // volatile copy; persist copies into the image
};

// For people: "cache line (persistent memory)".
const char* PersistGranularityName(PersistGranularity g);
// For scripts (the statistics): "cache_line", "page", "strict_emulation".
const char* PersistGranularityKey(PersistGranularity g);

struct DeviceOptions {
  bool strict_emulation = false;
  // Strict emulation only; 0 is off. Otherwise a seeded PRNG lets some
  // aligned 8-byte words of each Write/Zero reach the image at once, before
  // any Persist, as a cache line evicted early would: the image after a
  // crash is then what was persisted plus an arbitrary subset of the other
  // stores' words, and the seed reproduces that subset (for a single-threaded
  // sequence of stores).
  uint64_t evict_seed = 0;
  // Take an exclusive advisory lock on the device; fail with EBUSY if another
  // process (another nosyncfs, or mkfs) holds it.
  bool lock = true;
  // Open without write access: the file is opened O_RDONLY and mapped
  // read-only, so a store through Write/Zero/data() faults instead of
  // reaching the medium, and Persist fails with EROFS. The lock (if taken)
  // is shared: read-only opens coexist, but not with a writer.
  bool read_only = false;
};

class Device {
 public:
  virtual ~Device() = default;

  // Opens and maps `path`: a regular image file, a block device or a devdax
  // character device. Errors: ENOENT, EACCES, EBUSY (locked by another
  // process), EINVAL (unsupported file type or empty device, or evict_seed
  // without strict_emulation).
  static Result<std::unique_ptr<Device>> Open(const std::string& path,
                                              const DeviceOptions& options);
  // Whether another process holds the lock Open takes on `path` right now.
  static Result<bool> Locked(const std::string& path);

  uint64_t size() const { return size_; }
  // Base of the mapping; valid for the Device's lifetime.
  char* data() const { return base_; }
  virtual PersistGranularity granularity() const = 0;
  // How granularity() was found, in one line for people: which backend
  // mapped the device and what it detected (e.g. a devdax device, a
  // MAP_SYNC mapping, a page-cache file that fell back to msync, or the
  // strict emulation the mount asked for). Fixed once open.
  virtual std::string persistence_source() const = 0;

  void Read(uint64_t off, void* buf, size_t len) const;
  // Volatile until Persist() covers the range.
  void Write(uint64_t off, const void* buf, size_t len);
  void Zero(uint64_t off, size_t len);
  // Makes [off, off+len) durable. EIO on failure (the range may be partly
  // durable); EROFS on a read-only device.
  Status Persist(uint64_t off, size_t len) {
    if (read_only_) return Status::Error(EROFS, "the device is open read-only");
    persist_calls_.fetch_add(1, std::memory_order_relaxed);
    return DoPersist(off, len);
  }
  // Opened with DeviceOptions::read_only: mapped without write access.
  bool read_only() const { return read_only_; }

  // How many Persist calls were made: media work, observable by tests and
  // benchmarks (an fsync with nothing to do must not add to it).
  uint64_t persist_calls() const { return persist_calls_.load(std::memory_order_relaxed); }

  // What another process needs to map this device and make its own stores
  // durable (direct access, client/FORMAT.md): the fd to map whole, shared,
  // and under strict emulation the image fd that a persist copies into
  // (-1 otherwise). Owned by the Device; both -1 when read-only.
  struct SharedFds {
    int map_fd = -1;
    int persist_fd = -1;
  };
  virtual SharedFds shared_fds() const = 0;

  // Turns on early evictions (DeviceOptions::evict_seed, nonzero) in a
  // device that is already open. EINVAL unless this is strict emulation.
  // Not thread-safe: call it before the device is shared.
  virtual Status StartEvicting(uint64_t seed);

 protected:
  Device(char* base, uint64_t size) : base_(base), size_(size) {}
  virtual Status DoPersist(uint64_t off, size_t len) = 0;
  // After a store to [off, off+len) once StartEvicting succeeded: writes
  // some of its words through to the image.
  virtual void Evict(uint64_t /*off*/, size_t /*len*/) {}

  std::atomic<uint64_t> persist_calls_{0};
  // Set by StartEvicting; a plain branch on the store path when off.
  bool evicting_ = false;
  // Set by Open for DeviceOptions::read_only.
  bool read_only_ = false;

  char* base_;
  uint64_t size_;

 private:
  friend class DeviceWrapper;  // forwards Evict to the device it wraps
};

}  // namespace nosyncfs
