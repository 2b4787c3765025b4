#!/usr/bin/env bash
# Training across two hosts, and losing one. Two network namespaces are the hosts (see
# netns_common.sh); mpirun runs on host 1 with the flags of a real multi-node run (hostfile,
# rsh agent, TCP, btl_tcp_if_include, oob_tcp_if_include), one rank per host, batch 1 per rank.
#   1. `maskvim train` on the two hosts ends with the parameters of 1 rank x 2 images: the run
#      and the comparison of test_train_equivalence (6 iterations, same_training);
#   2. a longer run (24 iterations), once uninterrupted, then with a host lost once checkpoint
#      iter_2.h5 exists: (a) its rank killed with SIGKILL, (b) its network cut (its link set
#      down). The job ends by itself, non-zero, within seconds, saying what happened; no process
#      is left on either host; `latest` names a whole checkpoint, bit-identical to the
#      uninterrupted run's of the same iteration. Only (b) runs with MV_COMM_TIMEOUT=5 (its
#      ranks must give up on the lost host soon); every other run waits up to 60 s, so that a
#      slow rank (sanitizers, a loaded machine, rank 0 writing a checkpoint) is not taken for a
#      lost one;
#   3. `--resume auto` on the two hosts ends with the uninterrupted run's final checkpoint, bit
#      for bit (weights, buffers, moment and state checksums) and its logged losses;
#   4. hosts without a shared file system: each host's synthetic-data cache starts empty and at
#      its own path; each host's first rank writes its own copy (only global rank 0 wrote, and
#      host 2 failed to find the data), and the run equals case 1's two-host run bit for bit.
# Skips (exit 0) only when network namespaces are not permitted here.
# MV_TEST_RESUME_ARGS: extra arguments for the resumed runs only, to see the test fail (e.g.
# "--set optim.lr=3.1e-4", or "--resume DIR/iter_2.h5" for a resume from the wrong checkpoint).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/train_common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/mpi_common.sh"
mpi_setup mpi_two_hosts_train
source "$(dirname "${BASH_SOURCE[0]}")/netns_common.sh"
netns_setup mvtt 2     # sets the EXIT trap: processes killed, namespaces and $TMP removed
T0=${EPOCHREALTIME/./}
elapsed() { echo $(((${EPOCHREALTIME/./} - $1) / 1000)); }   # milliseconds since a ${EPOCHREALTIME/./}
secs() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# Open MPI 4.1: after an abort, mpirun waits until every host's daemon confirms that its ranks
# are gone; a host cut off the network never answers, and mpirun waits until TCP gives up on its
# connection: net.ipv4.tcp_retries2 retransmissions (15 by default, about 15 minutes). Hosts
# that must lose a peer quickly set it lower; 4 gives up after about 6 s (docs/distributed.md).
for k in 1 2; do
    # Through /proc (per network namespace), not sysctl: procps need not be installed.
    ip netns exec "${NETNS_P}h$k" sh -c 'echo 4 > /proc/sys/net/ipv4/tcp_retries2' || fail "cannot set tcp_retries2 on host $k"
done

