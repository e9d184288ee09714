// LD_PRELOAD=libnosyncfs_shim.so: direct access for unmodified programs.
//
// Every regular file the program opens on a FUSE mount is attached (errors
// ignored: the file then simply goes through FUSE), and the data calls of
// attached descriptors (read, write, pread, pwrite, the vectored calls and
// the fortified reads) go to nsf_*; ftruncate and fallocate go to libc and
// then ask for a fresh lease; everything else goes to the next
// definition, libc's, found with dlsym(RTLD_NEXT). The library never calls
// back into these wrappers: it makes its own system calls with syscall(2)
// (client/syscalls.h), so there is no recursion.
//
// Safe before main and from any thread: each libc function is looked up
// on first use (a benign race: every thread finds the same pointer).
#undef _FORTIFY_SOURCE  // the wrappers must be plain definitions of these names
#include <dlfcn.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <utility>

#include "client/internal.h"
#include "client/nosyncfs.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

#define NSF_INTERPOSE extern "C" __attribute__((visibility("default")))

namespace {

// The wrapped functions' types, spelled out: decltype(&::open) would carry
// the declarations' attributes, which a template argument drops (warning).
using OpenFn = int (*)(const char*, int, ...);
using OpenatFn = int (*)(int, const char*, int, ...);
using PreadFn = ssize_t (*)(int, void*, size_t, off_t);
using PwriteFn = ssize_t (*)(int, const void*, size_t, off_t);
using ReadFn = ssize_t (*)(int, void*, size_t);
using WriteFn = ssize_t (*)(int, const void*, size_t);
using LseekFn = off_t (*)(int, off_t, int);
using CloseFn = int (*)(int);
using DupFn = int (*)(int);
using Dup2Fn = int (*)(int, int);
using FcntlFn = int (*)(int, int, ...);
using Dup3Fn = int (*)(int, int, int);
using VecFn = ssize_t (*)(int, const struct iovec*, int);
using VecAtFn = ssize_t (*)(int, const struct iovec*, int, off_t);
using Vec2Fn = ssize_t (*)(int, const struct iovec*, int, off_t, int);
using ReadChkFn = ssize_t (*)(int, void*, size_t, size_t);
using PreadChkFn = ssize_t (*)(int, void*, size_t, off_t, size_t);
using FtruncateFn = int (*)(int, off_t);
using SyncFn = int (*)(int);
using MmapFn = void* (*)(void*, size_t, int, int, int, off_t);
using FallocateFn = int (*)(int, int, off_t, off_t);
using PosixFallocateFn = int (*)(int, off_t, off_t);

// libc's definition of `name`, looked up once.
template <typename Fn>
Fn Next(std::atomic<Fn>& cache, const char* name) {
  Fn fn = cache.load(std::memory_order_relaxed);
  if (fn == nullptr) {
    fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    cache.store(fn, std::memory_order_relaxed);
  }
  return fn;
}
#define NEXT(Fn, name)                   \
  ([] {                                  \
    static std::atomic<Fn> cache{nullptr}; \
    return Next(cache, #name);           \
  }())

bool TakesMode(int flags) { return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE; }

// Whether the file system with device number `dev` (that of fd) is FUSE.
// statfs asks the file system, so its answer is kept: once per mount (the
// last few mounts seen), not once per open.
bool OnFuse(int fd, dev_t dev) {
  static std::mutex mutex;
  static std::array<std::pair<dev_t, bool>, 16> known{};
  static size_t next = 0;
  std::lock_guard lock(mutex);
  for (const auto& [d, fuse] : known) {
    if (d == dev && dev != 0) return fuse;
  }
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return false;
  const bool fuse = fs.f_type == FUSE_SUPER_MAGIC;
  known[next++ % known.size()] = {dev, fuse};
  return fuse;
}

// Attaches fd if it is a regular file on some FUSE mount; the attach asks
// the mount whether it is nosyncfs (once per mount: the library keeps its
// connection by device). The type and device come from the kernel's cached
// attributes (no request), so every other file costs nothing. The caller's
// errno is the open's.
int Opened(int fd, int flags) {
  if (fd < 0 || (flags & O_PATH) != 0) return fd;
  const int saved = errno;
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) == 0 &&
      S_ISREG(stx.stx_mode) && OnFuse(fd, makedev(stx.stx_dev_major, stx.stx_dev_minor))) {
    nsf_attach(fd);
  }
  errno = saved;
  return fd;
}

}  // namespace

