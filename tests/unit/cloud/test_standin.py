"""The stand-in over HTTP: credentials, the stand-in header, life cycles, paging, restarts, faults, bad input."""

import asyncio
import json
import shutil
import threading
import urllib.error
import urllib.request

import pytest
from fleetwarden_testing.standin import RunningStandIn
from googleapiclient.errors import HttpError
from standin_clients import admin_call, clients, wait

from fleetwarden.cli import main
from fleetwarden.cloud import STANDIN_HEADER, STANDIN_VALUE, cli, engine
from fleetwarden.cloud.backend import MemoryBackend

PARENT = "projects/fw-lab/locations/us-central2-b"
SLICE = {"acceleratorType": "v4-16", "runtimeVersion": "tpu-ubuntu2204-base", "schedulingConfig": {"spot": True},
         "labels": {"fleet": "ray"}}


def raw(standin, path, token=None, method="GET", data=None):
    """(status, headers, body) of one request, whatever the status."""
    request = urllib.request.Request(standin.url + path, data=data, method=method)  # noqa: S310 - loopback
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            return answer.status, answer.headers, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def make_slice(standin, node_id="lab-tpu", body=SLICE):
    tpu, _, _ = clients(standin)
    return wait(tpu, tpu.projects().locations().nodes().create(parent=PARENT, nodeId=node_id, body=body).execute())


def test_every_answer_names_the_stand_in_and_needs_the_right_token(standin):
    nodes = f"/v2/{PARENT}/nodes"
    for token, path, status in [
        (None, nodes, 401),
        ("fwlab-not-the-token", nodes, 401),
        (standin.admin_token, nodes, 401),  # the admin token opens only the admin path
        (standin.api_token, "/admin/v1/faults", 401),  # and the API token not the admin path
        (standin.api_token, "/v2/nothing/here", 404),
        (standin.api_token, nodes, 200),
        (standin.admin_token, "/admin/v1/faults", 200),
    ]:
        code, headers, body = raw(standin, path, token)
        assert code == status, (path, body)
        assert headers[STANDIN_HEADER] == STANDIN_VALUE
        if code >= 400:
            assert body["error"]["code"] == code
    assert standin.api_token.startswith("fwlab-")


def test_a_slice_has_one_host_per_worker_with_real_endpoints_and_host_keys(standin):
    operation = make_slice(standin)
    node = operation["response"]
    assert node["state"] == "READY"
    hosts = standin.backend.hosts
    assert sorted(hosts) == ["lab-tpu-w0", "lab-tpu-w1"]
    assert [e["ipAddress"] for e in node["networkEndpoints"]] == [hosts[f"lab-tpu-w{i}"]["info"].address
                                                                for i in (0, 1)]
    tpu, _, _ = clients(standin)
    attributes = tpu.projects().locations().nodes().getGuestAttributes(
        name=f"{PARENT}/nodes/lab-tpu", body={"queryPath": "hostkeys/", "workerIds": ["1"]}).execute()
    (entry,) = attributes["guestAttributes"][0]["queryValue"]["items"]
    assert entry == {"namespace": "hostkeys", "key": "ssh-ed25519",
                     "value": hosts["lab-tpu-w1"]["info"].host_keys["ssh-ed25519"]}


def test_operations_start_not_done_and_the_life_cycle_is_the_real_one(standin):
    release = threading.Event()
    backend = standin.backend
    original = backend.create
    backend.create = lambda spec: (release.wait(10), original(spec))[1]
    tpu, _, _ = clients(standin)
    nodes = tpu.projects().locations().nodes()
    operation = nodes.create(parent=PARENT, nodeId="lab-tpu", body=SLICE).execute()
    assert operation["done"] is False
    assert nodes.get(name=f"{PARENT}/nodes/lab-tpu").execute()["state"] == "CREATING"
    release.set()
    wait(tpu, operation)
    name = f"{PARENT}/nodes/lab-tpu"
    with pytest.raises(HttpError) as refused:  # a READY node cannot be started
        nodes.start(name=name, body={}).execute()
    assert refused.value.resp.status == 400
    wait(tpu, nodes.stop(name=name, body={}).execute())
    assert nodes.get(name=name).execute()["state"] == "STOPPED"
    assert not any(host["running"] for host in backend.hosts.values())
    wait(tpu, nodes.start(name=name, body={}).execute())
    assert nodes.get(name=name).execute()["state"] == "READY"
    release.clear()
    remove = backend.remove
    backend.remove = lambda host: (release.wait(10), remove(host))[1]
    deleting = nodes.delete(name=name).execute()
    assert deleting["done"] is False
    assert nodes.get(name=name).execute()["state"] == "DELETING"
    release.set()
    wait(tpu, deleting)
    assert backend.hosts == {}
    with pytest.raises(HttpError) as gone:
        nodes.get(name=name).execute()
    assert gone.value.resp.status == 404


