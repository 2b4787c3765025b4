#!/usr/bin/env bash
# A stop signal during training (Ctrl-C, a scheduler's SIGTERM, SIGUSR1 through mpirun) ends the
# run after the current step with a checkpoint of it, and `--resume auto` then ends bit-identical
# to an uninterrupted run:
#   1. one rank, SIGTERM: exit status 143, a checkpoint at the iteration it stopped after (no
#      periodic checkpoint would have been written), metrics.jsonl up to that iteration;
#   2. a second SIGTERM before the step ends stops the process at once (killed by the signal);
#   3. two ranks, SIGUSR1 to mpirun: both ranks stop after the same step, and the resumed
#      2-rank run ends bit-identical to the uninterrupted one;
#   4. `maskvim experiment run` running a row in its own process: SIGTERM stops the row with a
#      checkpoint, marks it interrupted and ends the sweep (exit 143); the next sweep resumes it.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/train_stop_signal.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
ITERS=40
SETS=("${TRAIN_SETS[@]}" --set schedule.max_iters=$ITERS --set run.ckpt_every=0)
passed=0

# wait_records DIR N PID: waits until DIR/metrics.jsonl holds N training records (or PID ended).
wait_records() {
    for _ in $(seq 3000); do
        [ -f "$1/metrics.jsonl" ] && [ "$(grep -c '"type": "train"' "$1/metrics.jsonl")" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}
last_iter() { grep '"type": "train"' "$1/metrics.jsonl" | tail -1 | grep -o '"iter": [0-9]*' | grep -o '[0-9]*$'; }

# 1. One rank, SIGTERM.
"$MV_BIN" train "${SETS[@]}" --set data.batch_per_rank=2 --set run.work_dir="$TMP/full" >/dev/null
"$MV_BIN" train "${SETS[@]}" --set data.batch_per_rank=2 --set run.work_dir="$TMP/a" >"$TMP/a.log" 2>&1 &
pid=$!
wait_records "$TMP/a" 2 $pid || fail "the run did not start: $(tail -3 "$TMP/a.log")"
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 143 ] || fail "exit status $rc after SIGTERM, expected 143: $(tail -3 "$TMP/a.log")"
k=$(last_iter "$TMP/a")
grep -q "stopped by SIGTERM after iteration $k, with its checkpoint" "$TMP/a.log" || fail "no stop message: $(tail -3 "$TMP/a.log")"
[ "$(cat "$TMP/a/latest")" = "iter_$k.h5" ] || fail "latest is $(cat "$TMP/a/latest"), expected iter_$k.h5"
[ "$k" -lt $ITERS ] || fail "the run finished before the signal"
"$MV_BIN" train "${SETS[@]}" --set data.batch_per_rank=2 --set run.work_dir="$TMP/a" --resume auto >"$TMP/a2.log"
grep -q "resumed from .*iter_$k.h5 at iteration $k" "$TMP/a2.log" || fail "did not resume at $k: $(head -2 "$TMP/a2.log")"
compare "$TMP/full/iter_$ITERS.h5" "$TMP/a/iter_$ITERS.h5" --exact || fail "stopped and resumed differs from uninterrupted"
echo "one rank: stopped after iteration $k, resumed bit-identical"
passed=$((passed + 1))

