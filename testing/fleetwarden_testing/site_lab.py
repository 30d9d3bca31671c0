"""The lab as `make lab` leaves it, for the drill and the preflight tests: site.yml's hosts, workers and Ray.

Host names come from the lab inventory (groups head and workers), never literals. Everything on a host runs
through `docker exec <lab host container>` (ray_lab.host_run); playbooks run from the checkout on the lab
inventory, as an alert would run recover.yml.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcsfuse import gcsfuse_unit_name

from fleetwarden_testing import ray_lab

REPO = ray_lab.REPO
SITE = REPO / "site.yml"
RECOVER = REPO / "playbooks" / "recover.yml"
DIAGNOSE = REPO / "playbooks" / "diagnose.yml"
INCIDENTS = "/var/lib/fleetwarden/incidents"
DEATHS = "_deaths"  # module_utils/_death_record.py RECORD_DIR: <incidents>/_deaths/<worker>/
# What inventory/lab declares (group_vars/all/gcsfuse.yml, group_vars/workers.yml).
MOUNT = "/mnt/lab-data"
MOUNT_UNIT = gcsfuse_unit_name(MOUNT)
DRILL = "drill"
DRILL_FAULT = "/var/lib/fleetwarden-drill/fault"
DRILL_SECRET = "drill-fake-secret-0123456789"  # noqa: S105 - the fake token inventory/lab gives the drill worker
RAY_HEAD, RAY_WORKER = ray_lab.HEAD_CONTAINER, ray_lab.WORKER_CONTAINER
WATCHDOG = "fleetwarden-gcsfuse-watchdog."


def unit_of(worker: str) -> str:
    return f"fleetwarden-worker-{worker}.service"


def units_of(worker: str) -> set[str]:
    """A worker's container and units: worker, probe, and the alert its OnFailure= fires."""
    return {worker, unit_of(worker), f"fleetwarden-probe-{worker}.service",
            f"fleetwarden-alert@{unit_of(worker)}.service"}


