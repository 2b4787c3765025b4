#!/usr/bin/python3
# Per-op test fixtures for the C kernels, computed with the reference's own ops:
#   make_op_fixtures.py OUT.h5 [--seed S]
# One HDF5 group per case. Activations are stored channels-last (B,H,W,C), parameters in their
# PyTorch state_dict shapes, everything float32 (labels int32). Inputs are rounded to float32
# first and the case is then computed in float64 from those exact values, so a C kernel reading
# the file sees the same inputs and can be judged against a near-exact answer.
# For each case: inputs, parameters, outputs, a random upstream gradient per output (`dy`, `dm`)
# and `grad_<name>` = d/d<name> of sum(y*dy) [+ sum(m*dm)]. Integer settings are attributes.
# docs/reference.md lists every case's datasets.
import argparse
import math
import os
import sys

# Two OpenMP threads on a shared, busy machine: sleep instead of spinning when waiting
# (must be set before torch loads its OpenMP runtime).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import h5py
import torch
import torch.nn.functional as F
from torch.nn.utils.stateless import functional_call

import ref_config
from maskvim_ref import VSSBlock
from ref_ops import K_DIRS, cross_entropy, patch_merging, resize, ss2d_scan, token_logits, token_mask

D64 = torch.float64


def nhwc(x):      # (B,C,H,W) -> (B,H,W,C)
    return x.permute(0, 2, 3, 1)


def nchw(x):      # (B,H,W,C) -> (B,C,H,W)
    return x.permute(0, 3, 1, 2)


class Fixtures:
    def __init__(self, path, seed):
        self.f = h5py.File(path, "w")
        self.f.attrs["layout"] = "activations channels-last (B,H,W,C); parameters as state_dict"
        self.f.attrs["seed"] = seed
        self.g = torch.Generator().manual_seed(seed)
        self.names = []

    def randn(self, *shape, scale=1.0, shift=0.0):
        return torch.randn(shape, generator=self.g, dtype=D64) * scale + shift

    def uniform(self, lo, hi, *shape):
        return torch.rand(shape, generator=self.g, dtype=D64) * (hi - lo) + lo

    def case(self, name, tensors, diff, forward, upstream, attrs=None, ints=None):
        """tensors: name -> float64 tensor (inputs and parameters); diff: the names to
        differentiate; forward(t) -> dict of outputs; upstream: output name -> upstream name
        (outputs not listed get none); ints: name -> integer tensors (stored int32)."""
        t = {k: v.to(torch.float32).to(D64) for k, v in tensors.items()}   # exact float32 values
        for k in diff:
            t[k].requires_grad_(True)
        outs = forward(dict(t, **(ints or {})))
        grp = self.f.create_group(name)
        for k, v in t.items():
            grp.create_dataset(k, data=v.detach().to(torch.float32).numpy())
        for k, v in (ints or {}).items():
            grp.create_dataset(k, data=v.to(torch.int32).numpy())
        loss = 0.0
        for k, v in outs.items():
            grp.create_dataset(k, data=v.detach().to(torch.float32).numpy())
            if k in upstream:
                d = self.randn(*v.shape).to(torch.float32).to(D64)
                grp.create_dataset(upstream[k], data=d.to(torch.float32).numpy())
                loss = loss + (v * d).sum()
        if diff:
            grads = torch.autograd.grad(loss, [t[k] for k in diff], allow_unused=True)
            for k, gk in zip(diff, grads):
                gk = torch.zeros_like(t[k]) if gk is None else gk
                grp.create_dataset(f"grad_{k}", data=gk.to(torch.float32).numpy())
        for k, v in (attrs or {}).items():
            grp.attrs[k] = v
        self.names.append(name)

    def close(self):
        self.f.attrs["cases"] = ",".join(self.names)
        self.f.close()


# ---------------------------------------------------------------------------------------------
def ss2d_scan_case(fx, name, B, H, W, E, N, R):
    t = dict(
        x=F.silu(fx.randn(B, H, W, E)),                                   # after dwconv + SiLU
        x_proj_weight=fx.uniform(-1, 1, K_DIRS, R + 2 * N, E) * (2.0 / math.sqrt(E)),
        dt_projs_weight=fx.uniform(-1, 1, K_DIRS, E, R) * R ** -0.5,
        dt_projs_bias=fx.uniform(-2.0, 0.5, K_DIRS, E),                     # deltas ~ 0.1 .. 1
        A_logs=torch.log(torch.arange(1, N + 1, dtype=D64)).repeat(K_DIRS * E, 1)
        + fx.randn(K_DIRS * E, N, scale=0.1),
        Ds=fx.randn(K_DIRS * E, scale=0.5, shift=1.0),
    )

    def fwd(t):
        return dict(y=ss2d_scan(nchw(t["x"]), t["x_proj_weight"], t["dt_projs_weight"],
                                t["dt_projs_bias"], t["A_logs"], t["Ds"]))
    fx.case(name, t, list(t), fwd, dict(y="dy"), attrs=dict(B=B, H=H, W=W, E=E, N=N, R=R, K=K_DIRS))


