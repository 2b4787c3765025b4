// Checkpoints: bit-exact round trip of weights, buffers, moments, state and configuration on
// the real maskvim-nano registry; a save/load in the middle of AdamW continues exactly like
// the uninterrupted run; corrupt, truncated and foreign files give errors naming the file or
// key; resume rules; crash debris ignored by --resume auto; rotation keeps N + best.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/model.h"
#include "core/weights_io.h"

// $MV_TEST_TMP/checkpoint/<name>, emptied of files (a fresh directory for each test).
static void test_dir(char *out, size_t n, const char *name) {
    const char *root = getenv("MV_TEST_TMP");
    if (!root || !root[0]) root = "/tmp";
    snprintf(out, n, "%s/checkpoint", root);
    mkdir(root, 0755);
    cr_assert(mkdir(out, 0755) == 0 || errno == EEXIST, "mkdir %s", out);
    snprintf(out, n, "%s/checkpoint/%s", root, name);
    cr_assert(mkdir(out, 0755) == 0 || errno == EEXIST, "mkdir %s", out);
    DIR *d = opendir(out);
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') { snprintf(path, sizeof path, "%s/%s", out, e->d_name); remove(path); }
    closedir(d);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

// A small registry with the name patterns the optimizer rules act on, plus a buffer.
typedef struct { mv_params p; float *w, *dw, *nw, *dnw, *tm, *dtm, *rv; } tiny;

static void tiny_build(tiny *t, int rows, bool extra, uint64_t seed) {
    memset(t, 0, sizeof *t);
    int s1[2] = {rows, 5}, s2[1] = {5}, s3[3] = {1, 6, 2}, s4[1] = {3};
    params_add(&t->p, &t->w, &t->dw, INIT_TRUNC_NORMAL, 0.5f, 2, s1, "decode_head.conv_seg.weight");
    params_add(&t->p, &t->nw, &t->dnw, INIT_UNIFORM, 1.0f, 1, s2, "backbone.layers.0.blocks.0.norm.weight");
    params_add(&t->p, &t->tm, &t->dtm, INIT_UNIFORM, 4.0f, 3, s3, "backbone.layers.0.blocks.0.token_mask");
    if (extra) buffer_add(&t->p, &t->rv, INIT_UNIFORM, 2.0f, 1, s4, "decode_head.bottleneck.bn.running_var");
    params_allocate(&t->p);
    params_init(&t->p, seed);
}

// Deterministic gradients that depend on the parameters and the step (as a real one would).
static void fake_grads(mv_params *p, long step) {
    for (int i = 0; i < p->count; i++) {
        mv_param *q = &p->items[i];
        if (q->is_buffer) continue;
        for (size_t j = 0; j < q->numel; j++)
            p->grads[q->offset + j] = sinf(3.0f * p->params[q->offset + j] + 0.7f * (float)step + (float)j);
    }
}

static void some_state(mv_train_state *st) {
    checkpoint_state_init(st);
    st->step = 7;
    st->iter = 7;
    st->seed = 0x123456789abcdefULL;
    st->cursor = (mv_loader_cursor){.seed = 99, .step = 7, .epoch_size = 1234567890123LL, .global_batch = 4};
    st->world = 2;
    st->batch_per_rank = 2;
    snprintf(st->best_name, sizeof st->best_name, "clear/mIoU");
    st->best_value = 61.25;
    st->best_step = 6;
}

// What the checkpoint tests save: the default configuration, a 3-row model with every kind of
// tensor, its optimizer and a train state (the tests vary the step and the files around them).
static void tiny_parts(mv_config *cfg, tiny *t, mv_optimizer *o) {
    config_defaults(cfg);
    tiny_build(t, 3, true, 1);
    optimizer_init(o, &t->p, &cfg->optim);
}

static void checkpoint_parts(mv_config *cfg, tiny *t, mv_optimizer *o, mv_train_state *st) {
    tiny_parts(cfg, t, o);
    some_state(st);
}

Test(checkpoint, round_trip_nano_is_bit_exact) {
    char dir[512], path[4200];
    test_dir(dir, sizeof dir, "round_trip");
    snprintf(path, sizeof path, "%s/a.h5", dir);

    mv_config cfg;
    config_defaults(&cfg);
    cr_assert_eq(config_set(&cfg, "optim.lr=1.25e-4"), 0, "%s", mv_last_error());
    cr_assert_eq(config_set(&cfg, "run.work_dir=runs/ckpt test"), 0, "%s", mv_last_error());

    mv_model a, b, c;
    cr_assert_eq(model_build(&a, &cfg.model), 0, "%s", mv_last_error());
    cr_assert_eq(model_build(&b, &cfg.model), 0, "%s", mv_last_error());
    cr_assert_eq(model_build(&c, &cfg.model), 0, "%s", mv_last_error());
    params_init(&a.params, 1);
    params_init(&b.params, 2);
    params_init(&c.params, 3);
    cr_assert(a.params.num_buffers > 0, "nano has BatchNorm buffers");
    for (size_t i = 0; i < a.params.num_buffers; i++) a.params.buffers[i] = 0.5f + sinf((float)i);

    mv_optimizer oa, ob;
    optimizer_init(&oa, &a.params, &cfg.optim);
    optimizer_init(&ob, &b.params, &cfg.optim);
    for (int k = 0; k < a.params.count; k++) {   // the tensors (the arena's alignment padding stays 0)
        const mv_param *q = &a.params.items[k];
        if (q->is_buffer) continue;
        for (size_t i = q->offset; i < q->offset + q->numel; i++) {
            oa.m[i] = cosf((float)i) * 1e-3f;
            oa.v[i] = (float)(i % 97) * 1e-7f + 1e-12f;
        }
    }
    oa.step = 7;
    mv_train_state st, st2;
    some_state(&st);
    cr_assert_eq(checkpoint_save(path, &a.params, &oa, &st, &cfg), 0, "%s", mv_last_error());
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_expect(access(tmp, F_OK) != 0, "the temporary file is gone after the rename");

    mv_config saved;
    cr_assert_eq(checkpoint_load(path, &b.params, &ob, &st2, &saved), 0, "%s", mv_last_error());
    cr_expect(memcmp(a.params.params, b.params.params, sizeof(float) * a.params.num_params) == 0, "parameters");
    cr_expect(memcmp(a.params.buffers, b.params.buffers, sizeof(float) * a.params.num_buffers) == 0, "buffers");
    cr_expect(memcmp(oa.m, ob.m, sizeof(float) * a.params.num_params) == 0, "first moments");
    cr_expect(memcmp(oa.v, ob.v, sizeof(float) * a.params.num_params) == 0, "second moments");
    cr_expect_eq(ob.step, 7);
    cr_expect_eq(st2.step, 7);
    cr_expect_eq(st2.iter, 7);
    cr_expect_eq(st2.seed, st.seed);
    cr_expect_eq(st2.cursor.seed, 99);
    cr_expect_eq(st2.cursor.step, 7);
    cr_expect_eq(st2.cursor.epoch_size, 1234567890123LL);
    cr_expect_eq(st2.cursor.global_batch, 4);
    cr_expect_eq(st2.world, 2);
    cr_expect_eq(st2.batch_per_rank, 2);
    cr_expect_str_eq(st2.best_name, "clear/mIoU");
    cr_expect_eq(st2.best_value, 61.25);
    cr_expect_eq(st2.best_step, 6);
    cr_expect(config_equal(&saved, &cfg), "the configuration reads back equal");
    cr_expect_eq(saved.optim.lr, 1.25e-4);
    cr_expect_str_eq(saved.run.work_dir, "runs/ckpt test");

    // Metadata alone, as a resume reads it before building the model.
    mv_train_state st3;
    mv_config saved3;
    cr_assert_eq(checkpoint_read_meta(path, &st3, &saved3), 0, "%s", mv_last_error());
    cr_expect(st3.step == 7 && st3.iter == 7 && st3.cursor.epoch_size == 1234567890123LL && st3.best_step == 6);
    cr_expect(config_equal(&saved3, &cfg));

    // A checkpoint is a plain weights file: only the train/ group is extra.
    int missing = -1, unexpected = -1;
    cr_assert_eq(weights_load(&c.params, path, NULL, &missing, &unexpected), 0, "%s", mv_last_error());
    cr_expect_eq(missing, 0);
    cr_expect_eq(unexpected, 0, "the train group (optimizer state) is not a weight (got %d unexpected)", unexpected);
    cr_expect(memcmp(a.params.params, c.params.params, sizeof(float) * a.params.num_params) == 0);
    cr_expect(memcmp(a.params.buffers, c.params.buffers, sizeof(float) * a.params.num_buffers) == 0);

    // Weights only (no optimizer): fine for evaluation.
    params_init(&c.params, 5);
    cr_assert_eq(checkpoint_load(path, &c.params, NULL, NULL, NULL), 0, "%s", mv_last_error());
    cr_expect(memcmp(a.params.params, c.params.params, sizeof(float) * a.params.num_params) == 0);

    optimizer_free(&oa);
    optimizer_free(&ob);
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

// Train 6 AdamW steps straight; train 3, save, load into fresh objects, train 3 more: the
// parameters and moments must be identical bit for bit.
Test(checkpoint, resume_continues_exactly) {
    char dir[512], path[4200];
    test_dir(dir, sizeof dir, "resume");
    snprintf(path, sizeof path, "%s/iter_3.h5", dir);
    mv_config cfg;
    config_defaults(&cfg);
    cfg.optim.lr = 1e-2;
    cfg.schedule.warmup_iters = 2;   // warm-up then poly decay within the 6 steps
    cfg.schedule.max_iters = 8;

    tiny full, half, resumed;
    tiny_build(&full, 4, true, 11);
    tiny_build(&half, 4, true, 11);
    tiny_build(&resumed, 4, true, 12);   // different start: everything must come from the file
    mv_optimizer of, oh, orr;
    optimizer_init(&of, &full.p, &cfg.optim);
    optimizer_init(&oh, &half.p, &cfg.optim);
    optimizer_init(&orr, &resumed.p, &cfg.optim);
    for (long t = 0; t < 6; t++) {
        fake_grads(&full.p, t);
        optimizer_step(&of, &full.p, &cfg.optim, &cfg.schedule, t);
    }
    for (long t = 0; t < 3; t++) {
        fake_grads(&half.p, t);
        optimizer_step(&oh, &half.p, &cfg.optim, &cfg.schedule, t);
    }
    mv_train_state st, st2;
    checkpoint_state_init(&st);
    st.step = st.iter = 3;
    st.world = st.batch_per_rank = 1;
    st.cursor.global_batch = 1;
    cr_assert_eq(checkpoint_save(path, &half.p, &oh, &st, &cfg), 0, "%s", mv_last_error());
    cr_assert_eq(checkpoint_load(path, &resumed.p, &orr, &st2, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(orr.step, 3);
    cr_expect(isnan(st2.best_value) && st2.best_step == -1 && st2.best_name[0] == '\0', "no best yet");
    for (long t = st2.iter; t < 6; t++) {
        fake_grads(&resumed.p, t);
        optimizer_step(&orr, &resumed.p, &cfg.optim, &cfg.schedule, t);
    }
    cr_expect(memcmp(full.p.params, resumed.p.params, sizeof(float) * full.p.num_params) == 0, "parameters");
    cr_expect(memcmp(full.p.buffers, resumed.p.buffers, sizeof(float) * full.p.num_buffers) == 0, "buffers");
    cr_expect(memcmp(of.m, orr.m, sizeof(float) * full.p.num_params) == 0, "first moments");
    cr_expect(memcmp(of.v, orr.v, sizeof(float) * full.p.num_params) == 0, "second moments");
    cr_expect_eq(of.step, orr.step);
    // And the run did move: the tensors are not trivially equal to their start.
    tiny start;
    tiny_build(&start, 4, true, 11);
    cr_expect(memcmp(start.p.params, full.p.params, sizeof(float) * full.p.num_params) != 0);

    optimizer_free(&of);
    optimizer_free(&oh);
    optimizer_free(&orr);
    params_free(&full.p);
    params_free(&half.p);
    params_free(&resumed.p);
    params_free(&start.p);
}

// Expects checkpoint_load(path) into a tiny registry to fail with a message holding `frag`.
static void expect_load_error(const char *path, tiny *t, mv_optimizer *o, const char *frag) {
    mv_clear_error();
    mv_train_state st;
    cr_assert_eq(checkpoint_load(path, &t->p, o, &st, NULL), -1, "%s loaded but should fail", path);
    cr_expect(strstr(mv_last_error(), frag) != NULL, "message lacks '%s': %s", frag, mv_last_error());
}

static long file_size(const char *path) {
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    return (long)sb.st_size;
}

Test(checkpoint, bad_files_are_errors) {
    char dir[512], path[4200], bad[4200];
    test_dir(dir, sizeof dir, "bad");
    snprintf(path, sizeof path, "%s/good.h5", dir);
    mv_config cfg;
    config_defaults(&cfg);
    tiny t;
    tiny_build(&t, 64, true, 1);
    for (size_t j = 0; j < 64 * 5; j++) t.w[j] = 1234.5678f;   // a pattern to find in the file
    mv_optimizer o;
    optimizer_init(&o, &t.p, &cfg.optim);
    mv_train_state st;
    some_state(&st);
    cr_assert_eq(checkpoint_save(path, &t.p, &o, &st, &cfg), 0, "%s", mv_last_error());
    FILE *f = fopen(path, "rb");
    long n = file_size(path);
    unsigned char *bytes = malloc((size_t)n);
    cr_assert_eq(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);

    // Missing, empty, text, truncated.
    snprintf(bad, sizeof bad, "%s/missing.h5", dir);
    expect_load_error(bad, &t, &o, "missing.h5");
    snprintf(bad, sizeof bad, "%s/empty.h5", dir);
    write_text(bad, "");
    expect_load_error(bad, &t, &o, "empty.h5");
    snprintf(bad, sizeof bad, "%s/text.h5", dir);
    write_text(bad, "model: {preset: maskvim-t}\n");
    expect_load_error(bad, &t, &o, "text.h5");
    for (int cut = 1; cut <= 3; cut++) {
        snprintf(bad, sizeof bad, "%s/truncated%d.h5", dir, cut);
        f = fopen(bad, "wb");
        fwrite(bytes, 1, (size_t)(n * cut / 4), f);
        fclose(f);
        expect_load_error(bad, &t, &o, "truncated");
    }

    // One flipped bit inside a tensor's data: HDF5 reads it happily, the checksum does not.
    float pattern[4] = {1234.5678f, 1234.5678f, 1234.5678f, 1234.5678f};
    long at = -1;
    for (long i = 0; i + 16 <= n && at < 0; i++)
        if (!memcmp(bytes + i, pattern, 16)) at = i;
    cr_assert(at >= 0, "tensor data not found in the file");
    bytes[at + 37] ^= 0x10;
    snprintf(bad, sizeof bad, "%s/flipped.h5", dir);
    f = fopen(bad, "wb");
    fwrite(bytes, 1, (size_t)n, f);
    fclose(f);
    expect_load_error(bad, &t, &o, "checksum");
    bytes[at + 37] ^= 0x10;
    free(bytes);

    // A plain weights file is not a checkpoint.
    snprintf(bad, sizeof bad, "%s/weights.h5", dir);
    cr_assert_eq(weights_save(&t.p, bad), 0, "%s", mv_last_error());
    expect_load_error(bad, &t, &o, "not a checkpoint");

    // Another model: a shape differs, a tensor is missing, a tensor is foreign.
    tiny other;
    tiny_build(&other, 65, true, 1);
    expect_load_error(path, &other, NULL, "'decode_head.conv_seg.weight' has shape [64,5], this model expects [65,5]");
    params_free(&other.p);
    tiny_build(&other, 64, false, 1);
    expect_load_error(path, &other, NULL, "'decode_head.bottleneck.bn.running_var' is not a tensor of this model");
    params_free(&other.p);
    snprintf(bad, sizeof bad, "%s/small.h5", dir);
    tiny_build(&other, 64, false, 1);
    cr_assert_eq(checkpoint_save(bad, &other.p, NULL, &st, &cfg), 0, "%s", mv_last_error());
    expect_load_error(bad, &t, NULL, "buffer 'decode_head.bottleneck.bn.running_var' is missing");
    // Saved without an optimizer: loads as weights, refuses to resume.
    mv_optimizer o2;
    optimizer_init(&o2, &other.p, &cfg.optim);
    expect_load_error(bad, &other, &o2, "no optimizer state");
    cr_expect_eq(checkpoint_load(bad, &other.p, NULL, NULL, NULL), 0, "%s", mv_last_error());
    optimizer_free(&o2);
    params_free(&other.p);

    // The good file still loads (nothing above touched it).
    cr_expect_eq(checkpoint_load(path, &t.p, &o, NULL, NULL), 0, "%s", mv_last_error());
    optimizer_free(&o);
    params_free(&t.p);
}

// A tiny model (and, when o is not NULL, its optimizer) saved as a checkpoint at test_dir(name)/ck.h5.
static void save_tiny(char *path, size_t n, const char *name, tiny *t, mv_optimizer *o) {
    char dir[512];
    test_dir(dir, sizeof dir, name);
    snprintf(path, n, "%s/ck.h5", dir);
    mv_config cfg;
    config_defaults(&cfg);
    tiny_build(t, 8, true, 1);
    if (o) optimizer_init(o, &t->p, &cfg.optim);
    mv_train_state st;
    some_state(&st);
    cr_assert_eq(checkpoint_save(path, &t->p, o, &st, &cfg), 0, "%s", mv_last_error());
}

// A checkpoint of the current format must carry its checksums: a bit flipped in the group's name
// (or the group deleted) passed the file off as one from before the checksums, and eval,
// predict and run.init_weights then loaded damaged weights unchecked. A format-1 file without
// checksums (written before they existed) still reads.
Test(checkpoint, checksums_required_from_format_2) {
    char path[4200];
    tiny t;
    save_tiny(path, sizeof path, "checksums", &t, NULL);
    cr_assert_eq(checkpoint_verify_weights(path), 0, "%s", mv_last_error());
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    cr_assert_geq(H5Lmove(f, "train/checksum", f, "train/bhecksum", H5P_DEFAULT, H5P_DEFAULT), 0);
    H5Fclose(f);
    cr_expect_lt(checkpoint_verify_weights(path), 0, "weights without their checksum were loaded");
    cr_expect(strstr(mv_last_error(), "no train/checksum/weights") && strstr(mv_last_error(), "damaged"), "%s",
              mv_last_error());
    mv_train_state back;
    cr_expect_lt(checkpoint_read_meta(path, &back, NULL), 0);
    cr_expect(strstr(mv_last_error(), "no train/checksum/state"), "%s", mv_last_error());
    // The same file as format 1: from before the checksums, read without them.
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "train/format", H5P_DEFAULT);
    int64_t one = 1;
    cr_assert_geq(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &one), 0);
    H5Dclose(d);
    H5Fclose(f);
    cr_expect_eq(checkpoint_verify_weights(path), 0, "%s", mv_last_error());
    cr_expect_eq(checkpoint_read_meta(path, &back, NULL), 0, "%s", mv_last_error());
    params_free(&t.p);
}

// Faults named for what they are: a moment missing beside its parameter is a damaged file, not
// "another model" (the message sent the user looking for a configuration mismatch); a
// configuration stored as a variable-length string is one, not "damaged storage information".
Test(checkpoint, faults_named_for_what_they_are) {
    char path[4200];
    tiny t;
    mv_optimizer o;
    save_tiny(path, sizeof path, "faults", &t, &o);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    cr_assert_geq(H5Ldelete(f, "train/adam_v/decode_head.conv_seg.weight", H5P_DEFAULT), 0);
    H5Fclose(f);
    expect_load_error(path, &t, &o, "second moment of 'decode_head.conv_seg.weight' is missing, though the "
                                    "parameter is there (damaged file)");
    // The configuration rewritten as a variable-length string (h5py's default for a str): named
    // as such, not as "damaged storage information (corrupt)".
    optimizer_free(&o);
    params_free(&t.p);
    save_tiny(path, sizeof path, "faults", &t, &o);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(H5Ldelete(f, "train/config_yaml", H5P_DEFAULT), 0);
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
    H5Tset_size(type, H5T_VARIABLE);
    hid_t d = H5Dcreate2(f, "train/config_yaml", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *text = "model: {}\n";
    cr_assert_geq(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text), 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(f);
    mv_config back;
    cr_expect_lt(checkpoint_read_meta(path, NULL, &back), 0);
    cr_expect(strstr(mv_last_error(), "'train/config_yaml' is a variable-length string"), "%s", mv_last_error());
    optimizer_free(&o);
    params_free(&t.p);
}

Test(checkpoint, failed_save_keeps_the_old_file) {
    char dir[512], path[4200], tmp[4300];
    test_dir(dir, sizeof dir, "crash");
    snprintf(path, sizeof path, "%s/iter_5.h5", dir);
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    mv_train_state st;
    checkpoint_parts(&cfg, &t, &o, &st);
    o.step = 5;
    cr_assert_eq(checkpoint_save(path, &t.p, &o, &st, &cfg), 0, "%s", mv_last_error());
    // A crash in the middle of the next save leaves only a partial temporary behind ...
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_text(tmp, "\x89HDF\r\n partial");
    mv_train_state st2;
    cr_assert_eq(checkpoint_load(path, &t.p, &o, &st2, NULL), 0, "%s", mv_last_error());
    cr_expect_eq(st2.step, 5);
    // ... and a save that cannot even start fails cleanly without touching anything.
    char nowhere[4300];
    snprintf(nowhere, sizeof nowhere, "%s/no/such/dir/iter_6.h5", dir);
    mv_clear_error();
    cr_expect_eq(checkpoint_save(nowhere, &t.p, &o, &st, &cfg), -1);
    cr_expect(strstr(mv_last_error(), "iter_6.h5") != NULL, "%s", mv_last_error());
    // The next save replaces the debris.
    cr_assert_eq(checkpoint_save(path, &t.p, &o, &st, &cfg), 0, "%s", mv_last_error());
    cr_expect(access(tmp, F_OK) != 0);
    optimizer_free(&o);
    params_free(&t.p);
}

Test(checkpoint, compatibility_rules) {
    mv_config a, b;
    config_defaults(&a);
    char why[1024];

    b = a;
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(why, "");

    // Bookkeeping changes nothing.
    cr_assert_eq(config_set(&b, "run.work_dir=elsewhere"), 0);
    cr_assert_eq(config_set(&b, "run.eval_every=7"), 0);
    cr_assert_eq(config_set(&b, "data.workers=3"), 0);
    cr_assert_eq(config_set(&b, "data.batch_per_rank=1"), 0);   // the world-size rule decides
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), 0, "%s", why);

    // Refusals name the key.
    static const char *const REFUSED[][2] = {
        {"model.dims=16,32,64,256", "model.dims"},
        {"model.depths=1,1,3,1", "model.depths"},
        {"model.d_state=8", "model.d_state"},
        {"model.crop=64,128", "model.crop"},
        {"model.decoder_channels=64", "model.decoder_channels"},
        {"model.decoder_depths=1,1,2", "model.decoder_depths"},
        {"model.num_classes=7", "model.num_classes"},
        {"mask.decoder=false", "mask.decoder"},
        {"mask.encoder=false", "mask.encoder_stages"},
        {"mask.mode=zero", "mask.mode"},
        {"mask.lambda=0.9,0.7,0.5", "mask.lambda"},
        {"run.seed=5", "run.seed"},
        {"optim.rules=[{match: norm, decay_mult: 0}]", "optim.rules"},
    };
    for (size_t i = 0; i < sizeof REFUSED / sizeof REFUSED[0]; i++) {
        b = a;
        cr_assert_eq(config_set(&b, REFUSED[i][0]), 0, "%s: %s", REFUSED[i][0], mv_last_error());
        mv_clear_error();
        cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), -1, "%s accepted", REFUSED[i][0]);
        cr_expect(strncmp(why, REFUSED[i][1], strlen(REFUSED[i][1])) == 0, "%s: %s", REFUSED[i][0], why);
        cr_expect(strstr(mv_last_error(), REFUSED[i][1]) != NULL, "%s: %s", REFUSED[i][0], mv_last_error());
    }
    b = a;
    b.optim.rules[1].lr_mult = 100;   // token_mask lr x 100 instead of x 10000
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), -1);
    cr_expect(strstr(why, "optim.rules") != NULL, "%s", why);
    // The same rules in another order give every parameter the same lr and decay: accepted.
    cr_assert_geq(a.optim.num_rules, 2);
    b = a;
    b.optim.rules[0] = a.optim.rules[1];
    b.optim.rules[1] = a.optim.rules[0];
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), 0, "%s", why);
    b.optim.rules[0].decay_mult = 0.5f;   // ... but not with a multiplier changed
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), -1);

    // Allowed with a warning that names each changed key; a refusal wins over warnings.
    b = a;
    cr_assert_eq(config_set(&b, "optim.lr=1e-4"), 0);
    cr_assert_eq(config_set(&b, "schedule.max_iters=40000"), 0);
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), 1);
    cr_expect(strstr(why, "optim.lr: ") && strstr(why, "schedule.max_iters: 20000 in the checkpoint, 40000 now"),
              "%s", why);
    cr_assert_eq(config_set(&b, "model.num_classes=5"), 0);
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), -1);
    cr_expect(strstr(why, "model.num_classes: 19 in the checkpoint, 5 now") == why, "%s", why);

    // A tiny message buffer truncates but never overflows.
    char small[8];
    cr_expect_eq(checkpoint_compatible(&a, &b, small, sizeof small), -1);
    cr_expect_eq(strlen(small), 7);

    // Only a train source's name changed: the name is what the warning shows (it printed the
    // unchanged path twice).
    b = a;
    snprintf(b.data.train[0].name, sizeof b.data.train[0].name, "renamed");
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), 1);
    char text[512];
    snprintf(text, sizeof text, "data.train[0].name: %s in the checkpoint, renamed now", a.data.train[0].name);
    cr_expect_str_eq(why, text);
}

