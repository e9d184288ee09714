#!/usr/bin/env bash
# Builds the Debian package (cpack -G DEB), installs it, formats with
# mkfs -t, mounts with mount -t fuse.nosyncfs and through an fstab line,
# checks with fsck -t, reads the man page, and purges the package again,
# leaving the machine as it was. Skipped (exit 77) without root or dpkg, or
# when a nosyncfs is already installed (it is not ours to replace).
# usage: package_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)

skip() { echo "skipped: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i)"
command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null ||
  skip "needs dpkg-deb and dpkg-shlibdeps (package dpkg-dev)"
if dpkg-query -W -f='${Status}' nosyncfs 2>/dev/null | grep -q installed; then
  skip "a nosyncfs package is already installed"
fi
for f in /usr/bin/nosyncfs /usr/sbin/mkfs.nosyncfs /usr/sbin/fsck.nosyncfs /usr/bin/nosyncctl; do
  [ -e "$f" ] && skip "$f exists (installed by hand?)"
done

work=$(mktemp -d /tmp/nsf-package.XXXXXX)
installed=0
cleanup() {
  set +e
  for m in "$work/mnt" "$work/mnt2"; do
    mountpoint -q "$m" 2>/dev/null && { umount "$m" || fusermount3 -uz "$m"; }
  done
  [ $installed -eq 1 ] && dpkg --purge nosyncfs >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Waits (at most 20 s) until no daemon holds the image: umount returns
# before the daemon has finished its durable shutdown.
wait_released() {
  for _ in $(seq 200); do
    flock -n "$1" true 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$1 still locked 20 s after umount"
}

echo "== cpack -G DEB"
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg" >cpack.log 2>&1) ||
  { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/pkg/nosyncfs_*.deb)
info=$(dpkg-deb -I "$deb")
echo "$info" | grep -E '^ (Package|Version|Depends):'
for dep in fuse3 libfuse3 libpmem2 libspdlog; do  # RocksDB is linked statically
  echo "$info" | grep -E "^ Depends:.*\b$dep" >/dev/null || fail "Depends lacks $dep"
done
contents=$(dpkg-deb -c "$deb")
for f in usr/bin/nosyncfs usr/bin/nosyncctl usr/sbin/mkfs.nosyncfs usr/sbin/fsck.nosyncfs \
         "usr/sbin/fsck.fuse.nosyncfs -> fsck.nosyncfs" \
         usr/share/man/man8/nosyncfs.8 usr/share/man/man8/mkfs.nosyncfs.8 \
         usr/share/man/man8/fsck.nosyncfs.8 usr/share/man/man1/nosyncctl.1 \
         usr/share/doc/nosyncfs/semantics.md usr/share/doc/nosyncfs/examples/fstab.example \
         usr/share/doc/nosyncfs/examples/mnt-pmem.mount \
         usr/include/nosyncfs.h usr/lib/pkgconfig/nosyncfs.pc usr/lib/libnosyncfs_shim.so; do
  grep -q " \./$f\$" <<<"$contents" || fail "the package lacks /$f"
done
# cmake --install puts the same files in place.
DESTDIR="$work/stage" cmake --install "$build" --prefix /usr >/dev/null
staged=$(cd "$work/stage" && find . ! -type d | sort)
packaged=$(awk '$1 ~ /^-/ {print $NF} $1 ~ /^l/ {print $(NF-2)}' <<<"$contents" | sort)
[ "$staged" = "$packaged" ] || fail "cmake --install and the package differ: $(diff <(echo "$staged") <(echo "$packaged"))"
before=$(dpkg-query -W -f='${Package}\n' | sort | md5sum)

echo "== dpkg -i"
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
installed=1
[ "$(command -v nosyncfs)" = /usr/bin/nosyncfs ] || fail "nosyncfs is not /usr/bin/nosyncfs"

echo "== mkfs -t nosyncfs, mount -t fuse.nosyncfs"
mkdir "$work/mnt"
mkfs -t nosyncfs -q -s 64M "$work/img" || fail "mkfs -t nosyncfs"
mount -t fuse.nosyncfs -o emulate=strict,noatime "$work/img" "$work/mnt" || fail "mount -t"
[ "$(findmnt -n -o FSTYPE "$work/mnt")" = fuse.nosyncfs ] || fail "not mounted as fuse.nosyncfs"
echo "installed" >"$work/mnt/f"
nosyncctl set "$work/mnt/f" all
nosyncctl show "$work/mnt/f" | grep -q . || fail "nosyncctl show printed nothing"
umount "$work/mnt"
wait_released "$work/img"

echo "== libnosyncfs: a C program built with pkg-config, and the shim, write in place"
cat >"$work/app.c" <<'EOF'
#include <fcntl.h>
#include <nosyncfs.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  int fd = argc == 2 ? nsf_open(argv[1], O_RDWR) : -1;
  if (fd < 0) { fprintf(stderr, "nsf_open: %s\n", nsf_errmsg()); return 1; }
  char rec[4096];
  memset(rec, 'd', sizeof rec);
  if (nsf_pwrite(fd, rec, sizeof rec, 0) != (ssize_t)sizeof rec) return 1;
  struct nsf_counters c;
  nsf_get_counters(&c);
  printf("direct_writes %llu\n", (unsigned long long)c.direct_writes);
  return nsf_close(fd) != 0;
}
EOF
# shellcheck disable=SC2046  # pkg-config prints several words
cc -std=c11 -Wall -Wextra -Werror "$work/app.c" $(pkg-config --cflags --libs nosyncfs) \
  -o "$work/app" || fail "a C program does not build with pkg-config nosyncfs"
mount -t fuse.nosyncfs -o emulate=strict,direct=root "$work/img" "$work/mnt" || fail "mount direct="
head -c 65536 /dev/zero >"$work/mnt/d"
nosyncctl set "$work/mnt/d" all
[ "$("$work/app" "$work/mnt/d")" = "direct_writes 1" ] || fail "the installed library did not write in place"
writes() { getfattr --only-values -n user.nosyncfs.stats "$work/mnt" | awk '$1 == "requests_write" {print $2}'; }
w0=$(writes)
LD_PRELOAD=libnosyncfs_shim.so dd if=/dev/zero of="$work/mnt/d" bs=4096 count=4 conv=notrunc \
  status=none || fail "dd under the installed shim"
[ "$(writes)" = "$w0" ] || fail "dd under the shim went through FUSE"
umount "$work/mnt"
wait_released "$work/img"

echo "== mount -T FSTAB, with the line of conf/fstab.example"
options=$(findmnt --tab-file "$src/conf/fstab.example" -n -r -o OPTIONS)
printf '%s %s fuse.nosyncfs %s,emulate=strict,_netdev,x-systemd.automount 0 0\n' \
  "$work/img" "$work/mnt" "$options" >"$work/fstab"
mount -T "$work/fstab" "$work/mnt" || fail "mount -T"
[ "$(cat "$work/mnt/f")" = installed ] || fail "the file did not survive the remount"
umount "$work/mnt"
wait_released "$work/img"

echo "== fsck -t fuse.nosyncfs, and fsck by the fstab line"
# (fsck -t nosyncfs cannot work: fsck(8) reads "-t no..." as a negation.)
fsck -t fuse.nosyncfs "$work/img" || fail "fsck -t fuse.nosyncfs"
LIBMOUNT_FSTAB="$work/fstab" fsck "$work/img" | tee "$work/fsck.out" || fail "fsck DEVICE"
grep -q clean "$work/fsck.out" || fail "fsck by fstab did not run fsck.nosyncfs"

echo "== man"
for page in nosyncfs mkfs.nosyncfs fsck.nosyncfs nosyncctl; do
  [ "$(MANWIDTH=80 man "$page" 2>/dev/null | wc -l)" -gt 20 ] || fail "man $page"
done

echo "== dpkg --purge"
dpkg --purge nosyncfs >/dev/null || fail "dpkg --purge"
installed=0
for f in $(sed 's|^\./|/|' <<<"$packaged"); do
  [ -e "$f" ] || [ -L "$f" ] && fail "$f is still there after purge"
done
after=$(dpkg-query -W -f='${Package}\n' | sort | md5sum)
[ "$before" = "$after" ] || fail "the set of installed packages changed"
echo "package: ok"
