// The checkpoints of a run directory (see checkpoint.h): iter_<step>.h5 files, best.h5 and
// `latest`; rotation, the search behind `--resume auto`, the adoption of the checkpoint
// that `--resume PATH` started from, and the setting aside of an earlier run at a fresh start.
#include "core/checkpoint.h"
#include "core/crash_point.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/h5util.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LATEST "latest"

int checkpoint_iter_path(char *out, size_t n, const char *dir, int64_t step) {
    int len = snprintf(out, n, "%s/iter_%lld.h5", dir, (long long)step);
    if (len < 0 || (size_t)len >= n) return mv_fail("%s: checkpoint path too long", dir);
    return 0;
}

int64_t checkpoint_iter_step(const char *name) {
    if (strncmp(name, "iter_", 5)) return -1;
    const char *c = name + 5;
    int64_t step = 0;
    int digits = 0;
    for (; *c >= '0' && *c <= '9'; c++, digits++) {
        if (step > (INT64_MAX - 9) / 10) return -1;
        step = step * 10 + (*c - '0');
    }
    return digits > 0 && !strcmp(c, ".h5") ? step : -1;
}

static bool ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

int checkpoint_set_latest(const char *dir, const char *file) {
    const char *slash = strrchr(file, '/');
    const char *base = slash ? slash + 1 : file;
    char path[4096], tmp[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, LATEST) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, LATEST) >= (int)sizeof tmp)
        return mv_fail("%s: path too long", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) return mv_fail("%s: cannot create: %s", tmp, strerror(errno));
    int rc = fprintf(f, "%s\n", base) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0 ? -1 : 0;
    if (fclose(f) != 0) rc = -1;
    if (rc == 0) crash_point(MV_CRASH_BEFORE_LATEST, file);
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc < 0) {
        int err = errno;
        remove(tmp);
        return mv_fail("%s: cannot write: %s", path, strerror(err));
    }
    mv_sync_dir(dir);
    return 0;
}

// The first line of DIR/latest as it is (without its line end), into line (n bytes); false when
// there is no such file. `path` receives the file's path.
static bool read_latest_line(const char *dir, char *path, size_t np, char *line, size_t n) {
    line[0] = '\0';
    if (snprintf(path, np, "%s/%s", dir, LATEST) >= (int)np) return false;
    FILE *f = fopen(path, "r");
    if (!f) return false;
    if (!fgets(line, (int)n, f)) line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return true;
}

void checkpoint_latest_name(const char *dir, char *name, size_t n) {
    char path[4096];
    read_latest_line(dir, path, sizeof path, name, n);
    if (strchr(name, '/')) name[0] = '\0';   // a bare file name in this directory, nothing else
}

typedef struct { int64_t step; char name[256]; } iter_file;

