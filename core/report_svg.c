// Inline SVG charts for the HTML report: line charts (training curves, mIoU against a swept
// key) and grouped bar charts (mIoU per domain). Plain SVG 1.1 text, no scripts, no fonts
// beyond the generic sans-serif family, so the page stays self-contained.
#include "core/report.h"
#include <math.h>
#include <stdbool.h>
#include <string.h>

static const char *PALETTE[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define NPALETTE 10

void mv_html_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `want` ticks over span.
static double nice_step(double span, int want) {
    if (!(span > 0)) return 1;
    double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

// As many decimals as the step needs, so that neighbouring ticks never read the same
// (a step of 0.005 gives 0.495, 0.500, 0.505).
static void fmt_tick(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    if (step >= 1 && fabs(v) < 1e6) { snprintf(buf, cap, "%.0f", v); return; }
    if (!(step > 1e-9)) { snprintf(buf, cap, "%.3g", v); return; }
    int decimals = (int)ceil(-log10(step) - 1e-9);
    if (decimals < 1) decimals = 1;
    if (decimals > 9) { snprintf(buf, cap, "%.3g", v); return; }
    snprintf(buf, cap, "%.*f", decimals, v);
}

static void svg_open(FILE *f, const char *title, int width, int height) {
    fprintf(f, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"11\" role=\"img\">\n", width, height, width, height);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", width, height);
    fputs("<text x=\"8\" y=\"16\" font-size=\"13\" font-weight=\"bold\">", f);
    mv_html_escape(f, title);
    fputs("</text>\n", f);
}

typedef struct { double x0, x1, y0, y1; int left, top, right, bottom; } frame;

static double px(const frame *fr, double x) { return fr->left + (x - fr->x0) / (fr->x1 - fr->x0) * (fr->right - fr->left); }
static double py(const frame *fr, double y) { return fr->bottom - (y - fr->y0) / (fr->y1 - fr->y0) * (fr->bottom - fr->top); }

// xint: the x values are whole numbers (iterations), so no tick falls between two of them.
static void axes(FILE *f, const frame *fr, const char *xlabel, const char *ylabel, bool xticks, bool xint) {
    double ys = nice_step(fr->y1 - fr->y0, 5);
    char buf[32];
    for (double t = ceil(fr->y0 / ys) * ys; t <= fr->y1 + ys * 1e-9; t += ys) {
        double y = py(fr, t);
        fmt_tick(buf, sizeof buf, t, ys);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#444\">%s</text>\n",
                fr->left, y, fr->right, y, fr->left - 4, y + 4, buf);
    }
    if (xticks) {
        double xs = nice_step(fr->x1 - fr->x0, 6);
        if (xint && xs < 1) xs = 1;
        for (double t = ceil(fr->x0 / xs) * xs; t <= fr->x1 + xs * 1e-9; t += xs) {
            double x = px(fr, t);
            fmt_tick(buf, sizeof buf, t, xs);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#888\"/>"
                       "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#444\">%s</text>\n",
                    x, fr->bottom, x, fr->bottom + 4, x, fr->bottom + 16, buf);
        }
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>"
               "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n",
            fr->left, fr->top, fr->left, fr->bottom, fr->left, fr->bottom, fr->right, fr->bottom);
    if (xlabel) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#222\">", (fr->left + fr->right) / 2, fr->bottom + 30);
        mv_html_escape(f, xlabel);
        fputs("</text>\n", f);
    }
    if (ylabel) {
        fprintf(f, "<text transform=\"translate(12,%d) rotate(-90)\" text-anchor=\"middle\" fill=\"#222\">", (fr->top + fr->bottom) / 2);
        mv_html_escape(f, ylabel);
        fputs("</text>\n", f);
    }
}

static void legend(FILE *f, const char *const *labels, int n, int x, int y) {
    for (int i = 0; i < n; i++) {
        int yy = y + 14 * i;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">",
                x, yy, PALETTE[i % NPALETTE], x + 14, yy + 9);
        mv_html_escape(f, labels[i]);
        fputs("</text>\n", f);
    }
}

static void widen(double *lo, double *hi) {
    if (!isfinite(*lo) || !isfinite(*hi)) { *lo = 0; *hi = 1; return; }
    if (*hi - *lo < 1e-12) { double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1; *lo -= d; *hi += d; }
}

