#!/usr/bin/env bash
# tools/pth_to_h5.py: PyTorch checkpoints in, maskvim weights out. A wrapped state_dict converts
# exactly; an authors'-layout checkpoint (mask.layout=official) converted with
# --token-mask-layout official gives maskvim (spatial layout) the reference's losses and logits
# on an image of the crop size; an ImageNet-style encoder checkpoint loads with the decoder
# reported missing and nothing unexpected; so does one in early VMamba ("v0") naming, the naming
# of the ImageNet checkpoint of the authors' recipe (vssmtiny_dp01_ckpt_epoch_292.pth), whose
# tensors must land bit for bit where the authors' loader puts them, and whose pickled training
# configuration (a class of a module the converting machine lacks) is left out; and the authors'
# whole segmentor checkpoint (masks on and off), whose names and shapes, written down from the
# authors' code, must be maskvim's, so that it converts and loads with nothing renamed or missing.
# And the way back, tools/h5_to_pth.py: a weights file or training checkpoint exported as the .pth
# mmseg saves, bit for bit, loadable with the authors' exact key set, inverted exactly by
# pth_to_h5.py (token masks in the authors' layout included), with clear errors.
# And what a user can get wrong: token masks in a file that does not record their layout are
# refused rather than read in a guessed one (h5_to_pth.py records it, so its files come back
# without options), an encoder without --prefix draws a warning, '--prefix backbone' gets its dot,
# a whole pickled model is refused as one, the encoder export goes under "model" (the authors'
# loaders' key), and 'module.' is counted over the tensors written.
set -euo pipefail
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
dir="$MV_TEST_TMP/pth_convert"; rm -rf "$dir"; mkdir -p "$dir"
fail() { echo "FAIL: $*"; exit 1; }
# Some forty Python commands: through one process that imports torch once (py_zygote.sh).
source "$MV_SRC/tests/scripts/py_zygote.sh"
py_zygote_start "$dir"
ref="$MV_SRC/tests/reference/maskvim_ref.py"
conv="$MV_SRC/tools/pth_to_h5.py"
det="--set mask.noise=false --set model.dropout=0 --set model.drop_path=0 --set model.decoder_drop_path=0"
"$MV_BIN" step --preset maskvim-nano --seed 3 --init-out "$dir/w.h5"
# The same tensors as .pth files: mmseg-style (wrapped, with num_batches_tracked) and
# VMamba-ImageNet-style (encoder only, no 'backbone.' prefix, a classifier head).
py - "$dir" <<'PY'
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
# Token masks in a file that does not record their layout: nothing in the values tells maskvim's
# from the authors' (whose checkpoints hold the same names and shapes), so the converter refuses
# to guess and names the option; with it, the conversion is exact.
rc=0; py "$conv" "$dir/mmseg.pth" "$dir/guess.h5" 2>"$dir/guess.log" >/dev/null || rc=$?
[ $rc -eq 2 ] && grep -qF "$dir/mmseg.pth: holds 7 token_mask tensors and does not record their layout: pass --token-mask-layout official" "$dir/guess.log" \
    && [ ! -e "$dir/guess.h5" ] || fail "token masks without a layout: rc $rc, $(cat "$dir/guess.log")"
py "$conv" "$dir/mmseg.pth" "$dir/back.h5" --token-mask-layout spatial >/dev/null
py "$MV_SRC/tests/scripts/compare_weights.py" "$dir/w.h5" "$dir/back.h5" --exact || fail "round trip through .pth is not exact"
# 'module.' (DataParallel) on every key, num_batches_tracked included: the summary counts the
# keys it was removed from among the tensors written (196), not the skipped entries (206).
py - "$dir" <<'PY'
import sys, torch
d = sys.argv[1]
ck = torch.load(f"{d}/mmseg.pth", weights_only=True)
torch.save({"state_dict": {"module." + k: v for k, v in ck["state_dict"].items()}}, f"{d}/ddp.pth")
PY
py "$conv" "$dir/ddp.pth" "$dir/ddp.h5" --token-mask-layout spatial >"$dir/ddp.log"
grep -q "196 tensors written, .* 10 entries skipped, .*'module.' removed from 196 keys$" "$dir/ddp.log" \
    || fail "'module.' count: $(cat "$dir/ddp.log")"
py "$MV_SRC/tests/scripts/compare_weights.py" "$dir/w.h5" "$dir/ddp.h5" --exact >/dev/null || fail "'module.' checkpoint not exact"

# Official layout: the reference reads the file as the authors' code would.
py "$ref" make-batch --out "$dir/b.h5" --batch 2 --size 64x64 --classes 19 --seed 4 >/dev/null
py "$ref" step --preset maskvim-nano $det --set mask.layout=official --weights "$dir/w.h5" \
    --batch "$dir/b.h5" --dump "$dir/ref.h5" >/dev/null
