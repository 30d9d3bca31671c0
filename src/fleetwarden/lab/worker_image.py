"""The lab's Ray worker image, and loading it into the lab hosts' own dockerd.

The base is a Debian python3 image built like the lab host image (mmdebstrap |
docker import). On top of it, `docker build --pull=false` installs Ray from wheels
that pip downloads on this machine first (pip's ordinary client, with this
machine's pip configuration), so the build itself needs no network and no registry.
Both images are tagged by a digest of everything that goes into them and rebuilt
only when that digest changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fleetwarden.lab.docker_client import Docker, LabError
from fleetwarden.lab.image import ImageSpec
from fleetwarden.lab.image import build as build_base_image

WORKER_IMAGE_DIR = Path(__file__).parent / "worker_image"
RAY_VERSION = "2.60.0"
WORKER_IMAGE_REPO = "fleetwarden/ray-worker"
WORKER_IMAGE = f"{WORKER_IMAGE_REPO}:latest"

WORKER_BASE_SPEC = ImageSpec(
    repository="fleetwarden/worker-base",
    suite="bookworm",
    # bookworm's python3 is 3.11, which the Ray wheel (cp311) needs; curl and procps
    # are for probes and for people debugging inside a worker.
    packages=("python3", "python3-venv", "bash", "procps", "ca-certificates", "iproute2", "curl"),
    changes=('CMD ["/bin/bash"]',),
    labels={"io.fleetwarden.lab": "worker-base"},
)


@dataclass(frozen=True)
class WorkerImageSpec:
    """A Python worker image: a Debian base plus pip requirements, installed offline."""

    repository: str = WORKER_IMAGE_REPO
    base: ImageSpec = WORKER_BASE_SPEC
    # ray[default] brings the dashboard, whose REST API the Serve readiness check reads
    # (about 95 MB more than plain ray; see docs/benchmarks.md).
    requirements: tuple[str, ...] = (f"ray[default]=={RAY_VERSION}",)
    context: Path = WORKER_IMAGE_DIR
    python_version: str = "3.11"
    # The wheels must run on bookworm (glibc 2.36), x86_64.
    platforms: tuple[str, ...] = field(
        default=("manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 37))))
    labels: dict[str, str] = field(default_factory=lambda: {"io.fleetwarden.lab": "worker"})

    def digest(self) -> str:
        """A stable hash of the base's digest, the requirements and the build context's files."""
        h = hashlib.sha256()
        spec = {"base": self.base.digest(), "requirements": list(self.requirements),
                "python": self.python_version, "platforms": list(self.platforms), "labels": self.labels}
        h.update(json.dumps(spec, sort_keys=True).encode())
        for path in sorted(p for p in self.context.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(self.context)).encode())
            h.update(path.read_bytes())
        return h.hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.digest()}"

    @property
    def latest(self) -> str:
        return f"{self.repository}:latest"

    def wheels_key(self) -> str:
        """Names the wheel cache: the same requirements for the same platform share it."""
        key = json.dumps([self.requirements, self.python_version, self.platforms])
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def pip_download_argv(self, dest: Path, python: str = sys.executable) -> list[str]:
        major, minor = self.python_version.split(".")
        argv = [python, "-m", "pip", "download", "--quiet", "--dest", str(dest), "--only-binary=:all:",
                "--python-version", self.python_version, "--implementation", "cp", "--abi", f"cp{major}{minor}"]
        for platform in self.platforms:
            argv += ["--platform", platform]
        return [*argv, *self.requirements]

    def build_argv(self, context_dir: Path) -> list[str]:
        argv = ["build", "--pull=false", "--build-arg", f"BASE={self.base.tag}", "--tag", self.tag]
        for key, value in sorted({**self.labels, "io.fleetwarden.image-digest": self.digest()}.items()):
            argv += ["--label", f"{key}={value}"]
        return [*argv, str(context_dir)]


RAY_WORKER_SPEC = WorkerImageSpec()


def _default_cache_dir() -> Path:
    from fleetwarden.lab.lab import find_project_dir

    return find_project_dir() / ".cache" / "worker-image"


def download_wheels(spec: WorkerImageSpec, cache_dir: Path, log=print) -> Path:
    """The wheels for the spec's requirements, downloaded once per requirement set."""
    wheels = cache_dir / f"wheels-{spec.wheels_key()}"
    done = wheels / ".complete"
    if done.exists():
        return wheels
    partial = cache_dir / f"wheels-{spec.wheels_key()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log(f"downloading wheels for {' '.join(spec.requirements)} (pip download) ...")
    result = subprocess.run(spec.pip_download_argv(partial), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"pip download failed: {result.stderr.strip()[-2000:]}")
    (partial / ".complete").write_text("\n".join(spec.requirements) + "\n")
    shutil.rmtree(wheels, ignore_errors=True)
    partial.rename(wheels)
    return wheels


