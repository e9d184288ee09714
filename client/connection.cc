// The conversation with the daemon (protocol.h): the handshake, lease
// requests, and the listener thread that handles what the daemon sends.
//
// Ownership, so that nothing is freed under a user:
// - a Lease belongs to its entry in leases_; whoever erases the entry (a
//   successor's grant, a revocation, the detach, the connection's end)
//   takes the lease out of its File, waits for the File's data calls to
//   drain, and only then frees it or acknowledges it;
// - a File is held by the fd table and by every Pending request and
//   listener step using it (File::holders), and never released while
//   mutex_ is held: the last release deletes it, and with it perhaps the
//   last reference to this Connection.
// A malformed packet ends the connection as the daemon's hang-up does.
#include "client/connection.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "client/counters.h"
#include "client/error.h"
#include "client/file.h"
#include "client/protocol.h"
#include "client/syscalls.h"

namespace nsf {
namespace {

constexpr int kAnswerSeconds = 10;  // for the WELCOME, a GRANT, and a send
constexpr int kMaxFds = 4;          // a WELCOME has two at most; more is an error
constexpr size_t kMaxPacket = sizeof(nsf_msg_grant) + NSF_GRANT_MAX_EXTENTS * sizeof(nsf_extent);

// Never freed, so that nothing is destroyed at exit under a listener.
std::mutex registry_mutex;
std::map<std::string, std::shared_ptr<Connection>>* registry = nullptr;
std::map<dev_t, std::shared_ptr<Connection>>* by_device = nullptr;  // registry_mutex

// Bumped in a forked child: every connection made before is the parent's.
std::atomic<uint64_t> fork_generation{0};

thread_local const Connection* this_listener = nullptr;

std::mutex callback_mutex;
nsf_revoke_fn revoke_callback = nullptr;
void* revoke_callback_arg = nullptr;

void NotifyRevoked(int fd) {
  nsf_revoke_fn fn;
  void* arg;
  {
    std::lock_guard lock(callback_mutex);
    fn = revoke_callback;
    arg = revoke_callback_arg;
  }
  if (fn != nullptr) fn(fd, arg);
}

void CloseAll(const int* fds, int count) {
  for (int i = 0; i < count; ++i) ::close(fds[i]);
}

// One packet, and the descriptors it carried (close-on-exec, at most
// kMaxFds kept; the rest closed).
ssize_t Receive(int socket, void* buf, size_t capacity, int* fds, int* fd_count, int* flags) {
  iovec iov{buf, capacity};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  *fd_count = 0;
  *flags = msg.msg_flags;
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*fd_count < kMaxFds) fds[(*fd_count)++] = fd;
      else ::close(fd);
    }
  }
  return n;
}

// One packet, with fd_to_pass attached if it is not -1.
bool SendPacket(int socket, const void* message, size_t length, int fd_to_pass) {
  iovec iov{const_cast<void*>(message), length};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd_to_pass >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
  }
  ssize_t n;
  do n = sendmsg(socket, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n >= 0 && n != static_cast<ssize_t>(length)) errno = EPROTO;
  return n == static_cast<ssize_t>(length);
}

// The refusals of FORMAT.md, "Order".
std::string RefusalMessage(int error) {
  switch (error) {
    case ENODATA: return "the file has no NF extents to lease";
    case EPERM:
      return "the nosyncfs daemon cut this process off (a revocation was not acknowledged in "
             "time); attach again";
    case EXDEV: return "the descriptor is not of the nosyncfs mount the daemon serves";
    case ESHUTDOWN: return "the nosyncfs daemon is shutting down";
    default: return std::string("the nosyncfs daemon refused a lease: ") + std::strerror(error);
  }
}

}  // namespace

std::shared_ptr<Connection> Connection::For(const std::string& socket_path, dev_t dev) {
  std::lock_guard lock(registry_mutex);
  if (registry == nullptr) registry = new std::map<std::string, std::shared_ptr<Connection>>;
  if (by_device == nullptr) by_device = new std::map<dev_t, std::shared_ptr<Connection>>;
  auto it = registry->find(socket_path);
  std::shared_ptr<Connection> c = it != registry->end() && it->second->Usable()
                                      ? it->second
                                      : Connect(socket_path);
  if (c != nullptr) (*registry)[socket_path] = (*by_device)[dev] = c;
  return c;
}

