// The nsf_* API (nosyncfs.h): the table of attached descriptors and the
// data path, which copies to or from the device mapping when the file's
// lease covers the request and otherwise makes the system call.
//
// The table is an array of atomic File pointers indexed by descriptor, so
// that a data call finds its file with one load and no lock. It is made at
// the first attach, as large as the hard RLIMIT_NOFILE (at most 2^20
// entries), from anonymous memory that costs nothing until touched; a
// descriptor past it cannot be attached (EMFILE). Every global here is
// constant-initialised or made on first use and never destroyed: the shim
// calls in before main and after exit starts.
#pragma GCC visibility push(default)
#include "client/nosyncfs.h"
#pragma GCC visibility pop

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/xattr.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstdarg>
#include <cstring>
#include <string>

#include "client/connection.h"
#include "client/counters.h"
#include "client/error.h"
#include "client/file.h"
#include "client/internal.h"
#include "client/lease.h"
#include "client/mapping.h"
#include "client/protocol.h"
#include "client/syscalls.h"

namespace nsf {

Counters counters;

namespace {

thread_local std::string last_error;

constexpr size_t kMaxTable = size_t{1} << 20;

// Making the table, and putting entries in and out: a fork holds it, so
// that the fork handlers see only live Files.
std::mutex table_mutex;
std::atomic<std::atomic<File*>*> table{nullptr};
std::atomic<size_t> table_size{0};
std::atomic<int> highest_attached{-1};  // how far the fork handler looks

// The child shares each descriptor's file position with the parent, and
// usually execs, which knows nothing of the library's positions: hand them
// to the kernel first.
// A descriptor busy in another thread keeps its position.
void ForkPrepare() {
  table_mutex.lock();
  std::atomic<File*>* t = table.load();
  for (int fd = 0; t != nullptr && fd <= highest_attached.load(); ++fd) {
    File* f = t[fd].load();
    if (f != nullptr && f->position_mutex.try_lock()) {
      sys::lseek(fd, f->position, SEEK_SET);
      f->position_mutex.unlock();
    }
  }
  Connection::LockForFork();
}

void ForkParent() {
  Connection::UnlockAfterFork(false);
  table_mutex.unlock();
}

// The child inherited leases that the parent's listener answers for: a
// revocation drains the parent's stores, not the child's. So the child
// forgets them; its data calls fall back, and attaching again connects anew.
void ForkChild() {
  Connection::UnlockAfterFork(true);
  std::atomic<File*>* t = table.load();
  for (int fd = 0; t != nullptr && fd <= highest_attached.load(); ++fd) {
    if (File* f = t[fd].load()) {
      f->lease.store(nullptr);
      f->inflight.store(0);  // counted by threads the child does not have
    }
  }
  table_mutex.unlock();
}

std::atomic<File*>* MakeTable() {
  static std::once_flag fork_handlers;  // before the table, and not under its lock
  std::call_once(fork_handlers, [] { pthread_atfork(ForkPrepare, ForkParent, ForkChild); });
  std::lock_guard lock(table_mutex);
  if (std::atomic<File*>* t = table.load(std::memory_order_acquire)) return t;
  size_t entries = kMaxTable;
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY) {
    entries = std::min<size_t>(std::max<rlim_t>(limit.rlim_max, 1024), kMaxTable);
  }
  // Zero pages are null pointers: the entries need no constructor, and the
  // pages no memory until an attach touches them.
  void* memory = mmap(nullptr, entries * sizeof(std::atomic<File*>), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  table_size.store(entries, std::memory_order_relaxed);
  table.store(static_cast<std::atomic<File*>*>(memory), std::memory_order_release);
  return static_cast<std::atomic<File*>*>(memory);
}

std::atomic<File*>* Slot(int fd) {
  std::atomic<File*>* t = table.load(std::memory_order_acquire);
  if (t == nullptr || fd < 0) return nullptr;
  if (static_cast<size_t>(fd) >= table_size.load(std::memory_order_relaxed)) return nullptr;
  return &t[fd];
}

File* Find(int fd) {
  std::atomic<File*>* slot = Slot(fd);
  return slot != nullptr ? slot->load(std::memory_order_acquire) : nullptr;
}

File* TakeOut(int fd) {
  std::atomic<File*>* slot = Slot(fd);
  if (slot == nullptr) return nullptr;
  std::lock_guard lock(table_mutex);
  return slot->exchange(nullptr);
}

// Gives up f's lease; hands the position back to the kernel when the
// descriptor is still f's (not when it was closed and reused behind us).
void Drop(File* f, bool hand_back_position) {
  const int saved = errno;
  f->connection->Detach(f);
  if (hand_back_position) {
    std::lock_guard lock(f->position_mutex);
    sys::lseek(f->fd, f->position, SEEK_SET);
  }
  Unhold(f);
  errno = saved;
}

// Asks for a lease for f on the side of a data call: leaves errno and
// nsf_errmsg alone (the caller's call has not failed), and ignores the
// answer (the data path looks at f's lease).
void AskQuietly(File* f, bool wait, bool fresh) {
  if (!f->connection->Usable()) return;
  const int saved_errno = errno;
  std::string saved_message = last_error;
  (void)f->connection->AskForLease(f, wait, fresh);
  last_error = std::move(saved_message);
  errno = saved_errno;
}

// A data call found no lease: asks for one, at most once a second, without
// waiting; the call itself falls back.
void AskAgainIfDue(File* f) {
  if (f->lease.load(std::memory_order_relaxed) != nullptr) return;
  const int64_t now = MonotonicNs();
  int64_t due = f->next_ask_ns.load(std::memory_order_relaxed);
  if (now < due || !f->next_ask_ns.compare_exchange_strong(due, now + kAskIntervalNs)) return;
  AskQuietly(f, /*wait=*/false, /*fresh=*/true);
}

// After a write that fell back: whether the file should have a lease that
// appends now, and the library waits for it rather than ask in the
// background (a write through FUSE past the size ends a lease granted
// meanwhile, and the next could fall back again, and so on). So after the
// first write of a file attached without NF space (a policy file's first
// write allocates its first unit), and after an append that ran past its
// appender's space (the write allocated the next).
bool ExpectsAppendLease(File* f, bool had_appender) {
  return had_appender || f->ask_after_first_write.exchange(false);
}

void AskAfterFallbackWrite(File* f, bool had_appender) {
  if (ExpectsAppendLease(f, had_appender)) {
    AskQuietly(f, /*wait=*/true, /*fresh=*/false);
  } else {
    AskAgainIfDue(f);
  }
}

// Whether f's lease now may append.
bool HoldsAppender(File* f) {
  f->inflight.fetch_add(1);
  const Lease* lease = f->lease.load();
  const bool append = lease != nullptr && lease->append;
  f->inflight.fetch_sub(1);
  return append;
}

// The direct read into buf, if f's lease covers all of [offset,
// offset+count) inside the size; false to fall back. See File for why the
// counter is raised before the lease is loaded.
bool ReadDirect(File* f, void* buf, size_t count, off_t offset) {
  if (offset < 0 || count > SSIZE_MAX) return false;
  f->inflight.fetch_add(1);
  const Lease* lease = f->lease.load();
  auto* bytes = static_cast<uint8_t*>(buf);
  const bool done =
      lease != nullptr &&
      lease->ForEachPiece(static_cast<uint64_t>(offset), count, lease->CurrentSize(),
                          [&](uint64_t device_offset, uint64_t at, uint64_t length) {
                            std::memcpy(bytes + at, lease->mapping->base() + device_offset,
                                        length);
                            return true;
                          });
  f->inflight.fetch_sub(1);
  return done;
}

// Stores and persists [offset, offset+count) through the lease, if it
// covers all of it below `limit`.
bool StoreThrough(const Lease* lease, const void* buf, size_t count, uint64_t offset,
                  uint64_t limit) {
  const auto* bytes = static_cast<const uint8_t*>(buf);
  return lease->ForEachPiece(offset, count, limit,
                             [&](uint64_t device_offset, uint64_t at, uint64_t length) {
                               return lease->mapping->Store(device_offset, bytes + at, length);
                             });
}

// The direct write of buf at `offset` (-1: at the end, as O_APPEND
// writes), if f's lease allows it; false to fall back. An appender's lease
// also writes past the size, inside its extents: the data is persisted
// first, then the new size in the file's slot, so that a crash never
// leaves a size covering bytes that were not written. *end is where the
// write ended.
bool WriteDirect(File* f, const void* buf, size_t count, off_t offset, uint64_t* end) {
  if (offset < -1 || count > SSIZE_MAX) return false;
  f->inflight.fetch_add(1);
  const Lease* lease = f->lease.load();
  bool done = false;
  if (lease != nullptr && lease->writable && (offset >= 0 || lease->append)) {
    const uint64_t size = lease->CurrentSize();
    if (offset >= 0 && static_cast<uint64_t>(offset) + count <= size) {
      done = StoreThrough(lease, buf, count, static_cast<uint64_t>(offset), size);  // overwrite
      *end = static_cast<uint64_t>(offset) + count;
    } else if (lease->append) {
      // Appends one at a time: each publishes a size that covers only
      // bytes already persisted.
      std::lock_guard lock(f->append_mutex);
      const uint64_t now = lease->CurrentSize();
      const uint64_t at = offset >= 0 ? static_cast<uint64_t>(offset) : now;
      done = StoreThrough(lease, buf, count, at, UINT64_MAX);
      if (done && at + count > now) {
        __atomic_store_n(&lease->slot->size, at + count, __ATOMIC_RELEASE);
        done = lease->mapping->Persist(
            static_cast<uint64_t>(reinterpret_cast<uint8_t*>(&lease->slot->size) -
                                  lease->mapping->base()),
            sizeof(uint64_t));
      }
      *end = at + count;
    }
    // The daemon's attributes follow (a reader's cached pages then go).
    if (done) __atomic_fetch_add(&lease->slot->writes, 1, __ATOMIC_RELEASE);
  }
  if (done && !f->wrote.load(std::memory_order_relaxed)) f->wrote.store(true);
  f->inflight.fetch_sub(1);
  return done;
}

ssize_t ReadAt(File* f, void* buf, size_t count, off_t offset) {
  if (f->can_read && ReadDirect(f, buf, count, offset)) {
    Count(counters.direct_reads);
    return static_cast<ssize_t>(count);
  }
  AskAgainIfDue(f);
  Count(counters.fallback_reads);
  return sys::pread(f->fd, buf, count, offset);
}

// The kernel's answer to where an O_APPEND write ended.
void KernelPosition(File* f, uint64_t* end) {
  const int error = errno;
  const off_t position = sys::lseek(f->fd, 0, SEEK_CUR);
  if (position >= 0) *end = static_cast<uint64_t>(position);
  errno = error;
}

// The kernel's O_APPEND write: at the end the kernel knows, which a
// stat brings up to what an appender published (the daemon does not let
// the kernel cache the attributes of a file with a write lease). Under
// the append lock, so no direct append of this file slips in between.
ssize_t AppendThroughKernel(File* f, const iovec* iov, int iovcnt, int flags, uint64_t* end) {
  std::lock_guard lock(f->append_mutex);
  sys::refresh_attributes(f->fd);
  const ssize_t n = sys::pwritev2(f->fd, iov, iovcnt, -1, flags);
  KernelPosition(f, end);
  return n;
}

// A write at `offset`, or at the end on an O_APPEND descriptor (where
// pwrite(2) appends too, on Linux). *end: where it ended, when it did.
ssize_t WriteAt(File* f, const void* buf, size_t count, off_t offset, uint64_t* end) {
  if (f->can_write && WriteDirect(f, buf, count, f->append ? -1 : offset, end)) {
    Count(counters.direct_writes);
    return static_cast<ssize_t>(count);
  }
  Count(counters.fallback_writes);
  const bool had_appender = HoldsAppender(f);
  ssize_t n;
  if (f->append) {
    iovec one{const_cast<void*>(buf), count};
    n = AppendThroughKernel(f, &one, 1, 0, end);
  } else if ((n = sys::pwrite(f->fd, buf, count, offset)) > 0) {
    *end = static_cast<uint64_t>(offset) + static_cast<uint64_t>(n);
  }
  // After the write: it may be what gave the file its NF space.
  AskAfterFallbackWrite(f, had_appender);
  return n;
}

ssize_t WriteAt(File* f, const void* buf, size_t count, off_t offset) {
  uint64_t end = 0;
  return WriteAt(f, buf, count, offset, &end);
}

int NotAttached() { return Fail(EBADF, "the descriptor is not attached to libnosyncfs"); }

// A vector this small goes through one bounce buffer: one direct copy (and
// persist), all or nothing, or one system call.
constexpr size_t kBounce = 64 * 1024;

// The bytes of a vector; -1 (EINVAL) for a count or sum the kernel refuses.
ssize_t VectorBytes(const iovec* iov, int iovcnt) {
  if (iovcnt < 0 || iovcnt > IOV_MAX) return Fail(EINVAL, "bad iovec count");
  size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) {
    if (iov[i].iov_len > SSIZE_MAX - total) return Fail(EINVAL, "iovec lengths overflow");
    total += iov[i].iov_len;
  }
  return static_cast<ssize_t>(total);
}

// Copies the vector's buffers, one after the other, to dst.
void Gather(const iovec* iov, int iovcnt, char* dst) {
  for (int i = 0; i < iovcnt; ++i) {
    std::memcpy(dst, iov[i].iov_base, iov[i].iov_len);
    dst += iov[i].iov_len;
  }
}

// One vector at `offset` through f: `at(buf, count, offset)` is ReadAt or
// WriteAt. Small vectors through a bounce buffer (gathered before a write,
// scattered after a read); larger ones buffer by buffer, stopping at the
// first short one, as the kernel's do.
template <typename At>
ssize_t VectorAt(File* f, const iovec* iov, int iovcnt, off_t offset, bool write, At at) {
  const ssize_t total = VectorBytes(iov, iovcnt);
  if (total < 0) return -1;
  if (static_cast<size_t>(total) <= kBounce) {
    thread_local char bounce[kBounce];
    if (write) Gather(iov, iovcnt, bounce);
    const ssize_t n = at(f, bounce, static_cast<size_t>(total), offset);
    if (!write && n > 0) {
      size_t pos = 0;
      for (int i = 0; i < iovcnt && pos < static_cast<size_t>(n); ++i) {
        const size_t piece = std::min(iov[i].iov_len, static_cast<size_t>(n) - pos);
        std::memcpy(iov[i].iov_base, bounce + pos, piece);
        pos += piece;
      }
    }
    return n;
  }
  ssize_t done = 0;
  for (int i = 0; i < iovcnt; ++i) {
    if (iov[i].iov_len == 0) continue;
    const ssize_t n = at(f, iov[i].iov_base, iov[i].iov_len, offset + done);
    if (n < 0) return done > 0 ? done : -1;
    done += n;
    if (static_cast<size_t>(n) < iov[i].iov_len) break;
  }
  return done;
}

ssize_t ReadVecAt(File* f, const iovec* iov, int iovcnt, off_t offset) {
  return VectorAt(f, iov, iovcnt, offset, false,
                  [](File* g, void* buf, size_t n, off_t off) { return ReadAt(g, buf, n, off); });
}

// pwritev2 at `offset` (or at the end, O_APPEND) with `flags` (RWF_DSYNC,
// RWF_SYNC or none): a direct write is durable on return, so it meets
// them; a fallback carries them to the kernel, whole, as one call. *end:
// where the write ended.
ssize_t WriteVecAt(File* f, const iovec* iov, int iovcnt, off_t offset, int flags,
                   uint64_t* end) {
  if ((flags & (RWF_DSYNC | RWF_SYNC)) == 0) {
    return VectorAt(f, iov, iovcnt, offset, true, [end](File* g, void* buf, size_t n, off_t off) {
      return WriteAt(g, buf, n, off, end);
    });
  }
  const ssize_t total = VectorBytes(iov, iovcnt);
  if (total < 0) return -1;
  if (static_cast<size_t>(total) <= kBounce && f->can_write) {
    thread_local char bounce[kBounce];
    Gather(iov, iovcnt, bounce);
    if (WriteDirect(f, bounce, static_cast<size_t>(total), f->append ? -1 : offset, end)) {
      Count(counters.direct_writes);
      return total;
    }
  }
  Count(counters.fallback_writes);
  const bool had_appender = HoldsAppender(f);
  ssize_t n;
  if (!f->append) {
    n = sys::pwritev2(f->fd, iov, iovcnt, offset, flags);
    if (n > 0) *end = static_cast<uint64_t>(offset) + static_cast<uint64_t>(n);
  } else {
    n = AppendThroughKernel(f, iov, iovcnt, flags, end);
  }
  AskAfterFallbackWrite(f, had_appender);  // as WriteAt does
  return n;
}

// A vectored call at the file position of an attached descriptor.
ssize_t VectorAtPosition(File* f, const iovec* iov, int iovcnt, bool write, int flags) {
  std::lock_guard lock(f->position_mutex);
  uint64_t end = 0;
  const ssize_t n = write ? WriteVecAt(f, iov, iovcnt, f->position, flags, &end)
                          : ReadVecAt(f, iov, iovcnt, f->position);
  if (n > 0) f->position = write && f->append ? static_cast<off_t>(end) : f->position + n;
  return n;
}

}  // namespace

