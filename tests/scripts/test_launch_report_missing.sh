#!/usr/bin/env bash
# `maskvim report FILE.yaml` over a sweep left half done: a row nobody ran is listed as not run
# (with the paper's numbers, no numbers of ours), a failed row's numbers say which iteration
# they come from, the finished row is complete, and the mean is never made from a partial row.
# A finished run trained with another configuration than its row gives now (the file was
# edited after it ran) is marked stale instead of passing its numbers off as the row's.
# No training: the run directories are written by hand as `experiment run` leaves them.
set -euo pipefail
: "${MV_BIN:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
fail() { echo "FAIL: $*" >&2; exit 1; }
TMP="$MV_TEST_TMP/launch_report_missing"
rm -rf "$TMP"
mkdir -p "$TMP/runs/done" "$TMP/runs/broke" "$TMP/runs/edited"
cat >"$TMP/t.yaml" <<YAML
name: t
title: "half done"
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
set: {schedule.max_iters: 40, schedule.warmup_iters: 1, "data.val": "[synthetic:clear, synthetic:fog]"}
source: clear
targets: [fog]
columns:
  - {domain: fog, label: M}
  - {domain: avg, label: Avg}
rows:
  - {name: done, paper: [50.0, 50.0]}
  - {name: broke, set: {mask.alpha1: 0}, paper: [40.0, 40.0]}
  - {name: never, set: {mask.alpha2: 0}, paper: [30.0, 30.0]}
  - {name: edited, set: {mask.alpha2: 0}, paper: [20.0, 20.0]}
YAML
# The resolved configurations as the sweep saved them (edited: trained with mask.alpha2 0.5).
base="$MV_SRC/experiments/base/maskvim-nano_synthetic.yaml"
common=(--set schedule.max_iters=40 --set schedule.warmup_iters=1 --set "data.val=[synthetic:clear, synthetic:fog]")
"$MV_BIN" config "$base" "${common[@]}" --set run.work_dir=somewhere/done --out "$TMP/runs/done/config.yaml"
"$MV_BIN" config "$base" "${common[@]}" --set mask.alpha1=0 --set run.log_every=7 --out "$TMP/runs/broke/config.yaml"
"$MV_BIN" config "$base" "${common[@]}" --set mask.alpha2=0.5 --out "$TMP/runs/edited/config.yaml"
echo '{"row": "edited", "state": "finished", "iter": 40, "final": {"clear": 9, "fog": 8}}' >"$TMP/runs/edited/status.json"
echo '{"row": "done", "state": "finished", "iter": 40, "final": {"clear": 21.5, "fog": 11.25}}' >"$TMP/runs/done/status.json"
echo '{"row": "broke", "state": "failed", "error": "training killed by signal 9"}' >"$TMP/runs/broke/status.json"
for d in clear fog; do
    echo "{\"type\": \"eval\", \"iter\": 20, \"domain\": \"$d\", \"metrics\": {\"mIoU\": 7.5}}"
done >"$TMP/runs/broke/metrics.jsonl"
"$MV_BIN" report "$TMP/t.yaml" --runs "$TMP/runs" --out "$TMP/out" >"$TMP/r.log" 2>&1 || fail "report: $(cat "$TMP/r.log")"
grep -q "4 runs (3 incomplete)" "$TMP/r.log" || fail "summary: $(cat "$TMP/r.log")"
grep -q "incomplete: edited (trained with another configuration than .*t.yaml gives now" "$TMP/r.log" \
    || fail "edited not marked stale: $(cat "$TMP/r.log")"
grep -q "^edited,stale,1," "$TMP/out/report.csv" || fail "csv: $(grep edited "$TMP/out/report.csv")"
grep -q "incomplete: never (not run" "$TMP/r.log" || fail "the row nobody ran is not listed: $(cat "$TMP/r.log")"
grep -q "incomplete: broke (.*state failed; numbers from iteration 20 of 40)" "$TMP/r.log" || fail "broke: $(cat "$TMP/r.log")"
md="$TMP/out/report.md"
grep -q "^| done | 21.50 | 11.25 (paper 50.00, -38.75) | 11.25 (paper 50.00, -38.75) |" "$md" || fail "done: $(grep '^| done' "$md")"
grep -q "^| never \* | — | — (paper 30.00) | — (paper 30.00) |" "$md" || fail "never: $(grep '^| never' "$md")"
grep -q "^- never: not run" "$md" || fail "never not in the incomplete list"
# rows in the file's order, the one nobody ran included
[ "$(grep -E '^\| (done|broke|never|edited)' "$md" | head -4 | cut -d' ' -f2 | tr '\n' ' ')" = "done broke never edited " ] \
    || fail "order: $(grep -E '^\| (done|broke|never|edited)' "$md")"
grep -q "^never,not run,1,,,,,30.0000,,,30.0000,$" "$TMP/out/report.csv" || fail "csv: $(cat "$TMP/out/report.csv")"
grep -q '"name": "never", "state": "not run", "incomplete": true' "$TMP/out/report.json" || fail "json: $(grep never "$TMP/out/report.json")"
echo "PASS: test_launch_report_missing"
