"""Maintenance windows: `fleetwarden receiver maintenance start|end|list` on a real store, a real receiver that
records and skips the hosts' alerts, Alertmanager silences in Debian's prometheus-alertmanager, and the
pipeline check (status, doctor) that shows the hosts."""

from __future__ import annotations

import json
import os
import pwd
import time

import pytest
import yaml

from fleetwarden.cli import main
from fleetwarden.doctor.pipeline import pipeline_checks
from fleetwarden.receiver.commands import parse_duration
from fleetwarden.receiver.config import Limits

from .conftest import HOSTS, alert, db_rows, free_port, notification, post, request


def config_file(project, tmp_path, **extra):
    path = tmp_path / "receiver.yml"
    values = {key: str(project[key]) for key in ("token_file", "state_dir", "playbook", "inventory")}
    path.write_text(yaml.safe_dump({**values, **extra}))
    return str(path)


def cli(config, *args) -> int:
    return main(["receiver", "--config", config, "maintenance", *args])


def test_durations():
    assert parse_duration("90s") == 90 and parse_duration("2h") == 7200 and parse_duration("7d") == 7 * 86400
    for bad in ("8d", "0s", "soon", "-1h"):
        with pytest.raises(Exception, match="--for"):
            parse_duration(bad)


def test_a_host_in_maintenance_is_recorded_and_skipped_then_acted_on_after(live, project, tmp_path, capsys):
    config = config_file(project, tmp_path)
    receiver = live(limits=Limits(budget_percent=100))
    assert cli(config, "start", "fw-ok-1", "--for", "1h", "--reason", "disk swap") == 0
    assert "fw-ok-1 in maintenance until" in capsys.readouterr().out
    _, answer = post(receiver.url, notification(alert("fw-ok-1"), alert("fw-ok-2")), project["token"])
    [skipped, acted] = answer["decisions"]
    user = pwd.getpwuid(os.getuid()).pw_name
    assert skipped["decision"] == "maintenance" and f"disk swap ({user}, until " in skipped["reason"]
    assert acted["decision"] == "started"
    health = json.loads(request(receiver.url, "GET", "/healthz")[2])
    assert health["hosts_in_maintenance"] == ["fw-ok-1"]
    # status and doctor: the pipeline check names the hosts
    checks = {c.id: c for c in pipeline_checks(
        {"controller": ["ctl"]}, lambda host: {"ansible_host": "127.0.0.1", "recovery_receiver_port": receiver.port},
        {})}
    assert "in maintenance: fw-ok-1" in checks["pipeline.receiver"].summary
    assert checks["pipeline.receiver"].evidence["hosts_in_maintenance"] == ["fw-ok-1"]

    assert cli(config, "end", "fw-ok-1", "--reason", "swapped") == 0
    assert "fw-ok-1: maintenance ended" in capsys.readouterr().out
    _, answer = post(receiver.url, notification(alert("fw-ok-1")), project["token"])
    assert answer["decisions"][0]["decision"] == "started"  # the skipped alert was not taken for handled
    rows = db_rows(receiver.settings, "SELECT kind, host, reason FROM decisions WHERE host='fw-ok-1' ORDER BY id")
    assert [r["kind"] for r in rows] == ["maintenance_start", "maintenance", "maintenance_end", "started"]
    assert rows[0]["reason"].startswith(f"by {user} until ") and rows[0]["reason"].endswith(": disk swap")
    assert rows[2]["reason"] == f"by {user}: swapped"


def test_a_group_and_a_window_that_ends_by_itself(live, project, tmp_path, capsys):
    config = config_file(project, tmp_path)
    receiver = live()
    assert cli(config, "start", "ungrouped", "--for", "8s", "--reason", "rack move") == 0
    started = time.monotonic()
    assert len(capsys.readouterr().out.splitlines()) == len(HOSTS)
    assert cli(config, "list") == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(w["host"] for w in listed) == sorted(HOSTS)
    assert post(receiver.url, notification(alert("fw-ok-3")), project["token"])[1]["decisions"][0][
        "decision"] == "maintenance"
    time.sleep(max(0.0, started + 8.5 - time.monotonic()))
    assert post(receiver.url, notification(alert("fw-ok-3")), project["token"])[1]["decisions"][0][
        "decision"] == "started"
    assert cli(config, "start", "no-such-group", "--for", "1h", "--reason", "x") == 2
    assert "neither a host nor a group" in capsys.readouterr().err


def test_maintenance_silences_the_host_in_alertmanager(live, project, tmp_path, alertmanager, capsys):
    am_url = alertmanager(free_port())
    config = config_file(project, tmp_path, alertmanager_url=am_url)
    assert cli(config, "start", "fw-ok-4", "--for", "30m", "--reason", "kernel update") == 0
    assert "silenced in Alertmanager" in capsys.readouterr().out
    [silence] = json.loads(request(am_url, "GET", "/api/v2/silences")[2])
    assert silence["status"]["state"] == "active"
    assert silence["matchers"] == [{"name": "fleet_host", "value": "fw-ok-4", "isRegex": False, "isEqual": True}]
    assert silence["createdBy"] == pwd.getpwuid(os.getuid()).pw_name and "kernel update" in silence["comment"]
    assert cli(config, "end", "fw-ok-4") == 0
    [silence] = json.loads(request(am_url, "GET", "/api/v2/silences")[2])
    assert silence["status"]["state"] == "expired"


def test_alertmanager_away_is_said_and_the_window_kept(project, tmp_path, capsys):
    config = config_file(project, tmp_path, alertmanager_url=f"http://127.0.0.1:{free_port()}")
    assert cli(config, "start", "fw-ok-5", "--for", "10m", "--reason", "x") == 1
    assert "the silence could not be added" in capsys.readouterr().err
    assert cli(config, "list") == 0
    assert [w["host"] for w in json.loads(capsys.readouterr().out)] == ["fw-ok-5"]
