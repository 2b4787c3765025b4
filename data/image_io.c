// PNG (libpng) and JPEG (libjpeg) decoding and encoding for mv_image (see image_io.h).
// Both libraries report errors by longjmp; every decoder keeps its resources in a context
// struct owned by the caller's frame, so cleanup after a longjmp never touches clobbered locals.
#include "data/image_io.h"
#include <errno.h>
#include <inttypes.h>
#include <png.h>
#include <setjmp.h>

// PNG stores 16-bit samples big-endian; libpng swaps them into host order only when asked to.
#define MV_HOST_LITTLE_ENDIAN (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jpeglib.h>
#include <jerror.h>
#include "core/error.h"
#include "core/fs.h"

void image16_free(mv_image16 *img) {
    if (!img) return;
    free(img->px);
    img->px = NULL;
    img->h = img->w = img->c = 0;
}

// Opens an image for reading; a folder is refused here (fopen accepts one, and reading it would
// look like an empty file).
static FILE *open_input(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mv_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        mv_fail("%s: cannot read: %s", path, strerror(EISDIR));
        return NULL;
    }
    return f;
}

static int sniff(const char *path, uint8_t head[8]) {
    FILE *f = open_input(path);
    if (!f) return -1;
    size_t n = fread(head, 1, 8, f);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (e) return mv_fail("%s: cannot read: %s", path, strerror(e));
    if (n < 8) return mv_fail("%s: file too short to be an image (%zu bytes)", path, n);
    return 0;
}

// ---------------------------------------------------------------------------------------
// PNG decoding

enum { PNG_RGB8, PNG_INDEX8, PNG_RAW16 };

typedef struct {
    const char *path;
    FILE *f;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    uint8_t *px;        // the decoded pixels (uint8 or uint16)
    char err[256];
    int wrong_kind;     // err says the PNG is valid but not the kind asked for (not "corrupt")
    int h, w, c, bit_depth, color_type;
} png_rd;

