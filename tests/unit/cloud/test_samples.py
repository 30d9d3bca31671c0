"""inventory/sample against the stand-in, through the real plugins, ansible-inventory and the TPU recovery path.

The lab fleet is made through the stand-in's APIs (fleetwarden.cloud.lab_fleet), in the samples' own
project. The samples are copied unchanged except for endpoint and credentials; the test asserts every group
and host var that site.yml and recover.yml read. Then a slice is preempted, the inventory shows it, and
tpu_node (main(), the module's own API code) recreates it through the stand-in with new host keys.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from standin_clients import clients

from fleetwarden.cloud import lab_fleet

REPO_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
SAMPLES = REPO_ROOT / "inventory" / "sample"
PROJECT = yaml.safe_load((SAMPLES / "gcp_tpu.yml").read_text())["projects"][0]
HEAD = f"lab-head.{lab_fleet.GCE_ZONE}.{PROJECT}"
GPU = f"lab-gpu.{lab_fleet.GCE_ZONE}.{PROJECT}"
TPU = [f"lab-tpu-w{index}.{lab_fleet.TPU_ZONE}.{PROJECT}" for index in (0, 1)]
# What site.yml's plays target, and the groups recover.yml's TPU play reads.
SITE_GROUPS = {"head": [HEAD], "workers": sorted([GPU, *TPU]), "gpu": [GPU], "tpu": TPU,
               "monitoring": [HEAD], "controller": [HEAD]}


def site_yml_groups():
    """The groups site.yml's plays target, and those its roles read by name (role defaults `*_group: NAME`)."""
    plays = yaml.safe_load((REPO_ROOT / "site.yml").read_text())
    groups = {play["hosts"] for play in plays}
    for defaults in (REPO_ROOT / "roles").glob("*/defaults/main.yml"):
        groups |= {value for key, value in (yaml.safe_load(defaults.read_text()) or {}).items()
                   if key.endswith("_group") and isinstance(value, str) and value.isidentifier()}
    return groups - {"all"}


def test_the_samples_make_every_group_site_yml_targets():
    assert site_yml_groups() == set(SITE_GROUPS)


def copy_samples(directory, standin):
    """The samples with only endpoint and credentials changed; the token comes from GCP_ACCESS_TOKEN."""
    paths = {}
    for name, endpoint in (("gcp_tpu.yml", standin.url + "/"), ("gce_gpu.yml", standin.url + "/compute/v1/")):
        text = (SAMPLES / name).read_text()
        assert "auth_kind: application\n" in text
        text = text.replace("auth_kind: application\n", f"auth_kind: accesstoken\nendpoint: {endpoint}\n")
        paths[name] = directory / name
        paths[name].write_text(text)
    return paths


