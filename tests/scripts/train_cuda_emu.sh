#!/usr/bin/env bash
# The GPU training path (run.device: cuda) over the host emulation of the CUDA kernels: the
# engine of core/device/engine_cuda.c moves the model and the AdamW moments to the device,
# trains (every random draw on), writes checkpoints from the device and evaluates there.
#  1. GPU and CPU reach the same parameters after 6 steps (relative L2 below 1e-5; no tensor
#     differs by more than 10% of how far it moved), and log the same losses.
#  2. The GPU run resumed from its iter_4.h5 ends bit-identical to the uninterrupted GPU run
#     (the moments and step count travel through the checkpoint).
#     A CPU run resumed on the GPU, and a GPU run resumed on the CPU, reach the CPU run's
#     parameters (same tolerances as 1).
#  3. With run.precision=bf16 it logs "GEMMs bf16" and each loss of its first 3 steps stays within
#     3% of the CPU's (measured: 0.16%); stopped there (--stop-after 3), it writes iter_3.h5.
#  4. From run.init_weights, GPU and CPU reach the same parameters after 2 steps.
#  5. Asking for the GPU where none can be used is a clear error (the CPU-only binary here).
# Registered by cmake/cuda_model.cmake (ctest test_train_cuda_emu) with MV_EMU_BIN = maskvim-emu.
set -euo pipefail
: "${MV_EMU_BIN:?}"
source "$(dirname "$0")/train_common.sh"
fail() { echo "FAIL: $*"; exit 1; }
TMP=$MV_TEST_TMP/train_cuda_emu.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
gpu() { "$MV_EMU_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.device=cuda "$@"; }
"$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.device=cpu --set run.work_dir="$TMP/cpu" \
    >"$TMP/cpu.log"
gpu --set run.work_dir="$TMP/gpu" >"$TMP/gpu.log"
grep -q "on GPU 0" "$TMP/gpu.log" || fail "the GPU run did not say it ran on the GPU: $(head -2 "$TMP/gpu.log")"
same_training "$TMP/cpu" "$TMP/gpu" || fail "the GPU run's parameters differ from the CPU run's"
grep -q '"type": "eval"' "$TMP/gpu/metrics.jsonl" || fail "the GPU run did not evaluate"

# bf16 GEMMs (run.precision): the same training to within bf16's rounding. AdamW's first steps
# move every weight by about lr * sign(gradient), so weights whose gradients are near zero go
# either way and the parameters are not comparable tensor by tensor; the losses are.
gpu --set run.precision=bf16 --set run.work_dir="$TMP/bf16" --stop-after 3 >"$TMP/bf16.log"
grep -q "GEMMs bf16" "$TMP/bf16.log" || fail "run.precision=bf16 not applied: $(head -1 "$TMP/bf16.log")"
[ -f "$TMP/bf16/iter_3.h5" ] || fail "the GPU run stopped after 3 steps wrote no iter_3.h5"
"$MV_PYTHON" - "$TMP/cpu/metrics.jsonl" "$TMP/bf16/metrics.jsonl" <<'PY' || fail "bf16 training strays from fp32"
import json, sys
def losses(p):
    return [r["loss_total"] for r in map(json.loads, open(p)) if r.get("type") == "train"]
a, b = losses(sys.argv[1])[:3], losses(sys.argv[2])
assert len(a) == len(b) == 3, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"bf16 GEMMs: every logged loss within {100 * worst:.2f}% of the fp32 CPU run's")
assert worst < 0.03 and a != b
PY

gpu --set run.work_dir="$TMP/stop" --resume "$TMP/gpu/iter_4.h5" >"$TMP/stop.log"
grep -q "resumed from .*iter_4.h5 at iteration 4" "$TMP/stop.log" || fail "did not resume at iteration 4"
compare "$TMP/gpu/iter_6.h5" "$TMP/stop/iter_6.h5" --exact || fail "the resumed GPU run differs from the uninterrupted GPU run"

# A checkpoint resumes on the other engine: the CPU run's iter_4.h5 resumed on the GPU, and the
# GPU run's resumed on the CPU (a trial moved to a GPU node, a run finished where no GPU is
# left), both reach the uninterrupted CPU run's parameters.
cpu() { "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.device=cpu "$@"; }
gpu --set run.work_dir="$TMP/cpu_gpu" --resume "$TMP/cpu/iter_4.h5" >"$TMP/cpu_gpu.log"
grep -q "resumed from .*iter_4.h5 at iteration 4" "$TMP/cpu_gpu.log" && grep -q "on GPU 0" "$TMP/cpu_gpu.log" \
    || fail "CPU checkpoint not resumed on the GPU: $(head -2 "$TMP/cpu_gpu.log")"
same_training "$TMP/cpu" "$TMP/cpu_gpu" || fail "a CPU run resumed on the GPU differs from the CPU run"
cpu --set run.work_dir="$TMP/gpu_cpu" --resume "$TMP/gpu/iter_4.h5" >"$TMP/gpu_cpu.log"
grep -q "resumed from .*iter_4.h5 at iteration 4" "$TMP/gpu_cpu.log" && grep -q "on CPU" "$TMP/gpu_cpu.log" \
    || fail "GPU checkpoint not resumed on the CPU: $(head -2 "$TMP/gpu_cpu.log")"
same_training "$TMP/cpu" "$TMP/gpu_cpu" || fail "a GPU run resumed on the CPU differs from the CPU run"

# run.init_weights: the engine moves the loaded weights, not the seeded ones, to the device.
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 5 --init-out "$TMP/seed5.h5" >/dev/null 2>&1
"$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.device=cpu --set run.init_weights="$TMP/seed5.h5" \
    --set run.work_dir="$TMP/cpu_init" --stop-after 2 >/dev/null
gpu --set run.init_weights="$TMP/seed5.h5" --set run.work_dir="$TMP/gpu_init" --stop-after 2 >"$TMP/gpu_init.log"
grep -q "started from $TMP/seed5.h5: 196 of 196 tensors loaded" "$TMP/gpu_init.log" || fail "GPU run: $(head -1 "$TMP/gpu_init.log")"
compare "$TMP/cpu_init/iter_2.h5" "$TMP/gpu_init/iter_2.h5" --init "$TMP/seed5.h5" --rel-l2 1e-5 --drift 0.1 \
    || fail "GPU and CPU runs from run.init_weights differ"

if "$MV_BIN" train "${TRAIN_SETS[@]}" --set run.device=cuda --set run.work_dir="$TMP/none" >"$TMP/none.log" 2>&1; then
    if ! grep -q "on GPU" "$TMP/none.log"; then fail "run.device=cuda without a usable GPU did not fail"; fi
else
    grep -qi "run.device = cuda" "$TMP/none.log" || fail "no clear error without a GPU: $(tail -2 "$TMP/none.log")"
fi
echo "5 passed, 0 failed"
