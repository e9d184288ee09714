#include "fs/direct_server.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include "client/protocol.h"
#include "fs/credentials.h"
#include "fs/mountinfo.h"
#include "fs/vfs.h"

namespace nosyncfs {

// The credentials of a client, from its socket when it connected.
struct DirectServer::Peer {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::vector<gid_t> groups;  // supplementary
};

struct DirectServer::Connection {
  Connection(uint64_t id, int fd, Peer peer)
      : id(id), fd(fd), uid(peer.uid), pid(peer.pid), peer(std::move(peer)) {}
  // Closed only when the last holder lets go: a revoker may still send on
  // it after the reader has dropped it, and must not reach a reused fd.
  ~Connection() { ::close(fd); }
  const uint64_t id;
  const int fd;
  const uid_t uid;
  const pid_t pid;
  const Peer peer;
  bool welcomed = false;  // reader only
  bool cut_off = false;   // mu_
  bool closed = false;    // mu_
};

struct DirectServer::Lease {
  uint64_t id = 0;
  uint64_t ino = 0;
  bool writable = false;
  bool append = false;  // NSF_GRANT_APPEND
  std::shared_ptr<Connection> conn;
  NfLayout layout;  // what was granted
  bool acked = false;  // mu_
};

// What the client's descriptor of the file says; the descriptor itself is
// closed by the reader as soon as this is read.
struct DirectServer::LeaseRequest {
  std::shared_ptr<Connection> conn;
  uint64_t request = 0;
  uint64_t replaces = 0;  // the client's lease of the file it replaces
  int error = 0;  // the descriptor could not be looked at (EBADF)
  dev_t dev = 0;
  uint64_t ino = 0;
  mode_t type = 0;    // S_IFMT bits
  int open_flags = 0;  // fcntl(F_GETFL)
};

namespace {

// A client as the writer of a file, for its set-ID bits.
class PeerModifier final : public ProcessModifier {
 public:
  explicit PeerModifier(const std::vector<gid_t>& groups, pid_t pid, gid_t gid)
      : ProcessModifier(pid, gid, std::nullopt), groups_(groups) {}

 private:
  std::vector<gid_t> SupplementaryGroups() const override { return groups_; }
  const std::vector<gid_t>& groups_;
};

constexpr int kMaxFdsPerMessage = 4;
// The largest message a client sends (all are small and fixed-size).
constexpr size_t kMaxClientMessage = 64;

// One packet, with `nfds` descriptors attached. Waits for room in the
// client's queue until `deadline` at most (the kernel queues only a few
// packets per socket); none: does not wait. A client that takes nothing in
// that time is not listening.
bool SendPacket(int fd, const void* data, size_t len, const int* fds = nullptr, int nfds = 0,
                std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt) {
  iovec iov{const_cast<void*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return n == static_cast<ssize_t>(len);
    if (errno == EINTR) continue;
    if (errno != EAGAIN || !deadline) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        *deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLOUT, 0};
    (void)::poll(&p, 1, static_cast<int>(left.count()));
  }
}

template <typename Msg>
bool Send(int fd, const Msg& m) {
  return SendPacket(fd, &m, sizeof(m));
}

bool SendRefuse(int fd, uint64_t request, int error) {
  nsf_msg_refuse m{NSF_MSG_REFUSE, error, request};
  return Send(fd, m);
}

// Every byte the lease let its holder use is still mapped, NF, at the same
// device offset, and inside the size.
bool Honours(const NfLayout& after, const NfLayout& leased) {
  if (after.size < leased.size) return false;
  size_t j = 0;
  for (const NfLayout::Extent& x : leased.extents) {
    for (uint64_t pos = x.file_offset, end = x.file_offset + x.length; pos < end;) {
      while (j < after.extents.size() &&
             after.extents[j].file_offset + after.extents[j].length <= pos) {
        ++j;
      }
      if (j == after.extents.size() || after.extents[j].file_offset > pos) return false;
      const NfLayout::Extent& y = after.extents[j];
      if (y.device_offset + (pos - y.file_offset) != x.device_offset + (pos - x.file_offset)) {
        return false;
      }
      pos = std::min(end, y.file_offset + y.length);
    }
  }
  return true;
}

// Looks at a descriptor a client passed without asking the file system
// anything (AT_STATX_DONT_SYNC: the kernel's cached attributes; st_dev,
// st_ino and the type never change), then closes it.
void InspectAndClose(int fd, int* error, dev_t* dev, uint64_t* ino, mode_t* type, int* flags) {
  struct statx stx {};
  const bool ok = ::statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO,
                          &stx) == 0;
  *flags = ::fcntl(fd, F_GETFL);
  ::close(fd);
  *error = ok && *flags >= 0 ? 0 : EBADF;
  *dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  *ino = stx.stx_ino;
  *type = stx.stx_mode & S_IFMT;
}