static void png_err_fn(png_structp png, png_const_charp msg) {
    png_rd *ctx = png_get_error_ptr(png);
    // libpng's reader says only "Read Error" when fread comes up short: say which it was.
    if (!strcmp(msg, "Read Error") && ctx->f && feof(ctx->f))
        snprintf(ctx->err, sizeof ctx->err, "the file ends early (truncated: an incomplete download or copy?)");
    else if (!strcmp(msg, "Read Error") && ctx->f && ferror(ctx->f))
        snprintf(ctx->err, sizeof ctx->err, "read error: %s", strerror(errno));
    else
        snprintf(ctx->err, sizeof ctx->err, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void png_rd_cleanup(png_rd *ctx) {
    if (ctx->png) png_destroy_read_struct(&ctx->png, ctx->info ? &ctx->info : NULL, NULL);
    if (ctx->f) fclose(ctx->f);
    free(ctx->rows);
    free(ctx->px);
    ctx->png = NULL; ctx->info = NULL; ctx->f = NULL; ctx->rows = NULL; ctx->px = NULL;
}

// Header only (header_only = 1) or the whole image in the requested mode. Returns 0 / -1 with
// ctx->err holding libpng's message or ours.
static int png_decode(png_rd *ctx, int mode, int header_only) {
    if (setjmp(png_jmpbuf(ctx->png))) return -1;
    png_init_io(ctx->png, ctx->f);
    png_set_user_limits(ctx->png, MV_IMAGE_MAX_SIDE, MV_IMAGE_MAX_SIDE);
    png_read_info(ctx->png, ctx->info);
    ctx->w = (int)png_get_image_width(ctx->png, ctx->info);
    ctx->h = (int)png_get_image_height(ctx->png, ctx->info);
    ctx->bit_depth = png_get_bit_depth(ctx->png, ctx->info);
    ctx->color_type = png_get_color_type(ctx->png, ctx->info);
    ctx->c = png_get_channels(ctx->png, ctx->info);
    if (header_only) return 0;

    int ct = ctx->color_type, bd = ctx->bit_depth;
    int bytes_per_sample = 1;
    if (mode == PNG_RGB8) {
        if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
        if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(ctx->png);
        if (bd == 16) png_set_strip_16(ctx->png);  // the high byte, as OpenCV's IMREAD_COLOR
        if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(ctx->png);
        png_set_strip_alpha(ctx->png);  // also drops the alpha a tRNS palette would add
        ctx->c = 3;
    } else if (mode == PNG_INDEX8) {
        if (ct != PNG_COLOR_TYPE_PALETTE && ct != PNG_COLOR_TYPE_GRAY) {
            snprintf(ctx->err, sizeof ctx->err, "expected a one-channel (gray or palette) label PNG, got %d channels",
                     ctx->c);
            ctx->wrong_kind = 1;
            return -1;
        }
        // 2- and 4-bit gray scaled to 8 bits (v * 85, v * 17), as Pillow (mmseg's label decoder)
        // and OpenCV read them; 1-bit gray stays 0/1 (Pillow's mode "1") and palettes keep their
        // raw indices: one value per byte, not rescaled.
        if (ct == PNG_COLOR_TYPE_GRAY && (bd == 2 || bd == 4)) png_set_expand_gray_1_2_4_to_8(ctx->png);
        else if (bd < 8) png_set_packing(ctx->png);
        if (bd == 16) {                          // 16-bit gray: whole values, narrowed by the caller
            if (MV_HOST_LITTLE_ENDIAN) png_set_swap(ctx->png);
            bytes_per_sample = 2;
        }
        ctx->c = 1;
    } else {  // PNG_RAW16
        if (bd < 8) png_set_packing(ctx->png);
        if (bd == 16 && MV_HOST_LITTLE_ENDIAN) png_set_swap(ctx->png);   // into host order
        bytes_per_sample = bd == 16 ? 2 : 1;
    }
    int passes = png_set_interlace_handling(ctx->png);
    (void)passes;
    png_read_update_info(ctx->png, ctx->info);
    size_t rowbytes = png_get_rowbytes(ctx->png, ctx->info);
    size_t want = (size_t)ctx->w * (size_t)ctx->c * (size_t)bytes_per_sample;
    if (rowbytes != want) {
        snprintf(ctx->err, sizeof ctx->err, "unexpected row size %zu (wanted %zu)", rowbytes, want);
        return -1;
    }
    ctx->px = malloc(rowbytes * (size_t)ctx->h);
    ctx->rows = malloc(sizeof(png_bytep) * (size_t)ctx->h);
    if (!ctx->px || !ctx->rows) {
        snprintf(ctx->err, sizeof ctx->err, "out of memory for %dx%d image", ctx->h, ctx->w);
        return -1;
    }
    for (int y = 0; y < ctx->h; y++) ctx->rows[y] = ctx->px + (size_t)y * rowbytes;
    png_read_image(ctx->png, ctx->rows);
    png_read_end(ctx->png, NULL);
    return 0;
}

static int png_open(png_rd *ctx, const char *path) {
    memset(ctx, 0, sizeof *ctx);
    ctx->path = path;
    ctx->f = open_input(path);
    if (!ctx->f) return -1;
    // Signature and IHDR, read here so that a header declaring a huge image gets a clear error
    // (libpng's own limit check ends in "Invalid IHDR data").
    uint8_t head[8 + 8 + 13];
    size_t n = fread(head, 1, sizeof head, ctx->f);
    int e = ferror(ctx->f) ? errno : 0;
    if (e) {
        png_rd_cleanup(ctx);
        return mv_fail("%s: cannot read: %s", path, strerror(e));
    }
    if (n < 8 || png_sig_cmp(head, 0, 8)) {
        png_rd_cleanup(ctx);
        return mv_fail("%s: not a PNG file", path);
    }
    if (n == sizeof head && !memcmp(head + 12, "IHDR", 4)) {
        uint32_t w = png_get_uint_32(head + 16), h = png_get_uint_32(head + 20);
        if (w > MV_IMAGE_MAX_SIDE || h > MV_IMAGE_MAX_SIDE) {
            png_rd_cleanup(ctx);
            return mv_fail("%s: PNG header declares %" PRIu32 "x%" PRIu32 " (HxW), larger than %d on a side", path, h,
                           w, MV_IMAGE_MAX_SIDE);
        }
    }
    rewind(ctx->f);
    ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_err_fn, png_warn_fn);
    if (ctx->png) ctx->info = png_create_info_struct(ctx->png);
    if (!ctx->png || !ctx->info) {
        png_rd_cleanup(ctx);
        return mv_fail("%s: cannot create PNG reader", path);
    }
    return 0;
}

static int png_read_mode(png_rd *ctx, const char *path, int mode) {
    MV_TRY(png_open(ctx, path));
    if (png_decode(ctx, mode, 0) < 0) {
        int wrong_kind = ctx->wrong_kind;
        png_rd_cleanup(ctx);
        return mv_fail(wrong_kind ? "%s: %s" : "%s: corrupt or unsupported PNG: %s", path, ctx->err);
    }
    return 0;
}

int image_png_info(mv_png_info *out, const char *path) {
    png_rd ctx;
    MV_TRY(png_open(&ctx, path));
    if (png_decode(&ctx, PNG_RGB8, 1) < 0) {
        png_rd_cleanup(&ctx);
        return mv_fail("%s: corrupt PNG header: %s", path, ctx.err);
    }
    out->h = ctx.h;
    out->w = ctx.w;
    out->bit_depth = ctx.bit_depth;
    out->channels = ctx.c;
    out->palette = ctx.color_type == PNG_COLOR_TYPE_PALETTE;
    png_rd_cleanup(&ctx);
    return 0;
}

static int png_read_rgb(mv_image *out, const char *path) {
    png_rd ctx;
    MV_TRY(png_read_mode(&ctx, path, PNG_RGB8));
    *out = (mv_image){ctx.h, ctx.w, 3, ctx.px};
    ctx.px = NULL;
    png_rd_cleanup(&ctx);
    return 0;
}

int image_read_png_index(mv_image *out, const char *path) {
    png_rd ctx;
    MV_TRY(png_read_mode(&ctx, path, PNG_INDEX8));
    if (ctx.bit_depth == 16) {  // narrowed in place (byte i after value i is read); a value over 255 is refused
        size_t n = (size_t)ctx.h * ctx.w;
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, ctx.px + 2 * i, sizeof v);
            if (v > 255) {
                png_rd_cleanup(&ctx);
                return mv_fail("%s: 16-bit label value %u at (y %zu, x %zu) does not fit a label byte (0..255)", path,
                               (unsigned)v, i / (size_t)ctx.w, i % (size_t)ctx.w);
            }
            ctx.px[i] = (uint8_t)v;
        }
    }
    *out = (mv_image){ctx.h, ctx.w, 1, ctx.px};
    ctx.px = NULL;
    png_rd_cleanup(&ctx);
    return 0;
}

