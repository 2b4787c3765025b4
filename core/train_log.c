// The training's log: metrics.jsonl (a "start" record per start or resume, a "train" record per
// log line; the "eval" records come from the evaluation), the printed step lines or progress bar,
// and the closing summary of where the time went. Rank 0 writes; every rank takes part in the
// statistics' all-reduce.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/build_info.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json_read.h"
#include "core/json_write.h"
#include "core/schedule.h"
#include "core/train_internal.h"
#include "core/progress.h"
#include "dist/rank_threads.h"

// Pushes the records written to metrics.jsonl to the file: a full disk or an I/O error stops the
// run (records are never dropped silently; a resume trims a line the failure cut short).
int train_log_flush(trainer *t) {
    if (fflush(t->jsonl) == 0 && !ferror(t->jsonl)) return 0;
    int err = errno;
    return mv_fail("%s/metrics.jsonl: cannot write: %s", t->cfg->run.work_dir, strerror(err ? err : EIO));
}

// True when the line is a JSON object, as every record of metrics.jsonl is.
static bool is_record(const char *line) {
    mv_json rec;
    if (mv_json_parse(&rec, line) < 0) {
        mv_clear_error();
        return false;
    }
    bool object = rec.kind == MV_JSON_OBJ;
    mv_json_free(&rec);
    return object;
}

// A resumed run repeats the iterations after its checkpoint: the records the lost part of the
// run logged (iter > keep_iter, and a line cut short by the crash) are removed from
// metrics.jsonl first, so the log reads like the uninterrupted run's. Rewritten atomically.
// eval_pending: the checkpoint's own evaluation did not complete and is redone, so the records
// it logged before it failed (eval records of keep_iter) go too. A complete line that is not a
// JSON object (damaged on disk, edited by hand) goes as well, with a warning naming it: kept, it
// would make `maskvim report` refuse the run for good.
static int trim_log(const char *path, long keep_iter, bool eval_pending) {
    FILE *in = fopen(path, "r");
    if (!in) return errno == ENOENT ? 0 : mv_fail("%s: cannot read: %s", path, strerror(errno));
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) { fclose(in); return -1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long dropped = 0, number = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        number++;
        const char *it = strstr(line, "\"iter\": ");
        long at = it ? strtol(it + 8, NULL, 10) : 0;
        bool later = it && (at > keep_iter || (eval_pending && at == keep_iter && strstr(line, "\"type\": \"eval\"")));
        if (line[len - 1] != '\n' || later) { dropped++; continue; }
        if (strspn(line, " \t\r\n") < (size_t)len && !is_record(line)) {
            fprintf(stderr, "maskvim train: warning: %s:%ld is not a JSON record (damaged): dropped\n", path, number);
            dropped++;
            continue;
        }
        fwrite(line, 1, (size_t)len, out.f);
    }
    free(line);
    fclose(in);
    if (dropped == 0) { mv_atomic_abort(&out); return 0; }
    return mv_atomic_commit(&out, true);
}

