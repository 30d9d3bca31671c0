"""Alert to recovery, end to end, on the running lab: a fault on a Ray worker, then Prometheus ->
Alertmanager -> the recovery receiver on the controller -> recover.yml -> the worker healthy and ALIVE in the
Ray head -> the alert resolved -> the receiver's audit row with the time to recover.

Shared by tests/integration/test_receiver_e2e.py and benchmarks/receiver_e2e.py (benchmarks do not import
tests/). Everything on a lab host runs through `docker exec <its container>` on this machine; Prometheus and
Alertmanager are reached on the loopback ports `fleetwarden lab up` publishes; the receiver through its own CLI
on the controller, as the deployed unit runs it (binary, settings file and user read from the unit).

The three faults, all on the Ray worker that site.yml deploys (ray_cluster_worker_name) on one worker host:

- ``unit_stopped``: `systemctl stop` of its unit. Nothing restarts a stopped unit; WorkerDown fires.
- ``restarts_exhausted``: its container is SIGKILLed at every start until systemd gives up (the lab's restart
  budget, ray_cluster_restart.max_per_hour, spent: the unit is `failed`). The kills then stop (the crash was
  transient); WorkerRestartsExhausted fires. The fault time is the moment systemd gave up. While the crash loop
  runs (minutes: max_per_hour + 1 starts), the worker is down and WorkerDown fires too; a live receiver would
  start recover.yml in the middle of the loop, against the kills. So the loop runs under an Alertmanager
  silence of this host's WorkerDown (what an operator does during maintenance), removed when the test ends:
  the receiver acts on WorkerRestartsExhausted alone.
- ``mount_killed``: the mount's (gcsfuse stand-in) process is SIGKILLed during a storage outage (the stand-in's
  bucket directory is away, as when gcsfuse cannot reach its bucket). A plain kill -9 of the mount process is
  healed by systemd itself in seconds (the worker Requires= the mount and restarts with it), faster than any
  alert fires, so it is no test of the receiver. Here the mount's first restart fails, so systemd stops the
  worker for a failed dependency; the outage then ends, the mount's own restarts (StartLimitIntervalSec=0)
  remount it, but nothing starts the worker again: it stays down until recover.yml starts it. WorkerDown (and
  MountLost, while the mount is down) fire.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fleetwarden.lab.inventory import MONITORING_PORTS
from fleetwarden_testing import ray_lab

FAULTS = ("unit_stopped", "restarts_exhausted", "mount_killed")
# mount_killed's injections at most, when a start systemd queued during the outage brings the worker back.
MOUNT_ATTEMPTS = 3
# The remediating alerts each fault is to fire (alertnames of roles/prometheus/files/fleetwarden-alerts.yml).
FAULT_ALERTS = {"unit_stopped": {"WorkerDown"}, "restarts_exhausted": {"WorkerRestartsExhausted"},
                "mount_killed": {"WorkerDown", "MountLost"}}
SILENCE_AUTHOR = "fleetwarden alert_e2e"
# restarts_exhausted's crash loop, on the worker host: SIGKILL each container of the worker as it starts, until
# systemd gives up on the unit (failed). `{unit}` and `{name}` are shell-quoted.
CRASH_LOOP = """
exec 3< <(exec docker events --filter container={name} --filter event=start --format '{{{{.ID}}}}')
events=$!
docker kill --signal KILL {name} >/dev/null 2>&1
while [ "$(systemctl show -p ActiveState --value {unit})" != failed ]; do
  if read -r -t 1 id <&3; then docker kill --signal KILL "$id" >/dev/null 2>&1
  else docker kill --signal KILL {name} >/dev/null 2>&1; fi
done
kill "$events"
"""
STANDIN_BUCKETS = "/var/lib/gcsfuse-standin/buckets"  # where the gcsfuse stand-in (tests/standins) reads buckets
# Asks the GCS (inside the Ray head's container) for the nodes that are alive: address -> node id.
_ALIVE_SNIPPET = """
import json
from ray._raylet import GcsClient
nodes = GcsClient(address="127.0.0.1:6379").get_all_node_info(timeout=5).values()
print(json.dumps({n.node_manager_address: n.node_id.hex() for n in sorted(nodes, key=lambda n: n.start_time_ms)
                  if n.state == 0}))
