#include "fs/transport/uring_channel.h"

#include <liburing.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "fs/transport/ring_abi.h"

namespace nosyncfs {
namespace {

// user_data of the two kinds of completion a ring sees.
constexpr uint64_t kTagEntry = 1;  // the entry's command: a request, or an error
constexpr uint64_t kTagStop = 2;   // the stop eventfd became readable

// How long a thread looks for its next request before it sleeps.
constexpr std::chrono::microseconds kPollBeforeSleep{50};

// Room before the payload for the fuse_in_header and the first argument,
// so that a request becomes one contiguous buffer without moving its
// payload (a write's data).
constexpr size_t kRequestHeadroom = 256;
static_assert(kRequestHeadroom >= sizeof(fuse_in_header) + ring_abi::kOpHeaderBytes);

// A 128-byte SQE (IORING_SETUP_SQE128), cleared: liburing's struct
// declares 64 bytes and a command area of zero length after them.
io_uring_sqe* ClearedSqe(io_uring* ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring);  // the ring has room: two commands at most
  auto* bytes = reinterpret_cast<unsigned char*>(reinterpret_cast<uintptr_t>(sqe));
  std::fill(bytes, bytes + 128, 0);
  return sqe;
}

void CopyCommand(io_uring_sqe* sqe, const ring_abi::CmdReq& req) {
  auto* area = reinterpret_cast<unsigned char*>(reinterpret_cast<uintptr_t>(sqe) +
                                                offsetof(io_uring_sqe, cmd));
  std::memcpy(area, &req, sizeof(req));
}
}  // namespace

// The ring and buffers one thread serves, and the thread.

class UringChannel::Entry {
 public:
  Entry(const Config* config, uint32_t qid, int stop_fd)
      : config_(config), qid_(qid), stop_fd_(stop_fd) {}
  ~Entry() {
    if (thread_.joinable()) thread_.join();
    if (ring_ready_) io_uring_queue_exit(&ring_);
    std::free(buffer_);
  }

  // Starts the thread, which sets up its ring and buffers and waits for
  // Go(); returns what the set-up found.
  Status Launch() {
    thread_ = std::thread([this] { Run(); });
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return phase_ != Phase::kSettingUp; });
    return setup_;
  }
  // Registers the entry (`go`) or gives up before registering; returns
  // what REGISTER answered at once (0: parked).
  int Go(bool go) {
    std::unique_lock lock(mu_);
    phase_ = go ? Phase::kRegistering : Phase::kAbandoned;
    cv_.notify_all();
    if (!go) return 0;
    cv_.wait(lock, [&] { return phase_ != Phase::kRegistering; });
    return register_result_;
  }

  uint32_t qid() const { return qid_; }

  // The reply being collected on this thread (TakeReply).
  static thread_local Entry* t_serving;
  ssize_t TakeReply(const struct iovec* iov, int count);

 private:
  enum class Phase { kSettingUp, kReady, kRegistering, kServing, kAbandoned };

  void Run();
  Status SetUp();
  // Looks for the next completion for a while before the thread sleeps.
  bool PollForCompletion(io_uring_cqe** cqe);
  void PrepareCommand(uint32_t cmd_op, uint64_t commit_id);
  void PrepareStopWatch();
  // Processes the request in the buffers and leaves its reply there.
  void Serve();
  void ReplyError(uint64_t unique, int error);
  ring_abi::EntryHeaders* headers() { return reinterpret_cast<ring_abi::EntryHeaders*>(buffer_); }
  char* payload() { return buffer_ + sizeof(ring_abi::EntryHeaders) + kRequestHeadroom; }

  const Config* config_;
  const uint32_t qid_;
  const int stop_fd_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  Phase phase_ = Phase::kSettingUp;
  Status setup_ = Status::Ok();
  int register_result_ = 0;

  io_uring ring_{};
  bool ring_ready_ = false;
  // [EntryHeaders][headroom][payload]: iov[0] and iov[1] of the entry.
  char* buffer_ = nullptr;
  struct iovec iov_[2]{};
  uint64_t unique_ = 0;   // of the request being served
  bool replied_ = false;  // its reply is in the buffers
};

