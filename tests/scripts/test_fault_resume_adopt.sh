#!/usr/bin/env bash
# What a resume takes along and what it leaves alone:
#   1. `--resume OTHER/iter_N.h5` with a new run.work_dir takes the best.h5 that the checkpoint's
#      best bookkeeping names along: the run ended with no best.h5 at all when no later
#      evaluation beat the saved value;
#   2. after a rewind (`--resume RUN/iter_2.h5`, which wrote iter_3), a damaged iter_3 (the one
#      `latest` names) made `--resume auto` take the abandoned course's iter_6 and declare the
#      run finished; it must fall back below iter_3, to iter_2;
#   3. a `--resume OTHER/iter_4.h5` killed during its copy leaves iter_4.h5.tmp.<pid>:
#      `--resume auto` then starts from iteration 0 and must say so and why, and the temporary
#      (a full-size file) must go with the next rotation (it stayed for good);
#   4. a resume with nothing to train leaves config.yaml alone (it wrote values the run never
#      trained with);
#   5. a resume the loader refuses does not print "resumed from ... at iteration N";
#   6. after a rewind in the run's own folder, best.h5 is the rewound course's (it stayed the
#      abandoned course's).
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/fault_resume_adopt.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
SETS=("${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.eval_every=3)
run() { "$MV_BIN" train "${SETS[@]}" "$@"; }
passed=0
run --set run.work_dir="$TMP/full" >/dev/null
[ -f "$TMP/full/best.h5" ] || fail "the reference run wrote no best.h5"

# 1. Continued in another folder from iteration 6 to 7 with no learning: the best stays the
#    saved one, and best.h5 must be there.
run --set run.work_dir="$TMP/nb" --resume "$TMP/full/iter_6.h5" --set schedule.max_iters=7 --set optim.lr=1e-12 \
    >"$TMP/nb.log" 2>&1 || fail "1: $(tail -3 "$TMP/nb.log")"
[ -f "$TMP/nb/best.h5" ] || fail "1: no best.h5 in the new folder: $(ls "$TMP/nb")"
grep -q "nb/best.h5 is now $TMP/full/best.h5" "$TMP/nb.log" || fail "1: not said: $(cat "$TMP/nb.log")"
if ! grep -q "new best" "$TMP/nb.log"; then
    cmp -s "$TMP/full/best.h5" "$TMP/nb/best.h5" || fail "1: best.h5 is not the source's"
fi
# Without the source's best.h5 the bookkeeping is dropped with a warning, and the final
# evaluation writes one.
mkdir -p "$TMP/lone"
cp "$TMP/full/iter_4.h5" "$TMP/lone/"
run --set run.work_dir="$TMP/nb2" --resume "$TMP/lone/iter_4.h5" >"$TMP/nb2.log" 2>&1 || fail "1: $(tail -3 "$TMP/nb2.log")"
grep -q "warning: .*records a best value .* the record is dropped" "$TMP/nb2.log" || fail "1: no warning: $(cat "$TMP/nb2.log")"
[ -f "$TMP/nb2/best.h5" ] || fail "1: no best.h5 after the reset"
echo "1: a run continued in another folder has its best.h5"
passed=$((passed + 1))

# 2. Rewind, then the checkpoint `latest` names is damaged.
cp -r "$TMP/full" "$TMP/rwd"
run --set run.work_dir="$TMP/rwd" --resume "$TMP/rwd/iter_2.h5" --stop-after 1 --set run.ckpt_every=1 >/dev/null
[ "$(cat "$TMP/rwd/latest")" = iter_3.h5 ] || fail "2: latest: $(cat "$TMP/rwd/latest")"
head -c 5000 "$TMP/rwd/iter_3.h5" >"$TMP/x" && mv "$TMP/x" "$TMP/rwd/iter_3.h5"
run --set run.work_dir="$TMP/rwd" --resume auto >"$TMP/rwd.log" 2>&1 || fail "2: $(tail -3 "$TMP/rwd.log")"
grep -q "resumed from $TMP/rwd/iter_2.h5 at iteration 2" "$TMP/rwd.log" || fail "2: $(cat "$TMP/rwd.log")"
grep -q "passed over: .*iter_3.h5.*above iter_3.h5, which latest names" "$TMP/rwd.log" || fail "2: no warning: $(cat "$TMP/rwd.log")"
compare "$TMP/full/iter_6.h5" "$TMP/rwd/iter_6.h5" --exact || fail "2: differs from the uninterrupted run"
echo "2: a damaged checkpoint after a rewind falls back below it"
passed=$((passed + 1))

# 3. The debris of an adoption's copy killed half-way (a process that is gone).
sh -c 'exit 0' & dead=$!; wait $dead
mkdir -p "$TMP/ad"
head -c 100000 "$TMP/full/iter_4.h5" >"$TMP/ad/iter_4.h5.tmp.$dead"
run --set run.work_dir="$TMP/ad" --resume auto >"$TMP/ad.log" 2>&1 || fail "3: $(tail -3 "$TMP/ad.log")"
grep -q "found no checkpoint in $TMP/ad, so this run starts from iteration 0; passed over: .*iter_4.h5.tmp.$dead.*did not complete" \
    "$TMP/ad.log" || fail "3: not said: $(cat "$TMP/ad.log")"
[ ! -e "$TMP/ad/iter_4.h5.tmp.$dead" ] || fail "3: the copy's temporary is still there"
echo "3: an unfinished adoption is reported and its temporary removed"
passed=$((passed + 1))

# 4. Nothing to train: config.yaml stays as the run trained.
cp -r "$TMP/full" "$TMP/fin"
cp "$TMP/fin/config.yaml" "$TMP/fin.yaml"
cp "$TMP/fin/metrics.jsonl" "$TMP/fin.jsonl"
run --set run.work_dir="$TMP/fin" --resume auto --set optim.lr=1e-3 >"$TMP/fin.log" 2>&1 || fail "4: $(tail -3 "$TMP/fin.log")"
grep -q "nothing to train" "$TMP/fin.log" || fail "4: $(cat "$TMP/fin.log")"
cmp -s "$TMP/fin.yaml" "$TMP/fin/config.yaml" || fail "4: config.yaml rewritten: $(diff "$TMP/fin.yaml" "$TMP/fin/config.yaml")"
cmp -s "$TMP/fin.jsonl" "$TMP/fin/metrics.jsonl" || fail "4: metrics.jsonl changed: $(diff "$TMP/fin.jsonl" "$TMP/fin/metrics.jsonl")"
#    The same from an earlier checkpoint at a max_iters lowered to it: the later records stay
#    (they were cut, leaving the log behind `latest` for good).
cp "$TMP/fin/latest" "$TMP/fin.latest"
run --set run.work_dir="$TMP/fin" --resume "$TMP/fin/iter_4.h5" --set schedule.max_iters=4 >"$TMP/fin4.log" 2>&1 \
    || fail "4: $(tail -3 "$TMP/fin4.log")"
grep -q "nothing to train" "$TMP/fin4.log" || fail "4: $(cat "$TMP/fin4.log")"
cmp -s "$TMP/fin.jsonl" "$TMP/fin/metrics.jsonl" || fail "4: metrics.jsonl cut: $(diff "$TMP/fin.jsonl" "$TMP/fin/metrics.jsonl")"
cmp -s "$TMP/fin.latest" "$TMP/fin/latest" || fail "4: latest changed"
echo "4: a resume with nothing to train leaves config.yaml and metrics.jsonl alone"
passed=$((passed + 1))

# 5. A changed sample count: refused by the loader, with no "resumed from" line.
if run --set run.work_dir="$TMP/sc" --resume "$TMP/full/iter_4.h5" --set data.synthetic.train_count=20 \
    >"$TMP/sc.log" 2>&1; then fail "5: accepted"; fi
if grep -q "resumed from" "$TMP/sc.log"; then fail "5: $(cat "$TMP/sc.log")"; fi
grep -q "cannot resume: loader: the training sources hold 20 samples per epoch (repeats counted) where the stream being continued had 16: the training data changed.*--set run.init_weights=CHECKPOINT" \
    "$TMP/sc.log" || fail "5: the refusal does not say what changed: $(tail -2 "$TMP/sc.log")"
echo "5: a refused resume says the training data changed, and does not say it resumed"
passed=$((passed + 1))
# 6. A rewind in the run's own folder: the abandoned course's best.h5 (step 6) is replaced by the
#    checkpoint the rewound course records (it stayed, a model this course never produced), and
#    a rewind to a checkpoint that records no best yet removes it.
run --set run.eval_every=2 --set run.work_dir="$TMP/rb" >/dev/null
run --set run.eval_every=2 --set run.work_dir="$TMP/rb" --resume "$TMP/rb/iter_2.h5" --set optim.lr=1e-12 \
    --set schedule.max_iters=4 >"$TMP/rb.log" 2>&1 || fail "6: $(tail -3 "$TMP/rb.log")"
"$MV_PYTHON" - "$TMP/rb/best.h5" "$TMP/rb/iter_4.h5" <<'PY' || fail "6: best.h5 is not this course's: $(cat "$TMP/rb.log")"
import sys, h5py
with h5py.File(sys.argv[1]) as b, h5py.File(sys.argv[2]) as c:
    step, recorded = int(b["train/step"][()]), int(c["train/best/step"][()])
    print("best.h5 step", step, "recorded", recorded)
    assert step == recorded and step <= 4, (step, recorded)
PY
run --set run.work_dir="$TMP/rb0" >/dev/null
run --set run.work_dir="$TMP/rb0" --resume "$TMP/rb0/iter_2.h5" --stop-after 1 >"$TMP/rb0.log" 2>&1 ||
    fail "6: $(tail -3 "$TMP/rb0.log")"
grep -q "removed $TMP/rb0/best.h5: it is of another course" "$TMP/rb0.log" || fail "6: $(cat "$TMP/rb0.log")"
# (its evaluation at iteration 3 then writes this course's)
"$MV_PYTHON" -c "import sys, h5py; s = int(h5py.File(sys.argv[1])['train/step'][()]); assert s == 3, s" \
    "$TMP/rb0/best.h5" || fail "6: best.h5 is not the rewound course's"
echo "6: after a rewind best.h5 is the rewound course's"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
