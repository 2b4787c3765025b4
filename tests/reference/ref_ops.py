# The functional pieces of the MaskViM reference, written straight from SPEC.md: the selective
# scan (explicit loops over L, with a hand-written backward), the 4-direction SS2D scan, the
# token mask (Gumbel straight-through), patch merging, bilinear resize, cross-entropy.
# Shapes: B batch, H x W spatial, E expanded channels, K = 4 scan directions, N d_state.
import torch
import torch.nn.functional as F

K_DIRS = 4


# ---------------------------------------------------------------------------------------------
# Selective scan, one independent recurrence per (b, k, e):
#   h_l = exp(delta_l * A) * h_{l-1} + delta_l * Bm_l * u_l      (h_{-1} = 0, over N states)
#   y_l = sum_n Cm_l[n] * h_l[n] + D * u_l
# u, delta: (B,K,E,L)   A: (K,E,N)   Bm, Cm: (B,K,N,L)   D: (K,E)   ->   y: (B,K,E,L)
# delta is already softplus(dt + bias): the caller keeps that part in autograd.
# ---------------------------------------------------------------------------------------------
class SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, D):
        Bsz, K, E, L = u.shape
        N = A.shape[-1]
        # L first so that each step of the loop reads one contiguous slab.
        dA = torch.exp(delta.permute(3, 0, 1, 2).unsqueeze(-1) * A)            # (L,B,K,E,N)
        Bt = Bm.permute(3, 0, 1, 2).unsqueeze(3)                                  # (L,B,K,1,N)
        Ct = Cm.permute(3, 0, 1, 2).unsqueeze(3)                                  # (L,B,K,1,N)
        du = (delta * u).permute(3, 0, 1, 2).unsqueeze(-1)                        # (L,B,K,E,1)
        dBu = du * Bt                                                             # (L,B,K,E,N)
        hs = torch.empty_like(dA)
        h = torch.zeros(Bsz, K, E, N, dtype=u.dtype, device=u.device)
        for l in range(L):
            h = dA[l] * h + dBu[l]
            hs[l] = h
        y = (hs * Ct).sum(-1).permute(1, 2, 3, 0) + D.unsqueeze(-1) * u          # (B,K,E,L)
        ctx.save_for_backward(u, delta, A, Bm, Cm, D, hs, dA)
        return y.contiguous()

    @staticmethod
    def backward(ctx, gy):
        u, delta, A, Bm, Cm, D, hs, dA = ctx.saved_tensors
        L = u.shape[-1]
        gy = gy.contiguous()
        gD = (gy * u).sum(dim=(0, 3))
        gu = gy * D.unsqueeze(-1)
        gyt = gy.permute(3, 0, 1, 2).unsqueeze(-1)                                # (L,B,K,E,1)
        Bt = Bm.permute(3, 0, 1, 2).unsqueeze(3)                                  # (L,B,K,1,N)
        Ct = Cm.permute(3, 0, 1, 2).unsqueeze(3)                                  # (L,B,K,1,N)
        # dL/dh_l: from y_l directly and from h_{l+1} through exp(delta_{l+1} A). Walk back.
        gh = torch.empty_like(hs)
        carry = torch.zeros_like(hs[0])
        for l in range(L - 1, -1, -1):
            g = carry + gyt[l] * Ct[l]
            gh[l] = g
            carry = g * dA[l]
        gC = (gyt * hs).sum(3).permute(1, 2, 3, 0)                               # (B,K,N,L)
        h_prev = torch.cat([torch.zeros_like(hs[:1]), hs[:-1]], dim=0)
        g_dAarg = gh * h_prev * dA                     # d/d(delta_l * A)       (L,B,K,E,N)
        dt = delta.permute(3, 0, 1, 2).unsqueeze(-1)   # (L,B,K,E,1)
        ut = u.permute(3, 0, 1, 2).unsqueeze(-1)
        ghB = (gh * Bt).sum(-1, keepdim=True)          # sum_n gh * Bm           (L,B,K,E,1)
        gdelta = (g_dAarg * A).sum(-1, keepdim=True) + ghB * ut
        gu = gu + (ghB * dt).squeeze(-1).permute(1, 2, 3, 0)
        gA = (g_dAarg * dt).sum(dim=(0, 1))
        gB = (gh * (dt * ut)).sum(3).permute(1, 2, 3, 0)                         # (B,K,N,L)
        gdelta = gdelta.squeeze(-1).permute(1, 2, 3, 0)
        return gu, gdelta, gA, gB, gC, gD


