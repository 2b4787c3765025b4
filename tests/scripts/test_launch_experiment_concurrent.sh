#!/usr/bin/env bash
# A sweep killed with SIGKILL while something its row started is still running (here a
# launcher's grandchild that outlives the shell the sweep started) keeps that row locked: a
# second sweep started at once leaves the row alone (no second trainer in the same directory),
# says so, does not count it as failed and exits 1; once the straggler is gone, the next sweep
# trains and finishes the row. Also: two sweeps started together on a fresh directory and a
# fresh synthetic-data cache share the rows and write the data once, and no row fails.
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
export OMP_NUM_THREADS=1   # two sweeps train at once: one thread each on the two cores
exp_setup launch_experiment_concurrent
export MV_SYNTH_CACHE="$TMP/synth_cache"
cat >"$TMP/exp.yaml" <<YAML
name: orphan
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets 2 2 "synthetic:clear")
source: clear
targets: [clear]
rows:
  - {name: a, paper: [1.0, 1.0]}
YAML
sweep="" orphan=""
# On the way out (a failed check included): the first sweep, if it still runs, and the straggler,
# which sleeps far longer than the test needs it (it must outlive check 2 on a slow machine).
cleanup() {
    [ -z "$sweep" ] || kill -9 "$sweep" 2>/dev/null || true
    [ -n "$orphan" ] || orphan=$(cat "$TMP/straggler.pid" 2>/dev/null || true)
    [ -z "$orphan" ] || kill "$orphan" 2>/dev/null || true
}
trap cleanup EXIT

# 1. The launcher's shell starts a grandchild (which records its pid, then sleeps) before the
#    trainer; the sweep is killed with SIGKILL meanwhile. The shell dies with the sweep
#    (PR_SET_PDEATHSIG), the grandchild lives on. The sweep writes the synthetic data into a
#    fresh cache first: up to 60 s for the launcher to start (sanitizers, a loaded machine).
"$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/o" \
    --launcher "sh -c 'echo \$\$ > $TMP/straggler.pid; exec sleep 600';" >"$TMP/s1.log" 2>&1 &
sweep=$!
for _ in $(seq 1200); do
    [ -s "$TMP/straggler.pid" ] && break
    kill -0 "$sweep" 2>/dev/null || fail "the sweep ended before its launcher started: $(cat "$TMP/s1.log")"
    sleep 0.05
done
[ -s "$TMP/straggler.pid" ] || fail "the launcher did not start within 60 s: $(cat "$TMP/s1.log")"
orphan=$(cat "$TMP/straggler.pid")
kill -9 "$sweep"
wait "$sweep" 2>/dev/null || true
sweep=""
kill -0 "$orphan" || fail "the straggler died with the sweep; the test needs it alive"

# 2. A second sweep at once: the row is still held, so nothing trains there.
if "$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/o" >"$TMP/s2.log" 2>&1; then
    fail "second sweep exited 0 while the row was held: $(cat "$TMP/s2.log")"
fi
grep -q "row a is being run by another process" "$TMP/s2.log" || fail "no busy message: $(cat "$TMP/s2.log")"
grep -q "0 rows run, 0 skipped (finished), 0 failed, 1 being run by another process" "$TMP/s2.log" \
    || fail "summary: $(tail -1 "$TMP/s2.log")"
[ ! -e "$TMP/o/a/metrics.jsonl" ] || fail "a second trainer ran in the held row's directory"
grep -q '"state": "running"' "$TMP/o/a/status.json" || fail "status changed: $(cat "$TMP/o/a/status.json")"

# 3. The straggler gone, the row trains and finishes.
kill "$orphan"
# gone, or a zombie nobody reaps (its files, the lock among them, are closed then)
for _ in $(seq 600); do
    st=$(ps -o stat= -p "$orphan" 2>/dev/null || true)
    case "$st" in ""|Z*) break ;; esac
    sleep 0.05
done
case "$st" in ""|Z*) ;; *) fail "the straggler $orphan still runs 30 s after SIGTERM (state $st)" ;; esac
rm -f "$TMP/straggler.pid"   # its pid may be reused: cleanup must not kill it again
orphan=""
"$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/o" >"$TMP/s3.log" 2>&1 || fail "third sweep: $(tail -5 "$TMP/s3.log")"
grep -q '"state": "finished"' "$TMP/o/a/status.json" || fail "row a not finished: $(cat "$TMP/o/a/status.json")"
grep -q "1 row run, 0 skipped (finished), 0 failed; results" "$TMP/s3.log" || fail "summary: $(tail -1 "$TMP/s3.log")"

# 4. Two sweeps started together on a fresh directory and a fresh synthetic-data cache: each
#    trains the rows the other does not hold, the synthetic data is written once (the second
#    waits for the first instead of both writing the same shards), no row fails, paper.json
#    is whole and no temporary file is left.
export MV_SYNTH_CACHE="$TMP/synth_cache2"
cat >"$TMP/two.yaml" <<YAML
name: two
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets 2 1 "synthetic:clear")
  - data.synthetic.train_count=96
source: clear
targets: [clear]
rows:
  - {name: a, paper: [1.0, 1.0]}
  - {name: b, set: {mask.alpha1: 0}, paper: [2.0, 2.0]}
YAML
"$MV_BIN" experiment run "$TMP/two.yaml" --out "$TMP/p" >"$TMP/p1.log" 2>&1 & p1=$!
"$MV_BIN" experiment run "$TMP/two.yaml" --out "$TMP/p" >"$TMP/p2.log" 2>&1 & p2=$!
wait "$p1" || true
wait "$p2" || true
for l in p1 p2; do
    grep -q " 0 failed" "$TMP/$l.log" || fail "a row failed in sweep $l: $(cat "$TMP/$l.log")"
done
for r in a b; do
    grep -q '"state": "finished"' "$TMP/p/$r/status.json" || fail "row $r: $(cat "$TMP/p/$r/status.json")"
done
[ "$(cat "$TMP/p1.log" "$TMP/p2.log" | grep -c "writing synthetic domain 'clear' (train")" = 1 ] \
    || fail "the training split was written more than once: $(cat "$TMP/p1.log" "$TMP/p2.log")"
grep -q '"b": {"clear": 2' "$TMP/p/paper.json" || fail "paper.json: $(cat "$TMP/p/paper.json")"
[ -z "$(ls -A "$TMP/p" | grep tmp)" ] || fail "temporary files left: $(ls -A "$TMP/p")"
echo "PASS: test_launch_experiment_concurrent"
