#!/usr/bin/env bash
# The same run with 1 and with 2 OpenMP threads is the same run, bit for bit: 6 training steps
# (every random draw on, SyncBN-free single rank) end in identical checkpoints and log identical
# losses and evaluation results. What makes it so: every CPU kernel partitions its reductions
# independently of the thread count, and GEMMs go through mv_sgemm's fixed tiles
# (kernels/cpu/gemm.c) instead of OpenBLAS's own threading, which changes the last bits. The
# 1-thread run also loads its data in the training thread (data.workers 0), the other with two
# loader threads: the batches are the same either way.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
TMP=$MV_TEST_TMP/threads_invariant.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for t in 1 2; do
    OMP_NUM_THREADS=$t "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.device=cpu \
        --set data.workers=$((2 * (t - 1))) \
        --set run.work_dir="$TMP/t$t" >"$TMP/t$t.log"
done
compare "$TMP/t1/iter_6.h5" "$TMP/t2/iter_6.h5" --exact || fail "1 and 2 threads (0 and 2 loader threads) trained to different parameters"
# The logged losses, keep ratios and evaluation results (every field but timings and shares).
"$MV_PYTHON" - "$TMP/t1/metrics.jsonl" "$TMP/t2/metrics.jsonl" <<'PY' || fail "the logs differ beyond timings"
import json, re, sys
timing = re.compile(r"(time|elapsed|per_s|frac|wait|_ms|_s$)")
def records(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        out.append({k: v for k, v in r.items() if not timing.search(k)})
    return out
a, b = records(sys.argv[1]), records(sys.argv[2])
assert len(a) == len(b) and any(r.get("type") == "eval" for r in a), (len(a), len(b))
for x, y in zip(a, b):
    assert x == y, f"{x}\n{y}"
print(f"{len(a)} log records agree")
PY
echo "losses at the last step: $(grep -o '"loss_total": [0-9.e+-]*' "$TMP/t1/metrics.jsonl" | tail -1)"
echo "1 passed, 0 failed"
