// EXIF orientation: image_read_rgb_oriented turns a JPEG upright as its Orientation tag says
// (all eight values, little- and big-endian EXIF), checked against the EXIF specification's
// description of where the stored first row and column are shown; image_read_rgb keeps the
// stored pixels; a malformed EXIF block or a PNG reads as orientation 1.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/image_io.h"

// A path in the test's folder (in a static buffer: copy it to keep two).
static const char *tfile(const char *name) {
    static char path[4200];
    const char *base = getenv("MV_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/test_image_orientation'", base);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/test_image_orientation/%s", base, name);
    return path;
}

// Four flat quadrants of distinct colours, aligned to JPEG's 16x16 blocks so that quality 100
// keeps each corner's colour within a few levels.
static const uint8_t QUAD[4][3] = {{250, 20, 20}, {20, 250, 20}, {20, 20, 250}, {240, 240, 30}};   // TL TR BL BR
enum { H = 32, W = 64 };

static mv_image quadrants(void) {
    mv_image img = image_alloc(H, W, 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) memcpy(img.px + ((size_t)y * W + x) * 3, QUAD[(y >= H / 2) * 2 + (x >= W / 2)], 3);
    return img;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

// The JPEG of `jpeg` (n bytes) with an APP1 EXIF block holding `tiff` (m bytes) after SOI.
static void write_with_exif(const char *path, const uint8_t *jpeg, size_t n, const uint8_t *tiff, size_t m) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    size_t len = 2 + 6 + m;
    uint8_t head[10] = {0xFF, 0xD8, 0xFF, 0xE1, (uint8_t)(len >> 8), (uint8_t)len, 'E', 'x', 'i', 'f'};
    fwrite(head, 1, 10, f);
    fwrite("\0\0", 1, 2, f);
    fwrite(tiff, 1, m, f);
    fwrite(jpeg + 2, 1, n - 2, f);
    fclose(f);
}

