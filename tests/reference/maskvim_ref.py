#!/usr/bin/python3
# The PyTorch reference of MaskViM, written straight from docs/math.md: the model (VMamba encoder
# with masked VSS blocks, UPerNet-like decoder with masked lateral blocks, auxiliary FCN head),
# its initialisation and losses, and a command line that runs one training step on a weights
# file and a batch file and dumps the losses, logits, masks and every gradient (HDF5).
# The C implementation is tested against these dumps; docs/reference.md describes the files.
#
#   maskvim_ref.py step --preset maskvim-nano [--set k=v ...] [--weights W.h5] [--init-out W.h5]
#                       [--batch B.h5 --dump OUT.h5] [--seed S] [--dtype float64|float32]
#                       [--scan loop|chunked]
#   maskvim_ref.py forward --preset maskvim-nano [--set k=v ...] --weights W.h5 --batch B.h5
#                          --dump OUT.h5 [--train] [--dtype float64|float32]
#   maskvim_ref.py make-batch --out B.h5 --batch 2 --size 64x64 --classes 19 --seed S
#   maskvim_ref.py keys --preset maskvim-nano [--set k=v ...]
#   maskvim_ref.py selftest [--tmp DIR]
#   maskvim_ref.py many FILE      (FILE: one of the command lines above per line, run in one process)
import argparse
import math
import os
import shlex
import subprocess
import sys
import time

# Two OpenMP threads on a shared, busy machine: sleep instead of spinning when waiting
# (must be set before torch loads its OpenMP runtime).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import ref_config
from ref_ops import (K_DIRS, IGNORE, SCAN_IMPLS, cross_entropy, drop_path, patch_merging,
                     resize, set_scan, ss2d_scan, token_mask)

LN_EPS = 1e-5
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
PPM_SCALES = (1, 2, 3, 6)


# =============================================================================================
# Modules. Activations are channels-last (B,H,W,C) inside the encoder and the VSS blocks; the
# convolutional parts of the heads work channels-first (B,C,H,W) as PyTorch's conv2d wants.
# =============================================================================================
class Permute(nn.Module):
    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class SS2D(nn.Module):
    """docs/math.md section 2.2: in_proj, depthwise conv + SiLU, 4-direction selective scan, out_norm * SiLU(z),
    out_proj. Input and output (B,H,W,C)."""

    def __init__(self, C, d_state, ssm_ratio=2):
        super().__init__()
        E = ssm_ratio * C
        R = math.ceil(C / 16)
        self.E, self.R, self.N = E, R, d_state
        self.in_proj = nn.Linear(C, 2 * E, bias=False)
        self.conv2d = nn.Conv2d(E, E, kernel_size=3, padding=1, groups=E, bias=True)
        self.x_proj_weight = nn.Parameter(torch.empty(K_DIRS, R + 2 * d_state, E))
        self.dt_projs_weight = nn.Parameter(torch.empty(K_DIRS, E, R))
        self.dt_projs_bias = nn.Parameter(torch.empty(K_DIRS, E))
        self.A_logs = nn.Parameter(torch.empty(K_DIRS * E, d_state))
        self.Ds = nn.Parameter(torch.empty(K_DIRS * E))
        self.out_norm = nn.LayerNorm(E, eps=LN_EPS)
        self.out_proj = nn.Linear(E, C, bias=False)

    def forward(self, x):
        xz = self.in_proj(x)
        xi, z = xz[..., :self.E], xz[..., self.E:]
        z = F.silu(z)
        xc = F.silu(self.conv2d(xi.permute(0, 3, 1, 2)))                  # (B,E,H,W)
        y = ss2d_scan(xc, self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias,
                      self.A_logs, self.Ds)                                # (B,H,W,E)
        y = self.out_norm(y) * z
        return self.out_proj(y)


class VSSBlock(nn.Module):
    """VSS block, or MVSS block when `grid` is given (docs/math.md section 2.1):
        x = token_mask(x); x = pre_mlp(x) (in_dim != C only); x = x + drop_path(SS2D(norm(x)))."""

    def __init__(self, in_dim, C, d_state, ssm_ratio, grid, drop_prob, cfg):
        super().__init__()
        self.grid = grid
        self.drop_prob = drop_prob
        self.cfg = cfg
        self.name = ""          # state_dict prefix, set by MaskViM
        self.stage = -1         # encoder stage or decoder level
        self.kind = ""          # "encoder" or "decoder"
        if grid is not None:
            self.token_mask = nn.Parameter(torch.empty(1, grid[0] * grid[1], 2))
        if in_dim != C:
            self.pre_mlp = nn.Sequential(nn.Linear(in_dim, C, bias=True))
        self.norm = nn.LayerNorm(C, eps=LN_EPS)
        self.op = SS2D(C, d_state, ssm_ratio)

    def forward(self, x, masks, generator=None):
        if self.grid is not None:
            c = self.cfg
            x, m = token_mask(x, self.token_mask, self.grid, self.training, tau=c["tau"],
                              mode=c["mask_mode"], layout=c["mask_layout"],
                              noise=c["mask_noise"], generator=generator)
            masks.append(dict(name=self.name, kind=self.kind, stage=self.stage, m=m))
        if hasattr(self, "pre_mlp"):
            x = self.pre_mlp(x)
        return x + drop_path(self.op(self.norm(x)), self.drop_prob, self.training, generator)


class PatchMerging2D(nn.Module):
    """Linear(4C -> out_dim): out_dim = 2C for every preset; the next stage's width in general
    (VMamba's PatchMerging2D(dims[i], dims[i+1])), so that dims that do not double still chain."""

    def __init__(self, C, out_dim=None):
        super().__init__()
        self.norm = nn.LayerNorm(4 * C, eps=LN_EPS)
        self.reduction = nn.Linear(4 * C, out_dim or 2 * C, bias=False)

    def forward(self, x):
        return patch_merging(x, self.norm, self.reduction)


class Stage(nn.Module):
    def __init__(self, blocks, downsample):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        if downsample is not None:
            self.downsample = downsample