static int by_step_desc(const void *a, const void *b) {
    int64_t x = ((const iter_file *)a)->step, y = ((const iter_file *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

// Lists DIR's iter_<step>.h5 files, newest first; *count = 0 when DIR does not exist.
static int list_iters(const char *dir, iter_file **out, int *count) {
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : mv_fail("%s: cannot list: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t step = checkpoint_iter_step(e->d_name);
        if (step < 0 || strlen(e->d_name) >= sizeof((*out)->name)) continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 16;
            *out = mv_realloc(*out, sizeof **out * (size_t)cap);
        }
        (*out)[*count].step = step;
        snprintf((*out)[*count].name, sizeof (*out)[*count].name, "%s", e->d_name);
        (*count)++;
    }
    closedir(d);
    if (*count) qsort(*out, (size_t)*count, sizeof **out, by_step_desc);
    return 0;
}

// Crash debris: a checkpoint or `latest` that never got renamed into place: NAME.tmp (a save),
// or NAME.tmp.<pid> of a process that is gone (the copy of an adoption; a live one's is kept).
static bool is_debris(const char *name) {
    char base[512];
    if (!mv_stale_tmp(name, base, sizeof base)) {
        if (!ends_with(name, ".tmp")) return false;
        size_t len = strlen(name) - 4;
        if (len >= sizeof base) return false;
        memcpy(base, name, len);
        base[len] = '\0';
    }
    return checkpoint_iter_step(base) >= 0 || !strcmp(base, "best.h5") || !strcmp(base, LATEST);
}

int checkpoint_rotate(const char *dir, int keep) {
    iter_file *files;
    int count;
    MV_TRY(list_iters(dir, &files, &count));
    char latest[256], path[4096];
    checkpoint_latest_name(dir, latest, sizeof latest);
    // Checkpoints above the step `latest` names are the course a rewind left (--resume PATH to an
    // older one): they stay, for a --resume PATH that means them, but do not count among the
    // `keep`: counted, they would crowd out this course's own (with two of them and keep 3, only
    // `latest` would be left of it, and nothing for --resume auto to fall back to were it damaged).
    int64_t bound = checkpoint_iter_step(latest);
    int deleted = 0, rc = 0, kept = 0;
    for (int i = 0; i < count; i++) {
        if (bound >= 0 && files[i].step > bound) continue;
        if (keep <= 0 || kept < keep || !strcmp(files[i].name, latest)) { kept++; continue; }
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        if (remove(path) == 0) deleted++;
        else if (errno != ENOENT) { rc = mv_fail("%s: cannot delete: %s", path, strerror(errno)); break; }
    }
    free(files);
    if (rc < 0) return rc;

    DIR *d = opendir(dir);
    if (!d) return deleted;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_debris(e->d_name)) continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path && remove(path) == 0) deleted++;
    }
    closedir(d);
    return deleted;
}

// Whether DIR/name is a whole checkpoint: its metadata reads and its tensors match their
// checksums (so a damaged newest file is passed over). Leaves the reason in mv_last_error when
// it is not; *checked tells whether the file was examined at all (its path may not fit).
static bool usable(const char *dir, const char *name, char *path, size_t n, bool *checked) {
    int len = snprintf(path, n, "%s/%s", dir, name);
    *checked = len >= 0 && (size_t)len < n;
    if (!*checked) return false;
    mv_train_state st;
    return checkpoint_read_meta(path, &st, NULL) == 0 && checkpoint_verify(path) == 0;
}

// Appends "; text" (or "text" to an empty list) to a bounded list of reasons.
static void note(char *list, size_t cap, const char *text) {
    if (!list || !cap) return;
    size_t len = strlen(list);
    const char *sep = len ? "; " : "";
    for (const char *p = sep; *p && len + 1 < cap;) list[len++] = *p++;   // cut at cap (the list is bounded)
    for (const char *p = text; *p && len + 1 < cap;) list[len++] = *p++;
    list[len] = '\0';
}

// With no checkpoint found: the copy of a `--resume OTHER/iter_<step>.h5` into DIR (or of the
// best.h5 that comes before it) that was stopped before it completed (NAME.tmp.<pid>), which
// the user must hear of: the run they continued starts over.
static void note_unfinished_copies(const char *dir, char *why, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char base[512], msg[1200];
    while ((e = readdir(d))) {
        if (!mv_stale_tmp(e->d_name, base, sizeof base) || !is_debris(e->d_name)) continue;
        if (checkpoint_iter_step(base) < 0 && strcmp(base, "best.h5")) continue;   // (the adoption copies best.h5 first)
        snprintf(msg, sizeof msg, "%.500s/%.300s, the unfinished copy of a checkpoint that a --resume PATH into this folder "
                 "was adopting when it stopped (that adoption did not complete: give that checkpoint to --resume "
                 "again to continue it)", dir, e->d_name);
        note(why, cap, msg);
    }
    closedir(d);
}

