// One connection per mount and process: the socket to the daemon, the
// device mapping its WELCOME handed over, and the listener thread that
// installs grants and carries out revocations.
#ifndef NOSYNCFS_CLIENT_CONNECTION_H
#define NOSYNCFS_CLIENT_CONNECTION_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "client/mapping.h"
#include "client/nosyncfs.h"

namespace nsf {

struct File;
struct Lease;

class Connection {
 public:
  // The live connection to the daemon listening on socket_path, made on
  // first use (HELLO, WELCOME, mapping) and kept while the daemon keeps it;
  // remembered as the connection of the mount with device number `dev`.
  // nullptr after a failed call (errno, nsf_errmsg).
  static std::shared_ptr<Connection> For(const std::string& socket_path, dev_t dev);
  // The live connection of the mount with device number `dev`, if a file of
  // it was attached before: no request to the file system. Else nullptr.
  static std::shared_ptr<Connection> ForDevice(dev_t dev);
  ~Connection();

  // False once the daemon hung up or sent nonsense (its files then go
  // through FUSE for good), and in a forked child, whose copy of the socket
  // is the parent's conversation.
  bool Usable() const;

  // Sends LEASE with f's descriptor. wait: waits for the answer; 0 once the
  // lease is installed, else a failed call (ENODATA: no NF extents). Not
  // waiting: 0 once asked; the listener installs whatever grant comes.
  // fresh: a new lease even if f holds one (a refresh); otherwise waiting
  // ends with whatever lease f holds once its turn comes.
  int AskForLease(File* f, bool wait, bool fresh = true);

  // For the detach, f being out of the fd table: no lease is installed in
  // f after this, and the one it had is given back (RELEASE).
  void Detach(File* f);

  static void SetRevokeCallback(nsf_revoke_fn fn, void* arg);

  // Around fork(2): the child must not inherit the registry's lock taken,
  // and must stop using the parent's connections.
  static void LockForFork();
  static void UnlockAfterFork(bool in_child);

 private:
  struct Pending {  // a LEASE sent, its answer not yet in
    File* file;
    bool waiting;  // a thread waits for it; else it is the listener's to free
    bool done = false;
    int error = 0;
  };
  struct Held {  // the entry owns the lease: whoever erases it frees it
    File* file;
    Lease* lease;
  };

  Connection() = default;
  static std::shared_ptr<Connection> Connect(const std::string& socket_path);
  bool Handshake();

  bool Send(const void* message, size_t length, int fd_to_pass = -1);
  void SendRelease(uint64_t lease, bool wrote);
  void Listen();
  bool Dispatch(const uint8_t* packet, size_t length);
  Lease* ParseGrant(const uint8_t* packet, size_t length, uint64_t* request) const;
  bool OnGrant(Lease* lease, uint64_t request);
  void Answer(Pending* p, int error);  // with mutex_ held
  void OnRefuse(uint64_t request, int error);
  void OnRevoke(uint64_t lease, uint32_t reason);
  void Die();

  std::string socket_path_;
  int socket_ = -1;
  uint64_t fork_generation_ = 0;
  std::unique_ptr<DeviceMapping> mapping_;
  std::atomic<bool> dead_{false};

  std::mutex mutex_;  // guards everything below, and File::detached
  std::condition_variable answered_;
  uint64_t next_request_ = 1;  // 0 is the HELLO's
  std::map<uint64_t, Pending*> pending_;
  std::unordered_map<uint64_t, Held> leases_;
};

}  // namespace nsf

#endif  // NOSYNCFS_CLIENT_CONNECTION_H
