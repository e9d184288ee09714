// Progress: how far a long piece of work (mkfs, fsck, recovery at mount)
// has come, for the person or program waiting on it.
//
// Nothing is shown for work that ends within the first second (at once with
// NSF_PROGRESS_AT_ONCE=1 in the environment, for tests). After that:
// on a terminal, one bar redrawn in place; elsewhere (a log, a pipe), a
// "LABEL: N%" line every tenth. fsck -C FD uses the machine-readable form
// fsck(8) and systemd-fsck read: "PASS DONE TOTAL DEVICE" lines.
//
// Update is cheap enough to call per item: it compares with a precomputed
// next step (a hundredth of the work) and reads the clock only there.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace nosyncfs {

class Progress {
 public:
  enum class Style {
    kNone,     // report nothing (tests, -q)
    kHuman,    // a bar on a terminal, percent lines otherwise
    kFsckFd,   // "PASS DONE TOTAL DEVICE\n" lines (fsck -C FD)
  };

  // `fd` is where reports go (stderr for kHuman). `label` names the work,
  // e.g. "/dev/pmem0: replaying the log"; for kFsckFd it is the device.
  Progress(Style style, int fd, std::string label);
  ~Progress() { Finish(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Starts a phase of `total` units (pass numbers count from 1). `what`
  // names the phase in the human forms ("LABEL WHAT: N%"); the fsck -C
  // lines carry only the pass number.
  void Begin(uint64_t total, int pass = 1, std::string what = {});
  // `done` units of the current phase are finished.
  void Update(uint64_t done) {
    if (done >= next_check_) Report(done);
  }
  // Ends the current phase: completes a bar that was shown.
  void Finish();

 private:
  void Report(uint64_t done);
  void Emit(uint64_t done);
  std::string HumanLabel() const;

  Style style_;
  int fd_;
  std::string label_;
  std::string what_;  // the current phase's name
  std::chrono::milliseconds quiet_start_{1000};
  bool terminal_ = false;
  uint64_t total_ = 0;
  int pass_ = 1;
  uint64_t next_check_ = UINT64_MAX;  // the next `done` worth a look
  int last_tenth_ = -1;               // percent lines: the last tenth printed
  int last_percent_ = -1;             // bar and fsck lines: the last percent shown
  bool shown_ = false;                // anything written for this phase
  std::chrono::steady_clock::time_point started_;
};

}  // namespace nosyncfs
