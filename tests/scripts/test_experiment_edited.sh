#!/usr/bin/env bash
# An experiment file edited between sweeps (docs/experiments.md, "Resuming, skipping, locking"):
# - a row whose checkpoint is past a lowered schedule.max_iters fails, naming what to do, and is
#   never recorded finished with an old evaluation;
# - an unfinished row whose settings changed is not resumed under the new ones (its config.yaml
#   is left as it trained), and --dry-run says so;
# - a finished row of a file with `corruptions:` whose severities changed is evaluated again
#   (the training is not redone), and the report marks it until then; so is one whose channel
#   order (`corruption_channels:`) changed.
set -euo pipefail
source "$(dirname "$0")/experiment_common.sh"
: "${MV_PYTHON:?}"
exp_setup experiment_edited
export MV_SYNTH_CACHE="$MV_TEST_TMP/synth_cache"

write_file() {   # write_file MAX_ITERS [EXTRA ROW SETTING]
    local row="{name: a}"
    [ -n "${2:-}" ] && row="{name: a, set: {$2}}"
    cat >"$TMP/e.yaml" <<YAML
name: e
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets "$1" 0 "synthetic:clear")
source: clear
rows:
  - $row
YAML
}
# interrupt DIR ITER: the row as a sweep killed just after its checkpoint ITER leaves it
interrupt() {
    "$MV_PYTHON" - "$1" "$2" <<'PY'
import glob, json, os, sys
d, it = sys.argv[1], int(sys.argv[2])
for f in glob.glob(d + "/iter_*.h5"):
    if int(f.rsplit("_", 1)[1][:-3]) > it: os.remove(f)
open(d + "/latest", "w").write("iter_%d.h5\n" % it)
st = json.load(open(d + "/status.json"))
json.dump({"row": st["row"], "state": "interrupted", "error": "stopped by signal 9"}, open(d + "/status.json", "w"))
PY
}
state() { "$MV_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$1/status.json"; }

# 1. schedule.max_iters lowered below the checkpoint of an interrupted row.
write_file 4
"$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o1" --quiet >"$TMP/o1.log" 2>&1 || fail "first sweep: $(tail -5 "$TMP/o1.log")"
interrupt "$TMP/o1/a" 4
write_file 3
"$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o1" --dry-run >"$TMP/o1d.log" 2>&1
grep -q "warning: row a will fail: its checkpoint (.*iter_4.h5) is past schedule.max_iters 3" "$TMP/o1d.log" \
    || fail "dry-run says nothing of the checkpoint past max_iters: $(cat "$TMP/o1d.log")"
cp "$TMP/o1/a/config.yaml" "$TMP/cfg1.yaml"
if "$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o1" --quiet >"$TMP/o1b.log" 2>&1; then
    fail "a row past the new schedule.max_iters was taken as finished: $(cat "$TMP/o1b.log")"
fi
grep -q "row a: its checkpoint (.*iter_4.h5) is past schedule.max_iters 3 of .*: set schedule.max_iters back to 4 (its config.yaml's), or delete .* to train the row again" "$TMP/o1b.log" \
    || fail "no clear message: $(cat "$TMP/o1b.log")"
[ "$(state "$TMP/o1/a")" = failed ] || fail "status: $(cat "$TMP/o1/a/status.json")"
cmp -s "$TMP/cfg1.yaml" "$TMP/o1/a/config.yaml" || fail "config.yaml rewritten for a refused resume"
[ "$(cat "$TMP/o1/a/latest")" = iter_4.h5 ] || fail "latest moved: $(cat "$TMP/o1/a/latest")"
write_file 4   # restored: the row finishes (nothing left to train)
"$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o1" --quiet >"$TMP/o1c.log" 2>&1 || fail "restored: $(cat "$TMP/o1c.log")"
[ "$(state "$TMP/o1/a")" = finished ] || fail "not finished once restored: $(cat "$TMP/o1/a/status.json")"
echo "max_iters lowered below the checkpoint: refused"

# 2. An interrupted row whose learning rate (then decoder depths) changed.
write_file 4
"$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o2" --quiet >"$TMP/o2.log" 2>&1 || fail "sweep: $(tail -5 "$TMP/o2.log")"
interrupt "$TMP/o2/a" 2
cp "$TMP/o2/a/config.yaml" "$TMP/cfg2.yaml"
for change in "optim.lr: 0.001" "model.decoder_depths: [2, 2, 2]"; do
    write_file 4 "$change"
    "$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o2" --dry-run >"$TMP/o2d.log" 2>&1
    grep -q "warning: row a will fail: it was trained up to its checkpoint with another configuration than .*(${change%%:*}: " "$TMP/o2d.log" \
        || fail "dry-run ($change): $(cat "$TMP/o2d.log")"
    if "$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o2" --quiet >"$TMP/o2b.log" 2>&1; then
        fail "resumed under $change: $(cat "$TMP/o2b.log")"
    fi
    grep -q "row a: it was trained up to its checkpoint with another configuration" "$TMP/o2b.log" || fail "message: $(cat "$TMP/o2b.log")"
    grep -q "resuming from" "$TMP/o2b.log" && fail "the training ran: $(cat "$TMP/o2b.log")"
    cmp -s "$TMP/cfg2.yaml" "$TMP/o2/a/config.yaml" || fail "config.yaml rewritten for a refused resume ($change)"
    [ "$(cat "$TMP/o2/a/latest")" = iter_2.h5 ] || fail "latest moved: $(cat "$TMP/o2/a/latest")"
