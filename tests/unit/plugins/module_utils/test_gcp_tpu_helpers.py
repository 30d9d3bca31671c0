"""Unit tests for plugins/module_utils/_tpu.py: node names, provisioning models and specs."""

import json
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _tpu

TPU = Path(__file__).resolve().parents[3] / "fixtures" / "gcp" / "tpu"


def node(name):
    return json.loads((TPU / name).read_text())


def test_parse_node_name():
    assert _tpu.parse_node_name("projects/p/locations/us-central2-b/nodes/n1") == ("p", "us-central2-b", "n1")


@pytest.mark.parametrize("name", ["", "projects/p/zones/z/instances/n", "projects/p/locations/z/nodes", None])
def test_parse_node_name_rejects_other_resources(name):
    with pytest.raises(ValueError):
        _tpu.parse_node_name(name)


@pytest.mark.parametrize(
    ("config", "model"),
    [
        ({"spot": True}, "SPOT"),
        ({"preemptible": True}, "PREEMPTIBLE"),
        ({"reserved": True}, "RESERVED"),
        ({}, "STANDARD"),
        (None, "STANDARD"),
    ],
)
def test_provisioning_model_round_trips(config, model):
    assert _tpu.provisioning_model(config) == model
    assert _tpu.provisioning_model(_tpu.scheduling_config(model)) == model


def test_scheduling_config_rejects_unknown_models():
    with pytest.raises(ValueError):
        _tpu.scheduling_config("FLEX")


def test_node_spec_keeps_what_create_accepts_and_drops_output_fields():
    spec = _tpu.node_spec(node("node_preempted.json"))
    assert spec["acceleratorType"] == "v4-8"
    assert spec["runtimeVersion"] == "tpu-ubuntu2204-base"
    assert spec["schedulingConfig"] == {"spot": True}
    assert spec["labels"] == {"fleet": "ray", "team": "ml"}
    assert spec["metadata"]["startup-script"].startswith("#!/bin/bash")
    assert spec["networkConfig"]["network"] == "projects/fw-ml-prod/global/networks/default"
    assert spec["serviceAccount"]["email"].endswith("@developer.gserviceaccount.com")
    for output_only in ("name", "state", "networkEndpoints", "id", "createTime", "health", "cidrBlock", "apiVersion"):
        assert output_only not in spec
    # The API returns both; create accepts one of them.
    assert "acceleratorConfig" not in spec


def test_node_spec_keeps_accelerator_config_when_it_is_the_only_shape():
    spec = _tpu.node_spec({"acceleratorConfig": {"type": "V5P", "topology": "2x2x1"}, "runtimeVersion": "v2"})
    assert spec == {"acceleratorConfig": {"type": "V5P", "topology": "2x2x1"}, "runtimeVersion": "v2"}


def test_node_spec_is_a_copy():
    original = node("node_preempted.json")
    spec = _tpu.node_spec(original)
    spec["labels"]["team"] = "changed"
    assert original["labels"]["team"] == "ml"


def test_spec_from_params():
    spec = _tpu.spec_from_params(
        {
            "accelerator_type": "v4-8",
            "runtime_version": "tpu-ubuntu2204-base",
            "network": "default",
            "subnetwork": None,
            "enable_external_ips": False,
            "labels": {"fleet": "ray"},
            "metadata": None,
            "tags": ["ray-worker"],
            "provisioning_model": "SPOT",
            "description": None,
        }
    )
    assert spec == {
        "acceleratorType": "v4-8",
        "runtimeVersion": "tpu-ubuntu2204-base",
        "networkConfig": {"network": "default", "enableExternalIps": False},
        "labels": {"fleet": "ray"},
        "tags": ["ray-worker"],
        "schedulingConfig": {"spot": True},
    }


@pytest.mark.parametrize(
    ("state", "force", "restart", "recreate"),
    [
        ("READY", False, True, False),
        ("STOPPED", False, True, False),
        ("PREEMPTED", False, False, True),
        ("TERMINATED", False, False, True),
        ("READY", True, True, True),
    ],
)
def test_restart_or_recreate(state, force, restart, recreate):
    assert _tpu.can_restart({"state": state}) is restart
    assert _tpu.needs_recreate({"state": state}, force=force) is recreate


def test_node_summary():
    summary = _tpu.node_summary(node("node_ready.json"))
    assert summary["name"] == "train-v4-8-c"
    assert summary["zone"] == "us-central2-b"
    assert summary["state"] == "READY"
    assert summary["provisioning_model"] == "SPOT"
    assert summary["internal_ips"] == ["10.130.0.144"]
    assert _tpu.node_summary(None) == {}


def test_queued_resource_names_round_trip():
    name = "projects/p/locations/us-central2-b/queuedResources/q"
    assert _tpu.parse_queued_resource_name(name) == ("p", "us-central2-b", "q")
    with pytest.raises(ValueError, match="queued resource"):
        _tpu.parse_queued_resource_name("projects/p/locations/z/nodes/n")


def test_queued_resource_spec_keeps_the_request_and_drops_output_and_past_deadlines():
    queued = {
        "name": "projects/p/locations/z/queuedResources/q",
        "createTime": "2025-08-10T09:12:44Z",
        "state": {"state": "SUSPENDED"},
        "tpu": {"nodeSpec": [{"parent": "projects/p/locations/z", "nodeId": "n", "node": {"acceleratorType": "v4-8"}}]},
        "guaranteed": {"minDuration": "3600s"},
        "queueingPolicy": {"validUntilTime": "2025-08-10T15:00:00Z"},
    }
    spec = _tpu.queued_resource_spec(queued)
    assert spec == {"tpu": queued["tpu"], "guaranteed": {"minDuration": "3600s"}}
    spec["tpu"]["nodeSpec"][0]["nodeId"] = "changed"
    assert queued["tpu"]["nodeSpec"][0]["nodeId"] == "n"  # a copy
    assert _tpu.queued_resource_spec({"spot": {}, "tpu": {}})["spot"] == {}  # an empty tier still selects it
