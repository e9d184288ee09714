#!/usr/bin/env bash
# The Debian packages as an administrator meets them: cpack -G DEB builds
# them; lintian finds no error and no warning in any of them; each holds
# what it should, stripped, with its debug symbols in its -dbgsym package
# and its dependencies read off the binaries; dpkg -i installs them; the
# file system formats with mkfs -t, mounts with mount -t fuse.nosyncfs and
# through an fstab line, checks with fsck; a C program builds against
# libnosyncfs-dev with pkg-config and runs; a program runs under the
# installed shim; dpkg --purge leaves the machine as it was. Skipped (exit
# 77) without root or dpkg-dev, or when a nosyncfs package is already
# installed (it is not ours to replace).
# usage: package_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)

packages=(nosyncfs libnosyncfs0 libnosyncfs-dev nosyncfs-shim)
skip() { echo "skipped: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i)"
command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null ||
  skip "needs dpkg-deb and dpkg-shlibdeps (package dpkg-dev)"
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
    skip "a $p package is already installed"
  fi
done
for f in /usr/bin/nosyncfs /usr/sbin/mkfs.nosyncfs /usr/sbin/fsck.nosyncfs /usr/bin/nosyncctl \
         /usr/include/nosyncfs.h; do
  [ -e "$f" ] && skip "$f exists (installed by hand?)"
done

work=$(mktemp -d /tmp/nsf-package.XXXXXX)
installed=()
cleanup() {
  set +e
  for m in "$work/mnt" "$work/mnt2"; do
    mountpoint -q "$m" 2>/dev/null && { umount "$m" || fusermount3 -uz "$m"; }
  done
  [ ${#installed[@]} -gt 0 ] && dpkg --purge "${installed[@]}" >/dev/null
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
deb() { ls "$work"/pkg/"$1"_*.deb; }
with_symbols=(nosyncfs libnosyncfs0 nosyncfs-shim)
for p in "${packages[@]}" "${with_symbols[@]/%/-dbgsym}"; do
  deb "$p" >/dev/null || fail "no package $p"
done
[ "$(ls "$work"/pkg/*.deb | wc -l)" -eq 7 ] || fail "packages we did not expect: $(ls "$work"/pkg)"
for f in "$work"/pkg/*.deb; do ls -l "$f" | awk '{printf "%s %d KiB, ", $NF, $5 / 1024}' | sed "s|$work/pkg/||"
  dpkg-deb -f "$f" Installed-Size | awk '{print "installs " $1 " KiB"}'; done

echo "== lintian"
# No error and no warning: each is fixed, or overridden with its reason
# (the overrides ship in the packages). Informational tags are shown.
if ! lintian --fail-on error,warning --display-info "$work"/pkg/*.deb >"$work/lintian.log" 2>&1; then
  cat "$work/lintian.log"
  fail "lintian"
fi
cat "$work/lintian.log"

echo "== what each package holds"
holds() {  # PACKAGE PATH... : each path is in the package (a link as "path -> target")
  local p=$1 contents
  shift
  contents=$(dpkg-deb -c "$(deb "$p")")
  for f in "$@"; do
    grep -q " \./$f\$" <<<"$contents" || fail "$p lacks /$f"
  done
}
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
lib=usr/lib/$multiarch
holds nosyncfs usr/bin/nosyncfs usr/bin/nosyncctl usr/sbin/mkfs.nosyncfs usr/sbin/fsck.nosyncfs \
  "usr/sbin/fsck.fuse.nosyncfs -> fsck.nosyncfs" \
  usr/share/man/man8/nosyncfs.8.gz usr/share/man/man8/mkfs.nosyncfs.8.gz \
  usr/share/man/man8/fsck.nosyncfs.8.gz usr/share/man/man1/nosyncctl.1.gz \
  "usr/share/man/man8/fsck.fuse.nosyncfs.8.gz -> fsck.nosyncfs.8.gz" \
  usr/share/doc/nosyncfs/semantics.md usr/share/doc/nosyncfs/examples/fstab.example \
  usr/share/doc/nosyncfs/examples/mnt-pmem.mount
holds libnosyncfs0 "$lib/libnosyncfs.so.0 -> libnosyncfs.so.0.1.0" "$lib/libnosyncfs.so.0.1.0"
holds libnosyncfs-dev usr/include/nosyncfs.h "$lib/libnosyncfs.so -> libnosyncfs.so.0" \
  "$lib/pkgconfig/nosyncfs.pc"
holds nosyncfs-shim "$lib/nosyncfs/libnosyncfs_shim.so"
holds libnosyncfs0 usr/share/lintian/overrides/libnosyncfs0
for p in "${packages[@]}" "${with_symbols[@]/%/-dbgsym}"; do
  holds "$p" "usr/share/doc/$p/copyright" "usr/share/doc/$p/changelog.gz"
done
# The library is in one package only; nothing is in two.
all=$(for p in "${packages[@]}"; do dpkg-deb -c "$(deb "$p")" | awk '$1 !~ /^d/ {print $6}'; done | sort)
[ -z "$(uniq -d <<<"$all")" ] || fail "in two packages: $(uniq -d <<<"$all")"
[ "$(dpkg-deb -f "$(deb libnosyncfs0)" Package)" = libnosyncfs0 ] || fail "library package name"
dpkg-deb -x "$(deb libnosyncfs0)" "$work/lib0"
soname=$(readelf -d "$work/lib0/$lib/libnosyncfs.so.0.1.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libnosyncfs.so.0 ] || fail "the library's soname is '$soname'"
dpkg-deb --ctrl-tarfile "$(deb libnosyncfs0)" | tar -xO ./shlibs | grep -qx \
  "libnosyncfs 0 libnosyncfs0 (= 0.1.0)" || fail "libnosyncfs0 has no shlibs line for $soname"
dpkg-deb --ctrl-tarfile "$(deb libnosyncfs0)" | tar -xO ./triggers | grep -qx \
  "activate-noawait ldconfig" || fail "libnosyncfs0 does not trigger ldconfig"

echo "== dependencies, read off the binaries"
depends() { dpkg-deb -f "$(deb "$1")" Depends; }
depends_on() {  # PACKAGE NAME...: each NAME is in PACKAGE's Depends
  local names
  names=$(depends "$1" | sed 's/ *([^)]*)//g; s/, */\n/g')
  for d in "${@:2}"; do grep -qxF "$d" <<<"$names" || fail "$1: Depends lacks $d"; done
}
depends nosyncfs
depends_on nosyncfs fuse3 libfuse3-3 librocksdb7.8 libpmem2 libspdlog1.10-fmt9 liburing2 \
  libstdc++6 libc6
grep -q "libnosyncfs0" <<<"$(depends nosyncfs)" && fail "nosyncfs depends on the client library"
depends_on libnosyncfs0 libpmem2 libc6
grep -q "librocksdb\|libspdlog\|libfuse" <<<"$(depends libnosyncfs0)" &&
  fail "libnosyncfs0 depends on the daemon's libraries: $(depends libnosyncfs0)"
grep -q "libnosyncfs0 (= 0.1.0)" <<<"$(depends libnosyncfs-dev)" || fail "libnosyncfs-dev Depends"
grep -q "libnosyncfs0 (= 0.1.0)" <<<"$(depends nosyncfs-shim)" || fail "nosyncfs-shim Depends"

echo "== install sizes (tools/package/install_size.sh, for the README), from apt's lists"
if apt-cache show librocksdb7.8 >/dev/null 2>&1; then
  sizes=$("$src/tools/package/install_size.sh" "$(deb nosyncfs)")
  echo "$sizes"
  grep -q "^apt adds .*librocksdb7.8" <<<"$sizes" || fail "install_size.sh: RocksDB not among what apt adds"
  sizes=$("$src/tools/package/install_size.sh" "$(deb libnosyncfs0)")
  echo "$sizes"
  grep -q "^apt adds .*libpmem2" <<<"$sizes" || fail "install_size.sh: libpmem2 not among what apt adds"
  grep -q "librocksdb" <<<"$sizes" && fail "install_size.sh: the library alone brings in RocksDB"
else
  echo "(no apt lists here: not measured)"
fi

echo "== stripped, with the debug symbols in -dbgsym"
mkdir "$work/x"
for p in "${with_symbols[@]}"; do
  dpkg-deb -x "$(deb "$p")" "$work/x"
  dpkg-deb -x "$(deb "$p-dbgsym")" "$work/x"
  grep -q "^$p (= 0.1.0)\$" <<<"$(depends "$p-dbgsym")" || fail "$p-dbgsym Depends"
done
for f in usr/bin/nosyncfs usr/bin/nosyncctl usr/sbin/mkfs.nosyncfs usr/sbin/fsck.nosyncfs \
         "$lib/libnosyncfs.so.0.1.0" "$lib/nosyncfs/libnosyncfs_shim.so"; do
  file -b "$work/x/$f" | grep -q ", stripped" || fail "/$f is not stripped"
  id=$(readelf -n "$work/x/$f" | awk '/Build ID/ {print $3}')
  debug="$work/x/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
  [ -f "$debug" ] || fail "no debug symbols for /$f in its -dbgsym package"
  readelf -S "$debug" 2>/dev/null | grep -q debug_info || fail "$debug holds no debug_info"
done
readelf -d "$work/x/usr/bin/nosyncfs" | grep -q "librocksdb.so" ||
  fail "the daemon does not use Debian's shared RocksDB"

echo "== cmake --install puts the same files in place as the packages together"
DESTDIR="$work/stage" cmake --install "$build" --prefix /usr >/dev/null
staged=$(cd "$work/stage" && find . ! -type d | sed 's|^\./||' | sort)
packaged=$(for p in "${packages[@]}"; do dpkg-deb -c "$(deb "$p")"; done |
  awk '$1 !~ /^d/ {print $6}' | sed 's|^\./||' | sort)
[ "$staged" = "$packaged" ] ||
  fail "cmake --install and the packages differ: $(diff <(echo "$staged") <(echo "$packaged"))"

before_packages=$(dpkg-query -W -f='${Package} ${Version}\n' | sort | md5sum)
before_ldcache=$(ldconfig -p | sort | md5sum)

echo "== dpkg -i"
installed=("${packages[@]}" nosyncfs-dbgsym)
dpkg -i "$(deb libnosyncfs0)" "$(deb nosyncfs)" "$(deb libnosyncfs-dev)" "$(deb nosyncfs-shim)" \
  "$(deb nosyncfs-dbgsym)" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
[ "$(command -v nosyncfs)" = /usr/bin/nosyncfs ] || fail "nosyncfs is not /usr/bin/nosyncfs"
verify=$(dpkg --verify "${installed[@]}") || true
[ -z "$verify" ] || fail "dpkg --verify: $verify"
# (/lib is /usr/lib on a merged-/usr system; ldconfig may name either.)
ldconfig -p | grep -q "libnosyncfs.so.0 .*=> \(/usr\)\?/lib/$multiarch/libnosyncfs.so.0$" ||
  fail "the ldconfig trigger did not put libnosyncfs.so.0 in the loader's cache"
# gdb finds the daemon's symbols by its build ID.
id=$(readelf -n /usr/bin/nosyncfs | awk '/Build ID/ {print $3}')
[ -f "/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" ] || fail "nosyncfs-dbgsym: no symbols"

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

echo "== libnosyncfs-dev: a C program built with pkg-config writes in place"
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
readelf -d "$work/app" | grep -q "NEEDED.*libnosyncfs.so.0" || fail "app does not need libnosyncfs.so.0"
readelf -d "$work/app" | grep -q "RPATH\|RUNPATH" && fail "app needs a search path"
mount -t fuse.nosyncfs -o emulate=strict,direct=root "$work/img" "$work/mnt" || fail "mount direct="
head -c 65536 /dev/zero >"$work/mnt/d"
nosyncctl set "$work/mnt/d" all
[ "$("$work/app" "$work/mnt/d")" = "direct_writes 1" ] || fail "the installed library did not write in place"

echo "== nosyncfs-shim: dd under the installed shim writes in place"
writes() { getfattr --absolute-names --only-values -n user.nosyncfs.stats "$work/mnt" | awk '$1 == "requests_write" {print $2}'; }
w0=$(writes)
# shellcheck disable=SC2016  # $LIB is for ld.so to expand
LD_PRELOAD='/usr/$LIB/nosyncfs/libnosyncfs_shim.so' dd if=/dev/zero of="$work/mnt/d" bs=4096 \
  count=4 conv=notrunc status=none 2>"$work/dd.err" || { cat "$work/dd.err"; fail "dd under the shim"; }
[ -s "$work/dd.err" ] && { cat "$work/dd.err"; fail "ld.so complained about the shim"; }
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
for page in nosyncfs mkfs.nosyncfs fsck.nosyncfs fsck.fuse.nosyncfs nosyncctl; do
  [ "$(MANWIDTH=80 man "$page" 2>/dev/null | wc -l)" -gt 20 ] || fail "man $page"
done

echo "== dpkg --purge"
dpkg --purge "${installed[@]}" >/dev/null || fail "dpkg --purge"
installed=()
for f in $packaged; do
  [ -e "/$f" ] || [ -L "/$f" ] && fail "/$f is still there after purge"
done
for d in /usr/share/doc/nosyncfs "/$lib/nosyncfs" /usr/lib/debug/.build-id/"${id:0:2}"/"${id:2}".debug; do
  [ -e "$d" ] && fail "$d is still there after purge"
done
[ "$(dpkg-query -W -f='${Package} ${Version}\n' | sort | md5sum)" = "$before_packages" ] ||
  fail "the set of installed packages changed"
[ "$(ldconfig -p | sort | md5sum)" = "$before_ldcache" ] || fail "the loader's cache changed"
echo "package: ok"