thread_local UringChannel::Entry* UringChannel::Entry::t_serving = nullptr;

Status UringChannel::Entry::SetUp() {
  // The kernel copies a request into our buffers as task work of this
  // thread. With COOP_TASKRUN and TASKRUN_FLAG it does not interrupt the
  // thread for that but raises a flag in the ring, which the poll after
  // each reply sees (liburing's peek enters the kernel for it). SQE128
  // (the command's bytes) is the one flag needed; older kernels lack the
  // others.
  const unsigned flag_sets[] = {
      IORING_SETUP_SQE128 | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
          IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      IORING_SETUP_SQE128 | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
          IORING_SETUP_TASKRUN_FLAG,
      IORING_SETUP_SQE128,
  };
  int err = -EINVAL;
  for (unsigned flags : flag_sets) {
    err = io_uring_queue_init(4, &ring_, flags);
    if (err != -EINVAL) break;
  }
  if (err < 0) return Status::Error(-err, std::string("io_uring_setup: ") + std::strerror(-err));
  ring_ready_ = true;
  const size_t bytes = sizeof(ring_abi::EntryHeaders) + kRequestHeadroom + config_->payload_bytes;
  if (posix_memalign(reinterpret_cast<void**>(&buffer_), 4096, bytes) != 0) {
    return Status::Error(ENOMEM, "no memory for a ring entry's buffers");
  }
  std::memset(buffer_, 0, sizeof(ring_abi::EntryHeaders) + kRequestHeadroom);
  iov_[0] = {buffer_, sizeof(ring_abi::EntryHeaders)};
  iov_[1] = {payload(), config_->payload_bytes};
  return Status::Ok();
}

void UringChannel::Entry::PrepareCommand(uint32_t cmd_op, uint64_t commit_id) {
  io_uring_sqe* sqe = ClearedSqe(&ring_);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = config_->dev_fd;
  sqe->cmd_op = cmd_op;
  sqe->addr = reinterpret_cast<uint64_t>(iov_);
  sqe->len = 2;
  sqe->user_data = kTagEntry;
  ring_abi::CmdReq req{};
  req.commit_id = commit_id;
  req.qid = static_cast<uint16_t>(qid_);
  CopyCommand(sqe, req);
}

void UringChannel::Entry::PrepareStopWatch() {
  io_uring_sqe* sqe = ClearedSqe(&ring_);
  io_uring_prep_poll_add(sqe, stop_fd_, POLLIN);
  sqe->user_data = kTagStop;
}

void UringChannel::Entry::Run() {
  // Signals are for libfuse's handlers on the main thread.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  // On the CPU whose requests this queue gets: the caller and the thread
  // that serves it then share a CPU and its cache, and neither wake-up
  // crosses CPUs (on a virtual machine each such one is an interrupt
  // through the hypervisor). Where the daemon may not use that CPU, unpinned.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(qid_, &cpus);
  (void)pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
  {
    Status st = SetUp();
    std::unique_lock lock(mu_);
    setup_ = st;
    phase_ = st.ok() ? Phase::kReady : Phase::kAbandoned;
    cv_.notify_all();
    if (!st.ok()) return;
    cv_.wait(lock, [&] { return phase_ != Phase::kReady; });
    if (phase_ == Phase::kAbandoned) return;
  }
  PrepareStopWatch();
  PrepareCommand(ring_abi::kCmdRegister, 0);
  int submitted = io_uring_submit(&ring_);
  // A REGISTER the kernel refuses completes at once; one it takes stays
  // parked until a request comes.
  int result = submitted < 0 ? submitted : 0;
  io_uring_cqe* cqe = nullptr;
  if (result == 0 && io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe->user_data == kTagEntry) {
    result = cqe->res < 0 ? cqe->res : -EPROTO;
    io_uring_cqe_seen(&ring_, cqe);
  }
  {
    std::unique_lock lock(mu_);
    register_result_ = result;
    phase_ = result == 0 ? Phase::kServing : Phase::kAbandoned;
    cv_.notify_all();
  }
  if (result != 0) return;

  bool registering = false;  // the command in flight is a REGISTER
  for (;;) {
    int err = io_uring_submit(&ring_);
    if (err >= 0 && !PollForCompletion(&cqe)) err = io_uring_wait_cqe(&ring_, &cqe);
    if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY) {
      spdlog::error("io_uring queue {}: {}", qid_, std::strerror(-err));
      return;
    }
    if (io_uring_peek_cqe(&ring_, &cqe) != 0) continue;
    const uint64_t tag = cqe->user_data;
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (tag == kTagStop) return;
    if (res == -ENOTCONN || res == -ECANCELED || res == -ECONNABORTED) {
      return;  // the connection has ended (unmount, abort): nothing comes any more
    }
    if (res < 0) {
      // The kernel refused a commit (say, of a request it had ended
      // meanwhile) and the entry is no longer parked: park it anew, once.
      spdlog::warn("io_uring queue {}: {} failed: {}", qid_,
                   registering ? "REGISTER" : "COMMIT_AND_FETCH", std::strerror(-res));
      if (registering) return;
      PrepareCommand(ring_abi::kCmdRegister, 0);
      registering = true;
      continue;
    }
    registering = false;
    Serve();
    PrepareCommand(ring_abi::kCmdCommitAndFetch, unique_);
  }
}

