#!/usr/bin/env bash
# tools/pth_to_h5.py: PyTorch checkpoints in, maskvim weights out. A wrapped state_dict converts
# exactly; an authors'-layout checkpoint (mask.layout=official) converted with
# --token-mask-layout official gives maskvim (spatial layout) the reference's losses and logits
# on an image of the crop size; an ImageNet-style encoder checkpoint loads with the decoder
# reported missing and nothing unexpected.
set -euo pipefail
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
dir="$MV_TEST_TMP/pth_convert"; rm -rf "$dir"; mkdir -p "$dir"
fail() { echo "FAIL: $*"; exit 1; }
ref="$MV_SRC/tests/reference/maskvim_ref.py"
conv="$MV_SRC/tools/pth_to_h5.py"
det="--set mask.noise=false --set model.dropout=0 --set model.drop_path=0 --set model.decoder_drop_path=0"
"$MV_BIN" step --preset maskvim-nano --seed 3 --init-out "$dir/w.h5"
# The same tensors as .pth files: mmseg-style (wrapped, with num_batches_tracked) and
# VMamba-ImageNet-style (encoder only, no 'backbone.' prefix, a classifier head).
"$MV_PYTHON" - "$dir" <<'PY'
import sys, h5py, torch
d = sys.argv[1]
with h5py.File(f"{d}/w.h5", "r") as f:
    sd = {k: torch.from_numpy(f[k][...]) for k in f.keys()}
full = dict(sd)
for k in list(sd):
    if k.endswith("running_var"):
        full[k[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(5)
torch.save({"meta": {"iter": 20000}, "state_dict": full}, f"{d}/mmseg.pth")
enc = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.") and ".outnorm" not in k}
enc["classifier.head.weight"] = torch.zeros(1000, 128)
torch.save({"model": enc}, f"{d}/imagenet.pth")
PY
"$MV_PYTHON" "$conv" "$dir/mmseg.pth" "$dir/back.h5" >/dev/null
"$MV_PYTHON" "$MV_SRC/tests/scripts/compare_weights.py" "$dir/w.h5" "$dir/back.h5" --exact || fail "round trip through .pth is not exact"

# Official layout: the reference reads the file as the authors' code would.
"$MV_PYTHON" "$ref" make-batch --out "$dir/b.h5" --batch 2 --size 64x64 --classes 19 --seed 4 >/dev/null
"$MV_PYTHON" "$ref" step --preset maskvim-nano $det --set mask.layout=official --weights "$dir/w.h5" \
    --batch "$dir/b.h5" --dump "$dir/ref.h5" >/dev/null
"$MV_PYTHON" "$conv" "$dir/mmseg.pth" "$dir/spatial.h5" --token-mask-layout official >"$dir/conv.log"
grep -q "7 token masks permuted" "$dir/conv.log" || fail "expected 7 permuted token masks: $(cat "$dir/conv.log")"
"$MV_BIN" step --preset maskvim-nano $det --weights "$dir/spatial.h5" --batch "$dir/b.h5" --dump "$dir/c.h5" >/dev/null
"$MV_PYTHON" - "$dir/ref.h5" "$dir/c.h5" <<'PY'
import sys, h5py, numpy as np
r, c = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for k in ("loss_total", "loss_ce", "loss_ratio", "loss_position"):
    a, b = float(r[k][()]), float(c[k][()])
    assert abs(a - b) <= 1e-4 * max(abs(a), 1e-6), (k, a, b)
x, y = r["logits"][...], c["logits"][...]
assert np.max(np.abs(x - y)) <= 1e-4 * np.max(np.abs(x)), "logits differ"
print("official checkpoint reproduced in the spatial layout")
PY

# Encoder-only ImageNet checkpoint.
"$MV_PYTHON" "$conv" "$dir/imagenet.pth" "$dir/enc.h5" --prefix backbone. >/dev/null
"$MV_BIN" step --preset maskvim-nano $det --weights "$dir/enc.h5" --allow-missing --batch "$dir/b.h5" --dump "$dir/e.h5" 2>"$dir/enc.log" >/dev/null
grep -q "missing (kept initialised), 0 unexpected" "$dir/enc.log" || fail "encoder-only load report: $(tail -2 "$dir/enc.log")"
grep -q "missing:    decode_head.conv_seg.weight" "$dir/enc.log" || fail "decoder tensors not listed as missing"
grep -q "missing:    backbone.outnorm0.weight" "$dir/enc.log" || fail "outnorm not listed as missing"
grep -q "backbone.layers.0.blocks.0.op.in_proj.weight" "$dir/enc.log" && fail "an encoder tensor was reported"
echo "3 passed, 0 failed"
