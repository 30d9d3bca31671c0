#!/usr/bin/env python3
"""Per-fault recovery time on what site.yml deploys: the lab as `make lab` leaves it, the drill's faults.

Usage: .venv/bin/python benchmarks/recovery_drill.py [--trials 3] [--faults sigkill,oom,...] [--json FILE]
Needs the running lab (`make lab`); it is left as it was found. The faults and their checks are those of
tests/integration/test_site_drill.py (helpers in testing/fleetwarden_testing/site_lab.py):

- sigkill, oom, exit_139, disk_full: the drill worker (inventory/lab) dies of the fault at every start until
  systemd's restarts run out (disk_full: it fills its 16 MiB /scratch tmpfs until ENOSPC); then recover.yml.
  Time: recover.yml's wall time, which includes the settle window (recovery_settle_s, 15 s): an alert's time
  from its call to a verified-healthy worker.
- dockerd_stopped: dockerd stopped on a worker host; then recover.yml. Time: recover.yml's wall time.
- container_killed: `docker kill` of a Ray worker container. Time: until systemd has a new container and the
  head lists its new node ALIVE (no recover.yml needed).
- mount_killed: kill -9 of the lab mount's gcsfuse (stand-in) process. Time: until the Ray worker that uses it
  runs a new container that sees the restored mount, and the head lists it ALIVE.
- head_restarted: the Ray head's unit restarted. Time: until the head and every Ray worker are ALIVE again.

A trial counts only when its checks pass (cause named, healthy, ALIVE); the table gives median and max.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The collection from this checkout (as tests/conftest.py puts it), for the names site_lab reads from module_utils.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collections"))

from fleetwarden_testing import ray_lab
from fleetwarden_testing.site_lab import (
    DRILL,
    DRILL_FAULT,
    EXHAUSTED,
    RAY_HEAD,
    RAY_WORKER,
    SiteLab,
    exhaust,
    kill_mount_process,
    ray_worker_back,
    unit_of,
)

FAULTS = ("sigkill", "oom", "exit_139", "disk_full", "dockerd_stopped", "container_killed", "mount_killed",
          "head_restarted")


def recovered_by_playbook(lab: SiteLab, fault: str) -> dict:
    host = lab.worker
    lab.wait_calm()
    lab.reset_worker(host, DRILL)
    lab.wait_calm()
    if fault in EXHAUSTED:
        fault_file, first_death, cause = EXHAUSTED[fault]
        exhaust(lab, host, fault_file, first_death)
        lab.sh(host, f"rm -f {DRILL_FAULT}")
        worker = DRILL
    else:
        lab.sh(host, "systemctl stop docker.socket docker.service")
        cause, worker = "daemon_down", RAY_WORKER
    run, report, seconds = lab.recover(host)
    entry = next((e for e in (report or {}).get("workers", []) if e["worker"] == worker), {})
    ok = run.returncode == 0 and entry.get("cause") == cause and entry.get("healthy") is True
    if worker == RAY_WORKER:
        ok = ok and host.address in lab.alive()
    outcome = {"ok": ok, "cause": entry.get("cause"), "seconds": round(seconds, 1),
               "settled_s": (entry.get("verification") or {}).get("settled_s")}
    if not ok:
        outcome["output_tail"] = run.stdout[-3000:]
    return outcome


def healed_by_systemd(lab: SiteLab, fault: str) -> dict:
    host = lab.worker
    lab.wait_calm()
    old_container, old_node = ray_lab.container(host, RAY_WORKER), lab.alive()[host.address]
    started = time.monotonic()
    try:
        if fault == "container_killed":
            lab.sh(host, f"docker kill {RAY_WORKER}")
            ray_lab.wait_until(lambda: ray_worker_back(lab, host, old_container, old_node), 180, interval=0.25,
                               what="Ray worker back")
        elif fault == "mount_killed":
            kill_mount_process(lab, host)
            ray_lab.wait_until(lambda: ray_worker_back(lab, host, old_container, old_node, mount=True), 180,
                               interval=0.25, what="Ray worker back with the mount")
        else:
            before = {a: n["id"] for a, n in lab.alive().items()}
            lab.sh(lab.head, f"systemctl restart {unit_of(RAY_HEAD)}")

            def all_new():
                nodes = lab.whole()
                return nodes and all(nodes[a]["id"] != before.get(a) for a in nodes if a in before)
            ray_lab.wait_until(all_new, 300, interval=0.5, what="every node back ALIVE")
    except AssertionError as exc:
        return {"ok": False, "seconds": round(time.monotonic() - started, 1), "error": str(exc)}
    return {"ok": True, "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--json", type=Path, help="also write the raw trials here")
    args = parser.parse_args()
    faults = [f for f in FAULTS if f in args.faults.split(",")]
    lab = SiteLab(ray_lab.read_inventory(), Path(tempfile.mkdtemp(prefix="fw-bench-drill-")))
    results: dict[str, list[dict]] = {}
    loads = []
    started = time.monotonic()
    try:
        for fault in faults:
            results[fault] = []
            for _ in range(args.trials):
                loads.append(Path("/proc/loadavg").read_text().split()[0])
                by_playbook = fault in EXHAUSTED or fault == "dockerd_stopped"
                outcome = recovered_by_playbook(lab, fault) if by_playbook else healed_by_systemd(lab, fault)
                results[fault].append(outcome)
                print(f"{fault}: {outcome}", file=sys.stderr, flush=True)
    finally:
        for host in lab.workers:
            lab.reset_worker(host, DRILL)
    print("| Fault | Healed by | Passed | median (s) | max (s) |")
    print("|---|---|---|---|---|")
    for fault in faults:
        trials = results.get(fault, [])
        good = [t for t in trials if t["ok"]] or trials
        how = "recover.yml (wall time, 15 s settle included)" if fault in EXHAUSTED or fault == "dockerd_stopped" \
            else "systemd (fault to ALIVE in the head)"
        print(f"| {fault} | {how} | {sum(t['ok'] for t in trials)}/{len(trials)} "
              f"| {statistics.median(t['seconds'] for t in good):.1f} | {max(t['seconds'] for t in good):.1f} |")
    print(f"\ntotal wall time {time.monotonic() - started:.0f} s; load average (1 min) at each trial's start: "
          f"{min(loads)} to {max(loads)}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(t["ok"] for trials in results.values() for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main() if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
             else "no docker engine answers")
