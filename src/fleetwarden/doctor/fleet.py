"""One gathering round over the fleet: the inventory, each host's variables, and fleet_status on every host.

Ansible runs in this process (inventory, variables, the module's payload and each host's connection plugin), so
the inventory is parsed once, dynamic inventories included, host variables are templated the way a playbook
sees them, and the connection is the inventory's own (user, key, pinned host keys, ControlPersist).
Hosts answer in parallel (a thread each, see remote.py); one module call per host whatever its worker count.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

MODULE = "fleetwarden.fleet.fleet_status"
# Host variables the status and doctor read; everything else stays in the inventory.
WANTED_VARS = (
    "ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file", "ansible_ssh_common_args",
    "fleetwarden_lab_container", "fleetwarden_lab_address", "fleetwarden_accelerator",
    "ssh_keys_authorized", "ssh_keys_policy", "ssh_keys_private_keys", "ssh_keys_exclusive",
    "docker_engine_live_restore", "docker_engine_log_driver", "docker_engine_log_max_size",
    "docker_engine_log_max_file",
    "gce_name", "gce_project", "gce_zone", "gce_status", "gce_internal_ip", "gce_external_ip",
    "tpu_node_name", "tpu_project", "tpu_zone", "tpu_worker_index", "tpu_state", "tpu_health",
    "tpu_internal_ip", "tpu_external_ip",
    "runpod_id", "runpod_name", "runpod_desired_status", "runpod_uptime_seconds",
)
THRESHOLD_PREFIX = "fleetwarden_doctor_"


class FleetError(Exception):
    """The fleet cannot be read at all (no inventory, no hosts): the doctor exits 2."""


@dataclass
class HostResult:
    """What one host said: the module's result, or why it did not answer."""

    name: str
    groups: list[str]
    vars: dict
    result: dict | None = None
    unreachable: str | None = None
    failed: str | None = None
    seconds: float | None = None
    ssh_port_open: bool | None = None
    ssh_banner: str | None = None
    vars_errors: dict = field(default_factory=dict)


def _setup_ansible(project: Path) -> None:
    """Ansible reads ansible.cfg when it is first imported: point it at the checkout's before that."""
    os.environ.setdefault("ANSIBLE_CONFIG", str(project / "ansible.cfg"))
    os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
    # BatchMode: never wait at a prompt; a host that wants a password or a passphrase is not reachable.
    os.environ.setdefault("ANSIBLE_SSH_EXTRA_ARGS", "-o BatchMode=yes")


