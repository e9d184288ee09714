// A helper process of a real-mount test (tests/clients/direct_client, or any
// program), its standard output read line by line. The destructor kills it
// (SIGKILL; it is ours, by pid) and reaps it, in every outcome.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace nosyncfs::test {

class ClientProcess {
 public:
  // Starts `prefix` + BinPath("nsf_direct_client") + `args`; REQUIREs that
  // it starts.
  explicit ClientProcess(const std::vector<std::string>& args,
                         const std::vector<std::string>& prefix = {});
  // Starts another program: argv as it is (argv[0] looked up in PATH).
  struct Program {
    std::vector<std::string> argv;
  };
  explicit ClientProcess(const Program& program);
  ~ClientProcess();
  ClientProcess(const ClientProcess&) = delete;
  ClientProcess& operator=(const ClientProcess&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig) const;
  // SIGSTOP, then waits (at most 10 s) until every thread of it is stopped:
  // kill(2) returns before they are, and a thread still running could
  // answer what the test means it to ignore. REQUIREs that it stops.
  void Stop() const;
  // Sends `sig`; for SIGKILL also waits (at most 20 s) and reaps.
  void Kill(int sig);
  // The next line, or "" at EOF or after `timeout`.
  std::string Line(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Reads lines until one starts with `prefix`; returns it ("" on timeout).
  std::string LineStarting(const std::string& prefix,
                           std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Every "key value" line from here to EOF.
  std::map<std::string, uint64_t> KeyValuesToEof();
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffered_;
  std::vector<std::string> lines_;

  void Start(std::vector<std::string> argv);
};

}  // namespace nosyncfs::test
