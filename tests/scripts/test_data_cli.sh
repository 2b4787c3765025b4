#!/bin/bash
# `maskvim data convert` and `maskvim data inspect` end to end: a Cityscapes-layout fixture (and a GTAV one)
# (PNG files written here with Python's zlib), conversion, verification, reading the shards
# back with h5py (HDF5's own filter pipeline, Fletcher32 included), and corruption detection.
set -u
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_TEST_TMP:=/tmp}"
T="$MV_TEST_TMP/test_data_cli"
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*"; exit 1; }

"$MV_PYTHON" - "$T" <<'EOF' || fail "fixture"
import os, struct, sys, zlib
import numpy as np
root = sys.argv[1]
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import png
rng = np.random.default_rng(0)
for k, city in enumerate(["aachen", "aachen", "bremen"]):
    stem = f"{city}/{city}_{k:06d}_000019"
    img = rng.integers(0, 256, size=(20, 36, 3), dtype=np.uint8)
    lab = (np.arange(20 * 36).reshape(20, 36) + k) % 34
    png(f"{root}/cs/leftImg8bit/val/{stem}_leftImg8bit.png", img)
    png(f"{root}/cs/gtFine/val/{stem}_gtFine_labelIds.png", lab)
    np.save(f"{root}/img{k}.npy", img)
    np.save(f"{root}/lab{k}.npy", lab)
EOF

out=$("$MV_BIN" data convert --dataset cityscapes --root "$T/cs" --split val --out "$T/split" --workers 2 --samples-per-shard 2 2>"$T/err.txt") \
    || fail "convert failed: $(cat "$T/err.txt")"
echo "$out" | grep -q "3 samples written" || fail "convert output: $out"
grep -q "3/3 items .*items/s" "$T/err.txt" || fail "no progress line: $(cat "$T/err.txt")"

"$MV_BIN" data inspect "$T/split" >"$T/inspect.txt" 2>&1 || fail "inspect: $(cat "$T/inspect.txt")"
grep -q "samples    3 in 2 shards" "$T/inspect.txt" || fail "inspect summary: $(cat "$T/inspect.txt")"
grep -q "all shards and samples verified" "$T/inspect.txt" || fail "inspect verify: $(cat "$T/inspect.txt")"
# An image lying directly in leftImg8bit/val, outside a city folder, is not part of the layout:
# not converted, but said, naming it.
cp -r "$T/cs" "$T/cs_stray" && cp "$T/cs/leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png" \
    "$T/cs_stray/leftImg8bit/val/stray_leftImg8bit.png"
out=$("$MV_BIN" data convert --dataset cityscapes --root "$T/cs_stray" --split val --out "$T/split_stray" 2>"$T/stray.txt") ||
    fail "convert with a stray image: $(cat "$T/stray.txt")"
echo "$out" | grep -q "3 samples written" || fail "convert with a stray image: $out"
grep -q "1 \*_leftImg8bit.png file directly in leftImg8bit/val, outside a city folder, not converted (first: stray_leftImg8bit.png)" \
    "$T/stray.txt" || fail "stray image not reported: $(cat "$T/stray.txt")"

"$MV_PYTHON" - "$T" <<'EOF' || fail "h5py read-back"
import sys, json
import h5py, numpy as np
root = sys.argv[1]
table = np.full(256, 255, np.uint8)
for lid, tid in [(7,0),(8,1),(11,2),(12,3),(13,4),(17,5),(19,6),(20,7),(21,8),(22,9),(23,10),(24,11),
                 (25,12),(26,13),(27,14),(28,15),(31,16),(32,17),(33,18)]:
    table[lid] = tid
m = json.load(open(f"{root}/split/manifest.json"))
assert m["count"] == 3 and m["domain"] == "cityscapes" and len(m["classes"]) == 19, m
k = 0
for sh in m["shards"]:
    with h5py.File(f"{root}/split/{sh['file']}", "r") as f:
        names = [n.decode() for n in f["names"][:]]
        for j in range(sh["count"]):
            ds = f[f"image/{j:05d}"]
            assert ds.fletcher32 and ds.compression == "gzip" and ds.shuffle, "filters"
            img, lab = ds[()], f[f"label/{j:05d}"][()]
            assert (img == np.load(f"{root}/img{k}.npy")).all(), f"image {k}"
            assert (lab == table[np.load(f"{root}/lab{k}.npy")]).all(), f"label {k}"
            assert names[j].endswith(f"_{k:06d}_000019"), names[j]
            k += 1
