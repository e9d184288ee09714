#!/usr/bin/env bash
# The man pages render without a single groff or man warning, and
# nosyncfs(8) documents every -o option the daemon's --help lists.
# usage: man_pages_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
failed=0
for page in "$src"/docs/man/*.[18]; do
  out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
  if [ -n "$out" ]; then
    echo "FAIL: $page: $out"
    failed=1
  fi
  if [ "$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)" -lt 20 ]; then
    echo "FAIL: $page renders to almost nothing"
    failed=1
  fi
done

# Every "-o NAME" of the daemon's usage appears in the page.
rendered=$(MANWIDTH=200 man -l "$src/docs/man/nosyncfs.8" 2>/dev/null | col -b)
for option in $("$bin/nosyncfs" --help | grep -o -- '-o [a-z_]*' | cut -c4- | sort -u); do
  if ! grep -q -- "$option" <<<"$rendered"; then
    echo "FAIL: nosyncfs(8) does not document -o $option"
    failed=1
  fi
done
# And every option letter of mkfs.nosyncfs and fsck.nosyncfs.
for tool in mkfs.nosyncfs fsck.nosyncfs; do
  page=$(MANWIDTH=200 man -l "$src/docs/man/$tool.8" 2>/dev/null | col -b)
  for letter in $("$bin/$tool" -h 2>&1 | grep -o -- '^ *-[A-Za-z]' | tr -d ' -' | sort -u); do
    if ! grep -qE -- "(^|[ ,\[])-$letter\b" <<<"$page"; then
      echo "FAIL: $tool(8) does not document -$letter"
      failed=1
    fi
  done
done
# And every command of nosyncctl.
page=$(MANWIDTH=200 man -l "$src/docs/man/nosyncctl.1" 2>/dev/null | col -b)
for cmd in $("$bin/nosyncctl" --help 2>&1 | grep -oE 'nosyncctl [a-z|]+' | cut -d' ' -f2 | tr '|' '\n' | sort -u); do
  if ! grep -qw -- "$cmd" <<<"$page"; then
    echo "FAIL: nosyncctl(1) does not document $cmd"
    failed=1
  fi
done
[ $failed -eq 0 ] && echo "man pages: ok"
exit $failed