// A checkpoint that could not be opened now (HDF5's file locking: another process has it open
// for writing; or no file descriptor was left) is not a damaged one: passing over it would rewind
// the run to an older checkpoint and retrain what it holds, so --resume auto stops with the
// reason instead.
static int blocked_stop(char *path) {
    char why[MV_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", mv_last_error());
    path[0] = '\0';
    return mv_fail("--resume auto: %s; it stops rather than take an older checkpoint (a file that cannot be "
                   "opened now is not a damaged one)", why);
}

// `raw` for a message: any byte that is not printable ASCII as '?', cut at 100 bytes ("..."
// added), so that a `latest` holding other bytes cannot put them on the terminal.
static void shown_text(char *out, size_t n, const char *raw) {
    char shown[101];
    size_t k = 0;
    for (const char *c = raw; *c && k + 1 < sizeof shown; c++) shown[k++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    shown[k] = '\0';
    snprintf(out, n, "%s%s", shown, strlen(raw) > k ? "..." : "");
}

// A `latest` that exists but names no file of DIR (empty, a path such as ../other/iter_5.h5 or
// an absolute one, a temporary): --resume auto falls back to the highest checkpoint, and the
// user must hear what `latest` held, or a hand-edited one would be ignored without a word.
static void note_unusable_latest(const char *dir, const char *latest, char *why, size_t cap) {
    char path[4096], held[256], shown[128], msg[4600];
    if (!read_latest_line(dir, path, sizeof path, held, sizeof held)) return;   // no `latest`: nothing to say
    if (latest[0]) {   // a bare name, of a temporary file (never a checkpoint)
        shown_text(shown, sizeof shown, latest);
        snprintf(msg, sizeof msg, "%s names %s, a temporary file, not a checkpoint", path, shown);
    } else if (!held[0]) {
        snprintf(msg, sizeof msg, "%s is empty", path);
    } else {
        shown_text(shown, sizeof shown, held);
        snprintf(msg, sizeof msg, "%s holds '%s', not the name of a file in %s", path, shown, dir);
    }
    note(why, cap, msg);
}

int checkpoint_find_latest_report(const char *dir, char *path, size_t n, char *skipped, size_t ns) {
    if (skipped && ns) skipped[0] = '\0';
    if (n < 2) return mv_fail("%s: no room for a path", dir);
    // Why each candidate was passed over: a warning when an older one is taken, the error when
    // none is whole. Starting over silently there would discard the run (and, with it, every
    // record of metrics.jsonl) while the user asked for it to continue.
    char why[2048] = "", msg[MV_ERRMSG_MAX + 64];
    int damaged = 0;
    bool checked;
    char latest[256];
    checkpoint_latest_name(dir, latest, sizeof latest);
    // The fallback takes only checkpoints older than the one `latest` named: a newer one is
    // a course that a rewind left (checkpoint_adopt pointed `latest` back), which this run
    // does not continue.
    int64_t bound = INT64_MAX;
    if (!latest[0] || ends_with(latest, ".tmp")) note_unusable_latest(dir, latest, why, sizeof why);
    if (latest[0] && !ends_with(latest, ".tmp")) {
        if (usable(dir, latest, path, n, &checked)) {
            mv_clear_error();
            return 1;
        }
        if (checked && h5_last_open_blocked()) return blocked_stop(path);
        if (checkpoint_iter_step(latest) >= 0) bound = checkpoint_iter_step(latest);
        if (checked && access(path, F_OK) == 0) {
            damaged++;
            note(why, sizeof why, mv_last_error());
        } else if (checked) {
            char shown[128];
            shown_text(shown, sizeof shown, latest);
            snprintf(msg, sizeof msg, "%s/latest names %s, which does not exist", dir, shown);
            note(why, sizeof why, msg);
        }
    }
    iter_file *files;
    int count;
    MV_TRY(list_iters(dir, &files, &count));
    int found = 0, newer = 0;
    for (int i = 0; i < count && !found; i++) {
        if (!strcmp(files[i].name, latest)) continue;   // examined above
        if (files[i].step >= bound) {
            if (newer++ == 0) {
                snprintf(msg, sizeof msg, "%s/%s and any other checkpoint above %s, which latest names (the "
                         "course a rewind left; resume it with --resume PATH if you mean it)", dir, files[i].name,
                         latest);
                note(why, sizeof why, msg);
            }
            continue;
        }
        found = usable(dir, files[i].name, path, n, &checked);
        if (!found && checked && h5_last_open_blocked()) {
            free(files);
            return blocked_stop(path);
        }
        if (!found && checked) {
            damaged++;
            note(why, sizeof why, mv_last_error());
        }
    }
    free(files);
    if (!found) path[0] = '\0';
    mv_clear_error();
    if (!found && damaged)
        return mv_fail("%s holds %d checkpoint%s and none is whole, so --resume auto would start the run over: "
                       "resume from a checkpoint you trust with --resume PATH, or move the damaged files out of the "
                       "folder to start from scratch. What is wrong: %s", dir, damaged, damaged > 1 ? "s" : "", why);
    if (!found) note_unfinished_copies(dir, why, sizeof why);
    if (skipped && ns) snprintf(skipped, ns, "%s", why);
    return found;
}

int checkpoint_find_latest(const char *dir, char *path, size_t n) {
    return checkpoint_find_latest_report(dir, path, n, NULL, 0);
}

int checkpoint_save_iter(const char *dir, int keep, const mv_params *p, const mv_optimizer *o,
                         const mv_train_state *st, const mv_config *cfg, char *saved, size_t n) {
    char path[4096];
    int64_t step = o ? (int64_t)o->step : st->step;
    MV_TRY(checkpoint_iter_path(path, sizeof path, dir, step));
    MV_TRY(checkpoint_save(path, p, o, st, cfg));
    MV_TRY(checkpoint_set_latest(dir, path));
    if (checkpoint_rotate(dir, keep) < 0) return -1;
    if (saved && n) snprintf(saved, n, "%s", path);
    return 0;
}

// Copies `from` to `to` as an atomic file (core/fs.h: a temporary beside it, fsync, rename, folder
// sync): whole or not at all.
static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return mv_fail("%s: cannot open: %s", from, strerror(errno));
    char dir[4096];
    struct stat sb;
    mv_dir_of(dir, sizeof dir, to);
    mv_atomic_file out;
    if ((fstat(fileno(in), &sb) == 0 && mv_check_free_space(dir, (double)sb.st_size + 65536.0, to, "the copy") < 0) ||
        mv_atomic_open(&out, to) < 0) {
        fclose(in);
        return -1;
    }
    static char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, got, out.f) != got) break;
    int read_err = ferror(in) ? (errno ? errno : EIO) : 0;
    fclose(in);
    if (read_err) {
        mv_atomic_abort(&out);
        return mv_fail("%s: cannot read it to copy it to %s: %s", from, to, strerror(read_err));
    }
    return mv_atomic_commit(&out, true);   // fsync, rename over `to`, sync the folder
}