def mask_grid(cfg, level):
    """Token-mask grid of encoder stage / decoder level i: crop / (4 * 2^i)."""
    f = 4 * 2 ** level
    return (cfg["crop"][0] // f, cfg["crop"][1] // f)


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dims, depths = cfg["dims"], cfg["depths"]
        self.patch_embed = nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4, bias=True),
                                         Permute(0, 2, 3, 1), nn.LayerNorm(dims[0], eps=LN_EPS))
        total = sum(depths)
        dpr = [float(v) for v in torch.linspace(0, cfg["drop_path"], total)] if total > 1 \
            else [0.0]
        layers = []
        b = 0
        for i in range(4):
            masked = cfg["mask_encoder"][i]
            grid = mask_grid(cfg, i) if masked else None
            blocks = []
            for j in range(depths[i]):
                blk = VSSBlock(dims[i], dims[i], cfg["d_state"], cfg["ssm_ratio"], grid, dpr[b], cfg)
                blk.kind, blk.stage = "encoder", i
                blocks.append(blk)
                b += 1
            layers.append(Stage(blocks, PatchMerging2D(dims[i], dims[i + 1]) if i < 3 else None))
        self.layers = nn.ModuleList(layers)
        for i in range(4):
            setattr(self, f"outnorm{i}", nn.LayerNorm(dims[i], eps=LN_EPS))

    def forward(self, img, masks, generator=None):
        x = self.patch_embed(img)                                          # (B,H/4,W/4,C0)
        outs = []
        for i, layer in enumerate(self.layers):
            for blk in layer.blocks:
                x = blk(x, masks, generator)
            outs.append(getattr(self, f"outnorm{i}")(x))
            if i < 3:
                x = layer.downsample(x)
        return outs


class ConvModule(nn.Module):
    """mmcv ConvModule: conv (no bias) -> BatchNorm -> ReLU, channels-first."""

    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def dropout2d(x, p, training, generator=None):
    """Dropout2d: zero whole channels of each sample with prob p, scale the rest by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = (torch.rand(x.shape[0], x.shape[1], 1, 1, generator=generator, dtype=x.dtype) >= p)
    return x * keep.to(x.dtype) / (1.0 - p)


class Lateral(nn.Module):
    def __init__(self, blocks, D):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.ln = nn.LayerNorm(D, eps=LN_EPS)

    def forward(self, x, masks, generator=None):
        for blk in self.blocks:
            x = blk(x, masks, generator)
        return self.ln(x)


class DecodeHead(nn.Module):
    """docs/math.md section 4: masked lateral blocks, PPM on F3, top-down sum, FPN convs, fusion."""

    def __init__(self, cfg):
        super().__init__()
        dims, D = cfg["dims"], cfg["decoder_channels"]
        self.p_drop = cfg["dropout"]
        # Stochastic depth linear from 0 over the decoder's blocks, counted from the coarsest
        # lateral (2) to the finest (0).
        depths = cfg["decoder_depths"]
        total = sum(depths)
        dpr = [float(v) for v in torch.linspace(0, cfg["decoder_drop_path"], total)] if total > 1 \
            else [0.0] * total
        laterals = []
        for i in range(3):
            grid = mask_grid(cfg, i) if cfg["mask_decoder"] else None
            blocks = []
            first = sum(depths[i + 1:])
            for j in range(depths[i]):
                blk = VSSBlock(dims[i] if j == 0 else D, D, cfg["d_state"], cfg["ssm_ratio"], grid,
                               dpr[first + j], cfg)
                blk.kind, blk.stage = "decoder", i
                blocks.append(blk)
            laterals.append(Lateral(blocks, D))
        self.vss_context = cfg["context"] == "vss"
        if self.vss_context:   # lateral 3: one unmasked VSS block instead of pyramid pooling
            blk = VSSBlock(dims[3], D, cfg["d_state"], cfg["ssm_ratio"], None,
                           cfg["decoder_drop_path"], cfg)
            blk.kind, blk.stage = "decoder", 3
            laterals.append(Lateral([blk], D))
        self.lateral_convs = nn.ModuleList(laterals)
        if not self.vss_context:
            self.psp_modules = nn.ModuleList(
                [nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModule(dims[3], D, 1)) for s in PPM_SCALES])
            self.bottleneck = ConvModule(dims[3] + len(PPM_SCALES) * D, D, 3)
        self.fpn_convs = nn.ModuleList([ConvModule(D, D, 3) for _ in range(3)])
        self.fpn_bottleneck = ConvModule(4 * D, D, 3)
        self.conv_seg = nn.Conv2d(D, cfg["num_classes"], kernel_size=1, bias=True)

    def forward(self, feats, masks, generator=None):
        lats = [self.lateral_convs[i](feats[i], masks, generator).permute(0, 3, 1, 2)
                for i in range(3)]
        if self.vss_context:
            lats.append(self.lateral_convs[3](feats[3], masks, generator).permute(0, 3, 1, 2))
        else:
            f3 = feats[3].permute(0, 3, 1, 2)
            ppm = [f3] + [resize(m(f3), f3.shape[2:]) for m in self.psp_modules]
            lats.append(self.bottleneck(torch.cat(ppm, dim=1)))
        for i in range(3, 0, -1):
            lats[i - 1] = lats[i - 1] + resize(lats[i], lats[i - 1].shape[2:])
        outs = [self.fpn_convs[i](lats[i]) for i in range(3)] + [lats[3]]
        outs = [outs[0]] + [resize(o, outs[0].shape[2:]) for o in outs[1:]]
        x = self.fpn_bottleneck(torch.cat(outs, dim=1))
        return self.conv_seg(dropout2d(x, self.p_drop, self.training, generator))


class LinearHead(nn.Module):
    """SegFormer-style all-MLP head (model.head: linear): 1x1 ConvModule per level to D at the
    level's size, resize to level 0, concat (level 0 first), 1x1 ConvModule fusion, conv_seg."""

    def __init__(self, cfg):
        super().__init__()
        dims, D = cfg["dims"], cfg["decoder_channels"]
        self.p_drop = cfg["dropout"]
        self.convs = nn.ModuleList([ConvModule(dims[i], D, 1) for i in range(4)])
        self.fusion_conv = ConvModule(4 * D, D, 1)
        self.conv_seg = nn.Conv2d(D, cfg["num_classes"], kernel_size=1, bias=True)

    def forward(self, feats, masks, generator=None):
        outs = [self.convs[i](feats[i].permute(0, 3, 1, 2)) for i in range(4)]
        outs = [outs[0]] + [resize(o, outs[0].shape[2:]) for o in outs[1:]]
        x = self.fusion_conv(torch.cat(outs, dim=1))
        return self.conv_seg(dropout2d(x, self.p_drop, self.training, generator))


