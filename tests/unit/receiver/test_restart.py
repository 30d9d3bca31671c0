"""A receiver process killed mid-run (SIGKILL to it alone: its run's processes live on, as they would outside
systemd) loses no decision; at the next start the leftover run is killed before anything is served and
recorded as interrupted; the next alert for that host starts one run, never two; SIGTERM cancels the run in
progress, its forks included, and exits cleanly. Real processes, real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import yaml

from fleetwarden.receiver import jobs
from fleetwarden.receiver.store import Store

from .conftest import alert, db_rows, make_settings, notification, post, request, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(config_path, port) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetwarden.cli", "receiver", "--config", str(config_path), "serve"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def healthy():
        assert process.poll() is None, process.stderr.read().decode()
        try:
            return request(f"http://127.0.0.1:{port}", "GET", "/healthz")[0] == 200
        except OSError:
            return False

    wait_for(healthy, timeout=60)
    return process


def test_killed_mid_run_then_restarted(project, tmp_path):
    port = free_port()
    config_path = tmp_path / "receiver.yml"
    config_path.write_text(yaml.safe_dump({
        "token_file": str(project["token_file"]), "state_dir": str(project["state_dir"]),
        "playbook": str(project["playbook"]), "inventory": str(project["inventory"]), "port": port,
        "limits": {"budget_percent": 100}}))
    settings = make_settings(project)
    url = f"http://127.0.0.1:{port}"

    process = start(config_path, port)
    try:
        _, answer = post(url, notification(alert("fw-slow"), alert("fw-ok-1", remediate="false"),
                                           alert("not-ours")), project["token"])
        answered = [(d["host"], d["decision"]) for d in answer["decisions"]]
        assert answered == [("fw-slow", "started"), ("fw-ok-1", "received"), ("not-ours", "unknown_host")]
        job_id = answer["decisions"][0]["job_id"]
        wait_for(lambda: db_rows(settings, "SELECT 1 FROM runs WHERE job_id=? AND status='running'", (job_id,)))
        wait_for(lambda: list((settings.runs_dir / job_id / "artifacts").glob("*/job_events/*.json")))
        wait_for(lambda: len(jobs.run_processes(job_id)) >= 2)  # ansible-playbook and its fork (own session)
    finally:
        process.kill()
        process.wait(10)
    leftovers = jobs.run_processes(job_id)
    assert leftovers, "the run should outlive a receiver killed alone"

    # Every answered decision is on disk; the run was left "running".
    kinds = [(r["host"], r["kind"]) for r in db_rows(settings, "SELECT * FROM decisions ORDER BY id")]
    assert kinds == answered
    assert db_rows(settings, "SELECT status FROM runs WHERE job_id=?", (job_id,)) == [{"status": "running"}]

    process = start(config_path, port)
    try:
        # The leftover run was killed before the receiver answered anything.
        assert jobs.run_processes(job_id) == []
        run = Store(settings.db_path).run(job_id)
        assert run["status"] == "interrupted" and run["ended"] is not None
        assert db_rows(settings, "SELECT kind, job_id FROM decisions WHERE kind='interrupted'") == [
            {"kind": "interrupted", "job_id": job_id}]
        # The same alert again (Alertmanager's next notification) is handled: a new run starts.
        _, answer = post(url, notification(alert("fw-slow")), project["token"])
        [decision] = answer["decisions"]
        assert decision["decision"] == "started" and decision["job_id"] != job_id
        new_job = decision["job_id"]
        wait_for(lambda: db_rows(settings, "SELECT 1 FROM runs WHERE job_id=? AND status='running'", (new_job,)))
        wait_for(lambda: len(jobs.run_processes(new_job)) >= 2)
        assert jobs.run_processes(job_id) == []  # one run on the host, never two
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert time.monotonic() - started < 30
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert Store(settings.db_path).run(new_job)["status"] == "canceled"
    assert jobs.run_processes(new_job) == []  # SIGTERM's cancel killed the forks too
    assert not (settings.runs_dir / new_job / "tmp").exists()
    # The evidence of the interrupted run is kept.
    assert (settings.runs_dir / job_id / "artifacts" / job_id / "stdout").exists()
