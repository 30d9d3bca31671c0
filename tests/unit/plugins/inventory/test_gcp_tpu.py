"""Unit tests for the fleetwarden.fleet.gcp_tpu inventory: paging, shaping and parse() on recorded pages."""

import json

import httplib2
import pytest
from ansible.errors import AnsibleOptionsError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible_collections.fleetwarden.fleet.plugins.inventory import gcp_tpu
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import ApiCaller, build_service
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils import _tpu_inventory as tpu_inventory
from googleapiclient.http import HttpMockSequence
from inventory_testlib import Sleeps, check_gcp_sample_config, fixture_json, load_plugin, ok, status, wire_http

PAGES = [ok("tpu/nodes_page1.json"), ok("tpu/nodes_page2.json"), ok("tpu/nodes_page3.json")]
QUEUED = ok("tpu/queued_resources.json")
NO_QUEUED = ok("tpu/queued_resources_empty.json")
LISTING = [*PAGES, QUEUED]  # what one project answers: three pages of nodes, then its queued resources
BASE_CONFIG = "plugin: fleetwarden.fleet.gcp_tpu\nprojects: [fw-ml-prod]\n"
BY_NAME = "hostnames: [name]\n"
ZONE = "us-central2-b"


def fq(name, zone=ZONE, project="fw-ml-prod"):
    """The default inventory hostname: <name>.<zone>.<project>."""
    return f"{name}.{zone}.{project}"


@pytest.fixture
def plugin():
    return load_plugin(gcp_tpu)


def parse(plugin, inventory, loader, write_config, responses, extra="", sleeps=None, cache=True):
    base = BASE_CONFIG if "projects:" not in extra else BASE_CONFIG.replace("projects: [fw-ml-prod]\n", "")
    path = write_config("fleet.gcp_tpu.yml", base + extra)
    http = HttpMockSequence(list(responses))
    wire_http(plugin, http, sleeps)
    plugin.parse(inventory, loader, path, cache=cache)
    if getattr(plugin, "_cache", None) is not None:  # what InventoryManager does after parse()
        plugin.update_cache_if_changed()
    return http


def host_vars(inventory, name):
    return inventory.get_host(name).vars


def group_hosts(inventory, group):
    return sorted(host.name for host in inventory.groups[group].get_hosts())


def uris(http):
    return [request[0] for request in http.request_sequence]


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


def test_a_multi_host_slice_gives_one_record_per_worker():
    node = fixture_json("gcp/tpu/nodes_page2.json")["nodes"][2]  # pod-v4-32-d, 4 endpoints
    records = tpu_inventory.host_records(node)
    assert [host["tpu_worker_index"] for host in records] == [0, 1, 2, 3]
    assert {host["tpu_worker_count"] for host in records} == {4}
    assert [host["tpu_internal_ip"] for host in records] == [f"10.130.0.{last}" for last in (140, 141, 142, 143)]
    assert records[3]["tpu_external_ip"] == "34.16.6.13"


def test_a_single_host_node_keeps_all_vars():
    node = fixture_json("gcp/tpu/nodes_page1.json")["nodes"][0]
    assert tpu_inventory.host_records(node) == [
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
        }
    ]


def test_a_creating_node_without_endpoints_counts_its_workers_from_the_type():
    # Changed behaviour: tpu_worker_count was 0 without endpoints; it now comes from acceleratorType.
    node = fixture_json("gcp/tpu/nodes_page2.json")["nodes"][1]  # serve-v5e-4, CREATING
    [host] = tpu_inventory.host_records(node)
    assert host["tpu_state"] == "CREATING"
    assert host["tpu_worker_index"] == 0
    assert host["tpu_worker_count"] == 1
    assert host["tpu_internal_ip"] is None
    assert host["tpu_provisioning_model"] == "PREEMPTIBLE"


