// Catch2 main for the real-mount POSIX tests. Each test case formats and
// mounts its own image through tests/harness/mount_fixture.h.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