Test(checkpoint, world_size_rule_and_cursor) {
    mv_config saved, now;
    config_defaults(&saved);
    cr_assert_eq(config_set(&saved, "data.batch_per_rank=2"), 0);
    mv_train_state st;
    checkpoint_state_init(&st);
    st.world = 2;
    st.batch_per_rank = 2;
    st.cursor = (mv_loader_cursor){.seed = 1, .step = 5, .epoch_size = 100, .global_batch = 4};
    char why[1024];

    now = saved;
    cr_assert_eq(config_set(&now, "data.batch_per_rank=1"), 0);
    cr_expect_eq(checkpoint_resume_check(&st, &saved, &now, 4, why, sizeof why), 0, "4 x 1 = 2 x 2: %s", why);
    now = saved;
    cr_assert_eq(config_set(&now, "data.batch_per_rank=4"), 0);
    cr_expect_eq(checkpoint_resume_check(&st, &saved, &now, 1, why, sizeof why), 0, "1 x 4 = 2 x 2: %s", why);
    cr_expect_eq(checkpoint_resume_check(&st, &saved, &now, 2, why, sizeof why), 1, "2 x 4 != 2 x 2");
    cr_expect(strstr(why, "global batch: 4 (2 ranks x 2) in the checkpoint, 8 (2 ranks x 4) now; the sample stream "
                          "continues at the same sample, the schedule at the same iteration") == why, "%s", why);
    // mask.ratio_sync=false: the ratio term is per rank, so another split of the same global
    // batch trains towards another objective: a warning (it was called exact).
    cr_assert_eq(config_set(&saved, "mask.ratio_sync=false"), 0);
    now = saved;
    cr_assert_eq(config_set(&now, "data.batch_per_rank=1"), 0);
    cr_expect_eq(checkpoint_resume_check(&st, &saved, &now, 4, why, sizeof why), 1, "4 x 1 = 2 x 2, per-rank ratio");
    cr_expect(strstr(why, "world size: 2 ranks x 2 in the checkpoint, 4 ranks x 1 now") == why, "%s", why);
    cr_expect(strstr(why, "mask.ratio_sync=false") != NULL, "%s", why);
    now = saved;
    cr_expect_eq(checkpoint_resume_check(&st, &saved, &now, 2, why, sizeof why), 0, "same split: %s", why);
    // Refusals pass through.
    cr_assert_eq(config_set(&now, "model.d_state=8"), 0);
    cr_expect_eq(checkpoint_resume_check(&st, &saved, &now, 1, why, sizeof why), -1);

    mv_loader_cursor c;
    checkpoint_resume_cursor(&c, &st, 4);
    cr_expect(c.step == 5 && c.global_batch == 4 && c.seed == 1 && c.epoch_size == 100);
    checkpoint_resume_cursor(&c, &st, 8);   // 20 samples done -> step 3 of 8 starts at 24
    cr_expect(c.step == 3 && c.global_batch == 8 && c.seed == 1 && c.epoch_size == 100, "step %lld", (long long)c.step);
    checkpoint_resume_cursor(&c, &st, 2);   // exactly sample 20
    cr_expect(c.step == 10 && c.global_batch == 2);
    checkpoint_resume_cursor(&c, &st, 3);
    cr_expect_eq(c.step, 7);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(checkpoint, find_latest_skips_debris) {
    char dir[512], found[4200], want[4200], path[4300];
    test_dir(dir, sizeof dir, "latest");
    snprintf(path, sizeof path, "%s/never-made", dir);
    cr_expect_eq(checkpoint_find_latest(path, found, sizeof found), 0, "a missing run directory has none");
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 0, "an empty one neither");

    mv_config cfg;
    tiny t;
    mv_optimizer o;
    mv_train_state st;
    checkpoint_parts(&cfg, &t, &o, &st);
    for (long s = 2; s <= 4; s += 2) {
        o.step = s;
        cr_assert_eq(checkpoint_save_iter(dir, 0, &t.p, &o, &st, &cfg, found, sizeof found), 0, "%s", mv_last_error());
    }
    snprintf(want, sizeof want, "%s/iter_4.h5", dir);
    cr_expect_str_eq(found, want);
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_expect_str_eq(found, want);

    // A crash while writing iter_6: its temporary is never taken, whatever the pointer says.
    snprintf(path, sizeof path, "%s/iter_6.h5.tmp", dir);
    write_text(path, "\x89HDF\r\n partial");
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_expect_str_eq(found, want);
    cr_assert_eq(checkpoint_set_latest(dir, "iter_6.h5.tmp"), 0);
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_expect_str_eq(found, want);

    // Without `latest`, the newest iter file that opens wins; a corrupt newer one is passed over.
    snprintf(path, sizeof path, "%s/latest", dir);
    cr_assert_eq(remove(path), 0);
    snprintf(path, sizeof path, "%s/iter_10.h5", dir);
    write_text(path, "garbage");
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_expect_str_eq(found, want);
    cr_expect_str_eq(mv_last_error(), "", "no stale message from the skipped files");
    // `latest` naming a deleted file falls back too.
    cr_assert_eq(checkpoint_set_latest(dir, "iter_8.h5"), 0);
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_expect_str_eq(found, want);
    // `latest` wins over a higher step (a run resumed from an older checkpoint).
    cr_assert_eq(checkpoint_set_latest(dir, "iter_2.h5"), 0);
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 1);
    snprintf(want, sizeof want, "%s/iter_2.h5", dir);
    cr_expect_str_eq(found, want);

    char tiny_buf[8];
    cr_expect_eq(checkpoint_find_latest(dir, tiny_buf, sizeof tiny_buf), 0, "a path that does not fit is not found");
    optimizer_free(&o);
    params_free(&t.p);
}