assert k == 3
# Corrupt one byte inside sample 1's image chunk (shard 0, local index 1).
with h5py.File(f"{root}/split/shard-00000.h5", "r") as f:
    info = f["image/00001"].id.get_chunk_info(0)
with open(f"{root}/split/shard-00000.h5", "r+b") as fp:
    fp.seek(info.byte_offset + info.size // 2)
    b = fp.read(1)
    fp.seek(info.byte_offset + info.size // 2)
    fp.write(bytes([b[0] ^ 0xFF]))
EOF

if "$MV_BIN" data inspect "$T/split" >"$T/inspect2.txt" 2>&1; then fail "inspect accepted a corrupt shard"; fi
grep -q "shard-00000.h5" "$T/inspect2.txt" || fail "corruption message: $(cat "$T/inspect2.txt")"
grep -q "checksum" "$T/inspect2.txt" || fail "corruption message: $(cat "$T/inspect2.txt")"

if "$MV_BIN" data convert --dataset cityscapes --root "$T/nowhere" --split val --out "$T/x" 2>"$T/err2.txt"; then
    fail "convert of a missing root succeeded"
fi
grep -q "nowhere/leftImg8bit/val" "$T/err2.txt" || fail "missing-root message: $(cat "$T/err2.txt")"
# GTAV end to end: palette PNG labels (indices = Cityscapes label ids, 34 included, and one index
# past them), one label smaller than its image (resized with OpenCV's INTER_NEAREST positions);
# the resized label and the one with an unlisted index are counted in the summary.
"$MV_PYTHON" - "$T" <<'EOF' || fail "gtav fixture"
import os, struct, sys, zlib
import numpy as np
root = sys.argv[1]
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import png
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
def palette_png(path, idx):
    h, w = idx.shape
    raw = b"".join(b"\x00" + idx[y].astype(np.uint8).tobytes() for y in range(h))
    pal = bytes(np.arange(35 * 3, dtype=np.uint8))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
    data += chunk(b"PLTE", pal) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(data)
rng = np.random.default_rng(1)
for k, (lh, lw) in enumerate([(20, 36), (15, 24)]):
    img = rng.integers(0, 256, size=(20, 36, 3), dtype=np.uint8)
    lab = (np.arange(lh * lw).reshape(lh, lw) + k) % 35
    if k == 1:
        lab[2, 3] = 200  # outside GTAV's indices: 255 as in HGFormer's converter, counted in the summary
    png(f"{root}/gta/images/valid/{k + 1:05d}.png", img)
    palette_png(f"{root}/gta/labels/valid/{k + 1:05d}.png", lab)
    np.save(f"{root}/glab{k}.npy", lab)
EOF
out=$("$MV_BIN" data convert --dataset gtav --root "$T/gta" --split val --out "$T/gsplit" 2>"$T/gerr.txt") \
    || fail "gtav convert failed: $(cat "$T/gerr.txt")"
echo "$out" | grep -q "2 samples written.*1 label resized to its image, 1 label with ids outside the class table" ||
    fail "gtav convert output: $out"
"$MV_BIN" data inspect "$T/gsplit" >"$T/ginspect.txt" 2>&1 || fail "gtav inspect: $(cat "$T/ginspect.txt")"
grep -q "all shards and samples verified" "$T/ginspect.txt" || fail "gtav inspect: $(cat "$T/ginspect.txt")"
grep -q "gtav-labelid-to-trainid/v3" "$T/ginspect.txt" || fail "gtav label map: $(cat "$T/ginspect.txt")"
# Several folders: each is inspected, the damaged one (above) does not stop the good one after it.
if "$MV_BIN" data inspect "$T/split" "$T/gsplit" >"$T/inspect3.txt" 2>&1; then fail "inspect of two folders, one corrupt, exited 0"; fi
grep -q "gtav-labelid-to-trainid/v3" "$T/inspect3.txt" && grep -q "all shards and samples verified" "$T/inspect3.txt" &&
    grep -q "1 of 2 split folders failed" "$T/inspect3.txt" || fail "inspect of two folders: $(cat "$T/inspect3.txt")"
"$MV_PYTHON" - "$T" <<'EOF' || fail "gtav read-back"
import sys
import h5py, numpy as np
root = sys.argv[1]
table = np.full(256, 255, np.uint8)
for lid, tid in [(7,0),(8,1),(11,2),(12,3),(13,4),(17,5),(19,6),(20,7),(21,8),(22,9),(23,10),(24,11),
                 (25,12),(26,13),(27,14),(28,15),(31,16),(32,17),(33,18)]:
    table[lid] = tid
with h5py.File(f"{root}/gsplit/shard-00000.h5", "r") as f:
    for k in range(2):
        src = np.load(f"{root}/glab{k}.npy")
        sy = np.minimum(np.arange(20) * src.shape[0] // 20, src.shape[0] - 1)  # cv2 INTER_NEAREST
        sx = np.minimum(np.arange(36) * src.shape[1] // 36, src.shape[1] - 1)
        lab = f[f"label/{k:05d}"][()]
        assert lab.shape == (20, 36) and (lab == table[src[sy][:, sx]]).all(), k
EOF
# The raw (flat) GTAV download converts with a split list, giving the same sample as the split folder.
mkdir -p "$T/graw/images" "$T/graw/labels"
for k in 00001 00002; do
    cp "$T/gta/images/valid/$k.png" "$T/graw/images/" && cp "$T/gta/labels/valid/$k.png" "$T/graw/labels/"
done
printf '00002.png\n' >"$T/gtav_split_val.txt"
out=$("$MV_BIN" data convert --dataset gtav --root "$T/graw" --split val --list "$T/gtav_split_val.txt" \
      --out "$T/glist" 2>"$T/glerr.txt") || fail "gtav --list convert failed: $(cat "$T/glerr.txt")"
echo "$out" | grep -q "1 sample written.*1 label resized to its image" || fail "gtav --list output: $out"
"$MV_PYTHON" - "$T" <<'EOF' || fail "gtav --list read-back"
import sys
import h5py
root = sys.argv[1]
with h5py.File(f"{root}/glist/shard-00000.h5", "r") as a, h5py.File(f"{root}/gsplit/shard-00000.h5", "r") as b:
    assert (a["label/00000"][()] == b["label/00001"][()]).all() and (a["image/00000"][()] == b["image/00001"][()]).all()
EOF
if "$MV_BIN" data convert --dataset gtav --root "$T/gta" --split val --list "$T/gtav_split_val.txt" \
    --out "$T/gl2" 2>"$T/glerr2.txt"; then fail "--list on a root without the flat folders succeeded"; fi
grep -q "no file that .*gtav_split_val.txt lists (1 listed) is in .*gta/images" "$T/glerr2.txt" ||
    fail "--list on a split root: $(cat "$T/glerr2.txt")"
# A label whose image is missing (an incomplete extraction) is an error naming both files, and
# with --skip-bad a listed skip; it used to be left out of the split without a word.
cp "$T/gta/labels/valid/00001.png" "$T/gta/labels/valid/00009.png"
if "$MV_BIN" data convert --dataset gtav --root "$T/gta" --split val --out "$T/gorph" 2>"$T/gorph.txt"; then
    fail "a label without its image converted"
fi
grep -q "labels/valid/00009.png: a label without its image (.*images/valid/00009.png does not exist)" "$T/gorph.txt" ||
    fail "label without image: $(cat "$T/gorph.txt")"
out=$("$MV_BIN" data convert --dataset gtav --root "$T/gta" --split val --out "$T/gorph" --skip-bad 2>"$T/gorph.txt") ||
    fail "--skip-bad with a label without its image: $(cat "$T/gorph.txt")"
echo "$out" | grep -q "2 samples written, 0 resumed, 1 skipped" || fail "label without image, --skip-bad: $out"
rm -f "$T/gta/labels/valid/00009.png"
# A label whose name is not UTF-8 (a Latin-1 file name): the manifest stays valid UTF-8 (the byte
# as \udcXX), Python reads it back to the same bytes, and so does a re-run (already converted).
# The progress line counts items, skipped ones too; the closing line tells them apart.
cp "$T/gta/labels/valid/00001.png" "$T/gta/labels/valid/caf$(printf '\351').png"
out=$("$MV_BIN" data convert --dataset gtav --root "$T/gta" --split val --out "$T/glatin" --skip-bad 2>"$T/glatin.txt") ||
    fail "--skip-bad with a Latin-1 name: $(cat "$T/glatin.txt")"
echo "$out" | grep -q "2 samples written, 0 resumed, 1 skipped" || fail "Latin-1 name, --skip-bad: $out"
grep -q "3/3 items" "$T/glatin.txt" || fail "progress with a skipped item: $(cat "$T/glatin.txt")"
"$MV_PYTHON" - "$T/glatin/manifest.json" <<'EOF' || fail "manifest with a Latin-1 name"
import json, os, sys
raw = open(sys.argv[1], "rb").read()
raw.decode("utf-8")                        # strict: raises on any byte that is not UTF-8
m = json.loads(raw)
names = [os.fsencode(s.split(": ")[0]) for s in m["skipped"]]
assert names == [b"caf\xe9"], names
EOF
out=$("$MV_BIN" data convert --dataset gtav --root "$T/gta" --split val --out "$T/glatin" --skip-bad 2>&1) ||
    fail "re-run over the split with a Latin-1 skip: $out"
echo "$out" | grep -q "already converted" || fail "re-run with a Latin-1 skip: $out"
rm -f "$T/gta/labels/valid/caf"*

# Two conversions into one --out (train and val, or one command started twice) must not both
# write there: while one holds the folder's lock the other is refused at once, naming the folder.
# First with the lock held from Python (deterministic), then two real runs started together:
# exactly one succeeds, whatever the timing, and the folder is a whole split of its items.
"$MV_PYTHON" - "$T" <<'EOF' || fail "lock fixture"
import os, sys
import numpy as np
root = sys.argv[1]
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import png
rng = np.random.default_rng(2)
for split, n in [("train", 24), ("val", 20)]:
    for k in range(n):
        stem = f"ulm/ulm_{k:06d}_000019"
        png(f"{root}/big/leftImg8bit/{split}/{stem}_leftImg8bit.png",
            rng.integers(0, 256, size=(192, 384, 3), dtype=np.uint8))
        png(f"{root}/big/gtFine/{split}/{stem}_gtFine_labelIds.png", (np.arange(192 * 384).reshape(192, 384) + k) % 34)
EOF
mkdir -p "$T/locked"
"$MV_PYTHON" - "$T/locked" "$MV_BIN" "$T/big" <<'EOF' || fail "a conversion into a locked folder"
import fcntl, os, subprocess, sys
out, binary, root = sys.argv[1:4]
lk = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
try:
    fcntl.flock(lk, fcntl.LOCK_EX)
    r = subprocess.run([binary, "data", "convert", "--dataset", "cityscapes", "--root", root, "--split", "val",
                        "--out", out], capture_output=True, text=True, timeout=60)
finally:
    os.close(lk)
assert r.returncode == 1, (r.returncode, r.stderr)
assert f"{out}: another conversion is writing into this folder now" in r.stderr and "--out" in r.stderr, r.stderr
EOF
ls "$T/locked" | grep -q . && fail "the refused conversion wrote into the locked folder: $(ls "$T/locked")"
"$MV_BIN" data convert --dataset cityscapes --root "$T/big" --split train --out "$T/both" --workers 1 \
    --samples-per-shard 4 >"$T/both1.txt" 2>&1 &
p1=$!
"$MV_BIN" data convert --dataset cityscapes --root "$T/big" --split val --out "$T/both" --workers 1 \
    --samples-per-shard 4 >"$T/both2.txt" 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
[ $((r1 + r2)) -eq 1 ] || fail "two conversions into one folder: exit $r1 and $r2: $(cat "$T/both1.txt" "$T/both2.txt")"
cat "$T/both1.txt" "$T/both2.txt" | grep -q "another conversion is writing into this folder now\|the input changed" ||
    fail "the refused conversion's message: $(cat "$T/both1.txt" "$T/both2.txt")"
want=$([ $r1 -eq 0 ] && echo 24 || echo 20)
"$MV_BIN" data inspect "$T/both" >"$T/both_inspect.txt" 2>&1 || fail "the split of two conversions: $(cat "$T/both_inspect.txt")"
grep -q "samples    $want in" "$T/both_inspect.txt" || fail "the split of two conversions: $(cat "$T/both_inspect.txt")"

# A skipped item whose name holds ": " and whose reason is long and in UTF-8 (its root path):
# the manifest keeps the reason whole and is valid JSON in UTF-8, and a re-run finds the split
# up to date (the name read back exactly, not cut at its first ": ").
U="$T/$(for i in $(seq 1 12); do printf 'd\xc3\xa9j\xc3\xa0-vu-\xe2\x82\xac'; done)"
"$MV_PYTHON" - "$U" <<'EOF' || fail "colon fixture"
import os, sys
import numpy as np
root = sys.argv[1]
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import png
for k, city in enumerate(["a: b", "a: b", "c"]):
    stem = f"{city}/{city}_{k:06d}_000019"
    lab = np.full((8, 12), 7)
    if k == 0:
        lab[1, 2] = 40  # not a Cityscapes label id: skipped with --skip-bad
    png(f"{root}/leftImg8bit/val/{stem}_leftImg8bit.png", np.zeros((8, 12, 3), np.uint8))
    png(f"{root}/gtFine/val/{stem}_gtFine_labelIds.png", lab)
EOF
out=$("$MV_BIN" data convert --dataset cityscapes --root "$U" --split val --out "$T/colon" --skip-bad 2>"$T/colon.txt") ||
    fail "--skip-bad with a name holding ': ': $(cat "$T/colon.txt")"
echo "$out" | grep -q "2 samples written, 0 resumed, 1 skipped" || fail "colon convert: $out"
"$MV_PYTHON" - "$T/colon" <<'EOF' || fail "the manifest of a long UTF-8 skip reason"
import json, sys
m = json.load(open(f"{sys.argv[1]}/manifest.json", encoding="utf-8"))
(entry,) = m["skipped"]
assert entry.startswith('"a: b/a: b_000000_000019": ') and entry.endswith("is not a known class id"), entry
assert len(entry.encode()) > 300 and "\u20ac" in entry, entry
EOF
"$MV_BIN" data convert --dataset cityscapes --root "$U" --split val --out "$T/colon" --skip-bad >"$T/colon2.txt" 2>&1 ||
    fail "re-run over a split with a skipped name holding ': ': $(cat "$T/colon2.txt")"
grep -q "already converted" "$T/colon2.txt" || fail "re-run: $(cat "$T/colon2.txt")"

# bench-loader writes its own split into --dir: a converted split there, or other files, are
# refused and left as they were; its own split (or a new folder) is used.
bench() { "$MV_BIN" data bench-loader --dir "$1" --count 2 --size 32x48 --crop 16x16 --threads 1 --batches 1 --batch 1; }
if bench "$T/gsplit" >"$T/bench1.txt" 2>&1; then fail "bench-loader ran over a converted split"; fi
grep -q "gsplit holds a split of domain 'gtav'" "$T/bench1.txt" || fail "bench-loader over a split: $(cat "$T/bench1.txt")"
"$MV_BIN" data inspect "$T/gsplit" >/dev/null 2>&1 || fail "bench-loader damaged the split in --dir"
mkdir -p "$T/notes" && echo keep >"$T/notes/readme.txt"
if bench "$T/notes" >"$T/bench2.txt" 2>&1; then fail "bench-loader ran in a folder of other files"; fi
grep -q "notes holds 'readme.txt'" "$T/bench2.txt" || fail "bench-loader over other files: $(cat "$T/bench2.txt")"
bench "$T/bench" >"$T/bench3.txt" 2>&1 || fail "bench-loader in a new folder: $(cat "$T/bench3.txt")"
bench "$T/bench" >"$T/bench4.txt" 2>&1 || fail "bench-loader over its own split: $(cat "$T/bench4.txt")"
grep -q "samples/s" "$T/bench4.txt" || fail "bench-loader output: $(cat "$T/bench4.txt")"
echo "PASS"
