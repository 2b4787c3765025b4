# The CUDA backend, included by the top-level CMakeLists.txt when nvcc is found
# (MV_WITH_CUDA=ON, the default). It builds, without touching the CPU library:
#   maskvim_cuda       static library of kernels/cuda/*.cu (Ampere sm_80 and Hopper sm_90 code,
#                      plus sm_90 PTX for newer GPUs), cuBLAS and, when found, NCCL
#   test_cuda_ops      every GPU op against the CPU op; prints "SKIP: no CUDA device ..." and
#                      passes on machines without a GPU (ctest test `test_cuda_ops`)
#   bench_cuda_ops     per-op timings at maskvim-t shapes (tests/gpu/device_checks.sh runs it)
#   test_nccl          dist/nccl_comm.h on GPUs: one rank, or several under mpirun; SKIP without a
#                      GPU (ctest test `test_nccl_cuda`)
#   test_cuda_ops_emu  the same test program over the CUDA kernels compiled for the host
#                      emulation (tests/cuda/emu/), so that CI without a GPU still runs the
#                      kernels' logic (not built in sanitizer builds: fibers confuse ASan)
#   test_nccl_emu      test_nccl over the emulation and its emulated NCCL (with MPI only), run
#                      on 2 processes (ctest test `test_nccl_2ranks_emu`)
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;90-virtual")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
# The top-level compile options (-march=native, sanitizers) are for gcc: CUDA targets start
# from an empty list and get these. Host code warnings fail the build as in the C code.
if(MV_WERROR)
  set(MV_CUDA_FLAGS --Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Werror)
else()
  set(MV_CUDA_FLAGS -Xcompiler=-Wall,-Wextra)
endif()

file(GLOB MV_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu)
# dist/nccl_comm.cu: the GPU side of dist/ (the C files there are in the CPU library).
add_library(maskvim_cuda STATIC ${MV_CUDA_SOURCES} ${CMAKE_SOURCE_DIR}/dist/nccl_comm.cu)
set_property(TARGET maskvim_cuda PROPERTY COMPILE_OPTIONS "")
target_compile_options(maskvim_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${MV_CUDA_FLAGS}>)
target_compile_definitions(maskvim_cuda PUBLIC MV_HAVE_CUDA=1)
target_include_directories(maskvim_cuda PUBLIC ${CMAKE_SOURCE_DIR} ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(maskvim_cuda PUBLIC maskvim_lib CUDA::cudart CUDA::cublas)

# NCCL: in the toolkit's tree (as in the CUDA images) or a system package.
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib64
  /usr/local/cuda/lib64)
if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
  message(STATUS "maskvim: CUDA backend with NCCL (${NCCL_LIBRARY})")
  target_compile_definitions(maskvim_cuda PUBLIC MV_HAVE_NCCL=1)
  target_include_directories(maskvim_cuda PUBLIC ${NCCL_INCLUDE_DIR})
  target_link_libraries(maskvim_cuda PUBLIC ${NCCL_LIBRARY})
else()
  message(STATUS "maskvim: CUDA backend without NCCL (nccl.h or libnccl not found)")
endif()