def test_lists_page_like_the_real_api(standin):
    for index in range(5):
        make_slice(standin, f"node-{index}", dict(SLICE, acceleratorType="v4-8"))
    tpu, _, _ = clients(standin)
    nodes = tpu.projects().locations().nodes()
    request = nodes.list(parent="projects/fw-lab/locations/-", pageSize=2)
    names, pages = [], 0
    while request is not None:
        page = request.execute()
        names += [node["name"].rsplit("/", 1)[1] for node in page["nodes"]]
        pages += 1
        request = nodes.list_next(request, page)
    assert (names, pages) == ([f"node-{index}" for index in range(5)], 3)
    code, _, body = raw(standin, f"/v2/{PARENT}/nodes?pageToken=garbage", standin.api_token)
    assert (code, body["error"]["status"]) == (400, "INVALID_ARGUMENT")


def test_state_survives_a_restart_and_a_running_operation_is_finished(tmp_path):
    release = threading.Event()

    class Slow(MemoryBackend):
        def create(self, spec):
            release.wait(10)
            return super().create(spec)

    first = RunningStandIn(tmp_path / "a", Slow())
    make_slice(first, "done-before")
    release.clear()
    tpu, _, _ = clients(first)
    pending = tpu.projects().locations().nodes().create(parent=PARENT, nodeId="in-flight", body=SLICE).execute()
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # the state as the stand-in left it, mid-operation
    release.set()
    first.stop()
    second = RunningStandIn(tmp_path / "b")
    try:
        assert second.api_token == first.api_token
        tpu, _, _ = clients(second)
        assert wait(tpu, pending)["response"]["state"] == "READY"
        listed = tpu.projects().locations().nodes().list(parent=PARENT).execute()["nodes"]
        assert [node["name"].rsplit("/", 1)[1] for node in listed] == ["done-before", "in-flight"]
    finally:
        second.stop()