void mv_svg_lines(FILE *f, const char *title, const char *xlabel, const char *ylabel,
                  const mv_svg_series *series, int nseries, int width, int height) {
    svg_open(f, title, width, height);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x); x1 = fmax(x1, x); y0 = fmin(y0, y); y1 = fmax(y1, y);
        }
    if (!isfinite(x0)) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#888\">no data yet</text>\n</svg>\n", width / 2, height / 2);
        return;
    }
    widen(&x0, &x1);
    widen(&y0, &y1);
    double pad = (y1 - y0) * 0.05;
    int legend_w = 130;
    frame fr = {x0, x1, y0 - pad, y1 + pad, 52, 26, width - legend_w, height - 40};
    bool xint = true;
    for (int k = 0; k < nseries; k++)
        for (int i = 0; i < series[k].n; i++) xint &= series[k].x[i] == floor(series[k].x[i]);
    axes(f, &fr, xlabel, ylabel, true, xint);
    const char *labels[64];
    int nl = nseries < 64 ? nseries : 64;
    for (int s = 0; s < nseries; s++) {
        const char *col = PALETTE[s % NPALETTE];
        if (s < 64) labels[s] = series[s].label;
        // a polyline per stretch without gaps; single points as dots
        bool open = false;
        int npts = 0;
        for (int i = 0; i <= series[s].n; i++) {
            bool ok = i < series[s].n && isfinite(series[s].x[i]) && isfinite(series[s].y[i]);
            if (ok) {
                if (!open) { fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col); open = true; }
                fprintf(f, "%.1f,%.1f ", px(&fr, series[s].x[i]), py(&fr, series[s].y[i]));
                npts++;
            } else if (open) { fputs("\"/>\n", f); open = false; }
        }
        if (npts <= 12)
            for (int i = 0; i < series[s].n; i++)
                if (isfinite(series[s].x[i]) && isfinite(series[s].y[i]))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px(&fr, series[s].x[i]), py(&fr, series[s].y[i]), col);
    }
    legend(f, labels, nl, width - legend_w + 10, 30);
    fputs("</svg>\n", f);
}

void mv_svg_bars(FILE *f, const char *title, const char *ylabel, const char *const *groups, int ngroups,
                 const char *const *bars, int nbars, const double *values, const double *errs, int width,
                 int height) {
    double y1 = 0;
    for (int i = 0; i < ngroups * nbars; i++)
        if (isfinite(values[i])) y1 = fmax(y1, values[i] + (errs && isfinite(errs[i]) ? errs[i] : 0));
    if (y1 <= 0) y1 = 1;
    int legend_w = 130;
    // Group labels too long for their slot are turned 35 degrees (and get room below).
    size_t longest = 0;
    for (int g = 0; g < ngroups; g++) if (strlen(groups[g]) > longest) longest = strlen(groups[g]);
    double slot = (double)(width - legend_w - 52) / (ngroups > 0 ? ngroups : 1);
    bool turn = longest * 6.5 > slot * 0.95;
    int below = turn ? 30 + (int)fmin(110, (double)longest * 4.2) : 40;
    height += below - 40;   // the plot keeps its height; the turned labels get the added room
    svg_open(f, title, width, height);
    frame fr = {0, 1, 0, y1 * 1.08, 52, 26, width - legend_w, height - below};
    axes(f, &fr, NULL, ylabel, false, false);
    double gw = (double)(fr.right - fr.left) / (ngroups > 0 ? ngroups : 1);
    double bw = gw * 0.8 / (nbars > 0 ? nbars : 1);
    for (int g = 0; g < ngroups; g++) {
        double gx = fr.left + g * gw + gw * 0.1;
        for (int b = 0; b < nbars; b++) {
            double v = values[g * nbars + b];
            if (!isfinite(v)) continue;
            double top = py(&fr, v);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                    gx + b * bw, top, bw * 0.92, fr.bottom - top, PALETTE[b % NPALETTE]);
            mv_html_escape(f, bars[b]);
            fprintf(f, " / ");
            mv_html_escape(f, groups[g]);
            if (errs && isfinite(errs[g * nbars + b])) fprintf(f, ": %.2f ± %.2f</title></rect>\n", v, errs[g * nbars + b]);
            else fprintf(f, ": %.2f</title></rect>\n", v);
            if (errs && isfinite(errs[g * nbars + b]) && errs[g * nbars + b] > 0) {
                // the error bar: a vertical line from v - err to v + err with short caps
                double e = errs[g * nbars + b], cx = gx + b * bw + bw * 0.46, lo = py(&fr, fmax(v - e, fr.y0)),
                       hi = py(&fr, v + e), cap = fmin(4, bw * 0.25);
                fprintf(f, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" stroke=\"#222\" fill=\"none\"/>\n",
                        cx, lo, hi, cx - cap, lo, cx + cap, cx - cap, hi, cx + cap);
            }
        }
        if (turn)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" transform=\"rotate(-35 %.1f %d)\">",
                    gx + gw * 0.4, fr.bottom + 12, gx + gw * 0.4, fr.bottom + 12);
        else
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", gx + gw * 0.4, fr.bottom + 16);
        mv_html_escape(f, groups[g]);
        fputs("</text>\n", f);
    }
    legend(f, bars, nbars < 64 ? nbars : 64, width - legend_w + 10, 30);
    fputs("</svg>\n", f);
}
