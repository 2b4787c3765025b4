#!/usr/bin/env bash
# A sweep whose data.val holds a split without a labelled pixel (every label 255: its mIoU is
# undefined, `null` in metrics.jsonl) and a domain that is not a target:
# 1. the row's status.json records that domain's final mIoU as null (not 0), its line prints
#    '-' for it and for the mean over targets (not 0.00, not nan);
# 2. the report from the experiment file shows '—' for the cell and for Avg;
# 3. the report's Avg is the mean over the file's `targets:`, the mean the sweep prints, not
#    over every evaluated domain but the source (here: dusk, evaluated but not a target).
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
: "${MV_PYTHON:?}"
exp_setup experiment_undefined
export MV_SYNTH_CACHE="$MV_TEST_TMP/synth_cache"

# A Cityscapes split of two images whose label ids are all 0 (unlabeled: 255 after conversion).
"$MV_PYTHON" - "$TMP" <<'PY'
import os, sys
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import unlabelled_cityscapes
unlabelled_cityscapes(sys.argv[1])
PY
"$MV_BIN" data convert --dataset cityscapes --root "$TMP/cs" --split val --out "$TMP/blank" --workers 1 \
    >"$TMP/convert.log" 2>&1 || fail "convert: $(tail -3 "$TMP/convert.log")"

# exp_file TARGETS: the same rows (so the same runs) with another `targets:`.
exp_file() {
    cat <<YAML
name: undefined
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets 2 0 "synthetic:clear, synthetic:fog, synthetic:dusk, $TMP/blank" 0)
source: clear
targets: [$1]
rows:
  - {name: r}
YAML
}
exp_file "fog, blank" >"$TMP/blank_target.yaml"
exp_file "fog" >"$TMP/fog_target.yaml"
passed=0

# 1. The sweep: null in status.json, '-' on the row line.
"$MV_BIN" experiment run "$TMP/blank_target.yaml" --out "$TMP/runs" --quiet >"$TMP/run.log" 2>&1 ||
    fail "sweep failed: $(tail -5 "$TMP/run.log")"
grep -q '"mIoU": null' "$TMP/runs/r/metrics.jsonl" || fail "the blank split has an mIoU: $(grep blank "$TMP/runs/r/metrics.jsonl")"
grep -Eq '"final": \{"clear": [0-9.eE+-]+, "fog": [0-9.eE+-]+, "dusk": [0-9.eE+-]+, "blank": null\}' "$TMP/runs/r/status.json" ||
    fail "status.json: $(cat "$TMP/runs/r/status.json")"
grep -Eq "row r: finished in [0-9.]+ s: clear [0-9.]+, fog [0-9.]+, dusk [0-9.]+, blank - \| mean over targets -$" \
    "$TMP/run.log" || fail "row line: $(grep "row r:" "$TMP/run.log")"
! grep -qw "nan" "$TMP/run.log" || fail "nan printed: $(grep -w nan "$TMP/run.log")"
passed=$((passed + 1))

# 2. The report from the file: '—' for blank and for Avg (a mean over an undefined target).
"$MV_BIN" report "$TMP/blank_target.yaml" --runs "$TMP/runs" --out "$TMP/rep1" >"$TMP/rep1.log" 2>&1 ||
    fail "report: $(cat "$TMP/rep1.log")"
grep -Eq "^\| r \| [0-9.]+ \| [0-9.]+ \| — \| [0-9.]+ \| — \|$" "$TMP/rep1/report.md" ||
    fail "report row: $(grep "^| r" "$TMP/rep1/report.md")"
grep -q "averages the targets (fog, blank)" "$TMP/rep1/report.md" || fail "legend: $(grep averages "$TMP/rep1/report.md")"
passed=$((passed + 1))

# 3. Targets [fog] only: Avg is fog's mIoU (what the sweep's line gives as the mean over
#    targets), not the mean of fog and dusk; dusk's role is "other". The runs are the same
#    (targets do not change what trains), so none is stale.
"$MV_BIN" report "$TMP/fog_target.yaml" --runs "$TMP/runs" --out "$TMP/rep2" >"$TMP/rep2.log" 2>&1 ||
    fail "report: $(cat "$TMP/rep2.log")"
grep -q "1 runs (0 incomplete)" "$TMP/rep2.log" || fail "report: $(cat "$TMP/rep2.log")"
"$MV_PYTHON" - "$TMP/rep2/report.json" "$TMP/runs/r/status.json" <<'PY' || fail "report.json: $(cat "$TMP/rep2/report.json")"
import json, sys
rep, st = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
cells = rep["runs"][0]["cells"]
fog = st["final"]["fog"]
assert abs(cells["mean"]["ours"] - fog) < 1e-3, (cells["mean"], fog)
roles = {c["domain"]: c["role"] for c in rep["columns"]}
assert roles == {"clear": "source", "fog": "target", "dusk": "other", "blank": "other", "mean": "mean"}, roles
PY
grep -q "averages the targets (fog)" "$TMP/rep2/report.md" || fail "legend: $(grep averages "$TMP/rep2/report.md")"
passed=$((passed + 1))

rm -rf "$TMP"
echo "$passed passed, 0 failed"
