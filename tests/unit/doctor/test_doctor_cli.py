"""The CLI's contract without a fleet: exit 2 when the doctor cannot run; the pipeline checks against a real
HTTP server on loopback; --drift's counting of ansible.posix.json output."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fleetwarden.cli import build_parser
from fleetwarden.doctor.pipeline import drift_from_json, pipeline_checks

REPO = Path(__file__).resolve().parents[3]
TARGETS = {"status": "success", "data": {"activeTargets": [
    {"labels": {"job": "node", "instance": "h1:9100"}, "health": "up", "lastError": ""},
    {"labels": {"job": "node", "instance": "h2:9100"}, "health": "down", "lastError": "connection refused"}]}}


def test_the_doctor_exits_2_when_it_cannot_read_the_inventory(tmp_path):
    empty = tmp_path / "empty.yml"
    empty.write_text("all:\n  hosts: {}\n")
    run = subprocess.run([sys.executable, "-m", "fleetwarden.cli", "doctor", "--json", "-i", str(empty)], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2 and "lists no host" in run.stderr and run.stdout == ""


def test_the_parser_knows_both_commands():
    args = build_parser().parse_args(["doctor", "-i", "a", "-i", "b", "--save-report", "r.json", "--drift"])
    assert (args.inventory, args.drift, args.include_sensitive, str(args.save_report)) == (["a", "b"], True, False,
                                                                                           "r.json")
    assert build_parser().parse_args(["status", "--watch"]).watch == 5.0


@pytest.fixture
def prometheus():
    server = _serve({"/api/v1/targets": (200, TARGETS)})
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_pipeline_checks_skip_without_monitoring_hosts_and_read_prometheus_targets(prometheus, monkeypatch):
    skipped = pipeline_checks({}, lambda host: {}, {})
    assert {(c.id, c.status) for c in skipped} == {("pipeline.prometheus_targets", "SKIP"),
                                                   ("pipeline.alertmanager", "SKIP"), ("pipeline.receiver", "SKIP")}
    assert all("declares no" in c.summary for c in skipped)
    # Prometheus at its role variables (the fake answers there); Alertmanager at the role's default port, where
    # nothing listens on loopback in the tests.
    mon_vars = {"prometheus_address": "127.0.0.1", "prometheus_port": prometheus}
    defaults = {"prometheus_port": 9090, "prometheus_alertmanager_port": 1}
    checks = {c.id: c for c in pipeline_checks({"monitoring": ["mon"]}, lambda host: mon_vars, defaults)}
    targets = checks["pipeline.prometheus_targets"]
    assert targets.evidence["url"] == f"http://127.0.0.1:{prometheus}/api/v1/targets"
    assert targets.status == "WARN" and targets.evidence["down"][0]["instance"] == "h2:9100"
    assert checks["pipeline.alertmanager"].status == "FAIL" and checks["pipeline.receiver"].status == "SKIP"
    assert checks["pipeline.alertmanager"].evidence["url"] == "http://127.0.0.1:1/-/healthy"


def test_the_receiver_is_reached_where_alertmanager_reaches_it():
    from fleetwarden.doctor.pipeline import endpoint_base

    mon = {"prometheus_address": "10.0.0.5", "prometheus_alertmanager_recovery_url": "http://10.0.0.7:9097/v1/alertmanager"}
    ctl = {"ansible_host": "127.0.0.1"}
    hostvars = {"mon": mon, "ctl": ctl}
    defaults = {"prometheus_port": 9090, "recovery_receiver_port": 9097}
    assert endpoint_base("pipeline.receiver", "ctl", hostvars.get, defaults, ["mon"]) == "http://10.0.0.7:9097"
    assert endpoint_base("pipeline.prometheus_targets", "mon", hostvars.get, defaults, ["mon"]) == "http://10.0.0.5:9090"
    # No URL set: the receiver's own variables, then the host's address.
    assert endpoint_base("pipeline.receiver", "ctl", hostvars.get, defaults, []) == "http://127.0.0.1:9097"


def test_drift_counts_the_tasks_that_would_change_per_host():
    document = {"plays": [{"tasks": [
        {"task": {"name": "Write daemon.json"}, "hosts": {"h1": {"changed": True, "diff": [{"after": "s3cret"}]},
                                                          "h2": {"changed": False}}},
        {"task": {"name": "Restart docker"}, "hosts": {"h1": {"changed": True}}}]}],
        "stats": {"h1": {"failures": 0, "unreachable": 0}, "h2": {"failures": 0, "unreachable": 0}}}
    checks = {c.host: c for c in drift_from_json(document)}
    assert checks["h1"].evidence["would_change"] == 2 and checks["h1"].status == "WARN"
    assert checks["h2"].status == "OK" and "s3cret" not in json.dumps([c.as_dict() for c in checks.values()])


def _serve(routes: dict[str, tuple[int, dict]]):
    """A real HTTP server on loopback answering path (with its query) -> (status, JSON document)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            code, document = routes.get(self.path, (404, {}))
            body = json.dumps(document).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _freshness(ages: dict[str, float]) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"fleet_host": host, "instance": f"{host}:9100"}, "value": [1.7e9, str(age)]}
        for host, age in ages.items()]}}


