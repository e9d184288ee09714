#define FUSE_USE_VERSION 312
#include "fs/fuse_ops.h"

#include <fuse_lowlevel.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "client/protocol.h"
#include "fs/credentials.h"
#include "fs/direct_server.h"
#include "fs/transport/fuse_channel.h"
#include "fs/ioctl.h"
#include "fs/remount.h"
#include "fs/vfs.h"

namespace nosyncfs {
namespace {

// Attributes may be cached by the kernel this long: some change without a
// request of the kernel's (atime as reads update it), and a second is what
// the kernel's own coherence with them costs.
constexpr double kCacheTimeout = 1.0;
// Entries (name -> inode) of directories may be cached for a day: every
// change to a name goes through this mount, whose kernel updates its
// dentries itself, as for a local file system, so revalidating them (a
// LOOKUP before each path walk through a directory older than the timeout)
// would only ever confirm them. Entries of other files keep a second, so
// that a wrong link count in the kernel's cache lasts at most that long:
// the kernel drops its count by one when an unlink returns, even when a
// GETATTR reply that already counted the unlink was applied first (a stat
// racing the unlink), and at zero it fails link(2) with ENOENT itself. A
// revalidation of the entry reads the true count.
constexpr double kDirEntryTimeout = 86400.0;
constexpr double kFileEntryTimeout = 1.0;

constexpr char kReservedXattrPrefix[] = "user.nosyncfs.";

FuseContext* ContextOf(fuse_req_t req) { return static_cast<FuseContext*>(fuse_req_userdata(req)); }
Vfs* VfsOf(fuse_req_t req) { return ContextOf(req)->vfs; }

// Every request that would change the file system runs under a ticket,
// so that a remount read-only waits for it (Vfs::BeginChange). Read-only,
// it is answered EROFS here, before the Vfs sees it: the kernel refuses
// changes itself on a read-only mount (MS_RDONLY), but a mount(2) with
// MS_REMOUNT that lifts that never reaches the daemon, whose device may
// be mapped read-only. Empty (and answered) if refused.
std::optional<Vfs::ChangeTicket> ChangeTicketOr(fuse_req_t req) {
  std::optional<Vfs::ChangeTicket> ticket = VfsOf(req)->BeginChange();
  if (!ticket) fuse_reply_err(req, EROFS);
  return ticket;
}

bool IsReservedXattr(const char* name) {
  return std::strncmp(name, kReservedXattrPrefix, sizeof(kReservedXattrPrefix) - 1) == 0;
}

// The caller of a request, for the set-ID bits its change clears. Write,
// truncate and O_TRUNC open carry the kernel's word on CAP_FSETID
// (FUSE_*_KILL_SUIDGID, set exactly when the caller lacks it: pass
// `kernel_flag`); for the rest (chown, fallocate, copy_file_range) it is
// read from /proc when it matters. Groups come from /proc too, only for a
// set-group-ID file without group execute. Valid while req is unanswered.
class RequestModifier final : public ProcessModifier {
 public:
  RequestModifier(fuse_req_t req, std::optional<bool> kernel_flag)
      : ProcessModifier(fuse_req_ctx(req)->pid, fuse_req_ctx(req)->gid,
                        kernel_flag ? std::optional<bool>(!*kernel_flag) : std::nullopt),
        req_(req) {}

