#!/usr/bin/env bash
# maskvim eval and predict on a freshly trained tiny model: per-domain results and Cityscapes-C
# columns in the JSON, bad arguments refused, prediction and mask PNGs of the input's size, the
# three output formats pixel by pixel, folders as inputs.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
TMP="$MV_TEST_TMP/eval_predict"; rm -rf "$TMP"; mkdir -p "$TMP"
fail() { echo "FAIL: $*"; exit 1; }
"$MV_BIN" train "${TRAIN_SETS[@]}" --set schedule.max_iters=3 --set schedule.warmup_iters=1 \
    --set data.val=[synthetic:clear,synthetic:fog] --set run.work_dir="$TMP/run" >"$TMP/train.log"
grep -q "target mean" "$TMP/train.log" || fail "no source/target summary: $(tail -3 "$TMP/train.log")"
sets=(--set model.crop=64,64 --set data.synthetic.size=64,128 --set data.scale=128,64 --set data.synthetic.val_count=2
      --set data.val=[synthetic:clear,synthetic:fog])
"$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --corruptions gaussian_noise,jpeg_compression \
    --severities 1,5 --json "$TMP/eval.json" >"$TMP/eval.log"
"$MV_PYTHON" - "$TMP/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
# 2 domains x (clean + 2 corruptions x 2 severities)
assert len(r) == 10, len(r)
assert {x["corruption"] for x in r} == {"none", "gaussian_noise", "jpeg_compression"}
assert all(0 <= x["metrics"]["mIoU"] <= 100 for x in r)
print("eval json ok")
PY
# The corrupted images do not depend on the run's seed (every model scored on the same images);
# --corruption-seed picks another draw.
"$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --corruptions gaussian_noise --set run.seed=7 \
    --json "$TMP/seed7.json" >/dev/null 2>&1 || fail "eval with another run.seed"
"$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --corruptions gaussian_noise --corruption-seed 3 \
    --json "$TMP/cseed3.json" >/dev/null 2>&1 || fail "eval --corruption-seed 3"
"$MV_PYTHON" - "$TMP/eval.json" "$TMP/seed7.json" "$TMP/cseed3.json" <<'PY'
import json, sys
def noise5(p):
    return {x["domain"]: x["metrics"] for x in json.load(open(p))["results"]
            if x["corruption"] == "gaussian_noise" and x["severity"] == 5}
a, b, c = (noise5(p) for p in sys.argv[1:])
assert a == b, ("run.seed changed the corrupted images", a, b)
assert any(a[d]["aAcc"] != c[d]["aAcc"] for d in a), ("--corruption-seed changed nothing", a, c)
print("corruption seed ok")
PY
# On-the-fly corruption scores the images `maskvim data corrupt` writes (same seed), in RGB and,
# with --corruption-bgr / --bgr, in HGFormer's BGR order; the JSON says which order and seed.
"$MV_BIN" data synth --out "$TMP/split" --count 3 --size 64x128 --domains clear --split val >/dev/null 2>&1 || fail "data synth"
for order in rgb bgr; do
    flag=(); [ $order = rgb ] || flag=(--bgr)
    "$MV_BIN" data corrupt --in "$TMP/split/clear/val" --out "$TMP/corrupt_$order" --corruption saturate,jpeg_compression \
        --severity 5 "${flag[@]}" >/dev/null 2>&1 || fail "data corrupt ${flag[*]}"
    flag=(); [ $order = rgb ] || flag=(--corruption-bgr)
    "$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --set "data.val=[$TMP/split/clear/val]" \
        --corruptions saturate,jpeg_compression "${flag[@]}" --json "$TMP/fly_$order.json" >/dev/null 2>&1 \
        || fail "eval --corruptions ${flag[*]}"
    for c in saturate jpeg_compression; do
        "$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --set "data.val=[$TMP/corrupt_$order/$c/5]" \
            --json "$TMP/written_${order}_$c.json" >/dev/null 2>&1 || fail "eval of the written $order $c split"
    done
done
"$MV_PYTHON" - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
per = {}
for order in ("rgb", "bgr"):
    fly = json.load(open(f"{tmp}/fly_{order}.json"))
    assert fly["corruption_channels"] == order and fly["corruption_seed"] == 0, fly
    for c in ("saturate", "jpeg_compression"):
        got = [x["metrics"] for x in fly["results"] if x["corruption"] == c]
        want = json.load(open(f"{tmp}/written_{order}_{c}.json"))["results"][0]["metrics"]
        for m in got + [want]:
            m.pop("domain")   # the label: "clear/saturate/5" on the fly, the split's own name written
        assert len(got) == 1 and got[0] == want, (order, c, got, want)
        per[order, c] = want
# the order changes the images: at least one of the two scores moves
assert any(per["rgb", c] != per["bgr", c] for c in ("saturate", "jpeg_compression")), per
print("on-the-fly corruption = written corruption, rgb and bgr")
PY
if "$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --corruption-bgr >"$TMP/bad.log" 2>&1; then
    fail "--corruption-bgr without --corruptions accepted"; fi
