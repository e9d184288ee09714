// Schema of the metadata store: key encodings and record formats for
// inodes, directory entries, extents, xattrs and orphans. Documented in
// journal/FORMAT.md; integers are big-endian so keys sort numerically.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "extent/extent_map.h"
#include "extent/refcount_map.h"

namespace nosyncfs {

inline constexpr uint64_t kRootIno = 1;
// Readdir cookies 1 and 2 are "." and ".."; entries start at 3.
inline constexpr uint64_t kFirstDirCookie = 3;

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  bool operator==(const Timespec&) const = default;
};

struct InodeRecord {
  uint64_t ino = 0;
  uint32_t mode = 0;  // type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  Timespec atime, mtime, ctime;
  uint64_t next_cookie = kFirstDirCookie;  // directories: next readdir cookie
  uint64_t parent = 0;                     // directories: the parent directory
  // The no-fsync policy (docs/semantics.md, "A policy for new files"), in
  // blocks: 0 none. On a directory, what files and directories created in
  // it inherit; on a regular file, that it is NF for its whole life and
  // grows by NF space allocated ahead of its size in units of this many
  // blocks. Encoded only when nonzero (older records have none).
  uint32_t nf_grow_blocks = 0;

  std::string Encode() const;
  static Result<InodeRecord> Decode(uint64_t ino, std::string_view value);
};

// A directory entry, stored twice: under keys::Dirent (by name, for lookup)
// and under keys::Cookie (by cookie, for readdir in a stable order); `name`
// is only encoded in the cookie copy.
struct DirentRecord {
  uint64_t ino = 0;
  uint32_t type = 0;    // S_IFMT bits of the target
  uint64_t cookie = 0;  // stable readdir offset
  std::string name;

  std::string Encode(bool with_name) const;
  static Result<DirentRecord> Decode(std::string_view value);
};

// The "a" record: the last transaction the store has applied, and the
// counters that change with commits, kept in the same value so that a
// commit writes one key for all of them.
struct AppliedRecord {
  uint64_t seq = 0;
  uint64_t next_ino = kRootIno + 1;  // the next inode number to hand out
  uint64_t inode_count = 1;          // inodes in the store (statfs)
  // An 8-byte record of an older store: `seq` only; the counters are
  // elsewhere (kLegacyNextIno) or must be counted.
  bool legacy = false;

  std::string Encode() const;
  // EUCLEAN unless 24 bytes (or 8, legacy).
  static Result<AppliedRecord> Decode(std::string_view value);
};

namespace keys {

inline constexpr char kApplied[] = "a";   // AppliedRecord
inline constexpr char kUuid[] = "m/uuid";
// The inode counter of stores made before AppliedRecord carried it (read,
// then deleted, by the first mount of such a store).
inline constexpr char kLegacyNextIno[] = "m/next_ino";

std::string Inode(uint64_t ino);
inline constexpr char kInodePrefix[] = "i";
std::string Dirent(uint64_t dir, std::string_view name);
std::string DirentPrefix(uint64_t dir);
std::string Cookie(uint64_t dir, uint64_t cookie);
std::string CookiePrefix(uint64_t dir);
std::string Extent(uint64_t ino, uint64_t lblk);
std::string ExtentPrefix(uint64_t ino);
inline constexpr char kExtentPrefixAll[] = "e";
std::string Xattr(uint64_t ino, std::string_view name);
std::string XattrPrefix(uint64_t ino);
std::string Orphan(uint64_t ino);
// An operation's in-place work (InPlaceWork) until it is done: see
// Volume::CommitInPlace. Ids count from 1 in each mount; recovery finishes
// and removes every intent, so none outlives the mount that made it.
std::string Intent(uint64_t id);
inline constexpr char kIntentPrefix[] = "w";
// The reference count of a run of shared data blocks (RefcountMap::Record);
// blocks without one are mapped at most once.
std::string Refcount(uint64_t block);
inline constexpr char kRefcountPrefix[] = "r";
std::string SymlinkTarget(uint64_t ino);
inline constexpr char kOrphanPrefix[] = "o";

// The 8-byte big-endian integer that ends a key (inode, cookie, lblk).
uint64_t TrailingU64(std::string_view key);
// The inode number right after a one-byte prefix.
uint64_t InoOf(std::string_view key);

}  // namespace keys

std::string EncodeExtentValue(const Extent& e);
// `key` is a keys::Extent key. EUCLEAN when malformed.
Result<Extent> DecodeExtent(std::string_view key, std::string_view value);

std::string EncodeRefcountValue(const RefcountMap::Record& r);
// `key` is a keys::Refcount key. EUCLEAN when malformed or counting fewer
// than two references.
Result<RefcountMap::Record> DecodeRefcount(std::string_view key, std::string_view value);

std::string EncodeU64(uint64_t v);
// EUCLEAN unless exactly 8 bytes.
Result<uint64_t> DecodeU64(std::string_view value);

}  // namespace nosyncfs
