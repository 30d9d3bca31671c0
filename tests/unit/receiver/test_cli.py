"""`fleetwarden receiver log|release|reset|status` on a real audit store, and /metrics, /healthz."""

from __future__ import annotations

import json
import os
import pwd
import time

import pytest
import yaml

from fleetwarden.cli import main
from fleetwarden.receiver.commands import format_rows, parse_since
from fleetwarden.receiver.config import Limits
from fleetwarden.receiver.store import Store

from .conftest import alert, db_rows, make_settings, notification, post, request


@pytest.fixture
def config_file(project, tmp_path):
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump({key: str(project[key]) for key in ("token_file", "state_dir", "playbook",
                                                                         "inventory")}))
    return path


def test_log_release_reset_and_metrics(live, project, config_file, capsys):
    receiver = live(limits=Limits(max_attempts=1, breaker_percent=30, budget_percent=100))
    post(receiver.url, notification(alert("fw-ok-1"), alert("fw-ok-2"), alert("fw-ok-3")), project["token"])
    post(receiver.url, notification(alert("fw-ok-1")), project["token"][::-1])

    assert main(["receiver", "--config", str(config_file), "log", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["host"]) for r in rows] == [
        ("started", "fw-ok-1"), ("started", "fw-ok-2"), ("breaker", "fw-ok-3"), ("unauthorized", None)]
    assert main(["receiver", "--config", str(config_file), "log", "--host", "fw-ok-3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["id", "time", "kind", "host"] and "breaker" in table[1]
    assert len(table) == 2
    assert main(["receiver", "--config", str(config_file), "log", "--since", "1h", "--limit", "1", "--json"]) == 0
    assert [r["kind"] for r in json.loads(capsys.readouterr().out)] == ["unauthorized"]

    status, _, body = request(receiver.url, "GET", "/metrics")
    metrics = body.decode()
    assert status == 200
    for line in ('fleetwarden_receiver_decisions_total{kind="started"} 2.0',
                 'fleetwarden_receiver_decisions_total{kind="unauthorized"} 1.0',
                 'fleetwarden_receiver_requests_total{code="202"} 1.0',
                 'fleetwarden_receiver_requests_total{code="401"} 1.0',
                 "fleetwarden_receiver_breaker_open 1.0", "fleetwarden_receiver_hosts_quarantined 0.0",
                 "# TYPE fleetwarden_receiver_runs_in_progress gauge"):
        assert line in metrics, line
    assert "fleetwarden_receiver_run_duration_seconds_bucket" in metrics
    audit_bytes = [line for line in metrics.splitlines() if line.startswith("fleetwarden_receiver_audit_bytes ")]
    assert audit_bytes and float(audit_bytes[0].split()[1]) > 0
    assert "fleetwarden_receiver_time_to_recover_seconds_bucket" in metrics
    assert json.loads(request(receiver.url, "GET", "/healthz")[2])["breaker_open"] is True

    # reset takes effect on the running receiver at once
    assert main(["receiver", "--config", str(config_file), "reset"]) == 0
    assert "breaker reset" in capsys.readouterr().out
    _, answer = post(receiver.url, notification(alert("fw-ok-4")), project["token"])
    assert answer["decisions"][0]["decision"] == "started"
    assert "fleetwarden_receiver_breaker_open 0.0" in request(receiver.url, "GET", "/metrics")[2].decode()

    assert main(["receiver", "--config", str(config_file), "release", "fw-ok-1"]) == 0
    assert "is not quarantined: nothing changed" in capsys.readouterr().out
    assert main(["receiver", "--config", str(config_file), "status"]) == 0
    assert json.loads(capsys.readouterr().out)["breaker_open"] is False


def test_bad_settings_file_is_an_error_naming_the_field(tmp_path, capsys):
    path = tmp_path / "receiver.yml"
    path.write_text("token_file: t\nstate_dir: s\nplaybook: p\ninventory: i\nport: http\n")
    assert main(["receiver", "--config", str(path), "log"]) == 2
    assert "port must be a whole number" in capsys.readouterr().err


def test_since_parses_ages_and_times():
    now = time.time()
    assert parse_since("30m", now) == now - 1800
    assert parse_since("2026-11-27T18:00:00Z") == parse_since("2026-11-27T18:00:00")
    with pytest.raises(Exception, match="--since"):
        parse_since("yesterday")


def test_format_rows_is_a_table():
    text = format_rows([{"id": 1, "ts": 0.0, "kind": "started", "host": "w-1", "duration": 12.345}])
    assert text.splitlines()[1].startswith("1   1970-01-01T00:00:00Z  started  w-1")
    assert "12.3" in text


def test_release_records_who_and_why_and_refuses_unknown_hosts(project, config_file, capsys):
    settings = make_settings(project)
    store = Store(settings.db_path)
    store.db.execute("INSERT INTO quarantine VALUES ('fw-ok-2', 1, 'three failed runs')")
    store.close()
    assert main(["receiver", "--config", str(config_file), "release", "no-such-host"]) == 2
    assert "not in the inventory" in capsys.readouterr().err
    assert main(["receiver", "--config", str(config_file), "release", "fw-ok-1"]) == 0  # not quarantined
    assert "nothing changed" in capsys.readouterr().out
    assert main(["receiver", "--config", str(config_file), "release", "fw-ok-2", "--reason", "disk replaced"]) == 0
    assert "fw-ok-2 released" in capsys.readouterr().out
    rows = db_rows(settings, "SELECT kind, host, reason FROM decisions")
    user = pwd.getpwuid(os.getuid()).pw_name
    assert rows == [{"kind": "released", "host": "fw-ok-2", "reason": f"released by {user}: disk replaced"}]
    assert db_rows(settings, "SELECT host FROM releases") == [{"host": "fw-ok-2"}]
    # Attempts are forgotten for a host that is not quarantined only when asked.
    assert main(["receiver", "--config", str(config_file), "release", "fw-ok-3", "--forget-attempts"]) == 0
    assert "earlier attempts no longer count" in capsys.readouterr().out
    assert db_rows(settings, "SELECT reason FROM decisions WHERE host='fw-ok-3'") == [
        {"reason": f"earlier attempts forgotten by {user}"}]


def test_log_escapes_control_characters(live, project, config_file, capsys):
    receiver = live()
    forged = "A\n1  2026-01-01T00:00:00Z  started  fw-ok-9\x1b]0;owned\x07"
    post(receiver.url, notification(alert("fw-ok-1", alertname=forged, remediate="false", fingerprint="f")),
         project["token"])
    assert main(["receiver", "--config", str(config_file), "log"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 2 and "\x1b" not in out and "\x07" not in out
    assert "A\\x0a1" in out