Test(checkpoint, rotation_keeps_n_and_best) {
    char dir[512], path[4300];
    test_dir(dir, sizeof dir, "rotate");
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    mv_train_state st;
    checkpoint_parts(&cfg, &t, &o, &st);
    snprintf(path, sizeof path, "%s/best.h5", dir);
    cr_assert_eq(checkpoint_save(path, &t.p, &o, &st, &cfg), 0, "%s", mv_last_error());
    snprintf(path, sizeof path, "%s/iter_3.h5.tmp", dir);   // debris of an old crash
    write_text(path, "partial");
    snprintf(path, sizeof path, "%s/notes.txt", dir);       // not ours: left alone
    write_text(path, "keep me");
    for (long s = 1; s <= 6; s++) {
        o.step = s * 100;
        cr_assert_eq(checkpoint_save_iter(dir, 3, &t.p, &o, &st, &cfg, NULL, 0), 0, "%s", mv_last_error());
    }
    cr_expect(exists(dir, "iter_400.h5") && exists(dir, "iter_500.h5") && exists(dir, "iter_600.h5"));
    cr_expect(!exists(dir, "iter_100.h5") && !exists(dir, "iter_200.h5") && !exists(dir, "iter_300.h5"));
    cr_expect(exists(dir, "best.h5") && exists(dir, "latest") && exists(dir, "notes.txt"));
    cr_expect(!exists(dir, "iter_3.h5.tmp"), "crash debris removed");
    cr_expect_eq(count_files(dir), 3 + 3, "3 iter files + best.h5 + latest + notes.txt");

    // After a rewind (`latest` names an older checkpoint) the higher steps are the course it left:
    // kept and not counted; the keep newest up to `latest`'s step are this course's.
    cr_assert_eq(checkpoint_set_latest(dir, "iter_500.h5"), 0);
    cr_expect_eq(checkpoint_rotate(dir, 1), 1);
    cr_expect(exists(dir, "iter_500.h5") && exists(dir, "iter_600.h5") && !exists(dir, "iter_400.h5"));
    o.step = 200;   // a rewind to 200 (its file gone): 500 and 600 are above it
    cr_assert_eq(checkpoint_save_iter(dir, 0, &t.p, &o, &st, &cfg, NULL, 0), 0);
    o.step = 300;
    cr_assert_eq(checkpoint_save_iter(dir, 2, &t.p, &o, &st, &cfg, NULL, 0), 0, "%s", mv_last_error());
    cr_expect(exists(dir, "iter_200.h5") && exists(dir, "iter_300.h5"), "this course's two, not crowded out");
    cr_expect(exists(dir, "iter_500.h5") && exists(dir, "iter_600.h5"), "the course a rewind left stays");
    cr_assert_eq(checkpoint_set_latest(dir, "iter_600.h5"), 0);   // as when this course reaches 600
    cr_expect_eq(checkpoint_rotate(dir, 1), 3);
    cr_expect(exists(dir, "iter_600.h5") && !exists(dir, "iter_500.h5") && !exists(dir, "iter_300.h5") &&
              !exists(dir, "iter_200.h5"));
    // keep 0 keeps everything; numeric, not lexical, order (iter_1000 is newer than iter_600).
    o.step = 1000;
    cr_assert_eq(checkpoint_save_iter(dir, 0, &t.p, &o, &st, &cfg, NULL, 0), 0);
    cr_expect_eq(count_files(dir), 2 + 3);
    cr_expect_eq(checkpoint_rotate(dir, 1), 1);
    cr_expect(exists(dir, "iter_1000.h5") && !exists(dir, "iter_600.h5"));
    cr_expect_eq(count_files(dir), 1 + 3);
    optimizer_free(&o);
    params_free(&t.p);
}

