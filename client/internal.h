/* What libnosyncfs exports for its LD_PRELOAD shim only: not part of the
 * API, not installed. */
#ifndef NOSYNCFS_CLIENT_INTERNAL_H
#define NOSYNCFS_CLIENT_INTERNAL_H

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if fd is attached: the shim routes its calls to nsf_*, and every other
 * descriptor's to libc (whose calls are cancellation points, and which
 * other interposers may wrap). One load from the fd table. */
__attribute__((visibility("default"))) int nsf_internal_attached(int fd);

/* Hands an attached descriptor's position (which the library keeps) to the
 * kernel, as before a dup: the copy starts where the original is. */
__attribute__((visibility("default"))) void nsf_internal_sync_position(int fd);
/* The program is about to map the descriptor: it is detached (its calls go
 * to the kernel from now on, coherent with the mapping's pages, and its
 * syncs are real), and the kernel's size of the file is brought up to
 * what appenders published (a fault past the size the kernel knows is a
 * SIGBUS). */
__attribute__((visibility("default"))) void nsf_internal_mapping(int fd);

/* The shim passed a call that may change an attached file's layout or
 * size (ftruncate, fallocate) to the kernel: ask for a fresh lease now,
 * without waiting, rather than at the next data call a second later. */
__attribute__((visibility("default"))) void nsf_internal_layout_changed(int fd);

#ifdef __cplusplus
}
#endif

#endif /* NOSYNCFS_CLIENT_INTERNAL_H */
