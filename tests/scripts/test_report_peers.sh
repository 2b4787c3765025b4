#!/usr/bin/env bash
# `maskvim report EXPERIMENT.yaml` end to end with other methods' published rows (`peers:`) and
# the mean column first (`avg` first in `columns:`, as the paper's Table 2 prints Avg): a tiny
# one-row sweep trains only the row (--dry-run and the sweep list no peer, no peer gets a run
# directory or a line of paper.json); the report prints our row with its differences, the mean
# column second (after the source) in report.md, report.csv, report.html and report.json, and the
# peers after our row as published numbers ("—" for a blank cell), in a block of their own in
# every file. A file whose peers are wrong (a name twice, a count that is not the columns')
# is refused by both commands, naming FILE:LINE.
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
exp_setup report_peers
export MV_SYNTH_CACHE="$MV_TEST_TMP/synth_cache"
PY="${MV_PYTHON:-python3}"

cat >"$TMP/exp.yaml" <<YAML
name: peers
title: "Test: peers and Avg first"
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets 2 0 "synthetic:clear, synthetic:fog, synthetic:rain" 0)
source: clear
targets: [fog, rain]
columns: [{domain: avg, label: Avg}, {domain: fog, label: M}, {domain: rain, label: G}]
rows:
  - {name: maskvim, paper: [45.8, 66.6, 54.3]}
peers:
  - {name: HGFormer-T, paper: [43.9, 52.9, null]}
  - {name: "Mask2former Swin-T", paper: {M: 65.3, G: 50.6, Avg: 50.3}}
YAML
passed=0

# 1. The sweep and its dry run know the row only.
"$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/runs" --dry-run >"$TMP/dry.log" 2>&1 || fail "dry run: $(cat "$TMP/dry.log")"
grep -Eq "^maskvim +run " "$TMP/dry.log" || fail "dry run: $(cat "$TMP/dry.log")"
[ "$(grep -c "^   overrides:" "$TMP/dry.log")" = 1 ] || fail "dry run lists more than the row: $(cat "$TMP/dry.log")"
! grep -Eq "HGFormer|Mask2former" "$TMP/dry.log" || fail "dry run lists a peer: $(cat "$TMP/dry.log")"
"$MV_BIN" experiment run "$TMP/exp.yaml" --out "$TMP/runs" --quiet >"$TMP/run.log" 2>&1 || fail "sweep: $(tail -5 "$TMP/run.log")"
grep -q "1 row run, 0 skipped" "$TMP/run.log" || fail "summary: $(tail -1 "$TMP/run.log")"
[ "$(ls "$TMP/runs")" = "$(printf 'maskvim\npaper.json')" ] || fail "run directories: $(ls "$TMP/runs")"
! grep -Eq "HGFormer|Mask2former" "$TMP/runs/paper.json" || fail "paper.json holds a peer: $(cat "$TMP/runs/paper.json")"
passed=$((passed + 1))

# 2. The report: the mean second everywhere, the peers after our row in every file.
"$MV_BIN" report "$TMP/exp.yaml" --runs "$TMP/runs" --out "$TMP/rep" >"$TMP/rep.log" 2>&1 || fail "report: $(cat "$TMP/rep.log")"
grep -q "1 runs (0 incomplete), 3 domains, 2 published peer rows" "$TMP/rep.log" || fail "summary: $(cat "$TMP/rep.log")"
"$PY" - "$TMP/rep" <<'PY'
import csv, json, os, re, sys
out = sys.argv[1]
def fail(msg): raise SystemExit("FAIL: " + msg)
md = open(os.path.join(out, "report.md")).read()
head = "| clear (source) | Avg | fog (M) | rain (G) |"
if "| run " + head not in md: fail("report.md columns: " + md[:800])
ours = re.search(r"^\| maskvim \| ([0-9.]+) \| ([0-9.]+) \(paper 45\.80, ([+-][0-9.]+)\) \| ([0-9.]+) \(paper 66\.60, ([+-][0-9.]+)\) \| "
                 r"([0-9.]+) \(paper 54\.30, ([+-][0-9.]+)\) \|$", md, re.M)
if not ours: fail("our row in report.md: " + md[:1500])
mean, fog, rain = float(ours.group(2)), float(ours.group(4)), float(ours.group(6))
if abs(mean - (fog + rain) / 2) > 0.006: fail("Avg %s is not the mean of fog %s and rain %s" % (mean, fog, rain))
if abs(float(ours.group(3)) - (mean - 45.8)) > 0.006: fail("our difference to the paper's Avg: " + ours.group(0))
block = md.find("## Published results of other methods (not run here)")
if block < ours.start(): fail("no peers block after our row: " + md)
want_md = ("| method " + head + "\n|---|---:|---:|---:|---:|\n| HGFormer-T | — | 43.90 | 52.90 | — |\n"
           "| Mask2former Swin-T | — | 50.30 | 65.30 | 50.60 |\n")
