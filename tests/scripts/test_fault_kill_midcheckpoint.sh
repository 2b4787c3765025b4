#!/usr/bin/env bash
# A crash at each moment of writing a checkpoint, then `--resume auto`: the resumed run must start
# from the file `latest` named (never from an incomplete one, never from scratch when a
# checkpoint exists) and end bit-identical to the uninterrupted run: weights, buffers, AdamW
# moments and training state of the last checkpoint and of best.h5, and the logged losses.
# 1. The fault drills (MV_FAULT, core/crash_point.h) kill the writer (SIGKILL) exactly at:
#   kill-before-rename:iter_5.h5   iter_5.h5.tmp complete, not renamed      latest: iter_4.h5
#   kill-before-rename:best.h5     best.h5.tmp complete, during the
#                                  evaluation at iteration 4                 latest: iter_3.h5
#   kill-after-rename:best.h5      best.h5 in place, iteration 4's
#                                  checkpoint not yet written                latest: iter_3.h5
#   kill-before-latest:iter_7.h5   iter_7.h5 in place, latest.tmp naming it
#                                  written, not renamed                      latest: iter_6.h5
#   kill-after-rename:iter_9.h5    iter_9.h5 in place, latest.tmp not made    latest: iter_8.h5
# 2. A kill from outside while iter_5.h5.tmp is being written (an inotify watcher sends it as the
#    file is created, so it is likely half-written; where it lands is reported, not required):
#    the half-written temporary is never taken.
# 3. (with MPI) 2 ranks: rank 0 killed by the drill before iter_5.h5's rename, rank 1 waiting for
#    it in a collective; the 2-rank resume ends as an uninterrupted 2-rank run.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/fault_kill_midcheckpoint.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
# One thread: a loaded machine still leaves the watcher a core to wake up on.
export OMP_NUM_THREADS=1
# 16 iterations: the watched kill at 5 leaves 11 steps (0.3 s here) for the kill to land before the end.
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
# check_resume NAME W LATEST: `--resume auto` in W starts from LATEST (the file `latest` named
# after the crash; empty: none) and ends as the uninterrupted run $REF (iter_$LAST.h5), each run
# started with "${LAUNCH[@]}" (mpirun, in 3.) and "${EXTRA[@]}" after SETS.
LAUNCH=() EXTRA=() REF=$TMP/full LAST=16
check_resume() {
    local name=$1 W=$2 latest=$3
    "${LAUNCH[@]}" "$MV_BIN" train "${SETS[@]}" "${EXTRA[@]}" --set run.work_dir="$W" --resume auto >"$W.log2" 2>&1 \
        || fail "$name: the resume failed: $(grep -v '^\[' "$W.log2" | tail -3)"
    if [ -n "$latest" ]; then
        grep -q "resumed from $W/$latest at iteration" "$W.log2" \
            || fail "$name: \`latest\` named $latest, the resume took: $(grep -o 'resumed from .*' "$W.log2" || echo nothing)"
    elif ls "$W"/iter_*.h5 >/dev/null 2>&1; then
        grep -q "resumed from $W/iter_" "$W.log2" || fail "$name: a checkpoint was there, the resume started over"
    fi
    grep -q warning "$W.log2" && fail "$name: a warning on resume: $(grep warning "$W.log2")"
    same_ckpt "$REF/iter_$LAST.h5" "$W/iter_$LAST.h5" || fail "$name: iter_$LAST.h5 differs from the uninterrupted run"
    same_ckpt "$REF/best.h5" "$W/best.h5" || fail "$name: best.h5 differs from the uninterrupted run"
    diff <(records "$REF/metrics.jsonl") <(records "$W/metrics.jsonl") >&2 || fail "$name: metrics.jsonl differs"
}
"$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/full" >"$TMP/full.log" 2>&1 || fail "uninterrupted run: $(tail -3 "$TMP/full.log")"

