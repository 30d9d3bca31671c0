"""Unit tests for the fleetwarden.fleet.gce_gpu inventory on recorded aggregatedList pages."""

import pytest
from ansible.errors import AnsibleParserError
from ansible_collections.fleetwarden.fleet.plugins.inventory import gce_gpu
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import ApiCaller, build_service
from googleapiclient.http import HttpMockSequence
from inventory_testlib import Sleeps, check_gcp_sample_config, fixture_json, load_plugin, ok, status, wire_http

PAGES = [
    ok("compute/instances_aggregated_page1.json"),
    ok("compute/instances_aggregated_page2.json"),
    ok("compute/instances_aggregated_page3.json"),
]
# Most tests name hosts by instance name, which is unique in these pages; the default is tested on its own.
BASE_CONFIG = "plugin: fleetwarden.fleet.gce_gpu\nprojects: [fw-ml-prod]\nhostnames: [name]\n"
OTHER_PROJECT = ok("compute/instances_aggregated_other_project.json")
GPU_HOSTS = ["a100-train-0", "a100-train-1", "h100-serve-0", "l4-infer-0", "t4-dev-0"]


@pytest.fixture
def plugin():
    return load_plugin(gce_gpu)


def parse(plugin, inventory, loader, write_config, responses, extra="", sleeps=None):
    path = write_config("fleet.gce_gpu.yml", BASE_CONFIG + extra)
    http = HttpMockSequence(list(responses))
    wire_http(plugin, http, sleeps)
    plugin.parse(inventory, loader, path)
    return http


def all_instances():
    return [
        instance
        for index in (1, 2, 3)
        for scoped in fixture_json(f"gcp/compute/instances_aggregated_page{index}.json")["items"].values()
        for instance in scoped.get("instances", [])
    ]


