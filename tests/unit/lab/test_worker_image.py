"""The lab's Ray worker image: digest, build commands, cache, and loading into lab hosts only where missing."""

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from fleetwarden.lab import worker_image
from fleetwarden.lab.docker_client import LabError
from fleetwarden.lab.worker_image import RAY_WORKER_SPEC, WorkerImageSpec

REPO = Path(__file__).resolve().parents[3]


def test_the_lab_image_carries_the_ray_the_role_deploys_with_the_dashboard():
    """The lab tests the Ray release ray_cluster runs by default; its Serve check reads the dashboard's API."""
    defaults = yaml.safe_load((REPO / "roles" / "ray_cluster" / "defaults" / "main.yml").read_text())
    (requirement,) = (Requirement(r) for r in RAY_WORKER_SPEC.requirements)
    assert (requirement.name, requirement.extras) == ("ray", {"default"})
    assert str(requirement.specifier) == "==" + defaults["ray_cluster_image"].rsplit(":", 1)[1]
    assert "python3" in RAY_WORKER_SPEC.base.packages
    assert RAY_WORKER_SPEC.tag == f"fleetwarden/ray-worker:{RAY_WORKER_SPEC.digest()}"


def test_digest_changes_with_requirements_base_and_context(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    spec = WorkerImageSpec(context=tmp_path)
    first = spec.digest()
    assert dataclasses.replace(spec, requirements=("ray==2.60.0",)).digest() != first
    assert dataclasses.replace(spec, base=dataclasses.replace(spec.base, packages=("python3",))).digest() != first
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    assert spec.digest() != first


def test_pip_downloads_only_cp311_manylinux_wheels():
    argv = RAY_WORKER_SPEC.pip_download_argv(worker_image.Path("/tmp/w"), python="/venv/bin/python")
    assert argv[:4] == ["/venv/bin/python", "-m", "pip", "download"]
    assert "--only-binary=:all:" in argv and argv[argv.index("--abi") + 1] == "cp311"
    assert "manylinux_2_36_x86_64" in argv and "manylinux_2_37_x86_64" not in argv
    assert argv[-1:] == list(RAY_WORKER_SPEC.requirements)


def test_build_never_pulls_and_builds_from_the_local_base(tmp_path):
    argv = RAY_WORKER_SPEC.build_argv(tmp_path)
    assert argv[:2] == ["build", "--pull=false"]
    assert f"BASE={RAY_WORKER_SPEC.base.tag}" in argv
    assert argv[argv.index("--tag") + 1] == RAY_WORKER_SPEC.tag and argv[-1] == str(tmp_path)


class FakeDocker:
    """Images on this machine and in each lab host; records what ran."""

    binary = "docker"

    def __init__(self, here, hosts):
        self.here, self.hosts, self.calls = here, hosts, []

    def run(self, *args, check=True, timeout=120):
        self.calls.append(args)
        if args[:2] == ("image", "inspect") and "{{.Id}}" in args:
            image_id = self.here.get(args[-1], "")
            return subprocess.CompletedProcess(args, 0 if image_id else 1, image_id + "\n", "")
        if args[0] == "save":
            worker_image.Path(args[2]).write_bytes(b"tar")
        return subprocess.CompletedProcess(args, 0, "", "")

    def lines(self, *args):
        return [tag for tag, _ in self.here.items()]

    def exec(self, container, argv, timeout=60, check=False):
        image_id = self.hosts[container].get(argv[-1], "")
        return subprocess.CompletedProcess(argv, 0 if image_id else 1, image_id + "\n", "")

    def exists(self, kind, name):
        return name in self.here

    def ensure_engine(self):
        return "20.10"


def test_load_into_lab_skips_hosts_that_have_the_image_and_saves_every_tag(monkeypatch):
    image = "fleetwarden/ray-worker:latest"
    docker = FakeDocker(here={image: "sha256:new", "fleetwarden/ray-worker:abc": "sha256:new"},
                        hosts={"fw-a": {image: "sha256:new"}, "fw-b": {image: "sha256:old"}, "fw-c": {}})
    loads = []

    def fake_run(argv, stdin=None, **kwargs):
        loads.append(argv[3])
        return subprocess.CompletedProcess(argv, 0, "Loaded image", "")

    monkeypatch.setattr(worker_image.subprocess, "run", fake_run)
    outcome = worker_image.load_into_lab(["fw-a", "fw-b", "fw-c"], image, docker=docker, log=lambda m: None)
    assert outcome == {"fw-a": "present", "fw-b": "loaded", "fw-c": "loaded"}
    assert sorted(loads) == ["fw-b", "fw-c"]
    save = next(call for call in docker.calls if call[0] == "save")
    assert set(save[3:]) == {image, "fleetwarden/ray-worker:abc"}


def test_load_into_lab_needs_the_image_built_first():
    docker = FakeDocker(here={}, hosts={})
    with pytest.raises(LabError, match="build it first"):
        worker_image.load_into_lab(["fw-a"], docker=docker, log=lambda m: None)


def test_a_cached_image_is_tagged_latest_without_building():
    docker = FakeDocker(here={RAY_WORKER_SPEC.tag: "sha256:x"}, hosts={})
    tag, built, _ = worker_image.build_worker_image(docker=docker, log=lambda m: None)
    assert (tag, built) == (RAY_WORKER_SPEC.tag, False)
    assert ("tag", RAY_WORKER_SPEC.tag, RAY_WORKER_SPEC.latest) in docker.calls
    assert not any(call[0] == "build" for call in docker.calls)
