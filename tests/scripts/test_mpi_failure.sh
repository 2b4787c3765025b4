#!/usr/bin/env bash
# One failing rank must end the whole job quickly with a non-zero status, never hang:
#   abort: the rank reports an error and calls comm_abort (MPI_Abort) while the other waits
#          in an all-reduce;
#   exit:  the rank dies without a word (exit without MPI_Abort); mpirun must notice;
#   hang:  the rank is stuck; the other gives up after MV_COMM_TIMEOUT seconds and aborts;
#   hang-at-exit: the rank is stuck after the last collective; the other used to wait in
#          MPI_Finalize, which has no timeout, for ever; it gives up after MV_COMM_TIMEOUT too.
#   stalled before MPI_Init: the rank stops (SIGSTOP) before maskvim even starts; the other waits
#          inside MPI_Init, which has no timeout of its own, until MV_COMM_STARTUP_TIMEOUT.
# And in training: a rank stopped (SIGSTOP) during an evaluation (MV_FAULT). Rank 0 times out in it, writes
# the checkpoint that keeps the training (whole, `latest` names it), and then cannot hear from
# the other rank whether the save went well: its message must say what is true, that the file
# is saved and unconfirmed and that a resume continues from it (it said "saving the training
# done so far failed as well", although the resume continues from that file exactly).
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
run_failing hang-at-exit
grep -q "maskvim: rank 0/2: at exit: barrier: not complete after 3 s" "$TMP/hang-at-exit.out" \
    || { cat "$TMP/hang-at-exit.out"; fail "hang-at-exit: rank 0 did not report the timeout"; }

# A rank that never reaches MPI_Init: rank 1's shell stops itself before it runs maskvim.
printf '#!/bin/sh\nif [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then kill -STOP $$; fi\nexec "$@"\n' >"$TMP/stall.sh"
chmod +x "$TMP/stall.sh"
start=$(date +%s)
MV_COMM_STARTUP_TIMEOUT=4 timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_COMM_STARTUP_TIMEOUT -np 2 \
    "$TMP/stall.sh" "$MV_BIN" bench-allreduce --max-bytes 64K >"$TMP/stall.out" 2>&1
rc=$?
end=$(date +%s)
echo "-- a rank stalled before MPI_Init: exit status $rc after $((end - start)) s"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat "$TMP/stall.out"; fail "stalled before MPI_Init: exit status $rc"; }
[ $((end - start)) -le 40 ] || fail "stalled before MPI_Init: the job took $((end - start)) s to end"
grep -q "maskvim: rank 0: MPI start-up not complete after 4 s: a rank has not started or is stuck" "$TMP/stall.out" \
    || { cat "$TMP/stall.out"; fail "stalled before MPI_Init: rank 0 did not report it"; }
# A limit that is not a number is refused, as MV_COMM_TIMEOUT's is.
if MV_COMM_STARTUP_TIMEOUT=soon timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_COMM_STARTUP_TIMEOUT -np 1 \
    "$MV_BIN" bench-allreduce --max-bytes 64K >"$TMP/badlimit.out" 2>&1; then fail "MV_COMM_STARTUP_TIMEOUT=soon accepted"; fi
grep -q "MV_COMM_STARTUP_TIMEOUT=soon: expected a number of seconds >= 0" "$TMP/badlimit.out" \
    || { cat "$TMP/badlimit.out"; fail "MV_COMM_STARTUP_TIMEOUT=soon: no message naming it"; }

# Of three ranks, rank 2 stops (SIGSTOP, the fault drill MV_FAULT=stop-in-eval:2) as it starts
# the second domain (dusk) of the evaluation at iteration 3, after rank 0 has logged the first
# (clear) and written best.h5: ranks 0 and 1 time out in dusk's sums. (A `kill -STOP` sent from
# here once clear was logged came, on a slow host, after rank 2 had left the evaluation.)
source "$(dirname "${BASH_SOURCE[0]}")/train_common.sh"
EVAL_SETS=(--set run.eval_every=3 --set data.val=[synthetic:clear,synthetic:dusk] --set data.synthetic.val_count=16)
D=$TMP/evalstop
rc=0
# One OpenMP thread per rank, unbound: three ranks of two threads each on two cores made a
# healthy step wait past the limit (the job then failed in a gradient all-reduce, on a slow host).
MV_FAULT=stop-in-eval:2 MV_COMM_TIMEOUT=8 timeout 120 mpirun --oversubscribe --bind-to none "${MPI_ENV[@]}" \
    -x MV_COMM_TIMEOUT -x MV_SYNTH_CACHE -x MV_FAULT -x OMP_NUM_THREADS=1 -np 3 \
    "$MV_BIN" train "${TRAIN_SETS[@]}" "${EVAL_SETS[@]}" --set data.batch_per_rank=1 --set run.work_dir="$D" \
    >"$D.out" 2>&1 || rc=$?
