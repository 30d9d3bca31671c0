"""The lab host image: built from Debian packages with mmdebstrap, never pulled.

The image is tagged with a hash of everything that goes into it, so a build is
skipped when an image of that hash exists, and any change to the spec rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fleetwarden.lab.docker_client import Docker, LabError

IMAGE_DIR = Path(__file__).parent / "image"
LAB_IMAGE_REPO = "fleetwarden/lab-host"
LAB_IMAGE = f"{LAB_IMAGE_REPO}:latest"


@dataclass(frozen=True)
class ImageSpec:
    """What goes into an image: a Debian suite, packages, files and commands."""

    repository: str
    suite: str
    packages: tuple[str, ...]
    overlay: Path | None = None
    enable_units: tuple[str, ...] = ()
    mask_units: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        """A stable hash of the spec, the build hooks and the overlay files' names, modes and contents."""
        h = hashlib.sha256()
        spec = {
            "suite": self.suite, "packages": sorted(self.packages), "hooks": self._hooks("OVERLAY"),
            "changes": self.changes, "labels": self.labels,
        }
        h.update(json.dumps(spec, sort_keys=True).encode())
        if self.overlay is not None:
            for path in sorted(p for p in self.overlay.rglob("*") if p.is_file()):
                h.update(str(path.relative_to(self.overlay)).encode())
                h.update(oct(path.stat().st_mode & 0o777).encode())
                h.update(path.read_bytes())
        return h.hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.digest()}"

    def _hooks(self, overlay: str) -> list[str]:
        hooks = [f"sync-in {overlay} /"] if self.overlay is not None else []
        hooks += [f'chroot "$1" systemctl enable {unit}' for unit in self.enable_units]
        hooks += [f'chroot "$1" systemctl mask {unit}' for unit in self.mask_units]
        # No image shares host keys or a machine id: each host makes its own at boot.
        hooks += ['rm -f "$1"/etc/ssh/ssh_host_* "$1"/etc/machine-id', 'touch "$1"/etc/machine-id',
                  'mkdir -p "$1"/etc/ssh/fleetwarden-lab']
        return hooks

    def mmdebstrap_argv(self) -> list[str]:
        argv = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(self.packages)]
        argv += [f"--customize-hook={hook}" for hook in self._hooks(str(self.overlay))]
        return [*argv, self.suite, "-"]

    def import_argv(self) -> list[str]:
        argv = ["import"]
        for change in self.changes:
            argv += ["--change", change]
        for key, value in sorted(self.labels.items()):
            argv += ["--change", f"LABEL {key}={value}"]
        argv += ["--change", f"LABEL io.fleetwarden.image-digest={self.digest()}", "-", self.tag]
        return argv


LAB_HOST_SPEC = ImageSpec(
    repository=LAB_IMAGE_REPO,
    suite="bookworm",
    packages=(
        "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "sudo",
        "procps", "iproute2", "iptables", "docker.io", "ca-certificates", "curl", "less", "kmod",
        "psmisc", "jq", "util-linux",
    ),
    overlay=IMAGE_DIR / "overlay",
    enable_units=("ssh-hostkeys.service",),
    # Consoles do not exist in a container host.
    mask_units=("getty@tty1.service", "console-getty.service"),
    # docker import accepts no STOPSIGNAL: the lab sets --stop-signal when it creates a host.
    changes=('CMD ["/lib/systemd/systemd"]', "ENV container=docker"),
    labels={"io.fleetwarden.lab": "image"},
)


def _stream(stream, prefix: str, started: float, sink=sys.stderr) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        if line:
            print(f"{prefix} [{time.monotonic() - started:5.1f}s] {line}", file=sink, flush=True)


def build(spec: ImageSpec = LAB_HOST_SPEC, docker: Docker | None = None, force: bool = False,
          log=print) -> tuple[str, bool, float]:
    """Builds the image unless one of its digest exists. Returns (tag, built, seconds)."""
    docker = docker or Docker()
    docker.ensure_engine()
    started = time.monotonic()
    tag = spec.tag
    latest = f"{spec.repository}:latest"
    if not force and docker.exists("image", tag):
        docker.run("tag", tag, latest)
        log(f"image {tag} is cached (digest unchanged); tagged {latest}")
        return tag, False, time.monotonic() - started
    if shutil.which("mmdebstrap") is None:
        raise LabError("mmdebstrap is not installed; run scripts/install-engine.sh (it installs it from Debian)")
    log(f"building {tag} from Debian {spec.suite} packages (mmdebstrap | docker import) ...")
    # mmdebstrap signals its whole process group when its output pipe breaks: keep it in its own.
    debstrap = subprocess.Popen(spec.mmdebstrap_argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    progress = threading.Thread(target=_stream, args=(debstrap.stderr, "  mmdebstrap", started), daemon=True)
    progress.start()
    importer = subprocess.run([docker.binary, *spec.import_argv()], stdin=debstrap.stdout,
                              capture_output=True, text=True, check=False)
    debstrap.stdout.close()
    debstrap_rc = debstrap.wait()
    progress.join(timeout=5)
    if debstrap_rc != 0:
        raise LabError(f"mmdebstrap failed with exit code {debstrap_rc}; see its output above")
    if importer.returncode != 0:
        raise LabError(f"docker import failed: {importer.stderr.strip()}")
    docker.run("tag", tag, latest)
    elapsed = time.monotonic() - started
    log(f"built {tag} in {elapsed:.1f} s; tagged {latest}")
    return tag, True, elapsed
