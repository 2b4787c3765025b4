// The inputs real datasets and users hand to the image readers, written here byte by byte with
// libpng, libjpeg and zlib (no Pillow, no ImageMagick): every PNG colour type and bit depth,
// Adam7, gamma and ICC chunks, 16-bit labels, JPEG baseline / progressive / gray / CMYK / YCCK /
// 4:2:0 / 4:4:4 / EXIF, and the damaged ones (truncated, bad CRC, empty, mislabelled, huge
// declared size), which must fail with the file's name and never abort or exit.
#include <criterion/criterion.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <png.h>
#include <jpeglib.h>
#include <zlib.h>
#include "core/error.h"
#include "data/image_io.h"

// Test inputs are described positionally, trailing fields left zero.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

// ---------------------------------------------------------------------------------------
// Files

static const char *tpath(const char *name) {
    static char dir[4096], path[4][4200];
    static int slot;
    if (!dir[0]) {
        const char *base = getenv("MV_TEST_TMP");
        if (!base || !*base) base = "/tmp";
        snprintf(dir, sizeof dir, "%s/test_image_io_inputs", base);
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
        cr_assert_eq(system(cmd), 0);
    }
    slot = (slot + 1) % 4;
    snprintf(path[slot], sizeof path[slot], "%s/%s", dir, name);
    return path[slot];
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const uint8_t *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

// The error names the file and says `what`.
static void assert_fails_naming(int rc, const char *path, const char *what) {
    cr_assert_eq(rc, -1, "%s: accepted", path);
    const char *e = mv_last_error();
    cr_assert(strstr(e, path), "error does not name %s: %s", path, e);
    if (what) cr_assert(strstr(e, what), "error lacks '%s': %s", what, e);
}

// ---------------------------------------------------------------------------------------
// PNG writer for test inputs: samples one per byte (bit depth <= 8; packed by libpng) or
// uint16 in host order (bit depth 16).

typedef struct {
    int w, h, bd, ct, interlace;
    const void *samples;
    const png_color *pal;
    int npal;
    const uint8_t *trns;     // palette alpha
    int ntrns;
    const png_color_16 *trns_color;  // gray / RGB tRNS
} tpng;

static int ct_channels(int ct) {
    return ct == PNG_COLOR_TYPE_GRAY ? 1 : ct == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : ct == PNG_COLOR_TYPE_RGB ? 3
         : ct == PNG_COLOR_TYPE_RGBA ? 4 : 1;
}

static void tpng_write(const char *path, const tpng *s) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    int bps = s->bd == 16 ? 2 : 1;
    size_t stride = (size_t)s->w * ct_channels(s->ct) * bps;
    png_bytep *rows = malloc(sizeof(png_bytep) * s->h);
    if (setjmp(png_jmpbuf(png))) cr_assert_fail("libpng refused to write test input %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, s->w, s->h, s->bd, s->ct, s->interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s->pal) png_set_PLTE(png, info, s->pal, s->npal);
    if (s->trns || s->trns_color) png_set_tRNS(png, info, s->trns, s->ntrns, s->trns_color);
    png_write_info(png, info);
    if (s->bd < 8) png_set_packing(png);
    if (s->bd == 16) png_set_swap(png);
    for (int y = 0; y < s->h; y++) rows[y] = (png_bytep)s->samples + (size_t)y * stride;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

// A whole chunk: length, type, data, CRC.
static size_t make_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t len) {
    out[0] = (uint8_t)(len >> 24), out[1] = (uint8_t)(len >> 16), out[2] = (uint8_t)(len >> 8), out[3] = (uint8_t)len;
    memcpy(out + 4, type, 4);
    if (len) memcpy(out + 8, data, len);
    uint32_t crc = (uint32_t)crc32(0, out + 4, len + 4);
    out[8 + len] = (uint8_t)(crc >> 24), out[9 + len] = (uint8_t)(crc >> 16);
    out[10 + len] = (uint8_t)(crc >> 8), out[11 + len] = (uint8_t)crc;
    return len + 12;
}

// Inserts a chunk right after IHDR (byte 33).
static void png_insert_chunk(const char *path, const char *type, const uint8_t *data, uint32_t len) {
    size_t n;
    uint8_t *buf = slurp(path, &n);
    uint8_t *out = malloc(n + len + 12);
    memcpy(out, buf, 33);
    size_t k = make_chunk(out + 33, type, data, len);
    memcpy(out + 33 + k, buf + 33, n - 33);
    spit(path, out, n + k);
    free(out);
    free(buf);
}

// Offset of the first chunk of `type`.
static size_t png_find_chunk(const uint8_t *buf, size_t n, const char *type) {
    size_t off = 8;
    while (off + 12 <= n) {
        uint32_t len = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 | (uint32_t)buf[off + 2] << 8 | buf[off + 3];
        if (!memcmp(buf + off + 4, type, 4)) return off;
        off += (size_t)len + 12;
    }
    cr_assert_fail("no %s chunk", type);
    return 0;
}

// A PNG whose IHDR declares w x h, with a tiny (wrong) IDAT: only the header matters.
static void png_with_header(const char *path, uint32_t w, uint32_t h) {
    uint8_t buf[256], ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                                  (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                                  8, 2, 0, 0, 0};
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    size_t n = 8;
    n += make_chunk(buf + n, "IHDR", ihdr, 13);
    uint8_t raw[4] = {0, 1, 2, 3}, z[64];
    uLongf zl = sizeof z;
    cr_assert_eq(compress(z, &zl, raw, sizeof raw), Z_OK);
    n += make_chunk(buf + n, "IDAT", z, (uint32_t)zl);
    n += make_chunk(buf + n, "IEND", NULL, 0);
    spit(path, buf, n);
}

static uint8_t *noise(size_t n, unsigned seed) {
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

static void read_rgb_ok(mv_image *out, const char *path, int h, int w) {
    cr_assert_eq(image_read_rgb(out, path), 0, "%s", mv_last_error());
    cr_assert_eq(out->h, h);
    cr_assert_eq(out->w, w);
    cr_assert_eq(out->c, 3);
}

// ---------------------------------------------------------------------------------------
// PNG: colour types. The RGB reader does what OpenCV's IMREAD_COLOR (mmseg's image loader)
// does: alpha is dropped, not composited over a background; tRNS likewise; gray is replicated.

Test(image_io_inputs, png_alpha_dropped_gray_replicated_palette_expanded) {
    enum { h = 5, w = 7, n = h * w };
    uint8_t *rgba = noise(n * 4, 1), *ga = noise(n * 2, 2);
    for (int i = 0; i < n; i++) rgba[4 * i + 3] = (uint8_t)(i % 2 ? 0 : 128);  // fully and half transparent
    mv_image out;
    const char *p = tpath("rgba8.png");
    tpng_write(p, &(tpng){w, h, 8, PNG_COLOR_TYPE_RGBA, 0, rgba});
    read_rgb_ok(&out, p, h, w);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(out.px[3 * i + c], rgba[4 * i + c], "RGBA pixel %d: not dropped", i);
    image_free(&out);

    p = tpath("ga8.png");
    tpng_write(p, &(tpng){w, h, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, ga});
    read_rgb_ok(&out, p, h, w);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(out.px[3 * i + c], ga[2 * i], "gray+alpha pixel %d", i);
    image_free(&out);
    cr_assert_eq(image_read_png_index(&out, p), -1, "gray+alpha is not a one-channel label");

    // Palette with and without tRNS: colours of the palette, alpha dropped.
    png_color pal[16];
    uint8_t trns[16], idx[n];
    for (int i = 0; i < 16; i++) pal[i] = (png_color){(uint8_t)(i * 16), (uint8_t)(255 - i * 9), (uint8_t)(i * i)};
    for (int i = 0; i < 16; i++) trns[i] = (uint8_t)(i * 17);
    for (int i = 0; i < n; i++) idx[i] = (uint8_t)(i % 16);
    for (int with_trns = 0; with_trns < 2; with_trns++) {
        p = tpath(with_trns ? "pal_trns.png" : "pal.png");
        tpng_write(p, &(tpng){w, h, 8, PNG_COLOR_TYPE_PALETTE, 0, idx, pal, 16, with_trns ? trns : NULL, with_trns ? 16 : 0});
        read_rgb_ok(&out, p, h, w);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(out.px[3 * i + 0], pal[idx[i]].red);
            cr_assert_eq(out.px[3 * i + 1], pal[idx[i]].green);
            cr_assert_eq(out.px[3 * i + 2], pal[idx[i]].blue);
        }
        image_free(&out);
        cr_assert_eq(image_read_png_index(&out, p), 0, "%s", mv_last_error());
        cr_assert_eq(memcmp(out.px, idx, n), 0, "label indices, not colours");
        image_free(&out);
    }

    // RGB with a tRNS colour key: no alpha channel appears.
    uint8_t *rgb = noise(n * 3, 3);
    p = tpath("rgb_trns.png");
    png_color_16 key = {0, rgb[0], rgb[1], rgb[2], 0};
    tpng_write(p, &(tpng){w, h, 8, PNG_COLOR_TYPE_RGB, 0, rgb, NULL, 0, NULL, 0, &key});
    read_rgb_ok(&out, p, h, w);
    cr_assert_eq(memcmp(out.px, rgb, n * 3), 0);
    image_free(&out);
    free(rgba);
    free(ga);
    free(rgb);
}

// 1, 2 and 4-bit gray and palette PNGs: the RGB reader scales gray to 0..255 (OpenCV does the
// same); the label reader scales 2- and 4-bit gray as Pillow does and returns 1-bit gray and
// palette indices raw, one per byte; the 16-bit reader returns raw values.
Test(image_io_inputs, png_low_bit_depths) {
    enum { h = 6, w = 11, n = h * w };  // odd width: a partial last byte in every packed row
    for (int bd = 1; bd <= 4; bd *= 2) {
        int maxv = (1 << bd) - 1;
        uint8_t v[n];
        for (int i = 0; i < n; i++) v[i] = (uint8_t)((i * 7 + i / w) % (maxv + 1));
        char name[64];
        snprintf(name, sizeof name, "gray%d.png", bd);
        const char *p = tpath(name);
        tpng_write(p, &(tpng){w, h, bd, PNG_COLOR_TYPE_GRAY, 0, v});
        mv_image out;
        read_rgb_ok(&out, p, h, w);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) cr_assert_eq(out.px[3 * i + c], v[i] * 255 / maxv, "%d-bit gray %d", bd, i);
        image_free(&out);
        // Labels as Pillow (mmseg's LoadAnnotations) decodes them: 1-bit gray is mode "1" (0/1),
        // 2- and 4-bit gray are scaled to 8 bits (v * 85, v * 17; Pillow 9.4 checked).
        cr_assert_eq(image_read_png_index(&out, p), 0, "%s", mv_last_error());
        for (int i = 0; i < n; i++)
            cr_assert_eq(out.px[i], bd == 1 ? v[i] : v[i] * 255 / maxv, "%d-bit gray label %d: %d", bd, i, out.px[i]);
        image_free(&out);
        mv_image16 o16;
        cr_assert_eq(image_read_png16(&o16, p), 0, "%s", mv_last_error());
        for (int i = 0; i < n; i++) cr_assert_eq(o16.px[i], v[i]);
        image16_free(&o16);

        // The same with a tRNS gray key: still no alpha, same values.
        png_color_16 key = {0, 0, 0, 0, (png_uint_16)maxv};
        snprintf(name, sizeof name, "gray%d_trns.png", bd);
        p = tpath(name);
        tpng_write(p, &(tpng){w, h, bd, PNG_COLOR_TYPE_GRAY, 0, v, NULL, 0, NULL, 0, &key});
        read_rgb_ok(&out, p, h, w);
        for (int i = 0; i < n; i++) cr_assert_eq(out.px[3 * i], v[i] * 255 / maxv);
        image_free(&out);
        cr_assert_eq(image_read_png_index(&out, p), 0, "%s", mv_last_error());
        for (int i = 0; i < n; i++) cr_assert_eq(out.px[i], bd == 1 ? v[i] : v[i] * 255 / maxv);
        image_free(&out);

        png_color pal[16];
        for (int i = 0; i <= maxv; i++) pal[i] = (png_color){(uint8_t)(10 + i), (uint8_t)(200 - i), (uint8_t)(i * 15)};
        snprintf(name, sizeof name, "pal%d.png", bd);
        p = tpath(name);
        tpng_write(p, &(tpng){w, h, bd, PNG_COLOR_TYPE_PALETTE, 0, v, pal, maxv + 1});
        read_rgb_ok(&out, p, h, w);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(out.px[3 * i + 0], pal[v[i]].red);
            cr_assert_eq(out.px[3 * i + 1], pal[v[i]].green);
            cr_assert_eq(out.px[3 * i + 2], pal[v[i]].blue);
        }
        image_free(&out);
        cr_assert_eq(image_read_png_index(&out, p), 0, "%s", mv_last_error());
        cr_assert_eq(memcmp(out.px, v, n), 0, "%d-bit palette label: raw indices", bd);
        image_free(&out);
        mv_png_info info;
        cr_assert_eq(image_png_info(&info, p), 0);
        cr_assert_eq(info.bit_depth, bd);
        cr_assert_eq(info.palette, 1);
    }
}