bool UringChannel::Entry::PollForCompletion(io_uring_cqe** cqe) {
  // A caller that just got its reply often sends its next request within
  // microseconds: a thread still awake takes it without being woken, and
  // a sleeping thread costs a wake-up that on this kind of machine takes
  // longer than the request. Between looks the thread yields, so that the
  // caller, which shares its CPU, runs first.
  const auto until = std::chrono::steady_clock::now() + kPollBeforeSleep;
  do {
    if (io_uring_peek_cqe(&ring_, cqe) == 0) return true;
    sched_yield();
  } while (std::chrono::steady_clock::now() < until);
  return false;
}

void UringChannel::Entry::Serve() {
  ring_abi::EntryHeaders* h = headers();
  fuse_in_header in;
  std::memcpy(&in, h->in_out, sizeof(in));
  const uint32_t payload_bytes = h->ring_ent_in_out.payload_sz;
  unique_ = in.unique;
  replied_ = false;
  // The kernel splits the request: its header, the first argument (the
  // operation's fixed part, if any) and the rest in the payload; len
  // counts them all.
  if (in.len < sizeof(in) + payload_bytes || payload_bytes > config_->payload_bytes ||
      in.len - sizeof(in) - payload_bytes > ring_abi::kOpHeaderBytes) {
    spdlog::error("io_uring queue {}: malformed request (opcode {}, len {}, payload {})", qid_,
                  in.opcode, in.len, payload_bytes);
    ReplyError(in.unique, -EIO);
    return;
  }
  const size_t op_bytes = in.len - sizeof(in) - payload_bytes;
  char* request = payload() - op_bytes - sizeof(in);
  std::memcpy(request, &in, sizeof(in));
  std::memcpy(request + sizeof(in), h->op_in, op_bytes);
  t_serving = this;
  config_->serve(request, in.len);
  t_serving = nullptr;
  if (!replied_) {
    // Every request that comes over a ring expects a reply (FORGET, the
    // only one without, stays on /dev/fuse); its caller would wait forever.
    spdlog::error("io_uring queue {}: request {} (opcode {}) got no reply", qid_, in.unique,
                  in.opcode);
    ReplyError(in.unique, -EIO);
  }
}

void UringChannel::Entry::ReplyError(uint64_t unique, int error) {
  fuse_out_header out{sizeof(fuse_out_header), error, unique};
  std::memcpy(headers()->in_out, &out, sizeof(out));
  headers()->ring_ent_in_out.payload_sz = 0;
  replied_ = true;
}