 private:
  std::vector<gid_t> SupplementaryGroups() const override {
    std::vector<gid_t> groups(64);
    int n = fuse_req_getgroups(req_, static_cast<int>(groups.size()), groups.data());
    if (n > static_cast<int>(groups.size())) {
      groups.resize(static_cast<size_t>(n));
      n = fuse_req_getgroups(req_, n, groups.data());
    }
    groups.resize(n > 0 ? std::min(static_cast<size_t>(n), groups.size()) : 0);
    return groups;
  }
  fuse_req_t req_;
};

RequestModifier KernelFlagged(fuse_req_t req) {
  return RequestModifier(req, CurrentRawRequest().kill_suidgid);
}
RequestModifier Unflagged(fuse_req_t req) { return RequestModifier(req, std::nullopt); }

// The Vfs's durability statistics, the daemon's heap, then the requests.
std::string StatsText(FuseContext* ctx) {
  std::string out = ctx->vfs->StatsText();
  struct mallinfo2 heap = mallinfo2();
  out += "heap_bytes " + std::to_string(heap.uordblks + heap.hblkhd) + "\n";
  if (ctx->direct != nullptr) out += ctx->direct->StatsText();
  out += TransportStatsText();
  out += ctx->stats.Format();
  return out;
}

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Caller{ctx->uid, ctx->gid};
}

// The one place a failed Status becomes a reply.
void ReplyError(fuse_req_t req, const Status& st) {
  if (st.code() == EIO || st.code() == EUCLEAN) spdlog::error("{}", st.ToString());
  fuse_reply_err(req, st.code());
}

fuse_entry_param EntryParam(fuse_req_t req, const Entry& e) {
  fuse_entry_param p{};
  p.ino = e.ino;
  p.generation = 1;
  p.attr = e.attr;
  p.attr_timeout = VfsOf(req)->AttrTimeout(e.ino, kCacheTimeout);
  p.entry_timeout = S_ISDIR(e.attr.st_mode) ? kDirEntryTimeout : kFileEntryTimeout;
  return p;
}

void ReplyEntry(fuse_req_t req, const Result<Entry>& r) {
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_entry_param p = EntryParam(req, *r);
  fuse_reply_entry(req, &p);
}

void ReplyStatus(fuse_req_t req, const Status& st) {
  if (!st.ok()) return ReplyError(req, st);
  fuse_reply_err(req, 0);
}

void OpInit(void*, fuse_conn_info* conn) {
  // Writes must reach the daemon before write(2) returns (SEMANTICS.md D2),
  // so the kernel must not cache them.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // Set-ID bits are cleared by the daemon, with the flags the kernel sends
  // under FUSE_HANDLE_KILLPRIV_V2, which the FuseChannel claims (libfuse
  // 3.14 does not know it). Version 1, which libfuse claims by default,
  // would leave the kernel asking for security.capability on every write.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  // Requests read with read(2), so that the FuseChannel sees them whole.
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  // 1 MiB requests: as large as libfuse's buffer allows; readahead as much
  // (the kernel takes at most what it offered; main.cc raises it after).
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  // FUSE_CAP_ATOMIC_O_TRUNC stays on: open/create truncate (Vfs::Open).
  // The daemon tells the kernel of changes it did not send (direct writes,
  // the fallocate ioctl) by invalidating attributes only (main.cc); with
  // this the kernel then drops a file's cached pages itself when it sees a
  // new mtime or size.
  if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  // File handles (name_to_handle_at, NFS export) outlive the kernel's
  // inode cache: it looks up "." and ".." by inode number (Vfs::Lookup).
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
}

void OpDestroy(void* userdata) {
  Status st = static_cast<FuseContext*>(userdata)->vfs->Shutdown();
  if (!st.ok()) spdlog::error("shutdown: {}", st.ToString());
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyEntry(req, VfsOf(req)->Lookup(parent, name));
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  VfsOf(req)->Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) VfsOf(req)->Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  auto r = VfsOf(req)->Getattr(ino);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_attr(req, &*r, VfsOf(req)->AttrTimeout(ino, kCacheTimeout));
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  SetattrRequest s;
  s.set_mode = to_set & FUSE_SET_ATTR_MODE;
  s.set_uid = to_set & FUSE_SET_ATTR_UID;
  s.set_gid = to_set & FUSE_SET_ATTR_GID;
  s.set_size = to_set & FUSE_SET_ATTR_SIZE;
  s.set_atime = to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW);
  s.set_mtime = to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);
  s.atime_now = to_set & FUSE_SET_ATTR_ATIME_NOW;
  s.mtime_now = to_set & FUSE_SET_ATTR_MTIME_NOW;
  s.set_ctime = to_set & FUSE_SET_ATTR_CTIME;
  s.mode = attr->st_mode;
  s.uid = attr->st_uid;
  s.gid = attr->st_gid;
  s.size = static_cast<uint64_t>(attr->st_size);
  s.atime = attr->st_atim;
  s.mtime = attr->st_mtim;
  s.ctime = attr->st_ctim;
  // FATTR_KILL_SUIDGID comes with a size change only.
  RequestModifier who = s.set_size ? KernelFlagged(req) : Unflagged(req);
  s.who = &who;
  auto r = VfsOf(req)->Setattr(ino, s);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_attr(req, &*r, VfsOf(req)->AttrTimeout(ino, kCacheTimeout));
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = VfsOf(req)->Readlink(ino);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_readlink(req, r->c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  ReplyEntry(req, VfsOf(req)->Mknod(parent, name, mode, rdev, CallerOf(req)));
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  ReplyEntry(req, VfsOf(req)->Mkdir(parent, name, mode, CallerOf(req)));
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  ReplyStatus(req, VfsOf(req)->Unlink(parent, name));
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  ReplyStatus(req, VfsOf(req)->Rmdir(parent, name));
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  ReplyEntry(req, VfsOf(req)->Symlink(parent, name, target, CallerOf(req)));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  ReplyStatus(req, VfsOf(req)->Rename(parent, name, newparent, newname, flags));
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  ReplyEntry(req, VfsOf(req)->Link(ino, newparent, newname));
}