"""


class E2EError(AssertionError):
    """A step of the chain did not happen; the message says which and what was seen."""


Host = ray_lab.LabHost


def role_default(project: Path, role: str, name: str):
    """A role's default (roles/ROLE/defaults/main.yml): the one home of names such as the Ray worker's."""
    return yaml.safe_load((project / "roles" / role / "defaults" / "main.yml").read_text())[name]


def sh(host: Host, script: str, timeout: float = 60, check: bool = True) -> str:
    result = subprocess.run(["docker", "exec", host.container, "bash", "-c", script], capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise E2EError(f"{host.name}: {script!r} failed ({result.returncode}): {result.stderr[-1500:]}")
    return result.stdout


def unit_props(host: Host, unit: str, *props: str) -> dict[str, str]:
    out = sh(host, f"systemctl show {shlex.quote(unit)} --property={','.join(props)}", check=False)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _http(url: str, method: str = "GET", body: dict | None = None) -> object:
    """JSON from the lab's Prometheus or Alertmanager (http on loopback, published by `lab up`)."""
    if not url.startswith("http://127.0.0.1:"):
        raise E2EError(f"not a lab URL: {url}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - checked above: loopback http
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - checked above: loopback http
        text = response.read()
    return json.loads(text) if text.strip() else None


def _get(url: str) -> object:
    return _http(url)


def ansible_playbook(project: Path, inventory: Path, playbook: str, *args: str, extra_vars: dict | None = None,
                     timeout: float = 900) -> subprocess.CompletedProcess:
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), playbook, *args]
    if extra_vars is not None:
        argv += ["--extra-vars", json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="true",
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=timeout, env=env, check=False)


class Receiver:
    """The receiver deployed on the controller, driven through its CLI as its unit runs it."""

    UNIT = "fleetwarden-receiver.service"

    def __init__(self, host: Host):
        self.host = host
        props = unit_props(host, self.UNIT, "ExecStart", "User", "ActiveState")
        if props.get("ActiveState") != "active":
            raise E2EError(f"{host.name}: {self.UNIT} is {props.get('ActiveState') or 'missing'} (make lab)")
        argv = props["ExecStart"].split("argv[]=", 1)[1].split(" ;", 1)[0].split()
        self.binary, self.config_file = argv[0], argv[argv.index("--config") + 1]
        self.user = props.get("User") or "root"

    def cli(self, *args: str, timeout: float = 60) -> str:
        command = ["runuser", "-u", self.user, "--", self.binary, "receiver", "--config", self.config_file, *args]
        return sh(self.host, " ".join(map(shlex.quote, command)), timeout=timeout)

    def log(self, host: str | None = None, since: float | None = None) -> list[dict]:
        args = ["log", "--json"] + (["--host", host] if host else [])
        if since is not None:
            args += ["--since", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))]
        return json.loads(self.cli(*args))

    def status(self) -> dict:
        return json.loads(self.cli("status"))

    def settings(self) -> dict:
        return yaml.safe_load(sh(self.host, f"cat {shlex.quote(self.config_file)}"))

    def calm(self, hosts: list[str]) -> None:
        """No quarantine, no attempts counted, the breaker closed (each an audit row: released, reset)."""
        for name in hosts:
            self.cli("release", name, "--forget-attempts", "--reason", "a lab test starts from no attempts")
        self.cli("reset")

    def wait_cooled(self, host: str, timeout: float = 300) -> None:
        """Until the host's last run ended longer ago than the cooldown, so that a fault now starts a run."""
        limits = self.settings().get("limits") or {}
        cooldown = max(limits.get("cooldown_success_s", 600), limits.get("cooldown_failure_s", 300))
        runs = [r for r in self.log(host=host, since=time.time() - cooldown - 900) if r["kind"] == "started"]
        if not runs:
            return
        last = runs[-1]

        def over():  # the run's own row (other rows of the same second come first, or after)
            row = next(r for r in self.log(host=host, since=last["ts"] - 1) if r["id"] == last["id"])
            return row if row.get("run_status") not in (None, "queued", "running") else None

        last = ray_lab.wait_until(over, timeout, interval=2, what=f"the receiver's run on {host} over")
        ended = last["ts"] + (last.get("duration") or 0)
        time.sleep(max(0.0, ended + cooldown + 2 - time.time()))


