// A folder's state as text, for tests that a run left a folder untouched (header-only test
// helper): each entry's name, inode, size, modification time and a hash of its bytes, then the
// folder's own modification time (any file created, removed or renamed in it changes that).
// Two equal states: nothing in it was touched.
#pragma once
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int folder_state_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void folder_state(char *out, size_t cap, const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d, "%s", dir);
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            cr_assert_lt(n, 64);
            names[n++] = strdup(e->d_name);
        }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, folder_state_cmp);
    size_t len = 0;
    struct stat st;
    for (int i = 0; i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        cr_assert_eq(stat(path, &st), 0, "%s", path);
        uint64_t h = 1469598103934665603ull;  // FNV-1a of the bytes
        FILE *f = fopen(path, "rb");
        cr_assert(f, "%s", path);
        for (int c; (c = fgetc(f)) != EOF;) h = (h ^ (uint64_t)c) * 1099511628211ull;
        fclose(f);
        len += (size_t)snprintf(out + len, cap - len, "%s ino %llu size %lld mtime %lld.%09ld fnv %016llx\n", names[i],
                                (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                st.st_mtim.tv_nsec, (unsigned long long)h);
        cr_assert_lt(len, cap);
        free(names[i]);
    }
    cr_assert_eq(stat(dir, &st), 0);
    snprintf(out + len, cap - len, ". mtime %lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

// Makes the finished split in `dir` look like a run that died after sealing its last shard:
// no manifest, and a half-written temporary shard-00003.h5.tmp.
static inline void unfinish_split(const char *dir) {
    char path[4400];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    cr_assert_eq(remove(path), 0);
    snprintf(path, sizeof path, "%s/shard-00003.h5.tmp", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("half-written", f);
    fclose(f);
}
