/* The direct-access protocol between the nosyncfs daemon and the client
 * library: fixed-size little-endian records, one message per packet of a
 * SOCK_SEQPACKET Unix socket. client/FORMAT.md describes every field and
 * the order of messages; this header is the one definition both sides
 * compile against. Plain C, so that it stays a wire format. */
#ifndef NOSYNCFS_CLIENT_PROTOCOL_H
#define NOSYNCFS_CLIENT_PROTOCOL_H

#include <stdint.h>

#define NSF_PROTOCOL_VERSION 2u

/* The root's read-only xattr naming the daemon's socket (its path), or
 * "off" when the mount does not allow direct access. Readable on every
 * inode of the mount, so a client asks it of the file it opened. */
#define NSF_DIRECT_XATTR "user.nosyncfs.direct"

enum nsf_msg_type {
  NSF_MSG_HELLO = 1,   /* client -> daemon */
  NSF_MSG_WELCOME = 2, /* daemon -> client, with the device's fds */
  NSF_MSG_LEASE = 3,   /* client -> daemon, with the file's fd */
  NSF_MSG_GRANT = 4,   /* daemon -> client, then nsf_extent[count] */
  NSF_MSG_REFUSE = 5,  /* daemon -> client */
  NSF_MSG_REVOKE = 6,  /* daemon -> client */
  NSF_MSG_ACK = 7,     /* client -> daemon */
  NSF_MSG_RELEASE = 8, /* client -> daemon */
};

/* How stores into the device mapping become durable (WELCOME). */
enum nsf_persistence {
  NSF_PERSIST_CACHE_LINE = 1, /* real persistent memory: flush + fence */
  NSF_PERSIST_PAGE = 2,       /* page-cache backed: msync of the pages */
  NSF_PERSIST_STRICT = 3,     /* strict emulation: copy into the image */
};

/* Why a lease was revoked (REVOKE), for logs and statistics. */
enum nsf_revoke_reason {
  NSF_REVOKE_LAYOUT = 1,   /* the file's mapping or size is changing */
  NSF_REVOKE_SHUTDOWN = 2, /* the file system is being unmounted */
};

struct nsf_msg_hello {
  uint32_t type; /* NSF_MSG_HELLO */
  uint32_t version;
};

/* SCM_RIGHTS: NSF_PERSIST_STRICT sends two fds, the volatile copy (to map)
 * and the image (persist pwrites into it); the others send one, the device
 * (to map, and to persist through). Either is mapped whole, from offset 0,
 * device_size bytes, shared. */
struct nsf_msg_welcome {
  uint32_t type; /* NSF_MSG_WELCOME */
  uint32_t version;
  uint64_t device_size;
  uint32_t persistence;    /* enum nsf_persistence */
  uint32_t lease_break_ms; /* how long an ACK may take before a cut-off */
};

/* SCM_RIGHTS: one fd of the file, opened by the client. Opened for writing
 * (O_WRONLY or O_RDWR), it asks for a write lease; otherwise a read lease. */
struct nsf_msg_lease {
  uint32_t type; /* NSF_MSG_LEASE */
  uint32_t reserved;
  uint64_t request;  /* echoed in GRANT or REFUSE */
  uint64_t replaces; /* the lease of this file the client holds now, or 0:
                        a successor of the file's appender appends in its
                        place (the client uses one of them at a time) */
};

/* One leased NF extent, clipped to the file size at the grant. */
struct nsf_extent {
  uint64_t file_offset;   /* bytes, block-aligned */
  uint64_t length;        /* bytes; the last may end at the size */
  uint64_t device_offset; /* bytes into the mapping */
};

#define NSF_GRANT_MAX_EXTENTS 2048u

/* GRANT flags. */
enum nsf_grant_flags {
  /* The lease may append: its extents run past the size, and a write that
   * ends past the size stores the new size into the slot's `size` (after
   * persisting the data), persists those 8 bytes, and only then returns.
   * One lease of a file at a time has it. */
  NSF_GRANT_APPEND = 1,
  /* At the grant, fsync(2) of the file had nothing to do (every byte
   * inside the size NF, nothing waiting for a sync, and the asker's
   * descriptor the only one open for writing). While the lease lasts, and
   * its extents cover the whole size, the client's fsync and fdatasync
   * may return at once. Only with NSF_GRANT_APPEND. */
  NSF_GRANT_SYNCED = 2,
};

/* Followed in the same packet by count nsf_extent records, sorted by
 * file_offset. A file with more NF extents is granted its first
 * NSF_GRANT_MAX_EXTENTS; the rest go through the FUSE path. */
struct nsf_msg_grant {
  uint32_t type;     /* NSF_MSG_GRANT */
  uint32_t writable; /* 1: direct writes allowed; 0: reads only */
  uint64_t request;
  uint64_t lease;
  uint64_t size; /* the file size the lease holds for */
  uint32_t count;
  uint32_t flags; /* enum nsf_grant_flags */
  /* Writable leases: the device offset of the file's nsf_size_slot. */
  uint64_t slot;
};

/* A file's size slot, in the device mapping at GRANT.slot (32 bytes,
 * 8-byte words in the host's byte order). */
struct nsf_size_slot {
  uint64_t tag;    /* the daemon's: never stored by a client */
  uint64_t ino;    /* the daemon's */
  uint64_t size;   /* NSF_GRANT_APPEND: the size, stored with one 8-byte store */
  uint64_t writes; /* every writer adds 1 after each direct write; not persisted */
};

struct nsf_msg_refuse {
  uint32_t type; /* NSF_MSG_REFUSE */
  int32_t error; /* an errno: ENODATA no NF extents, EPERM not allowed, ... */
  uint64_t request; /* 0: the HELLO was refused; the daemon then hangs up */
};

struct nsf_msg_revoke {
  uint32_t type;   /* NSF_MSG_REVOKE */
  uint32_t reason; /* enum nsf_revoke_reason */
  uint64_t lease;
};

/* Sent once no store through the lease is in flight, and none will follow. */
struct nsf_msg_ack {
  uint32_t type;  /* NSF_MSG_ACK */
  uint32_t wrote; /* 1 if direct writes went through it: mtime is due */
  uint64_t lease;
};

/* The client is done with a lease (the file is being closed). */
struct nsf_msg_release {
  uint32_t type;  /* NSF_MSG_RELEASE */
  uint32_t wrote; /* 1 if direct writes went through it: mtime is due */
  uint64_t lease;
};

#ifdef __cplusplus
static_assert(sizeof(nsf_msg_hello) == 8, "wire layout");
static_assert(sizeof(nsf_msg_welcome) == 24, "wire layout");
static_assert(sizeof(nsf_msg_lease) == 24, "wire layout");
static_assert(sizeof(nsf_extent) == 24, "wire layout");
static_assert(sizeof(nsf_msg_grant) == 48, "wire layout");
static_assert(sizeof(nsf_size_slot) == 32, "wire layout");
static_assert(sizeof(nsf_msg_refuse) == 16, "wire layout");
static_assert(sizeof(nsf_msg_revoke) == 16, "wire layout");
static_assert(sizeof(nsf_msg_ack) == 16, "wire layout");
static_assert(sizeof(nsf_msg_release) == 16, "wire layout");
#endif

#endif /* NOSYNCFS_CLIENT_PROTOCOL_H */