int image_read_png16(mv_image16 *out, const char *path) {
    png_rd ctx;
    MV_TRY(png_read_mode(&ctx, path, PNG_RAW16));
    size_t n = (size_t)ctx.h * ctx.w * ctx.c;
    uint16_t *px = malloc(n ? n * sizeof *px : 1);
    if (!px) {
        png_rd_cleanup(&ctx);
        return mv_fail("%s: out of memory", path);
    }
    if (ctx.bit_depth == 16) memcpy(px, ctx.px, n * sizeof *px);
    else for (size_t i = 0; i < n; i++) px[i] = ctx.px[i];
    *out = (mv_image16){ctx.h, ctx.w, ctx.c, px};
    png_rd_cleanup(&ctx);
    return 0;
}

// ---------------------------------------------------------------------------------------
// PNG encoding

typedef struct {
    FILE *f;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    char err[256];
} png_wr;

// libpng's stdio writer fails with "Write Error" and nothing more: errno (cleared before the
// encode) says why (no space left on device, file too large).
static void png_wr_err_fn(png_structp png, png_const_charp msg) {
    png_wr *ctx = png_get_error_ptr(png);
    int e = errno;
    if (e) snprintf(ctx->err, sizeof ctx->err, "%s (%s)", msg, strerror(e));
    else snprintf(ctx->err, sizeof ctx->err, "%s", msg);
    png_longjmp(png, 1);
}