@pytest.mark.parametrize(("ages", "status", "stale"), [
    ({"h1": 12.5, "h2": 30}, "OK", []),
    ({"h1": 12.5, "h2": 300.2}, "WARN", [{"host": "h2", "age_s": 300.2}]),
    ({}, "WARN", []),
])
def test_collector_metrics_must_be_fresh_on_every_host(ages, status, stale):
    from urllib.parse import urlencode

    from fleetwarden.doctor.pipeline import FRESHNESS_QUERY

    query = "/api/v1/query?" + urlencode({"query": FRESHNESS_QUERY})
    server = _serve({"/api/v1/targets": (200, TARGETS), query: (200, _freshness(ages))})
    try:
        mon_vars = {"prometheus_address": "127.0.0.1", "prometheus_port": server.server_address[1]}
        checks = {c.id: c for c in pipeline_checks({"monitoring": ["mon"]}, lambda host: mon_vars,
                                                   {"prometheus_alertmanager_port": 1})}
    finally:
        server.shutdown()
        server.server_close()
    fresh = checks["pipeline.metrics_fresh"]
    assert (fresh.status, fresh.evidence["stale"]) == (status, stale)
    assert fresh.recommendation == (None if status == "OK" else "check-pipeline")
    assert fresh.evidence["fresh"] == sorted(h for h, age in ages.items() if age <= 45)


@pytest.mark.parametrize(("health", "status", "rec"), [
    ({"status": "ok", "breaker_open": False, "hosts_quarantined": 0, "runs_in_progress": 1, "dry_run": False},
     "OK", None),
    ({"status": "ok", "breaker_open": False, "hosts_quarantined": 2, "runs_in_progress": 0, "dry_run": False},
     "WARN", "release-quarantined"),
    ({"status": "ok", "breaker_open": True, "hosts_quarantined": 0, "runs_in_progress": 0, "dry_run": False},
     "FAIL", "reset-breaker"),
])
def test_the_receivers_breaker_and_quarantine(health, status, rec):
    server = _serve({"/healthz": (200, health)})
    try:
        ctl_vars = {"ansible_host": "127.0.0.1", "recovery_receiver_port": server.server_address[1]}
        checks = {c.id: c for c in pipeline_checks({"controller": ["ctl"]}, lambda host: ctl_vars, {})}
    finally:
        server.shutdown()
        server.server_close()
    receiver = checks["pipeline.receiver"]
    assert (receiver.status, receiver.recommendation, receiver.host) == (status, rec, "ctl")
    assert receiver.evidence["hosts_quarantined"] == health["hosts_quarantined"]
    assert ("breaker OPEN" in receiver.summary) == health["breaker_open"]


def test_the_freshness_age_is_the_metricsstale_alerts():
    import yaml

    from fleetwarden.doctor.pipeline import FRESHNESS_QUERY, METRICS_MAX_AGE_S

    rules = yaml.safe_load((REPO / "roles" / "prometheus" / "files" / "fleetwarden-alerts.yml").read_text())
    [stale] = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "MetricsStale"]
    assert f"{FRESHNESS_QUERY} > {METRICS_MAX_AGE_S}" in " ".join(stale["expr"].split())
