// PNG and JPEG reading and writing: every encoding the converters meet (RGB, RGBA, gray,
// palette, 16-bit, JPEG), and errors on missing, truncated and corrupt files.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "data/image_io.h"

static char g_dir[4096];

static const char *tmp_path(const char *name) {
    static char path[4200];
    if (!g_dir[0]) {
        const char *base = getenv("MV_TEST_TMP");
        if (!base || !*base) base = "/tmp";
        snprintf(g_dir, sizeof g_dir, "%s/test_image_io", base);
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g_dir);
        cr_assert_eq(system(cmd), 0);
    }
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return path;
}

static mv_image pattern(int h, int w, int c) {
    mv_image img = image_alloc(h, w, c);
    for (int i = 0; i < h * w * c; i++) img.px[i] = (uint8_t)(i * 37 + i / 7);
    return img;
}

// A smooth image, so that JPEG keeps it close.
static mv_image smooth(int h, int w) {
    mv_image img = image_alloc(h, w, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            img.px[(y * w + x) * 3 + 0] = (uint8_t)(x * 255 / (w - 1));
            img.px[(y * w + x) * 3 + 1] = (uint8_t)(y * 255 / (h - 1));
            img.px[(y * w + x) * 3 + 2] = 128;
        }
    return img;
}

static void truncate_file(const char *path, double keep) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, (off_t)(st.st_size * keep)), 0);
}

