"""What fleetwarden's monitoring costs, measured on the running lab (site.yml deployed):

  collector run       wall time and CPU (the collector's own plus the docker/systemctl/journalctl it runs, and
                      dockerd's CPU while it answers) of one `fleetwarden-metrics --once` on a host with 10
                      workers (--workers heartbeat workers deployed through worker_service next to what is there).
  exposition size     bytes of each host's fleetwarden.prom, and of its whole node_exporter scrape.
  monitoring CPU      CPU seconds per second of each monitoring service on every lab host over --window s
                      (utime+stime+cutime+cstime of the unit's main process, from /proc), and the machine's load
                      average with monitoring running and then with it stopped on every lab host.

Usage: python benchmarks/monitoring_collector.py [--host NAME] [--workers 10] [--runs 10] [--window 60]
       [--json out.json] [--keep-workers]
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

SERVICES = ("fleetwarden-metrics.service", "prometheus-node-exporter.service", "prometheus.service",
            "prometheus-alertmanager.service")
RUN_ONCE = r"""
import json, os, resource, subprocess, sys, time
def dockerd_ticks():
    pid = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()[0]
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
tick = os.sysconf("SC_CLK_TCK")
d0, t0 = dockerd_ticks(), time.monotonic()
done = subprocess.run([sys.executable, "/usr/local/libexec/fleetwarden/fleetwarden-metrics", "--once"])
wall = time.monotonic() - t0
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": done.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "dockerd_cpu_s": (dockerd_ticks() - d0) / tick}))
"""
PROC_CPU = r"""
import json, os, subprocess, sys
tick = os.sysconf("SC_CLK_TCK")
out = {}
for unit in sys.argv[1:]:
    pid = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", unit], capture_output=True,
                         text=True).stdout.strip()
    if pid and pid != "0":
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        out[unit] = sum(int(f) for f in fields[11:15]) / tick
print(json.dumps(out))
"""


def load():
    return os.getloadavg()


def median_max(values):
    return {"median": round(statistics.median(values), 4), "max": round(max(values), 4), "n": len(values)}


def collector_runs(host, runs):
    results = []
    for _ in range(runs):
        done = ray_lab.host_run(host, "python3", "-", input_text=RUN_ONCE, timeout=120, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        time.sleep(1)
    assert all(r["rc"] == 0 for r in results), results
    return {key: median_max([r[key] for r in results]) for key in ("wall_s", "cpu_s", "dockerd_cpu_s")}


def sizes(hosts):
    out = {}
    for host in hosts.values():
        textfile = ray_lab.host_run(host, "stat", "-c", "%s", "/var/lib/prometheus/node-exporter/fleetwarden.prom",
                                    check=True).stdout.strip()
        scrape = ray_lab.host_run(host, "sh", "-c", f"curl -s http://{host.address}:9100/metrics | wc -c",
                                  check=True).stdout.strip()
        series = ray_lab.host_run(host, "sh", "-c", "grep -vc '^#' /var/lib/prometheus/node-exporter/fleetwarden.prom",
                                  check=True).stdout.strip()
        out[host.name] = {"fleetwarden_prom_bytes": int(textfile), "fleetwarden_series": int(series),
                          "node_exporter_scrape_bytes": int(scrape)}
    return out


def service_cpu(hosts, window):
    def snapshot():
        return {name: json.loads(ray_lab.host_run(h, "python3", "-", *SERVICES, input_text=PROC_CPU,
                                                  check=True).stdout) for name, h in hosts.items()}
    before = snapshot()
    time.sleep(window)
    after = snapshot()
    return {name: {unit: round((after[name][unit] - before[name].get(unit, 0)) / window, 4)
                   for unit in after[name] if unit in before[name]} for name in hosts}


def load_with_and_without(hosts, window):
    time.sleep(window)
    running = load()
    for host in hosts.values():
        ray_lab.host_run(host, "systemctl", "stop", *SERVICES)
    try:
        time.sleep(window)
        stopped = load()
    finally:
        for host in hosts.values():
            ray_lab.host_run(host, "systemctl", "start", *SERVICES)
    return {"loadavg_1m_5m_15m_running": running, "loadavg_1m_5m_15m_stopped": stopped}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="the host for the 10-worker collector run (default: the first worker host)")
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-workers", action="store_true")
    args = parser.parse_args()
    hosts = ray_lab.read_inventory()
    assert hosts, "no lab: fleetwarden lab up --hosts 3, then ansible-playbook site.yml"
    host = hosts[args.host or sorted(h for h in hosts if "workers" in hosts[h].groups)[0]]
    present = len(ray_lab.host_run(host, "sh", "-c", "ls /etc/fleetwarden/workers/*.json").stdout.split())
    extra = [dict(mon.probe_worker(), name=f"fwmon-bench-{i}") for i in range(max(0, args.workers - present))]
    report = {"host": host.name, "load_start": load()}
    mon.deploy_workers(host, extra)
    try:
        declared = len(ray_lab.host_run(host, "sh", "-c", "ls /etc/fleetwarden/workers/*.json").stdout.split())
        report["workers_on_host"] = declared
        time.sleep(15)  # the new workers' start period
        report["collector_run"] = collector_runs(host, args.runs)
        report["exposition"] = sizes(hosts)
    finally:
        if not args.keep_workers:
            mon.deploy_workers(host, [{"name": w["name"], "state": "absent"} for w in extra])
    report["service_cpu_s_per_s"] = service_cpu(hosts, args.window)
    report.update(load_with_and_without(hosts, args.window))
    report["load_end"] = load()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