// The device number of the nosyncfs mount at `mountpoint`, 0 if none.
dev_t MountDevice(const std::string& mountpoint) {
  dev_t dev = 0;
  for (const MountInfoEntry& e : ReadMountInfo()) {
    unsigned major_number = 0, minor_number = 0;
    if (e.mount_point != mountpoint || e.fstype != "fuse.nosyncfs" ||
        std::sscanf(e.dev.c_str(), "%u:%u", &major_number, &minor_number) != 2) {
      continue;
    }
    dev = makedev(major_number, minor_number);  // the last one is on top
  }
  return dev;
}

// A layout as a lease that may not append sees it: inside the size.
NfLayout ClippedToSize(const NfLayout& whole) {
  NfLayout clipped;
  clipped.size = whole.size;
  for (const NfLayout::Extent& e : whole.extents) {
    if (e.file_offset >= whole.size) break;
    NfLayout::Extent c = e;
    c.length = std::min(e.length, whole.size - e.file_offset);
    clipped.extents.push_back(c);
  }
  return clipped;
}

uint32_t PersistenceOf(PersistGranularity g) {
  switch (g) {
    case PersistGranularity::kCacheLine: return NSF_PERSIST_CACHE_LINE;
    case PersistGranularity::kPage: return NSF_PERSIST_PAGE;
    case PersistGranularity::kStrictEmulation: return NSF_PERSIST_STRICT;
  }
  return NSF_PERSIST_PAGE;
}

}  // namespace

DirectServer::DirectServer(Vfs* vfs, DirectAccessOptions options, std::string mountpoint)
    : vfs_(vfs),
      options_(std::move(options)),
      mountpoint_(std::move(mountpoint)),
      lease_break_ms_(options_.lease_break_ms) {}

Result<std::unique_ptr<DirectServer>> DirectServer::Start(Vfs* vfs,
                                                          const DirectAccessOptions& options,
                                                          const std::string& uuid,
                                                          const std::string& mountpoint) {
  if (vfs->read_only()) {
    return Status::Error(EROFS, "direct access needs a read-write mount");
  }
  std::unique_ptr<DirectServer> server(new DirectServer(vfs, options, mountpoint));
  NSF_RETURN_IF_ERROR(server->Listen(uuid));
  server->reader_ = std::thread([s = server.get()] { s->ServeConnections(); });
  server->worker_ = std::thread([s = server.get()] { s->RunWorker(); });
  return server;
}

