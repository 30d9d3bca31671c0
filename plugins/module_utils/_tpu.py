# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""Pure helpers about Cloud TPU v2 nodes and queued resources, shared by the gcp_tpu inventory and tpu_node."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

# A spot or preemptible node in these states is gone for good: it cannot be started, only recreated.
RECREATE_STATES = ("PREEMPTED", "TERMINATED")
# Node fields that nodes.create accepts and that make up "the same node" when recreating.
SPEC_FIELDS = (
    "description",
    "acceleratorType",
    "acceleratorConfig",
    "runtimeVersion",
    "networkConfig",
    "serviceAccount",
    "schedulingConfig",
    "labels",
    "metadata",
    "tags",
    "dataDisks",
    "shieldedInstanceConfig",
    "bootDiskConfig",
)
PROVISIONING_MODELS = ("STANDARD", "SPOT", "PREEMPTIBLE", "RESERVED")
# QueuedResource fields that queuedResources.create accepts; the others (name, createTime, state) are output.
QUEUED_RESOURCE_FIELDS = ("tpu", "spot", "guaranteed", "queueingPolicy", "reservationName")
# Absolute times in a queueing policy are in the past by the time a node is recreated; durations are kept.
QUEUEING_TIMES = ("validUntilTime", "validAfterTime", "validInterval")


def node_path(project, zone, name):
    return "projects/%s/locations/%s/nodes/%s" % (project, zone, name)


def location_path(project, zone):
    return "projects/%s/locations/%s" % (project, zone)


def _parse_resource_name(resource_name, collection, what):
    """`projects/P/locations/Z/<collection>/N` -> (P, Z, N); ValueError naming ``what`` for anything else."""
    parts = (resource_name or "").split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != collection:
        raise ValueError("not a TPU %s name: %r" % (what, resource_name))
    return parts[1], parts[3], parts[5]


def parse_queued_resource_name(resource_name):
    """`projects/P/locations/Z/queuedResources/Q` -> (P, Z, Q); ValueError for anything else."""
    return _parse_resource_name(resource_name, "queuedResources", "queued resource")


def queued_resource_spec(queued_resource):
    """What queuedResources.create needs to ask for the same capacity again; output fields are dropped.

    An empty tier (`spot: {}`) is kept: its presence is what selects the tier.
    """
    spec = {
        field: copy.deepcopy(queued_resource[field])
        for field in QUEUED_RESOURCE_FIELDS
        if queued_resource.get(field) is not None
    }
    policy = spec.get("queueingPolicy")
    if policy is not None:
        for field in QUEUEING_TIMES:
            policy.pop(field, None)
        if not policy:
            del spec["queueingPolicy"]
    return spec


def parse_node_name(resource_name):
    """`projects/P/locations/Z/nodes/N` -> (P, Z, N); ValueError for anything else."""
    return _parse_resource_name(resource_name, "nodes", "node")


def provisioning_model(scheduling_config):
    """SPOT, PREEMPTIBLE, RESERVED or STANDARD from a node's schedulingConfig."""
    scheduling_config = scheduling_config or {}
    if scheduling_config.get("spot"):
        return "SPOT"
    if scheduling_config.get("preemptible"):
        return "PREEMPTIBLE"
    if scheduling_config.get("reserved"):
        return "RESERVED"
    return "STANDARD"


def scheduling_config(model):
    """The inverse of provisioning_model: the schedulingConfig to send for a model."""
    model = (model or "STANDARD").upper()
    if model not in PROVISIONING_MODELS:
        raise ValueError("provisioning model must be one of %s" % ", ".join(PROVISIONING_MODELS))
    return {} if model == "STANDARD" else {model.lower(): True}


def node_spec(node):
    """What nodes.create needs to make the same node again; output-only fields are dropped.

    acceleratorType wins over acceleratorConfig: the API returns both but accepts one.
    """
    spec = {field: copy.deepcopy(node[field]) for field in SPEC_FIELDS if node.get(field) not in (None, {}, [])}
    if "acceleratorType" in spec:
        spec.pop("acceleratorConfig", None)
    return spec


def spec_from_params(params):
    """A node spec from tpu_node module parameters; None values are left out."""
    spec = {}
    if params.get("accelerator_type"):
        spec["acceleratorType"] = params["accelerator_type"]
    if params.get("runtime_version"):
        spec["runtimeVersion"] = params["runtime_version"]
    if params.get("description"):
        spec["description"] = params["description"]
    network = {}
    if params.get("network"):
        network["network"] = params["network"]
    if params.get("subnetwork"):
        network["subnetwork"] = params["subnetwork"]
    if params.get("enable_external_ips") is not None:
        network["enableExternalIps"] = params["enable_external_ips"]
    if network:
        spec["networkConfig"] = network
    if params.get("labels"):
        spec["labels"] = dict(params["labels"])
    if params.get("metadata"):
        spec["metadata"] = dict(params["metadata"])
    if params.get("tags"):
        spec["tags"] = list(params["tags"])
    if params.get("provisioning_model"):
        config = scheduling_config(params["provisioning_model"])
        if config:
            spec["schedulingConfig"] = config
    return spec


def can_restart(node):
    """A node can be stopped and started unless it was preempted or terminated."""
    return node.get("state") not in RECREATE_STATES


def needs_recreate(node, force=False):
    """True for PREEMPTED / TERMINATED nodes, or for any node when forced."""
    return force or node.get("state") in RECREATE_STATES


def node_summary(node):
    """The fields a person reads in a module result: name, state, health, spec, endpoints."""
    if not node:
        return {}
    project, zone, name = parse_node_name(node["name"])
    return {
        "name": name,
        "project": project,
        "zone": zone,
        "state": node.get("state"),
        "health": node.get("health"),
        "provisioning_model": provisioning_model(node.get("schedulingConfig")),
        "internal_ips": [endpoint.get("ipAddress") for endpoint in node.get("networkEndpoints") or []],
        "queued_resource": node.get("queuedResource"),
        "spec": node_spec(node),
    }