#define MODE_ARG(flags)                     \
  mode_t mode = 0;                          \
  if (TakesMode(flags)) {                   \
    va_list args;                           \
    va_start(args, flags);                  \
    mode = static_cast<mode_t>(va_arg(args, int)); \
    va_end(args);                           \
  }

NSF_INTERPOSE int open(const char* path, int flags, ...) {
  MODE_ARG(flags);
  return Opened(NEXT(OpenFn, open)(path, flags, mode), flags);
}
NSF_INTERPOSE int open64(const char* path, int flags, ...) {
  MODE_ARG(flags);
  return Opened(NEXT(OpenFn, open64)(path, flags, mode), flags);
}
NSF_INTERPOSE int openat(int dirfd, const char* path, int flags, ...) {
  MODE_ARG(flags);
  return Opened(NEXT(OpenatFn, openat)(dirfd, path, flags, mode), flags);
}
NSF_INTERPOSE int openat64(int dirfd, const char* path, int flags, ...) {
  MODE_ARG(flags);
  return Opened(NEXT(OpenatFn, openat64)(dirfd, path, flags, mode), flags);
}

NSF_INTERPOSE int close(int fd) {
  if (nsf_internal_attached(fd)) return nsf_close(fd);
  return NEXT(CloseFn, close)(fd);
}

NSF_INTERPOSE ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  if (nsf_internal_attached(fd)) return nsf_pread(fd, buf, count, offset);
  return NEXT(PreadFn, pread)(fd, buf, count, offset);
}
NSF_INTERPOSE ssize_t pread64(int fd, void* buf, size_t count, off64_t offset) {
  if (nsf_internal_attached(fd)) return nsf_pread(fd, buf, count, offset);
  return NEXT(PreadFn, pread64)(fd, buf, count, offset);
}
NSF_INTERPOSE ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  if (nsf_internal_attached(fd)) return nsf_pwrite(fd, buf, count, offset);
  return NEXT(PwriteFn, pwrite)(fd, buf, count, offset);
}
NSF_INTERPOSE ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  if (nsf_internal_attached(fd)) return nsf_pwrite(fd, buf, count, offset);
  return NEXT(PwriteFn, pwrite64)(fd, buf, count, offset);
}
NSF_INTERPOSE ssize_t read(int fd, void* buf, size_t count) {
  if (nsf_internal_attached(fd)) return nsf_read(fd, buf, count);
  return NEXT(ReadFn, read)(fd, buf, count);
}
NSF_INTERPOSE ssize_t write(int fd, const void* buf, size_t count) {
  if (nsf_internal_attached(fd)) return nsf_write(fd, buf, count);
  return NEXT(WriteFn, write)(fd, buf, count);
}
NSF_INTERPOSE off_t lseek(int fd, off_t offset, int whence) {
  if (nsf_internal_attached(fd)) return nsf_lseek(fd, offset, whence);
  return NEXT(LseekFn, lseek)(fd, offset, whence);
}
NSF_INTERPOSE off64_t lseek64(int fd, off64_t offset, int whence) {
  if (nsf_internal_attached(fd)) return nsf_lseek(fd, offset, whence);
  return NEXT(LseekFn, lseek64)(fd, offset, whence);
}

