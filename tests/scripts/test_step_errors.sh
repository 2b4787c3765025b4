#!/usr/bin/env bash
# Bad input to `maskvim step`: each is a non-zero exit with a message naming the file, key or
# value at fault, never a crash.
set -euo pipefail
: "${MV_BIN:?}" "${MV_PYTHON:?}" "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
dir="$MV_TEST_TMP/step_errors"; rm -rf "$dir"; mkdir -p "$dir"
ref="$MV_SRC/tests/reference/maskvim_ref.py"
passed=0; failed=0
expect_error() {   # description, pattern, command...
    local what=$1 pattern=$2; shift 2
    if "$@" >"$dir/out.log" 2>&1; then echo "FAIL $what: exit status 0"; failed=$((failed + 1)); return; fi
    local rc=$?
    if [ $rc -ge 128 ]; then echo "FAIL $what: crashed (status $rc)"; failed=$((failed + 1)); return; fi
    if grep -q -- "$pattern" "$dir/out.log"; then echo "ok   $what"; passed=$((passed + 1))
    else echo "FAIL $what: message lacks '$pattern': $(cat "$dir/out.log")"; failed=$((failed + 1)); fi
}
"$MV_BIN" step --preset maskvim-nano --init-out "$dir/w.h5"
"$MV_PYTHON" "$ref" make-batch --out "$dir/b.h5" --batch 1 --size 64x64 --classes 19 --seed 1 >/dev/null
"$MV_PYTHON" - "$dir" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(f"{d}/b.h5", "r") as f:
    img, lab = f["images"][...], f["labels"][...]
with h5py.File(f"{d}/badlabel.h5", "w") as f:
    l2 = lab.astype(np.int64); l2[0, 3, 5] = 23
    f["images"] = img; f["labels"] = l2
with h5py.File(f"{d}/small.h5", "w") as f:
    f["images"] = img[:, :, :16, :]; f["labels"] = lab[:, :16, :]
with h5py.File(f"{d}/mismatch.h5", "w") as f:
    f["images"] = img; f["labels"] = lab[:, :32, :]
with h5py.File(f"{d}/floatlabel.h5", "w") as f:
    f["images"] = img; f["labels"] = lab.astype(np.float32) + 0.5
with h5py.File(f"{d}/nanimage.h5", "w") as f:
    i2 = img.copy(); i2[0, 1, 2, 3] = np.nan
    f["images"] = i2; f["labels"] = lab
with h5py.File(f"{d}/w.h5", "r") as src, h5py.File(f"{d}/nohead.h5", "w") as dst:
    for k in src:   # every tensor but the decode head's
        if not k.startswith("decode_head"):
            src.copy(src[k], dst, k)
PY
echo "not hdf5" >"$dir/text.h5"
s=(step --dump "$dir/d.h5")
expect_error "unknown preset" "maskvim-xxl" "$MV_BIN" "${s[@]}" --preset maskvim-xxl --batch "$dir/b.h5"
expect_error "unknown key" "model.colour" "$MV_BIN" "${s[@]}" --preset maskvim-nano --set model.colour=red --batch "$dir/b.h5"
expect_error "bad value" "mask.mode" "$MV_BIN" "${s[@]}" --preset maskvim-nano --set mask.mode=half --batch "$dir/b.h5"
expect_error "weights for another crop" "token_mask" "$MV_BIN" "${s[@]}" --preset maskvim-nano --set model.crop=96,96 --weights "$dir/w.h5" --batch "$dir/b.h5"
expect_error "weights for other dims" "has shape" "$MV_BIN" "${s[@]}" --preset maskvim-nano --set model.dims=16,32,64,96 --weights "$dir/w.h5" --batch "$dir/b.h5"
expect_error "label above the classes" "label value 23" "$MV_BIN" "${s[@]}" --preset maskvim-nano --batch "$dir/badlabel.h5"
expect_error "float labels" "integer dataset" "$MV_BIN" "${s[@]}" --preset maskvim-nano --batch "$dir/floatlabel.h5"
expect_error "a NaN pixel" "not finite" "$MV_BIN" "${s[@]}" --preset maskvim-nano --batch "$dir/nanimage.h5"
expect_error "image too small" "too small" "$MV_BIN" "${s[@]}" --preset maskvim-nano --batch "$dir/small.h5"
expect_error "labels of another size" "labels" "$MV_BIN" "${s[@]}" --preset maskvim-nano --batch "$dir/mismatch.h5"
expect_error "missing batch file" "nosuch.h5" "$MV_BIN" "${s[@]}" --preset maskvim-nano --batch "$dir/nosuch.h5"
expect_error "not an HDF5 file" "text.h5" "$MV_BIN" "${s[@]}" --preset maskvim-nano --weights "$dir/text.h5" --batch "$dir/b.h5"
expect_error "weights lacking tensors" "allow-missing" "$MV_BIN" "${s[@]}" --preset maskvim-nano --weights "$dir/nohead.h5" --batch "$dir/b.h5"
expect_error "a seed that is not a number" "--seed" "$MV_BIN" "${s[@]}" --preset maskvim-nano --seed 12abc --batch "$dir/b.h5"
if "$MV_BIN" "${s[@]}" --preset maskvim-nano --weights "$dir/nohead.h5" --allow-missing --batch "$dir/b.h5" >"$dir/out.log" 2>&1 \
    && grep -q "missing (kept initialised)" "$dir/out.log"; then echo "ok   --allow-missing loads a partial file"; passed=$((passed + 1))
else echo "FAIL --allow-missing: $(tail -3 "$dir/out.log")"; failed=$((failed + 1)); fi
expect_error "unknown option" "--frobnicate" "$MV_BIN" step --frobnicate 1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
