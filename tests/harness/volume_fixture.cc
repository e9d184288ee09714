#include "tests/harness/volume_fixture.h"

#include "base/crash_point.h"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <sstream>
#include <string_view>

extern char** environ;

namespace nosyncfs::test {
namespace {

// The environment variable that turns a test binary into a crash child; its
// value is the path of the control file (see RunAndCrash).
constexpr char kChildEnv[] = "NSF_CRASH_CHILD";
// The hidden test case the child runs (selected by this tag).
constexpr char kChildTag[] = "[nsf-crash-child]";
// Report keys of the protocol itself (workload keys never start with '!').
constexpr char kDoneKey[] = "!done";
constexpr char kErrorKey[] = "!error";
// Exit code of a workload that failed (Fail) or could not start.
constexpr int kChildFailed = 3;

std::map<std::string, CrashWorkloadFn>& Registry() {
  static std::map<std::string, CrashWorkloadFn> registry;
  return registry;
}

// Control and report files hold one "HEXKEY HEXVALUE" line per entry, so
// values may contain any byte (paths, binary data).
std::string Hex(std::string_view s) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool Unhex(std::string_view s, std::string* out) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (s.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

std::string EncodeEntry(std::string_view key, std::string_view value) {
  return Hex(key) + " " + Hex(value) + "\n";
}

// Parses the lines of a control or report file; later keys win. Malformed
// lines (a torn last line) are skipped.
std::map<std::string, std::string> DecodeEntries(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t sp = line.find(' ');
    if (sp == std::string::npos) continue;
    std::string key, value;
    if (!Unhex(std::string_view(line).substr(0, sp), &key) ||
        !Unhex(std::string_view(line).substr(sp + 1), &value)) {
      continue;
    }
    out[key] = value;
  }
  return out;
}

// Reads a whole file; "" if it cannot be read.
std::string SlurpFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

bool WriteAllFd(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "ended with wait status " + std::to_string(status);
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t TestSeed() {
  if (const char* s = std::getenv("NSF_TEST_SEED"); s != nullptr && *s != '\0') {
    return std::strtoull(s, nullptr, 0);
  }
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

void MakeImageFile(const std::string& path, uint64_t bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  INFO("create " << path << ": " << std::strerror(errno));
  REQUIRE(fd >= 0);
  int rc = ::ftruncate(fd, static_cast<off_t>(bytes));
  int err = errno;
  ::close(fd);
  INFO("ftruncate " << path << ": " << std::strerror(err));
  REQUIRE(rc == 0);
}

std::string ReadFileBytes(const std::string& path, uint64_t off, size_t len) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  INFO("open " << path << ": " << std::strerror(errno));
  REQUIRE(fd >= 0);
  std::string out(len, '\0');
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, out.data() + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

void WriteFileBytes(const std::string& path, uint64_t off, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  INFO("open " << path << ": " << std::strerror(errno));
  REQUIRE(fd >= 0);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                         static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  REQUIRE(done == bytes.size());
}

void FlipFileByte(const std::string& path, uint64_t off) {
  std::string b = ReadFileBytes(path, off, 1);
  REQUIRE(b.size() == 1);
  b[0] = static_cast<char>(~b[0]);
  WriteFileBytes(path, off, b);
}

Result<std::unique_ptr<Vfs>> OpenVfsAt(const std::string& image, const VolumeOptions& options,
                                       const VfsOptions& vfs_options) {
  NSF_ASSIGN_OR_RETURN(auto volume, Volume::Open(image, options));
  auto vfs = std::make_unique<Vfs>(std::move(volume), vfs_options);
  NSF_RETURN_IF_ERROR(vfs->Init());
  return vfs;
}

// ---- VolumeFixture -------------------------------------------------------------

VolumeFixture::VolumeFixture() : VolumeFixture(Options{}) {}

VolumeFixture::VolumeFixture(const Options& options) : options_(options) {
  image_ = dir() + "/image";
  MakeImageFile(image_, options_.image_bytes);
  if (options_.format) {
    auto sb = Format();
    INFO("format " << image_ << ": " << sb.status().ToString());
    REQUIRE(sb.ok());
  }
}

VolumeOptions VolumeFixture::volume_options() const {
  VolumeOptions o;
  o.strict_emulation = options_.strict_emulation;
  if (o.strict_emulation) o.evict_seed = options_.evict_seed;
  return o;
}

FormatOptions VolumeFixture::format_options() const {
  FormatOptions o;
  o.block_size = options_.block_size;
  return o;
}

Result<Superblock> VolumeFixture::Format(bool force) const {
  FormatOptions o = format_options();
  o.force = force;
  return Volume::Format(image_, o);
}

Result<std::unique_ptr<Volume>> VolumeFixture::TryOpen() const {
  return Volume::Open(image_, volume_options());
}

std::unique_ptr<Volume> VolumeFixture::Open() const {
  auto v = TryOpen();
  INFO("open " << image_ << ": " << v.status().ToString());
  REQUIRE(v.ok());
  return std::move(v).value();
}

std::unique_ptr<Vfs> VolumeFixture::OpenVfs(const VfsOptions& vfs_options) const {
  auto v = OpenVfsAt(image_, volume_options(), vfs_options);
  INFO("open vfs on " << image_ << ": " << v.status().ToString());
  REQUIRE(v.ok());
  return std::move(v).value();
}

CrashResult VolumeFixture::RunAndCrash(const std::string& name,
                                       const std::map<std::string, std::string>& args,
                                       const std::map<std::string, std::string>& env) const {
  CrashResult result = RunInChild(name, args, env);
  INFO("crash workload " << name << ": " << result.Describe());
  REQUIRE(result.crashed());
  return result;
}

CrashResult VolumeFixture::RunInChild(const std::string& name,
                                      const std::map<std::string, std::string>& args,
                                      const std::map<std::string, std::string>& env) const {
  INFO("crash workload " << name);
  REQUIRE(Registry().count(name) == 1);
  static std::atomic<int> counter{0};
  std::string stem = dir() + "/crash-" + std::to_string(counter++);
  std::string ctl = stem + ".ctl", report = stem + ".report", log = stem + ".log";

  // The child's eviction seed names this run: the same test replays it,
  // another crash point or child gets other evictions.
  uint64_t evict_seed = 0;
  if (options_.strict_emulation && options_.evict_seed != 0) {
    std::string label = "child " + std::to_string(children_) + " " + name;
    for (const auto& [k, v] : args) label += " " + k + "=" + v;
    if (auto it = env.find("NSF_CRASH_AFTER"); it != env.end()) label += " crash " + it->second;
    evict_seed = DeriveEvictSeed(options_.evict_seed, label);
  }
  ++children_;
  std::string control = EncodeEntry("workload", name) + EncodeEntry("image", image_) +
                        EncodeEntry("strict", options_.strict_emulation ? "1" : "0") +
                        EncodeEntry("evict", std::to_string(evict_seed)) +
                        EncodeEntry("report", report);
  for (const auto& [k, v] : args) control += EncodeEntry("arg:" + k, v);
  {
    int fd = ::open(ctl.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    INFO("create " << ctl << ": " << std::strerror(errno));
    REQUIRE(fd >= 0);
    bool written = WriteAllFd(fd, control);
    ::close(fd);
    REQUIRE(written);
  }

  // A new process image of this very binary, running only the hidden child
  // test case (see the header for why not a bare fork).
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  REQUIRE(n > 0);
  exe[n] = '\0';
  std::string arg0 = exe, arg1 = kChildTag;
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  std::vector<std::string> env_storage;
  auto inherited = [&](const char* entry) {
    std::string_view e(entry);
    std::string_view key = e.substr(0, e.find('='));
    if (key == kChildEnv || key == "NSF_CRASH_AFTER" || key == "NSF_CRASH_TRACE") return false;
    return env.count(std::string(key)) == 0;
  };
  for (char** e = environ; *e != nullptr; ++e) {
    if (inherited(*e)) env_storage.emplace_back(*e);
  }
  for (const auto& [k, v] : env) env_storage.push_back(k + "=" + v);
  env_storage.push_back(std::string(kChildEnv) + "=" + ctl);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe, &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  INFO("posix_spawn " << exe << ": " << std::strerror(rc));
  REQUIRE(rc == 0);

  CrashResult result;
  std::optional<int> status = WaitChild(pid, std::chrono::seconds(120));
  if (!status) {
    ::kill(pid, SIGKILL);  // our own child, stuck: never anyone else's process
    status = WaitChild(pid, std::chrono::seconds(10));
    result.how_ = "timed out after 120 s; ";
  }
  result.how_ += status ? DescribeWaitStatus(*status) : "could not be reaped";
  result.values_ = DecodeEntries(SlurpFile(report));
  result.log_ = SlurpFile(log);
  result.killed_ = status && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL;
  result.crashed_ = result.killed_ && result.values_.count(kDoneKey) == 1;
  return result;
}

// ---- CrashResult -----------------------------------------------------------------

std::string CrashResult::Get(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::string() : it->second;
}

uint64_t CrashResult::GetU64(const std::string& key) const {
  return std::strtoull(Get(key).c_str(), nullptr, 10);
}

std::string CrashResult::Describe() const {
  std::string out = "crash child " + how_;
  if (auto it = values_.find(kErrorKey); it != values_.end()) {
    out += "; workload failed: " + it->second;
  } else if (values_.count(kDoneKey) == 0) {
    out += "; workload did not finish";
  }
  for (const auto& [k, v] : values_) {
    if (k[0] != '!') out += "\n  reported " + k + " = " + v.substr(0, 200);
  }
  std::string tail = log_.size() > 4000 ? "..." + log_.substr(log_.size() - 4000) : log_;
  if (!tail.empty()) out += "\n--- child output ---\n" + tail;
  return out;
}

// ---- CrashChild ------------------------------------------------------------------

CrashChild::CrashChild(std::string image, VolumeOptions options,
                       std::map<std::string, std::string> args, int report_fd)
    : image_(std::move(image)),
      options_(std::move(options)),
      args_(std::move(args)),
      report_fd_(report_fd) {}

const std::string& CrashChild::Arg(const std::string& name) {
  auto it = args_.find(name);
  if (it == args_.end()) Fail("missing workload argument " + name);
  return it->second;
}

uint64_t CrashChild::ArgU64(const std::string& name) {
  const std::string& s = Arg(name);
  char* end = nullptr;
  errno = 0;
  uint64_t v = std::strtoull(s.c_str(), &end, 0);
  if (s.empty() || errno != 0 || *end != '\0') Fail("argument " + name + " is not a number: " + s);
  return v;
}

Volume& CrashChild::OpenVolume() {
  volumes_.push_back(Must(Volume::Open(image_, options_), "open volume " + image_));
  return *volumes_.back();
}

Vfs& CrashChild::OpenVfs(const VfsOptions& vfs_options) {
  vfses_.push_back(Must(OpenVfsAt(image_, options_, vfs_options), "open vfs on " + image_));
  return *vfses_.back();
}

void CrashChild::Report(const std::string& key, const std::string& value) {
  if (!WriteAllFd(report_fd_, EncodeEntry(key, value))) {
    std::fprintf(stderr, "crash child: cannot write the report: %s\n", std::strerror(errno));
    std::fflush(nullptr);
    ::_exit(kChildFailed);
  }
}

void CrashChild::Fail(const std::string& what) {
  Report(kErrorKey, what);
  std::fflush(nullptr);
  // _exit: no destructor may run, the parent only needs the message.
  ::_exit(kChildFailed);
}

void CrashChild::Check(const Status& st, const std::string& what) {
  if (!st.ok()) Fail(what + ": " + st.ToString());
}

void CrashChild::StartCrashPoints() { ::nosyncfs::StartCrashPoints(); }

bool RegisterCrashWorkload(const char* name, CrashWorkloadFn fn) {
  bool inserted = Registry().emplace(name, fn).second;
  if (!inserted) {
    std::fprintf(stderr, "crash workload %s registered twice\n", name);
    std::abort();
  }
  return true;
}

// The entry point of a crash child. Hidden: it only runs when RunAndCrash
// selects it, and without the control file it does nothing.
TEST_CASE("crash workload child (internal)", "[.nsf-crash-child]") {
  const char* ctl = std::getenv(kChildEnv);
  if (ctl == nullptr) {
    SUCCEED("not started by RunAndCrash");
    return;
  }
  // A test binary that dies (or times out and is killed) must not leave a
  // workload running on its image.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::map<std::string, std::string> control = DecodeEntries(SlurpFile(ctl));
  int report_fd = ::open(control["report"].c_str(),
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (report_fd < 0) {
    std::fprintf(stderr, "crash child: cannot open report %s\n", control["report"].c_str());
    ::_exit(kChildFailed);
  }
  std::map<std::string, std::string> args;
  for (const auto& [k, v] : control) {
    if (k.rfind("arg:", 0) == 0) args[k.substr(4)] = v;
  }
  VolumeOptions options;
  options.strict_emulation = control["strict"] == "1";
  options.evict_seed = std::strtoull(control["evict"].c_str(), nullptr, 10);
  if (uint64_t seed = options.evict_seed; seed != 0) {
    std::fprintf(stderr, "crash child: early evictions, seed %llu\n",
                 static_cast<unsigned long long>(seed));
  }
  CrashChild child(control["image"], options, std::move(args), report_fd);
  auto it = Registry().find(control["workload"]);
  if (it == Registry().end()) child.Fail("no crash workload named " + control["workload"]);

  it->second(child);

  // The workload is done: now the power fails. SIGKILL ends the process
  // where it stands; nothing is flushed, closed or checkpointed.
  child.Report(kDoneKey, "1");
  std::fflush(nullptr);  // only the log, for failure messages
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

// ---- Vfs conveniences --------------------------------------------------------------

Result<std::string> VfsRead(Vfs& vfs, uint64_t ino, uint64_t off, size_t size) {
  std::string out;
  NSF_RETURN_IF_ERROR(vfs.Read(ino, off, size, [&](const struct iovec* iov, int count) {
    for (int i = 0; i < count; ++i) {
      out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    }
  }));
  return out;
}

Status VfsWriteAll(Vfs& vfs, uint64_t ino, uint64_t off, std::string_view data) {
  NSF_ASSIGN_OR_RETURN(size_t n, vfs.Write(ino, off, data.data(), data.size()));
  if (n != data.size()) {
    return Status::Error(EIO, "short write: " + std::to_string(n) + " of " +
                                  std::to_string(data.size()) + " bytes");
  }
  return Status::Ok();
}

Result<std::vector<DirEntry>> VfsReaddir(Vfs& vfs, uint64_t dir, uint64_t off, size_t max) {
  std::vector<DirEntry> out;
  NSF_RETURN_IF_ERROR(vfs.Readdir(dir, off, Vfs::kReaddirToEnd, /*plus=*/false,
                                  [&](std::string_view name, const struct stat& st,
                                      uint64_t next_off) {
                                    // Returning false means "buffer full":
                                    // this entry is not taken.
                                    if (max != 0 && out.size() >= max) return false;
                                    out.push_back({std::string(name), st.st_ino, next_off});
                                    return true;
                                  }));
  return out;
}

std::string DataPattern(uint64_t seed, size_t n, uint64_t off) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    auto b = static_cast<uint8_t>(SplitMix64(seed * 0x100000001b3ull + off + i));
    out[i] = static_cast<char>(b == 0 ? 1 : b);
  }
  return out;
}

uint64_t PopulateOneFile(Volume& v) {
  Transaction txn;
  uint64_t ino = v.NextInodeNumber(&txn);
  InodeRecord f;
  f.ino = ino;
  f.mode = S_IFREG | 0644;
  f.nlink = 1;
  f.size = 4 * 4096;
  txn.PutInode(f);
  DirentRecord d{ino, S_IFREG, kFirstDirCookie, "f"};
  txn.batch.Put(keys::Dirent(kRootIno, "f"), d.Encode(false));
  txn.batch.Put(keys::Cookie(kRootIno, kFirstDirCookie), d.Encode(true));
  auto root = v.store().Get(keys::Inode(kRootIno));
  REQUIRE(root.ok());
  auto rec = InodeRecord::Decode(kRootIno, **root);
  REQUIRE(rec.ok());
  rec->next_cookie = kFirstDirCookie + 1;
  txn.PutInode(*rec);
  auto runs = v.Allocate(4, 0);
  REQUIRE(runs.ok());
  txn.batch.Put(keys::Extent(ino, 0), EncodeExtentValue({0, 4, (*runs)[0].start, 0}));
  REQUIRE(v.Commit(std::move(txn), true).ok());
  return ino;
}

}  // namespace nosyncfs::test
