"""The gcp doc fragment writes out twice what modules and inventories share (ansible-test reads each
variant as one literal): the two copies must stay equal."""

import yaml
from ansible_collections.fleetwarden.fleet.plugins.doc_fragments.gcp import ModuleDocFragment

SHARED = ("auth_kind", "service_account_file", "scopes", "retries")


def _strip_env(option):
    return {key: value for key, value in option.items() if key not in ("env", "description")}


def test_gcp_module_and_inventory_fragments_agree():
    module = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    inventory = yaml.safe_load(ModuleDocFragment.INVENTORY)
    assert module["requirements"] == inventory["requirements"]
    for name in SHARED:
        assert _strip_env(module["options"][name]) == _strip_env(inventory["options"][name]), name
    for name in ("scopes", "retries"):
        assert module["options"][name] == inventory["options"][name], name
