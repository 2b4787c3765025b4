// Cityscapes-C against the `imagecorruptions` package itself: checksums of the package's output
// for the deterministic corruptions, and for motion blur, glass blur and snow given this
// implementation's random draws (angle, pixel offsets, snow layer). The expected values were
// computed once by running the package's steps with the libraries it calls (numpy 1.24,
// scikit-image 0.19.3, scipy 1.10, OpenCV 4.6, Pillow 9.4) on the pattern below, with numpy's
// exp replaced by the C library's (numpy's AVX-512 exp differs from it in the last bit, which
// already moves the package's own output by a grey level on some machines).
// They pin three fixes: the uint8 cast truncates with no epsilon (the package's values a
// rounding error below a whole number lose that grey level), the arithmetic is double in the
// package's order (brightness, contrast and saturate from uint8; scipy's Gaussian; OpenCV's
// float32 disk kernel, in its AVX2 order), and snow motion-blurs its whole zoomed layer before cropping it.
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt.h"
#include "data/corrupt_internal.h"

// Integer-only, so the Python side makes the same bytes: a ramp with hash noise, a flat block
// and a saturated stripe.
static mv_image pattern(int h, int w) {
    mv_image img = image_alloc(h, w, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int64_t nx = (int64_t)x * 73856093, ny = (int64_t)y * 19349663;
            int n = (int)((nx ^ ny) % 41);
            uint8_t *p = img.px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)((x * 9 + y * 4 + n) % 256);
            p[1] = (uint8_t)((200 - 3 * x + 5 * y + 256) % 256);
            p[2] = (uint8_t)((x * y + 17 + n) % 256);
            if (y >= 10 && y < 22 && x >= 8 && x < 30) { p[0] = 90; p[1] = 140; p[2] = 200; }
            if (y >= 30 && y < 34) { p[0] = 250; p[1] = 20; p[2] = 5; }
        }
    return img;
}

// The sum of the bytes, and the sum weighted by (index % 1009 + 1): a grey level moved anywhere
// changes the second.
static void checksum(const mv_image *img, int64_t out[2]) {
    out[0] = out[1] = 0;
    for (size_t i = 0; i < (size_t)img->h * img->w * 3; i++) {
        out[0] += img->px[i];
        out[1] += (int64_t)(i % 1009 + 1) * img->px[i];
    }
}

typedef struct { int corruption; int64_t sum[5][2]; } golden;

static const golden G40x56[] = {
    {CORRUPT_MOTION_BLUR, {{835967, 412944206}, {837115, 412587414}, {836962, 411232779}, {837300, 410063654}, {837811, 409906608}}},
    {CORRUPT_GAUSSIAN_BLUR, {{829743, 409611281}, {827691, 407152718}, {824308, 405032445}, {820193, 402890418}, {810679, 398151593}}},
    {CORRUPT_DEFOCUS_BLUR, {{831207, 408692082}, {832430, 408490100}, {833699, 408164956}, {845122, 413960628}, {843666, 413239791}}},
    {CORRUPT_BRIGHTNESS, {{922675, 457876842}, {994548, 494007073}, {1035698, 514818716}, {1060779, 527609063}, {1075452, 534915173}}},
    {CORRUPT_CONTRAST, {{829822, 407433105}, {829699, 406774527}, {830488, 406495547}, {829585, 405446868}, {829410, 405077255}}},
    {CORRUPT_SATURATE, {{1176465, 572721445}, {1275682, 618917269}, {659124, 326595201}, {627002, 310020078}, {624645, 308789105}}},
    {CORRUPT_JPEG_COMPRESSION, {{831388, 411477298}, {835787, 413379892}, {838515, 413383903}, {832522, 410849590}, {830405, 409944863}}},
    {CORRUPT_GLASS_BLUR, {{821618, 404713952}, {823694, 405359221}, {818263, 402741135}, {818892, 402781897}, {822239, 404455937}}},
    {CORRUPT_SNOW, {{1105889, 546305812}, {1307171, 643117847}, {1283217, 631617744}, {1365983, 671491038}, {1491816, 733380380}}},
};

static const golden G33x47[] = {
    {CORRUPT_MOTION_BLUR, {{603934, 293694341}, {607569, 295401877}, {608590, 295269652}, {608728, 294555160}, {607421, 293682639}}},
    {CORRUPT_GAUSSIAN_BLUR, {{594985, 288134624}, {592987, 285949951}, {589355, 283378277}, {584451, 280677663}, {572790, 274813421}}},
    {CORRUPT_DEFOCUS_BLUR, {{596532, 287931388}, {597868, 287620604}, {599581, 286952727}, {608554, 290826827}, {608088, 290610691}}},
    {CORRUPT_BRIGHTNESS, {{662790, 321702577}, {716915, 348083931}, {744904, 361036501}, {760834, 368057138}, {769858, 372116365}}},
    {CORRUPT_CONTRAST, {{594563, 286287743}, {594972, 286110944}, {594734, 285623108}, {594944, 285361912}, {594973, 285188697}}},
    {CORRUPT_SATURATE, {{822335, 395555830}, {887458, 426162013}, {467165, 223437655}, {437824, 210324254}, {435467, 209268231}}},
    {CORRUPT_JPEG_COMPRESSION, {{595535, 288316404}, {595622, 286361619}, {600841, 288690390}, {598291, 287662015}, {600558, 287563383}}},
    {CORRUPT_GLASS_BLUR, {{589267, 283715839}, {589108, 284277670}, {579709, 278067384}, {576621, 277719093}, {574626, 276955569}}},
    {CORRUPT_SNOW, {{818340, 395942275}, {928748, 447034197}, {988136, 475967459}, {1014005, 487014572}, {1038973, 499781757}}},
};

