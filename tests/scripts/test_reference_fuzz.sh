#!/usr/bin/env bash
# The nano model against the PyTorch reference on settings test_reference_step.sh leaves out
# (found by fuzzing both sides with random configurations, batches and weights; each case here
# is fixed by its seeds):
# - batch sizes 1, 3 and 5; non-square images whose feature maps are odd and reach 1 px at
#   stage 3 (32x72: 8x18 ... 1x3; 34x100: 8x25 ... 1x4; 95x37: 23x9 ... 3x2);
# - 2, 3, 40 and 255 classes; labels ignored in one image or in the whole batch (with and
#   without avg_non_ignore: a mean over no pixel is 0), one class only, none ignored;
# - lambda 0 and 1, per-stage lambdas with stage 3 masked, alpha1, alpha2 and aux_weight zero
#   and large, tau 0.1 and 100, gamma 10, zero mode, the official layout off the crop size;
# - widths that are not multiples of 16 and do not double, ssm_ratio 1 and 3, d_state 1, 17 and
#   33, decoder depths 2, decoder and aux widths below 8, every encoder mask off;
# - weights away from the initialisation: every tensor perturbed (LayerNorm and BatchNorm
#   scales and shifts, biases, A_logs, Ds, dt biases, running statistics), not only the
#   initialiser's values (LayerNorm 1/0 and BatchNorm 1/0 hide a swapped or dropped scale).
# compare_dump.py sets the tolerances (losses 1e-4, gradients 1e-3 of each tensor's largest
# magnitude). The two b2_ppm cases failed it before its EPS_LIMITED rule: at batch 2 the scale-1
# pyramid pooling conv's gradient is BatchNorm's eps over the spread of 2 values, 1e-10 to 1e-5
# of the largest gradient, and float32 gets it to a few percent only (PyTorch's float32 as well).
# Fuzzing also meets cases that no float32 code can pass, kept out of this list: the float64
# reference itself moves by percents when the weights move by 1e-6 (a BatchNorm over 2 to 18
# values per channel with an element at a ReLU kink), or its float32 run fails as ours does
# (zero-mode masks emptying a 1xN stage-3 map: LayerNorms of all-zero rows, BatchNorms of few
# values). docs/reference.md, "compare_dump.py", describes both. Every case runs under
# --kink-margin 1e-6 (no ReLU input within 1e-6 of its layer's largest from zero, where float32
# rounding, down to the CPU's BLAS kernels, picks the side): b3_ignore1 and b5_linear_stage3
# moved from seeds 13 and 14 (8e-7 and 4e-7) to 113 and 114.
set -euo pipefail
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
dir="$MV_TEST_TMP/reference_fuzz"; rm -rf "$dir"; mkdir -p "$dir"
ref="$MV_SRC/tests/reference/maskvim_ref.py"
det="--set mask.noise=false --set model.dropout=0 --set model.drop_path=0 --set model.decoder_drop_path=0"
# name|B|HxW|classes|labels|perturb|seed|settings. seed: of the C initialisation, the batch and
# the perturbation. labels: mixed (10% ignored), ignore1 (one image all 255), ignoreall (every
# pixel 255), single (one class), full (none ignored).
cases=(
  "b1_ignoreall|1|34x100|3|ignoreall|1|11|--set model.context=vss --set model.avg_non_ignore=true --set model.decoder_depths=2,1,2 --set model.d_state=17 --set model.crop=32,96"
  "b1_full|1|36x52|2|full|1|12|--set model.context=vss --set model.dims=8,12,20,4 --set model.ssm_ratio=3 --set mask.layout=official --set mask.lambda=1 --set mask.tau=0.1"
  "b3_ignore1|3|95x37|255|ignore1|1|113|--set model.dims=12,20,4,8 --set model.ssm_ratio=3 --set model.decoder_channels=12 --set mask.lambda=0 --set mask.alpha1=2.5 --set mask.alpha2=0 --set model.aux_weight=0 --set mask.layout=official --set model.crop=32,96"
  "b5_linear_stage3|5|32x72|19|single|1|114|--set model.head=linear --set mask.decoder=false --set mask.encoder_stages=1,0,1,1 --set mask.lambda=1,0,0.5,1 --set mask.gamma=10"
  "b2_nomask_enc|2|64x44|5|full|0|15|--set mask.encoder_stages=0,0,0 --set model.dims=4,4,4,4 --set model.decoder_channels=5 --set model.aux_channels=3 --set model.d_state=1 --set model.ssm_ratio=1 --set mask.alpha2=10 --set model.aux_weight=10 --set model.crop=96,32"
  "b3_zero_deep|3|48x80|40|mixed|1|16|--set mask.mode=zero --set model.depths=2,1,1,2 --set model.decoder_depths=2,2,2 --set model.d_state=33 --set mask.tau=100 --set model.avg_non_ignore=true"
  "b2_ppm_scale1|2|44x56|19|mixed|1|28|--set model.ssm_ratio=3 --set model.decoder_channels=5 --set model.aux_channels=3 --set model.crop=64,32 --set mask.lambda=0.2,0.5,0"
  "b2_ppm_scale1_d33|2|37x128|40|mixed|1|29|--set model.d_state=33 --set model.ssm_ratio=3 --set model.decoder_channels=5 --set model.aux_channels=3 --set model.crop=96,32 --set mask.encoder_stages=1,1,0 --set mask.lambda=0 --set mask.alpha1=0 --set mask.alpha2=2.5"
  "b3_ignore1_avg|3|44x56|19|ignore1|1|17|--set model.context=vss --set model.avg_non_ignore=true --set mask.lambda=0.9,0.1,0.5 --set mask.alpha1=10 --set mask.encoder_stages=1,1,0 --set model.dims=20,16,12,20"
)
# 1. The C side initialises each case's weights (its own generator, from the case's seed).
for k in "${!cases[@]}"; do
  IFS='|' read -r _ _ _ classes _ _ seed extra <<<"${cases[$k]}"
  # shellcheck disable=SC2086
  "$MV_BIN" step --preset maskvim-nano $det $extra --set model.num_classes="$classes" --set run.device=cpu \
      --seed "$seed" --init-out "$dir/init$k.h5" >/dev/null
