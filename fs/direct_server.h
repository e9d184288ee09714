// DirectServer: the daemon's end of direct access (docs/semantics.md,
// "Direct access"; the messages are in client/FORMAT.md).
//
// It listens on a Unix socket that only the users and groups of the
// direct= mount option may use, hands each client the device (to map) and
// hands out layout leases: a file's NF extents and size, which the client
// then reads and writes in place. As the Vfs's LayoutLeases it revokes a
// lease before the file's mapping or size changes in a way the lease does
// not survive, and waits for the holder's acknowledgement, at most the
// lease-break time. A holder that does not answer in time is cut off: it
// gets no more leases, and every block it was leased is quarantined
// (Volume::Quarantine) until its connection closes, so no other file can
// ever be given a block it may still be storing into.
//
// Threads: one reads every connection (and never takes a Vfs lock, so an
// acknowledgement always gets through while a change waits for it); one
// worker answers lease requests and notes direct writes (both may wait for
// a file's lock). Revocations are sent and waited for by the thread making
// the change.
//
// The daemon must be able to die at any moment (docs/semantics.md, "The
// daemon"), so nothing here makes a call on its own mount that the kernel
// would have to ask the daemon to finish: a lease request's descriptor is
// looked at without a request (statx with AT_STATX_DONT_SYNC) and closed
// at once by the reader, never queued (every open of the mount is
// FOPEN_NOFLUSH, so the close sends nothing); the mount's device number
// comes from /proc/self/mountinfo, not from a stat of the mount point; and
// the kernel learns of direct writes by an attribute invalidation and the
// new mtime (FUSE_AUTO_INVAL_DATA drops the pages in the reader's own
// context), never by a page invalidation, which waits for page locks that
// a read in flight to the daemon holds.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "fs/layout_leases.h"

namespace nosyncfs {

class Vfs;

struct DirectAccessOptions {
  // Who may connect: any of these users, or a member of any of these groups.
  std::vector<uid_t> users;
  std::vector<gid_t> groups;
  // How long a holder has to acknowledge a revocation (lease_break=).
  uint32_t lease_break_ms = 5000;
  // Where the socket goes (created 0755 if missing).
  std::string run_dir = "/run/nosyncfs";
  bool enabled() const { return !users.empty() || !groups.empty(); }
};

class DirectServer final : public LayoutLeases {
 public:
  // Creates the socket RUN_DIR/UUID.sock (mode 0660, owned by the first
  // user and group allowed) and starts serving. `mountpoint` (as
  // /proc/self/mountinfo shows it) is looked up there on the first lease
  // request, to learn the mount's device number: a file descriptor from
  // another file system gets no lease.
  static Result<std::unique_ptr<DirectServer>> Start(Vfs* vfs, const DirectAccessOptions& options,
                                                     const std::string& uuid,
                                                     const std::string& mountpoint);
  // Revokes every lease (without waiting: nothing changes any more), hangs
  // up on every client and removes the socket.
  ~DirectServer() override;

  const std::string& socket_path() const { return socket_path_; }

  bool Leased(uint64_t ino) const override;
  void BeforeLayoutChange(uint64_t ino, const NfLayout& after) override;
  void RevokeWriteLeases() override;
  bool WriteLeased(uint64_t ino) const override;
  DirectWrites TakeDirectWrites(uint64_t ino) override;
  void EndAppends(uint64_t ino) override;
  void SizeFolded(uint64_t ino) override;

  // lease_break= changed by a remount: revocations from now on, and
  // clients welcomed from now on, get the new time. Thread-safe.
  void set_lease_break_ms(uint32_t ms) { lease_break_ms_.store(ms, std::memory_order_relaxed); }
  // Who may connect (direct=), fixed at mount.
  const DirectAccessOptions& options() const { return options_; }

  // "key value" lines for user.nosyncfs.stats.
  std::string StatsText() const;

 private:
  struct Peer;
  struct Connection;
  struct Lease;
  struct LeaseRequest;
  // A file's size slot (journal/size_slots.h), while write leases use it.
  struct Slot {
    uint32_t index = 0;
    uint64_t appender = 0;     // the lease that may append, or 0
    uint64_t seen_writes = 0;  // the slot's write count when last asked
    // The appender's connection, if it was cut off: it may store into the
    // slot until it closes.
    std::shared_ptr<Connection> cut_off;
  };

  DirectServer(Vfs* vfs, DirectAccessOptions options, std::string mountpoint);
  Status Listen(const std::string& uuid);
  void ServeConnections();
  void Accept();
  // Reads one message; false if the connection must close.
  bool Receive(const std::shared_ptr<Connection>& conn);
  bool Welcome(Connection& conn);
  void CloseConnection(const std::shared_ptr<Connection>& conn, const char* why);
  void RunWorker();
  void Post(std::function<void()> job);
  // After a holder is done with a lease (ACK, RELEASE, or its connection
  // closed): if it may have written, the file's mtime and the kernel's
  // attributes follow.
  void PostAfterDirectUse(const std::shared_ptr<Connection>& conn, uint64_t ino, bool wrote);
  // Under mu_: whether a write lease of ino is left.
  bool WriteLeasedLocked(uint64_t ino) const;
  // Under mu_ (in the grant): the slot of ino, claimed if it has none;
  // nullptr when every slot is taken.
  Slot* SlotForLocked(uint64_t ino, uint64_t size);
  void Grant(const LeaseRequest& request);
  // Reads the peer's credentials; whether direct= lets it in.
  bool PeerAllowed(int fd, Peer* peer) const;
  // Sends REVOKE for each lease in `ids` (lock holds mu_, and is released
  // for the sends) and waits, at most the lease-break time, for each to be
  // acknowledged, released or closed; holders that did not are cut off.
  void RevokeAndWait(std::unique_lock<std::mutex> lock, const std::vector<uint64_t>& ids);
  // Under mu_: drops a lease from both indexes.
  void DropLeaseLocked(uint64_t lease_id);
  // Under mu_: no more leases for conn; its leased blocks are quarantined.
  void CutOffLocked(const std::shared_ptr<Connection>& conn);

  Vfs* vfs_;
  const DirectAccessOptions options_;
  const std::string mountpoint_;
  std::atomic<uint32_t> lease_break_ms_;
  std::string socket_path_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop the reader
  dev_t mount_dev_ = 0;  // worker only; 0 until learned
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable acked_cv_;  // a lease acknowledged or gone
  std::map<int, std::shared_ptr<Connection>> connections_;  // by fd; reader only
  std::map<uint64_t, std::unique_ptr<Lease>> leases_;       // by id; mu_
  std::multimap<uint64_t, uint64_t> leases_by_ino_;         // ino -> id; mu_
  std::atomic<size_t> lease_count_{0};
  std::map<uint64_t, Slot> slots_;                  // by ino; mu_
  std::atomic<size_t> slot_count_{0};
  std::multimap<uint64_t, uint32_t> retired_slots_; // connection id -> slot; mu_
  uint64_t next_lease_ = 1;       // mu_
  uint64_t next_connection_ = 1;  // reader only

  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<std::function<void()>> work_;  // work_mu_

  std::atomic<uint64_t> connections_total_{0}, grants_{0}, revocations_{0}, cutoffs_{0};

  std::thread reader_;
  std::thread worker_;
};

}  // namespace nosyncfs