// A TIFF header and IFD0 with two entries (another tag first, then Orientation = v).
static size_t exif_tiff(uint8_t *t, int v, bool le) {
    const uint8_t le_bytes[] = {'I', 'I', 42, 0, 8, 0, 0, 0,  2, 0,
                                0x0F, 0x01, 2, 0, 4, 0, 0, 0, 'a', 'b', 'c', 0,   // Make: ASCII "abc"
                                0x12, 0x01, 3, 0, 1, 0, 0, 0, (uint8_t)v, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t be_bytes[] = {'M', 'M', 0, 42, 0, 0, 0, 8,  0, 2,
                                0x01, 0x0F, 0, 2, 0, 0, 0, 4, 'a', 'b', 'c', 0,
                                0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (uint8_t)v, 0, 0, 0, 0, 0, 0};
    memcpy(t, le ? le_bytes : be_bytes, sizeof le_bytes);
    return sizeof le_bytes;
}

static void expect_colour(const mv_image *img, int y, int x, const uint8_t want[3], int o, const char *what) {
    const uint8_t *p = img->px + ((size_t)y * img->w + x) * 3;
    for (int c = 0; c < 3; c++)
        cr_assert(abs(p[c] - want[c]) <= 8, "orientation %d: %s at (%d, %d) is (%d, %d, %d), want (%d, %d, %d)", o, what,
                  y, x, p[0], p[1], p[2], want[0], want[1], want[2]);
}

Test(image_orientation, all_eight_values_both_byte_orders) {
    // EXIF 2.3, tag 0x0112: where the stored row 0 and column 0 are shown. Corners of the upright
    // image: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right. For each orientation: the
    // corner showing stored (0, 0), and the one showing stored (0, W-1).
    static const int CORNER_OF_TL[9] = {0, 0, 1, 3, 2, 0, 1, 3, 2};
    static const int CORNER_OF_TR[9] = {0, 1, 0, 2, 3, 2, 3, 1, 0};
    mv_image img = quadrants();
    const char *plain = tfile("plain.jpg");
    cr_assert_eq(image_write_jpeg(plain, &img, 100), 0, "%s", mv_last_error());
    image_free(&img);
    size_t n;
    uint8_t *jpeg = slurp(plain, &n);
    mv_image stored;
    cr_assert_eq(image_read_rgb(&stored, plain), 0, "%s", mv_last_error());
    for (int le = 0; le < 2; le++)
        for (int o = 1; o <= 8; o++) {
            uint8_t tiff[64];
            const char *path = tfile("tagged.jpg");
            write_with_exif(path, jpeg, n, tiff, exif_tiff(tiff, o, le));
            mv_image up;
            int got = 0;
            cr_assert_eq(image_read_rgb_oriented(&up, &got, path), 0, "%s", mv_last_error());
            cr_assert_eq(got, o, "%s-endian EXIF: read orientation %d, wrote %d", le ? "little" : "big", got, o);
            bool swap = o >= 5;
            cr_assert_eq(up.h, swap ? W : H, "orientation %d: height %d", o, up.h);
            cr_assert_eq(up.w, swap ? H : W, "orientation %d: width %d", o, up.w);
            int cy[4] = {0, 0, up.h - 1, up.h - 1}, cx[4] = {0, up.w - 1, 0, up.w - 1};
            expect_colour(&up, cy[CORNER_OF_TL[o]], cx[CORNER_OF_TL[o]], QUAD[0], o, "stored top-left");
            expect_colour(&up, cy[CORNER_OF_TR[o]], cx[CORNER_OF_TR[o]], QUAD[1], o, "stored top-right");
            // Exactly the stored pixels, moved.
            mv_image moved = image_alloc(stored.h, stored.w, 3);
            memcpy(moved.px, stored.px, (size_t)H * W * 3);
            image_apply_orientation(&moved, o);
            cr_assert(moved.h == up.h && moved.w == up.w && !memcmp(moved.px, up.px, (size_t)H * W * 3), "orientation %d", o);
            image_free(&moved);
            // The plain reader keeps the stored frame (a dataset label is drawn in it).
            mv_image raw;
            cr_assert_eq(image_read_rgb(&raw, path), 0);
            cr_assert(raw.h == H && raw.w == W && !memcmp(raw.px, stored.px, (size_t)H * W * 3), "orientation %d", o);
            image_free(&raw);
            image_free(&up);
        }
    image_free(&stored);
    free(jpeg);
}

Test(image_orientation, malformed_exif_and_png_read_upright_as_stored) {
    mv_image img = quadrants();
    char plain[4200], png[4200];   // tfile's buffer is reused by every call
    snprintf(plain, sizeof plain, "%s", tfile("plain2.jpg"));
    snprintf(png, sizeof png, "%s", tfile("plain.png"));
    cr_assert_eq(image_write_jpeg(plain, &img, 100), 0);
    cr_assert_eq(image_write_png(png, &img), 0);
    size_t n;
    uint8_t *jpeg = slurp(plain, &n);
    uint8_t tiff[64];
    size_t m = exif_tiff(tiff, 6, true);
    const struct { const char *what; int at; uint8_t value; size_t len; } cases[] = {
        {"wrong TIFF magic", 2, 41, m},
        {"IFD offset past the end", 4, 200, m},
        {"an IFD without entries", 8, 0, m},
        {"orientation out of range", 30, 9, m},
        {"cut inside the entries", 0, 'I', 20},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t bad[64];
        memcpy(bad, tiff, m);
        bad[cases[k].at] = cases[k].value;
        const char *path = tfile("bad.jpg");
        write_with_exif(path, jpeg, n, bad, cases[k].len);
        mv_image up;
        int got = 0;
        cr_assert_eq(image_read_rgb_oriented(&up, &got, path), 0, "%s: %s", cases[k].what, mv_last_error());
        cr_assert_eq(got, 1, "%s: orientation %d", cases[k].what, got);
        cr_assert(up.h == H && up.w == W, "%s", cases[k].what);
        image_free(&up);
    }
    mv_image up;
    int got = 0;
    cr_assert_eq(image_read_rgb_oriented(&up, &got, png), 0, "%s", mv_last_error());
    cr_assert(got == 1 && up.h == H && up.w == W && !memcmp(up.px, img.px, (size_t)H * W * 3));
    image_free(&up);
    image_free(&img);
    free(jpeg);
}
