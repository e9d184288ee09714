#!/usr/bin/env bash
# tools/bench.sh: nosyncfs side by side with kernel tmpfs and libfuse's
# passthrough_ll, in one run on this machine, as one table with ratios to
# passthrough_ll. A benchmark, not a test: it asserts nothing.
#
# Columns: tmpfs (a directory in /dev/shm), passthrough_ll (built from
# Debian's libfuse3-dev examples, mounted with default_permissions over a
# tmpfs directory), nosyncfs (image in /dev/shm, unflagged files) and
# nosyncfs NF (files laid out and flagged user.nosync=all before timing
# starts: every write is durable on return), each on two mounts: one over
# /dev/fuse (uring=off) and one over io_uring (the fuse module's
# enable_uring turned on for its mount and put back at once; the columns
# are left out where the kernel has no such parameter).
#
# Rows: fio (psync engine) 4 KiB sequential write without fsync; 4 KiB
# write + fsync each; 4 KiB random write and random read with 1 and 2
# jobs; 1 MiB sequential write and read; then create, stat and unlink of
# 10,000 empty files (tests/bench/meta_bench).
#
# Then direct access (libnosyncfs), a second table, on the /dev/fuse
# nosyncfs mount and in the same run: durable 4 KiB random overwrites of a 64 MiB
# NF file through the library against the same writes through FUSE
# (tests/bench/direct_bench), fio's psync engine under the LD_PRELOAD shim
# against fio without it, and a write-ahead log of 4 KiB records into a
# preallocated 64 MiB file: through the library, through FUSE into NF
# (durable on return), and on passthrough_ll with fdatasync per record.
# Ratios are against the FUSE NF write of the same workload. Then durable
# 4 KiB appends (write + fdatasync per record, as a database commits) to
# log files created at run time in a directory with the no-fsync policy:
# through the library against the same through FUSE. Last, what coherence
# with direct writes costs a reader through FUSE: fio's 4 KiB sequential
# and random reads of the NF file while another process holds a write
# lease on it (each read(2) then asks for the attributes first), against
# the same reads with no lease held.
#
# Then databases, a third table: SQLite (the sqlite3 program:
# journal_mode=WAL, synchronous=FULL, BENCH_SQLITE_TXNS single-row insert
# transactions, default 20000) and RocksDB's db_bench (fillseq with sync=1,
# every write durable before it returns, BENCH_DB_OPS writes, default
# 20000), each on kernel tmpfs (no FUSE and no durability: the ceiling),
# on passthrough_ll over tmpfs, on nosyncfs without flags, on nosyncfs in a
# directory with the no-fsync policy through FUSE (over /dev/fuse and over
# io_uring), and the same under the LD_PRELOAD shim. Commits (or writes) per second, ratios to
# passthrough_ll, and the shim's to tmpfs.
#
# Each figure is the median of BENCH_ROUNDS runs (default 5), the targets
# taking turns, so that the shared machine's drift spreads over all of them,
# followed by its spread: half the range of the runs, in percent of the
# median. A difference smaller than the spreads is drift, not a change.
#
# Environment: BENCH_ROUNDS, BENCH_RUNTIME (seconds per fio run, default
# 2), BENCH_DIR (where the images and mounts live, default /dev/shm),
# BENCH_SQLITE_TXNS, BENCH_DB_OPS.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh >/dev/null
BIN=$PWD/build/bin
RUNTIME=${BENCH_RUNTIME:-2}
ROUNDS=${BENCH_ROUNDS:-5}
WORK=$(mktemp -d "${BENCH_DIR:-/dev/shm}/nosyncfs-bench.XXXXXX")
MOUNTS=()

