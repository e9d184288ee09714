// FuseChannel: the raw /dev/fuse traffic underneath libfuse, for what the
// kernel protocol offers and libfuse 3.14 predates. The only file that reads
// or patches kernel protocol structures (<linux/fuse.h>).
//
// Installed with fuse_session_custom_io() on the mounted session, it sees
// every request before libfuse decodes it and every reply before it reaches
// the kernel:
//  - it counts requests by opcode (RequestStats);
//  - in the INIT reply it claims FUSE_HANDLE_KILLPRIV_V2 (the daemon clears
//    set-ID bits itself, so the kernel marks the superblock SB_NOSEC and
//    stops asking for security.capability before every write) and
//    FUSE_PARALLEL_DIROPS (lookups and readdirs of one directory run in
//    parallel), when the kernel offers them: libfuse 3.14 knows the first
//    not at all and forgets to pass the second on;
//  - it keeps, per thread, the kill-set-ID flags of the request being
//    processed (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID,
//    FUSE_OPEN_KILL_SUIDGID), which libfuse 3.14 drops while decoding;
//  - it hands FUSE_TMPFILE (O_TMPFILE), which libfuse 3.14 would answer
//    with ENOSYS, to libfuse as the CREATE it resembles (same arguments,
//    same reply), marked as a tmpfile request.
//
// It also chooses the transport, when the INIT reply is about to be
// written: requests come over io_uring (uring_channel.h) when the kernel
// offers it, the mount allows it (uring=auto) and every ring could be set
// up; over /dev/fuse read/write otherwise. Nothing above this layer knows
// which: a request from a ring goes through the same inspection and the
// same libfuse decoding, and its reply through the same writev hook, which
// hands it to the ring.
//
// Both libfuse's loop and a ring's thread process a request on the thread
// that received it and reply there, so the per-thread flags always belong
// to the request a handler serves.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

struct fuse_session;

namespace nosyncfs {

// Requests received, by opcode. Thread-safe.
class RequestStats {
 public:
  void Count(uint32_t opcode);
  uint64_t count(uint32_t opcode) const;
  // "requests_NAME COUNT" lines in opcode order (NAME the opcode's name in
  // lower case, e.g. requests_write): every opcode libfuse 3.14 serves,
  // counted or not, and others once seen (requests_opcode_N).
  std::string Format() const;

 private:
  static constexpr uint32_t kSlots = 64;  // opcodes past this share the last
  std::array<std::atomic<uint64_t>, kSlots> counts_{};
};

// What the raw request this thread is processing says beyond what libfuse
// passes on.
struct RawRequest {
  uint32_t opcode = 0;
  // The kernel asks the file system to clear set-ID bits as part of this
  // write, truncate, chown or O_TRUNC open.
  bool kill_suidgid = false;
  // A FUSE_TMPFILE request, which libfuse decodes as a CREATE: create an
  // unnamed file in the directory (its name, "/", is the kernel's
  // placeholder), open it, and leave it linkable (linkat AT_EMPTY_PATH).
  bool tmpfile = false;
};
const RawRequest& CurrentRawRequest();

struct TransportOptions {
  // uring=auto: serve over io_uring when the kernel offers it; uring=off:
  // always /dev/fuse.
  bool uring = true;
  // Threads (entries) per ring queue; 0: the default (uring_channel.h).
  uint32_t uring_threads_per_queue = 0;
};

// Installs the channel on `se`, which must be mounted and not yet running.
// Counts into `stats`, which must outlive the session. `after_init` (if
// set) runs once the kernel has taken the INIT reply, i.e. once the mount's
// parameters are the kernel's (e.g. to raise its readahead, which INIT can
// only lower). 0 on success, else a negative errno.
int AttachFuseChannel(fuse_session* se, RequestStats* stats, TransportOptions options,
                      std::function<void()> after_init = nullptr);

// Stops the rings' threads, once libfuse's loop has ended (before the
// session is destroyed): no request is processed afterwards.
void DetachFuseChannel();

// "transport uring|dev_fuse", "uring_queues N" and "uring_threads N"
// lines, for the statistics.
std::string TransportStatsText();

}  // namespace nosyncfs
