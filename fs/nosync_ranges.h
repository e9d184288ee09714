// The value of the `user.nosync` extended attribute: parsing the text a user
// sets into block-aligned byte ranges, and formatting the canonical text that
// getxattr returns.
//
// Pure functions over values; no I/O, no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace nosyncfs {

// A half-open byte range [start, end).
struct ByteRange {
  uint64_t start = 0;
  uint64_t end = 0;
  bool operator==(const ByteRange&) const = default;
};

// Largest byte offset a range may reach (end is exclusive): off_t max,
// INT64_MAX.
inline constexpr uint64_t kMaxFileOffset = 0x7fffffffffffffffULL;

// Parses a user.nosync value into a sorted, non-overlapping, merged list of
// ranges rounded OUTWARD to multiples of `block_size` (start rounded down, end
// rounded up). `block_size` must be a power of two in 512..65536. `file_size`
// is the file's current size, used only by "all".
//
// Grammar (ws = space, tab, newline; one trailing NUL byte is ignored, since
// some tools send one):
//   value := ws* ( "" | "all" | item ( ws* "," ws* item )* ) ws*
//   item  := num "-" num     START-END, END exclusive
//          | num "+" num     START+LENGTH
//   num   := decimal digits, optionally followed by one suffix K, M or G
//            (or k, m, g) meaning *1024, *1024^2, *1024^3.
// No whitespace is allowed inside an item. "all" (lower case) means
// [0, file_size) rounded up, the empty list if file_size is 0; it must stand
// alone. An empty or whitespace-only value means the empty set. Overlapping,
// adjacent and unsorted items are accepted and merged.
//
// Errors: EINVAL, with a message saying what is wrong and at which byte, for
// an empty item (",,", leading or trailing comma), a missing number, junk
// characters, a sign ("-5", "+5"), END <= START, LENGTH == 0, any number,
// START+LENGTH or rounded end above kMaxFileOffset, more than 4096 items, a
// value longer than 64 KiB (65536 bytes, not counting the ignored NUL), or a
// bad `block_size`. Nothing is returned but the error.
//
// Thread-safe: a pure function.
Result<std::vector<ByteRange>> ParseNosyncRanges(std::string_view text, uint64_t file_size,
                                                 uint32_t block_size);

// Canonical text for a list: "START-END,START-END" in plain decimal bytes,
// no spaces, no suffixes; "" for the empty list. The list is normalized first
// (see NormalizeRanges), so the same set always gives the same text, and
// ParseNosyncRanges(FormatNosyncRanges(x), any_size, bs) == x for a normalized
// block-aligned x whose ends are at most kMaxFileOffset, as long as the text
// stays within the parser's limits (4096 items, 64 KiB).
//
// Errors: none. Thread-safe: a pure function.
std::string FormatNosyncRanges(const std::vector<ByteRange>& ranges);

// Normalizes any list: sorts, merges overlapping and adjacent ranges, and
// drops empty ones (end <= start).
//
// Errors: none. Thread-safe: a pure function.
std::vector<ByteRange> NormalizeRanges(std::vector<ByteRange> ranges);

}  // namespace nosyncfs