// Adam7-interlaced files decode to the same pixels as the plain ones.
Test(image_io_inputs, png_interlaced_adam7) {
    enum { h = 13, w = 19, n = h * w };  // not a multiple of 8: partial Adam7 passes
    uint8_t *rgb = noise(n * 3, 4), idx[n];
    for (int i = 0; i < n; i++) idx[i] = (uint8_t)(i % 34);
    const char *p = tpath("adam7_rgb.png");
    tpng_write(p, &(tpng){w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, rgb});
    mv_image out;
    read_rgb_ok(&out, p, h, w);
    cr_assert_eq(memcmp(out.px, rgb, n * 3), 0);
    image_free(&out);

    png_color pal[256] = {{0, 0, 0}};
    p = tpath("adam7_pal.png");
    tpng_write(p, &(tpng){w, h, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_ADAM7, idx, pal, 256});
    cr_assert_eq(image_read_png_index(&out, p), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(out.px, idx, n), 0);
    image_free(&out);

    p = tpath("adam7_gray2.png");
    uint8_t v2[n];
    for (int i = 0; i < n; i++) v2[i] = (uint8_t)(i % 4);
    tpng_write(p, &(tpng){w, h, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, v2});
    cr_assert_eq(image_read_png_index(&out, p), 0, "%s", mv_last_error());
    for (int i = 0; i < n; i++) cr_assert_eq(out.px[i], v2[i] * 85, "2-bit gray scaled as Pillow does, %d", i);
    image_free(&out);

    uint16_t v16[n * 3];
    for (int i = 0; i < n * 3; i++) v16[i] = (uint16_t)(i * 977u);
    p = tpath("adam7_16.png");
    tpng_write(p, &(tpng){w, h, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, v16});
    mv_image16 o16;
    cr_assert_eq(image_read_png16(&o16, p), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(o16.px, v16, sizeof v16), 0);
    image16_free(&o16);
    free(rgb);
}