@pytest.mark.parametrize(
    ("name", "accepted"), [("a.gce_gpu.yml", True), ("a.gce_gpu.yaml", True), ("a.gcp_tpu.yml", False)]
)
def test_verify_file_checks_the_suffix(plugin, tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text(BASE_CONFIG)
    assert plugin.verify_file(str(path)) is accepted


def test_aggregated_pages_follow_three_pages_with_the_api_filter():
    http = HttpMockSequence(list(PAGES))
    caller = ApiCaller(lambda: http, sleep=Sleeps())
    service = build_service("compute", "v1", http)
    pages = list(gce_gpu.aggregated_pages(service, caller.execute, "fw-ml-prod", "status = RUNNING"))
    assert len(pages) == 3
    uris = [request[0] for request in http.request_sequence]
    assert all(
        uri.startswith("https://compute.googleapis.com/compute/v1/projects/fw-ml-prod/aggregated/instances?")
        for uri in uris
    )
    assert all("filter=status+%3D+RUNNING" in uri and "maxResults=500" in uri for uri in uris)
    assert "pageToken" not in uris[0]
    assert "pageToken=" in uris[1]
    assert "pageToken=" in uris[2]


def test_collect_instances_reads_both_forms_of_unreachable():
    pages = [fixture_json(f"gcp/compute/instances_aggregated_page{index}.json") for index in (1, 2, 3)]
    instances, unreachable = gce_gpu.collect_instances(pages)
    assert len(instances) == 6
    assert unreachable == ["asia-east1-a", "me-west1-b"]


@pytest.mark.parametrize(
    ("scheduling", "expected"),
    [
        ({"provisioningModel": "SPOT", "preemptible": True}, "SPOT"),
        ({"provisioningModel": "FLEX_START"}, "FLEX_START"),
        ({"preemptible": True}, "SPOT"),
        ({}, "STANDARD"),
        (None, "STANDARD"),
    ],
)
def test_provisioning_model(scheduling, expected):
    assert gce_gpu.provisioning_model(scheduling) == expected


def test_instance_record_shapes_accelerators_and_addresses():
    instance = next(item for item in all_instances() if item["name"] == "a100-train-0")
    assert gce_gpu.instance_record(instance) == {
        "gce_name": "a100-train-0",
        "gce_project": "fw-ml-prod",
        "gce_zone": "us-central1-a",
        "gce_machine_type": "a2-highgpu-8g",
        "gce_status": "RUNNING",
        "gce_accelerator_type": "nvidia-tesla-a100",
        "gce_accelerator_count": 8,
        "gce_provisioning_model": "STANDARD",
        "gce_labels": {"fleet": "ray", "team": "ml"},
        "gce_internal_ip": "10.128.0.10",
        "gce_external_ip": "34.66.10.1",
    }


def test_accelerator_count_sums_every_attached_type():
    instance = {
        "name": "mixed",
        "guestAccelerators": [
            {"acceleratorType": "zones/z/acceleratorTypes/nvidia-l4", "acceleratorCount": 2},
            {"acceleratorType": "zones/z/acceleratorTypes/nvidia-l4", "acceleratorCount": 1},
        ],
    }
    host = gce_gpu.instance_record(instance)
    assert host["gce_accelerator_count"] == 3
    assert host["gce_accelerator_type"] == "nvidia-l4"
    assert host["gce_internal_ip"] is None


def test_shape_keeps_gpu_instances_unless_told_otherwise():
    assert [host["gce_name"] for host in gce_gpu.shape(all_instances())] == [
        "h100-serve-0",
        "a100-train-0",
        "a100-train-1",
        "l4-infer-0",
        "t4-dev-0",
    ]
    assert "cpu-bastion" in [host["gce_name"] for host in gce_gpu.shape(all_instances(), accelerators_only=False)]


def test_parse_builds_hosts_groups_and_vars(plugin, inventory, loader, write_config, warnings):
    parse(plugin, inventory, loader, write_config, PAGES)
    assert sorted(inventory.hosts) == GPU_HOSTS
    groups = inventory.groups
    assert sorted(host.name for host in groups["gce_status_running"].get_hosts()) == [
        "a100-train-0",
        "h100-serve-0",
        "t4-dev-0",
    ]
    assert [host.name for host in groups["gce_status_terminated"].get_hosts()] == ["a100-train-1"]
    assert [host.name for host in groups["gce_accelerator_nvidia_h100_80gb"].get_hosts()] == ["h100-serve-0"]
    assert [host.name for host in groups["gce_zone_us_east4_c"].get_hosts()] == ["l4-infer-0"]
    h100 = inventory.get_host("h100-serve-0").vars
    assert h100["gce_provisioning_model"] == "SPOT"
    assert h100["ansible_host"] == "10.164.0.20"  # no external IP
    assert inventory.get_host("t4-dev-0").vars["gce_provisioning_model"] == "SPOT"  # legacy preemptible
    assert inventory.get_host("a100-train-0").vars["ansible_host"] == "34.66.10.1"
    assert warnings == [
        "fleetwarden.fleet.gce_gpu: project fw-ml-prod: zone(s) asia-east1-a, me-west1-b unreachable; "
        "their instances are missing from the inventory"
    ]


def test_accelerators_only_false_takes_every_instance(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, PAGES, "accelerators_only: false\n")
    assert "cpu-bastion" in inventory.hosts
    assert inventory.get_host("cpu-bastion").vars["gce_accelerator_count"] == 0


def test_label_templates_stay_text(plugin, inventory, loader, write_config):
    parse(plugin, inventory, loader, write_config, PAGES, "compose:\n  note: gce_labels.note | default('')\n")
    assert inventory.get_host("l4-infer-0").vars["note"] == "{{ 7 * 6 }}"


def test_filters_and_keyed_groups(plugin, inventory, loader, write_config):
    extra = "filters:\n  gce_labels.team: serving\nkeyed_groups:\n  - key: gce_provisioning_model\n    prefix: model\n"
    parse(plugin, inventory, loader, write_config, PAGES, extra)
    assert sorted(inventory.hosts) == ["h100-serve-0", "l4-infer-0"]
    assert [host.name for host in inventory.groups["model_SPOT"].get_hosts()] == ["h100-serve-0"]


def test_429_then_success(plugin, inventory, loader, write_config):
    sleeps = Sleeps()
    http = parse(
        plugin,
        inventory,
        loader,
        write_config,
        [status(429, "errors/429_rate_limited_compute.json"), *PAGES],
        sleeps=sleeps,
    )
    assert sorted(inventory.hosts) == GPU_HOSTS
    assert len(sleeps) == 1
    assert len(http.request_sequence) == 4


def test_403_service_disabled_names_the_api_and_the_project(plugin, inventory, loader, write_config):
    with pytest.raises(AnsibleParserError) as raised:
        parse(plugin, inventory, loader, write_config, [status(403, "errors/403_service_disabled_compute.json")])
    assert "Compute Engine API (compute.googleapis.com) is disabled for project fw-ml-prod" in str(raised.value)


def two_projects(plugin, inventory, loader, write_config, responses, extra=""):
    config = "plugin: fleetwarden.fleet.gce_gpu\nprojects: [fw-ml-prod, fw-ml-dev]\nconcurrency: 1\nretries: 0\n"
    path = write_config("fleet.gce_gpu.yml", config + extra)
    http = HttpMockSequence(responses)
    wire_http(plugin, http)
    plugin.parse(inventory, loader, path)
    return [request[0] for request in http.request_sequence]


def test_two_projects_are_both_listed_and_named_apart_by_default(plugin, inventory, loader, write_config):
    uris = two_projects(plugin, inventory, loader, write_config, [*PAGES, OTHER_PROJECT])
    assert sum("/projects/fw-ml-dev/" in uri for uri in uris) == 1
    assert sum("/projects/fw-ml-prod/" in uri for uri in uris) == 3
    assert "a100-train-0.us-central1-a.fw-ml-prod" in inventory.hosts
    assert "a100-train-0.us-west1-b.fw-ml-dev" in inventory.hosts
    assert len(inventory.hosts) == 6


def test_the_same_name_in_two_projects_is_an_error_naming_both(plugin, inventory, loader, write_config):
    """A fixed bug: one of the two was dropped with a warning, which one depending on sort order."""
    with pytest.raises(AnsibleParserError) as raised:
        two_projects(plugin, inventory, loader, write_config, [*PAGES, OTHER_PROJECT], "hostnames: [name]\n")
    message = str(raised.value)
    assert "same inventory hostname a100-train-0" in message
    assert "projects/fw-ml-prod/zones/us-central1-a/instances/a100-train-0" in message
    assert "projects/fw-ml-dev/zones/us-west1-b/instances/a100-train-0" in message


def test_name_zone_tells_apart_instances_of_two_zones(plugin, inventory, loader, write_config):
    two_projects(plugin, inventory, loader, write_config, [*PAGES, OTHER_PROJECT], "hostnames: [name_zone]\n")
    assert {"a100-train-0.us-central1-a", "a100-train-0.us-west1-b"} <= set(inventory.hosts)


def test_a_refused_project_leaves_the_other_listed(plugin, inventory, loader, write_config, warnings):
    """Changed behaviour: a 403 in one project failed the whole source."""
    responses = [*PAGES, status(403, "errors/403_service_disabled_compute.json")]
    two_projects(plugin, inventory, loader, write_config, responses)
    assert len(inventory.hosts) == 5
    [lost] = [warning for warning in warnings if "fw-ml-dev" in warning]
    assert "project fw-ml-dev is missing from this inventory" in lost
    assert "gcloud services enable compute.googleapis.com --project fw-ml-dev" in lost


def test_strict_permissions_makes_a_refused_project_fatal(plugin, inventory, loader, write_config):
    responses = [*PAGES, status(403, "errors/403_service_disabled_compute.json")]
    with pytest.raises(AnsibleParserError, match="disabled for project fw-ml-dev"):
        two_projects(plugin, inventory, loader, write_config, responses, "strict_permissions: true\n")


def test_the_default_hostname_is_qualified_by_zone_and_project(plugin, inventory, loader, write_config):
    path = write_config("fleet.gce_gpu.yml", "plugin: fleetwarden.fleet.gce_gpu\nprojects: [fw-ml-prod]\n")
    wire_http(plugin, HttpMockSequence(list(PAGES)))
    plugin.parse(inventory, loader, path)
    assert "h100-serve-0.europe-west4-a.fw-ml-prod" in inventory.hosts
    assert len(inventory.hosts) == 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("project: [a]\n", "unknown option(s) project (did you mean projects?)"),
        ("hostnames: [hostname]\n", "hostnames has unsupported value(s) 'hostname'"),
    ],
)
def test_malformed_config_gives_a_clear_error(plugin, inventory, loader, write_config, extra, message):
    path = write_config("fleet.gce_gpu.yml", BASE_CONFIG + extra)
    with pytest.raises(AnsibleParserError, match=r"^fleetwarden\.fleet\.gce_gpu: ") as raised:
        plugin.parse(inventory, loader, path)
    assert message in str(raised.value)


def test_the_sample_config_is_accepted_and_uses_only_documented_options(plugin):
    check_gcp_sample_config(plugin, "gce_gpu.yml")