def selective_scan(u, delta, A, Bm, Cm, D):
    return SelectiveScan.apply(u, delta, A, Bm, Cm, D)


def selective_scan_autograd(u, delta, A, Bm, Cm, D):
    """Same recurrence, differentiated by autograd (used to cross-check the hand backward)."""
    Bsz, K, E, L = u.shape
    h = torch.zeros(Bsz, K, E, A.shape[-1], dtype=u.dtype)
    ys = []
    for l in range(L):
        dA = torch.exp(delta[..., l].unsqueeze(-1) * A)
        h = dA * h + (delta[..., l] * u[..., l]).unsqueeze(-1) * Bm[..., l].unsqueeze(2)
        ys.append((h * Cm[..., l].unsqueeze(2)).sum(-1) + D * u[..., l])
    return torch.stack(ys, dim=-1)


# ---------------------------------------------------------------------------------------------
# SS2D's 4-direction scan (SPEC.md 2.2), from the activation after dwconv + SiLU to the merged
# sum of the 4 directions, before out_norm.
#   x: (B,E,H,W) channels-first   x_proj_weight (K,R+2N,E)   dt_projs_weight (K,E,R)
#   dt_projs_bias (K,E)   A_logs (K*E,N)   Ds (K*E)    ->   y: (B,H,W,E)
# ---------------------------------------------------------------------------------------------
def ss2d_scan(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scan=selective_scan):
    Bsz, E, H, W = x.shape
    L = H * W
    K, E2, R = dt_projs_weight.shape
    N = A_logs.shape[1]
    assert E2 == E and x_proj_weight.shape == (K, R + 2 * N, E)
    x_rows = x.reshape(Bsz, E, L)                            # k0: l = h*W + w
    x_cols = x.transpose(2, 3).reshape(Bsz, E, L)            # k1: l = w*H + h
    xs = torch.stack([x_rows, x_cols, x_rows.flip(-1), x_cols.flip(-1)], dim=1)   # (B,K,E,L)
    x_dbl = torch.einsum("bkel,kce->bkcl", xs, x_proj_weight)                     # (B,K,R+2N,L)
    dt_r, Bm, Cm = torch.split(x_dbl, [R, N, N], dim=2)
    dt = torch.einsum("bkrl,ker->bkel", dt_r, dt_projs_weight)
    delta = F.softplus(dt + dt_projs_bias.unsqueeze(-1))
    A = -torch.exp(A_logs).reshape(K, E, N)
    D = Ds.reshape(K, E)
    ys = scan(xs, delta, A, Bm.contiguous(), Cm.contiguous(), D)                  # (B,K,E,L)

    def untranspose(v):   # column-major sequence back to row-major (h, w) order
        return v.reshape(Bsz, E, W, H).transpose(2, 3).reshape(Bsz, E, L)

    y = ys[:, 0] + ys[:, 2].flip(-1) + untranspose(ys[:, 1]) + untranspose(ys[:, 3].flip(-1))
    return y.reshape(Bsz, E, H, W).permute(0, 2, 3, 1)