@pytest.mark.parametrize(
    ("node", "workers"),
    [
        ({"acceleratorType": "v4-8"}, 1),
        ({"acceleratorType": "v4-16"}, 2),
        ({"acceleratorType": "v4-32"}, 4),
        ({"acceleratorType": "v3-32"}, 4),
        ({"acceleratorType": "v2-8"}, 1),
        ({"acceleratorType": "v5p-8"}, 1),
        ({"acceleratorType": "v5p-64"}, 8),
        ({"acceleratorType": "v5litepod-8"}, 1),
        ({"acceleratorType": "v5litepod-16"}, 4),
        ({"acceleratorType": "v6e-256"}, 64),
        ({"acceleratorConfig": {"type": "V4", "topology": "2x2x2"}}, 2),
        ({"acceleratorConfig": {"type": "V5LITE_POD", "topology": "4x4"}}, 4),
        ({"acceleratorConfig": {"type": "V5LITE_POD", "topology": "2x4"}}, 1),
        ({"acceleratorConfig": {"type": "V3", "topology": "4x4"}}, 4),
        ({"acceleratorType": "v9-16"}, 1),  # unknown family, no endpoints: one host
        ({"acceleratorType": "v4-16", "networkEndpoints": [{}, {}, {}]}, 3),  # endpoints win
    ],
)
def test_worker_count(node, workers):
    assert tpu_inventory.worker_count(node) == workers


def test_a_preempted_slice_without_endpoints_keeps_its_worker_hosts():
    node = fixture_json("gcp/tpu/node_preempted_queued.json")  # qr-v4-16-e, v4-16, no endpoints
    records = tpu_inventory.host_records(node, {node["queuedResource"]: "SUSPENDED"})
    assert [(host["tpu_worker_index"], host["tpu_worker_count"]) for host in records] == [(0, 2), (1, 2)]
    assert {host["tpu_queued_resource"] for host in records} == {"qr-v4-16-e"}
    assert {host["tpu_queued_resource_state"] for host in records} == {"SUSPENDED"}


def test_collect_nodes_concatenates_pages_and_shortens_unreachable():
    pages = [fixture_json(f"gcp/tpu/nodes_page{index}.json") for index in (1, 2, 3)]
    nodes, unreachable = gcp_tpu.collect_nodes(pages)
    assert len(nodes) == 8
    assert unreachable == ["us-east1-d"]


def test_collect_zones():
    assert gcp_tpu.collect_zones([fixture_json("gcp/tpu/locations.json")]) == [
        "europe-west4-a",
        "us-central2-b",
        "us-east1-d",
    ]


def test_pending_nodes_stand_in_for_what_a_queued_resource_still_waits_for():
    queued = fixture_json("gcp/tpu/queued_resources.json")["queuedResources"]
    listed = {"projects/fw-ml-prod/locations/us-central2-b/nodes/qr-v4-16-e"}
    [pending] = tpu_inventory.pending_nodes(queued, listed)
    assert pending["name"] == "projects/fw-ml-prod/locations/us-west4-a/nodes/wait-v5e-8"
    assert pending["acceleratorType"] == "v5litepod-8"
    assert "state" not in pending
    multislice = [
        {
            "name": "projects/p/locations/z/queuedResources/multi",
            "tpu": {
                "nodeSpec": [
                    {"parent": "projects/p/locations/z", "multisliceParams": {"nodeCount": 2, "nodeIdPrefix": "m"}}
                ]
            },
        }
    ]
    assert [node["name"] for node in tpu_inventory.pending_nodes(multislice, set())] == [
        "projects/p/locations/z/nodes/m-0",
        "projects/p/locations/z/nodes/m-1",
    ]


def test_shape_sorts_by_project_zone_node_and_worker():
    nodes = [node for index in (1, 2, 3) for node in fixture_json(f"gcp/tpu/nodes_page{index}.json")["nodes"]]
    records = tpu_inventory.shape(nodes)
    keys = [(host["tpu_zone"], host["tpu_node_name"], host["tpu_worker_index"]) for host in records]
    assert keys[:3] == [
        ("europe-west4-a", "old-v3-8", 0),
        ("europe-west4-b", "eval-v5p-8", 0),
        (ZONE, "pod-v4-32-d", 0),
    ]
    assert keys[-1] == ("us-west4-a", "serve-v5e-4", 0)
    assert len(records) == 13


@pytest.mark.parametrize(
    ("status_code", "fallback"), [(400, True), (500, True), (503, True), (429, False), (403, False), (404, False)]
)
def test_only_a_refused_wildcard_or_a_backend_failure_falls_back_to_zones(status_code, fallback):
    error = gcp_tpu.HttpError(httplib2.Response({"status": str(status_code)}), b"{}")
    assert gcp_tpu.falls_back_to_zones(error) is fallback


