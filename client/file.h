// An attached descriptor: its current lease, the count of data calls using
// that lease right now, and the file position the library keeps for it.
#ifndef NOSYNCFS_CLIENT_FILE_H
#define NOSYNCFS_CLIENT_FILE_H

#include <sched.h>
#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "client/lease.h"

namespace nsf {

class Connection;

// A file without a lease asks for one at most this often (the data calls
// ask as they fall back, without waiting for the answer).
constexpr int64_t kAskIntervalNs = 1'000'000'000;

inline int64_t MonotonicNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

struct File {
  File(int fd_, std::shared_ptr<Connection> connection_)
      : fd(fd_), connection(std::move(connection_)) {}

  const int fd;
  dev_t dev = 0;  // with ino, tells a stale entry from a reused descriptor
  ino_t ino = 0;
  bool can_read = false;  // the descriptor's access mode: a write lease
  bool can_write = false; // must not serve reads of an O_WRONLY descriptor
  bool append = false;    // O_APPEND writes are the kernel's (end of file)
  const std::shared_ptr<Connection> connection;

  // The lease the data path uses, or null. Data calls count themselves in
  // `inflight` before they load it; whoever takes a lease away stores null
  // and then waits for `inflight` to drain before it frees the lease,
  // acknowledges its revocation, or installs a successor. Both sides use
  // sequentially consistent operations: either the data call's load comes
  // before the store, and then its increment comes before the revoker's
  // read of the counter, which waits for it; or the load sees the store.
  std::atomic<Lease*> lease{nullptr};
  std::atomic<uint32_t> inflight{0};
  std::atomic<bool> wrote{false};       // a direct write went through a lease of it
  std::atomic<int64_t> next_ask_ns{0};  // no asking for a lease before then

  // Who holds this File: the fd table until the detach, and the listener
  // or a request while they use it. The last one deletes it.
  std::atomic<int> holders{1};
  bool detached = false;  // guarded by the connection's mutex

  std::mutex position_mutex;  // as the kernel's f_pos_lock
  // Appends (and O_APPEND writes through the kernel) one at a time: each
  // publishes a size covering only persisted bytes.
  std::mutex append_mutex;
  // Attached with no NF extent: after its first write the library waits
  // for a lease (a policy directory's file gets its NF space then).
  std::atomic<bool> ask_after_first_write{false};
  off_t position = 0;

  // The drain: bounded by one memcpy and persist per data call in flight,
  // as long as `lease` is null meanwhile: with a live lease the calls may
  // overlap without end, so a successor is installed only after the drain.
  void WaitForNoStores() const {
    while (inflight.load() != 0) sched_yield();
  }
};

inline void Hold(File* f) { f->holders.fetch_add(1, std::memory_order_relaxed); }
inline void Unhold(File* f) {
  if (f->holders.fetch_sub(1, std::memory_order_acq_rel) == 1) delete f;
}

}  // namespace nsf

#endif  // NOSYNCFS_CLIENT_FILE_H
