// UringChannel: FUSE requests over io_uring (FUSE 7.42, Linux 6.14 and
// later, while the fuse module parameter enable_uring is on), instead of a
// read(2) and a writev(2) on /dev/fuse per request.
//
// The kernel keeps one queue per possible CPU and hands a request to the
// queue of the CPU its caller runs on, into an entry the daemon parked there
// (REGISTER): header and payload buffers of ours, filled by the kernel, and
// the parked command completes. The daemon answers in the same buffers, and
// one COMMIT_AND_FETCH both delivers the reply and parks the entry again.
//
// Here every entry has a thread and an io_uring of its own: the thread
// that parked an entry is the one its request is copied to (the kernel
// does that in the parking task's context), and the only one that submits
// on its ring, so no lock is shared between queues and no reply is ever
// submitted from another thread. Several threads serve each queue, so
// that one slow request (a lease revocation waits for its holder) does not
// hold up the others of its CPU. The kernel reuses the entry freed last,
// so a queue that is not busy keeps running on one warm thread.
//
// A queue's threads run on its CPU, and after each reply a thread looks
// for the next request for a moment (yielding the CPU between looks)
// before it sleeps: on a small virtual machine the wake-ups of the request
// round trip, not the daemon's work, are what a request costs
// (docs/architecture.md, "Transport").
//
// FORGET, INTERRUPT, notifications and INIT stay on /dev/fuse, which
// libfuse's loop keeps serving (fuse_channel.h).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"

namespace nosyncfs {

class UringChannel {
 public:
  struct Config {
    int dev_fd = -1;                 // the session's /dev/fuse descriptor
    uint32_t queues = 0;             // the kernel's: one per possible CPU
    uint32_t threads_per_queue = 0;  // entries (and threads) per queue
    size_t payload_bytes = 0;        // at least the kernel's largest request or reply
    // Processes one request (fuse_in_header and arguments, contiguous,
    // writable) and replies to it on this thread: the reply reaches the
    // ring through TakeReply.
    std::function<void(char* request, size_t len)> serve;
  };

  // Creates every ring, buffer and thread, without telling the kernel
  // anything yet: what fails here leaves the mount on /dev/fuse. The
  // error says why.
  static Result<std::unique_ptr<UringChannel>> Prepare(Config config);

  // Parks every entry with the kernel; call after the INIT reply that
  // claimed rings has been written (the kernel refuses REGISTER before
  // it). The result counts the threads whose entry the kernel took; the
  // kernel serves over the rings once every queue has one.
  struct Started {
    uint32_t registered = 0;
    bool every_queue = false;
    std::string first_error;  // empty if every registration was taken
  };
  Started Start();

  // For the writev of a reply: if the thread is serving a ring request and
  // this is its reply (same unique, the first), stores it in the entry, to
  // be committed when the request's processing returns, and returns its
  // length; otherwise -1 (the reply or notification goes to /dev/fuse).
  static ssize_t TakeReply(const struct iovec* iov, int count);

  // Stops and joins every thread and closes the rings (the kernel then
  // cancels whatever was still parked). Requests being processed finish
  // first.
  ~UringChannel();

  uint32_t queues() const { return config_.queues; }
  uint32_t threads() const { return config_.queues * config_.threads_per_queue; }

  // The kernel's queue count: its possible CPUs (/sys/devices/system/cpu/possible).
  static uint32_t PossibleCpus();

  UringChannel(const UringChannel&) = delete;
  UringChannel& operator=(const UringChannel&) = delete;

 private:
  class Entry;
  explicit UringChannel(Config config);

  Config config_;
  int stop_fd_ = -1;  // eventfd: readable once every thread is to stop
  std::vector<std::unique_ptr<Entry>> entries_;
};

}  // namespace nosyncfs