int checkpoint_resolve(char *out, size_t n, const char *arg, const char *who) {
    const char *slash = strrchr(arg, '/'), *base = slash ? slash + 1 : arg;
    char dir[4096];
    if (mv_is_dir(arg)) snprintf(dir, sizeof dir, "%s", arg);
    else if (!strcmp(base, "latest")) snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - arg) : 1, slash ? arg : ".");
    else {
        if (snprintf(out, n, "%s", arg) >= (int)n) return mv_fail("%s: path too long", arg);
        return 0;
    }
    if (!dir[0]) snprintf(dir, sizeof dir, "/");                       // "/latest"
    for (size_t l = strlen(dir); l > 1 && dir[l - 1] == '/'; l--) dir[l - 1] = 0;   // "run/" -> "run"
    char name[256], latest[4200];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    checkpoint_latest_name(dir, name, sizeof name);
    if (!name[0])
        return access(latest, F_OK) == 0
                   ? mv_fail("%s: does not name a checkpoint (one file name in %s expected)", latest, dir)
                   : mv_fail("%s: a folder without a `latest` file: give a checkpoint file (e.g. %s/best.h5) or a run "
                             "folder", dir, dir);
    if (snprintf(out, n, "%s/%s", dir, name) >= (int)n) return mv_fail("%s: path too long", dir);
    if (access(out, R_OK) != 0) return mv_fail("%s (named by %s): cannot be read: %s", out, latest, strerror(errno));
    if (who) fprintf(stderr, "%s %s: using %s (named by %s)\n", who, arg, out, latest);
    return 0;
}

