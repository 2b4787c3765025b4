#!/usr/bin/env bash
# One failing rank must end the whole job quickly with a non-zero status, never hang:
#   abort: the rank reports an error and calls comm_abort (MPI_Abort) while the other waits
#          in an all-reduce;
#   exit:  the rank dies without a word (exit without MPI_Abort); mpirun must notice;
#   hang:  the rank is stuck; the other gives up after MV_COMM_TIMEOUT seconds and aborts.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/mpi_common.sh"
mpi_setup mpi_failure
trap mpi_cleanup EXIT

run_failing() {   # mode, then expectations: the job's status is non-zero and it ends within 30 s
    local mode=$1 start end rc
    start=$(date +%s)
    MV_COMM_TIMEOUT=3 timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_COMM_TIMEOUT -np 2 \
        "$MV_BIN" bench-allreduce --max-bytes 64K --fail-rank 1 --fail-mode "$mode" >"$TMP/$mode.out" 2>&1
    rc=$?
    end=$(date +%s)
    echo "-- --fail-mode $mode: exit status $rc after $((end - start)) s"
    [ "$rc" -ne 0 ] || { cat "$TMP/$mode.out"; fail "$mode: the job exited 0"; }
    [ "$rc" -ne 124 ] || { cat "$TMP/$mode.out"; fail "$mode: the job hung until the 120 s guard"; }
    [ $((end - start)) -le 30 ] || fail "$mode: the job took $((end - start)) s to end"
}

run_failing abort
grep -q "maskvim: rank 1/2: simulated failure (--fail-rank)" "$TMP/abort.out" || { cat "$TMP/abort.out"; fail "abort: no message naming rank 1"; }
run_failing exit
grep -q "simulated crash" "$TMP/exit.out" || { cat "$TMP/exit.out"; fail "exit: the rank did not run"; }
run_failing hang
grep -q "maskvim: rank 0/2: .*not complete after 3 s: a rank has stopped or is stuck" "$TMP/hang.out" \
    || { cat "$TMP/hang.out"; fail "hang: rank 0 did not report the timeout"; }

# And the same command without a failing rank succeeds, so the statuses above mean something.
timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -np 2 "$MV_BIN" bench-allreduce --max-bytes 64K >"$TMP/ok.out" 2>&1 \
    || { cat "$TMP/ok.out"; fail "the run without --fail-rank failed"; }
echo "PASS"
