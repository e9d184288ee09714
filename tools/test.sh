#!/usr/bin/env bash
# Installs, builds and runs every test (ctest), the stress tests also in a
# ThreadSanitizer build and the corrupt-input tests in an AddressSanitizer
# build; the last line counts passed and failed tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
echo "== building with ThreadSanitizer (build-tsan/)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSF_SANITIZE=thread \
  -DBUILD_TESTING=ON >/dev/null
cmake --build build-tsan -j"$(nproc)" --target nosyncfs_unit nosyncfs_posix nosyncfs \
  mkfs.nosyncfs fsck.nosyncfs nosyncctl
echo "== building with AddressSanitizer (build-asan/)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSF_SANITIZE=address \
  -DBUILD_TESTING=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target nosyncfs_unit nosyncfs_posix nosyncfs \
  mkfs.nosyncfs fsck.nosyncfs nosyncctl
cmake -S . -B build -DNSF_TSAN_BIN_DIR="$PWD/build-tsan/bin" \
  -DNSF_ASAN_BIN_DIR="$PWD/build-asan/bin" >/dev/null
cd build
ctest --output-on-failure -j1 --timeout 600 "$@"
