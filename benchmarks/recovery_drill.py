#!/usr/bin/env python3
"""Per-fault recovery time of playbooks/recover.yml on a lab of its own (the fault drill's faults).

Usage: .venv/bin/python benchmarks/recovery_drill.py [--trials 3] [--faults sigkill,oom,...] [--json FILE]
A lab named `fwbench` is brought up in a temporary project directory (a running lab is untouched), set up
by tests/integration/drill/setup.yml, and brought down at the end.

For each fault and trial: wait until the workers are healthy, clear the OOM history (so three OOM trials
are not a repeated OOM), inject the fault, wait until the worker's container is dead, run recover.yml and
check the outcome. Two times per trial:
- recover: the wall time of `ansible-playbook recover.yml`, diagnosis to verified health, what an alert pays;
- fault to healthy: from the injection until recover.yml has verified the worker healthy.
A trial counts only if recover.yml succeeded, named the expected cause, and the worker is healthy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.drill.faults import FAULTS, WORKER, Drill, unexpected_changes, wait_until


def trial(drill: Drill, fault) -> dict:
    drill.wait_healthy()
    drill.reset_history()
    before = drill.snapshot()
    injected = time.monotonic()
    fault.inject(drill)
    if fault.kills_worker:
        wait_until(lambda: drill.container_state(WORKER) != "running", 60, f"{fault.name}: worker dead")
    run, report, seconds = drill.recover()
    fault_to_healthy = time.monotonic() - injected
    entry = drill.entry(report) if report else {}
    result = {"before": before, "after": drill.snapshot(), "fault": fault}
    ok = (run.returncode == 0 and entry.get("cause") == fault.cause and entry.get("healthy") is True
          and not unexpected_changes(result))
    outcome = {"ok": ok, "cause": entry.get("cause"), "recover_s": round(seconds, 1),
               "fault_to_healthy_s": round(fault_to_healthy, 1)}
    if not ok:
        outcome["output_tail"] = run.stdout[-3000:]
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--faults", default=",".join(f.name for f in FAULTS))
    parser.add_argument("--json", type=Path, help="also write the raw trials here")
    args = parser.parse_args()
    wanted = args.faults.split(",")
    faults = [f for f in FAULTS if f.name in wanted]
    drill = Drill(Path(tempfile.mkdtemp(prefix="fw-bench-drill-")), name="fwbench")
    results: dict[str, list[dict]] = {}
    started = time.monotonic()
    try:
        drill.up()
        for fault in faults:
            results[fault.name] = []
            for _ in range(args.trials):
                outcome = trial(drill, fault)
                results[fault.name].append(outcome)
                print(f"{fault.name}: {outcome}", file=sys.stderr, flush=True)
    finally:
        drill.down()
    print("| Fault | Cause | Passed | recover.yml median (s) | max (s) | fault to healthy median (s) |")
    print("|---|---|---|---|---|---|")
    for fault in faults:
        trials = results.get(fault.name, [])
        good = [t for t in trials if t["ok"]] or trials
        print(f"| {fault.name} | {fault.cause} | {sum(t['ok'] for t in trials)}/{len(trials)} "
              f"| {statistics.median(t['recover_s'] for t in good):.1f} | {max(t['recover_s'] for t in good):.1f} "
              f"| {statistics.median(t['fault_to_healthy_s'] for t in good):.1f} |")
    print(f"\ntotal wall time {time.monotonic() - started:.0f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(t["ok"] for trials in results.values() for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
