#!/usr/bin/env bash
# A two-host launch on one machine: two network namespaces ("hosts" 10.81.0.1 and 10.81.0.2)
# joined by a bridge, and an rsh agent that starts Open MPI's daemon of a host inside its
# namespace. One rank per host, TCP between them, exactly the flags of a real multi-node run
# (hostfile, btl_tcp_if_include, oob_tcp_if_include). Checks that the ranks see 2 nodes,
# that `bench-allreduce --check` passes across them, and that a failing rank on the second
# host ends the job. Skips (exit 0) only when network namespaces are not permitted here.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/mpi_common.sh"
mpi_setup mpi_two_hosts
P=mvt$$            # names of our namespaces and links, unique to this run
SUB=10.81.0
if ! command -v ip >/dev/null 2>&1 || ! ip netns add "${P}probe" 2>/dev/null; then
    echo "SKIP: 'ip netns' is not permitted here (needs root and iproute2)"; mpi_cleanup; exit 0
fi
ip netns del "${P}probe"

teardown() {
    for ns in "${P}h1" "${P}h2" "${P}sw"; do ip netns del "$ns" 2>/dev/null; done
    mpi_cleanup
}
trap teardown EXIT

# The switch: a namespace holding a bridge; each host: a namespace with one end of a veth pair.
set -e
trap 'echo "FAIL: building the test network failed at line $LINENO"' ERR
ip netns add "${P}sw"
ip -n "${P}sw" link add br0 type bridge
ip -n "${P}sw" link set br0 up
: >"$TMP/hostfile"
for k in 1 2; do
    ip netns add "${P}h$k"
    ip link add "${P}a$k" type veth peer name "${P}b$k"
    ip link set "${P}a$k" netns "${P}h$k"
    ip link set "${P}b$k" netns "${P}sw"
    ip -n "${P}sw" link set "${P}b$k" master br0
    ip -n "${P}sw" link set "${P}b$k" up
    ip -n "${P}h$k" addr add "$SUB.$k/24" dev "${P}a$k"
    ip -n "${P}h$k" link set "${P}a$k" up
    ip -n "${P}h$k" link set lo up
    echo "$SUB.$k slots=1" >>"$TMP/hostfile"
done
# Open MPI calls the agent as `agent HOST COMMAND...`, as it would call ssh.
cat >"$TMP/agent" <<AGENT
#!/bin/sh
host=\$1; shift
exec ip netns exec "${P}h\${host##*.}" /bin/sh -c "\$*"
AGENT
chmod +x "$TMP/agent"
set +e
trap - ERR

MPIRUN=(timeout 300 ip netns exec "${P}h1" mpirun "${MPI_ENV[@]}" -np 2 --map-by node
        --hostfile "$TMP/hostfile" --mca plm_rsh_agent "$TMP/agent"
        --mca btl tcp,self --mca btl_tcp_if_include "$SUB.0/24" --mca oob_tcp_if_include "$SUB.0/24")

echo "== bench-allreduce --check across two hosts"
"${MPIRUN[@]}" "$MV_BIN" bench-allreduce --check --max-bytes 4M --iters 5 --warmup 2 >"$TMP/out.txt" 2>"$TMP/err.txt" \
    || { cat "$TMP/out.txt" "$TMP/err.txt"; fail "two-host bench-allreduce exited non-zero"; }
cat "$TMP/out.txt"
grep -q "^# maskvim bench-allreduce: 2 ranks on 2 nodes, backend mpi" "$TMP/out.txt" || fail "the ranks do not see two nodes"
grep -q "^# Out of bounds values : 0 OK" "$TMP/out.txt" || fail "wrong values"
grep -q "^# Identical on all ranks (random data): yes" "$TMP/out.txt" || fail "ranks disagree"
n=$(grep -v '^#' "$TMP/out.txt" | awk 'NF == 13 && $8 == "0" && $12 == "0"' | wc -l)
[ "$n" -eq 11 ] || fail "$n checked lines, expected 11"

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