int Fail(int error, std::string message) {
  last_error = std::move(message);
  errno = error;
  return -1;
}

}  // namespace nsf

using namespace nsf;

extern "C" {

int nsf_open(const char* path, int flags, ...) {
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list args;
    va_start(args, flags);
    mode = static_cast<mode_t>(va_arg(args, int));
    va_end(args);
  }
  const int fd = sys::openat(AT_FDCWD, path, flags, mode);
  if (fd < 0) return Fail(errno, std::string(path ? path : "(null)") + ": " + std::strerror(errno));
  if (nsf_attach(fd) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

int nsf_attach(int fd) {
  // The type, device and inode number never change: the kernel's cached
  // attributes answer without a request to the file system.
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO, &stx) != 0) {
    return Fail(errno, std::string("statx: ") + std::strerror(errno));
  }
  if (!S_ISREG(stx.stx_mode)) return Fail(ENOTSUP, "only regular files have direct access");
  struct stat st {};
  st.st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  st.st_ino = stx.stx_ino;
  if (File* old = Find(fd)) {
    const bool same_file = old->dev == st.st_dev && old->ino == st.st_ino;
    if (same_file && old->connection->Usable()) return 0;
    // A stale entry (the descriptor was closed with close(2) and reused),
    // or a connection that ended: attaching again starts afresh.
    if (File* taken = TakeOut(fd)) Drop(taken, same_file);
  }
  std::atomic<File*>* t = table.load(std::memory_order_acquire);
  if (t == nullptr && (t = MakeTable()) == nullptr) {
    return Fail(ENOMEM, "cannot make the library's descriptor table");
  }
  if (static_cast<size_t>(fd) >= table_size.load(std::memory_order_relaxed)) {
    return Fail(EMFILE, "the descriptor is past the library's table (the hard RLIMIT_NOFILE "
                        "at the first attach)");
  }

  // One connection per mount: a file of a mount already connected needs no
  // request to find its socket.
  std::shared_ptr<Connection> connection = Connection::ForDevice(st.st_dev);
  if (connection == nullptr) {
    char value[sizeof(sockaddr_un::sun_path)];
    const ssize_t n = fgetxattr(fd, NSF_DIRECT_XATTR, value, sizeof value);
    if (n < 0) {
      const int error = errno;
      if (error == ENODATA || error == ENOTSUP || error == EOPNOTSUPP) {
        return Fail(ENOTSUP, "not a nosyncfs file (it has no " NSF_DIRECT_XATTR " attribute)");
      }
      return Fail(error == ERANGE ? EPROTO : error,
                  std::string("cannot read " NSF_DIRECT_XATTR ": ") + std::strerror(error));
    }
    const std::string socket_path(value, static_cast<size_t>(n));
    if (socket_path == "off") {
      return Fail(EPERM, "the mount does not allow direct access (mount option direct=)");
    }
    connection = Connection::For(socket_path, st.st_dev);
    if (connection == nullptr) return -1;
  }

  const int flags = fcntl(fd, F_GETFL);
  const off_t position = sys::lseek(fd, 0, SEEK_CUR);
  File* f = new File(fd, connection);
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->can_read = (flags & O_ACCMODE) != O_WRONLY;
  f->can_write = (flags & O_ACCMODE) != O_RDONLY;
  f->append = (flags & O_APPEND) != 0;
  f->position = position < 0 ? 0 : position;

  // A file with no NF extents yet attaches; its data calls ask again.
  if (connection->AskForLease(f, true) != 0) {
    const int error = errno;
    if (error != ENODATA) {
      Drop(f, false);
      errno = error;
      return -1;
    }
    f->ask_after_first_write.store(true);
  }
  File* expected = nullptr;
  bool published;
  {
    std::lock_guard lock(table_mutex);
    published = t[fd].compare_exchange_strong(expected, f);
    if (published && fd > highest_attached.load()) highest_attached.store(fd);
  }
  if (!published) Drop(f, false);  // another thread attached it meanwhile
  return 0;
}

