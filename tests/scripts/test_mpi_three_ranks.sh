#!/usr/bin/env bash
# Data parallelism on 3 ranks, where nothing divides evenly (the other MPI tests mostly use 2):
# 1. 3 ranks x 1 image reach the parameters and the logged losses of 1 rank x 3 images on a
#    training split of 5 samples (not a multiple of the global batch, so epochs roll over in the
#    middle of a step), within the tolerances of test_train_equivalence;
# 2. the periodic evaluation of that run, sharded over 3 ranks on 5 validation images, gives
#    exactly (the same confusion matrix) what a 1-rank `maskvim eval` of its checkpoints gives;
# 3. `mpirun -np 3 maskvim eval` on 2 validation images (fewer than the ranks: rank 2 has none)
#    and on 4 (the last global step is partial) gives the 1-rank result exactly;
# 4. a 3-rank run stopped after 3 iterations resumes on 1 rank x 3 (same global batch: the same
#    stream) to the uninterrupted run's parameters within the tolerances, and on 3 ranks bit
#    for bit;
# 5. unless OMP_NUM_THREADS is set, the 3 ranks share the host's CPUs as OpenMP threads; when
#    it is set beyond their share, the run warns.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
source "$(dirname "$0")/mpi_common.sh"
mpi_setup mpi_three_ranks
trap mpi_cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
# Every run here: 5 training and 5 validation images, checkpoints (and evaluations) at 3 and 6.
SETS=("${TRAIN_SETS[@]}" --set data.synthetic.train_count=5 --set data.synthetic.val_count=5
      --set run.ckpt_every=3 --set run.eval_every=3)
