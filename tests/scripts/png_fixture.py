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
