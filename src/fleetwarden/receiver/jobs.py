"""Runs of the recovery playbook through ansible-runner, embedded as ansible-rulebook and AWX do.

One private data dir per job (ident = the job id), kept as evidence and rotated; extravars as a dict;
job and idle timeouts; a cancel callback for shutdown. `run_job` blocks: the server calls it in an executor.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ansible_runner

from fleetwarden.receiver.config import Settings

log = logging.getLogger("fleetwarden.receiver")
# Every process of a run carries this in its environment: ansible's forks start sessions of their own (setsid),
# so neither a process group nor a parent chain finds them all, and after a kill -9 of the receiver nothing else
# ties them to their run.
RUN_MARKER = "FLEETWARDEN_RECEIVER_JOB"


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
    # Linux nice values are per thread and inherited by children: the playbook runs below the receiver. (The
    # receiver runs this in a process of its own, worker.py, niced as a whole.)
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), settings.run_nice)
    limits = {"job_timeout": settings.job_timeout_s, "idle_timeout": settings.idle_timeout_s,
              # how often runner checks the cancel callback and the idle timer while the play is quiet
              "pexpect_timeout": 1}
    # ansible-runner 2.4 drops a `settings` dict when env/settings is absent, so the limits go in that
    # file (timeouts only, nothing secret); `timeout` sets job_timeout either way.
    env_dir = private_data_dir / "env"
    env_dir.mkdir(exist_ok=True)
    (env_dir / "settings").write_text(json.dumps(limits), encoding="utf-8")
    # Extravars (static ones may be secret) go in a 0600 file that ansible-runner passes as -e @file, never on
    # a command line where ps shows them to any local user.
    write_private(env_dir / "extravars", json.dumps(extravars_for(settings, host, private_data_dir)))
    local_tmp = private_data_dir / "tmp"  # ansible's local temp files: removed with the run, whatever ends it
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            ident=job_id,
            playbook=str(settings.playbook),
            inventory=str(settings.inventory),
            project_dir=str(settings.run_cwd),
            settings=dict(limits),
            timeout=settings.job_timeout_s,
            suppress_env_files=True,
            quiet=True,
            cancel_callback=cancel.is_set,
            envvars={"ANSIBLE_FORCE_COLOR": "0", "PATH": _path_with_venv(), RUN_MARKER: job_id,
                     "ANSIBLE_LOCAL_TEMP": str(local_tmp)},
        )
    except Exception as exc:  # a broken runner setup is a result to record, not a crash of the receiver
        log.exception("job %s could not run", job_id)
        return RunResult("error", None, time.monotonic() - started, None, f"{type(exc).__name__}: {exc}")
    finally:
        end_run(job_id)  # ansible's forks and ssh outlive a canceled or timed-out playbook
        shutil.rmtree(local_tmp, ignore_errors=True)
    duration = time.monotonic() - started
    explanation = None
    if runner.status == "timeout":
        explanation = ("job_timeout" if duration >= settings.job_timeout_s else "idle_timeout") + " reached"
    elif runner.status == "canceled":
        explanation = "canceled: the receiver is shutting down"
    return RunResult(runner.status, runner.rc, duration, find_report(private_data_dir, host), explanation)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, created so from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def run_processes(job_id: str) -> list[int]:
    """The processes of a run: those whose environment carries RUN_MARKER=job_id (this user's, via /proc)."""
    marker = f"{RUN_MARKER}={job_id}".encode()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environment = handle.read()
        except OSError:  # gone, or another user's
            continue
        if marker in environment.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_run(job_id: str, timeout: float = 10) -> int:
    """SIGKILL every process of a run until none is left; how many there were. Raises if some survive."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while pids := run_processes(job_id):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed.update(pids)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} of run {job_id} survive SIGKILL")
        time.sleep(0.05)
    return len(killed)


def end_run(job_id: str) -> int:
    """Kill what is left of a run, logging it; never raises (a run's end must be recorded whatever happens)."""
    try:
        leftovers = kill_run(job_id)
    except (OSError, RuntimeError):
        log.exception("could not kill what is left of run %s", job_id)
        return 0
    if leftovers:
        log.warning("run %s left %d processes behind: killed", job_id, leftovers)
    return leftovers


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
    return inventory_listing(inventory)[0]


def inventory_listing(inventory: Path) -> tuple[frozenset, dict[str, frozenset]]:
    """(every host, {group: its hosts, those of its children included}) as ansible-inventory sees them."""
    binary = Path(sys.executable).parent / "ansible-inventory"
    result = subprocess.run([str(binary if binary.exists() else "ansible-inventory"), "-i", str(inventory),
                             "--list", "--export"], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ansible-inventory -i {inventory} failed: {result.stderr.strip()[-500:]}")
    data = json.loads(result.stdout)
    hosts = set(data.get("_meta", {}).get("hostvars", {}))
    direct = {name: group for name, group in data.items() if name != "_meta" and isinstance(group, dict)}
    for group in direct.values():
        hosts.update(group.get("hosts", []))

    def members(name: str, seen: frozenset) -> set:
        group = direct.get(name, {})
        found = set(group.get("hosts", []))
        for child in group.get("children", []):
            if child not in seen:
                found |= members(child, seen | {child})
        return found

    groups = {name: frozenset(members(name, frozenset({name}))) for name in direct}
    groups["all"] = frozenset(hosts)
    return frozenset(hosts), groups