static int png_encode(png_wr *ctx, int h, int w, int bit_depth, int color_type, const uint8_t *px,
                      size_t rowbytes, const uint8_t *palette, int n_colors) {
    if (setjmp(png_jmpbuf(ctx->png))) return -1;
    png_init_io(ctx->png, ctx->f);
    png_set_IHDR(ctx->png, ctx->info, (png_uint_32)w, (png_uint_32)h, bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) {
        png_color pal[256];
        for (int i = 0; i < n_colors; i++) pal[i] = (png_color){palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]};
        png_set_PLTE(ctx->png, ctx->info, pal, n_colors);
    }
    png_write_info(ctx->png, ctx->info);
    if (bit_depth == 16 && MV_HOST_LITTLE_ENDIAN) png_set_swap(ctx->png);  // host order -> PNG's big-endian
    for (int y = 0; y < h; y++) ctx->rows[y] = (png_bytep)(px + (size_t)y * rowbytes);
    png_write_image(ctx->png, ctx->rows);
    png_write_end(ctx->png, NULL);
    return 0;
}

static int png_write_any(const char *path, int h, int w, int c, int bit_depth, const void *px,
                         const uint8_t *palette, int n_colors) {
    if (h <= 0 || w <= 0 || !px) return mv_fail("%s: cannot write an empty image", path);
    int ct;
    if (palette) ct = PNG_COLOR_TYPE_PALETTE;
    else if (c == 1) ct = PNG_COLOR_TYPE_GRAY;
    else if (c == 2) ct = PNG_COLOR_TYPE_GRAY_ALPHA;
    else if (c == 3) ct = PNG_COLOR_TYPE_RGB;
    else if (c == 4) ct = PNG_COLOR_TYPE_RGBA;
    else return mv_fail("%s: cannot write a PNG with %d channels", path, c);
    // Written whole or not at all (core/fs.h): an interrupted run never leaves half a PNG.
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    png_wr ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.f = out.f;
    ctx.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_wr_err_fn, png_warn_fn);
    if (ctx.png) ctx.info = png_create_info_struct(ctx.png);
    ctx.rows = malloc(sizeof(png_bytep) * (size_t)h);
    int ok = ctx.png && ctx.info && ctx.rows;
    errno = 0;
    if (ok) ok = png_encode(&ctx, h, w, bit_depth, ct, px, (size_t)w * c * (bit_depth / 8), palette, n_colors) == 0;
    if (ctx.png) png_destroy_write_struct(&ctx.png, ctx.info ? &ctx.info : NULL);
    free(ctx.rows);
    if (!ok) {
        mv_atomic_abort(&out);
        return mv_fail("%s: PNG write failed: %s", path, ctx.err[0] ? ctx.err : "out of memory");
    }
    return mv_atomic_commit(&out, false);
}

int image_write_png(const char *path, const mv_image *img) {
    return png_write_any(path, img->h, img->w, img->c, 8, img->px, NULL, 0);
}

int image_write_png_palette(const char *path, const mv_image *idx, const uint8_t *palette_rgb, int n_colors) {
    if (idx->c != 1) return mv_fail("%s: an indexed PNG needs a one-channel image, got %d", path, idx->c);
    if (n_colors < 1 || n_colors > 256) return mv_fail("%s: palette of %d colours", path, n_colors);
    return png_write_any(path, idx->h, idx->w, 1, 8, idx->px, palette_rgb, n_colors);
}

int image_write_png16(const char *path, const mv_image16 *img) {
    return png_write_any(path, img->h, img->w, img->c, 16, img->px, NULL, 0);
}

// ---------------------------------------------------------------------------------------
// JPEG

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char err[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit_fn(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->err);
    longjmp(e->jmp, 1);
}

// libjpeg only warns on corrupt entropy data and fills the rest with grey; we refuse. A few
// warnings are about the file's structure: junk bytes between markers (common in camera JPEGs,
// e.g. padding before EOI), an unknown JFIF revision or Adobe transform code, a damaged ICC
// profile marker. Those are let through, as Pillow and OpenCV do; refusing them would drop intact
// photos from a dataset. The price: scan data corrupted so that it still decodes can leave only
// the junk-bytes warning (the bytes the decoder did not consume), and its wrong pixels pass.
static void jpeg_emit_fn(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    int code = cinfo->err->msg_code;
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM) return;
#if defined(LIBJPEG_TURBO_VERSION_NUMBER) && LIBJPEG_TURBO_VERSION_NUMBER >= 2000000  // has the ICC reader
    if (code == JWRN_BOGUS_ICC) return;
