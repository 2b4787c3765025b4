#!/usr/bin/env bash
# The gradient all-reduce across real MPI ranks on this machine: `maskvim bench-allreduce
# --check` with 2 ranks (sums bit-exact, averages within 2 ulp, identical bytes on every rank)
# for every size from 4K to 4M, the bucketed path over a model-sized buffer of many buckets,
# and 3 ranks (an average that rounds). Skips only when MPI is not part of the build.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/mpi_common.sh"
mpi_setup mpi_allreduce
trap mpi_cleanup EXIT
MPIRUN=(timeout 300 mpirun --oversubscribe "${MPI_ENV[@]}")

# Every data line's two #wrong columns (8th and 12th fields) must be 0.
check_output() {   # file, expected number of lines, expected rank count
    local f=$1 lines=$2 ranks=$3
    grep -q "^# maskvim bench-allreduce: $ranks ranks on 1 node, backend mpi" "$f" || fail "$f: header does not say $ranks ranks over MPI"
    grep -q "^# Out of bounds values : 0 OK" "$f" || fail "$f: wrong values"
    grep -q "^# Identical on all ranks (random data): yes" "$f" || fail "$f: ranks disagree"
    local n
    n=$(grep -v '^#' "$f" | awk 'NF == 13 && $8 == "0" && $12 == "0" && $5 > 0 && $9 > 0' | wc -l)
    [ "$n" -eq "$lines" ] || fail "$f: $n checked lines, expected $lines"
}

echo "== 2 ranks, 4K..4M"
"${MPIRUN[@]}" -np 2 "$MV_BIN" bench-allreduce --check --max-bytes 4M --iters 3 --warmup 1 >"$TMP/two.txt" 2>"$TMP/two.err" \
    || { cat "$TMP/two.txt" "$TMP/two.err"; fail "2-rank bench-allreduce --check exited non-zero"; }
cat "$TMP/two.txt"
check_output "$TMP/two.txt" 11 2
grep -q '^        4096          1024  float    sum' "$TMP/two.txt" || fail "no 4096-byte line"
grep -q '^     4194304       1048576  float    sum' "$TMP/two.txt" || fail "no 4 MiB line"

echo "== 2 ranks, one model-sized buffer in many buckets"
"${MPIRUN[@]}" -np 2 "$MV_BIN" bench-allreduce --check --size-of-model 1.3M --bucket-bytes 64K \
    --first-bucket-bytes 16K --iters 2 --warmup 1 >"$TMP/model.txt" 2>"$TMP/model.err" \
    || { cat "$TMP/model.txt" "$TMP/model.err"; fail "--size-of-model run exited non-zero"; }
cat "$TMP/model.txt"
check_output "$TMP/model.txt" 1 2
# 1.3M = 1363148 bytes -> 340787 floats; a 16K first bucket, then 64K buckets: 1 + 21 buckets
grep -v '^#' "$TMP/model.txt" | awk '$1 == 1363148 && $2 == 340787 && $13 == 22 {ok = 1} END {exit !ok}' \
    || fail "expected one line of 1363148 bytes in 22 buckets"

# A byte count that is no whole number of float32 gradients is a mistake (it was rounded down).
if "$MV_BIN" bench-allreduce --size-of-model 4099 >"$TMP/odd.txt" 2>&1; then fail "--size-of-model 4099 ran"; fi
grep -q "multiple of 4 bytes (4096 or 4100?)" "$TMP/odd.txt" || fail "--size-of-model 4099: $(cat "$TMP/odd.txt")"

echo "== 3 ranks (the average divides by 3)"
"${MPIRUN[@]}" -np 3 "$MV_BIN" bench-allreduce --check --max-bytes 256K --bucket-bytes 64K --iters 2 --warmup 1 \
    >"$TMP/three.txt" 2>"$TMP/three.err" || { cat "$TMP/three.txt" "$TMP/three.err"; fail "3-rank run exited non-zero"; }
cat "$TMP/three.txt"
check_output "$TMP/three.txt" 7 3

echo "== bad options are errors before MPI starts"
"$MV_BIN" bench-allreduce --max-bytes 12Q >/dev/null 2>"$TMP/bad.err"; rc=$?
[ "$rc" -eq 2 ] || fail "bad --max-bytes: exit $rc, expected 2"
grep -q -- "--max-bytes 12Q: expected a size" "$TMP/bad.err" || fail "bad --max-bytes message: $(cat "$TMP/bad.err")"
for seed in -1 18446744073709551615 7x; do   # a negative seed wrapped to a huge one before
    "$MV_BIN" bench-allreduce --seed "$seed" >/dev/null 2>"$TMP/bad.err"; rc=$?
    [ "$rc" -eq 2 ] || fail "--seed $seed: exit $rc, expected 2"
    grep -q -- "--seed $seed: expected a whole number" "$TMP/bad.err" || fail "--seed $seed message: $(cat "$TMP/bad.err")"
done
echo "== ranks started with other options, and a --fail-rank no rank has"
# They posted collectives of other sizes or counts: a raw MPI error or a hang, not a message.
rc=0
timeout 120 "${MPIRUN[@]}" -np 1 "$MV_BIN" bench-allreduce --max-bytes 8K --iters 3 \
    : -np 1 "$MV_BIN" bench-allreduce --max-bytes 8K --iters 5 >"$TMP/mpmd.txt" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "ranks with other --iters: exit $rc"
grep -q "rank 1 was started with other options than rank 0: .*iters 3.* on rank 0, .*iters 5.* on rank 1" "$TMP/mpmd.txt" \
    || fail "other --iters: $(grep -v '^#' "$TMP/mpmd.txt" | head -3)"
rc=0
timeout 120 "${MPIRUN[@]}" -np 2 "$MV_BIN" bench-allreduce --max-bytes 4K --fail-rank 5 >"$TMP/fr.txt" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q -- "--fail-rank 5: there are ranks 0 to 1 only" "$TMP/fr.txt" \
    || fail "--fail-rank 5 on 2 ranks: exit $rc: $(grep -v '^#' "$TMP/fr.txt" | head -3)"
echo "PASS"
