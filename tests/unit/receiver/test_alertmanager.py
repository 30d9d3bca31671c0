"""A real Alertmanager (Debian's prometheus-alertmanager) on loopback delivers to the receiver with
`authorization: credentials_file`; alerts posted to its v2 API become audit rows; resolving one records the
time to recover; the breaker's page goes back to Alertmanager. Needs the binary (scripts/install-engine.sh)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from fleetwarden.receiver.config import Limits

from .conftest import db_rows, free_port, request, wait_for


def post_alerts(am_url: str, alerts: list[dict]) -> None:
    status, _, body = request(am_url, "POST", "/api/v2/alerts", json.dumps(alerts).encode(),
                              {"Content-Type": "application/json"})
    assert status == 200, body


def am_alerts(am_url: str) -> list[dict]:
    return json.loads(request(am_url, "GET", "/api/v2/alerts")[2])


def test_alertmanager_delivers_with_credentials_file(live, alertmanager):
    # 8 inventory hosts; breaker above 20%: a second alerting host trips it (live: a dry run opens no breaker).
    receiver_port = free_port()
    am_url = alertmanager(receiver_port)
    receiver = live(port=receiver_port, limits=Limits(breaker_percent=20), notify_url=am_url, notify_interval_s=5)
    started = datetime.now(UTC) - timedelta(seconds=30)
    down = {"labels": {"alertname": "RayWorkerDown", "fleet_host": "fw-ok-1", "remediate": "true"},
            "startsAt": started.isoformat()}
    post_alerts(am_url, [down])

    rows = wait_for(lambda: db_rows(receiver.settings, "SELECT * FROM decisions WHERE host='fw-ok-1'"), timeout=30)
    assert rows[0]["kind"] == "started" and rows[0]["remote"] == "127.0.0.1"
    assert json.loads(rows[0]["labels"])["alertname"] == "RayWorkerDown"
    assert db_rows(receiver.settings, "SELECT * FROM decisions WHERE kind='unauthorized'") == []

    # Resolved: Alertmanager sends it (send_resolved), the receiver records the time to recover.
    post_alerts(am_url, [{**down, "endsAt": datetime.now(UTC).isoformat()}])
    resolved = wait_for(lambda: db_rows(receiver.settings, "SELECT * FROM decisions WHERE kind='resolved'"),
                        timeout=30)
    assert resolved[0]["host"] == "fw-ok-1" and 29 <= resolved[0]["ttr"] < 120

    # A second host alerting trips the breaker; its page reaches Alertmanager.
    post_alerts(am_url, [{"labels": {"alertname": "RayWorkerDown", "fleet_host": "fw-ok-2", "remediate": "true"}}])
    trip = wait_for(lambda: db_rows(receiver.settings, "SELECT * FROM decisions WHERE kind='breaker'"), timeout=30)
    assert trip[0]["host"] == "fw-ok-2"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = {a["labels"]["alertname"] for a in am_alerts(am_url)}
        if "FleetwardenReceiverBreakerOpen" in names:
            break
        time.sleep(0.5)
    page = [a for a in am_alerts(am_url) if a["labels"]["alertname"] == "FleetwardenReceiverBreakerOpen"]
    assert page and page[0]["labels"]["severity"] == "page" and "remediate" not in page[0]["labels"]
    assert [host for _, host in receiver.recorder.calls] == ["fw-ok-1"]