// A child that has exited: a pid that is no live process (for debris of a killed copy).
static long dead_pid(void) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return (long)pid;
}

// Rotation removes the temporary of an adoption's copy (core/fs.h: NAME.tmp.<pid>) whose
// process is gone, not one a live process is writing. They were kept for good.
Test(checkpoint, rotation_removes_dead_copy_debris) {
    char dir[512], path[4300];
    test_dir(dir, sizeof dir, "rotate_copy");
    snprintf(path, sizeof path, "%s/iter_4.h5.tmp.%ld", dir, dead_pid());
    write_text(path, "partial copy");
    snprintf(path, sizeof path, "%s/iter_6.h5.tmp.%ld", dir, (long)getppid());
    write_text(path, "a copy in progress");
    snprintf(path, sizeof path, "%s/notes.tmp.%ld", dir, dead_pid());
    write_text(path, "not ours");
    cr_expect_eq(checkpoint_rotate(dir, 2), 1);
    cr_expect_eq(count_files(dir), 2, "the live copy and the foreign file stay");
    char name[64];
    snprintf(name, sizeof name, "iter_6.h5.tmp.%ld", (long)getppid());
    cr_expect(exists(dir, name));
}

// After a rewind `latest` names an older checkpoint than the course the rewind left; when the
// one it names is damaged (or gone), --resume auto falls back below it, never to the abandoned
// course's higher steps (it took iter_6 and declared the run finished), and says so.
Test(checkpoint, find_latest_never_passes_latest) {
    char dir[512], found[4200], want[4200], path[4300], skipped[2048];
    test_dir(dir, sizeof dir, "latest_bound");
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    mv_train_state st;
    checkpoint_parts(&cfg, &t, &o, &st);
    for (long s = 2; s <= 6; s += 2) {
        o.step = s;
        cr_assert_eq(checkpoint_save_iter(dir, 0, &t.p, &o, &st, &cfg, NULL, 0), 0, "%s", mv_last_error());
    }
    o.step = 3;   // the rewound course: iter_2 -> iter_3, `latest` names it
    cr_assert_eq(checkpoint_save_iter(dir, 0, &t.p, &o, &st, &cfg, NULL, 0), 0, "%s", mv_last_error());
    snprintf(path, sizeof path, "%s/iter_3.h5", dir);
    write_text(path, "damaged");
    snprintf(want, sizeof want, "%s/iter_2.h5", dir);
    cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), 1);
    cr_expect_str_eq(found, want);
    cr_expect(strstr(skipped, "iter_3.h5") && strstr(skipped, "above iter_3.h5, which latest names"), "%s", skipped);
    // Gone instead of damaged: the same.
    cr_assert_eq(remove(path), 0);
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_expect_str_eq(found, want);
    // Nothing whole below it: an error, not the abandoned course.
    snprintf(path, sizeof path, "%s/iter_2.h5", dir);
    write_text(path, "damaged");
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), -1);
    cr_expect_str_eq(found, "");
    optimizer_free(&o);
    params_free(&t.p);
}