class AuxHead(nn.Module):
    """FCN head on F2: ConvModule 3x3 -> Dropout2d -> conv_seg 1x1."""

    def __init__(self, cfg):
        super().__init__()
        self.p_drop = cfg["dropout"]
        self.convs = nn.Sequential(ConvModule(cfg["dims"][2], cfg["aux_channels"], 3))
        self.conv_seg = nn.Conv2d(cfg["aux_channels"], cfg["num_classes"], kernel_size=1, bias=True)

    def forward(self, f2, generator=None):
        x = self.convs(f2.permute(0, 3, 1, 2))
        return self.conv_seg(dropout2d(x, self.p_drop, self.training, generator))


class MaskViM(nn.Module):
    """The whole segmentor. forward(img (B,3,H,W)) -> (logits (B,K,H/4,W/4), aux logits, masks)
    where masks is a list of dict(name, kind, stage, m (B,h,w)) in forward order."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.decode_head = LinearHead(cfg) if cfg["head"] == "linear" else DecodeHead(cfg)
        self.auxiliary_head = AuxHead(cfg)
        self.generator = torch.Generator().manual_seed(0)   # Gumbel, dropout, drop path draws
        for name, mod in self.named_modules():
            if isinstance(mod, VSSBlock):
                mod.name = name

    def forward(self, img):
        masks = []
        feats = self.backbone(img, masks, self.generator)
        logits = self.decode_head(feats, masks, self.generator)
        aux = self.auxiliary_head(feats[2], self.generator)
        return logits, aux, masks


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# =============================================================================================
# Initialisation (docs/math.md section 2), from one seeded generator.
# =============================================================================================
def _trunc_normal(t, std, g):
    """Normal(0, std) with values outside [-2, 2] drawn again, as timm's trunc_normal_(std=std)
    (whose bounds a=-2, b=2 are absolute, not in units of std): at std 0.02 nothing is cut."""
    v = torch.randn(t.shape, generator=g, dtype=torch.float64) * std
    while True:
        bad = v.abs() > 2.0
        if not bad.any():
            break
        v[bad] = torch.randn(int(bad.sum()), generator=g, dtype=torch.float64) * std
    t.copy_(v)


def _uniform(t, lo, hi, g):
    t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64) * (hi - lo) + lo)


def init_weights(model, seed):
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    # ConvModule convolutions are initialised by their ConvModule, not by the Conv2d default.
    convmodule_convs = {id(m.conv) for m in model.modules() if isinstance(m, ConvModule)}
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                _trunc_normal(mod.weight, 0.02, g)
                if mod.bias is not None:
                    mod.bias.zero_()
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
            elif isinstance(mod, nn.BatchNorm2d):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
                mod.num_batches_tracked.zero_()
            elif isinstance(mod, ConvModule):
                # Kaiming normal, fan_out, ReLU gain (mmcv's ConvModule default).
                w = mod.conv.weight
                fan_out = w.shape[0] * w.shape[2] * w.shape[3]
                w.copy_(torch.randn(w.shape, generator=g, dtype=torch.float64)
                        * math.sqrt(2.0 / fan_out))
            elif name.endswith("conv_seg"):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g, dtype=torch.float64)
                                 * 0.01)
                mod.bias.zero_()
            elif isinstance(mod, nn.Conv2d) and id(mod) not in convmodule_convs:
                # PyTorch's default: kaiming uniform a=sqrt(5) -> U(+-1/sqrt(fan_in)), same bias.
                fan_in = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]
                bound = 1.0 / math.sqrt(fan_in)
                _uniform(mod.weight, -bound, bound, g)
                if mod.bias is not None:
                    _uniform(mod.bias, -bound, bound, g)
            if isinstance(mod, SS2D):
                E, R, N = mod.E, mod.R, mod.N
                # x_proj: a stack of K Linear(E -> R+2N) weights, PyTorch's Linear default.
                _uniform(mod.x_proj_weight, -1 / math.sqrt(E), 1 / math.sqrt(E), g)
                _uniform(mod.dt_projs_weight, -R ** -0.5, R ** -0.5, g)
                u = torch.rand(K_DIRS, E, generator=g, dtype=torch.float64)
                dt = torch.exp(u * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                dt = dt.clamp(min=1e-4)
                mod.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))   # softplus^-1(dt)
                A = torch.arange(1, N + 1, dtype=torch.float64).repeat(K_DIRS * E, 1)
                mod.A_logs.copy_(torch.log(A))
                mod.Ds.fill_(1.0)
            if isinstance(mod, VSSBlock) and mod.grid is not None:
                _uniform(mod.token_mask, -cfg["gamma"], cfg["gamma"], g)


# =============================================================================================
# Weights files: one float32 dataset per state_dict key at the root (num_batches_tracked left out)
# =============================================================================================
def state_tensors(model):
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def save_weights(model, path):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for k, v in state_tensors(model).items():
            f.create_dataset(k, data=v.detach().to(torch.float32).cpu().numpy())
    os.replace(tmp, path)


def load_weights(model, path):
    want = state_tensors(model)
    with h5py.File(path, "r") as f:
        have = {}
        f.visititems(lambda n, o: have.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
        missing = [k for k in want if k not in have]
        extra = [k for k in have if k not in want and not k.endswith("num_batches_tracked")]
        if missing or extra:
            def few(keys):
                return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
            parts = ([f"missing {len(missing)}: {few(missing)}"] if missing else []) + \
                ([f"unexpected {len(extra)}: {few(extra)}"] if extra else [])
            raise ValueError(f"{path}: weights do not match the model ({'; '.join(parts)})")
        with torch.no_grad():
            for k, t in want.items():
                a = have[k][()]
                if tuple(a.shape) != tuple(t.shape):
                    raise ValueError(f"{path}: {k}: shape {tuple(a.shape)}, "
                                     f"model wants {tuple(t.shape)}")
                t.copy_(torch.from_numpy(np.asarray(a, dtype=np.float64)))


# =============================================================================================
# Loss (docs/math.md section 5)
# =============================================================================================
def compute_loss(cfg, logits, aux, masks, labels):
    """Returns dict(total, ce, aux, ratio, position): aux, ratio and position before weighting."""
    size = labels.shape[-2:]
    up = resize(logits, size)
    ce = cross_entropy(up, labels, cfg["avg_non_ignore"])
    ce_aux = cross_entropy(resize(aux, size), labels, cfg["avg_non_ignore"])
    zero = logits.new_zeros(())

    enc = [mk for mk in masks if mk["kind"] == "encoder"]
    ratio = zero
    if cfg["lambda_per_stage"]:
        for s in range(4):
            means = [mk["m"].mean() for mk in enc if mk["stage"] == s]
            if means:
                ratio = ratio + (torch.stack(means).mean() - cfg["lam"][s]) ** 2
    else:
        for mk in enc:
            ratio = ratio + (mk["m"].mean() - cfg["lam"][mk["stage"]]) ** 2

    dec = [mk for mk in masks if mk["kind"] == "decoder"]
    position = zero
    if dec:
        with torch.no_grad():
            correct = ((up.argmax(dim=1) == labels) & (labels != IGNORE)).to(logits.dtype)
            correct = correct.unsqueeze(1)                                    # (B,1,H,W)
        for mk in dec:
            c = resize(correct, mk["m"].shape[-2:])[:, 0]
            position = position + ((mk["m"] - c) ** 2).mean()

    total = ce + cfg["aux_weight"] * ce_aux + cfg["alpha1"] * ratio + cfg["alpha2"] * position
    return dict(total=total, ce=ce, aux=ce_aux, ratio=ratio, position=position)


# =============================================================================================
# Batches and the training step
# =============================================================================================
def make_batch(path, batch, size, classes, seed, ignore_frac=0.1):
    """Random normalised images (B,3,H,W) float32 and labels (B,H,W) uint8 with some 255.
    Labels are piecewise constant on 4x4 blocks so that the task is not pure noise."""
    H, W = size
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, 3, H, W)).astype(np.float32)
    coarse = rng.integers(0, classes, size=(batch, (H + 3) // 4, (W + 3) // 4))
    labels = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :H, :W].astype(np.uint8)
    labels[rng.random((batch, H, W)) < ignore_frac] = IGNORE
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
    os.replace(tmp, path)


def read_batch(path, num_classes):
    with h5py.File(path, "r") as f:
        for k in ("images", "labels"):
            if k not in f:
                raise ValueError(f"{path}: no dataset '{k}'")
        images = np.asarray(f["images"][()], dtype=np.float32)
        labels = np.asarray(f["labels"][()]).astype(np.int64)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{path}: images shape {images.shape}, want [B,3,H,W]")
    B, _, H, W = images.shape
    if labels.shape != (B, H, W):
        raise ValueError(f"{path}: labels shape {labels.shape}, want {(B, H, W)}")
    if H < 32 or W < 32:   # the C side's limit (stage 3 needs a 1x1 map at least)
        raise ValueError(f"{path}: image size {H}x{W} is too small: the model needs at least 32x32")
    # Sides that are not multiples of 4 are fine: the stride-4 patch embedding drops the last
    # H % 4 rows / W % 4 columns (PyTorch's conv2d), and the logits are resized to H x W.
    bad = (labels != IGNORE) & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        b, y, x = np.argwhere(bad)[0]
        raise ValueError(f"{path}: sample {b}: label {labels[b, y, x]} at ({y},{x}) "
                         f"is neither < {num_classes} nor {IGNORE}")
    if not np.isfinite(images).all():
        raise ValueError(f"{path}: images contain non-finite values")
    return torch.from_numpy(images), torch.from_numpy(labels)


def build_model(cfg, dtype=torch.float64):
    model = MaskViM(cfg)
    return model.to(dtype)


def train_step(model, images, labels):
    """One forward + backward in training mode. Returns (losses, logits, masks); gradients are
    left in the parameters' .grad."""
    model.train()
    model.zero_grad(set_to_none=False)
    logits, aux, masks = model(images)
    losses = compute_loss(model.cfg, logits, aux, masks, labels)
    losses["total"].backward()
    return losses, logits, masks


