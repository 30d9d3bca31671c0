"""supervise NAME: the worker unit's main process.

Starts the container, tells systemd it is ready, waits for it to exit and exits with its status. It survives
dockerd restarts (live-restore keeps the container; the unit stays active). Each time the container ends, it
records the death (deaths.py) before the unit replaces the container.
"""

import signal
import subprocess
import time

from fleetwarden_worker import common, deaths
from fleetwarden_worker.common import ERR, INFO, NOTICE, WARNING, log


def exited(process, timeout):
    """Waits up to timeout seconds for process to end: returns as soon as it does (a container's death is seen
    within milliseconds, not at the next tick of a poll loop)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def supervise(name, stop_timeout):
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    started = common.docker("start", name, timeout=300)
    if started.returncode != 0:
        log(ERR, f"docker start {name} failed: {started.stderr.strip()}")
        return 1
    state = common.container_state(name)
    if not state:
        log(ERR, f"container {name} is gone right after its start")
        return 1
    container_id = state[0]
    log(INFO, f"container {name} ({container_id[:12]}) started")
    common.sd_notify(f"READY=1\nSTATUS=container {container_id[:12]} running")
    while True:
        waiter = subprocess.Popen([common.DOCKER, "wait", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        while not exited(waiter, 0.2):
            if stopping:
                waiter.kill()
                log(INFO, f"stopping container {name} (up to {stop_timeout}s)")
                common.docker("stop", "--time", str(stop_timeout), name, timeout=stop_timeout + 20)
                deaths.record(name, stopped_by_unit=True)
                return 0
        out, err = waiter.communicate()
        if waiter.returncode == 0 and out.strip().lstrip("-").isdigit():
            status = int(out.strip())
            log(NOTICE if status == 0 else WARNING, f"container {name} exited with status {status}")
            deaths.record(name, stopped_by_unit=False)
            return status & 0xFF
        # dockerd went away (a restart): with live-restore the container keeps running. Wait for dockerd.
        log(WARNING, f"lost dockerd while waiting for {name} ({err.strip()}); waiting for it to answer")
        common.sd_notify("STATUS=waiting for dockerd")
        state = common.container_state(name)
        while state is None and not stopping:
            time.sleep(0.5)
            state = common.container_state(name)
        if stopping:
            continue
        if state == ():
            log(ERR, f"container {name} no longer exists")
            return 1
        if state[0] != container_id:
            log(ERR, f"container {name} was replaced ({state[0][:12]}, not {container_id[:12]})")
            return 1
        if not state[1]:
            log(WARNING, f"container {name} exited with status {state[2]} while dockerd was away")
            deaths.record(name, stopped_by_unit=False)
            return state[2] & 0xFF
        log(NOTICE, f"dockerd answers again; container {name} ({container_id[:12]}) kept running")
        common.sd_notify(f"STATUS=container {container_id[:12]} running")
