// Progress lines of long loops (see progress.h).
#include "core/progress.h"
#include "core/clock.h"
#include <math.h>
#include <unistd.h>

void progress_begin(mv_progress *p, FILE *f, const char *prefix, const char *unit, int64_t start, int64_t total) {
    p->f = f;
    p->tty = f && isatty(fileno(f));
    p->said = false;
    snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
    p->unit = unit;
    p->start = start;
    p->total = total;
    p->t0 = p->last = mv_now_s();
    p->log_every = 10.0;
    p->log_quiet_short = false;
}

void progress_update(mv_progress *p, int64_t done) {
    if (!p->f) return;
    double t = mv_now_s();
    bool last = done >= p->total;
    if (t - p->last <= (p->tty ? 0.5 : p->log_every) && !last) return;
    if (last && !p->tty && p->log_quiet_short && !p->said) return;
    double rate = (double)(done - p->start) / (t - p->t0 > 1e-9 ? t - p->t0 : 1e-9);
    char eta[32];
    mv_fmt_duration(eta, sizeof eta, (double)(p->total - done) / (rate > 0 ? rate : 1e-12));
    fprintf(p->f, "%s%s %lld/%lld %s  %.*f %s/s  ETA %s%s", p->tty ? "\r" : "", p->prefix, (long long)done,
            (long long)p->total, p->unit, rate < 10 ? 2 : 1, rate, p->unit, eta, p->tty ? "   " : "\n");
    fflush(p->f);
    p->last = t;
    p->said = true;
}

void progress_end(mv_progress *p) {
    if (p->f && p->tty && p->said) fputc('\n', p->f);
    p->said = false;
}

void mv_fmt_duration(char *out, size_t n, double s) {
    if (s < 0 || !isfinite(s)) snprintf(out, n, "?");
    else if (s < 60) snprintf(out, n, "%.0fs", s);
    else if (s < 3600) snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else if (s < 3.6e9) snprintf(out, n, "%lldh%02dm", (long long)s / 3600, (int)((long long)s % 3600 / 60));
    else snprintf(out, n, "?");   // a rate near zero
}
