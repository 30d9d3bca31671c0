"""Bad input over real HTTP: each case gets its status code and its audit row, and nothing runs."""

from __future__ import annotations

import time
from pathlib import Path

from fleetwarden.receiver.alerts import parse_notification
from fleetwarden.receiver.config import Limits
from fleetwarden.receiver.server import WEBHOOK_PATH
from fleetwarden.receiver.store import Store

from .conftest import HOSTS, alert, db_rows, make_settings, notification, post, request, wait_for


def decisions(receiver) -> list[dict]:
    return db_rows(receiver.settings, "SELECT * FROM decisions ORDER BY id")


def assert_nothing_ran(receiver) -> None:
    assert receiver.recorder.calls == []
    assert db_rows(receiver.settings, "SELECT * FROM runs") == []
    runs_dir = receiver.settings.runs_dir
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


def test_no_token(live, project):
    receiver = live()
    status, answer = post(receiver.url, notification(alert("fw-ok-1")), token=None)
    assert status == 401 and answer["decision"] == "unauthorized"
    [row] = decisions(receiver)
    assert (row["kind"], row["reason"], row["remote"]) == ("unauthorized", "no bearer token", "127.0.0.1")
    assert_nothing_ran(receiver)


def test_wrong_token(live, project):
    receiver = live()
    status, _ = post(receiver.url, notification(alert("fw-ok-1")), token=project["token"] + "x")
    assert status == 401
    status_basic, _ = post(receiver.url, notification(alert("fw-ok-1")), token=None,
                           headers={"Authorization": f"Basic {project['token']}"})
    assert status_basic == 401
    rows = decisions(receiver)
    assert [(r["kind"], r["reason"]) for r in rows] == [("unauthorized", "wrong bearer token")] * 2
    # The token never reaches the audit store, whatever was sent.
    assert project["token"] not in Path(receiver.settings.db_path).read_bytes().decode("latin-1")
    assert_nothing_ran(receiver)


