// The prediction at label size from the decode head's logits, against PyTorch doing what mmseg
// does: F.interpolate (bilinear, align_corners=False) to the network input's size, then to the
// label's size, then argmax. A test resize of factor != 1 (BDD, GTAV, SYNTHIA, Mapillary) makes
// the two resizes differ from one; the test checks that this case is one where they differ.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/error.h"
#include "core/evaluate.h"
#include "core/rng.h"

static const char *tmpdir(void) { return getenv("MV_TEST_TMP") ? getenv("MV_TEST_TMP") : "/tmp"; }

static void write_raw(const char *path, const void *p, size_t bytes) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(p, 1, bytes, f), bytes);
    fclose(f);
}

static void read_raw(const char *path, void *p, size_t bytes) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot read %s", path);
    cr_assert_eq(fread(p, 1, bytes, f), bytes);
    fclose(f);
}

// PyTorch's two-resize argmax (and the one-resize argmax, and each pixel's top-2 margin).
static const char *REFERENCE =
    "import sys, numpy as np, torch, torch.nn.functional as F\n"
    "src, out, K, h4, w4, h, w, lh, lw = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])\n"
    "x = torch.from_numpy(np.fromfile(src, dtype=np.float32).reshape(1, h4, w4, K)).permute(0, 3, 1, 2).double()\n"
    "two = F.interpolate(F.interpolate(x, size=(h, w), mode='bilinear', align_corners=False),\n"
    "                    size=(lh, lw), mode='bilinear', align_corners=False)[0]\n"
    "one = F.interpolate(x, size=(lh, lw), mode='bilinear', align_corners=False)[0]\n"
    "top = two.topk(2, dim=0).values\n"
    "np.concatenate([two.argmax(0).numpy().astype(np.float32).ravel(), one.argmax(0).numpy().astype(np.float32).ravel(),\n"
    "                (top[0] - top[1]).numpy().astype(np.float32).ravel()]).tofile(out)\n";

static void check_case(int K, int h4, int w4, int h, int w, int lh, int lw, uint32_t seed) {
    const char *py = getenv("MV_PYTHON");
    cr_assert(py, "MV_PYTHON must be set (ctest sets it)");
    char src[512], out[512], script[512], cmd[2048];
    // Named by process too: two runs of this test over one build tree must not share files.
    int pid = (int)getpid();
    snprintf(src, sizeof src, "%s/eval_resize_%d_%u_logits.bin", tmpdir(), pid, seed);
    snprintf(out, sizeof out, "%s/eval_resize_%d_%u_ref.bin", tmpdir(), pid, seed);
    snprintf(script, sizeof script, "%s/eval_resize_%d_%u.py", tmpdir(), pid, seed);
    size_t n4 = (size_t)h4 * w4 * K, npx = (size_t)lh * lw;
    float *logits = malloc(sizeof(float) * n4), *ref = malloc(sizeof(float) * 3 * npx);
    for (size_t i = 0; i < n4; i++) logits[i] = 4.0f * (rng_u01(philox4x32(seed, 0, (uint32_t)i, 0, 0).v[0]) - 0.5f);
    write_raw(src, logits, sizeof(float) * n4);
    write_raw(script, REFERENCE, strlen(REFERENCE));
    snprintf(cmd, sizeof cmd, "%s %s %s %s %d %d %d %d %d %d %d", py, script, src, out, K, h4, w4, h, w, lh, lw);
    cr_assert_eq(system(cmd), 0, "reference failed: %s", cmd);
    read_raw(out, ref, sizeof(float) * 3 * npx);

    uint8_t *pred = malloc(npx);
    mv_eval_buffers bufs = {0};
    cr_assert_eq(eval_predict(pred, &bufs, logits, K, h4, w4, h, w, lh, lw), 0, "%s", mv_last_error());
    eval_buffers_free(&bufs);
    size_t wrong = 0, one_differs = 0;
    for (size_t i = 0; i < npx; i++) {
        float two = ref[i], one = ref[npx + i], margin = ref[2 * npx + i];
        if (pred[i] != (uint8_t)two && margin > 1e-5f) wrong++;   // a near-tie may go either way in fp32
        one_differs += one != two;
    }
    cr_expect_eq(wrong, 0, "%zu of %zu pixels differ from PyTorch's two-resize argmax (%dx%d -> %dx%d -> %dx%d)",
                 wrong, npx, h4, w4, h, w, lh, lw);
    if (lh != h || lw != w)
        cr_expect(one_differs > 0, "a single resize gives the same classes here: the case does not test the protocol");
    free(pred); free(logits); free(ref);
    remove(src); remove(out); remove(script);
}

// BDD-like: 720x1280 labels, the image enlarged to fit 1024 (x1.4222), the logits at 1/4.
Test(eval_resize, enlarged_image_two_resizes, .timeout = 120) { check_case(5, 32, 57, 128, 228, 90, 160, 1); }

// GTAV-like: the image shrunk (x0.9734), odd sizes.
Test(eval_resize, shrunk_image_two_resizes, .timeout = 120) { check_case(7, 33, 61, 131, 241, 135, 247, 2); }

// Cityscapes: input and label of one size, where the second resize is the identity.
Test(eval_resize, same_size_one_resize, .timeout = 120) { check_case(4, 16, 32, 64, 128, 64, 128, 3); }
