// LayerNorm over the channel dimension of each row (mean and 1/std saved for backward).
//
// Its row sums (forward: the mean's and the variance's; backward: those of g w and g w (x - m) r)
// go 16 rows at a time, one row per vector lane: 16x16 blocks (16 rows, 16 channels) are
// transposed in registers, so that each lane adds its row's channels in channel order, as the
// per-row scalar code did. The results are that code's, bit for bit, whatever the thread count:
// the sums are sequential chains either way, and lanes are the only parallelism that keeps them
// (in the scalar loop GCC vectorised the subtractions and squares, then added the 16 lanes one
// by one). The elementwise parts go along each row, 16 channels per vector. Rows left over
// (fewer than 16) and rows of fewer than 16 channels take the scalar row (ln_row,
// ln_row_backward). docs/performance.md has the measurements.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"
#include <math.h>
#include <omp.h>

// Which squares of the variance sum are rounded before they are added and which are fused into
// the add. The scalar loop this kernel replaced was compiled (GCC 12, -O3 -march=native,
// -ffp-contract=fast) as a vector loop (16 lanes, then 8) that squares, rounds, then adds the
// lanes in order, and a scalar remainder that fuses v + d * d: the first (C & ~7) channels
// rounded, the last C % 8 fused. With AVX2 only (-march=x86-64-v3) the vector loop goes 8 then
// 4 lanes, so C % 4 are fused. Without FMA nothing is. Backward's sum of g w (x - m) r was
// compiled the same way.
#if defined(__AVX512F__)
#define LN_ROUNDED_CHANNELS(C) ((C) & ~7)
#else
#define LN_ROUNDED_CHANNELS(C) ((C) & ~3)
#endif

// The per-row scalar code: the definition of the kernel's results.
static void ln_row(float *o, float *mean, float *rstd, const float *x, const float *w,
                   const float *b, int C, float eps) {
    // The mean as x[0] + mean(x - x[0]): the sum then carries the row's spread, not its
    // offset, so a constant row has exactly its value as mean and normalises to the bias
    // (a plain float sum rounded: a constant row of 1e10, or of 12345.7 over 768 channels,
    // came out as normalised rounding noise of magnitude 1; torch gives 1e5 and 0.05).
    float x0 = x[0], s = 0.0f;
    for (int c = 0; c < C; c++) s += x[c] - x0;
    float m = x0 + s / C, v = 0.0f;
    int cr = LN_ROUNDED_CHANNELS(C);
    for (int c = 0; c < cr; c++) { float d = x[c] - m; v += mv_rounded(d * d); }
    for (int c = cr; c < C; c++) { float d = x[c] - m; v = mv_fma(d, d, v); }
    float r = 1.0f / sqrtf(v / C + eps);
    // Rows of magnitude ~2e19 and up overflow the float sum of squares (or the sum itself):
    // the variance was inf and every output the bias (torch: 0, or NaN from 1e20). LayerNorm
    // is scale-invariant, so such a row has a well-defined output: redo it in double. (Plain C,
    // as before: whether GCC fuses d * d here depends on its tuning, not only on the ISA.)
    if (isinf(s) || isinf(v)) {
        double sd = 0.0, vd = 0.0;
        for (int c = 0; c < C; c++) sd += x[c];
        double md = sd / C;
        for (int c = 0; c < C; c++) { double d = x[c] - md; vd += d * d; }
        m = (float)md;
        r = (float)(1.0 / sqrt(vd / C + eps));
    }
    for (int c = 0; c < C; c++) o[c] = mv_fma((x[c] - m) * r, w[c], b[c]);
    *mean = m;
    *rstd = r;
}

// Channels c0 .. c0 + 15 of 16 rows (row stride C), transposed: lane t of v[k] is row t's
// channel c0 + k.
static inline void ln_load16x16(v16f v[16], const float *x, int C, int c0) {
    for (int t = 0; t < 16; t++) memcpy(&v[t], x + (size_t)t * C + c0, sizeof v[t]);
    v16_transpose16(v);
}

