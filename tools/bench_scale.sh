#!/usr/bin/env bash
# tools/bench_scale.sh [COUNT]: metadata at scale. Creates COUNT (default
# 1,000,000) empty files in one directory of a fresh nosyncfs (image in
# /dev/shm), and reports:
#   - the create rate of every tenth of them (it must not fall as the
#     directory grows), with kernel tmpfs's in the same run (the kernel's
#     own caches slow down as a directory grows, for every file system)
#     and the daemon's CPU time per create (user + system, from /proc);
#   - ls -f: its time, and that it lists them all;
#   - the daemon's heap per cached inode: its heap with every inode cached
#     (the kernel holds a reference to each), less its heap once the kernel
#     has dropped them (echo 2 > /proc/sys/vm/drop_caches), per inode;
#   - unmount time, and mount time against an empty file system's.
# A benchmark, not a test: it asserts nothing. Needs root (drop_caches).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh >/dev/null
BIN=$PWD/build/bin
COUNT=${1:-1000000}
WORK=$(mktemp -d "${BENCH_DIR:-/dev/shm}/nosyncfs-scale.XXXXXX")
MNT=$WORK/mnt
mkdir "$MNT"

cleanup() {
  if grep -qs " $MNT fuse" /proc/mounts; then fusermount3 -u "$MNT" || true; fi
  for _ in $(seq 300); do fuser -s "$WORK"/img 2>/dev/null || break; sleep 0.1; done
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
stat_of() { getfattr --absolute-names --only-values -n user.nosyncfs.stats "$MNT" | awk -v k="$1" '$1 == k { print $2 }'; }
unmount() {
  local t
  t=$(now)
  fusermount3 -u "$MNT"
  while fuser -s "$WORK"/img 2>/dev/null; do sleep 0.05; done
  echo "$(since "$t")"
}
mount_timed() {
  local t
  t=$(now)
  "$BIN"/nosyncfs "$WORK"/img "$MNT"
  echo "$(since "$t")"
}

"$BIN"/mkfs.nosyncfs -s 8G "$WORK"/img >/dev/null
empty_mount=$(mount_timed)
mkdir "$MNT"/d
heap_empty=$(stat_of heap_bytes)

STEP=$((COUNT / 10))
mkdir "$WORK"/tmpfs
PID=$(fuser "$WORK"/img 2>/dev/null | awk '{ print $1 }')
cpu_us() { awk '{ print ($14 + $15) * 1000000 / '"$(getconf CLK_TCK)"' }' /proc/"$PID"/stat; }
echo "== creating $COUNT empty files in one directory"
printf '%12s %14s %14s %18s\n' files "tmpfs/s" "nosyncfs/s" "daemon CPU us/op"
for ((first = 0; first < COUNT; first += STEP)); do
  tmpfs_rate=$("$BIN"/meta_bench --grow "$WORK"/tmpfs "$STEP" "$STEP" "$first" | awk '{ print $4 }')
  before=$(cpu_us)
  rate=$("$BIN"/meta_bench --grow "$MNT"/d "$STEP" "$STEP" "$first" | awk '{ print $4 }')
  after=$(cpu_us)
  printf '%12s %14s %14s %18.1f\n' $((first + STEP)) "$tmpfs_rate" "$rate" \
    "$(awk -v a="$before" -v b="$after" -v n="$STEP" 'BEGIN { print (b - a) / n }')"
done
rm -rf "$WORK"/tmpfs

cached=$(stat_of cached_inodes)
heap_cached=$(stat_of heap_bytes)
sync
echo 2 > /proc/sys/vm/drop_caches
for _ in $(seq 100); do
  [ "$(stat_of cached_inodes)" -lt $((cached / 100 + 10)) ] && break
  sleep 0.2
done
left=$(stat_of cached_inodes)
heap_dropped=$(stat_of heap_bytes)
echo "== daemon heap: $heap_empty bytes empty, $heap_cached with $cached inodes cached," \
  "$heap_dropped once the kernel dropped them ($left left)"
awk -v a="$heap_cached" -v b="$heap_dropped" -v n="$cached" -v m="$left" \
  'BEGIN { printf "== heap per cached inode: %.0f bytes\n", (a - b) / (n - m) }'

t=$(now)
listed=$(ls -f "$MNT"/d | wc -l)
echo "== ls -f: $listed names (with . and ..) in $(since "$t") s"

echo "== unmount: $(unmount) s"
echo "== mount with $COUNT files: $(mount_timed) s (empty file system: $empty_mount s)"
echo "== unmount: $(unmount) s"