// The vectored calls, as the plain ones (databases write their logs with
// writev and pwritev2, some with RWF_DSYNC).
NSF_INTERPOSE ssize_t readv(int fd, const struct iovec* iov, int n) {
  if (nsf_internal_attached(fd)) return nsf_readv(fd, iov, n);
  return NEXT(VecFn, readv)(fd, iov, n);
}
NSF_INTERPOSE ssize_t writev(int fd, const struct iovec* iov, int n) {
  if (nsf_internal_attached(fd)) return nsf_writev(fd, iov, n);
  return NEXT(VecFn, writev)(fd, iov, n);
}
NSF_INTERPOSE ssize_t preadv(int fd, const struct iovec* iov, int n, off_t off) {
  if (nsf_internal_attached(fd)) return nsf_preadv(fd, iov, n, off);
  return NEXT(VecAtFn, preadv)(fd, iov, n, off);
}
NSF_INTERPOSE ssize_t preadv64(int fd, const struct iovec* iov, int n, off64_t off) {
  if (nsf_internal_attached(fd)) return nsf_preadv(fd, iov, n, off);
  return NEXT(VecAtFn, preadv64)(fd, iov, n, off);
}
NSF_INTERPOSE ssize_t pwritev(int fd, const struct iovec* iov, int n, off_t off) {
  if (nsf_internal_attached(fd)) return nsf_pwritev(fd, iov, n, off);
  return NEXT(VecAtFn, pwritev)(fd, iov, n, off);
}
NSF_INTERPOSE ssize_t pwritev64(int fd, const struct iovec* iov, int n, off64_t off) {
  if (nsf_internal_attached(fd)) return nsf_pwritev(fd, iov, n, off);
  return NEXT(VecAtFn, pwritev64)(fd, iov, n, off);
}
NSF_INTERPOSE ssize_t preadv2(int fd, const struct iovec* iov, int n, off_t off, int flags) {
  if (nsf_internal_attached(fd)) return nsf_preadv2(fd, iov, n, off, flags);
  return NEXT(Vec2Fn, preadv2)(fd, iov, n, off, flags);
}
NSF_INTERPOSE ssize_t preadv64v2(int fd, const struct iovec* iov, int n, off64_t off, int flags) {
  if (nsf_internal_attached(fd)) return nsf_preadv2(fd, iov, n, off, flags);
  return NEXT(Vec2Fn, preadv64v2)(fd, iov, n, off, flags);
}
NSF_INTERPOSE ssize_t pwritev2(int fd, const struct iovec* iov, int n, off_t off, int flags) {
  if (nsf_internal_attached(fd)) return nsf_pwritev2(fd, iov, n, off, flags);
  return NEXT(Vec2Fn, pwritev2)(fd, iov, n, off, flags);
}
NSF_INTERPOSE ssize_t pwritev64v2(int fd, const struct iovec* iov, int n, off64_t off, int flags) {
  if (nsf_internal_attached(fd)) return nsf_pwritev2(fd, iov, n, off, flags);
  return NEXT(Vec2Fn, pwritev64v2)(fd, iov, n, off, flags);
}

// Programs built with _FORTIFY_SOURCE call these for read and pread.
extern "C" [[noreturn]] void __chk_fail(void);
NSF_INTERPOSE ssize_t __read_chk(int fd, void* buf, size_t count, size_t buflen) {
  if (count > buflen) __chk_fail();
  if (nsf_internal_attached(fd)) return nsf_read(fd, buf, count);
  return NEXT(ReadChkFn, __read_chk)(fd, buf, count, buflen);
}
NSF_INTERPOSE ssize_t __pread_chk(int fd, void* buf, size_t count, off_t off, size_t buflen) {
  if (count > buflen) __chk_fail();
  if (nsf_internal_attached(fd)) return nsf_pread(fd, buf, count, off);
  return NEXT(PreadChkFn, __pread_chk)(fd, buf, count, off, buflen);
}
NSF_INTERPOSE ssize_t __pread64_chk(int fd, void* buf, size_t count, off64_t off,
                                    size_t buflen) {
  if (count > buflen) __chk_fail();
  if (nsf_internal_attached(fd)) return nsf_pread(fd, buf, count, off);
  return NEXT(PreadChkFn, __pread64_chk)(fd, buf, count, off, buflen);
}

// Size and space changes go to the kernel (the daemon revokes what they
// break); the lease is asked for again at once, so that what they added is
// served directly without waiting for the next ask.
namespace {
int LayoutChanged(int fd, int rc) {
  if (rc == 0 && nsf_internal_attached(fd)) nsf_internal_layout_changed(fd);
  return rc;
}
}  // namespace

NSF_INTERPOSE int ftruncate(int fd, off_t length) {
  return LayoutChanged(fd, NEXT(FtruncateFn, ftruncate)(fd, length));
}
NSF_INTERPOSE int ftruncate64(int fd, off64_t length) {
  return LayoutChanged(fd, NEXT(FtruncateFn, ftruncate64)(fd, length));
}
NSF_INTERPOSE int fallocate(int fd, int mode, off_t off, off_t len) {
  return LayoutChanged(fd, NEXT(FallocateFn, fallocate)(fd, mode, off, len));
}
NSF_INTERPOSE int fallocate64(int fd, int mode, off64_t off, off64_t len) {
  return LayoutChanged(fd, NEXT(FallocateFn, fallocate64)(fd, mode, off, len));
}
NSF_INTERPOSE int posix_fallocate(int fd, off_t off, off_t len) {
  return LayoutChanged(fd, NEXT(PosixFallocateFn, posix_fallocate)(fd, off, len));
}
NSF_INTERPOSE int posix_fallocate64(int fd, off64_t off, off64_t len) {
  return LayoutChanged(fd, NEXT(PosixFallocateFn, posix_fallocate64)(fd, off, len));
}

