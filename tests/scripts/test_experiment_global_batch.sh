#!/usr/bin/env bash
# `global_batch:` in an experiment file (the paper-scale files: 4 = 2 ranks x data.batch_per_rank 2).
# 1. `experiment run --dry-run` warns, naming the remedy, when the ranks the sweep will use (one
#    without --launcher, the launcher's -np) x data.batch_per_rank give another batch; says it
#    cannot tell for a launcher whose rank count it cannot read; is quiet on the right ranks.
# 2. A row trained on one rank (in the sweep's process) is named by a warning when it ends (its
#    start record in metrics.jsonl gives 1 rank x 2), status.json records the file's
#    global_batch, and `maskvim report FILE` marks the row (†, global_batch_differs 1).
# 3. A launcher whose ranks cannot be told (`true;`) is checked from the row's start record.
# 4. With MPI: `--launcher "mpirun -np 2"` trains at the file's batch: no warning, no mark.
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
exp_setup experiment_global_batch
ROOT=$TMP
trap 'rm -rf "$ROOT"' EXIT
export MV_SYNTH_CACHE="$MV_TEST_TMP/synth_cache"

cat >"$ROOT/exp.yaml" <<YAML
name: gb
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
global_batch: 4
$(tiny_sets 2 0 "synthetic:clear, synthetic:fog")
  - data.batch_per_rank=2
source: clear
targets: [fog]
rows:
  - {name: a, paper: [10, 10]}
YAML
passed=0

# 1. --dry-run: the warning and its remedy.
"$MV_BIN" experiment run "$ROOT/exp.yaml" --out "$ROOT/d" --dry-run >"$ROOT/dry1.log"
grep -q 'warning: .*exp.yaml asks for global_batch 4, but every row trains with 1 rank (no --launcher) x data.batch_per_rank 2 = 2, not that batch: run the sweep with --launcher "mpirun -np 2"' "$ROOT/dry1.log" ||
    fail "no warning without a launcher: $(cat "$ROOT/dry1.log")"
grep -Eq '^a +run ' "$ROOT/dry1.log" || fail "dry run does not list the row: $(cat "$ROOT/dry1.log")"
"$MV_BIN" experiment run "$ROOT/exp.yaml" --out "$ROOT/d" --dry-run --launcher "mpirun -np 4 --oversubscribe" >"$ROOT/dry2.log"
grep -q 'but every row trains with 4 ranks (from --launcher) x data.batch_per_rank 2 = 8, not that batch: run the sweep with --launcher "mpirun -np 2"' "$ROOT/dry2.log" ||
    fail "no warning for -np 4: $(cat "$ROOT/dry2.log")"
"$MV_BIN" experiment run "$ROOT/exp.yaml" --out "$ROOT/d" --dry-run --launcher "mpirun -np 2 --hostfile hosts" >"$ROOT/dry3.log"
! grep -q "asks for global_batch" "$ROOT/dry3.log" || fail "warned on the right ranks: $(cat "$ROOT/dry3.log")"
"$MV_BIN" experiment run "$ROOT/exp.yaml" --out "$ROOT/d" --dry-run --launcher "true;" >"$ROOT/dry4.log"
grep -q 'note: .*asks for global_batch 4; how many ranks --launcher "true;" starts cannot be told from it, so each row.s start record is checked' "$ROOT/dry4.log" ||
    fail "no note for a launcher that does not tell: $(cat "$ROOT/dry4.log")"
# A file without global_batch says nothing about it.
grep -v "^global_batch" "$ROOT/exp.yaml" >"$ROOT/plain.yaml"
"$MV_BIN" experiment run "$ROOT/plain.yaml" --out "$ROOT/d" --dry-run >"$ROOT/dry5.log"
! grep -q "asks for global_batch" "$ROOT/dry5.log" || fail "a file without global_batch warned: $(cat "$ROOT/dry5.log")"
[ ! -e "$ROOT/d" ] || fail "dry run wrote files"
passed=$((passed + 1))

