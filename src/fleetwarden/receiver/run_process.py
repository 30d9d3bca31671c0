"""A run in a process of its own: `python -m fleetwarden.receiver.run_process` reads {settings, job_id, host} as JSON
on stdin, runs `jobs.run_job` at the run's nice level, and prints its RunResult as JSON; SIGTERM cancels it.

In a thread of the receiver, ansible-runner's Python work (its pexpect loop, events, artifacts) shared the
receiver's GIL, and at nice 10 a run thread holding the GIL could be off the CPU while the event loop waited
for it: acknowledgements waited on runs. In a process of its own, it cannot.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from fleetwarden.receiver import jobs
from fleetwarden.receiver.config import Limits, Settings

_PATHS = ("token_file", "state_dir", "playbook", "inventory", "project_dir")


def settings_to_json(settings: Settings) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(settings), default=str))


def settings_from_json(data: dict) -> Settings:
    values = {k: (Path(v) if k in _PATHS and v is not None else v) for k, v in data.items() if k != "limits"}
    return Settings(**values, limits=Limits(**data["limits"]))


def run_job_in_process(settings: Settings, job_id: str, host: str, cancel: threading.Event) -> jobs.RunResult:
    """jobs.run_job in a child process; blocks (the server calls it in an executor), polling for the cancel."""
    started = time.monotonic()
    request = json.dumps({"settings": settings_to_json(settings), "job_id": job_id, "host": host})
    process = subprocess.Popen([sys.executable, "-m", "fleetwarden.receiver.run_process"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, env={**os.environ, jobs.RUN_MARKER: job_id})
    try:
        process.stdin.write(request.encode())
        process.stdin.close()
        signalled = False
        while True:
            try:
                process.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if cancel.is_set() and not signalled:
                    process.terminate()  # the child cancels its run and still prints its result
                    signalled = True
        output = process.stdout.read().decode(errors="replace").strip().splitlines()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        jobs.end_run(job_id)  # whatever the child could not kill (it was killed itself)
    try:
        return jobs.RunResult(**json.loads(output[-1]))
    except (IndexError, ValueError, TypeError):
        return jobs.RunResult("error", None, time.monotonic() - started, None,
                              f"the run's process ended with {process.returncode} and no result")


def main() -> int:
    request = json.loads(sys.stdin.read())
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    settings = settings_from_json(request["settings"])
    os.setpriority(os.PRIO_PROCESS, 0, settings.run_nice)  # below the receiver; ansible inherits it
    result = jobs.run_job(settings, request["job_id"], request["host"], cancel)
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
