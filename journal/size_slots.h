// SizeSlots: the durable sizes that direct appenders publish (client/
// FORMAT.md, "Size slots"; journal/FORMAT.md, "Size slots").
//
// A file that a client appends to in place, with no request to the
// daemon, needs its new size to be durable the moment the append returns.
// The daemon hands such a client a slot: 32 bytes in the log region's
// header block, naming the file. The client persists the appended data,
// then stores the new size into the slot with one 8-byte store and
// persists it. Recovery folds every slot's size into its inode before the
// file system is used, so an acknowledged append is never lost and the
// size never covers bytes that were not written.
//
// The daemon folds a slot (commits the size durably) before it frees it,
// so a slot only ever says more than the store while a lease is live, or
// after a crash.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "base/status.h"
#include "extent/device.h"

namespace nosyncfs {

class SizeSlots {
 public:
  static constexpr uint64_t kTableOffset = 1024;  // into the log region
  static constexpr uint64_t kSlotBytes = 32;
  static constexpr uint32_t kCount = 96;  // fills the header block to 4096
  // Inside a slot: the daemon's check word and inode number, the size
  // the appender publishes, and a count of direct writes (a hint for the
  // daemon's attributes; never persisted on purpose).
  static constexpr uint64_t kTagAt = 0, kInoAt = 8, kSizeAt = 16, kWritesAt = 24;

  struct Recorded {
    uint32_t index;
    uint64_t ino;
    uint64_t size;
  };

  // The table at `log_offset` + kTableOffset. `salt` ties its slots to this
  // format, as it does the log's records.
  SizeSlots(Device* device, uint64_t log_offset, uint64_t salt);

  // The slots that name a file (recovery; fsck).
  std::vector<Recorded> Valid() const;
  // Zeroes the whole table, durably (recovery, once every size is folded).
  Status ClearAll();

  // A free slot for `ino`, durably naming it with `size`, or nullopt when
  // every slot is taken.
  Result<std::optional<uint32_t>> Claim(uint64_t ino, uint64_t size);
  // Durably unnames the slot. Reusable at once (Free) or only after
  // Reuse (Retire: a holder that was cut off may still store into it).
  Status Free(uint32_t index);
  Status Retire(uint32_t index);
  void Reuse(uint32_t index);

  uint64_t PublishedSize(uint32_t index) const { return Load(index, kSizeAt); }
  uint64_t WriteCount(uint32_t index) const { return Load(index, kWritesAt); }
  // Device byte offset of the slot (what a GRANT names).
  uint64_t DeviceOffset(uint32_t index) const { return table_ + index * kSlotBytes; }
  uint32_t in_use() const;

 private:
  uint64_t Tag(uint64_t ino) const;
  uint64_t Load(uint32_t index, uint64_t at) const;
  Status Unname(uint32_t index);

  Device* const device_;
  const uint64_t table_;
  const uint64_t salt_;
  mutable std::mutex mu_;
  std::vector<uint8_t> state_;  // per slot: 0 free, 1 named, 2 retired
};

}  // namespace nosyncfs
