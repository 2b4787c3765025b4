# The functional pieces of the MaskViM reference, written straight from docs/math.md: the selective
# scan (a per-token loop or a vectorised chunked form, one memory-light hand-written backward),
# the 4-direction SS2D scan, the token mask (Gumbel straight-through), patch merging, bilinear
# resize, cross-entropy.
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
#
# Two ways to run the recurrence inside one segment of the sequence (set_scan / impl=):
#   "loop"     one step per token, the plain transcription of docs/math.md section 2.2 (the default);
#   "chunked"  vectorised: chunks of SCAN_CHUNK tokens are scanned all at once by recursive
#              doubling (Hillis-Steele on the pairs (decay, state)), then the chunk-end states are
#              chained by the same doubling over the chunks, and each chunk gets its entering
#              state times its running decay product. It only ever multiplies decays
#              exp(delta*A) in (0, 1] and adds, so nothing can overflow for any delta >= 0,
#              A <= 0; a product that underflows to 0 is one whose true value is below the
#              smallest float, where 0 is the right answer to working precision. (The closed
#              form exp(S_l) * cumsum(exp(-S_j) x_j), S = cumsum(delta*A), needs exp(-S_j),
#              which overflows float32 once a chunk's sum of |delta*A| passes ~88: with A down
#              to -16 that takes only a few tokens of large delta, so it is not used.)
# Both run under one autograd Function with a memory-light backward: forward walks the
# sequence segment by segment (at most scan_seg_elems() hidden-state values, B*K*E*tokens*N,
# per segment), keeps only the state entering each segment and drops the rest; backward walks the
# segments last to first, recomputes a segment's states from its entering state (the same
# arithmetic as forward, so the same values), runs the reverse recurrence for dL/dh on it
# and passes dL/dh times the first decay on to the segment before.
# ---------------------------------------------------------------------------------------------
SCAN_IMPLS = ("loop", "chunked")
SCAN_CHUNK = 16             # tokens per chunk of the chunked scan
SCAN_SEG_ELEMS = None       # hidden-state values per segment; None: scan_seg_elems' default
_scan_impl = "loop"


def scan_seg_elems(device):
    """Hidden-state values per segment: 64 Mi on a GPU (256 MiB a tensor in float32; the
    backward holds about a dozen such tensors at once), 4 Mi on the CPU, where every tensor over
    glibc's 32 MiB mmap threshold is fresh memory and page faults then cost more than the work."""
    if SCAN_SEG_ELEMS:
        return SCAN_SEG_ELEMS
    return 1 << 26 if torch.device(device).type == "cuda" else 1 << 22


def set_scan(impl):
    """Chooses the implementation selective_scan (and so ss2d_scan and the model) uses."""
    global _scan_impl
    if impl not in SCAN_IMPLS:
        raise ValueError(f"unknown scan '{impl}' (want one of {', '.join(SCAN_IMPLS)})")
    _scan_impl = impl


def get_scan():
    return _scan_impl


def _linrec_loop(la, x, h0):
    """h_l = exp(la_l) * h_{l-1} + x_l along dim -2, h_{-1} = h0.  la, x (...,S,N), h0 (...,N).
    Returns every h (...,S,N). Time first inside, so that each step reads contiguous slabs."""
    dA = torch.exp(la).movedim(-2, 0).contiguous()
    xt = x.movedim(-2, 0).contiguous()
    hs = torch.empty_like(xt)
    h = h0
    for l in range(xt.shape[0]):
        h = dA[l] * h + xt[l]
        hs[l] = h
    return hs.movedim(0, -2)


def _doubling_(a, x):
    """In place, along dim -2: x_l <- the state at l of the recurrence h_l = a_l h_{l-1} + x_l
    started from 0 at index 0, a_l <- prod_{i<=l} a_i. Hillis-Steele: after the pass with
    distance d each index holds the composition of the 2d steps ending there."""
    n = x.shape[-2]
    buf = torch.empty_like(x)   # one scratch for all passes (the updates read overlapping slices)
    d = 1
    while d < n:
        t = buf[..., :n - d, :]
        torch.mul(a[..., d:, :], x[..., :-d, :], out=t)
        x[..., d:, :] += t
        torch.mul(a[..., d:, :], a[..., :-d, :], out=t)
        a[..., d:, :] = t
        d *= 2


