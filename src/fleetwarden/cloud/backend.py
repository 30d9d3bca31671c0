"""What the stand-in's cloud runs on: a backend makes, stops, starts and removes one host per TPU worker or VM.

`MemoryBackend` keeps hosts in a dict, for unit tests and measurements; `fleetwarden.cloud.lab_backend.LabBackend`
makes lab host containers through fleetwarden.lab. Calls are blocking; the engine runs them in threads.
"""

from __future__ import annotations

import base64
import os
import struct
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostSpec:
    """One host to make: its name (unique in the lab), its lab role and the accelerator it simulates."""

    name: str
    role: str  # "head" or "worker", as fleetwarden.lab.inventory.HostPlan
    accelerator: str  # "gpu", "tpu" or "cpu"


@dataclass(frozen=True)
class HostInfo:
    """A running host: its address and its SSH host public keys ({"ssh-ed25519": "AAAA..."}, the key blobs)."""

    address: str
    host_keys: dict[str, str] = field(default_factory=dict)


class BackendError(Exception):
    """The backend could not do what was asked; the operation fails with this message."""


class Backend:
    """The interface. Each call is idempotent: creating a host that exists returns it, removing a missing one
    does nothing."""

    def create(self, spec: HostSpec) -> HostInfo:
        raise NotImplementedError

    def stop(self, name: str) -> None:
        raise NotImplementedError

    def start(self, name: str) -> HostInfo:
        raise NotImplementedError

    def remove(self, name: str) -> None:
        raise NotImplementedError


def ed25519_blob(public: bytes) -> str:
    """The base64 blob of an OpenSSH ed25519 public key, as in `ssh-ed25519 <blob>`."""
    kind = b"ssh-ed25519"
    return base64.b64encode(struct.pack(">I", len(kind)) + kind + struct.pack(">I", len(public)) + public).decode()


class MemoryBackend(Backend):
    """Hosts as dict entries: addresses from 10.128.0.0/16 in order, a fresh random host key per creation."""

    def __init__(self) -> None:
        self.hosts: dict[str, dict] = {}  # name -> {"spec", "info", "running"}
        self.calls: list[tuple[str, str]] = []
        self._next = 2
        self._lock = threading.Lock()

    def create(self, spec: HostSpec) -> HostInfo:
        with self._lock:
            self.calls.append(("create", spec.name))
            if spec.name not in self.hosts:
                address = f"10.128.{self._next // 250}.{self._next % 250 + 2}"
                self._next += 1
                info = HostInfo(address, {"ssh-ed25519": ed25519_blob(os.urandom(32))})
                self.hosts[spec.name] = {"spec": spec, "info": info, "running": True}
            self.hosts[spec.name]["running"] = True
            return self.hosts[spec.name]["info"]

    def stop(self, name: str) -> None:
        with self._lock:
            self.calls.append(("stop", name))
            if name not in self.hosts:
                raise BackendError(f"no host {name}")
            self.hosts[name]["running"] = False

    def start(self, name: str) -> HostInfo:
        with self._lock:
            self.calls.append(("start", name))
            if name not in self.hosts:
                raise BackendError(f"no host {name}")
            self.hosts[name]["running"] = True
            return self.hosts[name]["info"]

    def remove(self, name: str) -> None:
        with self._lock:
            self.calls.append(("remove", name))
            self.hosts.pop(name, None)
