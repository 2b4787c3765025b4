// SS2D core on the GPU: the x/dt projections (cuBLAS), the selective scan along the four scan
// orders (every launch covers all four directions), and the merge (docs/math.md section 2.2).
//
// Parallel over the sequence. The recurrence h_l = e_l h_{l-1} + u_l is affine in h, so over one
// SCAN_CHUNK-step chunk it composes to h_end = P h_start + h_loc, with P the product of the
// chunk's decays and h_loc the chunk walked from h = 0. Forward: (1) every chunk at once gives
// (P, h_loc); (2) a short serial pass per (image, direction, channel, state) chains the chunks,
// which yields the state entering each chunk (the boundary states the CPU op keeps too);
// (3) every chunk at once walks from its entering state and writes y. Backward mirrors it: the
// adjoint g = dL/dh obeys g_{l-1} = e_l (g_l + dy_l C_l), also affine, so (1) every chunk gives
// (P, g_loc) walking backwards from g = 0, (2) the serial pass chains them from the last chunk,
// (3) every chunk runs the full reverse step from its incoming g and its boundary state. A block
// walking the whole sequence alone (as on the CPU) leaves the GPU latency-bound: at 512x1024 the
// first stage's 32768-step walk made the scan 80% of the step.
//
// Work split. A thread block owns (image b, direction k, chunk c, block of DB channels); a thread
// owns one (channel d, state n) pair, so the NL lanes of a channel sum C*h over n with warp
// shuffles. Direction k visits positions in scan_pos(k, l) order straight from the natural (h,w)
// layout: no cross-scan copies. Loads for WIN steps are issued together (the positions of a
// window are computed once, one per lane, and broadcast by shuffles). Backward recomputes the
// states at the start of each WIN-step window of its chunk (kept in shared memory), then, window
// by window from last to first, recomputes the window's states into registers and runs the
// reverse recurrence.
//
// Determinism (no floating-point atomics). The four directions write their own y (and dx, d delta)
// slices, added in direction order by a merge pass. dB/dC reduce over channels: each block sums
// its channels per step in shared memory in warp order and writes a per-block partial; a second
// pass adds the blocks' partials in block order. dA/dD reduce over images and chunks: per (image,
// chunk) partials, added in that order. Tail positions (L is rarely a multiple of the chunk) are
// masked explicitly: they load zeros (decay 1, state unchanged) and write nothing.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/scan_limits.h"

#define WIN 16                      // steps per register window
#define NWIN (SCAN_CHUNK / WIN)     // windows per chunk
#define SCAN_MAX_THREADS 512
static_assert(SCAN_CHUNK % WIN == 0, "the chunk must be a whole number of windows");

// Position (h*W + w) of step l of direction k: k0 row-major, k1 column-major, k2/k3 reversed.
__device__ __forceinline__ int scan_pos(int k, int l, int H, int W) {
    int L = H * W;
    if (k >= 2) l = L - 1 - l;
    if (k & 1) return (l % H) * W + l / H;
    return l;
}

struct ScanArgs {
    const float *x, *xdbl, *delta, *states_in, *dy, *A_logs, *Ds;
    float *y_part, *states, *ddelta, *dx_part, *dbc, *dAD;
    float *decay, *carry;   // per chunk: the product of its decays; its walk from zero, then the incoming value
    int B, H, W, E, R, N, DB, nblk, nc;
};

// Launch shape, from the sizes only (never the device), so results are the same on every GPU.
// NL lanes per channel (N rounded up to a power of two), DB channels per block.
struct ScanShape {
    int NL, DB, nblk, threads;
    size_t smem;   // backward: per-warp dB/dC sums [warps][WIN][2N] + window states [NWIN][threads]
};

static int nchunks(int L) { return (L + SCAN_CHUNK - 1) / SCAN_CHUNK; }