def write_dump(path, model, losses, logits, masks):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for k in ("total", "ce", "aux", "ratio", "position"):
            f.create_dataset(f"loss_{k}", data=np.float64(losses[k].item()))
        f.create_dataset("logits", data=logits.detach().to(torch.float32).numpy())
        for name, p in model.named_parameters():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            f.create_dataset(f"grad/{name}", data=g.to(torch.float32).numpy())
        for mk in masks:
            f.create_dataset(f"mask/{mk['name']}", data=mk["m"].detach().to(torch.float32).numpy())
        for k, v in model.state_dict().items():
            if k.endswith("running_mean") or k.endswith("running_var"):
                f.create_dataset(f"buffers/{k}", data=v.to(torch.float32).numpy())
    os.replace(tmp, path)


# =============================================================================================
# Command line
# =============================================================================================
def config_from_args(args, deterministic):
    cfg = ref_config.preset(args.preset)
    if deterministic:
        ref_config.deterministic(cfg)
    return ref_config.apply_sets(cfg, args.set or [])


def relu_margins(model):
    """Forward hooks on every ConvModule's BatchNorm (the input of its ReLU): after a forward,
    the returned list holds (min |y| / max |y|, module name) per call. An element within float32
    rounding of zero decides its ReLU by rounding alone, and when it matters (a BatchNorm over few
    values, a bias gradient formed by cancellation) every gradient below moves by up to percents:
    a kink that the float64 reference and a float32 implementation may take on different sides."""
    found, handles = [], []
    for name, mod in model.named_modules():
        if isinstance(mod, ConvModule):
            def hook(_m, _inp, y, name=name):
                a = y.detach().abs()
                top = a.amax().item()
                found.append((a.amin().item() / top if top > 0 else 1.0, name))
            handles.append(mod.bn.register_forward_hook(hook))
    return found, handles


