"""Real ansible-runner runs of a stand-in playbook on localhost: what a run records, timeouts, cancel,
evidence kept and rotated."""

from __future__ import annotations

import json
import os
import threading
import time

from fleetwarden.receiver import jobs
from fleetwarden.receiver.config import Limits

from .conftest import alert, db_rows, make_settings, notification, post, wait_for

SECRET = "s3cret-" + "value"  # a static extravar standing for a secret


def test_successful_run_records_rc_status_duration_and_report(project):
    settings = make_settings(project, extravars={"recover_serial": 1, "db_secret": SECRET})
    result = jobs.run_job(settings, "job-ok", "fw-ok-1", threading.Event())
    assert (result.status, result.rc) == ("successful", 0)
    assert 0 < result.duration < 120
    evidence = settings.runs_dir / "job-ok"
    assert result.report_path == str(evidence / "reports" / "standin-run" / "fw-ok-1.json")
    # The playbook got `target` as data: exactly the inventory name, and the report is kept in the evidence.
    assert json.loads((evidence / "reports/standin-run/fw-ok-1.json").read_text()) == {
        "host": "fw-ok-1", "target": "fw-ok-1"}
    assert (evidence / "artifacts" / "job-ok" / "status").read_text() == "successful"
    assert "PLAY RECAP" in (evidence / "artifacts" / "job-ok" / "stdout").read_text()
    # suppress_env_files: runner writes no env files of its own; env/ holds the timeouts and the extravars we
    # gave it, the extravars in a 0600 file, never on ansible-playbook's command line.
    assert sorted(p.name for p in (evidence / "env").iterdir()) == ["extravars", "settings"]
    assert oct((evidence / "env" / "extravars").stat().st_mode & 0o777) == "0o600"
    assert json.loads((evidence / "env" / "extravars").read_text())["db_secret"] == SECRET
    command = json.loads((evidence / "artifacts" / "job-ok" / "command").read_text())["command"]
    assert "-e" in command and f"@{evidence}/env/extravars" in command
    assert not any("s3cret" in word for word in command)
    assert not (evidence / "tmp").exists()  # ansible's local temp, removed with the run
    assert json.loads((evidence / "env" / "settings").read_text())["idle_timeout"] == settings.idle_timeout_s
    assert oct(evidence.stat().st_mode & 0o777) == "0o700"


def test_extravars_are_a_dict_with_the_target(project):
    settings = make_settings(project, extravars={"recover_serial": 1})
    private = settings.runs_dir / "j"
    assert jobs.extravars_for(settings, "fw-ok-1", private) == {
        "recover_serial": 1, "target": "fw-ok-1", "report_dir": str(private / "reports")}


def test_failed_run(project):
    settings = make_settings(project)
    result = jobs.run_job(settings, "job-fail", "fw-fail", threading.Event())
    assert result.status == "failed" and result.rc == 2
    assert result.report_path is None


def test_job_timeout(project):
    settings = make_settings(project, job_timeout_s=3, idle_timeout_s=600)
    result = jobs.run_job(settings, "job-jt", "fw-slow", threading.Event())
    assert result.status == "timeout" and result.explanation == "job_timeout reached"
    assert 3 <= result.duration < 30


def test_idle_timeout(project):
    settings = make_settings(project, job_timeout_s=600, idle_timeout_s=3)
    result = jobs.run_job(settings, "job-it", "fw-slow", threading.Event())
    assert result.status == "timeout" and result.explanation == "idle_timeout reached"
    assert result.duration < 30


def test_runs_through_the_receiver_and_cancel_on_shutdown(live, project):
    receiver = live(limits=Limits(budget_percent=50))
    status, answer = post(receiver.url, notification(alert("fw-ok-2"), alert("fw-slow")), token=project["token"])
    assert status == 202
    assert [d["decision"] for d in answer["decisions"]] == ["started", "started"]
    jobs_by_host = {d["host"]: d["job_id"] for d in answer["decisions"]}

    def finished(host):
        rows = db_rows(receiver.settings, "SELECT * FROM runs WHERE job_id=?", (jobs_by_host[host],))
        return rows[0] if rows and rows[0]["ended"] else None

    ok = wait_for(lambda: finished("fw-ok-2"), timeout=90)
    assert (ok["status"], ok["rc"]) == ("successful", 0) and ok["duration"] > 0
    assert ok["report_path"].endswith("/fw-ok-2.json") and os.path.exists(ok["report_path"])
    # A second alert for the slow host while its run goes on joins it.
    wait_for(lambda: db_rows(receiver.settings, "SELECT 1 FROM runs WHERE host='fw-slow' AND status='running'"))
    _, answer = post(receiver.url, notification(alert("fw-slow", alertname="RayWorkerNotAlive")),
                     token=project["token"])
    assert answer["decisions"][0]["decision"] == "joined"
    assert answer["decisions"][0]["job_id"] == jobs_by_host["fw-slow"]
    started = time.monotonic()
    receiver.stop()
    assert time.monotonic() - started < 30
    slow = finished("fw-slow")
    assert slow["status"] == "canceled" and slow["rc"] == 254
    assert jobs.run_processes(jobs_by_host["fw-slow"]) == []  # ansible's forks (own sessions) killed too
    assert [h for _, h in receiver.recorder.calls] == ["fw-ok-2", "fw-slow"]
    # The log shows the outcome next to the decision.
    from fleetwarden.receiver.store import Store

    rows = Store(receiver.settings.db_path).rows(host="fw-ok-2")
    assert [(r["kind"], r["run_status"], r["rc"]) for r in rows] == [("started", "successful", 0)]


def test_rotation_keeps_the_newest_and_the_recent(tmp_path):
    now = time.time()
    for index in range(6):
        path = tmp_path / f"job-{index}"
        path.mkdir()
        age_days = {0: 0, 1: 1, 2: 2, 3: 3, 4: 20, 5: 30}[index]
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    removed = jobs.rotate_runs(tmp_path, keep_runs=3, keep_days=14, active={"job-4"}, now=now)
    # beyond the newest three: job-3 and job-5 go; job-4 is too old but still running, so it stays
    assert sorted(removed) == ["job-3", "job-5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-0", "job-1", "job-2", "job-4"]
    removed = jobs.rotate_runs(tmp_path, keep_runs=10, keep_days=14, active=set(), now=now)
    assert removed == ["job-4"]


def test_a_run_in_its_own_process_gets_the_same_settings_and_result(project):
    from fleetwarden.receiver import run_process as worker

    settings = make_settings(project, extravars={"recover_serial": 1}, limits=Limits(max_attempts=7), run_nice=5)
    assert worker.settings_from_json(json.loads(json.dumps(worker.settings_to_json(settings)))) == settings
    result = worker.run_job_in_process(settings, "job-proc", "fw-ok-3", threading.Event())
    assert (result.status, result.rc) == ("successful", 0)
    assert result.report_path.endswith("/fw-ok-3.json")
    assert jobs.run_processes("job-proc") == []
