"""Dry run against live mode over real HTTP: the same notifications, the same hosts started (or would be)."""

from __future__ import annotations

from fleetwarden.receiver.config import Limits

from .conftest import alert, db_rows, notification, post, wait_for

LIMITS = Limits(budget_percent=40, breaker_percent=80, max_attempts=2)  # 3 of the 8 hosts per window


def storm() -> list[dict]:
    hosts = ["fw-ok-1", "fw-ok-2", "fw-fail", "fw-ok-3", "fw-ok-4"]
    return [
        notification(*(alert(h) for h in hosts)),
        notification(*(alert(h) for h in hosts)),  # Alertmanager's repeat
        notification(alert("fw-ok-1", alertname="RayWorkerNotAlive"), alert("fw-ok-5")),
    ]


def started_hosts(answers: list[dict], kind: str) -> list[list[str]]:
    return [[d["host"] for d in answer["decisions"] if d["decision"] == kind] for answer in answers]


def test_dry_run_reports_what_live_mode_starts(live, project, tmp_path):
    dry = live(dry_run=True, limits=LIMITS)
    live_receiver = live(limits=LIMITS, state_dir=tmp_path / "live-state")
    dry_answers = [post(dry.url, body, project["token"])[1] for body in storm()]
    live_answers = [post(live_receiver.url, body, project["token"])[1] for body in storm()]
    assert started_hosts(dry_answers, "dry_run") == started_hosts(live_answers, "started") == [
        ["fw-ok-1", "fw-ok-2", "fw-fail"], [], []]
    assert dry.recorder.calls == []
    wait_for(lambda: len(live_receiver.recorder.calls) == 3, timeout=60)


def test_live_mode_does_not_take_dry_run_decisions_for_done(live, project):
    receiver = live(dry_run=True, limits=LIMITS)
    assert post(receiver.url, notification(alert("fw-ok-1")), project["token"])[1]["decisions"][0][
        "decision"] == "dry_run"
    receiver.stop()
    receiver = live(limits=LIMITS)  # the same state dir, switched live
    _, answer = post(receiver.url, notification(alert("fw-ok-1")), project["token"])
    assert answer["decisions"][0]["decision"] == "started"
    assert [r["dry"] for r in db_rows(receiver.settings, "SELECT dry FROM runs ORDER BY created")] == [1, 0]