py "$conv" "$dir/mmseg.pth" "$dir/spatial.h5" --token-mask-layout official >"$dir/conv.log"
grep -q "7 token masks permuted" "$dir/conv.log" || fail "expected 7 permuted token masks: $(cat "$dir/conv.log")"
"$MV_BIN" step --preset maskvim-nano $det --weights "$dir/spatial.h5" --batch "$dir/b.h5" --dump "$dir/c.h5" >/dev/null
py - "$dir/ref.h5" "$dir/c.h5" <<'PY'
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
py "$conv" "$dir/imagenet.pth" "$dir/enc.h5" --prefix backbone. --token-mask-layout spatial >/dev/null
# The prefix without its dot gets one (a key is a module path), with a note.
py "$conv" "$dir/imagenet.pth" "$dir/enc_nodot.h5" --prefix backbone --token-mask-layout spatial 2>"$dir/nodot.log" >/dev/null
grep -qF "note: --prefix 'backbone' taken as 'backbone.'" "$dir/nodot.log" || fail "--prefix backbone: $(cat "$dir/nodot.log")"
py "$MV_SRC/tests/scripts/compare_weights.py" "$dir/enc.h5" "$dir/enc_nodot.h5" --exact >/dev/null \
    || fail "--prefix backbone (no dot) does not give the file of --prefix backbone."
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
py - "$dir" <<'PY'
import math, sys, h5py, torch
d = sys.argv[1]
with h5py.File(f"{d}/w.h5", "r") as f:
    sd = {k: torch.from_numpy(f[k][...]) for k in f.keys()}
with h5py.File(f"{d}/init5.h5", "r") as f:
    init5 = {k: f[k][...] for k in f.keys()}
dims, depths, N = (16, 32, 64, 128), (1, 1, 2, 1), 4        # maskvim-nano, docs/math.md section 1
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
py "$conv" "$dir/imagenet_v0.pth" "$dir/enc_v0.h5" --prefix backbone. >"$dir/conv_v0.log" 2>"$dir/conv_v0.err"
grep -q "left out the objects pickled from fakeyacs (not installed here" "$dir/conv_v0.err" || fail "the pickled configuration: $(cat "$dir/conv_v0.err")"
grep -q "keys name an encoder alone" "$dir/conv_v0.err" && fail "a bare-encoder warning despite --prefix: $(cat "$dir/conv_v0.err")"
# Without --prefix, an encoder saved alone converts to names maskvim never finds: a warning.
py "$conv" "$dir/imagenet_v0.pth" "$dir/enc_v0_noprefix.h5" >/dev/null 2>"$dir/noprefix.err"
grep -qF "warning: $dir/imagenet_v0.pth: its keys name an encoder alone (top-level 'layers.*', 'patch_embed.*', no 'backbone.*')" "$dir/noprefix.err" \
    && grep -q "convert such a file with --prefix backbone." "$dir/noprefix.err" || fail "no bare-encoder warning: $(cat "$dir/noprefix.err")"
nren=$(grep -c -E '^(patch_embed\.(proj|norm)|layers\.[0-9]+\.blocks\.[0-9]+\.(ln_1|self_attention))\.' \
       <(py -c "import sys; sys.path.insert(0, '$MV_SRC/tools'); import pth_to_h5; print('\n'.join(pth_to_h5.load_checkpoint(sys.argv[1])['model']))" "$dir/imagenet_v0.pth" 2>/dev/null))
grep -q "$nren renamed (VMamba v0 names), 4 classifier tensors dropped" "$dir/conv_v0.log" \
    || fail "v0 conversion summary (expected $nren renamed, 4 dropped): $(cat "$dir/conv_v0.log")"
py "$MV_SRC/tests/scripts/compare_weights.py" "$dir/enc_v0.h5" "$dir/v0_enc_expected.h5" --exact \
    || fail "v0 tensors are not where the authors' loader puts them, bit for bit"
"$MV_BIN" step --preset maskvim-nano --seed 5 --weights "$dir/enc_v0.h5" --allow-missing \
    --init-out "$dir/v0_loaded.h5" 2>"$dir/enc_v0.log" >/dev/null
nmiss=$(wc -l <"$dir/v0_missing.txt")
grep -q "$nmiss missing (kept initialised), 0 unexpected" "$dir/enc_v0.log" \
    || fail "v0 load report (expected $nmiss missing, 0 unexpected): $(tail -2 "$dir/enc_v0.log")"
diff <(sed -n 's/^  missing:    //p' "$dir/enc_v0.log" | sort) "$dir/v0_missing.txt" \
    || fail "v0 load: the missing list is not decoder + outnorms + token masks"
