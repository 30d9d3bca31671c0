"""The docker CLI option: its argument spec and its doc fragment say the same."""

import yaml
from ansible_collections.fleetwarden.fleet.plugins.doc_fragments.docker import ModuleDocFragment
from ansible_collections.fleetwarden.fleet.plugins.module_utils._docker_cli import DOCKER_CLI_ARGUMENT_SPEC


def test_the_doc_fragment_documents_the_argument_spec():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert {name: {"type": option["type"], "default": option["default"]} for name, option in documented.items()} == (
        DOCKER_CLI_ARGUMENT_SPEC)
