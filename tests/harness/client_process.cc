#include "tests/harness/client_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "tests/harness/mount_fixture.h"
#include "tests/harness/posix_util.h"

extern char** environ;

namespace nosyncfs::test {

ClientProcess::ClientProcess(const std::vector<std::string>& args,
                             const std::vector<std::string>& prefix) {
  std::vector<std::string> argv = prefix;
  argv.push_back(BinPath("nsf_direct_client"));
  argv.insert(argv.end(), args.begin(), args.end());
  Start(std::move(argv));
}

ClientProcess::ClientProcess(const Program& program) { Start(program.argv); }

void ClientProcess::Start(std::vector<std::string> argv) {
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  int rc = posix_spawnp(&pid_, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  out_ = fds[0];
  REQUIRE(rc == 0);
}

ClientProcess::~ClientProcess() {
  Kill(SIGKILL);
  if (out_ >= 0) ::close(out_);
}

void ClientProcess::Signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

void ClientProcess::Stop() const {
  REQUIRE(pid_ > 0);
  REQUIRE(::kill(pid_, SIGSTOP) == 0);
  const std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
  auto all_stopped = [&] {
    DIR* dir = ::opendir(tasks.c_str());
    if (dir == nullptr) return false;
    bool stopped = true;
    while (struct dirent* de = ::readdir(dir)) {
      if (de->d_name[0] == '.') continue;
      std::ifstream stat(tasks + "/" + de->d_name + "/stat");
      std::string line;
      std::getline(stat, line);
      // "pid (comm) S ...": the state follows the last ')'.
      const size_t paren = line.rfind(')');
      if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'T') {
        stopped = false;
      }
    }
    ::closedir(dir);
    return stopped;
  };
  REQUIRE(WaitUntil(all_stopped, std::chrono::seconds(10), std::chrono::milliseconds(1)));
}

void ClientProcess::Kill(int sig) {
  if (pid_ <= 0) return;
  ::kill(pid_, sig);
  if (sig != SIGKILL) return;
  ::kill(pid_, SIGCONT);
  if (WaitChild(pid_, std::chrono::seconds(20))) pid_ = -1;
}

std::string ClientProcess::Line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      lines_.push_back(line);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(out_, buf, sizeof(buf));
    if (n <= 0) return "";
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

std::string ClientProcess::LineStarting(const std::string& prefix,
                                        std::chrono::milliseconds timeout) {
  for (;;) {
    std::string line = Line(timeout);
    if (line.empty() || line.rfind(prefix, 0) == 0) return line;
  }
}

std::map<std::string, uint64_t> ClientProcess::KeyValuesToEof() {
  std::map<std::string, uint64_t> out;
  for (std::string line = Line(); !line.empty(); line = Line()) {
    std::istringstream in(line);
    std::string key;
    uint64_t value = 0;
    if (in >> key >> value) out[key] = value;
  }
  return out;
}

}  // namespace nosyncfs::test
