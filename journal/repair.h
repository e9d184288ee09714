// Repair: fsck's repairs of the problems CheckVolume finds.
//
// Every repair is one durable transaction through Volume::Commit (the
// reference counts and the kept counters through the Volume's own
// repairs), so a crash in the middle leaves each repair done whole or not
// begun: a volume that is consistent, or still repairable by the same
// repair. No repair drops anything a path still reaches: files keep their
// sizes, and an extent dropped for pointing outside the data area reads as
// a hole.
//
// Safe repairs (RepairMode::kSafe, fsck -p and -a) change nothing an
// application can see:
//  - leaked blocks: extents of missing inodes are removed, their blocks freed;
//  - orphan inodes (unlinked while open before a crash) are freed as a mount
//    frees them; orphan records of missing inodes, or of inodes entries still
//    name, are dropped (as a mount drops them too, with a warning);
//  - link counts are set to the entries found (except for inodes no entry
//    names, which only -y can link somewhere);
//  - the kept counters: the inode counter, the inode count, a directory's
//    next readdir cookie;
//  - reference counts are rewritten from the extents (a count for blocks
//    nothing maps goes; blocks mapped twice without one keep none: that is
//    not repairable here).
// RepairMode::kAll (fsck -y) repairs those and:
//  - entries: dropped when they name a missing inode (with their readdir
//    twin), live outside a directory or do not decode; a missing twin of
//    either kind is written again from the other; a wrong file type in an
//    entry, or a directory's wrong parent pointer, is corrected;
//  - unreachable inodes are linked into /lost+found as "#INO" (made as
//    e2fsck makes it: a directory 0700 owned by root, in the root);
//  - bad extent records: undecodable ones and those of a file that is not a
//    regular file are removed, those reaching outside the data area are cut
//    to the part inside it (or removed), unknown flags are cleared.
//
// The repairs run in two rounds: the first (extents, orphans, entries,
// lost+found, the inode counter) from `report`, the second (link counts,
// cookies, reference counts, inode count) from a new check after it, so
// that what the first changed is counted. The caller checks again after.
//
// Thread-safety: nothing else may use the volume meanwhile.
#pragma once

#include <string>
#include <vector>

#include "base/progress.h"
#include "base/status.h"
#include "journal/checker.h"
#include "journal/volume.h"

namespace nosyncfs {

enum class RepairMode {
  kSafe,  // fsck -p / -a
  kAll,   // fsck -y
};

// Whether `mode` repairs `p`.
bool Repairs(RepairMode mode, const Problem& p);

// Repairs what `report` (a check of `volume`) found that `mode` allows, and
// frees the report's orphan inodes. Returns one line per repair made, for
// fsck's "repaired: " lines. Problems whose records changed since the check
// are left alone. Reports its rounds to `progress` (may be null). EROFS on a
// read-only volume; other errors when a commit fails (the repairs before it
// are durable).
Result<std::vector<std::string>> RepairVolume(Volume& volume, const CheckReport& report,
                                              RepairMode mode, Progress* progress = nullptr);

}  // namespace nosyncfs
