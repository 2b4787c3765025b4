#!/usr/bin/env bash
# `--resume PATH` from a checkpoint that is not the run directory's newest, then a crash before
# the resumed run's first checkpoint, then `--resume auto` (what a job script runs after a
# preemption):
#   1. a rewind (back to iter_2.h5 of a run that went on to iter_4.h5, e.g. to leave a loss
#      spike behind): `--resume auto` must continue from iter_2.h5, as the log was trimmed to
#      iteration 2. It continued from iter_4.h5, the course the rewind had left, and
#      metrics.jsonl lacked iterations 4 (and 3, had the crash come sooner) for good;
#   2. a checkpoint of another folder: `--resume auto` in the new folder must continue from it.
#      It found no checkpoint there and started over from iteration 0;
#   3. `--resume RUN_DIR`: the checkpoint that folder's `latest` names (it was "not a readable
#      HDF5 file").
# Both end bit-identical to the uninterrupted run, with every iteration logged once.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/fault_resume_rewind.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
SETS=("${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set schedule.max_iters=6)
run() { "$MV_BIN" train "${SETS[@]}" "$@"; }
train_iters() { grep '"type": "train"' "$1/metrics.jsonl" | grep -o '"iter": [0-9]*' | grep -o '[0-9]*$' | tr '\n' ' '; }
# crash_after_start DIR K ARGS...: a resume from iteration K that is killed (SIGKILL) once it
# has logged its start and one step, long before it would write a checkpoint (its own settings:
# it never gets there).
crash_after_start() {
    local dir=$1 k=$2; shift 2
    # (maskvim itself is $!, to be killed: not a shell function running it)
    "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$dir" --set schedule.max_iters=1000 --set run.ckpt_every=0 "$@" \
        >"$TMP/crash.log" 2>&1 &
    local pid=$!
    for _ in $(seq 3000); do
        # (the trim of the log at the resume removed the records after iteration K first)
        if grep -q "\"type\": \"start\", \"iter\": $k," "$dir/metrics.jsonl" 2>/dev/null &&
           grep -q "\"type\": \"train\", \"iter\": $((k + 1))," "$dir/metrics.jsonl"; then
            kill -9 $pid; { wait $pid; } 2>/dev/null || true; return 0
        fi
        kill -0 $pid 2>/dev/null || fail "the resume to be killed ended by itself: $(tail -3 "$TMP/crash.log")"
        sleep 0.02
    done
    fail "the resume to be killed did not start: $(tail -3 "$TMP/crash.log")"
}
passed=0
run --set run.work_dir="$TMP/full" >/dev/null
run --set run.work_dir="$TMP/a" --stop-after 4 >/dev/null   # iter_2, iter_4; latest: iter_4.h5

# 1. Rewind to iteration 2, crash, resume.
crash_after_start "$TMP/a" 2 --resume "$TMP/a/iter_2.h5"
run --set run.work_dir="$TMP/a" --resume auto >"$TMP/a.log" 2>&1 || fail "1: --resume auto: $(tail -3 "$TMP/a.log")"
grep -q "resumed from .*/iter_2.h5 at iteration 2" "$TMP/a.log" || fail "1: after the rewind: $(grep resumed "$TMP/a.log")"
[ "$(train_iters "$TMP/a")" = "1 2 3 4 5 6 " ] || fail "1: logged iterations: $(train_iters "$TMP/a")"
compare "$TMP/full/iter_6.h5" "$TMP/a/iter_6.h5" --exact || fail "1: differs from the uninterrupted run"
echo "1: a rewind to iteration 2 that crashed is continued from iteration 2"
passed=$((passed + 1))

# 2. From another folder's checkpoint (iteration 4), crash, resume.
crash_after_start "$TMP/b" 4 --resume "$TMP/full/iter_4.h5"
run --set run.work_dir="$TMP/b" --resume auto >"$TMP/b.log" 2>&1 || fail "2: --resume auto: $(tail -3 "$TMP/b.log")"
grep -q "resumed from .*/iter_4.h5 at iteration 4" "$TMP/b.log" || fail "2: did not continue at iteration 4: $(head -2 "$TMP/b.log")"
[ "$(train_iters "$TMP/b")" = "5 6 " ] || fail "2: logged iterations: $(train_iters "$TMP/b")"
compare "$TMP/full/iter_6.h5" "$TMP/b/iter_6.h5" --exact || fail "2: differs from the uninterrupted run"
echo "2: a resume from another folder's checkpoint that crashed is continued from it"
passed=$((passed + 1))
# 3. `--resume RUN_DIR` (or RUN_DIR/latest): the checkpoint that folder's `latest` names, said on
#    stderr; a folder without `latest` is refused, naming it.
run --set run.work_dir="$TMP/c" --stop-after 4 >/dev/null   # latest: iter_4.h5
for from in "$TMP/c" "$TMP/c/latest"; do
    rm -rf "$TMP/d"
    run --set run.work_dir="$TMP/d" --resume "$from" >"$TMP/d.log" 2>&1 || fail "3: --resume $from: $(tail -3 "$TMP/d.log")"
    grep -q "maskvim train: --resume $from: using $TMP/c/iter_4.h5 (named by $TMP/c/latest)" "$TMP/d.log" \
        || fail "3: --resume $from does not say which checkpoint: $(head -3 "$TMP/d.log")"
    [ "$(train_iters "$TMP/d")" = "5 6 " ] || fail "3: --resume $from: logged iterations: $(train_iters "$TMP/d")"
    compare "$TMP/full/iter_6.h5" "$TMP/d/iter_6.h5" --exact || fail "3: --resume $from differs from the uninterrupted run"
done
mkdir -p "$TMP/empty"
if run --set run.work_dir="$TMP/e" --resume "$TMP/empty" >"$TMP/e.log" 2>&1; then fail "3: a folder without latest accepted"; fi
grep -q "$TMP/empty: a folder without a \`latest\` file" "$TMP/e.log" || fail "3: $(tail -2 "$TMP/e.log")"
echo "3: --resume RUN_DIR continues from the checkpoint its latest names"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
