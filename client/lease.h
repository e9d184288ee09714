// A lease as granted (GRANT): the file's NF extents, where they lie in the
// device mapping, and the size they hold for. Immutable once made; the
// listener frees it only when no data call can still be reading it (see
// File::WaitForNoStores).
#ifndef NOSYNCFS_CLIENT_LEASE_H
#define NOSYNCFS_CLIENT_LEASE_H

#include <algorithm>
#include <cstdint>
#include <vector>

#include "client/protocol.h"

namespace nsf {

class DeviceMapping;

struct Lease {
  uint64_t id = 0;
  bool writable = false;
  bool append = false;  // NSF_GRANT_APPEND: the size is the slot's
  bool synced = false;  // NSF_GRANT_SYNCED
  uint64_t size = 0;    // at the grant
  nsf_size_slot* slot = nullptr;  // writable leases: the file's, in the mapping
  uint64_t nf_prefix = 0;  // the extents cover [0, nf_prefix) without a gap
  std::vector<nsf_extent> extents;  // sorted, non-overlapping (checked at the GRANT)
  const DeviceMapping* mapping = nullptr;

  // The extent holding file byte `offset`, or nullptr: a binary search.
  const nsf_extent* ExtentAt(uint64_t offset) const {
    auto after = std::upper_bound(
        extents.begin(), extents.end(), offset,
        [](uint64_t off, const nsf_extent& e) { return off < e.file_offset; });
    if (after == extents.begin()) return nullptr;
    const nsf_extent& e = *(after - 1);
    return offset - e.file_offset < e.length ? &e : nullptr;
  }

  // The file's size now: an appender's grows with its appends.
  uint64_t CurrentSize() const {
    return append ? __atomic_load_n(&slot->size, __ATOMIC_ACQUIRE) : size;
  }

  // Calls piece(device_offset, buffer_offset, length) for each extent's
  // part of [offset, offset+length), in order, if the lease covers all of
  // it (below `limit`, no gap between extents); returns false without a
  // call otherwise, and false if a piece returns false.
  template <typename Piece>
  bool ForEachPiece(uint64_t offset, uint64_t length, uint64_t limit, Piece piece) const {
    if (length == 0 || offset > limit || length > limit - offset) return false;
    for (int pass = 0; pass < 2; ++pass) {  // first check, then copy
      for (uint64_t done = 0; done < length;) {
        const nsf_extent* e = ExtentAt(offset + done);
        if (e == nullptr) return false;
        const uint64_t into = offset + done - e->file_offset;
        const uint64_t n = std::min(length - done, e->length - into);
        if (pass == 1 && !piece(e->device_offset + into, done, n)) return false;
        done += n;
      }
    }
    return true;
  }

  // The extent wholly holding [offset, offset+length), or nullptr.
  const nsf_extent* ExtentHolding(uint64_t offset, uint64_t length) const {
    const nsf_extent* e = ExtentAt(offset);
    if (e == nullptr || length > e->length - (offset - e->file_offset)) return nullptr;
    return e;
  }
};

}  // namespace nsf

#endif  // NOSYNCFS_CLIENT_LEASE_H
