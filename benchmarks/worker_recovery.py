"""How fast a supervised Ray worker recovers, measured on the running lab (head plus workers).

Needs the lab up and the Ray cluster deployed (--deploy runs testing/fleetwarden_testing/playbooks/ray_cluster.yml). For
each trial on one worker host it breaks the worker, then waits until the head sees it alive again:

  container death   `docker kill` of the worker's container.
    -> worker process running again: the new container's StartedAt minus the old one's FinishedAt (both from
       the host's dockerd clock): the entrypoint execs `ray start` at once (no setup commands declared).
    -> node registered (ALIVE) in the head: the registration time the new raylet reports to the GCS
       (start_time_ms, this machine's clock) minus the death.
    -> seen alive by the head: when the head's answer listing the new node alive came back, asked in a loop (each
       question takes about 0.7 s on an idle machine, so this is an upper bound), minus the death.
  hang              SIGSTOP of the raylet (it stays a process, but answers nothing).
    -> restarted: the new container's StartedAt minus the moment of the SIGSTOP.

Each figure is reported as the median and the max of --trials trials (at least 5) from one run, with the machine's
load average (the lab hosts are containers on this machine) at the start and the end of each trial. Where the rest
goes: "container started -> node registered" is the node's registration time in the GCS minus the container's start
(both clocks of this machine).
Usage: python benchmarks/worker_recovery.py [--deploy] [--trials 5] [--host NAME] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from fleetwarden_testing import ray_lab

# recover.yml's speed goals (docs/benchmarks.md).
GOALS = {"container death -> worker process running again": 1.5,
         "container death -> node registered (ALIVE) in the head": 8.0,
         "container death -> worker seen alive by the head": None,
         "container started -> node registered": None,
         "hang -> restarted": 5.0}


def steady(head, host, timeout=120):
    """Waits until the worker's container runs and the head sees its node alive; returns (container, node)."""
    def ready():
        info = ray_lab.container(host, ray_lab.WORKER_CONTAINER)
        node = ray_lab.alive(head).get(host.address)
        return (info, node) if info and info["running"] and node else None
    return ray_lab.wait_until(ready, timeout, interval=0.5, what=f"{host.name}'s Ray worker alive on the head")


def replaced(head, host, old, timeout=90):
    """The worker's next container and node, once the head sees the new node alive."""
    def ready():
        info = ray_lab.container(host, ray_lab.WORKER_CONTAINER)
        if not info or info["id"] == old["id"] or not info["running"]:
            return None
        node = ray_lab.alive(head).get(host.address)
        answered_at = time.time()
        fresh = node and node["start_ms"] / 1000 >= info["started"] - 1
        # The node registered before the head's answer came: an upper bound on "seen alive" (each question takes
        # 0.7 s on an idle machine, several seconds on a loaded one).
        return (info, dict(node, seen_at=answered_at)) if fresh else None
    return ray_lab.wait_until(ready, timeout, interval=0.1, what=f"{host.name}'s worker back on the head")


def container_death(head, host):
    before, _ = steady(head, host)
    killed_at = time.time()
    ray_lab.host_run(host, "docker", "kill", ray_lab.WORKER_CONTAINER, check=True)
    # The dead container lingers for the restart delay (then ExecStartPre removes it): read its end.
    died = ray_lab.container(host, before["id"]) or {}
    death = died.get("finished") or killed_at
    after, node = replaced(head, host, before)
    return {"container death -> worker process running again": after["started"] - death,
            "container death -> node registered (ALIVE) in the head": node["start_ms"] / 1000 - death,
            "container death -> worker seen alive by the head": node["seen_at"] - death,
            "container started -> node registered": node["start_ms"] / 1000 - after["started"]}


def hang(head, host):
    before, _ = steady(head, host)
    stopped_at = time.time()
    ray_lab.host_run(host, "docker", "exec", ray_lab.WORKER_CONTAINER, "pkill", "-STOP", "-x", "raylet", check=True)
    after, _ = replaced(head, host, before)
    return {"hang -> restarted": after["started"] - stopped_at}


def summarize(samples: dict[str, list[float]]) -> list[dict]:
    rows = []
    for name, values in samples.items():
        rows.append({"figure": name, "trials": len(values), "median_s": round(statistics.median(values), 2),
                     "max_s": round(max(values), 2), "goal_s": GOALS[name],
                     "values_s": [round(v, 2) for v in values]})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--host", help="the worker host to break (default: the first host of group workers)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--deploy", action="store_true",
                        help="deploy the Ray cluster first (testing/fleetwarden_testing/playbooks/ray_cluster.yml)")
    args = parser.parse_args(argv)
    if args.trials < 5:
        parser.error("--trials must be at least 5")
    hosts = ray_lab.read_inventory()
    head = next((h for h in hosts.values() if "head" in h.groups), None)
    args.host = args.host or min((h.name for h in hosts.values() if "workers" in h.groups), default=None)
    if head is None or args.host not in hosts:
        parser.error(f"no lab head or no host {args.host} in {ray_lab.INVENTORY}; bring the lab up first")
    host = hosts[args.host]
    if args.deploy:
        result = ray_lab.ansible_playbook(ray_lab.PLAYBOOKS / "ray_cluster.yml")
        if result.returncode != 0:
            print(result.stdout[-3000:], file=sys.stderr)
            return 1
    unit = f"fleetwarden-worker-{ray_lab.WORKER_CONTAINER}.service"
    ray_lab.host_run(host, "systemctl", "reset-failed", unit)
    samples: dict[str, list[float]] = {name: [] for name in GOALS}
    loads: list[float] = []
    started = time.monotonic()
    for scenario in (container_death, hang):
        for trial in range(1, args.trials + 1):
            before = os.getloadavg()[0]
            figures = scenario(head, host)
            loads += [before, os.getloadavg()[0]]
            for name, value in figures.items():
                samples[name].append(value)
            print(f"{scenario.__name__} {trial}/{args.trials} (load {before:.1f} -> {loads[-1]:.1f}): "
                  + ", ".join(f"{k.split('-> ')[1]} {v:.2f} s" for k, v in figures.items()), flush=True)
    rows = summarize(samples)
    load = {"min": min(loads), "median": round(statistics.median(loads), 1), "max": max(loads)}
    print(f"\n{args.trials} trials each on {host.name}, {time.monotonic() - started:.0f} s in all; 1-min load average "
          f"at the trials' starts and ends: median {load['median']}, {load['min']:.1f} to {load['max']:.1f}\n")
    print("| figure | median | max | goal |\n|---|---|---|---|")
    for row in rows:
        goal = f"<= {row['goal_s']:g} s" if row["goal_s"] else "-"
        print(f"| {row['figure']} | {row['median_s']:.1f} s | {row['max_s']:.1f} s | {goal} |")
    if args.json:
        args.json.write_text(json.dumps({"host": host.name, "trials": args.trials, "load_1min": load,
                                         "figures": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
