#!/usr/bin/env bash
# The checks that need a GPU, as one run of under 8 minutes on a machine with one (an H200 is the
# target). It builds the project (where the machine lacks the CPU side's libraries, such as a bare
# CUDA image: just the CUDA backend and the CPU reference ops it is tested against, straight with
# nvcc and gcc), runs the CUDA op tests and the NCCL test (one rank; two ranks under mpirun when
# the machine has two GPUs and the build has MPI), benchmarks every op at maskvim-t 512x1024
# batch 2 with fp32, TF32 and bf16 GEMMs, and times the PyTorch reference model's training step on
# the same GPU.
#
#   tests/gpu/device_checks.sh [--build-only | --tests-only]
#
# --tests-only stops after the tests (no benchmarks, no PyTorch step): a short run.
# Results, in $OUT or ./gpu-results:
#   summary.txt                        the GPU, what ran, pass/fail, headline numbers
#   run.log                            configure, build and benchmark output
#   test_cuda_ops.txt                  every GPU op against the CPU op
#   test_nccl.txt, test_nccl_2ranks.txt  the NCCL communicator, gradient all-reduce and SyncBN reducer
#   bench_cuda_ops.{txt,json}          per-op times (fp32 GEMMs), estimated step, TFLOP/s, memory
#   bench_cuda_ops_{tf32,bf16}.{txt,json}  the same with TF32 / bf16 GEMMs
#   test_model_cuda.txt                the whole-model training step on the GPU against the CPU
#   test_train_cuda.txt                8 training steps through the GPU engine against the CPU
#   test_train_cuda_2ranks.txt         the same as 2 ranks x 1 image on 2 GPUs (NCCL) vs 1 x 2
#   cli_cuda.txt                       maskvim step/eval/predict on the GPU vs the CPU (CMake builds only)
#   bench_model_{fp32,tf32,bf16}.{txt,json}  the real GPU training step of maskvim-t (forward,
#                                      backward, AdamW): images/s, TFLOP/s, memory, per-op table
#   torch_step.json                    the PyTorch reference step, chunked scan, 512x1024 (or why it did not run)
#   torch_step_loop_256x512.json       the same with its per-token loop scan at 256x512, when time allows
# Exit status 0 when the CUDA tests pass, 1 when the build or a test fails (timings never fail it).
# Environment: OUT, MV_GPU_BUILD (build folder, default <src>/build-gpu), MV_DIRECT_BUILD=1 (skip
# CMake), MV_FALLBACK_BLAS=1 (CPU reference on tests/gpu/fallback's sgemm), MV_BUDGET_S (seconds,
# default 460), MV_SKIP_MODEL_BENCH=1 (no whole-step benchmark), MV_PYTHON (the Python that has PyTorch, default python3), MV_SKIP_OPS_BENCH=1 (no
# per-op benchmark: the whole-step benchmark and the PyTorch step only), MV_SKIP_TORCH=1 (no PyTorch
# step), MV_CUDA_CAP (compute capability to build for, e.g. 90, where nvidia-smi does not tell it).
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RES=${OUT:-$PWD/gpu-results}
BUILD=${MV_GPU_BUILD:-$SRC/build-gpu}
BUDGET=${MV_BUDGET_S:-460}
PY=${MV_PYTHON:-python3}
BUILD_ONLY=0
TESTS_ONLY=0
[ "${1:-}" = "--build-only" ] && BUILD_ONLY=1
[ "${1:-}" = "--tests-only" ] && TESTS_ONLY=1
mkdir -p "$RES" "$BUILD"
: >"$RES/summary.txt"
: >"$RES/run.log"
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET - $(elapsed))); }
say() { echo "[$(elapsed)s] $*" | tee -a "$RES/summary.txt"; }
log() { tee -a "$RES/run.log"; }
JOBS=$(nproc 2>/dev/null || echo 4)
STATUS=0

say "maskvim device checks, $(date -u '+%Y-%m-%d %H:%M UTC'), source $SRC"
CAP=${MV_CUDA_CAP:-}   # without a GPU to ask: the one architecture to build for (else sm_80 and sm_90)
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1 |
        sed 's/^/  gpu: /' | tee -a "$RES/summary.txt"
    CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
else
    say "nvidia-smi not found"
    NGPU=0
fi
NVCC=$(command -v nvcc || echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")
[ -x "$NVCC" ] || { say "FAIL: no nvcc (looked on PATH and in ${CUDA_HOME:-/usr/local/cuda}/bin)"; exit 1; }
CUDA=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}
say "nvcc: $("$NVCC" --version | tail -2 | head -1)"
# What CMake links from the toolkit must load at run time even where the loader is not configured
# for it (CMake leaves the toolkit's folders out of the binaries' run paths).
ldconfig -p 2>/dev/null | grep -q 'libcudart\.so' ||
    export LD_LIBRARY_PATH=$CUDA/lib64:$CUDA/lib:$CUDA/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# ---- build -------------------------------------------------------------------------------------
TEST_BIN=""
BENCH_BIN=""
NCCL_BIN=""
MODEL_TEST_BIN=""
MODEL_BENCH_BIN=""
TRAIN_TEST_BIN=""
NCCL_MPI=0   # 1 when test_nccl was built with MPI (so that mpirun gives it real ranks)