def _linrec_chunked(la, x, h0, chunk=None):
    """Same result as _linrec_loop, vectorised (see the section comment)."""
    T = chunk or SCAN_CHUNK
    *lead, S, N = x.shape
    T = max(1, min(T, S))
    pad = (-S) % T
    if pad:   # padded steps: decay 1, input 0 (they come after the real ones and are dropped)
        la = F.pad(la, (0, 0, 0, pad))
        x = F.pad(x, (0, 0, 0, pad))
    nc = (S + pad) // T
    a = torch.exp(la).reshape(*lead, nc, T, N)
    h = x.reshape(*lead, nc, T, N).clone()
    _doubling_(a, h)                          # zero-start states and decay products per chunk
    h0c = h0.unsqueeze(-2)                    # (...,1,N)
    if nc > 1:
        ea = a[..., -1, :].clone()            # (...,nc,N) each chunk's total decay
        eh = h[..., -1, :].clone()            # (...,nc,N) each chunk's zero-start end state
        _doubling_(ea, eh)                    # chained: end states from a zero start, products
        enter = torch.cat([h0c, eh[..., :-1, :] + ea[..., :-1, :] * h0c], dim=-2)
    else:
        enter = h0c
    h += a * enter.unsqueeze(-2)
    return h.reshape(*lead, nc * T, N)[..., :S, :]


def _linrec(impl, la, x, h0, chunk):
    return _linrec_loop(la, x, h0) if impl == "loop" else _linrec_chunked(la, x, h0, chunk)


