#!/usr/bin/env bash
# Faults around a training run that used to end in a crash, a silent wrong result or a
# confusing error:
#   1. a file system that refuses the checkpoint half-way (here: a file-size limit, which fails
#      HDF5's writes as a full disk does): a clear error, exit status 1 (it used to crash with
#      SIGSEGV at exit, in HDF5's clean-up of the file it could not close), the previous
#      checkpoint and `latest` intact, and `--resume auto` continues from it;
#   2. a checkpoint whose training state (train/iter, here) has a flipped bit: refused by
#      --resume PATH and passed over by --resume auto (it resumed at iteration 68719476738);
#   3. `maskvim eval --checkpoint` on a checkpoint with a damaged weight: refused (it evaluated it);
#      under another mask.mode than it was trained with: a warning (it evaluated silently);
#   4. a second training started in a run directory that a live run is using: refused;
#   5. a step whose loss is not finite: the run stops before the update, writing nothing; an
#      update that makes the weights non-finite although its loss was finite (an overflow in
#      the optimizer): the run stops before evaluating or saving them (it wrote a checkpoint of
#      them, which could never be resumed, and rotated the finite ones away);
#   6. two ranks started with different configurations: every rank stops, naming the key (a rank
#      with another seed or learning rate trained on silently);
#   7. a `--resume OTHER/iter_N.h5` into a folder whose disk fills while the checkpoint is copied
#      in: an error saying nothing was resumed, and no best.h5 of the other run left behind (it
#      printed "resumed from", and a later `--resume auto` started over beside that best.h5).
set -euo pipefail
SECONDS=0
stamp() { echo "[$SECONDS s] $*"; }
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
# One OpenMP thread: check 4 waits on a running trainer, and with both cores busy two spinning
# threads per run made this test take 94 s instead of 8 (no check compares with another thread count).
export OMP_NUM_THREADS=1
TMP=${MV_TEST_TMP:-/tmp}/fault_train_guard.$$
mkdir -p "$TMP"
busy=""   # check 4's endless training, ended on the way out if a check fails while it runs
mounted=""   # check 7's tmpfs
cleanup() {
    if [ -n "$busy" ]; then kill -9 "$busy" 2>/dev/null || true; wait "$busy" 2>/dev/null || true; fi
    if [ -n "$mounted" ]; then umount "$mounted" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
run() { "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 "$@"; }
passed=0

# 1. Checkpoints of this model are about 5.9 MB: a 3 MB file-size limit fails the write of
#    iter_4.h5 inside HDF5 (EFBIG; SIGXFSZ ignored, as a full disk gives ENOSPC).
run --set run.work_dir="$TMP/full" --stop-after 2 >/dev/null
[ "$(cat "$TMP/full/latest")" = iter_2.h5 ] || fail "no iter_2.h5 checkpoint to start from"
cp "$TMP/full/iter_2.h5" "$TMP/iter_2.copy"
rc=0
( trap '' XFSZ; ulimit -f 3000; exec "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 \
    --set run.work_dir="$TMP/full" --resume auto ) >"$TMP/full.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "a checkpoint write that fails: exit status $rc, not 1: $(tail -3 "$TMP/full.log")"
grep -q "iter_4.h5: File too large" "$TMP/full.log" || fail "the error does not name the file and the reason: $(tail -2 "$TMP/full.log")"
[ "$(cat "$TMP/full/latest")" = iter_2.h5 ] || fail "latest changed: $(cat "$TMP/full/latest")"
cmp -s "$TMP/full/iter_2.h5" "$TMP/iter_2.copy" || fail "the previous checkpoint changed"
[ ! -e "$TMP/full/iter_4.h5" ] && [ ! -e "$TMP/full/iter_4.h5.tmp" ] || fail "the failed checkpoint left a file"
run --set run.work_dir="$TMP/full" --resume auto --stop-after 1 >"$TMP/full2.log" 2>&1 || fail "resume after the failed write: $(tail -2 "$TMP/full2.log")"
grep -q "resumed from .*iter_2.h5 at iteration 2" "$TMP/full2.log" || fail "did not resume from iter_2.h5"
passed=$((passed + 1)); stamp "check $passed done"

# 2. A flipped bit in train/iter (the tensors and their checksums untouched).
"$MV_PYTHON" - "$TMP/iter_2.copy" "$TMP/flip/iter_8.h5" <<'EOF'
import os, shutil, sys, h5py
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(dst), exist_ok=True)
with h5py.File(src, "r") as f:
    off = f["train/iter"].id.get_offset()
shutil.copy(src, dst)
with open(dst, "r+b") as f:
    f.seek(off + 4); b = f.read(1); f.seek(off + 4); f.write(bytes([b[0] ^ 0x10]))
EOF
cp "$TMP/iter_2.copy" "$TMP/flip/iter_2.h5"
echo iter_8.h5 >"$TMP/flip/latest"
if run --set run.work_dir="$TMP/flip" --resume "$TMP/flip/iter_8.h5" >"$TMP/flip1.log" 2>&1; then
    fail "a checkpoint with a damaged train/iter was resumed: $(grep resumed "$TMP/flip1.log")"
fi
grep -q "iter_8.h5: the training state .* does not match its checksum" "$TMP/flip1.log" || fail "$(tail -2 "$TMP/flip1.log")"
run --set run.work_dir="$TMP/flip" --resume auto --stop-after 1 >"$TMP/flip2.log" 2>&1 || fail "resume auto: $(tail -2 "$TMP/flip2.log")"
grep -q "resumed from .*iter_2.h5 at iteration 2" "$TMP/flip2.log" || fail "resume auto did not pass over the damaged newest file"
passed=$((passed + 1)); stamp "check $passed done"

# 3. eval on a checkpoint with one changed weight.
EVAL_SETS=()
for a in "${TRAIN_SETS[@]}"; do [ "$a" = --quiet ] || EVAL_SETS+=("$a"); done
"$MV_PYTHON" - "$TMP/iter_2.copy" "$TMP/bad_weight.h5" <<'EOF'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    d = f["decode_head.conv_seg.weight"]; x = d[()]; x.flat[7] += 0.5; d[...] = x
EOF
"$MV_BIN" eval "${EVAL_SETS[@]}" --checkpoint "$TMP/iter_2.copy" >"$TMP/eval_ok.log" 2>&1 || fail "eval of an intact checkpoint: $(tail -2 "$TMP/eval_ok.log")"
if "$MV_BIN" eval "${EVAL_SETS[@]}" --checkpoint "$TMP/bad_weight.h5" >"$TMP/eval.log" 2>&1; then
    fail "eval used a checkpoint whose weights do not match their checksum"
fi
grep -q "bad_weight.h5: the weights do not match their checksum" "$TMP/eval.log" || fail "$(tail -2 "$TMP/eval.log")"
# ... and an evaluation under another mask.mode than the checkpoint was trained with is warned.
"$MV_BIN" eval "${EVAL_SETS[@]}" --set mask.mode=zero --checkpoint "$TMP/iter_2.copy" >"$TMP/eval_mode.log" 2>&1 \
    || fail "eval with another mask.mode: $(tail -2 "$TMP/eval_mode.log")"
grep -q "warning: .*mask.mode: residual in the checkpoint's training, zero now" "$TMP/eval_mode.log" \
    || fail "no warning for another mask.mode: $(head -2 "$TMP/eval_mode.log")"
grep -q "warning" "$TMP/eval_ok.log" && fail "a warning for an evaluation as trained: $(grep warning "$TMP/eval_ok.log")"
passed=$((passed + 1)); stamp "check $passed done"

# 4. A run directory in use (as after `kill -9 mpirun`, whose ranks may run on).
# (maskvim itself in the background, not the `run` function: killing a function's subshell
# would leave the training running.) The busy run must outlast the second one's 5 s grace for a
# process still exiting: 400 iterations (4 s on a quiet machine) did not always. The second run
# starts once the busy one trains (metrics.jsonl); if it never does, the check fails, rather than
# testing a directory nobody uses.
"$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.work_dir="$TMP/busy" \
    --set schedule.max_iters=1000000 --set run.ckpt_every=0 >"$TMP/busy0.log" 2>&1 &
busy=$!
t0=$SECONDS
while [ ! -f "$TMP/busy/metrics.jsonl" ]; do
    kill -0 $busy 2>/dev/null || fail "the busy run ended before it trained: $(tail -2 "$TMP/busy0.log")"
    [ $((SECONDS - t0)) -lt 120 ] || fail "the busy run did not start training within 120 s"
    sleep 0.1
done
rc=0
run --set run.work_dir="$TMP/busy" --resume auto >"$TMP/busy.log" 2>&1 || rc=$?
kill -0 $busy 2>/dev/null || fail "the busy run ended while the second one ran: $(tail -2 "$TMP/busy0.log")"
kill -9 $busy 2>/dev/null || true
wait $busy 2>/dev/null || true
busy=""
[ "$rc" -ne 0 ] || fail "a second training ran in a directory in use"
grep -q "is in use by another training process" "$TMP/busy.log" || fail "$(tail -2 "$TMP/busy.log")"
passed=$((passed + 1)); stamp "check $passed done"

# 5. A step whose loss is not finite (weights near float's largest value, resumed with their
#    checksum made to match: the logits overflow): the run stops at that iteration before the
#    update, writes no checkpoint and says why (rather than training on with NaN parameters and
#    rotating the good checkpoints away). A checkpoint whose weights hold a NaN is refused when
#    it is loaded, naming the tensor.
mkdir -p "$TMP/nan" "$TMP/nanw"
# patch_weight SRC DST VALUE [KEY]: KEY (decode_head.conv_seg.weight, or its train/adam_m/ or
# train/adam_v/ moment) set to VALUE everywhere, its checksum made to match
patch_weight() {
"$MV_PYTHON" - "$@" <<'EOF'
import shutil, sys, h5py, numpy as np
M = (1 << 64) - 1
P1, P2 = 0x9e3779b185ebca87, 0xc2b2ae3d27d4eb4f
rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M
def fmix(x):
    x ^= x >> 33; x = (x * 0xff51afd7ed558ccd) & M
    x ^= x >> 33; x = (x * 0xc4ceb9fe1a85ec53) & M
    return x ^ (x >> 33)
def tensor_hash(salt, name, a):   # core/checkpoint.c's tensor_hash, over the float32 bits
    h = salt ^ 0xcbf29ce484222325
    for c in name.encode(): h = ((h ^ c) * 0x100000001b3) & M
    lane = [h, h ^ P1, h ^ P2, h ^ ((P1 + P2) & M)]
    u = np.ascontiguousarray(a, dtype=np.float32).ravel().view(np.uint32)
    n, i = len(u), 0
    while i + 8 <= n:
        for j in range(4):
            v = int(u[i + 2 * j]) | (int(u[i + 2 * j + 1]) << 32)
            lane[j] = (rotl((lane[j] + v * P2) & M, 31) * P1) & M
        i += 8
    for k in range(i, n):
        lane[0] = (rotl((lane[0] + int(u[k]) * P2) & M, 31) * P1) & M
    return fmix(lane[0] ^ rotl(lane[1], 7) ^ rotl(lane[2], 12) ^ rotl(lane[3], 18) ^ n)
shutil.copy(sys.argv[1], sys.argv[2])
key = sys.argv[4] if len(sys.argv) > 4 else "decode_head.conv_seg.weight"
salt, group = {"train/adam_m/": (2, "moments"), "train/adam_v/": (3, "moments")}.get(key[:13], (1, "weights"))
name = key[13:] if salt > 1 else key   # the moments are hashed under their parameter's name
with h5py.File(sys.argv[2], "r+") as f:
    old = f[key][()]
    new = np.full_like(old, float(sys.argv[3]))
    f[key][...] = new
    c = f["train/checksum/" + group]
    c[()] = np.uint64((int(c[()]) - tensor_hash(salt, name, old) + tensor_hash(salt, name, new)) & M)
EOF
}
patch_weight "$TMP/iter_2.copy" "$TMP/nan/iter_2.h5" 3e38
echo iter_2.h5 >"$TMP/nan/latest"
rc=0
run --set run.work_dir="$TMP/nan" --resume auto >"$TMP/nan.log" 2>&1 || rc=$?
grep -q "resumed from .*iter_2.h5 at iteration 2" "$TMP/nan.log" || fail "the NaN checkpoint was not resumed: $(tail -2 "$TMP/nan.log")"
[ "$rc" -eq 1 ] || fail "a non-finite loss: exit status $rc, not 1: $(tail -2 "$TMP/nan.log")"
grep -q "iteration 3: the loss is not finite (rank 0: total -\?nan" "$TMP/nan.log" || fail "$(tail -2 "$TMP/nan.log")"
[ "$(ls "$TMP/nan" | tr '\n' ' ')" = "config.yaml iter_2.h5 latest metrics.jsonl " ] || fail "files written: $(ls "$TMP/nan")"
patch_weight "$TMP/iter_2.copy" "$TMP/nanw/iter_2.h5" nan
echo iter_2.h5 >"$TMP/nanw/latest"
rc=0
run --set run.work_dir="$TMP/nanw" --resume auto >"$TMP/nanw.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "NaN weights in a checkpoint: exit status $rc, not 1: $(tail -2 "$TMP/nanw.log")"
grep -q "iter_2.h5: 'decode_head.conv_seg.weight' holds a non-finite value (nan at element 0" "$TMP/nanw.log" ||
    fail "NaN weights: $(tail -2 "$TMP/nanw.log")"
# A first moment near float's largest value over a second moment of 0: iteration 3's loss is
# finite, its update overflows the weight to -inf. Checked at every checkpoint and evaluation:
# stopped at iteration 3.
mkdir -p "$TMP/nanu"
patch_weight "$TMP/iter_2.copy" "$TMP/nanu/m.h5" 3e38 train/adam_m/decode_head.conv_seg.weight
patch_weight "$TMP/nanu/m.h5" "$TMP/nanu/iter_2.h5" 0 train/adam_v/decode_head.conv_seg.weight
rm "$TMP/nanu/m.h5"
echo iter_2.h5 >"$TMP/nanu/latest"
rc=0
run --set run.work_dir="$TMP/nanu" --set run.ckpt_every=1 --resume auto >"$TMP/nanu.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "a non-finite update: exit status $rc, not 1: $(tail -2 "$TMP/nanu.log")"
grep -q "\"iter\": 3, \"loss_total\": [0-9]" "$TMP/nanu/metrics.jsonl" || fail "iteration 3's loss: $(tail -1 "$TMP/nanu/metrics.jsonl")"
grep -q "iteration 3: the weights are not finite ('decode_head.conv_seg.weight' holds -\?inf at element [0-9]*): an update since iteration 2 diverged although its loss was finite.* the checkpoints in .* hold finite weights" "$TMP/nanu.log" ||
    fail "non-finite update: $(tail -2 "$TMP/nanu.log")"
[ "$(ls "$TMP/nanu" | tr '\n' ' ')" = "config.yaml iter_2.h5 latest metrics.jsonl " ] || fail "files written: $(ls "$TMP/nanu")"
[ "$(cat "$TMP/nanu/latest")" = iter_2.h5 ] || fail "latest: $(cat "$TMP/nanu/latest")"
passed=$((passed + 1)); stamp "check $passed done"

# 6. Ranks with different configurations (needs MPI).
if command -v mpirun >/dev/null 2>&1 && grep -q "Built with MPI: yes" <<<"$("$MV_BIN" bench-allreduce --help)"; then
    OUR_TMP=$TMP
    source "$(dirname "$0")/mpi_common.sh"
    mpi_setup fault_train_guard_mpi
    mpi_tmp=$TMP
    TMP=$OUR_TMP
    ONE=("${TRAIN_SETS[@]}" --set data.batch_per_rank=1 --set run.work_dir="$TMP/mpmd")
    rc=0
    MV_COMM_TIMEOUT=60 timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 \
        -x MV_COMM_TIMEOUT -np 1 "$MV_BIN" train "${ONE[@]}" : -np 1 "$MV_BIN" train "${ONE[@]}" --set run.seed=5 \
        >"$TMP/mpmd.log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "ranks with different run.seed trained"
    grep -q "rank 1 was started with another configuration than rank 0: run.seed: 0 on rank 0, 5 on rank 1" "$TMP/mpmd.log" \
        || fail "$(grep -v '^\[' "$TMP/mpmd.log" | head -3)"
    # --stop-after on one rank alone: its last collectives would fall elsewhere than the other's
    # (a hang until the communication timeout, or an MPI error); refused at the start.
    rc=0
    MV_COMM_TIMEOUT=60 timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 \
        -x MV_COMM_TIMEOUT -np 1 "$MV_BIN" train "${ONE[@]}" : -np 1 "$MV_BIN" train "${ONE[@]}" --stop-after 2 \
        >"$TMP/mpmd_stop.log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "ranks with different --stop-after: exit $rc"
    grep -q "rank 1 was started with another configuration than rank 0: the options '--stop-after 0 --resume (none)' on rank 0, '--stop-after 2 --resume (none)' on rank 1" \
        "$TMP/mpmd_stop.log" || fail "$(grep -v '^\[' "$TMP/mpmd_stop.log" | head -3)"
    # eval: the ranks' shares are summed, so one rank's other preprocessing would change the
    # mIoU silently; refused as in training.
    "$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 0 --init-out "$TMP/w.h5" >/dev/null 2>&1
    EV=(--set model.crop=64,64 --set data.synthetic.size=64,128 --set data.scale=128,64 --set data.synthetic.val_count=2
        --set "data.val=[synthetic:clear]")
    rc=0
    MV_COMM_TIMEOUT=60 timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 \
        -x MV_COMM_TIMEOUT -np 1 "$MV_BIN" eval "${EV[@]}" --checkpoint "$TMP/w.h5" \
        : -np 1 "$MV_BIN" eval "${EV[@]}" --checkpoint "$TMP/w.h5" --set data.scale=96,48 \
        >"$TMP/mpmd_eval.log" 2>&1 || rc=$?
    rm -rf "$mpi_tmp"
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "eval ranks with different data.scale: exit $rc"
    grep -q "rank 1 was started with another configuration than rank 0: data.scale: " "$TMP/mpmd_eval.log" \
        || fail "$(grep -v '^\[' "$TMP/mpmd_eval.log" | head -3)"
    passed=$((passed + 1)); stamp "check $passed done"
else
    echo "SKIP 6: no MPI"
fi
# 7. A 9 MiB file system: the other run's best.h5 (a checkpoint, about 5.9 MB) is copied in, then
#    its iter_2.h5 does not fit.
run --set run.work_dir="$TMP/src7" --set run.eval_every=2 --stop-after 2 >/dev/null
[ -e "$TMP/src7/best.h5" ] || fail "7: the source run has no best.h5"
mkdir -p "$TMP/small"
if mount -t tmpfs -o size=9m tmpfs "$TMP/small" 2>/dev/null; then
    mounted="$TMP/small"
    rc=0
    run --set run.work_dir="$TMP/small/run" --set run.eval_every=2 --resume "$TMP/src7/iter_2.h5" \
        >"$TMP/adopt.log" 2>&1 || rc=$?
    [ "$rc" -eq 1 ] || fail "7: exit status $rc, not 1: $(tail -3 "$TMP/adopt.log")"
    grep -q "not enough free space" "$TMP/adopt.log" && grep -q "nothing was resumed" "$TMP/adopt.log" \
        || fail "7: the error does not say that nothing was resumed: $(tail -3 "$TMP/adopt.log")"
    ! grep -q "resumed from" "$TMP/adopt.log" || fail "7: a failed adoption said it resumed: $(cat "$TMP/adopt.log")"
    [ ! -e "$TMP/small/run/best.h5" ] || fail "7: the other run's best.h5 was left behind"
    umount "$TMP/small"
    mounted=""
    passed=$((passed + 1)); stamp "check $passed done"
else
    echo "SKIP 7: cannot mount a tmpfs here (needs root)"
fi
echo "$passed passed, 0 failed"