static ScanShape scan_shape(int B, int L, int E, int N) {
    ScanShape s;
    s.NL = N <= 4 ? 4 : N <= 8 ? 8 : N <= 16 ? 16 : 32;
    s.DB = SCAN_MAX_THREADS / s.NL > 32 ? 32 : SCAN_MAX_THREADS / s.NL;
    // Few (image, direction, chunk, channel block) tuples leave SMs idle (short sequences): narrow
    // the channel blocks then, down to 8 channels (and at least one full warp).
    long tiles = (long)B * SCAN_K * nchunks(L);
    while (s.DB > 8 && s.NL * s.DB > 32 && tiles * ((E + s.DB - 1) / s.DB) < 256) s.DB /= 2;
    for (;;) {
        s.threads = s.NL * s.DB;
        s.smem = sizeof(float) * ((size_t)(s.threads / 32) * WIN * 2 * N + (size_t)NWIN * s.threads);
        if (s.smem <= 48 * 1024 || s.threads <= 32) break;
        s.DB /= 2;
    }
    s.nblk = (E + s.DB - 1) / s.DB;
    return s;
}

// The block's tile: blockIdx.x = ((b * K + k) * nc + c) * nblk + blk (channel blocks of one chunk
// side by side, so they share the chunk's B/C rows in cache).
struct ScanTile {
    int b, k, c, blk;
};

__device__ __forceinline__ ScanTile scan_tile(const ScanArgs &a) {
    ScanTile t;
    int i = blockIdx.x;
    t.blk = i % a.nblk;
    i /= a.nblk;
    t.c = i % a.nc;
    i /= a.nc;
    t.k = i % SCAN_K;
    t.b = i / SCAN_K;
    return t;
}

// Offset of (k, b, c, d, n) in the per-chunk buffers [K, B, nc, E, N] (states, decay, carry).
__device__ __forceinline__ size_t chunk_slot(const ScanArgs &a, int k, int b, int c, int d, int n) {
    return ((((size_t)k * a.B + b) * a.nc + c) * a.E + d) * a.N + n;
}

// Forward over one chunk. SUMMARY: from h = 0, keep only the chunk's (decay product, end state)
// for the chaining pass. Otherwise: from the chunk's entering state, write y.
template <int NL, bool SUMMARY>
__global__ void __launch_bounds__(SCAN_MAX_THREADS) scan_forward_kernel(ScanArgs a) {
    const int L = a.H * a.W, P = a.R + 2 * a.N;
    const ScanTile t = scan_tile(a);
    const int k = t.k, b = t.b;
    const int n = threadIdx.x % NL, d = t.blk * a.DB + threadIdx.x / NL, lane = threadIdx.x % 32;
    const bool chan = d < a.E, act = chan && n < a.N;
    const size_t E = a.E, rows = (size_t)a.B * L;
    const float A2 = act ? -expf(a.A_logs[((size_t)k * E + d) * a.N + n]) * LOG2E_F : 0.0f;
    const float Dk = chan ? a.Ds[(size_t)k * E + d] : 0.0f;
    const float *dk = a.delta + ((size_t)k * a.B + b) * L * E;
    const float *xb = a.x + (size_t)b * L * E;
    const float *bc = a.xdbl + ((size_t)b * L * SCAN_K + k) * P + a.R;   // + p*K*P: B[0..N), C[0..N)
    float *yk = a.y_part + ((size_t)k * rows + (size_t)b * L) * E;
    const size_t slot = act ? chunk_slot(a, k, b, t.c, d, n) : 0;
    float h = SUMMARY || !act ? 0.0f : a.states[slot];
    float logp = 0.0f;   // log2 of the chunk's decay product
    for (int w = 0; w < NWIN; w++) {
        int l0 = t.c * SCAN_CHUNK + w * WIN;
        if (l0 >= L) break;   // same for the whole block
        int lw = l0 + lane % WIN, mypos = lw < L ? scan_pos(k, lw, a.H, a.W) : 0;
        float dv[WIN], xv[WIN], bv[WIN], cv[WIN];
        int pv[WIN];
        #pragma unroll
        for (int i = 0; i < WIN; i++) {
            int p = __shfl_sync(FULL_MASK, mypos, i);
            bool ok = l0 + i < L;
            const float *q = bc + (size_t)p * SCAN_K * P;
            pv[i] = p;
            dv[i] = ok && chan ? dk[(size_t)p * E + d] : 0.0f;
            xv[i] = ok && chan ? xb[(size_t)p * E + d] : 0.0f;
            bv[i] = ok && act ? q[n] : 0.0f;
            cv[i] = !SUMMARY && ok && act ? q[a.N + n] : 0.0f;
        }
        #pragma unroll
        for (int i = 0; i < WIN; i++) {
            h = exp2f(dv[i] * A2) * h + dv[i] * xv[i] * bv[i];
            if (SUMMARY) {
                logp += dv[i] * A2;
            } else {
                float yv = group_sum<NL>(cv[i] * h);
                if (n == 0 && chan && l0 + i < L) yk[(size_t)pv[i] * E + d] = yv + Dk * xv[i];
            }
        }
    }
    if (SUMMARY && act) {
        a.states[slot] = h;
        a.decay[slot] = exp2f(logp);
    }
}

