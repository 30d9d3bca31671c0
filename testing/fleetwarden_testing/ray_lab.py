"""Helpers for tests and benchmarks that drive supervised workers and Ray on the running lab (benchmarks/ and
tests/integration/ share them from here; benchmarks do not import tests).

Everything goes through `docker exec <lab host container> ...` on this machine (the lab hosts are containers
here), and asks the Ray head which nodes are alive through its GCS, from inside the head's container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "lab" / "hosts.yml"
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"  # the lab's own playbooks (roles applied to the lab)
SITE = REPO / "site.yml"
HEAD_CONTAINER = "ray-head"
WORKER_CONTAINER = "ray-worker"
# Asks the GCS (inside the head's container) for every node: its address, state and registration time.
_NODES_SNIPPET = """
import json
from ray._raylet import GcsClient
nodes = GcsClient(address="127.0.0.1:6379").get_all_node_info(timeout=5).values()
print(json.dumps([{"ip": n.node_manager_address, "alive": n.state == 0, "id": n.node_id.hex(),
                   "start_ms": n.start_time_ms} for n in nodes]))
"""


@dataclass(frozen=True)
class LabHost:
    name: str
    container: str
    address: str
    groups: tuple[str, ...]


def read_inventory(inventory: Path = INVENTORY) -> dict[str, LabHost]:
    """The running lab's hosts as its generated inventory (inventory/lab/hosts.yml) describes them; {} when there
    is no lab."""
    if not inventory.exists():
        return {}
    children = yaml.safe_load(inventory.read_text())["all"]["children"]
    hosts: dict[str, dict] = {}
    groups: dict[str, list[str]] = {}
    for group, body in children.items():
        for name, hostvars in (body.get("hosts") or {}).items():
            if hostvars:
                hosts[name] = hostvars
            groups.setdefault(name, []).append(group)
    return {name: LabHost(name, v["fleetwarden_lab_container"], v["fleetwarden_lab_address"], tuple(groups[name]))
            for name, v in hosts.items()}


def host_run(host: LabHost, *argv: str, timeout: float = 60, check: bool = False,
             input_text: str | None = None) -> subprocess.CompletedProcess:
    interactive = ["-i"] if input_text is not None else []
    result = subprocess.run(["docker", "exec", *interactive, host.container, *argv], capture_output=True, text=True,
                            timeout=timeout, input=input_text, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{host.name}: {' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def rfc3339_epoch(text: str) -> float:
    """Docker's and Prometheus's RFC 3339 nanosecond timestamps (Z) -> epoch seconds; 0.0 for docker's zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    base, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(base + "+00:00").timestamp() + float("0." + (fraction or "0"))


def container(host: LabHost, name: str) -> dict | None:
    """The container's ID, running state, PID and start/finish times (epoch seconds); None if there is none."""
    result = host_run(host, "docker", "inspect", "--format", "{{json .}}", name, timeout=30)
    if result.returncode != 0:
        return None
    info = json.loads(result.stdout)
    state = info["State"]
    return {"id": info["Id"], "running": state["Running"], "pid": state["Pid"], "exit_code": state["ExitCode"],
            "started": rfc3339_epoch(state["StartedAt"]), "finished": rfc3339_epoch(state["FinishedAt"]),
            "args": [info["Path"], *info["Args"]], "env": info["Config"]["Env"]}


def unit(host: LabHost, name: str) -> dict[str, str]:
    result = host_run(host, "systemctl", "show", name, "--property=ActiveState,SubState,Result,NRestarts,"
                      "ExecMainStatus,ExecMainPID,LoadState", timeout=30)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def nodes(head: LabHost) -> list[dict]:
    """Every node the head's GCS knows: ip, alive, id, start_ms (when it registered). [] when it cannot say."""
    result = host_run(head, "docker", "exec", "-i", HEAD_CONTAINER, "python3", "-", input_text=_NODES_SNIPPET,
                      timeout=30)
    if result.returncode != 0:
        return []
    return json.loads(result.stdout.strip().splitlines()[-1])


