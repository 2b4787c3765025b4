// manifest.json writing and parsing (see manifest.h), with a small JSON reader that accepts
// standard JSON (objects, arrays, strings, numbers, true/false/null) and nothing more.
#include "data/manifest.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "core/error.h"
#include "core/fs.h"
#include "core/json_read.h"
#include "core/json_write.h"

const char *const MV_CLASS_NAMES[MV_NUM_TRAIN_CLASSES] = {
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"};

const uint8_t MV_CLASS_PALETTE[MV_NUM_TRAIN_CLASSES][3] = {
    {128, 64, 128}, {244, 35, 232}, {70, 70, 70}, {102, 102, 156}, {190, 153, 153}, {153, 153, 153},
    {250, 170, 30}, {220, 220, 0}, {107, 142, 35}, {152, 251, 152}, {70, 130, 180}, {220, 20, 60},
    {255, 0, 0},    {0, 0, 142},   {0, 0, 70},    {0, 60, 100},    {0, 80, 100},    {0, 0, 230},
    {119, 11, 32}};

const int MV_CITYSCAPES_ID_TO_TRAIN[MV_NUM_TRAIN_CLASSES][2] = {
    {7, 0},   {8, 1},   {11, 2},  {12, 3},  {13, 4},  {17, 5},  {19, 6},  {20, 7},  {21, 8},  {22, 9},
    {23, 10}, {24, 11}, {25, 12}, {26, 13}, {27, 14}, {28, 15}, {31, 16}, {32, 17}, {33, 18}};

int file_crc32(uint32_t *crc, int64_t *bytes, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return mv_fail("%s: cannot open: %s", path, strerror(errno));
    enum { BUF = 1 << 20 };
    unsigned char *buf = mv_malloc(BUF);
    uLong c = crc32(0L, Z_NULL, 0);
    int64_t total = 0;
    size_t n;
    while ((n = fread(buf, 1, BUF, f)) > 0) {
        c = crc32(c, buf, (uInt)n);
        total += (int64_t)n;
    }
    int err = ferror(f);
    fclose(f);
    free(buf);
    if (err) return mv_fail("%s: read error", path);
    *crc = (uint32_t)c;
    if (bytes) *bytes = total;
    return 0;
}

// ---------------------------------------------------------------------------------------
// Writing

int manifest_write(const char *split_dir, const mv_manifest *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", split_dir, MV_MANIFEST_FILE);
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    FILE *f = out.f;
    fprintf(f, "{\n  \"format\": \"maskvim-split\",\n  \"version\": %d,\n  \"domain\": ", m->version);
    json_write_string(f, m->domain);
    fprintf(f, ",\n  \"label_map\": ");
    json_write_string(f, m->label_map);
    if (m->n_source) {
        fprintf(f, ",\n  \"source\": {");
        for (int i = 0; i < m->n_source; i++) {
            if (i) fputs(", ", f);
            json_write_string(f, m->source[i].key);
            fputs(": ", f);
            json_write_string(f, m->source[i].value);
        }
        fputc('}', f);
    }
    fprintf(f, ",\n  \"num_classes\": %d,\n  \"ignore_index\": %d,\n  \"classes\": [", m->num_classes, MV_IGNORE_LABEL);
    for (int c = 0; c < MV_NUM_TRAIN_CLASSES; c++) {
        if (c) fputs(", ", f);
        json_write_string(f, MV_CLASS_NAMES[c]);
    }
    fprintf(f, "],\n  \"count\": %lld,\n  \"samples_per_shard\": %d,\n", (long long)m->count, m->samples_per_shard);
    fprintf(f, "  \"image_size\": {\"min_h\": %d, \"min_w\": %d, \"max_h\": %d, \"max_w\": %d},\n", m->min_h, m->min_w,
            m->max_h, m->max_w);
    fprintf(f, "  \"shards\": [");
    for (int i = 0; i < m->n_shards; i++) {
        const mv_manifest_shard *s = &m->shards[i];
        fprintf(f, "%s\n    {\"file\": ", i ? "," : "");
        json_write_string(f, s->file);
        fprintf(f, ", \"first\": %lld, \"count\": %d, \"skipped\": %d, \"bytes\": %lld, \"crc32\": \"%08x\"}",
                (long long)s->first, s->count, s->skipped, (long long)s->bytes, s->crc32);
    }
    fprintf(f, "%s],\n  \"skipped\": [", m->n_shards ? "\n  " : "");
    for (int i = 0; i < m->n_skipped; i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        json_write_string(f, m->skipped[i]);
    }
    fprintf(f, "%s]\n}\n", m->n_skipped ? "\n  " : "");
    return mv_atomic_commit(&out, true);
}

// ---------------------------------------------------------------------------------------
// Reading it back (core/json_read.c's tree)

// Typed field access: each records "PATH: field 'key' missing or not a ..." on failure.
static int jnum(double *out, const mv_json *obj, const char *key, const char *path) {
    const mv_json *v = mv_json_get(obj, key);
    if (!v || v->kind != MV_JSON_NUM) return mv_fail("%s: field '%s' missing or not a number", path, key);
    *out = v->num;
    return 0;
}

static int jint(int64_t *out, const mv_json *obj, const char *key, const char *path, int64_t lo, int64_t hi) {
    double d = 0;
    MV_TRY(jnum(&d, obj, key, path));
    if (d != (double)(int64_t)d || d < (double)lo || d > (double)hi)
        return mv_fail("%s: field '%s' = %g is not an integer in [%lld, %lld]", path, key, d, (long long)lo,
                       (long long)hi);
    *out = (int64_t)d;
    return 0;
}

static int jstr(char *out, size_t cap, const mv_json *obj, const char *key, const char *path) {
    const mv_json *v = mv_json_get(obj, key);
    if (!v || v->kind != MV_JSON_STR) return mv_fail("%s: field '%s' missing or not a string", path, key);
    if (strlen(v->str) >= cap) return mv_fail("%s: field '%s' longer than %zu characters", path, key, cap - 1);
    strcpy(out, v->str);
    return 0;
}

static int manifest_from_json(mv_manifest *m, const mv_json *root, const char *path) {
    char fmt[64];
    int64_t x = 0;
    if (root->kind != MV_JSON_OBJ) return mv_fail("%s: not a JSON object", path);
    MV_TRY(jstr(fmt, sizeof fmt, root, "format", path));
    if (strcmp(fmt, "maskvim-split")) return mv_fail("%s: format '%s' is not maskvim-split", path, fmt);
    MV_TRY(jint(&x, root, "version", path, 1, 1));
    m->version = (int)x;
    MV_TRY(jstr(m->domain, sizeof m->domain, root, "domain", path));
    MV_TRY(jstr(m->label_map, sizeof m->label_map, root, "label_map", path));
    const mv_json *src = mv_json_get(root, "source");   // optional
    if (src && src->kind != MV_JSON_OBJ) return mv_fail("%s: field 'source' is not an object", path);
    for (int i = 0; src && i < src->n; i++) {
        if (i == MV_MANIFEST_SOURCE_MAX) return mv_fail("%s: field 'source' has more than %d entries", path, i);
        if (src->items[i].kind != MV_JSON_STR)
            return mv_fail("%s: source '%s' is not a string", path, src->items[i].key);
        m->source[i].key = mv_strdup(src->items[i].key);
        m->source[i].value = mv_strdup(src->items[i].str);
        m->n_source++;
    }
    MV_TRY(jint(&x, root, "num_classes", path, 1, 255));
    m->num_classes = (int)x;
    MV_TRY(jint(&m->count, root, "count", path, 0, INT64_MAX / 2));
    MV_TRY(jint(&x, root, "samples_per_shard", path, 1, 1 << 24));
    m->samples_per_shard = (int)x;
    const mv_json *sz = mv_json_get(root, "image_size");
    if (!sz || sz->kind != MV_JSON_OBJ) return mv_fail("%s: field 'image_size' missing or not an object", path);
    int *dims[4] = {&m->min_h, &m->min_w, &m->max_h, &m->max_w};
    const char *names[4] = {"min_h", "min_w", "max_h", "max_w"};
    for (int i = 0; i < 4; i++) {
        MV_TRY(jint(&x, sz, names[i], path, 0, 1 << 20));
        *dims[i] = (int)x;
    }
    const mv_json *shards = mv_json_get(root, "shards");
    if (!shards || shards->kind != MV_JSON_ARR) return mv_fail("%s: field 'shards' missing or not an array", path);
    m->shards = mv_calloc((size_t)shards->n, sizeof *m->shards);
    m->n_shards = shards->n;
    int64_t next = 0;
    for (int i = 0; i < shards->n; i++) {
        mv_manifest_shard *s = &m->shards[i];
        const mv_json *o = &shards->items[i];
        char crc[16], *endp;
        if (o->kind != MV_JSON_OBJ) return mv_fail("%s: shards[%d] is not an object", path, i);
        MV_TRY(jstr(s->file, sizeof s->file, o, "file", path));
        if (strchr(s->file, '/')) return mv_fail("%s: shards[%d]: file '%s' must not contain '/'", path, i, s->file);
        MV_TRY(jint(&s->first, o, "first", path, 0, INT64_MAX / 2));
        MV_TRY(jint(&x, o, "count", path, 0, m->samples_per_shard));
        s->count = (int)x;
        MV_TRY(jint(&x, o, "skipped", path, 0, INT32_MAX));
        s->skipped = (int)x;
        MV_TRY(jint(&s->bytes, o, "bytes", path, 0, INT64_MAX / 2));
        MV_TRY(jstr(crc, sizeof crc, o, "crc32", path));
        unsigned long v = strtoul(crc, &endp, 16);
        if (*endp || strlen(crc) != 8) return mv_fail("%s: shards[%d]: crc32 '%s' is not 8 hex digits", path, i, crc);
        s->crc32 = (uint32_t)v;
        if (s->first != next)
            return mv_fail("%s: shards[%d] starts at sample %lld, expected %lld", path, i, (long long)s->first,
                           (long long)next);
        next += s->count;
    }
    if (next != m->count)
        return mv_fail("%s: shards hold %lld samples but count is %lld", path, (long long)next, (long long)m->count);
    const mv_json *sk = mv_json_get(root, "skipped");
    if (!sk || sk->kind != MV_JSON_ARR) return mv_fail("%s: field 'skipped' missing or not an array", path);
    m->skipped = mv_calloc((size_t)sk->n, sizeof(char *));
    for (int i = 0; i < sk->n; i++) {
        if (sk->items[i].kind != MV_JSON_STR) return mv_fail("%s: skipped[%d] is not a string", path, i);
        m->skipped[i] = mv_strdup(sk->items[i].str);
        m->n_skipped++;
    }
    return 0;
}

int manifest_read(mv_manifest *out, const char *split_dir) {
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", split_dir, MV_MANIFEST_FILE);
    FILE *f = fopen(path, "rb");
    if (!f) return mv_fail("%s: cannot open (is %s a converted split?): %s", path, split_dir, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len > (64L << 20)) {
        fclose(f);
        return mv_fail("%s: unreasonable size", path);
    }
    char *text = mv_malloc((size_t)len + 1);
    size_t got = fread(text, 1, (size_t)len, f);
    fclose(f);
    text[got] = 0;
    mv_json root;
    int rc = 0;
    if (got != strlen(text)) rc = mv_fail("%s: malformed JSON: a NUL byte at offset %zu", path, strlen(text));
    else if (mv_json_parse(&root, text) < 0) rc = mv_fail_context("%s: malformed JSON", path);
    else {
        rc = manifest_from_json(out, &root, path);
        mv_json_free(&root);
    }
    free(text);
    if (rc < 0) manifest_free(out);
    return rc;
}

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    return h;
}