// Backward's summary of one chunk: the adjoint walked from the chunk's end with g = 0 (only the
// decays and dy*C enter it, not the states) and the chunk's decay product.
template <int NL>
__global__ void __launch_bounds__(SCAN_MAX_THREADS) scan_backward_summary_kernel(ScanArgs a) {
    const int L = a.H * a.W, P = a.R + 2 * a.N;
    const ScanTile t = scan_tile(a);
    const int k = t.k, b = t.b;
    const int n = threadIdx.x % NL, d = t.blk * a.DB + threadIdx.x / NL, lane = threadIdx.x % 32;
    const bool chan = d < a.E, act = chan && n < a.N;
    const size_t E = a.E;
    const float A2 = act ? -expf(a.A_logs[((size_t)k * E + d) * a.N + n]) * LOG2E_F : 0.0f;
    const float *dk = a.delta + ((size_t)k * a.B + b) * L * E;
    const float *dyb = a.dy + (size_t)b * L * E;
    const float *bc = a.xdbl + ((size_t)b * L * SCAN_K + k) * P + a.R + a.N;   // C
    float g = 0.0f, logp = 0.0f;
    for (int w = NWIN - 1; w >= 0; w--) {
        int l0 = t.c * SCAN_CHUNK + w * WIN;
        if (l0 >= L) continue;   // same for the whole block
        int lw = l0 + lane % WIN, mypos = lw < L ? scan_pos(k, lw, a.H, a.W) : 0;
        float dv[WIN], dyv[WIN], cv[WIN];
        #pragma unroll
        for (int i = 0; i < WIN; i++) {
            int p = __shfl_sync(FULL_MASK, mypos, i);
            bool ok = l0 + i < L;
            dv[i] = ok && chan ? dk[(size_t)p * E + d] : 0.0f;
            dyv[i] = ok && chan ? dyb[(size_t)p * E + d] : 0.0f;
            cv[i] = ok && act ? bc[(size_t)p * SCAN_K * P + n] : 0.0f;
        }
        #pragma unroll
        for (int i = WIN - 1; i >= 0; i--) {
            g = (g + dyv[i] * cv[i]) * exp2f(dv[i] * A2);
            logp += dv[i] * A2;
        }
    }
    if (act) {
        size_t slot = chunk_slot(a, k, b, t.c, d, n);
        a.carry[slot] = g;
        a.decay[slot] = exp2f(logp);
    }
}

// Chains the chunks for every (direction, image, channel, state): walking the chunks in order
// (reverse: from the last), buf[c] holds the chunk's own walk on entry and the value entering the
// chunk on exit; v_next = decay[c] * v + own. In place, so the forward writes the states directly.
// Loads go CHAIN_AHEAD chunks ahead of the dependent multiply-adds, so that they overlap.
#define CHAIN_AHEAD 8
__global__ void scan_chain_kernel(float *buf, const float *decay, size_t KB, int nc, size_t EN, bool reverse) {
    GRID_STRIDE(i, KB * EN) {
        size_t base = (i / EN) * nc * EN + i % EN;
        float v = 0.0f;
        for (int s0 = 0; s0 < nc; s0 += CHAIN_AHEAD) {
            float own[CHAIN_AHEAD], dec[CHAIN_AHEAD];
            #pragma unroll
            for (int j = 0; j < CHAIN_AHEAD; j++) {
                int s = s0 + j;
                size_t o = base + (size_t)(reverse ? nc - 1 - s : s) * EN;
                own[j] = s < nc ? buf[o] : 0.0f;
                dec[j] = s < nc ? decay[o] : 1.0f;
            }
            #pragma unroll
            for (int j = 0; j < CHAIN_AHEAD; j++) {
                int s = s0 + j;
                if (s < nc) buf[base + (size_t)(reverse ? nc - 1 - s : s) * EN] = v;
                v = dec[j] * v + own[j];
            }
        }
    }
}