// A --resume OTHER/iter_N.h5 killed during its copy leaves only iter_N.h5.tmp.<pid>: no
// checkpoint is found, and the report names the unfinished copy (the run started over silently).
Test(checkpoint, find_latest_reports_unfinished_copy) {
    char dir[512], found[4200], path[4300], skipped[2048];
    test_dir(dir, sizeof dir, "unfinished_copy");
    snprintf(path, sizeof path, "%s/iter_4.h5.tmp.%ld", dir, dead_pid());
    write_text(path, "partial copy");
    cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), 0);
    cr_expect(strstr(skipped, "iter_4.h5.tmp.") && strstr(skipped, "did not complete"), "%s", skipped);
    // The best.h5 an adoption copies first, killed in its copy: the same.
    test_dir(dir, sizeof dir, "unfinished_best_copy");
    snprintf(path, sizeof path, "%s/best.h5.tmp.%ld", dir, dead_pid());
    write_text(path, "partial copy");
    cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), 0);
    cr_expect(strstr(skipped, "best.h5.tmp.") && strstr(skipped, "did not complete"), "%s", skipped);
}

static void save_state(const char *path, tiny *t, mv_optimizer *o, long step, long best_step, double best) {
    mv_config cfg;
    config_defaults(&cfg);
    mv_train_state st;
    some_state(&st);
    o->step = step;
    st.step = st.iter = step;
    st.best_step = best_step;
    st.best_value = best;
    cr_assert_eq(checkpoint_save(path, &t->p, o, &st, &cfg), 0, "%s", mv_last_error());
}

