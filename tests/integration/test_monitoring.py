"""Monitoring on the real lab, through Prometheus's HTTP API: every node target up with the rules loaded, and three
faults injected at once on three hosts (a worker's unit stopped, docker's root filled, the collector stopped), each
of which must fire its alert labelled with the right host (and worker). Fault-to-firing times are printed and
written to reports/monitoring/fault-to-firing.json.

The lab scrapes and evaluates every 5 s and the collector writes every 5 s (inventory/lab/group_vars/all/
monitoring.yml). The lab's docker root is a volume on this machine's shared disk, so "full" is made by lowering the
collector's threshold to 1 GiB under the free space and writing 2 GiB (real bytes, real statvfs), not by filling
the disk; the threshold and the file are put back afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fleetwarden_testing import monitoring_lab as mon
from fleetwarden_testing import ray_lab

from fleetwarden.lab.inventory import MONITORING_PORTS

pytestmark = pytest.mark.lab

ALERTS = ("WorkerDown", "WorkerRestartsExhausted", "WorkerRestartLoop", "WorkerHeartbeatStale", "ContainerOOMKilled",
          "DockerDown", "DiskAlmostFull", "MountLost", "GPUMemoryHigh", "GPUUncorrectableECC", "GPUXid",
          "MetricsStale")
REPORT = ray_lab.REPO / "reports" / "monitoring" / "fault-to-firing.json"
GIB = 1 << 30


@pytest.fixture(scope="module")
def lab(lab_baseline):
    hosts = lab_baseline
    ray_lab.ensure_worker_image(hosts)
    head = mon.monitoring_host(hosts)
    return hosts, head, mon.published_url(head, MONITORING_PORTS["prometheus"])


def test_every_node_target_is_up_and_every_rule_loaded(lab):
    hosts, _, prometheus = lab

    def node_targets():
        targets = mon.api(prometheus, "/api/v1/targets", state="active")["activeTargets"]
        return {t["labels"]["fleet_host"]: t["health"] for t in targets if t["labels"]["job"] == "node"}

    def fresh_collectors():
        return {r["metric"]["fleet_host"] for r in mon.query(
            prometheus, "time() - fleetwarden_collector_last_run_timestamp_seconds < 30")}

    # Up and fresh within a few scrapes (a test run just before may have restarted a collector, or the lab).
    ray_lab.wait_until(lambda: node_targets() == dict.fromkeys(hosts, "up"), 60, interval=2,
                       what="every node target up")
    rules = [r["name"] for g in mon.api(prometheus, "/api/v1/rules", type="alert")["groups"] for r in g["rules"]]
    assert set(rules) == set(ALERTS)
    # every host's collector reports, and every worker declared on a host (Ray head and workers) is up
    ray_lab.wait_until(lambda: fresh_collectors() == set(hosts), 60, interval=2, what="every collector fresh")
    up = {(r["metric"]["fleet_host"], r["metric"]["worker"]): r["value"][1]
          for r in mon.query(prometheus, "fleetwarden_worker_up")}
    for host in hosts.values():
        declared = ray_lab.host_run(host, "sh", "-c", "ls /etc/fleetwarden/workers/*.json").stdout.split()
        for path in declared:
            assert up.get((host.name, Path(path).stem)) == "1", (host.name, path, up)
    # a lab host has no GPU: no GPU series, and no failed source
    assert mon.query(prometheus, "fleetwarden_gpu_info") == []
    assert mon.query(prometheus, "fleetwarden_collector_source_up == 0") == []


def test_lab_status_prints_the_published_urls_and_they_answer(lab):
    _, head, prometheus = lab
    alertmanager = mon.published_url(head, MONITORING_PORTS["alertmanager"])
    name = head.name.removesuffix("-head")  # the lab's hosts are NAME-head, NAME-worker-N
    status = subprocess.run([sys.executable, "-m", "fleetwarden.cli", "--project-dir", str(ray_lab.REPO), "lab",
                             "--name", name, "status"], capture_output=True, text=True, check=True).stdout
    assert f"prometheus: {prometheus}\n" in status and f"alertmanager: {alertmanager}\n" in status, status
    for url in (prometheus + "/-/ready", alertmanager + "/-/ready"):
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback URL of the lab
            assert response.status == 200, url


@pytest.fixture
def faults(lab):
    """Three faults on three hosts at once; yields {alert: (host, fault time), "watch": FiringWatch}; puts every
    host back."""
    hosts, head, prometheus = lab
    workers = sorted(h for h in hosts if "workers" in hosts[h].groups)
    worker_host, disk_host, stale_host = hosts[workers[0]], hosts[workers[1]], head
    mon.deploy_workers(worker_host, [mon.probe_worker()])
    probe_up = f'fleetwarden_worker_up{{fleet_host="{worker_host.name}",worker="{mon.PROBE_WORKER}"}}'
    ray_lab.wait_until(lambda: mon.series_value(prometheus, probe_up) == 1, 90, interval=1,
                       what="the probe worker up in Prometheus")
    config = ray_lab.host_run(disk_host, "cat", mon.METRICS_CONFIG, check=True).stdout
    docker_root = f'{{fleet_host="{disk_host.name}",filesystem="docker_root"}}'
    free = mon.series_value(prometheus, "fleetwarden_filesystem_avail_bytes" + docker_root)
    assert free and free > 4 * GIB, f"docker's root on {disk_host.name} has {free} bytes free; the test needs 4 GiB"
    lowered = json.loads(config)
    for fs in lowered["filesystems"]:
        if fs["filesystem"] == "docker_root":
            fs.update(min_free_ratio=0, min_free_bytes=int(free - GIB))
    ray_lab.host_run(disk_host, "sh", "-c", f"cat > {mon.METRICS_CONFIG}", input_text=json.dumps(lowered),
                     check=True)
    ray_lab.host_run(disk_host, "systemctl", "restart", mon.COLLECTOR, check=True)
    ray_lab.wait_until(lambda: mon.series_value(prometheus, "fleetwarden_filesystem_avail_min_bytes" + docker_root)
                       == int(free - GIB), 60, interval=1, what="the lowered threshold in Prometheus")
    awaited = {"WorkerDown": {"alertname": "WorkerDown", "fleet_host": worker_host.name, "worker": mon.PROBE_WORKER},
               "DiskAlmostFull": {"alertname": "DiskAlmostFull", "fleet_host": disk_host.name,
                                  "filesystem": "docker_root"},
               "MetricsStale": {"alertname": "MetricsStale", "fleet_host": stale_host.name}}
    mon.wait_inactive(prometheus, awaited)
    try:
        with mon.FiringWatch(prometheus, awaited) as watch:
            started = {"watch": watch, "WorkerDown": (worker_host, time.time())}
            ray_lab.host_run(worker_host, "systemctl", "stop", f"fleetwarden-worker-{mon.PROBE_WORKER}.service",
                             check=True)
            started["DiskAlmostFull"] = (disk_host, time.time())
            ray_lab.host_run(disk_host, "fallocate", "-l", str(2 * GIB), mon.FILL_FILE, check=True)
            started["MetricsStale"] = (stale_host, time.time())
            ray_lab.host_run(stale_host, "systemctl", "stop", mon.COLLECTOR, check=True)
            yield started
    finally:
        ray_lab.host_run(stale_host, "systemctl", "start", mon.COLLECTOR)
        ray_lab.host_run(disk_host, "rm", "-f", mon.FILL_FILE)
        ray_lab.host_run(disk_host, "sh", "-c", f"cat > {mon.METRICS_CONFIG}", input_text=config)
        ray_lab.host_run(disk_host, "systemctl", "restart", mon.COLLECTOR)
        mon.deploy_workers(worker_host, [{"name": mon.PROBE_WORKER, "state": "absent"}])


def _record(alert, host, seconds):
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    data[alert] = {"host": host, "fault_to_firing_s": round(seconds, 1)}
    REPORT.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{alert} on {host}: fault to firing {seconds:.1f} s")


def test_three_faults_on_three_hosts_fire_each_its_alert_with_its_host(lab, faults):
    """One test for the three faults injected at once: its fixture ends them, so that no other test of this module
    runs while they last, in whatever order the tests run."""
    _, _, prometheus = lab
    # a stopped worker's unit: WorkerDown, with its host and worker
    host, since = faults["WorkerDown"]
    alert, seconds = faults["watch"].wait("WorkerDown", since)
    assert alert["labels"]["remediate"] == "true" and alert["labels"]["severity"] == "critical"
    assert host.name in alert["annotations"]["summary"] and mon.PROBE_WORKER in alert["annotations"]["summary"]
    assert not mon.alerts(prometheus, "WorkerDown", worker="ray-worker")  # the Ray workers stay up
    _record("WorkerDown", host.name, seconds)
    # docker's root filled: DiskAlmostFull
    host, since = faults["DiskAlmostFull"]
    alert, seconds = faults["watch"].wait("DiskAlmostFull", since)
    assert alert["labels"]["remediate"] == "true"
    _record("DiskAlmostFull", host.name, seconds)
    # a stopped collector: MetricsStale, of that host only
    host, since = faults["MetricsStale"]
    alert, seconds = faults["watch"].wait("MetricsStale", since)
    assert alert["labels"]["remediate"] == "false"
    assert not mon.alerts(prometheus, "MetricsStale", fleet_host=faults["WorkerDown"][0].name)
    _record("MetricsStale", host.name, seconds)
