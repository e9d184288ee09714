#include "base/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace nosyncfs {
namespace {

constexpr int kBarWidth = 40;

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;  // progress is best effort: never fail the work for it
    off += static_cast<size_t>(n);
  }
}

}  // namespace

Progress::Progress(Style style, int fd, std::string label)
    : style_(style), fd_(fd), label_(std::move(label)) {
  terminal_ = style_ == Style::kHuman && isatty(fd_) == 1;
  // Test hook for the programs' output on quick work (fsck, recovery at
  // mount): show every phase from its start.
  if (const char* now = std::getenv("NSF_PROGRESS_AT_ONCE"); now && *now == '1') {
    quiet_start_ = std::chrono::milliseconds(0);
  }
}

void Progress::Begin(uint64_t total, int pass, std::string what) {
  Finish();
  total_ = std::max<uint64_t>(total, 1);
  pass_ = pass;
  what_ = std::move(what);
  last_tenth_ = last_percent_ = -1;
  shown_ = false;
  started_ = std::chrono::steady_clock::now();
  next_check_ = style_ == Style::kNone ? UINT64_MAX : 0;
}

void Progress::Report(uint64_t done) {
  next_check_ = done + std::max<uint64_t>(total_ / 100, 1);
  // Short work stays silent; the clock is read once per hundredth.
  if (!shown_ && std::chrono::steady_clock::now() - started_ < quiet_start_) return;
  Emit(std::min(done, total_));
}

void Progress::Emit(uint64_t done) {
  const int percent = static_cast<int>(done * 100 / total_);
  if (style_ == Style::kFsckFd) {
    if (percent == last_percent_) return;
    last_percent_ = percent;
    WriteAll(fd_, std::to_string(pass_) + " " + std::to_string(done) + " " +
                      std::to_string(total_) + " " + label_ + "\n");
  } else if (terminal_) {
    if (percent == last_percent_) return;
    last_percent_ = percent;
    const int filled = percent * kBarWidth / 100;
    WriteAll(fd_, "\r" + HumanLabel() + " [" + std::string(filled, '#') +
                      std::string(kBarWidth - filled, '.') + "] " + std::to_string(percent) +
                      "%");
  } else {
    const int tenth = percent / 10;
    if (tenth == last_tenth_) return;
    last_tenth_ = tenth;
    WriteAll(fd_, HumanLabel() + ": " + std::to_string(tenth * 10) + "%\n");
  }
  shown_ = true;
}

std::string Progress::HumanLabel() const {
  return what_.empty() ? label_ : label_ + " " + what_;
}

void Progress::Finish() {
  if (!shown_) {
    next_check_ = UINT64_MAX;
    return;
  }
  Emit(total_);
  if (terminal_) WriteAll(fd_, "\n");
  shown_ = false;
  next_check_ = UINT64_MAX;
}

}  // namespace nosyncfs