URING_PARAM=/sys/module/fuse/parameters/enable_uring
cleanup() {
  for m in "${MOUNTS[@]}"; do
    if grep -qs " $m fuse" /proc/mounts; then fusermount3 -u "$m" || true; fi
  done
  # Our daemons release their images once they have finished shutting down.
  for _ in $(seq 100); do
    fuser -s "$WORK"/img "$WORK"/img-uring "$WORK"/ptll-src 2>/dev/null || break
    sleep 0.1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# passthrough_ll, from the examples Debian ships with libfuse3-dev.
PTLL_SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
PTLL=""
if [ -f "$PTLL_SRC" ]; then
  mkdir -p build/bench
  if [ ! -x build/bench/passthrough_ll ] || [ "$PTLL_SRC" -nt build/bench/passthrough_ll ]; then
    cc -O2 -I"$(dirname "$PTLL_SRC")" "$PTLL_SRC" $(pkg-config --cflags --libs fuse3) \
      -o build/bench/passthrough_ll
  fi
  PTLL=$PWD/build/bench/passthrough_ll
else
  echo "(no $PTLL_SRC: the passthrough_ll column is left out)" >&2
fi

mkdir -p "$WORK"/tmpfs "$WORK"/ptll-src "$WORK"/ptll "$WORK"/nsf "$WORK"/nsfu
if [ -n "$PTLL" ]; then
  "$PTLL" -o source="$WORK"/ptll-src,default_permissions "$WORK"/ptll
  MOUNTS+=("$WORK"/ptll)
fi
"$BIN"/mkfs.nosyncfs -s 6G "$WORK"/img >/dev/null
# direct=root: the direct-access rows at the end use the same mount.
"$BIN"/nosyncfs "$WORK"/img "$WORK"/nsf -o direct=root,uring=off
MOUNTS+=("$WORK"/nsf)
mkdir "$WORK"/nsf/nf "$WORK"/nsf/plain
# The io_uring mount: the kernel reads enable_uring when the mount starts,
# so it is on for that moment only.
URING=""
if [ -w "$URING_PARAM" ]; then
  "$BIN"/mkfs.nosyncfs -s 4G "$WORK"/img-uring >/dev/null
  was=$(cat "$URING_PARAM")
  echo Y >"$URING_PARAM"
  "$BIN"/nosyncfs "$WORK"/img-uring "$WORK"/nsfu -o uring=auto
  MOUNTS+=("$WORK"/nsfu)
  transport=$(getfattr --only-values -n user.nosyncfs.stats "$WORK"/nsfu | awk '$1 == "transport" { print $2 }')
  echo "$was" >"$URING_PARAM"
  [ "$transport" = uring ] || { echo "bench: the io_uring mount serves over $transport" >&2; exit 1; }
  mkdir "$WORK"/nsfu/nf "$WORK"/nsfu/plain
  URING=1
else
  echo "(no $URING_PARAM: the io_uring columns are left out)" >&2
fi

TARGETS=(tmpfs ptll nsf nsfu nf nfu)
dir_of() {
  case $1 in
    tmpfs) echo "$WORK/tmpfs" ;;
    ptll) echo "$WORK/ptll" ;;
    nsf) echo "$WORK/nsf/plain" ;;
    nsfu) echo "$WORK/nsfu/plain" ;;
    nf) echo "$WORK/nsf/nf" ;;
    nfu) echo "$WORK/nsfu/nf" ;;
  esac
}
have() {
  case $1 in
    ptll) [ -n "$PTLL" ] ;;
    nsfu | nfu | policyu) [ -n "$URING" ] ;;
    *) true ;;
  esac
}

# fio terse (version 3) fields: read IOPS 8, read bandwidth (KiB/s) 7,
# read mean latency (us) 40; write IOPS 49, bandwidth 48, mean latency 81.
FIELD_IOPS_R=8; FIELD_BW_R=7; FIELD_IOPS_W=49; FIELD_BW_W=48; FIELD_LAT_W=81

# run_fio TARGET FIELD SCALE FIO_ARGS...: lays the files out (and flags
# them for NF) unless an earlier round of the row did, then runs the job
# once, timed; prints FIELD / SCALE, and the mean write latency (us) after
# it. The row removes the files when its rounds are done.
run_fio() {
  local target=$1 field=$2 scale=$3
  shift 3
  local dir
  dir=$(dir_of "$target")
  fio --name=job --directory="$dir" --filename_format='job.$jobnum' --ioengine=psync \
    --create_only=1 "$@" >/dev/null
  if [ "$target" = nf ] || [ "$target" = nfu ]; then
    for f in "$dir"/job.*; do setfattr -n user.nosync -v all "$f"; done
  fi
  fio --name=job --directory="$dir" --filename_format='job.$jobnum' --ioengine=psync \
    --group_reporting --output-format=terse --terse-version=3 "$@" |
    awk -F';' -v f="$field" -v s="$scale" -v l=$FIELD_LAT_W '{ printf "%.1f %.1f\n", $f / s, $l }'
}

