// The FUSE low-level operations table for a Vfs.
#pragma once

struct fuse_lowlevel_ops;

namespace nosyncfs {

// Every operation decodes its request, calls the Vfs (the session's
// userdata) and replies exactly once; unsupported operations are left out so
// libfuse answers ENOSYS.
const fuse_lowlevel_ops& FuseOps();

}  // namespace nosyncfs