// Rows n0 .. n0 + 15, C >= 16. Each pass walks the channels in 16-channel blocks; the last,
// partial block is read as the 16 channels ending at C, of which only the new ones are used
// (no masked loads, and every read is inside the row).
static void ln_rows16(float *out, float *mean, float *rstd, const float *in, const float *w,
                      const float *b, int C, float eps) {
    v16f blk[16];
    int cfull = C & ~15, ctail = C - cfull;
    ln_load16x16(blk, in, C, 0);
    v16f x0 = blk[0], s = v16_splat(0.0f);
    for (int c0 = 0; c0 < cfull; c0 += 16) {
        if (c0) ln_load16x16(blk, in, C, c0);
        for (int k = 0; k < 16; k++) s += blk[k] - x0;
    }
    if (ctail) {
        ln_load16x16(blk, in, C, C - 16);
        for (int k = 16 - ctail; k < 16; k++) s += blk[k] - x0;
    }
    v16f m = x0 + s / (float)C, v = v16_splat(0.0f);
    int cr = LN_ROUNDED_CHANNELS(C);
    for (int c0 = 0; c0 < C; c0 += 16) {
        int base = c0 < cfull ? c0 : C - 16;   // the block as loaded
        ln_load16x16(blk, in, C, base);
        for (int k = c0 - base; k < 16; k++) {
            v16f d = blk[k] - m;
            v = base + k < cr ? v + v16_rounded(d * d) : v16_fma(d, d, v);
        }
    }
    for (int t = 0; t < 16; t++) {
        const float *x = in + (size_t)t * C;
        float *o = out + (size_t)t * C;
        if (isinf(s[t]) || isinf(v[t])) {   // overflowed: the scalar row's double fallback
            ln_row(o, mean + t, rstd + t, x, w, b, C, eps);
            continue;
        }
        float mt = m[t], rt = 1.0f / sqrtf(v[t] / C + eps);
        mean[t] = mt;
        rstd[t] = rt;
        // The output is elementwise: along the row, 16 channels per vector.
        v16f mv = v16_splat(mt), rv = v16_splat(rt);
        int c = 0;
        for (; c + 16 <= C; c += 16) {
            v16f xc, wc, bc;
            memcpy(&xc, x + c, sizeof xc);
            memcpy(&wc, w + c, sizeof wc);
            memcpy(&bc, b + c, sizeof bc);
            v16f oc = v16_fma((xc - mv) * rv, wc, bc);
            memcpy(o + c, &oc, sizeof oc);
        }
        for (; c < C; c++) o[c] = mv_fma((x[c] - mt) * rt, w[c], b[c]);
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                       const float *b, int N, int C, float eps) {
    PROF_START();
    int nvec = C >= 16 ? N / 16 : 0;   // blocks of 16 rows
    #pragma omp parallel
    {
        #pragma omp for schedule(static) nowait
        for (int i = 0; i < nvec; i++) {
            size_t n0 = (size_t)i * 16;
            ln_rows16(out + n0 * C, mean + n0, rstd + n0, in + n0 * C, w, b, C, eps);
        }
        #pragma omp for schedule(static)
        for (int n = nvec * 16; n < N; n++)
            ln_row(out + (size_t)n * C, mean + n, rstd + n, in + (size_t)n * C, w, b, C, eps);
    }
    PROF_STOP(PROF_LAYERNORM, 0, 8.0 * N * C);
}

// The input gradient of one row, scalar (fewer than 16 rows or channels left): the two row sums
// with the same rounding as the forward's variance (the first LN_ROUNDED_CHANNELS products
// rounded, the rest fused into the sum), then the elementwise part as GCC fused it in the code
// this replaced: g w - sg and the subtraction of (x - m) r sgx each one rounding.
static void ln_row_backward(float *d, const float *g, const float *x, const float *w, float m,
                            float r, int C) {
    float sg = 0.0f, sgx = 0.0f;
    int cr = LN_ROUNDED_CHANNELS(C);
    for (int c = 0; c < C; c++) {
        float gw = mv_rounded(g[c] * w[c]);   // rounded, as it was: it has two uses
        sg += gw;
        float t = gw * (x[c] - m);
        sgx = c < cr ? sgx + mv_rounded(t * r) : mv_fma(t, r, sgx);
    }
    sg /= C;
    sgx /= C;
    for (int c = 0; c < C; c++)
        d[c] = mv_fma(r, mv_fnma((x[c] - m) * r, sgx, mv_fms(g[c], w[c], sg)), d[c]);
}

// The input gradient of rows n0 .. n0 + 15 (C >= 16): the row sums with one row per lane, over
// transposed blocks of x and dout as in the forward, then the elementwise part along each row.
static void ln_rows16_backward(float *din, const float *g, const float *x, const float *w,
                               const float *mean, const float *rstd, int C) {
    v16f xb[16], gb[16], m, r;
    memcpy(&m, mean, sizeof m);
    memcpy(&r, rstd, sizeof r);
    v16f sg = v16_splat(0.0f), sgx = v16_splat(0.0f);
    int cfull = C & ~15, cr = LN_ROUNDED_CHANNELS(C);
    for (int c0 = 0; c0 < C; c0 += 16) {
        int base = c0 < cfull ? c0 : C - 16;   // the last, partial block: the 16 channels ending at C
        ln_load16x16(xb, x, C, base);
        ln_load16x16(gb, g, C, base);
        for (int k = c0 - base; k < 16; k++) {
            v16f gw = v16_rounded(gb[k] * w[base + k]);
            sg += gw;
            v16f t = gw * (xb[k] - m);
            sgx = base + k < cr ? sgx + v16_rounded(t * r) : v16_fma(t, r, sgx);
        }
    }
    sg /= (float)C;
    sgx /= (float)C;
    for (int t = 0; t < 16; t++) {
        const float *xr = x + (size_t)t * C, *gr = g + (size_t)t * C;
        float *d = din + (size_t)t * C;
        float mt = m[t], rt = r[t], sgt = sg[t], sgxt = sgx[t];
        v16f mv = v16_splat(mt), rv = v16_splat(rt), sgv = v16_splat(sgt), sgxv = v16_splat(sgxt);
        int c = 0;
        for (; c + 16 <= C; c += 16) {
            v16f xc, gc, wc, dc;
            memcpy(&xc, xr + c, sizeof xc);
            memcpy(&gc, gr + c, sizeof gc);
            memcpy(&wc, w + c, sizeof wc);
            memcpy(&dc, d + c, sizeof dc);
            dc = v16_fma(rv, v16_fnma((xc - mv) * rv, sgxv, v16_fms(gc, wc, sgv)), dc);
            memcpy(d + c, &dc, sizeof dc);
        }
        for (; c < C; c++)
            d[c] = mv_fma(rt, mv_fnma((xr[c] - mt) * rt, sgxt, mv_fms(gr[c], w[c], sgt)), d[c]);
    }
}

// The weight and bias gradients of nb <= LN_DW_BLOCKS 16-channel blocks (g, x: the first
// block's column in row 0; row stride C), summed over the rows in row order, with the fused
// multiply-add of the code this replaced.
enum { LN_DW_BLOCKS = 4 };
static void ln_dwdb_blocks(float *dw, float *db, const float *g, const float *x, const float *mean,
                           const float *rstd, int N, int C, int nb) {
    v16f aw[LN_DW_BLOCKS], ab[LN_DW_BLOCKS];
    for (int j = 0; j < LN_DW_BLOCKS; j++) aw[j] = ab[j] = v16_splat(0.0f);
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C, *gn = g + (size_t)n * C;
        v16f m = v16_splat(mean[n]), r = v16_splat(rstd[n]);
        for (int j = 0; j < LN_DW_BLOCKS; j++) {
            if (j >= nb) break;
            v16f xj, gj;
            memcpy(&xj, xn + 16 * j, sizeof xj);
            memcpy(&gj, gn + 16 * j, sizeof gj);
            aw[j] = v16_fma(gj * (xj - m), r, aw[j]);
            ab[j] += gj;
        }
    }
    for (int j = 0; j < nb; j++)
        for (int k = 0; k < 16; k++) { dw[16 * j + k] += aw[j][k]; db[16 * j + k] += ab[j][k]; }
}

