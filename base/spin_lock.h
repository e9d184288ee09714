// SpinLock: a one-byte lock for a few words of state touched for a few
// instructions (e.g. an inode's atime under a shared inode lock), where a
// mutex would cost more memory than what it guards. Meets Lockable, so
// std::lock_guard works with it.
//
// Never hold it across anything that can block.
#pragma once

#include <atomic>

namespace nosyncfs {

class SpinLock {
 public:
  void lock() {
    while (flag_.test_and_set(std::memory_order_acquire)) {
      while (flag_.test(std::memory_order_relaxed)) {
      }
    }
  }
  void unlock() { flag_.clear(std::memory_order_release); }

 private:
  std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};

}  // namespace nosyncfs