declare -A RESULT  # key,target -> the figures of every round
ROWS=()
# row KEY LABEL UNIT FIELD SCALE [LATENCY_KEY LATENCY_LABEL] -- FIO_ARGS...
row() {
  local key=$1 label=$2 unit=$3 field=$4 scale=$5 lat_key="" lat_label=""
  shift 5
  if [ "$1" != -- ]; then lat_key=$1 lat_label=$2; shift 2; fi
  shift
  [ -z "$lat_key" ] || ROWS+=("$lat_key|$lat_label|us")
  ROWS+=("$key|$label|$unit")
  local figure lat
  for _ in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
      have "$t" || continue
      read -r figure lat < <(run_fio "$t" "$field" "$scale" "$@")
      RESULT[$key,$t]+="$figure "
      [ -z "$lat_key" ] || RESULT[$lat_key,$t]+="$lat "
    done
  done
  for t in "${TARGETS[@]}"; do
    if have "$t"; then rm -f "$(dir_of "$t")"/job.*; fi
  done
}
median() {
  [ -n "${1// /}" ] || return 0
  # shellcheck disable=SC2086  # one word per figure
  printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
# spread FIGURES: how far the rounds are apart, as "±P%": half their
# range, in percent of their median. Two figures whose medians differ by
# less than their spreads are the machine's drift, not a change.
spread() {
  [ -n "${1// /}" ] || return 0
  # shellcheck disable=SC2086  # one word per figure
  printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 }
    END { m = v[int((NR + 1) / 2)]; if (m > 0) printf "±%.0f%%\n", (v[NR] - v[1]) / 2 / m * 100 }'
}
# cell FIGURES: one column of a table: the median, then the spread.
cell() { printf ' %11s %-5s' "$(median "$1")" "$(spread "$1")"; }
# head_cell NAME: that column's heading.
head_cell() { printf ' %11s %-5s' "$1" ""; }

# Metadata first, on fresh mounts; five rounds whatever BENCH_ROUNDS says
# (they are short, and the noisiest).
for op in create stat unlink; do ROWS+=("$op|$op 10,000 empty files|ops/s"); done
for _ in $(seq 5); do
  for t in tmpfs ptll nsf nsfu; do
    have "$t" || continue
    while read -r op rate; do RESULT[$op,$t]+="$rate "; done < <("$BIN"/meta_bench "$(dir_of "$t")" 10000)
  done
done

TIMED=(--time_based --runtime="$RUNTIME")
# fio: 8 rows of 6 targets; direct access: 13 runs; databases: about 20 s.
echo "running (about $(((ROUNDS * ((RUNTIME + 1) * 48 + (RUNTIME + 1) * 13 + 20) + 60) / 60 + 1)) minutes) ..." >&2
row seqw "4K seq write (no fsync)" "IOPS" $FIELD_IOPS_W 1 \
  seqw_lat "4K seq write (no fsync): latency" -- \
  --rw=write --bs=4k --size=64m "${TIMED[@]}"
row fsync "4K write + fsync each" "IOPS" $FIELD_IOPS_W 1 -- \
  --rw=write --bs=4k --size=64m --fsync=1 "${TIMED[@]}"
row randw1 "4K random write, 1 job" "IOPS" $FIELD_IOPS_W 1 -- \
  --rw=randwrite --bs=4k --size=64m --numjobs=1 "${TIMED[@]}"
row randw2 "4K random write, 2 jobs" "IOPS" $FIELD_IOPS_W 1 -- \
  --rw=randwrite --bs=4k --size=64m --numjobs=2 "${TIMED[@]}"
row randr1 "4K random read, 1 job" "IOPS" $FIELD_IOPS_R 1 -- \
  --rw=randread --bs=4k --size=64m --numjobs=1 "${TIMED[@]}"
row randr2 "4K random read, 2 jobs" "IOPS" $FIELD_IOPS_R 1 -- \
  --rw=randread --bs=4k --size=64m --numjobs=2 "${TIMED[@]}"
row seqw1m "1M seq write" "MiB/s" $FIELD_BW_W 1024 -- \
  --rw=write --bs=1m --size=1g "${TIMED[@]}"
