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
# The experiment-file route: title, columns (labels, order), row order and paper numbers come
# from the file; the runs directory from --runs or, by default, runs/<name> as `experiment run`.
# The file's rows resolve to the configurations the runs were trained with (a run that does
# not is marked stale: docs/reports.md).
cat >"$TMP/table.yaml" <<YAML
name: two_rows
title: "Table X: from the experiment file"
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
set:
$(for ((i = 0; i < ${#SETS[@]}; i++)); do [ "${SETS[i]}" = --set ] && echo "  - \"${SETS[i+1]}\""; done)
source: clear
targets: [rain, fog]
columns: [{domain: rain, label: G}, {domain: fog, label: M}, {domain: avg, label: Avg}]
rows:
  - {name: rowB, set: {mask.alpha1: 0}, paper: [30.0, 40.0, 35.0]}
  - {name: rowA, paper: {M: 44.5}}
YAML
"$MV_BIN" report "$TMP/table.yaml" --runs "$TMP/runs" --out "$TMP/outf" >"$TMP/reportf.log" || fail "report FILE: $(cat "$TMP/reportf.log")"
grep -q "^# Table X: from the experiment file" "$TMP/outf/report.md" || fail "title not from the file"
grep -q "^| run | clear (source) | rain (G) | fog (M) | Avg |" "$TMP/outf/report.md" || fail "columns: $(grep '^| run' "$TMP/outf/report.md")"
# rows in file order (rowB first), paper numbers per column label and avg
head -12 "$TMP/outf/report.md" | grep -n "^| row" | head -1 | grep -q "rowB" || fail "row order: $(grep '^| row' "$TMP/outf/report.md")"
grep -q "^| rowB | [0-9.]* | [0-9.]* (paper 30.00, [-+][0-9.]*) | [0-9.]* (paper 40.00, [-+][0-9.]*) | [0-9.]* (paper 35.00, [-+][0-9.]*) |" "$TMP/outf/report.md" \
    || fail "rowB paper numbers: $(grep '^| rowB' "$TMP/outf/report.md")"
grep -q "^| rowA | [0-9.]* | [0-9.]* | [0-9.]* (paper 44.50, " "$TMP/outf/report.md" || fail "rowA paper: $(grep '^| rowA' "$TMP/outf/report.md")"
grep -q "<th>rain (G)</th>" "$TMP/outf/report.html" || fail "HTML header without the label"
"$MV_PYTHON" - "$TMP/outf/report.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["run"] for r in rows] == ["rowB", "rowA"], [r["run"] for r in rows]
b = rows[0]
assert float(b["paper_rain"]) == 30.0 and float(b["paper_fog"]) == 40.0 and float(b["paper_mean"]) == 35.0, b
mean = (float(b["rain"]) + float(b["fog"])) / 2
assert abs(float(b["mean"]) - mean) < 1e-3, (b["mean"], mean)
assert rows[1]["paper_rain"] == "" and float(rows[1]["paper_fog"]) == 44.5
print("report from the experiment file: csv ok")
PY
# default runs directory: runs/<name> under the working directory
mkdir -p "$TMP/cwd/runs"; ln -s "$TMP/runs" "$TMP/cwd/runs/two_rows"
(cd "$TMP/cwd" && "$MV_BIN" report "$TMP/table.yaml" --out "$TMP/outg" >"$TMP/reportg.log") || fail "report FILE (default runs): $(cat "$TMP/reportg.log")"
grep -q "runs/two_rows: 2 runs" "$TMP/reportg.log" || fail "default runs dir: $(cat "$TMP/reportg.log")"
cmp -s "$TMP/outf/report.md" "$TMP/outg/report.md" || fail "--runs and the default runs dir differ"
if "$MV_BIN" report "$TMP/table.yaml" --runs "$TMP/nonexistent" --out "$TMP/outh" >"$TMP/bad2.log" 2>&1; then fail "missing runs dir accepted"; fi
grep -q "nonexistent" "$TMP/bad2.log" || fail "missing runs dir message: $(cat "$TMP/bad2.log")"
if "$MV_BIN" report "$TMP/runs" --runs "$TMP/runs" --out "$TMP/outh" >"$TMP/bad3.log" 2>&1; then fail "--runs with RUNS_DIR accepted"; fi
# --out's missing parents are created, as its help says
"$MV_BIN" report "$TMP/runs" --out "$TMP/nest/a/b" >"$TMP/nest.log" 2>&1 || fail "--out with missing parents: $(cat "$TMP/nest.log")"
[ -s "$TMP/nest/a/b/report.md" ] || fail "--out nest/a/b: no report.md"
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
    # Headless Chromium (as root it needs --no-sandbox) renders the page: a PNG of the window's
    # size, and the DOM it built holds the charts (inline SVG) and the table.
    CHROME=(timeout 120 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage
            --hide-scrollbars --user-data-dir="$TMP/chromium-profile")
    "${CHROME[@]}" --window-size=1250,2400 --screenshot="$TMP/report.png" "file://$TMP/outf/report.html" \
        >"$TMP/chromium.log" 2>&1 || true
    [ -s "$TMP/report.png" ] || fail "chromium made no screenshot: $(tail -5 "$TMP/chromium.log")"
    "$MV_PYTHON" - "$TMP/report.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
assert (w, h) == (1250, 2400), (w, h)
# the page is not blank: the decoded image has many distinct rows
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"IDAT": idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
stride = len(raw) // h
rows = {raw[i * stride + 1:(i + 1) * stride] for i in range(h)}
assert len(rows) > 200, f"only {len(rows)} distinct pixel rows: a blank page?"
print(f"screenshot ok: {w}x{h} PNG, {len(rows)} distinct rows")
PY
    "${CHROME[@]}" --dump-dom "file://$TMP/outf/report.html" >"$TMP/dom.html" 2>"$TMP/chromium2.log" || true
    [ "$(grep -o "<svg" "$TMP/dom.html" | wc -l)" -ge 5 ] || fail "rendered DOM without the SVG charts: $(tail -3 "$TMP/chromium2.log")"
    grep -q "<th>rain (G)</th>" "$TMP/dom.html" || fail "rendered DOM without the table"
    echo "screenshot: $TMP/report.png ($(stat -c %s "$TMP/report.png") bytes)"
else
    echo "SKIP (screenshot only): /usr/bin/chromium is not installed, the HTML was not rendered"
fi
echo "report ok"