def cmd_step(args):
    cfg = config_from_args(args, deterministic=True)
    set_scan(args.scan)
    dtype = dict(float64=torch.float64, float32=torch.float32)[args.dtype]
    model = build_model(cfg, dtype)
    if args.weights:
        load_weights(model, args.weights)
    else:
        init_weights(model, args.seed)
    model.generator.manual_seed(args.seed)
    if args.init_out:
        save_weights(model, args.init_out)
    if args.batch or args.dump:
        if not (args.batch and args.dump):
            raise ValueError("step needs both --batch and --dump (or neither, with --init-out)")
        images, labels = read_batch(args.batch, cfg["num_classes"])
        t0 = time.time()
        margins, handles = relu_margins(model) if args.kink_margin > 0 else ([], [])
        losses, logits, masks = train_step(model, images.to(dtype), labels)
        for h in handles:
            h.remove()
        if margins and min(margins)[0] < args.kink_margin:   # no dump: its comparison fails too
            m, name = min(margins)
            raise ValueError(f"{args.batch}: {name}: a ReLU input lies {m:.2e} of its layer's largest from zero "
                             f"(under --kink-margin {args.kink_margin:g}): a float32 run may take that kink on "
                             "the other side; choose another seed or batch")
        write_dump(args.dump, model, losses, logits, masks)
        if not args.quiet:
            print(f"step: loss_total {losses['total'].item():.8f} ce {losses['ce'].item():.8f} "
                  f"aux {losses['aux'].item():.8f} ratio {losses['ratio'].item():.8f} "
                  f"position {losses['position'].item():.8f} ({time.time() - t0:.2f} s)")
    elif not args.init_out:
        raise ValueError("step: nothing to do (give --batch/--dump and/or --init-out)")
    return 0


def cmd_forward(args):
    """Forward pass only, in evaluation mode by default (BatchNorm running statistics, masks
    m = [P0 > P1] without noise, no dropout or drop path), as `maskvim eval` / `predict` run the
    model; --train runs it in training mode instead (batch statistics, training masks; no
    backward, running statistics are not written). Dumps `logits` (B,K,H/4,W/4), `aux_logits`,
    `mask/<block>` and `loss_ce` (CE of the logits against the labels, docs/math.md section 5)."""
    cfg = config_from_args(args, deterministic=True)
    dtype = dict(float64=torch.float64, float32=torch.float32)[args.dtype]
    model = build_model(cfg, dtype)
    load_weights(model, args.weights)
    images, labels = read_batch(args.batch, cfg["num_classes"])
    model.train(args.train)
    with torch.no_grad():
        logits, aux, masks = model(images.to(dtype))
        ce = cross_entropy(resize(logits, labels.shape[-2:]), labels, cfg["avg_non_ignore"])
    tmp = args.dump + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.create_dataset("loss_ce", data=np.float64(ce.item()))
        f.create_dataset("logits", data=logits.to(torch.float32).numpy())
        f.create_dataset("aux_logits", data=aux.to(torch.float32).numpy())
        for mk in masks:
            f.create_dataset(f"mask/{mk['name']}", data=mk["m"].to(torch.float32).numpy())
    os.replace(tmp, args.dump)
    return 0


def cmd_make_batch(args):
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size '{args.size}': want HxW, e.g. 64x64") from None
    if h <= 0 or w <= 0 or args.batch <= 0 or args.classes <= 0:
        raise ValueError("make-batch: sizes, batch and classes must be positive")
    make_batch(args.out, args.batch, (h, w), args.classes, args.seed, args.ignore_frac)
    return 0


def cmd_keys(args):
    cfg = config_from_args(args, deterministic=False)
    model = build_model(cfg, torch.float32)
    for k, v in state_tensors(model).items():
        print(f"{k} {list(v.shape)}")
    print(f"# parameters: {count_params(model)}")
    return 0


# ---------------------------------------------------------------------------------------------
# selftest: parameter counts, scan gradients against finite differences, the chunked scan
# against the loop scan, a finite-difference check of the whole model, and the step /
# make-batch / compare_dump command line.
# ---------------------------------------------------------------------------------------------
def _check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        raise AssertionError(what)


def _count_only(cfg):
    """Parameter count of the model for cfg, built without PyTorch's default initialisation
    (which costs seconds at 60 M parameters and is overwritten by init_weights anyway)."""
    saved = nn.Linear.reset_parameters, nn.Conv2d.reset_parameters
    nn.Linear.reset_parameters = nn.Conv2d.reset_parameters = lambda self: None
    try:
        return count_params(MaskViM(cfg))
    finally:
        nn.Linear.reset_parameters, nn.Conv2d.reset_parameters = saved


def _selftest_counts():
    for enc, dec, want in ((True, True, 60_893_702), (False, False, 60_606_982)):
        cfg = ref_config.preset("maskvim-t")
        cfg["mask_encoder"] = [enc] * 3 + [False]
        cfg["mask_decoder"] = dec
        n = _count_only(cfg)
        _check(n == want, f"maskvim-t crop 512x1024 masks {enc}/{dec}: {n} parameters (want {want})")
    cfg = ref_config.preset("maskvim-nano")
    n = _count_only(cfg)
    _check(n == 472_486, f"maskvim-nano crop 64x64: {n} parameters (want 472486)")


