"""Every answer the stand-in gives, checked against google-api-python-client's bundled discovery documents.

A scenario drives every route through the real client, faults included; each body a route returns is
recorded and validated against its discovery method's response schema. A field the real API does not
have fails the test, and so does a route the scenario did not reach.
"""

import json

import pytest
from discovery_schema import errors, load, method
from standin_clients import clients, wait

from fleetwarden.cloud.server import COMPUTE_ROUTES, TPU_ROUTES

TPU = load("tpu", "v2")
COMPUTE = load("compute", "v1")
# Each route of the stand-in, and the discovery method whose answer it gives.
ROUTE_METHODS = {
    "locations": (TPU, "projects.locations.list"),
    "list_nodes": (TPU, "projects.locations.nodes.list"),
    "create_node": (TPU, "projects.locations.nodes.create"),
    "get_node": (TPU, "projects.locations.nodes.get"),
    "delete_node": (TPU, "projects.locations.nodes.delete"),
    "node_action": (TPU, "projects.locations.nodes.stop"),
    "node_guest_attributes": (TPU, "projects.locations.nodes.getGuestAttributes"),
    "list_queued": (TPU, "projects.locations.queuedResources.list"),
    "create_queued": (TPU, "projects.locations.queuedResources.create"),
    "get_queued": (TPU, "projects.locations.queuedResources.get"),
    "delete_queued": (TPU, "projects.locations.queuedResources.delete"),
    "tpu_operation": (TPU, "projects.locations.operations.get"),
    "aggregated": (COMPUTE, "instances.aggregatedList"),
    "insert": (COMPUTE, "instances.insert"),
    "get_instance": (COMPUTE, "instances.get"),
    "delete_instance": (COMPUTE, "instances.delete"),
    "instance_action": (COMPUTE, "instances.stop"),
    "instance_guest": (COMPUTE, "instances.getGuestAttributes"),
    "compute_operation": (COMPUTE, "zoneOperations.get"),
}


def test_every_route_has_a_discovery_method():
    routes = {name for _, _, name in TPU_ROUTES + COMPUTE_ROUTES}
    assert routes == set(ROUTE_METHODS)
    for document, dotted in ROUTE_METHODS.values():
        assert "$ref" in method(document, dotted)["response"]


@pytest.fixture
def recorded(standin):
    """{route name: [answer bodies]} of every answer a route gives during the test."""
    seen = {name: [] for name in ROUTE_METHODS}
    for name in ROUTE_METHODS:
        handler = getattr(standin.standin, name)

        async def record(*args, _handler=handler, _name=name):
            answer = await _handler(*args)
            seen[_name].append(json.loads(json.dumps(answer)))
            return answer

        setattr(standin.standin, name, record)
    return seen


