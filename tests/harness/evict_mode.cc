// Before the first include of Catch: the event listener interfaces.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include "tests/harness/evict_mode.h"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace nosyncfs::test {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Says which seed a run used: once at the start, and again after each
// failed test case, so that the failure report carries it.
class EvictSeedReporter : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testRunStarting(const Catch::TestRunInfo&) override {
    // A crash child (volume_fixture.cc) says it in its own log instead.
    if (EvictSeed() != 0 && std::getenv("NSF_CRASH_CHILD") == nullptr) {
      std::fprintf(stderr, "early evictions on: NSF_EVICT_SEED=%llu\n",
                   static_cast<unsigned long long>(EvictSeed()));
    }
  }

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    if (EvictSeed() != 0 && stats.totals.assertions.failed > 0) {
      std::fprintf(stderr, "\"%s\" failed with early evictions: NSF_EVICT_SEED=%llu replays it\n",
                   stats.testInfo.name.c_str(), static_cast<unsigned long long>(EvictSeed()));
    }
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(EvictSeedReporter)

uint64_t EvictSeed() {
  const char* s = std::getenv("NSF_EVICT_SEED");
  return s == nullptr ? 0 : std::strtoull(s, nullptr, 0);
}

uint64_t DeriveEvictSeed(uint64_t seed, std::string_view label) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : label) h = (h ^ c) * 0x100000001b3ull;
  uint64_t derived = SplitMix64(seed ^ SplitMix64(h));
  return derived == 0 ? 1 : derived;
}

std::string WithEvictions(const std::string& options, std::string_view label) {
  if (EvictSeed() == 0) return options;
  std::stringstream in(options);
  std::string out, opt;
  while (std::getline(in, opt, ',')) {
    if (opt == "emulate=strict") {
      opt = "emulate=evict:" + std::to_string(DeriveEvictSeed(EvictSeed(), label));
    }
    out += (out.empty() ? "" : ",") + opt;
  }
  return out;
}

}  // namespace nosyncfs::test
