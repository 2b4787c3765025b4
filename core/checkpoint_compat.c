// Whether a run may resume a checkpoint (see checkpoint.h, docs/checkpoints.md "Resume
// rules"): the saved and the current configuration are compared key by key through the
// configuration's key tables, so every key is covered and messages use the keys' names. Also
// the warnings of eval and predict about a checkpoint evaluated otherwise than it was trained
// (checkpoint_warn_eval_config), and the loader position a resume continues from
// (checkpoint_resume_cursor).
#include "core/checkpoint.h"
#include "core/error.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *why;
    size_t cap;
    int status;     // 0, 1 (warned) or -1 (refused)
} verdict;

// Appends `text` to the verdict's message, "; "-separated, truncating at the capacity.
static void note(verdict *v, const char *text) {
    if (!v->why || v->cap == 0) return;
    size_t used = strlen(v->why);
    snprintf(v->why + used, v->cap - used, "%s%s", used ? "; " : "", text);
}

static void warn(verdict *v, const char *key, const char *saved, const char *now) {
    if (v->status < 0) return;
    v->status = 1;
    char text[1280];
    snprintf(text, sizeof text, "%s: %s in the checkpoint, %s now", key, saved, now);
    note(v, text);
}

// The first refusal replaces any warnings: it is the one thing the user must fix.
static void refuse(verdict *v, const char *key, const char *saved, const char *now, const char *reason) {
    if (v->status < 0) return;
    v->status = -1;
    if (v->why && v->cap) v->why[0] = '\0';
    char text[1536];
    snprintf(text, sizeof text, "%s: %s in the checkpoint, %s now (%s)", key, saved, now, reason);
    note(v, text);
}

// Model keys that decide tensor shapes; every other model/mask key changes what is computed.
static const char *model_reason(const char *key) {
    static const char *const SHAPES[] = {"model.dims", "model.depths", "model.d_state", "model.ssm_ratio",
                                         "model.decoder_channels", "model.aux_channels", "model.decoder_depths",
                                         "model.num_classes", "model.crop", "mask.encoder_stages", "mask.decoder"};
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (!strcmp(key, SHAPES[i])) return "it changes the parameter shapes; start a new run from the weights instead";
    return "it changes what the model computes or trains towards; start a new run from the weights instead";
}

static void compare_model(verdict *v, const mv_model_config *a, const mv_model_config *b) {
    int n;
    const mv_key *keys = model_config_keys(&n);
    for (int i = 0; i < n && v->status >= 0; i++) {
        if ((keys[i].flags & MV_KEY_ALIAS) || !strcmp(keys[i].name, "model.preset")) continue;   // a preset is only a label
        if (key_equal(a, b, &keys[i])) continue;
        const mv_key *k = key_user_facing(keys, i);   // mask.lambda, not the hidden mask.lambda_per_stage
        char sa[512], sb[512];
        key_format(sa, sizeof sa, a, k);
        key_format(sb, sizeof sb, b, k);
        refuse(v, k->name, sa, sb, model_reason(k->name));
    }
}

// The rules as a set: the rule a parameter gets depends on the matches, not on the list's order
// (the longest match wins, then the alphabetically first; config loading refuses two rules with
// one match), so a reordered list trains the same and resumes.
static const mv_optim_rule *rule_matching(const mv_optim_config *o, const char *match) {
    for (int i = 0; i < o->num_rules; i++)
        if (!strcmp(o->rules[i].match, match)) return &o->rules[i];
    return NULL;
}

static void compare_rules(verdict *v, const mv_optim_config *a, const mv_optim_config *b) {
    bool same = a->num_rules == b->num_rules;
    for (int i = 0; same && i < a->num_rules; i++) {
        const mv_optim_rule *ra = &a->rules[i], *rb = rule_matching(b, ra->match);
        same = rb && ra->lr_mult == rb->lr_mult && ra->decay_mult == rb->decay_mult;
    }
    if (same) return;
    char sa[64], sb[64];
    snprintf(sa, sizeof sa, "%d rules", a->num_rules);
    snprintf(sb, sizeof sb, "%d rules%s", b->num_rules, a->num_rules == b->num_rules ? " that differ" : "");
    refuse(v, "optim.rules", sa, sb, "the AdamW moments were accumulated under the saved per-parameter lr and decay");
}

static void compare_sources(verdict *v, const mv_data_config *a, const mv_data_config *b) {
    char sa[64], sb[64];
    if (a->num_train != b->num_train) {
        snprintf(sa, sizeof sa, "%d sources", a->num_train);
        snprintf(sb, sizeof sb, "%d sources", b->num_train);
        refuse(v, "data.train", sa, sb, "the training stream changes, so the loader cursor means nothing");
        return;
    }
    for (int i = 0; i < a->num_train; i++) {
        const mv_source *x = &a->train[i], *y = &b->train[i];
        if (x->repeat != y->repeat) {
            char key[64];
            snprintf(key, sizeof key, "data.train[%d].repeat", i);
            snprintf(sa, sizeof sa, "%d", x->repeat);
            snprintf(sb, sizeof sb, "%d", y->repeat);
            refuse(v, key, sa, sb, "the training stream changes, so the loader cursor means nothing");
            return;
        }
        // A dataset moved to another folder (another machine, another mount) is still the same data.
        if (strcmp(x->path, y->path)) {
            char key[64];
            snprintf(key, sizeof key, "data.train[%d]", i);
            warn(v, key, x->path, y->path);
        }
        if (strcmp(x->name, y->name)) {   // the path may be the same: say what changed
            char key[64];
            snprintf(key, sizeof key, "data.train[%d].name", i);
            warn(v, key, x->name, y->name);
        }
    }
}

