#!/usr/bin/env bash
# A fresh start (no --resume) in a run directory that holds an earlier, finished or crashed run.
# It used to mix the two runs: rotation kept the old run's higher-step iter_<step>.h5 files and
# deleted the new run's, `latest` and best.h5 could name the old run's files, and a crash before
# the new run's first checkpoint followed by `--resume auto` continued the OLD run. Now the old
# run's files move, whole and byte-identical, into DIR/previous-<time>/ and the new run starts
# clean:
#   1. a shorter fresh run over a finished longer one: its checkpoints survive rotation,
#      `latest` names its own, and every old file is in previous-*/ unchanged;
#   2. a fresh run killed before its first checkpoint, then `--resume auto`: a fresh start, not
#      a continuation of either earlier run (whose files are in a second previous-*/ folder).
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/fault_fresh_over_old_run.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
D="$TMP/run"
SETS=("${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.keep_ckpts=2 --set run.work_dir="$D")
passed=0

# The old run: 6 iterations, checkpoints at 2, 4, 6 (2 kept), its final evaluation makes best.h5.
"$MV_BIN" train "${SETS[@]}" --set schedule.max_iters=6 >"$TMP/old.log" 2>&1 || fail "old run: $(tail -3 "$TMP/old.log")"
[ "$(cat "$D/latest")" = iter_6.h5 ] && [ -f "$D/best.h5" ] && [ -f "$D/iter_4.h5" ] || fail "old run: $(ls "$D")"
OLD_FILES="best.h5 config.yaml iter_4.h5 iter_6.h5 latest metrics.jsonl"
mkdir "$TMP/old"
for f in $OLD_FILES; do cp "$D/$f" "$TMP/old/$f"; done

# 1. A fresh run of 4 iterations (another seed) into the same folder.
"$MV_BIN" train "${SETS[@]}" --set schedule.max_iters=4 --set run.seed=7 >"$TMP/new.log" 2>&1 ||
    fail "1: fresh run: $(tail -3 "$TMP/new.log")"
grep -q "previous-" "$TMP/new.log" || fail "1: no line about the earlier run's files: $(head -3 "$TMP/new.log")"
[ "$(cat "$D/latest")" = iter_4.h5 ] || fail "1: latest names $(cat "$D/latest")"
[ -f "$D/iter_2.h5" ] && [ -f "$D/iter_4.h5" ] || fail "1: the new run's checkpoints were rotated away: $(ls "$D")"
[ ! -e "$D/iter_6.h5" ] || fail "1: the old run's iter_6.h5 is still in the folder: $(ls "$D")"
cmp -s "$D/iter_4.h5" "$TMP/old/iter_4.h5" && fail "1: iter_4.h5 is the old run's"
PREV=("$D"/previous-*)
[ ${#PREV[@]} = 1 ] && [ -d "${PREV[0]}" ] || fail "1: expected one previous-* folder: $(ls "$D")"
for f in $OLD_FILES; do
    cmp -s "$TMP/old/$f" "${PREV[0]}/$f" || fail "1: ${PREV[0]}/$f is missing or differs from the old run's"
done
grep -q '"seed": 7\|seed: 7' "$D/config.yaml" || fail "1: config.yaml is not the new run's"
[ "$(grep -c '"type": "start"' "$D/metrics.jsonl")" = 1 ] || fail "1: metrics.jsonl holds the old run's records"
grep -q '"type": "train", "iter": 6,' "$D/metrics.jsonl" && fail "1: metrics.jsonl holds iteration 6 of the old run"
"$MV_BIN" train "${SETS[@]}" --set schedule.max_iters=4 --set run.seed=7 --resume auto >"$TMP/again.log" 2>&1 ||
    fail "1: --resume auto of the finished new run: $(tail -3 "$TMP/again.log")"
grep -q "resumed from .*/iter_4.h5 at iteration 4" "$TMP/again.log" || fail "1: --resume auto: $(head -3 "$TMP/again.log")"
ls "$D" | grep -c '^previous-' | grep -qx 1 || fail "1: --resume auto set files aside: $(ls "$D")"
cp "$D/iter_4.h5" "$TMP/new_iter_4.h5"
echo "1: a fresh run over a finished one keeps its own checkpoints; the old files are in $(basename "${PREV[0]}")/"
passed=$((passed + 1))

# 2. A fresh run killed (SIGKILL) once it has logged a step, long before a checkpoint.
"$MV_BIN" train "${SETS[@]}" --set schedule.max_iters=1000 --set run.ckpt_every=0 >"$TMP/crash.log" 2>&1 &
pid=$!
for _ in $(seq 3000); do
    # (its metrics.jsonl once it has set the earlier one aside and said so; run.ckpt_every=0: no
    # checkpoint before iteration 1000, however far it got)
    if grep -q "held an earlier run" "$TMP/crash.log" && grep -q '"type": "train", "iter": 1,' "$D/metrics.jsonl" 2>/dev/null; then
        kill -9 $pid; { wait $pid; } 2>/dev/null || true; pid=; break
    fi
    kill -0 $pid 2>/dev/null || fail "2: the run to be killed ended by itself: $(tail -3 "$TMP/crash.log")"
    sleep 0.02
done
[ -z "$pid" ] || { kill -9 $pid; fail "2: the run to be killed did not start: $(tail -3 "$TMP/crash.log")"; }
[ "$(ls -d "$D"/previous-* | wc -l)" = 2 ] || fail "2: expected two previous-* folders: $(ls "$D")"
"$MV_BIN" train "${SETS[@]}" --set schedule.max_iters=3 --set run.ckpt_every=3 --resume auto >"$TMP/resume.log" 2>&1 ||
    fail "2: --resume auto: $(tail -3 "$TMP/resume.log")"
grep -q "resumed from" "$TMP/resume.log" && fail "2: --resume auto continued an earlier run: $(grep resumed "$TMP/resume.log")"
[ "$(cat "$D/latest")" = iter_3.h5 ] || fail "2: latest names $(cat "$D/latest")"
[ ! -e "$D/iter_4.h5" ] || fail "2: an earlier run's iter_4.h5 is in the folder: $(ls "$D")"
[ "$(grep -c '"type": "start"' "$D/metrics.jsonl")" = 2 ] || fail "2: metrics.jsonl: $(grep start "$D/metrics.jsonl")"
for p in "$D"/previous-*; do
    [ "$p" = "${PREV[0]}" ] && continue
    [ "$(cat "$p/latest")" = iter_4.h5 ] && cmp -s "$p/iter_4.h5" "$TMP/new_iter_4.h5" ||
        fail "2: the first fresh run's files are not in $p: $(ls "$p")"
done
echo "2: --resume auto after a fresh run killed before its first checkpoint starts afresh"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
