#!/usr/bin/env bash
# Ranks of different maskvim builds must not work together (docs/distributed.md, "What the ranks
# check at start-up"). Without product hooks: a copy of the binary with its commit string patched
# (same length, another hex value) stands for a build of another commit, and MPMD mpirun
# (`A : B`) starts one rank of each.
# 1. train, eval and predict with the two binaries fail at once, non-zero, naming rank 1, both
#    commits and "every rank must run the same build";
# 2. a build from a modified tree ("-dirty": the commit cannot tell two of them apart) differing
#    only in a byte that is no part of the commit (a help text) fails the same way, by the
#    binaries' checksums (skipped for a build of a clean commit, which has no checksum: the
#    documented limit);
# 3. an unchanged copy (the same bytes at another path) trains and evaluates with the original.
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
source "$(dirname "$0")/mpi_common.sh"
mpi_setup mpi_build_mismatch
trap mpi_cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
mpi2() { timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 "$@"; }
SETS=("${TRAIN_SETS[@]}" --set data.synthetic.train_count=4 --set schedule.warmup_iters=1 --set schedule.max_iters=2 --set run.ckpt_every=2)
EVAL_SETS=()   # without --quiet, which `maskvim eval` does not take
for a in "${SETS[@]}"; do [ "$a" = --quiet ] || EVAL_SETS+=("$a"); done

commit=$("$MV_BIN" --version | sed -n '1s/.*(commit \(.*\))$/\1/p')
[ -n "$commit" ] || fail "no commit in: $("$MV_BIN" --version | head -1)"
# patch SRC DST OLD NEW: DST is SRC with every OLD replaced by NEW (same length); fails when OLD
# is not in it.
patch_bin() {
    "$MV_PYTHON" - "$@" <<'PY'
import os, sys
src, dst, old, new = sys.argv[1:]
assert len(old) == len(new)
b = open(src, "rb").read()
assert old.encode() in b, f"{old!r} not found in {src}"
open(dst, "wb").write(b.replace(old.encode(), new.encode()))
os.chmod(dst, 0o755)
PY
}
# Another commit of the same length: every hex digit before a "-dirty" moved on by one (a
# `git describe` with a tag, v1.0-3-gabc, keeps its other characters; "unknown": "unknowx").
other=$("$MV_PYTHON" -c '
import sys
c = sys.argv[1]
if c == "unknown": print("unknowx")
else:
    h, dirty = (c[:-6], c[-6:]) if c.endswith("-dirty") else (c, "")
    hexd = "0123456789abcdef"
    print("".join(hexd[(hexd.index(x) + 1) % 16] if x in hexd else x for x in h) + dirty)' "$commit")
[ "$other" != "$commit" ] || fail "cannot make another commit string from $commit"
patch_bin "$MV_BIN" "$TMP/maskvim-other" "$commit" "$other"
"$TMP/maskvim-other" --version | grep -q "(commit $other)" || fail "the patched copy does not report $other"

# expect_mismatch NAME ID_A ID_B CMD...: the job fails within the timeout, saying rank 1 runs
# ID_A, rank 0 runs ID_B.
expect_mismatch() {
    local name=$1 a=$2 b=$3 rc=0 t0=$SECONDS
    shift 3
    mpi2 "$@" >"$TMP/$name.log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "$name: ranks of two builds ran together (exit 0): $(tail -3 "$TMP/$name.log")"
    [ "$rc" -ne 124 ] || fail "$name: the job hung"
    grep -q "rank 1 runs maskvim [^ ]* $a .*rank 0 runs maskvim [^ ]* $b .*every rank must run the same build" \
        "$TMP/$name.log" || fail "$name: no clear message: $(tail -5 "$TMP/$name.log")"
    echo "ok: $name: exit $rc after $((SECONDS - t0)) s: $(grep -m1 -o 'rank 1 runs.*' "$TMP/$name.log")"
}

# 1. Another commit, for each command that runs on several ranks.
expect_mismatch train "$other" "$commit" -np 1 "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/t1" \
    : -np 1 "$TMP/maskvim-other" train "${SETS[@]}" --set run.work_dir="$TMP/t1"
[ ! -e "$TMP/t1/iter_2.h5" ] || fail "train: a checkpoint was written"
expect_mismatch eval "$other" "$commit" -np 1 "$MV_BIN" eval "${EVAL_SETS[@]}" --checkpoint "$TMP/none.h5" \
    : -np 1 "$TMP/maskvim-other" eval "${EVAL_SETS[@]}" --checkpoint "$TMP/none.h5"
expect_mismatch predict "$other" "$commit" -np 1 "$MV_BIN" predict --checkpoint "$TMP/none.h5" --input "$TMP" \
    --out "$TMP/pred" : -np 1 "$TMP/maskvim-other" predict --checkpoint "$TMP/none.h5" --input "$TMP" --out "$TMP/pred"

# 2. Two builds of one modified tree: the same commit string, other bytes.
case $commit in
*-dirty | unknown)
    patch_bin "$MV_BIN" "$TMP/maskvim-edited" "cartoon poster" "cartoon paster"
    expect_mismatch dirty "$commit" "$commit" -np 1 "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/t2" \
        : -np 1 "$TMP/maskvim-edited" train "${SETS[@]}" --set run.work_dir="$TMP/t2"
    grep -q "rank 1 runs .*crc32 .*rank 0 runs .*crc32" "$TMP/dirty.log" || fail "dirty: the checksums are not named"
    ;;
*) echo "skip 2: $commit is a clean commit (builds of it are told apart by commit and flags only)" ;;
esac

# 3. The same bytes at another path work together: train, then eval its checkpoint.
cp "$MV_BIN" "$TMP/maskvim-same"
mpi2 -np 1 "$MV_BIN" train "${SETS[@]}" --set run.work_dir="$TMP/ok" \
    : -np 1 "$TMP/maskvim-same" train "${SETS[@]}" --set run.work_dir="$TMP/ok" >"$TMP/ok.log" 2>&1 \
    || fail "the same build at two paths did not train: $(tail -5 "$TMP/ok.log")"
[ -e "$TMP/ok/iter_2.h5" ] || fail "the same build at two paths wrote no checkpoint"
mpi2 -np 1 "$MV_BIN" eval "${EVAL_SETS[@]}" --checkpoint "$TMP/ok/iter_2.h5" \
    : -np 1 "$TMP/maskvim-same" eval "${EVAL_SETS[@]}" --checkpoint "$TMP/ok/iter_2.h5" >"$TMP/ok_eval.log" 2>&1 \
    || fail "the same build at two paths did not evaluate: $(tail -5 "$TMP/ok_eval.log")"
grep -q "mIoU" "$TMP/ok_eval.log" || fail "eval printed no mIoU: $(tail -5 "$TMP/ok_eval.log")"
echo "ok: the same build at two paths trains and evaluates"
echo "PASS"
