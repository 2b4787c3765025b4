// LayerNorm over the channel dimension of each row (mean and 1/std saved for backward).
//
// Every row sum is accumulated in double: the forward's mean and variance, backward's sums of
// g w and g w (x - m), and the weight and bias gradients over the rows. Float chains lost
// precision where it mattered: a row that patch merging padded with zeros (an odd map side)
// adds the same term hundreds of times, each add rounding the same way, and the mean and
// variance of such rows of 768 channels came out 1e-5 off (60-100 ulp; torch's cascaded float
// sums: 1 ulp), enough for the float32 model to leave the float64 one on the other side of a
// ReLU. In double the sums are at float's last bit.
//
// The sums go 16 rows at a time, one row per vector lane: 16x16 blocks (16 rows, 16 channels)
// are transposed in registers, so that each lane adds its row's channels in channel order, as
// the scalar row (ln_row, for rows left over and rows under 16 channels) does: the two give
// the same bits, whatever the thread count and wherever a row falls. For that the file is built
// with -ffp-contract=off (CMakeLists.txt): a product and the add after it round apart in both
// paths, never fused in one and not the other. The elementwise parts go along each row, 16
// channels per vector, with explicit fma.
// docs/performance.md has the measurements.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"
#include <math.h>
#include <omp.h>

typedef double v16d __attribute__((vector_size(128)));
static inline v16d v16_to_double(v16f v) { return __builtin_convertvector(v, v16d); }
static inline v16d v16d_splat(double x) { return v16_to_double(v16_splat(0.0f)) + x; }

