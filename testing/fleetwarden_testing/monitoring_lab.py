"""Helpers for the monitoring tests and benchmarks on the running lab: Prometheus's HTTP API (published on
loopback by `fleetwarden lab up`), a test worker deployed through fleetwarden.fleet.worker_service, and faults."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime

from fleetwarden_testing import ray_lab

PROBE_WORKER = "fwmon-probe"
HEARTBEAT_LOOP = "while :; do touch /tmp/heartbeat; sleep 1; done"
FILL_FILE = "/var/lib/docker/fwmon-fill"
METRICS_CONFIG = "/etc/fleetwarden/metrics.json"
COLLECTOR = "fleetwarden-metrics.service"


def monitoring_host(hosts: dict[str, ray_lab.LabHost]) -> ray_lab.LabHost:
    found = [h for h in hosts.values() if "monitoring" in h.groups]
    assert len(found) == 1, f"the lab inventory must have one host in group monitoring, has {found}"
    return found[0]


published_url = ray_lab.published_url  # one home: fleetwarden_testing.ray_lab


def api(base: str, path: str, **params) -> dict:
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback URL of the lab
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def query(base: str, promql: str) -> list[dict]:
    return api(base, "/api/v1/query", query=promql)["result"]


def alerts(base: str, name: str, state: str = "firing", **labels) -> list[dict]:
    return [a for a in api(base, "/api/v1/alerts")["alerts"]
            if a["labels"].get("alertname") == name and a["state"] == state
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def probe_worker() -> dict:
    return {"name": PROBE_WORKER, "image": "fleetwarden/ray-worker:latest", "pull": "never",
            "command": ["bash", "-c", HEARTBEAT_LOOP],
            "probe": {"heartbeat": {"path": "/tmp/heartbeat", "max_age": 10}, "interval": 2, "timeout": 1,  # noqa: S108 - a path inside the test worker's own container, not on this machine
                      "failure_threshold": 3, "start_period": 10},
            "restart": {"max_per_hour": 30}}


def deploy_workers(host: ray_lab.LabHost, workers: list[dict]) -> None:
    result = ray_lab.ansible_playbook(ray_lab.PLAYBOOKS / "worker_service.yml",
                                      extra_vars={"target": host.name, "test_workers": workers})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def series_value(base: str, promql: str) -> float | None:
    result = query(base, promql)
    return float(result[0]["value"][1]) if result else None


def active_at(alert: dict) -> float:
    """An alert's activeAt (RFC 3339, nanoseconds) as epoch seconds."""
    base, _, fraction = alert["activeAt"].rstrip("Z").partition(".")
    return datetime.fromisoformat(base + "+00:00").timestamp() + float("0." + (fraction.rstrip("Z") or "0"))


def matching(alerts_: list[dict], labels: dict[str, str]) -> list[dict]:
    return [a for a in alerts_ if all(a["labels"].get(k) == v for k, v in labels.items())]


def wait_inactive(base: str, awaited: dict[str, dict[str, str]], timeout: float = 400) -> None:
    """Until none of the awaited alerts is pending or firing (a remediating rule keeps firing 5 min after its
    fault cleared, so a run right after another waits here)."""
    ray_lab.wait_until(lambda: not any(matching(api(base, "/api/v1/alerts")["alerts"], labels)
                                       for labels in awaited.values()), timeout, interval=2,
                       what="no earlier alert of these still active")


class FiringWatch:
    """Polls Prometheus's alerts every 0.5 s in a thread and keeps when each awaited alert was first seen firing, so
    that faults injected together are timed independently of the order the tests wait in. Only alerts that became
    active after the watch started count."""

    def __init__(self, base: str, awaited: dict[str, dict[str, str]]):
        self.base, self.awaited, self.seen = base, awaited, {}
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        while not self._stop.is_set() and len(self.seen) < len(self.awaited):
            try:
                firing = api(self.base, "/api/v1/alerts")["alerts"]
            except OSError:
                firing = []
            now = time.time()
            for key, labels in self.awaited.items():
                for alert in matching(firing, labels):
                    if key not in self.seen and alert["state"] == "firing" and active_at(alert) >= self.started - 1:
                        self.seen[key] = (alert, now)
            self._stop.wait(0.5)

    def wait(self, key: str, since: float, timeout: float = 180) -> tuple[dict, float]:
        """(the alert, seconds from `since` to when the watch first saw it firing)."""
        alert, seen_at = ray_lab.wait_until(lambda: self.seen.get(key), timeout, interval=0.2,
                                            what=f"{key} firing with {self.awaited[key]}")
        return alert, seen_at - since
