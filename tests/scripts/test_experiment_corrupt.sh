#!/usr/bin/env bash
# An experiment with `corruptions:` (the paper's Table 2): after training, each row's final
# checkpoint is evaluated on the source domain under every corruption and severity with
# `maskvim eval`; status.json's "final" gets one mIoU per corruption (the mean over the
# severities of ROW/corruptions.json), in this process (one row) and with --jobs (child
# processes); `maskvim report FILE` puts the corruptions in the file's columns; `maskvim eval`
# reads --severities and --corruptions strictly; a finished row is evaluated again when
# `source:` changes.
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
: "${MV_PYTHON:?}"
exp_setup experiment_corrupt
export MV_SYNTH_CACHE="$MV_TEST_TMP/synth_cache"

cat >"$TMP/t2.yaml" <<YAML
name: t2
title: "Test: Table 2 in small"
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets 2 0 "synthetic:clear")
source: clear
corruptions: [gaussian_noise, brightness]
severities: [1, 5]
columns:
  - {domain: gaussian_noise, label: Gauss-noise}
  - {domain: brightness, label: Bright}
  - {domain: avg, label: Avg}
rows:
  - {name: a, paper: [14.9, 75.0, 45.8]}
  - {name: b, set: {mask.alpha1: 0}}
YAML
passed=0
check_row() {   # check_row ROW: final per corruption = mean over severities of corruptions.json
    "$MV_PYTHON" - "$TMP/out/$1/status.json" "$TMP/out/$1/corruptions.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1])); ev = json.load(open(sys.argv[2]))
assert st["state"] == "finished", st
fin = st["final"]
assert set(fin) == {"clear", "gaussian_noise", "brightness"}, fin
for c in ("gaussian_noise", "brightness"):
    vals = {r["severity"]: r["metrics"]["mIoU"] for r in ev["results"] if r["corruption"] == c}
    assert set(vals) == {1, 5}, (c, vals)
    mean = (vals[1] + vals[5]) / 2
    assert abs(fin[c] - mean) < 1e-3, (c, fin[c], mean)
print("corruption results ok:", fin)
PY
}

# 1. One row in this process: training, then `maskvim eval --corruptions` on its checkpoint.
"$MV_BIN" experiment run "$TMP/t2.yaml" --out "$TMP/out" --only a --quiet >"$TMP/a.log" 2>&1 || fail "row a: $(tail -5 "$TMP/a.log")"
check_row a >/dev/null || fail "row a results"
# The row's line: each corruption (mean over the severities), then the targets' mean (here the two
# corruptions) under its own name.
line=$(grep -E "row a: finished in [0-9.]+ s: clear [0-9.]+ \| mean over 2 severities: gaussian_noise [0-9.]+, brightness [0-9.]+ \| mean over targets [0-9.]+$" "$TMP/a.log") \
    || fail "summary line: $(cat "$TMP/a.log")"
"$MV_PYTHON" -c '
import re, sys
g, b, m = map(float, re.search(r"gaussian_noise ([0-9.]+), brightness ([0-9.]+) \| mean over targets ([0-9.]+)", sys.argv[1]).groups())
assert abs((g + b) / 2 - m) < 0.006, (g, b, m)' "$line" || fail "the targets' mean is not that of the corruptions: $line"
grep -q "clear/brightness/5" "$TMP/a.log" || fail "eval output not shown"
passed=$((passed + 1))

# 2. The other row as a child process (--jobs 2): the evaluation follows in its train.log.
"$MV_BIN" experiment run "$TMP/t2.yaml" --out "$TMP/out" --jobs 2 >"$TMP/b.log" 2>&1 || fail "row b: $(tail -5 "$TMP/b.log")"
grep -q "1 row run, 1 skipped" "$TMP/b.log" || fail "summary: $(tail -1 "$TMP/b.log")"
check_row b >/dev/null || fail "row b results"
grep -q "clear/gaussian_noise/1" "$TMP/out/b/train.log" || fail "eval output not in train.log"
passed=$((passed + 1))

