/* libnosyncfs: direct access to the no-fsync (NF) extents of files on a
 * nosyncfs mount.
 *
 * For a file the library has attached, reads and writes that fall wholly
 * inside the file's NF extents and inside its size are served from a
 * mapping of the device: copied, persisted, and durable on return, with no
 * request to the daemon. Everything else (writes that grow the file,
 * unflagged ranges, holes, a file whose lease was revoked) goes through the
 * descriptor, that is through FUSE, with the semantics of docs/semantics.md.
 *
 * The daemon allows this only to the users and groups of its direct= mount
 * option (docs/semantics.md, "Direct access", states the trust model).
 * Calls that fail return -1 and set errno; nsf_errmsg() then holds a
 * sentence for people. The data calls never fail for lack of direct
 * access: they fall back to the descriptor.
 *
 * Thread-safety: every call may be made from any thread. Closing a
 * descriptor while another thread uses it is as wrong as with close(2). */
#ifndef NOSYNCFS_H
#define NOSYNCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* open(2), then nsf_attach. If the attach fails the descriptor is closed
 * and the call fails with the attach's errno. */
int nsf_open(const char *path, int flags, ... /* mode_t mode */);

/* Attaches an open descriptor of a file on a nosyncfs mount and asks for a
 * lease of its NF extents (a write lease if fd is open for writing).
 * Attaching an attached descriptor does nothing and returns 0.
 * Errors: ENOTSUP the file is not a regular file on nosyncfs; EPERM the
 * mount does not allow direct access, or not to this process's user or
 * group; EBADF; EMFILE fd is past the hard RLIMIT_NOFILE at the first
 * attach; ETIMEDOUT or ECONNRESET the daemon did not answer.
 * A file with no NF extents yet attaches (the data calls fall back until a
 * lease is granted); the library asks again at most once a second while a
 * data call finds no lease, and nsf_refresh asks at once. */
int nsf_attach(int fd);

/* Gives up the lease; the descriptor stays open and is the caller's.
 * EBADF if it is not attached. */
int nsf_detach(int fd);

/* nsf_detach, then close(2). */
int nsf_close(int fd);

ssize_t nsf_pread(int fd, void *buf, size_t count, off_t offset);
ssize_t nsf_pwrite(int fd, const void *buf, size_t count, off_t offset);
/* At the descriptor's file position, which the library keeps for attached
 * descriptors (nsf_lseek moves it; nsf_detach hands it back to the kernel). */
ssize_t nsf_read(int fd, void *buf, size_t count);
ssize_t nsf_write(int fd, const void *buf, size_t count);
off_t nsf_lseek(int fd, off_t offset, int whence);

/* The vectored forms, as preadv(2), pwritev(2), readv(2), writev(2),
 * preadv2(2) and pwritev2(2) (offset -1: at the file position). A vector of
 * at most 64 KiB in all is served from the mapping as one request, all or
 * nothing; a larger one buffer by buffer, each as nsf_pread or nsf_pwrite.
 * Of pwritev2's flags, RWF_DSYNC and RWF_SYNC are met by every direct write
 * (durable on return) and RWF_HIPRI asks nothing; any other (RWF_APPEND,
 * RWF_NOWAIT, ...) sends the call to the descriptor as it is. */
struct iovec;
ssize_t nsf_preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset);
ssize_t nsf_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset);
ssize_t nsf_readv(int fd, const struct iovec *iov, int iovcnt);
ssize_t nsf_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t nsf_preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);
ssize_t nsf_pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);

/* As fsync(2) and fdatasync(2), but returning at once, with no system
 * call, when they would have nothing to do: the descriptor holds the
 * lease that appends to the file, every byte inside the size is NF (so
 * every write was durable when it returned), and when the lease was
 * granted nothing waited for a sync and no other descriptor of the file
 * was open for writing (the daemon revokes the lease when one opens, and
 * before any change fsync would have to make durable). Otherwise they are
 * the system calls. Detach a descriptor (nsf_detach) before mapping it
 * with mmap(2): a mapping's pages are the kernel's (only fsync(2) writes
 * back what is stored through them), and a fault past the size the kernel
 * last saw (a stat refreshes it) is a SIGBUS. The shim does this itself. */
int nsf_fsync(int fd);
int nsf_fdatasync(int fd);

/* A pointer to [offset, offset+length) of the file inside the device
 * mapping, for a range wholly inside one leased NF extent. Stores there are
 * durable after nsf_persist covers them. The pointer is valid until the
 * lease is revoked (see nsf_on_revoke) or the descriptor detached. With
 * a read lease the pointer is given too, but storing through it is the
 * caller's error: the mapping is writable, the lease is not.
 * Errors: ENODATA the range is not wholly inside a leased NF extent (or
 * there is no lease now); EBADF fd is not attached. */
int nsf_map(int fd, off_t offset, size_t length, void **addr);

/* Makes stores into [addr, addr+length) of a mapping from nsf_map durable.
 * EINVAL if the range is not inside a device mapping of this library. */
int nsf_persist(const void *addr, size_t length);

/* 1 while [offset, offset+length) is inside one extent of fd's live lease,
 * else 0. It cannot tell whether that is still the lease a pointer came
 * from: after nsf_on_revoke's callback, call nsf_map again. */
int nsf_map_valid(int fd, off_t offset, size_t length);

/* Asks the daemon for a new lease now and waits for the answer. 0 with a
 * lease, -1 with errno (ENODATA: the file has no NF extents; ENOTCONN:
 * the daemon closed the connection, attach again; EDEADLK: called from the
 * revocation callback, whose thread delivers the answer). */
int nsf_refresh(int fd);

/* Called from the library's own thread when a lease of fd is revoked (or
 * the daemon's connection ends, which unmaps the device), before the
 * library acknowledges it: stores through nsf_map pointers of
 * fd must stop before the callback returns. It may detach or close fd,
 * but not wait for a lease of the same mount (nsf_attach, nsf_open and
 * nsf_refresh fail there with EDEADLK: its thread receives the answers).
 * One callback per process; NULL removes it. */
typedef void (*nsf_revoke_fn)(int fd, void *arg);
void nsf_on_revoke(nsf_revoke_fn fn, void *arg);

/* The calling thread's message for its last failed call. */
const char *nsf_errmsg(void);

/* Process-wide counters since the library was loaded. */
struct nsf_counters {
  uint64_t direct_reads;     /* nsf_pread/nsf_read served from the mapping */
  uint64_t direct_writes;    /* nsf_pwrite/nsf_write served into it */
  uint64_t fallback_reads;   /* through the descriptor */
  uint64_t fallback_writes;
  uint64_t leases_granted;
  uint64_t leases_revoked;
};
void nsf_get_counters(struct nsf_counters *out);

#ifdef __cplusplus
}
#endif

#endif /* NOSYNCFS_H */