// gAMA, cHRM, sRGB and iCCP chunks (a real ICC profile or a broken one) do not change the
// decoded samples: no colour management, as in OpenCV and Pillow's default load. A broken
// profile is a libpng warning, not an error.
Test(image_io_inputs, png_gamma_and_icc_chunks_leave_samples_alone) {
    enum { h = 4, w = 9, n = h * w };
    uint8_t *rgb = noise(n * 3, 5);
    const char *p = tpath("gamma.png");
    tpng_write(p, &(tpng){w, h, 8, PNG_COLOR_TYPE_RGB, 0, rgb});
    uint8_t gama[4] = {0x00, 0x01, 0x86, 0xA0};  // gamma 1.0 (100000): would brighten if applied
    png_insert_chunk(p, "gAMA", gama, 4);
    mv_image out;
    read_rgb_ok(&out, p, h, w);
    cr_assert_eq(memcmp(out.px, rgb, n * 3), 0, "gAMA applied");
    image_free(&out);

    // iCCP: name, NUL, method 0, zlib(profile). A garbage profile.
    p = tpath("bad_iccp.png");
    tpng_write(p, &(tpng){w, h, 8, PNG_COLOR_TYPE_RGB, 0, rgb});
    uint8_t prof[200], chunk[512];
    for (int i = 0; i < 200; i++) prof[i] = (uint8_t)(i * 13);
    prof[0] = 0, prof[1] = 0, prof[2] = 0, prof[3] = 200;  // declared length matches
    memcpy(chunk, "junk\0\0", 6);
    uLongf zl = sizeof chunk - 6;
    cr_assert_eq(compress(chunk + 6, &zl, prof, sizeof prof), Z_OK);
    png_insert_chunk(p, "iCCP", chunk, (uint32_t)(6 + zl));
    read_rgb_ok(&out, p, h, w);
    cr_assert_eq(memcmp(out.px, rgb, n * 3), 0);
    image_free(&out);

    // sRGB + gAMA + cHRM written by libpng itself.
    p = tpath("srgb.png");
    FILE *f = fopen(p, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) cr_assert_fail("libpng write");
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, 0, 0, 0);
    png_set_sRGB_gAMA_and_cHRM(png, info, PNG_sRGB_INTENT_PERCEPTUAL);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rgb + y * w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    read_rgb_ok(&out, p, h, w);
    cr_assert_eq(memcmp(out.px, rgb, n * 3), 0);
    image_free(&out);
    free(rgb);
}