add_executable(test_cuda_ops ${CMAKE_SOURCE_DIR}/tests/cuda/test_cuda_ops.c)
target_link_libraries(test_cuda_ops PRIVATE maskvim_cuda)
add_test(NAME test_cuda_ops COMMAND test_cuda_ops)
set_tests_properties(test_cuda_ops PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=2")

add_executable(test_nccl ${CMAKE_SOURCE_DIR}/tests/cuda/test_nccl.c)
target_link_libraries(test_nccl PRIVATE maskvim_cuda)
add_test(NAME test_nccl_cuda COMMAND test_nccl)
set_tests_properties(test_nccl_cuda PROPERTIES TIMEOUT 120)

add_executable(bench_cuda_ops ${CMAKE_SOURCE_DIR}/tests/cuda/bench_cuda_ops.cu)
set_property(TARGET bench_cuda_ops PROPERTY COMPILE_OPTIONS "")
target_compile_options(bench_cuda_ops PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${MV_CUDA_FLAGS}>)
target_link_libraries(bench_cuda_ops PRIVATE maskvim_cuda)

# device_checks.sh's nvcc/gcc build without CMake, which only the device machine would otherwise
# run: its source lists must keep up with the tree (Release builds; 30-50 s on 2 cores).
if(NOT MV_SANITIZE)
  get_filename_component(MV_NVCC_DIR ${CMAKE_CUDA_COMPILER} DIRECTORY)
  add_test(NAME test_device_direct_build COMMAND bash ${CMAKE_SOURCE_DIR}/tests/scripts/device_direct_build.sh)
  set_tests_properties(test_device_direct_build PROPERTIES TIMEOUT 900 ENVIRONMENT
    "MV_SRC=${CMAKE_SOURCE_DIR};MV_TEST_TMP=${CMAKE_BINARY_DIR}/test_tmp;PATH=${MV_NVCC_DIR}:$ENV{PATH};OMP_NUM_THREADS=2;MV_EXPECT_NCCL=$<IF:$<BOOL:${NCCL_LIBRARY}>,1,0>")
endif()

if(NOT MV_SANITIZE)
  enable_language(CXX)
  set(CMAKE_CXX_STANDARD 17)
  # One C++ file per .cu file: the same source compiled by g++ against the emulation header.
  # The wrapper is rewritten only when its text changes, so a reconfigure rebuilds nothing.
  function(mv_emu_wrapper src out_var)
    get_filename_component(name ${src} NAME_WE)
    set(wrapper ${CMAKE_BINARY_DIR}/cuda_emu/${name}.cpp)
    set(text "// Generated by cmake/cuda.cmake: ${name}.cu for the host emulation.\n#include \"${src}\"\n")
    set(old "")
    if(EXISTS ${wrapper})
      file(READ ${wrapper} old)
    endif()
    if(NOT old STREQUAL text)
      file(WRITE ${wrapper} "${text}")
    endif()
    set(${out_var} ${wrapper} PARENT_SCOPE)
  endfunction()
  set(MV_EMU_SOURCES)
  foreach(src ${MV_CUDA_SOURCES} ${CMAKE_SOURCE_DIR}/dist/nccl_comm.cu)
    mv_emu_wrapper(${src} wrapper)
    list(APPEND MV_EMU_SOURCES ${wrapper})
  endforeach()
  add_library(maskvim_cuda_emu STATIC ${MV_EMU_SOURCES}
    ${CMAKE_SOURCE_DIR}/tests/cuda/emu/emu.cpp ${CMAKE_SOURCE_DIR}/tests/cuda/emu/emu_runtime.cpp)
  target_compile_definitions(maskvim_cuda_emu PUBLIC MV_CUDA_EMU=1)
  # -Wno-unknown-pragmas: #pragma unroll. -ffp-contract=off: no FMA where nvcc keeps separate
  # roundings (the __fmul_rn/__fadd_rn intrinsics of the optimizer).
  target_compile_options(maskvim_cuda_emu PRIVATE -Wno-unknown-pragmas -ffp-contract=off)
  target_include_directories(maskvim_cuda_emu PUBLIC ${CMAKE_SOURCE_DIR} ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(maskvim_cuda_emu PUBLIC maskvim_lib ${OPENBLAS_LIB})
  # The emulated NCCL (tests/cuda/emu/nccl/nccl.h, over MPI on host memory): with MPI, the NCCL
  # path of dist/nccl_comm.cu is compiled into the emulation too and runs across processes under
  # mpirun. Its include directory goes first, ahead of the toolkit's real nccl.h, and only here.
  # Without MPI the emulation has no NCCL (the NCCL functions say "built without NCCL").
  if(MPI_C_FOUND)
    target_sources(maskvim_cuda_emu PRIVATE ${CMAKE_SOURCE_DIR}/tests/cuda/emu/nccl_emu.cpp)
    target_compile_definitions(maskvim_cuda_emu PUBLIC MV_HAVE_NCCL=1)
    target_include_directories(maskvim_cuda_emu BEFORE PRIVATE ${CMAKE_SOURCE_DIR}/tests/cuda/emu/nccl)
    target_link_libraries(maskvim_cuda_emu PUBLIC MPI::MPI_C)
  endif()
  # mv_add_mpi_emu_test(NAME TARGET PATTERN): TARGET under `mpirun -n 2` (Open MPI's options, as
  # tests/scripts/mpi_common.sh); passes when both ranks exit 0, nothing says SKIP, and PATTERN
  # (an extended regex) matches two lines, one per rank, so that a job that did not really run
  # two ranks, or skipped, cannot pass.
  function(mv_add_mpi_emu_test name target pattern)
    if(NOT MPI_C_FOUND OR NOT MPIEXEC_EXECUTABLE)
      return()
    endif()
    # (No semicolons in the script: cmake would read them as list separators.)
    add_test(NAME ${name} COMMAND bash -c [=[
out=$("$0" -n 2 --oversubscribe -x OMP_NUM_THREADS=1 "$1" 2>&1)
rc=$?
printf '%s\n' "$out"
fail() {
  echo "FAIL: $*"
  exit 1
}
[ $rc = 0 ] || fail "exit status $rc"
grep -q SKIP <<<"$out" && fail "skipped"
[ "$(grep -cE "$2" <<<"$out")" = 2 ] || fail "not 2 lines (one per rank) matching: $2"
exit 0]=]
      ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:${target}> "${pattern}")
    set_tests_properties(${name} PROPERTIES TIMEOUT 300 ENVIRONMENT
      "OMP_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
  endfunction()

  add_executable(test_cuda_ops_emu ${CMAKE_SOURCE_DIR}/tests/cuda/test_cuda_ops.c)
  target_link_libraries(test_cuda_ops_emu PRIVATE maskvim_cuda_emu)
  add_test(NAME test_cuda_ops_emu COMMAND test_cuda_ops_emu)
  set_tests_properties(test_cuda_ops_emu PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=2")
  # Again with the threads of every block run in reverse and in a shuffled order between barriers
  # (and the blocks likewise): the forward order hides a missing barrier before a read of a lower
  # thread's shared-memory write; these orders expose it (tests/cuda/emu/emu.h).
  add_test(NAME test_cuda_ops_emu_reverse COMMAND test_cuda_ops_emu)
  set_tests_properties(test_cuda_ops_emu_reverse PROPERTIES TIMEOUT 600
    ENVIRONMENT "OMP_NUM_THREADS=2;MV_EMU_THREAD_ORDER=reverse")
  add_test(NAME test_cuda_ops_emu_shuffle COMMAND test_cuda_ops_emu)
  set_tests_properties(test_cuda_ops_emu_shuffle PROPERTIES TIMEOUT 600
    ENVIRONMENT "OMP_NUM_THREADS=2;MV_EMU_THREAD_ORDER=shuffle:20261201")
  # The emulation's own checks: the order switch, NaN-filled shared memory, shuffle widths, and
  # the misuses it must refuse (divergent barriers and shuffles, reads of exited lanes, limits).
  add_executable(test_emu ${CMAKE_SOURCE_DIR}/tests/cuda/emu/test_emu.cpp)
  target_link_libraries(test_emu PRIVATE maskvim_cuda_emu)
  target_compile_options(test_emu PRIVATE -Wall -Wextra ${MV_WERROR_FLAG})
  add_test(NAME test_emu COMMAND test_emu)
  set_tests_properties(test_emu PROPERTIES TIMEOUT 60)

  # test_nccl over the emulated NCCL on 2 processes: the bucketed gradient all-reduce as backward
  # drives it, two steps, the SyncBN reducer (tests/cuda/test_nccl.c), bit for bit.
  if(MPI_C_FOUND)
    add_executable(test_nccl_emu ${CMAKE_SOURCE_DIR}/tests/cuda/test_nccl.c)
    target_link_libraries(test_nccl_emu PRIVATE maskvim_cuda_emu)
    mv_add_mpi_emu_test(test_nccl_2ranks_emu test_nccl_emu "rank [01]: test_nccl: [0-9]+ checks, 0 failed")
  endif()

  # The benchmark over the emulation, for a manual smoke test of every (op, shape) path at a toy
  # image size (about a minute: the model's channel counts stay full size):
  #   bench_cuda_ops_emu --batch 1 --size 64x64 --iters 1
  mv_emu_wrapper(${CMAKE_SOURCE_DIR}/tests/cuda/bench_cuda_ops.cu wrapper)
  add_executable(bench_cuda_ops_emu ${wrapper})
  target_link_libraries(bench_cuda_ops_emu PRIVATE maskvim_cuda_emu)

endif()
