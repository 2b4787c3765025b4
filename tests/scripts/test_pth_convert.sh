#!/usr/bin/env bash
# tools/pth_to_h5.py: PyTorch checkpoints in, maskvim weights out. A wrapped state_dict converts
# exactly; an authors'-layout checkpoint (mask.layout=official) converted with
# --token-mask-layout official gives maskvim (spatial layout) the reference's losses and logits
# on an image of the crop size; an ImageNet-style encoder checkpoint loads with the decoder
# reported missing and nothing unexpected; so does one in early VMamba ("v0") naming, the naming
# of the ImageNet checkpoint of the authors' recipe (vssmtiny_dp01_ckpt_epoch_292.pth), whose
# tensors must land bit for bit where the authors' loader puts them, and whose pickled training
# configuration (a class of a module the converting machine lacks) is left out.
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

# VMamba v0 ImageNet checkpoint. Its state_dict is written down here from the v0 model
# (MzeroMiko/VMamba classification/models/vmamba/vmamba.py: PatchEmbed2D proj/norm, VSSBlock
# ln_1/self_attention, SS2D, PatchMerging2D at layers.i.downsample, classifier norm/head), with
# the v0 shapes for maskvim-nano's sizes, independently of tools/pth_to_h5.py. Each tensor takes
# the value of the maskvim tensor the authors' MaskVSSM._load_from_state_dict loads it into.
"$MV_BIN" step --preset maskvim-nano --seed 5 --init-out "$dir/init5.h5"
"$MV_PYTHON" - "$dir" <<'PY'
import math, sys, h5py, torch
d = sys.argv[1]
with h5py.File(f"{d}/w.h5", "r") as f:
    sd = {k: torch.from_numpy(f[k][...]) for k in f.keys()}
with h5py.File(f"{d}/init5.h5", "r") as f:
    init5 = {k: f[k][...] for k in f.keys()}
dims, depths, N = (16, 32, 64, 128), (1, 1, 2, 1), 4        # maskvim-nano, SPEC.md section 1
v0 = {"patch_embed.proj.weight": (dims[0], 3, 4, 4), "patch_embed.proj.bias": (dims[0],),
      "patch_embed.norm.weight": (dims[0],), "patch_embed.norm.bias": (dims[0],)}
for i, (C, depth) in enumerate(zip(dims, depths)):
    E, R = 2 * C, math.ceil(C / 16)
    for j in range(depth):
        b = f"layers.{i}.blocks.{j}."
        v0[b + "ln_1.weight"] = v0[b + "ln_1.bias"] = (C,)
        s = b + "self_attention."
        v0.update({s + "in_proj.weight": (2 * E, C), s + "conv2d.weight": (E, 1, 3, 3), s + "conv2d.bias": (E,),
                   s + "x_proj_weight": (4, R + 2 * N, E), s + "dt_projs_weight": (4, E, R),
                   s + "dt_projs_bias": (4, E), s + "A_logs": (4 * E, N), s + "Ds": (4 * E,),
                   s + "out_norm.weight": (E,), s + "out_norm.bias": (E,), s + "out_proj.weight": (C, E)})
    if i < len(dims) - 1:
        ds = f"layers.{i}.downsample."
        v0.update({ds + "reduction.weight": (2 * C, 4 * C), ds + "norm.weight": (4 * C,), ds + "norm.bias": (4 * C,)})
v0.update({"norm.weight": (dims[-1],), "norm.bias": (dims[-1],), "head.weight": (1000, dims[-1]), "head.bias": (1000,)})

def target(k):   # the authors' renames (prefix-based), then the segmentor's 'backbone.'
    for a, b in (("patch_embed.proj", "patch_embed.0"), ("patch_embed.norm", "patch_embed.2")):
        if k.startswith(a):
            return "backbone." + b + k[len(a):]
    p = k.split(".")
    if len(p) > 4 and p[0] == "layers" and p[2] == "blocks" and p[4] in ("ln_1", "self_attention"):
        p[4] = {"ln_1": "norm", "self_attention": "op"}[p[4]]
    return None if p[0] in ("norm", "head") else "backbone." + ".".join(p)

ckpt, loaded = {}, {}
for k, shape in v0.items():
    t = target(k)
    if t is None:
        ckpt[k] = torch.randn(shape)
        continue
    assert t in sd, f"v0 tensor {k} has no maskvim counterpart {t}"
    assert tuple(sd[t].shape) == shape, f"{k}: v0 shape {shape}, maskvim {t} {tuple(sd[t].shape)}"
    ckpt[k], loaded[t] = sd[t].clone(), sd[t].numpy()
# VMamba's training script also pickles its configuration, a yacs CfgNode: a module the
# converting machine need not have. Here it is a package that exists only while saving.
import os
os.makedirs(f"{d}/pkgs/fakeyacs", exist_ok=True)
open(f"{d}/pkgs/fakeyacs/__init__.py", "w").close()
open(f"{d}/pkgs/fakeyacs/config.py", "w").write("class CfgNode(dict):\n    pass\n")
sys.path.insert(0, f"{d}/pkgs")
from fakeyacs.config import CfgNode
config = CfgNode(MODEL=CfgNode(NAME="vssm_tiny", DROP_PATH_RATE=0.1))
torch.save({"model": ckpt, "epoch": 292, "max_accuracy": 82.2, "config": config}, f"{d}/imagenet_v0.pth")
missing = sorted(set(sd) - set(loaded))
for k in missing:   # what the authors' runs keep initialised: the decoder, outnorms, token masks
    assert k.startswith(("decode_head.", "auxiliary_head.", "backbone.outnorm")) or k.endswith(".token_mask"), k
