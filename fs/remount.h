// Remount: `mount -o remount,...` on a live nosyncfs mount.
//
// mount(8) runs mount.fuse3, which runs `nosyncfs DEVICE MOUNTPOINT -o
// remount,OPTIONS` (OPTIONS merged by mount(8) from the command line, the
// mount's current flags and fstab). That process (RunRemount) asks the
// mount's daemon, through NSF_IOC_REMOUNT on the mount's root (fs/ioctl.h),
// whether it takes the options, then remounts the kernel's side (mount(2)
// with MS_REMOUNT) and has the daemon apply them, in the order that leaves
// nothing half done:
//  - to read-only: the kernel first, which refuses (EBUSY) while a file is
//    open for writing, as for ext4; then the daemon revokes write leases,
//    makes everything durable and refuses every change (EROFS);
//  - to read-write: the daemon first, then the kernel.
// The daemon's side (Remounter) changes what can change on a live mount
// (ro/rw, noatime|relatime|strictatime, nodiratime, nf_punch=,
// lease_break=, debug) and refuses, in one line, a different value of what
// cannot (emulate=, meta=, direct=); options not named stay as they are.
// A mount started with -o ro has its device open read-only: it does not
// become read-write (unmount, and mount it read-write).
#pragma once

#include <mutex>
#include <string>

#include "fs/ioctl.h"
#include "fs/mount_options.h"

namespace nosyncfs {

class DirectServer;
class Vfs;

// The remount process: returns its exit status (0, or 1 after one line on
// stderr saying why).
int RunRemount(const MountOptions& requested);

// The daemon's side. Thread-safe: remounts are served one at a time.
class Remounter {
 public:
  // `current` is what the daemon was started with; `direct` may be null.
  Remounter(Vfs* vfs, DirectServer* direct, const MountOptions& current)
      : vfs_(vfs), direct_(direct), current_(current) {}

  // Answers one NSF_IOC_REMOUNT (phase and options in `args`; error and
  // message out).
  void Handle(nsf_remount_args* args);

 private:
  // Why `requested` cannot be applied, or "" (mu_ held).
  std::string Refusal(const MountOptions& requested) const;
  Status Apply(const MountOptions& requested);

  Vfs* const vfs_;
  DirectServer* const direct_;
  std::mutex mu_;
  MountOptions current_;  // mu_
};

}  // namespace nosyncfs