# ---- libraries carried as Debian packages (tests/gpu/pack_deps.sh) -------------------------------
# A bare CUDA image lacks libyaml, HDF5, OpenBLAS and friends, and cannot download them. Where
# $SRC/.deps holds the packages, they are unpacked into the build folder (never into /), CMake and
# pkg-config are pointed there, and only the shared libraries this machine lacks (by name, per
# `ldconfig -p`) go on LD_LIBRARY_PATH, so that nothing of the machine's own (PyTorch's included)
# is shadowed.
DEPS_CMAKE=()
use_carried_deps() {
    local debs=("$SRC"/.deps/*.deb) root=$BUILD/deps/root lib=$BUILD/deps/lib f n
    [ -e "${debs[0]}" ] || return 1
    rm -rf "$BUILD/deps"
    mkdir -p "$root" "$lib"
    for f in "${debs[@]}"; do
        if command -v dpkg-deb >/dev/null 2>&1; then
            dpkg-deb -x "$f" "$root"
        else
            (cd "$BUILD/deps" && ar x "$f" && tar -xf data.tar.* -C "$root" && rm -f data.tar.* control.tar.* debian-binary)
        fi || { echo "carried deps: could not unpack $f" | log; return 1; }
    done
    local have
    have=$(ldconfig -p 2>/dev/null | awk '{print $1}')
    while IFS= read -r f; do
        n=$(basename "$f")
        grep -qxF "$n" <<<"$have" || ln -sf "$f" "$lib/$n"
    done < <(find "$root" -name 'lib*.so.[0-9]*' \( -type f -o -type l \))
    export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    local multi=$root/usr/lib/x86_64-linux-gnu
    export PKG_CONFIG_LIBDIR=$multi/pkgconfig:$root/usr/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
    # The multiarch header folder (jconfig.h beside jpeglib.h) is a compiler default only under /usr.
    export C_INCLUDE_PATH=$root/usr/include/x86_64-linux-gnu${C_INCLUDE_PATH:+:$C_INCLUDE_PATH}
    DEPS_CMAKE=(-DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_LIBRARY_PATH="$multi"
        -DCMAKE_INCLUDE_PATH="$root/usr/include;$root/usr/include/x86_64-linux-gnu"
        -DOPENBLAS_LIB="$multi/openblas-openmp/libopenblas.so"
        -DCBLAS_INCLUDE="$root/usr/include/x86_64-linux-gnu/openblas-openmp"
        -DHDF5_ROOT="$multi/hdf5/serial" -DHDF5_C_INCLUDE_DIR="$root/usr/include/hdf5/serial"
        -DMV_UNIT_TESTS=OFF)   # no Criterion there; the CUDA tests and the CLI are what runs
    command -v pkg-config >/dev/null 2>&1 || DEPS_CMAKE+=(-DPKG_CONFIG_EXECUTABLE="$root/usr/bin/pkgconf")
    echo "carried deps: ${#debs[@]} packages unpacked into $root; $(ls "$lib" | wc -l) libraries this machine lacks in $lib" | log
}

# The Python's package folders, where PyTorch's NVIDIA wheels (nvidia/*/include, lib) sit.
site_dirs() { "$PY" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null; }

# NCCL where the toolkit lacks it: the wheel PyTorch installs (nvidia/nccl), as CMake's cache
# entries. The direct build searches the same folders.
NCCL_CMAKE=()
nccl_from_wheels() {
    [ -e "$CUDA/include/nccl.h" ] && return 0
    local sp h l
    for sp in $(site_dirs); do
        h=$(find_file nccl.h "$sp"/nvidia/*/include) && l=$(find_file 'libnccl.so*' "$sp"/nvidia/*/lib) && {
            NCCL_CMAKE=(-DNCCL_INCLUDE_DIR="$(dirname "$h")" -DNCCL_LIBRARY="$l")
            export LD_LIBRARY_PATH=$(dirname "$l")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
            echo "NCCL from the Python wheels: $l" | log
            return 0
        }
    done
}

# MV_WERROR=OFF: this machine's compiler may not be CI's (which fails on any warning); a warning
# new to it is counted in summary.txt and kept in run.log, and does not cost the run.
cmake_configure() {
    local arch=${CAP:+${CAP}}
    timeout 150 cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMV_WERROR=OFF \
        ${arch:+-DCMAKE_CUDA_ARCHITECTURES=$arch} "${NCCL_CMAKE[@]}" "${DEPS_CMAKE[@]}" 2>&1 | log
}

cmake_build() {
    command -v cmake >/dev/null 2>&1 || { echo "no cmake" | log; return 1; }
    nccl_from_wheels
    if ! cmake_configure; then
        if ! use_carried_deps; then
            say "CMake cannot configure with this machine's libraries and no packages were carried:" \
                "run tests/gpu/pack_deps.sh on a Debian 12 machine and bring .deps/ for the CLI checks"
            return 1
        fi
        say "CMake with the machine's libraries failed; again with the carried packages (.deps)"
        rm -f "$BUILD/CMakeCache.txt"
        cmake_configure || return 1
    fi
    grep -q '^CMAKE_CUDA_COMPILER:' "$BUILD/CMakeCache.txt" 2>/dev/null || { echo "CMake found no CUDA compiler" | log; return 1; }
    local t=$(($(left) - 200))
    [ $t -lt 60 ] && t=60
    timeout $t cmake --build "$BUILD" -j"$JOBS" --target test_cuda_ops bench_cuda_ops test_nccl test_model_cuda \
        bench_model_cuda test_train_cuda 2>&1 | log || return 1
    TEST_BIN=$BUILD/test_cuda_ops
    BENCH_BIN=$BUILD/bench_cuda_ops
    NCCL_BIN=$BUILD/test_nccl
    MODEL_TEST_BIN=$BUILD/test_model_cuda
    MODEL_BENCH_BIN=$BUILD/bench_model_cuda
    TRAIN_TEST_BIN=$BUILD/test_train_cuda
    grep -q '^MPI_C_FOUND:BOOL=TRUE' "$BUILD/CMakeCache.txt" 2>/dev/null && NCCL_MPI=1
    grep -q 'MV_HAVE_MPI' "$BUILD/CMakeFiles/maskvim_lib.dir/flags.make" 2>/dev/null && NCCL_MPI=1
    # The rest of the project (CPU library, CLI, unit tests), with what the build budget leaves.
    t=$(($(left) - 250))
    if [ $t -gt 20 ]; then
        if timeout $t cmake --build "$BUILD" -j"$JOBS" 2>&1 | log; then
            say "full project build: ok, $(grep -c 'warning:' "$RES/run.log") compiler warnings (run.log)"
        else say "full project build: FAILED or out of time (see run.log); the CUDA targets are built"; fi
    fi
    return 0
}

# First file matching $1 in the folders that follow; prints its path.
find_file() {
    local pat=$1 d f
    shift
    for d in "$@"; do
        for f in "$d"/$pat; do [ -e "$f" ] && { echo "$f"; return 0; }; done
    done
    return 1
}

direct_build() {
    local D=$BUILD/direct O=$BUILD/direct/obj
    mkdir -p "$O"
    # Headers and libraries: the toolkit's, or the NVIDIA wheels that PyTorch installs.
    local inc=("$CUDA/include" "$CUDA/targets/x86_64-linux/include" /usr/include)
    local lib=("$CUDA/lib64" "$CUDA/lib" "$CUDA/targets/x86_64-linux/lib" /usr/lib/x86_64-linux-gnu)
    local sp
    for sp in $(site_dirs); do
        inc+=("$sp"/nvidia/*/include)
        lib+=("$sp"/nvidia/*/lib)
    done
    local rt_h blas_h nccl_h rt_so blas_so nccl_so
    rt_h=$(find_file cuda_runtime_api.h "${inc[@]}") || { echo "no cuda_runtime_api.h" | log; return 1; }
    blas_h=$(find_file cublas_v2.h "${inc[@]}") || { echo "no cublas_v2.h" | log; return 1; }
    rt_so=$(find_file 'libcudart.so*' "${lib[@]}") || { echo "no libcudart.so" | log; return 1; }
    blas_so=$(find_file 'libcublas.so*' "${lib[@]}") || { echo "no libcublas.so" | log; return 1; }
    nccl_h=$(find_file nccl.h "${inc[@]}") && nccl_so=$(find_file 'libnccl.so*' "${lib[@]}") || { nccl_h=""; nccl_so=""; }
    local cuinc=(-I"$(dirname "$rt_h")" -I"$(dirname "$blas_h")")
    local libs=("$blas_so" "$rt_so") rpath=() d
    [ -n "$nccl_h" ] && { cuinc+=(-I"$(dirname "$nccl_h")" -DMV_HAVE_NCCL=1); libs=("$nccl_so" "${libs[@]}"); }
    for d in "$(dirname "$blas_so")" "$(dirname "$rt_so")" ${nccl_so:+"$(dirname "$nccl_so")"}; do
        # shellcheck disable=SC2054
        rpath+=(-Wl,-rpath,"$d" -Wl,-rpath-link,"$d")
    done
    echo "direct build: cudart $rt_so, cuBLAS $blas_so, NCCL ${nccl_so:-none}" | log
    # The CPU reference's BLAS: the system's OpenBLAS when it links, else the plain fallback sgemm.
    local blas_c=() blas_l=()
    if [ "${MV_FALLBACK_BLAS:-0}" != 1 ] &&
        printf '#include <cblas.h>\nint main(void){float a=1,c=0;cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1.0f,&a,1,&a,1,0.0f,&c,1);return c!=1;}\n' |
        gcc -x c - -o "$D/blas_probe" -lopenblas >/dev/null 2>&1; then
        blas_l=(-lopenblas)
        echo "CPU reference BLAS: OpenBLAS" | log
    else
        blas_c=(-I"$SRC/tests/gpu/fallback")
        echo "CPU reference BLAS: tests/gpu/fallback/mini_cblas.c (no OpenBLAS here)" | log
    fi
    local gencode
    if [ -n "$CAP" ]; then gencode="-gencode arch=compute_$CAP,code=sm_$CAP"
    else gencode="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]"; fi
    local nvflags="-O3 -std=c++17 $gencode --Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Werror -I$SRC ${cuinc[*]}"
    local ccflags="-O3 -march=native -std=gnu11 -fopenmp -Wall -Wextra -Werror -I$SRC ${cuinc[*]} ${blas_c[*]}"
    export NVCC O nvflags ccflags
    # shellcheck disable=SC2016
    printf '%s\n' "$SRC"/kernels/cuda/*.cu "$SRC"/tests/cuda/bench_cuda_ops.cu |
        xargs -P "$JOBS" -I{} sh -c '"$NVCC" $nvflags -c "$1" -o "$O/$(basename "$1" .cu).cu.o" || exit 255' _ {} 2>&1 | log
    [ "${PIPESTATUS[1]}" = 0 ] || return 1
    local csrc=("$SRC"/kernels/cpu/*.c "$SRC"/core/rng.c "$SRC"/core/error.c "$SRC"/core/adamw.c
        "$SRC"/tests/cuda/test_cuda_ops.c)
    [ ${#blas_c[@]} -gt 0 ] && csrc+=("$SRC/tests/gpu/fallback/mini_cblas.c")
    # shellcheck disable=SC2016
    printf '%s\n' "${csrc[@]}" |
        xargs -P "$JOBS" -I{} sh -c 'gcc $ccflags -c "$1" -o "$O/$(basename "$1" .c).c.o" || exit 255' _ {} 2>&1 | log
    [ "${PIPESTATUS[1]}" = 0 ] || return 1
    local kern=() f
    for f in "$SRC"/kernels/cuda/*.cu; do kern+=("$O/$(basename "$f" .cu).cu.o"); done
    local cpu=()
    for f in "${csrc[@]}"; do [ "$(basename "$f")" = test_cuda_ops.c ] || cpu+=("$O/$(basename "$f" .c).c.o"); done
    g++ -fopenmp -o "$D/test_cuda_ops" "$O/test_cuda_ops.c.o" "${kern[@]}" "${cpu[@]}" "${libs[@]}" "${blas_l[@]}" \
        "${rpath[@]}" -lm -lpthread -ldl -lrt 2>&1 | log
    [ "${PIPESTATUS[0]}" = 0 ] || return 1
    g++ -fopenmp -o "$D/bench_cuda_ops" "$O/bench_cuda_ops.cu.o" "${kern[@]}" "$O/error.c.o" "${libs[@]}" \
        "${rpath[@]}" -lm -lpthread -ldl -lrt 2>&1 | log
    [ "${PIPESTATUS[0]}" = 0 ] || return 1
    TEST_BIN=$D/test_cuda_ops
    BENCH_BIN=$D/bench_cuda_ops
    # The GPU model (the model sources compiled again with MV_MODEL_DEVICE, cmake/cuda_model.cmake)
    # with the CPU model it is tested against: test_model_cuda and bench_model_cuda. No YAML, HDF5
    # or images are needed. Its failure to build does not fail the op tests.
    # Another gcc (the device image's) may find more format-truncation cases than CI's at -O3:
    # those stay warnings here, so that a newer compiler's opinion does not cost the run.
    local mflags="$ccflags -Wno-error=format-truncation -Wno-error=stringop-truncation"
    # The network's sources compiled twice are the ones cmake/cuda_model.cmake names (one list).
    local dsrc=() mobj=() dobj=() ok=1
    read -ra dsrc <<<"$(sed -n '/^set(MV_MODEL_DEVICE_SOURCES/,/)/p' "$SRC/cmake/cuda_model.cmake" |
        grep -o 'core/[a-z_]*\.c' | sed 's|^core/||; s|\.c$||' | tr '\n' ' ')"
    [ ${#dsrc[@]} -gt 0 ] || { echo "direct build: no model sources in cmake/cuda_model.cmake" | log; ok=0; }
    local msrc=(params model_build model_config model_config_set config_keys config optimizer schedule huge_alloc fs
        "${dsrc[@]}")
    for f in "${msrc[@]}"; do
        [ -e "$O/$f.c.o" ] || gcc $mflags -c "$SRC/core/$f.c" -o "$O/$f.c.o" 2>&1 | log
        [ -e "$O/$f.c.o" ] || ok=0
        case " rng.c error.c adamw.c " in *" $f.c "*) ;; *) mobj+=("$O/$f.c.o") ;; esac
    done
    for f in "${dsrc[@]}"; do
        gcc $mflags -DMV_MODEL_DEVICE=1 -c "$SRC/core/$f.c" -o "$O/$f.dev.o" 2>&1 | log || ok=0
        dobj+=("$O/$f.dev.o")
    done
    for f in model_device device_profile; do
        gcc $mflags -c "$SRC/core/device/$f.c" -o "$O/$f.c.o" 2>&1 | log || ok=0
        dobj+=("$O/$f.c.o")
    done
    for f in test_model_cuda bench_model_cuda; do
        gcc $mflags -c "$SRC/tests/cuda/$f.c" -o "$O/$f.c.o" 2>&1 | log || ok=0
    done
    # comm_abort: a device error stops the job (core/device/model_device.c); comm_init sets the
    # ranks' OpenMP threads (dist/rank_threads.c).
    for f in comm rank_threads; do
        gcc $ccflags -c "$SRC/dist/$f.c" -o "$O/$f.c.o" 2>&1 | log || ok=0
        mobj+=("$O/$f.c.o")
    done
    if [ $ok = 1 ]; then
        for f in test_model_cuda bench_model_cuda; do
            g++ -fopenmp -o "$D/$f" "$O/$f.c.o" "${dobj[@]}" "${mobj[@]}" "${kern[@]}" "${cpu[@]}" "${libs[@]}" \
                "${blas_l[@]}" "${rpath[@]}" -lm -lpthread -ldl -lrt 2>&1 | log || ok=0
        done
    fi
    if [ $ok = 1 ]; then MODEL_TEST_BIN=$D/test_model_cuda; MODEL_BENCH_BIN=$D/bench_model_cuda
    else echo "direct build: the GPU model did not build (see above)" | log; fi
    # The NCCL test (one rank: no MPI in this build) when NCCL is there; its failure to build
    # does not fail the op tests.
    if [ -n "$nccl_h" ]; then
        if "$NVCC" $nvflags -c "$SRC/dist/nccl_comm.cu" -o "$O/nccl_comm.cu.o" 2>&1 | log &&
            gcc $ccflags -c "$SRC/dist/comm.c" -o "$O/comm.c.o" 2>&1 | log &&
            gcc $ccflags -c "$SRC/dist/rank_threads.c" -o "$O/rank_threads.c.o" 2>&1 | log &&
            gcc $ccflags -c "$SRC/dist/grad_sync.c" -o "$O/grad_sync.c.o" 2>&1 | log &&
            gcc $ccflags -c "$SRC/tests/cuda/test_nccl.c" -o "$O/test_nccl.c.o" 2>&1 | log &&
            g++ -fopenmp -o "$D/test_nccl" "$O/test_nccl.c.o" "$O/nccl_comm.cu.o" "$O/comm.c.o" "$O/rank_threads.c.o" "$O/grad_sync.c.o" \
                "${kern[@]}" "${cpu[@]}" "${libs[@]}" "${blas_l[@]}" "${rpath[@]}" -lm -lpthread -ldl -lrt 2>&1 | log; then
            NCCL_BIN=$D/test_nccl
        else
            echo "direct build: test_nccl did not build (see above)" | log
        fi
    fi
    # Training through the GPU engine (test_train_cuda): the model objects above plus the engine,
    # the communicator stand-in and the NCCL layer (compiled without NCCL when it is absent).
    if [ -n "$MODEL_TEST_BIN" ]; then
        ok=1
        for f in core/engine.c core/engine_plugin.c core/device/engine_cuda.c dist/grad_sync.c \
            tests/cuda/test_train_cuda.c; do
            [ -e "$O/$(basename "$f" .c).c.o" ] || gcc $mflags -c "$SRC/$f" -o "$O/$(basename "$f" .c).c.o" 2>&1 | log || ok=0
        done
        [ -e "$O/nccl_comm.cu.o" ] || "$NVCC" $nvflags -c "$SRC/dist/nccl_comm.cu" -o "$O/nccl_comm.cu.o" 2>&1 | log || ok=0
        if [ $ok = 1 ] && g++ -fopenmp -o "$D/test_train_cuda" "$O/test_train_cuda.c.o" "$O/engine.c.o" \
            "$O/engine_plugin.c.o" "$O/engine_cuda.c.o" \
            "$O/grad_sync.c.o" "$O/nccl_comm.cu.o" "${dobj[@]}" "${mobj[@]}" "${kern[@]}" "${cpu[@]}" \
            "${libs[@]}" "${blas_l[@]}" "${rpath[@]}" -lm -lpthread -ldl -lrt 2>&1 | log; then
            TRAIN_TEST_BIN=$D/test_train_cuda
        else
            echo "direct build: test_train_cuda did not build (see above)" | log
        fi
    fi
}

say "build (${CAP:+sm_$CAP, }$JOBS jobs) into $BUILD"
if [ "${MV_DIRECT_BUILD:-0}" != 1 ] && cmake_build; then
    say "build: CMake (whole project configured)"
elif direct_build; then
    say "build: direct nvcc/gcc build of the CUDA backend, the CPU reference ops and the CUDA tests" \
        "(CMake configure failed or was skipped: see run.log)"
else
    say "FAIL: build (see run.log)"
    exit 1
fi
[ $BUILD_ONLY = 1 ] && { say "build only: done"; exit 0; }

# ---- CUDA op tests -------------------------------------------------------------------------------
say "test_cuda_ops"
timeout 150 "$TEST_BIN" >"$RES/test_cuda_ops.txt" 2>&1
rc=$?
if grep -q '^SKIP: no CUDA device' "$RES/test_cuda_ops.txt"; then
    say "test_cuda_ops: SKIPPED, $(head -1 "$RES/test_cuda_ops.txt")"
    STATUS=1
elif [ $rc = 0 ]; then
    say "test_cuda_ops: PASS ($(tail -1 "$RES/test_cuda_ops.txt"))"
else
    say "test_cuda_ops: FAIL, exit $rc ($(tail -1 "$RES/test_cuda_ops.txt"))"
    grep '^FAIL' "$RES/test_cuda_ops.txt" | head -20 | tee -a "$RES/summary.txt"
    STATUS=1
fi

# ---- the whole model: GPU step against the CPU step -------------------------------------------------
if [ -n "$MODEL_TEST_BIN" ] && [ -x "$MODEL_TEST_BIN" ]; then
    say "test_model_cuda (whole-model training step, GPU vs CPU, paper model and Table 6 variants)"
    timeout 120 "$MODEL_TEST_BIN" >"$RES/test_model_cuda.txt" 2>&1
    rc=$?
    if [ $rc = 0 ] && ! grep -q '^SKIP' "$RES/test_model_cuda.txt"; then
        say "test_model_cuda: PASS ($(tail -1 "$RES/test_model_cuda.txt"))"
        grep '^ok' "$RES/test_model_cuda.txt" | sed 's/^/  /' | tee -a "$RES/summary.txt"
    else
        say "test_model_cuda: FAIL, exit $rc"
        grep -E 'FAIL|SKIP|rror' "$RES/test_model_cuda.txt" | head -20 | tee -a "$RES/summary.txt"
        STATUS=1
    fi
else
    say "test_model_cuda: not built (see run.log)"
    STATUS=1
fi

# ---- training through the GPU engine against the CPU ---------------------------------------------
if [ -n "$TRAIN_TEST_BIN" ] && [ -x "$TRAIN_TEST_BIN" ]; then
    say "test_train_cuda (8 training steps through the GPU engine vs the CPU, evaluation)"
    timeout 120 "$TRAIN_TEST_BIN" >"$RES/test_train_cuda.txt" 2>&1
    rc=$?
    if [ $rc = 0 ] && ! grep -q '^SKIP' "$RES/test_train_cuda.txt"; then
        say "test_train_cuda: PASS"
        grep -E '^after|^evaluation|^test_train_cuda on' "$RES/test_train_cuda.txt" | sed 's/^/  /' | tee -a "$RES/summary.txt"
    else
        say "test_train_cuda: FAIL, exit $rc"
        grep -E 'FAIL|SKIP|rror' "$RES/test_train_cuda.txt" | head -20 | tee -a "$RES/summary.txt"
        STATUS=1
    fi
else
    say "test_train_cuda: not built (see run.log)"
    STATUS=1
fi
# Data parallelism on GPUs: 2 ranks x 1 image (NCCL) against 1 x 2 on the CPU, where there are
# two GPUs and the build has MPI.
if [ -n "$TRAIN_TEST_BIN" ] && [ "${NGPU:-0}" -ge 2 ] && [ $NCCL_MPI = 1 ] && command -v mpirun >/dev/null 2>&1; then
    say "test_train_cuda under mpirun, 2 ranks on 2 GPUs (2 x 1 image vs 1 x 2)"
    timeout 180 mpirun -np 2 --allow-run-as-root --oversubscribe "$TRAIN_TEST_BIN" >"$RES/test_train_cuda_2ranks.txt" 2>&1
    rc=$?
    if [ $rc = 0 ] && grep -q 'rank 1 of 2' "$RES/test_train_cuda_2ranks.txt"; then
        say "test_train_cuda 2 ranks: PASS"
        grep '^after' "$RES/test_train_cuda_2ranks.txt" | sed 's/^/  /' | tee -a "$RES/summary.txt"
    else
        say "test_train_cuda 2 ranks: FAIL, exit $rc"
        grep -E 'FAIL|rror' "$RES/test_train_cuda_2ranks.txt" | head -10 | tee -a "$RES/summary.txt"
        STATUS=1
    fi
elif [ "${NGPU:-0}" -ge 2 ]; then
    say "test_train_cuda 2 ranks: skipped (needs an MPI build and mpirun)"
fi

# ---- NCCL --------------------------------------------------------------------------------------------
if [ -n "$NCCL_BIN" ] && [ -x "$NCCL_BIN" ]; then
    say "test_nccl (one rank)"
    timeout 60 "$NCCL_BIN" >"$RES/test_nccl.txt" 2>&1
    rc=$?
    if grep -q '^SKIP' "$RES/test_nccl.txt"; then say "test_nccl: SKIPPED, $(grep '^SKIP' "$RES/test_nccl.txt" | head -1)"
    elif [ $rc = 0 ]; then say "test_nccl: PASS ($(tail -1 "$RES/test_nccl.txt"))"
    else
        say "test_nccl: FAIL, exit $rc"
        grep -E 'FAIL|rror' "$RES/test_nccl.txt" | head -10 | tee -a "$RES/summary.txt"
        STATUS=1
    fi
    if [ "${NGPU:-0}" -ge 2 ] && [ $NCCL_MPI = 1 ] && command -v mpirun >/dev/null 2>&1; then
        say "test_nccl under mpirun, 2 ranks on 2 GPUs"
        timeout 120 mpirun -np 2 --allow-run-as-root --oversubscribe "$NCCL_BIN" >"$RES/test_nccl_2ranks.txt" 2>&1
        rc=$?
        if [ $rc = 0 ] && grep -q 'rank 1 of 2' "$RES/test_nccl_2ranks.txt"; then
            say "test_nccl 2 ranks: PASS ($(grep 'checks' "$RES/test_nccl_2ranks.txt" | tr '\n' ' '))"
        else
            say "test_nccl 2 ranks: FAIL, exit $rc"
            grep -E 'FAIL|rror' "$RES/test_nccl_2ranks.txt" | head -10 | tee -a "$RES/summary.txt"
            STATUS=1
        fi
    elif [ "${NGPU:-0}" -ge 2 ]; then
        say "test_nccl 2 ranks: skipped (needs an MPI build and mpirun)"
    fi
else
    say "test_nccl: not built (no NCCL?)"
fi
# ---- the CLI on the GPU: maskvim step, eval and predict against the CPU ---------------------------
# Where the whole project built (CMake, with libyaml and HDF5), the CI script that checks the CLI
# over the emulated GPU runs the real one: `maskvim step` (one whole-model training step, every
# random draw on, the dump compared with the CPU's), eval and predict, at fp32 and bf16.
if [ -x "$BUILD/maskvim" ] && "$PY" -c "import h5py, numpy" >/dev/null 2>&1; then
    say "maskvim step/eval/predict with run.device=cuda against run.device=cpu (tests/scripts/cli_cuda_emu.sh)"
    MV_BIN="$BUILD/maskvim" MV_EMU_BIN="$BUILD/maskvim" MV_PYTHON="$PY" MV_SRC="$SRC" MV_TEST_TMP="$BUILD/test_tmp" \
        timeout 180 bash "$SRC/tests/scripts/cli_cuda_emu.sh" >"$RES/cli_cuda.txt" 2>&1
    rc=$?
    if [ $rc = 0 ]; then
        say "CLI on the GPU: PASS"
        grep -E '^grad/|^bf16|mIoU|pred.png' "$RES/cli_cuda.txt" | head -8 | sed 's/^/  /' | tee -a "$RES/summary.txt"
    else
        say "CLI on the GPU: FAIL, exit $rc"
        grep -E 'FAIL|rror' "$RES/cli_cuda.txt" | head -10 | tee -a "$RES/summary.txt"
        STATUS=1
    fi
else
    say "CLI on the GPU: skipped (the maskvim CLI did not build here, or $PY lacks h5py)"
fi
[ $TESTS_ONLY = 1 ] && { say "tests only: done in $(elapsed)s, status $STATUS"; exit $STATUS; }

# ---- benchmarks ----------------------------------------------------------------------------------
for mode in fp32 tf32 bf16; do
    [ "${MV_SKIP_OPS_BENCH:-0}" = 1 ] && { say "bench_cuda_ops: skipped (MV_SKIP_OPS_BENCH=1)"; break; }
    t=$(($(left) - 150))
    [ $t -gt 90 ] && t=90
    if [ $t -lt 20 ]; then say "bench_cuda_ops $mode: skipped, out of time"; continue; fi
    flag=""
    [ $mode != fp32 ] && flag=--$mode
    say "bench_cuda_ops $mode (limit ${t}s)"
    timeout $t "$BENCH_BIN" --batch 2 --size 512x1024 --iters 5 $flag --out "$RES" 2>&1 | log >/dev/null
    [ "${PIPESTATUS[0]}" = 0 ] || say "bench_cuda_ops $mode: FAILED or timed out (see run.log)"
done

# ---- the whole GPU training step (forward + backward + AdamW), maskvim-t 512x1024 batch 2 --------------
if [ "${MV_SKIP_MODEL_BENCH:-0}" = 1 ]; then
    say "bench_model_cuda: skipped (MV_SKIP_MODEL_BENCH=1)"
elif [ -n "$MODEL_BENCH_BIN" ] && [ -x "$MODEL_BENCH_BIN" ]; then
    for mode in fp32 tf32 bf16; do
        t=$(($(left) - 100))
        [ $t -gt 90 ] && t=90
        if [ $t -lt 20 ]; then say "bench_model_cuda $mode: skipped, out of time"; continue; fi
        say "bench_model_cuda $mode (limit ${t}s)"
        timeout $t "$MODEL_BENCH_BIN" --preset maskvim-t --batch 2 --size 512x1024 --iters 10 --warmup 3 \
            --precision $mode --json "$RES/bench_model_$mode.json" >"$RES/bench_model_$mode.txt" 2>&1
        if [ $? = 0 ]; then grep -E '^step|^device memory' "$RES/bench_model_$mode.txt" | sed 's/^/  /' | tee -a "$RES/summary.txt"
        else say "bench_model_cuda $mode: FAILED or timed out (see bench_model_$mode.txt)"; fi
    done
    # At 256x512 too: where the PyTorch reference fits in memory, for a like-for-like ratio.
    if [ $(($(left) - 100)) -gt 30 ]; then
        say "bench_model_cuda fp32 at 256x512"
        timeout 60 "$MODEL_BENCH_BIN" --preset maskvim-t --batch 2 --size 256x512 --iters 10 --warmup 3 \
            --json "$RES/bench_model_fp32_256x512.json" >"$RES/bench_model_fp32_256x512.txt" 2>&1 &&
            grep -E '^step' "$RES/bench_model_fp32_256x512.txt" | sed 's/^/  /' | tee -a "$RES/summary.txt"
    fi
fi

# ---- the PyTorch reference on the same GPU ---------------------------------------------------------
# The reference's vectorised (chunked) selective scan at the benchmark's size; then, if time is
# left, its per-token loop scan at 256x512 (the figure earlier runs had), into its own file.
torch_step() {   # size, budget, scan, output file
    timeout $(($2 + 30)) "$PY" "$SRC/tests/gpu/torch_step_gpu.py" --size "$1" --batch 2 --iters 2 --budget "$2" \
        --scan "$3" --out "$RES/$4" 2>&1 | log >/dev/null
}
torch_error() { sed 's/.*"error": "\([^"]*\)".*/\1/' "$RES/$1" | cut -c1-120; }
t=$(($(left) - 40))
[ $t -gt 240 ] && t=240
if [ "${MV_SKIP_TORCH:-0}" = 1 ]; then
    say "PyTorch reference step: skipped (MV_SKIP_TORCH=1)"
elif [ $t -gt 30 ]; then
    say "PyTorch reference step, chunked scan, maskvim-t 512x1024 batch 2 (budget ${t}s)"
    torch_step 512x1024 $t chunked torch_step.json
    if grep -q '"error"' "$RES/torch_step.json" 2>/dev/null; then
        say "  at 512x1024: $(torch_error torch_step.json)"
        if [ $(($(left) - 60)) -gt 30 ]; then
            t=$(($(left) - 60))
            say "PyTorch reference step (chunked scan) at 256x512 instead (budget ${t}s), with our ops at the same size"
            torch_step 256x512 $t chunked torch_step.json
            timeout 50 "$BENCH_BIN" --batch 2 --size 256x512 --iters 3 2>&1 | log | grep '^estimated' |
                sed 's/^/  ours at 256x512: /' | tee -a "$RES/summary.txt"
        fi
    elif [ -f "$RES/torch_step.json" ]; then
        say "  $(grep -o '"ms_per_step": [0-9.]*\|"peak_mem_gib": [0-9.]*' "$RES/torch_step.json" | tr '\n' ' ')"
    fi
    # The loop scan's step at 256x512 (about 4 s a step on an H200, a minute or so with start-up).
    t=$(($(left) - 40))
    [ $t -gt 120 ] && t=120
    if [ $t -gt 45 ]; then
        say "PyTorch reference step, loop scan, maskvim-t 256x512 batch 2 (budget ${t}s)"
        torch_step 256x512 $t loop torch_step_loop_256x512.json
        grep -q '"error"' "$RES/torch_step_loop_256x512.json" 2>/dev/null &&
            say "  loop scan at 256x512: $(torch_error torch_step_loop_256x512.json)"
    else
        say "PyTorch reference step, loop scan at 256x512: skipped, out of time"
    fi
else
    say "PyTorch reference step: skipped, out of time"
fi

# ---- summary -------------------------------------------------------------------------------------
"$PY" - "$RES" <<'EOF' 2>&1 | tee -a "$RES/summary.txt"
import json, os, sys
res = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(res, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
ours = {m: load(f"bench_cuda_ops{'' if m == 'fp32' else '_' + m}.json") for m in ("fp32", "tf32", "bf16")}
ref = load("torch_step.json")
ref_loop = load("torch_step_loop_256x512.json")
print("summary:")
for m, b in ours.items():
    if b:
        print(f"  ours ({m} GEMMs, sum of per-op times at {b['size'][0]}x{b['size'][1]} batch {b['batch']}): "
              f"{b['estimated_step_ms']:.1f} ms/step, {b['images_per_s']:.2f} images/s, {b['tflops']:.1f} TFLOP/s, "
              f"largest op {b['peak_mem_gib']:.1f} GiB")
for r in (ref, ref_loop):
    if r and "ms_per_step" in r:
        print(f"  PyTorch reference ({r.get('scan', 'loop')} scan, {r['size']} batch {r['batch']}, torch {r['torch']}): "
              f"{r['ms_per_step']:.1f} ms/step, {r['images_per_s']:.2f} images/s, peak {r.get('peak_mem_gib', '?')} GiB")
if ref and "ms_per_step" in ref:
    b = ours["fp32"]
    if b and ref["size"] == f"{b['size'][0]}x{b['size'][1]}":
        print(f"  throughput ratio ours(fp32)/PyTorch: {b['images_per_s'] / ref['images_per_s']:.2f}x")
elif ref:
    print(f"  PyTorch reference: {ref.get('error', 'no result')}")
for m in ("fp32", "tf32", "bf16", "fp32_256x512"):
    b = load(f"bench_model_{m}.json")
    if b:
        print(f"  ours, whole GPU step ({m} GEMMs, forward+backward+AdamW, {b['height']}x{b['width']} batch {b['batch']}): "
              f"{b['ms_per_step']:.1f} ms/step, {b['images_per_s']:.2f} images/s, {b['tflops']:.1f} TFLOP/s, "
              f"{b['device_memory_gib']:.1f} GiB in use")
        for r in (ref, ref_loop):
            if r and "images_per_s" in r and r["size"] == f"{b['height']}x{b['width']}":
                print(f"    throughput ratio ours({m})/PyTorch ({r.get('scan', 'loop')} scan): "
                      f"{b['images_per_s'] / r['images_per_s']:.2f}x")
print("  (bench_cuda_ops lines: sums of isolated per-op times; bench_model lines: the real step)")
EOF
say "done in $(elapsed)s, status $STATUS"
exit $STATUS
