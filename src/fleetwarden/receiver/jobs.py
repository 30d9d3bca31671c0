"""Runs of the recovery playbook through ansible-runner, embedded as ansible-rulebook and AWX do.

One private data dir per job (ident = the job id), kept as evidence and rotated; extravars as a dict;
job and idle timeouts; a cancel callback for shutdown. `run_job` blocks: the server calls it in an executor.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ansible_runner

from fleetwarden.receiver.config import Settings

log = logging.getLogger("fleetwarden.receiver")


@dataclass(frozen=True)
class RunResult:
    status: str  # successful, failed, timeout, canceled, error
    rc: int | None
    duration: float
    report_path: str | None
    explanation: str | None = None


def extravars_for(settings: Settings, host: str, private_data_dir: Path) -> dict:
    """The run's extravars, as a dict: the static ones, the target, and a report dir inside the evidence."""
    return {**settings.extravars, "target": host, "report_dir": str(private_data_dir / "reports")}


def _path_with_venv() -> str:
    """PATH with this interpreter's bin first, so that the venv's ansible-playbook runs, however we started."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return path if path.split(os.pathsep)[0] == venv_bin else venv_bin + os.pathsep + path


def find_report(private_data_dir: Path, host: str) -> str | None:
    """recover.yml's JSON report for `host` (<report_dir>/<run id>/<host>.json), newest first."""
    reports = sorted((private_data_dir / "reports").glob(f"*/{host}.json"), key=lambda p: p.stat().st_mtime)
    return str(reports[-1]) if reports else None


def run_job(settings: Settings, job_id: str, host: str, cancel: threading.Event) -> RunResult:
    """One run of the playbook against `host`; never raises for a playbook's failure."""
    private_data_dir = settings.runs_dir / job_id
    private_data_dir.mkdir(parents=True, exist_ok=True)
    private_data_dir.chmod(0o700)
    started = time.monotonic()
    # Linux nice values are per thread and inherited by children: the playbook runs below the receiver,
    # so acknowledgements stay fast while runs use the CPU.
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), settings.run_nice)
    limits = {"job_timeout": settings.job_timeout_s, "idle_timeout": settings.idle_timeout_s,
              # how often runner checks the cancel callback and the idle timer while the play is quiet
              "pexpect_timeout": 1}
    # ansible-runner 2.4 drops a `settings` dict when env/settings is absent, so the limits go in that
    # file (timeouts only, nothing secret); `timeout` sets job_timeout either way.
    env_dir = private_data_dir / "env"
    env_dir.mkdir(exist_ok=True)
    (env_dir / "settings").write_text(json.dumps(limits), encoding="utf-8")
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            ident=job_id,
            playbook=str(settings.playbook),
            inventory=str(settings.inventory),
            project_dir=str(settings.run_cwd),
            extravars=extravars_for(settings, host, private_data_dir),
            settings=dict(limits),
            timeout=settings.job_timeout_s,
            suppress_env_files=True,
            quiet=True,
            cancel_callback=cancel.is_set,
            envvars={"ANSIBLE_FORCE_COLOR": "0", "PATH": _path_with_venv()},
        )
    except Exception as exc:  # a broken runner setup is a result to record, not a crash of the receiver
        log.exception("job %s could not run", job_id)
        return RunResult("error", None, time.monotonic() - started, None, f"{type(exc).__name__}: {exc}")
    duration = time.monotonic() - started
    explanation = None
    if runner.status == "timeout":
        explanation = ("job_timeout" if duration >= settings.job_timeout_s else "idle_timeout") + " reached"
    elif runner.status == "canceled":
        explanation = "canceled: the receiver is shutting down"
    return RunResult(runner.status, runner.rc, duration, find_report(private_data_dir, host), explanation)


def rotate_runs(runs_dir: Path, keep_runs: int, keep_days: int, active: set[str], now: float | None = None) -> list:
    """Remove run dirs beyond the newest `keep_runs` or older than `keep_days`; never an active one."""
    if not runs_dir.is_dir():
        return []
    now = time.time() if now is None else now
    dirs = sorted((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for index, path in enumerate(dirs):
        if path.name in active:
            continue
        if index >= keep_runs or now - path.stat().st_mtime > keep_days * 86400:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def inventory_hosts(inventory: Path) -> frozenset:
    """Every host name in the inventory, as ansible-inventory sees it (plugins and group_vars included)."""
    binary = Path(sys.executable).parent / "ansible-inventory"
    result = subprocess.run([str(binary if binary.exists() else "ansible-inventory"), "-i", str(inventory),
                             "--list", "--export"], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ansible-inventory -i {inventory} failed: {result.stderr.strip()[-500:]}")
    data = json.loads(result.stdout)
    hosts = set(data.get("_meta", {}).get("hostvars", {}))
    for group in data.values():
        if isinstance(group, dict):
            hosts.update(group.get("hosts", []))
    return frozenset(hosts)
