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
// owns one channel d and SPL = 4 of its states in fp32 registers, so N = 16 takes NL = 4 lanes per
// channel, which add C*h over their states with two warp shuffles. Per-channel work (delta, x and
// dy loads, y/dx/d delta stores) is thus shared by 4 states, not repeated by each: the first GPU
// version gave every (channel, state) pair its own lane and was bound by those repeated loads and
// their 64-bit address arithmetic (2.6 TFLOP/s, 77% of a bf16 training step). Each window of steps
// is staged in shared memory by the whole block: its positions (direction k visits scan_pos(k, l)
// order straight from the natural (h,w) layout: no cross-scan copies) and its B and C rows, which
// every channel of the block reads. Forward loads a WIN-step window's delta and x together.
// Backward keeps the state at the start of each BWIN-step window of its chunk in shared memory,
// then, window by window from last to first, recomputes the window's states into registers and
// runs the reverse recurrence.
//
// Determinism (no floating-point atomics). The four directions write their own y (and dx, d delta)
// slices, added in direction order by a merge pass. dB/dC reduce over channels: each block sums
// its channels per step in shared memory in warp order and writes a per-block partial; a second
// pass adds the blocks' partials in block order. dA/dD reduce over images and chunks: per (image,
// chunk) partials, added in that order. Tail positions (L is rarely a multiple of the chunk) are
// masked explicitly: they load zeros (decay 1, state unchanged) and write nothing.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/scan_limits.h"

#define SPL 4                        // states per lane
#define WIN 16                       // forward: steps per window (their loads issued together)
#define NWIN (SCAN_CHUNK / WIN)
#define BWIN 8                       // backward: steps per window (their states held in registers)
#define NBWIN (SCAN_CHUNK / BWIN)
#define SCAN_THREADS 256
static_assert(SCAN_CHUNK % WIN == 0 && SCAN_CHUNK % BWIN == 0, "the chunk must be a whole number of windows");

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
// NL lanes per channel (each holding SPL states), DB channels per block.
struct ScanShape {
    int NL, DB, nblk, threads;
    size_t smem_fwd, smem_bwd;   // window [pos, B|C rows]; backward adds window states and dB/dC sums
};

static int nchunks(int L) { return (L + SCAN_CHUNK - 1) / SCAN_CHUNK; }

// A window's shared memory: its positions [win] (ints), then its B and C rows [win][2 NP], NP =
// NL * SPL (the states padded to whole lanes; zero beyond N).
static size_t window_smem(int win, int NL) { return sizeof(float) * ((size_t)win + (size_t)win * 2 * NL * SPL); }