def test_node_pages_follow_three_pages_through_the_wildcard_location():
    http = HttpMockSequence(list(PAGES))
    caller = ApiCaller(lambda: http, sleep=Sleeps())
    pages = list(gcp_tpu.node_pages(build_service("tpu", "v2", http), caller.execute, "fw-ml-prod", "-"))
    assert len(pages) == 3
    sent = uris(http)
    assert all(uri.startswith("https://tpu.googleapis.com/v2/projects/fw-ml-prod/locations/-/nodes?") for uri in sent)
    assert "pageToken" not in sent[0]
    assert "pageToken=" + fixture_json("gcp/tpu/nodes_page1.json")["nextPageToken"] in sent[1]
    assert "pageToken=" + fixture_json("gcp/tpu/nodes_page2.json")["nextPageToken"] in sent[2]


# --- parse() on recorded pages -----------------------------------------------------------------


def test_parse_builds_hosts_groups_and_vars(plugin, inventory, loader, write_config, warnings):
    http = parse(plugin, inventory, loader, write_config, LISTING)
    assert "/v2/projects/fw-ml-prod/locations/-/queuedResources?" in uris(http)[3]
    assert len(inventory.hosts) == 14
    assert group_hosts(inventory, "tpu_state_preempted") == [
        fq("qr-v4-16-e-w0"),
        fq("qr-v4-16-e-w1"),
        fq("train-v4-8-c"),
    ]
    assert group_hosts(inventory, "tpu_state_creating") == [fq("serve-v5e-4", "us-west4-a")]
    assert group_hosts(inventory, "tpu_state_terminated") == [fq("old-v3-8", "europe-west4-a")]
    assert len(group_hosts(inventory, "tpu_state_ready")) == 8
    assert group_hosts(inventory, "tpu_accelerator_v4_16") == [
        fq("qr-v4-16-e-w0"),
        fq("qr-v4-16-e-w1"),
        fq("train-v4-16-b-w0"),
        fq("train-v4-16-b-w1"),
    ]
    assert group_hosts(inventory, "tpu_zone_us_west4_a") == [
        fq("serve-v5e-4", "us-west4-a"),
        fq("wait-v5e-8", "us-west4-a"),
    ]
    assert len(group_hosts(inventory, "gcp_tpu")) == 14
    worker = host_vars(inventory, fq("train-v4-16-b-w1"))
    assert worker["ansible_host"] == "34.16.5.22"
    assert worker["tpu_node_name"] == "train-v4-16-b"
    assert worker["tpu_worker_index"] == 1
    # No external IP: the next address, the internal one.
    eval_host = host_vars(inventory, fq("eval-v5p-8", "europe-west4-b"))
    assert eval_host["ansible_host"] == "10.164.0.12"
    assert eval_host["tpu_provisioning_model"] == "RESERVED"
    assert warnings == [
        "fleetwarden.fleet.gcp_tpu: project fw-ml-prod: location(s) us-east1-d unreachable; "
        "their TPU nodes are missing from the inventory"
    ]


def test_every_multi_host_slice_has_a_group_of_its_own(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, LISTING)
    group = "tpu_slice_pod_v4_32_d_us_central2_b_fw_ml_prod"
    assert group_hosts(inventory, group) == [fq(f"pod-v4-32-d-w{index}") for index in range(4)]
    assert group_hosts(inventory, "tpu_slice_qr_v4_16_e_us_central2_b_fw_ml_prod") == [
        fq("qr-v4-16-e-w0"),
        fq("qr-v4-16-e-w1"),
    ]
    assert not any(name.startswith("tpu_slice_train_v4_8") for name in inventory.groups)  # single hosts: none


def test_slice_groups_follow_the_hostname_scheme_and_can_be_switched_off(plugin, loader, write_config):
    named = InventoryData()
    parse(plugin, named, loader, write_config, LISTING, BY_NAME)
    assert group_hosts(named, "tpu_slice_train_v4_16_b") == ["train-v4-16-b-w0", "train-v4-16-b-w1"]
    bare = InventoryData()
    parse(load_plugin(gcp_tpu), bare, loader, write_config, LISTING, "slice_groups: false\n")
    assert not any(name.startswith("tpu_slice_") for name in bare.groups)


def test_a_slice_keeps_its_host_names_whatever_its_state(plugin, loader, write_config):
    """The same v4-16 slice READY with endpoints, then PREEMPTED without: the same two hosts."""
    ready = fixture_json("gcp/tpu/nodes_page1.json")["nodes"][1]  # train-v4-16-b, 2 endpoints
    preempted = dict(ready, state="PREEMPTED")
    del preempted["networkEndpoints"]
    names = []
    for node in (ready, preempted):
        inventory = InventoryData()
        fresh = load_plugin(gcp_tpu)
        path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG)
        from ansible.plugins.inventory import BaseInventoryPlugin

        BaseInventoryPlugin.parse(fresh, inventory, loader, path)
        fresh._read_config_data(path)
        fresh._populate(tpu_inventory.shape([node]))
        names.append(sorted(inventory.hosts))
    assert names[0] == names[1] == [fq("train-v4-16-b-w0"), fq("train-v4-16-b-w1")]