Test(image_io, png_rgb_rgba_gray_roundtrip) {
    mv_image rgb = pattern(13, 17, 3), back;
    const char *p = tmp_path("rgb.png");
    cr_assert_eq(image_write_png(p, &rgb), 0, "%s", mv_last_error());
    cr_assert_eq(image_read_rgb(&back, p), 0, "%s", mv_last_error());
    cr_assert_eq(back.h, 13);
    cr_assert_eq(back.w, 17);
    cr_assert_eq(back.c, 3);
    cr_assert_eq(memcmp(back.px, rgb.px, 13 * 17 * 3), 0);
    image_free(&back);

    mv_image rgba = pattern(5, 6, 4);
    p = tmp_path("rgba.png");
    cr_assert_eq(image_write_png(p, &rgba), 0);
    cr_assert_eq(image_read_rgb(&back, p), 0);
    for (int i = 0; i < 30; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(back.px[i * 3 + c], rgba.px[i * 4 + c]);
    image_free(&back);

    mv_image gray = pattern(4, 9, 1);
    p = tmp_path("gray.png");
    cr_assert_eq(image_write_png(p, &gray), 0);
    cr_assert_eq(image_read_rgb(&back, p), 0);
    for (int i = 0; i < 36; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(back.px[i * 3 + c], gray.px[i]);
    image_free(&back);
    cr_assert_eq(image_read_png_index(&back, p), 0);
    cr_assert_eq(back.c, 1);
    cr_assert_eq(memcmp(back.px, gray.px, 36), 0);
    image_free(&back);
    mv_png_info info;
    cr_assert_eq(image_png_info(&info, p), 0);
    cr_assert_eq(info.h, 4);
    cr_assert_eq(info.w, 9);
    cr_assert_eq(info.channels, 1);
    cr_assert_eq(info.palette, 0);
    cr_assert_eq(image_read_png_index(&back, tmp_path("rgb.png")), -1, "an RGB PNG is not a label");
    cr_assert(strstr(mv_last_error(), "rgb.png"), "%s", mv_last_error());
    image_free(&rgb);
    image_free(&rgba);
    image_free(&gray);
}

// Palette PNGs (GTAV, Mapillary labels): the index reader returns indices, not colours.
Test(image_io, palette_png_indices_not_colours) {
    uint8_t pal[256 * 3];
    for (int i = 0; i < 256; i++) {
        pal[3 * i] = (uint8_t)(255 - i);
        pal[3 * i + 1] = (uint8_t)(i * 3);
        pal[3 * i + 2] = (uint8_t)(i ^ 0x55);
    }
    mv_image idx = image_alloc(7, 11, 1);
    for (int i = 0; i < 77; i++) idx.px[i] = (uint8_t)(i * 3 % 256);
    const char *p = tmp_path("pal.png");
    cr_assert_eq(image_write_png_palette(p, &idx, pal, 256), 0, "%s", mv_last_error());
    mv_png_info info;
    cr_assert_eq(image_png_info(&info, p), 0);
    cr_assert_eq(info.palette, 1);
    mv_image back;
    cr_assert_eq(image_read_png_index(&back, p), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(back.px, idx.px, 77), 0);
    image_free(&back);
    cr_assert_eq(image_read_rgb(&back, p), 0);
    for (int i = 0; i < 77; i++)
        for (int c = 0; c < 3; c++) cr_assert_eq(back.px[3 * i + c], pal[3 * idx.px[i] + c]);
    image_free(&back);
    image_free(&idx);
}

// 16-bit PNGs (SYNTHIA labels): full values, host order; the RGB reader scales to 8 bits.
Test(image_io, png16_full_depth) {
    mv_image16 img = {3, 5, 3, malloc(3 * 5 * 3 * sizeof(uint16_t))};
    for (int i = 0; i < 45; i++) img.px[i] = (uint16_t)(i * 1111 + (i % 3 == 0 ? 7 : 0));
    const char *p = tmp_path("deep.png");
    cr_assert_eq(image_write_png16(p, &img), 0, "%s", mv_last_error());
    mv_image16 back;
    cr_assert_eq(image_read_png16(&back, p), 0, "%s", mv_last_error());
    cr_assert_eq(back.c, 3);
    cr_assert_eq(back.h, 3);
    for (int i = 0; i < 45; i++) cr_assert_eq(back.px[i], img.px[i], "value %d: %u vs %u", i, back.px[i], img.px[i]);
    image16_free(&back);
    mv_image rgb;
    cr_assert_eq(image_read_rgb(&rgb, p), 0);
    for (int i = 0; i < 45; i++) {
        int want = (img.px[i] * 255 + 32895) / 65535;  // libpng's rounded scaling
        cr_assert(abs(rgb.px[i] - want) <= 1, "value %d: %d vs %d", i, rgb.px[i], want);
    }
    image_free(&rgb);
    mv_image idx;
    cr_assert_eq(image_read_png_index(&idx, p), -1);
    image16_free(&img);
    // An 8-bit file read at 16 bits is widened, not scaled.
    mv_image g = pattern(2, 3, 1);
    p = tmp_path("g8.png");
    cr_assert_eq(image_write_png(p, &g), 0);
    cr_assert_eq(image_read_png16(&back, p), 0);
    for (int i = 0; i < 6; i++) cr_assert_eq(back.px[i], g.px[i]);
    image16_free(&back);
    image_free(&g);
}

Test(image_io, jpeg_file_and_memory) {
    mv_image img = smooth(48, 64), back, back2;
    const char *p = tmp_path("smooth.jpg");
    cr_assert_eq(image_write_jpeg(p, &img, 95), 0, "%s", mv_last_error());
    cr_assert_eq(image_read_rgb(&back, p), 0, "%s", mv_last_error());
    cr_assert_eq(back.h, 48);
    cr_assert_eq(back.w, 64);
    double err = 0;
    for (int i = 0; i < 48 * 64 * 3; i++) err += abs(back.px[i] - img.px[i]);
    err /= 48 * 64 * 3;
    cr_assert_lt(err, 2.0, "mean abs error %.2f", err);
    cr_assert_gt(err, 0.0, "JPEG is lossy: some change expected");
    uint8_t *buf;
    size_t len;
    cr_assert_eq(image_encode_jpeg(&buf, &len, &img, 95), 0);
    cr_assert_eq(image_decode_jpeg(&back2, buf, len, "mem"), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(back.px, back2.px, 48 * 64 * 3), 0, "file and memory paths must agree");
    // Lower quality: a smaller file and a bigger error.
    uint8_t *buf10;
    size_t len10;
    cr_assert_eq(image_encode_jpeg(&buf10, &len10, &img, 10), 0);
    cr_assert_lt(len10, len);
    free(buf);
    free(buf10);
    image_free(&back);
    image_free(&back2);
    image_free(&img);
}

Test(image_io, errors_name_the_file) {
    mv_image out;
    cr_assert_eq(image_read_rgb(&out, tmp_path("does_not_exist.png")), -1);
    cr_assert(strstr(mv_last_error(), "does_not_exist.png") && strstr(mv_last_error(), "cannot open"), "%s",
              mv_last_error());

    const char *txt = tmp_path("text.png");
    FILE *f = fopen(txt, "w");
    fputs("this is not an image at all", f);
    fclose(f);
    cr_assert_eq(image_read_rgb(&out, txt), -1);
    cr_assert(strstr(mv_last_error(), "text.png") && strstr(mv_last_error(), "neither"), "%s", mv_last_error());
    cr_assert_eq(image_read_png_index(&out, txt), -1);
    cr_assert(strstr(mv_last_error(), "not a PNG"), "%s", mv_last_error());

    // Truncated PNG.
    mv_image img = pattern(40, 40, 3);
    const char *p = tmp_path("trunc.png");
    cr_assert_eq(image_write_png(p, &img), 0);
    truncate_file(p, 0.5);
    cr_assert_eq(image_read_rgb(&out, p), -1);
    cr_assert(strstr(mv_last_error(), "trunc.png"), "%s", mv_last_error());
    cr_expect(strstr(mv_last_error(), "the file ends early (truncated"), "%s", mv_last_error());   // not "Read Error"

    // Flipped bytes inside the compressed data: the CRC or zlib stream must fail.
    p = tmp_path("flip.png");
    cr_assert_eq(image_write_png(p, &img), 0);
    f = fopen(p, "r+b");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    for (long off = 60; off < n - 20; off += 97) {
        fseek(f, off, SEEK_SET);
        fputc(0xAA, f);
    }
    fclose(f);
    cr_assert_eq(image_read_rgb(&out, p), -1);
    cr_assert(strstr(mv_last_error(), "flip.png") && strstr(mv_last_error(), "corrupt"), "%s", mv_last_error());

    // Truncated JPEG: libjpeg would pad it with grey; we refuse.
    mv_image sm = smooth(64, 64);
    p = tmp_path("trunc.jpg");
    cr_assert_eq(image_write_jpeg(p, &sm, 90), 0);
    truncate_file(p, 0.6);
    cr_assert_eq(image_read_rgb(&out, p), -1);
    cr_assert(strstr(mv_last_error(), "trunc.jpg") && strstr(mv_last_error(), "JPEG"), "%s", mv_last_error());
    uint8_t junk[16] = {0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3};
    cr_assert_eq(image_decode_jpeg(&out, junk, sizeof junk, "junkbuf"), -1);
    cr_assert(strstr(mv_last_error(), "junkbuf"), "%s", mv_last_error());

    // Writing into a missing folder fails cleanly.
    cr_assert_eq(image_write_png(tmp_path("no/such/dir/x.png"), &img), -1);
    cr_assert(strstr(mv_last_error(), "x.png"), "%s", mv_last_error());
    image_free(&img);
    image_free(&sm);
}

// Junk bytes between markers (camera JPEGs often pad before EOI) leave every pixel intact:
// libjpeg only warns "extraneous bytes before marker", and the image must decode exactly as
// the clean file does. Damaged entropy-coded data stays an error.
Test(image_io, jpeg_extraneous_bytes_decode_corrupt_scan_refused) {
    mv_image img = smooth(32, 48), clean, padded, bad;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(image_encode_jpeg(&buf, &len, &img, 90), 0, "%s", mv_last_error());
    cr_assert(len > 4 && buf[len - 2] == 0xFF && buf[len - 1] == 0xD9);
    cr_assert_eq(image_decode_jpeg(&clean, buf, len, "clean"), 0, "%s", mv_last_error());

    uint8_t *pad = malloc(len + 3);
    memcpy(pad, buf, len - 2);
    pad[len - 2] = 0x12, pad[len - 1] = 0x34, pad[len] = 0x56;  // 3 junk bytes, then EOI
    pad[len + 1] = 0xFF, pad[len + 2] = 0xD9;
    const char *p = tmp_path("padded.jpg");
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(pad, 1, len + 3, f), len + 3);
    fclose(f);
    cr_assert_eq(image_read_rgb(&padded, p), 0, "%s", mv_last_error());
    cr_assert_eq(padded.h, 32);
    cr_assert_eq(padded.w, 48);
    cr_assert_eq(memcmp(padded.px, clean.px, 32 * 48 * 3), 0, "junk before EOI changed the pixels");
    image_free(&padded);

    // Flip bytes in the middle of the scan: a real corruption, refused by name.
    memcpy(pad, buf, len);
    for (size_t off = len / 2; off < len / 2 + 24; off += 3) pad[off] ^= 0x5A;
    int rc = image_decode_jpeg(&bad, pad, len, "flipped.jpg");
    if (rc == 0) {  // the flips may land on valid codes; then the pixels must at least differ
        cr_assert_neq(memcmp(bad.px, clean.px, 32 * 48 * 3), 0);
        image_free(&bad);
    } else {
        cr_assert(strstr(mv_last_error(), "flipped.jpg") && strstr(mv_last_error(), "JPEG"), "%s", mv_last_error());
    }
    free(pad);
    free(buf);
    image_free(&clean);
    image_free(&img);
}
