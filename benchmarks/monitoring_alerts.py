"""Fault to firing for WorkerDown on the running lab (site.yml deployed): --trials heartbeat workers are deployed on
one worker host through worker_service; each trial stops one worker's unit and times until Prometheus's
/api/v1/alerts shows WorkerDown firing for that host and worker (polled every 0.5 s). The path measured is the
product's: the collector (every 5 s in the lab), node_exporter, Prometheus's scrape and evaluation (5 s), and the
rule's `for: 30s`. Reports the median and max, with the machine's load.

Usage: python benchmarks/monitoring_alerts.py [--host NAME] [--trials 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from fleetwarden_testing import monitoring_lab as mon
from fleetwarden_testing import ray_lab

from fleetwarden.lab.inventory import MONITORING_PORTS


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="default: the first worker host")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    hosts = ray_lab.read_inventory()
    assert hosts, "no lab: fleetwarden lab up --hosts 3, then ansible-playbook site.yml"
    host = hosts[args.host or sorted(h for h in hosts if "workers" in hosts[h].groups)[0]]
    prometheus = mon.published_url(mon.monitoring_host(hosts), MONITORING_PORTS["prometheus"])
    names = [f"fwmon-alert-{i}" for i in range(1, args.trials + 1)]
    mon.deploy_workers(host, [dict(mon.probe_worker(), name=name) for name in names])
    trials = []
    loads = [os.getloadavg()]
    try:
        for name in names:
            up = f'fleetwarden_worker_up{{fleet_host="{host.name}",worker="{name}"}}'
            ray_lab.wait_until(lambda q=up: mon.series_value(prometheus, q) == 1, 120, interval=1, what=f"{name} up")
            awaited = {name: {"alertname": "WorkerDown", "fleet_host": host.name, "worker": name}}
            mon.wait_inactive(prometheus, awaited)
            with mon.FiringWatch(prometheus, awaited) as watch:
                since = time.time()
                ray_lab.host_run(host, "systemctl", "stop", f"fleetwarden-worker-{name}.service", check=True)
                _, seconds = watch.wait(name, since)
            trials.append(round(seconds, 1))
            loads.append(os.getloadavg())
            print(f"{name}: fault to firing {seconds:.1f} s (load {loads[-1][0]:.2f})", flush=True)
    finally:
        mon.deploy_workers(host, [{"name": name, "state": "absent"} for name in names])
    report = {"host": host.name, "trials_s": trials, "median_s": statistics.median(trials), "max_s": max(trials),
              "loadavg_1m_5m_15m": loads}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