Status DirectServer::Listen(const std::string& uuid) {
  if (::mkdir(options_.run_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus("direct access: cannot create " + options_.run_dir);
  }
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return ErrnoStatus("direct access: eventfd");
  listen_fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) return ErrnoStatus("direct access: socket");
  // UUID.sock, unless a live daemon of a copy of this device has it.
  for (const std::string& name : {uuid + ".sock", uuid + "-" + std::to_string(getpid()) + ".sock"}) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = options_.run_dir + "/" + name;
    if (path.size() >= sizeof(addr.sun_path)) {
      return Status::Error(ENAMETOOLONG, "direct access: socket path too long: " + path);
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 &&
                ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (probe >= 0) ::close(probe);
    if (live) continue;
    ::unlink(path.c_str());  // left by a daemon that died
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return ErrnoStatus("direct access: bind " + path);
    }
    socket_path_ = path;
    break;
  }
  if (socket_path_.empty()) return Status::Error(EADDRINUSE, "direct access: no free socket name");
  // One user or one group: the socket's own permissions keep everyone else
  // out as well. Several: only the credential check does.
  const size_t principals = options_.users.size() + options_.groups.size();
  uid_t owner = options_.users.empty() ? 0 : options_.users.front();
  gid_t group = options_.groups.empty() ? 0 : options_.groups.front();
  mode_t mode = principals > 1 ? 0666 : options_.users.empty() ? 0660 : 0600;
  if (::chown(socket_path_.c_str(), owner, group) != 0 || ::chmod(socket_path_.c_str(), mode) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    Status st = ErrnoStatus("direct access: " + socket_path_);
    ::unlink(socket_path_.c_str());
    return st;
  }
  spdlog::info("direct access on {} (lease break {} ms)", socket_path_,
               lease_break_ms_.load(std::memory_order_relaxed));
  return Status::Ok();
}

