#!/usr/bin/env bash
# What training checks before its first step, and what an evaluation that cannot run keeps:
# 1. a data.val path that does not exist is refused at start-up, naming the source (it was met
#    at the first evaluation, after eval_every iterations of training);
# 2. a training split converted for more classes than model.num_classes is refused at start-up,
#    naming the source and both counts (it was met at the first batch holding such a label);
# 3. a data.scale so large that the evaluation's image buffers cannot be allocated (sliding
#    windows: in whole-image mode such a scale is refused by the configuration check): the
#    evaluation fails with a message naming data.scale, and the trained iterations are saved in
#    a checkpoint that `--resume auto` continues from (the allocation aborted the process and
#    the run lost everything);
# 4. the sources named at the start; a warning when one list is real data and the other only the
#    synthetic defaults.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
source "$(dirname "$0")/memory_limit.sh"
T="$MV_TEST_TMP/train_startup_checks.$$"; rm -rf "$T"; mkdir -p "$T"
fail() { echo "FAIL: $*"; exit 1; }
trap 'rm -rf "$T"' EXIT
sets=("${TRAIN_SETS[@]}" --set schedule.max_iters=3 --set run.eval_every=2)

# 1.
rc=0
"$MV_BIN" train "${sets[@]}" --set "data.val=[synthetic:clear,$T/nowhere/val]" --set run.work_dir="$T/noval" \
    >"$T/noval.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "missing data.val: exit $rc: $(tail -3 "$T/noval.log")"
grep -q "data.val 'nowhere': $T/nowhere/val/manifest.json: cannot open" "$T/noval.log" || fail "message: $(tail -3 "$T/noval.log")"
! grep -q "^\[iter" "$T/noval.log" || fail "trained before refusing: $(grep "^\[iter" "$T/noval.log" | head -2)"

# 2.
rc=0
"$MV_BIN" train "${sets[@]}" --set model.num_classes=7 --set run.work_dir="$T/k7" >"$T/k7.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "7 classes: exit $rc: $(tail -3 "$T/k7.log")"
grep -q "data.train 'clear' (.*): its labels are 19 classes (manifest.json) but model.num_classes is 7: labels 7..18 would have no class of the model to train" \
    "$T/k7.log" || fail "message: $(tail -3 "$T/k7.log")"
! grep -q "^\[iter" "$T/k7.log" || fail "trained before refusing"

# 4. The sources are named at the start, and a real training split validated only on the
#    built-in synthetic domains (data.val's default when an experiment file forgets it) is warned
#    about.
"$MV_BIN" data synth --out "$T/gen" --domains clear --count 16 --size 64x128 --split train >/dev/null 2>&1 ||
    fail "data synth"
"$MV_BIN" train "${sets[@]}" --set schedule.max_iters=1 --set schedule.warmup_iters=0 --set "data.train=[{name: real, path: $T/gen/clear/train}]" \
    --set "data.val=[synthetic:clear,synthetic:fog]" --set run.work_dir="$T/mixed" >"$T/mixed.log" 2>&1 ||
    fail "real train, synthetic val: $(tail -3 "$T/mixed.log")"
grep -q "^maskvim train: data: train real | val clear, fog$" "$T/mixed.log" || fail "data line: $(head -4 "$T/mixed.log")"
grep -q "warning: data.train is real data but every data.val source is a built-in synthetic domain" "$T/mixed.log" ||
    fail "no warning: $(head -4 "$T/mixed.log")"
"$MV_BIN" train "${sets[@]}" --set schedule.max_iters=1 --set schedule.warmup_iters=0 --set run.work_dir="$T/synth" >"$T/synth.log" 2>&1 ||
    fail "synthetic run: $(tail -3 "$T/synth.log")"
! grep -q "warning" "$T/synth.log" || fail "a warning for an all-synthetic run: $(grep warning "$T/synth.log")"

# 3. In whole-image mode such a scale is refused up front.
rc=0
"$MV_BIN" train "${sets[@]}" --set data.scale=65536,65536 --set run.work_dir="$T/huge_whole" >"$T/hw.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || [ "$rc" -eq 1 ] || fail "huge data.scale, whole: exit $rc"
grep -q "data.scale 65536,65536: a whole-image evaluation of an image fitted to it takes up to 1.29e+10 values" "$T/hw.log" ||
    fail "whole-mode scale: $(tail -2 "$T/hw.log")"
# (Under a memory limit: with enough memory the buffers would be allocated and filled.)
rc=0
with_memory_limit "$MV_BIN" train "${sets[@]}" --set data.scale=65536,65536 --set data.test_mode=slide \
    --set run.ckpt_every=0 --set run.work_dir="$T/huge" >"$T/huge.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "huge data.scale: exit $rc: $(tail -3 "$T/huge.log")"
grep -q "the evaluation at iteration 2 failed: evaluating clear: loader: out of memory for test images fitted to data.scale 65536,65536" \
    "$T/huge.log" || fail "message: $(tail -3 "$T/huge.log")"
[ "$(cat "$T/huge/latest")" = iter_2.h5 ] || fail "the trained iterations were not saved: $(ls "$T/huge")"
"$MV_BIN" train "${sets[@]}" --set run.ckpt_every=0 --set run.work_dir="$T/huge" --resume auto >"$T/resume.log" 2>&1 ||
    fail "resume with data.scale back: $(tail -3 "$T/resume.log")"
grep -q "the evaluation at iteration 2 did not complete before: running it now" "$T/resume.log" ||
    fail "the resume did not run the evaluation first: $(head -5 "$T/resume.log")"
[ "$(cat "$T/huge/latest")" = iter_3.h5 ] || fail "the resumed run did not finish: $(ls "$T/huge")"
echo "PASS: test_train_startup_checks"