echo "-- rank 2 stopped during the evaluation at iteration 3: exit status $rc"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat "$D.out"; fail "stopped during an evaluation: exit status $rc"; }
grep -q "rank 2/3: fault drill (MV_FAULT): this rank stops at the start of the first evaluation's last data.val source" "$D.out" \
    || { cat "$D.out"; fail "rank 2 did not say that it stops"; }
grep -q '"type": "eval", "iter": 3, "domain": "clear"' "$D/metrics.jsonl" && [ -f "$D/best.h5" ] \
    || { cat "$D.out"; fail "the evaluation of clear was not logged, or best.h5 not written, before the stop"; }
grep -q '"domain": "dusk"' "$D/metrics.jsonl" && fail "dusk was evaluated although rank 2 stopped before it"
grep -q "the evaluation at iteration 3 failed: .*not complete after 8 s" "$D.out" || { cat "$D.out"; fail "the job did not fail in the evaluation at iteration 3"; }
grep -q "rank 0 saved the training state of iteration 3 in $D/iter_3.h5, but the other ranks could not confirm it (the same failure): once the cause is fixed, \`--resume auto\` continues from it (the resume runs the evaluation first)" "$D.out" \
    || { cat "$D.out"; fail "rank 0 does not say that it saved iter_3.h5"; }
grep -q "failed as well" "$D.out" && fail "a save that was written is reported as failed: $(grep 'failed as well' "$D.out")"
# Rank 1, which does not save, cannot know whether rank 0 did: it says so, and points to rank 0.
grep -q "rank 1/3: .*rank 0 was to save the training done so far, but this rank could not learn whether it did" "$D.out" \
    || { cat "$D.out"; fail "rank 1's message does not say that it could not learn of the save"; }
[ "$(cat "$D/latest")" = iter_3.h5 ] || fail "latest names $(cat "$D/latest"), not iter_3.h5"
# As the message says: the resume (one rank, the same global batch) continues from it, redoing
# the evaluation, and keeps the best.h5 that evaluation wrote before it failed.
"$MV_BIN" train "${TRAIN_SETS[@]}" "${EVAL_SETS[@]}" --set data.batch_per_rank=3 --set run.work_dir="$D" --resume auto \
    --stop-after 1 >"$D.resume" 2>&1 || { cat "$D.resume"; fail "the resume failed"; }
grep -q "resumed from $D/iter_3.h5 at iteration 3" "$D.resume" && grep -q "evaluation at iteration 3 did not complete before: running it now" "$D.resume" \
    || { cat "$D.resume"; fail "the resume did not continue from iter_3.h5 with its evaluation"; }
grep -q "warning\|removed" "$D.resume" && { cat "$D.resume"; fail "the resume warned or removed a file"; }

# A drill that is not one, or for a rank the job lacks, is refused before anything starts.
for bad in "stop-in-eval:1" "stop-in-eval:x" "stop-in-train:0" "stop-in-eval"; do
    MV_FAULT=$bad "$MV_BIN" train "${TRAIN_SETS[@]}" --set run.work_dir="$TMP/badfault" >"$TMP/badfault.out" 2>&1 \
        && fail "MV_FAULT=$bad accepted"
    grep -q "MV_FAULT=$bad: " "$TMP/badfault.out" || { cat "$TMP/badfault.out"; fail "MV_FAULT=$bad: no message naming it"; }
    [ -e "$TMP/badfault/metrics.jsonl" ] && fail "MV_FAULT=$bad: the run started"
done

# And the same command without a failing rank succeeds, so the statuses above mean something.
timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -np 2 "$MV_BIN" bench-allreduce --max-bytes 64K >"$TMP/ok.out" 2>&1 \
    || { cat "$TMP/ok.out"; fail "the run without --fail-rank failed"; }
echo "PASS"
