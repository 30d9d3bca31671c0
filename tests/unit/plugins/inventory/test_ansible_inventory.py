"""`ansible-inventory --graph` and `--host` against each plugin, and the recover play, end to end.

The recorded responses are wired in without any test hook in the plugins: a loopback server started
here replays them, and each config points the plugin's production `endpoint` option at it. A
production config cannot reach these responses by accident: the server lives only while these tests
run, on a random port, and answers 401 to any bearer token but the tests' own.

Each command costs a Python start and ansible's imports, so they run once per module and side by side:
one `--graph` over the three sources, one `--host` per plugin.
"""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inventory_testlib import ReplayServer

REPO_ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
TOKEN = "ya29.test-token-not-a-secret"  # noqa: S105 - a fake token the loopback server expects
RUNPOD_KEY = "rpa_TESTKEY0123456789"
TPU_NODES = "/v2/projects/fw-ml-prod/locations/-/nodes"
AGGREGATED = "/compute/v1/projects/fw-ml-prod/aggregated/instances"
NODE = "/v2/projects/fw-ml-prod/locations/%s/nodes/%s"


def page_token(relative):
    return json.loads((REPO_ROOT / "tests" / "fixtures" / relative).read_text())["nextPageToken"]


def paged(path, relatives):
    """Routes for recorded pages: the first without a token, each next one by the previous page's token."""
    routes = {path: (200, relatives[0])}
    for previous, relative in itertools.pairwise(relatives):
        routes[path + "?pageToken=" + page_token(previous)] = (200, relative)
    return routes


def graph_members(graph, group):
    """Hosts under @group in `--graph` output, through child groups too, sorted and unique."""
    lines = graph.splitlines()
    start = next(index for index, line in enumerate(lines) if line.strip().endswith(f"@{group}:"))
    depth = lines[start].find("|--")
    members = set()
    for line in lines[start + 1 :]:
        if line.index("|--") <= depth:
            break
        name = line.split("|--", 1)[1]
        if not name.startswith("@"):
            members.add(name)
    return sorted(members)


@pytest.fixture(scope="module")
def replay():
    routes = {
        **paged(TPU_NODES, ["gcp/tpu/nodes_page1.json", "gcp/tpu/nodes_page2.json", "gcp/tpu/nodes_page3.json"]),
        **paged(AGGREGATED, [f"gcp/compute/instances_aggregated_page{index}.json" for index in (1, 2, 3)]),
        "/graphql": (200, "runpod/pods.json"),
        NODE % ("us-central2-b", "train-v4-8-c"): (200, "gcp/tpu/node_preempted.json"),
        NODE % ("europe-west4-a", "old-v3-8"): (200, "gcp/tpu/node_terminated.json"),
    }
    with ReplayServer(routes, ("Bearer " + TOKEN, "Bearer " + RUNPOD_KEY)) as server:
        yield server


@pytest.fixture(scope="module")
def configs(replay, tmp_path_factory):
    directory = tmp_path_factory.mktemp("inventory")
    texts = {
        "tpu": (
            "fleet.gcp_tpu.yml",
            f"plugin: fleetwarden.fleet.gcp_tpu\nprojects: [fw-ml-prod]\nauth_kind: accesstoken\n"
            f"endpoint: {replay.url}/\n",
        ),
        "gce": (
            "fleet.gce_gpu.yml",
            f"plugin: fleetwarden.fleet.gce_gpu\nprojects: [fw-ml-prod]\nauth_kind: accesstoken\n"
            f"endpoint: {replay.url}/compute/v1/\nhostnames: [internal_ip]\n",
        ),
        "runpod": ("pods.runpod.yml", f"plugin: fleetwarden.fleet.runpod\nendpoint: {replay.url}/graphql\n"),
    }
    paths = {}
    for key, (name, text) in texts.items():
        paths[key] = directory / name
        paths[key].write_text(text)
    return paths


def environment(**extra):
    return dict(
        os.environ,
        GCP_ACCESS_TOKEN=TOKEN,
        RUNPOD_API_KEY=RUNPOD_KEY,
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_NOCOLOR="1",
        **extra,
    )


