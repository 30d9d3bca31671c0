"""Unit tests for the fleetwarden.fleet.runpod inventory, against a loopback stub replaying recorded answers."""

import json

import pytest
from ansible.errors import AnsibleParserError
from ansible_collections.fleetwarden.fleet.plugins.inventory import runpod
from inventory_testlib import Sleeps, fixture_json, load_plugin, replay_server, sample_config

API_KEY = "rpa_TESTKEY0123456789"
AUTH = "Bearer " + API_KEY


@pytest.fixture
def plugin():
    return load_plugin(runpod)


def pods():
    return fixture_json("runpod/pods.json")["data"]["myself"]["pods"]


def config(server, extra=""):
    return f"plugin: fleetwarden.fleet.runpod\napi_key: {API_KEY}\nendpoint: {server.url}/graphql\nretries: 0\n{extra}"


# --- pure functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        (pods()[0]["runtime"]["ports"], {"public_ip": ("194.26.196.6", 40123), "private_ip": ("100.65.12.34", 22)}),
        (pods()[1]["runtime"]["ports"], {"private_ip": ("100.65.40.2", 22)}),  # only a private one
        (pods()[3]["runtime"]["ports"], {}),  # no port 22
        ([{"ip": "1.2.3.4", "isIpPublic": True, "privatePort": 22, "publicPort": 2222, "type": "http"}], {}),
        (None, {}),
    ],
)
def test_ssh_addresses_are_the_tcp_mappings_of_port_22(ports, expected):
    # Which one becomes ansible_host follows `addresses`: test_host_records_give_connection_vars_only_to_running_pods
    assert runpod.ssh_addresses(ports) == expected


@pytest.mark.parametrize(
    ("pod", "status", "running"),
    [
        ({"desiredStatus": "RUNNING", "runtime": {"ports": []}}, "running", True),
        ({"desiredStatus": "RUNNING", "runtime": None}, "starting", False),
        ({"desiredStatus": "EXITED", "runtime": None}, "exited", False),
        ({"desiredStatus": "TERMINATED", "runtime": {"ports": []}}, "terminated", False),
        ({}, "unknown", False),
    ],
)
def test_pod_status(pod, status, running):
    assert runpod.pod_status(pod) == status
    assert runpod.is_running(pod) is running


def test_assign_hostnames_tells_duplicates_apart():
    names = runpod.assign_hostnames(
        [{"id": "a1", "name": "w"}, {"id": "b2", "name": "w"}, {"id": "c3", "name": "solo"}, {"id": "d4", "name": ""}]
    )
    assert names == {"a1": "w-a1", "b2": "w-b2", "c3": "solo", "d4": "d4"}


def test_host_records_give_connection_vars_only_to_running_pods():
    records = dict(runpod.host_records(pods()))
    order = runpod.ADDRESS_CHOICES
    assert runpod.connection_vars(records["ray-worker-a100-0"], order) == {
        "ansible_host": "194.26.196.6",
        "ansible_port": 40123,
    }
    assert runpod.connection_vars(records["ray-worker-a100-0"], ["private_ip"]) == {
        "ansible_host": "100.65.12.34",
        "ansible_port": 22,
    }
    assert records["ray-worker-a100-0"]["runpod_gpu_type"] == "A100 80GB PCIe"
    assert runpod.connection_vars(records["ray-worker-a100-2"], order) == {}
    assert records["ray-worker-a100-2"]["runpod_status"] == "exited"
    assert runpod.connection_vars(records["notebook"], order) == {}
    assert records["notebook"]["runpod_status"] == "running"
    assert records["ray-worker-l4-{{ 7 * 6 }}"]["runpod_status"] == "starting"
    assert records["ray-worker-h100-1"]["runpod_gpu_count"] == 8


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (fixture_json("runpod/graphql_error.json"), "RunPod GraphQL error: Something went wrong"),
        ({"data": {"myself": None}}, "without data.myself"),
        ([], "not a JSON object"),
    ],
)
def test_pods_from_response_errors(document, message):
    with pytest.raises(runpod.RunPodError, match=message):
        runpod.pods_from_response(document)


