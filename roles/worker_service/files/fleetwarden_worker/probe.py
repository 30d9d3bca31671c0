"""probe NAME: the liveness probe service.

Heartbeat age, a command in the container, the raylet's gRPC health; K failures in a row kill the container (the
unit restarts it).
"""

import json
import os
import subprocess
import time

from fleetwarden_worker import common, health
from fleetwarden_worker.common import ERR, INFO, NOTICE, WARNING, log


def probe_checks(probe, state, name, raylet_answer=None):
    """(ok, reason) for one probe round; ok is None when nothing can be concluded (dockerd away, not running).
    raylet_answer: the raylet's (ok, detail) when the round asked it already (probe_round), else asked here."""
    if state is None:
        return None, "dockerd does not answer"
    if state == () or not state[1]:
        return None, "container not running"
    _container_id, _running, _exit_code, pid, address = state
    heartbeat = probe.get("heartbeat")
    if heartbeat:
        try:
            age = time.time() - os.stat(f"/proc/{pid}/root{heartbeat['path']}").st_mtime
        except OSError:
            return False, "heartbeat file {} is missing".format(heartbeat["path"])
        if age > heartbeat["max_age"]:
            return False, f"heartbeat file {heartbeat['path']} is {age:.0f}s old (max {heartbeat['max_age']}s)"
    raylet = probe.get("raylet")
    if raylet:
        host = "127.0.0.1" if probe.get("host_network") or not address else address
        ok, detail = raylet_answer or health.grpc_health(host, raylet["port"], timeout=probe["timeout"])
        if not ok:
            return False, f"raylet at {host}:{raylet['port']}: {detail}"
    if probe.get("command"):
        result = common.docker("exec", name, *probe["command"], timeout=probe["timeout"])
        if result.returncode == 124:
            return False, "probe command did not finish within {}s".format(probe["timeout"])
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
            return False, f"probe command exited {result.returncode}: {last[0][:200]}"
    return True, "ok"


def probe_round(config, name):
    """One round. On the host network the raylet's address is known before docker inspect answers, so the gRPC
    check runs while inspect runs: a round lasts the longer of the two, not their sum (a hung raylet costs the
    whole timeout each round, and the threshold counts rounds)."""
    if not (config.get("raylet") and config.get("host_network")):
        return probe_checks(config, common.container_state(name), name)
    state_of = common.container_state_later(name)
    raylet_answer = health.grpc_health("127.0.0.1", config["raylet"]["port"], timeout=config["timeout"])
    return probe_checks(config, state_of(), name, raylet_answer)


def restart_worker(name, reason):
    unit = common.unit_name(name)
    log(ERR, f"worker {name} failed its probe: {reason}; killing the container so {unit} restarts it")
    try:
        os.makedirs(common.STATE_DIR, exist_ok=True)
        with open(os.path.join(common.STATE_DIR, name + ".probe-failure.json"), "w") as handle:
            json.dump({"time": time.time(), "reason": reason}, handle)
    except OSError:
        pass
    if common.docker("kill", "--signal", "KILL", name, timeout=15).returncode != 0:
        subprocess.run([common.SYSTEMCTL, "restart", "--no-block", unit], check=False)


class ProbeCounter:
    """Consecutive failures, docker-style: failures in the start period count only once a round has passed."""

    def __init__(self, threshold, start_period, now):
        self.threshold, self.start_period = threshold, start_period
        self.started, self.passed, self.failures = now, False, 0

    def record(self, ok, reason, now):
        """One round's verdict -> "restart" when the worker must restart, else None (and logs what happened)."""
        if ok is None:
            return None
        if ok:
            if self.failures:
                log(NOTICE, f"probe ok again after {self.failures} failure(s)")
            self.passed, self.failures = True, 0
            return None
        if not self.passed and now - self.started < self.start_period:
            log(INFO, f"starting ({now - self.started:.0f}s of {self.start_period}s grace): {reason}")
            return None
        self.failures += 1
        log(WARNING, f"probe failed ({self.failures} of {self.threshold}): {reason}")
        if self.failures < self.threshold:
            return None
        self.started, self.passed, self.failures = now, False, 0
        return "restart"


def probe(name, clock=time.monotonic, sleep=time.sleep, rounds=None):
    config = common.load_declaration(name)["probe"]
    if not config.get("enabled"):
        log(NOTICE, f"no probe declared for {name}")
        return 0
    counter = ProbeCounter(config["failure_threshold"], config["start_period"], clock())
    while rounds is None or rounds > 0:
        rounds = None if rounds is None else rounds - 1
        round_started = clock()
        ok, reason = probe_round(config, name)
        if counter.record(ok, reason, clock()) == "restart":
            restart_worker(name, reason)
        sleep(max(0.0, config["interval"] - (clock() - round_started)))
    return 0
