#!/usr/bin/env python3
# The PyTorch reference model's training step (tests/reference/maskvim_ref.py) on the GPU, as the
# yardstick for the CUDA backend: preset maskvim-t, random images and labels, forward + loss +
# backward in fp32 with every random draw off (ref_config.deterministic), timed with CUDA
# synchronisation. --scan chooses the reference's selective scan (tests/reference/ref_ops.py):
# chunked (default), the vectorised form, or loop, one Python step per token (launch-bound on a
# GPU: a 512x1024 step takes many seconds). Both keep only each segment's entering state for
# the backward, so either fits at 512x1024; running out of memory is reported, not hidden.
#   torch_step_gpu.py --size 512x1024 --batch 2 --iters 2 --budget 150 [--scan chunked|loop]
#                     [--out FILE.json]
#   torch_step_gpu.py --device cpu --preset maskvim-nano --size 64x64   (smoke test without a GPU)
# Prints one JSON object (and writes it to --out): ms_per_step, images_per_s, peak_mem_gib,
# scan, or "error".
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import torch  # noqa: E402

import ref_config  # noqa: E402
import ref_ops  # noqa: E402
from maskvim_ref import build_model, compute_loss, init_weights  # noqa: E402


def run(a, res):
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        res["error"] = "no CUDA device visible to PyTorch"
        return
    res["gpu"] = torch.cuda.get_device_name(0) if cuda else "cpu"
    ref_ops.set_scan(a.scan)
    res["scan_chunk"] = ref_ops.SCAN_CHUNK
    res["scan_seg_elems"] = ref_ops.scan_seg_elems(a.device)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    h, w = (int(v) for v in a.size.lower().split("x"))
    cfg = ref_config.deterministic(ref_config.preset(a.preset))
    cfg["crop"] = [h, w]   # the token-mask grids follow the image size
    torch.manual_seed(0)
    model = build_model(cfg, torch.float32)
    init_weights(model, 0)
    model.train()
    model.to(a.device)
    # The reference creates a few tensors without naming a device: make those land on the GPU.
    if cuda and hasattr(torch, "set_default_device"):
        torch.set_default_device("cuda")
    g = torch.Generator(device=a.device).manual_seed(0)
    images = torch.randn(a.batch, 3, h, w, generator=g, device=a.device)
    labels = torch.randint(0, cfg["num_classes"], (a.batch, h, w), generator=g, device=a.device)
    res["params"] = sum(p.numel() for p in model.parameters())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    times = []
    for it in range(a.iters + 1):
        sync()
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=False)
        logits, aux, masks = model(images)
        compute_loss(cfg, logits, aux, masks, labels)["total"].backward()
        sync()
        dt = time.perf_counter() - t0
        if it == 0:
            res["warmup_ms"] = round(1000 * dt, 1)
        else:
            times.append(dt)
        if time.perf_counter() - start + dt > a.budget:   # the next step would overrun the budget
            break
    if times:
        ms = 1000 * sum(times) / len(times)
        res["timed_steps"] = len(times)
        res["ms_per_step"] = round(ms, 2)
        res["images_per_s"] = round(a.batch * 1000 / ms, 3)
    else:   # only the warm-up fitted: report it as the step time, marked as such
        res["timed_steps"] = 0
        res["ms_per_step"] = res["warmup_ms"]
        res["images_per_s"] = round(a.batch * 1000 / res["warmup_ms"], 3)
        res["note"] = "warm-up step only (the budget allowed no second step)"
    if cuda:
        res["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)


def main():
    ap = argparse.ArgumentParser(description="time the PyTorch reference training step on the GPU")
    ap.add_argument("--preset", default="maskvim-t")
    ap.add_argument("--size", default="512x1024", help="HxW (multiples of 32)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--budget", type=float, default=150.0, help="seconds")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a smoke test of this script")
    ap.add_argument("--scan", default="chunked", choices=ref_ops.SCAN_IMPLS,
                    help="the reference's selective scan: chunked (vectorised) or loop (per token)")
    ap.add_argument("--out")
    a = ap.parse_args()
    res = dict(mode="torch_reference_step", device=a.device, preset=a.preset, batch=a.batch, size=a.size, dtype="float32",
               scan=a.scan, torch=torch.__version__)
    try:
        run(a, res)
    except torch.cuda.OutOfMemoryError as e:
        res["error"] = "CUDA out of memory: " + str(e).split("\n")[0][:200]
    except RuntimeError as e:
        res["error"] = "RuntimeError: " + str(e).split("\n")[0][:300]
    text = json.dumps(res)
    print(text, flush=True)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
