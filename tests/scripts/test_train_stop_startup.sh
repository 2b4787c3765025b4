#!/usr/bin/env bash
# A stop signal that reaches `maskvim train` while it is still starting up (MPI, configuration,
# writing synthetic data, building the model, the loader) neither kills it nor is lost: the
# handlers are armed first thing (core/stop_signal.h), the run stops before its first step on
# every rank, exits 128 + the signal (never dies by it), and `--resume auto` then ends
# bit-identical to an uninterrupted run. It used to die by the signal (status 138 or 143 from a
# shell, a negative return code here). Cases, SIGUSR1 and SIGTERM each:
#   1. sent before the process could arm, held back by a blocked mask (as a sweep starts its
#      children, launch/experiment_spawn.c): arming must take it (it stayed blocked before);
#   2. 0, 0.05 and 0.3 s after the handlers are in place (whatever phase that is: a stop before
#      the first step, or after a step with its checkpoint, are both right);
#   3. while the synthetic data is written into an empty MV_SYNTH_CACHE; and two different stop
#      signals held back until arming: the second ends the process at once, as during training;
#   4. two ranks under mpirun: mpirun signalled with SIGUSR1 while rank 0 writes the data (it
#      forwards it to both ranks); rank 1 alone signalled as soon as it has its handlers, which
#      is before MPI_Init (Open MPI must leave them in place), into an empty cache too, so that
#      rank 1 waits for rank 0's writing before its startup ends: both ranks stop before the
#      first step (one collective agrees on it);
#   5. `maskvim experiment run` signalled before it could arm (blocked mask) and, with --jobs 2,
#      while its `maskvim train` children start (they get the signals blocked until they arm).
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/train_stop_startup.$$
mkdir -p "$TMP"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$TMP"' EXIT
ITERS=4
export OMP_NUM_THREADS=1   # one thread per process: the machine's cores are shared (results do not depend on it)
SETS=("${TRAIN_SETS[@]}" --set schedule.max_iters=$ITERS)
# Cases 3 and 4 write BIG_COUNT training images into folders of their own: the signal must land
# inside that writing or in the setup that follows. 200 images took 0.1 s on a fast machine, too
# short a window for a signal sent when the "writing" line is read (through mpirun, in case 4);
# 1000 take 0.3 s there, 5-10 times that under sanitizers, and the stop cuts the writing short.
# The references are trained on the same count (the data is a function of the settings alone).
export BIG_COUNT=1000
BIG=(--set "data.synthetic.train_count=$BIG_COUNT")

# Case 2 trains 40 iterations (so that the run still trains 0.3 s after it armed).
LONG=(--set schedule.max_iters=40 --set run.ckpt_every=0)

# Uninterrupted references (the cache is written here if missing; cases 3, 4 write their own).
"$MV_BIN" train "${SETS[@]}" --set data.batch_per_rank=2 --set run.work_dir="$TMP/full" >/dev/null 2>&1 || fail "reference run"
"$MV_BIN" train "${SETS[@]}" "${LONG[@]}" --set data.batch_per_rank=2 --set run.work_dir="$TMP/full_long" >/dev/null 2>&1 \
    || fail "reference run (40 iterations)"
MV_SYNTH_CACHE="$TMP/cache_ref" "$MV_BIN" train "${SETS[@]}" "${BIG[@]}" --set data.batch_per_rank=2 \
    --set run.work_dir="$TMP/full_big" >/dev/null 2>&1 || fail "reference run ($BIG_COUNT images)"

cat >"$TMP/cases.py" <<'PY'
import os, re, signal, subprocess, sys, time
import h5py

tmp, binary, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
sets = sys.argv[4:]
BIG = ["--set", f"data.synthetic.train_count={os.environ['BIG_COUNT']}"]   # the references' count
SIGS = {"USR1": signal.SIGUSR1, "TERM": signal.SIGTERM}

