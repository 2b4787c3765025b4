# Sourced by test scripts that run many short Python commands: `py_zygote_start DIR` starts
# py_zygote.py (torch, h5py and numpy imported once), and `py ARGS...` then behaves as
# "$MV_PYTHON" ARGS... (same stdin/stdout/stderr, folder, environment and exit status) at a
# fraction of the start-up cost. The server goes when the script exits.
py_zygote_start() {
    _pyz_sock="$1/py_zygote.sock"
    rm -f "$_pyz_sock" "$_pyz_sock.bind"
    # Its own output to a file: ctest waits for every holder of the test's stdout to close it.
    "$MV_PYTHON" "$MV_SRC/tests/scripts/py_zygote.py" serve "$_pyz_sock" </dev/null >"$1/py_zygote.log" 2>&1 &
    _pyz_pid=$!
    trap 'kill "$_pyz_pid" 2>/dev/null' EXIT
    local i
    for ((i = 0; i < 600; i++)); do
        [ -S "$_pyz_sock" ] && return 0
        kill -0 "$_pyz_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL: py_zygote.py did not start:"; cat "$1/py_zygote.log"; exit 1
}
py() { "$MV_PYTHON" "$MV_SRC/tests/scripts/py_zygote.py" run "$_pyz_sock" "$@"; }