export MV_COMM_TIMEOUT=60 OMP_NUM_THREADS=1
CUT_TIMEOUT=5   # MV_COMM_TIMEOUT of case 2b only
TWO=(timeout 120 "${NETNS_MPIRUN[@]}" -x MV_SYNTH_CACHE -x MV_COMM_TIMEOUT -x OMP_NUM_THREADS
     "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=1 --set run.bucket_mb=0.25 --set run.first_bucket_mb=0.05)
# The runs that lose a host: long enough that a host lost after iteration 2 is lost mid-run (a
# step takes about 25 ms here); after 24 steps rounding has grown beyond same_training's
# tolerances, so these compare with an uninterrupted two-host run, bit for bit.
M=24
LONG=("${TWO[@]}" --set "schedule.max_iters=$M")
# shellcheck disable=SC2206
RESUME_EXTRA=(${MV_TEST_RESUME_ARGS:-})

# same_state A.h5 B.h5: bit-identical weights and buffers, and the same checksums of weights and
# moments, step, iteration and loader cursor.
same_state() {
    compare "$1" "$2" --exact || return 1
    "$MV_PYTHON" - "$1" "$2" <<'PY'
import sys, h5py
keys = ["train/checksum/weights", "train/checksum/moments", "train/step", "train/iter",
        "train/cursor/seed", "train/cursor/step", "train/cursor/epoch_size", "train/cursor/global_batch"]
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    bad = [k for k in keys if a[k][()] != b[k][()]]
for k in bad:
    print(f"DIFFER {k}")
sys.exit(1 if bad else 0)
PY
}
train_records() { grep '"type": "train"' "$1" | grep -o '"iter": [0-9]*, "loss_total": [0-9.e+-]*'; }
wait_for_file() {   # FILE PID: until FILE exists (0), or the job PID ended first (1)
    while [ ! -e "$1" ]; do kill -0 "$2" 2>/dev/null || return 1; sleep 0.01; done
}
# no_process_left [SECONDS]: every process on both hosts gone (daemons included), host 1's within
# 3 s, host 2's within SECONDS (default 3). A host cut off the network learns nothing from
# mpirun: its rank times out by itself and its daemon ends once TCP gives up on mpirun, a few
# seconds before or after mpirun does, so 2b gives host 2 longer.
no_process_left() {
    local k tries left
    for k in 1 2; do
        for tries in $(seq $((k == 2 ? ${1:-3} * 10 : 30))); do
            mapfile -t left < <(netns_pids $k)
            [ ${#left[@]} -eq 0 ] && break
            sleep 0.1
        done
        [ ${#left[@]} -eq 0 ] && continue
        echo "left on host $k after $tries tries:"; ps -o pid,comm,args -p "$(IFS=,; echo "${left[*]}")"
        return 1
    done
}
# after_loss NAME [SECONDS]: checks a job that lost a host (its status and output in $rc,
# $TMP/NAME.log; SECONDS for host 2's processes to end, see no_process_left), then resumes it on
# the two hosts and compares the result with the uninterrupted run.
after_loss() {
    local name=$1 wd=$TMP/$1 latest k
    [ "$rc" -ne 0 ] || { tail -5 "$TMP/$name.log"; fail "$name: the job exited 0"; }
    [ "$rc" -ne 124 ] || { tail -20 "$TMP/$name.log"; fail "$name: the job did not end by itself (killed by the 120 s guard)"; }
    no_process_left "${2:-3}" || fail "$name: processes left on the hosts after the job ended"
    latest=$(cat "$wd/latest" 2>/dev/null)
    [[ $latest =~ ^iter_([0-9]+)\.h5$ ]] || fail "$name: latest holds '$latest'"
    k=${BASH_REMATCH[1]}
    { [ "$k" -ge 2 ] && [ "$k" -lt $M ]; } || fail "$name: latest is $latest, expected a checkpoint from 2 to $((M - 1))"
    same_state "$TMP/full/$latest" "$wd/$latest" >"$TMP/$name.cmp" \
        || { cat "$TMP/$name.cmp"; fail "$name: $latest differs from the uninterrupted run's"; }
    echo "   latest -> $latest, identical to the uninterrupted run's"
    local t=${EPOCHREALTIME/./}
    "${LONG[@]}" --set run.work_dir="$wd" --resume auto "${RESUME_EXTRA[@]}" >"$TMP/$name.resume.log" 2>&1 \
        || { tail -20 "$TMP/$name.resume.log"; fail "$name: the resumed run failed"; }
    grep -q "resumed from $wd/$latest at iteration $k" "$TMP/$name.resume.log" \
        || { head -5 "$TMP/$name.resume.log"; fail "$name: the resume did not start from $latest"; }
    same_state "$TMP/full/iter_$M.h5" "$wd/iter_$M.h5" >"$TMP/$name.final.cmp" \
        || { cat "$TMP/$name.final.cmp"; fail "$name: the resumed run's iter_$M.h5 differs from the uninterrupted run's"; }
    train_records "$wd/metrics.jsonl" >"$TMP/$name.records"
    diff "$TMP/full.records" "$TMP/$name.records" >&2 \
        || fail "$name: the resumed run logged other losses than the uninterrupted run"
    echo "   resumed from $latest on the two hosts in $(secs "$(elapsed "$t")") s: iter_$M.h5 bit-identical to the"
    echo "   uninterrupted run's (weights, buffers, checksums of weights and moments), same losses"
}

echo "== 1. training on two hosts (2 ranks x 1) against one rank x 2"
"$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=2 --set run.work_dir="$TMP/one" >"$TMP/one.log" 2>&1 \
    || { tail -5 "$TMP/one.log"; fail "the one-rank run failed"; }
t=${EPOCHREALTIME/./}
"${TWO[@]}" --set run.work_dir="$TMP/two" >"$TMP/two.log" 2>&1 || { tail -20 "$TMP/two.log"; fail "the two-host run failed"; }
echo "   two-host run of 6 iterations: $(secs "$(elapsed "$t")") s"
grep -q "2 ranks x 1 image," "$TMP/two.log" || fail "the two-host job did not run 2 ranks: $(head -3 "$TMP/two.log")"
nb=$(grep -o "MPI all-reduce in [0-9]* buckets" "$TMP/two.log" | grep -o "[0-9]*" || echo 0)
[ "$nb" -ge 5 ] || fail "expected the small buckets asked for (5 or more), got $nb: $(head -2 "$TMP/two.log")"
same_training "$TMP/one" "$TMP/two" >"$TMP/same.txt" \
    || { cat "$TMP/same.txt"; fail "2 ranks x 1 on two hosts differ from 1 rank x 2"; }
sed 's/^/   /' "$TMP/same.txt"
t=${EPOCHREALTIME/./}
"${LONG[@]}" --set run.work_dir="$TMP/full" >"$TMP/full.log" 2>&1 \
    || { tail -20 "$TMP/full.log"; fail "the long two-host run failed"; }
echo "   uninterrupted two-host run of $M iterations: $(secs "$(elapsed "$t")") s"
train_records "$TMP/full/metrics.jsonl" >"$TMP/full.records"
[ "$(wc -l <"$TMP/full.records")" -eq $M ] || fail "the long run logged $(wc -l <"$TMP/full.records") train records, not $M"

echo "== 2a. the rank on host 2 killed (SIGKILL) after iter_2.h5"
"${LONG[@]}" --set run.work_dir="$TMP/kill" >"$TMP/kill.log" 2>&1 &
job=$!
# The ranks are looked up once metrics.jsonl exists (both have started: rank 0 passed the
# collectives of the startup), not after iter_2.h5: that takes a dozen processes, and on a loaded
# machine the job could finish meanwhile. Once `latest` exists (written after iter_2.h5, the
# first checkpoint, is whole), only builtins run until the kill.
wait_for_file "$TMP/kill/metrics.jsonl" $job || { wait $job; tail -20 "$TMP/kill.log"; fail "kill: the job ended before it trained"; }
r0=$(netns_pids 1 maskvim) r1=$(netns_pids 2 maskvim)
{ [ "$(echo $r0 | wc -w)" -eq 1 ] && [ "$(echo $r1 | wc -w)" -eq 1 ]; } \
    || fail "kill: expected one rank per host, found '$r0' on host 1 and '$r1' on host 2"
wait_for_file "$TMP/kill/latest" $job || { wait $job; tail -20 "$TMP/kill.log"; fail "kill: the job ended before iter_2.h5"; }
read -r at <"$TMP/kill/latest"
kill -KILL $r1
t=${EPOCHREALTIME/./}
wait $job
rc=$?
ms=$(elapsed "$t")
echo "   killed when latest was $at; the job ended with status $rc $(secs "$ms") s later:"
grep -v '^\[\|^-*$' "$TMP/kill.log" | grep -v "^maskvim train: maskvim-nano" | sed 's/^/   | /'
grep -q "mpirun noticed that process rank 1 with PID $r1 on node $NETNS_SUB.2 exited on signal 9 (Killed)" "$TMP/kill.log" \
    || fail "kill: no message saying that rank 1 on host 2 was killed"
[ "$ms" -le 15000 ] || fail "kill: the job took $(secs "$ms") s to end"
after_loss kill

echo "== 2b. host 2's network cut (its link down) after iter_2.h5, MV_COMM_TIMEOUT=$CUT_TIMEOUT"
MV_COMM_TIMEOUT=$CUT_TIMEOUT "${LONG[@]}" --set run.work_dir="$TMP/cut" >"$TMP/cut.log" 2>&1 &
job=$!
wait_for_file "$TMP/cut/latest" $job || { wait $job; tail -20 "$TMP/cut.log"; fail "cut: the job ended before iter_2.h5"; }
read -r at <"$TMP/cut/latest"
netns_link 2 down || fail "cut: cannot set host 2's link down"
t=${EPOCHREALTIME/./}
wait $job
rc=$?
ms=$(elapsed "$t")
echo "   cut when latest was $at; the job ended with status $rc $(secs "$ms") s later:"
grep -v '^\[\|^-*$' "$TMP/cut.log" | grep -v "^maskvim train: maskvim-nano" | sed 's/^/   | /'
# The first wait to time out may be any collective: a sum of doubles, the gradient buckets, ...
grep -q "maskvim: rank 0/2: .*not complete after $CUT_TIMEOUT s: a rank has stopped or is stuck, or its host cannot be reached" \
    "$TMP/cut.log" \
    || fail "cut: rank 0 did not report the timeout"
[ "$ms" -le $((CUT_TIMEOUT * 1000 + 20000)) ] || fail "cut: the job took $(secs "$ms") s to end"
netns_link 2 up || fail "cut: cannot set host 2's link up again"
after_loss cut $((CUT_TIMEOUT + 10))

echo "== 4. a synthetic-data cache of its own on each host, both empty"
export CACHE_ROOT=$TMP/caches
timeout 120 "${NETNS_MPIRUN[@]}" -x MV_COMM_TIMEOUT -x OMP_NUM_THREADS -x CACHE_ROOT sh -c \
    'MV_SYNTH_CACHE=$CACHE_ROOT/host$OMPI_COMM_WORLD_RANK exec "$0" "$@"' \
    "$MV_BIN" train "${TRAIN_SETS[@]}" --set data.batch_per_rank=1 --set run.bucket_mb=0.25 --set run.first_bucket_mb=0.05 \
    --set run.work_dir="$TMP/caches_run" >"$TMP/caches.log" 2>&1 || { tail -20 "$TMP/caches.log"; fail "caches: the run failed"; }
for k in 0 1; do
    ls "$CACHE_ROOT"/host$k/*/*/train/manifest.json >/dev/null 2>&1 || fail "caches: host $((k + 1)) wrote no data of its own"
done
compare "$TMP/two/iter_6.h5" "$TMP/caches_run/iter_6.h5" --exact >/dev/null \
    || fail "caches: the run differs from case 1's two-host run"
echo "   each host wrote its own cache; iter_6.h5 bit-identical to case 1's"

echo "PASS ($(secs "$(elapsed "$T0")") s)"