# 3. A missing checkpoint makes the evaluation, hence the row, fail (and it is retried later).
rm -rf "$TMP/out/b"
mkdir -p "$TMP/out/b"
if "$MV_BIN" experiment run "$TMP/t2.yaml" --out "$TMP/out" --only b --jobs 2 --launcher 'rm -f '"$TMP"'/out/b/iter_2.h5;' \
    >"$TMP/c.log" 2>&1; then fail "row without checkpoint accepted"; fi
grep -q '"state": "failed", "error": "corruption evaluation exited with status 1' "$TMP/out/b/status.json" || fail "b: $(cat "$TMP/out/b/status.json")"
passed=$((passed + 1))

# 4. The report from the file: the corruptions are columns, with the paper's numbers.
"$MV_BIN" report "$TMP/t2.yaml" --runs "$TMP/out" --out "$TMP/rep" >"$TMP/rep.log" || fail "report: $(cat "$TMP/rep.log")"
grep -q "^| run | clear (source) | gaussian_noise (Gauss-noise) | brightness (Bright) | Avg |" "$TMP/rep/report.md" || fail "columns: $(grep '^| run' "$TMP/rep/report.md")"
grep -q "^| a | [0-9.]* | [0-9.]* (paper 14.90, " "$TMP/rep/report.md" || fail "row a: $(grep '^| a ' "$TMP/rep/report.md")"
passed=$((passed + 1))

# 5. Bad corruption sections are refused before anything runs.
sed 's/gaussian_noise, brightness\]/gaussian_noise, nosuch]/' "$TMP/t2.yaml" >"$TMP/bad.yaml"
if "$MV_BIN" experiment run "$TMP/bad.yaml" --dry-run >"$TMP/bad.log" 2>&1; then fail "unknown corruption accepted"; fi
grep -q "bad.yaml:[0-9]*:[0-9]*: corruptions: .*nosuch" "$TMP/bad.log" || fail "message: $(cat "$TMP/bad.log")"
sed 's/severities: \[1, 5\]/severities: [0, 5]/' "$TMP/t2.yaml" >"$TMP/bad2.yaml"
if "$MV_BIN" experiment run "$TMP/bad2.yaml" --dry-run >"$TMP/bad2.log" 2>&1; then fail "severity 0 accepted"; fi
grep -q "severities: a severity is 1, 2, 3, 4 or 5" "$TMP/bad2.log" || fail "message: $(cat "$TMP/bad2.log")"
passed=$((passed + 1))

# 6. `maskvim eval --severities` takes ranges inside lists ("1-2,5" is three severities, not
#    the range 1-2 with ",5" dropped), and refuses what it cannot read instead of cutting it
#    short; an empty corruption or severity list is an error, not a silent clean-only run.
ev() { "$MV_BIN" eval "$TMP/out/a/config.yaml" --checkpoint "$TMP/out/a/iter_2.h5" --targets clear "$@"; }
ev --corruptions brightness --severities 1-2,5 --json "$TMP/sev.json" >"$TMP/sev.log" 2>&1 || fail "eval 1-2,5: $(tail -3 "$TMP/sev.log")"
"$MV_PYTHON" - "$TMP/sev.json" <<'PY' || fail "severities of 1-2,5: $(cat "$TMP/sev.json")"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert sorted(x["severity"] for x in r if x["corruption"] == "brightness") == [1, 2, 5], r
PY
# A list that does not parse is a usage error (exit 2, as in `maskvim data corrupt`), not a
# failed evaluation (1); an empty item is refused in either list.
for bad in "2-4junk" "1-3,9" "" "0" "1," "1,,2"; do
    st=0; ev --corruptions brightness --severities "$bad" >"$TMP/sevbad.log" 2>&1 || st=$?
    [ "$st" = 2 ] || fail "--severities '$bad': exit $st, not 2: $(cat "$TMP/sevbad.log")"
    grep -q -- "--severities '$bad'" "$TMP/sevbad.log" || fail "message for '$bad': $(cat "$TMP/sevbad.log")"
