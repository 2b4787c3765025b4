#!/usr/bin/env bash
# Every rank reads its own copy of a split at the same path (docs/distributed.md, "What the
# ranks check at start-up"); a copy holding other samples must stop the job, not train or
# evaluate on silently. MPMD mpirun with -wdir gives the ranks two folders A and B whose
# split `s/clear/train` differs:
# 1. training, 2 ranks in A (16 samples) and 1 in B (5 samples): fails at start-up, non-zero,
#    naming data.train, rank 2 and both sample counts, with no checkpoint written;
# 2. the same with B's split of 16 other samples (another seed: same count, other content);
# 3. eval with the differing split as data.val fails the same way (not a wrong mIoU);
# 4. with B holding a copy of A's split, training and eval run and eval's mIoU is the 1-rank one.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
source "$(dirname "$0")/mpi_common.sh"
mpi_setup mpi_split_mismatch
trap mpi_cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
mpi() { timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 "$@"; }
SPLIT=s/clear/train
SETS=("${TRAIN_SETS[@]}" --set "data.train=[$SPLIT]" --set data.val=[] --set schedule.warmup_iters=1
      --set schedule.max_iters=2 --set run.ckpt_every=2)
EVAL_SETS=()   # without --quiet, which `maskvim eval` does not take
for a in "${SETS[@]}"; do [ "$a" = --quiet ] || EVAL_SETS+=("$a"); done
EVAL_SETS+=(--set "data.val=[$SPLIT]")

# synth DIR COUNT SEED: DIR/s/clear/train, COUNT samples of 64x128.
synth() {
    "$MV_BIN" data synth --out "$1/s" --domains clear --count "$2" --seed "$3" --size 64x128 --threads 1 \
        >"$TMP/synth.log" 2>&1 || fail "data synth $1: $(tail -3 "$TMP/synth.log")"
}
synth "$TMP/A" 16 0
synth "$TMP/B" 5 0
synth "$TMP/C" 16 1
mkdir -p "$TMP/D/s/clear" && cp -r "$TMP/A/$SPLIT" "$TMP/D/$SPLIT"

# expect_mismatch NAME PATTERN CMD...: the job fails, naming the split and the rank.
expect_mismatch() {
    local name=$1 pattern=$2 rc=0 t0=$SECONDS
    shift 2
    mpi "$@" >"$TMP/$name.log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "$name: ranks with different splits ran (exit 0): $(tail -3 "$TMP/$name.log")"
    [ "$rc" -ne 124 ] || fail "$name: the job hung"
    grep -q -- "$pattern" "$TMP/$name.log" || fail "$name: no clear message: $(tail -5 "$TMP/$name.log")"
    grep -q "every rank must read the same split" "$TMP/$name.log" || fail "$name: no advice: $(tail -5 "$TMP/$name.log")"
    echo "ok: $name: exit $rc after $((SECONDS - t0)) s: $(grep -m1 -o "$pattern.*" "$TMP/$name.log" | cut -c1-160)"
}
# 1. Another sample count.
expect_mismatch count "data.train clear ($SPLIT): rank 2 reads 5 samples (fingerprint [0-9a-f]*), rank 0 16 samples" \
    -np 2 -wdir "$TMP/A" "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/r1" \
    : -np 1 -wdir "$TMP/B" "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/r1"
[ ! -e "$TMP/r1/iter_2.h5" ] || fail "count: a checkpoint was written"

# 2. The same count, other samples.
expect_mismatch content "data.train clear ($SPLIT): rank 2 reads 16 samples (fingerprint [0-9a-f]*), rank 0 16 samples" \
    -np 2 -wdir "$TMP/A" "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/r2" \
    : -np 1 -wdir "$TMP/C" "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/r2"

# 4a. A copy trains (its checkpoint is what the evaluations below use).
mpi -np 2 -wdir "$TMP/A" "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/ok" \
    : -np 1 -wdir "$TMP/D" "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/ok" >"$TMP/ok.log" 2>&1 \
    || fail "ranks with copies of one split did not train: $(tail -5 "$TMP/ok.log")"
[ -e "$TMP/ok/iter_2.h5" ] || fail "ranks with copies of one split wrote no checkpoint"
echo "ok: copies of one split train together"

# 3. Eval over a split that differs.
CK=(--checkpoint "$TMP/ok/iter_2.h5")
expect_mismatch eval "evaluating clear ($SPLIT): rank 1 reads 5 samples (fingerprint [0-9a-f]*), rank 0 16 samples" \
    -np 1 -wdir "$TMP/A" "$MV_BIN" eval "${EVAL_SETS[@]}" "${CK[@]}" \
    : -np 1 -wdir "$TMP/B" "$MV_BIN" eval "${EVAL_SETS[@]}" "${CK[@]}"

# 4b. Eval over copies: the 1-rank result.
(cd "$TMP/A" && "$MV_BIN" eval "${EVAL_SETS[@]}" "${CK[@]}" --json "$TMP/one.json" >"$TMP/one.log" 2>&1) \
    || fail "1-rank eval failed: $(tail -3 "$TMP/one.log")"
mpi -np 1 -wdir "$TMP/A" "$MV_BIN" eval "${EVAL_SETS[@]}" "${CK[@]}" --json "$TMP/two.json" \
    : -np 1 -wdir "$TMP/D" "$MV_BIN" eval "${EVAL_SETS[@]}" "${CK[@]}" >"$TMP/two.log" 2>&1 \
    || fail "ranks with copies of one split did not evaluate: $(tail -5 "$TMP/two.log")"
"$MV_PYTHON" - "$TMP/one.json" "$TMP/two.json" <<'PY' || fail "the 2-rank eval over copies differs from 1 rank"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
def strip(x):   # the results, not where they were run
    return {k: v for k, v in x.items() if k not in ("checkpoint", "config", "time", "seconds", "ranks", "device")}
assert strip(a) == strip(b), (a, b)
PY
echo "ok: copies of one split evaluate together, as on 1 rank"
echo "PASS"
