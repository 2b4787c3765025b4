#!/usr/bin/env bash
# Inputs to eval, predict and the .pth converter that once gave a silently wrong or misleading
# result: a DataParallel checkpoint ('module.' keys, as mmengine's load_checkpoint accepts it)
# converted as it is; a --targets list with one unknown name among good ones (dropped, status
# 0); a split whose every label is ignore (a "nan" table line; under --corruptions a "nan"
# mean over severities); an existing file as predict's --out (the model ran first, then every
# write failed as "Not a directory"); an evaluation that fails on its second split (--json was
# left holding the first split's results as if complete); a model with other than 19 classes
# evaluated with --per-class and --json (25 classes crashed: Cityscapes' 19 names were read
# past their end; 7 classes were named road..pole); predict of a folder into a folder below
# it, run twice (the second run segmented the first run's predictions); images that the test
# resize leaves under the model's 32x32 minimum on a side (predict stopped at such an image, "image
# size 9x128 is too small", and eval failed the whole split); --checkpoint naming a run folder or
# its `latest` file (refused as "not a readable HDF5 file").
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
T="$MV_TEST_TMP/eval_odd_inputs"; rm -rf "$T"; mkdir -p "$T"
fail() { echo "FAIL: $*"; exit 1; }
sets=(--set model.preset=maskvim-nano --set model.crop=64,64 --set data.synthetic.size=64,128 --set data.scale=128,64
      --set data.synthetic.val_count=2 --set data.workers=1 --set "data.val=[synthetic:clear,synthetic:fog]")
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 3 --init-out "$T/w.h5" >/dev/null 2>&1

# 1. A DDP checkpoint: every key under 'module.', with num_batches_tracked and an optimizer.
"$MV_PYTHON" - "$T" <<'PY'
import sys, h5py, torch
d = sys.argv[1]
with h5py.File(f"{d}/w.h5", "r") as f:
    sd = {"module." + k: torch.from_numpy(f[k][...]) for k in f.keys()}
