#!/usr/bin/env bash
# `seeds:` in an experiment file: a 2-row x 2-seed sweep on tiny CPU runs. A sweep first run
# without seeds leaves <row>/ trained with run.seed 0; with `seeds: [0, 1]` those directories are
# reused (nothing in them changes) and only <row>@1/ train; every directory's resolved config has
# its seed; --dry-run lists each (row, seed), --only ROW selects all of its seeds; a row that sets
# run.seed itself is refused with FILE:LINE; a <row>/ trained with another seed than the first
# listed is flagged; and `maskvim report` gives per row the mean and the sample standard
# deviation of the status.json values, recomputed here independently (and (1/2) for a row
# with a seed missing).
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
exp_setup experiment_seeds
export MV_SYNTH_CACHE="$MV_TEST_TMP/synth_cache"
PY="${MV_PYTHON:-python3}"
export OMP_NUM_THREADS=1   # tiny runs, two at a time: one thread each (no oversubscription on small machines)

write_exp() {   # write_exp FILE SEEDS_LINE
    cat >"$1" <<YAML
name: seeds
title: "Test: seeds"
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets 2 0 "synthetic:clear, synthetic:fog")
source: clear
targets: [fog]
columns: [{domain: fog, label: M}, {domain: avg, label: Avg}]
$2
rows:
  - {name: ce, set: {mask.alpha1: 0, mask.alpha2: 0}, paper: [50.7, 36.8]}
  - {name: all, set: {optim.lr: 1e-3}, paper: [66.6, 53.0]}
YAML
}
write_exp "$TMP/one.yaml" ""
write_exp "$TMP/two.yaml" "seeds: [0, 1]"

# 1. The single-seed sweep: ce/ and all/ with run.seed 0 (the base's).
"$MV_BIN" experiment run "$TMP/one.yaml" --out "$TMP/a" --quiet >"$TMP/one.log" 2>&1 || fail "single-seed sweep: $(tail -5 "$TMP/one.log")"
[ "$(ls "$TMP/a" | tr '\n' ' ')" = "all ce paper.json " ] || fail "single-seed dirs: $(ls "$TMP/a")"

# 2. Dry run with seeds: the seed-0 runs are finished (skipped), the seed-1 runs would run.
"$MV_BIN" experiment run "$TMP/two.yaml" --out "$TMP/a" --dry-run >"$TMP/dry.log"
for r in ce all; do
    grep -Eq "^$r +skip \(finished\) +$TMP/a/$r\$" "$TMP/dry.log" || fail "dry run, $r: $(cat "$TMP/dry.log")"
    grep -Eq "^$r@1 +run +$TMP/a/$r@1\$" "$TMP/dry.log" || fail "dry run, $r@1: $(cat "$TMP/dry.log")"
done
[ "$(grep -c 'run.seed=1$' "$TMP/dry.log")" = 2 ] || fail "dry run overrides lack run.seed=1: $(cat "$TMP/dry.log")"
grep -q "warning" "$TMP/dry.log" && fail "reused seed-0 runs warned: $(cat "$TMP/dry.log")"
"$MV_BIN" experiment run "$TMP/two.yaml" --out "$TMP/a" --dry-run --only ce >"$TMP/only.log"
[ "$(grep -Ec '^(ce|ce@1) ' "$TMP/only.log")" = 2 ] || fail "--only ce: $(cat "$TMP/only.log")"
grep -q "^all" "$TMP/only.log" && fail "--only ce listed row all"
# One seed by ROW@SEED, the first seed's included (its run is called ce).
"$MV_BIN" experiment run "$TMP/two.yaml" --out "$TMP/a" --dry-run --only ce@0 >"$TMP/only0.log" ||
    fail "--only ce@0 refused"
[ "$(grep -Ec '^ce ' "$TMP/only0.log")" = 1 ] && ! grep -q "^ce@1" "$TMP/only0.log" ||
    fail "--only ce@0: $(cat "$TMP/only0.log")"
"$MV_BIN" config "$TMP/two.yaml" --row ce@0 | grep -q "seed: 0" || fail "config --row ce@0"
[ ! -e "$TMP/a/ce@1" ] || fail "dry run wrote files"
# With seed 1 first, ce/ (trained with seed 0) is not that seed's run: the dry run says so.
write_exp "$TMP/swapped.yaml" "seeds: [1, 0]"
"$MV_BIN" experiment run "$TMP/swapped.yaml" --out "$TMP/a" --dry-run >"$TMP/swapped.log"
grep -q "warning: $TMP/a/ce was trained with run.seed=0, not seed 1 of \`seeds:\`" "$TMP/swapped.log" || fail "no seed warning: $(cat "$TMP/swapped.log")"
grep -Eq "^ce@0 +run " "$TMP/swapped.log" || fail "swapped seeds: $(cat "$TMP/swapped.log")"

