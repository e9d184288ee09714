// The value of the `user.nosync` extended attribute on a directory: a
// no-fsync policy for what is created in it (docs/semantics.md, "A policy
// for new files"). A directory has no data, so there the value is not a
// list of ranges but:
//
//   policy := ws* ( "" | "all" ( ws* "," ws* "grow=" num )? ) ws*
//   num    := decimal digits, optionally followed by K, M or G (k, m, g)
//
// "all" makes every regular file created in the directory NF for its whole
// life, growing by NF space allocated ahead of its size in units of `grow`
// (default kDefaultNfGrowBytes), and every directory created in it inherit
// the policy. The empty value means no policy. One trailing NUL is ignored.
//
// Pure functions over values; no I/O, no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace nosyncfs {

// 2 MiB: a log that appends 4 KiB records allocates (zeroes, persists and
// commits) new space once every 512 appends; it is the unit of x86 huge
// pages, so a DAX mapping of the space can use them; and a file that is
// closed gives back what it did not use (Vfs::Release), so many small
// files do not hold 2 MiB each.
inline constexpr uint64_t kDefaultNfGrowBytes = uint64_t{2} << 20;
// Growth units from one block up to 1 GiB.
inline constexpr uint64_t kMaxNfGrowBytes = uint64_t{1} << 30;

// The growth unit in blocks (`grow` rounded up to whole blocks), or 0 for
// the empty value. EINVAL, saying what is wrong, for anything else: ranges
// (a directory has no data), a grow of 0 or above 1 GiB, junk.
Result<uint32_t> ParseNosyncPolicy(std::string_view text, uint32_t block_size);

// The canonical text: "all,grow=BYTES", or "" for no policy (0).
std::string FormatNosyncPolicy(uint32_t grow_blocks, uint32_t block_size);

}  // namespace nosyncfs
