// Importing weights for inference (weights_load_all; weights_load_for_inference, the path of
// `maskvim eval` and `predict`, adds its warning):
// a file lacking a tensor of the model is refused with a message naming the tensor, and, when
// the file's names carry another prefix (a DDP 'module.' say), naming one of those too; a
// complete file with extra tensors loads, counts them and (eval, predict) warns naming one; a
// wrong shape names the tensor; an integer dataset is refused.
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/error.h"
#include "core/h5util.h"
#include "core/weights_io.h"

static void test_path(char *out, size_t n, const char *name) {
    const char *root = getenv("MV_TEST_TMP");
    if (!root || !root[0]) root = "/tmp";
    mkdir(root, 0755);
    snprintf(out, n, "%s/fault_weights_%s.h5", root, name);
}

typedef struct { mv_params p; float *a, *da, *b, *db, *rv; } reg;

// Tensors a [rows, 3], b [4] and the buffer bn.running_var [2], under `prefix`.
static void reg_build(reg *r, const char *prefix, int rows, float fill) {
    memset(r, 0, sizeof *r);
    char na[128], nb[128], nv[128];
    snprintf(na, sizeof na, "%sdecode_head.conv_seg.weight", prefix);
    snprintf(nb, sizeof nb, "%sdecode_head.conv_seg.bias", prefix);
    snprintf(nv, sizeof nv, "%sdecode_head.bn.running_var", prefix);
    int sa[2] = {rows, 3}, sb[1] = {4}, sv[1] = {2};
    params_add(&r->p, &r->a, &r->da, INIT_UNIFORM, 1.0f, 2, sa, na);
    params_add(&r->p, &r->b, &r->db, INIT_UNIFORM, 1.0f, 1, sb, nb);
    buffer_add(&r->p, &r->rv, INIT_UNIFORM, 1.0f, 1, sv, nv);
    params_allocate(&r->p);
    for (size_t i = 0; i < r->p.num_params; i++) r->p.params[i] = fill + (float)i;
    for (size_t i = 0; i < r->p.num_buffers; i++) r->p.buffers[i] = fill - (float)i;
}

Test(fault_weights, missing_tensor_is_named) {
    char path[4096];
    test_path(path, sizeof path, "missing");
    reg src, dst;
    reg_build(&src, "", 5, 1.0f);
    // A file without the bias: write only a and the buffer.
    hid_t f = h5_create(path);
    cr_assert(f >= 0, "%s", mv_last_error());
    cr_assert_eq(h5_write_floats(f, src.p.items[0].name, src.a, 2, src.p.items[0].shape), 0);
    cr_assert_eq(h5_write_floats(f, src.p.items[2].name, src.rv, 1, src.p.items[2].shape), 0);
    H5Fclose(f);
    reg_build(&dst, "", 5, 0.0f);
    cr_assert_eq(weights_load_all(&dst.p, path, NULL), -1);
    const char *msg = mv_last_error();
    cr_expect(strstr(msg, "decode_head.conv_seg.bias") != NULL, "the message names the missing tensor: %s", msg);
    cr_expect(strstr(msg, "1 of this model's 3 tensors") != NULL, "%s", msg);
    cr_expect(strstr(msg, path) != NULL, "the message names the file: %s", msg);
    params_free(&src.p);
    params_free(&dst.p);
}

Test(fault_weights, other_prefix_is_hinted) {
    char path[4096];
    test_path(path, sizeof path, "prefix");
    reg src, dst;
    reg_build(&src, "module.", 5, 1.0f);
    cr_assert_eq(weights_save(&src.p, path), 0, "%s", mv_last_error());
    reg_build(&dst, "", 5, 0.0f);
    cr_assert_eq(weights_load_all(&dst.p, path, NULL), -1);
    const char *msg = mv_last_error();
    cr_expect(strstr(msg, "3 of this model's 3 tensors are missing, e.g. 'decode_head.") != NULL, "%s", msg);
    cr_expect(strstr(msg, "3 tensors this model does not have, e.g. 'module.decode_head.") != NULL, "%s", msg);
    params_free(&src.p);
    params_free(&dst.p);
}

// The weights file of `src` (built with `fill`) at test path `name`, opened again for editing.
static hid_t saved_for_editing(reg *src, char *path, size_t n, const char *name, float fill) {
    test_path(path, n, name);
    reg_build(src, "", 5, fill);
    cr_assert_eq(weights_save(&src->p, path), 0, "%s", mv_last_error());
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    return f;
}

