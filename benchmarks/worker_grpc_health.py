#!/usr/bin/env python3
"""What the worker tool's gRPC health check costs over grpcio (roles/worker_service/files/fleetwarden_worker/health.py).

  per check     wall time of one grpc_health() (a new channel each, as the probe and wait-for make it) against a
                real grpcio health server on loopback, and of one against a port that accepts and never answers
                (bounded by its timeout).
  import        wall time and peak RSS of a fresh interpreter that imports the tool's health module (grpcio), and
                of one that imports only its supervise module (which never loads grpcio), for comparison.

Usage: .venv/bin/python benchmarks/worker_grpc_health.py [--checks 200] [--runs 5]
Runs on this machine; the grpcio the test extra pins is the version Debian bookworm ships to hosts.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc

FILES = Path(__file__).resolve().parents[1] / "roles" / "worker_service" / "files"
sys.path.insert(0, str(FILES))

from fleetwarden_worker import health  # noqa: E402 - importable once the role's files directory is on sys.path


def serving_server():
    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(lambda request, context: b"\x08\x01")})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def timed(function, runs):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def fresh_import(module, runs):
    """(median ms, max ms, max peak RSS MiB) of a fresh interpreter importing fleetwarden_worker.<module>. The RSS
    comes from GNU time's %M: a child's own ru_maxrss would start at this process's (Linux keeps it over exec)."""
    also = "grpc, " if module == "health" else ""  # health imports grpcio only when it checks
    code = f"import sys; sys.path.insert(0, {str(FILES)!r}); import {also}fleetwarden_worker.{module}"
    walls, rss = [], []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", code], check=True,
                              capture_output=True, text=True)
        walls.append((time.perf_counter() - started) * 1000)
        rss.append(int(done.stderr.split()[-1]) / 1024)
    return statistics.median(walls), max(walls), max(rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0]
    server, port = serving_server()
    assert health.grpc_health("127.0.0.1", port) == (True, "SERVING")
    median, most = timed(lambda: health.grpc_health("127.0.0.1", port), args.checks)
    print(f"| grpc_health, SERVING | {args.checks} | {median:.2f} ms | {most:.2f} ms |")
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent_port = silent.getsockname()[1]
        median, most = timed(lambda: health.grpc_health("127.0.0.1", silent_port, timeout=0.3), 5)
    print(f"| grpc_health, silent port (timeout 0.3 s) | 5 | {median:.0f} ms | {most:.0f} ms |")
    server.stop(None)
    for module in ("health", "supervise"):
        median, most, rss = fresh_import(module, args.runs)
        print(f"| python3 -c 'import fleetwarden_worker.{module}' | {args.runs} | {median:.0f} ms | {most:.0f} ms "
              f"| peak RSS {rss:.0f} MiB |")
    print(f"load average (1 min) at the start: {load}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
