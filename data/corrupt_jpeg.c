// jpeg_compression: an in-memory JPEG encode and decode through libjpeg, with the settings
// that make libjpeg match Pillow's `save(..., 'JPEG', quality=q)` (the package's path):
// baseline quantisation tables (jpeg_set_quality(q, TRUE)), 4:2:0 chroma subsampling,
// the default integer DCT, no optimised Huffman tables; decoding with libjpeg's defaults.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include "core/error.h"
#include "data/corrupt_internal.h"

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo) { (void)cinfo; }   // no stderr chatter

static int encode(unsigned char **buf, unsigned long *len, const uint8_t *rgb, int h, int w, int quality) {
    struct jpeg_compress_struct ci;
    jpeg_err err;
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.output_message = on_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&ci);
        return mv_fail("libjpeg encode: %s", err.msg);
    }
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, buf, len);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);            // YCbCr, 2x2 luma sampling (4:2:0), JDCT_ISLOW
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)ci.next_scanline * w * 3);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return 0;
}

static int decode(uint8_t *out, const unsigned char *buf, unsigned long len, int h, int w) {
    struct jpeg_decompress_struct ci;
    jpeg_err err;
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.output_message = on_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&ci);
        return mv_fail("libjpeg decode: %s", err.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, buf, len);
    jpeg_read_header(&ci, TRUE);
    ci.out_color_space = JCS_RGB;
    jpeg_start_decompress(&ci);
    if ((int)ci.output_width != w || (int)ci.output_height != h || ci.output_components != 3) {
        jpeg_destroy_decompress(&ci);
        return mv_fail("libjpeg decode: got %ux%u, expected %dx%d", ci.output_width, ci.output_height, w, h);
    }
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = (JSAMPROW)(out + (size_t)ci.output_scanline * w * 3);
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    return 0;
}

int cx_jpeg_roundtrip(uint8_t *out, const uint8_t *rgb, int h, int w, int quality) {
    if (h > 65500 || w > 65500) return mv_fail("image %dx%d too large for JPEG", h, w);
    unsigned char *buf = NULL;
    unsigned long len = 0;
    int rc = encode(&buf, &len, rgb, h, w, quality);
    if (rc == 0) rc = decode(out, buf, len, h, w);
    free(buf);
    return rc;
}
