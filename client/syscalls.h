// The system calls the library falls back to, made with syscall(2) rather
// than through libc's functions of the same name.
//
// Why: under LD_PRELOAD=libnosyncfs_shim.so the shim defines read, write,
// pread, pwrite, lseek, open and close, and the dynamic linker binds this
// library's calls to those names to the shim's definitions (the preloaded
// object comes first in the lookup scope). The shim routes an attached
// descriptor back here, so a fallback through ::pwrite would recurse
// forever. dlsym(RTLD_NEXT) from this library does not help either: under
// the shim libc is loaded before this library, so "next" would not find it.
// A raw system call has no name to interpose, and works before main.
// close(2) is the exception: the library closes only descriptors that are
// not (or no longer) attached, which the shim passes straight to libc, and
// a close that sanitizers and other interposers see keeps their view of
// descriptors right.
//
// The price: these are not pthread cancellation points, and LP64 only (the
// 64-bit offset goes in one register, as on x86_64 and aarch64).
#ifndef NOSYNCFS_CLIENT_SYSCALLS_H
#define NOSYNCFS_CLIENT_SYSCALLS_H

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static_assert(sizeof(long) == 8 && sizeof(off_t) == 8, "raw syscalls assume LP64");

namespace nsf::sys {

inline ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  return ::syscall(SYS_pread64, fd, buf, n, off);
}
inline ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  return ::syscall(SYS_pwrite64, fd, buf, n, off);
}
inline ssize_t read(int fd, void* buf, size_t n) { return ::syscall(SYS_read, fd, buf, n); }
inline ssize_t write(int fd, const void* buf, size_t n) {
  return ::syscall(SYS_write, fd, buf, n);
}
inline int fsync(int fd) { return static_cast<int>(::syscall(SYS_fsync, fd)); }
inline int fdatasync(int fd) { return static_cast<int>(::syscall(SYS_fdatasync, fd)); }
// Asks the file system for fresh attributes (a FUSE getattr when the
// kernel may not cache them).
inline void refresh_attributes(int fd) {
  struct stat st;
  (void)::syscall(SYS_fstat, fd, &st);
}
inline off_t lseek(int fd, off_t off, int whence) {
  return ::syscall(SYS_lseek, fd, off, whence);
}
inline int openat(int dirfd, const char* path, int flags, mode_t mode) {
  return static_cast<int>(::syscall(SYS_openat, dirfd, path, flags, mode));
}
// preadv2/pwritev2 take the offset in two halves (low, high); offset -1
// means the file position, flags 0 makes them preadv/pwritev, and -1 with
// flags 0 makes them readv/writev.
inline ssize_t preadv2(int fd, const struct iovec* iov, int n, off_t off, int flags) {
  const auto o = static_cast<unsigned long long>(off);
  return ::syscall(SYS_preadv2, fd, iov, n, static_cast<unsigned long>(o),
                   static_cast<unsigned long>(o >> 32), flags);
}
inline ssize_t pwritev2(int fd, const struct iovec* iov, int n, off_t off, int flags) {
  const auto o = static_cast<unsigned long long>(off);
  return ::syscall(SYS_pwritev2, fd, iov, n, static_cast<unsigned long>(o),
                   static_cast<unsigned long>(o >> 32), flags);
}

}  // namespace nsf::sys

#endif  // NOSYNCFS_CLIENT_SYSCALLS_H