#endif
    jpeg_error_exit_fn(cinfo);
}

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    FILE *f;
    uint8_t *px;
    int created;
    int orientation;   // EXIF Orientation (1..8), 1 when absent
} jpeg_rd;

// EXIF Orientation from an APP1 marker: "Exif\0\0", then a TIFF header ("II" little- or "MM"
// big-endian, 42, offset of IFD0) and IFD0's 12-byte entries; tag 0x0112 is a SHORT 1..8. 1 when
// absent or malformed (a broken EXIF block never stops the pixels from decoding).
static int exif_orientation(const uint8_t *d, size_t n) {
    if (n < 14 || memcmp(d, "Exif\0\0", 6)) return 1;
    d += 6;
    n -= 6;
    bool le = d[0] == 'I' && d[1] == 'I';
    if (!le && !(d[0] == 'M' && d[1] == 'M')) return 1;
#define U16(p) (le ? (uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 : (uint32_t)(p)[0] << 8 | (uint32_t)(p)[1])
#define U32(p) (le ? U16(p) | U16((p) + 2) << 16 : U16(p) << 16 | U16((p) + 2))
    uint32_t ifd = U32(d + 4);
    if (U16(d + 2) != 42 || ifd < 8 || (size_t)ifd + 2 > n) return 1;
    uint32_t count = U16(d + ifd);
    for (uint32_t i = 0; i < count && ifd + 2 + 12 * (i + 1) <= n; i++) {
        const uint8_t *e = d + ifd + 2 + 12 * i;
        if (U16(e) != 0x0112) continue;
        uint32_t v = U16(e + 8);   // SHORT, count 1: the value sits in the first bytes of the field
        return U16(e + 2) == 3 && v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
#undef U32
#undef U16
}

static int jpeg_decode(jpeg_rd *ctx, const uint8_t *buf, size_t len) {
    if (setjmp(ctx->jerr.jmp)) return -1;
    jpeg_create_decompress(&ctx->cinfo);
    ctx->created = 1;
    if (ctx->f) jpeg_stdio_src(&ctx->cinfo, ctx->f);
    else jpeg_mem_src(&ctx->cinfo, (unsigned char *)buf, (unsigned long)len);
    jpeg_save_markers(&ctx->cinfo, JPEG_APP0 + 1, 0xFFFF);   // APP1: EXIF
    jpeg_read_header(&ctx->cinfo, TRUE);
    ctx->orientation = 1;
    for (jpeg_saved_marker_ptr m = ctx->cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && (ctx->orientation = exif_orientation(m->data, m->data_length)) != 1) break;
    if (ctx->cinfo.image_width > MV_IMAGE_MAX_SIDE || ctx->cinfo.image_height > MV_IMAGE_MAX_SIDE) {
        snprintf(ctx->jerr.err, sizeof ctx->jerr.err, "image of %ux%u is larger than %d on a side",
                 ctx->cinfo.image_height, ctx->cinfo.image_width, MV_IMAGE_MAX_SIDE);
        return -1;
    }
    // Four-component (Adobe CMYK or YCCK) files: libjpeg has no CMYK -> RGB conversion, so they
    // are decoded to CMYK and converted as OpenCV does (imgcodecs icvCvt_CMYK2BGR_8u_C4C3R):
    // R = K - ((255 - C) * K >> 8), likewise G from M and B from Y. That reads the inverted CMYK
    // Adobe applications write (255 = no ink), as mmseg's OpenCV loader would.
    int cmyk = ctx->cinfo.jpeg_color_space == JCS_CMYK || ctx->cinfo.jpeg_color_space == JCS_YCCK;
    ctx->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&ctx->cinfo);
    if (ctx->cinfo.output_components != (cmyk ? 4 : 3)) {  // rows are sized for exactly that
        snprintf(ctx->jerr.err, sizeof ctx->jerr.err, "libjpeg gives %d components per pixel, expected %d",
                 ctx->cinfo.output_components, cmyk ? 4 : 3);
        return -1;
    }
    size_t w = ctx->cinfo.output_width, stride = w * 3;
    ctx->px = malloc(stride * ctx->cinfo.output_height + 1);
    if (!ctx->px) {
        snprintf(ctx->jerr.err, sizeof ctx->jerr.err, "out of memory");
        return -1;
    }
    // The CMYK row lives in libjpeg's image pool: freed by jpeg_destroy_decompress, also after an error.
    JSAMPARRAY cmyk_row = cmyk ? (*ctx->cinfo.mem->alloc_sarray)((j_common_ptr)&ctx->cinfo, JPOOL_IMAGE,
                                                                  (JDIMENSION)(w * 4), 1)
                               : NULL;
    while (ctx->cinfo.output_scanline < ctx->cinfo.output_height) {
        uint8_t *dst = ctx->px + stride * ctx->cinfo.output_scanline;
        JSAMPROW row = cmyk ? cmyk_row[0] : dst;
        jpeg_read_scanlines(&ctx->cinfo, &row, 1);
        if (cmyk)
            for (size_t x = 0; x < w; x++) {
                const uint8_t *q = row + 4 * x;
                int k = q[3];
                for (int c = 0; c < 3; c++) dst[3 * x + c] = (uint8_t)(k - (((255 - q[c]) * k) >> 8));
            }
    }
    jpeg_finish_decompress(&ctx->cinfo);
    return 0;
}