int nsf_detach(int fd) {
  File* f = TakeOut(fd);
  if (f == nullptr) return NotAttached();
  Drop(f, true);
  return 0;
}

int nsf_close(int fd) {
  if (File* f = TakeOut(fd)) Drop(f, true);  // a dup of fd goes on at this position
  if (::close(fd) != 0) return Fail(errno, std::string("close: ") + std::strerror(errno));
  return 0;
}

ssize_t nsf_pread(int fd, void* buf, size_t count, off_t offset) {
  File* f = Find(fd);
  return f != nullptr ? ReadAt(f, buf, count, offset) : sys::pread(fd, buf, count, offset);
}

ssize_t nsf_pwrite(int fd, const void* buf, size_t count, off_t offset) {
  File* f = Find(fd);
  return f != nullptr ? WriteAt(f, buf, count, offset) : sys::pwrite(fd, buf, count, offset);
}

ssize_t nsf_read(int fd, void* buf, size_t count) {
  File* f = Find(fd);
  if (f == nullptr) return sys::read(fd, buf, count);
  std::lock_guard lock(f->position_mutex);
  const ssize_t n = ReadAt(f, buf, count, f->position);
  if (n > 0) f->position += n;
  return n;
}

ssize_t nsf_write(int fd, const void* buf, size_t count) {
  File* f = Find(fd);
  if (f == nullptr) return sys::write(fd, buf, count);
  std::lock_guard lock(f->position_mutex);
  uint64_t end = 0;
  const ssize_t n = WriteAt(f, buf, count, f->position, &end);
  if (n > 0) f->position = f->append ? static_cast<off_t>(end) : f->position + n;
  return n;
}

