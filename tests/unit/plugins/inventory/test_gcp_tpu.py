"""Unit tests for the fleetwarden.fleet.gcp_tpu inventory: paging, shaping and parse() on recorded pages."""

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleParserError
from ansible_collections.fleetwarden.fleet.plugins.inventory import gcp_tpu
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import (
    ApiCaller,
    build_service,
    unknown_options,
    validate_filters,
    validate_hostnames,
)
from googleapiclient.http import HttpMockSequence
from inventory_testlib import SAMPLES, Sleeps, fixture_json, load_plugin, ok, status, wire_http

PAGES = [ok("tpu/nodes_page1.json"), ok("tpu/nodes_page2.json"), ok("tpu/nodes_page3.json")]
BASE_CONFIG = "plugin: fleetwarden.fleet.gcp_tpu\nprojects: [fw-ml-prod]\n"


@pytest.fixture
def plugin():
    return load_plugin(gcp_tpu)


@pytest.fixture
def warnings(monkeypatch, plugin):
    seen = []
    monkeypatch.setattr(plugin.display, "warning", lambda message, *args, **kwargs: seen.append(message))
    return seen


def parse(plugin, inventory, loader, write_config, responses, extra="", sleeps=None):
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + extra)
    http = HttpMockSequence(list(responses))
    wire_http(plugin, http, sleeps)
    plugin.parse(inventory, loader, path)
    if getattr(plugin, "_cache", None) is not None:  # what InventoryManager does after parse()
        plugin.update_cache_if_changed()
    return http


def host_vars(inventory, name):
    return inventory.get_host(name).vars


def group_hosts(inventory, group):
    return sorted(host.name for host in inventory.groups[group].get_hosts())


