// Cityscapes-C against the `imagecorruptions` package itself: checksums of the package's output
// for the deterministic corruptions, and for motion blur, glass blur and snow given this
// implementation's random draws (angle, pixel offsets, snow layer); for the other random
// corruptions, pins of this code's output and checks of their constants (at the end: those
// are not the package's values). The package's expected values (G40x56, G33x47) were computed once by running the package's steps with the libraries it calls (numpy 1.24,
// scikit-image 0.19.3, scipy 1.10, OpenCV 4.6, Pillow 9.4) on the pattern below, with numpy's
// exp replaced by the C library's (numpy's AVX-512 exp differs from it in the last bit, which
// already moves the package's own output by a grey level on some machines).
// They pin three fixes: the uint8 cast truncates with no epsilon (the package's values a
// rounding error below a whole number lose that grey level), the arithmetic is double in the
// package's order (brightness, contrast and saturate from uint8; scipy's Gaussian; OpenCV's
// float32 disk kernel, in its AVX2 order), and snow motion-blurs its whole zoomed layer before cropping it.
#include <criterion/criterion.h>
#include <math.h>
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

// `who`: where the expected values come from ("package", or "pinned" for this code's own).
static void check(int h, int w, const golden *g, size_t n, const char *who) {
    mv_image img = pattern(h, w);
    for (size_t k = 0; k < n; k++)
        for (int s = 1; s <= 5; s++) {
            mv_image out = {0};
            cr_assert_eq(corrupt_image(&out, &img, g[k].corruption, s, 8), 0, "%s", mv_last_error());
            int64_t got[2];
            checksum(&out, got);
            cr_expect(got[0] == g[k].sum[s - 1][0] && got[1] == g[k].sum[s - 1][1],
                      "%dx%d %s s%d: sum %lld (%s %lld), weighted %lld (%s %lld)", h, w,
                      corrupt_name(g[k].corruption), s, (long long)got[0], who, (long long)g[k].sum[s - 1][0],
                      (long long)got[1], who, (long long)g[k].sum[s - 1][1]);
            image_free(&out);
        }
    image_free(&img);
}

Test(corrupt_reference, matches_the_package_40x56) { check(40, 56, G40x56, sizeof G40x56 / sizeof *G40x56, "package"); }

Test(corrupt_reference, matches_the_package_odd_33x47) { check(33, 47, G33x47, sizeof G33x47 / sizeof *G33x47, "package"); }

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

// ---------------------------------------------------------------------------------------
// The random corruptions other than snow, glass and motion blur: the package draws from
// numpy's generator, so its pixels cannot be reproduced and there is no package checksum.
// Two kinds of check instead. (1) Checksums of this implementation's current output on the
// pattern (seed 8), which pin every step and constant as they are now: they are this code's
// output, not the package's. Its severity constants were verified separately against
// the package's formulas by an independent numpy check on flat images (noise: histograms of
// the package's formulas drawn with numpy's generator against this code's output, closer than
// with any constant 4% off; fog strength, frost weights and spatter intensity read back from
// this code's output with the package's formulas). A change to these corruptions that moves a
// grey level fails here and must be checked the same way before the values are renewed.
// (2) Checks that read the severity constants back from the output with the package's
// formulas (docs/corruptions.md), so that a wrong constant fails by itself. Neither pins
// the package's pixels, which nobody can regenerate (its draws come from numpy's global generator).

static const golden PINNED40x56[] = {
    {CORRUPT_GAUSSIAN_NOISE, {{831716, 411307124}, {833423, 411630968}, {835565, 411896458}, {838326, 412106308}, {842690, 412488638}}},
    {CORRUPT_IMPULSE_NOISE, {{832312, 413062102}, {834932, 414196458}, {833786, 411888052}, {836132, 414158160}, {830575, 410989541}}},
    {CORRUPT_SHOT_NOISE, {{820468, 407766785}, {809809, 403066544}, {794241, 395691657}, {757452, 378450039}, {723010, 362261925}}},
    {CORRUPT_SPECKLE_NOISE, {{820549, 407105508}, {815161, 404560403}, {794164, 394367135}, {778608, 386740274}, {757723, 376550473}}},
    {CORRUPT_SPATTER, {{842645, 416887593}, {858484, 425005717}, {870785, 431289689}, {796793, 396521163}, {770366, 383821613}}},
    {CORRUPT_FOG, {{890305, 434899205}, {897006, 437535854}, {904865, 440930988}, {886245, 431988865}, {835942, 407384455}}},
    {CORRUPT_FROST, {{1101330, 543450221}, {1103177, 542244618}, {1097828, 538739450}, {1057634, 518797436}, {1053304, 516296656}}},
};

