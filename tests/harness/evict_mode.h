// Early evictions in the tests (DeviceOptions::evict_seed, the daemon's
// -o emulate=evict:SEED): unpersisted stores may reach the image before a
// crash, 8-byte word by word, as on real persistent memory.
//
// Run a test binary with NSF_EVICT_SEED=N (nonzero) and the harness turns
// every strict emulation it sets up into early evictions: VolumeFixture's
// volumes and crash children (volume_fixture.h) and TestVolume's
// "emulate=strict" mounts (mount_fixture.h). Each run of a device gets its
// own seed, derived from N and a label naming the run (a crash workload, its
// arguments and crash point; a mount and its crash point), so that crash
// points see different evictions while the same command with the same N
// replays every one of them. A test case that fails prints N.
//
// Thread-safe (reads the environment only).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace nosyncfs::test {

// $NSF_EVICT_SEED, or 0 when unset (early evictions off).
uint64_t EvictSeed();

// A nonzero seed for one run, a function of `seed` and `label` only.
uint64_t DeriveEvictSeed(uint64_t seed, std::string_view label);

// The daemon options `options` (a comma-separated -o list) with
// "emulate=strict" replaced by "emulate=evict:S", S derived from
// EvictSeed() and `label`; unchanged while early evictions are off.
std::string WithEvictions(const std::string& options, std::string_view label);

}  // namespace nosyncfs::test