// A 16-bit RGB image read as 8-bit keeps each sample's high byte, as OpenCV's IMREAD_COLOR does
// (png_set_strip_16; mmseg decodes images with OpenCV). The 16-bit reader keeps the
// whole value.
Test(image_io_inputs, png16_rgb_image_keeps_high_byte_like_opencv) {
    enum { h = 2, w = 4, n = h * w };
    uint16_t v[n * 3];
    for (int i = 0; i < n * 3; i++) v[i] = (uint16_t)(0x7FFF + i * 0x0101 + (i % 2) * 0x80);
    v[0] = 0x7FFF;   // high byte 0x7F = 127; rounded scaling would give 128
    v[1] = 0x00FF;   // 0 vs 1
    v[2] = 0xFF7F;   // 255 vs 254... (both 0xFF here, kept for the record)
    const char *p = tpath("rgb16.png");
    tpng_write(p, &(tpng){w, h, 16, PNG_COLOR_TYPE_RGB, 0, v});
    mv_image out;
    read_rgb_ok(&out, p, h, w);
    for (int i = 0; i < n * 3; i++) cr_assert_eq(out.px[i], v[i] >> 8, "sample %d: %d, want %d", i, out.px[i], v[i] >> 8);
    image_free(&out);
    mv_image16 o16;
    cr_assert_eq(image_read_png16(&o16, p), 0, "%s", mv_last_error());
    cr_assert_eq(o16.c, 3);
    cr_assert_eq(memcmp(o16.px, v, sizeof v), 0);
    image16_free(&o16);

    uint16_t g[n];
    for (int i = 0; i < n; i++) g[i] = (uint16_t)(0x12FF + i * 0x1111);
    p = tpath("gray16_image.png");
    tpng_write(p, &(tpng){w, h, 16, PNG_COLOR_TYPE_GRAY, 0, g});
    read_rgb_ok(&out, p, h, w);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(out.px[3 * i + c], g[i] >> 8);
    image_free(&out);
}

// Label PNGs at 16 bits. SYNTHIA's (multi-channel): the 16-bit reader gives the whole value of
// every channel (docs/data.md, SYNTHIA: never strip to 8 bits). A one-channel 16-bit gray label (what
// cv2.imwrite of a uint16 array gives) is read at its whole value by the label reader; a value
// that does not fit a label byte is an error naming the pixel, never wrapped or truncated.
Test(image_io_inputs, png16_labels_whole_value) {
    enum { h = 3, w = 5, n = h * w };
    uint16_t syn[n * 3];
    for (int i = 0; i < n; i++) {
        syn[3 * i] = (uint16_t)(i % 23);      // class id
        syn[3 * i + 1] = (uint16_t)(1000 + i * 300);  // instance id, > 255
        syn[3 * i + 2] = 0;
    }
    const char *p = tpath("synthia16.png");
    tpng_write(p, &(tpng){w, h, 16, PNG_COLOR_TYPE_RGB, 0, syn});
    mv_image16 o16;
    cr_assert_eq(image_read_png16(&o16, p), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(o16.px, syn, sizeof syn), 0);
    image16_free(&o16);
    mv_image lab;
    assert_fails_naming(image_read_png_index(&lab, p), p, "one-channel");

    uint16_t g[n];
    for (int i = 0; i < n; i++) g[i] = (uint16_t)(i * 17 % 256);
    g[n - 1] = 255;
    p = tpath("gray16_label.png");
    tpng_write(p, &(tpng){w, h, 16, PNG_COLOR_TYPE_GRAY, 0, g});
    cr_assert_eq(image_read_png_index(&lab, p), 0, "16-bit gray label refused: %s", mv_last_error());
    cr_assert_eq(lab.c, 1);
    for (int i = 0; i < n; i++) cr_assert_eq(lab.px[i], g[i], "pixel %d", i);
    image_free(&lab);

    g[2 * w + 3] = 256 + 7;   // would wrap to 7 in a uint8 cast
    p = tpath("gray16_label_big.png");
    tpng_write(p, &(tpng){w, h, 16, PNG_COLOR_TYPE_GRAY, 0, g});
    assert_fails_naming(image_read_png_index(&lab, p), p, "263");
    cr_assert(strstr(mv_last_error(), "y 2, x 3"), "%s", mv_last_error());
}

