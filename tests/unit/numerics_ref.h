// Float64 references for the numerics tests (test_numerics*.c): SS2D's four-way selective scan,
// forward and backward, transcribed from docs/math.md section 2.2 with no shortcut (every state kept,
// softplus' derivative from the pre-activation, exp and log from libm in double).
#pragma once
#include "kernels/cpu/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline int nref_scan_pos(int k, int l, int H, int W) {
    int L = H * W;
    if (k >= 2) l = L - 1 - l;
    if (k & 1) return (l % H) * W + l / H;
    return l;
}

static inline double nref_softplus(double z) { return z > 20.0 ? z : log1p(exp(z)); }
static inline double nref_sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)); }

// The SS2D scan in double: x [B,L,E], x_proj_w [K,P,E], dt_w [K,E,R], dt_b [K,E], A_logs [K*E,N],
// Ds [K*E] -> y [B,L,E]. With dy given, also the gradients (written, not added) of every input.
typedef struct {
    int B, H, W, E, R, N;
    const float *x, *xpw, *dtw, *dtb, *Al, *Ds, *dy;
    double *y, *gx, *gxpw, *gdtw, *gdtb, *gAl, *gDs;   // outputs (gradients only with dy)
} nref_scan;

static void nref_scan_run(nref_scan *s) {
    int B = s->B, H = s->H, W = s->W, E = s->E, R = s->R, N = s->N, L = H * W, K = SCAN_K, P = R + 2 * N;
    size_t nx = (size_t)B * L * E;
    double *xdbl = calloc((size_t)B * L * K * P, sizeof(double));    // [B,L,K,P]
    double *z = calloc((size_t)K * nx, sizeof(double));              // pre-softplus [K,B,L,E]
    double *hs = calloc((size_t)(L + 1) * N, sizeof(double));        // one sequence's states
    double *gxdbl = s->dy ? calloc((size_t)B * L * K * P, sizeof(double)) : NULL;
    double *gz = s->dy ? calloc((size_t)K * nx, sizeof(double)) : NULL;
    for (size_t i = 0; i < (size_t)B * L; i++)
        for (int kp = 0; kp < K * P; kp++) {
            double a = 0;
            for (int e = 0; e < E; e++) a += (double)s->x[i * E + e] * s->xpw[(size_t)kp * E + e];
            xdbl[i * K * P + kp] = a;
        }
    for (int k = 0; k < K; k++)
        for (size_t i = 0; i < (size_t)B * L; i++)
            for (int e = 0; e < E; e++) {
                double a = s->dtb[(size_t)k * E + e];
                for (int r = 0; r < R; r++) a += xdbl[(i * K + k) * P + r] * s->dtw[((size_t)k * E + e) * R + r];
                z[(size_t)k * nx + i * E + e] = a;
            }
    memset(s->y, 0, sizeof(double) * nx);
    if (s->dy) {
        memset(s->gx, 0, sizeof(double) * nx);
        memset(s->gDs, 0, sizeof(double) * K * E);
        memset(s->gAl, 0, sizeof(double) * K * E * N);
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            for (int e = 0; e < E; e++) {
                const float *Alr = s->Al + ((size_t)k * E + e) * N;
                double D = s->Ds[(size_t)k * E + e];
                for (int n = 0; n < N; n++) hs[n] = 0;
                for (int l = 0; l < L; l++) {
                    int p = nref_scan_pos(k, l, H, W);
                    size_t row = (size_t)b * L + p;
                    double dl = nref_softplus(z[(size_t)k * nx + row * E + e]), u = s->x[row * E + e];
                    const double *Bm = xdbl + (row * K + k) * P + R, *Cm = Bm + N;
                    double yl = D * u;
                    for (int n = 0; n < N; n++) {
                        double A = -exp((double)Alr[n]);
                        hs[(size_t)(l + 1) * N + n] = exp(dl * A) * hs[(size_t)l * N + n] + dl * Bm[n] * u;
                        yl += Cm[n] * hs[(size_t)(l + 1) * N + n];
                    }
                    s->y[row * E + e] += yl;
                }
                if (!s->dy) continue;
                double *g = calloc(N, sizeof(double));
                for (int l = L - 1; l >= 0; l--) {
                    int p = nref_scan_pos(k, l, H, W);
                    size_t row = (size_t)b * L + p;
                    double zz = z[(size_t)k * nx + row * E + e];
                    double dl = nref_softplus(zz), u = s->x[row * E + e], gy = s->dy[row * E + e];
                    double *gBm = gxdbl + (row * K + k) * P + R, *gCm = gBm + N;
                    const double *Bm = xdbl + (row * K + k) * P + R, *Cm = Bm + N;
                    double gdl = 0, gu = gy * D;
                    s->gDs[(size_t)k * E + e] += gy * u;
                    for (int n = 0; n < N; n++) {
                        double A = -exp((double)Alr[n]), dec = exp(dl * A);
                        double gg = g[n] + gy * Cm[n];
                        double hp = hs[(size_t)l * N + n];
                        gCm[n] += gy * hs[(size_t)(l + 1) * N + n];
                        gBm[n] += gg * dl * u;
                        gdl += gg * (A * dec * hp + Bm[n] * u);
                        gu += gg * dl * Bm[n];
                        s->gAl[((size_t)k * E + e) * N + n] += gg * dl * dec * hp * A;   // dA/dA_logs = A
                        g[n] = gg * dec;
                    }
                    s->gx[row * E + e] += gu;
                    gz[(size_t)k * nx + row * E + e] = gdl * (zz > 20.0 ? 1.0 : nref_sigmoid(zz));
                }
                free(g);
            }
    if (s->dy) {
        memset(s->gdtw, 0, sizeof(double) * K * E * R);
        memset(s->gdtb, 0, sizeof(double) * K * E);
        for (int k = 0; k < K; k++)
            for (size_t i = 0; i < (size_t)B * L; i++)
                for (int e = 0; e < E; e++) {
                    double gzv = gz[(size_t)k * nx + i * E + e];
                    s->gdtb[(size_t)k * E + e] += gzv;
                    for (int r = 0; r < R; r++) {
                        s->gdtw[((size_t)k * E + e) * R + r] += gzv * xdbl[(i * K + k) * P + r];
                        gxdbl[(i * K + k) * P + r] += gzv * s->dtw[((size_t)k * E + e) * R + r];
                    }
                }
        memset(s->gxpw, 0, sizeof(double) * K * P * E);
        for (size_t i = 0; i < (size_t)B * L; i++)
            for (int kp = 0; kp < K * P; kp++) {
                double gv = gxdbl[i * K * P + kp];
                for (int e = 0; e < E; e++) {
                    s->gx[i * E + e] += gv * s->xpw[(size_t)kp * E + e];
                    s->gxpw[(size_t)kp * E + e] += gv * s->x[i * E + e];
                }
            }
    }
    free(xdbl); free(z); free(hs); free(gxdbl); free(gz);
}

// Largest |a - ref| over n, divided by the largest |ref| (the tensor-scale error the reference
// tests use); *nonfinite counts entries of a that are not finite where ref is.
static inline double nref_err(const float *a, const double *ref, size_t n, int *nonfinite) {
    double mx = 0, scale = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) && isfinite(ref[i])) bad++;
        double d = fabs((double)a[i] - ref[i]);
        if (d > mx) mx = d;
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
    }
    if (nonfinite) *nonfinite = bad;
    return scale > 0 ? mx / scale : mx;
}
