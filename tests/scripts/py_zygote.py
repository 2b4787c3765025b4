#!/usr/bin/env python3
# A Python that imports torch, h5py and numpy once and then runs many short Python commands of a
# test script, each in a process forked from it: importing torch costs about 2 s a process, and
# test_pth_convert.sh runs some forty commands. A command behaves as `python3 ARGS...` would:
# it gets the caller's own stdin/stdout/stderr (passed as file descriptors over a UNIX socket),
# working folder, environment and argv, and its exit status is the caller's. See py_zygote.sh.
#
#   py_zygote.py serve SOCKET      the server (exits when its parent shell is gone)
#   py_zygote.py run SOCKET ARGS   one command through it (ARGS: '-', '-c CODE' or 'SCRIPT ...')
import array
import os
import signal
import socket
import struct
import sys


def send_msg(sock, payload, fds=()):
    head = struct.pack("!I", len(payload))
    if fds:
        sock.sendmsg([head], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(head)
    sock.sendall(payload)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        got = sock.recv(n - len(buf))
        if not got:
            raise EOFError
        buf += got
    return buf


def recv_msg(sock, nfds=0):
    fds = []
    if nfds:
        head, anc, _, _ = sock.recvmsg(4, socket.CMSG_SPACE(nfds * array.array("i").itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(data[: len(data) - len(data) % a.itemsize])
                fds.extend(a)
        if len(head) < 4:
            head += recv_exact(sock, 4 - len(head))
    else:
        head = recv_exact(sock, 4)
    (n,) = struct.unpack("!I", head)
    return recv_exact(sock, n), fds


def pack_strings(items):
    return b"\0".join(s.encode("utf-8", "surrogateescape") for s in items)


def unpack_strings(blob):
    return [s.decode("utf-8", "surrogateescape") for s in blob.split(b"\0")] if blob else []


def execute(argv):
    """Runs one command as `python3 argv...` would, in this (forked) process; its exit status."""
    import runpy
    import traceback
    globs = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        if argv[0] in ("-c", "-"):
            sys.path[0] = ""   # as python3 -c / python3 -: the working folder first
        if argv[0] == "-c":
            sys.argv = ["-c"] + argv[2:]
            exec(compile(argv[1], "<string>", "exec"), globs)
        elif argv[0] == "-":
            sys.argv = argv[:]
            exec(compile(sys.stdin.read(), "<stdin>", "exec"), globs)
        else:
            sys.argv = argv[:]
            sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
            runpy.run_path(argv[0], run_name="__main__")
        return 0
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code & 0xFF
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


def child(conn):
    """One request: receive it, run it in a grandchild, send back how it ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    meta, fds = recv_msg(conn, 3)
    fields = unpack_strings(meta)
    cwd, nenv = fields[0], int(fields[1])
    env = dict(kv.split("=", 1) for kv in fields[2:2 + nenv] if "=" in kv)
    argv = fields[2 + nenv:]
    pid = os.fork()
    if pid == 0:
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        # torch drops a forked child to one thread; give it what a fresh process would get.
        threads = env.get("OMP_NUM_THREADS", "")
        sys.modules["torch"].set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else os.cpu_count())
        code = execute(argv)
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        os._exit(code)
    for fd in fds:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    send_msg(conn, str(code if code >= 0 else 128 - code).encode())
    conn.close()
    os._exit(0)


def serve(path):
    import h5py  # noqa: F401  (the point: imported once, before any fork)
    import numpy  # noqa: F401
    import torch  # noqa: F401
    parent = os.getppid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # handlers are reaped by the kernel
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path + ".bind")
    os.rename(path + ".bind", path)   # the socket appears only once it accepts
    srv.listen(16)
    srv.settimeout(5.0)
    while os.getppid() == parent:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        conn.settimeout(None)
        if os.fork() == 0:
            srv.close()
            try:
                child(conn)
            finally:
                os._exit(1)
        conn.close()
    srv.close()
    os.unlink(path)


def run(path, argv):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    env = [f"{k}={v}" for k, v in os.environ.items()]
    meta = pack_strings([os.getcwd(), str(len(env))] + env + argv)
    send_msg(sock, meta, [0, 1, 2])
    reply, _ = recv_msg(sock)
    sys.exit(int(reply.decode()))   # 128 + N when it died of signal N, as a shell reports it


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3:])
    else:
        sys.exit("usage: py_zygote.py serve SOCKET | run SOCKET ARGS...")
