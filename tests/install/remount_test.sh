#!/usr/bin/env bash
# Remount through mount(8) and mount.fuse3, as an administrator does it:
# mount -o remount,ro refuses changes (EROFS) and keeps reads, is refused
# while a file is open for writing (EBUSY), remount,rw lets changes in
# again, an option that cannot change on a live mount is refused in one
# line, and the atime flags follow. A mount that succeeds prints nothing,
# also right behind umount(8), while the old daemon may still hold the
# device.
#
# mount.fuse3 looks for the nosyncfs program in a fixed PATH, so the test
# runs in a private mount namespace (unshare -m) in which /usr/local/sbin
# holds a link to the build's nosyncfs: the machine's own mounts and files
# are not touched. Skipped (77) without root or unshare.
# usage: remount_test.sh BIN_DIR
set -euo pipefail
if [ -z "${NSF_REMOUNT_TEST_NS:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
  command -v unshare >/dev/null || { echo "skipped: needs unshare"; exit 77; }
  exec env NSF_REMOUNT_TEST_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi
bin=$(cd "$1" && pwd)
work=$(mktemp -d /dev/shm/nsf-remount.XXXXXX)
mnt="$work/mnt"
cleanup() {
  set +e
  exec 3>&- 2>/dev/null
  mountpoint -q "$mnt" && { umount "$mnt" || fusermount3 -uz "$mnt"; }
  for _ in $(seq 200); do flock -n "$work/img" true 2>/dev/null && break; sleep 0.1; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
# The pid of the process that has file $1 open (the daemon).
holder() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = $$ ] && continue
    ls -l "$p/fd" 2>/dev/null | grep -q -- "-> $1\$" && { echo "${p#/proc/}"; return; }
  done
}
mount -t tmpfs tmpfs /usr/local/sbin
ln -s "$bin/nosyncfs" /usr/local/sbin/nosyncfs

mkdir "$mnt"
"$bin/mkfs.nosyncfs" -s 64M "$work/img" >/dev/null
out=$(mount -t fuse.nosyncfs -o emulate=strict "$work/img" "$mnt" 2>&1) || fail "mount -t: $out"
[ -z "$out" ] || fail "mount printed: $out"
echo data >"$mnt/f"
opts() { findmnt -n -o OPTIONS "$mnt"; }

echo "== mount -o remount,ro"
out=$(mount -o remount,ro "$mnt" 2>&1) || fail "remount,ro: $out"
[ -z "$out" ] || fail "remount,ro printed: $out"
[[ ",$(opts)," == *,ro,* ]] || fail "not read-only: $(opts)"
[ "$(cat "$mnt/f")" = data ] || fail "reads stopped"
err=$( (echo more >>"$mnt/f") 2>&1) && fail "a write went through"
[[ "$err" == *"Read-only file system"* ]] || fail "a write failed otherwise: $err"
mkdir "$mnt/d" 2>/dev/null && fail "mkdir went through"

echo "== mount -o remount,rw"
out=$(mount -o remount,rw "$mnt" 2>&1) || fail "remount,rw: $out"
[ -z "$out" ] || fail "remount,rw printed: $out"
[[ ",$(opts)," == *,rw,* ]] || fail "not read-write: $(opts)"
echo more >>"$mnt/f" || fail "a write after remount,rw"
mkdir "$mnt/d" || fail "mkdir after remount,rw"

echo "== remount,ro with a file open for writing"
exec 3>>"$mnt/f"
err=$(mount -o remount,ro "$mnt" 2>&1) && fail "remount,ro with a writer went through"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "not one line: $err"
[[ "$err" == *"open for writing"* ]] || fail "does not say why: $err"
exec 3>&-
[[ ",$(opts)," == *,rw,* ]] || fail "read-only after a refused remount"

echo "== options on a remount"
err=$(mount -o remount,emulate=none "$mnt" 2>&1) && fail "emulate= changed on a remount"
[[ "$err" == *"emulate= cannot change"* ]] || fail "does not say why: $err"
mount -o remount,noatime "$mnt" || fail "remount,noatime"
[[ ",$(opts)," == *,noatime,* ]] || fail "noatime not shown: $(opts)"

echo "== umount, then mount at once"
for round in 1 2 3; do
  head -c 8M /dev/urandom >"$mnt/data$round"
  # In round 2 the old daemon is stopped for half a second as the unmount
  # returns: the new mount finds the device locked, waits, and says nothing.
  daemon=$(holder "$work/img")
  [ -n "$daemon" ] || fail "no daemon holds the image"
  umount "$mnt" || fail "umount"
  if [ $round -eq 2 ]; then kill -STOP "$daemon" && (sleep 0.5; kill -CONT "$daemon") & fi
  out=$(mount -t fuse.nosyncfs -o emulate=strict "$work/img" "$mnt" 2>&1) || fail "mount: $out"
  [ -z "$out" ] || fail "round $round: the mount printed: $out"
  wait
done
[ "$(head -c 8M "$mnt/data3" | wc -c)" -eq $((8 << 20)) ] || fail "data3"
umount "$mnt"
for _ in $(seq 200); do flock -n "$work/img" true && break; sleep 0.1; done
"$bin/fsck.nosyncfs" "$work/img" | grep -q clean || fail "fsck after the remounts"
echo "remount through mount(8): ok"