off_t nsf_lseek(int fd, off_t offset, int whence) {
  File* f = Find(fd);
  if (f == nullptr) return sys::lseek(fd, offset, whence);
  std::lock_guard lock(f->position_mutex);
  off_t position;
  if (whence == SEEK_SET) {
    position = offset;
  } else if (whence == SEEK_CUR) {
    if (__builtin_add_overflow(f->position, offset, &position)) {
      return Fail(EOVERFLOW, "lseek: the position would overflow");
    }
  } else {  // SEEK_END, SEEK_DATA, SEEK_HOLE: the file system knows
    position = sys::lseek(fd, offset, whence);
    if (position < 0) return Fail(errno, std::string("lseek: ") + std::strerror(errno));
  }
  if (position < 0) return Fail(EINVAL, "lseek: a negative position");
  f->position = position;
  return position;
}

namespace {

// Whether fsync(2) of f would have nothing to do (nsf_fsync).
bool NothingToSync(File* f) {
  f->inflight.fetch_add(1);
  const Lease* lease = f->lease.load();
  const bool nothing = lease != nullptr && lease->synced && lease->append &&
                       lease->CurrentSize() <= lease->nf_prefix;
  f->inflight.fetch_sub(1);
  return nothing;
}

}  // namespace

int nsf_fsync(int fd) {
  File* f = Find(fd);
  if (f != nullptr && NothingToSync(f)) return 0;
  if (sys::fsync(fd) != 0) return Fail(errno, std::string("fsync: ") + std::strerror(errno));
  return 0;
}

