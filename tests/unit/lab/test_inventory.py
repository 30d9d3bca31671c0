"""The lab's pure pieces: host planning, inventory rendering, known_hosts."""

import pytest
import yaml

from fleetwarden.lab.inventory import (
    MAX_HOSTS,
    HostPlan,
    HostState,
    LabConfigError,
    known_hosts_lines,
    plan_hosts,
    render_inventory,
)


def test_default_lab_is_one_head_and_workers_cycling_accelerators():
    hosts = plan_hosts(4)
    assert [(h.name, h.role, h.accelerator) for h in hosts] == [
        ("lab-head", "head", "cpu"),
        ("lab-worker-1", "worker", "gpu"),
        ("lab-worker-2", "worker", "tpu"),
        ("lab-worker-3", "worker", "gpu"),
    ]


def test_single_host_lab_is_just_the_head():
    assert [h.role for h in plan_hosts(1)] == ["head"]


def test_accelerators_and_prefix_are_honoured():
    hosts = plan_hosts(3, ("cpu",), prefix="itest")
    assert [h.name for h in hosts] == ["itest-head", "itest-worker-1", "itest-worker-2"]
    assert {h.accelerator for h in hosts} == {"cpu"}


@pytest.mark.parametrize(
    ("count", "accelerators", "prefix", "message"),
    [
        (0, ("gpu",), "lab", "--hosts must be between 1 and 16, got 0"),
        (-2, ("gpu",), "lab", "--hosts must be between 1 and 16, got -2"),
        (MAX_HOSTS + 1, ("gpu",), "lab", f"--hosts must be between 1 and 16, got {MAX_HOSTS + 1}"),
        (True, ("gpu",), "lab", "--hosts must be a whole number"),
        (2, (), "lab", "--accelerators must name at least one"),
        (2, ("gpu", "fpga"), "lab", "--accelerators: unknown kind 'fpga'"),
        (2, ("gpu",), "Bad_Name", "--prefix must match"),
    ],
)
def test_bad_lab_input_names_the_option(count, accelerators, prefix, message):
    with pytest.raises(LabConfigError) as err:
        plan_hosts(count, accelerators, prefix=prefix)
    assert message in str(err.value)


def _states():
    plans = plan_hosts(3)
    return [HostState(p, f"fw-{p.name}", 40000 + i, f"172.30.0.{i + 2}") for i, p in enumerate(plans)]


def test_inventory_groups_and_connection_vars():
    inv = render_inventory(_states(), "/k/id_ed25519", "/k/known_hosts")
    children = inv["all"]["children"]
    assert list(children["head"]["hosts"]) == ["lab-head"]
    assert list(children["workers"]["hosts"]) == ["lab-worker-1", "lab-worker-2"]
    assert list(children["gpu"]["hosts"]) == ["lab-worker-1"]
    assert list(children["tpu"]["hosts"]) == ["lab-worker-2"]
    assert list(children["monitoring"]["hosts"]) == ["lab-head"]  # Prometheus and Alertmanager
    assert list(children["controller"]["hosts"]) == ["lab-head"]
    worker = children["workers"]["hosts"]["lab-worker-2"]
    ssh_args = worker.pop("ansible_ssh_common_args")
    assert "StrictHostKeyChecking=yes" in ssh_args
    assert "UserKnownHostsFile=/k/known_hosts" in ssh_args
    assert ssh_args.endswith("-o HostKeyAlias=lab-worker-2")
    assert worker == {
        "ansible_host": "127.0.0.1",
        "ansible_port": 40002,
        "fleetwarden_accelerator": "tpu",
        "fleetwarden_lab_address": "172.30.0.4",
        "fleetwarden_lab_container": "fw-lab-worker-2",
    }
    vars_ = inv["all"]["vars"]
    assert vars_["ansible_ssh_private_key_file"] == "/k/id_ed25519"


def test_inventory_round_trips_through_yaml_and_keeps_empty_groups():
    one = [HostState(HostPlan("lab-head", "head", "cpu"), "fw-lab-head", 40000, "172.30.0.2")]
    text = yaml.safe_dump(render_inventory(one, "/k", "/kh"))
    data = yaml.safe_load(text)
    assert set(data["all"]["children"]) == {"head", "workers", "gpu", "tpu", "monitoring", "controller"}
    assert data["all"]["children"]["workers"]["hosts"] == {}


def test_known_hosts_are_keyed_by_host_name_and_drop_comments():
    lines = known_hosts_lines({
        "lab-worker-1": "ssh-ed25519 AAAAC3Nza1 root@lab-worker-1\n",
        "lab-head": "ssh-ed25519 AAAAC3Nza0 root@lab-head",
    })
    assert lines == ["lab-head ssh-ed25519 AAAAC3Nza0", "lab-worker-1 ssh-ed25519 AAAAC3Nza1"]


def test_unreadable_host_key_is_an_error_naming_the_host():
    with pytest.raises(LabConfigError, match="lab-head"):
        known_hosts_lines({"lab-head": "garbage"})