def alive(head: LabHost) -> dict[str, dict]:
    """The head's alive nodes by address (the newest registration per address)."""
    found: dict[str, dict] = {}
    for node in sorted(nodes(head), key=lambda n: n["start_ms"]):
        if node["alive"]:
            found[node["ip"]] = node
    return found


class LabTimeout(AssertionError):
    """A condition on the lab did not come true in time; the message names it and the last value seen."""


def wait_until(condition, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Polls condition() until it returns something truthy; returns it. At the deadline, a LabTimeout (an
    AssertionError) naming `what` and the last value seen. The lab's one poller (tests, benchmarks, alert_e2e)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise LabTimeout(f"{what}: not so after {timeout:.0f} s (last seen: {last!r})")


def published_url(host: LabHost, port: int) -> str:
    """The loopback URL at which `fleetwarden lab up` publishes a lab host's port."""
    out = subprocess.run(["docker", "port", host.container, f"{port}/tcp"], capture_output=True, text=True,
                         check=False).stdout.split()
    if not out:
        raise LabNotReady(f"{host.container} does not publish port {port}: recreate the lab (lab down; lab up)")
    return "http://" + out[0]  # the lab publishes on 127.0.0.1 only


def ansible_playbook(playbook: Path, *args: str, extra_vars: dict | None = None,
                     timeout: float = 900) -> subprocess.CompletedProcess:
    """Runs ansible-playbook on the lab inventory from the checkout (its ansible.cfg)."""
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), str(playbook), *args]
    if extra_vars is not None:
        argv += ["--extra-vars", json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="true")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {ok, changed, failed, ...}}."""
    result = {}
    lines = output.splitlines()
    if "PLAY RECAP" not in output:
        return result
    for line in lines[next(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")) + 1:]:
        if ":" not in line:
            continue
        name, _, counts = line.partition(":")
        result[name.strip()] = {k: int(v) for k, v in (pair.split("=") for pair in counts.split())}
    return result


# --- what the test modules' fixtures and the benchmarks call ------------------------------------------------------
class LabNotReady(RuntimeError):
    """The running lab cannot carry a test or a benchmark; the message says why and how to get one. The tests'
    conftest turns it into a skip, or a failure under FLEETWARDEN_REQUIRE_LAB=1."""


def require_lab() -> dict[str, LabHost]:
    """The running 3-host lab (head plus two workers). Otherwise LabNotReady saying how to get one: no lab, a
    partial lab and a host that is not running alike."""
    hosts = read_inventory()
    if not hosts:
        raise LabNotReady("no lab runs (no inventory/lab/hosts.yml): make lab")
    if sum("head" in h.groups for h in hosts.values()) != 1 or sum("workers" in h.groups for h in hosts.values()) < 2:
        raise LabNotReady("needs a lab of a head and two workers, found "
                          f"{', '.join(sorted(hosts)) or 'none'}: fleetwarden lab up --hosts 3")
    for host in hosts.values():
        try:
            state = host_run(host, "systemctl", "is-system-running", timeout=20).stdout.strip()
        except subprocess.TimeoutExpired:
            state = "no answer"
        if state not in ("running", "degraded"):
            raise LabNotReady(f"lab host {host.name} is not running (systemd: {state or 'container not running'})")
    return hosts


_SITE_RUNS: list[subprocess.CompletedProcess] = []


def require_site() -> subprocess.CompletedProcess:
    """site.yml applied to the running lab, once per test session (as `make lab` does; on a lab `make lab` left,
    it changes nothing). Returns that run; fails the test when it fails."""
    if not _SITE_RUNS:
        run = ansible_playbook(SITE)
        if run.returncode != 0:
            raise AssertionError(f"site.yml failed on the lab (rc {run.returncode}):\n{run.stdout[-5000:]}")
        _SITE_RUNS.append(run)
    return _SITE_RUNS[0]


def ensure_worker_image(hosts: dict[str, LabHost]) -> str:
    """The lab's Ray image, built if its digest is new and loaded into every lab host that lacks it."""
    from fleetwarden.lab.worker_image import WORKER_IMAGE, build_worker_image, load_into_lab

    build_worker_image(log=lambda message: None)
    load_into_lab([h.container for h in hosts.values()], log=lambda message: None)
    return WORKER_IMAGE
