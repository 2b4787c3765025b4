#!/usr/bin/env bash
# A stop signal during training (Ctrl-C, a scheduler's SIGTERM, SIGUSR1 through mpirun) ends the
# run after the current step with a checkpoint of it, and `--resume auto` then ends bit-identical
# to an uninterrupted run:
#   1. one rank, SIGTERM: exit status 143, a checkpoint at the iteration it stopped after (no
#      periodic checkpoint would have been written), metrics.jsonl up to that iteration;
#   2. a second stop signal before the step ends stops the process at once (killed by it);
#   3. two ranks, SIGHUP to rank 1 alone: rank 0 stops after the same step and writes its
#      checkpoint, and the resumed 2-rank run ends bit-identical to the uninterrupted one;
#   2b. stdout into a pipe whose reader is gone (Ctrl-C ends a `| tee` too) does not kill the
#      run before its checkpoint;
#   4. `maskvim experiment run` running rows in its own process: SIGTERM during a row's training
#      stops it with a checkpoint and marks it interrupted, during its final evaluation lets it
#      finish; either way the sweep ends there (exit 143) and the next one carries on;
#   5. SIGUSR1 once the training loop is over (a scheduler's warning that arrives while the run
#      writes its report and exits): the run exits 0 with its outputs, not killed by the signal
#      (it died with status 138: the default action was put back when training ended).
#      tests/unit/test_fault_stop_signal.c checks the same without timing.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/train_stop_signal.$$
mkdir -p "$TMP"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$TMP"' EXIT
ITERS=100   # long enough that no run ends before the test signals it
SETS=("${TRAIN_SETS[@]}" --set schedule.max_iters=$ITERS --set run.ckpt_every=0)
passed=0