// An RGB (or RGBA, gray+alpha) PNG where a label is expected: a clear error, not garbage.
Test(image_io_inputs, label_reader_refuses_colour_pngs) {
    enum { h = 3, w = 4, n = h * w };
    uint8_t *px = noise(n * 4, 6);
    int cts[3] = {PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGBA, PNG_COLOR_TYPE_GRAY_ALPHA};
    const char *names[3] = {"label_rgb.png", "label_rgba.png", "label_ga.png"};
    for (int k = 0; k < 3; k++) {
        const char *p = tpath(names[k]);
        tpng_write(p, &(tpng){w, h, 8, cts[k], 0, px});
        mv_image lab;
        assert_fails_naming(image_read_png_index(&lab, p), p, "one-channel");
    }
    free(px);
}

// ---------------------------------------------------------------------------------------
// PNG: damaged files

Test(image_io_inputs, png_damaged_files_fail_naming_the_file) {
    enum { h = 40, w = 50, n = h * w };
    uint8_t *rgb = noise(n * 3, 7);
    const char *good = tpath("good.png");
    tpng_write(good, &(tpng){w, h, 8, PNG_COLOR_TYPE_RGB, 0, rgb});
    size_t len;
    uint8_t *buf = slurp(good, &len);
    size_t idat = png_find_chunk(buf, len, "IDAT"), iend = png_find_chunk(buf, len, "IEND");
    mv_image out;
    mv_image16 o16;
    mv_png_info info;

    // Truncations: inside the signature, inside IHDR, inside IDAT, just before IEND.
    size_t cuts[5] = {5, 20, idat + 20, idat + (iend - idat) / 2, iend};
    for (int k = 0; k < 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "cut%zu.png", cuts[k]);
        const char *p = tpath(name);
        spit(p, buf, cuts[k]);
        assert_fails_naming(image_read_rgb(&out, p), p, NULL);
        assert_fails_naming(image_read_png_index(&out, p), p, NULL);
        assert_fails_naming(image_read_png16(&o16, p), p, NULL);
    }

    // A bad CRC on IDAT, pixels intact: refused (libpng's default for critical chunks).
    uint8_t *bad = malloc(len);
    memcpy(bad, buf, len);
    bad[iend - 1] ^= 0x01;   // last byte of IDAT's CRC
    const char *p = tpath("idat_crc.png");
    spit(p, bad, len);
    assert_fails_naming(image_read_rgb(&out, p), p, "CRC");
    // A bad CRC on IHDR: refused too.
    memcpy(bad, buf, len);
    bad[32] ^= 0x01;
    p = tpath("ihdr_crc.png");
    spit(p, bad, len);
    assert_fails_naming(image_read_rgb(&out, p), p, "CRC");
    assert_fails_naming(image_png_info(&info, p), p, "CRC");
    // A bad CRC on an ancillary chunk (tEXt): libpng drops the chunk, the pixels decode.
    p = tpath("text_crc.png");
    spit(p, buf, len);
    png_insert_chunk(p, "tEXt", (const uint8_t *)"Comment\0hello", 13);
    size_t l2;
    uint8_t *b2 = slurp(p, &l2);
    b2[33 + 12 + 13 - 1] ^= 0x01;
    spit(p, b2, l2);
    free(b2);
    read_rgb_ok(&out, p, h, w);
    cr_assert_eq(memcmp(out.px, rgb, n * 3), 0);
    image_free(&out);

    // Zero bytes, text, JPEG bytes under a .png name.
    p = tpath("empty.png");
    spit(p, buf, 0);
    assert_fails_naming(image_read_rgb(&out, p), p, NULL);
    assert_fails_naming(image_read_png_index(&out, p), p, "not a PNG");
    assert_fails_naming(image_read_png16(&o16, p), p, "not a PNG");
    assert_fails_naming(image_png_info(&info, p), p, "not a PNG");
    p = tpath("text.png");
    spit(p, (const uint8_t *)"<html>not found</html>\n", 23);
    assert_fails_naming(image_read_rgb(&out, p), p, "neither a PNG nor a JPEG");
    assert_fails_naming(image_read_png_index(&out, p), p, "not a PNG");
    mv_image small = image_alloc(8, 8, 3);
    memset(small.px, 90, 8 * 8 * 3);
    p = tpath("really_a_jpeg.png");
    cr_assert_eq(image_write_jpeg(p, &small, 90), 0);
    read_rgb_ok(&out, p, 8, 8);   // told apart by signature, not by name
    image_free(&out);
    assert_fails_naming(image_read_png_index(&out, p), p, "not a PNG");
    image_free(&small);
    free(bad);
    free(buf);
    free(rgb);
}

