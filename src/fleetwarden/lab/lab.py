"""Bring the lab up, show it, take it down."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleetwarden.lab.docker_client import Docker, LabError
from fleetwarden.lab.image import LAB_IMAGE
from fleetwarden.lab.inventory import (
    MONITORING_PORTS,
    MONITORING_ROLE,
    HostPlan,
    HostState,
    known_hosts_lines,
    plan_hosts,
    render_inventory,
)

LABEL = "io.fleetwarden.lab"
# Flags that let systemd run as PID 1 and dockerd run inside it, on this kind of
# machine (see docs/lab.md): --privileged fails here, so every capability but
# SYS_RESOURCE is granted instead. .config/molecule/config.yml mirrors these.
HOST_RUN_FLAGS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--stop-signal", "SIGRTMIN+3",
)
READY_TIMEOUT_S = 90


def find_project_dir(start: Path | None = None) -> Path:
    """The checkout that holds galaxy.yml and ansible.cfg, searching upward from `start`."""
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / "galaxy.yml").is_file() and (candidate / "ansible.cfg").is_file():
            return candidate
    return start


@dataclass
class LabPaths:
    project: Path

    @property
    def state_dir(self) -> Path:
        return self.project / ".lab"

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory_dir(self) -> Path:
        return self.project / "inventory" / "lab"

    @property
    def inventory_file(self) -> Path:
        return self.inventory_dir / "hosts.yml"


class Lab:
    def __init__(self, project: Path, name: str = "lab", docker: Docker | None = None, log=print) -> None:
        self.paths = LabPaths(project)
        self.name = name
        self.docker = docker or Docker()
        self.log = log
        self.network = f"fleetwarden-{name}"

    # -- naming ---------------------------------------------------------------------------
    def container(self, host: str) -> str:
        return f"fw-{host}"

    def volume(self, host: str) -> str:
        return f"fw-{host}-docker"

    def _labels(self, extra: dict[str, str] | None = None) -> list[str]:
        labels = {LABEL: self.name, **(extra or {})}
        return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]

    # -- queries --------------------------------------------------------------------------
    def containers(self) -> list[dict]:
        """The lab's containers, running or not, with their labels."""
        names = self.docker.lines("ps", "-a", "--filter", f"label={LABEL}={self.name}", "--format", "{{.Names}}")
        if not names:
            return []
        return json.loads(self.docker.out("inspect", *names))

    def _host_state(self, info: dict) -> HostState:
        labels = info["Config"]["Labels"]
        plan = HostPlan(labels["io.fleetwarden.host"], labels["io.fleetwarden.role"],
                        labels["io.fleetwarden.accelerator"])
        ports = (info["NetworkSettings"]["Ports"] or {}).get("22/tcp") or []
        port = int(ports[0]["HostPort"]) if ports else 0
        address = (info["NetworkSettings"]["Networks"].get(self.network) or {}).get("IPAddress", "")
        return HostState(plan=plan, container=info["Name"].lstrip("/"), ssh_port=port, address=address)

    def host(self, name: str) -> HostState:
        """A running lab host by name, or LabError listing the hosts there are."""
        states = {s.plan.name: s for s in map(self._host_state, self.containers())}
        if name not in states:
            raise LabError(f"no lab host named {name!r}; hosts: {', '.join(sorted(states)) or 'none'}")
        return states[name]

    # -- images ---------------------------------------------------------------------------
    def ensure_images(self, worker: bool = True) -> None:
        """Builds the images the lab needs when they are missing (cached by digest otherwise): the host image,
        and unless `worker` is false the Ray worker image that site.yml runs inside the hosts."""
        from fleetwarden.lab import image, worker_image

        image.build(docker=self.docker, log=self.log)
        if worker:
            worker_image.build_worker_image(docker=self.docker, log=self.log)

    # -- up -------------------------------------------------------------------------------
    def up(self, count: int, accelerators: tuple[str, ...]) -> list[HostState]:
        plans = plan_hosts(count, accelerators, prefix=self.name)
        self.docker.ensure_engine()
        if not self.docker.exists("image", LAB_IMAGE):
            raise LabError(f"the lab image {LAB_IMAGE} is not built; run `fleetwarden lab image` first")
        existing = self.containers()
        if existing:
            running = sorted(c["Config"]["Labels"]["io.fleetwarden.host"] for c in existing)
            wanted = sorted(p.name for p in plans)
            if running != wanted:
                raise LabError(
                    f"a lab of {len(running)} hosts ({', '.join(running)}) already exists; "
                    f"`fleetwarden lab up --hosts {len(running)}` keeps it, "
                    "`fleetwarden lab down` removes it first. Nothing was changed."
                )
        started = time.monotonic()
        self._ensure_key()
        self._ensure_network()
        by_name = {c["Config"]["Labels"]["io.fleetwarden.host"]: c for c in existing}
        created: list[str] = []
        try:
            for plan in plans:
                info = by_name.get(plan.name)
                if info is None:
                    created.append(plan.name)
                    self._create_host(plan)
                else:
                    # A lab another checkout made has that checkout's key: this checkout's key replaces it.
                    self._authorize_key(self.container(plan.name))
                    if not info["State"]["Running"]:
                        self.log(f"  starting stopped host {plan.name}")
                        self.docker.run("start", self.container(plan.name))
        except LabError:
            self._remove_hosts(created, drop_network=not existing)
            raise
        states = [self._host_state(c) for c in self.containers()]
        states.sort(key=lambda s: [p.name for p in plans].index(s.plan.name))
        self._wait_ready(states)
        self._write_known_hosts(states)
        self._check_ssh(states)
        self._write_inventory(states)
        self.log(f"lab of {len(states)} hosts ready in {time.monotonic() - started:.1f} s; "
                 f"inventory: {self.paths.inventory_file.relative_to(self.paths.project)}")
        return states

    def _remove_hosts(self, names: list[str], drop_network: bool) -> None:
        """Undo a failed `up`: remove the hosts it created, and the network if it made it."""
        for name in names:
            self.docker.run("rm", "-f", "-v", self.container(name), check=False)
            self.docker.run("volume", "rm", "-f", self.volume(name), check=False)
        if drop_network:
            self.docker.run("network", "rm", self.network, check=False)

    def _ensure_key(self) -> None:
        self.paths.state_dir.mkdir(mode=0o700, exist_ok=True)
        if not self.paths.key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetwarden-lab",
                            "-f", str(self.paths.key)], check=True)

    def _ensure_network(self) -> None:
        if not self.docker.exists("network", self.network):
            self.docker.run("network", "create", *self._labels(), self.network)

    def _create_host(self, plan: HostPlan) -> None:
        name = self.container(plan.name)
        self.log(f"  creating {plan.name} ({plan.role}, {plan.accelerator})")
        self.docker.run("volume", "create", *self._labels(), self.volume(plan.name))
        self.docker.run(
            "create", "--name", name, "--hostname", plan.name,
            "--network", self.network, "--network-alias", plan.name,
            "--publish", "127.0.0.1::22",
            *[arg for port in (MONITORING_PORTS.values() if plan.role == MONITORING_ROLE else ())
              for arg in ("--publish", f"127.0.0.1::{port}")],
            *HOST_RUN_FLAGS,
            "--volume", f"{self.volume(plan.name)}:/var/lib/docker",
            *self._labels({"io.fleetwarden.host": plan.name, "io.fleetwarden.role": plan.role,
                           "io.fleetwarden.accelerator": plan.accelerator}),
            LAB_IMAGE,
        )
        self._authorize_key(name)
        self.docker.run("start", name)

    def _authorize_key(self, container: str) -> None:
        """The lab key goes in a file of its own (see the image's sshd drop-in); docker cp works stopped or not."""
        self.docker.run("cp", f"{self.paths.key}.pub", f"{container}:/etc/ssh/fleetwarden-lab/authorized_keys")

    def _probe(self, state: HostState) -> tuple[str, str]:
        systemd = self.docker.exec(state.container, ["systemctl", "is-system-running"], timeout=20).stdout.strip()
        engine = self.docker.exec(state.container, ["docker", "version", "--format", "{{.Server.Version}}"],
                                  timeout=20)
        return systemd, engine.stdout.strip() if engine.returncode == 0 else ""

    def _wait_ready(self, states: list[HostState]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = {s.plan.name: s for s in states}
        last: dict[str, tuple[str, str]] = {}
        while pending and time.monotonic() < deadline:
            with ThreadPoolExecutor(max_workers=len(pending)) as pool:
                results = dict(zip(pending, pool.map(self._probe, pending.values()), strict=True))
            for name, (systemd, engine) in results.items():
                last[name] = (systemd, engine)
                # Booted is enough: a unit that failed on a host (degraded) is the fleet's
                # business, not the lab's; it is named here and in `lab status`.
                if systemd in ("running", "degraded") and engine:
                    failed = "" if systemd == "running" else f" (failed units: {self._failed_units(pending[name])})"
                    self.log(f"  {name}: systemd {systemd}, dockerd {engine}{failed}")
                    del pending[name]
            if pending:
                time.sleep(1)
        if pending:
            details = []
            for name, state in pending.items():
                systemd, engine = last.get(name, ("?", ""))
                details.append(f"{name}: systemd {systemd or '?'}, dockerd {'answers' if engine else 'no answer'}; "
                               f"failed units: {self._failed_units(state)}")
            raise LabError(f"hosts not ready after {READY_TIMEOUT_S} s: " + "; ".join(details))

    def _failed_units(self, state: HostState) -> str:
        out = self.docker.exec(state.container, ["systemctl", "--failed", "--no-legend", "--plain"]).stdout
        return " ".join(line.split()[0] for line in out.splitlines() if line.strip()) or "none"

    def _write_known_hosts(self, states: list[HostState]) -> None:
        keys = {s.plan.name: self.docker.exec(s.container, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"],
                                              check=True).stdout for s in states}
        self.paths.known_hosts.write_text("\n".join(known_hosts_lines(keys)) + "\n")

    def ssh_argv(self, state: HostState, *command: str) -> list[str]:
        return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.paths.known_hosts}", "-o", f"HostKeyAlias={state.plan.name}",
                "-i", str(self.paths.key), "-p", str(state.ssh_port), "root@127.0.0.1", *command]

    def _check_ssh(self, states: list[HostState]) -> None:
        def attempt(state: HostState) -> str:
            deadline = time.monotonic() + 20
            while True:
                result = subprocess.run(self.ssh_argv(state, "true"), capture_output=True, text=True, check=False)
                if result.returncode == 0:
                    return ""
                if time.monotonic() > deadline:
                    return f"{state.plan.name}: {result.stderr.strip()}"
                time.sleep(0.5)

        with ThreadPoolExecutor(max_workers=len(states)) as pool:
            errors = [e for e in pool.map(attempt, states) if e]
        if errors:
            raise LabError("SSH to lab hosts failed: " + "; ".join(errors))

    def _write_inventory(self, states: list[HostState]) -> None:
        data = render_inventory(states, str(self.paths.key), str(self.paths.known_hosts))
        self.paths.inventory_dir.mkdir(parents=True, exist_ok=True)
        header = "# Written by `fleetwarden lab up`; `fleetwarden lab down` removes it. Do not edit.\n"
        tmp = self.paths.inventory_file.with_suffix(".tmp")
        tmp.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
        os.replace(tmp, self.paths.inventory_file)

    # -- status ---------------------------------------------------------------------------
    def status(self) -> list[dict]:
        self.docker.ensure_engine()
        rows = []
        infos = self.containers()
        running = [self._host_state(c) for c in infos if c["State"]["Running"]]
        with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            probes = dict(zip([s.plan.name for s in running], pool.map(self._probe, running), strict=True))
        for info in infos:
            state = self._host_state(info)
            systemd, engine = probes.get(state.plan.name, ("-", ""))
            rows.append({
                "host": state.plan.name, "role": state.plan.role, "accelerator": state.plan.accelerator,
                "container": info["State"]["Status"], "ssh": f"127.0.0.1:{state.ssh_port}" if state.ssh_port else "-",
                "address": state.address or "-", "systemd": systemd or "-", "dockerd": engine or "no answer",
            })
        order = {"head": 0, "worker": 1}
        rows.sort(key=lambda r: (order.get(r["role"], 2), r["host"]))
        return rows

    def monitoring_urls(self) -> dict[str, str]:
        """Prometheus and Alertmanager of the monitoring host, as published on loopback ({} when not published)."""
        urls = {}
        for info in self.containers():
            ports = info["NetworkSettings"]["Ports"] or {}
            for service, port in MONITORING_PORTS.items():
                bound = ports.get(f"{port}/tcp") or []
                if bound and info["State"]["Running"]:
                    urls[service] = f"http://127.0.0.1:{bound[0]['HostPort']}"
        return urls

    # -- down -----------------------------------------------------------------------------
    def down(self) -> dict[str, int]:
        self.docker.ensure_engine()
        label = f"label={LABEL}={self.name}"
        containers = self.docker.lines("ps", "-a", "-q", "--filter", label)
        if containers:
            self.docker.run("rm", "-f", "-v", *containers, timeout=180)
        volumes = self.docker.lines("volume", "ls", "-q", "--filter", label)
        if volumes:
            self.docker.run("volume", "rm", "-f", *volumes)
        networks = self.docker.lines("network", "ls", "-q", "--filter", label)
        if networks:
            self.docker.run("network", "rm", *networks)
        for path in (self.paths.inventory_file, self.paths.known_hosts):
            path.unlink(missing_ok=True)
        return {"containers": len(containers), "volumes": len(volumes), "networks": len(networks)}


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "no lab hosts (run `fleetwarden lab up`)"
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
    lines = ["  ".join(h.upper().ljust(widths[h]) for h in headers)]
    lines += ["  ".join(str(r[h]).ljust(widths[h]) for h in headers) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
