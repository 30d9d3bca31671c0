"""The stand-in's real backend: each TPU worker and VM is a lab host container, made by fleetwarden.lab's own code.

Creating a host is `Lab._create_host` (the lab image, network, SSH key and run flags of `lab up`), then
`Lab._wait_ready`; its address is the container's on the lab network, its host keys are read from the
container (what the stand-in serves as guest attributes `hostkeys/`). Stop and start are docker's; remove is
`Lab._remove_hosts`. The Ray worker image is loaded into a new host when this machine has it, as `lab up` does.
"""

from __future__ import annotations

import threading

from fleetwarden.cloud.backend import Backend, BackendError, HostInfo, HostSpec
from fleetwarden.lab.docker_client import LabError
from fleetwarden.lab.image import LAB_IMAGE
from fleetwarden.lab.inventory import HostPlan
from fleetwarden.lab.lab import Lab
from fleetwarden.lab.worker_image import WORKER_IMAGE, image_id, load_into_lab

# sshd's host keys, as the image's ssh-hostkeys.service makes them at first boot.
HOST_KEY_FILES = tuple(f"/etc/ssh/ssh_host_{kind}_key.pub" for kind in ("ed25519", "ecdsa", "rsa"))


def parse_host_keys(text: str) -> dict[str, str]:
    """{"ssh-ed25519": blob, ...} from the contents of OpenSSH .pub files (`type blob [comment]` lines)."""
    keys = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(("ssh-", "ecdsa-")):
            keys[parts[0]] = parts[1]
    return keys


class LabBackend(Backend):
    def __init__(self, lab: Lab, log=print) -> None:
        self.lab = lab
        self.log = log
        # The engine creates a slice's workers side by side: the lab key and network are made once, and the
        # Ray image (a `docker save` of some GB) is copied into one host at a time.
        self._setup = threading.Lock()
        self._image = threading.Lock()

    def _call(self, what: str, function, *args):
        try:
            return function(*args)
        except LabError as exc:
            raise BackendError(f"{what}: {exc}") from None

    def create(self, spec: HostSpec) -> HostInfo:
        return self._call(f"creating {spec.name}", self._create, spec)

    def _create(self, spec: HostSpec) -> HostInfo:
        lab = self.lab
        container = lab.container(spec.name)
        if not lab.docker.exists("container", container):
            if not lab.docker.exists("image", LAB_IMAGE):
                raise BackendError(f"the lab image {LAB_IMAGE} is not built; run `fleetwarden lab image` first")
            with self._setup:
                lab._ensure_key()
                lab._ensure_network()
            try:
                lab._create_host(HostPlan(spec.name, spec.role, spec.accelerator))
            except LabError:
                lab._remove_hosts([spec.name], drop_network=False)
                raise
        else:
            lab.docker.run("start", container)
        info = self._ready(spec.name)
        with self._image:
            if image_id(lab.docker, WORKER_IMAGE):
                load_into_lab([container], docker=lab.docker, log=self.log)
        return info

    def _ready(self, name: str) -> HostInfo:
        state = self.lab.host(name)
        self.lab._wait_ready([state])
        result = self.lab.docker.exec(state.container, ["cat", *HOST_KEY_FILES])
        keys = parse_host_keys(result.stdout)
        if "ssh-ed25519" not in keys:
            raise BackendError(f"{name} has no SSH host key yet ({result.stderr.strip() or 'empty'})")
        return HostInfo(state.address, keys)

    def stop(self, name: str) -> None:
        self._call(f"stopping {name}", self.lab.docker.run, "stop", self.lab.container(name))

    def start(self, name: str) -> HostInfo:
        def start() -> HostInfo:
            self.lab.docker.run("start", self.lab.container(name))
            return self._ready(name)

        return self._call(f"starting {name}", start)

    def remove(self, name: str) -> None:
        self._call(f"removing {name}", self.lab._remove_hosts, [name], False)