// What an open or create of a regular file replies besides the handle:
//  - no keep_cache: the kernel drops the file's cached pages at every open;
//  - noflush (FOPEN_NOFLUSH): close(2) sends no FLUSH. The daemon has
//    nothing to do at close (writes are written through, POSIX locks are
//    the kernel's, errors show at write or fsync), and a FLUSH would make
//    every close a round trip. It also matters to the daemon's own life:
//    a descriptor of a file on its own mount that the daemon closes (a
//    direct-access client's, passed for a lease; or any left at its exit)
//    would otherwise wait for the daemon to answer, and a daemon being
//    killed never would (docs/semantics.md, "The daemon").
//  - fh: the access mode, for OpIoctl.
void ReplyOpenFlags(fuse_file_info* fi) {
  fi->keep_cache = 0;
  fi->noflush = 1;
  fi->fh = static_cast<uint64_t>(fi->flags & O_ACCMODE);
}

// fh holds the access mode (ReplyOpenFlags).
bool OpenForWriting(const fuse_file_info* fi) { return fi->fh != O_RDONLY; }

void ReleaseFile(fuse_req_t req, fuse_ino_t ino, const fuse_file_info* fi) {
  if (OpenForWriting(fi)) VfsOf(req)->WriterClosed(ino);
  VfsOf(req)->Release(ino);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  std::optional<Vfs::ChangeTicket> ticket;
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    ticket = ChangeTicketOr(req);
    if (!ticket) return;
  }
  Status st = VfsOf(req)->Open(ino, fi->flags & O_TRUNC, KernelFlagged(req));
  if (!st.ok()) return ReplyError(req, st);
  ReplyOpenFlags(fi);
  if (OpenForWriting(fi)) VfsOf(req)->WriterOpened(ino);
  if (fuse_reply_open(req, fi) != 0) ReleaseFile(req, ino, fi);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  auto r = CurrentRawRequest().tmpfile
               ? VfsOf(req)->CreateTmpfile(parent, mode, CallerOf(req))
               : VfsOf(req)->Create(parent, name, mode, fi->flags & O_EXCL, fi->flags & O_TRUNC,
                                    CallerOf(req), KernelFlagged(req));
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_entry_param p = EntryParam(req, *r);
  ReplyOpenFlags(fi);
  if (OpenForWriting(fi)) VfsOf(req)->WriterOpened(r->ino);
  if (fuse_reply_create(req, &p, fi) != 0) ReleaseFile(req, r->ino, fi);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Status st = VfsOf(req)->Read(ino, static_cast<uint64_t>(off), size,
                               [&](const struct iovec* iov, int count) {
                                 fuse_reply_iov(req, iov, count);
                               });
  if (!st.ok()) ReplyError(req, st);
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info*) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  auto r = VfsOf(req)->Write(ino, static_cast<uint64_t>(off), buf, size, KernelFlagged(req));
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_write(req, *r);
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  ReleaseFile(req, ino, fi);
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  ReplyStatus(req, VfsOf(req)->Fsync(ino, datasync != 0));
}