@pytest.fixture(scope="module")
def cli(configs):
    """{name: (stdout, stderr)} of one --graph over all sources and one --host per plugin, run at once."""
    inventory = str(BIN / "ansible-inventory")
    every_source = [arg for key in ("tpu", "gce", "runpod") for arg in ("-i", str(configs[key]))]
    commands = {
        "graph": [inventory, *every_source, "--graph"],
        "tpu": [inventory, "-i", str(configs["tpu"]), "--host", "train-v4-16-b-w1"],
        "gce": [inventory, "-i", str(configs["gce"]), "--host", "h100-serve-0"],
        "runpod": [inventory, "-i", str(configs["runpod"]), "--host", "ray-worker-a100-0"],
    }
    processes = {
        name: subprocess.Popen(
            command, cwd=REPO_ROOT, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, command in commands.items()
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}: {stderr}"
        results[name] = (stdout, stderr)
    return results


def test_gcp_tpu_graph_and_host(cli):
    graph, graph_err = cli["graph"]
    assert len(graph_members(graph, "gcp_tpu")) == 11
    assert graph_members(graph, "tpu_state_preempted") == ["train-v4-8-c"]
    assert graph_members(graph, "tpu_state_creating") == ["serve-v5e-4"]
    assert graph_members(graph, "tpu_accelerator_v4_16") == ["train-v4-16-b-w0", "train-v4-16-b-w1"]
    assert "us-east1-d unreachable" in graph_err
    host, host_err = cli["tpu"]
    host_vars = json.loads(host)
    assert host_vars["ansible_host"] == "34.16.5.22"
    assert host_vars["tpu_worker_index"] == 1
    assert host_vars["tpu_node_name"] == "train-v4-16-b"
    for output in (graph, graph_err, host, host_err):
        assert TOKEN not in output


def test_gce_gpu_graph_and_host(cli):
    graph, _ = cli["graph"]
    assert graph_members(graph, "gce_gpu") == ["a100-train-0", "a100-train-1", "h100-serve-0", "l4-infer-0", "t4-dev-0"]
    assert graph_members(graph, "gce_status_terminated") == ["a100-train-1"]
    assert "cpu-bastion" not in graph
    host, host_err = cli["gce"]
    host_vars = json.loads(host)
    assert host_vars["ansible_host"] == "10.164.0.20"
    assert host_vars["gce_accelerator_type"] == "nvidia-h100-80gb"
    assert host_vars["gce_accelerator_count"] == 8
    assert host_vars["gce_provisioning_model"] == "SPOT"
    assert TOKEN not in host + host_err


def test_runpod_graph_and_host(cli):
    graph, graph_err = cli["graph"]
    assert graph_members(graph, "stopped") == ["ray-worker-a100-2", "ray-worker-l4-{{ 7 * 6 }}"]
    assert len(graph_members(graph, "runpod")) == 5
    host, host_err = cli["runpod"]
    host_vars = json.loads(host)
    assert (host_vars["ansible_host"], host_vars["ansible_port"]) == ("194.26.196.6", 40123)
    assert host_vars["runpod_gpu_type"] == "A100 80GB PCIe"
    for output in (graph, graph_err, host, host_err):
        assert RUNPOD_KEY not in output


def test_recover_play_recreates_only_preempted_and_terminated_nodes(replay, configs):
    """playbooks/recover_preempted_tpu.yml in check mode: inventory and module both on the replay server."""
    completed = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(configs["tpu"]),
            "playbooks/recover_preempted_tpu.yml",
            "--check",
            "--tags",
            "tpu_recreate",
            "-e",
            f"tpu_api_endpoint={replay.url}/",
        ],
        cwd=REPO_ROOT,
        env=environment(GCP_AUTH_KIND="accesstoken", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(completed.stdout)
    recreate = report["plays"][0]["tasks"][1]["hosts"]
    assert sorted(recreate) == ["old-v3-8", "train-v4-8-c"]
    for result in recreate.values():
        assert result["changed"] is True
        assert result["actions"] == ["delete", "create"]
    assert sorted(report["stats"]) == ["old-v3-8", "train-v4-8-c"]
    module_calls = sorted((method, path) for method, path, _, _ in replay.requests if "/nodes/" in path)
    assert module_calls == [
        ("GET", NODE % ("europe-west4-a", "old-v3-8") + "?alt=json"),
        ("GET", NODE % ("us-central2-b", "train-v4-8-c") + "?alt=json"),
    ]
    assert TOKEN not in completed.stdout + completed.stderr
