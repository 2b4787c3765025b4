#!/usr/bin/env bash
# HDF5 files that another process holds open for writing (HDF5's file locking: an exclusive
# flock, as h5py.File(p, 'r+') takes) are locked, not damaged (core/h5util.h: h5_open_quiet).
# They used to be called "not a readable HDF5 file" / "truncated or corrupt", and `--resume auto`
# passed over a locked newest checkpoint, resumed from an older one and pointed `latest` back at
# it (retraining what the locked one held). Cases:
#   1. eval --checkpoint on a locked checkpoint: the error says it is locked by another process;
#   2. --resume auto with the checkpoint `latest` names locked: it stops with that error (status
#      1), `latest` and the folder unchanged; with `latest` damaged and the next one locked, the
#      same; a shared lock (another reader) does not interfere;
#   3. data inspect and training on a split with a locked shard: the error says locked;
#   4. data synth resuming a split whose complete shard is locked: it stops with that error
#      instead of rewriting the shard.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/fault_locked_files.$$
mkdir -p "$TMP"
holder=""
trap '[ -z "$holder" ] || kill "$holder" 2>/dev/null || true; rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=1
LOCKED="is locked by another process (HDF5 file locking: another program has it open for writing"

# hold ex|sh FILE..: locks the files (flock, as HDF5 does) in a background process until unhold.
hold() {
    local mode=$1
    shift
    rm -f "$TMP/held"
    "$MV_PYTHON" - "$TMP/held" "$mode" "$@" <<'EOF' &
import fcntl, sys, time
ready, mode, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
files = [open(p, "rb") for p in paths]
for f in files:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX if mode == "ex" else fcntl.LOCK_SH)
open(ready, "w").close()
time.sleep(300)
EOF
    holder=$!
    for _ in $(seq 1 300); do [ -e "$TMP/held" ] && return 0; sleep 0.05; done
    fail "the lock holder did not start"
}
unhold() { kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; holder=""; }
run() { "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 "$@"; }
passed=0

run --set run.work_dir="$TMP/a" --stop-after 4 >/dev/null 2>&1 || fail "the run to resume"   # iter_2.h5, iter_4.h5

# 1. eval of a locked checkpoint.
hold ex "$TMP/a/iter_4.h5"
rc=0
"$MV_BIN" eval --checkpoint "$TMP/a/iter_4.h5" >"$TMP/eval.log" 2>&1 || rc=$?
unhold
[ "$rc" -ne 0 ] || fail "eval of a locked checkpoint succeeded"
grep -qF "$TMP/a/iter_4.h5 $LOCKED" "$TMP/eval.log" || fail "eval: the error does not say locked: $(tail -2 "$TMP/eval.log")"
grep -q "not a readable HDF5 file" "$TMP/eval.log" && fail "eval: a locked file called unreadable"
passed=$((passed + 1))

# 2. --resume auto: a locked checkpoint stops it; nothing is passed over or rewound.
cp -r "$TMP/a" "$TMP/b"
hold ex "$TMP/b/iter_4.h5"
rc=0
run --set run.work_dir="$TMP/b" --resume auto >"$TMP/b.log" 2>&1 || rc=$?
unhold
[ "$rc" -eq 1 ] || fail "--resume auto with the newest checkpoint locked: status $rc, not 1: $(grep -v '^\[' "$TMP/b.log" | tail -3)"
grep -qF "$TMP/b/iter_4.h5 $LOCKED" "$TMP/b.log" || fail "--resume auto: the error does not say locked: $(tail -3 "$TMP/b.log")"
grep -q "passed over" "$TMP/b.log" && fail "--resume auto passed over a locked checkpoint: $(grep 'passed over' "$TMP/b.log")"
[ "$(cat "$TMP/b/latest")" = iter_4.h5 ] || fail "latest moved to $(cat "$TMP/b/latest")"
[ "$(ls "$TMP/b" | tr '\n' ' ')" = "config.yaml iter_2.h5 iter_4.h5 latest metrics.jsonl " ] || fail "files written: $(ls "$TMP/b")"
cmp -s "$TMP/a/metrics.jsonl" "$TMP/b/metrics.jsonl" || fail "metrics.jsonl changed"
# latest damaged, the older one locked: no checkpoint is whole as far as can be told, so it stops too.
truncate -s 100000 "$TMP/b/iter_4.h5"
hold ex "$TMP/b/iter_2.h5"
rc=0
run --set run.work_dir="$TMP/b" --resume auto >"$TMP/b2.log" 2>&1 || rc=$?
unhold
[ "$rc" -eq 1 ] && grep -qF "$TMP/b/iter_2.h5 $LOCKED" "$TMP/b2.log" \
    || fail "--resume auto with the older checkpoint locked: status $rc: $(grep -v '^\[' "$TMP/b2.log" | tail -3)"
# Another reader (a shared lock, as HDF5 takes to read) does not get in the way.
cp -r "$TMP/a" "$TMP/c"
hold sh "$TMP/c/iter_4.h5" "$TMP/c/iter_2.h5"
run --set run.work_dir="$TMP/c" --resume auto >"$TMP/c.log" 2>&1 || fail "resume beside a reader: $(tail -3 "$TMP/c.log")"
unhold
grep -q "resumed from $TMP/c/iter_4.h5 at iteration 4" "$TMP/c.log" || fail "did not resume from iter_4.h5: $(grep -v '^\[' "$TMP/c.log" | tail -3)"
passed=$((passed + 1))

# 3. A locked shard: data inspect and a training that reads it say so.
"$MV_BIN" data synth --out "$TMP/syn" --domains clear --count 24 --size 64x128 --samples-per-shard 8 >/dev/null 2>&1 \
    || fail "data synth"
split="$TMP/syn/clear/train"
hold ex "$split/shard-00001.h5"
rc=0
"$MV_BIN" data inspect "$split" >"$TMP/inspect.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "data inspect passed a locked shard"
grep -qF "$split/shard-00001.h5 $LOCKED" "$TMP/inspect.log" || fail "data inspect: $(tail -3 "$TMP/inspect.log")"
grep -q "truncated or corrupt" "$TMP/inspect.log" && fail "data inspect called a locked shard corrupt"
rc=0
run --set run.work_dir="$TMP/d" --set "data.train=[$split]" >"$TMP/d.log" 2>&1 || rc=$?
unhold
[ "$rc" -ne 0 ] || fail "training on a locked shard succeeded"
grep -qF "$split/shard-00001.h5 $LOCKED" "$TMP/d.log" || fail "training: $(grep -v '^\[' "$TMP/d.log" | tail -3)"
passed=$((passed + 1))

# 4. A resumed data synth over a locked complete shard stops rather than rewrite it.
rm "$split/manifest.json"   # unfinished: the resume adopts the complete shards
sum=$(md5sum <"$split/shard-00001.h5")
hold ex "$split/shard-00001.h5"
rc=0
"$MV_BIN" data synth --out "$TMP/syn" --domains clear --count 24 --size 64x128 --samples-per-shard 8 >"$TMP/s.log" 2>&1 \
    || rc=$?
unhold
[ "$rc" -ne 0 ] && grep -qF "$split/shard-00001.h5 $LOCKED" "$TMP/s.log" \
    || fail "data synth over a locked shard: status $rc: $(tail -3 "$TMP/s.log")"
[ "$(md5sum <"$split/shard-00001.h5")" = "$sum" ] || fail "the locked shard was rewritten"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
