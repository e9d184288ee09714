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

// The mount point of a live nosyncfs mount of `device` (compared by real
// path with the mount's source), or nullopt. Live: the mount answers a stat
// as the same file system (a mount whose daemon died does not).
std::optional<std::string> FindLiveMount(const std::string& device);

// Binds `existing` (from FindLiveMount) onto `mountpoint`. Refuses a mount
// point that already is that mount (EBUSY) and callers without the right
// to mount (EPERM: bind mounts need CAP_SYS_ADMIN).
Status BindExistingMount(const std::string& existing, const std::string& mountpoint);

}  // namespace nosyncfs
