# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""How the gcp_tpu inventory shapes TPU nodes and queued resources into host records; controller-only.

Pure functions, each with its own unit test in tests/unit/plugins/inventory/test_gcp_tpu.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.fleetwarden.fleet.plugins.module_utils._tpu import parse_node_name, provisioning_model
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._gcp_inventory import short_name

# The number in acceleratorType counts TensorCores for these (8 per TPU VM host) ...
CORE_COUNTED = {"v2": 8, "v3": 8, "v4": 8, "v5p": 8}
# ... and chips for these: up to 8 chips fit one host, a larger slice has 4 chips per host.
CHIP_COUNTED = ("v5litepod", "v5e", "v6e")
CONFIG_FAMILIES = {"V2": "v2", "V3": "v3", "V4": "v4", "V5P": "v5p", "V5LITE_POD": "v5litepod", "V6E": "v6e"}
# Queued resource states whose capacity is still pending.
WAITING_STATES = ("ACCEPTED", "CREATING", "PROVISIONING", "WAITING_FOR_RESOURCES")


def workers_per_size(family, size):
    if family in CORE_COUNTED:
        return max(1, size // CORE_COUNTED[family])
    if family in CHIP_COUNTED:
        return 1 if size <= 8 else size // 4
    return None


def worker_count(node):
    """How many TPU VM hosts a node has: its endpoints, or else what its accelerator type implies.

    A slice keeps its size whatever its state, so its host names do too. None is never returned:
    an unknown type without endpoints counts as one host.
    """
    endpoints = node.get("networkEndpoints") or []
    if endpoints:
        return len(endpoints)
    family, _dash, size = (node.get("acceleratorType") or "").rpartition("-")
    if size.isdigit() and workers_per_size(family, int(size)):
        return workers_per_size(family, int(size))
    config = node.get("acceleratorConfig") or {}
    dimensions = (config.get("topology") or "").split("x")
    if all(part.isdigit() for part in dimensions) and config.get("type") in CONFIG_FAMILIES:
        chips = 1
        for part in dimensions:
            chips *= int(part)
        family = CONFIG_FAMILIES[config["type"]]
        # A core-counted family has 2 TensorCores per chip.
        return workers_per_size(family, chips * 2 if family in CORE_COUNTED else chips) or 1
    return 1


def pending_nodes(queued_resources, listed):
    """Stand-in nodes for what a queued resource has asked for and that does not exist (yet).

    They carry the requested spec and no state, so that the capacity still pending shows up as hosts.
    """
    pending = []
    for queued in queued_resources:
        for spec in (queued.get("tpu") or {}).get("nodeSpec") or []:
            multislice = spec.get("multisliceParams") or {}
            if spec.get("nodeId"):
                ids = [spec["nodeId"]]
            else:
                ids = [
                    "%s-%d" % (multislice.get("nodeIdPrefix"), index)
                    for index in range(multislice.get("nodeCount") or 0)
                ]
            for node_id in ids:
                name = "%s/nodes/%s" % (spec.get("parent"), node_id)
                if name not in listed:
                    node = dict(spec.get("node") or {}, name=name, queuedResource=queued["name"])
                    node.pop("state", None)
                    pending.append(node)
    return pending


def host_records(node, queued_states=None):
    """One host var record per TPU VM worker of a node, whatever its state."""
    project, zone, name = parse_node_name(node["name"])
    endpoints = node.get("networkEndpoints") or []
    count = worker_count(node)
    base = {
        "tpu_node_name": name,
        "tpu_project": project,
        "tpu_zone": zone,
        "tpu_worker_count": count,
        "tpu_accelerator_type": node.get("acceleratorType"),
        "tpu_state": node.get("state"),
        "tpu_health": node.get("health"),
        "tpu_provisioning_model": provisioning_model(node.get("schedulingConfig")),
        "tpu_labels": node.get("labels") or {},
        "tpu_runtime_version": node.get("runtimeVersion"),
    }
    if node.get("queuedResource"):
        base["tpu_queued_resource"] = short_name(node["queuedResource"])
        base["tpu_queued_resource_state"] = (queued_states or {}).get(node["queuedResource"])
    records = []
    for index in range(count):
        endpoint = endpoints[index] if index < len(endpoints) else {}
        host_vars = dict(base)
        host_vars["tpu_worker_index"] = index
        host_vars["tpu_internal_ip"] = endpoint.get("ipAddress")
        host_vars["tpu_external_ip"] = (endpoint.get("accessConfig") or {}).get("externalIp")
        records.append(host_vars)
    return records


def shape(nodes, queued_resources=()):
    """Records for every worker of every node, and of every node a queued resource still waits for, sorted."""
    states = {queued["name"]: (queued.get("state") or {}).get("state") for queued in queued_resources}
    listed = {node["name"] for node in nodes}
    records = [record for node in nodes for record in host_records(node, states)]
    records.extend(record for node in pending_nodes(queued_resources, listed) for record in host_records(node, states))
    records.sort(
        key=lambda host: (host["tpu_project"], host["tpu_zone"], host["tpu_node_name"], host["tpu_worker_index"])
    )
    return records