// The reverse step over one chunk, from the adjoint entering it at its end (a.carry) and the state
// entering it at its start (a.states_in).
template <int NL>
__global__ void __launch_bounds__(SCAN_MAX_THREADS) scan_backward_kernel(ScanArgs a) {
    DYN_SMEM(float, smem);
    const int L = a.H * a.W, P = a.R + 2 * a.N, N2 = 2 * a.N;
    const ScanTile t = scan_tile(a);
    const int k = t.k, b = t.b, c = t.c, blk = t.blk;
    const int n = threadIdx.x % NL, d = blk * a.DB + threadIdx.x / NL, lane = threadIdx.x % 32;
    const int nthreads = blockDim.x, nwarps = nthreads / 32, warp = threadIdx.x / 32;
    const bool chan = d < a.E, act = chan && n < a.N;
    const size_t E = a.E, rows = (size_t)a.B * L;
    float *red = smem;                                  // [nwarps][WIN][2N]
    float *hs = smem + (size_t)nwarps * WIN * N2;       // [NWIN][nthreads]
    const float A = act ? -expf(a.A_logs[((size_t)k * E + d) * a.N + n]) : 0.0f, A2 = A * LOG2E_F;
    const float Dk = chan ? a.Ds[(size_t)k * E + d] : 0.0f;
    const float *dk = a.delta + ((size_t)k * a.B + b) * L * E;
    const float *xb = a.x + (size_t)b * L * E, *dyb = a.dy + (size_t)b * L * E;
    const float *bc = a.xdbl + ((size_t)b * L * SCAN_K + k) * P + a.R;
    float *ddk = a.ddelta + ((size_t)k * rows + (size_t)b * L) * E;
    float *dxk = a.dx_part + ((size_t)k * rows + (size_t)b * L) * E;
    const size_t slot = act ? chunk_slot(a, k, b, c, d, n) : 0;
    float g = act ? a.carry[slot] : 0.0f;   // g = dL/dh, carried backwards over steps
    float dA = 0.0f, dD = 0.0f;
    // The state at the start of each window of this chunk, from the chunk's boundary state.
    float h = act ? a.states_in[slot] : 0.0f;
    for (int w = 0; w < NWIN; w++) {
        int l0 = c * SCAN_CHUNK + w * WIN;
        hs[w * nthreads + threadIdx.x] = h;
        if (l0 >= L) break;
        int lw = l0 + lane % WIN, mypos = lw < L ? scan_pos(k, lw, a.H, a.W) : 0;
        #pragma unroll
        for (int i = 0; i < WIN; i++) {
            int p = __shfl_sync(FULL_MASK, mypos, i);
            bool ok = l0 + i < L;
            float dv = ok && chan ? dk[(size_t)p * E + d] : 0.0f;
            float xv = ok && chan ? xb[(size_t)p * E + d] : 0.0f;
            float bv = ok && act ? bc[(size_t)p * SCAN_K * P + n] : 0.0f;
            h = exp2f(dv * A2) * h + dv * xv * bv;
        }
    }
    // Windows from last to first: the window's states into registers, then the reverse step.
    for (int w = NWIN - 1; w >= 0; w--) {
        int l0 = c * SCAN_CHUNK + w * WIN;
        if (l0 >= L) continue;   // same for the whole block
        int lw = l0 + lane % WIN, mypos = lw < L ? scan_pos(k, lw, a.H, a.W) : 0;
        float hr[WIN + 1], er[WIN], dv[WIN], xv[WIN], bv[WIN];
        hr[0] = hs[w * nthreads + threadIdx.x];
        #pragma unroll
        for (int i = 0; i < WIN; i++) {
            int p = __shfl_sync(FULL_MASK, mypos, i);
            bool ok = l0 + i < L;
            dv[i] = ok && chan ? dk[(size_t)p * E + d] : 0.0f;
            xv[i] = ok && chan ? xb[(size_t)p * E + d] : 0.0f;
            bv[i] = ok && act ? bc[(size_t)p * SCAN_K * P + n] : 0.0f;
            er[i] = exp2f(dv[i] * A2);
            hr[i + 1] = er[i] * hr[i] + dv[i] * xv[i] * bv[i];
        }
        #pragma unroll
        for (int i = WIN - 1; i >= 0; i--) {
            int p = __shfl_sync(FULL_MASK, mypos, i);
            bool ok = l0 + i < L;
            float dyv = ok && chan ? dyb[(size_t)p * E + d] : 0.0f;
            float cn = ok && act ? bc[(size_t)p * SCAN_K * P + a.N + n] : 0.0f;
            float gg = g + dyv * cn;                      // dL/dh_l including y_l's use of it
            float ghe = gg * er[i] * hr[i];
            float ddl = ghe * A + gg * xv[i] * bv[i];     // d(delta_l), this state's share
            float dxl = gg * dv[i] * bv[i];               // dx_l, this state's share
            float sB = gg * dv[i] * xv[i], sC = dyv * hr[i + 1];
            dA += ghe * dv[i];
            g = gg * er[i];
            ddl = group_sum<NL>(ddl);
            dxl = group_sum<NL>(dxl);
            #pragma unroll
            for (int o = NL; o < 32; o <<= 1) {           // dB, dC: over the warp's channels
                sB += __shfl_xor_sync(FULL_MASK, sB, o);
                sC += __shfl_xor_sync(FULL_MASK, sC, o);
            }
            if (n == 0 && chan && ok) {
                // softplus'(z) = sigmoid(z) = 1 - exp(-softplus(z)) = -expm1(-softplus(z)): no
                // need to keep z (1 - expf(-s) cancelled for small s: 0 below z = -17).
                ddk[(size_t)p * E + d] = ddl * -expm1f(-dv[i]);
                dxk[(size_t)p * E + d] = dxl + dyv * Dk;
                dD += dyv * xv[i];
            }
            if (lane < NL && n < a.N) {
                red[((size_t)warp * WIN + i) * N2 + n] = sB;
                red[((size_t)warp * WIN + i) * N2 + a.N + n] = sC;
            }
        }
        __syncthreads();
        // This block's dB/dC for each step of the window: the warps' sums in warp order.
        for (int t2 = threadIdx.x; t2 < WIN * N2; t2 += nthreads) {
            int i = t2 / N2, j = t2 % N2;
            if (l0 + i >= L) continue;
            float s = 0.0f;
            for (int q = 0; q < nwarps; q++) s += red[((size_t)q * WIN + i) * N2 + j];
            size_t row = (size_t)b * L + scan_pos(k, l0 + i, a.H, a.W);
            a.dbc[(((size_t)blk * rows + row) * SCAN_K + k) * N2 + j] = s;
        }
        __syncthreads();
    }
    // Per-(image, chunk) partials: dA_logs through A = -exp(A_logs), and dD.
    float *pa = a.dAD + ((((size_t)b * a.nc + c) * SCAN_K + k) * E + d) * (a.N + 1);
    if (act) pa[n] = dA * A;
    if (chan && n == 0) pa[a.N] = dD;
}