row seqr1m "1M seq read" "MiB/s" $FIELD_BW_R 1024 -- \
  --rw=read --bs=1m --size=1g "${TIMED[@]}"

# The table: medians, then each nosyncfs column as a ratio to
# passthrough_ll (for latency, passthrough_ll's over ours: above 1 is
# better, as for every other row).
declare -A MEDIAN
for r in "${ROWS[@]}"; do
  key=${r%%|*}
  for t in "${TARGETS[@]}"; do MEDIAN[$key,$t]=$(median "${RESULT[$key,$t]:-}"); done
done
printf '\n%-36s %-6s%s%s%s%s%s%s %9s %9s %9s %9s\n' workload unit "$(head_cell tmpfs)" \
  "$(head_cell passthru_ll)" "$(head_cell nsf)" "$(head_cell "nsf uring")" "$(head_cell "NF")" \
  "$(head_cell "NF uring")" "nsf/ptll" "uring/ptll" "NF/ptll" "NFu/ptll"
for r in "${ROWS[@]}"; do
  IFS='|' read -r key label unit <<<"$r"
  line=$(printf '%-36s %-6s' "$label" "$unit")
  for t in "${TARGETS[@]}"; do line+=$(cell "${RESULT[$key,$t]:-}"); done
  for t in nsf nsfu nf nfu; do
    ours=${MEDIAN[$key,$t]:-} base=${MEDIAN[$key,ptll]:-}
    if [ -z "$ours" ] || [ -z "$base" ]; then
      line+=$(printf ' %9s' -)
    elif [ "$unit" = us ]; then
      line+=$(awk -v a="$base" -v b="$ours" 'BEGIN { printf " %8.2fx", a / b }')
    else
      line+=$(awk -v a="$ours" -v b="$base" 'BEGIN { printf " %8.2fx", a / b }')
    fi
  done
  echo "$line"
done

# ---- direct access ---------------------------------------------------------------
NFFILE="$WORK"/nsf/nf/direct.dat
PTFILE="$WORK"/ptll/direct.dat
truncate -s 64M "$NFFILE"
setfattr -n user.nosync -v all "$NFFILE"
if [ -n "$PTLL" ]; then head -c 64M /dev/zero >"$PTFILE"; fi
SHIM=$PWD/build/lib/libnosyncfs_shim.so
fio_iops() {  # FILE [ENV...]: fio psync 4K random writes, prints IOPS
  local file=$1
  shift
  env "$@" fio --name=job --filename="$file" --ioengine=psync --rw=randwrite --bs=4k \
    --size=64m --time_based --runtime="$RUNTIME" --output-format=terse --terse-version=3 |
    awk -F';' -v f=$FIELD_IOPS_W '{ printf "%.0f\n", $f }'
}
fio_read_iops() {  # FILE RW: fio psync 4K reads through FUSE (read or randread), prints IOPS
  fio --name=job --filename="$1" --ioengine=psync --rw="$2" --bs=4k --size=64m --time_based \
    --runtime="$RUNTIME" --output-format=terse --terse-version=3 |
    awk -F';' -v f=$FIELD_IOPS_R '{ printf "%.0f\n", $f }'
}
# fio_read_leased FILE RW: the same while another process holds a write
# lease on FILE (every read then asks for the attributes first: what the
# coherence with direct writes costs the FUSE read path).
fio_read_leased() {
  local holder out
  out=$(mktemp "$WORK"/hold.XXXXXX)
  "$BIN"/nsf_direct_client hold "$1" >"$out" &
  holder=$!
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.05; done
  grep -qx leased "$out" || { kill "$holder"; echo "bench: no write lease on $1" >&2; return 1; }
  fio_read_iops "$@"
  kill "$holder"
  wait "$holder" 2>/dev/null || true
}
declare -A DIRECT
DKEYS=(ow_fuse ow_direct fio_fuse fio_shim wal_fuse wal_direct wal_ptll app_fuse app_direct
  rd_seq rd_seq_leased rd_rand rd_rand_leased)