Test(corrupt_reference, random_corruptions_pinned_40x56) {
    check(40, 56, PINNED40x56, sizeof PINNED40x56 / sizeof *PINNED40x56, "pinned");
}

static mv_image flat(int h, int w, uint8_t g) {
    mv_image img = image_alloc(h, w, 3);
    memset(img.px, g, (size_t)h * w * 3);
    return img;
}

// The fraction of out's bytes for which hit(byte, arg) holds.
static double fraction(const mv_image *out, int (*hit)(int, int), int arg) {
    size_t n = (size_t)out->h * out->w * 3, k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)hit(out->px[i], arg);
    return (double)k / (double)n;
}
static int beyond128(int v, int t) { return v >= 128 + t || v < 128 - t; }
static int salt_or_pepper(int v, int unused) { (void)unused; return v == 0 || v == 255; }
static int pepper(int v, int unused) { (void)unused; return v == 0; }

// A measured fraction against its expectation p over n draws: within 5 standard errors (the
// draws are fixed by the seed, so this never flakes; 5 SE is well under what a constant one
// step off moves it by, see each test).
static void expect_fraction(double got, double p, size_t n, const char *what, int s) {
    double tol = 5 * sqrt(p * (1 - p) / (double)n);
    cr_expect(fabs(got - p) <= tol, "%s s%d: fraction %.5f, expected %.5f +- %.5f", what, s, got, p, tol);
}

#define NH 512
#define NW 512   // 786432 draws: a standard error of 0.05% on a fraction near 0.3

// Gaussian noise: out = x + N(0, sigma) on a flat 128 grey, so a byte is t or more levels from
// 128 (t = 255 sigma, rounded) with probability erfc(t / (255 sigma sqrt 2)), about 0.32;
// sigma 0.26 -> 0.27 moves that by 0.018 (35 standard errors). Speckle the same with the noise
// scaled by x: out = x + x N(0, sigma), levels 128 sigma.
Test(corrupt_reference, noise_sigmas_are_the_packages) {
    static const double GAUSS[5] = {0.08, 0.12, 0.18, 0.26, 0.38}, SPECKLE[5] = {0.15, 0.2, 0.35, 0.45, 0.6};
    mv_image img = flat(NH, NW, 128);
    size_t n = (size_t)NH * NW * 3;
    for (int s = 1; s <= 5; s++) {
        for (int k = 0; k < 2; k++) {
            double level = k == 0 ? 255 * GAUSS[s - 1] : 128 * SPECKLE[s - 1];
            int t = (int)lround(level);
            mv_image out = {0};
            cr_assert_eq(corrupt_image(&out, &img, k == 0 ? CORRUPT_GAUSSIAN_NOISE : CORRUPT_SPECKLE_NOISE, s, 8), 0);
            expect_fraction(fraction(&out, beyond128, t), erfc(t / (level * sqrt(2.0))), n,
                            k == 0 ? "gaussian_noise" : "speckle_noise", s);
            image_free(&out);
        }
    }
    image_free(&img);
}

// Impulse noise: each byte is replaced with probability p, half of them by 0 and half by 255;
// on a flat grey nothing else is 0 or 255. p 0.03 -> 0.035 moves the fraction by 26 standard
// errors.
Test(corrupt_reference, impulse_amount_is_the_packages) {
    static const double AMOUNT[5] = {0.03, 0.06, 0.09, 0.17, 0.27};
    mv_image img = flat(NH, NW, 128);
    size_t n = (size_t)NH * NW * 3;
    for (int s = 1; s <= 5; s++) {
        mv_image out = {0};
        cr_assert_eq(corrupt_image(&out, &img, CORRUPT_IMPULSE_NOISE, s, 8), 0);
        expect_fraction(fraction(&out, salt_or_pepper, 0), AMOUNT[s - 1], n, "impulse_noise (0 or 255)", s);
        expect_fraction(fraction(&out, pepper, 0), AMOUNT[s - 1] / 2, n, "impulse_noise (0)", s);
        image_free(&out);
    }
    image_free(&img);
}

// Shot noise: Poisson(x lambda) / lambda; a count of 0 is the only one that gives byte 0
// (255 / lambda >= 4.25 levels a count), with probability exp(-x lambda). The grey is chosen
// per severity so that x lambda is near 1 (the fraction near 0.37); lambda 25 -> 26 moves it
// by 25 standard errors.
Test(corrupt_reference, shot_lambda_is_the_packages) {
    static const double LAMBDA[5] = {60, 25, 12, 5, 3};
    size_t n = (size_t)NH * NW * 3;
    for (int s = 1; s <= 5; s++) {
        uint8_t g = (uint8_t)lround(255 / LAMBDA[s - 1]);
        mv_image img = flat(NH, NW, g), out = {0};
        cr_assert_eq(corrupt_image(&out, &img, CORRUPT_SHOT_NOISE, s, 8), 0);
        expect_fraction(fraction(&out, pepper, 0), exp(-(g / 255.) * LAMBDA[s - 1]), n, "shot_noise (0)", s);
        image_free(&out);
        image_free(&img);
    }
}

