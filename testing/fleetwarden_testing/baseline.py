"""The lab as `make lab` leaves it, restored before each lab test module, so that no test depends on which ran
before it.

`restore(hosts)` puts back what the lab tests change on purpose:
- the worker set: every worker site.yml declares for a host is declared there and none other (a test's own
  workers are removed through worker_service with `state: absent`, the path a user takes); a missing one
  (a module removed the Ray workers) is put back by site.yml;
- the restart history: no drill fault armed, systemd's start-limit counters and failed states reset, every
  declared worker started, recover.yml's death history forgotten, and the journal's record of restarts
  dropped (the doctor counts "Scheduled restart job" entries of the last hour);
- the receiver: no host quarantined and no attempts counted, the breaker closed, dry run as the lab's
  inventory sets it;
- and waits until every declared worker is active and every Ray node ALIVE in the head.

`maintenance(hosts, reason)` keeps the lab's live receiver off hosts that a test breaks on purpose: their alerts
are recorded and skipped (`fleetwarden receiver maintenance`), and when it ends the lab is restored and quiet
first, so that no alert of the test reaches the receiver afterwards.

They are functions, not fixtures, so that benchmarks can start from the same state as the tests.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from fleetwarden_testing import ray_lab

WORKERS_DIR = "/etc/fleetwarden/workers"
DRILL_FAULT = "/var/lib/fleetwarden-drill/fault"


def role_default(role: str, name: str):
    return yaml.safe_load((ray_lab.REPO / "roles" / role / "defaults" / "main.yml").read_text())[name]


def unit_of(worker: str) -> str:
    return f"fleetwarden-worker-{worker}.service"


def inventory_hostvars() -> dict[str, dict]:
    """Every lab host's variables as Ansible resolves them from the lab inventory (groups and group_vars)."""
    argv = [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(ray_lab.INVENTORY), "--list"]
    run = subprocess.run(argv, cwd=ray_lab.REPO, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(run.stdout)["_meta"]["hostvars"]


def expected_workers(hosts: dict[str, ray_lab.LabHost], hostvars: dict[str, dict]) -> dict[str, set[str]]:
    """host -> the names of the workers site.yml declares there: worker_service_workers, plus the Ray head on
    group `head` and the Ray worker on group `workers` (roles/ray_cluster)."""
    head_name = role_default("ray_cluster", "ray_cluster_head_name")
    worker_name = role_default("ray_cluster", "ray_cluster_worker_name")
    expected = {}
    for name, host in hosts.items():
        names = {w["name"] for w in hostvars.get(name, {}).get("worker_service_workers") or []
                 if w.get("state", "present") == "present"}
        names |= {head_name} if "head" in host.groups else set()
        names |= {worker_name} if "workers" in host.groups else set()
        expected[name] = names
    return expected


def declared_workers(host: ray_lab.LabHost) -> set[str]:
    out = ray_lab.host_run(host, "sh", "-c", f"ls {WORKERS_DIR} 2>/dev/null").stdout.split()
    return {name.removesuffix(".json") for name in out if name.endswith(".json")}


def _sh(host: ray_lab.LabHost, script: str, timeout: float = 60) -> str:
    result = ray_lab.host_run(host, "bash", "-c", script, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{host.name}: {script!r} failed ({result.returncode}): {result.stderr[-1500:]}")
    return result.stdout


def _worker_set(hosts: dict[str, ray_lab.LabHost], expected: dict[str, set[str]]) -> None:
    extra = {name: sorted(declared_workers(host) - expected[name]) for name, host in hosts.items()}
    for name, workers in extra.items():
        if workers:
            run = ray_lab.ansible_playbook(ray_lab.PLAYBOOKS / "worker_service.yml", extra_vars={
                "target": name, "test_workers": [{"name": w, "state": "absent"} for w in workers]})
            assert run.returncode == 0, f"removing {workers} from {name} failed:\n{run.stdout[-3000:]}"
    if any(expected[name] - declared_workers(host) for name, host in hosts.items()):
        ray_lab.ensure_worker_image(hosts)
        run = ray_lab.ansible_playbook(ray_lab.SITE)
        assert run.returncode == 0, f"site.yml failed:\n{run.stdout[-5000:]}"


def _restart_history(hosts: dict[str, ray_lab.LabHost], expected: dict[str, set[str]]) -> None:
    incidents = role_default("recovery", "recovery_incident_root")
    for name, host in hosts.items():
        units = " ".join(shlex.quote(unit_of(w)) for w in sorted(expected[name]))
        _sh(host, f"rm -f {DRILL_FAULT} {shlex.quote(incidents)}/history.json; "
                  "journalctl --rotate -q && journalctl --vacuum-time=1s -q; "
                  f"systemctl reset-failed {units} 2>/dev/null; "
                  f"for u in {units}; do systemctl is-active -q $u || systemctl start --no-block $u; done; true")


def _receiver_lab():
    """The lab's alert chain (fleetwarden_testing.alert_e2e.Lab), or None when no receiver is deployed."""
    from fleetwarden_testing.alert_e2e import E2EError, Lab

    try:
        return Lab(ray_lab.REPO, ray_lab.INVENTORY)
    except E2EError:
        return None


def _receiver(hosts: dict[str, ray_lab.LabHost], hostvars: dict[str, dict]) -> None:
    lab = _receiver_lab()
    if lab is None:
        return  # no receiver deployed: nothing of it to restore
    controller = lab.controller.name
    dry_run = hostvars.get(controller, {}).get("recovery_receiver_dry_run", True)
    if lab.receiver.settings().get("dry_run") is not dry_run:
        lab.set_live(not dry_run)
    lab.receiver.calm(sorted(hosts))


def _settled(hosts: dict[str, ray_lab.LabHost], expected: dict[str, set[str]]) -> None:
    def all_active():
        for name, host in hosts.items():
            states = ray_lab.host_run(host, "systemctl", "is-active", *(unit_of(w) for w in expected[name])).stdout
            if set(states.split()) - {"active"}:
                return None
        return True

    ray_lab.wait_until(all_active, 180, interval=2, what="every declared worker's unit active")
    head = next(h for h in hosts.values() if "head" in h.groups)
    ray_lab.wait_until(lambda: {h.address for h in hosts.values()} <= set(ray_lab.alive(head)), 180, interval=2,
                       what="every lab host ALIVE in the Ray head")


def restore(hosts: dict[str, ray_lab.LabHost]) -> None:
    """The lab as `make lab` leaves it (see the module's docstring)."""
    hostvars = inventory_hostvars()
    expected = expected_workers(hosts, hostvars)
    _timed("worker set", _worker_set, hosts, expected)
    _timed("restart history", _restart_history, hosts, expected)
    _timed("receiver", _receiver, hosts, hostvars)
    _timed("settled", _settled, hosts, expected)


def _timed(what: str, step, *args) -> None:
    """Runs one step of the baseline and prints how long it took (pytest shows it with -s, and on a failure)."""
    started = time.monotonic()
    step(*args)
    print(f"baseline: {what} {time.monotonic() - started:.1f} s", file=sys.stderr)


def end_maintenance(reason: str = "a lab test starts with no host in maintenance") -> list[str]:
    """Ends every maintenance window the receiver holds (one a killed test run left, say); returns the hosts."""
    lab = _receiver_lab()
    hosts = [w["host"] for w in json.loads(lab.receiver.cli("maintenance", "list"))] if lab else []
    for name in hosts:
        lab.receiver.cli("maintenance", "end", name, "--reason", reason)
    return hosts


@contextmanager
def maintenance(hosts: dict[str, ray_lab.LabHost], reason: str, minutes: int = 90) -> Iterator[None]:
    """The hosts in the receiver's maintenance while the block runs (see the module's docstring)."""
    lab = _receiver_lab()
    if lab is None:
        yield
        return
    for name in sorted(hosts):
        lab.receiver.cli("maintenance", "start", name, "--for", f"{minutes}m", "--reason", reason)
    try:
        yield
    finally:
        _timed("restore", restore, hosts)
        _timed("quiet", lab.quiet)
        for name in sorted(hosts):
            lab.receiver.cli("maintenance", "end", name, "--reason", f"{reason}: over")
