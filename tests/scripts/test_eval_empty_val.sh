#!/usr/bin/env bash
# `maskvim eval` with an empty data.val: refused with a message saying so, before the model is
# set up, and no --json file. It used to build the model, open the device and then fail as
# "no data.val source matches --targets '(null)'" (a NULL string handed to printf).
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
T="$MV_TEST_TMP/eval_empty_val"; rm -rf "$T"; mkdir -p "$T"
fail() { echo "FAIL: $*"; exit 1; }
"$MV_BIN" step --preset maskvim-nano --set model.crop=64,64 --seed 3 --init-out "$T/w.h5" >/dev/null 2>&1
if "$MV_BIN" eval --checkpoint "$T/w.h5" --set model.preset=maskvim-nano --set model.crop=64,64 --set "data.val=[]" \
    --json "$T/out.json" >"$T/out.log" 2>&1; then
    fail "an empty data.val accepted: $(cat "$T/out.log")"
fi
grep -q "maskvim eval: data.val is empty: no split to evaluate" "$T/out.log" || fail "message: $(cat "$T/out.log")"
grep -q "(null)" "$T/out.log" && fail "message: $(cat "$T/out.log")"
grep -q "maskvim eval: on " "$T/out.log" && fail "the device was opened first: $(cat "$T/out.log")"
[ -e "$T/out.json" ] && fail "--json written"
echo "1 passed, 0 failed"
