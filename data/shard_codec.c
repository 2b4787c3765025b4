// The shard chunk codec: the filters HDF5 would apply to a stored chunk, done here.
//
// Chunks are moved with HDF5's direct chunk I/O (H5Dwrite_chunk / H5Dread_chunk) and the
// filters are applied here: deflate with zlib, then the Fletcher32 HDF5 would append. The
// datasets still declare shuffle + deflate + Fletcher32, so any HDF5 reader (h5py, h5dump)
// decodes them normally. Doing the filters ourselves lets many threads compress and inflate
// at once; HDF5's own filters would run under its global library lock. (Shuffle is the
// identity on 1-byte elements, so it has nothing to do for uint8 images.)
#include "data/shard.h"
#include <stdlib.h>
#include <zlib.h>
#include "core/error.h"

uint32_t shard_fletcher32(const uint8_t *data, size_t len) {
    // HDF5's variant: sums of big-endian 16-bit words, both sums folded to 17 bits every 360
    // words (the most that cannot overflow 32 bits), a trailing odd byte is the high byte of a
    // last word.
    uint32_t a = 0, b = 0;
    size_t words = len / 2;
    const uint8_t *p = data;
    while (words) {
        size_t blk = words > 360 ? 360 : words;
        words -= blk;
        for (size_t i = 0; i < blk; i++, p += 2) {
            a += ((uint32_t)p[0] << 8) | p[1];
            b += a;
        }
        a = (a & 0xffff) + (a >> 16);
        b = (b & 0xffff) + (b >> 16);
    }
    if (len & 1) {
        a += (uint32_t)p[0] << 8;
        b += a;
        a = (a & 0xffff) + (a >> 16);
        b = (b & 0xffff) + (b >> 16);
    }
    a = (a & 0xffff) + (a >> 16);
    b = (b & 0xffff) + (b >> 16);
    return (b << 16) | a;
}

int64_t shard_encode_chunk(uint8_t **out, size_t *cap, const uint8_t *raw, size_t n, int level) {
    size_t need = compressBound((uLong)n) + 4;
    if (*cap < need) {
        uint8_t *p = realloc(*out, need);
        if (!p) return mv_fail("out of memory for a %zu-byte chunk", need);
        *out = p;
        *cap = need;
    }
    uLongf len = (uLongf)(*cap - 4);
    if (compress2(*out, &len, raw, (uLong)n, level) != Z_OK) return mv_fail("zlib compression failed");
    uint32_t f = shard_fletcher32(*out, len);
    // HDF5 stores the checksum little-endian after the filtered bytes.
    (*out)[len + 0] = (uint8_t)(f);
    (*out)[len + 1] = (uint8_t)(f >> 8);
    (*out)[len + 2] = (uint8_t)(f >> 16);
    (*out)[len + 3] = (uint8_t)(f >> 24);
    return (int64_t)len + 4;
}

int shard_decode_chunk(uint8_t *raw, const uint8_t *enc, size_t enc_len, size_t n, const char *what) {
    if (enc_len < 5) return mv_fail("%s: chunk of %zu bytes is too short", what, enc_len);
    size_t len = enc_len - 4;
    uint32_t stored = (uint32_t)enc[len] | (uint32_t)enc[len + 1] << 8 | (uint32_t)enc[len + 2] << 16 |
                      (uint32_t)enc[len + 3] << 24;
    uint32_t f = shard_fletcher32(enc, len);
    if (f != stored) return mv_fail("%s: Fletcher32 checksum mismatch (stored %08x, computed %08x): data corrupt", what,
                                    stored, f);
    uLongf got = (uLongf)n;
    int zrc = uncompress(raw, &got, enc, (uLong)len);
    if (zrc != Z_OK || got != n)
        return mv_fail("%s: chunk does not inflate to %zu bytes (zlib status %d, %lu bytes)", what, n, zrc,
                       (unsigned long)got);
    return 0;
}
