# Writes PNG files for the shell tests' fixtures without Pillow: 8- or 16-bit, gray or RGB,
# with zlib from the standard library. Import it from a test's inline Python with
# sys.path.insert(0, "<this folder>").
import os
import struct
import zlib

import numpy as np


def png(path, arr, depth=8, level=6):
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    ctype = 2 if arr.ndim == 3 else 0
    arr = arr.astype(">u2" if depth == 16 else np.uint8)
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, level)) + chunk(b"IEND", b"")
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def unlabelled_cityscapes(root, n=2, size=(64, 128), seed=3, city="ulm", split="val"):
    """A Cityscapes-layout split under root/cs of n random images whose label ids are all 0
    (unlabeled: every pixel 255, ignore, after conversion)."""
    rng = np.random.default_rng(seed)
    h, w = size
    for i in range(n):
        stem = f"{city}/{city}_{i:06d}_000019"
        png(f"{root}/cs/leftImg8bit/{split}/{stem}_leftImg8bit.png", rng.integers(0, 256, (h, w, 3)))
        png(f"{root}/cs/gtFine/{split}/{stem}_gtFine_labelIds.png", np.zeros((h, w), np.uint8))


def read_png(path):
    """Decodes an 8-bit gray or RGB, non-interlaced PNG (as maskvim writes them) to a uint8
    array of shape (h, w) or (h, w, 3), undoing each row's filter."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert depth == 8 and ctype in (0, 2) and interlace == 0, (path, depth, ctype, interlace)
    bpp = 3 if ctype == 2 else 1
    raw, stride = zlib.decompress(idat), w * bpp
    out = np.zeros((h, stride), np.int32)
    for y in range(h):
        kind, row = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        up = out[y - 1] if y else np.zeros(stride, np.int32)
        cur = out[y]
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            b, c = up[x], (up[x - bpp] if x >= bpp else 0)
            if kind == 0: pred = 0
            elif kind == 1: pred = a
            elif kind == 2: pred = b
            elif kind == 3: pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (row[x] + pred) & 255
    out = out.astype(np.uint8)
    return out.reshape(h, w, 3) if bpp == 3 else out