int nsf_fdatasync(int fd) {
  File* f = Find(fd);
  if (f != nullptr && NothingToSync(f)) return 0;
  if (sys::fdatasync(fd) != 0) return Fail(errno, std::string("fdatasync: ") + std::strerror(errno));
  return 0;
}

int nsf_map(int fd, off_t offset, size_t length, void** addr) {
  File* f = Find(fd);
  if (f == nullptr) return NotAttached();
  if (addr == nullptr) return Fail(EINVAL, "nsf_map: addr is NULL");
  bool mapped = false, leased = false;
  f->inflight.fetch_add(1);  // keeps the lease from being freed while it is read
  if (const Lease* lease = f->lease.load()) {
    leased = true;
    const auto off = static_cast<uint64_t>(offset);
    const nsf_extent* e = offset < 0 ? nullptr : lease->ExtentHolding(off, length);
    if (e != nullptr && off <= lease->CurrentSize() && length <= lease->CurrentSize() - off) {
      *addr = lease->mapping->base() + e->device_offset + (off - e->file_offset);
      mapped = true;
    }
  }
  f->inflight.fetch_sub(1);
  if (mapped) return 0;
  return Fail(ENODATA, leased ? "the range is not wholly inside one leased NF extent"
                              : "the file holds no lease now");
}

