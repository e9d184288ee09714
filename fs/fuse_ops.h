// The FUSE low-level operations table for a Vfs.
#pragma once

#include "fs/transport/fuse_channel.h"

struct fuse_lowlevel_ops;
struct fuse_session;

namespace nosyncfs {

class Vfs;
class DirectServer;
class Remounter;

// The session's userdata: what every operation works on.
struct FuseContext {
  Vfs* vfs = nullptr;
  fuse_session* session = nullptr;  // set once the session exists
  RequestStats stats;               // counted by the FuseChannel
  DirectServer* direct = nullptr;   // with direct=; set before the mount
  Remounter* remounter = nullptr;   // set before the mount
};

// Read-only statistics on the root directory, since mount, as "key value"
// lines (Vfs::StatsText, then heap_bytes and requests_OP counts; the keys
// are listed in docs/architecture.md). Not listed by listxattr; the
// "user.nosyncfs." prefix is reserved (EPERM to set or remove).
inline constexpr char kStatsXattr[] = "user.nosyncfs.stats";

// Every operation decodes its request, calls the Vfs (through the session's
// FuseContext userdata) and replies exactly once; unsupported operations
// are left out so libfuse answers ENOSYS.
const fuse_lowlevel_ops& FuseOps();

}  // namespace nosyncfs
