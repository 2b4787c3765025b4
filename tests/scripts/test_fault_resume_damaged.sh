#!/usr/bin/env bash
# `maskvim train --resume` on a run directory that is not as the run left it:
#   1. a resume refused for its configuration (another model.*, or data the saved loader cursor
#      does not fit) leaves the run's config.yaml as it was (it used to be overwritten with the
#      refused configuration before the check, so the folder no longer described its checkpoints);
#   2. every checkpoint damaged (cut short, a changed weight): `--resume auto` stops with an error
#      naming each file and the way out, and touches nothing (it used to start the run over from
#      iteration 0 with exit status 0, emptying metrics.jsonl, without a word);
#   3. the newest checkpoint damaged: `--resume auto` warns, naming it, and continues from the
#      older one, ending bit-identical to the uninterrupted run; a `latest` naming a deleted file
#      is warned about the same way;
#   4. best.h5 damaged (a weight dataset zeroed: only its checksum tells): the resume warns and
#      drops the best record (it used to adopt that file as the best without a word, and eval
#      then refused it), or, resumed from the best step's own checkpoint, puts that one in its
#      place; a `latest` holding a path (../other/iter_5.h5) is warned about, saying what it held
#      and what the run continues from (it used to be ignored without a word).
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/fault_resume_damaged.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
run() { "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 "$@"; }
passed=0
run --set run.work_dir="$TMP/full" >/dev/null
run --set run.work_dir="$TMP/a" --stop-after 4 >/dev/null   # iter_2.h5, iter_4.h5
cp -r "$TMP/a" "$TMP/orig"

# 1. Refused resumes.
for bad in model.decoder_channels=48 data.synthetic.train_count=20; do
    if run --set run.work_dir="$TMP/a" --resume auto --set "$bad" >"$TMP/bad.log" 2>&1; then
        fail "--set $bad: the resume was accepted"
    fi
    cmp -s "$TMP/orig/config.yaml" "$TMP/a/config.yaml" \
        || fail "--set $bad: a refused resume rewrote config.yaml: $(diff "$TMP/orig/config.yaml" "$TMP/a/config.yaml" | grep '^>')"
done
passed=$((passed + 1))

# 2. Both checkpoints damaged: iter_2.h5 cut short, one weight of iter_4.h5 changed.
cp -r "$TMP/orig" "$TMP/b"
truncate -s 100000 "$TMP/b/iter_2.h5"
"$MV_PYTHON" - "$TMP/b/iter_4.h5" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    d = f["decode_head.conv_seg.weight"]; x = d[()]; x.flat[3] += 0.25; d[...] = x
EOF
cp -r "$TMP/b" "$TMP/b_before"
rc=0
run --set run.work_dir="$TMP/b" --resume auto >"$TMP/b.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "damaged checkpoints only: exit status $rc, not 1: $(grep -v '^\[' "$TMP/b.log" | head -3)"
grep -q "$TMP/b holds 2 checkpoints and none is whole, so --resume auto would start the run over: .*--resume PATH" "$TMP/b.log" \
    || fail "the error does not say what is wrong and what to do: $(cat "$TMP/b.log")"
grep -q "iter_4.h5: the weights do not match their checksum" "$TMP/b.log" && grep -q "iter_2.h5: " "$TMP/b.log" \
    || fail "the error does not name both files: $(cat "$TMP/b.log")"
for f in metrics.jsonl config.yaml latest iter_2.h5 iter_4.h5; do
    cmp -s "$TMP/b_before/$f" "$TMP/b/$f" || fail "the refused resume changed $f"
done
[ "$(ls "$TMP/b" | tr '\n' ' ')" = "config.yaml iter_2.h5 iter_4.h5 latest metrics.jsonl " ] || fail "files written: $(ls "$TMP/b")"
passed=$((passed + 1))

# 3. Only the newest damaged: a warning naming it, then the older one continues exactly.
cp -r "$TMP/orig" "$TMP/c"
cp "$TMP/b/iter_4.h5" "$TMP/c/iter_4.h5"
run --set run.work_dir="$TMP/c" --resume auto >"$TMP/c.log" 2>&1 || fail "resume past a damaged newest file: $(tail -3 "$TMP/c.log")"
grep -q "warning: --resume auto passed over: $TMP/c/iter_4.h5: the weights do not match their checksum" "$TMP/c.log" \
    || fail "no warning naming the damaged file: $(grep -v '^\[' "$TMP/c.log" | head -3)"
grep -q "resumed from $TMP/c/iter_2.h5 at iteration 2" "$TMP/c.log" || fail "did not resume from iter_2.h5"
compare "$TMP/full/iter_6.h5" "$TMP/c/iter_6.h5" --exact || fail "resumed past a damaged file: differs from the uninterrupted run"
cp -r "$TMP/orig" "$TMP/d"
rm "$TMP/d/iter_4.h5"
run --set run.work_dir="$TMP/d" --resume auto --stop-after 1 >"$TMP/d.log" 2>&1 || fail "resume with latest dangling: $(tail -3 "$TMP/d.log")"
grep -q "warning: --resume auto passed over: $TMP/d/latest names iter_4.h5, which does not exist" "$TMP/d.log" \
    || fail "no warning for a latest naming a deleted file: $(grep -v '^\[' "$TMP/d.log" | head -3)"
grep -q "resumed from $TMP/d/iter_2.h5 at iteration 2" "$TMP/d.log" || fail "did not resume from iter_2.h5"
passed=$((passed + 1))

# 4. best.h5 of step 2 (the only evaluation), then iter_4.h5; one weight of best.h5 zeroed.
run --set run.work_dir="$TMP/e" --set run.eval_every=2 --stop-after 2 >/dev/null
run --set run.work_dir="$TMP/e" --resume auto --stop-after 2 >/dev/null   # iter_4.h5, best record: step 2
"$MV_PYTHON" - "$TMP/e/best.h5" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    d = f["decode_head.conv_seg.weight"]; d[...] = 0
EOF
cp -r "$TMP/e" "$TMP/e2"
echo "../other/iter_5.h5" >"$TMP/e/latest"
run --set run.work_dir="$TMP/e" --resume auto --stop-after 1 >"$TMP/e.log" 2>&1 || fail "resume with a damaged best.h5: $(tail -3 "$TMP/e.log")"
grep -qF "warning: --resume auto passed over: $TMP/e/latest holds '../other/iter_5.h5', not the name of a file in $TMP/e; it continues from $TMP/e/iter_4.h5" "$TMP/e.log" \
    || fail "no warning for a latest holding a path: $(grep -v '^\[' "$TMP/e.log" | head -3)"
grep -q "warning: $TMP/e/iter_4.h5 records a best value clear/mIoU = .* (step 2), but that checkpoint is not to be found ($TMP/e/best.h5: the weights do not match their checksum" "$TMP/e.log" \
    || fail "a damaged best.h5 was adopted without a word: $(grep -v '^\[' "$TMP/e.log" | head -4)"
"$MV_PYTHON" - "$TMP/e/iter_5.h5" <<'EOF' || fail "the best record of the damaged best.h5 was kept"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    sys.exit(0 if f["train/best/step"][()] == -1 else 1)
EOF
# From iter_2.h5, the best step's own checkpoint: it replaces the damaged best.h5, with a warning.
run --set run.work_dir="$TMP/e2" --resume "$TMP/e2/iter_2.h5" --stop-after 1 >"$TMP/e2.log" 2>&1 \
    || fail "resume from the best checkpoint past a damaged best.h5: $(tail -3 "$TMP/e2.log")"
grep -qF "warning: --resume passed over a damaged best.h5: $TMP/e2/best.h5: the weights do not match their checksum" "$TMP/e2.log" \
    || fail "no warning for the damaged best.h5 replaced: $(grep -v '^\[' "$TMP/e2.log" | head -4)"
grep -qF "$TMP/e2/best.h5 is now $TMP/e2/iter_2.h5" "$TMP/e2.log" || fail "best.h5 not replaced: $(grep -v '^\[' "$TMP/e2.log" | head -4)"
cmp -s "$TMP/e2/best.h5" "$TMP/e2/iter_2.h5" || fail "best.h5 is not a copy of iter_2.h5"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
