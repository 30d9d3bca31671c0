"""The receiver's inventory, rendered for the controller host (pure)."""

from ansible_collections.fleetwarden.fleet.plugins.filter.receiver import receiver_inventory

HOSTVARS = {
    "lab-head": {"ansible_host": "127.0.0.1", "ansible_port": 40001, "fleetwarden_lab_address": "172.30.0.2",
                 "fleetwarden_accelerator": "cpu", "ansible_ssh_private_key_file": "/home/me/.lab/id",
                 "recovery_receiver_token": "secret-token-value", "worker_service_workers": [{"name": "w"}]},
    "lab-worker-1": {"ansible_host": "127.0.0.1", "ansible_port": 40002, "fleetwarden_lab_address": "172.30.0.3",
                     "fleetwarden_accelerator": "gpu"},
}
GROUPS = {"all": ["lab-head", "lab-worker-1"], "ungrouped": [], "head": ["lab-head"], "workers": ["lab-worker-1"],
          "controller": ["lab-head"], "gpu": ["lab-worker-1"]}


def test_lab_hosts_are_reached_at_their_lab_address_on_port_22():
    inventory = receiver_inventory(GROUPS["all"], HOSTVARS, GROUPS, address_var="fleetwarden_lab_address",
                                   port_var="", carry=["fleetwarden_accelerator"], key_file="/var/lib/r/.ssh/id",
                                   known_hosts_file="/etc/fleetwarden/known")
    worker = inventory["all"]["hosts"]["lab-worker-1"]
    assert worker["ansible_host"] == "172.30.0.3" and worker["ansible_port"] == 22
    assert worker["fleetwarden_accelerator"] == "gpu"
    assert "HostKeyAlias=lab-worker-1" in worker["ansible_ssh_common_args"]
    assert "UserKnownHostsFile=/etc/fleetwarden/known" in worker["ansible_ssh_common_args"]
    assert inventory["all"]["vars"] == {"ansible_user": "root", "ansible_ssh_private_key_file": "/var/lib/r/.ssh/id"}
    assert inventory["all"]["children"]["workers"] == {"hosts": {"lab-worker-1": None}}
    assert set(inventory["all"]["children"]) == {"head", "workers", "controller", "gpu"}
    # Nothing of this machine's connection settings is carried over.
    assert "/home/me" not in str(inventory) and "40002" not in str(inventory)


def test_fleet_declarations_are_carried_by_prefix_and_the_token_never():
    inventory = receiver_inventory(["lab-head"], HOSTVARS, GROUPS, carry_prefixes=["worker_service_", "recovery_"])
    head = inventory["all"]["hosts"]["lab-head"]
    assert head["worker_service_workers"] == [{"name": "w"}]
    assert "recovery_receiver_token" not in head and "secret-token-value" not in str(inventory)


def test_a_fleet_keeps_its_addresses_and_ports():
    inventory = receiver_inventory(["lab-worker-1"], HOSTVARS, GROUPS)
    assert inventory["all"]["hosts"]["lab-worker-1"]["ansible_port"] == 40002
    assert inventory["all"]["children"]["head"] == {"hosts": {}}
