#!/usr/bin/env bash
# A two-host launch on one machine (tests/scripts/netns_common.sh): two network namespaces ("hosts" 10.81.0.1 and 10.81.0.2)
# joined by a bridge, and an rsh agent that starts Open MPI's daemon of a host inside its
# namespace. One rank per host, TCP between them, exactly the flags of a real multi-node run
# (hostfile, btl_tcp_if_include, oob_tcp_if_include). Checks that the ranks see 2 nodes,
# that `bench-allreduce --check` passes across them, and that a failing rank on the second
# host ends the job. Skips (exit 0) only when network namespaces are not permitted here.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/mpi_common.sh"
mpi_setup mpi_two_hosts
source "$(dirname "${BASH_SOURCE[0]}")/netns_common.sh"
netns_setup mvt 2     # hosts $NETNS_SUB.1 and .2; the EXIT trap removes them and $TMP
MPIRUN=(timeout 300 "${NETNS_MPIRUN[@]}")

echo "== bench-allreduce --check across two hosts"
"${MPIRUN[@]}" "$MV_BIN" bench-allreduce --check --max-bytes 4M --iters 5 --warmup 2 >"$TMP/out.txt" 2>"$TMP/err.txt" \
    || { cat "$TMP/out.txt" "$TMP/err.txt"; fail "two-host bench-allreduce exited non-zero"; }
cat "$TMP/out.txt"
grep -q "^# maskvim bench-allreduce: 2 ranks on 2 nodes, backend mpi" "$TMP/out.txt" || fail "the ranks do not see two nodes"
grep -q "^# Out of bounds values : 0 OK" "$TMP/out.txt" || fail "wrong values"
grep -q "^# Identical on all ranks (random data): yes" "$TMP/out.txt" || fail "ranks disagree"
n=$(grep -v '^#' "$TMP/out.txt" | awk 'NF == 13 && $8 == "0" && $12 == "0"' | wc -l)
[ "$n" -eq 11 ] || fail "$n checked lines, expected 11"

echo "== two hosts with two ranks each"
# Each host runs two ranks, as a node of several GPUs does; the ranks must count two nodes, a node
# rank 0 on each (the node-local rank picks a rank's GPU), and all-reduce correctly across both.
sed 's/slots=1/slots=2/' "$TMP/hostfile" >"$TMP/hostfile2"
timeout 300 "$TMP/onhost" 1 mpirun "${MPI_ENV[@]}" -np 4 --hostfile "$TMP/hostfile2" "${NETNS_MPI_OPTS[@]}" \
    "$MV_BIN" bench-allreduce --check --max-bytes 1M --iters 3 --warmup 1 >"$TMP/out4.txt" 2>"$TMP/err4.txt" \
    || { cat "$TMP/out4.txt" "$TMP/err4.txt"; fail "two hosts x two ranks: bench-allreduce exited non-zero"; }
grep "^# maskvim bench-allreduce" "$TMP/out4.txt"
grep -q "^# maskvim bench-allreduce: 4 ranks on 2 nodes, backend mpi" "$TMP/out4.txt" \
    || { cat "$TMP/out4.txt"; fail "4 ranks on two hosts do not count two nodes"; }
grep -q "^# Out of bounds values : 0 OK" "$TMP/out4.txt" || fail "two hosts x two ranks: wrong values"
grep -q "^# Identical on all ranks (random data): yes" "$TMP/out4.txt" || fail "two hosts x two ranks: ranks disagree"

echo "== a failing rank on the second host ends the job"
start=$(date +%s)
"${MPIRUN[@]}" "$MV_BIN" bench-allreduce --max-bytes 64K --fail-rank 1 >"$TMP/fail.txt" 2>&1
rc=$?
end=$(date +%s)
echo "exit status $rc after $((end - start)) s"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat "$TMP/fail.txt"; fail "expected a quick non-zero exit, got $rc"; }
[ $((end - start)) -le 60 ] || fail "the job took $((end - start)) s to end"
grep -q "maskvim: rank 1/2: simulated failure" "$TMP/fail.txt" || { cat "$TMP/fail.txt"; fail "no message from rank 1"; }
echo "PASS"
