// A second mount of a device that a nosyncfs daemon of this machine already
// serves: as a block file system shares one superblock between mounts of a
// device, the new mount point becomes a bind mount of the existing mount,
// served by the same daemon. It lives on until the last of the mounts goes.
// Between the mount points, rename(2) and link(2) answer EXDEV, as for any
// two mounts on Linux.
#pragma once

#include <optional>
#include <string>

#include "base/status.h"

namespace nosyncfs {

struct LiveMount {
  std::string mount_point;
  bool read_only = false;  // its daemon opened the volume read-only
};

// A live nosyncfs mount of `device` (compared by real path with the
// mount's source), or nullopt. Live: the mount answers a stat as the same
// file system (a mount whose daemon died does not).
std::optional<LiveMount> FindLiveMount(const std::string& device);

// Binds `existing` (from FindLiveMount) onto `mountpoint`; with
// `read_only`, the new mount point is read-only (as a read-only mount of a
// block device mounted read-write elsewhere is). Refuses, with EBUSY, a
// mount point that already is that mount, and a read-write mount of a
// volume its daemon opened read-only (as the kernel refuses a read-write
// mount of a block device mounted read-only); EPERM for callers without the
// right to mount (bind mounts need CAP_SYS_ADMIN).
Status BindExistingMount(const LiveMount& existing, const std::string& mountpoint, bool read_only);

}  // namespace nosyncfs