EVAL_SETS=()   # TRAIN_SETS without --quiet, which `maskvim eval` does not take
for a in "${SETS[@]}"; do [ "$a" = --quiet ] || EVAL_SETS+=("$a"); done
mpi3() { timeout 300 mpirun --oversubscribe -np 3 "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 "$MV_BIN" "$@"; }
passed=0

# 1. 3 x 1 against 1 x 3.
"$MV_BIN" train "${SETS[@]}" --set data.batch_per_rank=3 --set run.work_dir="$TMP/one" >"$TMP/one.log"
mpi3 train "${SETS[@]}" --set data.batch_per_rank=1 --set run.work_dir="$TMP/three" \
    --set run.bucket_mb=0.25 --set run.first_bucket_mb=0.05 >"$TMP/three.log"
grep -q "3 ranks x 1 image," "$TMP/three.log" || fail "the mpirun job did not run on 3 ranks: $(head -3 "$TMP/three.log")"
same_training "$TMP/one" "$TMP/three" || fail "3 ranks x 1 differs from 1 rank x 3"
# The logged losses are over the global batch, as 1 rank x 3 logs them (6 significant digits).
"$MV_PYTHON" - "$TMP/one/metrics.jsonl" "$TMP/three/metrics.jsonl" <<'PY' || fail "the logged losses differ"
import json, sys
def train(p):
    return [r for r in map(json.loads, open(p)) if r["type"] == "train"]
a, b = train(sys.argv[1]), train(sys.argv[2])
assert [r["iter"] for r in a] == [r["iter"] for r in b] == list(range(1, 7)), (len(a), len(b))
# L_position (alpha2 = 1 here) follows the argmax of the logits: a pixel whose two best classes
# are within rounding of each other can take the other class under another summation order
# (docs/reference.md), which moves L_position by about 1e-4 of itself per such pixel. It gets
# 1e-3; the total is held to 2e-5 without it.
for x, y in zip(a, b):
    for k in ("loss_ce", "loss_aux", "loss_ratio"):
        assert abs(x[k] - y[k]) <= 2e-5 * abs(x[k]) + 1e-9, (x["iter"], k, x[k], y[k])
    assert abs(x["loss_position"] - y["loss_position"]) <= 1e-3 * abs(x["loss_position"]) + 1e-9, \
        (x["iter"], x["loss_position"], y["loss_position"])
    rest = lambda r: r["loss_total"] - r["loss_position"]
    assert abs(rest(x) - rest(y)) <= 2e-5 * abs(x["loss_total"]) + 1e-9, (x["iter"], x["loss_total"], y["loss_total"])
print("logged losses agree")
PY
passed=$((passed + 1))

# 2. The 3-rank run's evaluations (iterations 3 and 6) against 1-rank evaluations of its checkpoints.
for it in 3 6; do
    "$MV_BIN" eval "${EVAL_SETS[@]}" --checkpoint "$TMP/three/iter_$it.h5" --json "$TMP/eval_$it.json" >/dev/null 2>&1 \
        || fail "1-rank eval of iter_$it.h5 failed"
done
"$MV_PYTHON" - "$TMP/three/metrics.jsonl" "$TMP" <<'PY' || fail "the 3-rank evaluation during training differs from 1 rank"
import json, sys
recs = [r for r in map(json.loads, open(sys.argv[1])) if r["type"] == "eval"]
assert [r["iter"] for r in recs] == [3, 6], [r["iter"] for r in recs]
for r in recs:
    one = json.load(open(f"{sys.argv[2]}/eval_{r['iter']}.json"))["results"][0]["metrics"]
    assert r["metrics"] == one, (r["iter"], r["metrics"]["mIoU"], one["mIoU"], r["metrics"]["pixels"], one["pixels"])
    print(f"iteration {r['iter']}: mIoU {one['mIoU']:.4f} over {one['pixels']} pixels on 3 ranks and on 1")
PY
passed=$((passed + 1))

# 3. `maskvim eval` on 3 ranks, 2 and 4 validation images.
for n in 2 4; do
    "$MV_BIN" eval "${EVAL_SETS[@]}" --set data.synthetic.val_count=$n --checkpoint "$TMP/one/iter_6.h5" \
        --json "$TMP/e1_$n.json" >/dev/null 2>&1 || fail "1-rank eval on $n images failed"
    mpi3 eval "${EVAL_SETS[@]}" --set data.synthetic.val_count=$n --checkpoint "$TMP/one/iter_6.h5" \
        --json "$TMP/e3_$n.json" >"$TMP/e3_$n.log" 2>&1 || { cat "$TMP/e3_$n.log"; fail "3-rank eval on $n images failed"; }
    "$MV_PYTHON" - "$TMP/e1_$n.json" "$TMP/e3_$n.json" $n <<'PY' || fail "3-rank eval on $n images differs from 1 rank"
import json, sys
a, b = (json.load(open(p))["results"] for p in sys.argv[1:3])
assert a == b, (a[0]["metrics"]["mIoU"], b[0]["metrics"]["mIoU"], a[0]["metrics"]["pixels"], b[0]["metrics"]["pixels"])
print(f"{sys.argv[3]} images: mIoU {a[0]['metrics']['mIoU']:.4f} on 3 ranks and on 1")
PY
done
passed=$((passed + 1))

# 4. Stop the 3-rank run after 3 iterations; resume on 1 rank x 3 and on 3 ranks x 1.
mpi3 train "${SETS[@]}" --set data.batch_per_rank=1 --set run.work_dir="$TMP/stop" --stop-after 3 >/dev/null
[ "$(cat "$TMP/stop/latest")" = iter_3.h5 ] || fail "the stopped run did not leave iter_3.h5"
mkdir -p "$TMP/r1" "$TMP/r3"
cp "$TMP/stop/iter_3.h5" "$TMP/stop/latest" "$TMP/stop/metrics.jsonl" "$TMP/r1/"
cp "$TMP/stop/iter_3.h5" "$TMP/stop/latest" "$TMP/stop/metrics.jsonl" "$TMP/r3/"
"$MV_BIN" train "${SETS[@]}" --set data.batch_per_rank=3 --set run.work_dir="$TMP/r1" --resume auto >"$TMP/r1.log" 2>&1
grep -q "resumed from .*iter_3.h5 at iteration 3" "$TMP/r1.log" || fail "1 rank did not resume at 3: $(head -3 "$TMP/r1.log")"
! grep -q "global batch" "$TMP/r1.log" || fail "the same global batch was reported as changed: $(head -3 "$TMP/r1.log")"
same_training "$TMP/three" "$TMP/r1" || fail "the 3-rank run resumed on 1 rank differs from the uninterrupted run"
mpi3 train "${SETS[@]}" --set data.batch_per_rank=1 --set run.work_dir="$TMP/r3" --resume auto >/dev/null
compare "$TMP/three/iter_6.h5" "$TMP/r3/iter_6.h5" --exact || fail "stop/resume on 3 ranks is not bit-identical"
passed=$((passed + 1))

# 5. OpenMP threads: unset, each of 3 unbound ranks (every CPU in every mask) takes
#    max(1, CPUs / 3) threads and the start-up line says so; OMP_NUM_THREADS, when set, is kept.
cpus=$(nproc)
want=$(( cpus / 3 > 0 ? cpus / 3 : 1 ))
line() { grep -o "[0-9]* OpenMP threads* per rank[^,]*" "$1"; }
for env in unset set; do
    e=(env -u OMP_NUM_THREADS)
    [ "$env" = set ] && e=(env OMP_NUM_THREADS=1)
    "${e[@]}" timeout 300 mpirun --oversubscribe --bind-to none -np 3 "${MPI_ENV[@]}" -x MV_SYNTH_CACHE "$MV_BIN" train \
        "${SETS[@]}" --set data.batch_per_rank=1 --set run.work_dir="$TMP/threads_$env" --stop-after 1 >"$TMP/threads_$env.log" 2>&1 \
        || { cat "$TMP/threads_$env.log"; fail "5: the 3-rank run with OMP_NUM_THREADS $env failed"; }
done
[ "$(line "$TMP/threads_unset.log")" = "$want OpenMP thread$([ "$want" = 1 ] || echo s) per rank ($cpus CPUs shared by 3 ranks of its host)" ] \
    || fail "5: OMP_NUM_THREADS unset, $cpus CPUs: '$(line "$TMP/threads_unset.log")'"
[ "$(line "$TMP/threads_set.log")" = "1 OpenMP thread per rank (OMP_NUM_THREADS)" ] \
    || fail "5: OMP_NUM_THREADS=1: '$(line "$TMP/threads_set.log")'"
echo "OpenMP threads: $(line "$TMP/threads_unset.log"); with OMP_NUM_THREADS=1: $(line "$TMP/threads_set.log")"
# A warning when the kept OMP_NUM_THREADS gives the 3 ranks more threads than CPUs (3 x 1 on
# fewer than 3 CPUs); never for the share they take by themselves.
! grep -q "OMP_NUM_THREADS=.*threads for" "$TMP/threads_unset.log" || fail "5: a warning of too many threads without OMP_NUM_THREADS"
if [ "$cpus" -lt 3 ]; then
    grep -q "warning: OMP_NUM_THREADS=1 on each of 3 ranks: 3 threads for $cpus CPUs" "$TMP/threads_set.log" \
        || fail "5: no warning of 3 threads on $cpus CPUs: $(grep warning "$TMP/threads_set.log")"
else
    ! grep -q "OMP_NUM_THREADS=.*threads for" "$TMP/threads_set.log" || fail "5: a warning of too many threads on $cpus CPUs"
fi
# One rank with OMP_NUM_THREADS beside two without (MPMD): all of them still meet in the share's
# collective (a rank that skipped it left the others waiting there until the start-up limit).
MV_COMM_STARTUP_TIMEOUT=30 timeout 300 mpirun --oversubscribe --bind-to none "${MPI_ENV[@]}" -x MV_SYNTH_CACHE \
    -x MV_COMM_STARTUP_TIMEOUT -np 1 env OMP_NUM_THREADS=1 "$MV_BIN" train "${SETS[@]}" --set data.batch_per_rank=1 \
    --set run.work_dir="$TMP/threads_mixed" --stop-after 1 : -np 2 env -u OMP_NUM_THREADS "$MV_BIN" train "${SETS[@]}" \
    --set data.batch_per_rank=1 --set run.work_dir="$TMP/threads_mixed" --stop-after 1 >"$TMP/threads_mixed.log" 2>&1 \
    || { cat "$TMP/threads_mixed.log"; fail "5: ranks with and without OMP_NUM_THREADS did not start together"; }
passed=$((passed + 1))
echo "$passed passed, 0 failed"
