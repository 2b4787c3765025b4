# shellcheck shell=bash
# Sourced by the multi-host tests (after mpi_common.sh and mpi_setup): N "hosts" on one machine.
# Each host is a network namespace with its own address ($NETNS_SUB.K/24) and one end of a veth
# pair whose other end sits on a bridge in a "switch" namespace; an rsh agent lets Open MPI
# start its daemon of a host inside that host's namespace, as ssh would on a real cluster.
#
#   netns_setup NAME_PREFIX N   create hosts 1..N (exits 0 with SKIP where `ip netns` is not
#                               permitted); sets NETNS_P, NETNS_MPIRUN (mpirun run on host 1,
#                               one rank per host, with the real multi-node options: hostfile,
#                               rsh agent, TCP, btl_tcp_if_include and oob_tcp_if_include on the
#                               test subnet) and NETNS_MPI_OPTS (those options but -np and the
#                               hostfile, for a test that places ranks otherwise)
#   $TMP/onhost K COMMAND...    run COMMAND on host K (mpirun too: `$TMP/onhost 1 mpirun ...`)
#   netns_link K up|down        plug host K's cable in or pull it out (its end of the veth pair)
#   netns_pids K [NAME]         the processes running on host K (named NAME, if given)
#   netns_kill_all              SIGKILL every process left in the test's namespaces
#   netns_teardown              the above, then remove the namespaces (safe to call twice)
# A test sets `trap netns_teardown EXIT` (and calls mpi_cleanup itself or lets netns_teardown do it).
: "${TMP:?call mpi_setup before sourcing netns_common.sh}"
NETNS_SUB=${NETNS_SUB:-10.81.0}
NETNS_P=
NETNS_N=0

netns_setup() {
    NETNS_P=$1$$            # names of our namespaces and links, unique to this run
    NETNS_N=$2
    if ! command -v ip >/dev/null 2>&1 || ! ip netns add "${NETNS_P}probe" 2>/dev/null; then
        echo "SKIP: 'ip netns' is not permitted here (needs root and iproute2)"; mpi_cleanup; exit 0
    fi
    ip netns del "${NETNS_P}probe"
    trap netns_teardown EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM   # through the EXIT trap
    # The switch: a namespace holding a bridge; each host: a namespace with one end of a veth pair.
    local k ok=1
    {
        ip netns add "${NETNS_P}sw" &&
        ip -n "${NETNS_P}sw" link add br0 type bridge &&
        ip -n "${NETNS_P}sw" link set br0 up &&
        : >"$TMP/hostfile"
    } || ok=0
    for k in $(seq 1 "$NETNS_N"); do
        [ "$ok" = 1 ] || break
        {
            ip netns add "${NETNS_P}h$k" &&
            ip link add "${NETNS_P}a$k" type veth peer name "${NETNS_P}b$k" &&
            ip link set "${NETNS_P}a$k" netns "${NETNS_P}h$k" &&
            ip link set "${NETNS_P}b$k" netns "${NETNS_P}sw" &&
            ip -n "${NETNS_P}sw" link set "${NETNS_P}b$k" master br0 &&
            ip -n "${NETNS_P}sw" link set "${NETNS_P}b$k" up &&
            ip -n "${NETNS_P}h$k" addr add "$NETNS_SUB.$k/24" dev "${NETNS_P}a$k" &&
            ip -n "${NETNS_P}h$k" link set "${NETNS_P}a$k" up &&
            ip -n "${NETNS_P}h$k" link set lo up &&
            echo "$NETNS_SUB.$k slots=1" >>"$TMP/hostfile"
        } || ok=0
    done
    [ "$ok" = 1 ] || { echo "FAIL: building the test network failed"; exit 1; }
    # `onhost K COMMAND...` runs COMMAND on host K: in its network namespace and under a host name
    # of its own (a UTS namespace), as on a real cluster. Open MPI tells nodes apart by the name
    # their daemon reports; with the machine's one name for every host, the ranks of two hosts
    # counted as one node, and two ranks per host crashed in Open MPI's shared-memory set-up.
    cat >"$TMP/onhost" <<ONHOST
#!/bin/sh
k=\$1; shift
exec ip netns exec "${NETNS_P}h\$k" unshare --uts /bin/sh -c 'hostname "\$0" && exec "\$@"' "${NETNS_P}-host\$k" "\$@"
ONHOST
    # Open MPI calls the agent as `agent HOST COMMAND...`, as it would call ssh.
    cat >"$TMP/agent" <<AGENT
#!/bin/sh
host=\$1; shift
exec "$TMP/onhost" "\${host##*.}" /bin/sh -c "\$*"
AGENT
    chmod +x "$TMP/onhost" "$TMP/agent"
    # shellcheck disable=SC2034,SC2054  # used by the tests; commas inside mpirun options
    # --bind-to none: each host's daemon would bind its rank to the first core, all hosts the same one.
    NETNS_MPI_OPTS=(--map-by node --bind-to none --mca plm_rsh_agent "$TMP/agent"
                    --mca btl tcp,self --mca btl_tcp_if_include "$NETNS_SUB.0/24"
                    --mca oob_tcp_if_include "$NETNS_SUB.0/24")
    # shellcheck disable=SC2034
    NETNS_MPIRUN=("$TMP/onhost" 1 mpirun "${MPI_ENV[@]}" -np "$NETNS_N" --hostfile "$TMP/hostfile" "${NETNS_MPI_OPTS[@]}")
}

netns_link() { ip -n "${NETNS_P}h$1" link set "${NETNS_P}a$1" "$2"; }

netns_pids() {
    local pid
    for pid in $(ip netns pids "${NETNS_P}h$1" 2>/dev/null); do
        if [ -z "${2:-}" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then echo "$pid"; fi
    done
}

netns_kill_all() {
    local k pid
    [ -n "$NETNS_P" ] || return 0
    for k in $(seq 1 "$NETNS_N"); do
        for pid in $(ip netns pids "${NETNS_P}h$k" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    done
}

netns_teardown() {
    if [ -n "$NETNS_P" ]; then
        netns_kill_all
        local ns
        for ns in $(seq 1 "$NETNS_N"); do ip netns del "${NETNS_P}h$ns" 2>/dev/null; done
        ip netns del "${NETNS_P}sw" 2>/dev/null
        NETNS_P=
    fi
    [ -n "${KEEP:-}" ] || mpi_cleanup
}