# --- verify_file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("prod.gcp_tpu.yml", True),
        ("prod.gcp_tpu.yaml", True),
        ("gcp_tpu.yml", True),
        ("prod.gce_gpu.yml", False),
        ("gcp_tpu.yml.bak", False),
        ("prod.yml", False),
    ],
)
def test_verify_file_checks_the_suffix(plugin, tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text(BASE_CONFIG)
    assert plugin.verify_file(str(path)) is accepted


# --- shaping -----------------------------------------------------------------------------------


def test_a_multi_host_slice_gives_one_host_per_worker():
    node = fixture_json("gcp/tpu/nodes_page2.json")["nodes"][2]  # pod-v4-32-d, 4 endpoints
    records = gcp_tpu.host_records(node)
    assert [name for name, _ in records] == ["pod-v4-32-d-w0", "pod-v4-32-d-w1", "pod-v4-32-d-w2", "pod-v4-32-d-w3"]
    assert [host["tpu_worker_index"] for _, host in records] == [0, 1, 2, 3]
    assert {host["tpu_worker_count"] for _, host in records} == {4}
    assert [host["tpu_internal_ip"] for _, host in records] == [f"10.130.0.{last}" for last in (140, 141, 142, 143)]
    assert records[3][1]["tpu_external_ip"] == "34.16.6.13"


def test_a_single_host_node_keeps_its_name_and_all_vars():
    node = fixture_json("gcp/tpu/nodes_page1.json")["nodes"][0]
    assert gcp_tpu.host_records(node) == [
        [
            "train-v4-8-a",
            {
                "tpu_node_name": "train-v4-8-a",
                "tpu_project": "fw-ml-prod",
                "tpu_zone": "us-central2-b",
                "tpu_worker_count": 1,
                "tpu_accelerator_type": "v4-8",
                "tpu_state": "READY",
                "tpu_health": "HEALTHY",
                "tpu_provisioning_model": "SPOT",
                "tpu_labels": {"fleet": "ray", "team": "ml"},
                "tpu_runtime_version": "tpu-ubuntu2204-base",
                "tpu_worker_index": 0,
                "tpu_internal_ip": "10.130.0.115",
                "tpu_external_ip": "34.16.5.7",
            },
        ]
    ]


def test_a_creating_node_without_endpoints_still_has_worker_zero():
    node = fixture_json("gcp/tpu/nodes_page2.json")["nodes"][1]  # serve-v5e-4, CREATING
    [(name, host)] = gcp_tpu.host_records(node)
    assert name == "serve-v5e-4"
    assert host["tpu_state"] == "CREATING"
    assert host["tpu_worker_index"] == 0
    assert host["tpu_worker_count"] == 0
    assert host["tpu_internal_ip"] is None
    assert host["tpu_provisioning_model"] == "PREEMPTIBLE"


def test_collect_nodes_concatenates_pages_and_shortens_unreachable():
    pages = [fixture_json(f"gcp/tpu/nodes_page{index}.json") for index in (1, 2, 3)]
    nodes, unreachable = gcp_tpu.collect_nodes(pages)
    assert len(nodes) == 7
    assert unreachable == ["us-east1-d"]


def test_collect_zones():
    assert gcp_tpu.collect_zones([fixture_json("gcp/tpu/locations.json")]) == [
        "europe-west4-a",
        "us-central2-b",
        "us-east1-d",
    ]


def test_shape_sorts_by_project_zone_and_name():
    nodes = [node for index in (1, 2, 3) for node in fixture_json(f"gcp/tpu/nodes_page{index}.json")["nodes"]]
    names = [name for name, _ in gcp_tpu.shape(nodes)]
    assert names[:3] == ["old-v3-8", "eval-v5p-8", "pod-v4-32-d-w0"]
    assert names[-1] == "serve-v5e-4"
    assert len(names) == 11


def test_node_pages_follow_three_pages_through_the_wildcard_location():
    http = HttpMockSequence(list(PAGES))
    caller = ApiCaller(lambda: http, sleep=Sleeps())
    pages = list(gcp_tpu.node_pages(build_service("tpu", "v2", http), caller.execute, "fw-ml-prod", "-"))
    assert len(pages) == 3
    uris = [request[0] for request in http.request_sequence]
    assert all(uri.startswith("https://tpu.googleapis.com/v2/projects/fw-ml-prod/locations/-/nodes?") for uri in uris)
    assert "pageToken" not in uris[0]
    assert "pageToken=" + fixture_json("gcp/tpu/nodes_page1.json")["nextPageToken"] in uris[1]
    assert "pageToken=" + fixture_json("gcp/tpu/nodes_page2.json")["nextPageToken"] in uris[2]


# --- parse() on recorded pages -----------------------------------------------------------------


def test_parse_builds_hosts_groups_and_vars(plugin, inventory, loader, write_config, warnings):
    parse(plugin, inventory, loader, write_config, PAGES)
    assert len(inventory.hosts) == 11
    assert group_hosts(inventory, "tpu_state_preempted") == ["train-v4-8-c"]
    assert group_hosts(inventory, "tpu_state_creating") == ["serve-v5e-4"]
    assert group_hosts(inventory, "tpu_state_terminated") == ["old-v3-8"]
    assert len(group_hosts(inventory, "tpu_state_ready")) == 8
    assert group_hosts(inventory, "tpu_accelerator_v4_16") == ["train-v4-16-b-w0", "train-v4-16-b-w1"]
    assert group_hosts(inventory, "tpu_zone_us_west4_a") == ["serve-v5e-4"]
    assert len(group_hosts(inventory, "gcp_tpu")) == 11
    worker = host_vars(inventory, "train-v4-16-b-w1")
    assert worker["ansible_host"] == "34.16.5.22"
    assert worker["tpu_node_name"] == "train-v4-16-b"
    assert worker["tpu_worker_index"] == 1
    # No external IP: the next choice, the internal one.
    assert host_vars(inventory, "eval-v5p-8")["ansible_host"] == "10.164.0.12"
    assert host_vars(inventory, "eval-v5p-8")["tpu_provisioning_model"] == "RESERVED"
    assert warnings == [
        "fleetwarden.fleet.gcp_tpu: project fw-ml-prod: location(s) us-east1-d unreachable; "
        "their TPU nodes are missing from the inventory"
    ]


def test_hostnames_option_picks_ansible_host(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, PAGES, "hostnames: [internal_ip]\n")
    assert host_vars(inventory, "train-v4-8-a")["ansible_host"] == "10.130.0.115"
    # Nothing to connect to yet, and `name` was not allowed: no ansible_host at all.
    assert "ansible_host" not in host_vars(inventory, "serve-v5e-4")


def test_filters_keep_only_matching_hosts(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, PAGES, "filters:\n  tpu_state: [PREEMPTED, TERMINATED]\n")
    assert sorted(inventory.hosts) == ["old-v3-8", "train-v4-8-c"]


def test_constructed_features_apply(plugin, inventory, loader, write_config):
    extra = (
        "compose:\n  ansible_user: \"'ray'\"\n  label_role: tpu_labels.role | default('none')\n"
        "keyed_groups:\n  - key: tpu_labels.team\n    prefix: team\n"
        "groups:\n  spot_workers: tpu_provisioning_model == 'SPOT'\n"
    )
    parse(plugin, inventory, loader, write_config, PAGES, extra)
    assert group_hosts(inventory, "team_serving") == ["serve-v5e-4"]
    assert group_hosts(inventory, "spot_workers") == ["train-v4-8-a", "train-v4-8-c"]
    assert host_vars(inventory, "train-v4-8-a")["ansible_user"] == "ray"
    # A label that looks like a template stays text: API values are never templated.
    assert host_vars(inventory, "pod-v4-32-d-w0")["label_role"] == "{{ lookup('pipe', 'id') }}"


def test_429_then_success(plugin, inventory, loader, write_config):
    sleeps = Sleeps()
    responses = [status(429, "errors/429_rate_limited_tpu.json"), *PAGES]
    http = parse(plugin, inventory, loader, write_config, responses, sleeps=sleeps)
    assert len(inventory.hosts) == 11
    assert len(sleeps) == 1
    assert len(http.request_sequence) == 4


def test_403_service_disabled_names_the_api_and_the_project(plugin, inventory, loader, write_config):
    with pytest.raises(AnsibleParserError) as raised:
        parse(plugin, inventory, loader, write_config, [status(403, "errors/403_service_disabled_tpu.json")])
    message = str(raised.value)
    assert "Cloud TPU API (tpu.googleapis.com) is disabled for project fw-ml-prod" in message
    assert "gcloud services enable tpu.googleapis.com --project fw-ml-prod" in message


def test_wildcard_failure_falls_back_to_zone_by_zone(plugin, inventory, loader, write_config, warnings):
    responses = [
        status(400, "errors/400_wildcard_location_tpu.json"),
        ok("tpu/locations.json"),
        ok("tpu/nodes_europe_west4_a.json"),
        ok("tpu/nodes_us_central2_b.json"),
        status(503, "errors/503_unavailable.json"),
    ]
    http = parse(plugin, inventory, loader, write_config, responses, "retries: 0\nconcurrency: 1\n")
    assert sorted(inventory.hosts) == ["old-v3-8", "train-v4-8-a"]
    uris = [request[0] for request in http.request_sequence]
    assert "/locations/-/nodes" in uris[0]
    assert "/v2/projects/fw-ml-prod/locations?" in uris[1]
    assert "/locations/europe-west4-a/nodes" in uris[2]
    assert "/locations/us-east1-d/nodes" in uris[4]
    assert "listing zone by zone instead" in warnings[0]
    assert warnings[1].endswith(
        "location(s) us-east1-d unreachable (HTTP 503); their TPU nodes are missing from the inventory"
    )


def test_configured_zones_are_listed_one_by_one(plugin, inventory, loader, write_config):
    responses = [ok("tpu/nodes_us_central2_b.json")]
    http = parse(plugin, inventory, loader, write_config, responses, "zones: [us-central2-b]\n")
    assert sorted(inventory.hosts) == ["train-v4-8-a"]
    assert "/locations/us-central2-b/nodes" in http.request_sequence[0][0]


def test_permission_errors_do_not_fall_back(plugin, inventory, loader, write_config):
    with pytest.raises(AnsibleParserError, match="Permission denied by the Cloud TPU API for project fw-ml-prod"):
        parse(plugin, inventory, loader, write_config, [status(403, "errors/403_permission_denied_tpu.json")])


# --- configuration errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("zone: [us-central2-b]\n", "unknown option(s) zone (did you mean zones?)"),
        ("hostnames: [public_ip]\n", "hostnames has unsupported value(s) 'public_ip'"),
        ("filters:\n  tpu_state: [{a: 1}]\n", "filters.tpu_state must be a string or a list of strings"),
        ("auth_kind: serviceaccount\n", "needs service_account_file"),
        ("endpoint: http://tpu.example.com/\n", "endpoint must be an https:// URL"),
    ],
)
def test_malformed_config_gives_a_clear_error(plugin, inventory, loader, write_config, extra, message):
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + extra)
    with pytest.raises(AnsibleParserError) as raised:
        plugin.parse(inventory, loader, path)
    assert str(raised.value).startswith("fleetwarden.fleet.gcp_tpu: ")
    assert message in str(raised.value)


