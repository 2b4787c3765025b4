# Sourced by tests/scripts/test_mpi_*.sh: scratch directory, skip rule, and the environment
# that lets sanitizer builds run under mpirun.
: "${MV_BIN:?MV_BIN must name the maskvim binary}"
fail() { echo "FAIL: $*"; exit 1; }

# mpi_sanitizer_env DIR: the environment that lets sanitizer builds run under mpirun (the
# suppression file goes in DIR), and MPI_ENV, the options every mpirun of the tests passes.
mpi_sanitizer_env() {
    # Open MPI and PMIx keep small allocations until exit and unload their plugins at finalize,
    # so LeakSanitizer reports them from "<unknown module>". Keep plugins loaded, unwind fully,
    # and suppress leaks whose stack passes through the MPI stack; leaks of our own code still count.
    printf '%s\n' leak:libmpi.so leak:libopen-pal.so leak:libopen-rte.so leak:mca_ leak:libpmix.so \
        leak:libhwloc.so leak:libevent >"$1/lsan_mpi.supp"
    export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
    export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$1/lsan_mpi.supp:print_suppressions=0"
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
    # Root in a container: Open MPI refuses to start without both of these.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    # Options every mpirun of these tests passes (-x: forward to the ranks, wherever they run).
    MPI_ENV=(-x OMPI_MCA_mca_base_component_disable_dlclose -x PMIX_MCA_mca_base_component_disable_dlclose
             -x LSAN_OPTIONS -x ASAN_OPTIONS)
}

# mpi_setup NAME: creates $TMP (removed by mpi_cleanup) and exits 0 with SKIP when MPI is absent.
mpi_setup() {
    TMP=${MV_TEST_TMP:-/tmp}/$1.$$
    mkdir -p "$TMP"
    if ! command -v mpirun >/dev/null 2>&1 || ! grep -q "Built with MPI: yes" <<<"$("$MV_BIN" bench-allreduce --help)"; then
        echo "SKIP: maskvim is built without MPI (or mpirun is missing)"
        rm -rf "$TMP"
        exit 0
    fi
    mpi_sanitizer_env "$TMP"
}
mpi_cleanup() { rm -rf "$TMP"; }