// The non-model keys (data.*, optim.*, schedule.*, run.*).
static void compare_run(verdict *v, const mv_config *a, const mv_config *b) {
    int n;
    const mv_key *keys = config_keys(&n);
    for (int i = 0; i < n && v->status >= 0; i++) {
        const mv_key *k = &keys[i];
        if (k->flags & MV_KEY_ALIAS) continue;
        bool seed = !strcmp(k->name, "run.seed");
        if (!seed && (!strncmp(k->name, "run.", 4) || !strcmp(k->name, "data.workers") ||
                      !strcmp(k->name, "data.batch_per_rank")))
            continue;   // bookkeeping, or the world-size rule of checkpoint_resume_check
        if (key_equal(a, b, k)) continue;
        char sa[512], sb[512];
        key_format(sa, sizeof sa, a, k);
        key_format(sb, sizeof sb, b, k);
        if (seed) refuse(v, k->name, sa, sb, "the seed keys the data order and every random draw of the run");
        else warn(v, k->name, sa, sb);
    }
}

int checkpoint_compatible(const mv_config *saved, const mv_config *now, char *why, size_t n) {
    verdict v = {why, n, 0};
    if (why && n) why[0] = '\0';
    compare_model(&v, &saved->model, &now->model);
    if (v.status >= 0) compare_rules(&v, &saved->optim, &now->optim);
    if (v.status >= 0) compare_sources(&v, &saved->data, &now->data);
    if (v.status >= 0) compare_run(&v, saved, now);
    if (v.status < 0) return mv_fail("cannot resume: %s", why && n ? why : "the configuration differs");
    return v.status;
}

int checkpoint_resume_check(const mv_train_state *st, const mv_config *saved, const mv_config *now, int world,
                            char *why, size_t n) {
    int rc = checkpoint_compatible(saved, now, why, n);
    if (rc < 0) return rc;
    if (world < 1) return mv_fail("cannot resume: world size %d", world);
    long long g_saved = st->cursor.global_batch > 0 ? st->cursor.global_batch
                                                    : (long long)st->world * st->batch_per_rank;
    long long g_now = (long long)now->data.batch_per_rank * world;
    verdict v = {why, n, rc};
    char sa[96], sb[256];
    if (g_saved == g_now) {
        // Any split of the same global batch resumes exactly (up to the order of sums), except
        // the ratio term of mask.ratio_sync=false, which each rank takes on its own images.
        if (now->model.ratio_sync || st->world < 1 || st->world == world) return rc;
        snprintf(sa, sizeof sa, "%d rank%s x %d", st->world, st->world == 1 ? "" : "s", st->batch_per_rank);
        snprintf(sb, sizeof sb, "%d rank%s x %d", world, world == 1 ? "" : "s", now->data.batch_per_rank);
        warn(&v, "world size", sa, sb);
        note(&v, "with mask.ratio_sync=false the mask ratio term is taken per rank, on another split of the batch, "
                 "so the run trains towards another objective than it would have");
        return v.status;
    }
    snprintf(sa, sizeof sa, "%lld (%d rank%s x %d)", g_saved, st->world, st->world == 1 ? "" : "s", st->batch_per_rank);
    snprintf(sb, sizeof sb, "%lld (%d rank%s x %d)", g_now, world, world == 1 ? "" : "s", now->data.batch_per_rank);
    warn(&v, "global batch", sa, sb);
    note(&v, "the sample stream continues at the same sample, the schedule at the same iteration");
    return v.status;
}

int checkpoint_warn_eval_config(const char *path, const mv_config *now, FILE *report, const char *cmd) {
    static const char *const EVAL_KEYS[] = {"mask.mode", "mask.layout"};
    mv_config *saved = mv_calloc(1, sizeof *saved);
    mv_train_state st;
    int n = 0, count = 0;
    if (checkpoint_read_meta(path, &st, saved) == 0) {   // else a plain weights file: nothing saved
        const mv_key *keys = model_config_keys(&n);
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < sizeof EVAL_KEYS / sizeof EVAL_KEYS[0]; j++) {
                if (strcmp(keys[i].name, EVAL_KEYS[j]) || key_equal(&saved->model, &now->model, &keys[i])) continue;
                char sa[128], sb[128];
                key_format(sa, sizeof sa, &saved->model, &keys[i]);
                key_format(sb, sizeof sb, &now->model, &keys[i]);
                fprintf(report, "%s: warning: %s: %s: %s in the checkpoint's training, %s now: the model computes "
                        "otherwise than it was trained (pass --set %s=%s to evaluate it as trained)\n", cmd, path,
                        keys[i].name, sa, sb, keys[i].name, sa);
                count++;
            }
    }
    free(saved);
    return count;
}

void checkpoint_resume_cursor(mv_loader_cursor *out, const mv_train_state *st, int global_batch) {
    *out = st->cursor;
    if (global_batch <= 0 || global_batch == st->cursor.global_batch) return;
    // Samples consumed so far, then the first whole step of the new batch at or after them.
    int64_t position = st->cursor.step * (int64_t)st->cursor.global_batch;
    out->step = (position + global_batch - 1) / global_batch;
    out->global_batch = global_batch;
}
