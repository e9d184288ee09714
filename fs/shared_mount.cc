#include "fs/shared_mount.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>

#include "fs/mountinfo.h"

namespace nosyncfs {

namespace {

// The superblock's read-only flag: mountinfo's super options start with ro
// or rw (a read-only bind of a read-write mount has ro only in its mount
// options).
bool SuperReadOnly(const MountInfoEntry& e) {
  return e.super_options == "ro" || e.super_options.starts_with("ro,");
}

// The per-mount flags of `path` as mount(2) flags: a bind remount sets all
// of them, so those not named would be cleared.
unsigned long FlagsOf(const std::string& path) {
  struct statvfs sv;
  if (::statvfs(path.c_str(), &sv) != 0) return 0;
  unsigned long flags = 0;
  if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

}  // namespace

std::optional<LiveMount> FindLiveMount(const std::string& device) {
  const std::string real_device = RealPath(device);
  for (const MountInfoEntry& e : ReadMountInfo()) {
    if (e.fstype != "fuse.nosyncfs" || RealPath(e.source) != real_device) continue;
    struct stat st;
    if (::stat(e.mount_point.c_str(), &st) != 0) continue;  // e.g. ENOTCONN: its daemon died
    std::string dev = std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
    if (dev == e.dev) return LiveMount{e.mount_point, SuperReadOnly(e)};
  }
  return std::nullopt;
}

Status BindExistingMount(const LiveMount& existing, const std::string& mountpoint, bool read_only) {
  const std::string& from = existing.mount_point;
  if (RealPath(mountpoint) == from) return Status::Error(EBUSY, "already mounted on " + from);
  if (existing.read_only && !read_only) {
    return Status::Error(EBUSY, "it is mounted read-only on " + from +
                                    "; unmount that first to mount it read-write");
  }
  if (::mount(from.c_str(), mountpoint.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    int err = errno;
    return Status::Error(err, "cannot bind the mount on " + from + " to " + mountpoint + ": " +
                                  std::strerror(err));
  }
  if (read_only && !existing.read_only &&
      ::mount(nullptr, mountpoint.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | FlagsOf(from),
              nullptr) != 0) {
    int err = errno;
    (void)::umount2(mountpoint.c_str(), MNT_DETACH);  // no read-write mount left behind
    return Status::Error(err, "cannot make the bind on " + mountpoint + " read-only: " +
                                  std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace nosyncfs
