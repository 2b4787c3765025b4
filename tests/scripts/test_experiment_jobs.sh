#!/usr/bin/env bash
# `maskvim experiment run --jobs 2`: two rows train at once as child processes, each writing
# ROW/train.log with OMP_NUM_THREADS split between them; both finish with their final mIoU in
# status.json and a one-line summary; running again runs nothing; a failing row does not stop
# the other and makes the exit status 1; SIGTERM to the sweep stops both children (no training
# process left behind), marks the rows interrupted, and a second sweep resumes and finishes them.
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
exp_setup experiment_jobs
export MV_SYNTH_CACHE="$TMP/synth_cache"   # fresh: rows at once must not race to write it
unset OMP_NUM_THREADS
write_exp() {   # write_exp FILE MAX_ITERS ROWS...
    local file=$1 iters=$2; shift 2
    cat >"$file" <<YAML
name: jobs
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets "$iters" 2 "synthetic:clear, synthetic:fog")
source: clear
targets: [fog]
rows:
YAML
    printf '  - %s\n' "$@" >>"$file"
}
passed=0

# 1. Two rows at once; each child sees OMP_NUM_THREADS = max(1, CPUs / 2) (the launcher
#    prints it into the row's train.log first).
write_exp "$TMP/exp.yaml" 3 "{name: ce, set: {mask.alpha1: 0, mask.alpha2: 0}}" "{name: all}"
"$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/a" --jobs 2 --launcher 'printenv OMP_NUM_THREADS;' \
    >"$TMP/a1.log" 2>&1 || fail "sweep failed: $(tail -5 "$TMP/a1.log")"
want=$(( $(nproc) / 2 )); [ "$want" -ge 1 ] || want=1
for r in ce all; do
    grep -q '"state": "finished"' "$TMP/a/$r/status.json" || fail "$r: $(cat "$TMP/a/$r/status.json")"
    grep -Eq '"final": \{"clear": [0-9.eE+-]+, "fog": [0-9.eE+-]+\}' "$TMP/a/$r/status.json" || fail "$r: no final mIoU"
    [ "$(head -1 "$TMP/a/$r/train.log")" = "$want" ] || fail "$r: OMP_NUM_THREADS $(head -1 "$TMP/a/$r/train.log"), expected $want"
    grep -q "eval iter 3" "$TMP/a/$r/train.log" || grep -q '"iter": 3' "$TMP/a/$r/status.json" || fail "$r: no training output in train.log"
    grep -Eq "row $r: finished in [0-9.]+ s: clear [0-9.]+, fog [0-9.]+ \| mean over targets [0-9.]+" "$TMP/a1.log" \
        || fail "no summary line for $r: $(cat "$TMP/a1.log")"
    grep -Eq "row $r: starting in .* \(output in .*/$r/train.log\)" "$TMP/a1.log" || fail "no start line for $r"
done
grep -q "2 rows run, 0 skipped (finished), 0 failed" "$TMP/a1.log" || fail "summary: $(tail -1 "$TMP/a1.log")"
# Both children ran at the same time: each started before the other finished.
s_all=$(grep -n "row all: starting" "$TMP/a1.log" | cut -d: -f1); f_ce=$(grep -n "row ce: finished in" "$TMP/a1.log" | cut -d: -f1)
[ "$s_all" -lt "$f_ce" ] || fail "rows did not overlap: $(cat "$TMP/a1.log")"
# A user's OMP_NUM_THREADS is kept.
rm -rf "$TMP/a/all"
OMP_NUM_THREADS=1 "$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/a" --jobs 2 --launcher 'printenv OMP_NUM_THREADS;' \
    >"$TMP/a1b.log" 2>&1 || fail "sweep failed: $(tail -5 "$TMP/a1b.log")"
[ "$(head -1 "$TMP/a/all/train.log")" = "1" ] || fail "user OMP_NUM_THREADS not kept"
passed=$((passed + 1))

# 2. Running again runs nothing.
"$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/a" --jobs 2 >"$TMP/a2.log" 2>&1 || fail "second sweep failed"
grep -q "0 rows run, 2 skipped" "$TMP/a2.log" || fail "second sweep ran something: $(cat "$TMP/a2.log")"
passed=$((passed + 1))

# 3. A failing row: the other still finishes, the exit status is 1, the error names the log.
write_exp "$TMP/fail.yaml" 3 '{name: broken, set: ["data.train=[/nonexistent/shards]"]}' "{name: fine}"
if "$MV_BIN" experiment run "$TMP/fail.yaml" --out "$TMP/f" --jobs 2 >"$TMP/f.log" 2>&1; then fail "a failing sweep exited 0"; fi
grep -q '"state": "failed", "error": "training exited with status 1' "$TMP/f/broken/status.json" || fail "broken: $(cat "$TMP/f/broken/status.json")"
grep -q "nonexistent" "$TMP/f/broken/train.log" || fail "the reason is not in broken/train.log"
grep -q '"state": "finished"' "$TMP/f/fine/status.json" || fail "the other row did not finish"
grep -q "1 row run, 0 skipped (finished), 1 failed" "$TMP/f.log" || fail "summary: $(tail -1 "$TMP/f.log")"
passed=$((passed + 1))

# 4. SIGTERM while both rows train: no trainer survives, rows are interrupted, then resumed.
write_exp "$TMP/long.yaml" 60 "{name: ce, set: {mask.alpha1: 0, mask.alpha2: 0}}" "{name: all}"
"$MV_BIN" experiment run "$TMP/long.yaml" --out "$TMP/s" --jobs 2 >"$TMP/s1.log" 2>&1 &
pid=$!
for _ in $(seq 3000); do
    [ -f "$TMP/s/ce/latest" ] && [ -f "$TMP/s/all/latest" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
done
[ -f "$TMP/s/ce/latest" ] && [ -f "$TMP/s/all/latest" ] || fail "rows did not start: $(cat "$TMP/s1.log")"
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 143 ] || fail "sweep exit status $rc after SIGTERM, expected 143: $(tail -3 "$TMP/s1.log")"
sleep 0.5
if pgrep -f "$TMP/s/" >/dev/null; then fail "training processes left: $(pgrep -af "$TMP/s/")"; fi
for r in ce all; do
    grep -q '"state": "interrupted"' "$TMP/s/$r/status.json" || fail "$r: $(cat "$TMP/s/$r/status.json")"
done
"$MV_BIN" experiment run "$TMP/long.yaml" --out "$TMP/s" --dry-run >"$TMP/sdry.log"
grep -Eq "^ce +resume" "$TMP/sdry.log" && grep -Eq "^all +resume" "$TMP/sdry.log" || fail "dry run after stop: $(cat "$TMP/sdry.log")"
"$MV_BIN" experiment run "$TMP/long.yaml" --out "$TMP/s" --jobs 2 >"$TMP/s2.log" 2>&1 || fail "resumed sweep failed: $(tail -5 "$TMP/s2.log")"
for r in ce all; do
    grep -q '"state": "finished"' "$TMP/s/$r/status.json" || fail "$r not finished after the restart"
    grep -Eq "resumed from .*iter_[0-9]+.h5" "$TMP/s/$r/train.log" || fail "$r did not resume"
done
"$MV_BIN" experiment run "$TMP/long.yaml" --out "$TMP/s" --jobs 2 >"$TMP/s3.log" 2>&1 || fail "third sweep failed"
grep -q "0 rows run, 2 skipped" "$TMP/s3.log" || fail "third sweep ran something: $(cat "$TMP/s3.log")"
passed=$((passed + 1))

rm -rf "$TMP"
echo "$passed passed, 0 failed"