for k in list(sd):
    if k.endswith("running_var"):
        sd[k[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(7)
torch.save({"meta": {"iter": 7}, "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}, f"{d}/ddp.pth")
PY
"$MV_PYTHON" "$MV_SRC/tools/pth_to_h5.py" --token-mask-layout spatial "$T/ddp.pth" "$T/ddp.h5" >"$T/conv.log" 2>&1 || fail "conversion: $(cat "$T/conv.log")"
grep -q "'module.' removed" "$T/conv.log" || fail "the summary does not say 'module.' was removed: $(cat "$T/conv.log")"
"$MV_PYTHON" "$MV_SRC/tests/scripts/compare_weights.py" "$T/w.h5" "$T/ddp.h5" --exact >/dev/null \
    || fail "a 'module.' checkpoint does not convert to the model's own names bit for bit"
"$MV_BIN" eval --checkpoint "$T/ddp.h5" "${sets[@]}" --targets clear >"$T/ddp_eval.log" 2>&1 \
    || fail "eval of the converted DDP checkpoint: $(tail -2 "$T/ddp_eval.log")"

# 2. --targets with an unknown name among known ones is refused (a usage error: exit 2), naming it
#    and data.val.
rc=0; "$MV_BIN" eval --checkpoint "$T/w.h5" "${sets[@]}" --targets clear,nowhere >"$T/t.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--targets clear,nowhere: exit $rc, not 2: $(cat "$T/t.log")"
grep -q "'nowhere' is not a data.val source (data.val: clear, fog)" "$T/t.log" || fail "message: $(cat "$T/t.log")"

# 3. A split whose every label is ignore (Cityscapes label id 0 -> 255): '-' and a warning, no nan.
"$MV_PYTHON" - "$T" <<'PY'
import os, sys
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import unlabelled_cityscapes
unlabelled_cityscapes(sys.argv[1], n=1, size=(40, 77), seed=0, city="aachen")
PY
"$MV_BIN" data convert --dataset cityscapes --root "$T/cs" --split val --out "$T/ignore" --workers 1 >/dev/null 2>&1
"$MV_BIN" eval --checkpoint "$T/w.h5" "${sets[@]}" --set "data.val=[$T/ignore]" --json "$T/ig.json" >"$T/ig.out" 2>"$T/ig.err" \
    || fail "all-ignore split: $(cat "$T/ig.err")"
grep -qi "nan" "$T/ig.out" && fail "the table prints nan: $(cat "$T/ig.out")"
grep -q "no labelled pixel" "$T/ig.err" || fail "no warning for an all-ignore split: $(cat "$T/ig.err")"
grep -q '"mIoU": null' "$T/ig.json" || fail "json: $(cat "$T/ig.json")"
#    Under corruptions too: the mean over severities printed nan.
"$MV_BIN" eval --checkpoint "$T/w.h5" "${sets[@]}" --set "data.val=[$T/ignore]" --corruptions gaussian_noise \
    --severities 1-2 >"$T/igc.out" 2>"$T/igc.err" || fail "all-ignore split, corrupted: $(cat "$T/igc.err")"
grep -qi "nan" "$T/igc.out" && fail "the table prints nan: $(cat "$T/igc.out")"
grep -q "gaussian_noise/mean  *mIoU      -  (mean over 2 severities)" "$T/igc.out" \
    || fail "mean row: $(cat "$T/igc.out")"

# 4. predict --out naming an existing file: refused before any image is segmented.
"$MV_BIN" data synth --preview "$T/in.png" --domains rain --size 64x128 --preview-count 1 >/dev/null 2>&1
touch "$T/afile"
if "$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --input "$T/in.png" --out "$T/afile" >"$T/p.log" 2>&1; then
    fail "--out naming a file accepted"
fi
grep -q "afile: exists and is not a folder" "$T/p.log" || fail "message: $(cat "$T/p.log")"
grep -q "\[1/1\]" "$T/p.log" && fail "the image was segmented before --out was refused: $(cat "$T/p.log")"
#    Before the checkpoint is even read: a missing one is not what is reported.
if "$MV_BIN" predict --checkpoint "$T/nosuch.h5" "${sets[@]}" --input "$T/in.png" --out "$T/afile" >"$T/p.log" 2>&1; then
    fail "--out naming a file accepted"
fi
grep -q "afile: exists and is not a folder" "$T/p.log" || fail "checked after the checkpoint: $(cat "$T/p.log")"
#    An --input path that is not there: named before any model work, not "could not be read"
#    after the model has loaded.
if "$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --input "$T/no_such.png" --out "$T/nsout" >"$T/ns.log" 2>&1; then
    fail "a missing --input accepted"
fi
grep -q -- "--input $T/no_such.png: No such file or directory" "$T/ns.log" || fail "missing input: $(cat "$T/ns.log")"
grep -q "could not be read\|\[1/1\]" "$T/ns.log" && fail "the missing input was tried: $(cat "$T/ns.log")"
#    An input whose prediction's file name would pass the 255 bytes a name may have (with the
#    temporary's .tmp.<pid>): refused before inference, naming it, not failed at its write after
#    the images before it. 232 bytes + _pred.png fits; with --masks the block names do not.
long=$(printf 'x%.0s' $(seq 236)); fits=$(printf 'y%.0s' $(seq 232))
cp "$T/in.png" "$T/$long.png"; cp "$T/in.png" "$T/$fits.png"
if "$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --input "$T/in.png" "$T/$long.png" --out "$T/longout" \
    >"$T/long.log" 2>&1; then fail "a 236-byte image name accepted"; fi
grep -q "$long.png: its prediction .*would have a 245-byte file name, over the 243" "$T/long.log" \
    || fail "long name message: $(cat "$T/long.log")"
grep -q "\[1/2\]" "$T/long.log" && fail "images segmented before the long name was refused: $(cat "$T/long.log")"
"$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --input "$T/$fits.png" --out "$T/longout" >"$T/fits.log" 2>&1 \
    || fail "a 232-byte image name refused: $(cat "$T/fits.log")"
[ -f "$T/longout/${fits}_pred.png" ] || fail "no prediction of the 232-byte name: $(ls "$T/longout")"
if "$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --input "$T/$fits.png" --out "$T/longout" --masks \
    >"$T/fitsm.log" 2>&1; then fail "--masks file names over 243 bytes accepted"; fi
grep -q "_mask_.*\.png would have a" "$T/fitsm.log" || fail "mask name message: $(cat "$T/fitsm.log")"

# 5. The second split's shard is cut short: eval fails, and --json keeps its previous contents
#    (no partial file with the first split alone, no temporary left beside it).
cp -r "$T/ignore" "$T/cut"
shard=$(ls "$T"/cut/*.h5 | head -1)
truncate -s 2000 "$shard"
echo '{"previous": true}' >"$T/two.json"
if "$MV_BIN" eval --checkpoint "$T/w.h5" "${sets[@]}" --set "data.val=[synthetic:clear,$T/cut]" --json "$T/two.json" \
    >"$T/two.out" 2>"$T/two.err"; then
    fail "eval of a cut shard succeeded: $(cat "$T/two.out")"
fi
grep -q "^clear " "$T/two.out" || fail "the first split was not evaluated: $(cat "$T/two.out" "$T/two.err")"
[ "$(cat "$T/two.json")" = '{"previous": true}' ] || fail "--json rewritten by a failed eval: $(cat "$T/two.json")"
ls "$T"/two.json.* >/dev/null 2>&1 && fail "temporary left: $(ls "$T")"

# 6. A class count other than 19 (25; 7 in tests/unit/test_metrics.c): generic names, no crash.
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --set model.num_classes=25 --seed 3 --init-out "$T/w25.h5" \
    >/dev/null 2>&1 || fail "init of a 25-class model"
"$MV_BIN" eval --checkpoint "$T/w25.h5" "${sets[@]}" --set model.num_classes=25 --set "data.val=[$T/ignore]" \
    --per-class --json "$T/c25.json" >"$T/c25.out" 2>&1 || fail "25-class eval: $(tail -3 "$T/c25.out")"
grep -q "^class 24 " "$T/c25.out" || fail "25-class table: $(cat "$T/c25.out")"
grep -q '"class 24": ' "$T/c25.json" || fail "25-class json: $(cat "$T/c25.json")"
grep -q "road" "$T/c25.out" "$T/c25.json" && fail "25 classes named as Cityscapes': $(cat "$T/c25.json")"

# 7. predict --input DIR --out DIR/pred again, once DIR/pred holds an earlier run's output: the
#    earlier predictions are not inputs (they were segmented too, into in_pred_pred.png).
mkdir -p "$T/tree/pred"; cp "$T/cs/leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png" "$T/tree/in.png"
cp "$T/tree/in.png" "$T/tree/pred/in_pred.png"   # as a first run leaves it
"$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --input "$T/tree" --out "$T/tree/pred" >"$T/tree.log" 2>&1 \
    || fail "predict into a folder below the input: $(cat "$T/tree.log")"
grep -q "\[1/1\] $T/tree/in.png" "$T/tree.log" || fail "inputs: $(cat "$T/tree.log")"
[ "$(ls "$T/tree/pred")" = "in_pred.png" ] || fail "predictions of predictions: $(ls "$T/tree/pred")"

# 8. Predict on a 20x300 image (data.scale 128x64 makes it 9x128) and a 24x24 one (data.scale
#    24x24 keeps it so): the model runs on the input padded to 32 on the short side(s), every
#    output has the image's size, in whole and in slide mode (a window clipped to 9 rows).
"$MV_PYTHON" - "$T" <<'PY'
import os, sys, numpy as np
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import png
rng = np.random.default_rng(1)
png(f"{sys.argv[1]}/small/wide.png", rng.integers(0, 256, (20, 300, 3)))
png(f"{sys.argv[1]}/small24/tiny.png", rng.integers(0, 256, (24, 24, 3)))
PY
"$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --input "$T/small/wide.png" --out "$T/small/whole" \
    --format color,trainid --masks >"$T/small.log" 2>&1 || fail "predict of a 20x300 image: $(cat "$T/small.log")"
"$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --set data.test_mode=slide --input "$T/small/wide.png" \
    --out "$T/small/slide" --format trainid >"$T/small_slide.log" 2>&1 || fail "slide predict of a 20x300 image: $(cat "$T/small_slide.log")"
"$MV_BIN" predict --checkpoint "$T/w.h5" "${sets[@]}" --set data.scale=24,24 --input "$T/small24/tiny.png" \
    --out "$T/small24/whole" --format trainid --masks >"$T/small24.log" 2>&1 || fail "predict of a 24x24 image: $(cat "$T/small24.log")"
"$MV_PYTHON" - "$T" <<'PY' || fail "outputs of the small images"
import glob, os, sys, numpy as np
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import read_png
t = sys.argv[1]
for img, outs in ((f"{t}/small/wide.png", [f"{t}/small/whole/wide_pred.png", f"{t}/small/whole/wide_trainid.png",
                                          f"{t}/small/slide/wide_trainid.png"]),
                  (f"{t}/small24/tiny.png", [f"{t}/small24/whole/tiny_trainid.png"])):
    rgb = read_png(img).astype(int)
    d = os.path.dirname(outs[0])
    masks = sorted(glob.glob(f"{d}/*_mask_*.png"))
    assert masks, f"no --masks image in {d}"
    for o in outs + masks:
        a = read_png(o)
        assert a.shape[:2] == rgb.shape[:2], f"{o}: {a.shape[:2]}, the image is {rgb.shape[:2]}"
        if "trainid" in o:
            assert a.max() < 19, f"{o}: class {a.max()}"
        if "_mask_" in o:   # every pixel kept as it is or darkened to a third
            a = a.astype(int)
            assert ((a == rgb) | (a == rgb // 3)).all(), f"{o}: pixels neither kept nor darkened"
PY

# 9. Eval of splits whose images resize under 32 on a side: synthetic 64x128 images at data.scale
#    128x16 are 16x32 (whole and slide); the converted 40x77 split at 128x16 is 16x31.
for mode in whole slide; do
    "$MV_BIN" eval --checkpoint "$T/w.h5" "${sets[@]}" --set data.scale=128,16 --set data.test_mode=$mode \
        --set "data.val=[synthetic:clear,$T/ignore]" >"$T/s16_$mode.out" 2>"$T/s16_$mode.err" \
        || fail "eval with images under 32 ($mode): $(cat "$T/s16_$mode.err")"
    grep -q "^clear  *mIoU  *[0-9.]* " "$T/s16_$mode.out" || fail "eval table ($mode): $(cat "$T/s16_$mode.out")"
done

# 10. --checkpoint RUN_DIR, RUN_DIR/ or RUN_DIR/latest: the checkpoint `latest` names, said on
#     stderr, with the results of that file; a folder without `latest` is refused, naming it.
mkdir -p "$T/run"; cp "$T/w.h5" "$T/run/iter_2.h5"; echo iter_2.h5 >"$T/run/latest"
"$MV_BIN" eval --checkpoint "$T/w.h5" "${sets[@]}" --targets clear >"$T/direct.out" 2>&1 || fail "eval: $(cat "$T/direct.out")"
for c in "$T/run" "$T/run/" "$T/run/latest"; do
    "$MV_BIN" eval --checkpoint "$c" "${sets[@]}" --targets clear >"$T/run.out" 2>"$T/run.err" \
        || fail "eval --checkpoint $c: $(cat "$T/run.err")"
    grep -q "maskvim eval: --checkpoint $c: using $T/run/iter_2.h5 (named by $T/run/latest)" "$T/run.err" \
        || fail "eval --checkpoint $c does not say which file: $(cat "$T/run.err")"
    [ "$(grep '^clear' "$T/run.out")" = "$(grep '^clear' "$T/direct.out")" ] || fail "eval --checkpoint $c: other results"
done
"$MV_BIN" predict --checkpoint "$T/run" "${sets[@]}" --input "$T/in.png" --out "$T/runpred" >"$T/runpred.log" 2>&1 \
    || fail "predict --checkpoint RUN_DIR: $(cat "$T/runpred.log")"
grep -q "maskvim predict: --checkpoint $T/run: using $T/run/iter_2.h5" "$T/runpred.log" || fail "$(cat "$T/runpred.log")"
mkdir -p "$T/norun"
if "$MV_BIN" eval --checkpoint "$T/norun" "${sets[@]}" >"$T/norun.log" 2>&1; then fail "a folder without latest accepted"; fi
grep -q "$T/norun: a folder without a \`latest\` file" "$T/norun.log" || fail "message: $(cat "$T/norun.log")"
echo "10 passed, 0 failed"
