// The mount table as /proc/self/mountinfo shows it (proc(5)).
#pragma once

#include <string>
#include <vector>

namespace nosyncfs {

struct MountInfoEntry {
  std::string dev;          // "major:minor" of the mounted file system
  std::string mount_point;  // unescaped
  std::string fstype;       // e.g. "fuse.nosyncfs"
  std::string source;       // unescaped; for nosyncfs its fsname, the device
  std::string mount_options;  // this mount's: rw/ro, nodev, noatime, ...
  std::string super_options;  // the file system's own options
};

// Every mount, in mount order (a later entry for one point is on top).
// Empty if the table cannot be read.
std::vector<MountInfoEntry> ReadMountInfo();

// `path` resolved as mountinfo shows paths (realpath(3)), or as given if it
// cannot be resolved.
std::string RealPath(const std::string& path);

}  // namespace nosyncfs