static int jpeg_read_any(mv_image *out, int *orientation, FILE *f, const uint8_t *buf, size_t len, const char *what) {
    jpeg_rd ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.f = f;
    ctx.cinfo.err = jpeg_std_error(&ctx.jerr.pub);
    ctx.jerr.pub.error_exit = jpeg_error_exit_fn;
    ctx.jerr.pub.emit_message = jpeg_emit_fn;
    int rc = jpeg_decode(&ctx, buf, len);
    int h = (int)ctx.cinfo.output_height, w = (int)ctx.cinfo.output_width;
    if (ctx.created) jpeg_destroy_decompress(&ctx.cinfo);
    if (rc < 0) {
        free(ctx.px);
        return mv_fail("%s: corrupt or unsupported JPEG: %s", what, ctx.jerr.err);
    }
    *out = (mv_image){h, w, 3, ctx.px};
    if (orientation) *orientation = ctx.orientation;
    return 0;
}

// A JPEG file; its EXIF orientation into *orientation when that is not NULL.
static int jpeg_read_file(mv_image *out, int *orientation, const char *path) {
    FILE *f = open_input(path);
    if (!f) return -1;
    int rc = jpeg_read_any(out, orientation, f, NULL, 0, path);
    fclose(f);
    return rc;
}

int image_read_jpeg(mv_image *out, const char *path) { return jpeg_read_file(out, NULL, path); }

int image_decode_jpeg(mv_image *out, const uint8_t *buf, size_t len, const char *what) {
    if (!buf || len < 4) return mv_fail("%s: empty JPEG buffer", what);
    return jpeg_read_any(out, NULL, NULL, buf, len, what);
}

typedef struct {
    struct jpeg_compress_struct cinfo;
    jpeg_err jerr;
    int created;
} jpeg_wr;

static int jpeg_encode(jpeg_wr *ctx, FILE *f, unsigned char **mem, unsigned long *mem_len, const mv_image *img,
                       int quality) {
    if (setjmp(ctx->jerr.jmp)) return -1;
    jpeg_create_compress(&ctx->cinfo);
    ctx->created = 1;
    if (f) jpeg_stdio_dest(&ctx->cinfo, f);
    else jpeg_mem_dest(&ctx->cinfo, mem, mem_len);
    ctx->cinfo.image_width = (JDIMENSION)img->w;
    ctx->cinfo.image_height = (JDIMENSION)img->h;
    ctx->cinfo.input_components = img->c;
    ctx->cinfo.in_color_space = img->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ctx->cinfo);
    jpeg_set_quality(&ctx->cinfo, quality, TRUE);
    jpeg_start_compress(&ctx->cinfo, TRUE);
    size_t stride = (size_t)img->w * img->c;
    while (ctx->cinfo.next_scanline < ctx->cinfo.image_height) {
        JSAMPROW row = img->px + stride * ctx->cinfo.next_scanline;
        jpeg_write_scanlines(&ctx->cinfo, &row, 1);
    }
    jpeg_finish_compress(&ctx->cinfo);
    return 0;
}