// An open directory (fi->fh): where the current pass of readdir ends. A
// pass begins at opendir and again at offset 0 (rewinddir), which must see
// the directory as it is then.
struct DirStream {
  std::atomic<uint64_t> end;
};

DirStream* DirStreamOf(const fuse_file_info* fi) {
  return reinterpret_cast<DirStream*>(static_cast<uintptr_t>(fi->fh));
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto end = VfsOf(req)->Opendir(ino);
  if (!end.ok()) return ReplyError(req, end.status());
  auto* ds = new DirStream{*end};
  fi->fh = reinterpret_cast<uintptr_t>(ds);
  if (fuse_reply_open(req, fi) != 0) delete ds;
}

void ReaddirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
                   bool plus) {
  DirStream* ds = DirStreamOf(fi);
  if (off == 0) {
    auto end = VfsOf(req)->Opendir(ino);
    if (!end.ok()) return ReplyError(req, end.status());
    ds->end = *end;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  Status st = VfsOf(req)->Readdir(
      ino, static_cast<uint64_t>(off), ds->end, plus,
      [&](std::string_view name, const struct stat& attr, uint64_t next) {
        std::string n(name);
        size_t need;
        if (plus) {
          fuse_entry_param p = EntryParam(req, Entry{static_cast<uint64_t>(attr.st_ino), attr});
          need = fuse_add_direntry_plus(req, buf.data() + used, size - used, n.c_str(), &p,
                                        static_cast<off_t>(next));
        } else {
          need = fuse_add_direntry(req, buf.data() + used, size - used, n.c_str(), &attr,
                                   static_cast<off_t>(next));
        }
        if (need > size - used) return false;
        used += need;
        return true;
      });
  if (!st.ok() && used == 0) return ReplyError(req, st);
  fuse_reply_buf(req, buf.data(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReaddirCommon(req, ino, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   fuse_file_info* fi) {
  ReaddirCommon(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete DirStreamOf(fi);
  fuse_reply_err(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  ReplyStatus(req, VfsOf(req)->Fsyncdir(ino));
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  auto r = VfsOf(req)->Statfs();
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_statfs(req, &*r);
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  if (IsReservedXattr(name)) return (void)fuse_reply_err(req, EPERM);
  ReplyStatus(req, VfsOf(req)->Setxattr(ino, name, std::string_view(value, size), flags));
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Result<std::string> r = Status::Error(ENODATA, "no such xattr");
  if (!IsReservedXattr(name)) {
    r = VfsOf(req)->Getxattr(ino, name);
  } else if (ino == FUSE_ROOT_ID && std::strcmp(name, kStatsXattr) == 0) {
    r = StatsText(ContextOf(req));
  } else if (std::strcmp(name, NSF_DIRECT_XATTR) == 0) {
    // On every inode: the client library asks the file it opened.
    const DirectServer* direct = ContextOf(req)->direct;
    r = direct != nullptr ? direct->socket_path() : std::string("off");
  }
  if (!r.ok()) return ReplyError(req, r.status());
  if (size == 0) return (void)fuse_reply_xattr(req, r->size());
  if (r->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data(), r->size());
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto r = VfsOf(req)->Listxattr(ino);
  if (!r.ok()) return ReplyError(req, r.status());
  if (size == 0) return (void)fuse_reply_xattr(req, r->size());
  if (r->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data(), r->size());
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  if (IsReservedXattr(name)) return (void)fuse_reply_err(req, EPERM);
  ReplyStatus(req, VfsOf(req)->Removexattr(ino, name));
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info*) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  if (offset < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
  ReplyStatus(req, VfsOf(req)->Fallocate(ino, mode, static_cast<uint64_t>(offset),
                                         static_cast<uint64_t>(length), Unflagged(req)));
}

// NSF_IOC_REMOUNT (fs/ioctl.h), on the root, for a caller with
// CAP_SYS_ADMIN: no change ticket, since it may make the file system
// read-only, which waits for every ticket.
void Remount(fuse_req_t req, const void* in_buf, size_t in_bufsz) {
  constexpr int kCapSysAdmin = 21;  // <linux/capability.h>
  nsf_remount_args args;
  if (in_bufsz != sizeof(args)) return (void)fuse_reply_err(req, EINVAL);
  if (!ProcessHasCapability(fuse_req_ctx(req)->pid, kCapSysAdmin)) {
    return (void)fuse_reply_err(req, EPERM);
  }
  std::memcpy(&args, in_buf, sizeof(args));
  ContextOf(req)->remounter->Handle(&args);
  fuse_reply_ioctl(req, 0, &args, sizeof(args));
}

void OpIoctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, fuse_file_info* fi,
             unsigned flags, const void* in_buf, size_t in_bufsz, size_t) {
  if (flags & FUSE_IOCTL_COMPAT) return (void)fuse_reply_err(req, ENOTTY);
  if (cmd == NSF_IOC_REMOUNT && ino == FUSE_ROOT_ID && (flags & FUSE_IOCTL_DIR) &&
      ContextOf(req)->remounter != nullptr) {
    return Remount(req, in_buf, in_bufsz);
  }
  // On regular files only: a directory's handle is its DirStream.
  if (cmd != NSF_IOC_FALLOCATE || (flags & FUSE_IOCTL_DIR)) {
    return (void)fuse_reply_err(req, ENOTTY);
  }
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  nsf_fallocate_args args;
  if (in_bufsz != sizeof(args)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(&args, in_buf, sizeof(args));
  if ((fi->fh & O_ACCMODE) == O_RDONLY) return (void)fuse_reply_err(req, EBADF);
  if (args.reserved != 0 || args.offset > INT64_MAX || args.length == 0 ||
      args.length > INT64_MAX) {
    return (void)fuse_reply_err(req, EINVAL);
  }
  Status st = VfsOf(req)->Fallocate(ino, static_cast<int>(args.mode), args.offset, args.length,
                                    Unflagged(req));
  if (!st.ok()) return ReplyError(req, st);
  // The kernel learns nothing of a fallocate it did not send: drop its
  // cached attributes of the file, and it drops the pages itself when it
  // sees the new size or mtime (collapse and insert move bytes).
  VfsOf(req)->InvalidateKernelAttrs(ino);
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
  // Before the start is never inside the file: ENXIO, as ext4 and xfs say.
  if (off < 0) return (void)fuse_reply_err(req, ENXIO);
  auto r = VfsOf(req)->Lseek(ino, static_cast<uint64_t>(off), whence);
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_lseek(req, static_cast<off_t>(*r));
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*,
                     fuse_ino_t ino_out, off_t off_out, fuse_file_info*, size_t len, int flags) {
  auto ticket = ChangeTicketOr(req);
  if (!ticket) return;
  if (off_in < 0 || off_out < 0) return (void)fuse_reply_err(req, EINVAL);
  auto r = VfsOf(req)->CopyFileRange(ino_in, static_cast<uint64_t>(off_in), ino_out,
                                     static_cast<uint64_t>(off_out), len,
                                     static_cast<unsigned>(flags), Unflagged(req));
  if (!r.ok()) return ReplyError(req, r.status());
  fuse_reply_write(req, *r);
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.destroy = OpDestroy;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.symlink = OpSymlink;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.create = OpCreate;
  ops.read = OpRead;
  ops.write = OpWrite;
  // No flush: every open is FOPEN_NOFLUSH (ReplyOpenFlags); a kernel that
  // predates it gets ENOSYS once and sends FLUSH no more.
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.releasedir = OpReleasedir;
  ops.fsyncdir = OpFsyncdir;
  ops.statfs = OpStatfs;
  ops.setxattr = OpSetxattr;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  ops.removexattr = OpRemovexattr;
  ops.fallocate = OpFallocate;
  ops.lseek = OpLseek;
  ops.ioctl = OpIoctl;
  ops.copy_file_range = OpCopyFileRange;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& FuseOps() {
  static const fuse_lowlevel_ops ops = MakeOps();
  return ops;
}

}  // namespace nosyncfs