class Lab:
    """The running lab as `make lab` leaves it, for the alert-to-recovery chain."""

    def __init__(self, project: Path, inventory: Path | None = None):
        self.project = project
        self.inventory = inventory or project / "inventory" / "lab" / "hosts.yml"
        self.hosts = ray_lab.read_inventory(self.inventory)
        if not self.hosts:
            raise E2EError(f"no lab runs (no {self.inventory}): make lab")
        self.head = next(h for h in self.hosts.values() if "head" in h.groups)
        self.workers = sorted((h for h in self.hosts.values() if "workers" in h.groups), key=lambda h: h.name)
        self.controller = next(h for h in self.hosts.values() if "controller" in h.groups)
        monitoring = next(h for h in self.hosts.values() if "monitoring" in h.groups)
        self.prometheus = ray_lab.published_url(monitoring, MONITORING_PORTS["prometheus"])
        self.alertmanager = ray_lab.published_url(monitoring, MONITORING_PORTS["alertmanager"])
        self.worker_name = role_default(project, "ray_cluster", "ray_cluster_worker_name")
        self.head_name = role_default(project, "ray_cluster", "ray_cluster_head_name")
        self.settle_s = role_default(project, "recovery", "recovery_settle_s")
        self.unit = f"fleetwarden-worker-{self.worker_name}.service"
        self.receiver = Receiver(self.controller)

    # --- the pieces of the chain ----------------------------------------------------------------------------------
    def prometheus_alerts(self, host: str) -> list[dict]:
        """Remediating alerts of this host that Prometheus has pending or firing."""
        alerts = _get(self.prometheus + "/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"].get("fleet_host") == host and a["labels"].get("remediate") == "true"]

    def rule_holds(self) -> dict[str, float]:
        """Each alert rule's `for:` in seconds, as Prometheus has loaded it."""
        groups = _get(self.prometheus + "/api/v1/rules?type=alert")["data"]["groups"]
        return {r["name"]: float(r.get("duration") or 0) for g in groups for r in g["rules"]}

    def alertmanager_active(self) -> list[dict]:
        """Remediating alerts Alertmanager holds as active (not resolved), any host."""
        query = urllib.parse.urlencode({"active": "true", "silenced": "false", "inhibited": "false",
                                        "filter": 'remediate="true"'})
        return _get(f"{self.alertmanager}/api/v2/alerts?{query}")

    def silence(self, alertname: str, host: str, minutes: int = 30) -> str:
        """An Alertmanager silence of one alert of one host; returns its id."""
        now = time.time()
        body = {"matchers": [{"name": "alertname", "value": alertname, "isRegex": False},
                             {"name": "fleet_host", "value": host, "isRegex": False}],
                "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 1)),
                "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + minutes * 60)),
                "createdBy": SILENCE_AUTHOR, "comment": "the crash loop of a fault test runs"}
        return _http(self.alertmanager + "/api/v2/silences", "POST", body)["silenceID"]

    def unsilence(self, silence_id: str) -> None:
        _http(f"{self.alertmanager}/api/v2/silence/{silence_id}", "DELETE")

    def alive(self) -> dict[str, str]:
        """The Ray head's ALIVE nodes: address -> node id ({} when the head cannot say)."""
        result = subprocess.run(["docker", "exec", "-i", self.head.container, "docker", "exec", "-i",
                                 self.head_name, "python3", "-"], input=_ALIVE_SNIPPET, capture_output=True,
                                text=True, timeout=60, check=False)
        if result.returncode != 0 or not result.stdout.strip():
            return {}
        return json.loads(result.stdout.strip().splitlines()[-1])

    def worker_state(self, host: Host) -> dict:
        """The Ray worker's unit state and container (id, running)."""
        props = unit_props(host, self.unit, "ActiveState", "SubState", "Result", "NRestarts")
        out = sh(host, f"docker inspect --format '{{{{.Id}}}} {{{{.State.Running}}}}' {self.worker_name}",
                 check=False).split()
        return {**props, "container": out[0] if out else None, "running": out[1:] == ["true"]}

    def healthy(self, host: Host) -> dict | None:
        """The worker's unit active, its container running, and its node ALIVE in the head; None otherwise."""
        state = self.worker_state(host)
        if state.get("ActiveState") != "active" or not state["running"]:
            return None
        node = self.alive().get(host.address)
        return {"container": state["container"], "node": node} if node else None

    def forget_history(self, host: Host) -> None:
        """recover.yml's death history of the host (roles/recovery: history.json under recovery_incident_root)
        forgotten, as the drill does between faults: three faults of one cause within the hour are the repeat a
        person must see (report_only), and a test that breaks one host again and again is not that."""
        root = role_default(self.project, "recovery", "recovery_incident_root")
        sh(host, f"rm -f {shlex.quote(root)}/history.json")

    def quiet(self, timeout: float = 300) -> None:
        """Until Alertmanager has no active remediating alert and Prometheus none pending or firing, and the
        Ray worker of every worker host is healthy (started again if an earlier test left it stopped or
        failed): no earlier alert can reach the receiver once it is live."""
        for host in self.workers:
            if self.worker_state(host).get("ActiveState") in ("inactive", "failed"):
                sh(host, f"systemctl reset-failed {self.unit}; systemctl start --no-block {self.unit}")
        ray_lab.wait_until(lambda: all(self.healthy(h) for h in self.workers), timeout, interval=2,
                           what="every Ray worker active and ALIVE in the head")
        ray_lab.wait_until(lambda: not self.alertmanager_active() and not any(self.prometheus_alerts(h.name)
                                                                              for h in self.hosts.values()),
                           timeout, interval=2, what="no remediating alert active in Prometheus or Alertmanager")

    def set_live(self, live: bool) -> subprocess.CompletedProcess:
        """The receiver's play of site.yml with recovery_receiver_dry_run set: live (false) or as the lab's
        inventory has it (true). A setting through the role; the receiver restarts with it."""
        run = ansible_playbook(self.project, self.inventory, "site.yml", "--tags", "recovery_receiver",
                               "--limit", "controller",
                               extra_vars={"recovery_receiver_dry_run": not live})
        if run.returncode != 0:
            raise E2EError(f"site.yml --tags recovery_receiver (live={live}) failed:\n{run.stdout[-4000:]}")
        if self.receiver.settings().get("dry_run") is live:
            raise E2EError(f"the receiver's settings still say dry_run={not live}")
        return run

    # --- faults --------------------------------------------------------------------------------------------------
    def inject(self, fault: str, host: Host) -> dict:
        """Causes `fault` on the host's Ray worker; returns {t0: the fault's time, ...what it did}."""
        if fault == "unit_stopped":
            t0 = time.time()
            sh(host, f"systemctl stop {self.unit}")
            return {"t0": t0}
        if fault == "restarts_exhausted":
            started = time.time()
            silence = self.silence("WorkerDown", host.name)
            # systemd's start-limit count reset first (reset-failed, as recover.yml does): the starts earlier tests
            # made within the hour would otherwise spend part of the budget, and systemd would give up sooner.
            sh(host, f"systemctl reset-failed {shlex.quote(self.unit)}")
            # Each start's container dies of SIGKILL (exit 137) the moment dockerd reports it started (its
            # `start` event), until the unit is failed; a kill on each quiet second too, so that a start the
            # event stream missed still dies. No polling of the docker CLI between starts: on a loaded machine
            # that polling slowed every start of the loop it was timing.
            sh(host, CRASH_LOOP.format(unit=shlex.quote(self.unit), name=shlex.quote(self.worker_name)),
               timeout=900)
            props = unit_props(host, self.unit, "ActiveState", "NRestarts", "StartLimitBurst")
            # systemd gave up when its start limit refused a restart (systemd 252 keeps Result=exit-code then).
            journal = sh(host, f"journalctl --unit {shlex.quote(self.unit)} --since @{int(started)} --no-pager "
                               "--output cat", check=False)
            return {"t0": time.time(), "crash_loop_s": time.time() - started, "state": props.get("ActiveState"),
                    "gave_up": "Start request repeated too quickly" in journal,
                    "restarts": int(props.get("NRestarts") or 0), "burst": int(props.get("StartLimitBurst") or 0),
                    "silence": silence}
        if fault == "mount_killed":
            # A start of the worker that systemd queued during the outage (a restart of the mount, its own or the
            # gcsfuse watchdog's) can still bring the worker back by itself once the mount is back: then the fault
            # did not happen as meant and no alert fires. Its injection is then made again, from a healthy worker.
            # The receiver acting on the fault's alert (MountLost fires while the mount is down) is the fault
            # working: a worker that recover.yml brought back is not one that came back by itself.
            again = {}
            for attempt in range(1, MOUNT_ATTEMPTS + 1):
                injected = self._mount_outage(host)
                if self._stays_down(host, injected["mount"]) or self._receiver_ran(host, injected["t0"]):
                    return dict(injected, attempts=attempt, **again)
                self.quiet()  # no alert of this attempt left to reach the receiver
                if self._receiver_ran(host, injected["t0"]):  # one did, late
                    return dict(injected, attempts=attempt, **again)
                # `before` of the timeline: the worker as it came back, the one this fault's next injection stops.
                again = {"before": self.healthy(host)}
            raise E2EError(f"{host.name}: {self.unit} came back by itself after each of {MOUNT_ATTEMPTS} mount "
                           "outages, so no alert would fire")
        raise ValueError(f"fault must be one of {', '.join(FAULTS)}, got {fault!r}")

    def _mount_outage(self, host: Host) -> dict:
        """The bucket away and the mount process SIGKILLed, until systemd has stopped the worker for its failed
        dependency; then the outage ends. Returns {t0, mount, outage_s}."""
        mount = self.mount_unit(host)
        bucket = self.mount_bucket(host, mount)
        away = f"{STANDIN_BUCKETS}/{bucket}"
        pid = unit_props(host, mount, "ExecMainPID").get("ExecMainPID")
        if not pid or pid == "0":
            raise E2EError(f"{host.name}: {mount} runs no process")
        t0 = time.time()
        sh(host, f"mv {away} {away}.outage && kill -KILL {pid}")
        try:
            # The worker is stopped for the failed dependency once the mount's restart has failed.
            ray_lab.wait_until(lambda: self.worker_state(host).get("ActiveState") in ("inactive", "failed")
                               and unit_props(host, mount, "ActiveState")["ActiveState"] != "active",
                               60, interval=0.5, what=f"{self.unit} stopped with {mount} down")
        finally:
            sh(host, f"mv {away}.outage {away}")  # the outage ends
        return {"t0": t0, "mount": mount, "outage_s": time.time() - t0}

    def _receiver_ran(self, host: Host, since: float) -> bool:
        return any(row["kind"] == "started" for row in self.receiver.log(host=host.name, since=since - 1))

    def _stays_down(self, host: Host, mount: str) -> bool:
        """Once the mount is active again and systemd has no job queued for the worker, whether the worker is down
        (the fault as meant: nothing will start it but recover.yml)."""
        def settled():
            jobs = sh(host, "systemctl list-jobs --plain --no-legend", check=False)
            queued = any(self.unit in line.split()[1:2] for line in jobs.splitlines() if line.strip())
            return unit_props(host, mount, "ActiveState")["ActiveState"] == "active" and not queued
        ray_lab.wait_until(settled, 60, interval=0.25, what=f"{mount} active, no job queued for {self.unit}")
        return self.worker_state(host).get("ActiveState") in ("inactive", "failed")

    def mount_unit(self, host: Host) -> str:
        requires = shlex.split(unit_props(host, self.unit, "Requires")["Requires"])  # names may be quoted
        mounts = [u for u in requires if "gcsfuse" in u]
        if len(mounts) != 1:
            raise E2EError(f"{host.name}: {self.unit} requires {requires}, expected one gcsfuse mount")
        return mounts[0]

    def mount_bucket(self, host: Host, mount: str) -> str:
        argv = unit_props(host, mount, "ExecStart")["ExecStart"].split("argv[]=", 1)[1].split(" ;", 1)[0].split()
        return argv[-2]  # gcsfuse [flags] BUCKET MOUNTPOINT

    # --- one fault, observed end to end --------------------------------------------------------------------------
    def run_fault(self, fault: str, host: Host, timeout: float = 300) -> Timeline:
        """Injects `fault` and follows the chain until the alert is resolved and the receiver recorded it."""
        before = self.healthy(host)
        if not before:
            raise E2EError(f"{host.name}: the Ray worker is not healthy before the fault")
        timeline = Timeline(fault=fault, host=host.name, before=before, settle_s=self.settle_s)
        try:
            timeline.injected = self.inject(fault, host)
            timeline.t0 = timeline.injected["t0"]
            timeline.before = timeline.injected.pop("before", before)  # a new container when injected again
            self._follow(timeline, host, time.time() + timeout)
        finally:
            if timeline.injected.get("silence"):
                self.unsilence(timeline.injected["silence"])
        timeline.after = self.healthy(host)
        timeline.end = time.time()
        return timeline

    def _follow(self, timeline: Timeline, host: Host, deadline: float) -> None:
        before, expected = timeline.before, FAULT_ALERTS[timeline.fault]
        polls = 0
        while time.time() < deadline:
            now = time.time()
            alerts = self.prometheus_alerts(host.name)
            firing = [a for a in alerts if a["state"] == "firing" and a["labels"]["alertname"] in expected]
            if firing and timeline.firing is None:
                # When it began to fire: pending since activeAt, firing once the rule's `for:` passed (the poll
                # that sees it may come seconds later, after the notification).
                hold = self.rule_holds()
                timeline.firing = min(max(ray_lab.rfc3339_epoch(a["activeAt"]) + hold.get(a["labels"]["alertname"], 0),
                                          timeline.t0) for a in firing)
                timeline.alertnames = sorted({a["labels"]["alertname"] for a in firing})
            if timeline.firing is not None and not alerts and timeline.prometheus_resolved is None:
                timeline.prometheus_resolved = now
            state = self.worker_state(host)
            timeline.samples.append((now, state.get("ActiveState"), state["container"], state["running"]))
            if timeline.back is None and state.get("ActiveState") == "active" and state["running"] \
                    and state["container"] != before["container"]:
                node = self.alive().get(host.address)
                if node and node != before["node"]:
                    timeline.back, timeline.back_state = time.time(), {"container": state["container"], "node": node}
            if polls % 2 == 0 or timeline.firing is not None:
                self._read_receiver(timeline, host)
            polls += 1
            if timeline.resolved_row and timeline.prometheus_resolved and timeline.run_end:
                return
            time.sleep(0.5)

    def _read_receiver(self, timeline: Timeline, host: Host) -> None:
        rows = self.receiver.log(host=host.name, since=timeline.t0 - 1)
        timeline.rows = rows
        started = [r for r in rows if r["kind"] == "started"]
        if started:
            row = started[0]
            timeline.notified = timeline.notified or row["ts"]
            if row.get("run_status") not in (None, "queued", "running") and timeline.run_end is None:
                timeline.run_end, timeline.run = time.time(), row
        alertname = started[0]["alertname"] if started else None
        resolved = [r for r in rows if r["kind"] == "resolved" and r["alertname"] == alertname]
        if resolved and timeline.resolved_row is None:
            timeline.resolved_row, timeline.resolved = resolved[0], resolved[0]["ts"]

    def report(self, timeline: Timeline) -> dict | None:
        """recover.yml's JSON report of the receiver's run (on the controller)."""
        path = (timeline.run or {}).get("report_path")
        return json.loads(sh(self.controller, f"cat {shlex.quote(path)}")) if path else None


