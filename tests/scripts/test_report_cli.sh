#!/usr/bin/env bash
# maskvim report on two tiny real runs (one with mask.alpha1=0): report.md/.csv/.html hold both
# rows, every domain and the paper numbers; the HTML references nothing outside itself; a run
# still training is reported as incomplete; headless Chromium renders the page when installed.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
TMP="$MV_TEST_TMP/report"; rm -rf "$TMP"; mkdir -p "$TMP/runs"
fail() { echo "FAIL: $*"; exit 1; }
SETS=("${TRAIN_SETS[@]}" --set schedule.max_iters=4 --set run.log_every=2 --set run.eval_every=4
      --set data.val=[synthetic:clear,synthetic:fog,synthetic:rain])
"$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/runs/rowA" >"$TMP/trainA.log"
"$MV_BIN" train "${SETS[@]}" --set mask.alpha1=0 --set run.work_dir="$TMP/runs/rowB" >"$TMP/trainB.log"
cat >"$TMP/paper.json" <<'JSON'
{"rowA": {"clear": 50.0, "fog": 40.0, "mean": 41.5}, "rowB": {"rain": 30.0}}
JSON
"$MV_BIN" report "$TMP/runs" --out "$TMP/out" --paper "$TMP/paper.json" --title "Two rows" >"$TMP/report.log"
for f in report.md report.csv report.html; do [ -s "$TMP/out/$f" ] || fail "$f missing or empty"; done
grep -q "2 runs (0 incomplete), 3 domains, sweep over mask.alpha1" "$TMP/report.log" || fail "summary: $(cat "$TMP/report.log")"
grep -q "^| rowA | .* (paper 50.00, " "$TMP/out/report.md" || fail "rowA row without the paper number: $(cat "$TMP/out/report.md")"
grep -q "^| rowB |" "$TMP/out/report.md" || fail "no rowB row"
grep -q "^| road |" "$TMP/out/report.md" || fail "no per-class IoU"
if grep -q "http\|src=" "$TMP/out/report.html"; then fail "the HTML references something outside itself"; fi
[ "$(grep -c "<svg" "$TMP/out/report.html")" -ge 5 ] || fail "expected at least 5 charts (bars, sweep, 2 x curves)"
"$MV_PYTHON" - "$TMP/out/report.csv" "$TMP/runs/rowA/metrics.jsonl" <<'PY'
import csv, json, sys
rows = {r["run"]: r for r in csv.DictReader(open(sys.argv[1]))}
assert set(rows) == {"rowA", "rowB"}, rows.keys()
a = rows["rowA"]
last = {}
for line in open(sys.argv[2]):
    rec = json.loads(line)
    if rec["type"] == "eval":
        last[rec["domain"]] = rec["metrics"]["mIoU"]
assert set(last) == {"clear", "fog", "rain"}, last
for d, v in last.items():
    assert abs(float(a[d]) - v) < 1e-3, (d, a[d], v)
mean = (last["fog"] + last["rain"]) / 2
assert abs(float(a["mean"]) - mean) < 1e-3, (a["mean"], mean)
assert abs(float(a["diff_mean"]) - (mean - 41.5)) < 1e-3
assert a["paper_rain"] == "" and rows["rowB"]["paper_rain"] == "30.0000"
assert rows["rowA"]["mask.alpha1"] == "1" and rows["rowB"]["mask.alpha1"] == "0"
print("report csv ok")
PY
# a run still training: no evaluation yet, a status.json saying so
mkdir -p "$TMP/runs/rowC"
head -1 "$TMP/runs/rowA/metrics.jsonl" >"$TMP/runs/rowC/metrics.jsonl"
echo '{"state": "running"}' >"$TMP/runs/rowC/status.json"
"$MV_BIN" report "$TMP/runs" --out "$TMP/out2" >"$TMP/report2.log"
grep -q "incomplete: rowC (state running; no evaluation yet)" "$TMP/report2.log" || fail "rowC not reported incomplete: $(cat "$TMP/report2.log")"
grep -q "^| rowC \* | — | — | — | — |" "$TMP/out2/report.md" || fail "rowC cells not marked missing: $(grep rowC "$TMP/out2/report.md")"
# bad input is refused with the file and line
printf '{"type": "train", "iter": 1}\n{"type": oops}\n{"type": "train"}\n' >"$TMP/runs/rowC/metrics.jsonl"
if "$MV_BIN" report "$TMP/runs" --out "$TMP/out3" >"$TMP/bad.log" 2>&1; then fail "corrupt metrics.jsonl accepted"; fi
grep -q "rowC/metrics.jsonl:2" "$TMP/bad.log" || fail "the error does not name file:line: $(cat "$TMP/bad.log")"
if [ -x /usr/bin/chromium ]; then
    timeout 120 /usr/bin/chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1250,2400 --screenshot="$TMP/report.png" "file://$TMP/out/report.html" >"$TMP/chromium.log" 2>&1 || true
    [ -s "$TMP/report.png" ] || fail "chromium made no screenshot: $(tail -5 "$TMP/chromium.log")"
    echo "screenshot: $TMP/report.png ($(stat -c %s "$TMP/report.png") bytes)"
else
    echo "SKIP (screenshot only): /usr/bin/chromium is not installed, the HTML was not rendered"
fi
echo "report ok"
