#!/usr/bin/env python3
"""recover.yml's own time per fault, and on a healthy host, on the lab as site.yml deploys it.

Usage: .venv/bin/python benchmarks/recover_speed.py [--trials 5] [--cases healthy,unit_stopped,sigkill]
           [--baseline DIR] [--json FILE]
Needs the running lab (`make lab`); it is left as it was found. The faults and their injection are those of
tests/integration/test_site_drill.py (helpers in tests/integration/site_lab.py):

- healthy: nothing wrong; recover.yml must report changed=0 and every worker `running`.
- unit_stopped: `systemctl stop` of the Ray worker's unit; recover.yml recreates it, it settles, ALIVE in the head.
- sigkill: the drill worker SIGKILLed at every start until systemd's restarts run out (the time to that point is
  not counted); recover.yml diagnoses `sigkill` from the dead container and recreates it.
- dockerd_stopped: dockerd stopped; live-restore keeps both workers on the host (Ray worker and drill) running,
  recover.yml starts dockerd and verifies both (settled, the Ray worker ALIVE) without recreating them.
- dockerd_stopped_worker_killed: dockerd stopped and the Ray worker's container SIGKILLed during the outage; once
  dockerd is back the killed one is replaced, the drill worker kept, both settled.

Per trial: `total`, recover.yml's wall time (from the alert's call to a written report, the settle window
included), and `outside_settle`, the total less the settle window as the host report's `verification` measured
it (the longest `settled_s` of the host's workers: they settle in one parallel call since this change, so the
window is paid once per host). recovery_settle_s stays 15 s: "healthy" means healthy through it.

--baseline DIR runs the same trials, interleaved, with recover.yml of another checkout (e.g. `git archive main`
extracted into DIR, with the collections link): the figures of both side by side, under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
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
    RAY_WORKER,
    SiteLab,
    exhaust,
    recap_of,
    unit_of,
)

REPO = Path(__file__).resolve().parents[1]
CASES = ("healthy", "unit_stopped", "sigkill", "dockerd_stopped", "dockerd_stopped_worker_killed")


def recover(checkout: Path, lab: SiteLab, host: ray_lab.LabHost, report_dir: Path):
    """recover.yml of `checkout` on one host, as an alert runs it: the run, its host report, its wall time."""
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(ray_lab.INVENTORY),
            str(checkout / "playbooks" / "recover.yml"), "-e", f"target={host.name}", "-e", f"report_dir={report_dir}"]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="true",
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    before = set(report_dir.glob("*"))
    started = time.monotonic()
    run = subprocess.run(argv, cwd=checkout, capture_output=True, text=True, timeout=900, env=env, check=False)
    elapsed = time.monotonic() - started
    new = sorted(set(report_dir.glob("*")) - before)
    path = new[-1] / f"{host.name}.json" if new else None
    report = json.loads(path.read_text()) if path and path.exists() else None
    return run, report, elapsed


# {worker: container ID} that the trial's recover.yml must leave running (dockerd's outage, live-restore).
KEPT: dict[str, str] = {}


def inject(lab: SiteLab, host: ray_lab.LabHost, case: str) -> dict[str, str]:
    """Makes the fault; returns {worker: the cause recover.yml must name} for the workers it must heal."""
    KEPT.clear()
    lab.wait_calm()
    lab.reset_worker(host, DRILL)
    lab.wait_calm()
    if case == "unit_stopped":
        lab.sh(host, f"systemctl stop {unit_of(RAY_WORKER)}")
        return {RAY_WORKER: ""}  # any cause but running (the unit stopped its container)
    if case == "sigkill":
        fault_file, first_death, cause = EXHAUSTED["sigkill"]
        exhaust(lab, host, fault_file, first_death)
        lab.sh(host, f"rm -f {DRILL_FAULT}")
        return {DRILL: cause}
    if case in ("dockerd_stopped", "dockerd_stopped_worker_killed"):
        # The containers live-restore must keep: both, or the drill worker alone when the Ray worker is killed.
        kept = (DRILL,) if case == "dockerd_stopped_worker_killed" else (DRILL, RAY_WORKER)
        before = {name: ray_lab.container(host, name) for name in (DRILL, RAY_WORKER)}
        KEPT.clear()
        KEPT.update({name: before[name]["id"] for name in kept})
        kill = f" && kill -KILL {before[RAY_WORKER]['pid']}" if case == "dockerd_stopped_worker_killed" else ""
        lab.sh(host, "systemctl stop docker.socket docker.service" + kill)
        return {RAY_WORKER: "daemon_down", DRILL: "daemon_down"}
    return {}


def trial(checkout: Path, lab: SiteLab, case: str, report_dir: Path) -> dict:
    host = lab.worker
    expected = inject(lab, host, case)
    load = Path("/proc/loadavg").read_text().split()[0]
    run, report, seconds = recover(checkout, lab, host, report_dir)
    entries = {e["worker"]: e for e in (report or {}).get("workers", [])}
    ok = run.returncode == 0 and bool(entries)
    if case == "healthy":
        ok = ok and recap_of(run, host).get("changed") == 0 and all(e["cause"] == "running" for e in entries.values())
    for worker, cause in expected.items():
        entry = entries.get(worker, {})
        ok = ok and entry.get("healthy") is True and entry.get("cause") != "running" and (
            not cause or entry.get("cause") == cause)
    if RAY_WORKER in expected:
        ok = ok and host.address in lab.alive()
    ok = ok and all((ray_lab.container(host, name) or {}).get("id") == container for name, container in KEPT.items())
    settled = [(entries.get(w, {}).get("verification") or {}).get("settled_s") or 0 for w in expected]
    window = max(settled, default=0)
    outcome = {"ok": ok, "load": float(load), "total": round(seconds, 1), "settle": window,
               "outside_settle": round(seconds - window, 1),
               "causes": {w: entries.get(w, {}).get("cause") for w in expected}}
    if not ok:
        outcome["output_tail"] = run.stdout[-3000:]
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--cases", default="healthy,unit_stopped,sigkill")
    parser.add_argument("--baseline", type=Path, help="another checkout whose recover.yml to time beside this one")
    parser.add_argument("--json", type=Path, help="also write the raw trials here")
    args = parser.parse_args()
    cases = [c for c in CASES if c in args.cases.split(",")]
    checkouts = {"this": REPO, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    lab = SiteLab(ray_lab.read_inventory(), Path(tempfile.mkdtemp(prefix="fw-bench-recover-")))
    report_dir = lab.report_dir
    results: dict[str, dict[str, list[dict]]] = {name: {c: [] for c in cases} for name in checkouts}
    started = time.monotonic()
    try:
        for case in cases:
            for _ in range(args.trials):
                for name, checkout in checkouts.items():  # interleaved: both see the same load
                    outcome = trial(checkout, lab, case, report_dir)
                    results[name][case].append(outcome)
                    print(f"{name} {case}: {outcome}", file=sys.stderr, flush=True)
    finally:
        for host in lab.workers:
            lab.reset_worker(host, DRILL)
    print("| code | case | passed | total median / max (s) | outside the settle median / max (s) | load (1 min) |")
    print("|---|---|---|---|---|---|")
    for name in checkouts:
        for case in cases:
            trials = results[name][case]
            good = [t for t in trials if t["ok"]] or trials
            loads = [t["load"] for t in trials]
            print(f"| {name} | {case} | {sum(t['ok'] for t in trials)}/{len(trials)} "
                  f"| {statistics.median(t['total'] for t in good):.1f} / {max(t['total'] for t in good):.1f} "
                  f"| {statistics.median(t['outside_settle'] for t in good):.1f} / "
                  f"{max(t['outside_settle'] for t in good):.1f} | {min(loads):.1f} to {max(loads):.1f} |")
    print(f"\ntotal wall time {time.monotonic() - started:.0f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(t["ok"] for per in results.values() for trials in per.values() for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main() if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
             else "no docker engine answers")