def _selftest_scan():
    torch.manual_seed(1)
    d = torch.float64
    B, K, E, L, N = 2, 2, 3, 7, 4
    u = torch.randn(B, K, E, L, dtype=d, requires_grad=True)
    delta = (torch.rand(B, K, E, L, dtype=d) + 0.05).requires_grad_()
    A = (-torch.rand(K, E, N, dtype=d) - 0.2).requires_grad_()
    Bm = torch.randn(B, K, N, L, dtype=d, requires_grad=True)
    Cm = torch.randn(B, K, N, L, dtype=d, requires_grad=True)
    D = torch.randn(K, E, dtype=d, requires_grad=True)
    from ref_ops import selective_scan, selective_scan_autograd
    # Both implementations, in one segment and cut into segments of 3 tokens (chunks of 2),
    # so that the carries between segments and chunks are differentiated too.
    for impl, kw in (("loop", {}), ("loop", dict(seg_tokens=3)), ("chunked", {}),
                     ("chunked", dict(seg_tokens=3, chunk=2)), ("chunked", dict(chunk=3))):
        def f(*t):
            return selective_scan(*t, impl=impl, **kw)
        ok = torch.autograd.gradcheck(f, (u, delta, A, Bm, Cm, D), eps=1e-6, atol=1e-7)
        _check(ok, f"selective scan {impl} {_kw_text(kw)}: hand-written backward matches "
               "finite differences (float64)")
        diff = (f(u, delta, A, Bm, Cm, D)
                - selective_scan_autograd(u, delta, A, Bm, Cm, D)).abs().max().item()
        _check(diff < 1e-12, f"selective scan {impl} {_kw_text(kw)}: forward matches the "
               f"autograd loop ({diff:.1e})")
    _selftest_scan_agree()
    # The 4-direction SS2D scan, on a non-square map and on H=1 / W=1 maps.
    for H, W in ((3, 4), (1, 5), (4, 1)):
        E, N, R = 3, 2, 1
        x = torch.randn(1, E, H, W, dtype=d, requires_grad=True)
        p = [torch.randn(K_DIRS, R + 2 * N, E, dtype=d), torch.randn(K_DIRS, E, R, dtype=d),
             torch.randn(K_DIRS, E, dtype=d), torch.randn(K_DIRS * E, N, dtype=d) * 0.3,
             torch.randn(K_DIRS * E, dtype=d)]
        p = [t.requires_grad_() for t in p]
        ok = torch.autograd.gradcheck(ss2d_scan, (x, *p), eps=1e-6, atol=1e-7)
        _check(ok, f"ss2d_scan {H}x{W}: gradients match finite differences (float64)")
    # Direction bookkeeping: with A -> 0 (no decay), no B/C coupling beyond the identity
    # and D = 0, each direction's output is a prefix sum in its own order; check k1 by hand.
    x = torch.arange(6, dtype=d).reshape(1, 1, 2, 3)
    xp = torch.zeros(K_DIRS, 1 + 2, 1, dtype=d)
    xp[:, 1, 0] = 1.0                     # Bm = x
    xp[:, 2, 0] = 0.0
    dtw = torch.zeros(K_DIRS, 1, 1, dtype=d)
    dtb = torch.full((K_DIRS, 1), 50.0, dtype=d)     # delta = softplus(50) = 50
    Al = torch.full((K_DIRS, 1), -60.0, dtype=d)     # A ~ 0: no decay
    y_only = []
    for k in range(K_DIRS):
        xpk = xp.clone()
        xpk[k, 2, 0] = 1.0 / 50.0         # Cm = x/50 only for direction k
        y_only.append(ss2d_scan(x, xpk, dtw, dtb, Al, torch.zeros(K_DIRS, dtype=d))[0, :, :, 0])
    v = x[0, 0]
    # direction k: y[l] = x_l/50 * sum_{j<=l} 50 * x_j * x_j  in that direction's order
    def prefix(seq):
        return seq * torch.cumsum(seq * seq, 0)
    row = v.reshape(-1)
    col = v.t().reshape(-1)
    want = [prefix(row).reshape(2, 3), prefix(col).reshape(3, 2).t(),
            prefix(row.flip(0)).flip(0).reshape(2, 3), prefix(col.flip(0)).flip(0).reshape(3, 2).t()]
    for k in range(K_DIRS):
        err = (y_only[k] - want[k]).abs().max().item()
        _check(err < 1e-6, f"scan direction k{k} order and merge-back ({err:.1e})")


def _scan_inputs(g, d, B, K, E, L, N, dscale, dshift):
    """Random scan inputs in the model's ranges: delta = softplus(dscale * n + dshift), A = -(1..N)
    spread by exp(0.3 n) (the init's A_logs = log(1..N), moved by training), u, Bm, Cm ~ N(0,1)."""
    u = torch.randn(B, K, E, L, generator=g, dtype=d)
    delta = F.softplus(torch.randn(B, K, E, L, generator=g, dtype=d) * dscale + dshift)
    A = -torch.arange(1, N + 1, dtype=d).repeat(K, E, 1) * \
        torch.exp(0.3 * torch.randn(K, E, N, generator=g, dtype=d))
    Bm = torch.randn(B, K, N, L, generator=g, dtype=d)
    Cm = torch.randn(B, K, N, L, generator=g, dtype=d)
    D = torch.randn(K, E, generator=g, dtype=d)
    return [t.requires_grad_() for t in (u, delta, A, Bm, Cm, D)]


def _scan_run(f, ins, gy):
    for t in ins:
        t.grad = None
    y = f(*ins)
    y.backward(gy)
    return [y.detach()] + [t.grad.clone() for t in ins]


def _kw_text(kw):
    return " ".join(f"{k.replace('_tokens', '')} {v}" for k, v in kw.items())


def _selftest_scan_agree():
    """The chunked scan against the loop scan and the autograd loop on longer sequences with
    the model's ranges (d_state 16, 300 tokens, several segments and a ragged last chunk):
    forward and all six gradients in float64 to 1e-10 of each tensor's largest value; and with
    decays far beyond float32's exp range (every 7th delta x10, A x2.5: |delta*A| up to
    thousands, exp(delta*A) underflows to 0), where it must stay finite and agree in float32."""
    from ref_ops import selective_scan, selective_scan_autograd
    names = ("y", "grad u", "grad delta", "grad A", "grad Bm", "grad Cm", "grad D")
    g = torch.Generator().manual_seed(11)
    d = torch.float64
    B, K, E, L, N = 2, 4, 6, 300, 16
    for dscale, dshift, what in ((1.0, -2.0, "delta ~0.02-1"), (1.5, 0.0, "delta ~0.1-4")):
        ins = _scan_inputs(g, d, B, K, E, L, N, dscale, dshift)
        gy = torch.randn(B, K, E, L, generator=g, dtype=d)
        want = _scan_run(selective_scan_autograd, ins, gy)
        for impl, kw in (("loop", dict(seg_tokens=64)), ("chunked", {}),
                         ("chunked", dict(seg_tokens=100, chunk=8))):
            got = _scan_run(lambda *t: selective_scan(*t, impl=impl, **kw), ins, gy)
            errs = [((a - b).abs().max() / b.abs().max()).item() for a, b in zip(got, want)]
            worst = max(range(len(errs)), key=lambda i: errs[i])
            _check(errs[worst] < 1e-10, f"{impl} scan {_kw_text(kw)} vs autograd loop, {what}, "
                   f"float64: worst {names[worst]} {errs[worst]:.1e}")
    # Extreme decays in float32: the loop and the chunked form agree and stay finite.
    ins = _scan_inputs(g, d, B, K, E, L, N, 2.0, 1.0)
    with torch.no_grad():
        ins[1][:, :, :, ::7] *= 10.0
        ins[2].mul_(2.5)
    big = (ins[1].detach().amax(dim=(0, 3)) * ins[2].detach().abs().amax(-1)).max().item()
    print(f"     (largest |delta*A| in this case: {big:.0f})")
    gy = torch.randn(B, K, E, L, generator=g, dtype=d)
    want = _scan_run(lambda *t: selective_scan(*t, impl="loop"), ins, gy)
    f32 = [t.detach().float().requires_grad_() for t in ins]
    got = _scan_run(lambda *t: selective_scan(*t, impl="chunked"), f32, gy.float())
    fin = all(bool(torch.isfinite(a).all()) for a in got)
    errs = [((a.double() - b).abs().max() / b.abs().max()).item() for a, b in zip(got, want)]
    _check(fin and max(errs) < 1e-4, f"chunked scan float32 vs loop float64 with extreme decays: "
           f"finite, worst {names[errs.index(max(errs))]} {max(errs):.1e}")


