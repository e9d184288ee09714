#define FUSE_USE_VERSION 312
#include "fs/transport/fuse_channel.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fs/transport/ring_abi.h"
#include "fs/transport/uring_channel.h"

namespace nosyncfs {
namespace {

// Capabilities claimed in the INIT reply whenever the kernel offers them.
constexpr uint32_t kClaimedInitFlags = FUSE_HANDLE_KILLPRIV_V2 | FUSE_PARALLEL_DIROPS;

thread_local RawRequest t_request;
// The stats, INIT hook and transport of the session this process serves
// (one session per daemon).
RequestStats* g_stats = nullptr;
std::function<void()> g_after_init;
fuse_session* g_session = nullptr;
TransportOptions g_options;
// Entries per queue when not told: enough that a request waiting (a lease
// revocation waits up to lease_break for its holder) rarely holds up its
// CPU's others; idle ones cost a parked command and their buffers.
constexpr uint32_t kDefaultThreadsPerQueue = 4;

// The rings, once INIT has claimed them (null: /dev/fuse only).
std::mutex g_uring_mu;
std::unique_ptr<UringChannel> g_uring;
std::atomic<bool> g_over_uring{false};

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

std::atomic<uint32_t> g_offered_init_flags2{0};

// Inspects a request as received, from /dev/fuse or a ring, and rewrites
// what libfuse would not understand.
void Receive(char* buf, size_t len) {
  Inspect(buf, len);
  if (t_request.tmpfile) {
    // Arguments and reply are CREATE's; libfuse 3.14 only knows CREATE.
    reinterpret_cast<fuse_in_header*>(buf)->opcode = FUSE_CREATE;
  }
  if (t_request.opcode == FUSE_INIT) {
    if (const auto* init = ArgOf<fuse_init_in>(buf, len)) {
      g_offered_init_flags.store(init->flags);
      g_offered_init_flags2.store((init->flags & FUSE_INIT_EXT) != 0 ? init->flags2 : 0);
      g_init_unique.store(reinterpret_cast<const fuse_in_header*>(buf)->unique);
    }
  }
}

ssize_t ChannelRead(int fd, void* buf, size_t len, void*) {
  ssize_t n = ::read(fd, buf, len);
  if (n > 0) Receive(static_cast<char*>(buf), static_cast<size_t>(n));
  return n;
}

// A request from a ring: as from /dev/fuse, then libfuse decodes it and the
// handler replies, on this thread.
void ServeRingRequest(char* request, size_t len) {
  Receive(request, len);
  fuse_buf buf{};
  buf.mem = request;
  buf.size = len;
  fuse_session_process_buf(g_session, &buf);
}

// Sets up the rings for the INIT reply `init` and claims them in it, if the
// kernel offers them and the mount allows; else says why not. Runs before
// the reply is written: a claim the daemon then cannot serve would leave
// every request of the mount waiting.
std::string ClaimRings(fuse_init_out* init, size_t init_bytes, int fd) {
  if (!g_options.uring) return "uring=off";
  if ((g_offered_init_flags2.load() & ring_abi::kInitFlags2OverIoUring) == 0) {
    return "the kernel does not offer io_uring (it needs Linux 6.14 or later with "
           "CONFIG_FUSE_IO_URING, and the fuse module parameter enable_uring on)";
  }
  if (init_bytes < offsetof(fuse_init_out, flags2) + sizeof(init->flags2)) {
    return "the INIT reply has no flags2";
  }
  // The kernel's largest request or reply: max(8 KiB, max_write, max_pages
  // pages), max_pages its default 32 where the reply sets none.
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t max_pages = (init->flags & FUSE_MAX_PAGES) != 0 ? std::max<size_t>(init->max_pages, 32) : 32;
  UringChannel::Config config;
  config.dev_fd = fd;
  config.queues = UringChannel::PossibleCpus();
  config.threads_per_queue = g_options.uring_threads_per_queue != 0
                                 ? g_options.uring_threads_per_queue
                                 : kDefaultThreadsPerQueue;
  config.payload_bytes = std::max({size_t{8192}, size_t{init->max_write}, max_pages * page});
  config.serve = ServeRingRequest;
  auto prepared = UringChannel::Prepare(std::move(config));
  if (!prepared.ok()) return "cannot set up the rings: " + prepared.status().message();
  std::lock_guard lock(g_uring_mu);
  g_uring = std::move(prepared).value();
  init->flags |= FUSE_INIT_EXT;
  init->flags2 |= ring_abi::kInitFlags2OverIoUring;
  return "";
}

// After the INIT reply: parks the rings' entries, and says which transport
// the mount got.
void StartRings(const std::string& not_claimed) {
  std::lock_guard lock(g_uring_mu);
  if (g_uring == nullptr) {
    spdlog::info("transport: /dev/fuse ({})", not_claimed);
    return;
  }
  UringChannel::Started started = g_uring->Start();
  if (started.every_queue) {
    g_over_uring.store(true);
    spdlog::info("transport: io_uring, {} queues, {} threads{}", g_uring->queues(),
                 started.registered,
                 started.first_error.empty() ? "" : " (some entries refused: " + started.first_error + ")");
    return;
  }
  // The kernel falls back to /dev/fuse when a REGISTER fails.
  spdlog::warn("transport: /dev/fuse (the kernel refused the rings: {})", started.first_error);
}

// The INIT reply, with the capabilities we claim (if offered) added; the
// reply to a ring's request, into its ring.
ssize_t ChannelWritev(int fd, struct iovec* iov, int count, void*) {
  if (ssize_t taken = UringChannel::TakeReply(iov, count); taken >= 0) return taken;
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
      const std::string not_claimed = ClaimRings(init, body.size(), fd);
      std::vector<struct iovec> patched(iov, iov + count);
      patched[1].iov_base = body.data();
      ssize_t n = ::writev(fd, patched.data(), count);
      // The kernel applies the INIT reply within this writev.
      if (n >= 0) {
        StartRings(not_claimed);
        if (g_after_init) g_after_init();
      } else {
        DetachFuseChannel();
      }
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

int AttachFuseChannel(fuse_session* se, RequestStats* stats, TransportOptions options,
                      std::function<void()> after_init) {
  g_stats = stats;
  g_session = se;
  g_options = options;
  g_after_init = std::move(after_init);
  fuse_custom_io io{};
  io.read = ChannelRead;
  io.writev = ChannelWritev;
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

void DetachFuseChannel() {
  std::unique_ptr<UringChannel> rings;
  {
    std::lock_guard lock(g_uring_mu);
    rings = std::move(g_uring);
  }
  g_over_uring.store(false);
  rings.reset();  // joins the threads, outside the lock
}

std::string TransportStatsText() {
  std::lock_guard lock(g_uring_mu);
  const bool uring = g_over_uring.load() && g_uring != nullptr;
  return std::string("transport ") + (uring ? "uring" : "dev_fuse") + "\n" +
         "uring_queues " + std::to_string(uring ? g_uring->queues() : 0) + "\n" +
         "uring_threads " + std::to_string(uring ? g_uring->threads() : 0) + "\n";
}

}  // namespace nosyncfs
