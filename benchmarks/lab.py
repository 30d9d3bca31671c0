#!/usr/bin/env python3
"""Lab timings: image build (cold and cached), `lab up` of 3 hosts, `lab down`.

Usage: .venv/bin/python benchmarks/lab.py [--trials 5] [--cold-trials 1]
A lab named `bench` is used, in a temporary project directory, so a running lab is untouched.
Cold builds remove the image of the current digest first, then rebuild it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from fleetwarden.lab.image import LAB_HOST_SPEC


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, text=True)
    return time.monotonic() - started


def summary(name: str, values: list[float]) -> str:
    return f"| {name} | {len(values)} | {statistics.median(values):.1f} | {max(values):.1f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--cold-trials", type=int, default=1)
    args = parser.parse_args()
    project = tempfile.mkdtemp(prefix="fw-bench-")
    cli = [sys.executable, "-m", "fleetwarden.cli", "--project-dir", project, "lab", "--name", "bench"]
    results: dict[str, list[float]] = {"image build, cold": [], "image build, cached": [],
                                       "lab up, 3 hosts": [], "lab down, 3 hosts": []}
    for _ in range(args.cold_trials):
        subprocess.run(["docker", "rmi", "-f", LAB_HOST_SPEC.tag], capture_output=True, check=False)
        results["image build, cold"].append(timed([*cli, "image"]))
    for _ in range(args.trials):
        results["image build, cached"].append(timed([*cli, "image"]))
    try:
        for _ in range(args.trials):
            results["lab up, 3 hosts"].append(timed([*cli, "up", "--hosts", "3"]))
            results["lab down, 3 hosts"].append(timed([*cli, "down"]))
    finally:
        subprocess.run([*cli, "down"], capture_output=True, check=False)
    print("| figure | trials | median (s) | max (s) |\n|---|---|---|---|")
    for name, values in results.items():
        if values:
            print(summary(name, values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