def _selftest_model_scans():
    """The whole nano model's step with the chunked scan against the loop scan (float64)."""
    cfg = ref_config.preset("maskvim-nano")
    ref_config.deterministic(cfg)
    ref_config.apply_sets(cfg, ["model.crop=32,32", "model.num_classes=5"])
    g = torch.Generator().manual_seed(6)
    images = torch.randn(2, 3, 32, 64, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 32, 64), generator=g)
    res = {}
    try:
        for impl in ("loop", "chunked"):
            set_scan(impl)
            model = build_model(cfg, torch.float64)
            init_weights(model, 5)
            losses, logits, _ = train_step(model, images, labels)
            res[impl] = [losses["total"].detach(), logits.detach()] + \
                [p.grad.clone() for p in model.parameters()]
    finally:
        set_scan("loop")
    worst = max(((a - b).abs().max() / b.abs().max().clamp(min=1e-300)).item()
                for a, b in zip(res["chunked"], res["loop"]))
    _check(worst < 1e-10, f"nano step, chunked scan vs loop scan: loss, logits and all gradients "
           f"agree (worst {worst:.1e}, float64)")


def _selftest_model_fd():
    """Finite differences of the total loss of a small nano model (float64, masks on, odd sizes
    below stage 1, mask grids resized) against the analytic gradient for a few entries."""
    cfg = ref_config.preset("maskvim-nano")
    ref_config.deterministic(cfg)
    ref_config.apply_sets(cfg, ["model.crop=32,32", "mask.lambda=0.9,0.7,0.5", "model.num_classes=5"])
    model = build_model(cfg, torch.float64)
    init_weights(model, 3)
    g = torch.Generator().manual_seed(4)
    # 32x24 images: maps 8x6 -> 4x3 -> 2x2 (odd width padded) -> 1x1; grids 8x8, 4x4, 2x2.
    images = torch.randn(2, 3, 32, 24, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 32, 24), generator=g)
    labels[torch.rand(2, 32, 24, generator=g) < 0.1] = IGNORE
    losses, _, masks = train_step(model, images, labels)
    _check(all(((mk["m"] == 0) | (mk["m"] == 1)).all() for mk in masks), "masks are 0/1 in training")
    _check(len(masks) == 4 + 3, f"{len(masks)} masked blocks (want 4 encoder + 3 decoder)")
    params = dict(model.named_parameters())
    names = ["backbone.patch_embed.0.weight", "backbone.layers.0.blocks.0.op.A_logs",
             "backbone.layers.1.blocks.0.op.dt_projs_bias", "backbone.layers.2.blocks.1.op.x_proj_weight",
             "backbone.layers.1.downsample.reduction.weight",
             "decode_head.lateral_convs.0.blocks.0.pre_mlp.0.weight",
             "decode_head.psp_modules.3.1.conv.weight", "auxiliary_head.convs.0.conv.weight"]
    worst = 0.0
    eps = 1e-6
    for n in names:
        p = params[n]
        flat = p.detach().view(-1)
        grad = p.grad.view(-1)
        idx = [int(torch.randint(0, flat.numel(), (1,), generator=g)), int(grad.abs().argmax())]
        for i in idx:
            old = flat[i].item()
            vals = []
            for s in (+1, -1):
                with torch.no_grad():
                    flat[i] = old + s * eps
                    lg, ax, mk = model(images)
                    vals.append(compute_loss(cfg, lg, ax, mk, labels)["total"].item())
            with torch.no_grad():
                flat[i] = old
            fd = (vals[0] - vals[1]) / (2 * eps)
            err = abs(fd - grad[i].item()) / max(1e-4, abs(fd), abs(grad[i].item()))
            worst = max(worst, err)
    _check(worst < 1e-5, f"whole-model gradients match finite differences (worst rel err {worst:.1e})")