if want_md not in md[block:]: fail("peers in report.md: " + md[block:block + 800])

rows = list(csv.reader(open(os.path.join(out, "report.csv"))))
h = rows[0]
if h[3:6] != ["clear", "paper_clear", "diff_clear"] or h[6:9] != ["mean", "paper_mean", "diff_mean"] or h[9] != "fog" or h[-1] != "peer":
    fail("report.csv header: %s" % h)
if any(len(r) != len(h) for r in rows): fail("report.csv lines of other lengths: %s" % rows)
byname = {r[0]: dict(zip(h, r)) for r in rows[1:]}
if byname["maskvim"]["peer"] != "0" or byname["maskvim"]["paper_mean"] != "45.8000" or not byname["maskvim"]["diff_mean"]:
    fail("our line in report.csv: %s" % byname["maskvim"])
hg = byname.get("HGFormer-T")
if not hg or hg["peer"] != "1" or hg["state"] != "published" or hg["paper_mean"] != "43.9000" or hg["paper_rain"] != "" \
        or hg["mean"] != "" or hg["diff_fog"] != "":
    fail("HGFormer-T in report.csv: %s" % hg)

rep = json.load(open(os.path.join(out, "report.json")))
if [c["role"] for c in rep["columns"]] != ["source", "mean", "target", "target"]: fail("report.json columns: %s" % rep["columns"])
if [r["name"] for r in rep["runs"]] != ["maskvim"]: fail("report.json runs: %s" % [r["name"] for r in rep["runs"]])
peers = {p["name"]: {k: v["paper"] for k, v in p["cells"].items()} for p in rep["peers"]}
if peers != {"HGFormer-T": {"clear": None, "mean": 43.9, "fog": 52.9, "rain": None},
             "Mask2former Swin-T": {"clear": None, "mean": 50.3, "fog": 65.3, "rain": 50.6}}:
    fail("report.json peers: %s" % rep["peers"])
if abs(rep["runs"][0]["cells"]["mean"]["paper"] - 45.8) > 1e-9: fail("report.json our row: %s" % rep["runs"][0])

html = open(os.path.join(out, "report.html")).read()
if "<th>run</th><th>state</th><th>clear (source)</th><th>Avg (targets)</th><th>fog (M)</th><th>rain (G)</th>" not in html:
    fail("report.html columns")
p = html.find("<h2>Published results of other methods (not run here)</h2>")
if p < html.find("<td>maskvim</td>") or p > html.find("<h2>maskvim</h2>"): fail("report.html: no peers table after ours")
if "<tr><td>HGFormer-T</td><td class=\"miss\">—</td><td>43.90</td><td>52.90</td><td class=\"miss\">—</td></tr>" not in html:
    fail("report.html peer row: " + html[p:p + 1200])
PY
passed=$((passed + 1))

# 3. Wrong peers are refused by the sweep and the report alike, naming the file and line.
sed 's/- {name: "Mask2former Swin-T"/- {name: HGFormer-T/' "$TMP/exp.yaml" >"$TMP/dup.yaml"
sed 's/paper: \[43.9, 52.9, null\]/paper: [43.9, 52.9]/' "$TMP/exp.yaml" >"$TMP/count.yaml"
for f in dup count; do
    line=$(grep -n "^  - {name: HGFormer-T" "$TMP/$f.yaml" | tail -1 | cut -d: -f1)
    want="$TMP/$f.yaml:$line: peer 'HGFormer-T' also named at line $((line - 1)) (peer names must be unique)"
    [ "$f" = count ] && want="$TMP/$f.yaml:$line:"
    for cmd in "experiment run $TMP/$f.yaml --out $TMP/runs --dry-run" "report $TMP/$f.yaml --runs $TMP/runs --out $TMP/bad"; do
        rc=0
        # shellcheck disable=SC2086
        "$MV_BIN" $cmd >"$TMP/bad.log" 2>&1 || rc=$?
        [ "$rc" = 1 ] || fail "maskvim $cmd: exit $rc: $(cat "$TMP/bad.log")"
        grep -qF "$want" "$TMP/bad.log" || fail "maskvim $cmd: $(cat "$TMP/bad.log"), expected $want"
        [ "$f" = dup ] || grep -q "paper: 2 numbers for 3 columns" "$TMP/bad.log" || fail "maskvim $cmd: $(cat "$TMP/bad.log")"
    done
done
[ ! -e "$TMP/bad" ] || fail "a refused report wrote $TMP/bad"
passed=$((passed + 1))

[ -n "${KEEP:-}" ] || rm -rf "$TMP"
echo "$passed passed, 0 failed"