def test_queued_resources_give_their_state_to_the_nodes_they_own(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, LISTING)
    owned = host_vars(inventory, fq("qr-v4-16-e-w1"))
    assert (owned["tpu_queued_resource"], owned["tpu_queued_resource_state"]) == ("qr-v4-16-e", "SUSPENDED")
    assert group_hosts(inventory, "tpu_queued_state_suspended") == [fq("qr-v4-16-e-w0"), fq("qr-v4-16-e-w1")]
    assert "tpu_queued_resource" not in host_vars(inventory, fq("train-v4-8-a"))


def test_capacity_a_queued_resource_still_waits_for_is_in_a_group(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, LISTING)
    waiting = fq("wait-v5e-8", "us-west4-a")
    assert group_hosts(inventory, "tpu_queued_waiting") == [waiting]
    pending = host_vars(inventory, waiting)
    assert pending["tpu_queued_resource_state"] == "WAITING_FOR_RESOURCES"
    assert pending["tpu_state"] is None
    assert "ansible_host" not in pending


def test_queued_resources_can_be_left_out(plugin, inventory, loader, write_config):
    http = parse(plugin, inventory, loader, write_config, PAGES, "queued_resources: false\n")
    assert len(http.request_sequence) == 3
    assert len(inventory.hosts) == 13


# --- host names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostnames", "expected"),
    [
        ("[name]", "train-v4-16-b-w1"),
        ("[name_zone]", "train-v4-16-b-w1.us-central2-b"),
        ("[name_project]", "train-v4-16-b-w1.fw-ml-prod"),
        ("[name_zone_project]", "train-v4-16-b-w1.us-central2-b.fw-ml-prod"),
        ("[labels.team, name]", "ml-w1"),
        ("[internal_ip, name]", "10.130.0.121"),
        ("[external_ip]", "34.16.5.22"),
    ],
)
def test_hostnames_choose_the_inventory_hostname(plugin, inventory, loader, write_config, hostnames, expected):
    extra = f"hostnames: {hostnames}\nfilters:\n  tpu_node_name: train-v4-16-b\n"
    parse(plugin, inventory, loader, write_config, LISTING, extra)
    assert host_vars(inventory, expected)["tpu_node_name"] == "train-v4-16-b"
    assert host_vars(inventory, expected)["tpu_worker_index"] == 1


def test_the_default_hostname_is_qualified_by_zone_and_project(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, LISTING)
    assert sorted(inventory.hosts)[:2] == [fq("eval-v5p-8", "europe-west4-b"), fq("old-v3-8", "europe-west4-a")]
    assert all(name.endswith(".fw-ml-prod") for name in inventory.hosts)


def test_a_host_without_the_chosen_value_falls_back_to_the_qualified_name(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, LISTING, "hostnames: [external_ip]\n")
    assert "34.16.5.22" in inventory.hosts
    # eval-v5p-8 has no external IP: it keeps the documented default name, it is not dropped.
    assert fq("eval-v5p-8", "europe-west4-b") in inventory.hosts
    assert len(inventory.hosts) == 14


def test_addresses_choose_ansible_host(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, LISTING, BY_NAME + "addresses: [internal_ip]\n")
    assert host_vars(inventory, "train-v4-8-a")["ansible_host"] == "10.130.0.115"
    # Nothing to connect to yet: no ansible_host at all.
    assert "ansible_host" not in host_vars(inventory, "serve-v5e-4")


def test_no_addresses_means_no_ansible_host(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, LISTING, "addresses: []\n")
    assert not any("ansible_host" in host.vars for host in inventory.hosts.values())


TWO_PROJECTS = "projects: [fw-ml-prod, fw-ml-dev]\nconcurrency: 1\nretries: 0\n"
OTHER_PROJECT = [ok("tpu/nodes_other_project.json")]


def test_same_names_in_two_projects_are_both_listed_by_default(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, [*PAGES, *OTHER_PROJECT, QUEUED, NO_QUEUED], TWO_PROJECTS)
    assert fq("train-v4-8-a") in inventory.hosts
    assert fq("train-v4-8-a", project="fw-ml-dev") in inventory.hosts
    assert len(inventory.hosts) == 15