def _selftest_cli(tmp):
    """make-batch and step through a real process (the command line as the C tests use it),
    then a second step from the written weights and compare_dump in this process."""
    import io
    import contextlib
    import compare_dump
    here = os.path.dirname(os.path.abspath(__file__))
    me = os.path.join(here, "maskvim_ref.py")
    batch, w = os.path.join(tmp, "ref_batch.h5"), os.path.join(tmp, "ref_w.h5")
    d1, d2 = os.path.join(tmp, "ref_dump1.h5"), os.path.join(tmp, "ref_dump2.h5")

    main(["make-batch", "--out", batch, "--batch", "2", "--size", "64x64", "--classes", "19",
          "--seed", "5", "--ignore-frac", "0.1"])
    t0 = time.time()
    r = subprocess.run([sys.executable, me, "step", "--preset", "maskvim-nano", "--batch", batch,
                        "--dump", d1, "--init-out", w, "--seed", "7"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(r.stdout.strip())
    _check(r.returncode == 0, f"maskvim_ref.py step exits 0 ({time.time() - t0:.1f} s with start-up)")
    rc = main(["step", "--preset", "maskvim-nano", "--weights", w, "--batch", batch, "--dump", d2,
               "--quiet"])
    _check(rc == 0, "step from the written weights")
    with h5py.File(d1, "r") as f:
        grads = list(f["grad"].keys())
        masks = list(f["mask"].keys())
        model = MaskViM(ref_config.preset("maskvim-nano"))
        want = [n for n, _ in model.named_parameters()]
        _check(sorted(grads) == sorted(want), f"dump has grad/ for all {len(want)} parameters")
        _check(len(masks) == 7, f"dump has {len(masks)} masks (want 7)")
        _check(f["logits"].shape == (2, 19, 16, 16), f"logits shape {f['logits'].shape}")
        lt = f["loss_total"][()]
        parts = f["loss_ce"][()] + 0.4 * f["loss_aux"][()] + f["loss_ratio"][()] + \
            f["loss_position"][()]
        _check(np.isfinite(lt) and abs(lt - parts) < 1e-6 * max(1.0, abs(lt)),
               f"loss_total {lt:.6f} = ce + 0.4 aux + ratio + position")
        nz = sum(1 for k in grads if np.abs(f["grad/" + k][()]).max() > 0)
        _check(nz == len(grads), f"{nz}/{len(grads)} gradients are non-zero")

    def compare(a, b):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = compare_dump.compare(a, b)
        return rc, out.getvalue()

    rc, _ = compare(d1, d2)           # weights written then read back: the same step
    _check(rc == 0, "compare_dump passes on the step rerun from the written weights")
    with h5py.File(d2, "a") as f:     # a wrong gradient must make the compare fail
        ds = f["grad/backbone.layers.0.blocks.0.op.A_logs"]
        a = ds[()]
        a.flat[3] += 0.01 * np.abs(a).max()
        ds[...] = a
    rc, text = compare(d1, d2)
    _check(rc == 1 and "backbone.layers.0.blocks.0.op.A_logs" in text,
           "compare_dump fails on a 1% gradient error and names the key")


def _selftest_fixtures(tmp):
    """The per-op fixture generator runs and writes every case."""
    import make_op_fixtures
    path = os.path.join(tmp, "ref_op_fixtures.h5")
    names = make_op_fixtures.build(path, 1234)
    want = ["ss2d_scan", "ss2d_scan_1x1", "ss2d_scan_1x9", "ss2d_scan_d_state_16", "layernorm", "bilinear_up",
            "bilinear_down", "adaptive_avg_pool_s1", "adaptive_avg_pool_s2",
            "adaptive_avg_pool_s3", "adaptive_avg_pool_s6", "conv3x3", "conv4x4s4", "conv1x1",
            "dwconv3x3", "batchnorm_train", "patch_merging", "token_mask_residual",
            "token_mask_zero", "token_mask_official", "token_mask_eval", "cross_entropy",
            "cross_entropy_nonignore", "ss2d_block"]
    _check(names == want, f"make_op_fixtures writes {len(names)} cases (want {len(want)})")
    with h5py.File(path, "r") as f:
        g = f["ss2d_block"]
        _check(g["grad_op.A_logs"].shape == (64, 4) and g["y"].shape == (2, 5, 6, 8),
               "fixture ss2d_block shapes")
        g = f["token_mask_official"]
        _check(set(np.unique(g["m"][()])) <= {0.0, 1.0} and "grad_P" in g, "fixture token mask")


def cmd_selftest(args):
    torch.set_num_threads(2)
    tmp = args.tmp or os.environ.get("MV_TEST_TMP", "/tmp")
    os.makedirs(tmp, exist_ok=True)
    t0 = time.time()
    _selftest_counts()
    _selftest_scan()
    _selftest_model_scans()
    _selftest_model_fd()
    _selftest_cli(tmp)
    _selftest_fixtures(tmp)
    print(f"selftest passed in {time.time() - t0:.1f} s")
    return 0


def cmd_many(args):
    """Runs the command lines of a file (one per line, shell quoting; '#' starts a comment) in
    this one process: the tests run a few dozen steps, and each process of its own would spend
    two seconds importing torch. Every line runs; 1 if any failed."""
    failed = 0
    with open(args.file) as f:
        lines = [ln for ln in (shlex.split(raw, comments=True) for raw in f) if ln]
    for i, line in enumerate(lines, 1):
        if line[0] == "many":
            raise ValueError(f"{args.file}:{i}: 'many' cannot be nested")
        try:
            rc = main(line)
        except SystemExit as e:   # argparse's exit on a bad line
            rc = e.code
        if rc != 0:
            print(f"maskvim_ref.py many: line {i} failed: {shlex.join(line)}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def main(argv=None):
    torch.set_num_threads(int(os.environ.get("MV_REF_THREADS", "2")))
    ap = argparse.ArgumentParser(prog="maskvim_ref.py", description="MaskViM PyTorch reference")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def model_args(p):
        p.add_argument("--preset", default="maskvim-nano")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a model.* or mask.* setting (repeatable)")

    p = sub.add_parser("step", help="one training step; dump losses, logits, masks, gradients")
    model_args(p)
    p.add_argument("--weights", help="HDF5 weights to load (default: fresh init from --seed)")
    p.add_argument("--init-out", help="write the model's weights (before the step) here")
    p.add_argument("--batch", help="HDF5 batch: images [B,3,H,W] float32, labels [B,H,W]")
    p.add_argument("--dump", help="HDF5 output of the step")
    p.add_argument("--seed", type=int, default=0, help="init seed and random-draw seed")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--scan", default="loop", choices=SCAN_IMPLS,
                   help="selective scan: per-token loop (default) or the vectorised chunked form")
    p.add_argument("--kink-margin", type=float, default=0.0, metavar="M",
                   help="fail when a ReLU input (a ConvModule's BatchNorm output) lies within M times its "
                        "layer's largest |value| of zero: a float32 run may put it on the other side")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_step)

    p = sub.add_parser("forward", help="forward only (evaluation mode unless --train); dump logits, masks")
    model_args(p)
    p.add_argument("--weights", required=True, help="HDF5 weights to load")
    p.add_argument("--batch", required=True, help="HDF5 batch: images [B,3,H,W] float32, labels [B,H,W]")
    p.add_argument("--dump", required=True, help="HDF5 output: logits, aux_logits, mask/<block>, loss_ce")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--train", action="store_true", help="training mode instead of evaluation mode")
    p.set_defaults(run=cmd_forward)

    p = sub.add_parser("make-batch", help="write a random normalised batch")
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", default="64x64", help="HxW")
    p.add_argument("--classes", type=int, default=19)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ignore-frac", type=float, default=0.1)
    p.set_defaults(run=cmd_make_batch)

    p = sub.add_parser("keys", help="print state_dict keys, shapes and the parameter count")
    model_args(p)
    p.set_defaults(run=cmd_keys)

    p = sub.add_parser("selftest", help="self-checks (parameter counts, gradients, command line)")
    p.add_argument("--tmp", help="scratch folder (default $MV_TEST_TMP or /tmp)")
    p.set_defaults(run=cmd_selftest)

    p = sub.add_parser("many", help="run the command lines of FILE (one per line) in this process")
    p.add_argument("file")
    p.set_defaults(run=cmd_many)

    args = ap.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as e:
        print(f"maskvim_ref.py {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
