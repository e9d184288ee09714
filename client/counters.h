// The process-wide nsf_counters, bumped with relaxed atomics: they are
// statistics, and no decision reads them.
#ifndef NOSYNCFS_CLIENT_COUNTERS_H
#define NOSYNCFS_CLIENT_COUNTERS_H

#include <atomic>
#include <cstdint>

namespace nsf {

struct Counters {
  std::atomic<uint64_t> direct_reads{0};
  std::atomic<uint64_t> direct_writes{0};
  std::atomic<uint64_t> fallback_reads{0};
  std::atomic<uint64_t> fallback_writes{0};
  std::atomic<uint64_t> leases_granted{0};
  std::atomic<uint64_t> leases_revoked{0};
};
extern Counters counters;

inline void Count(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace nsf

#endif  // NOSYNCFS_CLIENT_COUNTERS_H
