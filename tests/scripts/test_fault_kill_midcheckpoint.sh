#!/usr/bin/env bash
# `kill -9` at the moments a checkpoint is in the making, then `--resume auto`: the resumed run
# must start from the file `latest` named (never from an incomplete one, never from scratch
# when a checkpoint exists) and end bit-identical to the uninterrupted run: weights, buffers,
# AdamW moments and training state of the last checkpoint and of best.h5, and the logged losses.
# A watcher (inotify: the kernel queues each event, none is missed between two looks) sends the
# kill the moment the run directory shows the point (test_train_resume.sh kills only once a
# checkpoint is complete); `latest` then names the file given here:
#   iter_5.h5.tmp         a periodic checkpoint half-written                         iter_4.h5
#   best.h5.tmp           best.h5 half-written, during the evaluation at iteration 4  iter_3.h5
#   latest.tmp@iter_7.h5  (the first latest.tmp once iter_7.h5 is in place) the
#                         checkpoint renamed into place, `latest` not yet: it still
#                         names the one before                                        iter_6.h5
#   iter_9.h5             the same moment seen from the other side                    iter_8.h5
# The kill still lands a little after the event, and a point is caught when the run directory
# shows it was in time (the temporary file still there, `latest` as above): the two checkpoint
# files take milliseconds to write (most of it their fsync), `latest` a fraction of one, so at
# least two of the four points must be caught. Whatever moment a kill hit, the resume is checked.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/fault_kill_midcheckpoint.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
# One thread: a loaded machine still leaves the watcher a core to wake up on.
export OMP_NUM_THREADS=1
# 16 iterations: the last point (9) leaves 7 steps (0.2 s here) for the kill to land before the end.
SETS=("${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set schedule.max_iters=16 --set run.ckpt_every=1
      --set run.keep_ckpts=2 --set run.eval_every=4)
records() { grep '"type": "train"' "$1" | grep -o '"iter": [0-9]*, "loss_total": [0-9.e+-]*'; }
# Every dataset of two checkpoints equal, except the configuration text (its run.work_dir differs)
# and the state checksum that covers it.
same_ckpt() {
    "$MV_PYTHON" - "$1" "$2" <<'EOF'
import sys, h5py, numpy as np
def load(p):
    out = {}
    with h5py.File(p, "r") as f:
        f.visititems(lambda k, o: out.__setitem__(k, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
skip = {"train/config_yaml", "train/checksum/state"}
bad = [k for k in sorted(set(a) | set(b)) if k not in skip and (k not in a or k not in b or
       not np.array_equal(np.asarray(a[k]), np.asarray(b[k]), equal_nan=np.asarray(a[k]).dtype.kind == "f"))]
if bad:
    sys.exit(f"{len(bad)} datasets differ, e.g. {bad[:3]}")
EOF
}
# kill_at DIR POINT AFTER: runs the training into DIR (made first, for the watch) and kills it
# with SIGKILL at the first event that creates POINT (a .tmp file) or renames it into place,
# once AFTER has been renamed into place (AFTER empty: from the start). Status 1 when the run
# ended first.
kill_at() {
    mkdir -p "$1"
    "$MV_PYTHON" - "$MV_BIN" "$@" "${SETS[@]}" --set run.work_dir="$1" <<'EOF'
import ctypes, os, select, signal, struct, subprocess, sys
binary, work, point, after, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
IN_CREATE, IN_MOVED_TO = 0x100, 0x80
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_CLOEXEC)
assert fd >= 0 and libc.inotify_add_watch(fd, work.encode(), IN_CREATE | IN_MOVED_TO) >= 0, os.strerror(ctypes.get_errno())
want = IN_CREATE if point.endswith(".tmp") else IN_MOVED_TO
armed = not after
with open(work + ".log1", "w") as log:
    p = subprocess.Popen([binary, "train", *args], stdout=log, stderr=subprocess.STDOUT)
poller = select.poll()
poller.register(fd, select.POLLIN)
while p.poll() is None:
    if not poller.poll(100):
        continue
    buf, i = os.read(fd, 65536), 0
    while i < len(buf):
        _, mask, _, n = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + n].split(b"\0", 1)[0].decode()
        i += 16 + n
        if armed and name == point and mask & want:
            p.kill()
            p.wait()
            sys.exit(0 if p.returncode == -signal.SIGKILL else 1)
        armed = armed or (name == after and mask & IN_MOVED_TO)
sys.exit(1)
EOF
}
"$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/full" >"$TMP/full.log" 2>&1 || fail "uninterrupted run: $(tail -3 "$TMP/full.log")"
passed=0 caught=0
for spec in iter_5.h5.tmp@@iter_4.h5 best.h5.tmp@@iter_3.h5 latest.tmp@iter_7.h5@iter_6.h5 iter_9.h5@@iter_8.h5; do
    IFS=@ read -r point after named <<<"$spec"
    W="$TMP/k_${point//./_}"
    kill_at "$W" "$point" "$after" || fail "kill at $point: the run ended before the kill: $(tail -3 "$W.log1")"
    latest=$(cat "$W/latest" 2>/dev/null || true)
    [ -e "$W/$point" ] && [ "$latest" = "$named" ] && at="caught" caught=$((caught + 1)) || at="landed after it"
    "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$W" --resume auto >"$W.log2" 2>&1 \
        || fail "kill at $point: the resume failed: $(grep -v '^\[' "$W.log2" | tail -3)"
    if [ -n "$latest" ]; then
        grep -q "resumed from $W/$latest at iteration" "$W.log2" \
            || fail "kill at $point: \`latest\` named $latest, the resume took: $(grep -o 'resumed from .*' "$W.log2" || echo nothing)"
    elif ls "$W"/iter_*.h5 >/dev/null 2>&1; then
        grep -q "resumed from $W/iter_" "$W.log2" || fail "kill at $point: a checkpoint was there, the resume started over"
    fi
    grep -q warning "$W.log2" && fail "kill at $point: a warning on resume: $(grep warning "$W.log2")"
    same_ckpt "$TMP/full/iter_16.h5" "$W/iter_16.h5" || fail "kill at $point: iter_16.h5 differs from the uninterrupted run"
    same_ckpt "$TMP/full/best.h5" "$W/best.h5" || fail "kill at $point: best.h5 differs from the uninterrupted run"
    diff <(records "$TMP/full/metrics.jsonl") <(records "$W/metrics.jsonl") >&2 || fail "kill at $point: metrics.jsonl differs"
    echo "kill at $point ($at, latest: ${latest:-none}): resumed bit-identical"
    passed=$((passed + 1))
done
[ "$caught" -ge 2 ] || fail "only $caught of 4 kills landed at their point (the watcher woke too late?)"
echo "$passed passed, 0 failed ($caught of 4 kills at their point)"
