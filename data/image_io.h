// PNG and JPEG files <-> mv_image, through libpng and libjpeg. Every error names the file.
// Decoders refuse images larger than MV_IMAGE_MAX_SIDE on a side (a corrupt header must not
// turn into a huge allocation).
#pragma once
#include <stdint.h>
#include <stddef.h>
#include "data/image.h"

#define MV_IMAGE_MAX_SIDE 16384

// A 16-bit image (SYNTHIA's label PNGs): interleaved channels, row-major, native endianness.
typedef struct {
    int h, w, c;
    uint16_t *px;   // h*w*c values, owned
} mv_image16;

void image16_free(mv_image16 *img);

// What a PNG header says, without decoding the pixels.
typedef struct {
    int h, w;
    int bit_depth;    // 1, 2, 4, 8 or 16
    int channels;     // stored channels: 1 gray or palette index, 2 gray+alpha, 3 RGB, 4 RGBA
    int palette;      // 1 for an indexed (palette) PNG
} mv_png_info;

// Reads the header of a PNG file.
int image_png_info(mv_png_info *out, const char *path);

// Decodes a PNG or JPEG (told apart by signature, not by extension) as 8-bit RGB: palettes are
// expanded, gray is replicated, alpha is dropped, 16-bit samples are scaled to 8 bits.
int image_read_rgb(mv_image *out, const char *path);
// Decodes a one-channel 8-bit PNG without any colour transform: a palette PNG gives its raw
// indices (GTAV, Mapillary labels), a gray PNG its values (Cityscapes, BDD labels). Bit depths
// below 8 are unpacked to one value per byte. RGB or 16-bit PNGs are errors.
int image_read_png_index(mv_image *out, const char *path);
// Decodes a PNG at full 16-bit depth (8-bit files are widened, not scaled), palettes not
// expanded; out->c is the file's channel count including alpha.
int image_read_png16(mv_image16 *out, const char *path);

// Writes an 8-bit PNG: c = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. Written to a temporary name and
// renamed, so a failed write leaves no partial file.
int image_write_png(const char *path, const mv_image *img);
// Writes an indexed PNG (c = 1) with a palette of n_colors RGB triplets (n_colors <= 256).
int image_write_png_palette(const char *path, const mv_image *idx, const uint8_t *palette_rgb, int n_colors);
// Writes a 16-bit PNG: c = 1, 2, 3 or 4.
int image_write_png16(const char *path, const mv_image16 *img);

// JPEG with libjpeg's defaults (baseline, 4:2:0 chroma subsampling, as Pillow's default save).
// rgb is (h, w, 3), or (h, w, 1) for grayscale. Corrupt data that libjpeg would only warn about
// (premature end, bad Huffman code) is an error here: a damaged file is never decoded to grey.
int image_write_jpeg(const char *path, const mv_image *rgb, int quality);
int image_read_jpeg(mv_image *out, const char *path);
// In-memory JPEG, for the JPEG-compression corruption: *buf is malloc'd (free it).
int image_encode_jpeg(uint8_t **buf, size_t *len, const mv_image *rgb, int quality);
// Decodes a JPEG held in memory as RGB; `what` names it in errors.
int image_decode_jpeg(mv_image *out, const uint8_t *buf, size_t len, const char *what);
