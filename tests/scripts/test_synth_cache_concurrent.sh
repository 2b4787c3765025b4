#!/usr/bin/env bash
# Two `maskvim train` runs started together on a fresh synthetic-data cache: both must train, and
# the cache must be written once (the second waits on the cache's lock file and finds the data),
# instead of both writing the same shard folders and breaking each other's files.
set -euo pipefail
: "${MV_BIN:?}" "${MV_TEST_TMP:=/tmp}"
TMP="$MV_TEST_TMP/synth_cache_concurrent"
rm -rf "$TMP"
mkdir -p "$TMP"
export MV_SYNTH_CACHE="$TMP/cache" OMP_NUM_THREADS=1
SETS=(--set model.crop=64,64 --set data.synthetic.size=64,128 --set data.scale=128,64
      --set data.synthetic.train_count=48 --set data.synthetic.val_count=2 --set data.workers=1
      --set schedule.warmup_iters=0 --set schedule.max_iters=1 --set run.eval_every=0 --set run.ckpt_every=0
      --set data.val=[synthetic:clear] --quiet)
pids=()
for r in a b c; do
    "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/$r" >"$TMP/$r.log" 2>&1 &
    pids+=($!)
done
fail=0
for i in 0 1 2; do
    wait "${pids[$i]}" || { echo "FAIL: run $i exited with an error:"; tail -5 "$TMP/$(echo a b c | cut -d' ' -f$((i + 1))).log"; fail=1; }
done
[ $fail = 0 ] || exit 1
writes=$(cat "$TMP"/a.log "$TMP"/b.log "$TMP"/c.log | grep -c "writing synthetic domain 'clear' (train" || true)
[ "$writes" = 1 ] || { echo "FAIL: the training split was written $writes times (want 1)"; exit 1; }
for r in a b c; do
    grep -q '"iter": 1' "$TMP/$r/metrics.jsonl" || { echo "FAIL: run $r logged no step"; exit 1; }
done
echo "PASS: three concurrent runs trained; the cache was written once"