def _seg_len(Bsz, K, E, N, L, impl, chunk, seg_tokens, device):
    if seg_tokens:
        return max(1, min(seg_tokens, L))
    n = max(1, scan_seg_elems(device) // (Bsz * K * E * N))
    if impl == "chunked":
        T = chunk or SCAN_CHUNK
        n = max(T, n // T * T)
    return min(n, L)


class SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, D, impl, chunk, seg_tokens):
        Bsz, K, E, L = u.shape
        N = A.shape[-1]
        seg = _seg_len(Bsz, K, E, N, L, impl, chunk, seg_tokens, u.device)
        Ae = A.unsqueeze(-2)                                                      # (K,E,1,N)
        h = torch.zeros(Bsz, K, E, N, dtype=u.dtype, device=u.device)
        enter = []
        y = torch.empty_like(u)
        for s in range(0, L, seg):
            e = min(s + seg, L)
            enter.append(h)
            dt, ut = delta[..., s:e], u[..., s:e]
            la = dt.unsqueeze(-1) * Ae                                            # (B,K,E,S,N)
            x = (dt * ut).unsqueeze(-1) * Bm[..., s:e].transpose(-1, -2).unsqueeze(2)
            hs = _linrec(impl, la, x, h, chunk)
            del la, x
            Ct = Cm[..., s:e].transpose(-1, -2).unsqueeze(2)                      # (B,K,1,S,N)
            y[..., s:e] = (hs * Ct).sum(-1) + D.unsqueeze(-1) * ut
            h = hs[..., -1, :].clone()
            del hs
        ctx.impl, ctx.chunk, ctx.seg = impl, chunk, seg
        ctx.save_for_backward(u, delta, A, Bm, Cm, D, torch.stack(enter))
        return y

    @staticmethod
    def backward(ctx, gy):
        u, delta, A, Bm, Cm, D, enter = ctx.saved_tensors
        impl, chunk, seg = ctx.impl, ctx.chunk, ctx.seg
        L = u.shape[-1]
        gy = gy.contiguous()
        Ae = A.unsqueeze(-2)                                                      # (K,E,1,N)
        gD = (gy * u).sum(dim=(0, 3))
        gu = gy * D.unsqueeze(-1)
        gdelta = torch.empty_like(delta)
        gA = torch.zeros_like(A)
        gB = torch.empty_like(Bm)
        gC = torch.empty_like(Cm)
        carry = torch.zeros_like(enter[0])    # dL/dh at the next segment's start * its decay
        starts = list(range(0, L, seg))
        for i in range(len(starts) - 1, -1, -1):
            s = starts[i]
            e = min(s + seg, L)
            dt, ut = delta[..., s:e], u[..., s:e]
            Bt = Bm[..., s:e].transpose(-1, -2).unsqueeze(2)                      # (B,K,1,S,N)
            Ct = Cm[..., s:e].transpose(-1, -2).unsqueeze(2)
            la = dt.unsqueeze(-1) * Ae                                            # (B,K,E,S,N)
            du = (dt * ut).unsqueeze(-1)                                          # (B,K,E,S,1)
            hs = _linrec(impl, la, du * Bt, enter[i], chunk)   # the forward states, recomputed
            gys = gy[..., s:e].unsqueeze(-1)
            # dL/dh_l = gy_l Cm_l + exp(la_{l+1}) dL/dh_{l+1}: the same recurrence backwards in
            # time, with the decays moved one step (the first reversed step has decay 1 and
            # starts from the carry).
            la_rev = torch.cat([la[..., 1:, :], torch.zeros_like(la[..., :1, :])], -2).flip(-2)
            gh = _linrec(impl, la_rev, (gys * Ct).flip(-2), carry, chunk).flip(-2)
            del la_rev
            dA = torch.exp(la)
            del la
            carry = gh[..., 0, :] * dA[..., 0, :]
            h_prev = torch.cat([enter[i].unsqueeze(-2), hs[..., :-1, :]], -2)
            g_la = gh * h_prev * dA                    # d/d(delta_l * A)        (B,K,E,S,N)
            del h_prev, dA
            ghB = (gh * Bt).sum(-1)                    # sum_n gh * Bm          (B,K,E,S)
            gdelta[..., s:e] = (g_la * Ae).sum(-1) + ghB * ut
            gu[..., s:e] += ghB * dt
            gA += (g_la * dt.unsqueeze(-1)).sum(dim=(0, 3))
            del g_la
            gB[..., s:e] = (gh * du).sum(2).transpose(-1, -2)
            gC[..., s:e] = (gys * hs).sum(2).transpose(-1, -2)
            del gh, hs
        return gu, gdelta, gA, gB, gC, gD, None, None, None


def selective_scan(u, delta, A, Bm, Cm, D, impl=None, chunk=None, seg_tokens=None):
    """impl: "loop" or "chunked" (default: the one set_scan chose). chunk: tokens per chunk of
    the chunked scan; seg_tokens: tokens per memory segment (default from scan_seg_elems)."""
    impl = impl or _scan_impl
    if impl not in SCAN_IMPLS:
        raise ValueError(f"unknown scan '{impl}'")
    return SelectiveScan.apply(u, delta, A, Bm, Cm, D, impl, chunk, seg_tokens)


def selective_scan_autograd(u, delta, A, Bm, Cm, D):
    """Same recurrence, differentiated by autograd (used to cross-check the hand backward)."""
    Bsz, K, E, L = u.shape
    h = torch.zeros(Bsz, K, E, A.shape[-1], dtype=u.dtype, device=u.device)
    ys = []
    for l in range(L):
        dA = torch.exp(delta[..., l].unsqueeze(-1) * A)
        h = dA * h + (delta[..., l] * u[..., l]).unsqueeze(-1) * Bm[..., l].unsqueeze(2)
        ys.append((h * Cm[..., l].unsqueeze(2)).sum(-1) + D * u[..., l])
    return torch.stack(ys, dim=-1)


# ---------------------------------------------------------------------------------------------
# SS2D's 4-direction scan (docs/math.md section 2.2), from the activation after dwconv + SiLU to the merged
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


def _bilinear_matrix(out, inn, dtype):
    """(out, inn) weights of the bilinear resize along one axis (align_corners False), with the
    source coordinate clamped to [0, inn-1]: an output past the first or last input centre reads
    that input with weight exactly 1 (F.interpolate gives (1 - l) a + l a there, l != 0)."""
    o = torch.arange(out, dtype=torch.float64)
    src = ((2 * o + 1) * inn - out) / (2 * out)           # (o + 0.5) * inn/out - 0.5, one rounding
    src = src.clamp(0, inn - 1)
    i0 = src.floor().long()
    i1 = (i0 + 1).clamp(max=inn - 1)
    l1 = src - i0
    M = torch.zeros(out, inn, dtype=torch.float64)
    M[torch.arange(out), i0] += 1 - l1
    M[torch.arange(out), i1] += l1
    return M.to(dtype)


def resize_clamped(x, size):
    """resize() with exact weights 1 / 0 where an output lies past the first or last input centre
    (identity at equal size). Equal to F.interpolate up to rounding, but a token mask's logits
    must be exact there: in the official layout two horizontally adjacent entries of one plane
    are compared, and clamped neighbours are an exact tie that a tie rule (keep) decides, not the
    rounding of (1 - l) a + l a (docs/reference.md, token mask logits)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    My = _bilinear_matrix(size[0], x.shape[-2], x.dtype)
    Mx = _bilinear_matrix(size[1], x.shape[-1], x.dtype)
    return torch.einsum("yi,bcij,xj->bcyx", My, x, Mx)


def drop_path(x, p, training, generator=None):
    """Stochastic depth per sample (timm's rule): keep with prob 1-p, scale kept by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    r = torch.rand(shape, generator=generator, dtype=x.dtype)
    return x * (r < keep).to(x.dtype) / keep


def patch_merging(x, norm, reduction):
    """(B,H,W,C) -> (B,ceil(H/2),ceil(W/2),C'), C' = 2C (or the next stage's width): zero pad bottom/right to even sizes, gather
    x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2] into 4C, LayerNorm(4C), Linear."""
    H, W = x.shape[1], x.shape[2]
    if H % 2 or W % 2:
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    return reduction(norm(x))


# ---------------------------------------------------------------------------------------------
# Token mask (docs/math.md section 3)
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
    planes = resize_clamped(planes, (H, W))
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
# Loss pieces (docs/math.md section 5)
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
