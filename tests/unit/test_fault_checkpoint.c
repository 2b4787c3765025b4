// A checkpoint whose structure is intact but whose tensor data is damaged (bit rot, a bad copy)
// is passed over by --resume auto (checkpoint_find_latest), as docs/checkpoints.md says, and
// checkpoint_verify names the file and what does not match; an intact file verifies.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5util.h"
#include "core/optimizer.h"

static void fresh_dir(char *out, size_t n, const char *name) {
    const char *root = getenv("MV_TEST_TMP");
    if (!root || !root[0]) root = "/tmp";
    mkdir(root, 0755);
    snprintf(out, n, "%s/fault_checkpoint_%s", root, name);
    mkdir(out, 0755);
    DIR *d = opendir(out);
    cr_assert(d, "cannot open %s", out);
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') { snprintf(path, sizeof path, "%s/%s", out, e->d_name); remove(path); }
    closedir(d);
}

typedef struct { mv_params p; float *w, *dw, *b, *db, *rv; } reg;

static void reg_build(reg *r) {
    memset(r, 0, sizeof *r);
    int sw[2] = {4, 3}, sb[1] = {4}, sv[1] = {2};
    params_add(&r->p, &r->w, &r->dw, false, INIT_UNIFORM, 1.0f, 2, sw, "decode_head.conv_seg.weight");
    params_add(&r->p, &r->b, &r->db, false, INIT_UNIFORM, 1.0f, 1, sb, "decode_head.conv_seg.bias");
    params_add(&r->p, &r->rv, NULL, true, INIT_UNIFORM, 1.0f, 1, sv, "decode_head.bn.running_var");
    params_allocate(&r->p);
    params_init(&r->p, 5);
}

// Overwrites one value of dataset `name` in place: the file stays a well-formed HDF5 file.
static void damage(const char *path, const char *name, int n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(ds >= 0, "no %s in %s", name, path);
    float *x = malloc(sizeof(float) * n);
    cr_assert(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    x[n / 2] += 1.0f;
    cr_assert(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    free(x);
    H5Dclose(ds);
    H5Fclose(f);
}

Test(fault_checkpoint, damaged_newest_is_passed_over) {
    char dir[512], found[4200], want[4200], path[4300];
    fresh_dir(dir, sizeof dir, "rot");
    mv_config cfg;
    config_defaults(&cfg);
    reg r;
    reg_build(&r);
    mv_optimizer o;
    optimizer_init(&o, &r.p, &cfg.optim);
    for (size_t i = 0; i < r.p.num_params; i++) { o.m[i] = 0.1f * (float)i; o.v[i] = 0.01f * (float)i; }
    mv_train_state st;
    checkpoint_state_init(&st);
    st.world = 1;
    st.batch_per_rank = 2;
    for (long s = 2; s <= 6; s += 2) {
        o.step = s;
        st.step = st.iter = s;
        cr_assert_eq(checkpoint_save_iter(dir, 0, &r.p, &o, &st, &cfg, found, sizeof found), 0, "%s", mv_last_error());
        cr_assert_eq(checkpoint_verify(found), 0, "an intact checkpoint: %s", mv_last_error());
    }
    // iter_6 (named by `latest`): a weight changed. iter_4: a second moment changed.
    snprintf(path, sizeof path, "%s/iter_6.h5", dir);
    damage(path, "decode_head.conv_seg.weight", 12);
    cr_expect_eq(checkpoint_verify(path), -1);
    cr_expect(strstr(mv_last_error(), "iter_6.h5: the weights do not match their checksum") != NULL, "%s", mv_last_error());
    snprintf(path, sizeof path, "%s/iter_4.h5", dir);
    damage(path, "train/adam_v/decode_head.conv_seg.bias", 4);
    cr_expect_eq(checkpoint_verify(path), -1);
    cr_expect(strstr(mv_last_error(), "iter_4.h5: the optimizer moments do not match") != NULL, "%s", mv_last_error());

    mv_clear_error();
    cr_expect_eq(checkpoint_find_latest(dir, found, sizeof found), 1);
    snprintf(want, sizeof want, "%s/iter_2.h5", dir);
    cr_expect_str_eq(found, want, "the newest intact checkpoint is iter_2");
    cr_expect_str_eq(mv_last_error(), "", "no stale message from the skipped files");

    optimizer_free(&o);
    params_free(&r.p);
}
