# The GPU model (included after cmake/cuda.cmake): core/model.c, model_plan.c, layers.c,
# vss_block.c and linear_head.c compiled a second time with MV_MODEL_DEVICE, which maps every op
# to its CUDA twin (core/model_ops.h), plus core/device/ (device arenas, staging). One network
# source, two backends.
#   maskvim_model_cuda       the GPU model over maskvim_cuda
#   test_model_cuda          whole-model step GPU vs CPU (SKIP without a GPU)
#   test_model_cuda_emu      the same over the host emulation of the kernels (CI)
#   test_train_cuda(_emu_c)  8 training steps through the GPU engine against the CPU, evaluation
#   maskvim-emu              the CLI over the emulation (test_train_cuda_emu: train with
#                            run.device=cuda; test_cli_cuda_emu: step, eval and predict)
#   with MPI, on 2 processes over the emulated NCCL: test_train_cuda_c_2ranks_emu (the C test)
#   and test_train_cuda_2ranks_emu (the CLI, tests/scripts/train_cuda_emu_mpi.sh); and with stream
#   work queued (MV_EMU_STREAMS): test_train_cuda_c_2ranks_emu_lazy, test_nccl_2ranks_emu_lazy(_reverse)
set(MV_MODEL_DEVICE_SOURCES
  ${CMAKE_SOURCE_DIR}/core/model.c ${CMAKE_SOURCE_DIR}/core/model_plan.c ${CMAKE_SOURCE_DIR}/core/layers.c
  ${CMAKE_SOURCE_DIR}/core/vss_block.c ${CMAKE_SOURCE_DIR}/core/linear_head.c
  ${CMAKE_SOURCE_DIR}/core/device/model_device.c ${CMAKE_SOURCE_DIR}/core/device/device_profile.c
  ${CMAKE_SOURCE_DIR}/core/device/engine_cuda.c ${CMAKE_SOURCE_DIR}/core/device/gpu_plugin.c)

add_library(maskvim_model_cuda STATIC ${MV_MODEL_DEVICE_SOURCES})
target_compile_definitions(maskvim_model_cuda PRIVATE MV_MODEL_DEVICE=1)
target_link_libraries(maskvim_model_cuda PUBLIC maskvim_cuda)

# The CLI trains on the GPU (run.device: cuda|auto) through the engine of core/device/engine_cuda.c,
# loaded from the plugin libmaskvim_gpu.so beside it when a run may use a GPU (core/engine_plugin.c):
# linked in, cuBLAS's initialisers cost every command a second. The plugin is the GPU model and the
# kernels as position-independent objects; the CPU library's functions it resolves in the executable,
# which links all of them and exports them (CMakeLists.txt). Not in sanitizer builds: the CUDA
# runtime's own allocations (it probes for a driver even where there is no GPU) would read as leaks
# there; those builds check the CPU CLI, and the GPU path is tested by the Release build's emulated
# tests.
if(NOT MV_SANITIZE)
  set_property(TARGET maskvim_cuda maskvim_model_cuda PROPERTY POSITION_INDEPENDENT_CODE ON)
  add_library(maskvim_gpu MODULE $<TARGET_OBJECTS:maskvim_model_cuda> $<TARGET_OBJECTS:maskvim_cuda>)
  set_target_properties(maskvim_gpu PROPERTIES LINKER_LANGUAGE CUDA CUDA_ARCHITECTURES OFF)
  target_link_libraries(maskvim_gpu PRIVATE CUDA::cudart CUDA::cublas)
  if(NCCL_LIBRARY AND NCCL_INCLUDE_DIR)
    target_link_libraries(maskvim_gpu PRIVATE ${NCCL_LIBRARY})
  endif()
  # Loading it where no GPU is (MV_GPU_PLUGIN skips the driver check): it must link against the
  # executable, and define nothing the executable defines.
  add_test(NAME test_cli_gpu_plugin COMMAND bash ${CMAKE_SOURCE_DIR}/tests/scripts/cli_gpu_plugin.sh)
  set_tests_properties(test_cli_gpu_plugin PROPERTIES TIMEOUT 300 ENVIRONMENT
    "MV_BIN=$<TARGET_FILE:maskvim>;MV_GPU_PLUGIN_FILE=$<TARGET_FILE:maskvim_gpu>;MV_PYTHON=/usr/bin/python3;MV_SRC=${CMAKE_SOURCE_DIR};MV_TEST_TMP=${CMAKE_BINARY_DIR}/test_tmp;OMP_NUM_THREADS=2")
endif()