def test_oversized_body(live, project):
    receiver = live()
    limit = receiver.settings.max_body_bytes
    body = notification(alert("fw-ok-1", summary="x" * 100))
    padded = (str(body)[:-1] + " " * (limit + 1)).encode()
    status, answer = post(receiver.url, padded, token=project["token"])
    assert status == 413 and answer["decision"] == "too_large"
    # Without a Content-Length (chunked), the body is cut off at the limit all the same.
    headers = {"Authorization": f"Bearer {project['token']}", "Content-Type": "application/json"}
    chunks = iter([b" " * 65536] * (limit // 65536 + 2))
    status, _, _ = request(receiver.url, "POST", WEBHOOK_PATH, chunks, headers, chunked=True)
    assert status == 413
    assert [r["kind"] for r in decisions(receiver)] == ["too_large", "too_large"]
    assert_nothing_ran(receiver)


def test_malformed_json(live, project):
    receiver = live()
    status, answer = post(receiver.url, b'{"version": "4", "alerts": [', token=project["token"])
    assert status == 400 and "not JSON" in answer["error"]
    [row] = decisions(receiver)
    assert row["kind"] == "bad_request" and "not JSON" in row["reason"]
    assert_nothing_ran(receiver)


def test_wrong_version(live, project):
    receiver = live()
    status, answer = post(receiver.url, notification(alert("fw-ok-1"), version="3"), token=project["token"])
    assert status == 400 and "version" in answer["error"]
    [row] = decisions(receiver)
    assert row["kind"] == "bad_request" and row["reason"] == "version must be \"4\", got '3'"
    assert_nothing_ran(receiver)


def test_unknown_host(live, project):
    receiver = live()
    status, answer = post(receiver.url, notification(alert("not-in-inventory")), token=project["token"])
    assert status == 202
    assert [d["decision"] for d in answer["decisions"]] == ["unknown_host"]
    [row] = decisions(receiver)
    assert (row["kind"], row["host"]) == ("unknown_host", "not-in-inventory")
    assert_nothing_ran(receiver)


def test_jinja_in_labels(live, project, tmp_path):
    receiver = live()
    marker = tmp_path / "rendered"
    jinja = "{{ lookup('ansible.builtin.pipe', 'touch " + str(marker) + "') }}"
    status, answer = post(receiver.url, notification(alert(jinja, alertname=jinja, summary=jinja, fingerprint="fp-j")),
                          token=project["token"])
    assert status == 202 and answer["decisions"][0]["decision"] == "unknown_host"
    [row] = decisions(receiver)
    assert row["kind"] == "unknown_host"
    assert row["host"] == jinja and row["alertname"] == jinja  # kept verbatim, as data
    assert not marker.exists()
    assert_nothing_ran(receiver)


def test_resolved_only(live, project):
    receiver = live()
    resolved = alert("fw-ok-1", status="resolved", starts_at="2026-11-27T18:00:00Z", ends_at="2026-11-27T18:00:42Z")
    status, answer = post(receiver.url, notification(resolved), token=project["token"])
    assert status == 202 and answer["decisions"][0]["decision"] == "resolved"
    status, answer = post(receiver.url, notification(resolved), token=project["token"])
    assert answer["decisions"][0]["decision"] == "deduped"
    rows = decisions(receiver)
    assert [(r["kind"], r["ttr"]) for r in rows] == [("resolved", 42.0), ("deduped", None)]
    assert_nothing_ran(receiver)


def test_quarantined_host(live, project):
    limits = Limits(max_attempts=1, cooldown_failure_s=0)
    settings = make_settings(project, limits=limits)
    # History: one failed run for fw-ok-1 a minute ago, recorded by an earlier receiver.
    store = Store(settings.db_path)
    first = alert("fw-ok-1", starts_at="2026-11-27T17:00:00Z")
    earlier = time.time() - 60
    [recorded] = store.record_notification(parse_notification(notification_bytes(first)), earlier, limits,
                                           frozenset(HOSTS))
    assert recorded.decision.kind == "started"
    store.finish_run(recorded.decision.job_id, earlier + 5, "failed", 2, 5.0, None)
    store.close()
    receiver = live(limits=limits)
    again = alert("fw-ok-1", starts_at="2026-11-27T18:00:00Z")
    status, answer = post(receiver.url, notification(again), token=project["token"])
    assert status == 202 and answer["decisions"][0]["decision"] == "quarantined"
    status, answer = post(receiver.url, notification(again), token=project["token"])
    assert answer["decisions"][0]["decision"] == "quarantined"
    assert "quarantined until" in answer["decisions"][0]["reason"]
    assert [r["kind"] for r in decisions(receiver)] == ["started", "quarantined", "quarantined"]
    assert receiver.recorder.calls == []
    assert [r["status"] for r in db_rows(receiver.settings, "SELECT status FROM runs")] == ["failed"]


def test_breaker_open(live, project):
    # 8 inventory hosts; more than 20% alerting (2 hosts) trips it.
    receiver = live(limits=Limits(breaker_percent=20))
    status, answer = post(receiver.url, notification(alert("fw-ok-1"), alert("fw-ok-2")), token=project["token"])
    assert status == 202
    # fw-ok-1 is the first alerting host (12%): its run starts. fw-ok-2 makes it 25%: the breaker trips.
    assert [d["decision"] for d in answer["decisions"]] == ["started", "breaker"]
    wait_for(lambda: receiver.recorder.calls)
    status, answer = post(receiver.url, notification(alert("fw-ok-3")), token=project["token"])
    assert answer["decisions"][0]["decision"] == "breaker"
    assert "until `fleetwarden receiver reset`" in answer["decisions"][0]["reason"]
    assert [h for _, h in receiver.recorder.calls] == ["fw-ok-1"]
    assert db_rows(receiver.settings, "SELECT opened FROM breaker")[0]["opened"] is not None


def test_replayed_notification(live, project):
    receiver = live()
    body = notification(alert("fw-slow"))
    status, answer = post(receiver.url, body, token=project["token"])
    assert answer["decisions"][0]["decision"] == "started"
    wait_for(lambda: receiver.recorder.calls)
    status, answer = post(receiver.url, body, token=project["token"])
    assert status == 202 and answer["decisions"][0]["decision"] == "deduped"
    assert [r["kind"] for r in decisions(receiver)] == ["started", "deduped"]
    assert len(receiver.recorder.calls) == 1
    assert len(db_rows(receiver.settings, "SELECT * FROM runs")) == 1


def test_unwritable_audit_store_answers_503(live, project):
    receiver = live()
    receiver.receiver.store.db.execute("PRAGMA query_only=ON")  # a real SQLite write failure
    status, answer = post(receiver.url, notification(alert("fw-ok-1")), token=project["token"])
    assert status == 503 and "could not be written" in answer["error"]
    receiver.receiver.store.db.execute("PRAGMA query_only=OFF")
    assert decisions(receiver) == []
    assert receiver.recorder.calls == []


def notification_bytes(*alerts) -> bytes:
    import json

    return json.dumps(notification(*alerts)).encode()
