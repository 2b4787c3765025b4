// Writing PNG and JPEG files (predictions, colour maps, corrupted images): a write that cannot be
// made, or fails half way (the disk fills: RLIMIT_FSIZE here), is an error naming the file and
// leaves neither a partial file nor a stray temporary, and an existing file of that name intact.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "data/image_io.h"

static const char *tdir(const char *name) {
    static char path[4200];
    const char *base = getenv("MV_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    snprintf(path, sizeof path, "%s/test_image_io_write/%s", base, name);
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    cr_assert_eq(system(cmd), 0);
    return path;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d, "%s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static mv_image noise_image(int h, int w, int c) {
    mv_image img = image_alloc(h, w, c);
    unsigned s = 12345;
    for (size_t i = 0; i < (size_t)h * w * c; i++) {
        s = s * 1103515245u + 12345u;
        img.px[i] = (uint8_t)(s >> 16);
    }
    return img;
}

// Target missing its folder, or under a regular file: the message starts with the target's name.
Test(image_io_write, cannot_create_names_the_target) {
    const char *dir = tdir("create");
    mv_image img = noise_image(4, 4, 3);
    char p[4400];
    snprintf(p, sizeof p, "%s/missing/pred.png", dir);
    cr_assert_eq(image_write_png(p, &img), -1);
    char want[4500];
    snprintf(want, sizeof want, "%s: cannot create", p);
    cr_assert(strstr(mv_last_error(), want), "%s", mv_last_error());
    cr_assert(strstr(mv_last_error(), strerror(ENOENT)), "%s", mv_last_error());
    snprintf(p, sizeof p, "%s/missing/pred.jpg", dir);
    cr_assert_eq(image_write_jpeg(p, &img, 90), -1);
    snprintf(want, sizeof want, "%s: cannot create", p);
    cr_assert(strstr(mv_last_error(), want), "%s", mv_last_error());

    char file[4400];
    snprintf(file, sizeof file, "%s/plainfile", dir);
    FILE *f = fopen(file, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/plainfile/pred.png", dir);
    cr_assert_eq(image_write_png(p, &img), -1);
    snprintf(want, sizeof want, "%s: cannot create", p);
    cr_assert(strstr(mv_last_error(), want), "%s", mv_last_error());
    cr_assert(strstr(mv_last_error(), strerror(ENOTDIR)), "%s", mv_last_error());
    cr_assert_eq(count_entries(dir), 1);
    image_free(&img);
}

// A read-only folder (meaningful only without root's override of permissions).
Test(image_io_write, read_only_folder) {
    const char *dir = tdir("readonly");
    mv_image img = noise_image(4, 4, 3);
    cr_assert_eq(chmod(dir, 0555), 0);
    char p[4400];
    snprintf(p, sizeof p, "%s/pred.png", dir);
    int rc = image_write_png(p, &img);
    chmod(dir, 0755);
    if (geteuid() != 0) {
        cr_assert_eq(rc, -1);
        cr_assert(strstr(mv_last_error(), p) && strstr(mv_last_error(), strerror(EACCES)), "%s", mv_last_error());
        cr_assert_eq(count_entries(dir), 0);
    }
    // /proc is read-only for everybody, root included.
    cr_assert_eq(image_write_png("/proc/maskvim_pred.png", &img), -1);
    cr_assert(strstr(mv_last_error(), "/proc/maskvim_pred.png: cannot create"), "%s", mv_last_error());
    image_free(&img);
}

// The disk fills half way: -1 naming the file, the earlier file of that name intact, no
// temporary left, for PNG (8 and 16-bit) and JPEG.
Test(image_io_write, failed_write_leaves_no_partial_file) {
    const char *dir = tdir("full");
    char png[4400], png16[4400], jpg[4400];
    snprintf(png, sizeof png, "%s/pred.png", dir);
    snprintf(png16, sizeof png16, "%s/deep.png", dir);
    snprintf(jpg, sizeof jpg, "%s/img.jpg", dir);
    mv_image small = noise_image(8, 8, 3), big = noise_image(256, 256, 3);
    mv_image16 big16 = {128, 128, 3, malloc(128 * 128 * 3 * sizeof(uint16_t))};
    for (int i = 0; i < 128 * 128 * 3; i++) big16.px[i] = (uint16_t)(big.px[i] * 257 + big.px[i + 1]);
    cr_assert_eq(image_write_png(png, &small), 0, "%s", mv_last_error());
    cr_assert_eq(image_write_png16(png16, &(mv_image16){1, 1, 1, (uint16_t[]){7}}), 0, "%s", mv_last_error());
    cr_assert_eq(image_write_jpeg(jpg, &small, 90), 0, "%s", mv_last_error());
    struct stat before_png, before_png16, before_jpg;
    cr_assert_eq(stat(png, &before_png), 0);
    cr_assert_eq(stat(png16, &before_png16), 0);
    cr_assert_eq(stat(jpg, &before_jpg), 0);

    // Files may not grow past 16 KiB (this test's own process only); SIGXFSZ ignored, so the
    // write fails with EFBIG instead of killing the process.
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 16384;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc_png = image_write_png(png, &big);
    char msg_png[2048];
    snprintf(msg_png, sizeof msg_png, "%s", mv_last_error());
    int rc_png16 = image_write_png16(png16, &big16);
    char msg_png16[2048];
    snprintf(msg_png16, sizeof msg_png16, "%s", mv_last_error());
    int rc_jpg = image_write_jpeg(jpg, &big, 100);
    char msg_jpg[2048];
    snprintf(msg_jpg, sizeof msg_jpg, "%s", mv_last_error());
    setrlimit(RLIMIT_FSIZE, &old);

    cr_assert_eq(rc_png, -1, "PNG write past the limit succeeded");
    cr_assert(strstr(msg_png, png) && strstr(msg_png, strerror(EFBIG)), "%s", msg_png);
    cr_assert_eq(rc_png16, -1);
    cr_assert(strstr(msg_png16, png16) && strstr(msg_png16, strerror(EFBIG)), "%s", msg_png16);
    cr_assert_eq(rc_jpg, -1);
    cr_assert(strstr(msg_jpg, jpg), "%s", msg_jpg);
    struct stat after;
    cr_assert_eq(stat(png, &after), 0);
    cr_assert_eq(after.st_size, before_png.st_size, "old PNG replaced by a partial one");
    cr_assert_eq(stat(png16, &after), 0);
    cr_assert_eq(after.st_size, before_png16.st_size);
    cr_assert_eq(stat(jpg, &after), 0);
    cr_assert_eq(after.st_size, before_jpg.st_size);
    cr_assert_eq(count_entries(dir), 3, "a temporary was left behind");

    // A PNG small enough to sit in stdio's buffer until the final flush, which then fails: the
    // error says why, and nothing is left.
    char late[4400];
    snprintf(late, sizeof late, "%s/late.png", dir);
    lim.rlim_cur = 16;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc_late = image_write_png(late, &small);
    setrlimit(RLIMIT_FSIZE, &old);
    cr_assert_eq(rc_late, -1);
    cr_assert(strstr(mv_last_error(), late) && strstr(mv_last_error(), strerror(EFBIG)), "%s", mv_last_error());
    cr_assert_eq(count_entries(dir), 3, "a temporary was left behind");
    mv_image back;
    cr_assert_eq(image_read_rgb(&back, png), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(back.px, small.px, 8 * 8 * 3), 0);
    image_free(&back);
    image_free(&small);
    image_free(&big);
    image16_free(&big16);
}

// Prediction colour maps: an RGB PNG and an indexed one read back exactly.
Test(image_io_write, colour_maps_round_trip) {
    const char *dir = tdir("maps");
    static const uint8_t pal[19][3] = {{128, 64, 128}, {244, 35, 232}, {70, 70, 70}, {102, 102, 156}, {190, 153, 153},
                                       {153, 153, 153}, {250, 170, 30}, {220, 220, 0}, {107, 142, 35}, {152, 251, 152},
                                       {70, 130, 180}, {220, 20, 60}, {255, 0, 0}, {0, 0, 142}, {0, 0, 70},
                                       {0, 60, 100}, {0, 80, 100}, {0, 0, 230}, {119, 11, 32}};
    enum { h = 21, w = 33 };
    mv_image idx = image_alloc(h, w, 1), rgb = image_alloc(h, w, 3);
    for (int i = 0; i < h * w; i++) {
        idx.px[i] = (uint8_t)(i % 19);
        memcpy(rgb.px + 3 * i, pal[idx.px[i]], 3);
    }
    char p[4400];
    snprintf(p, sizeof p, "%s/pred.png", dir);
    cr_assert_eq(image_write_png(p, &rgb), 0, "%s", mv_last_error());
    mv_image back;
    cr_assert_eq(image_read_rgb(&back, p), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(back.px, rgb.px, (size_t)h * w * 3), 0);
    image_free(&back);
    snprintf(p, sizeof p, "%s/pred_p.png", dir);
    cr_assert_eq(image_write_png_palette(p, &idx, &pal[0][0], 19), 0, "%s", mv_last_error());
    cr_assert_eq(image_read_png_index(&back, p), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(back.px, idx.px, (size_t)h * w), 0);
    image_free(&back);
    cr_assert_eq(image_read_rgb(&back, p), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(back.px, rgb.px, (size_t)h * w * 3), 0);
    image_free(&back);
    cr_assert_eq(count_entries(dir), 2);
    image_free(&idx);
    image_free(&rgb);
}