// delta = softplus(delta + dt_b[k]) for all four directions ([K, rows, E]).
__global__ void delta_softplus_kernel(float *delta, const float *dt_b, size_t per_k, int E, size_t n) {
    GRID_STRIDE(i, n) {
        float z = delta[i] + dt_b[(i / per_k) * E + i % E];
        delta[i] = z > 20.0f ? z : log1pf(expf(z));
    }
}

// out = (((init + p0) + p1) + p2) + p3 over the direction slices (init = 0 or out itself).
__global__ void merge_directions_kernel(float *out, const float *part, size_t n, bool add) {
    GRID_STRIDE(i, n) {
        float v = add ? out[i] : 0.0f;
        for (int k = 0; k < SCAN_K; k++) v += part[(size_t)k * n + i];
        out[i] = v;
    }
}

// dxdbl's B and C columns: the channel blocks' partials added in block order.
__global__ void reduce_bc_kernel(float *dxdbl, const float *dbc, size_t rows, int nblk, int R, int N) {
    int N2 = 2 * N, P = R + N2;
    size_t n = rows * SCAN_K * N2;
    GRID_STRIDE(i, n) {
        int j = (int)(i % N2);
        size_t rk = i / N2;   // row * K + k
        float s = 0.0f;
        for (int q = 0; q < nblk; q++) s += dbc[(size_t)q * n + i];
        dxdbl[rk * P + (size_t)(R + j)] = s;
    }
}

