#!/usr/bin/python3
# Times the PyTorch reference on the CPU, as a yardstick for the C implementation:
#   bench_torch.py --preset maskvim-nano --batch 2 --size 128x256 --iters 3 --threads 2
#       one training step (forward + backward, deterministic settings), prints JSON
#       {ms_per_step, images_per_s, peak_rss_mib, ...}
#   bench_torch.py --scan-only --B 2 --E 64 --L 4096 --N 16 --iters 3 --threads 2
#       the reference's selective scan forward + backward, prints JSON
# --scan loop|chunked picks the selective scan (ref_ops.py: one Python step per token, the
# default and the faster on two CPU cores, or vectorised chunks). The first iteration is a
# warm-up and is not timed. peak_rss_mib is the process's peak resident memory (ru_maxrss): run
# one configuration per process to read it per case.
import argparse
import json
import os
import resource
import sys
import time

# Two OpenMP threads on a shared, busy machine: sleep instead of spinning when waiting
# (must be set before torch loads its OpenMP runtime).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

import ref_config
from maskvim_ref import build_model, compute_loss, init_weights
import ref_ops
from ref_ops import K_DIRS, selective_scan


def bench_step(a, dtype):
    cfg = ref_config.deterministic(ref_config.preset(a.preset))
    ref_config.apply_sets(cfg, a.set or [])
    h, w = (int(v) for v in a.size.lower().split("x"))
    model = build_model(cfg, dtype)
    init_weights(model, 0)
    model.train()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(a.batch, 3, h, w, generator=g, dtype=dtype)
    labels = torch.randint(0, cfg["num_classes"], (a.batch, h, w), generator=g)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # model built, no step yet
    times = []
    for it in range(a.iters + 1):
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=False)
        logits, aux, masks = model(images)
        compute_loss(cfg, logits, aux, masks, labels)["total"].backward()
        if it > 0:
            times.append(time.perf_counter() - t0)
    ms = 1000.0 * sum(times) / len(times)
    return dict(mode="step", preset=a.preset, batch=a.batch, size=[h, w], dtype=str(dtype)[6:],
                scan=a.scan, seg_elems=ref_ops.scan_seg_elems("cpu"),
                threads=torch.get_num_threads(), iters=a.iters, ms_per_step=round(ms, 3),
                images_per_s=round(a.batch * 1000.0 / ms, 3),
                params=sum(p.numel() for p in model.parameters()), rss_before_step_mib=round(rss0, 1))


def bench_scan(a, dtype):
    g = torch.Generator().manual_seed(0)
    B, E, L, N = a.B, a.E, a.L, a.N
    u = torch.randn(B, K_DIRS, E, L, generator=g, dtype=dtype).requires_grad_()
    delta = (torch.rand(B, K_DIRS, E, L, generator=g, dtype=dtype) * 0.5 + 0.01).requires_grad_()
    A = (-torch.rand(K_DIRS, E, N, generator=g, dtype=dtype) - 0.5).requires_grad_()
    Bm = torch.randn(B, K_DIRS, N, L, generator=g, dtype=dtype).requires_grad_()
    Cm = torch.randn(B, K_DIRS, N, L, generator=g, dtype=dtype).requires_grad_()
    D = torch.randn(K_DIRS, E, generator=g, dtype=dtype).requires_grad_()
    gy = torch.randn(B, K_DIRS, E, L, generator=g, dtype=dtype)
    fwd, bwd = [], []
    for it in range(a.iters + 1):
        t0 = time.perf_counter()
        y = selective_scan(u, delta, A, Bm, Cm, D)
        t1 = time.perf_counter()
        y.backward(gy)
        t2 = time.perf_counter()
        if it > 0:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    f_ms = 1000.0 * sum(fwd) / len(fwd)
    b_ms = 1000.0 * sum(bwd) / len(bwd)
    return dict(mode="scan", B=B, K=K_DIRS, E=E, L=L, N=N, dtype=str(dtype)[6:], scan=a.scan,
                seg_elems=ref_ops.scan_seg_elems("cpu"), threads=torch.get_num_threads(),
                iters=a.iters, fwd_ms=round(f_ms, 3),
                bwd_ms=round(b_ms, 3), ms_per_step=round(f_ms + b_ms, 3))


def main():
    ap = argparse.ArgumentParser(description="time the PyTorch reference on the CPU")
    ap.add_argument("--preset", default="maskvim-nano")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", default="128x256", help="HxW")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--scan", default="loop", choices=ref_ops.SCAN_IMPLS)
    ap.add_argument("--seg-elems", type=int, default=0,
                    help="hidden-state values per scan segment (default: ref_ops.scan_seg_elems)")
    ap.add_argument("--scan-only", action="store_true")
    ap.add_argument("--B", type=int, default=2)
    ap.add_argument("--E", type=int, default=64)
    ap.add_argument("--L", type=int, default=1024)
    ap.add_argument("--N", type=int, default=16)
    a = ap.parse_args()
    if a.iters < 1:
        print("bench_torch.py: --iters must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    dtype = dict(float32=torch.float32, float64=torch.float64)[a.dtype]
    ref_ops.set_scan(a.scan)
    if a.seg_elems > 0:
        ref_ops.SCAN_SEG_ELEMS = a.seg_elems
    try:
        res = bench_scan(a, dtype) if a.scan_only else bench_step(a, dtype)
    except ValueError as e:
        print(f"bench_torch.py: error: {e}", file=sys.stderr)
        return 2
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
