#!/usr/bin/env bash
# The multi-GPU training path over the host emulation: `mpirun -np 2 maskvim-emu train` with
# run.device=cuda trains on 2 ranks x 1 image through the GPU engine, NCCL (the emulated one,
# tests/cuda/emu/nccl/) averaging the gradients in buckets started from backward and summing
# SyncBN's and the ratio loss's statistics; it must reach the parameters of the CPU's 1 rank x 2
# images (every random draw on), within the tolerances of tests/scripts/test_train_equivalence.sh:
# after 6 AdamW steps a relative L2 difference below 1e-5, no tensor off by more than 10% of how
# far it moved. The log must say that the ranks used NCCL. And a rank whose GPU stream never
# completes (a collective another rank never joins) ends the job after MV_COMM_TIMEOUT seconds.
# Registered by cmake/cuda_model.cmake (ctest test_train_cuda_2ranks_emu) with MV_EMU_BIN =
# maskvim-emu; SKIP without MPI.
set -euo pipefail
: "${MV_EMU_BIN:?}"
source "$(dirname "$0")/train_common.sh"
source "$(dirname "$0")/mpi_common.sh"
mpi_setup train_cuda_emu_mpi
trap mpi_cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
"$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.device=cpu --set run.work_dir="$TMP/cpu" \
    >"$TMP/cpu.log"
mpirun --oversubscribe -np 2 "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 \
    "$MV_EMU_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=1 --set run.device=cuda \
    --set run.bucket_mb=0.25 --set run.first_bucket_mb=0.05 \
    --set run.work_dir="$TMP/gpu" >"$TMP/gpu.log" 2>&1 || { cat "$TMP/gpu.log"; fail "the 2-rank GPU run failed"; }
grep -q "2 ranks x 1 image," "$TMP/gpu.log" || fail "the mpirun job did not run on 2 ranks: $(head -3 "$TMP/gpu.log")"
grep -q "on GPU 0 (.*), GEMMs .*, NCCL" "$TMP/gpu.log" || fail "the 2-rank GPU run did not say NCCL: $(head -3 "$TMP/gpu.log")"
nb=$(grep -o "NCCL all-reduce in [0-9]* buckets" "$TMP/gpu.log" | grep -o "[0-9]*" || echo 0)
[ "$nb" -ge 5 ] || fail "expected the small buckets asked for (5 or more), got $nb: $(head -2 "$TMP/gpu.log")"
same_training "$TMP/cpu" "$TMP/gpu" || fail "2 GPU ranks x 1 (NCCL) differ from 1 CPU rank x 2"

# A rank whose GPU stream never completes (as one does whose NCCL all-reduce waits for a rank
# that has stopped): after MV_COMM_TIMEOUT seconds the job ends, naming the reason, instead of
# hanging. Rank 0's stream stalls after its sixth query (two at the first plan, then two a step:
# before the batch is staged and before the losses come back; so during the third step); rank 1's
# own collectives wait longer, so that rank 0 is the one to report.
ARGS=(train "${TRAIN_SETS[@]}" --set data.batch_per_rank=1 --set run.device=cuda --set run.work_dir="$TMP/hang")
start=$(date +%s)
rc=0
timeout 120 mpirun --oversubscribe "${MPI_ENV[@]}" -x MV_SYNTH_CACHE -x OMP_NUM_THREADS=1 \
    -np 1 env MV_COMM_TIMEOUT=8 MV_EMU_STALL_QUERIES=6 "$MV_EMU_BIN" "${ARGS[@]}" : \
    -np 1 env MV_COMM_TIMEOUT=60 "$MV_EMU_BIN" "${ARGS[@]}" >"$TMP/hang.log" 2>&1 || rc=$?
took=$(( $(date +%s) - start ))
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "a stalled GPU stream: exit status $rc after $took s: $(tail -5 "$TMP/hang.log")"
[ "$took" -le 60 ] || fail "a stalled GPU stream ended the job only after $took s"
grep -q "rank 0/2: GPU step: not complete after 8 s: its NCCL collectives wait for a rank that has stopped or is stuck" \
    "$TMP/hang.log" || fail "no timeout message: $(grep maskvim "$TMP/hang.log" | tail -3)"
grep -q "^\[iter     2/6\]" "$TMP/hang.log" || fail "the stall came before training: $(head -3 "$TMP/hang.log")"
echo "a stalled GPU stream ended the job after $took s (exit status $rc)"
echo "2 passed, 0 failed"