std::shared_ptr<Connection> Connection::ForDevice(dev_t dev) {
  std::lock_guard lock(registry_mutex);
  if (by_device == nullptr) return nullptr;
  auto it = by_device->find(dev);
  if (it == by_device->end() || !it->second->Usable()) return nullptr;
  return it->second;
}

std::shared_ptr<Connection> Connection::Connect(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path ||
      socket_path.find('\0') != std::string::npos) {
    Fail(EPROTO, "the mount names no usable socket for direct access");
    return nullptr;
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());

  std::shared_ptr<Connection> c(new Connection);
  c->socket_path_ = socket_path;
  c->fork_generation_ = fork_generation.load();
  c->socket_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (c->socket_ < 0) {
    Fail(errno, std::string("socket: ") + std::strerror(errno));
    return nullptr;
  }
  if (connect(c->socket_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int error = errno;
    if (error == EACCES || error == EPERM) {
      Fail(EPERM, "not allowed to connect to the nosyncfs daemon at " + socket_path +
                      ": the mount's direct= option names the users and groups that may");
    } else {
      Fail(error, "cannot connect to the nosyncfs daemon at " + socket_path + ": " +
                      std::strerror(error));
    }
    return nullptr;
  }
  // A daemon that does not answer, or takes no message, in this time is
  // taken for gone; the listener's receive waits without a limit.
  timeval limit{kAnswerSeconds, 0};
  setsockopt(c->socket_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  setsockopt(c->socket_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (!c->Handshake()) return nullptr;
  timeval forever{0, 0};
  setsockopt(c->socket_, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof forever);

  // Signals are the application's: the listener blocks them all.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  bool started = true;
  try {
    std::thread([c] { c->Listen(); }).detach();  // holds c until it ends
  } catch (const std::system_error&) {
    started = false;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!started) {
    Fail(EAGAIN, "cannot start the thread that listens to the nosyncfs daemon");
    return nullptr;
  }
  return c;
}

bool Connection::Handshake() {
  const std::string who = "the nosyncfs daemon at " + socket_path_;
  // A daemon that refuses this process's credentials says so and hangs up
  // as soon as it accepts, perhaps before the HELLO: so the answer is read
  // even when the HELLO could not be sent.
  const nsf_msg_hello hello{NSF_MSG_HELLO, NSF_PROTOCOL_VERSION};
  const bool greeted = SendPacket(socket_, &hello, sizeof hello, -1);
  const int send_error = errno;
  uint8_t answer[64];
  int fds[kMaxFds];
  int fd_count = 0, flags = 0;
  ssize_t n = Receive(socket_, answer, sizeof answer, fds, &fd_count, &flags);
  // A daemon that closed without reading the HELLO leaves ECONNRESET for
  // the first receive to report, ahead of the REFUSE it sent: read again.
  if (n < 0 && errno == ECONNRESET) {
    n = Receive(socket_, answer, sizeof answer, fds, &fd_count, &flags);
  }
  if (n <= 0 && !greeted) {
    Fail(send_error, "cannot greet " + who + ": " + std::strerror(send_error));
    return false;
  }
  if (n <= 0) {
    const int error = n == 0 ? ECONNRESET : errno == EAGAIN ? ETIMEDOUT : errno;
    Fail(error, "no answer from " + who + ": " + std::strerror(error));
    return false;
  }
  uint32_t type = 0;
  if (n >= 4) std::memcpy(&type, answer, sizeof type);
  nsf_msg_refuse refuse;
  if (type == NSF_MSG_REFUSE && n == sizeof refuse) {
    CloseAll(fds, fd_count);
    std::memcpy(&refuse, answer, sizeof refuse);
    const int error = refuse.error > 0 ? refuse.error : EPERM;
    if (error == EPERM) {
      Fail(EPERM, who + " does not allow this process's user or group direct access (mount "
                        "option direct=)");
    } else if (error == EPROTONOSUPPORT) {
      Fail(EPROTONOSUPPORT, who + " does not speak protocol version " +
                                std::to_string(NSF_PROTOCOL_VERSION) + " (a different release?)");
    } else {
      Fail(error, who + " refused the connection: " + std::strerror(error));
    }
    return false;
  }
  nsf_msg_welcome welcome;
  if (type != NSF_MSG_WELCOME || n != sizeof welcome || (flags & (MSG_TRUNC | MSG_CTRUNC))) {
    CloseAll(fds, fd_count);
    Fail(EPROTO, who + " answered the HELLO with something other than a WELCOME");
    return false;
  }
  std::memcpy(&welcome, answer, sizeof welcome);
  if (welcome.version != NSF_PROTOCOL_VERSION) {
    CloseAll(fds, fd_count);
    Fail(EPROTO, who + " speaks protocol version " + std::to_string(welcome.version) +
                     ", this library version " + std::to_string(NSF_PROTOCOL_VERSION));
    return false;
  }
  mapping_ = DeviceMapping::Create(welcome, fds, fd_count);
  return mapping_ != nullptr;
}

Connection::~Connection() {
  if (socket_ >= 0) ::close(socket_);
}

bool Connection::Usable() const {
  return !dead_.load(std::memory_order_acquire) &&
         fork_generation_ == fork_generation.load(std::memory_order_relaxed);
}

bool Connection::Send(const void* message, size_t length, int fd_to_pass) {
  if (SendPacket(socket_, message, length, fd_to_pass)) return true;
  const int error = errno;
  // EBADF: the descriptor to pass is gone, which is the request's problem.
  // Otherwise the daemon is gone, or took nothing within the send timeout:
  // the connection is over. Only its reading half is shut here, which ends
  // the listener's receive; the listener drains every lease before it shuts
  // the rest, which the daemon sees, so that the daemon frees no leased
  // block while a store may still land in it.
  if (!(error == EBADF && fd_to_pass >= 0)) shutdown(socket_, SHUT_RD);
  errno = error;
  return false;
}

void Connection::SendRelease(uint64_t lease, bool wrote) {
  const nsf_msg_release release{NSF_MSG_RELEASE, wrote ? 1u : 0u, lease};
  Send(&release, sizeof release);
}

int Connection::AskForLease(File* f, bool wait, bool fresh) {
  if (wait && this_listener == this) {
    return Fail(EDEADLK, "a revocation callback cannot wait for a lease: its thread is the one "
                         "that receives the answer");
  }
  // close(2) behind the library's back leaves the entry, and the number may
  // name another file by now: pass no descriptor but the attached file's.
  // From the kernel's cached attributes: a GETATTR could wait for an inode
  // lock that a revoker holds while it waits for this listener's next ACK.
  struct statx st;
  if (statx(f->fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &st) != 0 ||
      makedev(st.stx_dev_major, st.stx_dev_minor) != f->dev || st.stx_ino != f->ino) {
    return Fail(EBADF, "the descriptor no longer refers to the file attached to it");
  }
  Pending own{f, wait};
  Pending* p = wait ? &own : new Pending{f, false};
  std::unique_lock lock(mutex_);
  if (!Usable() || f->detached) {
    lock.unlock();
    if (!wait) delete p;
    return Fail(ENOTCONN, "the connection to the nosyncfs daemon is closed: this file's I/O "
                          "goes through FUSE until it is attached again");
  }
  // One question at a time per file: two grants of one file, the second
  // while the first is held, would leave the file with the second, which
  // cannot append (one appender per file). A caller that does not wait
  // needs no second one; one that waits asks once the first is answered,
  // naming the lease it brought (`replaces`).
  auto asking = [&] {
    for (const auto& [number, pending] : pending_) {
      if (pending->file == f) return true;
    }
    return false;
  };
  if (!wait && asking()) {
    lock.unlock();
    delete p;
    return 0;
  }
  if (wait && !answered_.wait_for(lock, std::chrono::seconds(kAnswerSeconds),
                                  [&] { return !asking(); })) {
    return Fail(ETIMEDOUT, "the nosyncfs daemon did not answer a lease request in " +
                               std::to_string(kAnswerSeconds) + " s");
  }
  if (!fresh && f->lease.load() != nullptr) return 0;  // the earlier question brought one
  const uint64_t request = next_request_++;
  // The lease it replaces, if any: the successor takes over its right to
  // append (the listener installs it only once the other has drained).
  const Lease* current = f->lease.load();
  const nsf_msg_lease message{NSF_MSG_LEASE, 0, request, current != nullptr ? current->id : 0};
  // Sent under the mutex: the detach marks f detached under it before the
  // caller may close f->fd, so the descriptor passed is still f's.
  if (!Send(&message, sizeof message, f->fd)) {
    const int error = errno;
    lock.unlock();
    if (!wait) delete p;
    return Fail(error, std::string("cannot ask the nosyncfs daemon for a lease: ") +
                           std::strerror(error));
  }
  pending_[request] = p;
  Hold(f);
  f->next_ask_ns.store(MonotonicNs() + kAskIntervalNs, std::memory_order_relaxed);
  if (!wait) return 0;
  bool answered = answered_.wait_for(lock, std::chrono::seconds(kAnswerSeconds),
                                     [&] { return own.done; });
  // Not in pending_ any more: the listener took it, and answers as soon as
  // the lease it replaces has drained. Otherwise a late grant finds no
  // request, and the listener releases it.
  if (!answered && pending_.erase(request) == 0) {
    answered_.wait(lock, [&] { return own.done; });
    answered = true;
  }
  lock.unlock();
  if (!answered) {
    Unhold(f);
    return Fail(ETIMEDOUT, "the nosyncfs daemon did not answer a lease request in " +
                               std::to_string(kAnswerSeconds) + " s");
  }
  if (own.error == ECONNRESET) return Fail(ECONNRESET, "the nosyncfs daemon closed the connection");
  if (own.error != 0) return Fail(own.error, RefusalMessage(own.error));
  return 0;
}

void Connection::Detach(File* f) {
  if (fork_generation_ != fork_generation.load()) return;  // the parent's: not ours to touch
  std::unique_lock lock(mutex_);
  f->detached = true;
  Lease* lease = f->lease.exchange(nullptr);
  lock.unlock();
  f->WaitForNoStores();
  if (lease == nullptr) return;
  lock.lock();
  auto it = leases_.find(lease->id);
  const bool ours = it != leases_.end() && it->second.lease == lease;
  if (ours) leases_.erase(it);
  lock.unlock();
  if (!ours) return;  // a revocation or the connection's end took it
  SendRelease(lease->id, f->wrote.exchange(false));
  delete lease;
}

void Connection::Listen() {
  this_listener = this;
  std::vector<uint8_t> packet(kMaxPacket);
  for (;;) {
    int fds[kMaxFds];
    int fd_count = 0, flags = 0;
    const ssize_t n = Receive(socket_, packet.data(), packet.size(), fds, &fd_count, &flags);
    if (n <= 0) break;  // hung up, failed, or our own shutdown
    CloseAll(fds, fd_count);  // no message after the WELCOME carries descriptors
    if (fd_count > 0 || (flags & (MSG_TRUNC | MSG_CTRUNC)) ||
        !Dispatch(packet.data(), static_cast<size_t>(n))) {
      break;
    }
  }
  Die();
}

bool Connection::Dispatch(const uint8_t* packet, size_t length) {
  uint32_t type = 0;
  if (length >= sizeof type) std::memcpy(&type, packet, sizeof type);
  switch (type) {
    case NSF_MSG_GRANT: {
      uint64_t request = 0;
      Lease* lease = ParseGrant(packet, length, &request);
      return lease != nullptr && OnGrant(lease, request);
    }
    case NSF_MSG_REFUSE: {
      nsf_msg_refuse refuse;
      if (length != sizeof refuse) return false;
      std::memcpy(&refuse, packet, sizeof refuse);
      if (refuse.request == 0) return false;  // refusing the HELLO now: the daemon is going
      const int error = refuse.error > 0 ? refuse.error : EIO;
      OnRefuse(refuse.request, error);
      // EPERM: the daemon cut this connection off (an ACK came too late)
      // and quarantined its blocks until it closes: close it, so that a new
      // attach starts afresh and the blocks are freed.
      return error != EPERM;
    }
    case NSF_MSG_REVOKE: {
      nsf_msg_revoke revoke;
      if (length != sizeof revoke) return false;
      std::memcpy(&revoke, packet, sizeof revoke);
      OnRevoke(revoke.lease, revoke.reason);
      return true;
    }
  }
  return false;
}

// A GRANT: the header, then exactly `count` extents, sorted, disjoint,
// each inside the device. nullptr if it is anything else.
Lease* Connection::ParseGrant(const uint8_t* packet, size_t length, uint64_t* request) const {
  nsf_msg_grant grant;
  if (length < sizeof grant) return nullptr;
  std::memcpy(&grant, packet, sizeof grant);
  if (grant.count > NSF_GRANT_MAX_EXTENTS || grant.writable > 1 ||
      length != sizeof grant + size_t{grant.count} * sizeof(nsf_extent)) {
    return nullptr;
  }
  auto lease = std::make_unique<Lease>();
  lease->extents.resize(grant.count);
  if (grant.count > 0) {
    std::memcpy(lease->extents.data(), packet + sizeof grant, grant.count * sizeof(nsf_extent));
  }
  const uint64_t device = mapping_->size();
  uint64_t end = 0;
  for (const nsf_extent& e : lease->extents) {
    if (e.length == 0 || e.file_offset < end || e.length > UINT64_MAX - e.file_offset ||
        e.device_offset > device || e.length > device - e.device_offset) {
      return nullptr;
    }
    end = e.file_offset + e.length;
  }
  const uint32_t known = NSF_GRANT_APPEND | NSF_GRANT_SYNCED;
  const bool append = (grant.flags & NSF_GRANT_APPEND) != 0;
  if ((grant.flags & ~known) != 0 || ((grant.flags & NSF_GRANT_SYNCED) && !append) ||
      (grant.slot == 0 && (append || grant.writable == 1)) || grant.slot % 8 != 0 ||
      grant.slot > device || sizeof(nsf_size_slot) > device - grant.slot) {
    return nullptr;
  }
  lease->id = grant.lease;
  lease->writable = grant.writable == 1;
  lease->append = append;
  lease->synced = (grant.flags & NSF_GRANT_SYNCED) != 0;
  lease->size = grant.size;
  lease->mapping = mapping_.get();
  if (grant.slot != 0) {
    lease->slot = reinterpret_cast<nsf_size_slot*>(mapping_->base() + grant.slot);
  }
  for (const nsf_extent& e : lease->extents) {
    if (e.file_offset != lease->nf_prefix) break;
    lease->nf_prefix = e.file_offset + e.length;
  }
  *request = grant.request;
  return lease.release();
}

bool Connection::OnGrant(Lease* lease, uint64_t request) {
  std::unique_lock lock(mutex_);
  if (leases_.count(lease->id) != 0) {  // a lease id granted twice: nonsense
    lock.unlock();
    delete lease;
    return false;
  }
  auto it = pending_.find(request);
  if (it == pending_.end()) {  // its asker gave up waiting, or asked twice
    lock.unlock();
    SendRelease(lease->id, false);
    delete lease;
    return true;
  }
  Pending* p = it->second;
  pending_.erase(it);
  File* f = p->file;
  bool installed = false;
  Lease* previous = nullptr;
  if (!f->detached) {
    if (!f->can_write) lease->writable = false;  // the descriptor's mode bounds the lease
    leases_[lease->id] = Held{f, lease};
    previous = f->lease.exchange(nullptr);
    if (previous != nullptr) {
      leases_.erase(previous->id);
    } else {
      f->lease.store(lease);
      installed = true;
      Count(counters.leases_granted);
    }
  }
  if (previous == nullptr) Answer(p, installed ? 0 : EBADF);
  lock.unlock();

  if (previous != nullptr) {
    // A refresh, or two askers: the successor goes in only once no call
    // uses the previous lease (File::WaitForNoStores says why).
    f->WaitForNoStores();
    SendRelease(previous->id, f->wrote.exchange(false));
    delete previous;
    lock.lock();
    auto held = leases_.find(lease->id);
    installed = held != leases_.end() && !f->detached;
    if (installed) f->lease.store(lease);
    else if (held != leases_.end()) leases_.erase(held);  // detached meanwhile: ours to give back
    if (installed) Count(counters.leases_granted);
    Answer(p, installed ? 0 : EBADF);
    lock.unlock();
  }
  if (!installed) {
    SendRelease(lease->id, f->wrote.exchange(false));
    delete lease;
  }
  Unhold(f);
  return true;
}

void Connection::Answer(Pending* p, int error) {
  p->done = true;
  p->error = error;
  if (!p->waiting) delete p;
  answered_.notify_all();  // its waiter, or one waiting for the file's turn
}

void Connection::OnRefuse(uint64_t request, int error) {
  std::unique_lock lock(mutex_);
  auto it = pending_.find(request);
  if (it == pending_.end()) return;
  Pending* p = it->second;
  pending_.erase(it);
  File* f = p->file;
  Answer(p, error);
  lock.unlock();
  Unhold(f);
}

void Connection::OnRevoke(uint64_t lease_id, uint32_t reason) {
  std::unique_lock lock(mutex_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) {  // released already: nothing of it is in flight
    lock.unlock();
    const nsf_msg_ack ack{NSF_MSG_ACK, 0, lease_id};
    Send(&ack, sizeof ack);
    return;
  }
  const Held held = it->second;
  leases_.erase(it);
  Lease* expected = held.lease;
  held.file->lease.compare_exchange_strong(expected, nullptr);
  const bool tell = !held.file->detached;
  Hold(held.file);
  lock.unlock();

  Count(counters.leases_revoked);
  held.file->WaitForNoStores();
  if (tell) NotifyRevoked(held.file->fd);  // nsf_map users stop storing
  const nsf_msg_ack ack{NSF_MSG_ACK, held.file->wrote.exchange(false) ? 1u : 0u, lease_id};
  Send(&ack, sizeof ack);
  delete held.lease;
  // The file changed; ask for its new extents at once, but not from a
  // daemon that is unmounting.
  if (reason != NSF_REVOKE_SHUTDOWN) AskForLease(held.file, false);
  Unhold(held.file);
}

// The daemon hung up or broke the protocol: every file of the connection
// falls back to FUSE for good, and the mapping goes (docs: "the library
// unmaps on EOF", which lets a restarted daemon reuse quarantined blocks).
void Connection::Die() {
  struct Taken {
    Held held;
    bool tell;
  };
  std::vector<Taken> taken;
  std::vector<File*> askers;
  {
    std::lock_guard lock(mutex_);
    dead_.store(true, std::memory_order_release);
    for (auto& [id, held] : leases_) {
      Lease* expected = held.lease;
      held.file->lease.compare_exchange_strong(expected, nullptr);
      Hold(held.file);
      taken.push_back({held, !held.file->detached});
    }
    leases_.clear();
    for (auto& [request, p] : pending_) {
      askers.push_back(p->file);
      p->done = true;
      p->error = ECONNRESET;
      if (!p->waiting) delete p;
    }
    pending_.clear();
    answered_.notify_all();
  }
  {
    std::lock_guard lock(registry_mutex);
    auto it = registry->find(socket_path_);
    if (it != registry->end() && it->second.get() == this) registry->erase(it);
    std::erase_if(*by_device, [this](const auto& entry) { return entry.second.get() == this; });
  }
  for (Taken& t : taken) {
    t.held.file->WaitForNoStores();
    if (t.tell) NotifyRevoked(t.held.file->fd);
    delete t.held.lease;
    Unhold(t.held.file);
  }
  for (File* f : askers) Unhold(f);
  // Only now, no store being in flight, may the daemon see the close (and
  // free the blocks it kept from reuse for this connection).
  shutdown(socket_, SHUT_RDWR);
  mapping_.reset();  // no lease points into it any more
}

void Connection::SetRevokeCallback(nsf_revoke_fn fn, void* arg) {
  std::lock_guard lock(callback_mutex);
  revoke_callback = fn;
  revoke_callback_arg = arg;
}

void Connection::LockForFork() {
  registry_mutex.lock();
  LockMappingsForFork();
}

void Connection::UnlockAfterFork(bool in_child) {
  if (in_child) fork_generation.fetch_add(1);
  UnlockMappingsAfterFork(in_child);
  registry_mutex.unlock();
}

}  // namespace nsf
