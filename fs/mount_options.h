// Command line of the nosyncfs daemon.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "fs/direct_server.h"
#include "fs/transport/fuse_channel.h"
#include "fs/vfs.h"
#include "journal/volume.h"

namespace nosyncfs {

struct MountOptions {
  std::string device;
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;          // -d or -o debug: debug log lines
  bool trace_requests = false; // -d: libfuse prints every request (foreground)
  bool help = false;
  VolumeOptions volume;
  VfsOptions vfs;
  DirectAccessOptions direct;  // direct=, lease_break=
  TransportOptions transport;  // uring=
  // How long to wait for a device another process has locked (a daemon
  // still finishing its shutdown after umount) before giving up.
  uint32_t lock_wait_seconds = 10;
  // -o options for the kernel mount or libfuse (noatime, nosuid, ...),
  // handed to libfuse as given.
  std::vector<std::string> fuse_options;
  // -o remount: change the options of the live mount on MOUNTPOINT
  // (fs/remount.h) instead of mounting.
  bool remount = false;
  // The -o lists as given, joined by commas (what a remount sends).
  std::string option_text;
  // Which of the daemon's own settings the options named, by kind: "ro"
  // (ro or rw), "atime" (noatime, relatime, strictatime), "diratime",
  // "emulate", "meta", "nf_punch", "direct", "lease_break", "lock_wait",
  // "uring", "debug". A remount changes these and leaves the rest as they are.
  std::set<std::string> given;
};

// Parses `nosyncfs DEVICE MOUNTPOINT [-f] [-d] [-o opt[,opt...]]`, also as
// mount(8) and mount.fuse3 call it (-n, -s, -v, -t TYPE are accepted).
// -o options fall into three kinds: ours (emulate=, meta=, nf_punch=,
// lock_wait=, direct=, lease_break=, uring=, debug), the kernel's and libfuse's (rw, ro, noatime, nodev,
// allow_other, ...; passed on), and those meant for mount(8), systemd or
// the fstab reader alone (defaults, noauto, nofail, _netdev, user, x-*,
// comment=...; ignored). Anything else is EINVAL "unknown mount option",
// as is a malformed value of ours.
// With -o remount, mount(8) also passes the mount's kernel options back
// (user_id=, group_id=, rootmode=, blksize=), which are accepted then, and
// `bind` (a change of the mount point's own flags only).
Result<MountOptions> ParseMountOptions(int argc, char** argv);

// The options of one -o list, as ParseMountOptions reads them, with no
// device or mount point (a remount's list, on the daemon's side).
Result<MountOptions> ParseOptionList(const std::string& list);

extern const char kMountUsage[];

}  // namespace nosyncfs