APPDIR="$WORK"/nsf/applog
mkdir "$APPDIR"
setfattr -n user.nosync -v all "$APPDIR"
for _ in $(seq "$ROUNDS"); do
  DIRECT[ow_fuse]+="$("$BIN"/direct_bench overwrite-fd "$NFFILE" "$RUNTIME") "
  DIRECT[ow_direct]+="$("$BIN"/direct_bench overwrite-direct "$NFFILE" "$RUNTIME") "
  DIRECT[fio_fuse]+="$(fio_iops "$NFFILE") "
  DIRECT[fio_shim]+="$(fio_iops "$NFFILE" LD_PRELOAD="$SHIM") "
  DIRECT[wal_fuse]+="$("$BIN"/direct_bench wal-fd "$NFFILE" "$RUNTIME") "
  DIRECT[wal_direct]+="$("$BIN"/direct_bench wal-direct "$NFFILE" "$RUNTIME") "
  if [ -n "$PTLL" ]; then
    DIRECT[wal_ptll]+="$("$BIN"/direct_bench wal-fdatasync "$PTFILE" "$RUNTIME") "
  fi
  DIRECT[app_fuse]+="$("$BIN"/direct_bench append-fd "$APPDIR" "$RUNTIME") "
  DIRECT[app_direct]+="$("$BIN"/direct_bench append-direct "$APPDIR" "$RUNTIME") "
  DIRECT[rd_seq]+="$(fio_read_iops "$NFFILE" read) "
  DIRECT[rd_seq_leased]+="$(fio_read_leased "$NFFILE" read) "
  DIRECT[rd_rand]+="$(fio_read_iops "$NFFILE" randread) "
  DIRECT[rd_rand_leased]+="$(fio_read_leased "$NFFILE" randread) "
done
declare -A DLABEL=(
  [ow_fuse]="4K random overwrite, NF, through FUSE"
  [ow_direct]="4K random overwrite, NF, libnosyncfs"
  [fio_fuse]="fio psync 4K randwrite, NF, FUSE"
  [fio_shim]="fio psync 4K randwrite, NF, shim"
  [wal_fuse]="4K WAL records, NF, through FUSE"
  [wal_direct]="4K WAL records, NF, libnosyncfs"
  [wal_ptll]="4K WAL records, ptll + fdatasync"
  [app_fuse]="4K appends + fdatasync, policy, FUSE"
  [app_direct]="4K appends + fdatasync, policy, lib"
  [rd_seq]="FUSE 4K seq read, NF file"
  [rd_seq_leased]="FUSE 4K seq read, write-leased"
  [rd_rand]="FUSE 4K rand read, NF file"
  [rd_rand_leased]="FUSE 4K rand read, write-leased"
)
declare -A DBASE=([ow_fuse]=ow_fuse [ow_direct]=ow_fuse [fio_fuse]=fio_fuse [fio_shim]=fio_fuse
  [wal_fuse]=wal_fuse [wal_direct]=wal_fuse [wal_ptll]=wal_fuse
  [app_fuse]=app_fuse [app_direct]=app_fuse
  [rd_seq]=rd_seq [rd_seq_leased]=rd_seq [rd_rand]=rd_rand [rd_rand_leased]=rd_rand)
printf '\n%-40s%s %9s\n' "direct access (reads: FUSE, leased or not)" "$(head_cell ops/s)" \
  "vs FUSE"
for k in "${DKEYS[@]}"; do
  m=$(median "${DIRECT[$k]:-}")
  b=$(median "${DIRECT[${DBASE[$k]}]:-}")
  if [ -z "$m" ]; then continue; fi
  printf '%-40s%s %8sx\n' "${DLABEL[$k]}" "$(cell "${DIRECT[$k]}")" \
    "$(awk -v a="$m" -v b="$b" 'BEGIN { printf "%.2f", a / b }')"
done

# ---- databases -------------------------------------------------------------------
SQLITE_TXNS=${BENCH_SQLITE_TXNS:-20000}
DB_OPS=${BENCH_DB_OPS:-20000}
POLICYDIR="$WORK"/nsf/db
mkdir "$POLICYDIR"
setfattr -n user.nosync -v all "$POLICYDIR"
{
  echo "PRAGMA journal_mode=WAL;"
  echo "PRAGMA synchronous=FULL;"
  echo "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);"
  for i in $(seq "$SQLITE_TXNS"); do echo "INSERT INTO t(v) VALUES('row $i of the benchmark');"; done
} >"$WORK"/sqlite.sql

