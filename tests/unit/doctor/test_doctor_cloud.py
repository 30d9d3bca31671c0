"""Inventory against the cloud, offline: host variables made by the inventory plugins' own shaping functions
from recorded API pages (tests/fixtures/gcp, tests/fixtures/runpod), compared on resource identity."""

import json
from pathlib import Path

from ansible_collections.fleetwarden.fleet.plugins.inventory import gce_gpu, gcp_tpu, runpod

from fleetwarden.doctor import cloud
from fleetwarden.doctor.command import _dynamic_sources

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
NOW = 1_800_000_000.0


def page(relative):
    return json.loads((FIXTURES / relative).read_text())


def tpu_hosts(*pages, rename=None):
    # A recorded nodes.get answer is one node; wrap it as the one-node page a listing would hold.
    answers = [page(f"gcp/tpu/{p}") for p in pages]
    nodes, _unreachable = gcp_tpu.collect_nodes([a if "nodes" in a else {"nodes": [a]} for a in answers])
    # The plugins name hosts by an option; the comparison is on resource identity, so any unique name will do.
    return {(rename or (lambda n: n))(f"{v['tpu_node_name']}-w{v['tpu_worker_index']}"): dict(v)
            for v in gcp_tpu.shape(nodes)}


def gce_hosts(*pages):
    instances, _unreachable = gce_gpu.collect_instances([page(f"gcp/compute/{p}") for p in pages])
    return {v["gce_name"]: dict(v) for v in gce_gpu.shape(instances, accelerators_only=False)}


def pod_hosts():
    pods = runpod.pods_from_response(page("runpod/pods.json"))
    return {name: dict(host_vars, **runpod.connection_vars(host_vars, runpod.ADDRESS_CHOICES))
            for name, host_vars in runpod.host_records(pods)}


def ids(checks, check_id):
    return sorted(c.host for c in checks if c.id == check_id)


def test_a_node_gone_from_the_cloud_is_a_ghost_whatever_the_hosts_are_called():
    cached = tpu_hosts("nodes_page1.json")  # train-v4-8-a and train-v4-16-b (two workers)
    listed_now = tpu_hosts("nodes_us_central2_b.json", rename=lambda n: "renamed-" + n)
    answered = dict.fromkeys(listed_now, True)
    checks, _seen = cloud.compare(cached, listed_now, answered, NOW, {})
    ghosts = ids(checks, "inventory.ghost")
    assert len(ghosts) == 2 and all("train-v4-16-b" in json.dumps(c.evidence) for c in checks
                                    if c.id == "inventory.ghost")
    assert all(c.recommendation == "remove-ghost-hosts" for c in checks if c.id == "inventory.ghost")
    summary = next(c for c in checks if c.id == "inventory.cloud")
    assert summary.status == "FAIL" and summary.evidence["listed"] == 1


def test_the_same_fleet_listed_again_has_no_ghost():
    hosts = tpu_hosts("nodes_page1.json", "nodes_page2.json", "nodes_page3.json")
    renamed = {"x-" + name: v for name, v in hosts.items()}
    checks, _seen = cloud.compare(hosts, renamed, dict.fromkeys(renamed, True), NOW, {})
    assert not ids(checks, "inventory.ghost")
    assert next(c for c in checks if c.id == "inventory.cloud").status == "OK"


def test_a_preempted_tpu_is_found_with_its_recreate_command():
    listed = tpu_hosts("nodes_us_central2_b.json", "node_preempted.json")
    checks, _seen = cloud.compare(listed, listed, dict.fromkeys(listed, True), NOW, {})
    preempted = [c for c in checks if c.id == "inventory.tpu_preempted"]
    assert len(preempted) == 1 and "train-v4-8-c" in preempted[0].summary and "PREEMPTED" in preempted[0].summary
    assert preempted[0].recommendation == "recreate-tpu"


def test_runpod_stopped_and_starting_pods():
    pods = pod_hosts()
    checks, seen = cloud.compare(pods, pods, dict.fromkeys(pods, True), NOW, {})
    stopped = [c for c in checks if c.id == "inventory.pod_stopped"]
    assert [c.host for c in stopped] == ["ray-worker-a100-2"] and stopped[0].recommendation == "restart-pods"
    starting = [c for c in checks if c.id == "inventory.pod_starting"]
    assert len(starting) == 1 and starting[0].status == "WARN"  # RUNNING without a runtime: first seen now
    assert list(seen.values()) == [NOW]
    later, seen_again = cloud.compare(pods, pods, dict.fromkeys(pods, True), NOW + 601, seen)
    stuck = next(c for c in later if c.id == "inventory.pod_starting")
    assert stuck.status == "FAIL" and "stuck in spawning" in stuck.summary and seen_again == seen


def test_hosts_the_cloud_runs_that_do_not_answer():
    listed = gce_hosts("instances_aggregated_page1.json", "instances_aggregated_page2.json",
                       "instances_aggregated_page3.json")
    answered = {name: not name.startswith("a100-train-0") for name in listed}
    checks, _seen = cloud.compare(listed, listed, answered, NOW, {})
    silent = ids(checks, "inventory.silent")
    assert len(silent) == 1 and silent[0].startswith("a100-train-0")
    assert [c.evidence["status"] for c in checks if c.id == "inventory.gce_stopped"] == ["TERMINATED"]


def test_a_kind_that_was_not_listed_makes_no_ghosts():
    pods = pod_hosts()
    checks, _seen = cloud.compare(pods, {}, {}, NOW, {}, listed_kinds=("gcp_tpu",))
    assert not ids(checks, "inventory.ghost")


def test_a_fleet_without_cloud_hosts_is_skipped():
    checks, _seen = cloud.compare({"lab-head": {"ansible_host": "127.0.0.1"}}, None, {}, NOW, {})
    assert [(c.id, c.status) for c in checks] == [("inventory.cloud", "SKIP")]


def test_ray_nodes_that_no_host_accounts_for():
    nodes = [{"ip": "10.0.0.1", "state": "ALIVE"}, {"ip": "10.0.0.9", "state": "ALIVE"},
             {"ip": "10.0.0.8", "state": "DEAD"}]
    check = cloud.unaccounted_ray_nodes(nodes, {"10.0.0.1"})
    assert check.status == "WARN" and check.evidence == {"node_ips": ["10.0.0.9"]}
    assert cloud.unaccounted_ray_nodes(nodes[:1], {"10.0.0.1"}).status == "OK"


def test_dynamic_sources_are_found_by_their_file_names(tmp_path):
    for name in ("prod.gcp_tpu.yml", "runpod.yaml", "hosts.yml", "gce_gpu.yml"):
        (tmp_path / name).write_text("")
    assert [Path(p).name for p in _dynamic_sources([str(tmp_path)])] == ["gce_gpu.yml", "prod.gcp_tpu.yml",
                                                                          "runpod.yaml"]
