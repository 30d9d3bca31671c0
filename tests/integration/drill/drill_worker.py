"""The fault drill's stand-in for a Ray worker process; runs as PID 1 of a worker container.

It does what the drill needs a worker to do, for real: it holds a TCP connection to the head (as a Ray worker
holds one to the GCS) and exits 1 when it is lost; it rewrites a small checkpoint in its own container layer
every second and dies of ENOSPC on a full disk; it exits 1 when the file it needs from its bucket mount is gone.
Test hooks: SIGUSR1 makes it allocate until the kernel's OOM killer ends it; SIGUSR2 makes it dereference NULL
(a real SIGSEGV, exit 139).

`drill_worker.py run` runs it; `drill_worker.py probe` is the worker's probe (exit 0 when healthy).
Configuration (env): DRILL_HEAD=host:port, DRILL_REQUIRE_FILE=path, DRILL_CHECKPOINT=1.
"""

import ctypes
import os
import signal
import socket
import sys
import time

READY = "/tmp/ready"


def log(message):
    print(time.strftime("%Y-%m-%dT%H:%M:%S ") + message, flush=True)


def allocate_until_killed(_signum, _frame):
    log("SIGUSR1: allocating memory until the OOM killer ends this process")
    hoard = []
    while True:
        hoard.append(bytearray(8 * 1024 * 1024))  # bytearray zero-fills, so every page is touched


def segfault(_signum, _frame):
    log("SIGUSR2: dereferencing NULL")
    ctypes.string_at(0)


def terminate(signum, _frame):
    log(f"signal {signum}: exiting")
    sys.exit(128 + signum)


def connect(address):
    host, _sep, port = address.rpartition(":")
    conn = socket.create_connection((host, int(port)), timeout=5)
    conn.sendall(f"hello {socket.gethostname()}\n".encode())
    conn.settimeout(0.0)
    return conn


def head_alive(conn):
    try:
        data = conn.recv(4096)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return data != b""


def run():
    signal.signal(signal.SIGUSR1, allocate_until_killed)
    signal.signal(signal.SIGUSR2, segfault)
    signal.signal(signal.SIGTERM, terminate)
    head = os.environ.get("DRILL_HEAD")
    required = os.environ.get("DRILL_REQUIRE_FILE")
    checkpoint = os.environ.get("DRILL_CHECKPOINT") == "1"
    conn = None
    if head:
        try:
            conn = connect(head)
        except OSError as exc:
            log(f"cannot reach the head at {head}: {exc}")
            return 1
        log(f"joined the head at {head}")
    log(f"worker started (pid {os.getpid()})")
    while True:
        if conn is not None and not head_alive(conn):
            log(f"lost the connection to the head at {head}")
            return 1
        if required and not os.path.exists(required):
            log(f"{required} is gone: the bucket mount was lost")
            return 1
        if checkpoint:
            # Written beside the last one, then renamed over it, as training checkpoints are.
            try:
                with open("/tmp/checkpoint.new", "wb") as handle:
                    handle.write(os.urandom(256 * 1024))
            except OSError:
                os.unlink("/tmp/checkpoint.new")  # give back what the partial write took, then die of it
                raise
            os.replace("/tmp/checkpoint.new", "/tmp/checkpoint")
        with open(READY, "w") as handle:
            handle.write(str(time.time()))
        time.sleep(1)


def probe():
    try:
        with open(READY) as handle:
            age = time.time() - float(handle.read())
    except (OSError, ValueError):
        return 1
    return 0 if age < 5 else 1


if __name__ == "__main__":
    sys.exit(run() if sys.argv[1:] == ["run"] else probe())