static bool same_file(const char *a, const char *b) {
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int checkpoint_adopt(const char *dir, const char *path, int64_t step, char *adopted, size_t n) {
    if (adopted && n) adopted[0] = '\0';
    char latest[256], cur[4096], target[4096];
    checkpoint_latest_name(dir, latest, sizeof latest);
    if (latest[0] && snprintf(cur, sizeof cur, "%s/%s", dir, latest) < (int)sizeof cur && same_file(cur, path))
        return 0;   // the usual case: resuming the run's own newest checkpoint
    MV_TRY(checkpoint_iter_path(target, sizeof target, dir, step));
    if (!same_file(target, path)) MV_TRY(copy_file(path, target));
    MV_TRY(checkpoint_set_latest(dir, target));
    if (adopted && n) snprintf(adopted, n, "%s", target);
    return 1;
}

// What checkpoint_adopt_best found wrong with the best.h5 files it did not take: each one
// examined (`account`: missing, its fault, or the step it is of) and the damaged ones alone.
typedef struct {
    char account[2048];
    char damage[2048];
} best_notes;

// Whether `path` is the checkpoint that st's best bookkeeping names: saved at its step with the
// same best metric and value, and whole. Whole as --resume auto requires of iter_<step>.h5
// (checkpoint_verify): a best.h5 whose weights fail their checksum is refused by eval, so kept as
// the recorded best it would stand for weights the run no longer has (and no later evaluation
// that falls short of its value would replace it). *step (when not NULL): the step `path` was
// saved at, -1 when it does not read or is not whole. A file not taken is described in `notes`
// (may be NULL). 1 or 0; -1 when it cannot be opened now (locked, out of file descriptors: core/h5util.h): it cannot be
// told, and a file that is being written must be neither replaced nor removed.
static int is_best_of(const char *path, const mv_train_state *st, int64_t *step, best_notes *notes) {
    mv_train_state b;
    char msg[4400];
    if (step) *step = -1;
    if (access(path, F_OK) != 0) {
        snprintf(msg, sizeof msg, "%s does not exist", path);
        if (notes) note(notes->account, sizeof notes->account, msg);
        return 0;
    }
    if (checkpoint_read_meta(path, &b, NULL) < 0 || checkpoint_verify(path) < 0) {
        if (h5_last_open_blocked()) return -1;
        if (notes) {
            note(notes->account, sizeof notes->account, mv_last_error());
            note(notes->damage, sizeof notes->damage, mv_last_error());
        }
        mv_clear_error();
        return 0;
    }
    if (step) *step = b.step;
    bool same = b.step == st->best_step && !strcmp(b.best_name, st->best_name) &&
                !memcmp(&b.best_value, &st->best_value, sizeof b.best_value);
    if (!same && notes) {
        snprintf(msg, sizeof msg, "%s is the checkpoint of step %lld", path, (long long)b.step);
        note(notes->account, sizeof notes->account, msg);
    }
    return same;
}

// checkpoint_adopt_best, with `best` (DIR/best.h5), PATH's folder and whether it is another
// than DIR worked out; `notes` collects why files were not taken.
static int adopt_best(const char *dir, const char *path, const char *best, const char *src_dir, bool moved,
                      mv_train_state *st, char *copied, size_t n, best_notes *notes) {
    // A best.h5 that is the recorded one stays. In the run's own folder, resumed from the
    // checkpoint `latest` names (a crash), a later one stays too: the evaluation that wrote it
    // came after that checkpoint on this same course, and the resumed run redoes it. So does one
    // of the checkpoint's own step when its evaluation is pending (it failed on a later domain
    // after best.h5 was written, and the resume redoes it first). After a rewind (another
    // checkpoint of this folder) or in another folder it is not this course's.
    int64_t best_step;
    int is_best = is_best_of(best, st, &best_step, notes);   // (with no best recorded, only its step)
    if (is_best < 0) return -1;
    if (st->best_step >= 0 && is_best) return MV_BEST_KEPT;
    if (!moved && (best_step > st->step || (st->eval_pending && best_step == st->step && best_step >= 0))) {
        char latest[256];
        const char *slash = strrchr(path, '/');
        checkpoint_latest_name(dir, latest, sizeof latest);
        if (latest[0] && !strcmp(latest, slash ? slash + 1 : path)) return MV_BEST_KEPT;
    }
    if (st->best_step < 0) {   // nothing recorded yet: a best.h5 here is another course's
        if (access(best, F_OK) != 0) return MV_BEST_KEPT;
        if (remove(best) != 0) return mv_fail("%s: cannot remove: %s", best, strerror(errno));
        mv_sync_dir(dir);
        return MV_BEST_REMOVED;
    }
    char cand[2][4200];
    int nc = 0;
    if (moved) snprintf(cand[nc++], sizeof cand[0], "%s/best.h5", src_dir);
    snprintf(cand[nc++], sizeof cand[0], "%s", path);   // the checkpoint resumed, when it is the best one
    for (int i = 0; i < nc; i++) {
        // (PATH itself, loaded already, is no news when it is not the best: it was saved later)
        int r = is_best_of(cand[i], st, NULL, strcmp(cand[i], path) ? notes : NULL);
        if (r < 0) return -1;
        if (!r) continue;
        if (!same_file(cand[i], best)) MV_TRY(copy_file(cand[i], best));
        if (copied && n) snprintf(copied, n, "%s", cand[i]);
        return MV_BEST_COPIED;
    }
    // Without its file the record would keep every later evaluation from writing one.
    st->best_value = NAN;
    st->best_step = -1;
    st->best_name[0] = '\0';
    return MV_BEST_RESET;
}

int checkpoint_adopt_best(const char *dir, const char *path, mv_train_state *st, char *copied, size_t n, char *why,
                          size_t nw) {
    if (copied && n) copied[0] = '\0';
    if (why && nw) why[0] = '\0';
    char best[4096], src_dir[4096];
    if (snprintf(best, sizeof best, "%s/best.h5", dir) >= (int)sizeof best) return mv_fail("%s: path too long", dir);
    mv_dir_of(src_dir, sizeof src_dir, path);
    bool moved = !same_file(src_dir, dir);
    best_notes *notes = mv_calloc(1, sizeof *notes);
    int rc = adopt_best(dir, path, best, src_dir, moved, st, copied, n, notes);
    // The account of every file examined explains a dropped record; otherwise only damage is news.
    if (why && nw) snprintf(why, nw, "%s", rc == MV_BEST_RESET ? notes->account : notes->damage);
    free(notes);
    return rc;
}

// The files of an earlier run that a fresh start sets aside, besides the iter_<step>.h5
// checkpoints, in the order they move: `latest` first (so that it never names a file that is
// gone), best.h5, the checkpoints (newest first), then the run's records. A crash half-way
// leaves every file either in DIR or in the new folder (rename is atomic per file).
static const char *const RUN_FILES_FIRST[] = {LATEST, LATEST ".tmp", "best.h5", "best.h5.tmp"};
static const char *const RUN_FILES_LAST[] = {"metrics.jsonl", "init_weights.txt", "status.json", "corruptions.json",
                                             "config.yaml"};

static bool exists_in(const char *dir, const char *name) {
    char path[4096];
    struct stat sb;
    return snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path && lstat(path, &sb) == 0;
}

// Moves DIR/name to DIR/sub/name; 1 moved, 0 absent, -1 failed.
static int move_into(const char *dir, const char *sub, const char *name) {
    char from[4096], to[4096];
    if (snprintf(from, sizeof from, "%s/%s", dir, name) >= (int)sizeof from ||
        snprintf(to, sizeof to, "%s/%s/%s", dir, sub, name) >= (int)sizeof to)
        return mv_fail("%s: path too long", dir);
    if (rename(from, to) == 0) return 1;
    if (errno == ENOENT) return 0;
    return mv_fail("%s: cannot move it into %s/%s (the files moved so far are there, the others still in %s): %s",
                   from, dir, sub, dir, strerror(errno));
}

int checkpoint_set_aside(const char *dir, char *moved_to, size_t n) {
    if (moved_to && n) moved_to[0] = '\0';
    iter_file *files;
    int count;
    MV_TRY(list_iters(dir, &files, &count));
    // An earlier run: any of its checkpoints or records. A config.yaml alone is not one (it may
    // be the file this run was started from, written there by hand); it moves with the others.
    bool earlier = count > 0;
    for (size_t i = 0; i < sizeof RUN_FILES_FIRST / sizeof *RUN_FILES_FIRST && !earlier; i++)
        earlier = exists_in(dir, RUN_FILES_FIRST[i]);
    for (size_t i = 0; i + 1 < sizeof RUN_FILES_LAST / sizeof *RUN_FILES_LAST && !earlier; i++)
        earlier = exists_in(dir, RUN_FILES_LAST[i]);
    DIR *d = earlier ? NULL : opendir(dir);
    if (d) {
        struct dirent *e;
        while (!earlier && (e = readdir(d))) earlier = is_debris(e->d_name);
        closedir(d);
    }
    if (!earlier) { free(files); return 0; }

    // previous-<local time>, or previous-<time>-2, -3, ... when that exists (two fresh starts in
    // the same second): mkdir is the atomic claim of the name.
    char sub[128], stamp[32] = "unknown", path[4096];
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    int made = -1;
    for (int k = 1; k <= 1000 && made < 0; k++) {
        if (k == 1) snprintf(sub, sizeof sub, "previous-%s", stamp);
        else snprintf(sub, sizeof sub, "previous-%s-%d", stamp, k);
        if (snprintf(path, sizeof path, "%s/%s", dir, sub) >= (int)sizeof path) { free(files); return mv_fail("%s: path too long", dir); }
        if (mkdir(path, 0755) == 0) made = 0;
        else if (errno != EEXIST) { free(files); return mv_fail("%s: cannot create folder: %s", path, strerror(errno)); }
    }
    if (made < 0) { free(files); return mv_fail("%s/previous-%s: a free name was not found", dir, stamp); }

    int moved = 0, r = 0;
    for (size_t i = 0; i < sizeof RUN_FILES_FIRST / sizeof *RUN_FILES_FIRST && r >= 0; i++)
        if ((r = move_into(dir, sub, RUN_FILES_FIRST[i])) > 0) moved++;
    for (int i = 0; i < count && r >= 0; i++)
        if ((r = move_into(dir, sub, files[i].name)) > 0) moved++;
    free(files);
    // Debris of a crash during a checkpoint (iter_<step>.h5.tmp): the run's too.
    if (r >= 0 && (d = opendir(dir))) {
        struct dirent *e;
        while (r >= 0 && (e = readdir(d)))
            if (is_debris(e->d_name) && (r = move_into(dir, sub, e->d_name)) > 0) moved++;
        closedir(d);
    }
    for (size_t i = 0; i < sizeof RUN_FILES_LAST / sizeof *RUN_FILES_LAST && r >= 0; i++)
        if ((r = move_into(dir, sub, RUN_FILES_LAST[i])) > 0) moved++;
    mv_sync_dir(path);
    mv_sync_dir(dir);
    if (r < 0) return -1;
    if (moved_to && n) snprintf(moved_to, n, "%s", path);
    return moved;
}