// One "start" record per start or resume: which code (version, commit) trained from which
// iteration, on how many ranks and what device, and when, so that a result traces back to the
// build that made it (a resumed run may span several builds).
static int log_start(trainer *t, int world, int batch_per_rank, const char *device, bool resumed) {
    char when[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(t->jsonl, "{\"type\": \"start\", \"iter\": %ld, \"resumed\": %s, \"version\": ", (long)t->st.iter,
            resumed ? "true" : "false");
    json_write_string(t->jsonl, mv_version());
    fprintf(t->jsonl, ", \"commit\": ");
    json_write_string(t->jsonl, mv_build_commit());
    fprintf(t->jsonl, ", \"ranks\": %d, \"batch_per_rank\": %d, \"device\": ", world, batch_per_rank);
    json_write_string(t->jsonl, device);
    fprintf(t->jsonl, ", \"start_time\": ");
    json_write_string(t->jsonl, when);
    fprintf(t->jsonl, "}\n");
    return train_log_flush(t);
}

// Losses and mask ratios averaged over ranks, the logged view of one step: v[] by these slots,
// summed over ranks in one all-reduce (ST_RANKS counts the ranks, then divides the rest).
enum {
    ST_TOTAL, ST_CE, ST_AUX, ST_RATIO, ST_POSITION,   // the losses
    ST_KEEP_ENC,                                      // keep ratio of encoder stages 0..3
    ST_KEEP_DEC = ST_KEEP_ENC + 4,                    // ... of decoder levels 0..2
    ST_RANKS = ST_KEEP_DEC + 3,
    ST_COUNT
};
typedef struct { double v[ST_COUNT]; } step_stats;

static void gather_stats(step_stats *s, const mv_model *m, mv_comm *comm) {
    double *v = s->v;
    v[ST_TOTAL] = m->loss_total;
    v[ST_CE] = m->loss_ce;
    v[ST_AUX] = m->loss_aux;
    v[ST_RATIO] = m->loss_ratio;
    v[ST_POSITION] = m->loss_position;
    for (int i = 0; i < 4; i++) v[ST_KEEP_ENC + i] = m->keep_enc[i];
    for (int i = 0; i < 3; i++) v[ST_KEEP_DEC + i] = m->keep_dec[i];
    v[ST_RANKS] = 1;
    // A failed sum (a rank lost) ends the job here, as every other collective of a step does.
    if (comm_allreduce_sum_doubles(comm, v, ST_COUNT) < 0) comm_abort(1, mv_last_error());
    for (int i = 0; i < ST_RANKS; i++) v[i] /= v[ST_RANKS];
}

// The encoder keep ratios as logged: stages 0..2, and stage 3 only where it masks.
static void fmt_keep_enc(char *out, size_t n, const step_stats *s, bool stage3, const char *sep, const char *fmt) {
    int len = 0;
    for (int i = 0; i < (stage3 ? 4 : 3) && len >= 0 && (size_t)len < n; i++) {
        len += snprintf(out + len, n - (size_t)len, "%s", i ? sep : "");
        if ((size_t)len < n) len += snprintf(out + len, n - (size_t)len, fmt, s->v[ST_KEEP_ENC + i]);
    }
}

static bool is_synthetic(const mv_source *s) { return !strncmp(s->path, "synthetic:", 10); }

// What the run trains and evaluates on, by name, and a warning when one list is real data and
// the other only the built-in synthetic domains: data.train and data.val default to those, so
// an experiment file that gives one and forgets the other trains, or selects best.h5, on
// synthetic images without a word.
static void print_sources(const mv_config *cfg) {
    const mv_data_config *d = &cfg->data;
    char line[2048];
    size_t n = (size_t)snprintf(line, sizeof line, "maskvim train: data: train");
    for (int i = 0; i < d->num_train && n < sizeof line; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s %s", i ? "," : "", d->train[i].name);
    if (n < sizeof line) n += (size_t)snprintf(line + n, sizeof line - n, " | val");
    for (int i = 0; i < d->num_val && n < sizeof line; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s %s", i ? "," : "", d->val[i].name);
    if (d->num_val == 0 && n < sizeof line) snprintf(line + n, sizeof line - n, " none");
    printf("%s\n", line);
    bool real_train = false, real_val = false;
    for (int i = 0; i < d->num_train; i++) real_train |= !is_synthetic(&d->train[i]);
    for (int i = 0; i < d->num_val; i++) real_val |= !is_synthetic(&d->val[i]);
    if (real_train && d->num_val > 0 && !real_val)
        fprintf(stderr, "maskvim train: warning: data.train is real data but every data.val source is a built-in "
                        "synthetic domain (as data.val is by default): best.h5 is chosen on them\n");
    if (!real_train && real_val)
        fprintf(stderr, "maskvim train: warning: data.val is real data but every data.train source is a built-in "
                        "synthetic domain (as data.train is by default): the model learns synthetic scenes\n");
}

// Opens metrics.jsonl on rank 0 (trimmed to the starting iteration on a resume) with its
// "start" record and prints the run's first line; every rank learns whether rank 0 draws a
// progress bar. start: the loader cursor of a resumed run, NULL for a fresh one.
int train_log_open(trainer *t, const mv_loader_cursor *start) {
    const mv_config *cfg = t->cfg;
    int world = t->comm->world, B = cfg->data.batch_per_rank;
    if (t->comm->rank == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->run.work_dir);
        // With --resume, the log continues from the checkpoint's iteration, or from 0 when
        // --resume auto found none (a first attempt killed before its first checkpoint).
        // Not when there is nothing to train: the log stays whole, as config.yaml and latest do (a
        // resume from an earlier checkpoint at a lowered max_iters cut the later records for good).
        if (t->opts->resume && !train_nothing_to_do(t, start != NULL))
            MV_TRY(trim_log(path, start ? (long)t->st.iter : 0, start && t->st.eval_pending));
        t->jsonl = fopen(path, "a");
        if (!t->jsonl) return mv_fail("%s: cannot open for writing", path);
        // A start record of a resume with nothing to do would describe a start that trained nothing.
        if (!train_nothing_to_do(t, start != NULL)) MV_TRY(log_start(t, world, B, t->device, start != NULL));
        char model[128];
        model_config_describe(model, sizeof model, &cfg->model);
        // The CPU model: how many threads each rank runs it on (not in the log's start record,
        // which runs with other thread counts must match).
        char threads[160] = "";
        if (!t->engine) {
            threads[0] = ',';
            threads[1] = ' ';
            rank_threads_describe(t->comm, threads + 2, sizeof threads - 2);
        }
        printf("maskvim train: %s, %zu parameters, %d rank%s x %d image%s, crop %dx%d, %d iterations, on %s%s, work dir %s\n",
               model, model_num_parameters(&t->model), world, world > 1 ? "s" : "", B, B > 1 ? "s" : "", cfg->model.crop_h,
               cfg->model.crop_w, cfg->schedule.max_iters, t->device, threads, cfg->run.work_dir);
        print_sources(cfg);
        char oversubscribed[320] = "";
        if (!t->engine) rank_threads_oversubscribed_warning(t->comm, oversubscribed, sizeof oversubscribed);
        if (oversubscribed[0]) fprintf(stderr, "maskvim train: warning: %s\n", oversubscribed);
        fflush(stdout);   // a log redirected to a file shows how the run started before its first step ends
        // PyTorch refuses this (BatchNorm wants more than one value per channel in training).
        if (B * world == 1 && cfg->model.head == MV_HEAD_UPER && cfg->model.context == MV_CONTEXT_PPM)
            fprintf(stderr, "maskvim train: warning: a global batch of 1 image: the BatchNorm of the pyramid pooling's "
                            "1x1 branch sees one value per channel, so that branch outputs its bias and learns nothing "
                            "(use data.batch_per_rank >= 2, or more ranks)\n");
    }
    // gather_stats is a collective, called on log lines and, on a terminal, on every step: all
    // ranks must agree. Only rank 0 draws, so its terminal decides (under mpirun every rank's
    // stdout is a pseudo-terminal, whatever mpirun's own output is).
    unsigned char tty = !t->opts->quiet && t->comm->rank == 0 && isatty(fileno(stdout));
    MV_TRY(comm_bcast_bytes(t->comm, &tty, 1));
    t->tty = tty != 0;
    return 0;
}

// After iteration it+1: on a log line (log_now), the step line and its "train" record; on a
// terminal, between log lines, the progress bar. Every rank calls it (the statistics are summed
// over ranks).
int train_log_step(trainer *t, long it, bool log_now) {
    if (!log_now && !t->tty) return 0;
    const mv_config *cfg = t->cfg;
    train_clock *c = &t->clock;
    long max_iters = cfg->schedule.max_iters;
    step_stats s;
    gather_stats(&s, &t->model, t->comm);
    if (t->comm->rank != 0) return 0;
    double now = mv_now_s(), ips = c->interval_images / (now - c->interval + 1e-12);
    double eta = (max_iters - it - 1) * (now - c->start) / (double)c->done;
    double lr = schedule_lr(&cfg->schedule, cfg->optim.lr, it);
    double total = now - c->start, outside = c->data + c->sync;
    char eta_s[32];
    mv_fmt_duration(eta_s, sizeof eta_s, eta);
    if (log_now) {
        bool stage3 = cfg->model.mask_encoder[3];
        char keep_txt[64], keep_json[64];
        fmt_keep_enc(keep_txt, sizeof keep_txt, &s, stage3, "/", "%.2f");
        fmt_keep_enc(keep_json, sizeof keep_json, &s, stage3, ", ", "%.4f");
        const double *v = s.v, *dec = s.v + ST_KEEP_DEC;
        printf("%s[iter %5ld/%ld] loss %.4f (ce %.4f aux %.4f ratio %.4f pos %.4f) lr %.2e keep enc %s "
               "dec %.2f/%.2f/%.2f | %.2f img/s | data %.0f%% sync %.0f%% | ETA %s\n", t->tty ? "\r" : "", it + 1,
               max_iters, v[ST_TOTAL], v[ST_CE], v[ST_AUX], v[ST_RATIO], v[ST_POSITION], lr, keep_txt, dec[0], dec[1],
               dec[2], ips, 100 * c->data / total, 100 * c->sync / total, eta_s);
        fprintf(t->jsonl, "{\"type\": \"train\", \"iter\": %ld, \"loss_total\": %.6g, \"loss_ce\": %.6g, \"loss_aux\": %.6g, "
                "\"loss_ratio\": %.6g, \"loss_position\": %.6g, \"lr\": %.6g, \"keep_enc\": [%s], "
                "\"keep_dec\": [%.4f, %.4f, %.4f], \"images_per_s\": %.4f, \"eta_s\": %.1f, \"data_wait_frac\": %.4f, "
                "\"sync_wait_frac\": %.4f, \"outside_frac\": %.4f}\n", it + 1, v[ST_TOTAL], v[ST_CE], v[ST_AUX],
                v[ST_RATIO], v[ST_POSITION], lr, keep_json, dec[0], dec[1], dec[2], ips, eta, c->data / total,
                c->sync / total, outside / total);
        MV_TRY(train_log_flush(t));
        fflush(stdout);
        c->interval = now;
        c->interval_images = 0;
    } else {
        int width = 30, filled = (int)(width * (it + 1) / max_iters);
        printf("\r[%.*s%*s] %ld/%ld loss %.4f | %.2f img/s | ETA %s   ", filled, "==============================",
               width - filled, "", it + 1, max_iters, s.v[ST_TOTAL], ips, eta_s);
        fflush(stdout);
    }
    return 0;
}

// The closing line (rank 0): the share of the training steps spent outside forward/backward
// (evaluation and checkpoints are periodic work, reported apart).
void train_log_summary(const trainer *t) {
    const train_clock *c = &t->clock;
    double total = mv_now_s() - c->start, steps = total - c->periodic;
    double other = steps - c->compute - c->data - c->sync - c->optim;
    printf("maskvim train: %ld iterations in %.1fs; of the steps (%.1fs): forward+backward %.1f%%, data wait %.1f%%, "
           "all-reduce wait %.1f%%, optimizer %.1f%%, logging and other %.1f%%; evaluation and checkpoints %.1fs\n",
           c->done, total, steps, 100 * c->compute / steps, 100 * c->data / steps, 100 * c->sync / steps,
           100 * c->optim / steps, 100 * other / steps, c->periodic);
}