def test_missing_credentials_give_one_clear_error(plugin, inventory, loader, write_config, monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG)
    with pytest.raises(AnsibleParserError, match=r"^No Google Cloud credentials found\."):
        plugin.parse(inventory, loader, path)


def test_an_unknown_option_is_refused_before_any_api_call(plugin, inventory, loader, write_config):
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + "projcts: [x]\n")
    plugin._credentials = lambda: pytest.fail("credentials must not be loaded")
    with pytest.raises(AnsibleParserError, match="projcts"):
        plugin.parse(inventory, loader, path)


# --- cache -------------------------------------------------------------------------------------


def test_cache_hit_makes_no_api_call(plugin, inventory, loader, write_config, tmp_path):
    extra = "cache: true\ncache_plugin: jsonfile\ncache_connection: %s\n" % (tmp_path / "cache")
    parse(plugin, inventory, loader, write_config, PAGES, extra)
    first = {name: dict(host.vars) for name, host in inventory.hosts.items()}

    from ansible.inventory.data import InventoryData

    again = InventoryData()
    second_plugin = load_plugin(gcp_tpu)
    http = parse(second_plugin, again, loader, write_config, [], extra)  # an empty sequence: any call fails
    assert http.request_sequence == []
    assert {name: dict(host.vars) for name, host in again.hosts.items()} == first
    assert group_hosts(again, "tpu_state_preempted") == ["train-v4-8-c"]