// Each field is fed as text with its terminating NUL (numbers in decimal), so the hash does not
// depend on the machine's byte order and no two field lists run into each other.
static uint64_t fnv_str(uint64_t h, const char *s) { return fnv_bytes(h, s, strlen(s) + 1); }
static uint64_t fnv_int(uint64_t h, long long v) {
    char t[32];
    snprintf(t, sizeof t, "%lld", v);
    return fnv_str(h, t);
}

uint64_t manifest_fingerprint(const mv_manifest *m) {
    uint64_t h = 1469598103934665603ull;
    h = fnv_str(h, m->domain);
    h = fnv_str(h, m->label_map);
    h = fnv_int(h, m->num_classes);
    h = fnv_int(h, m->count);
    h = fnv_int(h, m->n_shards);
    for (int i = 0; i < m->n_shards; i++) {
        const mv_manifest_shard *s = &m->shards[i];
        h = fnv_str(h, s->file);
        h = fnv_int(h, s->first);
        h = fnv_int(h, s->count);
        h = fnv_int(h, s->bytes);
        h = fnv_int(h, s->crc32);
    }
    return h;
}

int manifest_fingerprint_dir(uint64_t *fp, int64_t *count, const char *split_dir) {
    mv_manifest m;
    MV_TRY(manifest_read(&m, split_dir));
    *fp = manifest_fingerprint(&m);
    *count = m.count;
    manifest_free(&m);
    return 0;
}