py "$MV_SRC/tests/scripts/compare_weights.py" "$dir/v0_loaded.h5" "$dir/v0_loaded_expected.h5" --exact \
    || fail "maskvim's model after loading the v0 conversion"
# Explicit --naming v0 gives the same file; a file mixing both namings, or --naming v0 on a file
# without v0 names, is refused naming the key.
py "$conv" "$dir/imagenet_v0.pth" "$dir/enc_v0b.h5" --prefix backbone. --naming v0 >/dev/null
py "$MV_SRC/tests/scripts/compare_weights.py" "$dir/enc_v0.h5" "$dir/enc_v0b.h5" --exact >/dev/null \
    || fail "--naming v0 and auto differ"
py - "$dir" "$MV_SRC/tools" 2>/dev/null <<'PY'
import sys, torch
d = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import pth_to_h5
sd = pth_to_h5.load_checkpoint(f"{d}/imagenet_v0.pth")["model"]
sd["patch_embed.0.weight"] = sd["patch_embed.proj.weight"].clone()
torch.save({"model": sd}, f"{d}/mixed.pth")
PY
set +e
py "$conv" "$dir/mixed.pth" "$dir/mixed.h5" --prefix backbone. 2>"$dir/mixed.log" >/dev/null; rc=$?
py "$conv" "$dir/imagenet.pth" "$dir/notv0.h5" --prefix backbone. --naming v0 --token-mask-layout spatial 2>"$dir/notv0.log" >/dev/null; rc2=$?
set -e
[ $rc -eq 2 ] && grep -q "both become 'backbone.patch_embed.0.weight'" "$dir/mixed.log" && grep -q "'patch_embed.proj.weight'" "$dir/mixed.log" \
    || fail "mixed namings: rc $rc, $(cat "$dir/mixed.log")"
[ $rc2 -eq 2 ] && grep -q "no key has a VMamba v0 name" "$dir/notv0.log" || fail "--naming v0 without v0 names: rc $rc2, $(cat "$dir/notv0.log")"

# The authors' whole segmentor (SegExp4: MaskVSSM backbone, DecoderExp4 decode head, mmseg
# FCNHead auxiliary head), as mmseg/mmengine saves it. Its state_dict is written down here from
# the authors' code (liblacklucy/MaskViM segmentation/mods/backbone/exp.py; the configs
# segmentation/configs/dg_exp/exp4_b2-{20k,40k}_city2bdd-512x1024_tiny.py and mmseg's
# _base_/models/upernet_swin.py; mmcv's ConvModule 'conv'/'bn', mmseg's PPM and FCNHead),
# independently of maskvim and of tools/pth_to_h5.py. For the tiny sizes it must give the
# parameter counts the authors' ExpHook reports (60893702 with masks, 60606982 without); for
# maskvim-nano's sizes its names and shapes must be maskvim's, and a checkpoint holding exactly
# them must convert (num_batches_tracked skipped, nothing renamed) and load with nothing missing
# or unexpected, bit for bit. Masks on: the 40k configs (t_mask=True); off: the 20k tiny config.
py - "$dir" <<'PY'
import math, sys, torch
d = sys.argv[1]