def test_lab_fault_preempts_a_slice_by_any_of_its_hosts(standin, tmp_path, capsys, caplog):
    make_slice(standin)
    project = tmp_path
    assert cli.state_dir(project) == standin.state_dir
    assert main(["--project-dir", str(project), "lab", "fault", "preempt", "lab-tpu-w1.us-central2-b.fw-lab"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["resource"] == f"{PARENT}/nodes/lab-tpu"
    node = standin.cloud.node(f"{PARENT}/nodes/lab-tpu")
    assert node["state"] == "PREEMPTED" and "networkEndpoints" not in node
    assert not any(host["running"] for host in standin.backend.hosts.values())
    log = admin_call(standin, {}, method="GET")["log"]
    assert [(entry["kind"], entry["target"]) for entry in log] == [("preempt", "lab-tpu-w1.us-central2-b.fw-lab")]
    assert any("fault injected" in message and "preempt" in message for message in caplog.messages)


def test_lab_fault_refuses_what_the_cloud_would_not_do(standin, capsys):
    make_slice(standin, "reserved", dict(SLICE, schedulingConfig={}))
    project = standin.state_dir.parent.parent  # the checkout whose .lab/cloud the stand-in uses
    for argv, message in [
        (["preempt", "reserved"], "is not a spot or preemptible node"),
        (["preempt", "no-such-host"], "no TPU node or instance has the host name 'no-such-host'"),
    ]:
        assert main(["--project-dir", str(project), "lab", "fault", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert standin.cloud.state["fault_log"] == []


def test_terminate_and_stockout_on_a_spot_vm(standin):
    _, compute, admin = clients(standin)
    zone = {"project": "fw-lab", "zone": "us-central1-a"}
    spot = {"name": "lab-gpu", "machineType": "g2-standard-4", "scheduling": {"provisioningModel": "SPOT"},
            "guestAccelerators": [{"acceleratorType": "nvidia-l4", "acceleratorCount": 1}]}
    wait(compute, compute.instances().insert(body=spot, **zone).execute(), zone)
    admin("terminate", "lab-gpu")
    assert compute.instances().get(instance="lab-gpu", **zone).execute()["status"] == "TERMINATED"
    assert standin.backend.hosts["lab-gpu"]["running"] is False
    admin("stockout", "lab-gpu", count=1)
    failed = wait(compute, compute.instances().start(instance="lab-gpu", **zone).execute(), zone)
    assert failed["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert failed["httpErrorStatusCode"] == 503
    assert "does not have enough resources available" in failed["error"]["errors"][0]["message"]
    started = wait(compute, compute.instances().start(instance="lab-gpu", **zone).execute(), zone)
    assert "error" not in started
    assert compute.instances().get(instance="lab-gpu", **zone).execute()["status"] == "RUNNING"


def test_a_tpu_stockout_fails_the_creation_and_a_queued_resource_waits(standin):
    tpu, _, admin = clients(standin)
    admin("stockout", "us-central2-b", count=2)
    failed = wait(tpu, tpu.projects().locations().nodes().create(parent=PARENT, nodeId="n", body=SLICE).execute())
    assert failed["error"]["code"] == 8
    assert failed["error"]["message"].startswith('There is no more capacity in the zone "us-central2-b"')
    request = {"tpu": {"nodeSpec": [{"parent": PARENT, "nodeId": "q-node", "node": SLICE}]}, "spot": {}}
    queued = tpu.projects().locations().queuedResources()
    wait(tpu, queued.create(parent=PARENT, queuedResourceId="q", body=request).execute())
    assert queued.get(name=f"{PARENT}/queuedResources/q").execute()["state"]["state"] == "WAITING_FOR_RESOURCES"
    assert standin.backend.hosts == {}


def test_api_errors_answer_n_calls_on_the_targets_project(standin):
    make_slice(standin)
    admin_call(standin, {"kind": "api-errors", "target": "lab-tpu-w0", "count": 2, "status": 429})
    path = f"/v2/{PARENT}/nodes"
    codes = [raw(standin, path, standin.api_token)[0] for _ in range(3)]
    assert codes == [429, 429, 200]
    assert raw(standin, "/v2/projects/other-project/locations/-/nodes", standin.api_token)[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "data", "status"),
    [
        ("POST", f"/v2/{PARENT}/nodes?nodeId=x", b"{not json", 400),
        ("POST", f"/v2/{PARENT}/nodes?nodeId=x", b"[1, 2]", 400),
        ("POST", f"/v2/{PARENT}/nodes?nodeId=x", b"\xff\xfe{}", 400),
        ("POST", f"/v2/{PARENT}/nodes?nodeId=Bad_Name", b"{}", 400),
        ("POST", f"/v2/{PARENT}/nodes?nodeId=x", b'{"acceleratorType": "v4-8"}', 400),
        ("POST", f"/v2/{PARENT}/nodes?nodeId=x", b"x" * (2 << 20), 413),
        ("GET", "/v2/projects/x/locations/-/nodes", None, 400),
        ("GET", "/v2/projects/UPPER/locations/-/nodes", None, 404),
        ("GET", f"/v2/{PARENT}/nodes?pageSize=-1", None, 400),
        ("PUT", f"/v2/{PARENT}/nodes", b"{}", 405),
        ("GET", "/compute/v1/projects/fw-lab/aggregated/instances?filter=labels.fleet%20~%20ray", None, 400),
        ("POST", "/compute/v1/projects/fw-lab/zones/us-central1-a/instances", b'{"name": "x"}', 400),
        ("POST", "/admin/v1/faults", b'{"kind": "melt", "target": "x"}', 400),
        ("POST", "/admin/v1/faults", b'{"kind": "stockout", "target": "x", "count": 0}', 400),
    ],
)
def test_bad_input_is_a_clear_400_never_a_500(standin, method, path, data, status):
    token = standin.admin_token if path.startswith("/admin") else standin.api_token
    code, headers, body = raw(standin, path, token, method, data)
    assert code == status, body
    assert headers[STANDIN_HEADER] == STANDIN_VALUE
    if code != 413:
        assert body["error"]["message"]


def test_the_cli_and_the_engine_know_the_same_faults():
    assert cli.FAULT_KINDS == engine.FAULT_KINDS


def test_the_engine_runs_without_http(tmp_path):
    """The in-memory backend and the engine alone: what the measurement of a 1,000-node list uses."""
    from fleetwarden.cloud.store import Store

    async def scenario():
        cloud = engine.Cloud(Store(tmp_path), MemoryBackend())
        cloud.create_node("fw-lab", "us-central2-b", "n", dict(SLICE))
        await cloud.drain()
        return cloud.nodes("fw-lab", "-")

    (node,) = asyncio.run(scenario())
    assert node["state"] == "READY"


def test_host_keys_pinned_from_the_stand_in_change_when_the_slice_is_recreated(standin):
    from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._host_keys import keys_from_guest_attributes, pin

    def pinned(text):
        tpu, _, _ = clients(standin)
        answer = tpu.projects().locations().nodes().getGuestAttributes(
            name=f"{PARENT}/nodes/lab-tpu", body={"queryPath": "hostkeys/"}).execute()
        changes = []
        for index, attributes in enumerate(answer["guestAttributes"]):
            text, change = pin(text, f"lab-tpu-w{index}", keys_from_guest_attributes(attributes, f"lab-tpu-w{index}"))
            changes.append(change)
        return text, changes

    make_slice(standin)
    text, changes = pinned("")
    assert changes == ["added", "added"]
    assert pinned(text)[1] == ["unchanged", "unchanged"]
    tpu, _, _ = clients(standin)
    wait(tpu, tpu.projects().locations().nodes().delete(name=f"{PARENT}/nodes/lab-tpu").execute())
    make_slice(standin)
    assert pinned(text)[1] == ["replaced", "replaced"]


def test_lab_fault_without_a_stand_in_is_one_clear_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    project = Path(__file__).resolve().parents[3]
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "PYTHONPATH": str(project / "src")}
    (tmp_path / "collections").symlink_to(project / "collections")
    result = subprocess.run([sys.executable, "-m", "fleetwarden.cli", "--project-dir", str(tmp_path), "lab", "fault",
                             "preempt", "lab-tpu-w0"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2, result.stderr
    assert "no cloud stand-in has run here" in result.stderr and "Traceback" not in result.stderr


def test_a_backend_failure_fails_the_operation_and_leaves_the_node_actionable(standin):
    from fleetwarden.cloud.backend import BackendError

    make_slice(standin)
    tpu, _, _ = clients(standin)
    nodes = tpu.projects().locations().nodes()
    name = f"{PARENT}/nodes/lab-tpu"
    wait(tpu, nodes.stop(name=name, body={}).execute())

    def broken(host):
        raise BackendError(f"starting {host}: the docker engine went away")

    standin.backend.start = broken
    failed = wait(tpu, nodes.start(name=name, body={}).execute())
    assert failed["error"]["code"] == 13 and "the docker engine went away" in failed["error"]["message"]
    assert nodes.get(name=name).execute()["state"] == "STOPPED"
    wait(tpu, nodes.delete(name=name).execute())


def test_terminate_on_a_tpu_node_stops_every_worker(standin):
    make_slice(standin, "reserved", dict(SLICE, schedulingConfig={}))
    admin_call(standin, {"kind": "terminate", "target": "reserved-w0"})
    assert standin.cloud.node(f"{PARENT}/nodes/reserved")["state"] == "TERMINATED"
    assert not any(host["running"] for host in standin.backend.hosts.values())
    code, _, body = raw(standin, "/admin/v1/faults", standin.admin_token, "POST",
                        json.dumps({"kind": "preempt", "target": "reserved"}).encode())
    assert code == 400 and "is not a spot or preemptible node" in body["error"]["message"]


def test_aggregated_list_filters_and_pages_like_compute(standin):
    _, compute, _ = clients(standin)
    zone = {"project": "fw-lab", "zone": "us-central1-a"}
    for index in range(7):
        labels = {"fleet": "ray" if index % 2 == 0 else "other"}
        wait(compute, compute.instances().insert(body={"name": f"vm-{index}", "machineType": "n2-standard-2",
                                                       "labels": labels}, **zone).execute(), zone)
    instances = compute.instances()
    request = instances.aggregatedList(project="fw-lab", maxResults=3, filter="labels.fleet = ray")
    names, pages = [], 0
    while request is not None:
        page = request.execute()
        names += [vm["name"] for scoped in page["items"].values() for vm in scoped.get("instances", [])]
        pages += 1
        request = instances.aggregatedList_next(request, page)
    assert (names, pages) == (["vm-0", "vm-2", "vm-4", "vm-6"], 2)


def test_the_lab_fleet_command_makes_four_hosts_through_the_api(standin, tmp_path, monkeypatch, capsys):
    from fleetwarden.cloud import lab_fleet

    monkeypatch.chdir(tmp_path)  # the stand-in's state is in tmp_path/.lab/cloud
    assert lab_fleet.main(["--timeout", "30"]) == 0
    assert "lab fleet of project fw-lab ready" in capsys.readouterr().out
    hosts = standin.backend.hosts
    assert sorted(hosts) == ["lab-gpu", "lab-head", "lab-tpu-w0", "lab-tpu-w1"]
    assert {name: (host["spec"].role, host["spec"].accelerator) for name, host in hosts.items()} == {
        "lab-head": ("head", "cpu"), "lab-gpu": ("worker", "gpu"),
        "lab-tpu-w0": ("worker", "tpu"), "lab-tpu-w1": ("worker", "tpu")}
