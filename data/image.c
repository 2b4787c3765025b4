// mv_image allocation (see image.h).
#include "data/image.h"
#include <stdlib.h>
#include "core/error.h"

mv_image image_alloc(int h, int w, int c) {
    mv_image img = {h, w, c, NULL};
    size_t n = (size_t)(h > 0 ? h : 0) * (size_t)(w > 0 ? w : 0) * (size_t)(c > 0 ? c : 0);
    if (n) img.px = mv_malloc(n);
    return img;
}

void image_free(mv_image *img) {
    if (!img) return;
    free(img->px);
    img->px = NULL;
    img->h = img->w = img->c = 0;
}
