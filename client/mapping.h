// The device mapping of one connection, and how stores into it become
// durable: the persistence mode of the daemon's WELCOME decides.
#ifndef NOSYNCFS_CLIENT_MAPPING_H
#define NOSYNCFS_CLIENT_MAPPING_H

#include <cstddef>
#include <cstdint>
#include <memory>

#include "client/protocol.h"

struct pmem2_map;
struct pmem2_source;

namespace nsf {

class DeviceMapping {
 public:
  // Maps the whole device the WELCOME describes, from the fds it carried;
  // takes them over (closes those persist does not need). nullptr and a
  // failed call (errno, message) when it cannot.
  static std::unique_ptr<DeviceMapping> Create(const nsf_msg_welcome& welcome, const int* fds,
                                               int fd_count);
  ~DeviceMapping();
  DeviceMapping(const DeviceMapping&) = delete;
  DeviceMapping& operator=(const DeviceMapping&) = delete;

  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  bool Contains(const void* addr, size_t length) const;

  // Copies src into [offset, offset+length) and makes it durable. False
  // (errno set) if the persist failed: the bytes are in the mapping but
  // perhaps not durable, so the caller writes them through FUSE instead.
  bool Store(uint64_t offset, const void* src, size_t length) const;
  bool Persist(uint64_t offset, size_t length) const;

 private:
  enum class Kind { kPmem2, kMsync, kStrict };
  DeviceMapping() = default;

  Kind kind_ = Kind::kMsync;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  int fd_ = -1;  // kPmem2: the source's; kStrict: the image persist writes
  pmem2_source* source_ = nullptr;
  pmem2_map* map_ = nullptr;
  void* (*pmem2_memcpy_)(void*, const void*, size_t, unsigned) = nullptr;
  void (*pmem2_persist_)(const void*, size_t) = nullptr;
};

// nsf_persist: finds the live mapping holding [addr, addr+length) and
// persists there. 0, or -1 with errno (EINVAL: in no mapping).
int PersistMappedRange(const void* addr, size_t length);

// fork(2) must not copy the list of mappings while another thread changes
// or reads it; the fork handlers hold its lock across the fork.
void LockMappingsForFork();
void UnlockMappingsAfterFork(bool in_child);

}  // namespace nsf

#endif  // NOSYNCFS_CLIENT_MAPPING_H
