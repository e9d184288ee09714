// Checker: the offline consistency check behind fsck.nosyncfs. It runs on
// an opened Volume (recovered by a writable open, or found needing no
// recovery by a read-only one), so it checks exactly the state the daemon
// would serve, using the same recovery code.
//
// Checks, in five passes (the pass numbers of fsck -C):
//  1. inodes (each record decodes; the root exists) and extents (only on
//     regular files of existing inodes, well-formed, known flags, inside
//     the data area);
//  2. directory entries (each names an existing inode of the recorded
//     type from a directory, has its readdir twin and a cookie below its
//     directory's next cookie; directory parent pointers);
//  3. connectivity and link counts (every inode is named by an entry, or
//     is an orphan; link counts equal the entries, directories 2 +
//     subdirectories; symlinks have targets; orphan records name inodes
//     that exist and have no entries);
//  4. reference counts (every block mapped more than once has a count
//     equal to the extents mapping it; no count names blocks nothing maps);
//  5. the kept counters (inode counter past every inode, exact inode
//     count) and block accounting.
// Each problem comes with what a repair (journal/repair.h) needs to know.
#pragma once

#include <string>
#include <vector>

#include "base/progress.h"
#include "base/status.h"
#include "journal/volume.h"

namespace nosyncfs {

enum class ProblemKind {
  kBadInodeRecord,       // key: the inode record that does not decode
  kMissingRoot,
  kBadEntryRecord,       // dir, name: a name entry that does not decode
  kEntryOutsideDirectory,  // dir, name, ino: in an inode that is no directory
  kDanglingEntry,        // dir, name, ino: names a missing inode
  kWrongEntryType,       // dir, name, ino
  kWrongParent,          // ino (a directory), dir: the directory listing it
  kCookieNotBelowNext,   // dir, name
  kCookieWithoutName,    // dir, key: a readdir entry without its name entry
  kNameWithoutCookie,    // dir, name: a name entry without its readdir twin
  kBadExtentRecord,      // ino, key: does not decode
  kExtentOutsideData,    // ino, key
  kExtentOfMissingInode,  // ino, key: leaked blocks
  kExtentOfNonRegular,   // ino, key
  kUnknownExtentFlags,   // ino, key
  kMappedTwice,          // blocks mapped twice without a reference count
  kBadRefcountRecord,    // key
  kLeakedRefcount,       // a count for blocks nothing maps
  kWrongRefcount,
  kWrongLinkCount,       // ino; count: the links found
  kUnreachable,          // ino
  kSymlinkWithoutTarget,  // ino
  kDanglingOrphan,       // ino: an orphan record of a missing inode
  kOrphanWithLinks,      // ino: an orphan record of an inode entries name
  kInodeNotBelowCounter,  // ino
  kWrongInodeCount,
  kBlockAccounting,      // follows from others: extents the allocator skipped
};

// Who may repair a problem.
enum class RepairClass {
  kSafe,  // fsck -p: safe without a human (nothing reachable changes)
  kFull,  // fsck -y only: changes the namespace or a file's mapping
  kNone,  // nothing repairs it
};

struct Problem {
  ProblemKind kind;
  std::string message;  // one line, as fsck prints it after "problem: "
  uint64_t ino = 0;
  uint64_t dir = 0;
  std::string name{};  // entries: the name in `dir`
  std::string key{};   // the store record at fault, where one is
  uint64_t count = 0;

  RepairClass repair_class() const;
};

struct CheckReport {
  uint64_t inodes = 0, directories = 0, entries = 0, extents = 0;
  uint64_t mapped_blocks = 0;  // by all extents, shared blocks once for each
  uint64_t used_blocks = 0;    // distinct blocks in use
  // Every problem's message, in the order found (problems[i] ==
  // findings[i].message).
  std::vector<std::string> problems;
  std::vector<Problem> findings;
  // Orphan inodes: unlinked while open (or O_TMPFILE never linked) before
  // a crash, named by no entry. Valid state, not a problem: the next
  // writable mount (or fsck -p) frees them.
  std::vector<uint64_t> orphans;
  bool clean() const { return problems.empty(); }
};

// Reads the whole metadata store; reports each pass to `progress` (which
// may be null) per inode or record. EIO/EUCLEAN only when the store cannot
// be read; inconsistencies go into the report.
Result<CheckReport> CheckVolume(Volume& volume, Progress* progress = nullptr);

}  // namespace nosyncfs
