#!/usr/bin/env python3
"""`fleetwarden status` and `fleetwarden doctor` on the running lab: wall time of the CLI as an operator runs it.

Usage: .venv/bin/python benchmarks/status_doctor.py [--trials 5] [-i inventory/lab]
Needs a lab deployed by site.yml. Each trial is a fresh process (python, ansible, inventory parse, one
fleet_status round over SSH with ControlPersist). The same commands with --limit on one host give the cost of
the hosts beyond the first, from which the figure for larger fleets is derived (forks = hosts, up to 50).
Prints a markdown table (wall time, and the controller's CPU seconds, which load does not inflate) and the load
before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


CPU: dict[str, list[float]] = {}


def timed(argv: list[str], name: str = "", env: dict | None = None) -> tuple[float, dict]:
    """Wall seconds and the JSON it printed; the controller CPU seconds (user + sys of the command and its ssh
    children) go to CPU[name]: on this shared 2-core machine, the figure that load does not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    run = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False,
                         env=dict(os.environ, NO_COLOR="1", **(env or {})))
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if name:
        CPU.setdefault(name, []).append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if run.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({run.returncode}): {run.stderr[-1000:]}")
    return seconds, json.loads(run.stdout) if run.stdout.lstrip().startswith("{") else {}


def row(name: str, values: list[float], goal: str = "") -> str:
    cpu = statistics.median(CPU[name]) if CPU.get(name) else float("nan")
    return f"| {name} | {len(values)} | {statistics.median(values):.2f} | {max(values):.2f} | {cpu:.2f} | {goal} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("-i", "--inventory", default="inventory/lab")
    parser.add_argument("--baseline-src", default=None, metavar="DIR",
                        help="also time status and doctor from another checkout's src/ (e.g. a `git worktree` of an "
                             "earlier commit), interleaved with this one's, for an A/B at the same load")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "fleetwarden.cli"]
    _s, first = timed([*cli, "status", "--json", "-i", args.inventory])  # warms ControlPersist, like a 2nd run
    hosts = [h["host"] for h in first["hosts"]]
    one = hosts[-1]
    before = load()
    runs: dict[str, list[float]] = {}
    in_process: dict[str, list[float]] = {}
    baseline = ({"PYTHONPATH": str(Path(args.baseline_src).resolve())} if args.baseline_src else None)
    for _ in range(args.trials):
        if baseline:
            for command in ("status", "doctor"):
                name = f"{command}, {len(hosts)} hosts (baseline src)"
                seconds, _doc = timed([*cli, "--project-dir", str(REPO), command, "--json", "-i", args.inventory],
                                      name, baseline)
                runs.setdefault(name, []).append(seconds)
        for name, argv in (
            (f"status, {len(hosts)} hosts", [*cli, "status", "--json", "-i", args.inventory]),
            (f"doctor, {len(hosts)} hosts", [*cli, "doctor", "--json", "-i", args.inventory]),
            ("status, 1 host", [*cli, "status", "--json", "-i", args.inventory, "--limit", one]),
            ("doctor, 1 host", [*cli, "doctor", "--json", "-i", args.inventory, "--limit", one]),
            # The alternative design: a second process, ansible's own CLI, running the same module.
            (f"ansible -m fleet_status, {len(hosts)} hosts (comparison)",
             [str(Path(sys.executable).with_name("ansible")), "-i", args.inventory, "all", "-m",
              "fleetwarden.fleet.fleet_status", "-o"]),
        ):
            seconds, doc = timed(argv, name)
            runs.setdefault(name, []).append(seconds)
            if "duration_s" in doc:
                in_process.setdefault(name, []).append(doc["duration_s"])
    after = load()
    goals = {f"status, {len(hosts)} hosts": "<= 3 s", f"doctor, {len(hosts)} hosts": "<= 10 s"}
    print("| command | trials | median (s) | max (s) | controller CPU, median (s) | goal |")
    print("|---|---|---|---|---|---|")
    for name, values in runs.items():
        print(row(name, values, goals.get(name, "")))
    print()
    print("In-process time (after python and imports), median s: "
          + ", ".join(f"{name} {statistics.median(v):.2f}" for name, v in in_process.items()))
    print(f"load average before: {before}; after: {after}")
    for command in ("status", "doctor"):
        whole = statistics.median(runs[f"{command}, {len(hosts)} hosts"])
        single = statistics.median(runs[f"{command}, 1 host"])
        per_host = max(0.0, (whole - single) / max(1, len(hosts) - 1))
        figures = ", ".join(f"{n} hosts ~{single + (n - 1) * per_host:.1f} s" for n in (10, 50))
        waves = math.ceil(200 / 50)
        print(f"{command}: 1 host {single:.2f} s, each further host +{per_host:.2f} s (parallel, controller-bound); "
              f"derived: {figures}; 200 hosts in {waves} waves of 50 ~{single + 199 * per_host:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