// A checkpoint that another process holds open for writing (HDF5's file locking: an exclusive
// flock, as h5py's 'r+' takes; an open file description of our own conflicts the same way) is
// locked, not damaged: --resume auto stops with the lock's message instead of passing over it to
// an older checkpoint (a rewind that retrained what it held), reading it says locked rather than
// "not a readable HDF5 file", and adopt_best neither replaces nor removes a locked best.h5.
Test(checkpoint, locked_file_stops_find_latest) {
    char dir[512], found[4200], want[4200], path[4300], skipped[2048];
    test_dir(dir, sizeof dir, "locked");
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    mv_train_state st;
    checkpoint_parts(&cfg, &t, &o, &st);
    for (long s = 2; s <= 4; s += 2) {
        o.step = s;
        cr_assert_eq(checkpoint_save_iter(dir, 0, &t.p, &o, &st, &cfg, NULL, 0), 0, "%s", mv_last_error());
    }
    snprintf(path, sizeof path, "%s/iter_4.h5", dir);
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), -1);
    cr_expect_str_eq(found, "");
    cr_expect(strstr(mv_last_error(), "iter_4.h5 is locked by another process (HDF5 file locking") &&
              strstr(mv_last_error(), "rather than take an older checkpoint"), "%s", mv_last_error());
    mv_train_state got;
    cr_expect_lt(checkpoint_read_meta(path, &got, NULL), 0);
    cr_expect(strstr(mv_last_error(), "is locked by another process"), "%s", mv_last_error());
    cr_expect_null(strstr(mv_last_error(), "not a readable HDF5 file"), "%s", mv_last_error());
    // latest damaged, the older one locked: it cannot be told whether that one is whole either.
    flock(fd, LOCK_UN);
    close(fd);
    write_text(path, "damaged");
    snprintf(want, sizeof want, "%s/iter_2.h5", dir);
    fd = open(want, O_RDONLY);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), -1);
    cr_expect(strstr(mv_last_error(), "iter_2.h5 is locked by another process"), "%s", mv_last_error());
    // best.h5 locked: adopt_best fails rather than remove or replace it.
    char best[4300];
    snprintf(best, sizeof best, "%s/best.h5", dir);
    save_state(best, &t, &o, 2, 2, 0.5);
    int bfd = open(best, O_RDONLY);
    cr_assert(bfd >= 0 && flock(bfd, LOCK_EX | LOCK_NB) == 0);
    mv_train_state none;
    checkpoint_state_init(&none);
    none.step = 2;
    cr_expect_eq(checkpoint_adopt_best(dir, want, &none, NULL, 0, NULL, 0), -1);
    cr_expect(exists(dir, "best.h5"), "a locked best.h5 was removed");
    close(bfd);
    // A reader's shared lock: nothing in the way.
    cr_assert_eq(flock(fd, LOCK_SH), 0);
    cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), 1, "%s",
                 mv_last_error());
    cr_expect_str_eq(found, want);
    close(fd);
    optimizer_free(&o);
    params_free(&t.p);
}

