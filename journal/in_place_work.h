// InPlaceWork: what an operation changes on the device in place, besides
// its metadata (today: byte ranges it zeroes, e.g. the partial blocks at
// the edges of a hole punch). Recorded as the operation's intent in the
// metadata store (keys::Intent), in the same transaction as the metadata
// change, so that recovery can finish an operation a crash interrupted:
// Volume::CommitInPlace. Format in journal/FORMAT.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace nosyncfs {

struct InPlaceWork {
  struct Range {
    uint64_t dev = 0;  // device byte offset
    uint64_t len = 0;  // bytes
  };
  std::vector<Range> zero;  // ranges to fill with zeros

  bool empty() const { return zero.empty(); }
  std::string Encode() const;
  // EUCLEAN when malformed.
  static Result<InPlaceWork> Decode(std::string_view value);
};

}  // namespace nosyncfs