done
for bad in "," "brightness,,fog" "fog," ",,"; do
    st=0; ev --corruptions "$bad" >"$TMP/corbad.log" 2>&1 || st=$?
    [ "$st" = 2 ] || fail "--corruptions '$bad': exit $st, not 2: $(cat "$TMP/corbad.log")"
    grep -q -- "--corruptions '$bad'" "$TMP/corbad.log" || fail "message for '$bad': $(cat "$TMP/corbad.log")"
done
if ev --severities 1-5 >"$TMP/sevonly.log" 2>&1; then fail "--severities without --corruptions accepted"; fi
grep -q -- "--severities needs --corruptions" "$TMP/sevonly.log" || fail "message for --severities alone: $(cat "$TMP/sevonly.log")"
passed=$((passed + 1))

# 7. `source:` edited after a row finished: its corruptions.json is of the old domain (each
#    result names it), so the row is evaluated again on the new source, not trained again, and
#    not skipped with the old domain's numbers under the new name. (data.val holds both domains
#    from the start: a changed data.val is another training.)
cat >"$TMP/t2s.yaml" <<YAML
name: t2s
$(tiny_sets 2 0 "synthetic:clear,synthetic:dusk" 0)
source: clear
corruptions: [brightness]
severities: [1]
rows:
  - {name: a}
YAML
sed 's/^source: clear$/source: dusk/' "$TMP/t2s.yaml" >"$TMP/t2s_dusk.yaml"
domains() {   # domains CORRUPTIONS_JSON DOMAIN: every result (clean pass included) is of DOMAIN
    "$MV_PYTHON" - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert len(r) == 2 and all(x["domain"] == sys.argv[2] for x in r), r
PY
}
"$MV_BIN" experiment run "$TMP/t2s.yaml" --out "$TMP/outs" --quiet >"$TMP/s1.log" 2>&1 || fail "t2s: $(tail -5 "$TMP/s1.log")"
domains "$TMP/outs/a/corruptions.json" clear || fail "t2s: not evaluated on clear"
"$MV_BIN" experiment run "$TMP/t2s_dusk.yaml" --out "$TMP/outs" --dry-run >"$TMP/s2d.log" 2>&1 || fail "dry-run: $(cat "$TMP/s2d.log")"
grep -q "^a  .*evaluate again (source changed)" "$TMP/s2d.log" || fail "dry-run (source): $(cat "$TMP/s2d.log")"
# Until then the report does not give clear's numbers as dusk's: it marks the row.
"$MV_BIN" report "$TMP/t2s_dusk.yaml" --runs "$TMP/outs" --out "$TMP/reps" >"$TMP/reps.log" 2>&1 || fail "report: $(cat "$TMP/reps.log")"
grep -q "evaluated on another source domain than .*t2s_dusk.yaml gives now" "$TMP/reps/report.md" || fail "report: $(cat "$TMP/reps/report.md")"
"$MV_BIN" experiment run "$TMP/t2s_dusk.yaml" --out "$TMP/outs" >"$TMP/s2.log" 2>&1 || fail "source dusk: $(tail -5 "$TMP/s2.log")"
grep -q "corruptions.json is of another domain than .*t2s_dusk.yaml asks for (source: dusk): evaluating it again" \
    "$TMP/s2.log" || fail "no re-evaluation for the new source: $(cat "$TMP/s2.log")"
domains "$TMP/outs/a/corruptions.json" dusk || fail "not evaluated again on dusk: $(cat "$TMP/outs/a/corruptions.json")"
grep -q '"state": "finished"' "$TMP/outs/a/status.json" || fail "status: $(cat "$TMP/outs/a/status.json")"
"$MV_BIN" experiment run "$TMP/t2s_dusk.yaml" --out "$TMP/outs" --dry-run >"$TMP/s3d.log" 2>&1 || fail "dry-run: $(cat "$TMP/s3d.log")"
grep -q "^a  .*skip (finished)" "$TMP/s3d.log" || fail "evaluated on dusk, still not done: $(cat "$TMP/s3d.log")"
passed=$((passed + 1))

rm -rf "$TMP"
echo "$passed passed, 0 failed"