// A directory or an unreadable path: the error says why, not "0 bytes".
Test(image_io_inputs, directory_is_a_read_error) {
    const char *p = tpath("a_dir.png");
    mkdir(p, 0755);
    mv_image out;
    mv_image16 o16;
    assert_fails_naming(image_read_rgb(&out, p), p, strerror(EISDIR));
    assert_fails_naming(image_read_png_index(&out, p), p, strerror(EISDIR));
    assert_fails_naming(image_read_png16(&o16, p), p, strerror(EISDIR));
    assert_fails_naming(image_read_jpeg(&out, p), p, strerror(EISDIR));
}

// A header declaring 100000 x 100000 (40 GB as RGBA) fails at the header: no allocation.
Test(image_io_inputs, png_huge_declared_size_refused) {
    uint32_t sizes[4][2] = {{100000, 100000}, {MV_IMAGE_MAX_SIDE + 1, 16}, {16, MV_IMAGE_MAX_SIDE + 1},
                            {0x7FFFFFFF, 0x7FFFFFFF}};
    for (int k = 0; k < 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "huge%d.png", k);
        const char *p = tpath(name);
        png_with_header(p, sizes[k][0], sizes[k][1]);
        mv_image out;
        mv_image16 o16;
        mv_png_info info;
        assert_fails_naming(image_read_rgb(&out, p), p, "16384");
        assert_fails_naming(image_read_png_index(&out, p), p, "16384");
        assert_fails_naming(image_read_png16(&o16, p), p, "16384");
        assert_fails_naming(image_png_info(&info, p), p, "16384");
    }
    const char *p = tpath("zero_width.png");
    png_with_header(p, 0, 10);
    mv_image out;
    assert_fails_naming(image_read_rgb(&out, p), p, NULL);
}

// ---------------------------------------------------------------------------------------
// JPEG writer for test inputs

typedef struct {
    int w, h, comps;
    J_COLOR_SPACE in, out;      // out: the colour space stored in the file
    int progressive, h0, v0;    // luma sampling factors: 2,2 = 4:2:0; 1,1 = 4:4:4
    int quality, restart;
    const uint8_t *exif;        // APP1 payload, or NULL
    size_t exif_len;
} tjpg;

static void tjpg_write(const char *path, const uint8_t *px, const tjpg *s) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = s->w;
    ci.image_height = s->h;
    ci.input_components = s->comps;
    ci.in_color_space = s->in;
    jpeg_set_defaults(&ci);
    jpeg_set_colorspace(&ci, s->out);
    jpeg_set_quality(&ci, s->quality, TRUE);
    if (s->out != JCS_GRAYSCALE) {
        ci.comp_info[0].h_samp_factor = s->h0;
        ci.comp_info[0].v_samp_factor = s->v0;
        for (int c = 1; c < ci.num_components; c++) ci.comp_info[c].h_samp_factor = ci.comp_info[c].v_samp_factor = 1;
        if (s->out == JCS_YCCK || s->out == JCS_CMYK)
            ci.comp_info[3].h_samp_factor = s->h0, ci.comp_info[3].v_samp_factor = s->v0;  // K at full resolution
    }
    if (s->progressive) jpeg_simple_progression(&ci);
    ci.restart_interval = (unsigned)s->restart;
    jpeg_start_compress(&ci, TRUE);
    if (s->exif) jpeg_write_marker(&ci, JPEG_APP0 + 1, s->exif, (unsigned)s->exif_len);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)px + (size_t)ci.next_scanline * s->w * s->comps;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

// What libjpeg itself decodes a file to, in `space` (JCS_CMYK for the CMYK reference).
static uint8_t *libjpeg_decode(const char *path, J_COLOR_SPACE space, int *comps) {
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&ci);
    FILE *f = fopen(path, "rb");
    jpeg_stdio_src(&ci, f);
    jpeg_read_header(&ci, TRUE);
    ci.out_color_space = space;
    jpeg_start_decompress(&ci);
    *comps = ci.output_components;
    size_t stride = (size_t)ci.output_width * ci.output_components;
    uint8_t *px = malloc(stride * ci.output_height);
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = px + stride * ci.output_scanline;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    fclose(f);
    return px;
}

static uint8_t *smooth_rgb(int h, int w) {
    uint8_t *p = malloc((size_t)h * w * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            p[(y * w + x) * 3 + 0] = (uint8_t)(x * 255 / (w - 1));
            p[(y * w + x) * 3 + 1] = (uint8_t)(y * 255 / (h - 1));
            p[(y * w + x) * 3 + 2] = (uint8_t)((x + y) * 2);
        }
    return p;
}

static double mean_abs(const uint8_t *a, const uint8_t *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs((int)a[i] - (int)b[i]);
    return s / (double)n;
}