def build_worker_image(spec: WorkerImageSpec = RAY_WORKER_SPEC, docker: Docker | None = None, force: bool = False,
                       cache_dir: Path | None = None, log=print) -> tuple[str, bool, float]:
    """Builds the worker image unless one of its digest exists. Returns (tag, built, seconds).

    Tags the result `<repository>:latest` too, which is what the lab inventory names.
    """
    docker = docker or Docker()
    docker.ensure_engine()
    started = time.monotonic()
    if not force and docker.exists("image", spec.tag):
        docker.run("tag", spec.tag, spec.latest)
        log(f"image {spec.tag} is cached (digest unchanged); tagged {spec.latest}")
        return spec.tag, False, time.monotonic() - started
    build_base_image(spec.base, docker=docker, force=False, log=log)
    wheels = download_wheels(spec, cache_dir or _default_cache_dir(), log=log)
    log(f"building {spec.tag} FROM {spec.base.tag} (docker build --pull=false, pip from local wheels) ...")
    with tempfile.TemporaryDirectory(prefix="fw-worker-image-") as tmp:
        context = Path(tmp)
        shutil.copytree(spec.context, context, dirs_exist_ok=True)
        shutil.copytree(wheels, context / "wheels", ignore=shutil.ignore_patterns(".complete"))
        (context / "wheels" / "requirements.txt").write_text("\n".join(spec.requirements) + "\n")
        _build_with_progress(docker, spec.build_argv(context), started)
    docker.run("tag", spec.tag, spec.latest)
    elapsed = time.monotonic() - started
    log(f"built {spec.tag} in {elapsed:.1f} s; tagged {spec.latest}")
    return spec.tag, True, elapsed


def _build_with_progress(docker: Docker, argv: list[str], started: float) -> None:
    """`docker build`, its output streamed line by line (prefixed, with elapsed seconds) so a cold build shows
    where it is; the last lines are in the error when it fails."""
    tail: list[str] = []

    def sink_line(line: str) -> None:
        tail.append(line)
        del tail[:-40]
        print(f"  docker build [{time.monotonic() - started:5.1f}s] {line}", file=sys.stderr, flush=True)

    try:
        process = subprocess.Popen([docker.binary, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError as exc:
        raise LabError(f"the docker CLI ({docker.binary}) is not installed") from exc
    for raw in iter(process.stdout.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        if line:
            sink_line(line)
    process.stdout.close()
    if process.wait(timeout=1200) != 0:
        raise LabError("docker build of the worker image failed:\n" + "\n".join(tail[-20:]))


def image_id(docker: Docker, image: str, container: str | None = None) -> str:
    """The image's ID on this engine, or inside a lab host's engine; "" if it has no such image."""
    argv = ["image", "inspect", "--format", "{{.Id}}", image]
    result = docker.exec(container, ["docker", *argv], timeout=60) if container else docker.run(*argv, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def load_into_lab(containers: list[str], image: str = WORKER_IMAGE, docker: Docker | None = None,
                  log=print) -> dict[str, str]:
    """Loads `image` into each lab host's dockerd (docker save | docker load), skipping hosts that
    already have that image ID. `containers` are the lab hosts' container names (Lab.container()).

    Returns {container: "loaded" | "present"}.
    """
    docker = docker or Docker()
    wanted = image_id(docker, image)
    if not wanted:
        raise LabError(f"no image {image} on this machine; build it first (fleetwarden lab image)")
    # Every tag of that image in its repository travels along (the digest tag and :latest).
    repository = image.rsplit(":", 1)[0]
    tags = [tag for tag in docker.lines("image", "inspect", "--format", "{{range .RepoTags}}{{println .}}{{end}}",
                                        image) if tag.rsplit(":", 1)[0] == repository] or [image]
    missing = [c for c in containers if image_id(docker, image, c) != wanted]
    outcome = {c: "present" for c in containers if c not in missing}
    if not missing:
        log(f"{image} ({wanted[7:19]}) is already in every lab host")
        return outcome
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fw-worker-image-") as tmp:
        archive = Path(tmp) / "image.tar"
        docker.run("save", "--output", str(archive), *tags, timeout=600)

        def load(container: str) -> str:
            with archive.open("rb") as stream:
                result = subprocess.run([docker.binary, "exec", "-i", container, "docker", "load", "--quiet"],
                                        stdin=stream, capture_output=True, text=True, timeout=900, check=False)
            if result.returncode != 0:
                return f"{container}: {result.stderr.strip() or result.stdout.strip()}"
            return ""

        # Two at a time: loading is disk-bound, and this machine has few cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            errors = [e for e in pool.map(load, missing) if e]
    if errors:
        raise LabError("docker load into lab hosts failed: " + "; ".join(errors))
    log(f"loaded {image} into {', '.join(missing)} in {time.monotonic() - started:.1f} s")
    return {**outcome, **{c: "loaded" for c in missing}}