# 3. The sweep with seeds, two runs at once: only the seed-1 runs train; the seed-0
#    directories are reused as they are.
touch "$TMP/marker"
sleep 1
"$MV_BIN" experiment run "$TMP/two.yaml" --out "$TMP/a" --quiet --jobs 2 >"$TMP/two.log" 2>&1 || fail "seeds sweep: $(tail -5 "$TMP/two.log")"
grep -q "2 rows run, 2 skipped (finished), 0 failed" "$TMP/two.log" || fail "summary: $(tail -3 "$TMP/two.log")"
[ -z "$(find "$TMP/a/ce" "$TMP/a/all" -newer "$TMP/marker")" ] || fail "seed-0 runs were touched: $(find "$TMP/a/ce" "$TMP/a/all" -newer "$TMP/marker")"
"$PY" - "$TMP/a" <<'PYEOF' || fail "run directories"
import json, os, sys
root = sys.argv[1]
def run_seed(path):   # run.seed of a resolved config.yaml (its `run:` section)
    section = None
    for line in open(path):
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            section = line.strip()[:-1]
        elif section == "run" and line.strip().startswith("seed:"):
            return int(line.split(":")[1])
want = {"ce": 0, "ce@1": 1, "all": 0, "all@1": 1}
assert sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) == sorted(want), os.listdir(root)
for d, s in want.items():
    assert run_seed(os.path.join(root, d, "config.yaml")) == s, (d, run_seed(os.path.join(root, d, "config.yaml")))
    st = json.load(open(os.path.join(root, d, "status.json")))
    assert st["state"] == "finished" and st["iter"] == 2, st
    if d.endswith("@1"): assert st["row"] == d and st["seed"] == 1, st
PYEOF

# 4. The report: per row the mean and sample std over the two seeds, computed here from status.json.
"$MV_BIN" report "$TMP/two.yaml" --runs "$TMP/a" --out "$TMP/rep" >"$TMP/rep.log" 2>&1 || fail "report: $(cat "$TMP/rep.log")"
grep -q "2 rows x 2 seeds (2 rows with every seed)" "$TMP/rep.log" || fail "report summary: $(cat "$TMP/rep.log")"
grep -q "mean ± sample standard deviation" "$TMP/rep/report.md" || fail "report.md has no legend"
"$PY" - "$TMP/a" "$TMP/rep" <<'PYEOF' || fail "report values"
import csv, json, math, statistics, sys
root, rep = sys.argv[1], sys.argv[2]
rows = {r["row"]: r for r in csv.DictReader(open(rep + "/report.csv"))}
md = open(rep + "/report.md").read()
js = {r["name"]: r for r in json.load(open(rep + "/report.json"))["rows"]}
assert list(rows) == ["ce", "all"], list(rows)
for row in ["ce", "all"]:
    finals = [json.load(open(f"{root}/{d}/status.json"))["final"] for d in (row, row + "@1")]
    cells = {"clear": [f["clear"] for f in finals], "fog": [f["fog"] for f in finals]}
    cells["mean"] = cells["fog"]   # one target: the mean over targets is fog
    line = f"| {row} | 2/2 |"
    for col, vals in cells.items():
        m, sd = statistics.mean(vals), statistics.stdev(vals)   # sample std (n - 1)
        got_m, got_sd = float(rows[row][col]), float(rows[row]["sd_" + col])
        assert abs(got_m - m) < 6e-5 and abs(got_sd - sd) < 6e-5, (row, col, vals, got_m, got_sd)
        assert rows[row]["n_" + col] == "2", rows[row]
        for k, v in enumerate(vals):
            assert abs(float(rows[row][f"{col}@seed{k}"]) - v) < 6e-5, (row, col, k)
            assert abs(js[row]["cells"][col]["seeds"][k] - v) < 6e-5, (row, col, k)
        assert abs(js[row]["cells"][col]["sd"] - sd) < 6e-5
        line += f" {m:.2f} ± {sd:.2f}"
        paper = {"ce": {"fog": 50.7, "mean": 36.8}, "all": {"fog": 66.6, "mean": 53.0}}[row].get(col)
        if paper is not None:
            line += f" (paper {paper:.2f}, {m - paper:+.2f})"
            assert abs(float(rows[row]["paper_" + col]) - paper) < 1e-9
        line += " |"
    assert line in md, (line, md)
PYEOF

# 5. A seed missing: the row shows the seed that finished, with (1/2).
mv "$TMP/a/all@1" "$TMP/all_at_1"
"$MV_BIN" report "$TMP/two.yaml" --runs "$TMP/a" --out "$TMP/rep1" >/dev/null 2>&1 || fail "report with a seed missing"
fog=$("$PY" -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["final"]["fog"])' "$TMP/a/all/status.json")
grep -q "| all \* | 1/2 | [0-9.]* (1/2) | $fog (1/2) (paper 66.60" "$TMP/rep1/report.md" || fail "one seed: $(grep '| all' "$TMP/rep1/report.md")"
grep -q "all@1: not run" "$TMP/rep1/report.md" || fail "missing seed not named"
mv "$TMP/all_at_1" "$TMP/a/all@1"

# 6. A row that sets run.seed itself next to `seeds:` is refused, naming the file and line.
sed 's/- {name: all, set: {optim.lr: 1e-3}/- {name: all, set: {run.seed: 3}/' "$TMP/two.yaml" >"$TMP/bad.yaml"
if "$MV_BIN" experiment run "$TMP/bad.yaml" --out "$TMP/b" --dry-run >"$TMP/bad.log" 2>&1; then fail "row with run.seed accepted"; fi
line=$(grep -n "name: all" "$TMP/bad.yaml" | cut -d: -f1)
grep -q "bad.yaml:$line: row 'all' sets run.seed" "$TMP/bad.log" || fail "refusal: $(cat "$TMP/bad.log")"
echo "test_experiment_seeds: all checks passed"