# 2. Twice: at once (the process dies by the signal, it does not exit with a status). The second
#    signal is sent once the first has been taken (its message seen); steps of 16 images leave
#    it far inside the step.
"$MV_PYTHON" - "$MV_BIN" "$TMP/b" "${SETS[@]}" --set data.batch_per_rank=16 <<'PY' || fail "a second SIGTERM did not stop at once"
import os, signal, subprocess, sys, time
binary, work = sys.argv[1], sys.argv[2]
p = subprocess.Popen([binary, "train", *sys.argv[3:], "--set", f"run.work_dir={work}"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
for _ in range(3000):
    log = os.path.join(work, "metrics.jsonl")
    if os.path.exists(log) and open(log).read().count('"train"') >= 1:
        break
    time.sleep(0.02)
p.send_signal(signal.SIGTERM)
err = ""
while "stopping after this step" not in err:
    line = p.stderr.readline()
    assert line, ("no message after the first SIGTERM", p.wait(), err)
    err += line
p.send_signal(signal.SIGTERM)
err += p.communicate(timeout=120)[1]
assert p.returncode == -signal.SIGTERM, (p.returncode, err[-400:])
assert "stopping at once" in err and "stopped by SIGTERM" not in err, err[-400:]
print("a second SIGTERM: killed at once")
PY
passed=$((passed + 1))

# 3. Two ranks, SIGUSR1 to mpirun (which forwards it to every rank).
if command -v mpirun >/dev/null 2>&1 && "$MV_BIN" bench-allreduce --help | grep -q "Built with MPI: yes"; then
    source "$(dirname "$0")/mpi_common.sh"
    SAVED_TMP=$TMP
    mpi_setup train_stop_signal_mpi
    MPI_TMP=$TMP
    TMP=$SAVED_TMP
    export MV_COMM_TIMEOUT=60
    MPI2=(mpirun --oversubscribe -np 2 "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x MV_COMM_TIMEOUT -x OMP_NUM_THREADS=1
          "$MV_BIN" train "${SETS[@]}" --set data.batch_per_rank=1)
    mpi2() { timeout 300 "${MPI2[@]}" "$@"; }
    mpi2 --set run.work_dir="$TMP/full2" >/dev/null 2>&1 || fail "uninterrupted 2-rank run failed"
    "${MPI2[@]}" --set run.work_dir="$TMP/c" >"$TMP/c.log" 2>&1 &   # mpirun itself is $!, to be signalled
    pid=$!
    wait_records "$TMP/c" 2 $pid || fail "the 2-rank run did not start: $(tail -3 "$TMP/c.log")"
    kill -USR1 $pid
    rc=0; wait $pid || rc=$?
    [ "$rc" != 0 ] || fail "a stopped 2-rank run exited 0"
    k=$(last_iter "$TMP/c")
    grep -q "stopped by SIGUSR1 after iteration $k, with its checkpoint" "$TMP/c.log" || fail "2 ranks: $(grep maskvim "$TMP/c.log" | tail -3)"
    [ "$(cat "$TMP/c/latest")" = "iter_$k.h5" ] && [ "$k" -lt $ITERS ] || fail "2 ranks: latest $(cat "$TMP/c/latest"), stopped after $k"
    mpi2 --set run.work_dir="$TMP/c" --resume auto >"$TMP/c2.log" 2>&1 || fail "2-rank resume failed: $(tail -3 "$TMP/c2.log")"
    compare "$TMP/full2/iter_$ITERS.h5" "$TMP/c/iter_$ITERS.h5" --exact || fail "2 ranks: stopped and resumed differs"
    echo "two ranks: stopped after iteration $k, resumed bit-identical"
    rm -rf "$MPI_TMP"
    passed=$((passed + 1))
else
    echo "SKIP 3: maskvim is built without MPI (or mpirun is missing)"
fi

# 4. A sweep that trains its row in its own process.
source "$(dirname "$0")/experiment_common.sh"
cat >"$TMP/exp.yaml" <<YAML
name: stop
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets $ITERS 0 "synthetic:clear" 0)
source: clear
targets: []
rows:
  - {name: only}
YAML
"$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/s" --quiet >"$TMP/s.log" 2>&1 &
pid=$!
wait_records "$TMP/s/only" 2 $pid || fail "the row did not start: $(tail -3 "$TMP/s.log")"
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 143 ] || fail "sweep exit status $rc, expected 143: $(tail -3 "$TMP/s.log")"
grep -q '"state": "interrupted"' "$TMP/s/only/status.json" || fail "row status: $(cat "$TMP/s/only/status.json")"
k=$(last_iter "$TMP/s/only")
[ "$(cat "$TMP/s/only/latest")" = "iter_$k.h5" ] || fail "the row's checkpoint: $(ls "$TMP/s/only")"
"$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/s" --quiet >"$TMP/s2.log" 2>&1 || fail "second sweep: $(tail -3 "$TMP/s2.log")"
grep -q "resumed from .*iter_$k.h5 at iteration $k" "$TMP/s2.log" || fail "the row did not resume at $k: $(head -5 "$TMP/s2.log")"
grep -q '"state": "finished"' "$TMP/s/only/status.json" || fail "the row did not finish"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
