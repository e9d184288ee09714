// The ioctl nosyncfs answers on its regular files, shared by the daemon and
// nosyncctl.
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