def authors_segmentor(dims, depths, N, D, aux, classes, crop, masks):
    sd = {}
    def ln(p, c):
        sd[p + "weight"] = sd[p + "bias"] = (c,)
    def ss2d(p, C):                       # SS2D, forward_type v2, ssm_ratio 2, K = 4
        E, R = 2 * C, math.ceil(C / 16)
        sd.update({p + "in_proj.weight": (2 * E, C), p + "conv2d.weight": (E, 1, 3, 3), p + "conv2d.bias": (E,),
                   p + "x_proj_weight": (4, R + 2 * N, E), p + "dt_projs_weight": (4, E, R),
                   p + "dt_projs_bias": (4, E), p + "A_logs": (4 * E, N), p + "Ds": (4 * E,),
                   p + "out_proj.weight": (C, E)})
        ln(p + "out_norm.", E)
    def conv_module(p, cin, cout, k):     # mmcv ConvModule: conv without bias, SyncBN named 'bn'
        sd[p + "conv.weight"] = (cout, cin, k, k)
        for s in ("weight", "bias", "running_mean", "running_var"):
            sd[p + "bn." + s] = (cout,)
        sd[p + "bn.num_batches_tracked"] = ()
    grid = lambda i: (crop[0] // (4 * 2 ** i)) * (crop[1] // (4 * 2 ** i))
    sd["backbone.patch_embed.0.weight"], sd["backbone.patch_embed.0.bias"] = (dims[0], 3, 4, 4), (dims[0],)
    ln("backbone.patch_embed.2.", dims[0])
    for i, C in enumerate(dims):          # MaskVSSM: layers.i = (blocks: ModuleList, downsample)
        for j in range(depths[i]):        # MaskVSSBlock: pre_mlp Identity (in_dim == hidden_dim)
            b = f"backbone.layers.{i}.blocks.{j}."
            ln(b + "norm.", C)
            ss2d(b + "op.", C)
            if masks and i < len(dims) - 1:
                sd[b + "token_mask"] = (1, grid(i), 2)
        if i < len(dims) - 1:             # PatchMerging2D (downsample_version v1)
            sd[f"backbone.layers.{i}.downsample.reduction.weight"] = (2 * C, 4 * C)
            ln(f"backbone.layers.{i}.downsample.norm.", 4 * C)
        ln(f"backbone.outnorm{i}.", C)
    h = "decode_head."                    # DecoderExp4, decoder depths [1, 1, 1]
    for k in range(4):                    # PPM: Sequential(AdaptiveAvgPool2d, ConvModule 1x1)
        conv_module(f"{h}psp_modules.{k}.1.", dims[3], D, 1)
    conv_module(h + "bottleneck.", dims[3] + 4 * D, D, 3)
    for i in range(3):
        b = f"{h}lateral_convs.{i}.blocks.0."
        if dims[i] != D:                  # pre_mlp = Sequential(Linear(in_dim, D)) only then
            sd[b + "pre_mlp.0.weight"], sd[b + "pre_mlp.0.bias"] = (D, dims[i]), (D,)
        ln(b + "norm.", D)
        ss2d(b + "op.", D)
        if masks:
            sd[b + "token_mask"] = (1, grid(i), 2)
        ln(f"{h}lateral_convs.{i}.ln.", D)
        conv_module(f"{h}fpn_convs.{i}.", D, D, 3)
    conv_module(h + "fpn_bottleneck.", 4 * D, D, 3)
    sd[h + "conv_seg.weight"], sd[h + "conv_seg.bias"] = (classes, D, 1, 1), (classes,)
    conv_module("auxiliary_head.convs.0.", dims[2], aux, 3)      # FCNHead, num_convs 1
    sd["auxiliary_head.conv_seg.weight"], sd["auxiliary_head.conv_seg.bias"] = (classes, aux, 1, 1), (classes,)
    return sd

def n_params(sd):
    return sum(math.prod(s) for k, s in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
tiny = ((96, 192, 384, 768), (2, 2, 9, 2), 16, 512, 256, 19, (512, 1024))
assert n_params(authors_segmentor(*tiny, True)) == 60893702, n_params(authors_segmentor(*tiny, True))
assert n_params(authors_segmentor(*tiny, False)) == 60606982, n_params(authors_segmentor(*tiny, False))
nano = ((16, 32, 64, 128), (1, 1, 2, 1), 4, 32, 16, 19, (64, 64))
for tag, masks in (("on", True), ("off", False)):
    with open(f"{d}/authors_{tag}.txt", "w") as f:
        for k, s in sorted(authors_segmentor(*nano, masks).items()):
            f.write(f"{k} {','.join(map(str, s))}\n")
PY
for tag in on off; do
    sets=""; [ $tag = off ] && sets="--set mask.encoder=false --set mask.decoder=false"
    "$MV_BIN" step --preset maskvim-nano $sets --seed 7 --init-out "$dir/seg_$tag.h5" >/dev/null
    py - "$dir" "$tag" <<'PY' || fail "masks $tag: maskvim's names and shapes are not the authors' segmentor's"
import sys, h5py, torch
d, tag = sys.argv[1:]
facts = dict(l.split(" ") for l in open(f"{d}/authors_{tag}.txt").read().split("\n") if l)
shape = lambda s: tuple(int(x) for x in s.split(",") if x)
ours = {}
with h5py.File(f"{d}/seg_{tag}.h5", "r") as f:
    for k in f.keys():
        ours[k] = torch.from_numpy(f[k][...])
theirs = {k for k in facts if not k.endswith("num_batches_tracked")}
bad = sorted(theirs ^ set(ours)) + [k for k in sorted(theirs & set(ours)) if tuple(ours[k].shape) != shape(facts[k])]
if bad:
    for k in bad[:20]:
        print(f"  {k}: authors {facts.get(k)}, maskvim {tuple(ours[k].shape) if k in ours else None}")
    sys.exit(1)
# The checkpoint an mmengine run saves: meta, state_dict (with num_batches_tracked), optimizer.
sd = {k: (torch.tensor(20000) if k.endswith("num_batches_tracked") else ours[k].clone()) for k in facts}
torch.save({"meta": {"iter": 20000}, "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}},
           f"{d}/authors_seg_{tag}.pth")
open(f"{d}/authors_seg_{tag}.n", "w").write(f"{len(theirs)} {len(facts) - len(theirs)}\n")
PY
    read -r nt nb <"$dir/authors_seg_$tag.n"
    py "$conv" "$dir/authors_seg_$tag.pth" "$dir/authors_seg_$tag.h5" --token-mask-layout spatial >"$dir/authors_conv_$tag.log"
    grep -q "$nt tensors written, 0 renamed, 0 classifier tensors dropped, $nb entries skipped" "$dir/authors_conv_$tag.log" \
        || fail "masks $tag: authors' segmentor conversion summary (expected $nt written, $nb skipped): $(cat "$dir/authors_conv_$tag.log")"
    py "$MV_SRC/tests/scripts/compare_weights.py" "$dir/seg_$tag.h5" "$dir/authors_seg_$tag.h5" --exact \
        || fail "masks $tag: authors' segmentor tensors are not maskvim's, bit for bit"
    "$MV_BIN" step --preset maskvim-nano $sets --seed 8 --weights "$dir/authors_seg_$tag.h5" \
        --init-out "$dir/authors_loaded_$tag.h5" 2>"$dir/authors_load_$tag.log" >/dev/null \
        || fail "masks $tag: maskvim cannot load the authors' segmentor: $(tail -3 "$dir/authors_load_$tag.log")"
    grep -q -E "missing|unexpected" "$dir/authors_load_$tag.log" && fail "masks $tag: load report: $(cat "$dir/authors_load_$tag.log")"
    py "$MV_SRC/tests/scripts/compare_weights.py" "$dir/seg_$tag.h5" "$dir/authors_loaded_$tag.h5" --exact \
        || fail "masks $tag: maskvim's model after loading the authors' segmentor"
done

# tools/h5_to_pth.py, the way back: a maskvim weights file or training checkpoint as the .pth
# mmseg/mmengine saves ({"state_dict", "meta"}), every tensor bit for bit, with a
# num_batches_tracked for every BatchNorm, so that its key set is exactly the authors' segmentor's
# written down above (a strict load finds every key); the token masks in the authors' layout on
# request, which pth_to_h5.py --token-mask-layout official undoes exactly; a checkpoint's train/
# group as meta (iter, step, configuration), never as tensors; and errors naming the file.
exp="$MV_SRC/tools/h5_to_pth.py"
compare() { py "$MV_SRC/tests/scripts/compare_weights.py" "$@"; }
"$MV_BIN" step --preset maskvim-nano --seed 7 --init-out "$dir/W.h5" >/dev/null
py "$exp" "$dir/W.h5" "$dir/W.pth" >"$dir/exp.log"
grep -q "196 tensors written, 10 num_batches_tracked added (value 0), 0 token masks permuted$" "$dir/exp.log" \
    || fail "export summary: $(cat "$dir/exp.log")"
py "$exp" "$dir/W.h5" "$dir/W_bare.pth" --bare >/dev/null
py "$exp" "$dir/W.h5" "$dir/W_enc.pth" --prefix-strip backbone. >"$dir/exp_enc.log"
grep -q ", under 'model'$" "$dir/exp_enc.log" || fail "encoder export summary: $(cat "$dir/exp_enc.log")"
py "$exp" "$dir/W.h5" "$dir/W_enc_sd.pth" --prefix-strip backbone. --wrap state_dict >/dev/null
rc=0; py "$exp" "$dir/W.h5" "$dir/W_wrap.pth" --bare --wrap model 2>"$dir/wrap.log" >/dev/null || rc=$?
[ $rc -eq 2 ] && grep -q "contradict" "$dir/wrap.log" && [ ! -e "$dir/W_wrap.pth" ] || fail "--bare --wrap model: rc $rc, $(cat "$dir/wrap.log")"
py - "$dir" <<'PY' || fail "export of a weights file"
import collections, sys, h5py, numpy as np, torch
d = sys.argv[1]
def same(t, a):   # bit for bit: float32, same shape, same bits (NaN and -0 included)
    return t.dtype == torch.float32 and tuple(t.shape) == a.shape and np.array_equal(t.numpy().view(np.uint32), a.view(np.uint32))
with h5py.File(f"{d}/W.h5", "r") as f:
    w = {k: f[k][()] for k in f.keys()}
ck = torch.load(f"{d}/W.pth", map_location="cpu", weights_only=True)   # nothing but tensors and plain types
assert set(ck) == {"state_dict", "meta"}, sorted(ck)
sd, meta = ck["state_dict"], ck["meta"]
assert isinstance(sd, collections.OrderedDict)
assert meta["source"] == f"{d}/W.h5" and "iter" not in meta and "config_yaml" not in meta, meta
nbt = {k for k in sd if k.endswith("num_batches_tracked")}
assert set(sd) - nbt == set(w), sorted(set(sd) ^ set(w))[:10]
bad = [k for k in w if not same(sd[k], w[k])]
assert not bad, f"tensors differ from W.h5: {bad[:10]}"
bns = {k[: -len("running_mean")] for k in w if k.endswith("running_mean")}
assert len(bns) == 10 and nbt == {b + "num_batches_tracked" for b in bns}, sorted(nbt ^ {b + "num_batches_tracked" for b in bns})
for k in nbt:
    assert sd[k].dtype == torch.int64 and sd[k].dim() == 0 and int(sd[k]) == 0, (k, sd[k])
for b in bns:   # every BatchNorm loads strictly into nn.BatchNorm2d
    torch.nn.BatchNorm2d(w[b + "weight"].shape[0]).load_state_dict({k[len(b):]: v for k, v in sd.items() if k.startswith(b)}, strict=True)
facts = dict(l.split(" ") for l in open(f"{d}/authors_on.txt").read().split("\n") if l)
assert set(sd) == set(facts), f"not the authors' key set: {sorted(set(sd) ^ set(facts))[:10]}"
assert all(tuple(sd[k].shape) == tuple(int(x) for x in facts[k].split(",") if x) for k in sd)
bare = torch.load(f"{d}/W_bare.pth", map_location="cpu", weights_only=True)
assert isinstance(bare, collections.OrderedDict) and list(bare) == list(sd) and all(torch.equal(bare[k], sd[k]) for k in sd)
assert meta["token_mask_layout"] == "spatial" and bare._metadata["maskvim"] == {"token_mask_layout": "spatial"}
# The encoder alone goes under "model", where the authors' MaskVSSM.load_pretrained and VMamba's
# Backbone_VSSM.load_pretrained read it (ckpt["model"]); --wrap state_dict for mmengine's loaders.
enc_ck = torch.load(f"{d}/W_enc.pth", map_location="cpu", weights_only=True)
assert set(enc_ck) == {"model", "meta"}, sorted(enc_ck)
enc = enc_ck["model"]
want = {k[len("backbone."):]: v for k, v in w.items() if k.startswith("backbone.")}
assert set(enc) == set(want) and all(same(enc[k], want[k]) for k in want), sorted(set(enc) ^ set(want))[:10]
enc_sd = torch.load(f"{d}/W_enc_sd.pth", map_location="cpu", weights_only=True)
assert set(enc_sd) == {"state_dict", "meta"} and set(enc_sd["state_dict"]) == set(want), sorted(enc_sd)
print(f"W.pth: {len(w)} tensors bit for bit, {len(nbt)} num_batches_tracked, the authors' {len(facts)} keys")
PY
# h5 -> pth (official layout) -> h5 (official layout) is exact; the export records its layout,
# so the way back needs no option (wrapped or bare); read back as spatial (a warning: the option
# wins over the record), exactly the 7 token masks differ (so the export permuted them, and the
# check can fail).
py "$exp" "$dir/W.h5" "$dir/X.pth" --token-mask-layout official >"$dir/exp_off.log"
grep -q "7 token masks permuted" "$dir/exp_off.log" || fail "expected 7 permuted token masks: $(cat "$dir/exp_off.log")"
py "$conv" "$dir/X.pth" "$dir/Y.h5" --token-mask-layout official >/dev/null
compare "$dir/W.h5" "$dir/Y.h5" --exact || fail "h5 -> pth -> h5 through the official layout is not exact"
py "$exp" "$dir/W.h5" "$dir/X_bare.pth" --token-mask-layout official --bare >/dev/null
for x in X X_bare; do
    py "$conv" "$dir/$x.pth" "$dir/Y_rec_$x.h5" >"$dir/Y_rec_$x.log" || fail "$x.pth without options: $(cat "$dir/Y_rec_$x.log")"
    grep -q "7 token masks permuted (the file records the official layout)" "$dir/Y_rec_$x.log" || fail "$x.pth: $(cat "$dir/Y_rec_$x.log")"
    compare "$dir/W.h5" "$dir/Y_rec_$x.h5" --exact >/dev/null || fail "$x.pth -> h5 without options is not exact"
done
py "$conv" "$dir/X.pth" "$dir/Y_one.h5" --token-mask-layout spatial >/dev/null 2>"$dir/Y_one.err"
grep -qF "records token_mask_layout 'official', --token-mask-layout spatial given" "$dir/Y_one.err" \
    || fail "no warning for an option against the record: $(cat "$dir/Y_one.err")"
compare "$dir/W.h5" "$dir/Y_one.h5" --exact >"$dir/Y_one.cmp" && fail "the official layout on one side only left the token masks unchanged"
[ "$(grep -c '^DIFFER .*token_mask' "$dir/Y_one.cmp")" = 7 ] && grep -q "^7 of 196 tensors differ" "$dir/Y_one.cmp" \
    || fail "official layout on one side: expected exactly the 7 token masks to differ: $(cat "$dir/Y_one.cmp")"

# A training checkpoint (2 iterations): meta.iter 2, the configuration text, num_batches_tracked =
# train/step, the tensors bit for bit, nothing of train/ among them; and back through pth_to_h5.
MV_SYNTH_CACHE="$MV_TEST_TMP/synth_cache" "$MV_BIN" train --set model.crop=64,64 --set data.synthetic.size=64,128 \
    --set data.scale=128,64 --set data.synthetic.train_count=16 --set data.synthetic.val_count=2 \
    --set schedule.max_iters=2 --set schedule.warmup_iters=1 --set data.val=[synthetic:clear] \
    --set run.work_dir="$dir/run" --quiet >"$dir/train.log" 2>&1 || fail "training run: $(tail -3 "$dir/train.log")"
ck="$dir/run/$(cat "$dir/run/latest")"
py "$exp" "$ck" "$dir/ck.pth" >"$dir/exp_ck.log"
grep -q "196 tensors written, 10 num_batches_tracked added (value 2), 0 token masks permuted, meta iter 2$" "$dir/exp_ck.log" \
    || fail "checkpoint export summary: $(cat "$dir/exp_ck.log")"
# The same checkpoint with one weight's bits changed: refused as maskvim refuses it, not exported
# (through pth_to_h5.py it would come back without a checksum and load everywhere).
cp "$ck" "$dir/dmg.h5"
py - "$dir/dmg.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    d = f["decode_head.conv_seg.weight"]
    a = d[()]
    a.reshape(-1)[5] = np.nextafter(a.reshape(-1)[5], np.float32(1))
    d[...] = a
PY
if "$MV_BIN" eval --checkpoint "$dir/dmg.h5" >/dev/null 2>&1; then fail "maskvim took the damaged checkpoint"; fi
rc=0; py "$exp" "$dir/dmg.h5" "$dir/dmg.pth" 2>"$dir/dmg.log" >/dev/null || rc=$?
[ $rc -eq 2 ] && grep -qF "$dir/dmg.h5: the weights do not match their checksum (corrupt file)" "$dir/dmg.log" \
    && [ ! -e "$dir/dmg.pth" ] || fail "a damaged checkpoint exported: rc $rc, $(cat "$dir/dmg.log")"
py - "$ck" "$dir/ck.pth" "$dir/run/config.yaml" <<'PY' || fail "export of a training checkpoint"
import sys, h5py, numpy as np, torch
src, out, cfg = sys.argv[1:]
ck = torch.load(out, map_location="cpu", weights_only=True)
sd, meta = ck["state_dict"], ck["meta"]
with h5py.File(src, "r") as f:
    assert "train" in f and "train/adam_m" in f, "not a training checkpoint"
    w = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
    step, it, text = int(f["train/step"][()]), int(f["train/iter"][()]), f["train/config_yaml"][()].decode()
assert meta["iter"] == 2 == it and meta["step"] == step == 2, meta
assert meta["config_yaml"] == text == open(cfg).read(), "configuration text"
assert not [k for k in sd if k.startswith("train") or "adam" in k or "checksum" in k], "train/ exported as tensors"
assert set(k for k in sd if not k.endswith("num_batches_tracked")) == set(w), sorted(set(sd) ^ set(w))[:10]
bad = [k for k in w if not (sd[k].dtype == torch.float32 and np.array_equal(sd[k].numpy().view(np.uint32), w[k].view(np.uint32)))]
assert not bad, f"tensors differ from the checkpoint: {bad[:10]}"
nbt = [int(v) for k, v in sd.items() if k.endswith("num_batches_tracked")]
assert len(nbt) == 10 and set(nbt) == {step}, nbt
print(f"{out}: iter {meta['iter']}, {len(w)} tensors bit for bit, num_batches_tracked {step}")
PY
py "$exp" "$ck" "$dir/ck_off.pth" --token-mask-layout official >/dev/null
py "$conv" "$dir/ck_off.pth" "$dir/ck_back.h5" --token-mask-layout official >/dev/null
compare "$ck" "$dir/ck_back.h5" --exact >/dev/null || fail "checkpoint -> pth -> h5 through the official layout is not exact"

# Errors: exit 2 with a message naming the file, and nothing written under the output's name.
echo "not hdf5" >"$dir/notes.h5"
py - "$dir" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(f"{d}/ints.h5", "w") as f:
    f["a.weight"] = np.zeros(3, np.float32)
    f["a.count"] = np.zeros(3, np.int32)
with h5py.File(f"{d}/empty.h5", "w") as f:
    f["train/step"] = np.int64(3)
PY
expect_error() {   # FILE MESSAGE ARGS..: exit 2, "FILE: ...MESSAGE" on stderr, no output file
    local file=$1 msg=$2; shift 2
    local rc=0
    py "$exp" "$@" "$dir/err_out.pth" 2>"$dir/err.log" >/dev/null || rc=$?
    [ $rc -eq 2 ] && grep -qF "$file: " "$dir/err.log" && grep -qF "$msg" "$dir/err.log" \
        || fail "h5_to_pth $*: expected exit 2 and '$file: ...$msg', got $rc: $(cat "$dir/err.log")"
    ! ls "$dir"/err_out.pth* >/dev/null 2>&1 || fail "h5_to_pth $*: left an output file"
}
expect_error "$dir/notes.h5" "cannot read as HDF5" "$dir/notes.h5"
expect_error "$dir/absent.h5" "cannot read as HDF5" "$dir/absent.h5"
expect_error "$dir/ints.h5" "dataset 'a.count' is int32, not a floating-point tensor" "$dir/ints.h5"
expect_error "$dir/empty.h5" "no tensors at its root" "$dir/empty.h5"
expect_error "$dir/W.h5" "no tensor at its root starts with 'encoder.'" "$dir/W.h5" --prefix-strip encoder.
rc=0; py "$exp" "$dir/W.h5" "$dir/W.h5/out.pth" 2>"$dir/err.log" >/dev/null || rc=$?
[ $rc -eq 2 ] && grep -qF "$dir/W.h5/out.pth: cannot write" "$dir/err.log" || fail "unwritable output: rc $rc, $(cat "$dir/err.log")"
# Both tools make the output's folder (the documented `pretrained/...` needs it); a checkpoint
# without a single weight is refused, not written empty.
py "$exp" "$dir/W.h5" "$dir/new/dir/out.pth" >/dev/null || fail "h5_to_pth into a new folder"
py "$conv" "$dir/new/dir/out.pth" "$dir/new/dir2/back.h5" >/dev/null || fail "pth_to_h5 into a new folder"
py -c "import torch,sys; torch.save({'epoch': 3, 'optimizer': {'lr': 0.1}}, sys.argv[1])" "$dir/noweights.pth"
rc=0; py "$conv" "$dir/noweights.pth" "$dir/noweights.h5" 2>"$dir/err.log" >/dev/null || rc=$?
[ $rc -eq 2 ] && grep -q "no floating-point tensor to write" "$dir/err.log" && [ ! -e "$dir/noweights.h5" ] \
    || fail "a checkpoint without weights: rc $rc, $(cat "$dir/err.log")"
# A whole model pickled (torch.save(model)) instead of its state_dict: refused, saying so and
# what to save instead, whether its class imports here (torch.nn.Sequential) or not (a package
# that exists only while saving); never "not tensors" for objects that held every weight.
mkdir -p "$dir/pkgs/fakeseg"
printf 'import torch.nn as nn\nclass SegExp4(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.backbone = nn.Linear(4, 4)\n' \
    >"$dir/pkgs/fakeseg/__init__.py"
py - "$dir" <<'PY'
import sys, torch
d = sys.argv[1]
sys.path.insert(0, f"{d}/pkgs")
from fakeseg import SegExp4
torch.save(SegExp4(), f"{d}/whole_absent.pth")
torch.save({"meta": {}, "model": SegExp4()}, f"{d}/whole_absent_model.pth")
torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3)), f"{d}/whole_seq.pth")
PY
rm -rf "$dir/pkgs"
for case in "whole_absent|holds a pickled model object (class fakeseg.SegExp4, not importable here), not a state_dict" \
            "whole_absent_model|holds a pickled model object under 'model' (class fakeseg.SegExp4, not importable here)" \
            "whole_seq|holds a pickled model object (class torch.nn.modules.container.Sequential), not a state_dict"; do
    name=${case%%|*} msg=${case#*|}
    rc=0; py "$conv" "$dir/$name.pth" "$dir/$name.h5" 2>"$dir/$name.err" >/dev/null || rc=$?
    [ $rc -eq 2 ] && grep -qF "$dir/$name.pth: $msg" "$dir/$name.err" && grep -qF "torch.save(model.state_dict()" "$dir/$name.err" \
        && ! grep -q "not tensors" "$dir/$name.err" && [ ! -e "$dir/$name.h5" ] || fail "$name: rc $rc, $(cat "$dir/$name.err")"
done
echo "7 passed, 0 failed"
