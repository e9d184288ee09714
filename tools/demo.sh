#!/usr/bin/env bash
# The main job, for a first look: installs and builds, formats a 1 GiB
# emulated pmem image, mounts it, writes a file with a no-fsync range and
# shows it. Leaves the file system mounted and says how to unmount.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

IMAGE=${IMAGE:-/var/tmp/nosyncfs-demo.img}
MNT=${MNT:-/mnt/nosyncfs-demo}
BIN=$PWD/build/bin

if grep -qs " $MNT fuse.nosyncfs " /proc/mounts; then
  echo "== unmounting the previous demo at $MNT"
  fusermount3 -u "$MNT"
  sleep 1
fi
echo "== formatting $IMAGE (1 GiB, strict persistence emulation at mount)"
"$BIN/mkfs.nosyncfs" -f -s 1G "$IMAGE"
mkdir -p "$MNT"
echo "== mounting on $MNT"
"$BIN/nosyncfs" "$IMAGE" "$MNT" -o emulate=strict

echo "== writing $MNT/journal.log with a 1 MiB no-fsync range"
printf 'first record\n' > "$MNT/journal.log"
setfattr -n user.nosync -v 0-1M "$MNT/journal.log"
printf 'second record, durable when write(2) returned\n' >> "$MNT/journal.log"
ls -l "$MNT"
getfattr -n user.nosync "$MNT/journal.log"
"$BIN/nosyncctl" show "$MNT/journal.log"
df -h "$MNT"
echo
echo "nosyncfs is mounted on $MNT. Unmount with:  fusermount3 -u $MNT"