def test_a_label_collision_is_an_error_too(plugin, inventory, loader, write_config):
    with pytest.raises(AnsibleParserError, match=r"same inventory hostname ml-w0: .*pod-v4-32-d .*and .*qr-v4-16-e"):
        parse(plugin, inventory, loader, write_config, LISTING, "hostnames: [labels.team]\n")


def test_a_name_collision_is_an_error_naming_both_nodes(plugin, inventory, loader, write_config):
    with pytest.raises(AnsibleParserError) as raised:
        parse(
            plugin, inventory, loader, write_config, [*PAGES, *OTHER_PROJECT, QUEUED, NO_QUEUED], TWO_PROJECTS + BY_NAME
        )
    message = str(raised.value)
    assert "same inventory hostname train-v4-8-a" in message
    assert "projects/fw-ml-dev/locations/us-central2-b/nodes/train-v4-8-a" in message
    assert "projects/fw-ml-prod/locations/us-central2-b/nodes/train-v4-8-a" in message
    assert "name_zone_project" in message


def test_a_preempted_node_is_never_hidden_behind_a_ready_one_of_the_same_name(plugin, inventory, loader, write_config):
    """A fixed bug: a READY node and a PREEMPTED one share a name in two zones; both stay."""
    page = fixture_json("gcp/tpu/nodes_page2.json")
    twin = dict(page["nodes"][0], name="projects/fw-ml-prod/locations/us-east1-d/nodes/train-v4-8-c", state="READY")
    body = {"nodes": [page["nodes"][0], twin]}
    parse(plugin, inventory, loader, write_config, [({"status": "200"}, json.dumps(body)), NO_QUEUED])
    assert group_hosts(inventory, "tpu_state_preempted") == [fq("train-v4-8-c")]
    assert group_hosts(inventory, "tpu_state_ready") == [fq("train-v4-8-c", "us-east1-d")]


def test_filters_keep_only_matching_hosts(plugin, inventory, loader, write_config):
    extra = BY_NAME + "filters:\n  tpu_state: [PREEMPTED, TERMINATED]\n"
    parse(plugin, inventory, loader, write_config, LISTING, extra)
    assert sorted(inventory.hosts) == ["old-v3-8", "qr-v4-16-e-w0", "qr-v4-16-e-w1", "train-v4-8-c"]


def test_constructed_features_apply(plugin, inventory, loader, write_config):
    extra = BY_NAME + (
        "compose:\n  ansible_user: \"'ray'\"\n  label_role: tpu_labels.role | default('none')\n"
        "keyed_groups:\n  - key: tpu_labels.team\n    prefix: team\n"
        "groups:\n  spot_workers: tpu_provisioning_model == 'SPOT' and tpu_state == 'READY'\n"
    )
    parse(plugin, inventory, loader, write_config, LISTING, extra)
    assert group_hosts(inventory, "team_serving") == ["serve-v5e-4", "wait-v5e-8"]
    assert group_hosts(inventory, "spot_workers") == ["train-v4-8-a"]
    assert host_vars(inventory, "train-v4-8-a")["ansible_user"] == "ray"
    # A label that looks like a template stays text: API values are never templated.
    assert host_vars(inventory, "pod-v4-32-d-w0")["label_role"] == "{{ lookup('pipe', 'id') }}"


# --- retries, fallbacks and partial failures ---------------------------------------------------


def test_429_then_success(plugin, inventory, loader, write_config):
    sleeps = Sleeps()
    responses = [status(429, "errors/429_rate_limited_tpu.json"), *LISTING]
    http = parse(plugin, inventory, loader, write_config, responses, sleeps=sleeps)
    assert len(inventory.hosts) == 14
    assert len(sleeps) == 1
    assert len(http.request_sequence) == 5


def test_429_with_retries_exhausted_does_not_fan_out_to_zones(plugin, inventory, loader, write_config, warnings):
    """A spent quota: the same request is retried with backoff, then the project fails. No zone-by-zone listing."""
    sleeps = Sleeps()
    responses = [status(429, "errors/429_rate_limited_tpu.json")] * 3
    with pytest.raises(AnsibleParserError, match="kept failing with HTTP 429 for project fw-ml-prod"):
        parse(plugin, inventory, loader, write_config, responses, "retries: 2\n", sleeps=sleeps)
    assert len(sleeps) == 2