# ---------------------------------------------------------------------------------------------
# Resizing and small helpers
# ---------------------------------------------------------------------------------------------
def resize(x, size):
    """Bilinear resize of (B,C,H,W) to size=(h,w), align_corners=False; identity at equal size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def drop_path(x, p, training, generator=None):
    """Stochastic depth per sample (timm's rule): keep with prob 1-p, scale kept by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    r = torch.rand(shape, generator=generator, dtype=x.dtype)
    return x * (r < keep).to(x.dtype) / keep


def patch_merging(x, norm, reduction):
    """(B,H,W,C) -> (B,ceil(H/2),ceil(W/2),2C): zero pad bottom/right to even sizes, gather
    x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2] into 4C, LayerNorm(4C), Linear."""
    H, W = x.shape[1], x.shape[2]
    if H % 2 or W % 2:
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    return reduction(norm(x))


# ---------------------------------------------------------------------------------------------
# Token mask (SPEC.md section 3)
# ---------------------------------------------------------------------------------------------
def token_logits(P, grid, size, layout):
    """Per-token logits (1, H*W, 2) from the block's parameter P (1, gh*gw, 2).
    Each class plane (P[0, y*gw + x, c] at cell (y, x)) is resized bilinearly to size=(H, W).
    spatial: token t = y*W + x reads (plane0[y,x], plane1[y,x]).
    official: the resized (1,2,H,W) tensor is reshaped straight to (1,H*W,2), so token t reads
    flat entries 2t and 2t+1 of the (2,H,W) tensor (the released code's behaviour)."""
    gh, gw = grid
    H, W = size
    planes = P.reshape(1, gh, gw, 2).permute(0, 3, 1, 2)          # (1,2,gh,gw)
    planes = resize(planes, (H, W))
    if layout == "spatial":
        return planes.permute(0, 2, 3, 1).reshape(1, H * W, 2)
    if layout == "official":
        return planes.reshape(1, H * W, 2)
    raise ValueError(f"unknown mask layout '{layout}'")


def gumbel_noise(shape, dtype, generator=None):
    """g = -log(-log(u)), u ~ U(0,1) (u kept away from 0 and 1)."""
    u = torch.rand(shape, generator=generator, dtype=dtype)
    u = u.clamp(1e-20, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def token_mask(x, P, grid, training, tau=1.0, mode="residual", layout="spatial",
               noise=False, generator=None):
    """Applies a learned token mask to x (B,H,W,C). Returns (x_masked, m) with m (B,H,W).
    Training: y = softmax((l + g)/tau) over the 2 entries, forward value = hard one-hot of argmax
    (ties go to entry 0, "keep"), backward through y (straight-through); m = component 0.
    Evaluation: m = 1 where l0 > l1. mode residual: x*m + x; zero: x*m."""
    Bsz, H, W, _ = x.shape
    lg = token_logits(P, grid, (H, W), layout)                                   # (1,HW,2)
    if training:
        z = lg.expand(Bsz, H * W, 2)
        if noise:
            z = z + gumbel_noise((Bsz, H * W, 2), lg.dtype, generator)
        y0 = torch.softmax(z / tau, dim=-1)[..., 0]                              # (B,HW)
        hard = (z[..., 0] >= z[..., 1]).to(x.dtype)
        m = hard + (y0 - y0.detach())       # value exactly `hard`, gradient of y0
    else:
        m = (lg[..., 0] > lg[..., 1]).to(x.dtype).expand(Bsz, H * W)
    m = m.reshape(Bsz, H, W)
    xm = x * m.unsqueeze(-1)
    if mode == "residual":
        xm = xm + x
    elif mode != "zero":
        raise ValueError(f"unknown mask mode '{mode}'")
    return xm, m


# ---------------------------------------------------------------------------------------------
# Loss pieces (SPEC.md section 5)
# ---------------------------------------------------------------------------------------------
IGNORE = 255


def cross_entropy(logits, labels, avg_non_ignore=False):
    """Softmax CE of logits (B,K,H,W) against labels (B,H,W) (255 ignored). Default mean over ALL
    pixels (ignored ones count in the denominator); avg_non_ignore: over non-ignored pixels
    (a batch without any valid pixel gives 0)."""
    total = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    if avg_non_ignore:
        n = int((labels != IGNORE).sum())
        return total / max(n, 1)
    return total / labels.numel()
