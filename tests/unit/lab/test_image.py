"""The lab image spec: a digest that changes with what goes into the image and only then, and its build commands."""

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest

from fleetwarden.lab.image import LAB_HOST_SPEC, ImageSpec


@pytest.mark.parametrize("spec", ["fleetwarden.lab.image:LAB_HOST_SPEC",
                                  "fleetwarden.lab.worker_image:RAY_WORKER_SPEC"])
def test_digest_is_the_same_in_the_next_process(spec):
    """The tag names the cached image: the next run must compute the same one, whatever its hash seed."""
    module, name = spec.split(":")
    here = getattr(__import__(module, fromlist=[name]), name).digest()
    for seed in ("1", "2"):
        fresh = subprocess.run([sys.executable, "-c", f"from {module} import {name}; print({name}.digest())"],
                               env=dict(os.environ, PYTHONHASHSEED=seed), capture_output=True, text=True, check=True)
        assert fresh.stdout.strip() == here


def test_digest_does_not_depend_on_where_the_checkout_is(tmp_path):
    moved = shutil.copytree(LAB_HOST_SPEC.overlay, tmp_path / "overlay")
    assert dataclasses.replace(LAB_HOST_SPEC, overlay=moved).digest() == LAB_HOST_SPEC.digest()
    assert LAB_HOST_SPEC.tag == f"fleetwarden/lab-host:{LAB_HOST_SPEC.digest()}"


def test_digest_changes_with_packages_and_overlay_content(tmp_path):
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc" / "motd").write_text("one")
    spec = ImageSpec("x/y", "bookworm", ("python3",), overlay=overlay)
    first = spec.digest()
    assert dataclasses.replace(spec, packages=("python3", "jq")).digest() != first
    (overlay / "etc" / "motd").write_text("two")
    assert spec.digest() != first


def test_digest_ignores_package_order():
    a = ImageSpec("x/y", "bookworm", ("jq", "python3"))
    b = ImageSpec("x/y", "bookworm", ("python3", "jq"))
    assert a.digest() == b.digest()


def test_build_argv_strips_host_keys_and_writes_to_stdout():
    argv = LAB_HOST_SPEC.mmdebstrap_argv()
    assert argv[0] == "mmdebstrap"
    assert argv[-2:] == ["bookworm", "-"]
    assert any("ssh_host_*" in arg for arg in argv), "host keys baked into the image would be shared by every host"
    include = next(a for a in argv if a.startswith("--include="))
    for package in ("systemd", "openssh-server", "docker.io", "python3"):
        assert package in include.split("=", 1)[1].split(",")


def test_import_argv_sets_systemd_as_command_and_labels_digest():
    argv = LAB_HOST_SPEC.import_argv()
    assert argv[0] == "import"
    assert 'CMD ["/lib/systemd/systemd"]' in argv
    assert f"LABEL io.fleetwarden.image-digest={LAB_HOST_SPEC.digest()}" in argv
    assert argv[-1] == LAB_HOST_SPEC.tag
