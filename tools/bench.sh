#!/usr/bin/env bash
# Runs tests/bench/nosync_bench on a fresh 1 GiB image in /dev/shm, once
# per persistence mode. Usage: tools/bench.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh >/dev/null
BIN=$PWD/build/bin
# BENCH_DIR picks where the image lives (default /dev/shm: persist is cheap
# there, so FUSE round trips dominate; a disk-backed dir shows msync cost).
WORK=$(mktemp -d "${BENCH_DIR:-/dev/shm}/nosyncfs-bench.XXXXXX")
cleanup() {
  if grep -qs " $WORK/mnt " /proc/mounts; then fusermount3 -u "$WORK/mnt"; fi
  sleep 1
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/mnt"
for mode in none strict; do
  "$BIN/mkfs.nosyncfs" -f -s 1G "$WORK/img" >/dev/null
  "$BIN/nosyncfs" "$WORK/img" "$WORK/mnt" -o emulate=$mode
  echo "== emulate=$mode"
  "$BIN/nosync_bench" "$WORK/mnt" "${1:-5000}"
  fusermount3 -u "$WORK/mnt"
  sleep 1
done
