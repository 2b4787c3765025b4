# Sourced by tests that make an allocation fail on purpose: with_memory_limit CMD... runs CMD
# with at most 8 GiB per allocation (ASan) or of address space (ulimit -v), so that the failure
# does not depend on the machine's memory or overcommit setting (with enough RAM, or with
# vm.overcommit_memory=1, a huge allocation succeeds and the run then fills it). Under
# AddressSanitizer the limit is its allocator's (its shadow memory needs more address space
# than any ulimit leaves), which then returns NULL as glibc does.
# An instrumented binary is told by its reference to __asan_init, read from the file itself: the
# test asked `ldd | grep -q libasan`, which under pipefail failed whenever grep stopped reading
# before ldd finished writing (a busy CI run), and then took the ulimit path, where ASan cannot
# reserve its shadow memory.
: "${MV_BIN:?}"
with_memory_limit() {
    if grep -qa __asan_init "$MV_BIN"; then
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1:max_allocation_size_mb=8192" "$@"
    else
        (ulimit -v 8388608 && "$@")
    fi
}
