#!/usr/bin/env bash
# A stop signal while `maskvim train` writes its synthetic data at startup ends the writing at
# once (data/synth_cli.c reads the request between batches of samples), not after the whole
# split: it used to write every split to the end (seconds, growing with the cache) and only then
# stop. The run stops before its first step (status 128 + the signal), the cache keeps its
# complete shards and no manifest (never taken for a whole split), and the next run resumes the
# writing after those shards and trains.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/synth_stop_writing.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=1 MV_SYNTH_CACHE="$TMP/cache"
# 3000 images of 128x256: several seconds to write on one thread.
SETS=("${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set schedule.max_iters=3 --set run.ckpt_every=3
      --set data.synthetic.size=128,256 --set data.synthetic.train_count=3000 --set run.work_dir="$TMP/run")

"$MV_PYTHON" - "$MV_BIN" "$TMP" "${SETS[@]}" <<'EOF' || fail "the stop"
import os, signal, subprocess, sys, time
binary, tmp, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
p = subprocess.Popen([binary, "train", *sets], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
err = ""
while "writing synthetic domain 'clear' (train" not in err:
    line = p.stderr.readline()
    assert line, f"ended before writing the synthetic data: {p.wait()} {err}"
    err += line
time.sleep(1.0)   # into the writing (past its first shards)
p.send_signal(signal.SIGTERM)
t0 = time.time()
out, rest = p.communicate(timeout=300)
took = time.time() - t0
err += rest
assert p.returncode == 128 + signal.SIGTERM, f"status {p.returncode}, expected 143\n{err[-800:]}\n{out[-400:]}"
assert took < 1.5, f"the stop took {took:.1f}s: the writing went on\n{err[-600:]}"
assert "stopped by SIGTERM after" in err and "the complete shards are kept" in err, err[-800:]
assert "stopped by SIGTERM during startup, before the first step" in out, out[-600:]
print(f"stopped {took:.2f}s after SIGTERM")
EOF
split=$(ls -d "$TMP"/cache/*_train3000/clear/train)
[ ! -e "$split/manifest.json" ] || fail "the interrupted split has a manifest"
[ ! -e "$TMP/run/latest" ] || fail "a checkpoint was written"
"$MV_BIN" train "${SETS[@]}" --resume auto >"$TMP/resume.log" 2>&1 || fail "the next run: $(grep -v '^\[' "$TMP/resume.log" | tail -3)"
grep -q "\[synth\] resuming $split: [1-9][0-9]* of 3000 samples already in complete shards" "$TMP/resume.log" \
    || fail "the next run did not resume the writing: $(grep synth "$TMP/resume.log" | head -3)"
[ -e "$TMP/run/iter_3.h5" ] || fail "the next run did not train"
echo "PASS: the writing stopped at once and the next run resumed it"