def test_403_service_disabled_names_the_api_and_the_project(plugin, inventory, loader, write_config):
    with pytest.raises(AnsibleParserError) as raised:
        parse(plugin, inventory, loader, write_config, [status(403, "errors/403_service_disabled_tpu.json")])
    message = str(raised.value)
    assert "Cloud TPU API (tpu.googleapis.com) is disabled for project fw-ml-prod" in message
    assert "gcloud services enable tpu.googleapis.com --project fw-ml-prod" in message


def test_one_refused_project_leaves_the_others_listed(plugin, inventory, loader, write_config, warnings):
    """Changed behaviour: a 403 in one project was fatal for the whole source; now it warns, like a zone."""
    responses = [*PAGES, status(403, "errors/403_permission_denied_tpu.json"), QUEUED]
    parse(plugin, inventory, loader, write_config, responses, TWO_PROJECTS)
    assert len(inventory.hosts) == 14
    [lost] = [warning for warning in warnings if "fw-ml-dev" in warning]
    assert lost.startswith("fleetwarden.fleet.gcp_tpu: project fw-ml-dev is missing from this inventory: ")
    assert "Permission denied by the Cloud TPU API for project fw-ml-dev" in lost
    assert "roles/tpu.viewer on project fw-ml-dev" in lost
    assert "strict_permissions: true" in lost


def test_a_project_whose_retries_run_out_leaves_the_others_listed(plugin, inventory, loader, write_config, warnings):
    responses = [*PAGES, status(429, "errors/429_rate_limited_tpu.json"), QUEUED]
    parse(plugin, inventory, loader, write_config, responses, TWO_PROJECTS)
    assert len(inventory.hosts) == 14
    [lost] = [warning for warning in warnings if "fw-ml-dev" in warning]
    assert "HTTP 429 for project fw-ml-dev" in lost
    assert "raise retries or total_timeout" in lost


def test_strict_permissions_makes_a_lost_project_fatal(plugin, inventory, loader, write_config):
    responses = [*PAGES, status(403, "errors/403_permission_denied_tpu.json"), QUEUED]
    with pytest.raises(AnsibleParserError, match="Permission denied by the Cloud TPU API for project fw-ml-dev"):
        parse(plugin, inventory, loader, write_config, responses, TWO_PROJECTS + "strict_permissions: true\n")


def test_rejected_credentials_are_fatal_whatever_the_option(plugin, inventory, loader, write_config):
    unauthenticated = ({"status": "401"}, '{"error": {"code": 401, "message": "bad credentials"}}')
    with pytest.raises(AnsibleParserError, match="rejected the credentials for project fw-ml-prod"):
        parse(plugin, inventory, loader, write_config, [unauthenticated], TWO_PROJECTS)


def test_wildcard_failure_falls_back_to_zone_by_zone(plugin, inventory, loader, write_config, warnings):
    responses = [
        status(400, "errors/400_wildcard_location_tpu.json"),
        ok("tpu/locations.json"),
        ok("tpu/nodes_europe_west4_a.json"),
        ok("tpu/nodes_us_central2_b.json"),
        status(503, "errors/503_unavailable.json"),
        NO_QUEUED,
        NO_QUEUED,
        NO_QUEUED,
    ]
    http = parse(plugin, inventory, loader, write_config, responses, BY_NAME + "retries: 0\nconcurrency: 1\n")
    assert sorted(inventory.hosts) == ["old-v3-8", "train-v4-8-a"]
    sent = uris(http)
    assert "/locations/-/nodes" in sent[0]
    assert "/v2/projects/fw-ml-prod/locations?" in sent[1]
    assert "/locations/europe-west4-a/nodes" in sent[2]
    assert "/locations/us-east1-d/nodes" in sent[4]
    assert "/locations/europe-west4-a/queuedResources" in sent[5]
    assert "listing zone by zone instead" in warnings[0]
    assert warnings[1].endswith(
        "location(s) us-east1-d unreachable (HTTP 503); their TPU nodes are missing from the inventory"
    )


def test_configured_zones_are_listed_one_by_one(plugin, inventory, loader, write_config):
    responses = [ok("tpu/nodes_us_central2_b.json"), NO_QUEUED]
    http = parse(plugin, inventory, loader, write_config, responses, BY_NAME + "zones: [us-central2-b]\n")
    assert sorted(inventory.hosts) == ["train-v4-8-a"]
    assert "/locations/us-central2-b/nodes" in uris(http)[0]
    assert "/locations/us-central2-b/queuedResources" in uris(http)[1]


