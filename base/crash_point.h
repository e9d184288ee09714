// Named crash points, for crash tests. Disarmed (the normal case) a point
// costs one relaxed atomic load.
//
// Armed through the environment of the process:
//   NSF_CRASH_AFTER=K   die by SIGKILL at the K-th crash point hit (1-based)
//   NSF_CRASH_TRACE=F   append the name of every hit to file F (to count)
// Points are live only after StartCrashPoints(), which the daemon calls once
// it is mounted, so K indexes the points a workload reaches, not recovery's.
#pragma once

namespace nosyncfs {

// Counts a hit of `name`; true when this is the hit to crash at. A caller
// that wants to model a torn operation does part of it, then CrashNow().
bool CrashPointHit(const char* name);

// Dies at once, like a power failure: SIGKILL, no destructors, no flushes.
[[noreturn]] void CrashNow();

inline void CrashPoint(const char* name) {
  if (CrashPointHit(name)) CrashNow();
}

void StartCrashPoints();

}  // namespace nosyncfs