// dA_logs and dDs: the per-(image, chunk) partials added in that order.
__global__ void reduce_AD_kernel(float *dA_logs, float *dDs, const float *dAD, int nparts, int KE, int N) {
    size_t n = (size_t)KE * (N + 1);
    GRID_STRIDE(i, n) {
        int j = (int)(i % (N + 1));
        size_t ke = i / (N + 1);
        float *dst = j < N ? (dA_logs ? dA_logs + ke * N + j : NULL) : (dDs ? dDs + ke : NULL);
        if (!dst) continue;
        float v = *dst;
        for (int q = 0; q < nparts; q++) v += dAD[(size_t)q * n + i];
        *dst = v;
    }
}

// d(delta) column sums over rows for every (k, e): column j = k*E + e of the [K, rows, E] buffer.
struct DeltaCol {
    const float *ddt;
    size_t rows;
    int E;
    __device__ float operator()(int n, int j) const {
        return ddt[((size_t)(j / E) * rows + n) * E + j % E];
    }
};

static bool scan_supported(int N, const char *who) {
    if (N >= 1 && N <= MV_GPU_MAX_D_STATE) return true;
    mv_cuda_note(cudaErrorInvalidValue, who);   // a larger d_state is not built for the GPU
    return false;
}

// The scan's passes. The kernel is picked through a host function pointer so that the template
// arguments stay out of the LAUNCH macro.
enum ScanPass { FWD_SUMMARY, FWD_OUTPUT, BWD_SUMMARY, BWD_STEP };
typedef void (*ScanKernel)(ScanArgs);

template <int NL>
static ScanKernel scan_kernel(ScanPass pass) {
    switch (pass) {
    case FWD_SUMMARY: return scan_forward_kernel<NL, true>;
    case FWD_OUTPUT: return scan_forward_kernel<NL, false>;
    case BWD_SUMMARY: return scan_backward_summary_kernel<NL>;
    default: return scan_backward_kernel<NL>;
    }
}

static void launch_scan(ScanPass pass, const ScanShape &s, const ScanArgs &a, cudaStream_t stream) {
    ScanKernel kern = s.NL == 4 ? scan_kernel<4>(pass) : s.NL == 8 ? scan_kernel<8>(pass)
                    : s.NL == 16 ? scan_kernel<16>(pass) : scan_kernel<32>(pass);
    unsigned grid = (unsigned)((size_t)a.B * SCAN_K * a.nc * s.nblk);
    LAUNCH(kern, grid, s.threads, pass == BWD_STEP ? s.smem : 0, stream, a);
}

// Chains the chunks of every (direction, image, channel, state) of the [K, B, nc, E, N] buffer.
static void launch_chain(float *buf, const float *decay, const ScanArgs &a, bool reverse, cudaStream_t stream) {
    size_t KB = (size_t)SCAN_K * a.B, EN = (size_t)a.E * a.N;
    LAUNCH(scan_chain_kernel, grid_for(KB * EN, 128), 128, 0, stream, buf, decay, KB, a.nc, EN, reverse);
}

extern "C" size_t ss2d_scan_states_size_cuda(int B, int L, int E, int N) {
    return (size_t)SCAN_K * B * nchunks(L) * E * N;
}

// Forward: the four directions' outputs before their merge, then the per-chunk decays.
static size_t forward_scratch_own(int B, int L, int E, int N) {
    return (size_t)SCAN_K * B * L * E + ss2d_scan_states_size_cuda(B, L, E, N);
}

