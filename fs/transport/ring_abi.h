// The kernel's FUSE-over-io_uring protocol (FUSE 7.42, Linux 6.14), which
// Debian 12's <linux/fuse.h> (7.38) predates: the INIT flag that commits a
// connection to rings, the per-entry buffer layout and the two commands.
// Spelled out here, under names of our own, so that the build does not
// depend on the installed kernel headers; fs/fuse/dev_uring.c and
// Documentation/filesystems/fuse-io-uring.rst are the authority.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nosyncfs::ring_abi {

// INIT flag (bit 41: flags2 bit 9, with FUSE_INIT_EXT): the daemon will
// serve requests over rings. The kernel offers it only while the fuse
// module parameter enable_uring is on.
constexpr uint64_t kInitOverIoUring = 1ull << 41;
constexpr uint32_t kInitFlags2OverIoUring = static_cast<uint32_t>(kInitOverIoUring >> 32);

// Sub-commands of IORING_OP_URING_CMD on the /dev/fuse descriptor.
constexpr uint32_t kCmdRegister = 1;        // park an entry: "fetch a request"
constexpr uint32_t kCmdCommitAndFetch = 2;  // reply to its request, fetch the next

// What the kernel writes after the headers of each request (and reads back
// with the reply): the request's id and the bytes used in the payload buffer.
struct EntryInOut {
  uint64_t flags;
  uint64_t commit_id;  // the request's unique, echoed in CmdReq::commit_id
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};
static_assert(sizeof(EntryInOut) == 32);

constexpr size_t kInOutHeaderBytes = 128;  // fuse_in_header / fuse_out_header
constexpr size_t kOpHeaderBytes = 128;     // the request's first argument

// iov[0] of a registered entry.
struct EntryHeaders {
  char in_out[kInOutHeaderBytes];
  char op_in[kOpHeaderBytes];
  EntryInOut ring_ent_in_out;
};
static_assert(sizeof(EntryHeaders) == 288);

// The command's own bytes, in the 80-byte command area of a 128-byte SQE.
struct CmdReq {
  uint64_t flags;
  uint64_t commit_id;  // COMMIT_AND_FETCH: the unique of the request answered
  uint16_t qid;        // the queue: one per possible CPU
  uint8_t padding[6];
};
static_assert(sizeof(CmdReq) == 24);

}  // namespace nosyncfs::ring_abi
