// jpeg_compression: the image encoded as a JPEG in memory and decoded again. image_io's
// encoder uses the settings that make libjpeg match Pillow's `save(..., 'JPEG', quality=q)`
// (the corruption package's path): baseline quantisation tables, 4:2:0 chroma subsampling,
// the default integer DCT, no optimised Huffman tables; decoding uses libjpeg's defaults.
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt_internal.h"
#include "data/image_io.h"

int cx_jpeg_roundtrip(uint8_t *out, const uint8_t *rgb, int h, int w, int quality) {
    if (h > 65500 || w > 65500) return mv_fail("image %dx%d too large for JPEG", h, w);
    mv_image in = {h, w, 3, (uint8_t *)rgb}, back = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = image_encode_jpeg(&buf, &len, &in, quality);
    if (rc == 0) rc = image_decode_jpeg(&back, buf, len, "jpeg_compression");
    free(buf);
    if (rc == 0 && (back.h != h || back.w != w || back.c != 3))
        rc = mv_fail("libjpeg decode: got %dx%dx%d, expected %dx%dx3", back.h, back.w, back.c, h, w);
    if (rc == 0) memcpy(out, back.px, (size_t)h * w * 3);
    free(back.px);
    return rc;
}
