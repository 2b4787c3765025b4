#!/usr/bin/env bash
# Checkpoints resume exactly: a run killed (SIGKILL, mid-run) and resumed with --resume auto
# ends bit-identical to the uninterrupted run; a clean stop/resume too; a checkpoint from a
# different model is refused with the reason; resuming on another world size works; each start
# and resume is recorded in metrics.jsonl with the build's version and commit.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
source "$(dirname "$0")/mpi_common.sh"
mpi_setup train_resume
trap mpi_cleanup EXIT
# One thread a run: a loaded machine still leaves the poll of test 2 a core.
export OMP_NUM_THREADS=1
run() { "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 "$@"; }
passed=0
run --set run.work_dir="$TMP/full" >"$TMP/full.log"

# 1. Stop cleanly after 3 iterations, resume to the end.
run --set run.work_dir="$TMP/stop" --stop-after 3 >/dev/null
run --set run.work_dir="$TMP/stop" --resume auto >"$TMP/stop.log"
grep -q "resumed from .*iter_3.h5 at iteration 3" "$TMP/stop.log" || fail "did not resume at iteration 3"
compare "$TMP/full/iter_6.h5" "$TMP/stop/iter_6.h5" --exact || fail "stop/resume differs from the uninterrupted run"
passed=$((passed + 1))

# 2. Kill -9 once `latest` names the iteration-4 checkpoint, then resume. These runs train 40
#    iterations (a checkpoint every 4, the last two kept), so that 36 remain after it: with 6,
#    only 2 steps and a checkpoint (0.08 s) were left to land the kill in, and a fast or loaded
#    machine finished first. The poll can still look late (a loaded machine): the kill then lands
#    at a later checkpoint, and the resume must start from whichever one `latest` names (a kill
#    between a checkpoint's rename and the update of `latest` rightly resumes from the one
#    before, which `latest` still names: test_fault_train_resume.sh kills at every moment).
#    maskvim itself runs in the background, not the `run` function: `kill -9` of the function's
#    subshell left the training running on next to the resume (the run directory's lock now
#    refuses that).
LONG=(--set schedule.max_iters=40 --set run.ckpt_every=4 --set run.keep_ckpts=2)
run "${LONG[@]}" --set run.work_dir="$TMP/full40" >"$TMP/full40.log"
"$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 "${LONG[@]}" --set run.work_dir="$TMP/kill" >"$TMP/kill1.log" 2>&1 &
pid=$!
for _ in $(seq 6000); do
    k=$(sed -n 's/^iter_\([0-9]*\)\.h5$/\1/p' "$TMP/kill/latest" 2>/dev/null || true)
    [ -n "$k" ] && [ "$k" -ge 4 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
[ ! -f "$TMP/kill/iter_40.h5" ] || fail "the run finished before the kill: $(tail -3 "$TMP/kill1.log")"
k=$(sed -n 's/^iter_\([0-9]*\)\.h5$/\1/p' "$TMP/kill/latest" 2>/dev/null || true)
[ -n "$k" ] && [ "$k" -ge 4 ] || fail "killed before \`latest\` named the iteration-4 checkpoint: $(tail -3 "$TMP/kill1.log")"
run "${LONG[@]}" --set run.work_dir="$TMP/kill" --resume auto >"$TMP/kill2.log"
grep -q "resumed from .*/iter_$k.h5 at iteration $k\$" "$TMP/kill2.log" || fail "did not resume at iteration $k: $(head -2 "$TMP/kill2.log")"
compare "$TMP/full40/iter_40.h5" "$TMP/kill/iter_40.h5" --exact || fail "kill/resume differs from the uninterrupted run"
echo "killed once \`latest\` named iter_$k.h5, resumed bit-identical"
passed=$((passed + 1))

# 3. Another model: refused, naming the key.
if run --set run.work_dir="$TMP/bad" --set model.decoder_channels=48 --resume "$TMP/full/iter_2.h5" >"$TMP/bad.log" 2>&1; then
    fail "a checkpoint of another model was accepted"
fi
grep -q "decoder_channels" "$TMP/bad.log" || fail "refusal does not name the key: $(cat "$TMP/bad.log")"
passed=$((passed + 1))

# 4. Resume the 1-rank checkpoint on 2 ranks x 1 image (same global batch): the result matches
#    the uninterrupted run within float rounding.
mkdir -p "$TMP/world"
cp "$TMP/full/iter_2.h5" "$TMP/world/"
head -3 "$TMP/full/metrics.jsonl" >"$TMP/world/metrics.jsonl"   # the start record and iterations 1-2
echo iter_2.h5 >"$TMP/world/latest"
mpirun --oversubscribe -np 2 "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 \
    "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=1 --set run.work_dir="$TMP/world" --resume auto >"$TMP/world.log"
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 0 --init-out "$TMP/init.h5"
compare "$TMP/full/iter_6.h5" "$TMP/world/iter_6.h5" --init "$TMP/init.h5" --rel-l2 1e-5 --drift 0.1 \
    || fail "resume on 2 ranks differs"
passed=$((passed + 1))

# 5. The start records: the first run's, then the 2-rank resume's, with the version and commit
#    `maskvim --version` reports.
"$MV_BIN" --version >"$TMP/version.txt"
"$MV_PYTHON" - "$TMP/world/metrics.jsonl" "$TMP/version.txt" <<'PY' || fail "the start records are wrong"
import json, re, sys
starts = [r for r in map(json.loads, open(sys.argv[1])) if r["type"] == "start"]
version, commit = re.match(r"maskvim (\S+) \(commit (\S+)\)", open(sys.argv[2]).readline()).groups()
assert len(starts) == 2, starts   # copied from the first run (iteration 0), then the resume at 2
a, b = starts
assert (a["iter"], a["resumed"], a["ranks"], a["batch_per_rank"]) == (0, False, 1, 2), a
assert (b["iter"], b["resumed"], b["ranks"], b["batch_per_rank"]) == (2, True, 2, 1), b
assert all((r["version"], r["commit"]) == (version, commit) and r["device"].startswith("CPU") for r in starts), starts
assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", r["start_time"]) for r in starts), starts
print("start records ok")
PY
passed=$((passed + 1))
echo "$passed passed, 0 failed"
