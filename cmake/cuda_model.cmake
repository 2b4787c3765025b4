# The GPU model (included after cmake/cuda.cmake): core/model.c, layers.c, vss_block.c and
# linear_head.c compiled a second time with MV_MODEL_DEVICE, which maps every op to its CUDA
# twin (core/model_ops.h), plus core/device/ (device arenas, staging). One network source, two
# backends.
#   maskvim_model_cuda       the GPU model over maskvim_cuda
#   test_model_cuda          whole-model step GPU vs CPU (SKIP without a GPU)
#   test_model_cuda_emu      the same over the host emulation of the kernels (CI)
set(MV_MODEL_DEVICE_SOURCES
  ${CMAKE_SOURCE_DIR}/core/model.c ${CMAKE_SOURCE_DIR}/core/layers.c
  ${CMAKE_SOURCE_DIR}/core/vss_block.c ${CMAKE_SOURCE_DIR}/core/linear_head.c
  ${CMAKE_SOURCE_DIR}/core/device/model_device.c ${CMAKE_SOURCE_DIR}/core/device/device_profile.c)

add_library(maskvim_model_cuda STATIC ${MV_MODEL_DEVICE_SOURCES})
target_compile_definitions(maskvim_model_cuda PRIVATE MV_MODEL_DEVICE=1)
target_link_libraries(maskvim_model_cuda PUBLIC maskvim_cuda)

add_executable(test_model_cuda ${CMAKE_SOURCE_DIR}/tests/cuda/test_model_cuda.c)
target_link_libraries(test_model_cuda PRIVATE maskvim_model_cuda)
add_test(NAME test_model_cuda COMMAND test_model_cuda)
set_tests_properties(test_model_cuda PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=2")

if(TARGET maskvim_cuda_emu)
  add_library(maskvim_model_cuda_emu STATIC ${MV_MODEL_DEVICE_SOURCES})
  target_compile_definitions(maskvim_model_cuda_emu PRIVATE MV_MODEL_DEVICE=1)
  target_link_libraries(maskvim_model_cuda_emu PUBLIC maskvim_cuda_emu)
  add_executable(test_model_cuda_emu ${CMAKE_SOURCE_DIR}/tests/cuda/test_model_cuda.c)
  target_link_libraries(test_model_cuda_emu PRIVATE maskvim_model_cuda_emu)
  add_test(NAME test_model_cuda_emu COMMAND test_model_cuda_emu)
  set_tests_properties(test_model_cuda_emu PROPERTIES TIMEOUT 900 ENVIRONMENT "OMP_NUM_THREADS=2")
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
