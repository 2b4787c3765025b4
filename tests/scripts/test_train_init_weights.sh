#!/usr/bin/env bash
# run.init_weights: a new run starts from a weights file (the paper's runs start the encoder from
# VMamba's ImageNet weights), over the seeded initialisation.
#   1. an encoder-only file: after one update (a learning rate of 3e-10 at warm-up's start) every
#      tensor of the file is where the file put it, every other tensor where a run without the
#      file has it; the summary line and init_weights.txt name what kept its initialisation;
#   2. a whole model (another seed's weights) loads every tensor;
#   3. a resumed run takes its weights from the checkpoint and never opens run.init_weights;
#   4. refused with the reason, before any training: a missing file, names without the
#      'backbone.' prefix (maskvim's names, or VMamba v0's beside a classifier, whose first name
#      alphabetically is 'head.bias'), another model's shapes, tensors in groups instead of at the
#      root, a PyTorch checkpoint not yet converted, a training checkpoint with a damaged weight;
#   5. a deeper encoder's file (another preset): its extra blocks are reported unused by module,
#      with a warning that they are the encoder's.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=${MV_TEST_TMP:-/tmp}/train_init_weights.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
run() { "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 "$@"; }
passed=0

"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 5 --init-out "$TMP/seed5.h5" >/dev/null
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 0 --init-out "$TMP/seed0.h5" >/dev/null
"$MV_PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(f"{d}/seed5.h5", "r") as f, h5py.File(f"{d}/enc.h5", "w") as enc, h5py.File(f"{d}/bare.h5", "w") as bare:
    for k in f:
        # What an ImageNet encoder holds: no output norms, no token masks, no decoder.
        if k.startswith("backbone.") and ".outnorm" not in k and not k.endswith("token_mask"):
            enc[k] = f[k][...]
            bare[k[len("backbone."):]] = f[k][...]
# VMamba's v0 ImageNet checkpoint converted without --prefix backbone.: v0 block names (which
# no 'backbone.' makes maskvim's, so the first unexpected name proves nothing) and a classifier.
v0 = {".norm.": ".ln_1.", ".op.": ".self_attention.", "patch_embed.0.": "patch_embed.proj.", "patch_embed.2.": "patch_embed.norm."}
with h5py.File(f"{d}/bare.h5", "r") as bare, h5py.File(f"{d}/v0bare.h5", "w") as out:
    for k in bare:
        name = k
        for a, b in v0.items():
            name = name.replace(a, b) if ".blocks." in k or a.startswith("patch_embed") else name
        out[name] = bare[k][...]
    for k, shape in (("head.weight", (1000, 128)), ("head.bias", (1000,)), ("norm.weight", (128,)), ("norm.bias", (128,))):
        out[k] = np.zeros(shape, np.float32)
PY

# 1. Encoder only.
run --set run.work_dir="$TMP/plain" --stop-after 1 >/dev/null
run --set run.work_dir="$TMP/enc" --set run.init_weights="$TMP/enc.h5" --stop-after 1 >"$TMP/enc.log"
grep -q "started from $TMP/enc.h5: 78 of 196 tensors loaded; 118 keep their initialisation (token masks 7, backbone.outnorm 8, decode_head 96, auxiliary_head 7)" "$TMP/enc.log" ||
    fail "summary line: $(head -1 "$TMP/enc.log")"
grep -q "^  missing:    decode_head.conv_seg.weight$" "$TMP/enc/init_weights.txt" || fail "init_weights.txt lacks the decoder"
grep -q "^  missing:    backbone.layers.0.blocks.0.op.in_proj.weight$" "$TMP/enc/init_weights.txt" && fail "a loaded tensor is listed as missing"
"$MV_PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(f"{d}/enc/iter_1.h5", "r") as run, h5py.File(f"{d}/plain/iter_1.h5", "r") as plain, \
     h5py.File(f"{d}/enc.h5", "r") as enc, h5py.File(f"{d}/seed0.h5", "r") as seed0:
    loaded = kept = telling = 0
    for k in seed0:
        if "running_" in k:
            continue   # BatchNorm statistics move by the momentum in one step
        x = run[k][...]
        want = enc[k][...] if k in enc else plain[k][...]
        err = float(np.max(np.abs(x - want)))
        assert err < 1e-5, f"{k}: {err:.3g} from {'the file' if k in enc else 'the run without it'}"
        if k in enc:
            loaded += 1
            # Tensors whose seeded initialisation is far from the file's (not the constant ones:
            # LayerNorm 1/0, A_logs, Ds) are those the check above tells apart.
            telling += float(np.max(np.abs(seed0[k][...] - want))) > 1e-3
        else:
            kept += 1
    assert loaded == 78 and kept > 0 and telling >= 30, (loaded, kept, telling)
print(f"{loaded} tensors from the file, {kept} from the seeded initialisation")
PY
passed=$((passed + 1))

# 2. A whole model: every tensor loads, nothing is listed.
run --set run.work_dir="$TMP/whole" --set run.init_weights="$TMP/seed5.h5" --stop-after 1 >"$TMP/whole.log"
grep -q "started from $TMP/seed5.h5: 196 of 196 tensors loaded$" "$TMP/whole.log" || fail "whole model: $(head -1 "$TMP/whole.log")"
"$MV_PYTHON" - "$TMP" <<'PY' || fail "whole model: the parameters are not the file's"
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(f"{d}/whole/iter_1.h5", "r") as a, h5py.File(f"{d}/seed5.h5", "r") as b:
    bad = [k for k in b if "running_" not in k and float(np.max(np.abs(a[k][...] - b[k][...]))) >= 1e-5]
    assert not bad, bad[:5]
PY
passed=$((passed + 1))

# 3. A resume reads the checkpoint, not run.init_weights (which is gone by now).
run --set run.work_dir="$TMP/enc" --set run.init_weights="$TMP/moved_away.h5" --resume auto --stop-after 2 >"$TMP/resume.log"
grep -q "resumed from .*iter_1.h5 at iteration 1" "$TMP/resume.log" || fail "no resume: $(head -3 "$TMP/resume.log")"
grep -q "started from" "$TMP/resume.log" && fail "a resumed run loaded run.init_weights"
passed=$((passed + 1))

# 4. Refusals, each before the first iteration.
refused() {   # refused NAME EXPECTED-TEXT ARGS...: the run fails with the text and trains nothing
    local name=$1 want=$2
    shift 2
    if run --set run.work_dir="$TMP/$name" "$@" >"$TMP/$name.log" 2>&1; then fail "$name: accepted"; fi
    grep -qF -- "$want" "$TMP/$name.log" || fail "$name: expected '$want', got: $(tail -2 "$TMP/$name.log")"
    grep -q "^\[iter" "$TMP/$name.log" && fail "$name: trained before failing"
    return 0
}
refused missing "run.init_weights: $TMP/nowhere.h5: No such file or directory (the weights a new run starts from" --set run.init_weights="$TMP/nowhere.h5"
refused bare "its names lack the encoder's 'backbone.' prefix" --set run.init_weights="$TMP/bare.h5"
refused v0bare "it holds 82 others, e.g. 'head.bias'; its names lack the encoder's 'backbone.' prefix (78 of its 82 tensors are named as the encoder's modules without it" \
    --set run.init_weights="$TMP/v0bare.h5"
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --set model.dims=8,16,32,64 --init-out "$TMP/other.h5" >/dev/null
refused other "'backbone.patch_embed.0.weight' has shape [8,3,4,4], this model expects [16,3,4,4]" \
    --set run.init_weights="$TMP/other.h5"
"$MV_PYTHON" -c "import h5py,sys,numpy as np; h5py.File(sys.argv[1],'w')['backbone/patch_embed/0/weight'] = np.zeros((16,3,4,4),np.float32)" "$TMP/nested.h5"
refused nested "holds no tensor at its root" --set run.init_weights="$TMP/nested.h5"
"$MV_PYTHON" -c "import torch,sys; torch.save({'model': {'patch_embed.proj.weight': torch.zeros(16,3,4,4)}}, sys.argv[1])" "$TMP/vssm.pth"
refused pytorch "run.init_weights: $TMP/vssm.pth: a PyTorch checkpoint, not an HDF5 file: convert it with tools/pth_to_h5.py" \
    --set run.init_weights="$TMP/vssm.pth"
# eval (and every other reader of weights files) names it the same way.
if "$MV_BIN" eval --checkpoint "$TMP/vssm.pth" >"$TMP/eval_pth.log" 2>&1; then fail "eval took a .pth"; fi
grep -q "vssm.pth: a PyTorch checkpoint, not an HDF5 file: convert it with tools/pth_to_h5.py" "$TMP/eval_pth.log" ||
    fail "eval on a .pth: $(tail -1 "$TMP/eval_pth.log")"
cp "$TMP/plain/iter_1.h5" "$TMP/damaged.h5"
"$MV_PYTHON" -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); f['backbone.patch_embed.0.bias'][0] += 1" "$TMP/damaged.h5"
refused damaged "the weights do not match their checksum" --set run.init_weights="$TMP/damaged.h5"
passed=$((passed + 1))

