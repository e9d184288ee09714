#define FUSE_USE_VERSION 312
#include "fs/fuse_channel.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace nosyncfs {
namespace {

// Capabilities claimed in the INIT reply whenever the kernel offers them.
constexpr uint32_t kClaimedInitFlags = FUSE_HANDLE_KILLPRIV_V2 | FUSE_PARALLEL_DIROPS;

thread_local RawRequest t_request;
// The stats and INIT hook of the session this process serves (one session
// per daemon).
RequestStats* g_stats = nullptr;
std::function<void()> g_after_init;

const char* OpcodeName(uint32_t op) {
  switch (op) {
    case FUSE_LOOKUP: return "LOOKUP";
    case FUSE_FORGET: return "FORGET";
    case FUSE_GETATTR: return "GETATTR";
    case FUSE_SETATTR: return "SETATTR";
    case FUSE_READLINK: return "READLINK";
    case FUSE_SYMLINK: return "SYMLINK";
    case FUSE_MKNOD: return "MKNOD";
    case FUSE_MKDIR: return "MKDIR";
    case FUSE_UNLINK: return "UNLINK";
    case FUSE_RMDIR: return "RMDIR";
    case FUSE_RENAME: return "RENAME";
    case FUSE_LINK: return "LINK";
    case FUSE_OPEN: return "OPEN";
    case FUSE_READ: return "READ";
    case FUSE_WRITE: return "WRITE";
    case FUSE_STATFS: return "STATFS";
    case FUSE_RELEASE: return "RELEASE";
    case FUSE_FSYNC: return "FSYNC";
    case FUSE_SETXATTR: return "SETXATTR";
    case FUSE_GETXATTR: return "GETXATTR";
    case FUSE_LISTXATTR: return "LISTXATTR";
    case FUSE_REMOVEXATTR: return "REMOVEXATTR";
    case FUSE_FLUSH: return "FLUSH";
    case FUSE_INIT: return "INIT";
    case FUSE_OPENDIR: return "OPENDIR";
    case FUSE_READDIR: return "READDIR";
    case FUSE_RELEASEDIR: return "RELEASEDIR";
    case FUSE_FSYNCDIR: return "FSYNCDIR";
    case FUSE_GETLK: return "GETLK";
    case FUSE_SETLK: return "SETLK";
    case FUSE_SETLKW: return "SETLKW";
    case FUSE_ACCESS: return "ACCESS";
    case FUSE_CREATE: return "CREATE";
    case FUSE_INTERRUPT: return "INTERRUPT";
    case FUSE_BMAP: return "BMAP";
    case FUSE_DESTROY: return "DESTROY";
    case FUSE_IOCTL: return "IOCTL";
    case FUSE_POLL: return "POLL";
    case FUSE_NOTIFY_REPLY: return "NOTIFY_REPLY";
    case FUSE_BATCH_FORGET: return "BATCH_FORGET";
    case FUSE_FALLOCATE: return "FALLOCATE";
    case FUSE_READDIRPLUS: return "READDIRPLUS";
    case FUSE_RENAME2: return "RENAME2";
    case FUSE_LSEEK: return "LSEEK";
    case FUSE_COPY_FILE_RANGE: return "COPY_FILE_RANGE";
    case FUSE_SYNCFS: return "SYNCFS";
    case FUSE_TMPFILE: return "TMPFILE";
    default: return nullptr;
  }
}

// The request argument after the header, if the request is long enough.
template <typename T>
const T* ArgOf(const char* buf, size_t len) {
  if (len < sizeof(fuse_in_header) + sizeof(T)) return nullptr;
  return reinterpret_cast<const T*>(buf + sizeof(fuse_in_header));
}

// Notes what libfuse will not pass on about the request in buf.
void Inspect(const char* buf, size_t len) {
  t_request = RawRequest{};
  if (len < sizeof(fuse_in_header)) return;
  const auto* in = reinterpret_cast<const fuse_in_header*>(buf);
  t_request.opcode = in->opcode;
  if (g_stats != nullptr) g_stats->Count(in->opcode);
  switch (in->opcode) {
    case FUSE_WRITE:
      if (const auto* w = ArgOf<fuse_write_in>(buf, len)) {
        t_request.kill_suidgid = (w->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
      }
      break;
    case FUSE_SETATTR:
      if (const auto* s = ArgOf<fuse_setattr_in>(buf, len)) {
        t_request.kill_suidgid = (s->valid & FATTR_KILL_SUIDGID) != 0;
      }
      break;
    case FUSE_OPEN:
      if (const auto* o = ArgOf<fuse_open_in>(buf, len)) {
        t_request.kill_suidgid = (o->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
      }
      break;
    case FUSE_TMPFILE:
      t_request.tmpfile = true;
      [[fallthrough]];
    case FUSE_CREATE:
      if (const auto* c = ArgOf<fuse_create_in>(buf, len)) {
        t_request.kill_suidgid = (c->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
      }
      break;
    default:
      break;
  }
}

// What the kernel offered in the INIT request, kept for its reply.
std::atomic<uint32_t> g_offered_init_flags{0};
std::atomic<uint64_t> g_init_unique{0};

ssize_t ChannelRead(int fd, void* buf, size_t len, void*) {
  ssize_t n = ::read(fd, buf, len);
  if (n <= 0) return n;
  const char* b = static_cast<const char*>(buf);
  Inspect(b, static_cast<size_t>(n));
  if (t_request.tmpfile) {
    // Arguments and reply are CREATE's; libfuse 3.14 only knows CREATE.
    static_cast<fuse_in_header*>(buf)->opcode = FUSE_CREATE;
  }
  if (t_request.opcode == FUSE_INIT) {
    if (const auto* init = ArgOf<fuse_init_in>(b, static_cast<size_t>(n))) {
      g_offered_init_flags.store(init->flags);
      g_init_unique.store(reinterpret_cast<const fuse_in_header*>(b)->unique);
    }
  }
  return n;
}

// The INIT reply, with the capabilities we claim (if offered) added.
ssize_t ChannelWritev(int fd, struct iovec* iov, int count, void*) {
  if (count >= 2 && iov[0].iov_len == sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, max_background)) {
    const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
    uint64_t init_unique = g_init_unique.load();
    if (init_unique != 0 && out->unique == init_unique && out->error == 0) {
      g_init_unique.store(0);
      std::vector<char> body(static_cast<const char*>(iov[1].iov_base),
                             static_cast<const char*>(iov[1].iov_base) + iov[1].iov_len);
      auto* init = reinterpret_cast<fuse_init_out*>(body.data());
      init->flags |= g_offered_init_flags.load() & kClaimedInitFlags;
      std::vector<struct iovec> patched(iov, iov + count);
      patched[1].iov_base = body.data();
      ssize_t n = ::writev(fd, patched.data(), count);
      // The kernel applies the INIT reply within this writev.
      if (n >= 0 && g_after_init) g_after_init();
      return n;
    }
  }
  return ::writev(fd, iov, count);
}

}  // namespace

void RequestStats::Count(uint32_t opcode) {
  counts_[opcode < kSlots ? opcode : kSlots - 1].fetch_add(1, std::memory_order_relaxed);
}

uint64_t RequestStats::count(uint32_t opcode) const {
  return counts_[opcode < kSlots ? opcode : kSlots - 1].load(std::memory_order_relaxed);
}

std::string RequestStats::Format() const {
  std::string out;
  for (uint32_t op = 0; op < kSlots; ++op) {
    uint64_t n = counts_[op].load(std::memory_order_relaxed);
    const char* name = OpcodeName(op);
    // Every opcode libfuse knows, so that scripts find each key; others
    // only once seen.
    if (name == nullptr && n == 0) continue;
    std::string key = "requests_";
    if (name != nullptr) {
      for (const char* c = name; *c != '\0'; ++c) key += static_cast<char>(std::tolower(*c));
    } else {
      key += (op == kSlots - 1 ? "opcode_other" : "opcode_" + std::to_string(op));
    }
    out += key + " " + std::to_string(n) + "\n";
  }
  return out;
}

const RawRequest& CurrentRawRequest() { return t_request; }

int AttachFuseChannel(fuse_session* se, RequestStats* stats, std::function<void()> after_init) {
  g_stats = stats;
  g_after_init = std::move(after_init);
  fuse_custom_io io{};
  io.read = ChannelRead;
  io.writev = ChannelWritev;
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

}  // namespace nosyncfs