@pytest.mark.parametrize("url", ["http://api.runpod.io/graphql", "ftp://127.0.0.1/"])
def test_check_endpoint_refuses_clear_text_to_remote_hosts(url):
    with pytest.raises(runpod.RunPodError, match="https"):
        runpod.check_endpoint(url)


# --- HTTP against the loopback stub ------------------------------------------------------------


def test_fetch_pods_sends_the_key_only_in_the_header():
    with replay_server({"/graphql": (200, "runpod/pods.json")}, AUTH) as server:
        listed = runpod.fetch_pods(server.url + "/graphql", API_KEY)
    assert [pod["id"] for pod in listed] == [pod["id"] for pod in pods()]
    [(method, path, _token, body)] = server.requests
    assert method == "POST"
    assert path == "/graphql"
    assert API_KEY.encode() not in body
    assert "myself { pods {" in json.loads(body)["query"]


def test_fetch_pods_retries_429_then_succeeds():
    routes = {"/graphql": [(429, "runpod/rate_limited.json"), (200, "runpod/pods.json")]}
    sleeps = Sleeps()
    with replay_server(routes, AUTH) as server:
        listed = runpod.fetch_pods(server.url + "/graphql", API_KEY, retries=2, sleep=sleeps)
    assert len(listed) == 5
    assert len(sleeps) == 1
    assert len(server.requests) == 2


def test_fetch_pods_stops_retrying_when_total_timeout_is_spent():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    with replay_server({"/graphql": (503, "runpod/graphql_error.json")}, AUTH) as server:
        with pytest.raises(runpod.RunPodError, match="total_timeout spent"):
            runpod.fetch_pods(
                server.url + "/graphql", API_KEY, retries=10, sleep=sleep, deadline=5.0, clock=lambda: now[0]
            )
    assert now[0] <= 5.0
    assert 2 <= len(server.requests) <= 4


def test_fetch_pods_gives_up_after_the_bounded_retries():
    sleeps = Sleeps()
    with replay_server({"/graphql": (503, "runpod/graphql_error.json")}, AUTH) as server:
        with pytest.raises(runpod.RunPodError, match="HTTP 503"):
            runpod.fetch_pods(server.url + "/graphql", API_KEY, retries=2, sleep=sleeps)
    assert len(server.requests) == 3
    assert len(sleeps) == 2


def test_a_wrong_key_is_reported_without_the_key():
    with replay_server({"/graphql": (200, "runpod/pods.json")}, "Bearer other") as server:
        with pytest.raises(runpod.RunPodError) as raised:
            runpod.fetch_pods(server.url + "/graphql", API_KEY)
    assert str(raised.value) == "RunPod rejected the API key (HTTP 401)"


# --- parse() -----------------------------------------------------------------------------------


def test_parse_against_the_stub(plugin, inventory, loader, write_config, warnings):
    with replay_server({"/graphql": (200, "runpod/pods.json")}, AUTH) as server:
        keyed = "keyed_groups:\n  - key: runpod_gpu_count | string\n    prefix: gpus\n"
        path = write_config("pods.runpod.yml", config(server, keyed))
        plugin.parse(inventory, loader, path)
    assert sorted(inventory.hosts) == [
        "notebook",
        "ray-worker-a100-0",
        "ray-worker-a100-2",
        "ray-worker-h100-1",
        "ray-worker-l4-{{ 7 * 6 }}",
    ]
    a100 = inventory.get_host("ray-worker-a100-0").vars
    assert (a100["ansible_host"], a100["ansible_port"]) == ("194.26.196.6", 40123)
    # Changed behaviour: a RUNNING pod without a runtime was put in `stopped`; it is `starting` now.
    assert members(inventory, "stopped") == ["ray-worker-a100-2"]
    assert members(inventory, "runpod_status_starting") == ["ray-worker-l4-{{ 7 * 6 }}"]
    assert members(inventory, "runpod_status_exited") == ["ray-worker-a100-2"]
    assert members(inventory, "runpod_status_running") == ["notebook", "ray-worker-a100-0", "ray-worker-h100-1"]
    for waiting in ("ray-worker-a100-2", "ray-worker-l4-{{ 7 * 6 }}"):
        assert "ansible_host" not in inventory.get_host(waiting).vars
        assert "ansible_port" not in inventory.get_host(waiting).vars
    assert members(inventory, "gpus_8") == ["ray-worker-h100-1"]
    assert len(inventory.groups["runpod_gpu_a100_80gb_pcie"].get_hosts()) == 2
    assert warnings == [
        "fleetwarden.fleet.runpod: pod notebook runs but maps no TCP port 22 of the chosen addresses; no ansible_host",
        "fleetwarden.fleet.runpod: pod ray-worker-l4-{{ 7 * 6 }} is starting (no runtime yet); "
        "no ansible_host until it runs",
    ]
    every_value = json.dumps({name: host.vars for name, host in inventory.hosts.items()}, default=str)
    assert API_KEY not in every_value


