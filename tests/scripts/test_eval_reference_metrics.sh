#!/usr/bin/env bash
# `maskvim eval --json` end to end against mmseg's IoUMetric written out in numpy (docs/metrics.md)
# on the predictions `maskvim predict --format trainid` writes for the same images:
# a converted Cityscapes-layout split of images of several sizes (one under 32 on a side after
# the test resize, one whose label has ignore pixels), in whole and in slide mode (windows that
# overlap, a stride that does not divide the image, an image narrower than a window on one
# side only). A 19-class model checks classes absent from the labels and/or the predictions
# (NaN, left out of the means, null in the JSON); a 7-class model on the same 19-class labels
# checks labels outside 0..C-1 that are not 255 (not ignored: they enlarge the predicted
# class's union, and stay out of aAcc). Then a split whose labels are all outside a 7-class
# model's classes: mIoU is defined (0) while mAcc and aAcc are not, and the summary row printed
# "nan" for them (it prints '-', with a warning).
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
T="$MV_TEST_TMP/eval_reference_metrics"; rm -rf "$T"; mkdir -p "$T"
fail() { echo "FAIL: $*"; exit 1; }

# Cityscapes label ids: 7 road, 8 sidewalk, 11 building, 21 vegetation, 23 sky, 26 car; 0 and
# 4 are unlabeled/static (255 after conversion).
"$MV_PYTHON" - "$T" <<'PY'
import os, sys, numpy as np
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import png
d = sys.argv[1]
rng = np.random.default_rng(7)
def write(root, i, h, w, ids):
    stem = f"aachen/aachen_{i:06d}_000019"
    lab = np.zeros((h, w), np.uint8)
    for q, v in enumerate(ids):   # horizontal bands, plus noise so every image mixes classes
        lab[q * h // len(ids):(q + 1) * h // len(ids)] = v
    noise = rng.random((h, w)) < 0.2
    lab[noise] = rng.choice(ids, noise.sum())
    png(f"{root}/leftImg8bit/val/{stem}_leftImg8bit.png", rng.integers(0, 256, (h, w, 3)))
    png(f"{root}/gtFine/val/{stem}_gtFine_labelIds.png", lab)
# data.scale 128x64 below: 40x77 -> 40x77, 53x31 -> 64x37, 64x128 -> 64x128, 150x20 -> 128x17.
for i, (h, w, ids) in enumerate([(40, 77, [7, 8, 0]), (53, 31, [11, 26, 23]), (64, 128, [7, 21, 26, 4]),
                                 (150, 20, [23, 8])]):
    write(f"{d}/cs", i, h, w, ids)
for i, (h, w) in enumerate([(40, 77), (48, 64)]):   # only sky and car: train ids 10 and 13
    write(f"{d}/high", i, h, w, [23, 26])
PY
"$MV_BIN" data convert --dataset cityscapes --root "$T/cs" --split val --out "$T/val" --workers 1 >/dev/null 2>&1 \
    || fail "convert"
"$MV_BIN" data convert --dataset cityscapes --root "$T/high" --split val --out "$T/high_val" --workers 1 >/dev/null 2>&1 \
    || fail "convert (high)"
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 3 --init-out "$T/w19.h5" >/dev/null 2>&1
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --set model.num_classes=7 --seed 4 --init-out "$T/w7.h5" \
    >/dev/null 2>&1

check() {   # check NAME CLASSES WEIGHTS MODE_SETS...: eval and predict, then the numpy reference
    local name=$1 classes=$2 weights=$3; shift 3
    local sets=(--set model.preset=maskvim-nano --set model.crop=64,64 --set model.num_classes="$classes"
                --set data.scale=128,64 --set data.workers=1 --set "data.val=[$T/val]" "$@")
    "$MV_BIN" eval --checkpoint "$weights" "${sets[@]}" --json "$T/$name.json" >"$T/$name.out" 2>"$T/$name.err" \
        || fail "$name: eval: $(cat "$T/$name.err")"
    "$MV_BIN" predict --checkpoint "$weights" "${sets[@]}" --input "$T/cs/leftImg8bit/val" --out "$T/$name" \
        --format trainid >"$T/$name.plog" 2>&1 || fail "$name: predict: $(cat "$T/$name.plog")"
    "$MV_PYTHON" - "$T" "$name" "$classes" <<'PY' || fail "$name: eval --json differs from the reference"
import glob, json, os, sys, numpy as np
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import read_png
t, name, C = sys.argv[1], sys.argv[2], int(sys.argv[3])
train = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
         27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
lut = np.full(256, 255, np.uint8)
for k, v in train.items():
    lut[k] = v
def histc(x):   # torch.histc(x, bins=C, min=0, max=C-1): values outside [0, C-1] dropped
    return np.bincount(x[(x >= 0) & (x < C)], minlength=C).astype(np.float64)
inter, area_pred, area_gt = np.zeros(C), np.zeros(C), np.zeros(C)
outside = 0
for g in sorted(glob.glob(f"{t}/cs/gtFine/val/*/*_labelIds.png")):
    stem = os.path.basename(g).replace("_gtFine_labelIds.png", "_leftImg8bit")
    label = lut[read_png(g)].astype(np.int64)
    pred = read_png(f"{t}/{name}/{stem}_trainid.png").astype(np.int64)
    assert pred.shape == label.shape, (stem, pred.shape, label.shape)
    keep = label != 255                      # IoUMetric: mask = label != ignore_index
    p, l = pred[keep], label[keep]
    inter += histc(p[p == l]); area_pred += histc(p); area_gt += histc(l)
    outside += int((l >= C).sum())
with np.errstate(invalid="ignore", divide="ignore"):
    iou = 100 * inter / (area_pred + area_gt - inter)
    acc = 100 * inter / area_gt
    aacc = 100 * inter.sum() / area_gt.sum()
res = json.load(open(f"{t}/{name}.json"))["results"]
assert len(res) == 1, res
m = res[0]["metrics"]
def same(a, b):   # NaN <-> null
    return np.isnan(a) if b is None else abs(a - b) < 1e-9
bad = []
for key, ref in (("mIoU", np.nanmean(iou)), ("mAcc", np.nanmean(acc)), ("aAcc", aacc)):
    if not same(ref, m[key]): bad.append(f"{key}: ours {m[key]}, reference {ref}")
names = list(m["IoU"])
assert len(names) == C and list(m["Acc"]) == names, names
for k in range(C):
    if not same(iou[k], m["IoU"][names[k]]): bad.append(f"IoU {names[k]}: ours {m['IoU'][names[k]]}, reference {iou[k]}")
    if not same(acc[k], m["Acc"][names[k]]): bad.append(f"Acc {names[k]}: ours {m['Acc'][names[k]]}, reference {acc[k]}")
if m["valid_classes"] != int((~np.isnan(iou)).sum()): bad.append(f"valid_classes {m['valid_classes']}")
# The case must test what it claims: absent classes (NaN and 0 IoU) or out-of-range labels.
if C == 19 and not (np.isnan(iou).any() and np.isnan(acc).any() and (~np.isnan(iou) & np.isnan(acc)).any()):
    bad.append("no class absent from both, or predicted but never labelled: the case tests nothing")
if C < 19 and outside == 0: bad.append("no label outside the classes: the case tests nothing")
print("\n".join(bad) or f"{name}: mIoU {m['mIoU']:.4f} mAcc {m['mAcc']:.4f} aAcc {m['aAcc']:.4f} as the reference")
sys.exit(1 if bad else 0)
PY
    grep -qi "nan" "$T/$name.out" && fail "$name: the table prints nan: $(cat "$T/$name.out")"
    return 0
}
slide=(--set data.test_mode=slide --set data.test_crop=48,48 --set data.test_stride=20,30)
check whole19 19 "$T/w19.h5"
check slide19 19 "$T/w19.h5" "${slide[@]}"
check whole7 7 "$T/w7.h5"
check slide7 7 "$T/w7.h5" "${slide[@]}"

# Every label outside a 7-class model's classes: mIoU 0 (classes predicted, never labelled),
# mAcc and aAcc undefined: '-' in the row (it printed "nan"), null in the JSON, and a warning.
sets=(--set model.preset=maskvim-nano --set model.crop=64,64 --set model.num_classes=7 --set data.scale=128,64
      --set data.workers=1 --set "data.val=[$T/high_val]")
"$MV_BIN" eval --checkpoint "$T/w7.h5" "${sets[@]}" --json "$T/high.json" --per-class >"$T/high.out" 2>"$T/high.err" \
    || fail "all labels out of range: $(cat "$T/high.err")"
grep -qi "nan" "$T/high.out" && fail "the table prints nan: $(cat "$T/high.out")"
grep -q "^high_val  *mIoU   0.00  mAcc      -  aAcc      -$" "$T/high.out" || fail "summary row: $(cat "$T/high.out")"
grep -q "no label is one of the model's 7 classes" "$T/high.err" || fail "no warning: $(cat "$T/high.err")"
grep -q '"mIoU": 0, "mAcc": null, "aAcc": null' "$T/high.json" || fail "json: $(cat "$T/high.json")"
echo "5 passed, 0 failed"
