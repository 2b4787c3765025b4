#!/usr/bin/env bash
# Faults around training and resume that the plain resume test does not reach:
#   0. a bad --stop-after (0, negative, not a number) is refused;
#   1. `mpirun -np 2 maskvim train` without --quiet: under mpirun every rank's stdout is a
#      pseudo-terminal, and the per-step progress statistics (a collective) must be called on the
#      same steps by every rank (they were only on rank 0: MPI_ERR_TRUNCATE or a hang);
#   2. best.h5 is a complete checkpoint: `--resume best.h5` continues bit for bit (its loader
#      cursor was the last periodic checkpoint's, or none);
#   3. a resume drops the records the lost part of the run had logged (and a line cut short),
#      so metrics.jsonl holds each iteration once, with the uninterrupted run's losses; a
#      damaged line before them is dropped with a warning (kept, `maskvim report` refused the run);
#   4. the same when --resume auto finds no checkpoint (killed before the first one).
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
source "$(dirname "$0")/mpi_common.sh"
mpi_setup fault_train_resume
trap mpi_cleanup EXIT
run() { "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 "$@"; }
# (iter, loss_total) of every train record, one per line.
train_records() { grep '"type": "train"' "$1" | grep -o '"iter": [0-9]*, "loss_total": [0-9.e+-]*'; }
passed=0
# 0. A bad --stop-after is refused before anything runs (it used to read as 0 or as "stop now").
for bad in 0 -1 abc; do
    if run --set run.work_dir="$TMP/bad" --stop-after "$bad" >"$TMP/bad.log" 2>&1; then fail "--stop-after $bad was accepted"; fi
    grep -q "stop-after '$bad'" "$TMP/bad.log" || fail "--stop-after $bad: $(cat "$TMP/bad.log")"
done
[ ! -e "$TMP/bad" ] || fail "a refused command line created the run directory"
run --set run.work_dir="$TMP/full" >"$TMP/full.log"

# 1. Two ranks, no --quiet, log lines every 3 steps (steps 1, 2, 4, 5 draw only the bar).
LOUD=()
for a in "${TRAIN_SETS[@]}"; do [ "$a" = --quiet ] || LOUD+=("$a"); done
MV_COMM_TIMEOUT=20 timeout 120 mpirun --oversubscribe -np 2 "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x MV_COMM_TIMEOUT \
    -x OMP_NUM_THREADS=1 "$MV_BIN" train "${LOUD[@]}" --set data.batch_per_rank=1 --set run.log_every=3 \
    --set run.work_dir="$TMP/loud" >"$TMP/loud.log" 2>&1 || fail "2 ranks without --quiet: $(tail -5 "$TMP/loud.log")"
[ -f "$TMP/loud/iter_6.h5" ] || fail "2 ranks without --quiet did not finish: $(tail -5 "$TMP/loud.log")"
same_training "$TMP/full" "$TMP/loud" >/dev/null || fail "2 ranks without --quiet differ from 1 rank x 2"
passed=$((passed + 1))

# 2. best.h5 from an evaluation at step 2 (no periodic checkpoint before it), resumed to the end.
run --set run.work_dir="$TMP/best" --set run.eval_every=2 --set run.ckpt_every=0 --stop-after 3 >"$TMP/best1.log"
grep -q "new best" "$TMP/best1.log" || fail "no best.h5 written: $(tail -3 "$TMP/best1.log")"
mkdir -p "$TMP/best2"
cp "$TMP/best/best.h5" "$TMP/best2/from.h5"
run --set run.work_dir="$TMP/best2" --resume "$TMP/best2/from.h5" >"$TMP/best2.log" 2>&1 \
    || fail "resume from best.h5: $(tail -3 "$TMP/best2.log")"
grep -q "at iteration 2" "$TMP/best2.log" || fail "best.h5 did not resume at iteration 2: $(head -3 "$TMP/best2.log")"
compare "$TMP/full/iter_6.h5" "$TMP/best2/iter_6.h5" --exact || fail "resume from best.h5 differs from the uninterrupted run"
passed=$((passed + 1))

# 3. A crashed run's log: the finished run's records after iteration 4 stand for what a run killed
#    before its iteration-6 checkpoint had logged, plus half a line. Resuming from iter_4.h5
#    leaves iterations 1..6 once each, with the uninterrupted losses.
mkdir -p "$TMP/log"
cp "$TMP/full/iter_4.h5" "$TMP/full/metrics.jsonl" "$TMP/log/"
printf '{"type": "train", "iter": 6, "loss_to' >>"$TMP/log/metrics.jsonl"
sed -i '1a GARBAGE{{' "$TMP/log/metrics.jsonl"
run --set run.work_dir="$TMP/log" --resume "$TMP/log/iter_4.h5" >"$TMP/log.log" 2>"$TMP/log.err"
grep -q "metrics.jsonl:2 is not a JSON record (damaged): dropped" "$TMP/log.err" \
    || fail "the damaged line was not reported: $(cat "$TMP/log.err")"
train_records "$TMP/full/metrics.jsonl" >"$TMP/want.txt"
train_records "$TMP/log/metrics.jsonl" >"$TMP/got.txt"
[ "$(wc -l <"$TMP/want.txt")" -eq 6 ] || fail "the uninterrupted run logged $(wc -l <"$TMP/want.txt") records, not 6"
diff "$TMP/want.txt" "$TMP/got.txt" >&2 || fail "the resumed run's metrics.jsonl differs from the uninterrupted run's"
"$MV_PYTHON" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$TMP/log/metrics.jsonl" \
    || fail "metrics.jsonl has a line that is not JSON"
passed=$((passed + 1))

# 4. A first attempt killed before its first checkpoint left two records: `--resume auto` finds
#    no checkpoint, starts from scratch and must not log iterations 1 and 2 twice.
mkdir -p "$TMP/early"
head -2 "$TMP/full/metrics.jsonl" >"$TMP/early/metrics.jsonl"
run --set run.work_dir="$TMP/early" --resume auto >"$TMP/early.log"
train_records "$TMP/early/metrics.jsonl" >"$TMP/got_early.txt"
diff "$TMP/want.txt" "$TMP/got_early.txt" >&2 || fail "a fresh start under --resume auto kept the lost attempt's records"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
