#!/usr/bin/env bash
# The examples in conf/ are right: the fstab line parses as fstab(5) and its
# options mount; the systemd unit passes systemd-analyze verify (where
# systemd-analyze exists) and its Options= mount; the modprobe.d line sets
# a parameter the fuse module has.
# usage: conf_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
work=$(mktemp -d /tmp/nsf-conf.XXXXXX)
cleanup() {
  set +e
  mountpoint -q "$work/mnt" 2>/dev/null && fusermount3 -u "$work/mnt"
  for _ in $(seq 200); do flock -n "$work/img" true 2>/dev/null && break; sleep 0.1; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Mounts a fresh image with OPTIONS (as the example gives them) and
# unmounts it again.
mounts_with() {
  rm -rf "$work/img" "$work/img.meta"
  "$bin/mkfs.nosyncfs" -q -s 64M "$work/img"
  "$bin/nosyncfs" "$work/img" "$work/mnt" -o "$1,emulate=strict" || fail "$2: -o $1 does not mount"
  [ "$(findmnt -n -o FSTYPE "$work/mnt")" = fuse.nosyncfs ] || fail "$2: not mounted"
  fusermount3 -u "$work/mnt"
  for _ in $(seq 200); do flock -n "$work/img" true 2>/dev/null && return 0; sleep 0.1; done
  fail "$2: the daemon did not let go of the image"
}
mkdir "$work/mnt"

# fstab.example: exactly one entry, of type fuse.nosyncfs.
fstab="$src/conf/fstab.example"
entries=$(findmnt --tab-file "$fstab" -n -o SOURCE,TARGET,FSTYPE,OPTIONS -r)
[ "$(wc -l <<<"$entries")" -eq 1 ] || fail "fstab.example: expected one entry, got: $entries"
read -r source target fstype options <<<"$entries"
[ "$fstype" = fuse.nosyncfs ] || fail "fstab.example: type $fstype"
echo "fstab.example: $source on $target, options $options"
mounts_with "$options" fstab.example

unit="$src/conf/mnt-pmem.mount"
options=$(sed -n 's/^Options=//p' "$unit")
[ -n "$options" ] || fail "mnt-pmem.mount has no Options="
grep -qx 'Type=fuse.nosyncfs' "$unit" || fail "mnt-pmem.mount: Type is not fuse.nosyncfs"
mounts_with "$options" mnt-pmem.mount
if command -v systemd-analyze >/dev/null; then
  # Any message (an unknown key is only a warning) fails the test.
  out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  echo "mnt-pmem.mount: systemd-analyze verify is clean"
else
  echo "mnt-pmem.mount: systemd-analyze not installed, unit not verified"
fi
# fuse-uring.conf: one modprobe.d line that sets a parameter the fuse
# module has, to a value it takes (tried through sysfs, then put back).
conf="$src/conf/fuse-uring.conf"
line=$(grep -v '^#' "$conf" | grep -v '^$')
read -r word module setting <<<"$line"
[ "$word" = options ] && [ "$module" = fuse ] || fail "fuse-uring.conf: not an options line for fuse: $line"
param=/sys/module/fuse/parameters/${setting%%=*}
if [ -e "$param" ]; then
  old=$(cat "$param")
  echo "${setting#*=}" >"$param" || fail "fuse-uring.conf: the kernel refuses $setting"
  now=$(cat "$param")
  echo "$old" >"$param"
  [ "$now" = Y ] || fail "fuse-uring.conf: $setting leaves the parameter at $now"
  echo "fuse-uring.conf: $setting is taken (and put back to $old)"
else
  echo "fuse-uring.conf: this kernel has no $param, not tried"
fi
echo "conf: ok"
