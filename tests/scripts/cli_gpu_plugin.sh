#!/usr/bin/env bash
# The CLI's CUDA backend is the plugin libmaskvim_gpu.so, loaded when a run may use a GPU
# (core/engine_plugin.c). On this machine without a GPU or a driver:
#  1. `maskvim` links no CUDA library, and a command that needs no GPU maps none of cuBLAS/NCCL;
#  2. without the driver: --version says so; run.device=cuda fails naming the missing driver;
#     run.device=auto runs on the CPU and says why;
#  3. MV_GPU_PLUGIN=the plugin loads it all the same: every symbol it takes from the executable
#     resolves (RTLD_NOW), the layouts agree, and the engine reports the missing GPU itself
#     (the CUDA runtime's reason); cuBLAS is mapped then, so check 1 can fail;
#  4. the plugin defines no symbol the executable exports (which would resolve to the
#     executable's and run other code than the plugin's own);
#  5. a plugin that is missing or not maskvim's: cuda fails naming the file; auto runs on the CPU.
# Registered by cmake/cuda_model.cmake (ctest test_cli_gpu_plugin) where the plugin is built.
set -euo pipefail
: "${MV_BIN:?}" "${MV_GPU_PLUGIN_FILE:?}" "${MV_PYTHON:?}" "${MV_TEST_TMP:=/tmp}"
fail() { echo "FAIL: $*"; exit 1; }
TMP=$MV_TEST_TMP/cli_gpu_plugin.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
unset MV_GPU_PLUGIN
# mapped LIB CMD...: whether running CMD maps a library whose name contains LIB.
mapped() {
    local lib=$1; shift
    LD_DEBUG=files "$@" 2>"$TMP/ld.txt" >/dev/null || true
    grep -q "file=[^ ]*$lib" "$TMP/ld.txt"
}

# 1.
grep -qiE "cuda|cublas|nccl" <<<"$(ldd "$MV_BIN")" && fail "maskvim links CUDA libraries: $(ldd "$MV_BIN" | grep -iE 'cuda|cublas|nccl')"
mapped libcublas "$MV_BIN" config && fail "maskvim config mapped cuBLAS"
mapped libcublas "$MV_BIN" --version && fail "maskvim --version mapped cuBLAS without a driver"
echo "ok   1. no CUDA library linked or mapped"

# 2.
"$MV_BIN" --version >"$TMP/v.txt"
grep -q "GPU:     CUDA engine built (libmaskvim_gpu.so, loaded when a run may use a GPU); not loaded here: no NVIDIA driver (libcuda.so.1 cannot be loaded)" \
    "$TMP/v.txt" || fail "--version: $(grep GPU "$TMP/v.txt")"
"$MV_BIN" step --preset maskvim-nano --seed 5 --init-out "$TMP/w.h5" >/dev/null
"$MV_PYTHON" - "$TMP/batch.h5" <<'PY'
import sys
import h5py
import numpy as np
rng = np.random.default_rng(3)
with h5py.File(sys.argv[1], "w") as f:
    f["images"] = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    f["labels"] = rng.integers(0, 19, (1, 64, 64)).astype(np.uint8)
PY
step() { "$MV_BIN" step --preset maskvim-nano --weights "$TMP/w.h5" --batch "$TMP/batch.h5" --dump "$TMP/d.h5" "$@"; }
rc=0; step --set run.device=cuda >/dev/null 2>"$TMP/e.txt" || rc=$?
[ $rc = 1 ] && grep -q "run.device = cuda, but no GPU can be used: no NVIDIA driver (libcuda.so.1 cannot be loaded)" "$TMP/e.txt" \
    || fail "run.device=cuda without a driver: exit $rc: $(cat "$TMP/e.txt")"
step >/dev/null 2>"$TMP/e.txt" || fail "run.device=auto: $(cat "$TMP/e.txt")"
grep -q "on CPU (no GPU: no NVIDIA driver (libcuda.so.1 cannot be loaded))" "$TMP/e.txt" || fail "auto: $(cat "$TMP/e.txt")"
echo "ok   2. without a driver: cuda refused, auto on the CPU"

# 3.
export MV_GPU_PLUGIN=$MV_GPU_PLUGIN_FILE
"$MV_BIN" --version >"$TMP/v.txt" 2>&1 || fail "--version with the plugin: $(cat "$TMP/v.txt")"
grep -q "GPU:     cuda engine loaded from its plugin; no GPU usable here: no NVIDIA driver or GPU found (CUDA: " "$TMP/v.txt" \
    || fail "--version with the plugin: $(grep GPU "$TMP/v.txt")"
mapped libcublas "$MV_BIN" --version || fail "the plugin loaded without mapping cuBLAS?"
rc=0; step --set run.device=cuda >/dev/null 2>"$TMP/e.txt" || rc=$?
[ $rc = 1 ] && grep -q "run.device = cuda, but no GPU can be used: no NVIDIA driver or GPU found (CUDA: " "$TMP/e.txt" \
    || fail "run.device=cuda with the plugin: exit $rc: $(cat "$TMP/e.txt")"
step >/dev/null 2>"$TMP/e.txt" || fail "run.device=auto with the plugin: $(cat "$TMP/e.txt")"
grep -q "on CPU (no GPU: no NVIDIA driver or GPU found" "$TMP/e.txt" || fail "auto with the plugin: $(cat "$TMP/e.txt")"
echo "ok   3. the plugin links against the executable and reports the missing GPU"

# 4.
nm -D --defined-only "$MV_GPU_PLUGIN_FILE" | awk '{print $NF}' | sort -u >"$TMP/plugin.syms"
nm -D --defined-only "$MV_BIN" | awk '{print $NF}' | sort -u >"$TMP/exe.syms"
grep -q "^mv_gpu_plugin_engine$" "$TMP/plugin.syms" || fail "the plugin does not export its entry point"
grep -q "^engine_select$" "$TMP/exe.syms" || fail "the executable does not export the library"
both=$(comm -12 "$TMP/plugin.syms" "$TMP/exe.syms" | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' || true)
[ -z "$both" ] || fail "defined in both the plugin and the executable: $(echo "$both" | head -5 | tr '\n' ' ')"
echo "ok   4. no symbol defined twice ($(wc -l <"$TMP/plugin.syms") in the plugin)"

# 5.
echo "not a library" >"$TMP/libbroken.so"
for bad in "$TMP/absent.so" "$TMP/libbroken.so" "$(ldconfig -p | grep -o '/[^ ]*libz\.so\.1$' | head -1)"; do
    export MV_GPU_PLUGIN=$bad
    rc=0; step --set run.device=cuda >/dev/null 2>"$TMP/e.txt" || rc=$?
    [ $rc = 1 ] && grep -q "run.device = cuda, but no GPU can be used: .*$bad" "$TMP/e.txt" \
        || fail "plugin $bad, run.device=cuda: exit $rc: $(cat "$TMP/e.txt")"
    step >/dev/null 2>"$TMP/e.txt" || fail "plugin $bad, run.device=auto: $(cat "$TMP/e.txt")"
    grep -q "on CPU (no GPU: " "$TMP/e.txt" || fail "plugin $bad, auto: $(cat "$TMP/e.txt")"
done
grep -q "is not maskvim's CUDA backend (no mv_gpu_plugin_engine)" <(MV_GPU_PLUGIN=$bad step --set run.device=cuda 2>&1) \
    || fail "a library that is not the plugin is not called so"
echo "ok   5. a missing or foreign plugin: cuda refused naming it, auto on the CPU"
echo "5 passed, 0 failed"