Test(fault_weights, complete_file_with_extras_loads_exactly) {
    char path[4096];
    reg src, dst;
    hid_t f = saved_for_editing(&src, path, sizeof path, "extra", 3.5f);
    int s1[1] = {3};
    float extra[3] = {1, 2, 3};
    cr_assert_eq(h5_write_floats(f, "classifier.weight", extra, 1, s1), 0);
    H5Fclose(f);
    reg_build(&dst, "", 5, 0.0f);
    int unexpected = -1;
    cr_assert_eq(weights_load_all(&dst.p, path, &unexpected), 0, "%s", mv_last_error());
    cr_expect_eq(unexpected, 1);
    for (int i = 0; i < src.p.count; i++)   // tensor by tensor: the arenas have alignment gaps
        cr_expect(memcmp(*dst.p.items[i].ptr, *src.p.items[i].ptr, sizeof(float) * src.p.items[i].numel) == 0,
                  "%s differs", src.p.items[i].name);
    // eval and predict load it too, and say what was left out: the tensors of a deeper model's
    // file cover a shallower model's, which then ran as another network without a word.
    char warned[2048] = "";
    FILE *w = fmemopen(warned, sizeof warned - 1, "w");
    cr_assert(w);
    cr_assert_eq(weights_load_for_inference(&dst.p, path, w, "maskvim eval"), 0, "%s", mv_last_error());
    fclose(w);
    cr_expect(strstr(warned, "maskvim eval: warning: ") && strstr(warned, "holds 1 tensor this model does not have, "
                                                                  "ignored (e.g. 'classifier.weight')"), "%s", warned);
    params_free(&src.p);
    params_free(&dst.p);
}

// An integer dataset under a tensor's name (class indices, say) is refused, not converted: HDF5
// would read it as floats, and it loaded as weights.
Test(fault_weights, integer_dataset_is_refused) {
    char path[4096];
    reg src, dst;
    hid_t f = saved_for_editing(&src, path, sizeof path, "integer", 1.0f);
    cr_assert(H5Ldelete(f, src.p.items[1].name, H5P_DEFAULT) >= 0);
    hsize_t dims[1] = {4};
    int ints[4] = {0, 1, 2, 3};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(f, src.p.items[1].name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(ds >= 0);
    cr_assert(H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ints) >= 0);
    H5Dclose(ds);
    H5Sclose(space);
    H5Fclose(f);
    reg_build(&dst, "", 5, 0.0f);
    cr_assert_eq(weights_load_all(&dst.p, path, NULL), -1);
    cr_expect(strstr(mv_last_error(), "'decode_head.conv_seg.bias' is integer, not floating point"), "%s",
              mv_last_error());
    params_free(&src.p);
    params_free(&dst.p);
}

Test(fault_weights, wrong_shape_is_named) {
    char path[4096];
    test_path(path, sizeof path, "shape");
    reg src, dst;
    reg_build(&src, "", 7, 1.0f);
    cr_assert_eq(weights_save(&src.p, path), 0, "%s", mv_last_error());
    reg_build(&dst, "", 5, 0.0f);
    cr_assert_eq(weights_load_all(&dst.p, path, NULL), -1);
    const char *msg = mv_last_error();
    cr_expect(strstr(msg, "'decode_head.conv_seg.weight' has shape [7,3], this model expects [5,3]") != NULL, "%s", msg);
    params_free(&src.p);
    params_free(&dst.p);
}

// A tensor holding a NaN or an infinity (weights of a run that diverged, a damaged export) is
// refused when loaded, naming the file, the tensor and the element; eval used to report a
// number and predict to draw every pixel as one class.
Test(fault_weights, non_finite_value_is_named) {
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        char path[4096];
        test_path(path, sizeof path, "nonfinite");
        reg src, dst;
        reg_build(&src, "", 5, 1.0f);
        src.b[2] = bad[k];
        cr_assert_eq(weights_save(&src.p, path), 0, "%s", mv_last_error());
        reg_build(&dst, "", 5, 0.0f);
        cr_assert_eq(weights_load_all(&dst.p, path, NULL), -1, "value %g accepted", (double)bad[k]);
        const char *msg = mv_last_error();
        cr_expect(strstr(msg, path) && strstr(msg, "'decode_head.conv_seg.bias' holds a non-finite value") &&
                      strstr(msg, "at element 2 of 4"), "%s", msg);
        src.b[2] = 0.5f;   // the same file with a finite value loads
        cr_assert_eq(weights_save(&src.p, path), 0, "%s", mv_last_error());
        cr_assert_eq(weights_load_all(&dst.p, path, NULL), 0, "%s", mv_last_error());
        params_free(&src.p);
        params_free(&dst.p);
        remove(path);
    }
}