def test_permission_errors_do_not_fall_back(plugin, inventory, loader, write_config):
    with pytest.raises(AnsibleParserError, match="Permission denied by the Cloud TPU API for project fw-ml-prod"):
        parse(plugin, inventory, loader, write_config, [status(403, "errors/403_permission_denied_tpu.json")])


def test_queued_resources_that_cannot_be_listed_lose_no_node(plugin, inventory, loader, write_config, warnings):
    responses = [*PAGES, status(503, "errors/503_unavailable.json")]
    parse(plugin, inventory, loader, write_config, responses, "retries: 0\n")
    assert len(inventory.hosts) == 13
    assert host_vars(inventory, fq("qr-v4-16-e-w0"))["tpu_queued_resource_state"] is None
    assert any("queued resources in all zones could not be listed (HTTP 503)" in warning for warning in warnings)


def test_a_refused_queued_resource_wildcard_is_listed_zone_by_zone(plugin, inventory, loader, write_config):
    responses = [
        *PAGES,
        status(400, "errors/400_wildcard_location_tpu.json"),
        ok("tpu/locations.json"),
        NO_QUEUED,
        NO_QUEUED,
        QUEUED,
    ]
    http = parse(plugin, inventory, loader, write_config, responses, "concurrency: 1\n")
    sent = uris(http)
    assert "/locations/-/queuedResources" in sent[3]
    assert "/v2/projects/fw-ml-prod/locations?" in sent[4]
    assert [uri.split("/locations/")[1].split("/")[0] for uri in sent[5:]] == [
        "europe-west4-a",
        "us-central2-b",
        "us-east1-d",
    ]
    assert host_vars(inventory, fq("qr-v4-16-e-w0"))["tpu_queued_resource_state"] == "SUSPENDED"