// A sync with nothing to do costs no system call (nsf_fsync says when).
NSF_INTERPOSE int fsync(int fd) {
  if (nsf_internal_attached(fd)) return nsf_fsync(fd);
  return NEXT(SyncFn, fsync)(fd);
}
NSF_INTERPOSE int fdatasync(int fd) {
  if (nsf_internal_attached(fd)) return nsf_fdatasync(fd);
  return NEXT(SyncFn, fdatasync)(fd);
}

// A mapped file's pages are the kernel's: stores through a shared mapping
// dirty them behind the library's back (only a real fsync writes them
// back), and direct writes would bypass what a mapping shows. So a
// descriptor is detached before it is mapped, any way (SQLite maps its
// -shm file right after extending it with writes that went direct).
namespace {
void NoteMapping(int fd) {
  if (fd >= 0 && nsf_internal_attached(fd)) nsf_internal_mapping(fd);
}
}  // namespace

NSF_INTERPOSE void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t off) {
  NoteMapping(fd);
  return NEXT(MmapFn, mmap)(addr, length, prot, flags, fd, off);
}
NSF_INTERPOSE void* mmap64(void* addr, size_t length, int prot, int flags, int fd, off64_t off) {
  NoteMapping(fd);
  return NEXT(MmapFn, mmap64)(addr, length, prot, flags, fd, off);
}

// A copy of an attached descriptor is attached too, starting at the
// original's position (programs such as dd open a file and then move it to
// another number); after that each keeps its own position, where the
// kernel would share one. A descriptor that dup2/dup3 replace is closed by
// the kernel: it is detached first, or its calls would go on using the old
// file's lease.
namespace {
int Copied(int oldfd, int newfd) {
  if (newfd >= 0 && nsf_internal_attached(oldfd)) {
    const int saved = errno;
    nsf_attach(newfd);
    errno = saved;
  }
  return newfd;
}
}  // namespace

NSF_INTERPOSE int dup(int oldfd) {
  nsf_internal_sync_position(oldfd);
  return Copied(oldfd, NEXT(DupFn, dup)(oldfd));
}
NSF_INTERPOSE int dup2(int oldfd, int newfd) {
  if (oldfd == newfd) return NEXT(Dup2Fn, dup2)(oldfd, newfd);
  if (nsf_internal_attached(newfd)) nsf_detach(newfd);
  nsf_internal_sync_position(oldfd);
  return Copied(oldfd, NEXT(Dup2Fn, dup2)(oldfd, newfd));
}
NSF_INTERPOSE int dup3(int oldfd, int newfd, int flags) {
  if (oldfd != newfd && nsf_internal_attached(newfd)) nsf_detach(newfd);
  nsf_internal_sync_position(oldfd);
  return Copied(oldfd, NEXT(Dup3Fn, dup3)(oldfd, newfd, flags));
}
// fcntl's third argument is an int or a pointer by command; passed on as a
// pointer-sized word, as libc's own wrapper reads it.
namespace {
int Fcntl(FcntlFn next, int fd, int cmd, void* arg) {
  const bool dup = cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC;
  if (dup) nsf_internal_sync_position(fd);
  const int r = next(fd, cmd, arg);
  return dup ? Copied(fd, r) : r;
}
}  // namespace

NSF_INTERPOSE int fcntl(int fd, int cmd, ...) {
  va_list args;
  va_start(args, cmd);
  void* arg = va_arg(args, void*);
  va_end(args);
  return Fcntl(NEXT(FcntlFn, fcntl), fd, cmd, arg);
}
NSF_INTERPOSE int fcntl64(int fd, int cmd, ...) {
  va_list args;
  va_start(args, cmd);
  void* arg = va_arg(args, void*);
  va_end(args);
  return Fcntl(NEXT(FcntlFn, fcntl64), fd, cmd, arg);
}