grep -q -- "--corruption-bgr needs --corruptions" "$TMP/bad.log" || fail "$(cat "$TMP/bad.log")"
if "$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --corruption-seed 3 >"$TMP/bad.log" 2>&1; then
    fail "--corruption-seed without --corruptions accepted"; fi
if "$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --corruptions nosuch >"$TMP/bad.log" 2>&1; then fail "unknown corruption accepted"; fi
grep -q "nosuch" "$TMP/bad.log" || fail "the error does not name the corruption: $(cat "$TMP/bad.log")"
if "$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --targets nowhere >"$TMP/bad.log" 2>&1; then fail "unknown target accepted"; fi
"$MV_BIN" data synth --preview "$TMP/in.png" --domains rain --size 64x128 --preview-count 1 >/dev/null 2>&1
"$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/in.png" --out "$TMP/pred" --masks >"$TMP/masks.log"
grep -q "in_pred.png and 7 token-mask images (.*/pred/in_mask_\*.png)$" "$TMP/masks.log" ||
    fail "the progress line does not list the masks: $(cat "$TMP/masks.log")"
n=$(ls "$TMP/pred" | wc -l)
[ "$n" -eq 8 ] || fail "expected 1 prediction + 7 mask images, got $n"
"$MV_PYTHON" - "$TMP/in.png" "$TMP/pred/in_pred.png" <<'PY'
import sys, struct
def size(p):
    with open(p, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", p
    return struct.unpack(">II", head[16:24])
assert size(sys.argv[1]) == size(sys.argv[2]), (size(sys.argv[1]), size(sys.argv[2]))
print("prediction size ok")
PY
# Inputs that would overwrite each other's prediction are refused before anything is written;
# a nested --out folder is created with its parents.
mkdir -p "$TMP/other"; cp "$TMP/in.png" "$TMP/other/in.png"
if "$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/in.png" "$TMP/other/in.png" \
    --out "$TMP/dup" >"$TMP/bad.log" 2>&1; then fail "two inputs named in.png accepted"; fi
grep -q "in_pred.png" "$TMP/bad.log" || fail "the error does not name the clash: $(cat "$TMP/bad.log")"
[ ! -e "$TMP/dup" ] || fail "the refused prediction created its --out folder"
"$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/in.png" --out "$TMP/deep/er/pred" >/dev/null 2>&1 \
    || fail "a nested --out folder was not created"
[ -f "$TMP/deep/er/pred/in_pred.png" ] || fail "no prediction in the nested --out folder"
# --out that is an input folder is refused (its predictions were read back as inputs by the next
# run, and one was written over an image named in_pred.png); so is an input file in --out that
# a prediction would replace. Nothing is written.
mkdir -p "$TMP/same"; cp "$TMP/in.png" "$TMP/same/in.png"; cp "$TMP/in.png" "$TMP/same/in_pred.png"
sum_before=$(md5sum "$TMP/same/in_pred.png")
if "$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/same" --out "$TMP/same" \
    >"$TMP/bad.log" 2>&1; then fail "--out equal to the input folder accepted"; fi
grep -q "is the input folder" "$TMP/bad.log" || fail "the error does not say why: $(cat "$TMP/bad.log")"
if "$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/same/in.png" "$TMP/same/in_pred.png" \
    --out "$TMP/same" >"$TMP/bad.log" 2>&1; then fail "an input that a prediction replaces accepted"; fi
grep -q "the input .*same/in_pred.png is in --out and is a file the prediction of .*same/in.png writes" "$TMP/bad.log" ||
    fail "the error does not name both: $(cat "$TMP/bad.log")"
[ "$(md5sum "$TMP/same/in_pred.png")" = "$sum_before" ] && [ "$(ls "$TMP/same" | wc -l)" -eq 2 ] ||
    fail "a refused prediction wrote into $TMP/same: $(ls "$TMP/same")"
# Sliding windows: a window the size of the image gives the whole-image results exactly; 48x64
# windows (two by three over 64x128) evaluate too; --masks is refused with slide.
"$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --json "$TMP/whole.json" >/dev/null 2>&1
"$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --set data.test_mode=slide --set data.test_crop=64,128 \
    --json "$TMP/slide1.json" >/dev/null 2>&1 || fail "slide eval (one window) failed"
"$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --set data.test_mode=slide --set data.test_crop=48,64 \
    --set data.test_stride=16,32 --json "$TMP/slide.json" >"$TMP/slide.log" 2>&1 || fail "slide eval failed: $(tail -3 "$TMP/slide.log")"
"$MV_PYTHON" - "$TMP/whole.json" "$TMP/slide1.json" "$TMP/slide.json" <<'PY'
import json, sys
w, one, many = (json.load(open(p))["results"] for p in sys.argv[1:])
key = lambda r: [(x["domain"], x["metrics"]["mIoU"], x["metrics"]["aAcc"]) for x in r]
assert key(w) == key(one), (key(w), key(one))
assert all(0 <= x["metrics"]["mIoU"] <= 100 for x in many)
print("slide ok")
PY
if "$MV_BIN" eval --checkpoint "$TMP/run/best.h5" "${sets[@]}" --set data.test_mode=slide --set data.test_stride=80,10 \
    >"$TMP/bad.log" 2>&1; then fail "a stride larger than the window accepted"; fi
grep -q "test_stride" "$TMP/bad.log" || fail "the error does not name data.test_stride: $(cat "$TMP/bad.log")"
if "$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --set data.test_mode=slide --input "$TMP/in.png" \
    --out "$TMP/pred_slide" --masks >"$TMP/bad.log" 2>&1; then fail "--masks accepted with slide"; fi
"$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --set data.test_mode=slide --input "$TMP/in.png" \
    --out "$TMP/pred_slide" >/dev/null 2>&1 || fail "slide predict failed"
[ -f "$TMP/pred_slide/in_pred.png" ] || fail "no slide prediction"
# Folders as inputs (every image below, hidden files and other files skipped) and the three
# formats: the colour, train id and label id files of one image agree pixel by pixel.
mkdir -p "$TMP/tree/a" "$TMP/tree/b/c" "$TMP/tree/.hidden" "$TMP/empty"
cp "$TMP/in.png" "$TMP/tree/a/one.png"; cp "$TMP/in.png" "$TMP/tree/b/c/two.PNG"
cp "$TMP/in.png" "$TMP/tree/.hidden/three.png"; echo text >"$TMP/tree/b/notes.txt"
"$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/tree" --out "$TMP/fmt" \
    --format color,trainid,labelid >"$TMP/fmt.log" 2>&1 || fail "predict over a folder failed: $(tail -3 "$TMP/fmt.log")"
got=$(cd "$TMP/fmt" && ls | tr '\n' ' ')
[ "$got" = "one_labelid.png one_pred.png one_trainid.png two_labelid.png two_pred.png two_trainid.png " ] \
    || fail "unexpected files from the folder: $got"
grep -q "\[2/2\]" "$TMP/fmt.log" || fail "no per-image progress: $(cat "$TMP/fmt.log")"
"$MV_PYTHON" - "$MV_SRC/tests/scripts" "$TMP/fmt" "$TMP/in.png" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from png_fixture import read_png
d = sys.argv[2]
palette = np.array([(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
                    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
                    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)])
# Cityscapes' labels.py: the label id of each train id 0..18.
label_id = np.array([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33])
for name in ("one", "two"):
    t = read_png(f"{d}/{name}_trainid.png")
    assert t.shape == read_png(sys.argv[3]).shape[:2], t.shape
    assert t.max() < 19, t.max()
    assert (read_png(f"{d}/{name}_labelid.png") == label_id[t]).all(), name
    assert (read_png(f"{d}/{name}_pred.png") == palette[t]).all(), name
print("formats ok")
PY
# An image that does not read is named and skipped; the others are predicted; the exit status is 1.
mkdir -p "$TMP/some_bad"; cp "$TMP/in.png" "$TMP/some_bad/a.png"; cp "$TMP/in.png" "$TMP/some_bad/c.png"
head -c 300 "$TMP/in.png" >"$TMP/some_bad/b.png"
rc=0
"$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/some_bad" --out "$TMP/some_pred" \
    >"$TMP/some.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "a folder with an unreadable image: exit $rc: $(tail -3 "$TMP/some.log")"
grep -q "\[2/3\] skipped: .*some_bad/b.png" "$TMP/some.log" || fail "the bad image is not named: $(cat "$TMP/some.log")"
grep -q "1 of 3 input images could not be read" "$TMP/some.log" || fail "no summary: $(tail -3 "$TMP/some.log")"
got=$(cd "$TMP/some_pred" && ls | tr '\n' ' ')
[ "$got" = "a_pred.png c_pred.png " ] || fail "the readable images' predictions: $got"
for bad in "--format colour" "--format ,"; do
  # shellcheck disable=SC2086
  if "$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/in.png" --out "$TMP/bad" $bad \
      >"$TMP/bad.log" 2>&1; then fail "$bad accepted"; fi
  grep -q "format" "$TMP/bad.log" || fail "the error does not name --format: $(cat "$TMP/bad.log")"
done
if "$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --set model.num_classes=7 --input "$TMP/in.png" \
    --out "$TMP/bad" --format labelid >"$TMP/bad.log" 2>&1; then fail "labelid accepted for a 7-class model"; fi
grep -q "7 classes" "$TMP/bad.log" || fail "the labelid refusal does not say why: $(cat "$TMP/bad.log")"
if "$MV_BIN" predict --checkpoint "$TMP/run/best.h5" "${sets[@]}" --input "$TMP/empty" --out "$TMP/bad" \
    >"$TMP/bad.log" 2>&1; then fail "a folder without images accepted"; fi
grep -q "empty" "$TMP/bad.log" || fail "the error does not name the folder: $(cat "$TMP/bad.log")"
[ ! -e "$TMP/bad" ] || fail "a refused prediction created its --out folder"
echo "6 passed, 0 failed"