int nsf_persist(const void* addr, size_t length) {
  const int error = PersistMappedRange(addr, length);
  if (error == EINVAL) return Fail(EINVAL, "the range is in no device mapping of libnosyncfs");
  if (error != 0) return Fail(error, std::string("persist: ") + std::strerror(error));
  return 0;
}

int nsf_map_valid(int fd, off_t offset, size_t length) {
  File* f = Find(fd);
  if (f == nullptr || offset < 0) return 0;
  f->inflight.fetch_add(1);
  const Lease* lease = f->lease.load();
  const auto off = static_cast<uint64_t>(offset);
  const bool valid = lease != nullptr && lease->ExtentHolding(off, length) != nullptr &&
                     off <= lease->CurrentSize() && length <= lease->CurrentSize() - off;
  f->inflight.fetch_sub(1);
  return valid ? 1 : 0;
}

int nsf_refresh(int fd) {
  File* f = Find(fd);
  if (f == nullptr) return NotAttached();
  return f->connection->AskForLease(f, true);
}

void nsf_on_revoke(nsf_revoke_fn fn, void* arg) { Connection::SetRevokeCallback(fn, arg); }

const char* nsf_errmsg(void) { return last_error.c_str(); }

void nsf_get_counters(struct nsf_counters* out) {
  if (out == nullptr) return;
  out->direct_reads = counters.direct_reads.load(std::memory_order_relaxed);
  out->direct_writes = counters.direct_writes.load(std::memory_order_relaxed);
  out->fallback_reads = counters.fallback_reads.load(std::memory_order_relaxed);
  out->fallback_writes = counters.fallback_writes.load(std::memory_order_relaxed);
  out->leases_granted = counters.leases_granted.load(std::memory_order_relaxed);
  out->leases_revoked = counters.leases_revoked.load(std::memory_order_relaxed);
}