class Fleet:
    """The inventory and its variables; `gather()` runs one round of fleet_status on the chosen hosts."""

    def __init__(self, project: Path, inventories: list[str], limit: str | None = None):
        _setup_ansible(project)
        from ansible import constants as C
        from ansible import context
        from ansible.inventory.manager import InventoryManager
        from ansible.module_utils.common.collections import ImmutableDict
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import init_plugin_loader
        from ansible.vars.hostvars import HostVars
        from ansible.vars.manager import VariableManager

        init_plugin_loader(C.COLLECTIONS_PATHS)
        context.CLIARGS = ImmutableDict(
            connection="ssh", module_path=None, forks=10, become=False, become_method="sudo", become_user=None,
            check=False, diff=False, verbosity=0, timeout=C.DEFAULT_TIMEOUT, private_key_file=None,
            remote_user=None, syntax=False, start_at_task=None, inventory=inventories,
        )
        self.project = project
        self.inventories = [str(Path(i).resolve()) if Path(i).exists() else i for i in inventories]
        self.loader = DataLoader()
        self.loader.set_basedir(str(project))
        try:
            self.inventory = InventoryManager(loader=self.loader, sources=self.inventories)
        except Exception as exc:
            raise FleetError(f"cannot read the inventory {', '.join(inventories)}: {exc}") from exc
        self.variables = VariableManager(loader=self.loader, inventory=self.inventory)
        self._raw: dict = {}  # each host's untemplated variables, read once per round
        # As a play does: HostVars registers itself with the variable manager, so `hostvars[...]` templates.
        HostVars(inventory=self.inventory, variable_manager=self.variables, loader=self.loader)
        self.hosts = self.inventory.get_hosts(limit or "all")
        if not self.hosts:
            raise FleetError(f"the inventory {', '.join(inventories)} lists no host"
                             + (f" matching {limit!r}" if limit else ""))

    def host_vars(self, host, extra_keys=frozenset()) -> tuple[dict, dict]:
        """(templated wanted vars plus fleetwarden_doctor_*, {var: error} for vars that cannot be templated)."""
        from ansible.template import Templar

        raw = self.variables.get_vars(host=host)
        self._raw[host.name] = raw
        templar = Templar(loader=self.loader, variables=raw)
        values, errors = {}, {}
        for key in [k for k in raw if k in WANTED_VARS or k in extra_keys or k.startswith(THRESHOLD_PREFIX)]:
            try:
                values[key] = templar.template(raw[key])
            except Exception as exc:
                errors[key] = str(exc).splitlines()[0][:300]
        return values, errors

    def results(self, extra_keys=frozenset()) -> dict[str, HostResult]:
        """A HostResult per host with its templated variables: WANTED_VARS, extra_keys, fleetwarden_doctor_*."""
        out = {}
        for host in self.hosts:
            values, errors = self.host_vars(host, extra_keys)
            groups = sorted(g.name for g in host.get_groups() if g.name not in ("all", "ungrouped"))
            out[host.name] = HostResult(host.name, groups, values, vars_errors=errors)
        return out

    def gather(self, results: dict[str, HostResult], progress=None, timeout: int = 30,
               authorized_keys_users: list[str] | None = None) -> dict[str, HostResult]:
        """Runs fleet_status once on every host (in parallel), probing each sshd's port at the same time.

        The payload is built once and piped over each host's own connection plugin (see remote.py): no play,
        no forks, no interpreter discovery round trip.
        """
        from ansible.template import Templar

        from .remote import MAX_PARALLEL, REMOTE_GRACE_S, Payload, connection_for, interpreter_for, run_all, run_on_host

        started = time.monotonic()
        total = len(results)
        answered = []
        probe = threading.Thread(target=probe_ssh_ports, args=(list(results.values()),), daemon=True)
        probe.start()
        users = sorted(set(authorized_keys_users or []))
        payload = Payload(MODULE, {"authorized_keys_users": users, "timeout": 10}, _cache_dir()).data
        remote_s = max(5, timeout - REMOTE_GRACE_S)
        jobs = {}
        for host in self.hosts:
            if host.name not in results:
                continue
            raw = self._raw.get(host.name) or self.variables.get_vars(host=host)
            templar = Templar(loader=self.loader, variables=raw)
            try:
                connection = connection_for(raw, templar)
                interpreter = interpreter_for({"ansible_python_interpreter": templar.template(
                    raw.get("ansible_python_interpreter"))})
            except Exception as exc:  # a host whose connection cannot be set up fails alone
                reason = f"cannot set up the connection: {str(exc).splitlines()[0][:300]}"
                jobs[host.name] = lambda reason=reason: (None, reason, None)
                continue
            jobs[host.name] = (lambda c=connection, i=interpreter:
                               run_on_host(c, payload, i, remote_s))

        def done(name):
            results[name].seconds = round(time.monotonic() - started, 2)
            answered.append(name)
            if progress:
                progress(len(answered), total, name)

        waves = -(-len(jobs) // MAX_PARALLEL)  # hosts beyond MAX_PARALLEL wait for a slot, as with forks
        for name, (result, failed, unreachable) in run_all(jobs, float(timeout) * max(1, waves), done).items():
            host = results[name]
            host.result, host.failed, host.unreachable = result, failed, unreachable
            if host.seconds is None:
                host.seconds = round(time.monotonic() - started, 2)
        probe.join(timeout=10)
        return results


def _cache_dir() -> Path:
    """Where built payloads are kept between runs (keyed by the content they were built from)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fleetwarden" / "ansiballz"


def _ssh_target(host: HostResult) -> tuple[str, int]:
    return str(host.vars.get("ansible_host") or host.name), int(host.vars.get("ansible_port") or 22)


def probe_ssh_port(host: HostResult, timeout: float = 3.0) -> None:
    """Does sshd accept a new TCP connection and say its banner? (A multiplexed session can hide a dead sshd.)"""
    address, port = _ssh_target(host)
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            banner = sock.recv(256).decode("ascii", "replace").strip()
        host.ssh_port_open = banner.startswith("SSH-")
        host.ssh_banner = banner[:80] or "no banner"
    except OSError as exc:
        host.ssh_port_open = False
        host.ssh_banner = exc.strerror or str(exc)


def probe_ssh_ports(hosts: list[HostResult]) -> None:
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(hosts)))) as pool:
        list(pool.map(probe_ssh_port, hosts))
