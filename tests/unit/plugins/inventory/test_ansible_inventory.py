"""`ansible-inventory --graph` and `--host` against each plugin, end to end.

The recorded responses are wired in without any test hook in the plugins: a loopback server started
here replays them, and each config points the plugin's production `endpoint` option at it. A
production config cannot reach these responses by accident: the server lives only while the test
runs, on a random port, and only answers requests that carry the test's own bearer token.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inventory_testlib import ReplayServer

REPO_ROOT = Path(__file__).resolve().parents[4]
ANSIBLE_INVENTORY = str(Path(sys.executable).parent / "ansible-inventory")
TOKEN = "ya29.test-token-not-a-secret"  # noqa: S105 - a fake token the loopback server expects
TPU_NODES = "/v2/projects/fw-ml-prod/locations/-/nodes"
AGGREGATED = "/compute/v1/projects/fw-ml-prod/aggregated/instances"


def page_token(relative):
    return json.loads((REPO_ROOT / "tests" / "fixtures" / relative).read_text())["nextPageToken"]


def run_both(config_path, host, extra_env):
    """Run --graph and --host side by side (they are independent) and return both results."""
    env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="true", ANSIBLE_NOCOLOR="1", **extra_env)
    commands = [
        [ANSIBLE_INVENTORY, "-i", config_path, "--graph"],
        [ANSIBLE_INVENTORY, "-i", config_path, "--host", host],
    ]
    processes = [
        subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        results.append((stdout, stderr))
    return results


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


@pytest.fixture
def config_file(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def test_gcp_tpu_graph_and_host(config_file):
    routes = {
        TPU_NODES: (200, "gcp/tpu/nodes_page1.json"),
        TPU_NODES + "?pageToken=" + page_token("gcp/tpu/nodes_page1.json"): (200, "gcp/tpu/nodes_page2.json"),
        TPU_NODES + "?pageToken=" + page_token("gcp/tpu/nodes_page2.json"): (200, "gcp/tpu/nodes_page3.json"),
    }
    with ReplayServer(routes, "Bearer " + TOKEN) as server:
        path = config_file(
            "fleet.gcp_tpu.yml",
            "plugin: fleetwarden.fleet.gcp_tpu\nprojects: [fw-ml-prod]\nauth_kind: accesstoken\n"
            f"endpoint: {server.url}/\n",
        )
        (graph, graph_err), (host, host_err) = run_both(path, "train-v4-16-b-w1", {"GCP_ACCESS_TOKEN": TOKEN})
    assert len(graph_members(graph, "gcp_tpu")) == 11
    assert graph_members(graph, "tpu_state_preempted") == ["train-v4-8-c"]
    assert graph_members(graph, "tpu_state_creating") == ["serve-v5e-4"]
    assert graph_members(graph, "tpu_accelerator_v4_16") == ["train-v4-16-b-w0", "train-v4-16-b-w1"]
    host_vars = json.loads(host)
    assert host_vars["ansible_host"] == "34.16.5.22"
    assert host_vars["tpu_worker_index"] == 1
    assert host_vars["tpu_node_name"] == "train-v4-16-b"
    assert "us-east1-d unreachable" in graph_err
    for output in (graph, graph_err, host, host_err):
        assert TOKEN not in output


def test_gce_gpu_graph_and_host(config_file):
    routes = {
        AGGREGATED: (200, "gcp/compute/instances_aggregated_page1.json"),
        AGGREGATED + "?pageToken=" + page_token("gcp/compute/instances_aggregated_page1.json"): (
            200,
            "gcp/compute/instances_aggregated_page2.json",
        ),
        AGGREGATED + "?pageToken=" + page_token("gcp/compute/instances_aggregated_page2.json"): (
            200,
            "gcp/compute/instances_aggregated_page3.json",
        ),
    }
    with ReplayServer(routes, "Bearer " + TOKEN) as server:
        path = config_file(
            "fleet.gce_gpu.yml",
            "plugin: fleetwarden.fleet.gce_gpu\nprojects: [fw-ml-prod]\nauth_kind: accesstoken\n"
            f"endpoint: {server.url}/compute/v1/\nhostnames: [internal_ip]\n",
        )
        (graph, _), (host, host_err) = run_both(path, "h100-serve-0", {"GCP_ACCESS_TOKEN": TOKEN})
    assert graph_members(graph, "gce_gpu") == [
        "a100-train-0",
        "a100-train-1",
        "h100-serve-0",
        "l4-infer-0",
        "t4-dev-0",
    ]
    assert graph_members(graph, "gce_status_terminated") == ["a100-train-1"]
    assert "cpu-bastion" not in graph
    host_vars = json.loads(host)
    assert host_vars["ansible_host"] == "10.164.0.20"
    assert host_vars["gce_accelerator_type"] == "nvidia-h100-80gb"
    assert host_vars["gce_accelerator_count"] == 8
    assert host_vars["gce_provisioning_model"] == "SPOT"
    assert TOKEN not in host + host_err


def test_runpod_graph_and_host(config_file):
    api_key = "rpa_TESTKEY0123456789"
    with ReplayServer({"/graphql": (200, "runpod/pods.json")}, "Bearer " + api_key) as server:
        path = config_file("pods.runpod.yml", f"plugin: fleetwarden.fleet.runpod\nendpoint: {server.url}/graphql\n")
        (graph, graph_err), (host, host_err) = run_both(path, "ray-worker-a100-0", {"RUNPOD_API_KEY": api_key})
    assert graph_members(graph, "stopped") == ["ray-worker-a100-2", "ray-worker-l4-{{ 7 * 6 }}"]
    assert len(graph_members(graph, "runpod")) == 5
    host_vars = json.loads(host)
    assert (host_vars["ansible_host"], host_vars["ansible_port"]) == ("194.26.196.6", 40123)
    assert host_vars["runpod_gpu_type"] == "A100 80GB PCIe"
    for output in (graph, graph_err, host, host_err):
        assert api_key not in output


def test_recover_play_recreates_only_preempted_and_terminated_nodes(config_file):
    """playbooks/recover_preempted_tpu.yml in check mode: inventory and module both on the replay server."""
    routes = {
        TPU_NODES: (200, "gcp/tpu/nodes_page1.json"),
        TPU_NODES + "?pageToken=" + page_token("gcp/tpu/nodes_page1.json"): (200, "gcp/tpu/nodes_page2.json"),
        TPU_NODES + "?pageToken=" + page_token("gcp/tpu/nodes_page2.json"): (200, "gcp/tpu/nodes_page3.json"),
        "/v2/projects/fw-ml-prod/locations/us-central2-b/nodes/train-v4-8-c": (200, "gcp/tpu/node_preempted.json"),
        "/v2/projects/fw-ml-prod/locations/europe-west4-a/nodes/old-v3-8": (200, "gcp/tpu/node_terminated.json"),
    }
    env = dict(
        os.environ,
        GCP_AUTH_KIND="accesstoken",
        GCP_ACCESS_TOKEN=TOKEN,
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    with ReplayServer(routes, "Bearer " + TOKEN) as server:
        path = config_file(
            "fleet.gcp_tpu.yml",
            f"plugin: fleetwarden.fleet.gcp_tpu\nprojects: [fw-ml-prod]\nendpoint: {server.url}/\n",
        )
        completed = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                path,
                "playbooks/recover_preempted_tpu.yml",
                "--check",
                "--tags",
                "tpu_recreate",
                "-e",
                f"tpu_api_endpoint={server.url}/",
            ],
            cwd=REPO_ROOT,
            env=env,
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
    module_calls = [(method, path) for method, path, _, _ in server.requests if "/nodes/" in path]
    assert sorted(module_calls) == [
        ("GET", "/v2/projects/fw-ml-prod/locations/europe-west4-a/nodes/old-v3-8?alt=json"),
        ("GET", "/v2/projects/fw-ml-prod/locations/us-central2-b/nodes/train-v4-8-c?alt=json"),
    ]
    assert TOKEN not in completed.stdout + completed.stderr