def inventory_list(paths, standin, home, *extra):
    env = dict(os.environ, HOME=str(home), GCP_ACCESS_TOKEN=standin.api_token, ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    sources = [arg for path in paths for arg in ("-i", str(path))]
    completed = subprocess.run([str(BIN / "ansible-inventory"), *sources, "--list", *extra], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert standin.api_token not in completed.stdout + completed.stderr
    return json.loads(completed.stdout)


def plain(value):
    """A host var as JSON gives it, without ansible's unsafe marking (values from an API are marked)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def members(listing, group):
    """Hosts of a group, through its children too."""
    entry = listing.get(group) or {}
    hosts = set(entry.get("hosts") or [])
    for child in entry.get("children") or []:
        hosts |= set(members(listing, child))
    return sorted(hosts)


@pytest.fixture
def fleet(standin, tmp_path):
    tpu, compute, _ = clients(standin)
    lab_fleet.create(tpu, compute, PROJECT, timeout=30)
    return copy_samples(tmp_path, standin)


def test_the_samples_find_the_lab_fleet_with_site_yml_groups_and_recover_yml_vars(standin, fleet, tmp_path, run_main):
    listing = inventory_list(fleet.values(), standin, tmp_path)
    for group, hosts in SITE_GROUPS.items():
        assert members(listing, group) == hosts, group
    host_vars = plain(listing["_meta"]["hostvars"])
    backend = standin.backend.hosts
    # ansible_host is the host's own address; roles read it (node_exporter, prometheus, the receiver).
    assert host_vars[HEAD]["ansible_host"] == backend["lab-head"]["info"].address
    assert host_vars[GPU]["ansible_host"] == backend["lab-gpu"]["info"].address
    for index, host in enumerate(TPU):
        assert host_vars[host]["ansible_host"] == backend[f"lab-tpu-w{index}"]["info"].address
        # recover_preempted_tpu.yml reads these, and inventory_file.
        assert {key: host_vars[host][key] for key in ("tpu_node_name", "tpu_project", "tpu_zone", "tpu_state",
                                                      "tpu_worker_index")} == {
            "tpu_node_name": "lab-tpu", "tpu_project": PROJECT, "tpu_zone": lab_fleet.TPU_ZONE, "tpu_state": "READY",
            "tpu_worker_index": index}
        assert host_vars[host]["fleetwarden_accelerator"] == "tpu"
    assert (host_vars[HEAD]["fleetwarden_accelerator"], host_vars[GPU]["fleetwarden_accelerator"]) == ("cpu", "gpu")
    assert members(listing, "model_SPOT") == [GPU]

    # Preempted: the slice's workers are in tpu_state_preempted, the group recover.yml recreates.
    _, _, admin = clients(standin)
    admin("preempt", TPU[1])
    listing = inventory_list([fleet["gcp_tpu.yml"]], standin, tmp_path, "--flush-cache")
    assert members(listing, "tpu_state_preempted") == TPU
    old_keys = {host: dict(standin.cloud.state["host_keys"][host]) for host in ("lab-tpu-w0", "lab-tpu-w1")}

    # tpu_node, as recover_preempted_tpu.yml calls it, with the source's endpoint and credential.
    from ansible_collections.fleetwarden.fleet.plugins.modules import tpu_node

    params = {"name": "lab-tpu", "project": PROJECT, "zone": lab_fleet.TPU_ZONE, "state": "recreated",
              "endpoint": standin.url + "/", "auth_kind": "accesstoken", "access_token": standin.api_token,
              "poll_interval": 0, "timeout": 60}
    result = run_main(tpu_node, params)
    assert result["actions"] == ["delete", "create"] and result["node"]["state"] == "READY"
    assert result["node"]["provisioning_model"] == "SPOT"
    assert standin.api_token not in json.dumps(result)
    new_keys = {host: standin.cloud.state["host_keys"][host] for host in old_keys}
    assert all(new_keys[host] != old_keys[host] for host in old_keys)  # a recreated VM has new host keys
    listing = inventory_list([fleet["gcp_tpu.yml"]], standin, tmp_path, "--flush-cache")
    assert members(listing, "tpu_state_ready") == TPU


def test_tpu_node_refuses_real_credentials_for_the_stand_in(standin, run_main):
    from ansible_collections.fleetwarden.fleet.plugins.modules import tpu_node

    result = run_main(tpu_node, {"name": "lab-tpu", "project": PROJECT, "zone": lab_fleet.TPU_ZONE,
                                 "endpoint": standin.url + "/", "auth_kind": "application"})
    assert result["failed"] is True
    assert "auth_kind is application" in result["msg"]


def test_the_inventory_rides_out_api_errors_the_stand_in_injects(standin, fleet, tmp_path):
    """429 twice on the project: the plugin backs off and retries (module_utils/_http_retry.py), then lists."""
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    from ansible_collections.fleetwarden.fleet.plugins.inventory import gcp_tpu
    from inventory_testlib import load_plugin

    _, _, admin = clients(standin)
    admin("api-errors", TPU[0], status=429, count=2)
    config = tmp_path / "retry.gcp_tpu.yml"
    text = fleet["gcp_tpu.yml"].read_text().replace("cache: true", "cache: false")
    config.write_text(text + f"access_token: {standin.api_token}\n")
    inventory = InventoryData()
    load_plugin(gcp_tpu).parse(inventory, DataLoader(), str(config), cache=False)
    assert sorted(host.name for host in inventory.groups["tpu"].get_hosts()) == TPU
    assert standin.cloud.state["api_errors"] == []  # both 429s were spent on the listing
