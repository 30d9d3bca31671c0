#!/usr/bin/env python3
"""Alert to recovery, end to end: fault -> healthy and fault -> resolved, through Prometheus,
Alertmanager, the recovery receiver and recover.yml, for the three faults of tests/integration/test_receiver_e2e.py.

Usage: .venv/bin/python benchmarks/receiver_e2e.py [--trials 3] [--faults unit_stopped,...] [--json FILE]
Needs the running lab (`make lab`), whose receiver is live; it is switched live through its role first if it is
not. The faults and what is timed: testing/fleetwarden_testing/alert_e2e.py.

Columns (seconds, median / max over the trials):
- fault->firing: Prometheus lists the fault's remediating alert as firing (scrape, rule `for:`);
- firing->notified: the receiver's `started` row (Alertmanager's notification recorded);
- notified->run: the run starts (ansible-runner), from the run's duration and when it was seen finished;
- run: recover.yml's duration, with its settle window (recovery_settle_s);
- fault->back: the worker's unit active, a new container, a new node ALIVE in the Ray head;
- fault->healthy: back plus the settle window (it stayed so: checked until the alert resolved);
- fault->verified: the run finished (recover.yml verified it healthy through the settle window);
- fault->resolved: the receiver's `resolved` row (the time to recover it records is endsAt - startsAt).
The restarts_exhausted fault's time starts when systemd gave up; its crash loop (max_per_hour + 1 starts) is
given apart. Each trial runs on a quiet lab (no remediating alert active) after the host's cooldown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fleetwarden_testing.alert_e2e import FAULTS, Lab

REPO = Path(__file__).resolve().parents[1]

STEPS = (("fault->firing", "fault_to_firing"), ("firing->notified", "firing_to_notified"),
         ("notified->run", "notified_to_run_start"), ("run", "run_duration"), ("fault->back", "fault_to_back"),
         ("fault->healthy", "fault_to_healthy"), ("fault->verified", "fault_to_run_verified"),
         ("fault->resolved", "fault_to_resolved"))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--json", type=Path, help="also write every trial's timeline here")
    args = parser.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        parser.error(f"--faults: unknown {unknown[0]!r}; choose from {', '.join(FAULTS)}")

    lab = Lab(REPO)
    names = [h.name for h in lab.workers]
    print("load before:", uptime(), flush=True)
    results: dict[str, list[dict]] = {f: [] for f in faults}
    lab.quiet()
    lab.receiver.calm(names)
    if lab.receiver.settings().get("dry_run"):
        lab.set_live(True)
    try:
        for trial in range(args.trials):
            for index, fault in enumerate(faults):
                host = lab.workers[(trial + index) % len(lab.workers)]
                lab.quiet()
                lab.receiver.calm([host.name])
                lab.receiver.wait_cooled(host.name)
                lab.forget_history(host)
                timeline = lab.run_fault(fault, host)
                ok = bool(timeline.run and timeline.run.get("run_status") == "successful"
                          and timeline.stayed_healthy() and timeline.resolved_row)
                steps = timeline.breakdown()
                results[fault].append({"host": host.name, "ok": ok, **steps,
                                       "crash_loop_s": timeline.injected.get("crash_loop_s"),
                                       "alerts": timeline.alertnames, "load": uptime()})
                print(f"trial {trial + 1} {fault} on {host.name}: ok={ok} {steps}", flush=True)
    finally:
        lab.receiver.calm(names)
    print("load after:", uptime())

    print(f"\n{'fault':<20} {'n':>2}  " + "  ".join(f"{label:>17}" for label, _ in STEPS))
    for fault, trials in results.items():
        good = [t for t in trials if t["ok"]]
        cells = []
        for _, key in STEPS:
            values = [t[key] for t in good if t[key] is not None]
            cells.append(f"{statistics.median(values):>8.1f} /{max(values):>7.1f}" if values else f"{'-':>17}")
        print(f"{fault:<20} {len(good):>2}  " + "  ".join(cells))
        loops = [t["crash_loop_s"] for t in good if t["crash_loop_s"]]
        if loops:
            print(f"{'':<20}     crash loop before systemd gave up: median {statistics.median(loops):.0f} s, "
                  f"max {max(loops):.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "when": time.time()}, indent=2))
    return 0 if all(t["ok"] for trials in results.values() for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