// A run continued in another folder takes its best.h5 along when it is the checkpoint the best
// bookkeeping names (it ended without any best.h5 when no later evaluation beat the saved
// value); without it, the bookkeeping is reset so that the next evaluation writes one.
Test(checkpoint, adopt_best_follows_the_bookkeeping) {
    char src[512], dst[512], other[512], path[4300], copied[4300];
    test_dir(src, sizeof src, "best_src");
    test_dir(dst, sizeof dst, "best_dst");
    test_dir(other, sizeof other, "best_other");
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    tiny_parts(&cfg, &t, &o);
    snprintf(path, sizeof path, "%s/best.h5", src);
    save_state(path, &t, &o, 6, 6, 3.25);
    snprintf(path, sizeof path, "%s/iter_8.h5", src);
    save_state(path, &t, &o, 8, 6, 3.25);
    mv_train_state st;
    cr_assert_eq(checkpoint_read_meta(path, &st, NULL), 0);

    cr_expect_eq(checkpoint_adopt_best(dst, path, &st, copied, sizeof copied, NULL, 0), MV_BEST_COPIED, "%s", mv_last_error());
    char want[4300];
    snprintf(want, sizeof want, "%s/best.h5", src);
    cr_expect_str_eq(copied, want);
    mv_train_state b;
    snprintf(want, sizeof want, "%s/best.h5", dst);
    cr_assert_eq(checkpoint_read_meta(want, &b, NULL), 0, "%s", mv_last_error());
    cr_expect(b.step == 6 && b.best_step == 6 && b.best_value == 3.25);
    cr_expect_eq(checkpoint_adopt_best(dst, path, &st, copied, sizeof copied, NULL, 0), MV_BEST_KEPT, "already there");

    // Another run's best.h5 in the source folder: not taken; the bookkeeping is reset.
    snprintf(want, sizeof want, "%s/best.h5", src);
    save_state(want, &t, &o, 5, 5, 2.0);
    cr_expect_eq(checkpoint_adopt_best(other, path, &st, copied, sizeof copied, NULL, 0), MV_BEST_RESET);
    cr_expect(st.best_step == -1 && isnan(st.best_value) && !st.best_name[0]);
    cr_expect(!exists(other, "best.h5"));
    cr_expect_eq(checkpoint_adopt_best(other, path, &st, copied, sizeof copied, NULL, 0), MV_BEST_KEPT, "nothing recorded: nothing to do");

    // The checkpoint resumed is itself the best one: it becomes best.h5 (here in its own folder,
    // whose best.h5 was deleted).
    snprintf(path, sizeof path, "%s/iter_6.h5", other);
    save_state(path, &t, &o, 6, 6, 3.25);
    cr_assert_eq(checkpoint_read_meta(path, &st, NULL), 0);
    cr_expect_eq(checkpoint_adopt_best(other, path, &st, copied, sizeof copied, NULL, 0), MV_BEST_COPIED, "%s", mv_last_error());
    cr_expect_str_eq(copied, path);
    cr_expect(exists(other, "best.h5"));
    optimizer_free(&o);
    params_free(&t.p);
}