# 1. The drills: DRILL, what the folder holds after it (present, absent), what `latest` names.
for spec in "kill-before-rename:iter_5.h5|iter_5.h5.tmp iter_4.h5|iter_5.h5|iter_4.h5" \
            "kill-before-rename:best.h5|best.h5.tmp iter_3.h5|best.h5 iter_4.h5|iter_3.h5" \
            "kill-after-rename:best.h5|best.h5 iter_3.h5|best.h5.tmp iter_4.h5|iter_3.h5" \
            "kill-before-latest:iter_7.h5|iter_7.h5 latest.tmp|iter_7.h5.tmp iter_8.h5|iter_6.h5" \
            "kill-after-rename:iter_9.h5|iter_9.h5|iter_9.h5.tmp latest.tmp iter_10.h5|iter_8.h5"; do
    IFS='|' read -r drill present absent named <<<"$spec"
    W="$TMP/${drill//[:.]/_}"
    st=0
    { MV_FAULT=$drill "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$W" >"$W.log1" 2>&1; } 2>/dev/null || st=$?   # (no "Killed" line)
    [ "$st" = 137 ] || fail "$drill: status $st, expected 137 (killed by SIGKILL): $(tail -3 "$W.log1")"
    grep -q "warning: fault drill armed (MV_FAULT=$drill): the process saving" "$W.log1" || fail "$drill: no warning at start"
    grep -q "fault drill (MV_FAULT=$drill): killing this process" "$W.log1" || fail "$drill: no drill message"
    for f in $present; do [ -e "$W/$f" ] || fail "$drill: $f missing after the crash: $(ls "$W")"; done
    for f in $absent; do [ -e "$W/$f" ] && fail "$drill: $f there after the crash: $(ls "$W")"; done
    latest=$(cat "$W/latest")
    [ "$latest" = "$named" ] || fail "$drill: latest names $latest, expected $named"
    if [ "$drill" = kill-before-latest:iter_7.h5 ]; then
        [ "$(cat "$W/latest.tmp")" = iter_7.h5 ] || fail "$drill: latest.tmp holds $(cat "$W/latest.tmp")"
    fi
    check_resume "$drill" "$W" "$latest"
    echo "$drill: $present in place, latest $latest; resumed bit-identical"
done

# 2. A kill from outside: SIGKILL the moment iter_5.h5.tmp is created (inotify: the kernel queues
#    each event, none is missed between two looks).
W="$TMP/watched"
mkdir -p "$W"
"$MV_PYTHON" - "$MV_BIN" "$W" "${SETS[@]}" --set run.work_dir="$W" <<'EOF' || fail "watched kill: the run ended before the kill: $(tail -3 "$W.log1")"
import ctypes, os, select, signal, struct, subprocess, sys
binary, work, args = sys.argv[1], sys.argv[2], sys.argv[3:]
IN_CREATE = 0x100
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_CLOEXEC)
assert fd >= 0 and libc.inotify_add_watch(fd, work.encode(), IN_CREATE) >= 0, os.strerror(ctypes.get_errno())
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
        if name == "iter_5.h5.tmp":
            p.kill()
            p.wait()
            sys.exit(0 if p.returncode == -signal.SIGKILL else 1)
sys.exit(1)
EOF
latest=$(cat "$W/latest" 2>/dev/null || true)
[ -e "$W/iter_5.h5.tmp" ] && at="while iter_5.h5.tmp was written" || at="after iter_5.h5.tmp was renamed"
check_resume "watched kill" "$W" "$latest"
echo "watched kill ($at, latest: ${latest:-none}): resumed bit-identical"

# 3. Two ranks (1 image each): rank 0 killed as iter_5.h5.tmp is complete, while rank 1 waits in
#    the collective that shares the checkpoint's outcome. mpirun ends the job; the 2-rank resume
#    starts from iter_4.h5 and ends bit-identical to an uninterrupted 2-rank run.
if command -v mpirun >/dev/null 2>&1 && grep -q "Built with MPI: yes" <<<"$("$MV_BIN" bench-allreduce --help)"; then
    source "$(dirname "$0")/mpi_common.sh"
    mpi_sanitizer_env "$TMP"
    LAUNCH=(timeout 300 mpirun --oversubscribe --bind-to none -np 2 "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x MV_FAULT
            -x OMP_NUM_THREADS=1)
    EXTRA=(--set data.batch_per_rank=1 --set schedule.max_iters=8) REF=$TMP/full_mpi LAST=8
    MV_FAULT= "${LAUNCH[@]}" "$MV_BIN" train "${SETS[@]}" "${EXTRA[@]}" --set run.work_dir="$REF" >"$REF.log" 2>&1 \
        || fail "uninterrupted 2-rank run: $(tail -3 "$REF.log")"
    W="$TMP/mpi"
    st=0
    MV_FAULT=kill-before-rename:iter_5.h5 "${LAUNCH[@]}" "$MV_BIN" train "${SETS[@]}" "${EXTRA[@]}" \
        --set run.work_dir="$W" >"$W.log1" 2>&1 || st=$?
    [ "$st" != 0 ] && [ "$st" != 124 ] || fail "2 ranks, rank 0 killed: status $st: $(tail -3 "$W.log1")"
    grep -q "fault drill (MV_FAULT=kill-before-rename:iter_5.h5): killing this process" "$W.log1" || fail "2 ranks: no drill message"
    [ -e "$W/iter_5.h5.tmp" ] && [ ! -e "$W/iter_5.h5" ] && [ "$(cat "$W/latest")" = iter_4.h5 ] \
        || fail "2 ranks: after the crash: $(ls "$W"), latest $(cat "$W/latest")"
    MV_FAULT= check_resume "2 ranks, rank 0 killed before the rename of iter_5.h5" "$W" iter_4.h5
    echo "2 ranks, rank 0 killed before the rename of iter_5.h5 (status $st): resumed bit-identical"
else
    echo "SKIP 3: maskvim is built without MPI (or mpirun is missing)"
fi
echo "PASS"