def conv_case(fx, name, B, H, W, cin, cout, k, stride, pad, bias, groups=1):
    t = dict(x=fx.randn(B, H, W, cin))
    fan_in = cin // groups * k * k
    t["weight"] = fx.uniform(-1, 1, cout, cin // groups, k, k) / math.sqrt(fan_in)
    if bias:
        t["bias"] = fx.uniform(-0.5, 0.5, cout)

    def fwd(t):
        y = F.conv2d(nchw(t["x"]), t["weight"], t.get("bias"), stride=stride, padding=pad,
                     groups=groups)
        return dict(y=nhwc(y))
    fx.case(name, t, list(t), fwd, dict(y="dy"),
            attrs=dict(kernel=k, stride=stride, pad=pad, groups=groups, bias=int(bias)))


def token_mask_logits_apart(fx, grid, size, layout):
    """Mask logits P ~ U(-4,4) whose resized token logits are never within 1e-3 of a tie."""
    while True:
        P = fx.uniform(-4.0, 4.0, 1, grid[0] * grid[1], 2).to(torch.float32).to(D64)
        lg = token_logits(P, grid, size, layout)
        if (lg[..., 0] - lg[..., 1]).abs().min() > 1e-3:
            return P


def token_mask_case(fx, name, mode, layout, training, tau):
    B, H, W, C, grid = 2, 6, 10, 3, (4, 5)
    t = dict(x=fx.randn(B, H, W, C), P=token_mask_logits_apart(fx, grid, (H, W), layout))

    def fwd(t):
        y, m = token_mask(t["x"], t["P"], grid, training, tau=tau, mode=mode, layout=layout,
                          noise=False)
        return dict(y=y, m=m)
    fx.case(name, t, list(t) if training else [], fwd,
            dict(y="dy", m="dm") if training else {},
            attrs=dict(grid_h=grid[0], grid_w=grid[1], mode=0 if mode == "residual" else 1,
                       layout=0 if layout == "spatial" else 1, training=int(training), tau=tau))


def ce_case(fx, name, avg_non_ignore):
    B, H, W, K = 2, 5, 6, 7
    labels = torch.randint(0, K, (B, H, W), generator=fx.g)
    labels[torch.rand(B, H, W, generator=fx.g) < 0.2] = 255
    t = dict(logits=fx.randn(B, H, W, K, scale=2.0))

    def fwd(t):
        return dict(loss=cross_entropy(nchw(t["logits"]), t["labels"].long(), avg_non_ignore))
    fx.case(name, t, ["logits"], fwd, dict(loss="dy"), ints=dict(labels=labels),
            attrs=dict(ignore_index=255, avg_non_ignore=int(avg_non_ignore),
                       num_classes=K))


def ss2d_block_case(fx):
    B, H, W, C, N = 2, 5, 6, 8, 4
    cfg = ref_config.deterministic(ref_config.preset("maskvim-nano"))
    blk = VSSBlock(C, C, N, 2, None, 0.0, cfg).to(D64)
    E, R = blk.op.E, blk.op.R
    t = {"x": fx.randn(B, H, W, C)}
    for k, p in blk.named_parameters():
        if k.endswith("x_proj_weight"):
            v = fx.uniform(-1, 1, *p.shape) * (2.0 / math.sqrt(E))
        elif k.endswith("dt_projs_weight"):
            v = fx.uniform(-1, 1, *p.shape) * R ** -0.5
        elif k.endswith("dt_projs_bias"):
            v = fx.uniform(-2.0, 0.5, *p.shape)
        elif k.endswith("A_logs"):
            v = torch.log(torch.arange(1, N + 1, dtype=D64)).repeat(K_DIRS * E, 1) \
                + fx.randn(*p.shape, scale=0.1)
        elif k.endswith("Ds"):
            v = fx.randn(*p.shape, scale=0.5, shift=1.0)
        elif k.endswith("norm.weight"):
            v = fx.randn(*p.shape, scale=0.2, shift=1.0)
        elif k.endswith("bias"):
            v = fx.randn(*p.shape, scale=0.2)
        elif k.endswith("conv2d.weight"):
            v = fx.uniform(-1, 1, *p.shape) / 3.0
        else:                                       # in_proj, out_proj
            v = fx.randn(*p.shape, scale=1.0 / math.sqrt(p.shape[1]))
        t[k] = v
    params = [k for k in t if k != "x"]

    def fwd(t):
        masks = []
        y = functional_call(blk, {k: t[k] for k in params}, (t["x"], masks))
        return dict(y=y)
    fx.case("ss2d_block", t, list(t), fwd, dict(y="dy"),
            attrs=dict(B=B, H=H, W=W, C=C, E=E, N=N, R=R, K=K_DIRS))


def build(path, seed):
    fx = Fixtures(path, seed)
    ss2d_scan_case(fx, "ss2d_scan", 2, 5, 7, 8, 4, 2)
    ss2d_scan_case(fx, "ss2d_scan_1x1", 2, 1, 1, 8, 4, 2)
    ss2d_scan_case(fx, "ss2d_scan_1x9", 2, 1, 9, 8, 4, 2)
    # The paper's d_state, one full 16-channel block and a tail, two chunks.
    ss2d_scan_case(fx, "ss2d_scan_d_state_16", 1, 9, 8, 20, 16, 2)

    t = dict(x=fx.randn(2, 6, 10, scale=2.0, shift=0.5), weight=fx.randn(10, scale=0.3, shift=1.0),
             bias=fx.randn(10, scale=0.3))
    fx.case("layernorm", t, list(t),
            lambda t: dict(y=F.layer_norm(t["x"], (10,), t["weight"], t["bias"], 1e-5)),
            dict(y="dy"), attrs=dict(eps=1e-5))

    for name, src, dst in (("bilinear_up", (5, 7), (12, 9)), ("bilinear_down", (12, 9), (5, 4))):
        t = dict(x=fx.randn(2, src[0], src[1], 3))
        fx.case(name, t, ["x"], lambda t, dst=dst: dict(y=nhwc(resize(nchw(t["x"]), dst))),
                dict(y="dy"), attrs=dict(out_h=dst[0], out_w=dst[1], align_corners=0))

    for s in (1, 2, 3, 6):
        t = dict(x=fx.randn(2, 7, 10, 3))
        fx.case(f"adaptive_avg_pool_s{s}", t, ["x"],
                lambda t, s=s: dict(y=nhwc(F.adaptive_avg_pool2d(nchw(t["x"]), s))),
                dict(y="dy"), attrs=dict(s=s))

    conv_case(fx, "conv3x3", 2, 5, 6, 4, 5, 3, 1, 1, bias=False)
    conv_case(fx, "conv4x4s4", 2, 8, 12, 3, 6, 4, 4, 0, bias=True)
    conv_case(fx, "conv1x1", 2, 4, 5, 6, 7, 1, 1, 0, bias=True)
    conv_case(fx, "dwconv3x3", 2, 5, 6, 8, 8, 3, 1, 1, bias=True, groups=8)

    C = 6
    t = dict(x=fx.randn(3, 4, 5, C, scale=1.5, shift=0.3), weight=fx.randn(C, scale=0.3, shift=1.0),
             bias=fx.randn(C, scale=0.3), running_mean=fx.randn(C, scale=0.1),
             running_var=fx.uniform(0.5, 1.5, C))

    def bn(t):
        rm, rv = t["running_mean"].detach().clone(), t["running_var"].detach().clone()
        y = F.batch_norm(nchw(t["x"]), rm, rv, t["weight"], t["bias"], training=True,
                         momentum=0.1, eps=1e-5)
        return dict(y=nhwc(y), running_mean_out=rm, running_var_out=rv)
    fx.case("batchnorm_train", t, ["x", "weight", "bias"], bn, dict(y="dy"),
            attrs=dict(eps=1e-5, momentum=0.1))

    C = 4
    t = {"x": fx.randn(2, 5, 7, C), "norm.weight": fx.randn(4 * C, scale=0.2, shift=1.0),
         "norm.bias": fx.randn(4 * C, scale=0.2),
         "reduction.weight": fx.randn(2 * C, 4 * C, scale=0.25)}

    def pm(t):
        return dict(y=patch_merging(
            t["x"], lambda v: F.layer_norm(v, (4 * C,), t["norm.weight"], t["norm.bias"], 1e-5),
            lambda v: F.linear(v, t["reduction.weight"])))
    fx.case("patch_merging", t, list(t), pm, dict(y="dy"), attrs=dict(eps=1e-5))

    token_mask_case(fx, "token_mask_residual", "residual", "spatial", True, 1.0)
    token_mask_case(fx, "token_mask_zero", "zero", "spatial", True, 0.5)
    token_mask_case(fx, "token_mask_official", "residual", "official", True, 1.0)
    token_mask_case(fx, "token_mask_eval", "residual", "spatial", False, 1.0)

    ce_case(fx, "cross_entropy", False)
    ce_case(fx, "cross_entropy_nonignore", True)

    ss2d_block_case(fx)
    fx.close()
    return fx.names


def main():
    ap = argparse.ArgumentParser(description="write per-op fixtures for the C kernels")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    torch.set_num_threads(2)
    tmp = a.out + ".tmp"
    try:
        names = build(tmp, a.seed)
        os.replace(tmp, a.out)
    except OSError as e:
        print(f"make_op_fixtures.py: error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {len(names)} cases: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
