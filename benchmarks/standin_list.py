#!/usr/bin/env python3
"""The cloud stand-in's answer time for a list of many TPU nodes, through google-api-python-client.

Usage: .venv/bin/python benchmarks/standin_list.py [--nodes 1000] [--runs 20]
No lab needed: the stand-in runs on loopback with its in-memory backend (fleetwarden_testing.standin), seeded
with --nodes single-host v4-8 nodes through the engine, then `nodes.list(pageSize=--nodes)` is timed --runs
times. Prints the median, max and min in ms, the page's size, and the load before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT, ZONE = "fw-bench", "us-central2-b"
NODE = {"acceleratorType": "v4-8", "runtimeVersion": "tpu-ubuntu2204-base", "labels": {"fleet": "ray"}}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    # The stand-in shares facts with the collection, which resolves from this checkout (as `fleetwarden lab` does).
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader([str(REPO / "collections")])
    from fleetwarden_testing.standin import RunningStandIn

    from fleetwarden.cloud.lab_fleet import services

    with tempfile.TemporaryDirectory(prefix="fw-standin-bench-") as tmp:
        state_dir = Path(tmp) / ".lab" / "cloud"
        standin = RunningStandIn(state_dir)
        try:
            async def seed():
                for index in range(args.nodes):
                    standin.cloud.create_node(PROJECT, ZONE, f"node-{index:05d}", dict(NODE))
                await standin.cloud.drain()

            started = time.monotonic()
            standin.run(seed(), timeout=600)
            print(f"seeded {args.nodes} nodes in {time.monotonic() - started:.1f} s", flush=True)
            tpu, _ = services(state_dir)
            parent = f"projects/{PROJECT}/locations/{ZONE}"
            print("load before:", load(), flush=True)
            times, size = [], 0
            for _ in range(args.runs):
                started = time.monotonic()
                page = tpu.projects().locations().nodes().list(parent=parent, pageSize=args.nodes).execute()
                times.append((time.monotonic() - started) * 1000)
                size = len(page.get("nodes", []))
            print("load after:", load())
        finally:
            standin.stop()
    if size != args.nodes:
        print(f"the page held {size} nodes, not {args.nodes}")
        return 1
    print(f"nodes.list of {size} nodes, {args.runs} runs: median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms, min {min(times):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
