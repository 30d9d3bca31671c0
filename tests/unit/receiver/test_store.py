"""The audit store and the limits over time: dedupe, retry after failure, quarantine and release,
breaker and reset, runs interrupted by a stop. Real SQLite, a clock the test moves."""

from __future__ import annotations

import sqlite3

import pytest

from fleetwarden.receiver.alerts import Alert
from fleetwarden.receiver.config import Limits
from fleetwarden.receiver.store import Store

INVENTORY = frozenset(f"w-{i}" for i in range(1, 11))
LIMITS = Limits(cooldown_success_s=600, cooldown_failure_s=300, max_attempts=2, budget_percent=100,
                breaker_percent=50, breaker_window_s=300)
T0 = 1_800_000_000.0


def firing(host="w-1", starts_at="2026-11-27T18:00:00Z", alertname="RayWorkerDown", status="firing") -> Alert:
    labels = {"alertname": alertname, "remediate": "true", "fleet_host": host}
    return Alert(status, f"fp-{host}-{alertname}", starts_at, "", labels, host)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "audit.sqlite3")
    yield store
    store.close()


def decide(store, now, *alerts):
    return [r.decision for r in store.record_notification(list(alerts), now, LIMITS, INVENTORY)]


def test_wal_mode_private_file_and_durable_sync(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"


def test_a_failed_run_is_retried_after_the_cooldown_then_quarantined(store):
    [first] = decide(store, T0, firing())
    assert first.kind == "started"
    assert decide(store, T0 + 1, firing())[0].kind == "deduped"
    store.mark_running(first.job_id, T0 + 1, "/x")
    store.finish_run(first.job_id, T0 + 30, "failed", 2, 29.0, None)
    # Still firing (same startsAt): no longer deduped, but cooling down after the failure.
    assert decide(store, T0 + 60, firing())[0].kind == "cooldown"
    [second] = decide(store, T0 + 331, firing())
    assert second.kind == "started"
    store.finish_run(second.job_id, T0 + 360, "failed", 2, 29.0, None)
    [third] = decide(store, T0 + 700, firing())
    assert third.kind == "quarantined" and third.quarantines
    assert decide(store, T0 + 701, firing())[0].kind == "quarantined"
    assert store.state()["quarantined"][0]["host"] == "w-1"
    # Released: attempts before the release no longer count.
    assert store.release("w-1", T0 + 800, "tester", "fixed the disk")
    assert decide(store, T0 + 801, firing())[0].kind == "started"
    kinds = [r["kind"] for r in store.rows(host="w-1")]
    assert kinds == ["started", "deduped", "cooldown", "started", "quarantined", "quarantined", "released", "started"]


def test_a_successful_run_dedupes_its_alert_and_cools_the_host_down(store):
    [run] = decide(store, T0, firing())
    store.finish_run(run.job_id, T0 + 20, "successful", 0, 20.0, "/r/w-1.json")
    assert decide(store, T0 + 30, firing())[0].kind == "deduped"
    # A new episode on the same host within the cooldown waits.
    assert decide(store, T0 + 30, firing(starts_at="2026-11-27T18:05:00Z"))[0].kind == "cooldown"
    assert decide(store, T0 + 621, firing(starts_at="2026-11-27T18:05:00Z"))[0].kind == "started"
    [row] = [r for r in store.rows(host="w-1") if r["job_id"] == run.job_id]
    assert (row["run_status"], row["rc"], row["duration"], row["report_path"]) == ("successful", 0, 20.0,
                                                                                  "/r/w-1.json")


def test_one_run_per_host_others_join(store):
    [run] = decide(store, T0, firing())
    joined = decide(store, T0 + 1, firing(alertname="RayWorkerNotAlive"))[0]
    assert (joined.kind, joined.job_id) == ("joined", run.job_id)


def test_breaker_trips_stays_open_until_reset_and_counts_from_the_reset(store):
    hosts = [f"w-{i}" for i in range(1, 7)]
    kinds = [d.kind for d in decide(store, T0, *(firing(h) for h in hosts))]
    assert kinds == ["started"] * 5 + ["breaker"]
    assert store.state()["breaker_open"]
    assert decide(store, T0 + 1000, firing("w-7"))[0].kind == "breaker"  # open long after the window
    assert store.reset_breaker(T0 + 1001)
    assert not store.state()["breaker_open"]
    # Alerts from before the reset do not count: one host alerting now is 10%.
    assert decide(store, T0 + 1002, firing("w-8"))[0].kind == "started"


def test_budget_counts_distinct_hosts_in_the_window(tmp_path):
    store = Store(tmp_path / "a.sqlite3")
    limits = Limits(budget_percent=20, breaker_percent=100)  # 2 hosts of 10 per hour

    def record(now, host):
        return store.record_notification([firing(host)], now, limits, INVENTORY)[0].decision

    assert [record(T0, h).kind for h in ("w-1", "w-2", "w-3")] == ["started", "started", "budget"]
    assert record(T0 + 3601, "w-3").kind == "started"
    store.close()


def test_runs_in_flight_at_start_are_interrupted_and_the_host_is_free(store):
    [queued, running] = decide(store, T0, firing("w-1"), firing("w-2"))
    store.mark_running(running.job_id, T0 + 1, "/x")
    assert store.interrupt_in_flight(T0 + 50) == [queued.job_id, running.job_id]
    assert {store.run(j)["status"] for j in (queued.job_id, running.job_id)} == {"interrupted"}
    assert [r["kind"] for r in store.rows(host="w-2")] == ["started", "interrupted"]
    # No cooldown from an interrupted run, and its alert is not deduped: the next notification acts.
    assert decide(store, T0 + 51, firing("w-2"))[0].kind == "started"


def test_resolved_records_time_to_recover_once(store):
    resolved = Alert("resolved", "fp", "2026-11-27T18:00:00Z", "2026-11-27T18:00:45Z",
                     {"alertname": "RayWorkerDown", "remediate": "true", "fleet_host": "w-1"}, "w-1")
    [first] = store.record_notification([resolved], T0, LIMITS, INVENTORY)
    assert (first.decision.kind, first.ttr) == ("resolved", 45.0)
    assert store.record_notification([resolved], T0 + 1, LIMITS, INVENTORY)[0].decision.kind == "deduped"


def test_a_notification_is_recorded_whole_or_not_at_all(store):
    store.db.execute("PRAGMA query_only=ON")
    with pytest.raises(sqlite3.Error):
        decide(store, T0, firing("w-1"), firing("w-2"))
    store.db.execute("PRAGMA query_only=OFF")
    assert store.rows() == []
    assert store.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_prune_drops_old_audit_rows_only(store):
    decide(store, T0, firing("w-1"))
    decide(store, T0 + 100 * 86400, firing("w-2"))
    assert store.prune(T0 + 100 * 86400, keep_days=90) == 1
    assert [r["host"] for r in store.rows()] == ["w-2"]
    assert store.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def decide_mode(store, now, dry_run, *alerts, limits=LIMITS):
    return [r.decision for r in store.record_notification(list(alerts), now, limits, INVENTORY, dry_run)]


def test_a_runner_error_is_no_attempt_and_is_retried_after_the_failure_cooldown(store):
    # max_attempts=2: three runs that did nothing, then a real one, are not a quarantine.
    now = T0
    for _ in range(3):
        [decision] = decide(store, now, firing())
        assert decision.kind == "started"
        store.finish_run(decision.job_id, now + 5, "error", None, None, None)
        assert decide(store, now + 10, firing())[0].kind == "cooldown"  # a broken setup is no tight loop
        now += 310
    [decision] = decide(store, now, firing())
    assert decision.kind == "started"


@pytest.mark.parametrize("outcome", ["canceled", "interrupted"])
def test_a_run_that_said_nothing_about_the_host_is_retried_once_and_is_no_attempt(store, outcome):
    [first] = decide(store, T0, firing())
    store.finish_run(first.job_id, T0 + 5, outcome, None, None, None)
    # No cooldown (it said nothing about the host): the next notification retries it.
    [retry] = decide(store, T0 + 10, firing())
    assert retry.kind == "started"
    store.finish_run(retry.job_id, T0 + 15, outcome, None, None, None)
    # Retried once: the same alert stays handled however often Alertmanager sends it again.
    assert [decide(store, T0 + 20 + i, firing())[0].kind for i in range(3)] == ["deduped"] * 3
    # Neither counted as an attempt (max_attempts=2): the alert's next episode starts a run, no quarantine.
    [episode] = decide(store, T0 + 30, firing(starts_at="2026-11-27T18:30:00Z"))
    assert episode.kind == "started"
    # The new episode has its own retry.
    store.finish_run(episode.job_id, T0 + 35, outcome, None, None, None)
    assert decide(store, T0 + 40, firing(starts_at="2026-11-27T18:30:00Z"))[0].kind == "started"


def test_runs_that_did_nothing_do_not_use_the_budget(store):
    limits = Limits(budget_percent=10, max_attempts=5)  # 1 host of 10 per window
    [first] = decide_mode(store, T0, False, firing("w-1"), limits=limits)
    store.finish_run(first.job_id, T0 + 1, "canceled", None, None, None)
    assert decide_mode(store, T0 + 2, False, firing("w-2"), limits=limits)[0].kind == "started"
    assert decide_mode(store, T0 + 3, False, firing("w-3"), limits=limits)[0].kind == "budget"


def test_dry_run_applies_every_rule_and_live_mode_does_not_read_its_decisions(store):
    limits = Limits(budget_percent=20, max_attempts=5)  # 2 hosts of 10
    alerts = [firing(f"w-{i}") for i in range(1, 5)]
    assert [d.kind for d in decide_mode(store, T0, True, *alerts, limits=limits)] == [
        "dry_run", "dry_run", "budget", "budget"]
    # A dry-run decision is not "handled" for live mode: the same alerts act live.
    assert [d.kind for d in decide_mode(store, T0 + 1, False, *alerts, limits=limits)] == [
        "started", "started", "budget", "budget"]
    # The dry run's would-be run starts its cooldown in dry mode only.
    assert decide_mode(store, T0 + 2, True, firing("w-1", starts_at="2026-11-27T19:00:00Z"), limits=limits)[
        0].kind == "cooldown"
    assert store.state()["breaker_open"] is False


def test_dry_run_quarantine_and_breaker_change_no_state(store):
    limits = Limits(breaker_percent=10, breaker_min_hosts=2, budget_percent=100)
    kinds = [d.kind for d in decide_mode(store, T0, True, firing("w-1"), firing("w-2"), firing("w-3"),
                                         limits=limits)]
    assert kinds == ["dry_run", "breaker", "breaker"]
    assert store.state()["breaker_open"] is False


def test_time_to_recover_is_marked_acted_only_for_episodes_with_a_run(store):
    [run] = decide(store, T0, firing("w-1"))
    store.finish_run(run.job_id, T0 + 20, "successful", 0, 20.0, None)
    resolved = [Alert("resolved", f"fp-{h}-RayWorkerDown", "2026-11-27T18:00:00Z", "2026-11-27T18:01:00Z",
                      {"alertname": "RayWorkerDown", "fleet_host": h}, h) for h in ("w-1", "w-2")]
    recorded = store.record_notification(resolved, T0 + 60, LIMITS, INVENTORY)
    assert [(r.decision.kind, r.ttr, r.acted) for r in recorded] == [("resolved", 60.0, True),
                                                                      ("resolved", 60.0, False)]


def test_a_store_of_the_previous_schema_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
CREATE TABLE runs (job_id TEXT PRIMARY KEY, host TEXT NOT NULL, alertname TEXT, fingerprint TEXT, starts_at TEXT,
  created REAL NOT NULL, started REAL, ended REAL, status TEXT NOT NULL, rc INTEGER, duration REAL,
  report_path TEXT, private_data_dir TEXT, explanation TEXT);
CREATE TABLE handled (fingerprint TEXT NOT NULL, starts_at TEXT NOT NULL, status TEXT NOT NULL, job_id TEXT,
  PRIMARY KEY (fingerprint, starts_at, status));
INSERT INTO runs (job_id, host, created, status) VALUES ('j1', 'w-1', 1, 'running');
INSERT INTO handled VALUES ('fp-w-1-RayWorkerDown', '2026-11-27T18:00:00Z', 'firing', 'j1');
""")
    old.close()
    store = Store(path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert store.run("j1")["dry"] == 0
        assert decide(store, T0, firing("w-1"))[0].kind == "deduped"  # the handled alert is kept, as live
    finally:
        store.close()
    assert Store(path).db.execute("PRAGMA user_version").fetchone()[0] == 2  # opening again changes nothing


def test_the_audit_is_pruned_to_its_size_cap_oldest_first(store):
    labels = {"alertname": "Noise", "fleet_host": "w-1", "blob": "x" * 3000}
    for index in range(400):
        store.record_notification([Alert("firing", f"fp-{index}", "2026-11-27T18:00:00Z", "", labels, "w-1")],
                                  T0 + index, LIMITS, INVENTORY)
    assert store.size() > 1024 * 1024
    removed = store.prune(T0 + 400, keep_days=90, max_bytes=512 * 1024)
    assert store.size() <= 512 * 1024
    ids = [r[0] for r in store.db.execute("SELECT id FROM decisions ORDER BY id")]
    assert removed == 400 - len(ids) and ids[-1] == 400 and ids == list(range(ids[0], 401))
    # Age: rows older than keep_days go as well.
    assert store.prune(T0 + 400 + 91 * 86400, keep_days=90) == len(ids)


def test_handled_alerts_are_pruned_too(store):
    resolved = [Alert("resolved", f"fp-{i}", "2026-11-27T18:00:00Z", "2026-11-27T18:01:00Z",
                      {"alertname": "X", "fleet_host": f"not-ours-{i}"}, f"not-ours-{i}") for i in range(3000)]
    store.record_notification(resolved, T0, LIMITS, INVENTORY)
    assert store.db.execute("SELECT count(*) FROM handled").fetchone()[0] == 3000
    store.prune(T0 + 1, keep_days=90, max_bytes=256 * 1024)
    assert store.size() <= 256 * 1024
    assert store.db.execute("SELECT count(*) FROM handled").fetchone()[0] < 3000
    store.prune(T0 + 91 * 86400, keep_days=90)
    assert store.db.execute("SELECT count(*) FROM handled").fetchone()[0] == 0