void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    PROF_START();
    if (din) {
        int nvec = C >= 16 ? N / 16 : 0;
        #pragma omp parallel
        {
            #pragma omp for schedule(static) nowait
            for (int i = 0; i < nvec; i++) {
                size_t n0 = (size_t)i * 16;
                ln_rows16_backward(din + n0 * C, dout + n0 * C, in + n0 * C, w, mean + n0, rstd + n0, C);
            }
            #pragma omp for schedule(static)
            for (int n = nvec * 16; n < N; n++)
                ln_row_backward(din + (size_t)n * C, dout + (size_t)n * C, in + (size_t)n * C, w,
                                mean[n], rstd[n], C);
        }
    }
    // The weight and bias gradients: per channel, a sum over the rows in row order (any split
    // of the channels between threads gives the same bits). A task takes up to LN_DW_BLOCKS
    // 16-channel blocks and reads them as one run per row (one block per task read 64 bytes of
    // each row per walk over the rows, with a walk per block).
    int nblk = C / 16, per = (nblk + omp_get_max_threads() - 1) / omp_get_max_threads();
    per = per < 1 ? 1 : (per > LN_DW_BLOCKS ? LN_DW_BLOCKS : per);
    int ntask = (nblk + per - 1) / per;
    #pragma omp parallel for schedule(static)
    for (int task = 0; task <= ntask; task++) {
        if (task < ntask) {
            int b0 = task * per, nb = nblk - b0 < per ? nblk - b0 : per;
            ln_dwdb_blocks(dw + 16 * b0, db + 16 * b0, dout + 16 * b0, in + 16 * b0, mean, rstd, N, C, nb);
        } else {
            for (int c = nblk * 16; c < C; c++) {   // channels after the last whole block
                float aw = 0.0f, ab = 0.0f;
                for (int n = 0; n < N; n++) {
                    float g = dout[(size_t)n * C + c];
                    aw = mv_fma(g * (in[(size_t)n * C + c] - mean[n]), rstd[n], aw);
                    ab += g;
                }
                dw[c] += aw;
                db[c] += ab;
            }
        }
    }
    PROF_STOP(PROF_LAYERNORM, 1, 14.0 * N * C);
}
