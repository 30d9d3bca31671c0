"""Helpers for the inventory plugin tests: real option definitions, recorded pages, the replay server.

A module with a unique name (not conftest) so that test modules can import it unambiguously.

Plugins are loaded without ansible's plugin loader because tests/conftest.py imports the
collection through sys.path; the loader's collection finder cannot take over once
`ansible_collections` is imported that way. `load_plugin` does what the loader does for options:
merge the doc fragments and register the option definitions.
"""

import json
from pathlib import Path

import yaml
from ansible import constants as C
from ansible.parsing.yaml.loader import AnsibleLoader
from ansible.plugins.doc_fragments import constructed, inventory_cache
from ansible.utils.plugin_docs import add_fragments
from ansible_collections.fleetwarden.fleet.plugins.doc_fragments import gcp as gcp_fragment
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import ApiCaller
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._gcp_inventory import ADDRESS_CHOICES, FALLBACK_HOSTNAME
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._inventory import (
    NAME_SCHEMES,
    unknown_options,
    validate_addresses,
    validate_filters,
    validate_hostnames,
)
from fleetwarden_testing.replay import ReplayServer

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
SAMPLES = Path(__file__).resolve().parents[4] / "inventory" / "sample"
GCP_FIXTURES = FIXTURES / "gcp"


def fixture_text(relative):
    return (FIXTURES / relative).read_text()


def fixture_json(relative):
    return json.loads(fixture_text(relative))


def ok(relative):
    """An HttpMockSequence entry answering 200 with a recorded file under tests/fixtures/gcp."""
    return ({"status": "200"}, (GCP_FIXTURES / relative).read_text())


def status(code, relative, headers=None):
    """An HttpMockSequence entry answering `code` with a recorded error body."""
    return (dict({"status": str(code)}, **(headers or {})), (GCP_FIXTURES / relative).read_text())


FRAGMENTS = {
    "constructed": constructed.ModuleDocFragment,
    "inventory_cache": inventory_cache.ModuleDocFragment,
    "fleetwarden.fleet.gcp": gcp_fragment.ModuleDocFragment,
}


class _Fragments:
    """Resolves the fragments our inventories extend, as the fragment loader would."""

    def get(self, name):
        fragment = FRAGMENTS.get(name)
        return type("Fragment", (fragment,), {"ansible_name": name}) if fragment else None


def load_plugin(module):
    """An InventoryModule of `module` with its documented options registered, as the loader does."""
    doc = AnsibleLoader(module.DOCUMENTATION).get_single_data()
    add_fragments(doc, module.__file__, fragment_loader=_Fragments())
    name = module.InventoryModule.NAME
    C.config.initialize_plugin_configuration_definitions("inventory", name, doc["options"])
    plugin = module.InventoryModule()
    plugin._load_name = name
    return plugin


class Sleeps(list):
    """A sleep that records its delays instead of waiting."""

    def __call__(self, seconds):
        self.append(seconds)


def wire_http(plugin, http, sleeps=None):
    """Make `plugin._query` use `http` (an HttpMockSequence) and never wait or look for credentials."""
    plugin._credentials = lambda: None
    plugin._api_caller = lambda credentials, deadline: ApiCaller(
        lambda: http,
        retries=plugin.get_option("retries"),
        sleep=sleeps if sleeps is not None else Sleeps(),
        deadline=deadline,
    )


# ---------------------------------------------------------------------------------------------
# The loopback server that replays recorded responses (fleetwarden_testing.replay), for ansible-inventory runs
# ---------------------------------------------------------------------------------------------


def recorded(answer):
    """(status, fixture path under tests/fixtures) -> (status, its bytes); a list stays a list, in turn."""
    if isinstance(answer, list):
        return [recorded(item) for item in answer]
    code, relative = answer
    return code, (FIXTURES / relative).read_bytes()


def replay_server(routes, expected_auth, open_paths=()):
    """A ReplayServer (fleetwarden_testing.replay) answering `routes` of (status, fixture path) from the recordings."""
    return ReplayServer({key: recorded(answer) for key, answer in routes.items()}, expected_auth, open_paths)


def sample_config(plugin, filename):
    """inventory/sample/<filename>, checked: the plugin accepts its name and it sets only documented options."""
    path = SAMPLES / filename
    config = yaml.safe_load(path.read_text())
    assert plugin.verify_file(str(path))
    assert config["plugin"] == plugin.NAME
    assert unknown_options(config, set(C.config.get_configuration_definitions("inventory", plugin.NAME))) == []
    return config


def check_gcp_sample_config(plugin, filename):
    """sample_config for a GCP inventory, whose hostnames, addresses and filters must also be valid."""
    config = sample_config(plugin, filename)
    validate_hostnames(config.get("hostnames", [FALLBACK_HOSTNAME]), NAME_SCHEMES, ADDRESS_CHOICES)
    validate_addresses(config.get("addresses", []), ADDRESS_CHOICES)
    validate_filters(config.get("filters", {}))