done
# 2. One Python process writes the batches and moves the weights off their initialisation.
"$MV_PYTHON" - "$MV_SRC/tests/reference" "$dir" "${cases[@]}" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import h5py, numpy as np
import maskvim_ref
d = sys.argv[2]
for k, case in enumerate(sys.argv[3:]):
    name, B, size, classes, labels, perturb, seed, _ = case.split("|")
    B, classes, seed = int(B), int(classes), int(seed)
    H, W = (int(v) for v in size.split("x"))
    maskvim_ref.make_batch(f"{d}/b{k}.h5", B, (H, W), classes, seed, 0.1)
    g = np.random.default_rng(seed + 1000)
    with h5py.File(f"{d}/b{k}.h5", "r+") as f:
        x, lab = f["images"][...], f["labels"][...]
        # Each image its own brightness and contrast (see test_reference_step.sh: pure noise
        # images have nearly equal means, and the scale-1 pyramid pooling's BatchNorm divides by
        # their spread).
        for b in range(B):
            x[b] = x[b] * (0.6 + 0.8 * b / max(1, B - 1)) + (b - 0.5) + 0.3 * g.standard_normal()
        if labels == "ignore1":
            lab[B // 2] = 255
        elif labels == "ignoreall":
            lab[...] = 255
        elif labels == "single":
            lab[lab != 255] = classes - 1
        elif labels == "full":
            lab[lab == 255] = 0
        f["images"][...], f["labels"][...] = x, lab
    with h5py.File(f"{d}/init{k}.h5", "r") as fi, h5py.File(f"{d}/w{k}.h5", "w") as fo:
        for key in fi:
            a = fi[key][()].astype(np.float64)
            if perturb == "1" and "token_mask" not in key:
                if key.endswith("running_var"):
                    a = np.exp(g.normal(0, 0.5, a.shape))
                elif key.endswith(("running_mean", "A_logs", "dt_projs_bias")):
                    a = a + g.normal(0, 0.3, a.shape)
                elif key.endswith("Ds"):
                    a = a + g.normal(0, 0.5, a.shape)
                else:   # half the tensor's spread; constant tensors (LN/BN 1, biases 0) by 0.3
                    sd = a.std() if a.size > 1 and a.std() > 0 else 0.3
                    a = a + g.normal(0, 0.5 * sd, a.shape)
            fo.create_dataset(key, data=a.astype(np.float32))
PY
# 3. The C steps on those weights, then all reference steps in one process, then the comparisons.
: >"$dir/ref_steps.txt"; : >"$dir/pairs.txt"
for k in "${!cases[@]}"; do
  IFS='|' read -r name _ _ classes _ _ _ extra <<<"${cases[$k]}"
  # shellcheck disable=SC2086
  "$MV_BIN" step --preset maskvim-nano $det $extra --set model.num_classes="$classes" --set run.device=cpu \
      --weights "$dir/w$k.h5" --batch "$dir/b$k.h5" --dump "$dir/c$k.h5" --iter 3 >/dev/null
  # shellcheck disable=SC2086
  printf '%s\n' "step --preset maskvim-nano $det $extra --set model.num_classes=$classes \
--weights $(printf %q "$dir/w$k.h5") --batch $(printf %q "$dir/b$k.h5") --dump $(printf %q "$dir/r$k.h5") --kink-margin 1e-6 --quiet" \
      >>"$dir/ref_steps.txt"
  printf '%q %q %q\n' "$dir/r$k.h5" "$dir/c$k.h5" "$name" >>"$dir/pairs.txt"
done
"$MV_PYTHON" "$ref" many "$dir/ref_steps.txt" >/dev/null || echo "some reference steps failed (their comparisons fail below)"
"$MV_PYTHON" "$MV_SRC/tests/reference/compare_dump.py" --pairs "$dir/pairs.txt"