def test_every_answer_matches_the_real_schema(standin, recorded):
    tpu, compute, admin = clients(standin)
    nodes = tpu.projects().locations().nodes()
    queued = tpu.projects().locations().queuedResources()
    parent = "projects/fw-lab/locations/us-central2-b"
    node = f"{parent}/nodes/lab-tpu"
    tpu.projects().locations().list(name="projects/fw-lab").execute()
    spec = {"acceleratorType": "v4-16", "runtimeVersion": "tpu-ubuntu2204-base", "schedulingConfig": {"spot": True},
            "labels": {"fleet": "ray"}, "networkConfig": {"enableExternalIps": False}, "tags": ["ray"]}
    wait(tpu, nodes.create(parent=parent, nodeId="lab-tpu", body=spec).execute())
    for index in range(3):
        wait(tpu, nodes.create(parent=parent, nodeId=f"extra-{index}", body=dict(spec, acceleratorType="v4-8"))
             .execute())
    first = nodes.list(parent="projects/fw-lab/locations/-", pageSize=2).execute()
    assert first["nextPageToken"]
    nodes.list_next(nodes.list(parent="projects/fw-lab/locations/-", pageSize=2), first).execute()
    nodes.getGuestAttributes(name=node, body={"queryPath": "hostkeys/"}).execute()
    wait(tpu, nodes.stop(name=node, body={}).execute())
    nodes.get(name=node).execute()
    wait(tpu, nodes.start(name=node, body={}).execute())
    admin("preempt", "lab-tpu-w1.us-central2-b.fw-lab")
    nodes.get(name=node).execute()
    nodes.getGuestAttributes(name=node, body={"queryPath": "hostkeys/"}).execute()
    wait(tpu, nodes.delete(name=node).execute())
    admin("stockout", "extra-0")
    wait(tpu, nodes.delete(name=f"{parent}/nodes/extra-0").execute())
    wait(tpu, nodes.create(parent=parent, nodeId="extra-0", body=spec).execute())  # fails: no capacity
    request = {"tpu": {"nodeSpec": [{"parent": parent, "nodeId": "qr-node", "node": spec}]}, "spot": {}}
    wait(tpu, queued.create(parent=parent, queuedResourceId="qr", body=request).execute())
    queued.get(name=f"{parent}/queuedResources/qr").execute()
    queued.list(parent="projects/fw-lab/locations/-").execute()
    admin("preempt", "qr-node-w0")
    queued.get(name=f"{parent}/queuedResources/qr").execute()
    wait(tpu, queued.delete(name=f"{parent}/queuedResources/qr", force=True).execute())

    instances = compute.instances()
    zone = {"project": "fw-lab", "zone": "us-central1-a"}
    head = {"name": "lab-head", "machineType": "zones/us-central1-a/machineTypes/n2-standard-8",
            "labels": {"fleet": "ray", "ray-role": "head"}}
    gpu = {"name": "lab-gpu", "machineType": "g2-standard-4", "labels": {"fleet": "ray", "ray-role": "worker"},
           "guestAccelerators": [{"acceleratorType": "nvidia-l4", "acceleratorCount": 1}],
           "scheduling": {"provisioningModel": "SPOT", "preemptible": True, "automaticRestart": False,
                          "onHostMaintenance": "TERMINATE", "instanceTerminationAction": "STOP"}}
    wait(compute, instances.insert(body=head, **zone).execute(), zone)
    wait(compute, instances.insert(body=gpu, **zone).execute(), zone)
    instances.aggregatedList(project="fw-lab", filter="labels.fleet = ray").execute()
    instances.getGuestAttributes(instance="lab-gpu", queryPath="hostkeys/", **zone).execute()
    instances.getGuestAttributes(instance="lab-gpu", variableKey="hostkeys/ssh-ed25519", **zone).execute()
    admin("terminate", "lab-gpu.us-central1-a.fw-lab")
    instances.get(instance="lab-gpu", **zone).execute()
    admin("stockout", "lab-gpu")
    wait(compute, instances.start(instance="lab-gpu", **zone).execute(), zone)  # fails: no capacity
    wait(compute, instances.start(instance="lab-gpu", **zone).execute(), zone)
    wait(compute, instances.stop(instance="lab-head", **zone).execute(), zone)
    wait(compute, instances.delete(instance="lab-head", **zone).execute(), zone)

    problems = []
    for name, answers in recorded.items():
        assert answers, f"the scenario never reached route {name}"
        document, dotted = ROUTE_METHODS[name]
        schema = method(document, dotted)["response"]
        for answer in answers:
            problems += [f"{name}: {problem}" for problem in errors(document, schema, answer)]
    assert problems == []
    # The failures the scenario caused are in the answers, as the real APIs give them.
    tpu_errors = [answer["error"] for answer in recorded["tpu_operation"] if "error" in answer]
    assert tpu_errors and tpu_errors[0]["code"] == 8 and "There is no more capacity in the zone" in tpu_errors[0][
        "message"]
    compute_errors = [answer["error"] for answer in recorded["compute_operation"] if "error" in answer]
    assert compute_errors[0]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"


def test_the_validator_finds_a_field_the_api_does_not_have():
    node = {"name": "projects/p/locations/z/nodes/n", "state": "READY", "workerCount": 2}
    assert errors(TPU, {"$ref": "Node"}, node) == ["$.workerCount: the API has no such field"]
    assert errors(TPU, {"$ref": "Node"}, {"state": "RUNNING"}) == ["$.state: 'RUNNING' is not one of the API's values"]
    assert errors(COMPUTE, {"$ref": "InstanceAggregatedList"}, {"items": {"zones/a": {"instances": [{"x": 1}]}}}) == [
        "$.items.zones/a.instances[0].x: the API has no such field"
    ]