def same_weights(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        ka = {k for k in fa.keys() if isinstance(fa[k], h5py.Dataset)}
        kb = {k for k in fb.keys() if isinstance(fb[k], h5py.Dataset)}
        return ka == kb and len(ka) > 0 and all(fa[k][()].tobytes() == fb[k][()].tobytes() for k in ka)

def caught(pid, sig):   # whether the process has a handler for sig (SigCgt in /proc/PID/status)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16) >> (sig - 1) & 1
    except OSError:
        pass
    return 0

def case(name, sig, how, delay=0.0, cache=None, launcher=(), extra=(), reference="full", iters=iters):
    work = os.path.join(tmp, name)
    t_case = time.time()
    env = dict(os.environ)
    if cache:
        env["MV_SYNTH_CACHE"] = cache
    cmd = [*launcher, binary, "train", *sets, *extra, "--set", f"run.work_dir={work}"]
    block = (lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {sig})) if how == "blocked" else None
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=block)
    err = ""
    if how == "blocked":
        p.send_signal(sig)
    elif how == "armed":
        t0 = time.time()
        while not caught(p.pid, sig) and p.poll() is None and time.time() - t0 < 30:
            time.sleep(0.001)
        time.sleep(delay)
        p.send_signal(sig)
    elif how == "rank1":   # rank 1 alone, as soon as it has its handlers (it may still be in MPI_Init)
        t0, target = time.time(), None
        while target is None and p.poll() is None and time.time() - t0 < 30:
            for child in subprocess.run(["pgrep", "-P", str(p.pid)], stdout=subprocess.PIPE, text=True).stdout.split():
                try:
                    with open(f"/proc/{child}/environ", "rb") as f:
                        if b"OMPI_COMM_WORLD_RANK=1\0" in f.read() + b"\0":
                            target = int(child)
                except OSError:
                    pass
        while target and not caught(target, sig) and p.poll() is None and time.time() - t0 < 30:
            time.sleep(0.001)
        assert target, (name, "rank 1 not found", p.poll())
        os.kill(target, sig)
    elif how == "writing":   # rank 0 says so just before it writes the training split
        while "writing synthetic domain" not in err:
            line = p.stderr.readline()
            assert line, (name, "ended before writing the synthetic data", p.wait(), err)
            err += line
        p.send_signal(sig)
    out, rest = p.communicate(timeout=300)
    err += rest
    signame = signal.Signals(sig).name
    assert p.returncode == 128 + sig, f"{name}: status {p.returncode}, expected {128 + sig} (negative: killed by the signal)\n{err[-600:]}"
    early = f"{signame} during startup: stopping before the first step" in err
    assert early or "stopping after this step" in err, f"{name}: the stop was not taken: {err[-600:]}"
    if how not in ("armed",):   # these must have come during startup
        assert early, f"{name}: {err[-600:]}"
    if early:
        assert f"stopped by {signame} during startup, before the first step" in out, f"{name}: {out[-600:]}"
        assert not os.path.exists(os.path.join(work, "latest")), f"{name}: a checkpoint was written"
    else:
        assert f"stopped by {signame} after iteration" in out, f"{name}: {out[-600:]}"
    r = subprocess.run([*launcher, binary, "train", *sets, *extra, "--set", f"run.work_dir={work}", "--resume", "auto"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert r.returncode == 0, f"{name}: --resume auto failed: {r.stdout[-600:]}"
    ref = os.path.join(tmp, reference, f"iter_{iters}.h5")
    assert same_weights(ref, os.path.join(work, f"iter_{iters}.h5")), f"{name}: resumed weights differ from {ref}"
    cut = re.search(r"stopped by \w+ after (\d+) of (\d+) samples", err)   # how early in the writing it landed
    print(f"{name}: status {p.returncode}, {'before the first step' if early else 'after a step'}, "
          f"{f'the writing cut at {cut[1]} of {cut[2]} images, ' if cut else ''}resumed bit-identical ({time.time() - t_case:.1f}s)")

def sweep_case(name, sig, how, jobs, delay=0.0):
    out = os.path.join(tmp, name)
    cmd = [binary, "experiment", "run", os.path.join(tmp, "exp.yaml"), "--out", out, "--jobs", jobs, "--quiet"]
    block = (lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {sig})) if how == "blocked" else None
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=block)
    if how == "armed":
        t0 = time.time()
        while not caught(p.pid, sig) and p.poll() is None and time.time() - t0 < 30:
            time.sleep(0.001)
        time.sleep(delay)
    p.send_signal(sig)
    out_text = p.communicate(timeout=300)[0]
    assert p.returncode == 128 + sig, f"{name}: status {p.returncode}, expected {128 + sig}\n{out_text[-600:]}"
    assert "stopped by a signal" in out_text, f"{name}: {out_text[-600:]}"
    for row in ("one", "two"):   # a row's training (--jobs 2) stopped as asked, not killed
        log = os.path.join(out, row, "train.log")
        text = open(log).read() if os.path.exists(log) else ""
        assert not text or "stopped by" in text, f"{name}: row {row}: {text[-600:]}"
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert r.returncode == 0 and "2 rows run, 0 skipped" in r.stdout, f"{name}: the next sweep: {r.stdout[-600:]}"
    print(f"{name}: status {p.returncode}, the next sweep ran both rows")