ssize_t nsf_preadv(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  return nsf_preadv2(fd, iov, iovcnt, offset, 0);
}

ssize_t nsf_pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  return nsf_pwritev2(fd, iov, iovcnt, offset, 0);
}

ssize_t nsf_readv(int fd, const struct iovec* iov, int iovcnt) {
  return nsf_preadv2(fd, iov, iovcnt, -1, 0);
}

ssize_t nsf_writev(int fd, const struct iovec* iov, int iovcnt) {
  return nsf_pwritev2(fd, iov, iovcnt, -1, 0);
}

ssize_t nsf_preadv2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  File* f = Find(fd);
  if (f == nullptr || (flags & ~RWF_HIPRI) != 0 || offset < -1) {
    return sys::preadv2(fd, iov, iovcnt, offset, flags);
  }
  return offset == -1 ? VectorAtPosition(f, iov, iovcnt, false, 0)
                      : ReadVecAt(f, iov, iovcnt, offset);
}

ssize_t nsf_pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags) {
  File* f = Find(fd);
  if (f == nullptr || (flags & ~(RWF_HIPRI | RWF_DSYNC | RWF_SYNC)) != 0 || offset < -1) {
    return sys::pwritev2(fd, iov, iovcnt, offset, flags);
  }
  flags &= RWF_DSYNC | RWF_SYNC;
  return offset == -1 ? VectorAtPosition(f, iov, iovcnt, true, flags)
                      : [&] {
                        uint64_t end = 0;
                        return WriteVecAt(f, iov, iovcnt, offset, flags, &end);
                      }();
}

int nsf_internal_attached(int fd) { return Find(fd) != nullptr ? 1 : 0; }

void nsf_internal_layout_changed(int fd) {
  if (File* f = Find(fd)) AskQuietly(f, /*wait=*/false, /*fresh=*/true);
}

void nsf_internal_mapping(int fd) {
  File* f = TakeOut(fd);
  if (f == nullptr) return;
  const int saved = errno;
  Drop(f, true);
  sys::refresh_attributes(fd);
  errno = saved;
}

void nsf_internal_sync_position(int fd) {
  File* f = Find(fd);
  if (f == nullptr) return;
  const int saved = errno;
  std::lock_guard lock(f->position_mutex);
  sys::lseek(fd, f->position, SEEK_SET);
  errno = saved;
}

}  // extern "C"