done
# a setting that does not change the results is no reason to refuse
write_file 4 "run.log_every: 2"
"$MV_BIN" experiment run "$TMP/e.yaml" --out "$TMP/o2" --quiet >"$TMP/o2c.log" 2>&1 || fail "resume with run.log_every: $(cat "$TMP/o2c.log")"
[ "$(state "$TMP/o2/a")" = finished ] || fail "not finished after the resume"
echo "changed settings of an interrupted row: refused (not run.log_every)"

# 3. The severities of a finished corruption row changed: evaluated again, not trained again.
cat >"$TMP/c.yaml" <<YAML
name: c
base: $MV_SRC/experiments/base/maskvim-nano_synthetic.yaml
$(tiny_sets 2 0 "synthetic:clear")
source: clear
corruptions: [gaussian_noise]
severities: [1]
rows:
  - {name: a}
YAML
"$MV_BIN" experiment run "$TMP/c.yaml" --out "$TMP/o3" --quiet >"$TMP/o3.log" 2>&1 || fail "corruption sweep: $(tail -5 "$TMP/o3.log")"
sed -i 's/^severities: \[1\]/severities: [2]/' "$TMP/c.yaml"
"$MV_BIN" report "$TMP/c.yaml" --runs "$TMP/o3" --out "$TMP/rep3" >"$TMP/rep3.log" 2>&1 || fail "report: $(cat "$TMP/rep3.log")"
grep -q "incomplete: a (evaluated under other corruptions, severities or channel order" "$TMP/rep3.log" || fail "report: $(cat "$TMP/rep3.log")"
"$MV_BIN" experiment run "$TMP/c.yaml" --out "$TMP/o3" --dry-run >"$TMP/o3d.log" 2>&1
grep -q "^a  .*evaluate again (corruptions changed)" "$TMP/o3d.log" || fail "dry-run: $(cat "$TMP/o3d.log")"
n_train=$(grep -c '"type": "train"' "$TMP/o3/a/metrics.jsonl" || true)
"$MV_BIN" experiment run "$TMP/c.yaml" --out "$TMP/o3" --quiet >"$TMP/o3b.log" 2>&1 || fail "re-evaluation: $(cat "$TMP/o3b.log")"
grep -q "evaluating it again" "$TMP/o3b.log" || fail "no re-evaluation: $(cat "$TMP/o3b.log")"
[ "$(grep -c '"type": "train"' "$TMP/o3/a/metrics.jsonl" || true)" = "$n_train" ] || fail "trained again"
"$MV_PYTHON" - "$TMP/o3/a" <<'PY'
import json, sys
d = sys.argv[1]
st = json.load(open(d + "/status.json"))
ev = json.load(open(d + "/corruptions.json"))
assert st["state"] == "finished", st
sev = sorted({r["severity"] for r in ev["results"] if r["corruption"] != "none"})
assert sev == [2], sev
v = [r["metrics"]["mIoU"] for r in ev["results"] if r["corruption"] == "gaussian_noise"][0]
assert abs(st["final"]["gaussian_noise"] - v) < 1e-3, (st, v)
PY
"$MV_BIN" experiment run "$TMP/c.yaml" --out "$TMP/o3" --quiet >"$TMP/o3c.log" 2>&1
grep -q "row a: finished, skipped" "$TMP/o3c.log" || fail "not skipped once evaluated: $(cat "$TMP/o3c.log")"
"$MV_BIN" report "$TMP/c.yaml" --runs "$TMP/o3" --out "$TMP/rep3" >"$TMP/rep3b.log" 2>&1
grep -q "(0 incomplete)" "$TMP/rep3b.log" || fail "report after re-evaluation: $(cat "$TMP/rep3b.log")"
echo "severities changed: evaluated again"
# 4. The channel order changed (`corruption_channels: bgr`, HGFormer's generator): evaluated again
#    in BGR order (eval --corruption-bgr), and skipped after; an unknown order is refused.
echo "corruption_channels: bgr" >>"$TMP/c.yaml"
"$MV_BIN" experiment run "$TMP/c.yaml" --out "$TMP/o3" --dry-run >"$TMP/o4d.log" 2>&1
grep -q "^a  .*evaluate again (corruptions changed)" "$TMP/o4d.log" || fail "dry-run (bgr): $(cat "$TMP/o4d.log")"
"$MV_BIN" experiment run "$TMP/c.yaml" --out "$TMP/o3" --quiet >"$TMP/o4.log" 2>&1 || fail "bgr re-evaluation: $(cat "$TMP/o4.log")"
grep -q "severities or channel order than .*: evaluating it again" "$TMP/o4.log" || fail "no bgr re-evaluation: $(cat "$TMP/o4.log")"
"$MV_PYTHON" - "$TMP/o3/a" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1] + "/corruptions.json"))
assert ev["corruption_channels"] == "bgr", ev.get("corruption_channels")
PY
"$MV_BIN" experiment run "$TMP/c.yaml" --out "$TMP/o3" --quiet >"$TMP/o4c.log" 2>&1
grep -q "row a: finished, skipped" "$TMP/o4c.log" || fail "not skipped once evaluated in bgr: $(cat "$TMP/o4c.log")"
sed -i 's/^corruption_channels: bgr/corruption_channels: grb/' "$TMP/c.yaml"
if "$MV_BIN" experiment run "$TMP/c.yaml" --out "$TMP/o3" --dry-run >"$TMP/o4e.log" 2>&1; then fail "corruption_channels: grb accepted"; fi
grep -q "c.yaml:[0-9]*.*corruption_channels.*expected rgb (the default) or bgr" "$TMP/o4e.log" || fail "$(cat "$TMP/o4e.log")"
echo "channel order changed: evaluated again"
echo "experiment edited OK"