# wait_records DIR N PID: waits until DIR/metrics.jsonl holds N training records (or PID ended,
# or 300 s passed: a deadline, not a count of polls, whose length would depend on the host).
wait_records() {
    local deadline=$((SECONDS + 300))
    while [ $SECONDS -lt $deadline ]; do
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

# 2. Twice: at once (the process dies by the signal, it does not exit with a status). Sent one
#    after the other, the second had to arrive before the step ended and the stop checkpoint
#    disarmed the handler (0.15 s on a fast machine). So both are sent while the process is held
#    by SIGSTOP after its first step, SIGTERM and SIGINT (two of one kind would merge into one),
#    to its main thread (sent to the process, the two could be taken by two threads at the same
#    time); SIGCONT then delivers them one after the other, in an order the kernel picks: the
#    first taken asks for the stop, the second kills the process, as test_train_stop_startup.sh
#    checks for startup.
"$MV_PYTHON" - "$MV_BIN" "$TMP/b" "${SETS[@]}" --set data.batch_per_rank=16 <<'PY' || fail "a second stop signal did not stop at once"
import ctypes, os, signal, subprocess, sys, time
binary, work = sys.argv[1], sys.argv[2]
p = subprocess.Popen([binary, "train", *sys.argv[3:], "--set", f"run.work_dir={work}"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
log = os.path.join(work, "metrics.jsonl")
while not (os.path.exists(log) and open(log).read().count('"train"') >= 1):
    assert p.poll() is None, ("the run ended before its first step", p.returncode, p.stderr.read()[-400:])
    time.sleep(0.02)
p.send_signal(signal.SIGSTOP)
while open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
    time.sleep(0.001)
libc = ctypes.CDLL(None, use_errno=True)
for s in (signal.SIGTERM, signal.SIGINT):
    assert libc.tgkill(p.pid, p.pid, s) == 0, os.strerror(ctypes.get_errno())
p.send_signal(signal.SIGCONT)
err = p.communicate(timeout=120)[1]
taken = [s for s in (signal.SIGTERM, signal.SIGINT) if f"{signal.Signals(s).name}: stopping after this step" in err]
assert len(taken) == 1, ("expected one stop request", p.returncode, err[-400:])
killer = signal.SIGINT if taken[0] == signal.SIGTERM else signal.SIGTERM
assert p.returncode == -killer, (p.returncode, err[-400:])
assert "stopping at once" in err and "stopped by SIG" not in err, err[-400:]
print(f"{taken[0].name} then {killer.name} during a step: killed at once")
PY
# Output into a pipe whose reader is gone (Ctrl-C ends a `| tee` too): the log lines that follow
# must not kill the run (SIGPIPE) before it stops with its checkpoint.
"$MV_PYTHON" - "$MV_BIN" "$TMP/p" "${SETS[@]}" --set data.batch_per_rank=2 <<'PY' || fail "a closed pipe on stdout"
import os, signal, subprocess, sys, time
binary, work = sys.argv[1], sys.argv[2]
p = subprocess.Popen([binary, "train", *sys.argv[3:], "--set", f"run.work_dir={work}"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
first = p.stdout.readline()
assert b"maskvim train:" in first, first
p.stdout.close()   # the reader is gone; every later line meets a broken pipe
log = os.path.join(work, "metrics.jsonl")
for _ in range(3000):
    if os.path.exists(log) and open(log).read().count('"train"') >= 2 or p.poll() is not None:
        break
    time.sleep(0.02)
assert p.poll() is None, f"the run died with the pipe: status {p.returncode}"
p.send_signal(signal.SIGTERM)
p.wait(timeout=120)
assert p.returncode == 143, p.returncode
assert os.path.exists(os.path.join(work, "latest")), "no checkpoint"
print("stdout into a closed pipe: stopped with status 143 and a checkpoint")
PY
passed=$((passed + 1))

# 5. SIGUSR1 after the last step: from the summary line (printed once the loop is over; a
#    pseudo-terminal makes stdout line-buffered) until the process exits, one every half
#    millisecond.
"$MV_PYTHON" - "$MV_BIN" "$TMP/u" "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set schedule.max_iters=3 \
    --set schedule.warmup_iters=1 <<'PY' || fail "5: SIGUSR1 after training"
import os, pty, signal, subprocess, sys, time
binary, work = sys.argv[1], sys.argv[2]
master, slave = pty.openpty()
# stderr into a file: a pipe read only at the end would fill (a line per SIGUSR1) and block the
# handler's write.
errf = open(work + ".err", "w+")
p = subprocess.Popen([binary, "train", *sys.argv[3:], "--set", f"run.work_dir={work}"],
                     stdout=slave, stderr=errf, text=True)
os.close(slave)
out = b""
while b"iterations in" not in out:
    try:
        chunk = os.read(master, 4096)
    except OSError:   # EIO: the process closed the terminal
        chunk = b""
    assert chunk, ("the run ended without its summary", p.wait(), out[-400:])
    out += chunk
sent = 0
while p.poll() is None:
    p.send_signal(signal.SIGUSR1)
    sent += 1
    time.sleep(0.0005)
errf.seek(0)
err = errf.read()
assert p.returncode == 0, f"status {p.returncode} after {sent} SIGUSR1 (-10: killed by it): {err[-400:]}"
assert "stopping after this step" not in err, err[-400:]
assert open(os.path.join(work, "latest")).read().strip() == "iter_3.h5"
print(f"SIGUSR1 after the last step: exit 0 ({sent} sent, {err.count('while no training runs: ignored')} noted)")
PY
passed=$((passed + 1))

# 3. Two ranks, one of them signalled.
if command -v mpirun >/dev/null 2>&1 && grep -q "Built with MPI: yes" <<<"$("$MV_BIN" bench-allreduce --help)"; then
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
    # Only rank 1 gets the signal (mpirun's children are the ranks; their environment says
    # which): rank 0, which writes the checkpoint, must stop after the same step.
    rank1=""
    for child in $(pgrep -P $pid); do
        tr '\0' '\n' <"/proc/$child/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$child
    done
    [ -n "$rank1" ] || fail "rank 1's process not found among mpirun's children: $(pgrep -P $pid)"
    # SIGHUP (a rank's terminal gone): the newest of the stop signals, so that the step's
    # agreement is shown to count every one of them (it counted three before SIGHUP was one).
    kill -HUP "$rank1"
    rc=0; wait $pid || rc=$?
    [ "$rc" != 0 ] || fail "a stopped 2-rank run exited 0"
    k=$(last_iter "$TMP/c")
    grep -q "stopped by SIGHUP after iteration $k, with its checkpoint" "$TMP/c.log" || fail "2 ranks: $(grep maskvim "$TMP/c.log" | tail -3)"
    [ "$(cat "$TMP/c/latest")" = "iter_$k.h5" ] && [ "$k" -lt $ITERS ] || fail "2 ranks: latest $(cat "$TMP/c/latest"), stopped after $k"
    mpi2 --set run.work_dir="$TMP/c" --resume auto >"$TMP/c2.log" 2>&1 || fail "2-rank resume failed: $(tail -3 "$TMP/c2.log")"
    compare "$TMP/full2/iter_$ITERS.h5" "$TMP/c/iter_$ITERS.h5" --exact || fail "2 ranks: stopped and resumed differs"
    echo "two ranks: stopped after iteration $k, resumed bit-identical"
    rm -rf "$MPI_TMP"
    passed=$((passed + 1))
else
    echo "SKIP 3: maskvim is built without MPI (or mpirun is missing)"
fi

# 4. A sweep that trains its rows in its own process: a stop ends the sweep where it is.
#    a. during row one's training: row one is interrupted with a checkpoint, row two not begun;
#    b. again, once row one's training is done and its final evaluation runs (400 images make
#       it last): row one is finished, row two still not begun (the request is not lost);
#    c. the next sweep skips row one and runs row two.
source "$(dirname "$0")/experiment_common.sh"
cat >"$TMP/exp.yaml" <<YAML
name: stop
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets $ITERS 0 "synthetic:clear" 0)
source: clear
targets: []
rows:
  - {name: one, set: [data.synthetic.val_count=400]}
  - {name: two}
YAML
SWEEP=("$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/s" --quiet)
"${SWEEP[@]}" >"$TMP/s.log" 2>&1 &   # maskvim itself is $!, to be signalled
pid=$!
wait_records "$TMP/s/one" 2 $pid || fail "row one did not start: $(tail -3 "$TMP/s.log")"
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 143 ] || fail "4a: sweep exit status $rc, expected 143: $(tail -3 "$TMP/s.log")"
grep -q '"state": "interrupted"' "$TMP/s/one/status.json" || fail "4a: row one: $(cat "$TMP/s/one/status.json")"
k=$(last_iter "$TMP/s/one")
[ "$(cat "$TMP/s/one/latest")" = "iter_$k.h5" ] || fail "4a: row one's checkpoint: $(ls "$TMP/s/one")"
[ ! -e "$TMP/s/two/status.json" ] || fail "4a: row two began: $(cat "$TMP/s/two/status.json")"

"${SWEEP[@]}" >"$TMP/s2.log" 2>&1 &
pid=$!
wait_records "$TMP/s/one" $ITERS $pid || fail "4b: row one did not train to the end: $(tail -3 "$TMP/s2.log")"
grep -q '"type": "eval"' "$TMP/s/one/metrics.jsonl" && fail "4b: the evaluation ended before the signal could be sent"
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 143 ] || fail "4b: sweep exit status $rc, expected 143: $(tail -3 "$TMP/s2.log")"
grep -q "resumed from .*iter_$k.h5 at iteration $k" "$TMP/s2.log" || fail "4b: row one did not resume at $k"
grep -q '"state": "finished"' "$TMP/s/one/status.json" || fail "4b: row one: $(cat "$TMP/s/one/status.json")"
grep -q "the run finished (iteration $ITERS of $ITERS) before the stop request (SIGTERM)" "$TMP/s2.log" \
    || fail "4b: no word that the request came too late to stop row one: $(tail -3 "$TMP/s2.log")"
[ ! -e "$TMP/s/two/status.json" ] || fail "4b: the stop was lost: row two began: $(cat "$TMP/s/two/status.json")"

"${SWEEP[@]}" >"$TMP/s3.log" 2>&1 || fail "4c: $(tail -3 "$TMP/s3.log")"
grep -q "1 row run, 1 skipped (finished), 0 failed" "$TMP/s3.log" || fail "4c: $(tail -1 "$TMP/s3.log")"
grep -q '"state": "finished"' "$TMP/s/two/status.json" || fail "4c: row two did not finish"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
