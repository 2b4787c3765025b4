#!/bin/bash
# Image inputs through the CLI: `maskvim data convert --dataset cityscapes` on fixtures whose one
# item has a damaged or unexpected PNG (written here with Python's zlib). A label that is RGB, a
# truncated image, an empty label, a 16-bit label value above 255: exit status 1 (never a crash
# or abort) and a message naming the file. A 16-bit gray label with valid ids converts to the
# same shard labels as the 8-bit one.
set -u
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_TEST_TMP:=/tmp}"
T="$MV_TEST_TMP/test_image_inputs"
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*"; exit 1; }

"$MV_PYTHON" - "$T" <<'EOF' || fail "fixture"
import os, struct, sys, zlib
import numpy as np
root = sys.argv[1]
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import png
rng = np.random.default_rng(0)
stem = "aachen/aachen_000000_000019"
img = rng.integers(0, 256, size=(12, 20, 3), dtype=np.uint8)
lab = (np.arange(12 * 20).reshape(12, 20) % 34).astype(np.uint8)
def tree(name, image=None, label=None, label_depth=8):
    base = f"{root}/{name}"
    ip = f"{base}/leftImg8bit/val/{stem}_leftImg8bit.png"
    lp = f"{base}/gtFine/val/{stem}_gtFine_labelIds.png"
    png(ip, img if image is None else image)
    png(lp, lab if label is None else label, label_depth)
    return ip, lp
tree("good")
tree("label16", label=lab.astype(np.uint16), label_depth=16)
big = lab.astype(np.uint16); big[3, 4] = 300
tree("label16_big", label=big, label_depth=16)
tree("label_rgb", label=np.stack([lab, lab, lab], axis=2))
ip, _ = tree("image_cut")
data = open(ip, "rb").read(); open(ip, "wb").write(data[: len(data) // 2])
_, lp = tree("label_empty")
open(lp, "wb").close()
EOF

convert() {  # NAME: converts fixture NAME into $T/out/NAME; stderr in $T/NAME.err; returns the exit status
    "$MV_BIN" data convert --dataset cityscapes --root "$T/$1" --split val --out "$T/out/$1" --workers 1 \
        >"$T/$1.out" 2>"$T/$1.err"
}

convert good || fail "good fixture: $(cat "$T/good.err")"
convert label16 || fail "16-bit gray label refused: $(cat "$T/label16.err")"

# name, file the message must name, words it must hold
check_bad() {
    convert "$1"
    local rc=$?
    [ "$rc" -eq 1 ] || fail "$1: exit status $rc, want 1: $(cat "$T/$1.err")"
    grep -qF "$2" "$T/$1.err" || fail "$1: message does not name $2: $(cat "$T/$1.err")"
    grep -qF "$3" "$T/$1.err" || fail "$1: message lacks '$3': $(cat "$T/$1.err")"
}
check_bad label16_big "aachen_000000_000019_gtFine_labelIds.png" "16-bit label value 300 at (y 3, x 4)"
check_bad label_rgb "aachen_000000_000019_gtFine_labelIds.png" "one-channel"
# a valid RGB PNG is the wrong kind of label, not a damaged file
! grep -qF "corrupt" "$T/label_rgb.err" || fail "label_rgb: a valid PNG called corrupt: $(cat "$T/label_rgb.err")"
check_bad image_cut "aachen_000000_000019_leftImg8bit.png" "corrupt or unsupported PNG"
check_bad label_empty "aachen_000000_000019_gtFine_labelIds.png" "not a PNG file"

"$MV_PYTHON" - "$T" <<'EOF' || fail "16-bit label shards differ from the 8-bit ones"
import sys, json
import h5py, numpy as np
root = sys.argv[1]
def labels(name):
    m = json.load(open(f"{root}/out/{name}/manifest.json"))
    assert m["count"] == 1, m
    with h5py.File(f"{root}/out/{name}/{m['shards'][0]['file']}", "r") as f:
        return f["label/00000"][()]
a, b = labels("good"), labels("label16")
assert a.shape == (12, 20) and (a == b).all()
EOF
echo "ok: image inputs through data convert"
