// Command line of the nosyncfs daemon.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "fs/vfs.h"
#include "journal/volume.h"

namespace nosyncfs {

struct MountOptions {
  std::string device;
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  bool help = false;
  VolumeOptions volume;
  VfsOptions vfs;
  // How long to wait for a device another process has locked (a daemon
  // still finishing its shutdown after umount) before giving up.
  uint32_t lock_wait_seconds = 10;
  // -o options that are not ours, handed to libfuse.
  std::vector<std::string> fuse_options;
};

// Parses `nosyncfs DEVICE MOUNTPOINT [-f] [-d] [-o opt[,opt...]]`. Our -o
// options: emulate=strict|evict:SEED|none, meta=DIR, nf_punch=split|deny,
// lock_wait=SECONDS.
// EINVAL with a message for anything malformed.
Result<MountOptions> ParseMountOptions(int argc, char** argv);

extern const char kMountUsage[];

}  // namespace nosyncfs
