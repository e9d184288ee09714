// Log: the write-ahead log of metadata transactions, in a region of the
// device. Format in journal/FORMAT.md.
//
// Records are appended with plain stores (volatile); persisting the range
// Pending() names makes every record appended so far durable with one
// persist call (Sync() does both; the Volume does them apart so that the
// persist runs without its lock, for group commit). A record carries its sequence number and a CRC, so
// recovery keeps exactly the valid prefix: a torn or unpersisted record ends
// the scan, and so does any stale record of an earlier epoch (its sequence
// number cannot match).
//
// Reset() starts a new epoch after a checkpoint: it rewrites the inactive
// one of the two header slots, so a crash during the reset leaves the old
// header valid.
//
// Thread-safety: none; the Volume serializes calls. The device range that
// Pending() names is never written by Append() until MarkPersisted() or
// Reset(), so it may be persisted while other records are appended.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "base/status.h"
#include "extent/device.h"

namespace nosyncfs {

class Log {
 public:
  static constexpr uint64_t kRecordsOffset = 4096;  // after the two header slots

  // `device` must outlive the Log. The region is [offset, offset+length).
  Log(Device* device, uint64_t offset, uint64_t length);

  // Writes a fresh log (epoch 1 starting at `start_seq`) and persists it.
  // `salt` (unique per format) seeds every record's CRC, so records of an
  // earlier file system on the same device never validate.
  Status Format(uint64_t start_seq, uint64_t salt);

  // Reads the header and calls fn(seq, payload) for each valid record in
  // order; the first error fn returns stops the scan and is returned.
  // Afterwards appends continue after the last valid record. EUCLEAN when
  // neither header slot is valid.
  using RecordFn = std::function<Status(uint64_t seq, std::string_view payload)>;
  Status Open(const RecordFn& fn);

  // ENOSPC when the record does not fit; the caller checkpoints and resets.
  Result<uint64_t> Append(std::string_view payload);
  // Whether a payload of `len` bytes could ever fit in an empty log.
  bool Fits(size_t len) const;

  // The records appended but not yet persisted: the device range that holds
  // them and the last sequence number among them.
  struct Pending {
    uint64_t offset = 0;  // device offset
    uint64_t len = 0;     // 0: nothing to persist
    uint64_t tail = 0;    // log-relative end, for MarkPersisted
    uint64_t last_seq = 0;
  };
  Pending pending() const;
  // Records that the range of `p` has been persisted.
  void MarkPersisted(const Pending& p);
  // Persists every appended record (pending() + persist + MarkPersisted).
  Status Sync();

  // Starts a new, empty epoch whose first record will be `start_seq`.
  Status Reset(uint64_t start_seq);

  uint64_t start_seq() const { return start_seq_; }
  uint64_t next_seq() const { return next_seq_; }
  // Highest sequence number known durable (start_seq - 1 if none).
  uint64_t durable_seq() const { return durable_seq_; }
  bool has_unsynced() const { return persisted_ < tail_; }
  uint64_t used_bytes() const { return tail_ - kRecordsOffset; }
  uint64_t capacity_bytes() const { return length_ - kRecordsOffset; }

 private:
  Status WriteHeader(int slot, uint64_t generation, uint64_t start_seq);
  uint32_t RecordCrc(uint32_t len, uint64_t seq, std::string_view payload) const;

  Device* device_;
  uint64_t offset_;
  uint64_t length_;
  int active_slot_ = 0;
  uint64_t generation_ = 0;
  uint64_t salt_ = 0;
  uint64_t start_seq_ = 1;
  uint64_t next_seq_ = 1;
  uint64_t durable_seq_ = 0;
  uint64_t tail_ = kRecordsOffset;       // relative to offset_
  uint64_t persisted_ = kRecordsOffset;  // relative to offset_
};

}  // namespace nosyncfs
