"""A real 2-host lab: SSH, systemd as PID 1, an inner dockerd, idempotent up, clean down."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra
import yaml

pytestmark = pytest.mark.lab

LAB = "fwit"
UP = ("up", "--hosts", "2", "--no-worker-image")
REPO = Path(__file__).resolve().parents[2]


def fleetwarden(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "fleetwarden.cli", "--project-dir", str(project), "lab", "--name", LAB, *args],
        capture_output=True, text=True, check=False, timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def docker_ids(kind: str) -> list[str]:
    argv = ["docker", kind, "ls", "-q", "--filter", f"label=io.fleetwarden.lab={LAB}"]
    if kind == "container":
        argv.insert(3, "-a")
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    project = tmp_path_factory.mktemp("labproject")
    try:
        fleetwarden(project, "image", "--host-only")
        fleetwarden(project, *UP)
        yield project
    finally:
        fleetwarden(project, "down", check=False)


@pytest.fixture(scope="module")
def inventory(lab) -> Path:
    return lab / "inventory" / "lab" / "hosts.yml"


@pytest.fixture(autouse=True)
def lab_up(lab):
    """Every test of this module starts with the lab up: brought up again when a test before it took it down (the
    down test, when the tests run in another order)."""
    if not docker_ids("container"):
        fleetwarden(lab, *UP)


def test_inventory_has_the_head_and_a_gpu_worker(inventory):
    data = yaml.safe_load(inventory.read_text())["all"]["children"]
    assert list(data["head"]["hosts"]) == [f"{LAB}-head"]
    assert list(data["workers"]["hosts"]) == [f"{LAB}-worker-1"]
    assert list(data["gpu"]["hosts"]) == [f"{LAB}-worker-1"]
    assert data["tpu"]["hosts"] == {}


def test_ansible_reaches_every_host_over_ssh(inventory):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "-i", str(inventory), "all", "-m", "ansible.builtin.ping",
         "-e", "ansible_connection=ssh"],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ping: pong") == 2


@pytest.mark.parametrize("host", [f"{LAB}-head", f"{LAB}-worker-1"])
def test_host_runs_systemd_sshd_and_its_own_dockerd(inventory, host):
    node = testinfra.get_host(f"ansible://{host}?ansible_inventory={inventory}")
    assert node.check_output("systemctl is-system-running") == "running"
    assert node.check_output("ps -o comm= -p 1") == "systemd"
    assert node.service("ssh").is_running
    info = json.loads(node.check_output("docker info --format '{{json .}}'"))
    # The inner /var/lib/docker is a volume of its own, or dockerd falls back to the slow vfs driver.
    assert info["Driver"] == "overlay2"
    assert info["ServerVersion"]


def test_each_host_has_its_own_ssh_host_key(inventory):
    keys = set()
    for host in (f"{LAB}-head", f"{LAB}-worker-1"):
        node = testinfra.get_host(f"ansible://{host}?ansible_inventory={inventory}")
        keys.add(node.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1])
    assert len(keys) == 2


def test_up_again_is_idempotent(lab, inventory):
    before_ids = sorted(docker_ids("container"))
    before = inventory.read_text()
    fleetwarden(lab, *UP)
    assert sorted(docker_ids("container")) == before_ids
    assert inventory.read_text() == before


def test_a_stopped_lab_of_another_checkout_is_taken_over_with_this_key(lab, inventory, tmp_path):
    """The lab's containers are the machine's, its key is the checkout's: `up` from a second checkout (its own key)
    starts the stopped hosts and reaches them over SSH; the first checkout's `up` takes them back the same way."""
    before_ids = sorted(docker_ids("container"))
    subprocess.run(["docker", "stop", "--time", "5", *before_ids], capture_output=True, check=True)
    other = tmp_path / "other-checkout"
    other.mkdir()
    try:
        result = fleetwarden(other, *UP)
        assert "starting stopped host" in result.stdout + result.stderr
        assert sorted(docker_ids("container")) == before_ids
        assert (other / ".lab" / "id_ed25519").read_text() != (lab / ".lab" / "id_ed25519").read_text()
    finally:
        fleetwarden(lab, *UP)
    assert sorted(docker_ids("container")) == before_ids


def test_up_with_another_size_is_refused_and_changes_nothing(lab, inventory):
    before_ids = sorted(docker_ids("container"))
    before = inventory.read_text()
    result = fleetwarden(lab, "up", "--hosts", "3", check=False)
    assert result.returncode == 2
    assert "already exists" in result.stderr and "Nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(docker_ids("container")) == before_ids
    assert inventory.read_text() == before


def test_status_lists_both_hosts_running(lab):
    rows = json.loads(fleetwarden(lab, "status", "--json").stdout)
    assert [(r["host"], r["systemd"]) for r in rows] == [(f"{LAB}-head", "running"), (f"{LAB}-worker-1", "running")]


def test_down_removes_what_the_lab_made_and_nothing_else(lab, inventory):
    bystander = subprocess.run(["docker", "volume", "create", "fwit-bystander"], capture_output=True, text=True,
                               check=True).stdout.strip()
    try:
        fleetwarden(lab, "down")
        assert docker_ids("container") == []
        assert docker_ids("volume") == []
        assert docker_ids("network") == []
        assert not inventory.exists()
        assert subprocess.run(["docker", "volume", "inspect", bystander], capture_output=True,
                              check=False).returncode == 0
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", bystander], capture_output=True, check=False)