// Baseline 4:2:0, 4:4:4, 4:2:2 with restart markers, progressive, grayscale, odd sizes: all decode
// to RGB exactly as libjpeg decodes them (the pixels OpenCV's libjpeg path gives, in RGB order).
Test(image_io_inputs, jpeg_variants_decode_as_libjpeg) {
    enum { h = 37, w = 53 };
    uint8_t *rgb = smooth_rgb(h, w);
    struct { const char *name; tjpg s; } v[] = {
        {"base420.jpg", {w, h, 3, JCS_RGB, JCS_YCbCr, 0, 2, 2, 92, 0, NULL, 0}},
        {"base444.jpg", {w, h, 3, JCS_RGB, JCS_YCbCr, 0, 1, 1, 92, 0, NULL, 0}},
        {"base422_rst.jpg", {w, h, 3, JCS_RGB, JCS_YCbCr, 0, 2, 1, 92, 2, NULL, 0}},
        {"prog420.jpg", {w, h, 3, JCS_RGB, JCS_YCbCr, 1, 2, 2, 92, 0, NULL, 0}},
        {"prog444.jpg", {w, h, 3, JCS_RGB, JCS_YCbCr, 1, 1, 1, 92, 0, NULL, 0}},
    };
    mv_image out[5];
    for (int k = 0; k < 5; k++) {
        const char *p = tpath(v[k].name);
        tjpg_write(p, rgb, &v[k].s);
        read_rgb_ok(&out[k], p, h, w);
        int comps;
        uint8_t *ref = libjpeg_decode(p, JCS_RGB, &comps);
        cr_assert_eq(memcmp(out[k].px, ref, (size_t)h * w * 3), 0, "%s differs from libjpeg", v[k].name);
        cr_assert_lt(mean_abs(out[k].px, rgb, (size_t)h * w * 3), 3.0, "%s", v[k].name);
        free(ref);
    }
    // A progressive file holds the same coefficients as the baseline one.
    cr_assert_eq(memcmp(out[0].px, out[3].px, (size_t)h * w * 3), 0, "progressive 4:2:0 != baseline");
    cr_assert_eq(memcmp(out[1].px, out[4].px, (size_t)h * w * 3), 0, "progressive 4:4:4 != baseline");
    for (int k = 0; k < 5; k++) image_free(&out[k]);

    uint8_t g[h * w];
    for (int i = 0; i < h * w; i++) g[i] = (uint8_t)(i % w * 4);
    const char *p = tpath("gray.jpg");
    tjpg_write(p, g, &(tjpg){w, h, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, 1, 1, 95, 0, NULL, 0});
    mv_image go;
    read_rgb_ok(&go, p, h, w);
    int comps;
    uint8_t *ref = libjpeg_decode(p, JCS_GRAYSCALE, &comps);
    for (int i = 0; i < h * w; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(go.px[3 * i + c], ref[i], "gray JPEG replicated");
    free(ref);
    image_free(&go);
    free(rgb);
}

// Adobe CMYK (transform 0) and YCCK (transform 2) JPEGs: decoded as OpenCV does (mmseg's image
// loader): libjpeg gives CMYK, then per channel R = K - ((255 - C) * K >> 8) (opencv
// imgcodecs utils.cpp icvCvt_CMYK2BGR_8u_C4C3R), which reads Adobe's inverted CMYK.
Test(image_io_inputs, jpeg_cmyk_and_ycck_decoded_like_opencv) {
    enum { h = 24, w = 32 };
    uint8_t cmyk[h * w * 4];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = cmyk + (y * w + x) * 4;
            if (x < 16 && y < 16) { q[0] = 255, q[1] = 0, q[2] = 0, q[3] = 255; }   // Adobe-inverted: red
            else { q[0] = (uint8_t)(x * 8), q[1] = (uint8_t)(y * 10), q[2] = 128, q[3] = (uint8_t)(200 + x); }
        }
    J_COLOR_SPACE stored[2] = {JCS_CMYK, JCS_YCCK};
    for (int k = 0; k < 2; k++) {
        const char *p = tpath(k ? "ycck.jpg" : "cmyk.jpg");
        tjpg_write(p, cmyk, &(tjpg){w, h, 4, JCS_CMYK, stored[k], k, 1, 1, 100, 0, NULL, 0});
        mv_image out;
        cr_assert_eq(image_read_rgb(&out, p), 0, "%s", mv_last_error());
        cr_assert_eq(out.h, h);
        cr_assert_eq(out.w, w);
        int comps;
        uint8_t *ref = libjpeg_decode(p, JCS_CMYK, &comps);
        cr_assert_eq(comps, 4);
        for (int i = 0; i < h * w; i++) {
            const uint8_t *q = ref + 4 * i;
            int kk = q[3];
            for (int c = 0; c < 3; c++) {
                int want = kk - ((255 - q[c]) * kk >> 8);
                cr_assert_eq(out.px[3 * i + c], want, "%s pixel %d channel %d: %d vs %d", p, i, c, out.px[3 * i + c], want);
            }
        }
        // The red patch is red.
        const uint8_t *r = out.px + (5 * w + 5) * 3;
        cr_assert(r[0] > 240 && r[1] < 15 && r[2] < 15, "%s: (%d,%d,%d) not red", p, r[0], r[1], r[2]);
        free(ref);
        image_free(&out);
    }
}

