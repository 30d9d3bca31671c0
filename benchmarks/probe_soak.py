"""Does the liveness probe leave a healthy Ray worker alone? A soak of the deployed lab, counting probe kills.

Needs the lab up with the Ray cluster deployed (site.yml or testing/fleetwarden_testing/playbooks/ray_cluster.yml). For
--duration seconds it watches one worker host's supervised Ray worker (nothing breaks it on purpose) and counts:

  probe kills       journal lines of the worker's probe unit saying it killed the container ("failed its probe");
  failed rounds     journal lines "probe failed (k of n)": near misses, with the longest run k;
  restarts          the worker unit's NRestarts and the container's ID changing;
  head lost it      samples where the head's GCS did not list the worker's node alive.

With --tasks-every N it also runs a small Ray job every N seconds from the head, its tasks pinned to the watched
node (NodeAffinitySchedulingStrategy), so the raylet leases workers and runs tasks as in normal use.
Every --sample seconds it records the machine's load average (the lab hosts are containers on this machine, so
this is the load the probe and the raylet live under). The result: probe kills must be 0.

Usage: python benchmarks/probe_soak.py [--host NAME] [--duration 3600] [--sample 30] [--tasks-every 60]
                                       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

from fleetwarden_testing import ray_lab

KILL = "failed its probe"
FAILED_ROUND = re.compile(r"probe failed \((\d+) of (\d+)\)")
# Runs in the head's container: 4 short tasks on the node at NODE_IP (a CPU-bound second each, then a sleep).
_JOB = """
import sys, time, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
node = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeManagerAddress"] == sys.argv[1])
@ray.remote(num_cpus=0.25, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
def task(i):
    end = time.time() + 1.0
    while time.time() < end:
        pass
    time.sleep(0.5)
    return i
print(sum(ray.get([task.remote(i) for i in range(4)], timeout=120)))
"""


def probe_journal(host, unit: str, since: float) -> list[str]:
    result = ray_lab.host_run(host, "journalctl", "--unit", unit, "--since", f"@{since:.0f}", "--output", "cat",
                              "--no-pager", timeout=60)
    return result.stdout.splitlines()


def run_job(head, node_ip: str) -> bool:
    result = ray_lab.host_run(head, "docker", "exec", "-i", ray_lab.HEAD_CONTAINER, "python3", "-", node_ip,
                              input_text=_JOB, timeout=180)
    return result.returncode == 0 and result.stdout.strip().endswith("6")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="the worker host to watch (default: the last host of group workers)")
    parser.add_argument("--duration", type=float, default=3600)
    parser.add_argument("--sample", type=float, default=30, help="seconds between samples")
    parser.add_argument("--tasks-every", type=float, default=0, help="run a small Ray job this often (0: never)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    hosts = ray_lab.read_inventory()
    head = next((h for h in hosts.values() if "head" in h.groups), None)
    workers = sorted(h.name for h in hosts.values() if "workers" in h.groups)
    name = args.host or (workers[-1] if workers else None)
    if head is None or name not in hosts:
        parser.error(f"no lab head or no worker host {name} in {ray_lab.INVENTORY}; bring the lab up first")
    host = hosts[name]
    worker_unit = f"fleetwarden-worker-{ray_lab.WORKER_CONTAINER}.service"
    probe_unit = f"fleetwarden-probe-{ray_lab.WORKER_CONTAINER}.service"
    declaration = json.loads(ray_lab.host_run(host, "cat", f"/etc/fleetwarden/workers/{ray_lab.WORKER_CONTAINER}.json",
                                              check=True).stdout)
    first = ray_lab.container(host, ray_lab.WORKER_CONTAINER)
    if not first or not first["running"]:
        parser.error(f"{name}'s Ray worker is not running")
    restarts_at_start = int(ray_lab.unit(host, worker_unit).get("NRestarts", "0"))
    started, uptime_start = time.time(), os.getloadavg()
    loads, lost, jobs, jobs_failed, containers = [], 0, 0, 0, {first["id"]}
    next_job = started
    print(f"soak of {name} for {args.duration:.0f} s, probe {json.dumps(declaration['probe'], sort_keys=True)}; "
          f"load {uptime_start[0]:.2f} / {uptime_start[1]:.2f} / {uptime_start[2]:.2f}", flush=True)
    while time.time() - started < args.duration:
        if args.tasks_every and time.time() >= next_job:
            jobs += 1
            jobs_failed += 0 if run_job(head, host.address) else 1
            next_job += args.tasks_every
        loads.append(os.getloadavg()[0])
        info = ray_lab.container(host, ray_lab.WORKER_CONTAINER)
        if info:
            containers.add(info["id"])
        if host.address not in ray_lab.alive(head):
            lost += 1
        elapsed = time.time() - started
        print(f"{elapsed:6.0f} s: load {loads[-1]:.2f}, containers {len(containers)}, head lost it {lost}, "
              f"jobs {jobs} ({jobs_failed} failed)", flush=True)
        time.sleep(max(0.0, min(args.sample, args.duration - elapsed)))
    lines = probe_journal(host, probe_unit, started)
    kills = [line for line in lines if KILL in line]
    runs = [int(m.group(1)) for m in map(FAILED_ROUND.search, lines) if m]
    result = {
        "host": name, "duration_s": round(time.time() - started), "probe": declaration["probe"],
        "probe_kills": len(kills), "kill_lines": kills[:20], "failed_rounds": len(runs),
        "longest_failed_run": max(runs, default=0),
        "restarts": int(ray_lab.unit(host, worker_unit).get("NRestarts", "0")) - restarts_at_start,
        "containers_seen": len(containers), "samples_head_lost_it": lost, "samples": len(loads),
        "ray_jobs": jobs, "ray_jobs_failed": jobs_failed,
        "load_1min": {"min": min(loads), "median": round(statistics.median(loads), 2), "max": max(loads)},
        "load_at_start": uptime_start, "load_at_end": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if not kills and result["restarts"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