static int jpeg_write_any(FILE *f, unsigned char **mem, unsigned long *mem_len, const mv_image *img, int quality,
                          const char *what) {
    if (img->h <= 0 || img->w <= 0 || !img->px) return mv_fail("%s: cannot encode an empty image", what);
    if (img->c != 1 && img->c != 3) return mv_fail("%s: JPEG needs 1 or 3 channels, got %d", what, img->c);
    if (quality < 1 || quality > 100) return mv_fail("%s: JPEG quality %d outside 1..100", what, quality);
    jpeg_wr ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cinfo.err = jpeg_std_error(&ctx.jerr.pub);
    ctx.jerr.pub.error_exit = jpeg_error_exit_fn;
    int rc = jpeg_encode(&ctx, f, mem, mem_len, img, quality);
    if (ctx.created) jpeg_destroy_compress(&ctx.cinfo);
    if (rc < 0) return mv_fail("%s: JPEG encoding failed: %s", what, ctx.jerr.err);
    return 0;
}

int image_write_jpeg(const char *path, const mv_image *rgb, int quality) {
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    if (jpeg_write_any(out.f, NULL, NULL, rgb, quality, path) < 0) {
        mv_atomic_abort(&out);
        return -1;
    }
    return mv_atomic_commit(&out, false);
}

int image_encode_jpeg(uint8_t **buf, size_t *len, const mv_image *rgb, int quality) {
    unsigned char *mem = NULL;
    unsigned long mem_len = 0;
    if (jpeg_write_any(NULL, &mem, &mem_len, rgb, quality, "in-memory JPEG") < 0) {
        free(mem);
        return -1;
    }
    *buf = mem;
    *len = mem_len;
    return 0;
}

// ---------------------------------------------------------------------------------------

void image_apply_orientation(mv_image *img, int orientation) {
    if (orientation < 2 || orientation > 8) return;
    int H = img->h, W = img->w, C = img->c;
    bool swap = orientation >= 5;
    int oh = swap ? W : H, ow = swap ? H : W;
    mv_image out = image_alloc(oh, ow, C);
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int y, x;   // the stored pixel shown at (oy, ox)
            switch (orientation) {
            case 2: y = oy; x = W - 1 - ox; break;               // mirrored left-right
            case 3: y = H - 1 - oy; x = W - 1 - ox; break;       // rotated 180
            case 4: y = H - 1 - oy; x = ox; break;               // mirrored top-bottom
            case 5: y = ox; x = oy; break;                       // transposed
            case 6: y = H - 1 - ox; x = oy; break;               // rotated 90 clockwise
            case 7: y = H - 1 - ox; x = W - 1 - oy; break;       // transverse
            default: y = ox; x = W - 1 - oy; break;              // 8: rotated 90 counter-clockwise
            }
            memcpy(out.px + ((size_t)oy * ow + ox) * C, img->px + ((size_t)y * W + x) * C, (size_t)C);
        }
    image_free(img);
    *img = out;
}

// PNG or JPEG by signature; a JPEG's EXIF orientation into *orientation when not NULL.
static int read_rgb(mv_image *out, int *orientation, const char *path) {
    uint8_t head[8];
    MV_TRY(sniff(path, head));
    if (!png_sig_cmp(head, 0, 8)) return png_read_rgb(out, path);
    if (head[0] == 0xFF && head[1] == 0xD8) return jpeg_read_file(out, orientation, path);
    return mv_fail("%s: neither a PNG nor a JPEG file", path);
}

int image_read_rgb_oriented(mv_image *out, int *orientation, const char *path) {
    *orientation = 1;
    MV_TRY(read_rgb(out, orientation, path));
    image_apply_orientation(out, *orientation);
    return 0;
}

int image_read_rgb(mv_image *out, const char *path) { return read_rgb(out, NULL, path); }
