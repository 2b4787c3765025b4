#!/usr/bin/env bash
# `maskvim experiment run` against runs that did not happen as recorded: a status.json damaged
# after the fact (cut short, but still holding '"state": "finished"') was read by text search
# as finished, so the row was skipped for good while `maskvim report` refused the file; and a
# --launcher that exits 0 without training (here `echo`) had its rows recorded as finished with
# no results, skipped by every later sweep.
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
source "$(dirname "$0")/train_common.sh"
exp_setup experiment_damaged
{ echo "name: dmg"; tiny_sets 2 0 "synthetic:clear"; printf 'rows:\n  - {name: a}\n'; } >"$TMP/e.yaml"
"$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o" >"$TMP/1.log" 2>&1 || fail "sweep: $(tail -3 "$TMP/1.log")"
grep -q '"state": "finished"' "$TMP/o/a/status.json" || fail "row a: $(cat "$TMP/o/a/status.json")"

# 1. Cut short: the row runs again (resumes at its end) with a warning, and its status is whole again.
printf '{"row": "a", "state": "finished"' >"$TMP/o/a/status.json"
"$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o" >"$TMP/2.log" 2>&1 || fail "sweep over a damaged status: $(tail -3 "$TMP/2.log")"
grep -q "status.json: damaged" "$TMP/2.log" || fail "no warning about the damaged status.json: $(cat "$TMP/2.log")"
grep -q "1 row run, 0 skipped" "$TMP/2.log" || fail "the damaged row was skipped: $(tail -1 "$TMP/2.log")"
grep -Eq '"final": \{"clear": [0-9.eE+-]+\}' "$TMP/o/a/status.json" || fail "status not rewritten: $(cat "$TMP/o/a/status.json")"
"$MV_BIN" report "$TMP/e.yaml" --runs "$TMP/o" --out "$TMP/rep" >"$TMP/rep.log" 2>&1 || fail "report: $(cat "$TMP/rep.log")"

# 2. A launcher that trains nothing and exits 0: the row fails, saying so, and is retried later.
if "$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/l" --launcher echo >"$TMP/3.log" 2>&1; then
    fail "a launcher that did not train was taken as success: $(tail -3 "$TMP/3.log")"
fi
grep -q '"state": "failed"' "$TMP/l/a/status.json" || fail "row a: $(cat "$TMP/l/a/status.json")"
grep -q "did not train (check the launcher command)" "$TMP/3.log" || fail "message: $(cat "$TMP/3.log")"
"$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/l" --dry-run | grep -Eq "^a +run " || fail "the failed row is not run again"
echo "2 passed, 0 failed"