class SiteLab:
    """The running lab: its head and worker hosts, and what the drill asks of them."""

    def __init__(self, hosts: dict[str, ray_lab.LabHost], report_dir: Path):
        self.hosts = hosts
        self.head = next(h for h in hosts.values() if "head" in h.groups)
        self.workers = sorted((h for h in hosts.values() if "workers" in h.groups), key=lambda h: h.name)
        self.worker = self.workers[0]
        self.report_dir = report_dir

    # -- running things --------------------------------------------------------------------------------------------
    def sh(self, host: ray_lab.LabHost, script: str, timeout: float = 60, check: bool = True) -> str:
        result = ray_lab.host_run(host, "bash", "-c", script, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{host.name}: {script!r} failed ({result.returncode}): {result.stderr[-1500:]}")
        return result.stdout

    def playbook(self, playbook: Path, *args: str, extra_vars: dict | None = None, timeout: float = 900):
        return ray_lab.ansible_playbook(playbook, "-e", f"report_dir={self.report_dir}", *args,
                                        extra_vars=extra_vars, timeout=timeout)

    def recover(self, host: ray_lab.LabHost, *args: str) -> tuple[object, dict | None, float]:
        """recover.yml on one host, as an alert runs it: the run, its host report and its wall time."""
        before = set(self.report_dir.glob("*")) if self.report_dir.exists() else set()
        started = time.monotonic()
        run = self.playbook(RECOVER, "-e", f"target={host.name}", *args)
        elapsed = time.monotonic() - started
        new = sorted(set(self.report_dir.glob("*")) - before)
        path = new[-1] / f"{host.name}.json" if new else None
        report = json.loads(path.read_text()) if path and path.exists() else None
        return run, report, elapsed

    # -- state -----------------------------------------------------------------------------------------------------
    def alive(self) -> dict[str, dict]:
        return ray_lab.alive(self.head)

    def whole(self) -> dict | None:
        nodes = self.alive()
        return nodes if {self.head.address, *(w.address for w in self.workers)} <= set(nodes) else None

    def wait_whole(self, timeout: float = 180) -> dict:
        return ray_lab.wait_until(self.whole, timeout, interval=1, what="the head and every Ray worker ALIVE")

    def drill_healthy(self, host: ray_lab.LabHost | None = None) -> bool:
        host = host or self.worker
        state = ray_lab.unit(host, unit_of(DRILL))
        age = self.sh(host, f"docker exec {DRILL} sh -c 'echo $(( $(date +%s) - $(stat -c %Y /tmp/heartbeat) ))'",
                      check=False).strip()
        return state.get("ActiveState") == "active" and age.isdigit() and int(age) <= 3

    def wait_calm(self, timeout: float = 180):
        """Every site.yml worker up: the cluster whole, the drill worker beating, no fault file left."""
        for host in self.workers:
            self.sh(host, f"rm -f {DRILL_FAULT}")
        ray_lab.wait_until(lambda: all(self.drill_healthy(h) for h in self.workers), timeout, interval=1,
                           what="the drill workers healthy")
        self.wait_whole(timeout)

    def reset_worker(self, host: ray_lab.LabHost, worker: str):
        """A worker whose restarts ran out starts again; its death history is forgotten."""
        self.sh(host, f"rm -f {DRILL_FAULT}; systemctl reset-failed {unit_of(worker)}; "
                      f"systemctl start --no-block {unit_of(worker)}; rm -f {INCIDENTS}/history.json")

    def snapshot(self, host: ray_lab.LabHost) -> dict:
        """Containers (name -> id, state), fleetwarden and docker units (InvocationID, state), and checksums of
        daemon.json and the unit directory: what a recovery may not change beyond the worker it heals."""
        ps = self.sh(host, "docker ps -a --no-trunc --format '{{.Names}} {{.ID}} {{.State}}'", check=False)
        containers = {line.split()[0]: tuple(line.split()[1:]) for line in ps.splitlines() if line.strip()}
        names = self.sh(host, "systemctl list-units --all --plain --no-legend 'fleetwarden-*' docker.service "
                              "| awk '{print $1}'").split()
        show = self.sh(host, "systemctl show --property Id,InvocationID,ActiveState " + " ".join(names)) if names \
            else ""
        units = {}
        for block in show.strip().split("\n\n"):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            # The gcsfuse watchdog is a timer's oneshot: it runs every 30 s whatever happens.
            if props.get("Id") and not props["Id"].startswith(WATCHDOG):
                units[props["Id"]] = (props.get("InvocationID"), props.get("ActiveState"))
        return {"containers": containers, "units": units, "checksums": self.checksums(host)}

    def checksums(self, host: ray_lab.LabHost) -> dict[str, str]:
        """sha256 of /etc/docker/daemon.json and of every file under /etc/systemd/system (names and contents)."""
        out = self.sh(host, "sha256sum /etc/docker/daemon.json 2>/dev/null; "
                            "find /etc/systemd/system -type f -print0 | sort -z | xargs -0 sha256sum", check=False)
        return {"daemon.json": hashlib.sha256("\n".join(line for line in out.splitlines()
                                                          if "daemon.json" in line).encode()).hexdigest(),
                "units": hashlib.sha256("\n".join(line for line in out.splitlines()
                                                  if "/etc/systemd/system" in line).encode()).hexdigest()}

    def fleet_snapshot(self) -> dict[str, dict]:
        return {name: self.snapshot(host) for name, host in self.hosts.items()}


def changes(before: dict[str, dict], after: dict[str, dict], allowed: dict[str, set[str]]) -> list[str]:
    """What changed on any host besides `allowed` ({host: {container or unit names}})."""
    found = []
    for host, snap in before.items():
        ok = allowed.get(host, set())
        for kind in ("containers", "units"):
            for name, state in snap[kind].items():
                if name not in ok and after[host][kind].get(name) != state:
                    found.append(f"{host}: {kind[:-1]} {name}: {state} -> {after[host][kind].get(name)}")
            for name in set(after[host][kind]) - set(snap[kind]) - ok:
                found.append(f"{host}: {kind[:-1]} {name} appeared")
        if snap["checksums"] != after[host]["checksums"]:
            found.append(f"{host}: daemon.json or /etc/systemd/system changed")
    return found


def recap_of(run, host: ray_lab.LabHost) -> dict[str, int]:
    return ray_lab.recap(run.stdout).get(host.name, {})


# --- faults (shared by tests/integration/test_site_drill.py and benchmarks/recovery_drill.py) -------------------
EXHAUSTED = {
    # fault file, how the first death is caused, the cause recover.yml must name from the dead container
    "sigkill": ("kill", "kill -KILL $(docker inspect --format '{{{{.State.Pid}}}}' {name})", "sigkill"),
    "oom": ("oom", "docker kill --signal USR1 {name}", "oom_killed"),
    "exit_139": ("segv", "docker kill --signal USR2 {name}", "segfault"),
    # the drill's 16 MiB /scratch tmpfs (inventory/lab) filled until ENOSPC: the machine's disk is never touched
    "disk_full": ("disk", "docker kill --signal HUP {name}", "disk_full"),
}


def exhaust(lab: SiteLab, host: ray_lab.LabHost, fault: str, first_death: str, timeout: float = 120):
    """Makes the drill worker die at every start until systemd gives up (the unit stays failed)."""
    lab.sh(host, f"mkdir -p {DRILL_FAULT.rsplit('/', 1)[0]} && echo {fault} > {DRILL_FAULT}")
    lab.sh(host, first_death.format(name=DRILL), check=False)
    ray_lab.wait_until(lambda: ray_lab.unit(host, unit_of(DRILL)).get("ActiveState") == "failed", timeout,
                       interval=1, what=f"{unit_of(DRILL)} failed once its restarts ran out")


def last_death(report: dict, worker: str) -> dict:
    """The last death diagnosis reports for a worker: the record its supervisor kept of the dead container."""
    entry = next(e for e in report["workers"] if e["worker"] == worker)
    return entry["evidence"].get("last_death") or {}


def death_kept(lab: SiteLab, host: ray_lab.LabHost, worker: str, container_id: str) -> dict:
    """The record the worker's supervisor kept on the host of its dead container `container_id` (the evidence of a
    death that systemd healed), with no secret in it."""
    directory = f"{INCIDENTS}/{DEATHS}/{worker}"
    name = lab.sh(host, f"ls {directory} | grep -- '-{container_id[:12]}.json$' | tail -n 1").strip()
    assert name, f"{host.name}: no record of {worker}'s dead container {container_id[:12]} in {directory}"
    text = lab.sh(host, f"cat {directory}/{name}")
    assert DRILL_SECRET not in text
    record = json.loads(text)
    assert record["container_id"] == container_id and record["state"]["FinishedAt"], record
    assert lab.sh(host, f"stat -c %a {directory}/{name}").strip() == "600"
    return record


def kill_mount_process(lab: SiteLab, host: ray_lab.LabHost) -> str:
    """kill -9 of the gcsfuse (stand-in) process of the lab's mount; returns its PID."""
    pid = ray_lab.unit(host, MOUNT_UNIT).get("ExecMainPID")
    if not pid or pid == "0":
        raise AssertionError(f"{host.name}: {MOUNT_UNIT} runs no process")
    lab.sh(host, f"kill -KILL {pid}")
    return pid


def ray_worker_back(lab: SiteLab, host: ray_lab.LabHost, old_container: dict, old_node: dict,
                    mount: bool = False) -> bool:
    """A new Ray worker container runs, the head has a new node of it ALIVE, and (mount) the lab's bucket is
    visible inside it."""
    info = ray_lab.container(host, RAY_WORKER)
    if not info or not info["running"] or info["id"] == old_container["id"]:
        return False
    if mount:
        seen = ray_lab.host_run(host, "docker", "exec", RAY_WORKER, "cat", "/data/README", timeout=20)
        if seen.returncode != 0 or "lab-data" not in seen.stdout:
            return False
    node = lab.alive().get(host.address)
    return bool(node and node["id"] != old_node["id"])
