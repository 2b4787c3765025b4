#!/usr/bin/env bash
# A complete synthetic-data cache on a read-only file system (a finished cache shared read-only)
# is used as it is: `maskvim train` and `maskvim eval` read it without writing anything. They used
# to fail with "<cache>/.write.lock: cannot open: Read-only file system": the writers' lock was
# taken before the split was found complete (core/data_sources.c). A split missing from such a
# cache still fails, naming the cache. Root only (a read-only bind mount); skipped elsewhere.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/synth_cache_readonly.$$
mkdir -p "$TMP/ro"
mounted=""
trap '[ -z "$mounted" ] || umount "$TMP/ro" 2>/dev/null || true; rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=1
run() { "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set schedule.max_iters=3 --set run.ckpt_every=3 "$@"; }

# The cache, written by a run, then mounted read-only.
MV_SYNTH_CACHE="$TMP/cache" run --set run.work_dir="$TMP/a" >"$TMP/a.log" 2>&1 || fail "the run writing the cache: $(tail -3 "$TMP/a.log")"
if ! mount --bind "$TMP/cache" "$TMP/ro" 2>/dev/null; then
    echo "SKIP: cannot bind-mount here (needs root)"
    exit 0
fi
mounted=1
mount -o remount,bind,ro "$TMP/ro" || fail "cannot remount read-only"
touch "$TMP/ro/probe" 2>/dev/null && fail "the mount is writable"
export MV_SYNTH_CACHE="$TMP/ro"

run --set run.work_dir="$TMP/b" >"$TMP/b.log" 2>&1 || fail "train on a read-only complete cache: $(grep -v '^\[' "$TMP/b.log" | tail -3)"
grep -q "writing synthetic domain" "$TMP/b.log" && fail "train wrote into the cache: $(grep writing "$TMP/b.log")"
"$MV_BIN" eval --checkpoint "$TMP/b/iter_3.h5" >"$TMP/eval.log" 2>&1 \
    || fail "eval on a read-only complete cache: $(tail -3 "$TMP/eval.log")"
grep -q "clear" "$TMP/eval.log" || fail "eval printed no result: $(tail -3 "$TMP/eval.log")"

# A split the cache does not hold cannot be written there: an error, not a silent success.
rc=0
run --set run.work_dir="$TMP/c" --set data.synthetic.val_count=3 >"$TMP/c.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a missing split on a read-only cache: status 0"
grep -q "Read-only file system" "$TMP/c.log" || fail "the error does not say why: $(grep -v '^\[' "$TMP/c.log" | tail -3)"
echo "PASS: a read-only complete cache trains and evaluates; a missing split fails naming the file system"
