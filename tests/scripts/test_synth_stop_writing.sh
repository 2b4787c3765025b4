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
# 3000 images of 128x256 in shards of 64 (the default): about 2 s to write on one thread here,
# 50 ms a shard. The signal is sent as soon as the first shard is complete (it used to be sent
# after a second's sleep, which a fast machine could spend writing the whole split).
SETS=("${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set schedule.max_iters=3 --set run.ckpt_every=3
      --set data.synthetic.size=128,256 --set data.synthetic.train_count=3000 --set run.work_dir="$TMP/run")

# "At once" is judged by where the writing stopped, not by a clock (a sanitizer build is 5-10
# times slower, a loaded machine slower still): the complete shards are counted right after the
# signal is sent, and the writing must have stopped inside the shard that followed them, at the
# latest at its end. A writing that went on to the end of the split would report 3000 samples.
"$MV_PYTHON" - "$MV_BIN" "$TMP" "${SETS[@]}" >"$TMP/stopped.txt" <<'EOF' || fail "the stop (the assertion above)"
import glob, os, re, signal, subprocess, sys, time
binary, tmp, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
PER_SHARD = 64
with open(os.path.join(tmp, "stop.err"), "w+") as errf:   # a file: the progress lines never block the writer
    p = subprocess.Popen([binary, "train", *sets], stdout=subprocess.PIPE, stderr=errf, text=True)
    shard = os.path.join(tmp, "cache", "*_train3000", "clear", "train", "shard-*.h5")
    while not glob.glob(shard):
        assert p.poll() is None, f"ended before its first shard was complete: status {p.returncode}"
        time.sleep(0.002)
    p.send_signal(signal.SIGTERM)
    shards = len(glob.glob(shard))   # complete when signalled, or a few more: an upper bound
    out = p.communicate(timeout=600)[0]
    errf.seek(0)
    err = errf.read()
assert p.returncode == 128 + signal.SIGTERM, f"status {p.returncode}, expected 143\n{err[-800:]}\n{out[-400:]}"
assert "writing synthetic domain 'clear' (train" in err, err[-800:]
m = re.search(r"/clear/train: stopped by SIGTERM after (\d+) of 3000 samples \(the complete shards are kept", err)
assert m, f"no stop message from the writing:\n{err[-800:]}"
n = int(m.group(1))
assert PER_SHARD <= n <= PER_SHARD * (shards + 1), \
    f"stopped after {n} of 3000 samples, signalled with at most {shards} complete shards of {PER_SHARD}: the writing went on"
assert "stopped by SIGTERM during startup, before the first step" in out, out[-600:]
print(n)
EOF
stopped=$(cat "$TMP/stopped.txt")
split=$(ls -d "$TMP"/cache/*_train3000/clear/train)
[ ! -e "$split/manifest.json" ] || fail "the interrupted split has a manifest"
[ ! -e "$TMP/run/latest" ] || fail "a checkpoint was written"
"$MV_BIN" train "${SETS[@]}" --resume auto >"$TMP/resume.log" 2>&1 || fail "the next run: $(grep -v '^\[' "$TMP/resume.log" | tail -3)"
# The next run resumes after the complete shards: at least the first (complete when the signal
# was sent), none past where the writing stopped.
kept=$(sed -n "s|^\[synth\] resuming $split: \([0-9]*\) of 3000 samples already in complete shards$|\1|p" "$TMP/resume.log")
[ -n "$kept" ] || fail "the next run did not resume the writing: $(grep synth "$TMP/resume.log" | head -3)"
[ "$kept" -ge 64 ] && [ "$kept" -le "$stopped" ] || fail "the next run resumed after $kept samples, the writing had stopped after $stopped"
[ -e "$TMP/run/iter_3.h5" ] || fail "the next run did not train"
echo "PASS: the writing stopped after $stopped of 3000 samples, the next run resumed it after $kept"
