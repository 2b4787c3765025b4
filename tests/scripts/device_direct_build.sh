#!/usr/bin/env bash
# tests/gpu/device_checks.sh's fallback build, for a GPU machine whose image lacks the CPU side's
# libraries (no CMake configure): nvcc and gcc straight, with the source lists written in the
# script. It runs only on the device machine, so nothing else would notice when a source file
# is added or split and the lists fall behind. Here, without a GPU, it must build every binary
# it builds there, and each must run and report the missing GPU.
# Registered by cmake/cuda.cmake (ctest test_device_direct_build) where nvcc is found.
set -euo pipefail
: "${MV_SRC:?}" "${MV_TEST_TMP:=/tmp}"
fail() { echo "FAIL: $*"; exit 1; }
TMP=$MV_TEST_TMP/device_direct_build
rm -rf "$TMP"
mkdir -p "$TMP"
# NCCL is optional (cmake/cuda.cmake): without it test_nccl is not built, and says so.
nccl=${MV_EXPECT_NCCL:-1}
# One architecture (sm_90) is enough to check the lists; the CMake build compiles them all.
MV_CUDA_CAP=90 MV_DIRECT_BUILD=1 OUT=$TMP/out MV_GPU_BUILD=$TMP/build bash "$MV_SRC/tests/gpu/device_checks.sh" --build-only ||
    { rc=$?; cat "$TMP/out/run.log"; fail "device_checks.sh --build-only exited $rc"; }
grep -q 'build: direct nvcc/gcc build' "$TMP/out/summary.txt" || { cat "$TMP/out/summary.txt"; fail "not the direct build"; }
if grep -n 'did not build' "$TMP/out/run.log" | { [ "$nccl" = 1 ] && cat || grep -v 'test_nccl did not build'; } | grep .; then
    cat "$TMP/out/run.log"
    fail "a part of the direct build did not build"
fi
bins=(test_cuda_ops test_model_cuda test_train_cuda)
[ "$nccl" = 1 ] && bins+=(test_nccl)
for b in "${bins[@]}" bench_cuda_ops bench_model_cuda; do
    [ -x "$TMP/build/direct/$b" ] || fail "$b was not built"
done
# Without a GPU each test says so and passes; with one it runs for real (and must pass).
for b in "${bins[@]}"; do
    out=$(timeout 300 "$TMP/build/direct/$b" 2>&1) || { echo "$out" | tail -20; fail "$b exited non-zero"; }
    echo "$b: $(echo "$out" | tail -1)"
done
rm -rf "$TMP"
echo "PASS: the direct build builds every binary and each runs"
