"""The fault drill: a lab of its own, real faults injected on its worker host, and recover.yml run against it.

Used by tests/integration/test_fault_drill.py and benchmarks/recovery_drill.py. Each fault is a `Fault`:
how to inject it, the cause recover.yml must name, and which units and containers it may change.
The workers run under the worker_service role with restart policy "no" (docs/recovery.md): a dead container
stays for recover.yml to diagnose.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
DRILL = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
WORKER = "drill-ray"
BYSTANDER = "drill-bystander"
GCSFUSE_UNIT = "fleetwarden-gcsfuse-mnt-drillbucket.service"
UNITS = (f"fleetwarden-worker-{WORKER}.service", f"fleetwarden-worker-{BYSTANDER}.service", GCSFUSE_UNIT,
         "docker.service")
INCIDENTS = "/var/lib/fleetwarden/incidents"


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class Drill:
    """A lab brought up for the drill (fleetwarden lab --name NAME up --hosts 2) and set up by setup.yml."""

    project: Path
    name: str = "fwdrill"
    report_dir: Path | None = None
    inventory: Path = field(init=False)

    def __post_init__(self):
        self.inventory = self.project / "inventory" / "lab" / "hosts.yml"
        self.report_dir = self.report_dir or self.project / "reports"

    # -- the lab ---------------------------------------------------------------------------------------------------
    def fleetwarden(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "fleetwarden.cli", "--project-dir", str(self.project), "lab",
                                 "--name", self.name, *args], capture_output=True, text=True, check=False,
                                timeout=900)
        if check and result.returncode != 0:
            raise RuntimeError(f"fleetwarden lab {' '.join(args)}: {result.stderr[-2000:]}")
        return result

    def up(self):
        # The drill's workers run a 35 MB image made on the host; the Ray worker image is not needed.
        self.fleetwarden("image", "--host-only")
        self.fleetwarden("up", "--hosts", "2", "--no-worker-image")
        self.playbook(DRILL / "setup.yml", check=True)
        self.wait_healthy()

    def down(self):
        self.fleetwarden("down", check=False)

    @property
    def hosts(self) -> dict:
        children = yaml.safe_load(self.inventory.read_text())["all"]["children"]
        return {**children["head"]["hosts"], **children["workers"]["hosts"]}

    @property
    def worker_host(self) -> str:
        return f"{self.name}-worker-1"

    @property
    def head_host(self) -> str:
        return f"{self.name}-head"

    def sh(self, host: str, script: str, check: bool = True, timeout: float = 60) -> str:
        """Runs a shell script on a lab host (through the outer engine: quick, and independent of its sshd)."""
        container = self.hosts[host]["fleetwarden_lab_container"]
        result = subprocess.run(["docker", "exec", container, "bash", "-c", script], capture_output=True, text=True,
                                check=False, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{host}: {script!r} failed: {result.stdout[-1000:]} {result.stderr[-1000:]}")
        return result.stdout

    def playbook(self, path: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), "-e", f"@{DRILL / 'workers.yml'}",
                "-e", f"report_dir={self.report_dir}", str(path), *extra]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO, timeout=600,
                                env={"PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1",
                                     "HOME": str(Path.home())})
        if check and result.returncode != 0:
            raise RuntimeError(f"{path.name} failed (rc {result.returncode}):\n{result.stdout[-6000:]}")
        return result

    # -- state -----------------------------------------------------------------------------------------------------
    def worker_healthy(self, name: str = WORKER) -> bool:
        probe = self.sh(self.worker_host, f"docker exec {name} python3 /opt/drill/drill_worker.py probe && echo ok",
                        check=False)
        if "ok" not in probe:
            return False
        if name != WORKER:
            return True
        address = self.hosts[self.worker_host]["fleetwarden_lab_address"]
        nodes = json.loads(self.sh(self.head_host, "python3 /opt/drill/drill_ray_head.py nodes", check=False) or "[]")
        return any(n["node_ip"] == address and n["state"] == "ALIVE" for n in nodes)

    def wait_healthy(self, timeout: float = 60):
        wait_until(lambda: self.worker_healthy(WORKER) and self.worker_healthy(BYSTANDER), timeout, "workers healthy")

    def container_state(self, name: str) -> str:
        return self.sh(self.worker_host, f"docker inspect --format '{{{{.State.Status}}}}' {name}", check=False).strip()

    def snapshot(self) -> dict:
        """Containers (name -> id) and units (name -> InvocationID/ActiveState) on the worker host."""
        ps = self.sh(self.worker_host, "docker ps -a --no-trunc --format '{{.Names}} {{.ID}} {{.State}}'", check=False)
        containers = {line.split()[0]: tuple(line.split()[1:]) for line in ps.splitlines() if line.strip()}
        show = self.sh(self.worker_host, "systemctl show --property Id,InvocationID,ActiveState " + " ".join(UNITS))
        units = {}
        for block in show.strip().split("\n\n"):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            units[props["Id"]] = (props.get("InvocationID"), props.get("ActiveState"))
        mounts = self.sh(self.worker_host, "findmnt --noheadings --output TARGET --list", check=False).split()
        return {"containers": containers, "units": units, "mounts": sorted(m for m in mounts if "drill" in m)}

    # -- recovery --------------------------------------------------------------------------------------------------
    def recover(self, *extra: str) -> tuple[subprocess.CompletedProcess, dict | None, float]:
        """Runs recover.yml on the worker host; returns the run, its host report and the wall time."""
        before = set(self.report_dir.glob("*")) if self.report_dir.exists() else set()
        started = time.monotonic()
        run = self.playbook(REPO / "playbooks" / "recover.yml", "-e", f"target={self.worker_host}", *extra,
                            check=False)
        elapsed = time.monotonic() - started
        new = sorted(set(self.report_dir.glob("*")) - before)
        report_path = new[-1] / f"{self.worker_host}.json" if new else None
        report = json.loads(report_path.read_text()) if report_path and report_path.exists() else None
        return run, report, elapsed

    def entry(self, report: dict, name: str = WORKER) -> dict:
        return next(e for e in report["workers"] if e["worker"] == name)

    def reset_history(self, records: list[dict] | None = None):
        content = json.dumps({WORKER: records} if records else {})
        self.sh(self.worker_host, f"mkdir -p {INCIDENTS} && echo '{content}' > {INCIDENTS}/history.json")


@dataclass(frozen=True)
class Fault:
    name: str
    cause: str
    inject: Callable[[Drill], None]
    # Units and containers on the worker host the recovery may change besides drill-ray's.
    may_change_units: tuple[str, ...] = ()
    may_remove_containers: tuple[str, ...] = ()
    # The worker's container dies of the fault (mount_lost: the lab's mounts do not propagate into it).
    kills_worker: bool = True


def _container_pid(drill: Drill) -> str:
    return drill.sh(drill.worker_host, f"docker inspect --format '{{{{.State.Pid}}}}' {WORKER}").strip()


def inject_sigkill(drill: Drill):
    drill.sh(drill.worker_host, f"kill -KILL {_container_pid(drill)}")


def inject_oom(drill: Drill):
    # The worker allocates on SIGUSR1 until the kernel kills it at its 64 MiB limit.
    drill.sh(drill.worker_host, f"docker kill --signal USR1 {WORKER}")


def inject_segfault(drill: Drill):
    # The worker dereferences NULL on SIGUSR2: a real SIGSEGV, exit 139.
    drill.sh(drill.worker_host, f"docker kill --signal USR2 {WORKER}")


FILL = ("import os\n"
        "f = open('/fill', 'wb')\n"
        "try:\n"
        "    while True:\n"
        "        f.write(b'x' * 1048576); f.flush()\n"
        "except OSError:\n"
        "    pass\n"
        "f.close(); size = os.path.getsize('/fill')\n"
        "os.truncate('/fill', max(0, size - 131072))\n")


def inject_disk_full(drill: Drill):
    # A stopped container whose layer fills docker's small filesystem (leaving 128 KiB, so the bystander's tiny
    # writes still fit): the worker's 256 KiB checkpoint then fails with ENOSPC.
    drill.sh(drill.worker_host, f"docker run --name drill-filler drill-base python3 -c \"{FILL}\"", timeout=120)


def inject_daemon_down(drill: Drill):
    drill.sh(drill.worker_host, "systemctl stop docker.socket docker.service")


def inject_mount_lost(drill: Drill):
    # The stand-in drops its mount and keeps running, as a wedged gcsfuse does.
    drill.sh(drill.worker_host, f"systemctl kill --signal USR1 --kill-who=main {GCSFUSE_UNIT}")
    wait_until(lambda: "/mnt/drillbucket" not in drill.snapshot()["mounts"], 10, "mount dropped")


def inject_head_restart(drill: Drill, down_s: int = 30):
    # The head goes away for down_s seconds, then starts again on its own, as a restarted Ray head does.
    drill.sh(drill.head_host, f"systemctl stop drill-ray-head.service && systemd-run --quiet --on-active={down_s} "
                              "--timer-property=AccuracySec=100ms "
                              "--unit drill-head-comeback systemctl start drill-ray-head.service")


FAULTS = (
    Fault("sigkill", "sigkill", inject_sigkill),
    Fault("oom", "oom_killed", inject_oom),
    Fault("exit_139", "segfault", inject_segfault),
    Fault("disk_full", "disk_full", inject_disk_full, may_remove_containers=("drill-filler",)),
    Fault("daemon_down", "daemon_down", inject_daemon_down,
          may_change_units=("docker.service", f"fleetwarden-worker-{BYSTANDER}.service"),
          may_remove_containers=(BYSTANDER,)),
    Fault("mount_lost", "mount_lost", inject_mount_lost, may_change_units=(GCSFUSE_UNIT,), kills_worker=False),
    Fault("head_restart", "head_unreachable", inject_head_restart),
)


def run_fault(drill: Drill, fault: Fault) -> dict:
    """Injects one fault, runs recover.yml, and returns what the drill asserts on."""
    drill.wait_healthy()
    drill.reset_history()
    before = drill.snapshot()
    fault.inject(drill)
    if fault.kills_worker:
        wait_until(lambda: drill.container_state(WORKER) != "running", 60, f"{fault.name}: worker dead")
    run, report, seconds = drill.recover()
    after = drill.snapshot()
    entry = drill.entry(report) if report else None
    incident = entry["incident_dir"] if entry else None
    logs = drill.sh(drill.worker_host, f"cat {incident}/logs.txt", check=False) if incident else ""
    return {"fault": fault, "run": run, "report": report, "entry": entry, "seconds": seconds, "before": before,
            "after": after, "logs": logs, "healthy_now": drill.worker_healthy(WORKER)}


def unexpected_changes(result: dict) -> list[str]:
    """Units and containers that changed though neither the fault nor its remediation should touch them."""
    fault, before, after = result["fault"], result["before"], result["after"]
    changes = []
    for unit, state in before["units"].items():
        if unit in fault.may_change_units or unit == f"fleetwarden-worker-{WORKER}.service":
            continue
        if after["units"].get(unit) != state:
            changes.append(f"unit {unit}: {state} -> {after['units'].get(unit)}")
    for name, state in before["containers"].items():
        if name == WORKER or name in fault.may_remove_containers:
            continue
        if after["containers"].get(name) != state:
            changes.append(f"container {name}: {state} -> {after['containers'].get(name)}")
    for name in set(after["containers"]) - set(before["containers"]) - {WORKER, *fault.may_remove_containers}:
        changes.append(f"container {name} appeared")
    if before["mounts"] != after["mounts"]:
        changes.append(f"mounts: {before['mounts']} -> {after['mounts']}")
    return changes
