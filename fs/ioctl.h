// The ioctls nosyncfs answers, shared by the daemon and its tools.
//
// NSF_IOC_FALLOCATE is fallocate(2) by another route: the kernel's FUSE
// client refuses FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE and
// FALLOC_FL_UNSHARE_RANGE itself (EOPNOTSUPP) and never sends them to a
// daemon, but it passes a fixed-size ioctl through. The file must be open
// for writing (EBADF otherwise), as for fallocate. Any mode fallocate(2)
// takes is accepted, with the same errors.
#pragma once

#include <linux/ioctl.h>
#include <stdint.h>

struct nsf_fallocate_args {
  uint64_t offset;
  uint64_t length;
  uint32_t mode;  // FALLOC_FL_* bits
  uint32_t reserved;  // 0
};

#define NSF_IOC_FALLOCATE _IOW('N', 0x40, struct nsf_fallocate_args)

// NSF_IOC_REMOUNT is the daemon's side of `mount -o remount` (fs/remount.h:
// mount.fuse3 runs `nosyncfs DEVICE MOUNTPOINT -o remount,...`, which asks
// the live daemon with this ioctl, on the mount's root directory, and
// remounts the kernel's side itself). Only for a caller with CAP_SYS_ADMIN
// (EPERM otherwise); ENOTTY on any other inode. `options` is the -o list
// as given (NUL-terminated). With NSF_REMOUNT_CHECK the daemon only says
// whether it takes them; with NSF_REMOUNT_APPLY it makes the change (a
// switch to read-only makes everything durable first). The ioctl succeeds
// once the daemon has answered: `error` is then 0 or a positive errno, and
// `message` says why in one line (NUL-terminated).
enum nsf_remount_phase { NSF_REMOUNT_CHECK = 1, NSF_REMOUNT_APPLY = 2 };

struct nsf_remount_args {
  uint32_t phase;  // in: nsf_remount_phase
  int32_t error;   // out
  char options[3072];  // in
  char message[512];   // out
};

#define NSF_IOC_REMOUNT _IOWR('N', 0x41, struct nsf_remount_args)
