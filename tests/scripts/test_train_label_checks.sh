#!/usr/bin/env bash
# Labels that training cannot use, named where they are met:
# 1. a training split whose labels are not the model's classes though its manifest says they are
#    (a split written by another tool): the run stops at that batch naming the split, the sample
#    and the label value (the model's own check could only give an image index within the
#    batch), before any update;
# 2. a validation split without a labelled pixel (every label 255): its evaluation warns, the
#    closing summary shows '-' for it and for the target mean (not nan), and, as the selection
#    domain, the warning says that best.h5 cannot be chosen on it.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
T="$MV_TEST_TMP/train_label_checks.$$"; rm -rf "$T"; mkdir -p "$T"
fail() { echo "FAIL: $*"; exit 1; }
trap 'rm -rf "$T"' EXIT

# 1. A split whose manifest says 5 classes (written by another tool) but whose labels go to 18:
#    the start-up check (manifest against model) passes a 5-class model, the batch check stops it.
#    (A split that says 19 classes is refused at start-up: test_train_startup_checks.)
"$MV_BIN" data synth --out "$T/gen" --domains clear --count 16 --size 64x128 --split train >/dev/null 2>&1 ||
    fail "data synth"
mv "$T/gen/clear/train" "$T/five"
sed -i 's/"num_classes": 19/"num_classes": 5/' "$T/five/manifest.json"
grep -q '"num_classes": 5' "$T/five/manifest.json" || fail "could not patch the manifest"
rc=0
"$MV_BIN" train "${TRAIN_SETS[@]}" --set model.num_classes=5 --set "data.train=[$T/five]" --set "data.val=[]" \
    --set run.work_dir="$T/k5" >"$T/k5.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "5 classes on 19-class labels: exit $rc: $(tail -3 "$T/k5.log")"
grep -q "iteration 1: its batch is unusable: .*five: sample [0-9]* ([^)]*): label [0-9]* ([0-9]* pixels\? of its training crop) is neither a class 0..4 of model.num_classes 5 nor 255" "$T/k5.log" ||
    fail "message: $(tail -3 "$T/k5.log")"
! ls "$T/k5"/iter_*.h5 >/dev/null 2>&1 || fail "a checkpoint was written with nothing trained"

# 2. A Cityscapes split of two images whose label ids are all 0 (unlabeled: 255 after conversion).
"$MV_PYTHON" - "$T" <<'PY'
import os, sys
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import unlabelled_cityscapes
unlabelled_cityscapes(sys.argv[1])
PY
"$MV_BIN" data convert --dataset cityscapes --root "$T/cs" --split val --out "$T/blank" --workers 1 >/dev/null 2>&1 ||
    fail "convert"
sets=("${TRAIN_SETS[@]}" --set schedule.max_iters=3 --set "data.val=[synthetic:clear,$T/blank]")
"$MV_BIN" train "${sets[@]}" --set run.work_dir="$T/blank_target" >"$T/bt.log" 2>&1 || fail "train: $(tail -3 "$T/bt.log")"
grep -q "warning: blank: no labelled pixel (every label is ignore, 255): no metric to report$" "$T/bt.log" ||
    fail "no warning: $(grep -i blank "$T/bt.log")"
grep -q "^mIoU after 3 iterations: source clear [0-9.]* | targets blank - | target mean -$" "$T/bt.log" ||
    fail "summary: $(grep "mIoU after" "$T/bt.log")"
! grep -qw "nan" "$T/bt.log" || fail "nan printed: $(grep -w nan "$T/bt.log")"
"$MV_BIN" train "${sets[@]}" --set run.select_domain=blank --set run.work_dir="$T/blank_sel" >"$T/bs.log" 2>&1 ||
    fail "train (selection): $(tail -3 "$T/bs.log")"
grep -q "warning: blank: no labelled pixel .*; best.h5 cannot be chosen on it (run.select_domain)" "$T/bs.log" ||
    fail "selection warning: $(grep -i blank "$T/bs.log")"
[ ! -e "$T/blank_sel/best.h5" ] || fail "best.h5 written"
echo "PASS: test_train_label_checks"