void manifest_free(mv_manifest *m) {
    free(m->shards);
    for (int i = 0; i < m->n_skipped; i++) free(m->skipped[i]);
    free(m->skipped);
    for (int i = 0; i < m->n_source; i++) {
        free(m->source[i].key);
        free(m->source[i].value);
    }
    memset(m, 0, sizeof *m);
}

const char *manifest_source(const mv_manifest *m, const char *key) {
    for (int i = 0; i < m->n_source; i++)
        if (!strcmp(m->source[i].key, key)) return m->source[i].value;
    return NULL;
}

void manifest_print(FILE *f, const mv_manifest *m, const char *split_dir) {
    fprintf(f, "split      %s\n", split_dir);
    fprintf(f, "domain     %s\n", m->domain);
    fprintf(f, "label map  %s (%d classes, ignore %d)\n", m->label_map, m->num_classes, MV_IGNORE_LABEL);
    if (m->n_source) {
        fputs("source    ", f);
        for (int i = 0; i < m->n_source; i++) fprintf(f, " %s=%s", m->source[i].key, m->source[i].value);
        fputc('\n', f);
    }
    fprintf(f, "samples    %lld in %d shards of up to %d\n", (long long)m->count, m->n_shards, m->samples_per_shard);
    fprintf(f, "image size %dx%d .. %dx%d (HxW)\n", m->min_h, m->min_w, m->max_h, m->max_w);
    int64_t bytes = 0;
    for (int i = 0; i < m->n_shards; i++) bytes += m->shards[i].bytes;
    fprintf(f, "on disk    %.1f MiB\n", (double)bytes / (1 << 20));
    fprintf(f, "skipped    %d bad input items\n", m->n_skipped);
    for (int i = 0; i < m->n_skipped; i++) fprintf(f, "  skipped: %s\n", m->skipped[i]);
}