ssize_t UringChannel::Entry::TakeReply(const struct iovec* iov, int count) {
  if (replied_ || count < 1 || iov[0].iov_len != sizeof(fuse_out_header)) return -1;
  fuse_out_header out;
  std::memcpy(&out, iov[0].iov_base, sizeof(out));
  if (out.unique != unique_) return -1;  // not this request's: an interrupt's, a notification
  size_t body = 0;
  for (int i = 1; i < count; ++i) body += iov[i].iov_len;
  if (body > config_->payload_bytes) {
    spdlog::error("io_uring queue {}: reply of {} bytes exceeds the entry's {}", qid_, body,
                  config_->payload_bytes);
    ReplyError(out.unique, -EIO);
    return static_cast<ssize_t>(sizeof(out) + body);
  }
  char* dst = payload();
  for (int i = 1; i < count; ++i) {
    std::memcpy(dst, iov[i].iov_base, iov[i].iov_len);
    dst += iov[i].iov_len;
  }
  std::memcpy(headers()->in_out, &out, sizeof(out));
  headers()->ring_ent_in_out.payload_sz = static_cast<uint32_t>(body);
  replied_ = true;
  return static_cast<ssize_t>(sizeof(out) + body);
}

UringChannel::UringChannel(Config config) : config_(std::move(config)) {}

Result<std::unique_ptr<UringChannel>> UringChannel::Prepare(Config config) {
  if (config.queues == 0 || config.threads_per_queue == 0 || config.payload_bytes == 0) {
    return Status::Error(EINVAL, "no queues to serve");
  }
  std::unique_ptr<UringChannel> channel(new UringChannel(std::move(config)));
  channel->stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (channel->stop_fd_ < 0) return Status::Error(errno, "eventfd: " + std::string(std::strerror(errno)));
  for (uint32_t q = 0; q < channel->config_.queues; ++q) {
    for (uint32_t t = 0; t < channel->config_.threads_per_queue; ++t) {
      channel->entries_.push_back(std::make_unique<Entry>(&channel->config_, q, channel->stop_fd_));
      Status st = channel->entries_.back()->Launch();
      if (!st.ok()) return st;  // the destructor abandons the others
    }
  }
  return channel;
}

UringChannel::Started UringChannel::Start() {
  Started started;
  std::vector<uint32_t> per_queue(config_.queues, 0);
  for (auto& entry : entries_) {
    int err = entry->Go(true);
    if (err == 0) {
      ++started.registered;
      ++per_queue[entry->qid()];
    } else if (started.first_error.empty()) {
      started.first_error = std::string("REGISTER: ") + std::strerror(-err);
    }
  }
  started.every_queue =
      std::all_of(per_queue.begin(), per_queue.end(), [](uint32_t n) { return n > 0; });
  return started;
}

ssize_t UringChannel::TakeReply(const struct iovec* iov, int count) {
  Entry* entry = Entry::t_serving;
  return entry == nullptr ? -1 : entry->TakeReply(iov, count);
}

UringChannel::~UringChannel() {
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
  }
  // Threads still waiting for Go() give up; the others see the eventfd.
  for (auto& entry : entries_) entry->Go(false);
  entries_.clear();  // joins each thread, then closes its ring
  if (stop_fd_ >= 0) close(stop_fd_);
}

uint32_t UringChannel::PossibleCpus() {
  // A list of ranges: "0-1", "0-3,8-11", "0".
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string list;
  uint32_t count = 0;
  if (std::getline(in, list)) {
    size_t pos = 0;
    while (pos < list.size()) {
      size_t end = list.find(',', pos);
      if (end == std::string::npos) end = list.size();
      std::string range = list.substr(pos, end - pos);
      size_t dash = range.find('-');
      unsigned long lo = std::strtoul(range.c_str(), nullptr, 10);
      unsigned long hi = dash == std::string::npos ? lo : std::strtoul(range.c_str() + dash + 1, nullptr, 10);
      if (hi >= lo) count += static_cast<uint32_t>(hi - lo + 1);
      pos = end + 1;
    }
  }
  if (count == 0) count = static_cast<uint32_t>(std::max(1L, sysconf(_SC_NPROCESSORS_CONF)));
  return count;
}

}  // namespace nosyncfs
