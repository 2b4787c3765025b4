#!/usr/bin/env bash
# The whole nano model against the PyTorch reference: the same weights file and batch must give
# the same losses, logits and every parameter gradient in `maskvim step` (compare_dump.py sets
# the tolerances: losses 1e-4 relative, gradients 1e-3 of each tensor's largest magnitude).
# Covers the mask modes and layouts, per-stage lambda, non-ignored averaging, decoder depths,
# partially masked encoders, Table 6's variants (linear head, masks in all four stages, a VSS
# block instead of pyramid pooling), and an image size that is not the crop (token-mask resizing,
# odd feature sizes padded before patch merging).
set -euo pipefail
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
dir="$MV_TEST_TMP/reference_step"; rm -rf "$dir"; mkdir -p "$dir"
ref="$MV_SRC/tests/reference/maskvim_ref.py"
# Both sides must refuse the same settings (docs/config.md ranges and consistency rules): the
# reference used to accept num_classes 1 or 256, lambdas outside [0,1], three per-stage lambdas
# with stage 3 masked, tau or gamma out of range, ... and so computed configurations `maskvim`
# rejects. Each entry is one or more key=value separated by spaces; the last one is accepted.
refused=(
  "model.num_classes=1" "model.num_classes=256" "mask.lambda=1.5" "mask.lambda=0.9,0.7,0.5,0.3"
  "mask.lambda=0.9,0.7,0.5 mask.encoder_stages=1,1,1,1" "mask.tau=2000" "mask.gamma=0"
  "model.ssm_ratio=9" "model.d_state=65" "model.depths=1,1,65,1" "mask.alpha1=-1" "model.aux_weight=-1"
  "model.head=linear mask.decoder=false model.context=vss" "model.crop=16416,32"
  "mask.lambda=0.9,0.7,0.5,0.3 mask.encoder_stages=1,1,1,1"
)
for i in "${!refused[@]}"; do
  sets=(); for kv in ${refused[$i]}; do sets+=(--set "$kv"); done
  want=1; [ "$i" -eq $((${#refused[@]} - 1)) ] && want=0
  got=0; "$MV_BIN" config "${sets[@]}" >/dev/null 2>&1 || got=1
  [ "$got" -eq "$want" ] || { echo "FAIL maskvim config ${refused[$i]}: refused=$got, want $want"; exit 1; }
done
"$MV_PYTHON" - "$MV_SRC/tests/reference" "${refused[@]}" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import ref_config
cases = sys.argv[2:]
for i, case in enumerate(cases):
    try:
        ref_config.apply_sets(ref_config.preset("maskvim-nano"), case.split())
        refused = False
    except ValueError:
        refused = True
    if refused != (i < len(cases) - 1):
        sys.exit(f"FAIL maskvim_ref.py {case}: refused={refused}, maskvim says {i < len(cases) - 1}")
print(f"ok   both sides refuse the same {len(cases) - 1} settings")
PY
det="--set mask.noise=false --set model.dropout=0 --set model.drop_path=0 --set model.decoder_drop_path=0"
"$MV_PYTHON" "$ref" make-batch --out "$dir/crop.h5" --batch 2 --size 64x64 --classes 19 --seed 1 >/dev/null
"$MV_PYTHON" "$ref" make-batch --out "$dir/odd.h5" --batch 2 --size 72x104 --classes 19 --seed 2 >/dev/null
# Sides that are not multiples of 4 (the patch embedding drops the remainder, the logits are
# resized to the full label size) and three images.
"$MV_PYTHON" "$ref" make-batch --out "$dir/ragged.h5" --batch 3 --size 33x47 --classes 19 --seed 3 >/dev/null
# Give each image its own brightness and contrast: pure noise images have nearly equal global
# averages, and the scale-1 pyramid-pooling BatchNorm (2 values per channel) then divides by a
# near-zero spread, so float32 rounding (ours) against float64 (the reference) would dominate.
"$MV_PYTHON" - "$dir/crop.h5" "$dir/odd.h5" "$dir/ragged.h5" <<'PY'
import sys, h5py
for path in sys.argv[1:]:
    with h5py.File(path, "r+") as f:
        x = f["images"][...]
        for b in range(x.shape[0]):
            x[b] = x[b] * (0.6 + 0.8 * b / max(1, x.shape[0] - 1)) + (b - 0.5)
        f["images"][...] = x
PY
cases=(
  ""
  "--set mask.mode=zero"
  "--set mask.layout=official"
  "--set mask.lambda=0.9,0.7,0.5 --set mask.alpha1=3 --set mask.alpha2=0.5"
  "--set model.avg_non_ignore=true --set mask.decoder=false"
  "--set model.decoder_depths=1,2,1 --set mask.encoder_stages=1,0,1"
  "--set model.head=linear --set mask.decoder=false"
  "--set model.head=linear --set mask.decoder=false --set mask.encoder_stages=1,1,1,1"
  "--set model.head=linear --set mask.decoder=false --set mask.encoder_stages=0,1,1,1 --set mask.lambda=0.9,0.7,0.5,0.3"
  "--set model.context=vss --set model.decoder_depths=2,1,1"
)
# Cases run on one batch only ("batch|settings"): encoder widths that do not double (the
# downsample is Linear(4C_i -> C_{i+1})) with a decoder width that is not a multiple of 16, on
# the ragged batch.
# Official token-mask layout with the logits upsampled about 3x (crop 32x32, masks on 8x8 ...
# 1x1 grids, 72x104 images: 18x26 ... 3x4 maps): a token then compares two horizontally adjacent
# entries of one plane, and neighbours past the first or last grid centre are an exact tie (a tie
# keeps). The resize must keep them exact on both sides (kernels/cpu/resample.c, ref_ops
# resize_clamped); float rounding used to decide them, and whole masks differed.
single=(
  "ragged|--set model.dims=12,20,36,68 --set model.decoder_channels=24 --set model.aux_channels=20 --set mask.lambda=0.8,0.6,0.4"
  "odd|--set mask.layout=official --set model.crop=32,32"
  "odd|--set model.dims=16,192,384,32 --set model.depths=1,1,1,1"
)
# The last single case (wide stages 1 and 2 on odd maps: patch merging pads rows of 768 and 1536
# channels with zeros) is also held to float32's own precision: its logits within 4e-6 of the
# reference's largest (measured 8e-7; torch in float32 ~1e-6). LayerNorm's float sums once gave
# 1.25e-5 here, 10x torch's, and flipped ReLU kinks that float32 should not (maskvim-s failed).
precise=$(( ${#cases[@]} + ${#single[@]} - 1 ))
# The C initialisation's seed is case + 7, but where that put a ReLU input (a ConvModule's
# BatchNorm output) within 2e-6 of its layer's largest |value| from zero: float32 rounding then
# decides which side of the kink it takes, and which BLAS kernels the CPU gets (AVX2 on one
# machine, AVX-512 on another) decided whether [odd] avg_non_ignore passed (one element at
# 4.9e-7: the bias gradients below fpn_bottleneck moved by 1.5e-2). Those runs take the first
# of seed + 1000, + 2000, ... that leaves a margin of 2e-6; the reference checks every run's
# margin (--kink-margin 1e-6) so that no edit brings such a case back unnoticed.
declare -A seed_of=([0|crop]=2007 [1|odd]=1008 [2|crop]=2009 [3|odd]=3010 [4|odd]=1011 [7|odd]=1014 [9|odd]=1016
  [12|odd]=1017)
runs=()
for i in "${!cases[@]}"; do for batch in crop odd; do runs+=("$i|$batch|${cases[$i]}"); done; done
for j in "${!single[@]}"; do runs+=("$((${#cases[@]} + j))|${single[$j]}"); done
# The C steps first (each writes the weights the reference loads), then all reference steps in
# one Python process and all comparisons in another: a process per step spent most of the
# test's time importing torch.
: >"$dir/ref_steps.txt"; : >"$dir/pairs.txt"
for k in "${!runs[@]}"; do
  IFS='|' read -r i batch extra <<<"${runs[$k]}"
  # The CPU model's math (run.device=auto would take a GPU where one is present).
  # shellcheck disable=SC2086
  seed=${seed_of[$i|$batch]:-$((i + 7))}
  "$MV_BIN" step --preset maskvim-nano $det $extra --set run.device=cpu --seed "$seed" --init-out "$dir/w$k.h5" \
      --batch "$dir/$batch.h5" --dump "$dir/c$k.h5" >/dev/null
  # shellcheck disable=SC2086
  printf '%s\n' "step --preset maskvim-nano $det $extra --weights $(printf %q "$dir/w$k.h5") \
--batch $(printf %q "$dir/$batch.h5") --dump $(printf %q "$dir/r$k.h5") --kink-margin 1e-6 --quiet" >>"$dir/ref_steps.txt"
  printf '%q %q %q\n' "$dir/r$k.h5" "$dir/c$k.h5" "[$batch] ${extra:-defaults}" >>"$dir/pairs.txt"
done
"$MV_PYTHON" "$ref" many "$dir/ref_steps.txt" >/dev/null || echo "some reference steps failed (their comparisons fail below)"
"$MV_PYTHON" "$MV_SRC/tests/reference/compare_dump.py" --pairs "$dir/pairs.txt"
k=$(( ${#runs[@]} - 1 ))
[ "$(cut -d'|' -f1 <<<"${runs[$k]}")" -eq "$precise" ] || { echo "FAIL: the precision case is not the last run"; exit 1; }
"$MV_PYTHON" "$MV_SRC/tests/reference/compare_dump.py" --logit-tol 4e-6 --top 3 "$dir/r$k.h5" "$dir/c$k.h5" ||
  { echo "FAIL: [odd] wide stages: logits beyond float32's precision (--logit-tol 4e-6)"; exit 1; }