now() { date +%s.%N; }
# sqlite_rate DIR [ENV...]: commits per second of the script in a new
# database in DIR; the database goes afterwards.
# A run that fails, or leaves fewer rows, gives no figure: the bench stops.
sqlite_rate() {
  local dir=$1 t0 t1 rows
  shift
  t0=$(now)
  env "$@" sqlite3 "$dir"/bench.sqlite <"$WORK"/sqlite.sql >/dev/null || return 1
  t1=$(now)
  rows=$(sqlite3 "$dir"/bench.sqlite 'SELECT count(*) FROM t') || return 1
  rm -f "$dir"/bench.sqlite*
  [ "$rows" = "$SQLITE_TXNS" ] || return 1
  awk -v n="$SQLITE_TXNS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}
# rocksdb_rate DIR [ENV...]: db_bench's ops/sec for fillseq with sync=1.
rocksdb_rate() {
  local dir=$1 out
  shift
  out=$(env "$@" db_bench --benchmarks=fillseq --sync=1 --num="$DB_OPS" --value_size=100 \
    --compression_type=none --threads=1 --db="$dir"/rocksdb 2>/dev/null) || return 1
  rm -rf "$dir"/rocksdb
  awk '/^fillseq/ { for (i = 1; i < NF; ++i) if ($(i + 1) == "ops/sec") { print $i; found = 1 } }
       END { exit !found }' <<<"$out"
}

POLICYDIRU="$WORK"/nsfu/db
if [ -n "$URING" ]; then
  mkdir "$POLICYDIRU"
  setfattr -n user.nosync -v all "$POLICYDIRU"
fi
DBTARGETS=(tmpfs ptll nsf policy policyu shim)
db_dir_of() {
  case $1 in
    tmpfs) echo "$WORK/tmpfs" ;;
    ptll) echo "$WORK/ptll" ;;
    nsf) echo "$WORK/nsf/plain" ;;
    policy | shim) echo "$POLICYDIR" ;;
    policyu) echo "$POLICYDIRU" ;;
  esac
}
declare -A DB
DBROWS=()
command -v sqlite3 >/dev/null && DBROWS+=(sqlite)
command -v db_bench >/dev/null && DBROWS+=(rocksdb)
for _ in $(seq "$ROUNDS"); do
  for row in "${DBROWS[@]}"; do
    for t in "${DBTARGETS[@]}"; do
      have "$t" || continue
      env=()
      [ "$t" = shim ] && env=(LD_PRELOAD="$SHIM")
      rate=$("${row}_rate" "$(db_dir_of "$t")" "${env[@]}") ||
        { echo "bench: $row on $t failed: no figure" >&2; exit 1; }
      DB[$row,$t]+="$rate "
    done
  done
done
declare -A DBLABEL=([sqlite]="SQLite WAL, synchronous=FULL" [rocksdb]="RocksDB db_bench fillseq sync=1")
printf '\n%-34s %-9s%s%s%s%s%s%s %9s %9s %9s %9s %10s\n' database unit "$(head_cell tmpfs)" \
  "$(head_cell passthru_ll)" "$(head_cell nosyncfs)" "$(head_cell "NF policy")" \
  "$(head_cell "pol. uring")" "$(head_cell policy+shim)" "nsf/ptll" "pol/ptll" "polu/ptll" \
  "shim/ptll" "shim/tmpfs"
for row in "${DBROWS[@]}"; do
  line=$(printf '%-34s %-9s' "${DBLABEL[$row]}" "$([ "$row" = sqlite ] && echo commits/s || echo writes/s)")
  for t in "${DBTARGETS[@]}"; do line+=$(cell "${DB[$row,$t]:-}"); done
  for pair in nsf:ptll policy:ptll policyu:ptll shim:ptll shim:tmpfs; do
    ours=$(median "${DB[$row,${pair%:*}]:-}")
    base=$(median "${DB[$row,${pair#*:}]:-}")
    if [ -z "$ours" ] || [ -z "$base" ]; then
      line+=$(printf ' %9s' -)
    else
      line+=$(awk -v a="$ours" -v b="$base" 'BEGIN { printf " %8.2fx", a / b }')
    fi
  done
  echo "$line"
done