# 2. Trained on one rank: named when the row ends, recorded, marked by the report.
"$MV_BIN" experiment run "$ROOT/exp.yaml" --out "$ROOT/one" --quiet >"$ROOT/one.log" 2>&1 || fail "sweep failed: $(tail -5 "$ROOT/one.log")"
grep -q "warning: row a trained with global batch 2 (1 rank x 2), but .*exp.yaml asks for global_batch 4: its numbers are not at that batch (the report marks it); delete .*/one/a and run it again on 2 ranks (--launcher \"mpirun -np 2\")" "$ROOT/one.log" ||
    fail "no warning after the row: $(cat "$ROOT/one.log")"
grep -q '"global_batch": 4, "state": "finished"' "$ROOT/one/a/status.json" || fail "status.json: $(cat "$ROOT/one/a/status.json")"
"$MV_BIN" report "$ROOT/exp.yaml" --runs "$ROOT/one" --out "$ROOT/rep1" >/dev/null
grep -q "^| a † |" "$ROOT/rep1/report.md" || fail "report.md does not mark the row: $(cat "$ROOT/rep1/report.md")"
grep -q "^- a: global batch 2 (1 rank x 2); the experiment file asks for 4 (global_batch): train it on 2 ranks$" "$ROOT/rep1/report.md" ||
    fail "report.md does not say why: $(cat "$ROOT/rep1/report.md")"
"$MV_PYTHON" - "$ROOT/rep1/report.csv" "$ROOT/rep1/report.json" <<'PY'
import csv, json, sys
rows = {r["run"]: r for r in csv.DictReader(open(sys.argv[1]))}
a = rows["a"]
assert (a["global_batch"], a["global_batch_asked"], a["global_batch_differs"]) == ("2", "4", "1"), a
run = [r for r in json.load(open(sys.argv[2]))["runs"] if r["name"] == "a"][0]
assert run["global_batch"] == {"trained": [{"ranks": 1, "batch_per_rank": 2}], "asked": 4, "differs": True}, run
PY
passed=$((passed + 1))

# 3. A launcher that does not tell its ranks: the row's start record is checked when it ends.
"$MV_BIN" experiment run "$ROOT/exp.yaml" --out "$ROOT/sh" --quiet --launcher "true;" >"$ROOT/sh.log" 2>&1 || fail "sweep failed: $(tail -5 "$ROOT/sh.log")"
grep -q "cannot be told from it" "$ROOT/sh.log" || fail "no note: $(cat "$ROOT/sh.log")"
grep -q "warning: row a trained with global batch 2 (1 rank x 2)" "$ROOT/sh.log" || fail "no warning after the row: $(cat "$ROOT/sh.log")"
passed=$((passed + 1))

# 4. Two ranks through mpirun: the file's batch, nothing to say.
source "$(dirname "$0")/mpi_common.sh"
mpi_setup experiment_global_batch_mpi   # exits 0 (SKIP) without MPI
trap 'rm -rf "$ROOT" "$TMP"' EXIT
"$MV_BIN" experiment run "$ROOT/exp.yaml" --out "$ROOT/two" --quiet \
    --launcher "mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 ${MPI_ENV[*]}" >"$ROOT/two.log" 2>&1 ||
    fail "sweep failed: $(tail -5 "$ROOT/two.log")"
! grep -q "asks for global_batch\|trained with global batch" "$ROOT/two.log" || fail "warned on 2 ranks: $(cat "$ROOT/two.log")"
grep -q '"ranks": 2, "batch_per_rank": 2' "$ROOT/two/a/metrics.jsonl" || fail "not trained on 2 ranks"
"$MV_BIN" report "$ROOT/exp.yaml" --runs "$ROOT/two" --out "$ROOT/rep2" >/dev/null
grep -q "^| a |" "$ROOT/rep2/report.md" && ! grep -q "†" "$ROOT/rep2/report.md" || fail "report.md marks a 2-rank row: $(cat "$ROOT/rep2/report.md")"
passed=$((passed + 1))
rm -rf "$TMP"
echo "$passed passed, 0 failed"
