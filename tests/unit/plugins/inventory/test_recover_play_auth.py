"""The recover play passes tpu_node every Google option the inventory source has: one list, held together.

The options live in the doc fragment fleetwarden.fleet.gcp (Python); the play that hands the source's
values to tpu_node is YAML. If an option is added to the fragment, the play must pass it too, or
recovery would authenticate differently from the inventory that listed the node.
"""

import re
from pathlib import Path

import yaml
from ansible_collections.fleetwarden.fleet.plugins.doc_fragments.gcp import ModuleDocFragment

PLAY = Path(__file__).resolve().parents[4] / "playbooks" / "recover_preempted_tpu.yml"
SOURCE_VAR = "tpu_inventory_source"


def recreate_task():
    [play] = yaml.safe_load(PLAY.read_text())
    [task] = [task for task in play["tasks"] if "fleetwarden.fleet.tpu_node" in task]
    return task["fleetwarden.fleet.tpu_node"]


def test_every_module_auth_option_comes_from_the_inventory_source():
    module_options = set(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    inventory_options = set(yaml.safe_load(ModuleDocFragment.INVENTORY)["options"])
    passed = {
        option
        for option, value in recreate_task().items()
        if isinstance(value, str) and re.search(rf"\b{SOURCE_VAR}\.{option}\b", value)
    }
    assert module_options <= inventory_options
    assert passed == module_options | {"endpoint"}


def test_the_source_file_is_read_before_the_module_runs():
    [play] = yaml.safe_load(PLAY.read_text())
    names = [
        next(iter(key for key in task if key.startswith("ansible.") or key.startswith("fleetwarden.")))
        for task in play["tasks"]
    ]
    assert names.index("ansible.builtin.include_vars") < names.index("fleetwarden.fleet.tpu_node")
    [include] = [
        task["ansible.builtin.include_vars"] for task in play["tasks"] if "ansible.builtin.include_vars" in task
    ]
    assert include == {"file": "{{ inventory_file }}", "name": SOURCE_VAR}
