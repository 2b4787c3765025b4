#!/usr/bin/env bash
# A sweep stopped by SIGTERM while a row trains through --launcher: the training still writes a
# checkpoint of the step it was in (the row's `latest` names the last iteration it logged) and
# nothing is left running.
# 1. A launcher shell that runs a command before maskvim (`true; maskvim train ...`: the shell
#    stays the sweep's child and dies of the stop signal at once): the sweep waits for the
#    training it started, not just for the shell.
# 2. `mpirun -np 2` (when MPI is built): mpirun answers SIGTERM by killing its ranks about a
#    second later, so the sweep sends SIGUSR1, which mpirun forwards; both ranks stop together
#    with a checkpoint. Skipped without MPI.
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
exp_setup experiment_stop_launcher
ROOT=$TMP
trap 'rm -rf "$ROOT"' EXIT

write_exp() {   # write_exp FILE: one row that would train for hours, no periodic checkpoint
    cat >"$1" <<YAML
name: stop
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets 1000000 0 "synthetic:clear" 1000000)
source: clear
targets: []
rows:
  - {name: a}
YAML
}

# stop_sweep LOG DIR LAUNCHER: starts the sweep, SIGTERMs it once the row has logged 3
# iterations, and checks the row's checkpoint, status and that no process is left.
stop_sweep() {
    local log=$1 dir=$2 launcher=$3
    "$MV_BIN" experiment run "$ROOT/exp.yaml" --out "$dir" --launcher "$launcher" >"$log" 2>&1 &
    local pid=$! n=0
    for _ in $(seq 3000); do
        n=$(grep -c '"type": "train"' "$dir/a/metrics.jsonl" 2>/dev/null || true)
        [ "${n:-0}" -ge 3 ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
    done
    [ "${n:-0}" -ge 3 ] || fail "the row did not train: $(tail -5 "$log")"
    kill -TERM $pid
    local rc=0
    wait $pid || rc=$?
    [ "$rc" = 143 ] || fail "sweep exit status $rc after SIGTERM, expected 143: $(tail -5 "$log")"
    local last
    last=$(grep '"type": "train"' "$dir/a/metrics.jsonl" | tail -1 | grep -o '"iter": [0-9]*' | grep -o '[0-9]*$')
    [ -f "$dir/a/latest" ] || fail "no checkpoint after the stop: $(tail -8 "$log")"
    [ "$(cat "$dir/a/latest")" = "iter_$last.h5" ] \
        || fail "latest is $(cat "$dir/a/latest"), not the stopped step iter_$last.h5: $(tail -8 "$log")"
    grep -q "stopped by SIGUSR1 after iteration $last, with its checkpoint" "$log" || fail "no stop line: $(tail -8 "$log")"
    grep -q '"state": "interrupted"' "$dir/a/status.json" || fail "status: $(cat "$dir/a/status.json")"
    sleep 0.3
    if pgrep -f "$dir/" >/dev/null; then fail "processes left: $(pgrep -af "$dir/")"; fi
    echo "stopped at iteration $last with its checkpoint ($launcher)"
}

write_exp "$ROOT/exp.yaml"
stop_sweep "$ROOT/shell.log" "$ROOT/shell" "true;"

source "$(dirname "$0")/mpi_common.sh"
mpi_setup experiment_stop_launcher_mpi   # exits 0 (SKIP) without MPI
trap 'rm -rf "$ROOT" "$TMP"' EXIT
stop_sweep "$ROOT/mpi.log" "$ROOT/mpi" "mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 ${MPI_ENV[*]}"
rm -rf "$TMP"
echo "2 passed, 0 failed"
