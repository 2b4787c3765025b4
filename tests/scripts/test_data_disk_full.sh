#!/usr/bin/env bash
# `maskvim data convert` onto a disk that fills up: a clear error naming the folder (and, where
# the free space is what runs out, the free space), exit status 1, the complete shards and the
# resumable state left as they were, no temporary file, no manifest; a re-run with room resumes
# after the complete shards and ends with a split that verifies.
#   1. a file-size limit (as tests/scripts/test_fault_train_guard.sh does for checkpoints: the
#      write fails inside HDF5 with EFBIG, SIGXFSZ ignored), which needs no privileges;
#   2. a small tmpfs (root only; skipped where mount is refused): the shard writer sees from the
#      free space that the next sample does not fit and stops before writing it.
set -euo pipefail
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_TEST_TMP:=/tmp}"
fail() { echo "FAIL: $*"; exit 1; }
T="$MV_TEST_TMP/test_data_disk_full"
umount "$T/small" 2>/dev/null || true
rm -rf "$T" && mkdir -p "$T"
mounted=""
trap '[ -z "$mounted" ] || umount "$T/small" 2>/dev/null || true' EXIT

# Cityscapes layout: 4 small items (two shards of 2), then 4 large ones of random pixels
# (deflate cannot shrink them: about 360 KB per image).
"$MV_PYTHON" - "$T/cs" <<'EOF' || fail "fixture"
import os, struct, sys, zlib
import numpy as np
root = sys.argv[1]
sys.path.insert(0, os.environ["MV_SRC"] + "/tests/scripts")
from png_fixture import png as png_any
def png(path, arr):
    png_any(path, arr, level=1)   # fast: the pixels are random anyway
rng = np.random.default_rng(0)
for k in range(8):
    h, w = (24, 40) if k < 4 else (300, 400)
    stem = f"city/city_{k:06d}_000019"
    png(f"{root}/leftImg8bit/val/{stem}_leftImg8bit.png", rng.integers(0, 256, size=(h, w, 3)))
    png(f"{root}/gtFine/val/{stem}_gtFine_labelIds.png", rng.integers(0, 34, size=(h, w)))
EOF
convert() { "$MV_BIN" data convert --dataset cityscapes --root "$T/cs" --split val --samples-per-shard 2 --workers 1 "$@"; }
# The state a failed conversion must leave: shards 0 and 1 as they were, nothing else.
check_left() {   # check_left DIR LOG
    [ "$(ls -A "$1" | tr '\n' ' ')" = "shard-00000.h5 shard-00001.h5 " ] || fail "files left in $1: $(ls -A "$1")"
    cmp -s "$1/shard-00000.h5" "$T/ref/shard-00000.h5" && cmp -s "$1/shard-00001.h5" "$T/ref/shard-00001.h5" \
        || fail "a complete shard changed"
    grep -q "the 2 complete shards (4 samples) stay in $1 and a re-run resumes after them" "$2" \
        || fail "the message does not say what is kept: $(cat "$2")"
}
check_resume() {   # check_resume DIR: a re-run with room resumes after the kept shards
    convert --out "$1" >"$T/resume.log" 2>&1 || fail "re-run: $(cat "$T/resume.log")"
    grep -q "resuming $1: 4 of 8 items already in complete shards" "$T/resume.log" || fail "did not resume: $(cat "$T/resume.log")"
    grep -q "4 samples written, 4 resumed" "$T/resume.log" || fail "$(tail -1 "$T/resume.log")"
    "$MV_BIN" data inspect "$1" >"$T/inspect.log" 2>&1 || fail "inspect: $(cat "$T/inspect.log")"
    grep -q "all shards and samples verified" "$T/inspect.log" || fail "inspect: $(cat "$T/inspect.log")"
}
# The small shards every run starts with, for comparison.
convert --out "$T/ref" --limit 4 >/dev/null 2>&1 || fail "reference conversion"

# 1. A 600 KiB file-size limit: shard 2 (two large samples, about 720 KB) fails when written.
rc=0
( trap '' XFSZ; ulimit -f 600; exec "$MV_BIN" data convert --dataset cityscapes --root "$T/cs" --split val \
    --samples-per-shard 2 --workers 1 --out "$T/limit" ) >"$T/limit.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "a shard write that fails: exit status $rc, not 1: $(tail -3 "$T/limit.log")"
grep -q "$T/limit/shard-00002.h5.tmp: sample 1 (city/city_000005_000019): writing the image failed: File too large" \
    "$T/limit.log" || fail "the error does not name the shard and the reason: $(tail -2 "$T/limit.log")"
check_left "$T/limit" "$T/limit.log"
check_resume "$T/limit"
echo "1. file-size limit: passed"

# 2. A 1 MiB tmpfs: shards 0-2 fit (about 0.77 MB), the first sample of shard 3 does not.
mkdir -p "$T/small"
if ! mount -t tmpfs -o size=1m tmpfs "$T/small" 2>/dev/null; then
    echo "SKIP 2: cannot mount a tmpfs here (needs root)"
    echo "PASS"
    exit 0
fi
mounted=1
rc=0
convert --out "$T/small/split" >"$T/small.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "a full disk: exit status $rc, not 1: $(tail -3 "$T/small.log")"
grep -qE "$T/small/split/shard-00003.h5: not enough free space for sample 0 \(city/city_000006_000019\) \(about 0\.[0-9]+ MB needed, 0\.[0-9]+ MB free in $T/small/split\)" \
    "$T/small.log" || fail "the error does not name the folder and its free space: $(tail -2 "$T/small.log")"
[ "$(ls -A "$T/small/split" | tr '\n' ' ')" = "shard-00000.h5 shard-00001.h5 shard-00002.h5 " ] \
    || fail "files left: $(ls -A "$T/small/split")"
grep -q "the 3 complete shards (6 samples) stay in $T/small/split" "$T/small.log" || fail "$(tail -1 "$T/small.log")"
mount -o remount,size=4m "$T/small" || fail "remount"
convert --out "$T/small/split" >"$T/resume.log" 2>&1 || fail "re-run: $(cat "$T/resume.log")"
grep -q "6 of 8 items already in complete shards" "$T/resume.log" || fail "did not resume: $(cat "$T/resume.log")"
"$MV_BIN" data inspect "$T/small/split" >"$T/inspect.log" 2>&1 || fail "inspect: $(cat "$T/inspect.log")"
echo "2. tmpfs: passed"
echo "PASS"