// Forward alone, with delta and states NULL (inference): they follow in scratch.
extern "C" size_t ss2d_scan_forward_scratch_cuda(int B, int L, int E, int R, int N) {
    (void)R;
    return 2 * forward_scratch_own(B, L, E, N);
}

extern "C" size_t ss2d_scan_scratch_cuda(int B, int L, int E, int R, int N) {
    size_t rows = (size_t)B * L, P = (size_t)R + 2 * N, nblk = (size_t)scan_shape(B, L, E, N).nblk;
    size_t per_chunk = ss2d_scan_states_size_cuda(B, L, E, N);   // decay, carry
    size_t fwd = forward_scratch_own(B, L, E, N);   // a forward with delta = NULL computes it here
    // ddt, dx per direction, dxdbl, dB/dC partials, dA/dD partials, decay and carry, and the
    // recomputed delta (when none was saved).
    size_t bwd = 3 * (size_t)SCAN_K * rows * E + rows * SCAN_K * P + nblk * rows * SCAN_K * 2 * N +
                 (size_t)B * nchunks(L) * SCAN_K * E * (N + 1) + 2 * per_chunk;
    return fwd > bwd ? fwd : bwd;
}

// delta[k] = softplus(xdbl[:, k, :R] @ dt_w[k]^T + dt_b[k]), [K, rows, E].
static void compute_delta(float *delta, const float *xdbl, const float *dt_w, const float *dt_b, int rows, int E,
                          int R, int P, cudaStream_t stream) {
    size_t per_k = (size_t)rows * E, nd = SCAN_K * per_k;
    for (int k = 0; k < SCAN_K; k++)
        gemm_rm(false, true, rows, E, R, 1.0f, xdbl + (size_t)k * P, SCAN_K * P, dt_w + (size_t)k * E * R, R, 0.0f,
                delta + k * per_k, E, stream);
    LAUNCH(delta_softplus_kernel, grid_for(nd, 256), 256, 0, stream, delta, dt_b, per_k, E, nd);
}

extern "C" void ss2d_scan_forward_cuda(float *y, float *xdbl, float *delta, float *states, const float *x,
                                       const float *x_proj_w, const float *dt_w, const float *dt_b,
                                       const float *A_logs, const float *Ds, float *scratch,
                                       int B, int H, int W, int E, int R, int N, cudaStream_t stream) {
    int L = H * W, P = R + 2 * N, rows = B * L;
    if (rows <= 0 || E <= 0 || !scan_supported(N, "ss2d_scan_forward_cuda (d_state must be 1..32)")) return;
    gemm_rm(false, true, rows, SCAN_K * P, E, 1.0f, x, E, x_proj_w, E, 0.0f, xdbl, SCAN_K * P, stream);
    size_t per_k = (size_t)rows * E;
    // Without delta (training recomputes it in backward) or states (inference: nothing reads them
    // afterwards) they live in scratch after the forward's own part, computed exactly as otherwise.
    float *extra = scratch + forward_scratch_own(B, L, E, N);
    if (!delta) delta = extra;
    if (!states) states = extra + SCAN_K * per_k;
    compute_delta(delta, xdbl, dt_w, dt_b, rows, E, R, P, stream);
    ScanShape s = scan_shape(B, L, E, N);
    float *decay = scratch + SCAN_K * per_k;   // after the direction slices of y
    ScanArgs a = {x, xdbl, delta, NULL, NULL, A_logs, Ds, scratch, states, NULL, NULL, NULL, NULL, decay, NULL,
                  B, H, W, E, R, N, s.DB, s.nblk, nchunks(L)};
    launch_scan(FWD_SUMMARY, s, a, stream);    // states <- each chunk's walk from zero
    launch_chain(states, decay, a, false, stream);   // states <- the state entering each chunk
    launch_scan(FWD_OUTPUT, s, a, stream);
    LAUNCH(merge_directions_kernel, grid_for(per_k, 256), 256, 0, stream, y, scratch, per_k, false);
}

