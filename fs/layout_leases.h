// LayoutLeases: what the Vfs tells whoever hands out direct-access leases
// (fs/direct_server) about the files it leased.
//
// A lease promises a client that the NF extents it was given stay mapped
// where they are, inside the size it was given. The Vfs does not track
// leases; it reports every transaction that changes a file's mapping or
// size (Transaction::layout_changed) to BeforeLayoutChange, with the layout
// the change leaves, under the file's exclusive lock and before anything is
// committed. The lease holder then revokes every lease that layout no
// longer honours, and returns only when its holders have stopped storing,
// or were cut off and their blocks quarantined (Volume::Quarantine).
#pragma once

#include <cstdint>
#include <vector>

namespace nosyncfs {

// A file's NF extents as a client may use them.
struct NfLayout {
  struct Extent {
    uint64_t file_offset = 0;    // bytes, block-aligned
    uint64_t length = 0;         // bytes
    uint64_t device_offset = 0;  // bytes into the device
    uint64_t device_block = 0;   // the same, in data-area blocks
    uint64_t blocks = 0;         // whole blocks the extent covers
  };
  uint64_t size = 0;
  // Sorted by file_offset, not overlapping, whole blocks, past the size
  // too (a lease that may append uses those; the others are clipped to the
  // size when granted).
  std::vector<Extent> extents;
  // The part of the size's block past the size, when that block is NF
  // (device bytes; zeroed before an appender may write past the size).
  uint64_t tail_offset = 0, tail_length = 0;
  // fsync(2) would have nothing to do now: every byte inside the size is
  // NF, no data or attribute waits for a sync, every transaction of the
  // file is durable, and at most one descriptor of the file is open for
  // writing (the asker's).
  bool nothing_to_sync = false;
};

// What direct writers did to a file since the Vfs last asked.
struct DirectWrites {
  bool slotted = false;         // the file has a size slot (a write lease)
  uint64_t published_size = 0;  // the size its appender published
  bool wrote = false;           // a direct write happened since the last ask
};

class LayoutLeases {
 public:
  virtual ~LayoutLeases() = default;
  // Whether `ino` has a lease now; cheap, from any thread.
  virtual bool Leased(uint64_t ino) const = 0;
  // `ino`'s mapping or size is about to become `after` (empty when the file
  // is destroyed). Called with the file's exclusive lock held.
  virtual void BeforeLayoutChange(uint64_t ino, const NfLayout& after) = 0;
  // The file system is becoming read-only: every write lease is revoked
  // (waited for as BeforeLayoutChange does), and none is granted until
  // the Vfs is read-write again.
  virtual void RevokeWriteLeases() = 0;

  // Whether `ino` has a size slot: a write lease has one, and keeps it until
  // the Vfs folds it (SizeFolded). Its attributes may change with no
  // request, so the kernel must not cache them.
  virtual bool WriteLeased(uint64_t ino) const = 0;
  // The size the file's appender published and whether direct writes
  // happened since the last call (which then clears that).
  virtual DirectWrites TakeDirectWrites(uint64_t ino) = 0;
  // Revokes the lease that may append to `ino`, if any, and waits as
  // BeforeLayoutChange does: from then on only the Vfs changes the size.
  // Called with the file's exclusive lock held.
  virtual void EndAppends(uint64_t ino) = 0;
  // The Vfs made the published size durable in the store: the slot goes,
  // unless a write lease of `ino` still uses it. Exclusive lock held.
  virtual void SizeFolded(uint64_t ino) = 0;
};

}  // namespace nosyncfs