// One weight of a checkpoint changed in place (decode_head.conv_seg.weight, 3 x 5 in `tiny`): the
// file stays well-formed HDF5, and only its checksum tells.
static void damage_weight(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    hid_t ds = H5Dopen2(f, "decode_head.conv_seg.weight", H5P_DEFAULT);
    cr_assert(ds >= 0, "no weight in %s", path);
    float x[15];
    cr_assert(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    x[7] += 0.25f;
    cr_assert(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
}

// A recorded best.h5 whose weights fail their checksum is not the best checkpoint (eval refuses
// it): it is verified as --resume auto verifies iter_<step>.h5, and treated as a truncated one
// is: the record dropped with the reason (not adopted without a word), or, when the checkpoint
// resumed is the best one, replaced by it, the damage still reported.
Test(checkpoint, adopt_best_verifies_best_h5) {
    char dir[512], path[4300], best[4300], copied[4300], why[2048];
    test_dir(dir, sizeof dir, "best_damaged");
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    tiny_parts(&cfg, &t, &o);
    snprintf(best, sizeof best, "%s/best.h5", dir);
    save_state(best, &t, &o, 6, 6, 3.25);
    snprintf(path, sizeof path, "%s/iter_8.h5", dir);
    save_state(path, &t, &o, 8, 6, 3.25);
    cr_assert_eq(checkpoint_set_latest(dir, path), 0, "%s", mv_last_error());
    mv_train_state st;
    cr_assert_eq(checkpoint_read_meta(path, &st, NULL), 0);
    cr_expect_eq(checkpoint_adopt_best(dir, path, &st, copied, sizeof copied, why, sizeof why), MV_BEST_KEPT, "intact: kept");
    cr_expect_str_eq(why, "");
    damage_weight(best);
    cr_expect_eq(checkpoint_adopt_best(dir, path, &st, copied, sizeof copied, why, sizeof why), MV_BEST_RESET, "%s",
                 mv_last_error());
    cr_expect(st.best_step == -1 && isnan(st.best_value) && !st.best_name[0], "the record was kept");
    cr_expect(strstr(why, "best.h5: the weights do not match their checksum"), "%s", why);

    // Resumed from the best step's own checkpoint: it replaces the damaged best.h5.
    snprintf(path, sizeof path, "%s/iter_6.h5", dir);
    save_state(path, &t, &o, 6, 6, 3.25);
    cr_assert_eq(checkpoint_set_latest(dir, path), 0, "%s", mv_last_error());
    cr_assert_eq(checkpoint_read_meta(path, &st, NULL), 0);
    cr_expect_eq(checkpoint_adopt_best(dir, path, &st, copied, sizeof copied, why, sizeof why), MV_BEST_COPIED, "%s",
                 mv_last_error());
    cr_expect_str_eq(copied, path);
    cr_expect(strstr(why, "best.h5: the weights do not match their checksum"), "the damage went unreported: %s", why);
    cr_expect_eq(checkpoint_verify(best), 0, "%s", mv_last_error());
    optimizer_free(&o);
    params_free(&t.p);
}

// The dropped record's warning names each best.h5 it looked at once: in the run's own folder
// only DIR/best.h5 (it used to read "neither DIR/best.h5 nor the best.h5 beside it", one file
// twice), from another folder that one and the best.h5 beside the checkpoint.
Test(checkpoint, adopt_best_says_what_each_file_was) {
    char src[512], dst[512], path[4300], copied[4300], why[2048], want[4400];
    test_dir(src, sizeof src, "best_account_src");
    test_dir(dst, sizeof dst, "best_account_dst");
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    tiny_parts(&cfg, &t, &o);
    snprintf(path, sizeof path, "%s/iter_8.h5", src);
    save_state(path, &t, &o, 8, 6, 3.25);
    mv_train_state st;
    cr_assert_eq(checkpoint_read_meta(path, &st, NULL), 0);
    cr_expect_eq(checkpoint_adopt_best(src, path, &st, copied, sizeof copied, why, sizeof why), MV_BEST_RESET);
    snprintf(want, sizeof want, "%s/best.h5 does not exist", src);
    cr_expect_str_eq(why, want);

    cr_assert_eq(checkpoint_read_meta(path, &st, NULL), 0);
    snprintf(want, sizeof want, "%s/best.h5", src);
    save_state(want, &t, &o, 5, 5, 2.0);   // another course's
    cr_expect_eq(checkpoint_adopt_best(dst, path, &st, copied, sizeof copied, why, sizeof why), MV_BEST_RESET);
    snprintf(want, sizeof want, "%s/best.h5 does not exist; %s/best.h5 is the checkpoint of step 5", dst, src);
    cr_expect_str_eq(why, want);
    optimizer_free(&o);
    params_free(&t.p);
}

// A `latest` that names no file of the folder (empty, a path out of it, an absolute path) is
// ignored for the highest checkpoint, and the report says what it held (it used to be ignored
// without a word).
Test(checkpoint, find_latest_reports_an_unusable_latest) {
    char dir[512], found[4200], want[4200], path[4300], skipped[2048], held[4400];
    test_dir(dir, sizeof dir, "latest_unusable");
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    mv_train_state st;
    checkpoint_parts(&cfg, &t, &o, &st);
    for (long s = 2; s <= 4; s += 2) {
        o.step = s;
        cr_assert_eq(checkpoint_save_iter(dir, 0, &t.p, &o, &st, &cfg, NULL, 0), 0, "%s", mv_last_error());
    }
    snprintf(path, sizeof path, "%s/latest", dir);
    snprintf(want, sizeof want, "%s/iter_4.h5", dir);
    snprintf(held, sizeof held, "%s/iter_2.h5\n", dir);
    const char *contents[] = {"", "../other/iter_5.h5\n", held, "iter_2.h5.tmp\n"};
    const char *says[] = {"latest is empty", "latest holds '../other/iter_5.h5', not the name of a file in",
                          "latest holds '/", "latest names iter_2.h5.tmp, a temporary file"};
    for (int i = 0; i < 4; i++) {
        write_text(path, contents[i]);
        cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), 1, "%s",
                     mv_last_error());
        cr_expect_str_eq(found, want);
        cr_expect(strstr(skipped, says[i]), "latest '%s': %s", contents[i], skipped);
    }
    // Bytes that are not text are shown as '?', and a long line is cut, as a path or as a bare
    // name (of no file).
    char junk[200];
    memset(junk, 'x', sizeof junk - 1);
    junk[0] = '\x01';
    junk[sizeof junk - 1] = '\0';
    write_text(path, junk);
    cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), 1);
    cr_expect(strstr(skipped, "latest names ?xxx") && strstr(skipped, "x..., which does not exist"), "%s", skipped);
    junk[3] = '/';
    write_text(path, junk);
    cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), 1);
    cr_expect(strstr(skipped, "latest holds '?xx/x") && strstr(skipped, "x...', not the name"), "%s", skipped);
    // A good one: nothing to report.
    write_text(path, "iter_4.h5\n");
    cr_expect_eq(checkpoint_find_latest_report(dir, found, sizeof found, skipped, sizeof skipped), 1);
    cr_expect_str_eq(skipped, "");
    optimizer_free(&o);
    params_free(&t.p);
}

// An evaluation that failed on a later domain after its selection domain wrote best.h5 leaves a
// checkpoint of that step with the evaluation pending and the best record from before it: the
// resume redoes the evaluation, so that best.h5 stays (it was removed as another course's, or
// the record dropped with a warning, both untrue).
Test(checkpoint, adopt_best_keeps_the_pending_evaluations_best) {
    char dir[512], path[4300], best[4300], copied[4300], why[2048];
    test_dir(dir, sizeof dir, "best_pending");
    mv_config cfg;
    tiny t;
    mv_optimizer o;
    tiny_parts(&cfg, &t, &o);
    snprintf(best, sizeof best, "%s/best.h5", dir);
    save_state(best, &t, &o, 14, 14, 5.5);
    snprintf(path, sizeof path, "%s/iter_14.h5", dir);
    save_state(path, &t, &o, 14, 7, 4.0);
    cr_assert_eq(checkpoint_set_latest(dir, path), 0, "%s", mv_last_error());
    mv_train_state st;
    cr_assert_eq(checkpoint_read_meta(path, &st, NULL), 0);
    st.eval_pending = 1;
    cr_expect_eq(checkpoint_adopt_best(dir, path, &st, copied, sizeof copied, why, sizeof why), MV_BEST_KEPT, "%s", why);
    cr_expect(st.best_step == 7 && st.best_value == 4.0, "the record changed");
    checkpoint_state_init(&st);   // no best before the evaluation (the first one)
    st.step = st.iter = 14;
    st.eval_pending = 1;
    cr_expect_eq(checkpoint_adopt_best(dir, path, &st, copied, sizeof copied, why, sizeof why), MV_BEST_KEPT);
    cr_expect(exists(dir, "best.h5"), "the pending evaluation's best.h5 was removed");
    st.eval_pending = 0;   // not pending: a best.h5 of that step is not this course's
    cr_expect_eq(checkpoint_adopt_best(dir, path, &st, copied, sizeof copied, why, sizeof why), MV_BEST_REMOVED);
    optimizer_free(&o);
    params_free(&t.p);
}
