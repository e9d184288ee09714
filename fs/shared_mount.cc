#include "fs/shared_mount.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>

#include "fs/mountinfo.h"

namespace nosyncfs {

std::optional<std::string> FindLiveMount(const std::string& device) {
  const std::string real_device = RealPath(device);
  for (const MountInfoEntry& e : ReadMountInfo()) {
    if (e.fstype != "fuse.nosyncfs" || RealPath(e.source) != real_device) continue;
    struct stat st;
    if (::stat(e.mount_point.c_str(), &st) != 0) continue;  // e.g. ENOTCONN: its daemon died
    std::string dev = std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
    if (dev == e.dev) return e.mount_point;
  }
  return std::nullopt;
}

Status BindExistingMount(const std::string& existing, const std::string& mountpoint) {
  if (RealPath(mountpoint) == existing) {
    return Status::Error(EBUSY, "already mounted on " + existing);
  }
  if (::mount(existing.c_str(), mountpoint.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    int err = errno;
    return Status::Error(err, "cannot bind the mount on " + existing + " to " + mountpoint + ": " +
                                  std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace nosyncfs