add_executable(test_model_cuda ${CMAKE_SOURCE_DIR}/tests/cuda/test_model_cuda.c)
target_link_libraries(test_model_cuda PRIVATE maskvim_model_cuda)
add_test(NAME test_model_cuda COMMAND test_model_cuda)
set_tests_properties(test_model_cuda PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=2")

add_executable(test_train_cuda ${CMAKE_SOURCE_DIR}/tests/cuda/test_train_cuda.c)
target_link_libraries(test_train_cuda PRIVATE maskvim_model_cuda)
add_test(NAME test_train_cuda COMMAND test_train_cuda)
set_tests_properties(test_train_cuda PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=2")

if(TARGET maskvim_cuda_emu)
  add_library(maskvim_model_cuda_emu STATIC ${MV_MODEL_DEVICE_SOURCES})
  target_compile_definitions(maskvim_model_cuda_emu PRIVATE MV_MODEL_DEVICE=1)
  target_link_libraries(maskvim_model_cuda_emu PUBLIC maskvim_cuda_emu)
  # The CLI over the emulated GPU: the GPU training path (engine, device AdamW, evaluation on
  # the device) runs in CI as `maskvim-emu train --set run.device=cuda`. Every test of the GPU
  # model runs under the emulation's guard (MV_EMU_GUARD=1, tests/cuda/emu/emu.h): device memory
  # is PROT_NONE outside the emulation's own device work, so host code that reads or writes a
  # device pointer, which a GPU would fault on, dies of SIGSEGV here too.
  add_executable(maskvim-emu ${CMAKE_SOURCE_DIR}/launch/main.c)
  target_link_libraries(maskvim-emu PRIVATE maskvim_model_cuda_emu)
  target_compile_definitions(maskvim-emu PRIVATE MV_HAVE_GPU_MODEL=1)
  set(MV_EMU_CLI_ENV
    "MV_BIN=$<TARGET_FILE:maskvim>;MV_EMU_BIN=$<TARGET_FILE:maskvim-emu>;MV_PYTHON=/usr/bin/python3;MV_SRC=${CMAKE_SOURCE_DIR};MV_TEST_TMP=${CMAKE_BINARY_DIR}/test_tmp;OMP_NUM_THREADS=2;MV_EMU_GUARD=1")
  add_test(NAME test_train_cuda_emu COMMAND bash ${CMAKE_SOURCE_DIR}/tests/scripts/train_cuda_emu.sh)
  set_tests_properties(test_train_cuda_emu PROPERTIES TIMEOUT 900 ENVIRONMENT "${MV_EMU_CLI_ENV}")
  # maskvim step, eval and predict with run.device=cuda against the CPU commands.
  add_test(NAME test_cli_cuda_emu COMMAND bash ${CMAKE_SOURCE_DIR}/tests/scripts/cli_cuda_emu.sh)
  set_tests_properties(test_cli_cuda_emu PROPERTIES TIMEOUT 600 ENVIRONMENT "${MV_EMU_CLI_ENV}")
  # The same commands through the real CLI and its plugin path: the emulated GPU model built as
  # a plugin (libmaskvim_gpu_emu.so) and loaded with MV_GPU_PLUGIN, as libmaskvim_gpu.so is on a
  # GPU machine (attach, the engine the model then runs on, evaluation, prediction).
  if(TARGET maskvim_gpu)
    set_property(TARGET maskvim_cuda_emu maskvim_model_cuda_emu PROPERTY POSITION_INDEPENDENT_CODE ON)
    add_library(maskvim_gpu_emu MODULE $<TARGET_OBJECTS:maskvim_model_cuda_emu> $<TARGET_OBJECTS:maskvim_cuda_emu>)
    set_target_properties(maskvim_gpu_emu PROPERTIES LINKER_LANGUAGE CXX)
    add_test(NAME test_cli_gpu_plugin_emu COMMAND bash ${CMAKE_SOURCE_DIR}/tests/scripts/cli_cuda_emu.sh)
    set_tests_properties(test_cli_gpu_plugin_emu PROPERTIES TIMEOUT 600 ENVIRONMENT
      "MV_BIN=$<TARGET_FILE:maskvim>;MV_EMU_BIN=$<TARGET_FILE:maskvim>;MV_GPU_PLUGIN=$<TARGET_FILE:maskvim_gpu_emu>;MV_PYTHON=/usr/bin/python3;MV_SRC=${CMAKE_SOURCE_DIR};MV_TEST_TMP=${CMAKE_BINARY_DIR}/test_tmp;OMP_NUM_THREADS=2;MV_EMU_GUARD=1")
  endif()

  add_executable(test_train_cuda_emu_c ${CMAKE_SOURCE_DIR}/tests/cuda/test_train_cuda.c)
  target_link_libraries(test_train_cuda_emu_c PRIVATE maskvim_model_cuda_emu)
  add_test(NAME test_train_cuda_emu_c COMMAND test_train_cuda_emu_c)
  set_tests_properties(test_train_cuda_emu_c PROPERTIES TIMEOUT 900 ENVIRONMENT "OMP_NUM_THREADS=2;MV_EMU_GUARD=1")

  # With MPI (and so the emulated NCCL): the multi-GPU path on 2 processes. The C test trains
  # 2 ranks x 1 image through the engine against the CPU's 1 x 2 (tests/cuda/test_train_cuda.c);
  # the script does the same through the CLI, comparing checkpoints (train_cuda_emu_mpi.sh).
  if(MPI_C_FOUND)
    mv_add_mpi_emu_test(test_train_cuda_c_2ranks_emu test_train_cuda_emu_c
      "NCCL all-reduce in ([5-9]|[1-9][0-9]+) buckets, rank [01] of 2")
    add_test(NAME test_train_cuda_2ranks_emu COMMAND bash ${CMAKE_SOURCE_DIR}/tests/scripts/train_cuda_emu_mpi.sh)
    set_tests_properties(test_train_cuda_2ranks_emu PROPERTIES TIMEOUT 300 ENVIRONMENT "${MV_EMU_CLI_ENV}")
    # The stream hand-offs of the NCCL overlap (dist/nccl_comm.cu: buckets on a non-blocking stream
    # after the compute stream's ready event, the optimizer after the done event), with stream work
    # queued and run only when a synchronisation forces it (MV_EMU_STREAMS, tests/cuda/emu/emu.h).
    # lazy fails without the done wait, lazy-reverse without the ready wait: test_nccl under both
    # (about 1 s each), the 2-rank training under lazy (about 10 s).
    mv_add_mpi_emu_test(test_train_cuda_c_2ranks_emu_lazy test_train_cuda_emu_c
      "NCCL all-reduce in ([5-9]|[1-9][0-9]+) buckets, rank [01] of 2")
    if(TARGET test_nccl_emu)
      mv_add_mpi_emu_test(test_nccl_2ranks_emu_lazy test_nccl_emu "rank [01]: test_nccl: [0-9]+ checks, 0 failed")
      mv_add_mpi_emu_test(test_nccl_2ranks_emu_lazy_reverse test_nccl_emu
        "rank [01]: test_nccl: [0-9]+ checks, 0 failed")
    endif()
    # (mv_add_mpi_emu_test adds nothing without mpirun.)
    foreach(t test_train_cuda_c_2ranks_emu_lazy test_nccl_2ranks_emu_lazy test_nccl_2ranks_emu_lazy_reverse)
      if(TEST ${t})
        string(REGEX MATCH "lazy(_reverse)?$" mode ${t})
        string(REPLACE "_" "-" mode ${mode})
        set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT "MV_EMU_GUARD=1;MV_EMU_STREAMS=${mode}")
      endif()
    endforeach()
  endif()

  add_executable(test_model_cuda_emu ${CMAKE_SOURCE_DIR}/tests/cuda/test_model_cuda.c)
  target_link_libraries(test_model_cuda_emu PRIVATE maskvim_model_cuda_emu)
  add_test(NAME test_model_cuda_emu COMMAND test_model_cuda_emu)
  set_tests_properties(test_model_cuda_emu PROPERTIES TIMEOUT 900 ENVIRONMENT "OMP_NUM_THREADS=2;MV_EMU_GUARD=1")
endif()

# The training-step benchmark of the GPU model (tests/gpu/device_checks.sh), and its emulated
# twin as a smoke test at a toy size (ctest bench_model_cuda_emu_smoke).
add_executable(bench_model_cuda ${CMAKE_SOURCE_DIR}/tests/cuda/bench_model_cuda.c)
target_link_libraries(bench_model_cuda PRIVATE maskvim_model_cuda)
if(TARGET maskvim_model_cuda_emu)
  add_executable(bench_model_cuda_emu ${CMAKE_SOURCE_DIR}/tests/cuda/bench_model_cuda.c)
  target_link_libraries(bench_model_cuda_emu PRIVATE maskvim_model_cuda_emu)
  add_test(NAME bench_model_cuda_emu_smoke COMMAND bench_model_cuda_emu --preset maskvim-nano
           --batch 2 --size 64x64 --iters 1 --warmup 1 --precision bf16)
  set_tests_properties(bench_model_cuda_emu_smoke PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=2"
                       PASS_REGULAR_EXPRESSION "images/s, [0-9.]+ GFLOP per step")
endif()
