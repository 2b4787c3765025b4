// An 8-bit image in memory: interleaved channels (RGB: c = 3, labels: c = 1), row-major.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stddef.h>

typedef struct {
    int h, w, c;
    uint8_t *px;   // h*w*c bytes, owned
} mv_image;

// Allocates an uninitialised image; px is NULL on h*w*c == 0.
mv_image image_alloc(int h, int w, int c);
void image_free(mv_image *img);

// The source index of output index i when `src` samples are resized to `dst` by nearest
// neighbour, as OpenCV's INTER_NEAREST (resizeNN) computes it, which mmcv's imresize (mmseg's
// label resize) and HGFormer's GTAV label fix use: scale f = dst / src in double, index
// floor(i * (1 / f)), clamped to the last sample. (floor(i * src / dst) differs in the last bit
// of the product, and so by one sample, at about 0.1% of (size, index) pairs.) No half-pixel
// offset: that is Pillow's NEAREST and OpenCV's INTER_NEAREST_EXACT.
static inline int image_nearest_index(int i, int src, int dst) {
    int s = (int)floor(i * (1.0 / ((double)dst / src)));
    return s < src ? s : src - 1;
}