# 5. Another preset's encoder (two more blocks in stage 2, as VMamba-S has 18 more than VMamba-T):
#    every tensor of this model loads, and the 28 extra ones are named by module, with a warning.
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --set model.depths=1,1,4,1 --seed 5 --init-out "$TMP/deep.h5" >/dev/null
run --set run.work_dir="$TMP/deep" --set run.init_weights="$TMP/deep.h5" --stop-after 1 >"$TMP/deep.log" 2>"$TMP/deep.err"
grep -q "started from $TMP/deep.h5: 196 of 196 tensors loaded; 28 in the file unused (backbone.layers 26, token masks 2); names in" "$TMP/deep.log" ||
    fail "deeper file's summary: $(head -1 "$TMP/deep.log")"
grep -qF "warning: run.init_weights: $TMP/deep.h5: 28 of its 28 unused tensors are the encoder's (e.g. 'backbone.layers.2.blocks.2." "$TMP/deep.err" &&
    grep -q "another model.preset" "$TMP/deep.err" || fail "no warning about the deeper encoder: $(cat "$TMP/deep.err")"
grep -q "^  unexpected: backbone.layers.2.blocks.3.op.A_logs$" "$TMP/deep/init_weights.txt" || fail "init_weights.txt lacks the unused tensors"
# The decoder of another model (a whole file with an extra head tensor) is unused, not the encoder's: no warning.
"$MV_PYTHON" -c "import h5py,sys,shutil,numpy as np; shutil.copy(sys.argv[1], sys.argv[2]); h5py.File(sys.argv[2],'r+')['decode_head.extra.weight'] = np.zeros(3,np.float32)" \
    "$TMP/seed5.h5" "$TMP/extra.h5"
run --set run.work_dir="$TMP/extra" --set run.init_weights="$TMP/extra.h5" --stop-after 1 >"$TMP/extra.log" 2>"$TMP/extra.err"
grep -q "196 of 196 tensors loaded; 1 in the file unused (decode_head 1)" "$TMP/extra.log" || fail "extra decoder tensor: $(head -1 "$TMP/extra.log")"
grep -q "warning: run.init_weights" "$TMP/extra.err" && fail "warned about a decoder tensor: $(cat "$TMP/extra.err")"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