// EXIF orientation is not applied: pixels come in stored order, the frame the label PNGs are
// drawn in (see image_io.h).
Test(image_io_inputs, jpeg_exif_orientation_not_applied) {
    enum { h = 16, w = 40 };
    uint8_t *rgb = smooth_rgb(h, w);
    static const uint8_t exif[] = {'E', 'x', 'i', 'f', 0, 0,
                                   'I', 'I', 42, 0, 8, 0, 0, 0,         // TIFF header, IFD0 at 8
                                   1, 0,                                 // one entry
                                   0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0,  // Orientation = 6 (rotate 90 CW)
                                   0, 0, 0, 0};
    const char *plain = tpath("noexif.jpg"), *rot = tpath("exif6.jpg");
    tjpg_write(plain, rgb, &(tjpg){w, h, 3, JCS_RGB, JCS_YCbCr, 0, 2, 2, 90, 0, NULL, 0});
    tjpg_write(rot, rgb, &(tjpg){w, h, 3, JCS_RGB, JCS_YCbCr, 0, 2, 2, 90, 0, exif, sizeof exif});
    mv_image a, b;
    read_rgb_ok(&a, plain, h, w);
    read_rgb_ok(&b, rot, h, w);   // not w x h
    cr_assert_eq(memcmp(a.px, b.px, (size_t)h * w * 3), 0);
    image_free(&a);
    image_free(&b);
    free(rgb);
}

// Truncated files, a marker inside the entropy-coded data, 12-bit precision and a huge declared
// size: each an error naming the file (libjpeg's default handler would exit() or pad with grey).
Test(image_io_inputs, jpeg_damaged_files_fail_naming_the_file) {
    enum { h = 64, w = 64 };
    uint8_t *rgb = smooth_rgb(h, w);
    const char *good = tpath("good.jpg"), *prog = tpath("good_prog.jpg");
    tjpg_write(good, rgb, &(tjpg){w, h, 3, JCS_RGB, JCS_YCbCr, 0, 2, 2, 90, 0, NULL, 0});
    tjpg_write(prog, rgb, &(tjpg){w, h, 3, JCS_RGB, JCS_YCbCr, 1, 2, 2, 90, 0, NULL, 0});
    size_t len, plen;
    uint8_t *buf = slurp(good, &len), *pbuf = slurp(prog, &plen);
    mv_image out;
    size_t cuts[4] = {2, 30, len / 2, len - 2};   // after SOI, inside headers, mid-scan, EOI missing
    for (int k = 0; k < 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "cut%zu.jpg", cuts[k]);
        const char *p = tpath(name);
        spit(p, buf, cuts[k]);
        if (cuts[k] >= 8) assert_fails_naming(image_read_rgb(&out, p), p, "JPEG");
        else assert_fails_naming(image_read_rgb(&out, p), p, NULL);
        assert_fails_naming(image_read_jpeg(&out, p), p, "JPEG");
        assert_fails_naming(image_decode_jpeg(&out, buf, cuts[k], p), p, NULL);
    }
    const char *p = tpath("cut_prog.jpg");
    spit(p, pbuf, plen * 2 / 3);
    assert_fails_naming(image_read_rgb(&out, p), p, "JPEG");

    // RST5 planted in the middle of the scan of a file without restart intervals.
    size_t sos = 0;
    for (size_t i = 2; i + 1 < len; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xDA) { sos = i; break; }
    cr_assert_gt(sos, 0);
    size_t scan = sos + 2 + ((size_t)buf[sos + 2] << 8 | buf[sos + 3]);
    size_t at = scan + (len - scan) / 2;
    while (buf[at - 1] == 0xFF || buf[at] == 0xFF) at++;
    uint8_t *bad = malloc(len);
    memcpy(bad, buf, len);
    bad[at] = 0xFF, bad[at + 1] = 0xD5;
    p = tpath("marker_in_scan.jpg");
    spit(p, bad, len);
    assert_fails_naming(image_read_rgb(&out, p), p, "Corrupt JPEG data");

    // 12-bit precision (SOF0 P = 12): libjpeg's 8-bit build refuses.
    size_t sof = 0;
    for (size_t i = 2; i + 1 < len; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xC0) { sof = i; break; }
    cr_assert_gt(sof, 0);
    memcpy(bad, buf, len);
    bad[sof + 4] = 12;
    p = tpath("precision12.jpg");
    spit(p, bad, len);
    assert_fails_naming(image_read_rgb(&out, p), p, "JPEG");

    // 60000 x 60000 declared.
    memcpy(bad, buf, len);
    bad[sof + 5] = 0xEA, bad[sof + 6] = 0x60, bad[sof + 7] = 0xEA, bad[sof + 8] = 0x60;
    p = tpath("huge.jpg");
    spit(p, bad, len);
    assert_fails_naming(image_read_rgb(&out, p), p, "16384");
    assert_fails_naming(image_decode_jpeg(&out, bad, len, p), p, "16384");

    p = tpath("empty.jpg");
    spit(p, buf, 0);
    assert_fails_naming(image_read_rgb(&out, p), p, NULL);
    assert_fails_naming(image_read_jpeg(&out, p), p, "JPEG");
    free(bad);
    free(buf);
    free(pbuf);
    free(rgb);
}