extern "C" void ss2d_scan_backward_cuda(float *dx, float *dx_proj_w, float *ddt_w, float *ddt_b, float *dA_logs,
                                        float *dDs, const float *dy, const float *x, const float *xdbl,
                                        const float *delta, const float *states, const float *x_proj_w,
                                        const float *dt_w, const float *dt_b, const float *A_logs, const float *Ds,
                                        float *scratch, int B, int H, int W, int E, int R, int N,
                                        cudaStream_t stream) {
    int L = H * W, P = R + 2 * N, rows = B * L, nc = nchunks(L);
    if (rows <= 0 || E <= 0 || !scan_supported(N, "ss2d_scan_backward_cuda (d_state must be 1..32)")) return;
    ScanShape s = scan_shape(B, L, E, N);
    size_t per_k = (size_t)rows * E, per_chunk = ss2d_scan_states_size_cuda(B, L, E, N);
    float *ddt = scratch;                                        // [K, rows, E]
    float *dxk = ddt + SCAN_K * per_k;                           // [K, rows, E]
    float *dxdbl = dxk + SCAN_K * per_k;                         // [rows, K, P]
    float *dbc = dxdbl + (size_t)rows * SCAN_K * P;              // [nblk, rows, K, 2N]
    float *dAD = dbc + (size_t)s.nblk * rows * SCAN_K * 2 * N;   // [B, nc, K, E, N+1]
    float *decay = dAD + (size_t)B * nc * SCAN_K * E * (N + 1);  // [K, B, nc, E, N]
    float *carry = decay + per_chunk;                            // [K, B, nc, E, N]
    if (!delta) {   // none saved (training): recomputed, the same bits as forward's
        float *redo = carry + per_chunk;                         // [K, rows, E]
        compute_delta(redo, xdbl, dt_w, dt_b, rows, E, R, P, stream);
        delta = redo;
    }
    ScanArgs a = {x, xdbl, delta, states, dy, A_logs, Ds, NULL, NULL, ddt, dxk, dbc, dAD, decay, carry,
                  B, H, W, E, R, N, s.DB, s.nblk, nc};
    launch_scan(BWD_SUMMARY, s, a, stream);          // carry <- each chunk's adjoint walk from zero
    launch_chain(carry, decay, a, true, stream);     // carry <- the adjoint entering each chunk's end
    launch_scan(BWD_STEP, s, a, stream);
    if (dx) LAUNCH(merge_directions_kernel, grid_for(per_k, 256), 256, 0, stream, dx, dxk, per_k, true);
    size_t nad = (size_t)SCAN_K * E * (N + 1);
    if (dA_logs || dDs)
        LAUNCH(reduce_AD_kernel, grid_for(nad, 256), 256, 0, stream, dA_logs, dDs, dAD, B * nc, SCAN_K * E, N);
    size_t nbc = (size_t)rows * SCAN_K * 2 * N;
    LAUNCH(reduce_bc_kernel, grid_for(nbc, 256), 256, 0, stream, dxdbl, dbc, (size_t)rows, s.nblk, R, N);
    // Through dt = dt_w[k] @ dt_r + dt_b[k].
    for (int k = 0; k < SCAN_K; k++) {
        const float *ddk = ddt + k * per_k;
        gemm_rm(false, false, rows, R, E, 1.0f, ddk, E, dt_w + (size_t)k * E * R, R, 0.0f, dxdbl + (size_t)k * P,
                SCAN_K * P, stream);
        if (ddt_w)
            gemm_rm(true, false, E, R, rows, 1.0f, ddk, E, xdbl + (size_t)k * P, SCAN_K * P, 1.0f,
                    ddt_w + (size_t)k * E * R, R, stream);
    }
    if (ddt_b) colsum<float>(DeltaCol{ddt, (size_t)rows, E}, EmitAddF{ddt_b}, rows, SCAN_K * E, stream);
    // Through xdbl = x @ x_proj_w^T (all four directions at once).
    if (dx)
        gemm_rm(false, false, rows, E, SCAN_K * P, 1.0f, dxdbl, SCAN_K * P, x_proj_w, E, 1.0f, dx, E, stream);
    if (dx_proj_w)
        gemm_rm(true, false, SCAN_K * P, E, rows, 1.0f, dxdbl, SCAN_K * P, x, E, 1.0f, dx_proj_w, E, stream);
}
