#!/usr/bin/env bash
# `maskvim step`, `eval` and `predict` on the GPU (run.device=cuda) over the host emulation of
# the CUDA kernels, against the same commands on the CPU:
#  1. step: one whole-model training step with every random draw on (Gumbel noise, dropout, drop
#     path) dumps the same losses, logits, gradients, masks and BatchNorm statistics as the CPU
#     (tests/reference/compare_dump.py's tolerances); at run.precision=bf16 the GEMMs really
#     change (logits differ) and the losses stay within 2%.
#  2. eval: the same per-domain mIoU and aAcc as the CPU to 0.01 points.
#  3. predict: the prediction PNG agrees with the CPU's on 99.5% of the pixels, the mask PNGs on
#     99%, and stderr names the GPU.
# Registered by cmake/cuda_model.cmake (ctest test_cli_cuda_emu) with MV_EMU_BIN = maskvim-emu; on a
# GPU machine tests/gpu/device_checks.sh runs it with MV_EMU_BIN = the real maskvim.
set -euo pipefail
: "${MV_EMU_BIN:?}"
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=$MV_TEST_TMP/cli_cuda_emu.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
passed=0

# 1. One training step.
"$MV_BIN" step --preset maskvim-nano --seed 5 --init-out "$TMP/w.h5" >/dev/null
"$MV_PYTHON" - "$TMP/batch.h5" <<'PY'
import sys
import h5py
import numpy as np
rng = np.random.default_rng(11)
with h5py.File(sys.argv[1], "w") as f:
    f["images"] = rng.standard_normal((2, 3, 64, 96)).astype(np.float32)
    lab = rng.integers(0, 19, (2, 64, 96)).astype(np.uint8)
    lab[:, :5] = 255
    f["labels"] = lab
PY
step() { "$1" step --preset maskvim-nano --weights "$TMP/w.h5" --batch "$TMP/batch.h5" --seed 5 --iter 3 "${@:2}"; }
step "$MV_BIN" --set run.device=cpu --dump "$TMP/cpu.h5" >/dev/null
step "$MV_EMU_BIN" --set run.device=cuda --dump "$TMP/gpu.h5" >/dev/null 2>"$TMP/gpu.err"
grep -q "on GPU 0" "$TMP/gpu.err" || fail "step did not say it ran on the GPU: $(cat "$TMP/gpu.err")"
"$MV_PYTHON" "$MV_SRC/tests/reference/compare_dump.py" "$TMP/cpu.h5" "$TMP/gpu.h5" --top 5 \
    || fail "the GPU step's dump differs from the CPU's"
step "$MV_EMU_BIN" --set run.device=cuda --set run.precision=bf16 --dump "$TMP/bf16.h5" >/dev/null 2>"$TMP/bf16.err"
grep -q "GEMMs bf16" "$TMP/bf16.err" || fail "run.precision=bf16 not applied: $(cat "$TMP/bf16.err")"
"$MV_PYTHON" - "$TMP/gpu.h5" "$TMP/bf16.h5" <<'PY' || fail "the bf16 step is not a bf16 step of the same model"
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1]) as a, h5py.File(sys.argv[2]) as b:
    d = np.abs(a["logits"][...] - b["logits"][...]).max()
    la, lb = float(a["loss_total"][()]), float(b["loss_total"][()])
    print(f"bf16 vs fp32: max logit difference {d:.2e}, loss {lb:.6f} vs {la:.6f}")
    assert d > 1e-5, "bf16 GEMMs gave the fp32 logits"
    assert abs(la - lb) < 0.02 * abs(la), "bf16 loss too far from fp32"
PY
# A d_state the GPU scan does not take (above 32): refused under cuda before anything runs (it
# failed at the first forward); auto runs it on the CPU and says why.
"$MV_EMU_BIN" step --preset maskvim-nano --set model.d_state=40 --seed 5 --init-out "$TMP/w40.h5" >/dev/null
step40() { "$MV_EMU_BIN" step --preset maskvim-nano --set model.d_state=40 --weights "$TMP/w40.h5" --batch "$TMP/batch.h5" "$@"; }
if step40 --set run.device=cuda --dump "$TMP/d40.h5" >/dev/null 2>"$TMP/d40.err"; then fail "d_state 40 on the GPU accepted"; fi
grep -q "the GPU's selective scan takes model.d_state 1..32 and this model has 40" "$TMP/d40.err" ||
    fail "d_state 40 under cuda: $(cat "$TMP/d40.err")"
