# How `ctest -j2` (scripts/test.sh) orders the suite on a 2-core host. Without a record of
# earlier runs ctest starts tests in the order they were added, so the slowest came last and ran
# alone at the end. COST (seconds each took in a -j1 run on the 2-core CI host) starts the slow
# ones first. (Marking the tests that run two ranks as PROCESSORS 2 ended no sooner: ctest held
# them back until both slots were free, and they ran alone at the end.)
#
# mv_schedule_tests(): sets COST on the tests of the calling directory (ctest's properties can
# only be set where the test was added).

set(MV_TEST_COSTS
  # name                              Release  sanitizers
  test_train_stop_startup                18      69
  test_mpi_three_ranks                    9      56
  test_mpi_failure                       45      55
  test_train_cuda_emu                    53       0
  test_device_direct_build               46       0
  test_train_stop_signal                 14      44
  test_fault_kill_midcheckpoint          17      37
  test_train_cuda_2ranks_emu             29       0
  test_mpi_two_hosts_train               29       0
  test_reference_step                    23      26
  test_model_cuda_emu                    25       0
  test_train_cuda_emu_c                  22       0
  test_experiment_shipped                 5      20
  test_mpi_split_mismatch                 7      19
  test_mpi_build_mismatch                 6      19
  test_fault_train_guard                 13      19
  test_train_cuda_c_2ranks_emu_lazy      18       0
  test_train_resume                       5      17
  test_pth_convert                       15      16
  test_reference_fuzz                    12      15
  test_mpi_allreduce                      5      15
  test_fault_data_midrun                  8      13
  test_cli_gpu_plugin_emu                13       0
  test_cli_cuda_emu                      13       0
  test_reference_presets                 11      12
  test_launch_cli_args                    4      12
  test_fault_resume_local_disk            2      12
  test_experiment_jobs                    5      11
  test_fault_train_resume                 3      11
  test_mpi_two_hosts                      9       0
  test_reference_selftest                 8       0
  test_train_cuda_c_2ranks_emu            8       0
)

function(mv_schedule_tests)
  list(LENGTH MV_TEST_COSTS n)
  math(EXPR last "${n} - 1")
  foreach(i RANGE 0 ${last} 3)
    math(EXPR j "${i} + 1")
    math(EXPR k "${i} + 2")
    list(GET MV_TEST_COSTS ${i} name)
    list(GET MV_TEST_COSTS ${j} release_s)
    list(GET MV_TEST_COSTS ${k} sanitizer_s)
    if(TEST ${name})
      if(MV_SANITIZE)
        set_tests_properties(${name} PROPERTIES COST ${sanitizer_s})
      else()
        set_tests_properties(${name} PROPERTIES COST ${release_s})
      endif()
    endif()
  endforeach()
endfunction()
