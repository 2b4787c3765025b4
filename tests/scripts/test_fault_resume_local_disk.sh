#!/usr/bin/env bash
# Resuming on several hosts whose run directories are not shared: rank 0 writes the checkpoints,
# so only rank 0 may read them; the other ranks get the moments, step and training state from
# it. Simulated on one machine by giving rank 1 an empty run directory of its own (an mpirun
# with two app contexts). `--resume auto` must continue the 2-rank run bit for bit (it used to
# start rank 1 from scratch: a run that diverged, then hung at the end).
set -euo pipefail
source "$(dirname "$0")/train_common.sh"
source "$(dirname "$0")/mpi_common.sh"
mpi_setup fault_resume_local_disk
trap mpi_cleanup EXIT
MPI=(timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x MV_COMM_TIMEOUT -x OMP_NUM_THREADS=1)
export MV_COMM_TIMEOUT=20
T=("$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=1)
"${MPI[@]}" -np 2 "${T[@]}" --set run.work_dir="$TMP/full" >"$TMP/full.log" 2>&1 || fail "2-rank run: $(tail -3 "$TMP/full.log")"
"${MPI[@]}" -np 2 "${T[@]}" --set run.work_dir="$TMP/a" --stop-after 3 >"$TMP/a1.log" 2>&1 || fail "2-rank run to step 3: $(tail -3 "$TMP/a1.log")"
mkdir -p "$TMP/b"   # rank 1's "local disk": no checkpoint there
"${MPI[@]}" -np 1 "${T[@]}" --set run.work_dir="$TMP/a" --resume auto : -np 1 "${T[@]}" --set run.work_dir="$TMP/b" \
    --resume auto >"$TMP/a2.log" 2>&1 || fail "resume with unshared run directories: $(tail -5 "$TMP/a2.log")"
grep -q "resumed from .*iter_3.h5 at iteration 3" "$TMP/a2.log" || fail "did not resume at iteration 3: $(head -3 "$TMP/a2.log")"
compare "$TMP/full/iter_6.h5" "$TMP/a/iter_6.h5" --exact || fail "the resumed 2-rank run differs from the uninterrupted one"
[ -z "$(ls "$TMP/b")" ] || fail "rank 1 wrote into its run directory: $(ls "$TMP/b")"
echo "1 passed, 0 failed"
