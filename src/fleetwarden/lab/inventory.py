"""Pure pieces of the lab: which hosts a lab of N has, and the inventory it writes."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HOSTS = 16
ACCELERATORS = ("gpu", "tpu", "cpu")
# The monitoring host (Prometheus, Alertmanager) is the head; its ports are published on loopback.
MONITORING_ROLE = "head"
MONITORING_PORTS = {"prometheus": 9090, "alertmanager": 9093}
DEFAULT_WORKER_ACCELERATORS = ("gpu", "tpu")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class LabConfigError(ValueError):
    """Bad lab input; the message names the option."""


@dataclass(frozen=True)
class HostPlan:
    """One lab host as planned: its name, its role, and the accelerator it simulates."""

    name: str
    role: str  # "head" or "worker"
    accelerator: str  # "gpu", "tpu" or "cpu": simulated, as a host variable


@dataclass(frozen=True)
class HostState:
    """One lab host as it runs: the plan plus where it is reached."""

    plan: HostPlan
    container: str
    ssh_port: int
    address: str  # on the lab network, for host-to-host traffic (Ray)


def plan_hosts(count: int, accelerators: tuple[str, ...] = DEFAULT_WORKER_ACCELERATORS,
               prefix: str = "lab") -> list[HostPlan]:
    """A lab of `count` hosts: one Ray head, then workers cycling through `accelerators`."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise LabConfigError(f"--hosts must be a whole number, got {count!r}")
    if not 1 <= count <= MAX_HOSTS:
        raise LabConfigError(f"--hosts must be between 1 and {MAX_HOSTS}, got {count}")
    if not accelerators:
        raise LabConfigError("--accelerators must name at least one of gpu, tpu, cpu")
    unknown = [a for a in accelerators if a not in ACCELERATORS]
    if unknown:
        raise LabConfigError(f"--accelerators: unknown kind {unknown[0]!r}; choose from {', '.join(ACCELERATORS)}")
    if not _NAME_RE.match(prefix):
        raise LabConfigError(f"--prefix must match {_NAME_RE.pattern}, got {prefix!r}")
    hosts = [HostPlan(f"{prefix}-head", "head", "cpu")]
    for index in range(1, count):
        hosts.append(HostPlan(f"{prefix}-worker-{index}", "worker", accelerators[(index - 1) % len(accelerators)]))
    return hosts


def render_inventory(hosts: list[HostState], key_file: str, known_hosts_file: str) -> dict:
    """The YAML inventory (as data) for a running lab: head, workers, gpu, tpu, monitoring and controller (the head)."""
    groups: dict[str, dict] = {"head": {}, "workers": {}, "gpu": {}, "tpu": {}, "monitoring": {}, "controller": {}}
    for host in hosts:
        groups["head" if host.plan.role == "head" else "workers"][host.plan.name] = {
            "ansible_host": "127.0.0.1",
            "ansible_port": host.ssh_port,
            "fleetwarden_accelerator": host.plan.accelerator,
            "fleetwarden_lab_address": host.address,
            "fleetwarden_lab_container": host.container,
            # Host keys are pinned per host name, so a port that changes on restart
            # does not break verification, and a host whose key changes is refused.
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={known_hosts_file} -o StrictHostKeyChecking=yes "
                f"-o HostKeyAlias={host.plan.name}"
            ),
        }
        if host.plan.accelerator in ("gpu", "tpu"):
            groups[host.plan.accelerator][host.plan.name] = None
        if host.plan.role == MONITORING_ROLE:
            groups["monitoring"][host.plan.name] = None
        if host.plan.role == "head":  # the lab's controller (recovery receiver) is the head
            groups["controller"][host.plan.name] = None
    return {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": key_file,
                "fleetwarden_lab": True,
            },
            "children": {name: {"hosts": members} for name, members in groups.items()},
        }
    }


def known_hosts_lines(host_keys: dict[str, str]) -> list[str]:
    """known_hosts lines keyed by host name (used with HostKeyAlias)."""
    lines = []
    for name in sorted(host_keys):
        parts = host_keys[name].split()
        if len(parts) < 2:
            raise LabConfigError(f"host {name} returned an unreadable host key: {host_keys[name]!r}")
        lines.append(f"{name} {parts[0]} {parts[1]}")
    return lines
