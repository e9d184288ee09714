#!/usr/bin/env bash
# What an administrator downloads and installs for the given packages on a
# minimal Debian (debootstrap --variant=minbase: the packages of priority
# "required" and what they depend on): the packages themselves, and what
# apt adds from the archive (dependencies and recommendations, as
# `apt-get install` would). Reads apt's package lists; installs nothing.
# The README's table of install sizes comes from it.
# usage: tools/package/install_size.sh PACKAGE.deb...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE.deb..." >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# apt plans against a status file of our own: empty for the base, then the
# base as installed.
simulate() {  # STATUS PACKAGE...: the packages apt would install, name=version
  apt-get -s -o Dir::State::status="$1" install "${@:2}" 2>/dev/null |
    awk '$1 == "Inst" {sub(/^\(/, "", $3); print $2 "=" $3}'
}
: >"$work/empty"
required=$(apt-cache dumpavail |
  awk -v RS= '/\nPriority: required\n/ {match($0, /^Package: [^\n]*/); print substr($0, 10, RLENGTH - 9)}' |
  sort -u)
# shellcheck disable=SC2046,SC2086  # one word per package
apt-cache show --no-all-versions $(simulate "$work/empty" $required) |
  sed '/^Package: /a Status: install ok installed' >"$work/status"

ours_size=0; ours_installed=0; debs=(); ours=()
for deb in "$@"; do
  ours_size=$((ours_size + $(stat -c %s "$deb")))
  ours_installed=$((ours_installed + $(dpkg-deb -f "$deb" Installed-Size)))
  debs+=("$(realpath "$deb")")
  ours+=("$(dpkg-deb -f "$deb" Package)=$(dpkg-deb -f "$deb" Version)")
done
added=$(simulate "$work/status" "${debs[@]}" | grep -v -F -x -f <(printf '%s\n' "${ours[@]}") || true)
size=0; installed=0; names=()
if [ -n "$added" ]; then
  # shellcheck disable=SC2086  # one word per package
  read -r size installed < <(apt-cache show --no-all-versions $added |
    awk '/^Size:/ {s += $2} /^Installed-Size:/ {i += $2} END {print s, i}')
  for p in $added; do names+=("${p%%=*}"); done
fi
printf '%s: download %d KiB, installed %d KiB\n' "$(basename -a "$@" | paste -sd ' ')" \
  $((ours_size / 1024)) "$ours_installed"
printf 'apt adds %d packages: download %d KiB, installed %d KiB (%s)\n' "${#names[@]}" \
  $((size / 1024)) "$installed" "${names[*]}"