@dataclass
class Timeline:
    """When each step of the chain was seen (epoch seconds; the lab hosts share this machine's clock)."""

    fault: str
    host: str
    before: dict
    injected: dict = field(default_factory=dict)
    t0: float = 0.0
    firing: float | None = None  # Prometheus lists a remediating alert of the host as firing
    alertnames: list[str] = field(default_factory=list)
    notified: float | None = None  # the receiver's `started` row (Alertmanager's notification recorded)
    run: dict | None = None  # that row with its run's status, rc, duration and report path
    run_end: float | None = None  # when the run was first seen finished
    back: float | None = None  # the worker active, a new container running, a new node ALIVE in the head
    back_state: dict | None = None
    prometheus_resolved: float | None = None  # Prometheus no longer lists a remediating alert of the host
    resolved_row: dict | None = None  # the receiver's `resolved` row (with ttr)
    resolved: float | None = None
    after: dict | None = None
    end: float = 0.0
    rows: list[dict] = field(default_factory=list)
    samples: list[tuple] = field(default_factory=list)
    settle_s: float = 0.0  # recovery_settle_s: healthy means healthy through this window

    def stayed_healthy(self) -> bool:
        """From `back` to the end (at least the settle window) the unit stayed active with the same container, and the
        node that came back is still the head's ALIVE node of this host."""
        if self.back is None or self.after != self.back_state or self.end - self.back < self.settle_s:
            return False
        later = [s for s in self.samples if s[0] >= self.back]
        return all(s[1] == "active" and s[2] == self.back_state["container"] and s[3] for s in later)

    def breakdown(self) -> dict[str, float | None]:
        def span(a, b):
            return None if a is None or b is None else round(b - a, 1)

        duration = (self.run or {}).get("duration")
        run_start = self.run_end - duration if self.run_end is not None and duration is not None else None
        return {
            "fault_to_firing": span(self.t0, self.firing),
            "firing_to_notified": span(self.firing, self.notified),
            "notified_to_run_start": span(self.notified, run_start),
            "run_duration": round(duration, 1) if duration is not None else None,
            "fault_to_back": span(self.t0, self.back),
            "fault_to_healthy": span(self.t0, self.back + self.settle_s if self.back else None),
            "fault_to_run_verified": span(self.t0, self.run_end),
            "fault_to_resolved": span(self.t0, self.resolved),
            "ttr_recorded": (self.resolved_row or {}).get("ttr"),
        }
