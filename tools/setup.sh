#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root) and builds nosyncfs into
# build/. Sourced by tools/demo.sh and tools/test.sh; safe to run alone.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config libfuse3-dev fuse3 librocksdb-dev libspdlog-dev
          catch2 libboost-dev libpmem2-dev liburing-dev attr fio rsync dpkg-dev file man-db sqlite3 rocksdb-tools
          lintian)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

echo "== building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