class Clock:
    """A monotonic clock that moves only when the caller sleeps."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_total_time_is_bounded_by_total_timeout(plugin, inventory, loader, write_config, warnings):
    """A persistently failing zone: retries stop when the budget is spent, and the failure is reported."""
    clock = Clock()
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + "zones: [us-east1-d]\ntotal_timeout: 10\nretries: 10\n")
    http = HttpMockSequence([status(503, "errors/503_unavailable.json")] * 20)
    plugin._credentials = lambda: None
    plugin._deadline = lambda: clock() + plugin.get_option("total_timeout")
    plugin._api_caller = lambda credentials, deadline: ApiCaller(
        lambda: http,
        retries=plugin.get_option("retries"),
        sleep=clock.sleep,
        clock=clock,
        deadline=deadline,
        rand=lambda: 1.0,
    )
    plugin.parse(inventory, loader, path)
    assert clock.now - 1000.0 <= 10
    node_requests = [uri for uri in uris(http) if "/nodes?" in uri]
    assert len(node_requests) == 4  # 1 s, 2 s, 4 s of backoff; the next 8 s would overrun the budget
    assert any("us-east1-d unreachable (time budget spent)" in warning for warning in warnings)
    # What is left of the budget (3 s) goes to the queued resources; then they are given up too.
    assert any("queued resources in us-east1-d could not be listed" in warning for warning in warnings)


# --- configuration errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("zone: [us-central2-b]\n", "unknown option(s) zone (did you mean zones?)"),
        ("hostnames: [public_ip]\n", "hostnames has unsupported value(s) 'public_ip'"),
        ("hostnames: ['labels.']\n", "hostnames has unsupported value(s) 'labels.'"),
        ("filters:\n  tpu_state: [{a: 1}]\n", "filters.tpu_state must be a string or a list of strings"),
        ("auth_kind: serviceaccount\n", "needs service_account_file"),
        ("service_account_contents: '{}'\n", "service_account_contents is only used with auth_kind=serviceaccount"),
        ("endpoint: http://tpu.example.com/\n", "endpoint must be an https:// URL"),
        ("total_timeout: 0\n", "total_timeout must be a positive number"),
    ],
)
def test_malformed_config_gives_a_clear_error(plugin, inventory, loader, write_config, extra, message):
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + extra)
    with pytest.raises(AnsibleParserError) as raised:
        plugin.parse(inventory, loader, path)
    assert str(raised.value).startswith("fleetwarden.fleet.gcp_tpu: ")
    assert message in str(raised.value)


def test_an_address_choice_outside_the_list_is_refused(plugin, inventory, loader, write_config):
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + "addresses: [name]\n")
    with pytest.raises(AnsibleOptionsError, match="addresses"):
        plugin.parse(inventory, loader, path)


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


def cache_options(tmp_path):
    return "cache: true\ncache_plugin: jsonfile\ncache_connection: %s\n" % (tmp_path / "cache")


def test_cache_hit_makes_no_api_call(plugin, inventory, loader, write_config, tmp_path):
    extra = cache_options(tmp_path)
    parse(plugin, inventory, loader, write_config, LISTING, extra)
    first = {name: dict(host.vars) for name, host in inventory.hosts.items()}
    again = InventoryData()
    http = parse(load_plugin(gcp_tpu), again, loader, write_config, [], extra)  # an empty sequence: any call fails
    assert http.request_sequence == []
    assert {name: dict(host.vars) for name, host in again.hosts.items()} == first
    assert group_hosts(again, "tpu_state_preempted") == group_hosts(inventory, "tpu_state_preempted")


def test_a_cache_hit_on_a_partial_result_warns_as_the_original_run_did(
    plugin, inventory, loader, write_config, tmp_path, monkeypatch
):
    extra = TWO_PROJECTS + cache_options(tmp_path)
    responses = [*PAGES, status(403, "errors/403_permission_denied_tpu.json"), QUEUED]
    seen = []
    monkeypatch.setattr(plugin.display, "warning", lambda msg, *args, **kwargs: seen.append(msg))
    parse(plugin, inventory, loader, write_config, responses, extra)
    first = list(seen)
    assert len(first) == 2  # the unreachable zone, and the lost project
    seen.clear()
    parse(load_plugin(gcp_tpu), InventoryData(), loader, write_config, [], extra)
    assert seen == [message.replace("gcp_tpu: ", "gcp_tpu: from the cache: ", 1) for message in first]


def test_a_cache_hit_on_a_partial_result_is_fatal_under_strict_permissions(
    plugin, inventory, loader, write_config, tmp_path
):
    extra = TWO_PROJECTS + cache_options(tmp_path)
    responses = [*PAGES, status(403, "errors/403_permission_denied_tpu.json"), QUEUED]
    parse(plugin, inventory, loader, write_config, responses, extra)
    with pytest.raises(AnsibleParserError, match="project fw-ml-dev"):
        parse(load_plugin(gcp_tpu), InventoryData(), loader, write_config, [], extra + "strict_permissions: true\n")


def test_an_old_cache_entry_is_refreshed_not_misread(plugin, inventory, loader, write_config, tmp_path):
    extra = cache_options(tmp_path)
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + extra)
    parse(plugin, inventory, loader, write_config, LISTING, extra)
    key = plugin.get_cache_key(path)
    plugin._cache[key] = [["old-format-host", {"tpu_state": "READY"}]]  # what the plugin used to write
    plugin.update_cache_if_changed()
    again = InventoryData()
    http = parse(load_plugin(gcp_tpu), again, loader, write_config, LISTING, extra)
    assert len(http.request_sequence) == 4
    assert "old-format-host" not in again.hosts


def test_refresh_ignores_the_cache_and_rewrites_it(plugin, inventory, loader, write_config, tmp_path):
    extra = cache_options(tmp_path)
    http = parse(plugin, inventory, loader, write_config, LISTING, extra, cache=False)
    assert len(http.request_sequence) == 4
    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + extra)
    assert plugin._cache[plugin.get_cache_key(path)]["records"][0]["tpu_node_name"] == "old-v3-8"


def test_the_sample_config_is_accepted_and_uses_only_documented_options(plugin):
    check_gcp_sample_config(plugin, "gcp_tpu.yml")


def test_every_host_is_in_the_plugin_group_even_without_default_groups(plugin, inventory, loader, write_config):
    from ansible.plugins.inventory import BaseInventoryPlugin

    path = write_config("fleet.gcp_tpu.yml", BASE_CONFIG + BY_NAME)
    BaseInventoryPlugin.parse(plugin, inventory, loader, path)
    plugin._read_config_data(path)
    base = {"tpu_project": "p", "tpu_zone": "z", "tpu_worker_count": 1, "tpu_worker_index": 0, "tpu_labels": {}}
    bare = dict(base, tpu_node_name="bare", tpu_state=None, tpu_accelerator_type=None)
    grouped = dict(base, tpu_node_name="grouped", tpu_state="READY", tpu_accelerator_type=None)
    plugin._populate([bare, grouped])
    assert group_hosts(inventory, "gcp_tpu") == ["bare", "grouped"]
    assert sorted(group.name for group in inventory.groups["gcp_tpu"].child_groups) == ["tpu_state_ready", "tpu_zone_z"]