def test_refresh_ignores_the_cache_and_rewrites_it(plugin, inventory, loader, write_config, tmp_path):
    extra = "cache: true\ncache_plugin: jsonfile\ncache_connection: %s\n" % (tmp_path / "cache")
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + extra)
    http = HttpMockSequence(list(PAGES))
    wire_http(plugin, http)
    plugin.parse(inventory, loader, path, cache=False)
    assert len(http.request_sequence) == 3
    assert plugin._cache[plugin.get_cache_key(path)][0][0] == "old-v3-8"


def test_the_sample_config_is_accepted_and_uses_only_documented_options(plugin):
    path = SAMPLES / "gcp_tpu.yml"
    config = yaml.safe_load(path.read_text())
    assert plugin.verify_file(str(path))
    assert config["plugin"] == plugin.NAME
    assert unknown_options(config, set(C.config.get_configuration_definitions("inventory", plugin.NAME))) == []
    validate_hostnames(config["hostnames"])
    validate_filters(config.get("filters", {}))


def test_every_host_is_in_the_plugin_group_even_without_default_groups(plugin, inventory, loader, write_config):
    from ansible.plugins.inventory import BaseInventoryPlugin

    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG)
    BaseInventoryPlugin.parse(plugin, inventory, loader, path)
    plugin._read_config_data(path)
    plugin._populate([["bare", {"tpu_state": None, "tpu_accelerator_type": None, "tpu_zone": None}]])
    plugin._populate([["grouped", {"tpu_state": "READY", "tpu_accelerator_type": None, "tpu_zone": None}]])
    assert group_hosts(inventory, "gcp_tpu") == ["bare", "grouped"]
    assert [group.name for group in inventory.groups["gcp_tpu"].child_groups] == ["tpu_state_ready"]
