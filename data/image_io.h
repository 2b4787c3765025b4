// PNG and JPEG files <-> mv_image, through libpng and libjpeg. Every error names the file and is
// returned through mv_fail (core/error.h): libpng's and libjpeg's errors are caught by longjmp, so
// nothing here aborts or exits, whatever the input.
// Decoders refuse images larger than MV_IMAGE_MAX_SIDE on a side, from the header alone (a corrupt
// header must not turn into a huge allocation).
//
// What the readers do with the inputs datasets and users hand them (tests/unit/test_image_io_*.c):
// - PNG: any colour type, bit depth 1..16, Adam7 interlacing. gAMA/cHRM/sRGB/iCCP are ignored
//   (stored samples, no colour management, as OpenCV's PNG decoder); a broken ICC profile
//   or a bad CRC on an ancillary chunk is a libpng warning (the chunk is dropped, the pixels
//   decode). A bad CRC on a critical chunk (IHDR, PLTE, IDAT), truncation anywhere (IEND
//   included), a zlib error or too little image data is an error.
// - JPEG: baseline, progressive, restart markers, any chroma subsampling, grayscale (replicated
//   to RGB), Adobe CMYK and YCCK (converted as OpenCV does, see image_read_rgb). Arithmetic
//   coding as far as the installed libjpeg supports it; 12-bit and lossless JPEGs are errors.
//   image_read_rgb does NOT apply EXIF orientation: pixels come in stored order, the frame a
//   dataset's label PNG is drawn in. (OpenCV's imdecode with IMREAD_COLOR, mmcv's default 'color'
//   flag, does rotate by EXIF orientation; whether any DGSS dataset image carries a non-identity
//   orientation is unverified. The converter turns an image upright only when that frame, and
//   not the stored one, matches its label: data/convert.c, match_exif_frame.)
//   image_read_rgb_oriented applies it: photos as a viewer shows them (`maskvim predict`).
//   Corrupt entropy-coded data and truncation, which libjpeg only warns about and fills with
//   grey, are errors; a few structural warnings are let through, as Pillow and OpenCV do
//   (junk bytes between markers, unknown JFIF revision or Adobe transform code, a damaged ICC
//   marker; jpeg_emit_fn in image_io.c). Junk bytes are usually padding, but corrupted scan
//   data that still decodes can leave only that warning: such wrong pixels are not caught.
// - Files are told apart by signature, not by name: a JPEG named .png is read as a JPEG by
//   image_read_rgb (the label readers want a PNG and say "not a PNG file").
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

// Decodes a PNG or JPEG (told apart by signature, not by extension) as 8-bit RGB, the way
// OpenCV's IMREAD_COLOR decodes it (mmseg's LoadImageFromFile), in RGB
// order: palettes are expanded; gray is replicated (1/2/4-bit gray scaled to 0..255); alpha, and
// the alpha a tRNS chunk implies, is dropped, not composited over a background; 16-bit samples
// keep their high byte (v >> 8, png_set_strip_16 as OpenCV); a CMYK/YCCK JPEG gives
// R = K - ((255 - C) * K >> 8), G and B likewise from M and Y (OpenCV icvCvt_CMYK2BGR_8u_C4C3R,
// which reads Adobe's inverted CMYK).
int image_read_rgb(mv_image *out, const char *path);
// image_read_rgb, then a JPEG's EXIF Orientation (1..8, written to *orientation; 1 when absent,
// and always for PNG) applied to the pixels: the image upright as viewers show it.
int image_read_rgb_oriented(mv_image *out, int *orientation, const char *path);
// Turns stored pixels into the frame EXIF `orientation` (1..8) describes: 2 mirrored, 3 rotated
// 180, 4 flipped, 5 transposed, 6 rotated 90 clockwise, 7 transverse, 8 rotated 90
// counter-clockwise (5..8 swap h and w). Other values leave img as it is.
void image_apply_orientation(mv_image *img, int orientation);
// Decodes a one-channel PNG label without any colour transform: a palette PNG gives its raw
// indices (GTAV, Mapillary labels), a gray PNG its values (Cityscapes, BDD labels). Palettes of
// 1, 2 or 4 bits and 1-bit gray give one raw value per byte (0/1 for 1-bit gray, as Pillow's mode
// "1"); 2- and 4-bit gray are scaled to 8 bits (v * 85, v * 17) as Pillow (mmseg's label
// decoder) and OpenCV read them, so a PNG optimiser's repacking of a label does not change its
// ids. A 16-bit gray PNG is read at its
// whole value; a value above 255 is an error naming the pixel (never truncated or wrapped).
// RGB, RGBA and gray+alpha PNGs are errors ("expected a one-channel ... label PNG").
int image_read_png_index(mv_image *out, const char *path);
// Decodes a PNG at full 16-bit depth (8-bit files are widened, not scaled), palettes not
// expanded; out->c is the file's channel count including alpha.
int image_read_png16(mv_image16 *out, const char *path);

// Writes an 8-bit PNG: c = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. Written to "<path>.tmp" and
// renamed, so a failed write (missing or read-only folder, disk full) is an error naming <path>
// that leaves no partial file, no temporary, and any earlier file of that name untouched. The
// same holds for the other writers below.
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