def members(inventory, group):
    return sorted(host.name for host in inventory.groups[group].get_hosts())


def test_filters_and_the_private_address(plugin, inventory, loader, write_config):
    with replay_server({"/graphql": (200, "runpod/pods.json")}, AUTH) as server:
        extra = "addresses: [private_ip]\nfilters:\n  runpod_status: running\n  runpod_gpu_type: 'A100*'\n"
        plugin.parse(inventory, loader, write_config("pods.runpod.yml", config(server, extra)))
    assert sorted(inventory.hosts) == ["ray-worker-a100-0"]
    host = inventory.get_host("ray-worker-a100-0").vars
    assert (host["ansible_host"], host["ansible_port"]) == ("100.65.12.34", 22)


def test_pod_names_that_look_like_templates_stay_text(plugin, inventory, loader, write_config):
    with replay_server({"/graphql": (200, "runpod/pods.json")}, AUTH) as server:
        extra = "compose:\n  name_copy: runpod_name\n"
        plugin.parse(inventory, loader, write_config("pods.runpod.yml", config(server, extra)))
    assert inventory.get_host("ray-worker-l4-{{ 7 * 6 }}").vars["name_copy"] == "ray-worker-l4-{{ 7 * 6 }}"


def test_parse_reports_graphql_errors(plugin, inventory, loader, write_config):
    with replay_server({"/graphql": (200, "runpod/graphql_error.json")}, AUTH) as server:
        path = write_config("pods.runpod.yml", config(server))
        with pytest.raises(AnsibleParserError, match=r"^fleetwarden\.fleet\.runpod: RunPod GraphQL error"):
            plugin.parse(inventory, loader, path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("apikey: x\n", "unknown option(s) apikey (did you mean api_key?)"),
        ("endpoint: http://api.runpod.io/graphql\n", "must be an https://"),
        ("filters:\n  runpod_status: [{a: 1}]\n", "filters.runpod_status must be a string or a list"),
    ],
)
def test_malformed_config(plugin, inventory, loader, write_config, extra, message):
    path = write_config("pods.runpod.yml", "plugin: fleetwarden.fleet.runpod\napi_key: k\n" + extra)
    with pytest.raises(AnsibleParserError) as raised:
        plugin.parse(inventory, loader, path)
    assert message in str(raised.value)


def test_the_sample_config_is_accepted_and_uses_only_documented_options(plugin):
    sample_config(plugin, "runpod.yml")


def test_a_cache_hit_does_not_call_the_api_and_never_stores_the_key(plugin, inventory, loader, write_config, tmp_path):
    cache = f"cache: true\ncache_plugin: jsonfile\ncache_connection: {tmp_path / 'cache'}\n"
    with replay_server({"/graphql": (200, "runpod/pods.json")}, AUTH) as server:
        path = write_config("pods.runpod.yml", config(server, cache))
        plugin.parse(inventory, loader, path)
        plugin.update_cache_if_changed()
    assert len(server.requests) == 1
    # The server is gone: a second parse can only work from the cache.
    from ansible.inventory.data import InventoryData

    again = InventoryData()
    load_plugin(runpod).parse(again, loader, path)
    assert sorted(again.hosts) == sorted(inventory.hosts)
    assert again.get_host("ray-worker-a100-0").vars["ansible_port"] == 40123
    assert members(again, "stopped") == members(inventory, "stopped")
    assert members(again, "runpod_status_starting") == members(inventory, "runpod_status_starting")
    cached_text = "".join(path.read_text() for path in (tmp_path / "cache").iterdir())
    assert API_KEY not in cached_text