open(f"{d}/v0_missing.txt", "w").write("".join(k + "\n" for k in missing))
with h5py.File(f"{d}/v0_enc_expected.h5", "w") as f:
    for k, v in loaded.items():
        f.create_dataset(k, data=v)
with h5py.File(f"{d}/v0_loaded_expected.h5", "w") as f:
    for k in sd:
        f.create_dataset(k, data=loaded[k] if k in loaded else init5[k])
print(f"v0 checkpoint: {len(ckpt)} tensors, {len(loaded)} encoder, {len(missing)} expected missing")
PY
rm -rf "$dir/pkgs"
"$MV_PYTHON" "$conv" "$dir/imagenet_v0.pth" "$dir/enc_v0.h5" --prefix backbone. >"$dir/conv_v0.log" 2>"$dir/conv_v0.err"
grep -q "module 'fakeyacs' is not installed here" "$dir/conv_v0.err" || fail "the pickled configuration: $(cat "$dir/conv_v0.err")"
nren=$(grep -c -E '^(patch_embed\.(proj|norm)|layers\.[0-9]+\.blocks\.[0-9]+\.(ln_1|self_attention))\.' \
       <("$MV_PYTHON" -c "import sys; sys.path.insert(0, '$MV_SRC/tools'); import pth_to_h5; print('\n'.join(pth_to_h5.load_checkpoint(sys.argv[1])['model']))" "$dir/imagenet_v0.pth" 2>/dev/null))
grep -q "$nren renamed (VMamba v0 names), 4 classifier tensors dropped" "$dir/conv_v0.log" \
    || fail "v0 conversion summary (expected $nren renamed, 4 dropped): $(cat "$dir/conv_v0.log")"
"$MV_PYTHON" "$MV_SRC/tests/scripts/compare_weights.py" "$dir/enc_v0.h5" "$dir/v0_enc_expected.h5" --exact \
    || fail "v0 tensors are not where the authors' loader puts them, bit for bit"
"$MV_BIN" step --preset maskvim-nano --seed 5 --weights "$dir/enc_v0.h5" --allow-missing \
    --init-out "$dir/v0_loaded.h5" 2>"$dir/enc_v0.log" >/dev/null
nmiss=$(wc -l <"$dir/v0_missing.txt")
grep -q "$nmiss missing (kept initialised), 0 unexpected" "$dir/enc_v0.log" \
    || fail "v0 load report (expected $nmiss missing, 0 unexpected): $(tail -2 "$dir/enc_v0.log")"
diff <(sed -n 's/^  missing:    //p' "$dir/enc_v0.log" | sort) "$dir/v0_missing.txt" \
    || fail "v0 load: the missing list is not decoder + outnorms + token masks"
"$MV_PYTHON" "$MV_SRC/tests/scripts/compare_weights.py" "$dir/v0_loaded.h5" "$dir/v0_loaded_expected.h5" --exact \
    || fail "maskvim's model after loading the v0 conversion"
# Explicit --naming v0 gives the same file; a file mixing both namings, or --naming v0 on a file
# without v0 names, is refused naming the key.
"$MV_PYTHON" "$conv" "$dir/imagenet_v0.pth" "$dir/enc_v0b.h5" --prefix backbone. --naming v0 >/dev/null
"$MV_PYTHON" "$MV_SRC/tests/scripts/compare_weights.py" "$dir/enc_v0.h5" "$dir/enc_v0b.h5" --exact >/dev/null \
    || fail "--naming v0 and auto differ"
"$MV_PYTHON" - "$dir" "$MV_SRC/tools" 2>/dev/null <<'PY'
import sys, torch
d = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import pth_to_h5
sd = pth_to_h5.load_checkpoint(f"{d}/imagenet_v0.pth")["model"]
sd["patch_embed.0.weight"] = sd["patch_embed.proj.weight"].clone()
torch.save({"model": sd}, f"{d}/mixed.pth")
PY
set +e
"$MV_PYTHON" "$conv" "$dir/mixed.pth" "$dir/mixed.h5" --prefix backbone. 2>"$dir/mixed.log" >/dev/null; rc=$?
"$MV_PYTHON" "$conv" "$dir/imagenet.pth" "$dir/notv0.h5" --prefix backbone. --naming v0 2>"$dir/notv0.log" >/dev/null; rc2=$?
set -e
[ $rc -eq 2 ] && grep -q "both become 'backbone.patch_embed.0.weight'" "$dir/mixed.log" && grep -q "'patch_embed.proj.weight'" "$dir/mixed.log" \
    || fail "mixed namings: rc $rc, $(cat "$dir/mixed.log")"
[ $rc2 -eq 2 ] && grep -q "no key has a VMamba v0 name" "$dir/notv0.log" || fail "--naming v0 without v0 names: rc $rc2, $(cat "$dir/notv0.log")"
echo "4 passed, 0 failed"