// The scalar row: the definition of the kernel's results.
static void ln_row(float *o, float *mean, float *rstd, const float *x, const float *w,
                   const float *b, int C, float eps) {
    // The mean as x[0] + mean(x - x[0]): the sum carries the row's spread, not its offset (a
    // constant row has exactly its value as mean and normalises to the bias).
    // The variance goes about that mean in double, not about its float rounding (a row of
    // 12345.7 + 1e-3 noise has a spread below its mean's ulp).
    double x0 = x[0], s = 0.0, v = 0.0;
    for (int c = 0; c < C; c++) s += (double)x[c] - x0;
    double md = x0 + s / C;
    for (int c = 0; c < C; c++) { double d = x[c] - md; v += d * d; }
    float m = (float)md, r = (float)(1.0 / sqrt(v / C + eps));
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

// Rows n0 .. n0 + 15, C >= 16: ln_row's arithmetic, one row per lane. Each pass walks the
// channels in 16-channel blocks; the last, partial block is read as the 16 channels ending at C,
// of which only the new ones are used (no masked loads, and every read is inside the row).
static void ln_rows16(float *out, float *mean, float *rstd, const float *in, const float *w,
                      const float *b, int C, float eps) {
    v16f blk[16];
    int cfull = C & ~15, ctail = C - cfull;
    ln_load16x16(blk, in, C, 0);
    v16d x0 = v16_to_double(blk[0]), s = v16d_splat(0.0), v = s;
    for (int c0 = 0; c0 < cfull; c0 += 16) {
        if (c0) ln_load16x16(blk, in, C, c0);
        for (int k = 0; k < 16; k++) s += v16_to_double(blk[k]) - x0;
    }
    if (ctail) {
        ln_load16x16(blk, in, C, C - 16);
        for (int k = 16 - ctail; k < 16; k++) s += v16_to_double(blk[k]) - x0;
    }
    v16d md = x0 + s / (double)C;
    v16f m = __builtin_convertvector(md, v16f);
    for (int c0 = 0; c0 < C; c0 += 16) {
        int base = c0 < cfull ? c0 : C - 16;   // the block as loaded
        ln_load16x16(blk, in, C, base);
        for (int k = c0 - base; k < 16; k++) {
            v16d d = v16_to_double(blk[k]) - md;
            v += d * d;
        }
    }
    for (int t = 0; t < 16; t++) {
        const float *x = in + (size_t)t * C;
        float *o = out + (size_t)t * C;
        float mt = m[t], rt = (float)(1.0 / sqrt(v[t] / C + eps));
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

// The input gradient of one row, scalar (fewer than 16 rows or channels left): the row sums
// sg = mean(g w) and sgx = r mean(g w (x - m)) in double (g w rounded to float first: it has two
// uses), then din += r (g w - sg - (x - m) r sgx) with explicit fma.
static void ln_row_backward(float *d, const float *g, const float *x, const float *w, float m,
                            float r, int C) {
    double sgd = 0.0, sgxd = 0.0;
    for (int c = 0; c < C; c++) {
        float gw = g[c] * w[c];
        sgd += gw;
        sgxd += (double)gw * (x[c] - m);
    }
    float sg = (float)(sgd / C), sgx = (float)(sgxd * r / C);
    for (int c = 0; c < C; c++)
        d[c] = mv_fma(r, mv_fnma((x[c] - m) * r, sgx, mv_fms(g[c], w[c], sg)), d[c]);
}

// The input gradient of rows n0 .. n0 + 15 (C >= 16): ln_row_backward's sums with one row per
// lane, over transposed blocks of x and dout as in the forward, then the elementwise part along
// each row.
static void ln_rows16_backward(float *din, const float *g, const float *x, const float *w,
                               const float *mean, const float *rstd, int C) {
    v16f xb[16], gb[16], m, r;
    memcpy(&m, mean, sizeof m);
    memcpy(&r, rstd, sizeof r);
    v16d sgd = v16d_splat(0.0), sgxd = sgd;
    int cfull = C & ~15;
    for (int c0 = 0; c0 < C; c0 += 16) {
        int base = c0 < cfull ? c0 : C - 16;   // the last, partial block: the 16 channels ending at C
        ln_load16x16(xb, x, C, base);
        ln_load16x16(gb, g, C, base);
        for (int k = c0 - base; k < 16; k++) {
            v16f gw = gb[k] * w[base + k];
            sgd += v16_to_double(gw);
            sgxd += v16_to_double(gw) * v16_to_double(xb[k] - m);
        }
    }
    v16f sg = __builtin_convertvector(sgd / (double)C, v16f);
    v16f sgx = __builtin_convertvector(sgxd * v16_to_double(r) / (double)C, v16f);
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
// block's column in row 0; row stride C), summed over the rows in row order, in double:
// dw += sum_n (g (x - m)) r, db += sum_n g (g (x - m) exact in double, times r rounded once).
enum { LN_DW_BLOCKS = 4 };
static void ln_dwdb_blocks(float *dw, float *db, const float *g, const float *x, const float *mean,
                           const float *rstd, int N, int C, int nb) {
    v16d aw[LN_DW_BLOCKS], ab[LN_DW_BLOCKS];
    for (int j = 0; j < LN_DW_BLOCKS; j++) aw[j] = ab[j] = v16d_splat(0.0);
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C, *gn = g + (size_t)n * C;
        v16f m = v16_splat(mean[n]);
        double r = rstd[n];
        for (int j = 0; j < LN_DW_BLOCKS; j++) {
            if (j >= nb) break;
            v16f xj, gj;
            memcpy(&xj, xn + 16 * j, sizeof xj);
            memcpy(&gj, gn + 16 * j, sizeof gj);
            v16d gd = v16_to_double(gj);
            aw[j] += gd * v16_to_double(xj - m) * r;
            ab[j] += gd;
        }
    }
    for (int j = 0; j < nb; j++)
        for (int k = 0; k < 16; k++) { dw[16 * j + k] += (float)aw[j][k]; db[16 * j + k] += (float)ab[j][k]; }
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
    // The tail (channels after the last whole block) is a task of its own only when there is
    // one: an empty extra task would tip the static split (C = 64 on two threads: tasks 0 and 1
    // on one thread, the empty tail on the other).
    int ntask = (nblk + per - 1) / per, tail = nblk * 16 < C;
    #pragma omp parallel for schedule(static)
    for (int task = 0; task < ntask + tail; task++) {
        if (task < ntask) {
            int b0 = task * per, nb = nblk - b0 < per ? nblk - b0 : per;
            ln_dwdb_blocks(dw + 16 * b0, db + 16 * b0, dout + 16 * b0, in + 16 * b0, mean, rstd, N, C, nb);
        } else {
            for (int c = nblk * 16; c < C; c++) {   // channels after the last whole block
                double aw = 0.0, ab = 0.0;
                for (int n = 0; n < N; n++) {
                    double g = dout[(size_t)n * C + c];
                    aw += g * (in[(size_t)n * C + c] - mean[n]) * (double)rstd[n];
                    ab += g;
                }
                dw[c] += (float)aw;
                db[c] += (float)ab;
            }
        }
    }
    PROF_STOP(PROF_LAYERNORM, 1, 14.0 * N * C);
}