DirectServer::~DirectServer() {
  stopping_ = true;
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
  if (reader_.joinable()) reader_.join();
  {
    std::lock_guard lock(mu_);
    for (auto& [id, lease] : leases_) {
      nsf_msg_revoke m{NSF_MSG_REVOKE, NSF_REVOKE_SHUTDOWN, id};
      (void)Send(lease->conn->fd, m);
    }
    leases_.clear();
    leases_by_ino_.clear();
    lease_count_ = 0;
    for (auto& [fd, conn] : connections_) {
      conn->closed = true;
      ::shutdown(fd, SHUT_RDWR);
    }
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  connections_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

bool DirectServer::Leased(uint64_t ino) const {
  if (lease_count_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard lock(mu_);
  return leases_by_ino_.count(ino) > 0;
}

bool DirectServer::WriteLeasedLocked(uint64_t ino) const {
  for (auto [it, end] = leases_by_ino_.equal_range(ino); it != end; ++it) {
    if (leases_.at(it->second)->writable) return true;
  }
  return false;
}

bool DirectServer::WriteLeased(uint64_t ino) const {
  // Every write lease has its file's slot (the grant claims it first).
  if (slot_count_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard lock(mu_);
  return slots_.count(ino) > 0;
}

DirectWrites DirectServer::TakeDirectWrites(uint64_t ino) {
  DirectWrites w;
  if (slot_count_.load(std::memory_order_acquire) == 0) return w;
  std::lock_guard lock(mu_);
  auto it = slots_.find(ino);
  if (it == slots_.end()) return w;
  SizeSlots& slots = vfs_->volume().size_slots();
  w.slotted = true;
  w.published_size = slots.PublishedSize(it->second.index);
  const uint64_t writes = slots.WriteCount(it->second.index);
  w.wrote = writes != it->second.seen_writes;
  it->second.seen_writes = writes;
  return w;
}

void DirectServer::EndAppends(uint64_t ino) {
  std::unique_lock lock(mu_);
  auto it = slots_.find(ino);
  if (it == slots_.end() || it->second.appender == 0) return;
  RevokeAndWait(std::move(lock), {it->second.appender});
}

void DirectServer::SizeFolded(uint64_t ino) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(ino);
  if (it == slots_.end() || WriteLeasedLocked(ino)) return;
  const Slot slot = it->second;
  slots_.erase(it);
  slot_count_.fetch_sub(1, std::memory_order_release);
  SizeSlots& slots = vfs_->volume().size_slots();
  // A holder cut off may store into its slot still: unnamed, the slot
  // says nothing to recovery, and no other file gets it until the holder's
  // connection closes (if it has closed already, it stores nothing).
  const bool retire = slot.cut_off != nullptr && !slot.cut_off->closed;
  Status st = retire ? slots.Retire(slot.index) : slots.Free(slot.index);
  if (retire) retired_slots_.emplace(slot.cut_off->id, slot.index);
  if (!st.ok()) spdlog::error("direct access: cannot free the size slot of inode {}: {}", ino, st.ToString());
}

DirectServer::Slot* DirectServer::SlotForLocked(uint64_t ino, uint64_t size) {
  auto it = slots_.find(ino);
  if (it != slots_.end()) return &it->second;
  auto claimed = vfs_->volume().size_slots().Claim(ino, size);
  if (!claimed.ok()) {
    spdlog::error("direct access: cannot claim a size slot: {}", claimed.status().ToString());
    return nullptr;
  }
  if (!claimed->has_value()) return nullptr;
  Slot slot;
  slot.index = **claimed;
  slot.seen_writes = vfs_->volume().size_slots().WriteCount(slot.index);
  slot_count_.fetch_add(1, std::memory_order_release);
  return &slots_.emplace(ino, slot).first->second;
}

void DirectServer::BeforeLayoutChange(uint64_t ino, const NfLayout& after) {
  std::unique_lock lock(mu_);
  std::vector<uint64_t> broken;
  for (auto [it, end] = leases_by_ino_.equal_range(ino); it != end; ++it) {
    const Lease& lease = *leases_.at(it->second);
    if (!Honours(after, lease.layout)) broken.push_back(lease.id);
  }
  RevokeAndWait(std::move(lock), broken);
}

void DirectServer::RevokeWriteLeases() {
  std::unique_lock lock(mu_);
  std::vector<uint64_t> writable;
  for (const auto& [id, lease] : leases_) {
    if (lease->writable) writable.push_back(id);
  }
  RevokeAndWait(std::move(lock), writable);
}

void DirectServer::RevokeAndWait(std::unique_lock<std::mutex> lock,
                                 const std::vector<uint64_t>& broken) {
  if (broken.empty()) return;
  std::vector<std::shared_ptr<Connection>> holders;
  for (uint64_t id : broken) holders.push_back(leases_.at(id)->conn);
  // The sends may wait for room in a client's queue: not under mu_, which
  // the reader needs for the ACKs that make room.
  lock.unlock();
  const uint32_t lease_break_ms = lease_break_ms_.load(std::memory_order_relaxed);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(lease_break_ms);
  std::vector<std::shared_ptr<Connection>> unreachable;
  for (size_t i = 0; i < broken.size(); ++i) {
    revocations_.fetch_add(1, std::memory_order_relaxed);
    nsf_msg_revoke m{NSF_MSG_REVOKE, NSF_REVOKE_LAYOUT, broken[i]};
    // A holder we cannot tell may be storing still: cut it off at once.
    if (!SendPacket(holders[i]->fd, &m, sizeof(m), nullptr, 0, deadline)) {
      unreachable.push_back(holders[i]);
    }
  }
  lock.lock();
  for (auto& conn : unreachable) CutOffLocked(conn);
  auto settled = [&] {
    for (uint64_t id : broken) {
      auto it = leases_.find(id);
      if (it != leases_.end() && !it->second->acked && !it->second->conn->closed) return false;
    }
    return true;
  };
  acked_cv_.wait_until(lock, deadline, settled);
  for (uint64_t id : broken) {
    auto it = leases_.find(id);
    if (it == leases_.end()) continue;  // released, closed or cut off meanwhile
    if (it->second->acked || it->second->conn->closed) {
      DropLeaseLocked(id);
    } else {
      std::shared_ptr<Connection> conn = it->second->conn;
      spdlog::warn(
          "direct access: pid {} (uid {}) did not acknowledge the revocation of its lease on "
          "inode {} within {} ms: cut off",
          conn->pid, conn->uid, it->second->ino, lease_break_ms);
      CutOffLocked(conn);
    }
  }
}

void DirectServer::DropLeaseLocked(uint64_t lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  if (it->second->append) {
    auto slot = slots_.find(it->second->ino);
    if (slot != slots_.end() && slot->second.appender == lease_id) slot->second.appender = 0;
  }
  for (auto [i, end] = leases_by_ino_.equal_range(it->second->ino); i != end; ++i) {
    if (i->second == lease_id) {
      leases_by_ino_.erase(i);
      break;
    }
  }
  leases_.erase(it);
  lease_count_.fetch_sub(1, std::memory_order_release);
}

void DirectServer::CutOffLocked(const std::shared_ptr<Connection>& conn) {
  // Closed: its leases are gone, and so is the process's use of them.
  if (conn->cut_off || conn->closed) return;
  conn->cut_off = true;
  cutoffs_.fetch_add(1, std::memory_order_relaxed);
  std::vector<BlockRun> runs;
  std::vector<uint64_t> ids;
  std::vector<uint64_t> appended;  // files it may have appended to
  for (auto& [id, lease] : leases_) {
    if (lease->conn != conn) continue;
    ids.push_back(id);
    for (const NfLayout::Extent& e : lease->layout.extents) runs.push_back({e.device_block, e.blocks});
    if (lease->append) {
      slots_.at(lease->ino).cut_off = conn;
      appended.push_back(lease->ino);
    }
  }
  uint64_t blocks = 0;
  for (const BlockRun& r : runs) blocks += r.len;
  vfs_->volume().Quarantine(conn->id, runs);
  for (uint64_t id : ids) DropLeaseLocked(id);
  // What it appended up to now counts; its slots go once folded.
  for (uint64_t ino : appended) PostAfterDirectUse(conn, ino, true);
  spdlog::warn("direct access: {} blocks leased to pid {} stay quarantined until it closes its "
               "connection",
               blocks, conn->pid);
}

// ---- the reader ------------------------------------------------------------------

void DirectServer::ServeConnections() {
  std::vector<pollfd> fds;
  std::vector<std::shared_ptr<Connection>> polled;
  while (!stopping_) {
    fds.assign({{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}});
    polled.clear();
    for (auto& [fd, conn] : connections_) {
      fds.push_back({fd, POLLIN, 0});
      polled.push_back(conn);
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("direct access: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents & POLLIN) Accept();
    for (size_t i = 0; i < polled.size(); ++i) {
      const short ev = fds[i + 2].revents;
      if (ev == 0) continue;
      if ((ev & POLLIN) ? !Receive(polled[i]) : true) CloseConnection(polled[i], nullptr);
    }
  }
}

bool DirectServer::PeerAllowed(int fd, Peer* peer) const {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  peer->uid = cred.uid;
  peer->gid = cred.gid;
  peer->pid = cred.pid;
  std::vector<gid_t>& groups = peer->groups;
  groups.resize(64);
  len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) {
    if (errno != ERANGE) return false;
    groups.resize(len / sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) return false;
  }
  groups.resize(len / sizeof(gid_t));
  auto listed = [](const auto& v, auto x) { return std::find(v.begin(), v.end(), x) != v.end(); };
  if (listed(options_.users, cred.uid) || listed(options_.groups, cred.gid)) return true;
  for (gid_t g : groups) {
    if (listed(options_.groups, g)) return true;
  }
  return false;
}

void DirectServer::Accept() {
  int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  Peer peer;
  if (!PeerAllowed(fd, &peer)) {
    spdlog::info("direct access: refused pid {} (uid {}): not allowed by direct=", peer.pid,
                 peer.uid);
    (void)SendRefuse(fd, 0, EPERM);
    ::close(fd);
    return;
  }
  connections_total_.fetch_add(1, std::memory_order_relaxed);
  connections_[fd] = std::make_shared<Connection>(next_connection_++, fd, std::move(peer));
}

bool DirectServer::Receive(const std::shared_ptr<Connection>& conn) {
  alignas(uint64_t) char buf[kMaxClientMessage];
  iovec iov{buf, sizeof(buf)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(conn->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;  // the client hung up
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.push_back(fd);
    }
  }
  // Only LEASE carries a descriptor, and only one; any other is closed.
  int file_fd = -1;
  uint32_t type = 0;
  if (n >= 4) std::memcpy(&type, buf, sizeof(type));
  if (type == NSF_MSG_LEASE && fds.size() == 1) file_fd = fds[0];
  for (int fd : fds) {
    if (fd != file_fd) ::close(fd);
  }
  auto malformed = [&](const char* what) {
    if (file_fd >= 0) ::close(file_fd);
    spdlog::warn("direct access: pid {} sent {}; hanging up", conn->pid, what);
    return false;
  };
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return malformed("an oversized message");
  const size_t size = static_cast<size_t>(n);
  switch (type) {
    case NSF_MSG_HELLO: {
      nsf_msg_hello m;
      if (size != sizeof(m) || conn->welcomed) return malformed("a bad HELLO");
      std::memcpy(&m, buf, sizeof(m));
      if (m.version != NSF_PROTOCOL_VERSION) {
        spdlog::warn("direct access: pid {} speaks protocol {}, not {}", conn->pid, m.version,
                     NSF_PROTOCOL_VERSION);
        (void)SendRefuse(conn->fd, 0, EPROTONOSUPPORT);
        return false;
      }
      return Welcome(*conn);
    }
    case NSF_MSG_LEASE: {
      nsf_msg_lease m;
      if (size != sizeof(m) || !conn->welcomed || file_fd < 0) return malformed("a bad LEASE");
      std::memcpy(&m, buf, sizeof(m));
      LeaseRequest r{conn, m.request, m.replaces};
      InspectAndClose(file_fd, &r.error, &r.dev, &r.ino, &r.type, &r.open_flags);
      Post([this, r = std::move(r)] { Grant(r); });
      return true;
    }
    case NSF_MSG_ACK: {
      nsf_msg_ack m;
      if (size != sizeof(m)) return malformed("a bad ACK");
      std::memcpy(&m, buf, sizeof(m));
      uint64_t ino = 0;
      bool writable = false;
      {
        std::lock_guard lock(mu_);
        auto it = leases_.find(m.lease);
        if (it == leases_.end() || it->second->conn != conn) return true;  // too late
        it->second->acked = true;
        ino = it->second->ino;
        writable = it->second->writable;
        acked_cv_.notify_all();
      }
      // After the change the revocation was for (the worker waits for the
      // file's lock).
      if (writable) PostAfterDirectUse(conn, ino, m.wrote != 0);
      return true;
    }
    case NSF_MSG_RELEASE: {
      nsf_msg_release m;
      if (size != sizeof(m)) return malformed("a bad RELEASE");
      std::memcpy(&m, buf, sizeof(m));
      uint64_t ino = 0;
      bool writable = false;
      {
        std::lock_guard lock(mu_);
        auto it = leases_.find(m.lease);
        if (it == leases_.end() || it->second->conn != conn) return true;  // already revoked
        ino = it->second->ino;
        writable = it->second->writable;
        DropLeaseLocked(m.lease);
        acked_cv_.notify_all();
      }
      if (writable) PostAfterDirectUse(conn, ino, m.wrote != 0);
      return true;
    }
    default:
      return malformed("an unknown message");
  }
}

bool DirectServer::Welcome(Connection& conn) {
  const Device& device = vfs_->volume().device();
  const Device::SharedFds shared = device.shared_fds();
  nsf_msg_welcome m{NSF_MSG_WELCOME, NSF_PROTOCOL_VERSION, device.size(),
                    PersistenceOf(device.granularity()),
                    lease_break_ms_.load(std::memory_order_relaxed)};
  int fds[2] = {shared.map_fd, shared.persist_fd};
  if (!SendPacket(conn.fd, &m, sizeof(m), fds, shared.persist_fd >= 0 ? 2 : 1)) return false;
  conn.welcomed = true;
  return true;
}

void DirectServer::CloseConnection(const std::shared_ptr<Connection>& conn, const char*) {
  std::vector<uint64_t> written;  // files it held write leases on
  {
    std::lock_guard lock(mu_);
    conn->closed = true;
    std::vector<uint64_t> ids;
    for (auto& [id, lease] : leases_) {
      if (lease->conn == conn) {
        ids.push_back(id);
        if (lease->writable) written.push_back(lease->ino);
      }
    }
    for (uint64_t id : ids) DropLeaseLocked(id);
    for (auto [it, end] = retired_slots_.equal_range(conn->id); it != end;) {
      vfs_->volume().size_slots().Reuse(it->second);
      it = retired_slots_.erase(it);
    }
    if (conn->cut_off) {
      vfs_->volume().LiftQuarantine(conn->id);
      spdlog::info("direct access: pid {} closed its connection; its quarantine is lifted",
                   conn->pid);
    }
    acked_cv_.notify_all();
  }
  ::shutdown(conn->fd, SHUT_RDWR);
  connections_.erase(conn->fd);
  // It went without saying whether it wrote (it may have died mid-write):
  // as if it had.
  for (uint64_t ino : written) PostAfterDirectUse(conn, ino, true);
}

// ---- the worker ------------------------------------------------------------------

void DirectServer::Post(std::function<void()> job) {
  {
    std::lock_guard lock(work_mu_);
    work_.push_back(std::move(job));
  }
  work_cv_.notify_one();
}

void DirectServer::PostAfterDirectUse(const std::shared_ptr<Connection>& conn, uint64_t ino,
                                      bool wrote) {
  Post([this, conn, ino, wrote] {
    vfs_->AfterDirectWrites(ino, PeerModifier(conn->peer.groups, conn->pid, conn->peer.gid),
                            wrote);
  });
}

void DirectServer::RunWorker() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(work_mu_);
      work_cv_.wait(lock, [&] { return !work_.empty() || stopping_; });
      if (work_.empty()) return;
      job = std::move(work_.front());
      work_.pop_front();
    }
    job();
  }
}

void DirectServer::Grant(const LeaseRequest& r) {
  auto refuse = [&](int error) {
    std::lock_guard lock(mu_);
    if (!r.conn->closed) (void)SendRefuse(r.conn->fd, r.request, error);
  };
  if (stopping_) return refuse(ESHUTDOWN);
  if (mount_dev_ == 0) mount_dev_ = MountDevice(mountpoint_);
  // An O_PATH descriptor proves no right to the file's data.
  if (r.error != 0 || (r.open_flags & O_PATH) != 0) return refuse(EBADF);
  if (r.dev != mount_dev_) return refuse(EXDEV);
  if (!S_ISREG(r.type)) return refuse(EINVAL);
  const bool writable = (r.open_flags & O_ACCMODE) != O_RDONLY;
  // A writer changes the file with no request of the kernel's: its set-ID
  // bits go now, before it can store anything, as for a write(2) of its.
  // (AfterDirectWrites clears them again after, should a chmod come between.)
  if (writable) {
    Status st = vfs_->BeforeDirectWrites(
        r.ino, PeerModifier(r.conn->peer.groups, r.conn->pid, r.conn->peer.gid));
    if (!st.ok()) return refuse(st.code());
  }
  // Whatever an earlier appender published is the size this grant holds for.
  if (writable) vfs_->CatchUpWithDirectWrites(r.ino);
  int refused = 0;
  Status s = vfs_->GrantLayout(r.ino, [&](const NfLayout& whole) {
    if (whole.extents.empty()) {
      refused = ENODATA;
      return;
    }
    std::unique_lock lock(mu_);
    if (r.conn->closed || r.conn->cut_off) {
      refused = EPERM;
      return;
    }
    // Under mu_: a remount read-only sets the flag, then revokes every
    // write lease registered under mu_ (RevokeWriteLeases).
    if (writable && vfs_->read_only()) {
      refused = EROFS;
      return;
    }
    // Every writer counts its writes in the file's slot, and the first one
    // may append (one size authority at a time).
    Slot* slot = nullptr;
    const bool had_slot = slots_.count(r.ino) > 0;
    if (writable && (slot = SlotForLocked(r.ino, whole.size)) == nullptr) {
      refused = ENOSPC;  // every slot taken: this file goes through FUSE
      return;
    }
    // A successor of the appender's lease, from the same client, appends
    // in its place: the client uses one of the two at a time.
    auto replaced = leases_.find(r.replaces);
    const bool inherits = slot != nullptr && r.replaces != 0 && slot->appender == r.replaces &&
                          replaced != leases_.end() && replaced->second->conn == r.conn;
    const bool append = slot != nullptr && (slot->appender == 0 || inherits);
    auto lease = std::make_unique<Lease>();
    lease->id = next_lease_++;
    lease->ino = r.ino;
    lease->writable = writable;
    lease->append = append;
    lease->conn = r.conn;
    lease->layout = append ? whole : ClippedToSize(whole);
    if (lease->layout.extents.empty()) {
      refused = ENODATA;
      return;
    }
    if (lease->layout.extents.size() > NSF_GRANT_MAX_EXTENTS) {
      lease->layout.extents.resize(NSF_GRANT_MAX_EXTENTS);
    }
    if (append) {
      slot->appender = lease->id;
      // Bytes an append may leave between the size and its offset must
      // read as zeros: the tail of the size's block may hold bytes a
      // truncate left (the rest past the size is zero-filled on allocation).
      // Not for a successor: only its predecessor wrote past the size since
      // that was done, and may be storing there still.
      if (whole.tail_length > 0 && !inherits) {
        Device& device = vfs_->volume().device();
        device.Zero(whole.tail_offset, whole.tail_length);
        (void)device.Persist(whole.tail_offset, whole.tail_length);
      }
    }
    const auto& ext = lease->layout.extents;
    std::vector<char> packet(sizeof(nsf_msg_grant) + ext.size() * sizeof(nsf_extent));
    uint32_t flags = append ? NSF_GRANT_APPEND : 0;
    if (append && whole.nothing_to_sync) flags |= NSF_GRANT_SYNCED;
    const uint64_t slot_offset =
        slot != nullptr ? vfs_->volume().size_slots().DeviceOffset(slot->index) : 0;
    nsf_msg_grant g{NSF_MSG_GRANT, writable ? 1u : 0u, r.request, lease->id, whole.size,
                    static_cast<uint32_t>(ext.size()), flags, slot_offset};
    std::memcpy(packet.data(), &g, sizeof(g));
    for (size_t i = 0; i < ext.size(); ++i) {
      nsf_extent e{ext[i].file_offset, ext[i].length, ext[i].device_offset};
      std::memcpy(packet.data() + sizeof(g) + i * sizeof(e), &e, sizeof(e));
    }
    // Registered before it is sent, so that the client's RELEASE finds it;
    // sent under the file's lock (not under mu_: the send may wait), so a
    // revocation of it, which needs the lock exclusively, can only follow
    // the grant on the socket.
    const uint64_t id = lease->id;
    leases_by_ino_.emplace(lease->ino, id);
    leases_.emplace(id, std::move(lease));
    lease_count_.fetch_add(1, std::memory_order_release);
    lock.unlock();
    // From now on the file's attributes are not cached (WriteLeased): what
    // the kernel holds goes before the holder can store anything. Only when
    // the slot is new: before, they were not cached either, and an
    // invalidation makes the kernel drop the answer of a getattr in flight,
    // leaving its caller with the size from before (an O_APPEND write
    // through FUSE would land there).
    if (writable && !had_slot) vfs_->InvalidateKernelAttrs(r.ino);
    const auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::milliseconds(lease_break_ms_.load(std::memory_order_relaxed));
    const bool sent = SendPacket(r.conn->fd, packet.data(), packet.size(), nullptr, 0, deadline);
    lock.lock();
    if (!sent) return DropLeaseLocked(id);
    grants_.fetch_add(1, std::memory_order_relaxed);
  });
  if (!s.ok()) refused = s.code();
  if (refused != 0) return refuse(refused);
}

std::string DirectServer::StatsText() const {
  size_t leases = 0;
  {
    std::lock_guard lock(mu_);
    leases = leases_.size();
  }
  std::string out;
  auto line = [&](const char* key, uint64_t v) {
    out += std::string(key) + " " + std::to_string(v) + "\n";
  };
  line("direct_leases", leases);
  line("direct_connections_total", connections_total_.load(std::memory_order_relaxed));
  line("direct_grants", grants_.load(std::memory_order_relaxed));
  line("direct_revocations", revocations_.load(std::memory_order_relaxed));
  line("direct_cutoffs", cutoffs_.load(std::memory_order_relaxed));
  line("direct_quarantined_blocks", vfs_->volume().quarantined_blocks());
  line("direct_size_slots", vfs_->volume().size_slots().in_use());
  return out;
}

}  // namespace nosyncfs