step40 --set run.device=auto --dump "$TMP/d40a.h5" >/dev/null 2>"$TMP/d40a.err" || fail "d_state 40 under auto: $(cat "$TMP/d40a.err")"
grep -q "on CPU (no GPU: model.d_state 40 is above the GPU scan's 32)" "$TMP/d40a.err" ||
    fail "d_state 40 under auto: $(cat "$TMP/d40a.err")"
passed=$((passed + 1))

# 2. Evaluation of a plain weights file on two synthetic domains.
sets=(--set model.crop=64,64 --set data.synthetic.size=64,128 --set data.scale=128,64 --set data.synthetic.val_count=2
      --set data.val=[synthetic:clear,synthetic:fog] --set data.workers=1)
"$MV_BIN" eval --checkpoint "$TMP/w.h5" "${sets[@]}" --set run.device=cpu --json "$TMP/cpu.json" >/dev/null
"$MV_EMU_BIN" eval --checkpoint "$TMP/w.h5" "${sets[@]}" --set run.device=cuda --json "$TMP/gpu.json" \
    >/dev/null 2>"$TMP/eval.err"
grep -q "on GPU 0" "$TMP/eval.err" || fail "eval did not say it ran on the GPU: $(cat "$TMP/eval.err")"
"$MV_PYTHON" - "$TMP/cpu.json" "$TMP/gpu.json" <<'PY' || fail "GPU and CPU evaluations differ"
import json, sys
a, b = (json.load(open(p))["results"] for p in sys.argv[1:3])
assert len(a) == len(b) == 2, (len(a), len(b))
for x, y in zip(a, b):
    mx, my = x["metrics"]["mIoU"], y["metrics"]["mIoU"]
    ax, ay = x["metrics"]["aAcc"], y["metrics"]["aAcc"]
    print(f"{x['domain']}: mIoU CPU {mx:.3f}, GPU {my:.3f}; aAcc CPU {ax:.3f}, GPU {ay:.3f}")
    assert x["domain"] == y["domain"] and abs(mx - my) <= 0.01 and abs(ax - ay) <= 0.01
PY
passed=$((passed + 1))

# 3. Prediction with masks.
"$MV_BIN" data synth --preview "$TMP/in.png" --domains rain --size 64x128 --preview-count 1 >/dev/null 2>&1
"$MV_BIN" predict --checkpoint "$TMP/w.h5" "${sets[@]}" --set run.device=cpu --input "$TMP/in.png" \
    --out "$TMP/pc" --masks >/dev/null 2>&1
"$MV_EMU_BIN" predict --checkpoint "$TMP/w.h5" "${sets[@]}" --set run.device=cuda --input "$TMP/in.png" \
    --out "$TMP/pg" --masks >/dev/null 2>"$TMP/pred.err"
grep -q "on GPU 0" "$TMP/pred.err" || fail "predict did not say it ran on the GPU: $(cat "$TMP/pred.err")"
"$MV_PYTHON" - "$TMP/pc" "$TMP/pg" <<'PY' || fail "GPU and CPU predictions differ"
import os, sys
import numpy as np
import zlib, struct

def read_png(path):   # 8-bit RGB, non-interlaced, as image_write_png writes them
    data = open(path, "rb").read()
    pos, w, h, idat = 8, 0, 0, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
            assert body[8] == 8 and body[9] == 2, "expected 8-bit RGB"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, out, prev = zlib.decompress(idat), 3 * w, [], bytearray(3 * w)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], (prev[i - 3] if i >= 3 else 0)
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(line))
        prev = line
    return np.frombuffer(b"".join(out), np.uint8).reshape(h, w, 3)

names = sorted(os.listdir(sys.argv[1]))
assert names == sorted(os.listdir(sys.argv[2])) and len(names) > 1, names
for n in names:
    a, b = read_png(os.path.join(sys.argv[1], n)), read_png(os.path.join(sys.argv[2], n))
    agree = float((a == b).all(axis=2).mean())
    need = 0.995 if n.endswith("_pred.png") else 0.99
    print(f"{n}: {100 * agree:.2f}% of pixels agree")
    assert agree >= need, n
PY
passed=$((passed + 1))
echo "$passed passed, 0 failed"