// Fog on a flat grey c: out = (c + strength M) c / (c + strength) with the plasma map M
// normalised to [0, 1]; on a square power-of-two image the whole map is used, so its 0 is in
// the image and the darkest byte is c^2 / (c + strength), to the level (2.5 -> 2.0 at
// severity 4 moves it from 47 to 56).
Test(corrupt_reference, fog_strength_is_the_packages) {
    static const double STRENGTH[5] = {1.5, 2.0, 2.5, 2.5, 3.0};
    mv_image img = flat(64, 64, 200);
    for (int s = 1; s <= 5; s++) {
        mv_image out = {0};
        cr_assert_eq(corrupt_image(&out, &img, CORRUPT_FOG, s, 8), 0);
        int lo = 255;
        for (size_t i = 0; i < 64 * 64 * 3; i++) lo = out.px[i] < lo ? out.px[i] : lo;
        double c = 200 / 255.;
        int want = (int)(c * c / (c + STRENGTH[s - 1]) * 255);
        cr_expect_eq(lo, want, "fog s%d: darkest byte %d, package %d (strength %.1f)", s, lo, want, STRENGTH[s - 1]);
        image_free(&out);
    }
    image_free(&img);
}

// Frost: out = a x + f texture (0..255). On black, out is f texture to the level (the texture
// is the procedural one, cx_frost_texture with the same seed); a flat 100 grey adds a 100
// to every byte (no byte reaches 255 at any severity). f or a one step off (0.7 -> 0.65 at
// severity 3) moves bytes by 5 levels or more.
Test(corrupt_reference, frost_weights_are_the_packages) {
    static const double A[5] = {1.0, 0.8, 0.7, 0.65, 0.6}, F[5] = {0.4, 0.6, 0.7, 0.7, 0.75};
    enum { H = 48, W = 64 };
    size_t n = (size_t)H * W * 3;
    float *tex = malloc(n * sizeof *tex);
    cr_assert(tex);
    cx_frost_texture(tex, H, W, 8);
    mv_image black = flat(H, W, 0), grey = flat(H, W, 100);
    for (int s = 1; s <= 5; s++) {
        mv_image ob = {0}, og = {0};
        cr_assert_eq(corrupt_image(&ob, &black, CORRUPT_FROST, s, 8), 0);
        cr_assert_eq(corrupt_image(&og, &grey, CORRUPT_FROST, s, 8), 0);
        int worst_f = 0, worst_a = 0;
        for (size_t i = 0; i < n; i++) {
            int df = abs(ob.px[i] - (int)(F[s - 1] * tex[i] * 255));
            int da = abs((og.px[i] - ob.px[i]) - (int)lround(A[s - 1] * 100));
            worst_f = df > worst_f ? df : worst_f;
            worst_a = da > worst_a ? da : worst_a;
        }
        cr_expect_leq(worst_f, 1, "frost s%d: f texture off by up to %d levels (f %.2f)", s, worst_f, F[s - 1]);
        cr_expect_leq(worst_a, 1, "frost s%d: a x off by up to %d levels (a %.2f)", s, worst_a, A[s - 1]);
        image_free(&ob);
        image_free(&og);
    }
    image_free(&black);
    image_free(&grey);
    free(tex);
}

// Spatter's water (severities 1-3) on black: out = m colour with m scaled so that its maximum
// is the intensity, so each channel's brightest byte is intensity x (175, 238, 238), to the
// level (0.5 -> 0.6 at severity 3 moves green from 119 to 142).
Test(corrupt_reference, spatter_intensity_is_the_packages) {
    static const double INTENSITY[3] = {0.6, 0.6, 0.5}, COLOUR[3] = {175, 238, 238};
    enum { H = 128, W = 128 };
    mv_image black = flat(H, W, 0);
    for (int s = 1; s <= 3; s++) {
        mv_image out = {0};
        cr_assert_eq(corrupt_image(&out, &black, CORRUPT_SPATTER, s, 8), 0);
        for (int k = 0; k < 3; k++) {
            int hi = 0;
            for (size_t i = 0; i < (size_t)H * W; i++) hi = out.px[i * 3 + k] > hi ? out.px[i * 3 + k] : hi;
            double want = INTENSITY[s - 1] * COLOUR[k];
            cr_expect(hi > 0 && fabs(hi - want) <= 1, "spatter s%d channel %d: brightest byte %d, package %.1f", s, k, hi, want);
        }
        image_free(&out);
    }
    image_free(&black);
}
