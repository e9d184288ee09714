// Checker: the offline consistency check behind fsck.nosyncfs. It runs on
// an opened (and therefore recovered) Volume, so it checks exactly the state
// the daemon would serve, using the same recovery code.
//
// Checks: every directory entry names an existing inode of the recorded
// type and has its readdir twin; link counts equal the entries (directories:
// 2 + subdirectories); directory parent pointers; every inode is reachable
// or an orphan (unlinked while open); extents only on regular files,
// well-formed, inside the data area; every block mapped more than once has
// a reference count equal to the extents mapping it, and no count names
// blocks nothing maps (leaked); symlinks have targets; the inode
// counter is past every inode; the kept inode count is exact.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "journal/volume.h"

namespace nosyncfs {

struct CheckReport {
  uint64_t inodes = 0, directories = 0, entries = 0, extents = 0;
  uint64_t mapped_blocks = 0;  // by all extents, shared blocks once for each
  uint64_t used_blocks = 0;    // distinct blocks in use
  std::vector<std::string> problems;
  bool clean() const { return problems.empty(); }
};

// Reads the whole metadata store. EIO/EUCLEAN only when the store cannot be
// read; inconsistencies go into the report.
Result<CheckReport> CheckVolume(Volume& volume);

}  // namespace nosyncfs