static void check(int h, int w, const golden *g, size_t n) {
    mv_image img = pattern(h, w);
    for (size_t k = 0; k < n; k++)
        for (int s = 1; s <= 5; s++) {
            mv_image out = {0};
            cr_assert_eq(corrupt_image(&out, &img, g[k].corruption, s, 8), 0, "%s", mv_last_error());
            int64_t got[2];
            checksum(&out, got);
            cr_expect(got[0] == g[k].sum[s - 1][0] && got[1] == g[k].sum[s - 1][1],
                      "%dx%d %s s%d: sum %lld (package %lld), weighted %lld (package %lld)", h, w,
                      corrupt_name(g[k].corruption), s, (long long)got[0], (long long)g[k].sum[s - 1][0],
                      (long long)got[1], (long long)g[k].sum[s - 1][1]);
            image_free(&out);
        }
    image_free(&img);
}

Test(corrupt_reference, matches_the_package_40x56) { check(40, 56, G40x56, sizeof G40x56 / sizeof *G40x56); }

Test(corrupt_reference, matches_the_package_odd_33x47) { check(33, 47, G33x47, sizeof G33x47 / sizeof *G33x47); }

// The disk kernels, read back as defocus's response to a single lit pixel, must be OpenCV's to
// the last bit: its AVX2 GaussianBlur fuses some multiply-adds, and a kernel rounded otherwise
// (as the unvectorised OpenCV) moves a pixel near a whole grey level by one level (seen: 1 to 21
// bytes of an image). Expected: the float32 bit patterns of cv2.GaussianBlur's kernels (4.6),
// summed, and summed with weights (index % 1009 + 1).
Test(corrupt_reference, defocus_kernel_is_opencvs_to_the_last_bit) {
    static const int64_t want[5][2] = {{38160625023, 5533290628335}, {89085756391, 12917434676695},
                                       {168263062570, 24398144072650}, {255450826508, 37040369843660},
                                       {419673231337, 92747784125477}};
    const int side = 63, c = side / 2;   // room for the largest kernel (21 x 21) around the centre
    double *x = calloc((size_t)side * side * 3, sizeof *x);
    cr_assert(x);
    for (int s = 1; s <= 5; s++) {
        memset(x, 0, (size_t)side * side * 3 * sizeof *x);
        for (int ch = 0; ch < 3; ch++) x[((size_t)c * side + c) * 3 + ch] = 1;
        cx_defocus_blur(x, side, side, s);
        int L = s < 5 ? 8 : 10, n = 2 * L + 1;
        int64_t got[2] = {0, 0};
        for (int ky = 0; ky < n; ky++)
            for (int kx = 0; kx < n; kx++) {   // a correlation: weight (ky, kx) lands at centre + L - (ky, kx)
                float w = (float)x[((size_t)(c + L - ky) * side + (c + L - kx)) * 3];
                uint32_t bits;
                memcpy(&bits, &w, sizeof bits);
                int i = ky * n + kx;
                got[0] += bits;
                got[1] += (int64_t)(i % 1009 + 1) * bits;
            }
        cr_expect(got[0] == want[s - 1][0] && got[1] == want[s - 1][1], "s%d: %lld %lld, OpenCV %lld %lld", s,
                  (long long)got[0], (long long)got[1], (long long)want[s - 1][0], (long long)want[s - 1][1]);
    }
    free(x);
}

// Contrast of an image whose channel means make many outputs whole numbers in exact
// arithmetic: numpy's float64 lands a rounding error below on 64 of them, and truncates.
Test(corrupt_reference, contrast_truncates_like_numpy) {
    static const int64_t want[5][2] = {{96416, 37064896}, {96416, 37066624}, {96416, 37068448}, {96416, 37070176}, {96416, 37071232}};
    mv_image img = image_alloc(16, 16, 3);
    for (int i = 0; i < 16 * 16 * 3; i++) img.px[i] = (uint8_t)((i * 97 + (i / 3) * 61 + 13) % 256);
    for (int s = 1; s <= 5; s++) {
        mv_image out = {0};
        cr_assert_eq(corrupt_image(&out, &img, CORRUPT_CONTRAST, s, 0), 0);
        int64_t got[2];
        checksum(&out, got);
        cr_expect(got[0] == want[s - 1][0] && got[1] == want[s - 1][1], "s%d: %lld %lld", s, (long long)got[0], (long long)got[1]);
        image_free(&out);
    }
    image_free(&img);
}

// The package's defocus kernels sum to 1 - 4e-9, 1 - 3e-8 and 1 - 6e-9 at severities 1-3
// (float32 weights) and 1.013 / 1.011 at 4-5 (reflect-101 smoothing at the grid's rim), so a
// flat grey level g comes out just below g (truncated to g - 1), or above it.
Test(corrupt_reference, defocus_on_a_flat_image_follows_the_float32_kernel) {
    static const uint8_t want[5][3] = {{89, 139, 199}, {89, 139, 199}, {89, 139, 199}, {91, 141, 202}, {90, 141, 202}};
    mv_image img = image_alloc(40, 50, 3);
    for (int i = 0; i < 40 * 50; i++) { img.px[3 * i] = 90; img.px[3 * i + 1] = 140; img.px[3 * i + 2] = 200; }
    for (int s = 1; s <= 5; s++) {
        mv_image out = {0};
        cr_assert_eq(corrupt_image(&out, &img, CORRUPT_DEFOCUS_BLUR, s, 0), 0);
        for (int i = 0; i < 40 * 50 * 3; i++)
            cr_assert_eq(out.px[i], want[s - 1][i % 3], "s%d pixel %d channel %d: %d, package %d", s, i / 3, i % 3, out.px[i], want[s - 1][i % 3]);
        image_free(&out);
    }
    image_free(&img);
}
