// An 8-bit image in memory: interleaved channels (RGB: c = 3, labels: c = 1), row-major.
#pragma once
#include <stdint.h>
#include <stddef.h>

typedef struct {
    int h, w, c;
    uint8_t *px;   // h*w*c bytes, owned
} mv_image;

// Allocates an uninitialised image; px is NULL on h*w*c == 0.
mv_image image_alloc(int h, int w, int c);
void image_free(mv_image *img);