static ScanShape scan_shape(int B, int L, int E, int N) {
    ScanShape s;
    s.NL = N <= SPL ? 1 : N <= 2 * SPL ? 2 : N <= 4 * SPL ? 4 : 8;
    s.DB = SCAN_THREADS / s.NL;
    // Few (image, direction, chunk, channel block) tuples leave SMs idle (short sequences), and
    // channel blocks wider than E idle lanes: narrow the blocks then, down to one warp.
    long tiles = (long)B * SCAN_K * nchunks(L);
    while (s.NL * s.DB > 32 && (s.DB >= 2 * E || tiles * ((E + s.DB - 1) / s.DB) < 256)) s.DB /= 2;
    for (;;) {
        s.threads = s.NL * s.DB;
        s.smem_fwd = window_smem(WIN, s.NL);
        s.smem_bwd = window_smem(BWIN, s.NL) +
                     sizeof(float) * ((size_t)NBWIN * SPL * s.threads + (size_t)(s.threads / 32) * BWIN * 2 * N);
        if (s.smem_bwd <= 48 * 1024 || s.threads <= 32) break;
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

// A thread's place: channel d, and the first of its SPL states.
struct ScanLane {
    int d, n0;
    bool chan;   // d < E (the last block's spare lanes run along with zeros)
};

template <int NL>
__device__ __forceinline__ ScanLane scan_lane(const ScanArgs &a, int blk) {
    ScanLane s;
    s.n0 = threadIdx.x % NL * SPL;
    s.d = blk * a.DB + threadIdx.x / NL;
    s.chan = s.d < a.E;
    return s;
}

// A = -exp(A_logs) of the thread's states, as log2 factors (exp2(delta * A2) = exp(delta * A));
// zero for padded states (decay 1; their B and C are zero, so they stay zero).
__device__ __forceinline__ void load_A2(float A2[SPL], const ScanArgs &a, int k, const ScanLane &s) {
    #pragma unroll
    for (int j = 0; j < SPL; j++)
        A2[j] = s.chan && s.n0 + j < a.N ? -expf(a.A_logs[((size_t)k * a.E + s.d) * a.N + s.n0 + j]) * LOG2E_F : 0.0f;
}

// Stages steps l0 .. l0 + win - 1 of direction k in shared memory: their positions (-1 past the
// sequence's end) and B and C rows (zero past the end and beyond N), each element loaded once for
// the whole block instead of once per lane. The caller syncs before it (the previous window's
// readers); it syncs after.
__device__ __forceinline__ void stage_window(const ScanArgs &a, int k, int b, int l0, int win, int NP, int *pos,
                                             float *bcs) {
    const int L = a.H * a.W, P = a.R + 2 * a.N, BCW = 2 * NP;
    for (int i = threadIdx.x; i < win; i += blockDim.x) pos[i] = l0 + i < L ? scan_pos(k, l0 + i, a.H, a.W) : -1;
    __syncthreads();
    for (int t = threadIdx.x; t < win * BCW; t += blockDim.x) {
        int i = t / BCW, j = t % BCW, n = j < NP ? j : j - NP, p = pos[i];
        size_t row = ((size_t)b * L + (size_t)(p < 0 ? 0 : p)) * SCAN_K + k;
        bcs[t] = p >= 0 && n < a.N ? a.xdbl[row * P + a.R + (j < NP ? 0 : a.N) + n] : 0.0f;
    }
    __syncthreads();
}

// A chunk's summary for the chaining pass, per state of the thread: its walk from zero (into
// walk: the states, or backward's carry) and its decay product exp2(logp).
__device__ __forceinline__ void store_summary(const ScanArgs &a, float *walk, const ScanTile &t, const ScanLane &s,
                                              const float v[SPL], const float logp[SPL]) {
    #pragma unroll
    for (int j = 0; j < SPL; j++) {
        if (!s.chan || s.n0 + j >= a.N) continue;
        size_t slot = chunk_slot(a, t.k, t.b, t.c, s.d, s.n0 + j);
        walk[slot] = v[j];
        a.decay[slot] = exp2f(logp[j]);
    }
}

// Forward over one chunk. SUMMARY: from h = 0, keep only the chunk's (decay product, end state)
// for the chaining pass. Otherwise: from the chunk's entering state, write y.
template <int NL, bool SUMMARY>
__global__ void __launch_bounds__(SCAN_THREADS) scan_forward_kernel(ScanArgs a) {
    DYN_SMEM(float, smem);
    const int L = a.H * a.W, NP = NL * SPL, BCW = 2 * NP;
    int *pos = (int *)smem;
    float *bcs = smem + WIN;
    const ScanTile t = scan_tile(a);
    const int k = t.k, b = t.b;
    const ScanLane s = scan_lane<NL>(a, t.blk);
    const size_t E = a.E, rows = (size_t)a.B * L;
    float A2[SPL], h[SPL];
    load_A2(A2, a, k, s);
    #pragma unroll
    for (int j = 0; j < SPL; j++)
        h[j] = SUMMARY || !(s.chan && s.n0 + j < a.N) ? 0.0f : a.states[chunk_slot(a, k, b, t.c, s.d, s.n0 + j)];
    const float Dk = s.chan ? a.Ds[(size_t)k * E + s.d] : 0.0f;
    const float *dk = a.delta + ((size_t)k * a.B + b) * L * E;
    const float *xb = a.x + (size_t)b * L * E;
    float *yk = a.y_part + ((size_t)k * rows + (size_t)b * L) * E;
    float logp[SPL] = {0};   // log2 of the chunk's decay product, per state
    for (int w = 0; w < NWIN; w++) {
        int l0 = t.c * SCAN_CHUNK + w * WIN;
        if (l0 >= L) break;   // same for the whole block
        __syncthreads();
        stage_window(a, k, b, l0, WIN, NP, pos, bcs);
        float dv[WIN], xv[WIN];
        #pragma unroll
        for (int i = 0; i < WIN; i++) {
            int p = pos[i];
            bool ok = p >= 0 && s.chan;
            dv[i] = ok ? dk[(size_t)p * E + s.d] : 0.0f;
            xv[i] = ok ? xb[(size_t)p * E + s.d] : 0.0f;
        }
        #pragma unroll
        for (int i = 0; i < WIN; i++) {
            const float *bi = bcs + i * BCW + s.n0;
            float u = dv[i] * xv[i], y = 0.0f;
            #pragma unroll
            for (int j = 0; j < SPL; j++) {
                h[j] = exp2f(dv[i] * A2[j]) * h[j] + u * bi[j];
                if (!SUMMARY) y += bi[NP + j] * h[j];
            }
            if (SUMMARY) {
                #pragma unroll
                for (int j = 0; j < SPL; j++) logp[j] += dv[i] * A2[j];
            } else {
                y = group_sum<NL>(y);
                int p = pos[i];
                if (s.n0 == 0 && s.chan && p >= 0) yk[(size_t)p * E + s.d] = y + Dk * xv[i];
            }
        }
    }
    if (SUMMARY) store_summary(a, a.states, t, s, h, logp);
}

// Backward's summary of one chunk: the adjoint walked from the chunk's end with g = 0 (only the
// decays and dy*C enter it, not the states) and the chunk's decay product.
template <int NL>
__global__ void __launch_bounds__(SCAN_THREADS) scan_backward_summary_kernel(ScanArgs a) {
    DYN_SMEM(float, smem);
    const int L = a.H * a.W, NP = NL * SPL, BCW = 2 * NP;
    int *pos = (int *)smem;
    float *bcs = smem + WIN;
    const ScanTile t = scan_tile(a);
    const int k = t.k, b = t.b;
    const ScanLane s = scan_lane<NL>(a, t.blk);
    const size_t E = a.E;
    float A2[SPL], g[SPL] = {0};
    load_A2(A2, a, k, s);
    const float *dk = a.delta + ((size_t)k * a.B + b) * L * E;
    const float *dyb = a.dy + (size_t)b * L * E;
    float logp[SPL] = {0};
    for (int w = NWIN - 1; w >= 0; w--) {
        int l0 = t.c * SCAN_CHUNK + w * WIN;
        if (l0 >= L) continue;   // same for the whole block
        __syncthreads();
        stage_window(a, k, b, l0, WIN, NP, pos, bcs);
        float dv[WIN], dyv[WIN];
        #pragma unroll
        for (int i = 0; i < WIN; i++) {
            int p = pos[i];
            bool ok = p >= 0 && s.chan;
            dv[i] = ok ? dk[(size_t)p * E + s.d] : 0.0f;
            dyv[i] = ok ? dyb[(size_t)p * E + s.d] : 0.0f;
        }
        #pragma unroll
        for (int i = WIN - 1; i >= 0; i--) {
            const float *ci = bcs + i * BCW + NP + s.n0;
            #pragma unroll
            for (int j = 0; j < SPL; j++) {
                g[j] = (g[j] + dyv[i] * ci[j]) * exp2f(dv[i] * A2[j]);
                logp[j] += dv[i] * A2[j];
            }
        }
    }
    store_summary(a, a.carry, t, s, g, logp);
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
__global__ void __launch_bounds__(SCAN_THREADS, 2) scan_backward_kernel(ScanArgs a) {
    DYN_SMEM(float, smem);
    const int L = a.H * a.W, NP = NL * SPL, BCW = 2 * NP, N2 = 2 * a.N;
    const ScanTile t = scan_tile(a);
    const int k = t.k, b = t.b, c = t.c, blk = t.blk;
    const ScanLane s = scan_lane<NL>(a, blk);
    const int lane = threadIdx.x % 32, nthreads = blockDim.x, nwarps = nthreads / 32, warp = threadIdx.x / 32;
    const size_t E = a.E, rows = (size_t)a.B * L;
    int *pos = (int *)smem;                                // [BWIN]
    float *bcs = smem + BWIN;                              // [BWIN][2 NP]
    float *hs = bcs + BWIN * BCW;                          // [NBWIN][SPL][nthreads]
    float *red = hs + (size_t)NBWIN * SPL * nthreads;      // [nwarps][BWIN][2N]
    float A2[SPL], A[SPL], g[SPL], h[SPL], dA[SPL];        // g = dL/dh, carried backwards over steps
    #pragma unroll
    for (int j = 0; j < SPL; j++) {
        bool on = s.chan && s.n0 + j < a.N;
        size_t slot = on ? chunk_slot(a, k, b, c, s.d, s.n0 + j) : 0;
        A[j] = on ? -expf(a.A_logs[((size_t)k * E + s.d) * a.N + s.n0 + j]) : 0.0f;
        A2[j] = A[j] * LOG2E_F;   // as load_A2 (the forward's), bit for bit
        g[j] = on ? a.carry[slot] : 0.0f;
        h[j] = on ? a.states_in[slot] : 0.0f;
        dA[j] = 0.0f;
    }
    const float Dk = s.chan ? a.Ds[(size_t)k * E + s.d] : 0.0f;
    const float *dk = a.delta + ((size_t)k * a.B + b) * L * E;
    const float *xb = a.x + (size_t)b * L * E, *dyb = a.dy + (size_t)b * L * E;
    float *ddk = a.ddelta + ((size_t)k * rows + (size_t)b * L) * E;
    float *dxk = a.dx_part + ((size_t)k * rows + (size_t)b * L) * E;
    float dD = 0.0f;
    // The state at the start of each window of this chunk, from the chunk's boundary state.
    for (int w = 0; w < NBWIN; w++) {
        int l0 = c * SCAN_CHUNK + w * BWIN;
        #pragma unroll
        for (int j = 0; j < SPL; j++) hs[(w * SPL + j) * nthreads + threadIdx.x] = h[j];
        if (l0 >= L) break;   // same for the whole block
        __syncthreads();
        stage_window(a, k, b, l0, BWIN, NP, pos, bcs);
        #pragma unroll
        for (int i = 0; i < BWIN; i++) {
            int p = pos[i];
            bool ok = p >= 0 && s.chan;
            float dv = ok ? dk[(size_t)p * E + s.d] : 0.0f, xv = ok ? xb[(size_t)p * E + s.d] : 0.0f;
            const float *bi = bcs + i * BCW + s.n0;
            #pragma unroll
            for (int j = 0; j < SPL; j++) h[j] = exp2f(dv * A2[j]) * h[j] + dv * xv * bi[j];
        }
    }
    // Windows from last to first: the window's states into registers, then the reverse step.
    for (int w = NBWIN - 1; w >= 0; w--) {
        int l0 = c * SCAN_CHUNK + w * BWIN;
        if (l0 >= L) continue;   // same for the whole block
        __syncthreads();         // the previous window's readers of pos, bcs and red are done
        stage_window(a, k, b, l0, BWIN, NP, pos, bcs);
        float hr[BWIN + 1][SPL], dv[BWIN], xv[BWIN];
        #pragma unroll
        for (int j = 0; j < SPL; j++) hr[0][j] = hs[(w * SPL + j) * nthreads + threadIdx.x];
        #pragma unroll
        for (int i = 0; i < BWIN; i++) {
            int p = pos[i];
            bool ok = p >= 0 && s.chan;
            dv[i] = ok ? dk[(size_t)p * E + s.d] : 0.0f;
            xv[i] = ok ? xb[(size_t)p * E + s.d] : 0.0f;
            const float *bi = bcs + i * BCW + s.n0;
            #pragma unroll
            for (int j = 0; j < SPL; j++) hr[i + 1][j] = exp2f(dv[i] * A2[j]) * hr[i][j] + dv[i] * xv[i] * bi[j];
        }
        #pragma unroll
        for (int i = BWIN - 1; i >= 0; i--) {
            int p = pos[i];
            bool ok = p >= 0 && s.chan;
            float dyv = ok ? dyb[(size_t)p * E + s.d] : 0.0f;
            const float *bi = bcs + i * BCW + s.n0, *ci = bi + NP;
            float ddA = 0.0f, gB = 0.0f, sB[SPL], sC[SPL];
            #pragma unroll
            for (int j = 0; j < SPL; j++) {
                float e = exp2f(dv[i] * A2[j]);
                float gg = g[j] + dyv * ci[j];       // dL/dh_l including y_l's use of it
                float ghe = gg * e * hr[i][j];
                ddA += ghe * A[j];                   // d(delta_l) through the decay
                gB += gg * bi[j];                    // sum_n dL/dh_n B_n: d(delta) and dx through the input
                dA[j] += ghe * dv[i];
                sB[j] = gg * dv[i] * xv[i];
                sC[j] = dyv * hr[i + 1][j];
                g[j] = gg * e;
            }
            float ddl = group_sum<NL>(ddA + gB * xv[i]);
            float dxl = group_sum<NL>(gB * dv[i]);
            #pragma unroll
            for (int o = NL; o < 32; o <<= 1) {      // dB, dC: over the warp's channels
                #pragma unroll
                for (int j = 0; j < SPL; j++) {
                    sB[j] += __shfl_xor_sync(FULL_MASK, sB[j], o);
                    sC[j] += __shfl_xor_sync(FULL_MASK, sC[j], o);
                }
            }
            if (s.n0 == 0 && ok) {
                // softplus'(z) = sigmoid(z) = 1 - exp(-softplus(z)) = -expm1(-softplus(z)): no
                // need to keep z (1 - expf(-s) cancelled for small s: 0 below z = -17).
                ddk[(size_t)p * E + s.d] = ddl * -expm1f(-dv[i]);
                dxk[(size_t)p * E + s.d] = dxl + dyv * Dk;
                dD += dyv * xv[i];
            }
            if (lane < NL) {   // lane == the group's lane index: the warp's sums of its states
                #pragma unroll
                for (int j = 0; j < SPL; j++) {
                    if (s.n0 + j >= a.N) continue;
                    red[((size_t)warp * BWIN + i) * N2 + s.n0 + j] = sB[j];
                    red[((size_t)warp * BWIN + i) * N2 + a.N + s.n0 + j] = sC[j];
                }
            }
        }
        __syncthreads();
        // This block's dB/dC for each step of the window: the warps' sums in warp order.
        for (int t2 = threadIdx.x; t2 < BWIN * N2; t2 += nthreads) {
            int i = t2 / N2, j = t2 % N2;
            if (pos[i] < 0) continue;
            float sum = 0.0f;
            for (int q = 0; q < nwarps; q++) sum += red[((size_t)q * BWIN + i) * N2 + j];
            size_t row = (size_t)b * L + pos[i];
            a.dbc[(((size_t)blk * rows + row) * SCAN_K + k) * N2 + j] = sum;
        }
    }
    // Per-(image, chunk) partials: dA_logs through A = -exp(A_logs), and dD.
    float *pa = a.dAD + ((((size_t)b * a.nc + c) * SCAN_K + k) * E + s.d) * (a.N + 1);
    #pragma unroll
    for (int j = 0; j < SPL; j++)
        if (s.chan && s.n0 + j < a.N) pa[s.n0 + j] = dA[j] * A[j];
    if (s.chan && s.n0 == 0) pa[a.N] = dD;
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
    ScanKernel kern = s.NL == 1 ? scan_kernel<1>(pass) : s.NL == 2 ? scan_kernel<2>(pass)
                    : s.NL == 4 ? scan_kernel<4>(pass) : scan_kernel<8>(pass);
    unsigned grid = (unsigned)((size_t)a.B * SCAN_K * a.nc * s.nblk);
    LAUNCH(kern, grid, s.threads, pass == BWD_STEP ? s.smem_bwd : s.smem_fwd, stream, a);
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