def twice(name, first, second):
    # A second SIGINT/SIGTERM/SIGHUP during startup ends the process at once. Both signals are
    # sent before the process can arm, held back by a blocked mask: arming delivers both, one
    # after the other, so the second always finds the first's request still standing. (Sent
    # while it wrote the synthetic data, the first used to end that at once and the run could
    # exit before the second arrived: killed by it, or not, by timing.)
    env = dict(os.environ, MV_SYNTH_CACHE=os.path.join(tmp, f"cache_{name}"))
    p = subprocess.Popen([binary, "train", *sets, "--set", "data.batch_per_rank=2", "--set", "data.synthetic.train_count=200",
                          "--set", f"run.work_dir={os.path.join(tmp, name)}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {first, second}))
    p.send_signal(first)
    p.send_signal(second)
    err = p.communicate(timeout=300)[1]
    taken = [s for s in (first, second) if f"{signal.Signals(s).name} during startup: stopping before the first step" in err]
    assert len(taken) == 1, (name, "expected one request taken during startup", p.returncode, err[-600:])
    killer = second if taken[0] == first else first
    assert p.returncode == -killer and "stopping at once" in err, (name, p.returncode, err[-600:])
    assert not os.path.exists(os.path.join(tmp, name, "latest")), (name, "a checkpoint was written")
    print(f"{name}: {signal.Signals(taken[0]).name} then {signal.Signals(killer).name} during startup: killed at once")

mode = os.environ["CASES"]
if mode == "sweep":
    sweep_case("sweep_blocked_TERM", signal.SIGTERM, "blocked", "1")
    sweep_case("sweep_jobs2_USR1", signal.SIGUSR1, "armed", "2", delay=0.05)
elif mode == "one":
    for s in ("USR1", "TERM"):
        case(f"blocked_{s}", SIGS[s], "blocked", extra=["--set", "data.batch_per_rank=2"])
        for d in (0.0, 0.05, 0.3):
            case(f"armed_{s}_{d}", SIGS[s], "armed", delay=d, reference="full_long", iters=40,
                 extra=["--set", "data.batch_per_rank=2", "--set", "schedule.max_iters=40", "--set", "run.ckpt_every=0"])
        case(f"writing_{s}", SIGS[s], "writing", cache=os.path.join(tmp, f"cache_{s}"), reference="full_big",
             extra=["--set", "data.batch_per_rank=2", *BIG])
    twice("twice_TERM_INT", signal.SIGTERM, signal.SIGINT)
    twice("twice_HUP_TERM", signal.SIGHUP, signal.SIGTERM)
else:
    launcher = os.environ["MPI2"].split("\x1f")
    extra = ["--set", "data.batch_per_rank=1", *BIG]
    case("mpi_writing_USR1", signal.SIGUSR1, "writing", cache=os.path.join(tmp, "cache_mpi"), launcher=launcher,
         reference="full_mpi", extra=extra)
    # An empty cache of its own: rank 1 waits in the startup's first collective while rank 0
    # writes the data. With the data already written, its startup after arming was MPI_Init and
    # the setup alone (0.2-0.5 s), and a loaded machine could land the signal after it.
    case("mpi_rank1_USR1", signal.SIGUSR1, "rank1", cache=os.path.join(tmp, "cache_rank1"), launcher=launcher,
         reference="full_mpi", extra=extra)
PY

CASES=one "$MV_PYTHON" "$TMP/cases.py" "$TMP" "$MV_BIN" $ITERS "${SETS[@]}" || fail "one rank"

# 5. `maskvim experiment run`, before it reads its file (held back by a blocked mask), and with
#    --jobs 2 while its `maskvim train` children start: it exits 128 + the signal, its children
#    stop as asked, and the next sweep runs both rows. The rows train 40 iterations: with 4, a
#    fast machine finished a row (0.1 s) before the stop reached it.
cat >"$TMP/exp.yaml" <<YAML
name: stop
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(source "$(dirname "$0")/experiment_common.sh"; tiny_sets 40 0 "synthetic:clear" 0)
source: clear
targets: []
rows:
  - {name: one}
  - {name: two, set: [run.seed=1]}
YAML
CASES=sweep "$MV_PYTHON" "$TMP/cases.py" "$TMP" "$MV_BIN" $ITERS || fail "sweep"

if command -v mpirun >/dev/null 2>&1 && grep -q "Built with MPI: yes" <<<"$("$MV_BIN" bench-allreduce --help)"; then
    source "$(dirname "$0")/mpi_common.sh"
    SAVED_TMP=$TMP
    mpi_setup train_stop_startup_mpi
    MPI_TMP=$TMP
    TMP=$SAVED_TMP
    export MV_COMM_TIMEOUT=60
    MPI2=(mpirun --oversubscribe --bind-to none -np 2 "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x MV_COMM_TIMEOUT -x OMP_NUM_THREADS=1)
    MV_SYNTH_CACHE="$TMP/cache_ref" timeout 300 "${MPI2[@]}" "$MV_BIN" train "${SETS[@]}" "${BIG[@]}" \
        --set data.batch_per_rank=1 --set run.work_dir="$TMP/full_mpi" >"$TMP/full_mpi.log" 2>&1 \
        || fail "uninterrupted 2-rank run: $(tail -3 "$TMP/full_mpi.log")"
    # mpirun is the process signalled (it forwards SIGUSR1 to both ranks).
    MPI2="$(IFS=$'\x1f'; echo "${MPI2[*]}")" CASES=mpi "$MV_PYTHON" "$TMP/cases.py" "$TMP" "$MV_BIN" $ITERS "${SETS[@]}" \
        || fail "two ranks"
    rm -rf "$MPI_TMP"
else
    echo "SKIP 4: maskvim is built without MPI (or mpirun is missing)"
fi
echo "PASS"
