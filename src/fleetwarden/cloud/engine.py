"""The stand-in's cloud: TPU nodes, queued resources and VMs with their life cycles, long-running operations, faults.

Everything runs on one asyncio loop, so state changes between two awaits are atomic. A request that changes a
resource answers an operation with `done: false` (TPU) or status RUNNING (compute) at once; a task then does the
work through the backend (in a thread) and finishes the operation. Operations still running when the stand-in
stops are resumed when it starts again, from the state file.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import time
from http import HTTPStatus

from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._tpu_inventory import worker_count

from fleetwarden.cloud.backend import Backend, BackendError, HostSpec
from fleetwarden.cloud.compute import ComputeMixin
from fleetwarden.cloud.shapes import (
    ROLE_LABEL,
    TPU_TYPE,
    ZONE_RE,
    ApiError,
    bad_request,
    check_name,
    check_zone,
    not_found,
    now,
    parts,
    resolve_target,
)
from fleetwarden.cloud.store import Store

LOG = logging.getLogger("fleetwarden.cloud")
NODE_FIELDS = (  # what nodes.create takes from the request; the rest is output
    "description", "acceleratorType", "acceleratorConfig", "runtimeVersion", "networkConfig", "serviceAccount",
    "schedulingConfig", "labels", "metadata", "tags", "dataDisks", "shieldedInstanceConfig", "bootDiskConfig",
)
FAULT_KINDS = ("preempt", "terminate", "stockout", "api-errors")
FAULT_STATUSES = (429, 503)
TPU_PORT = 8470
KEPT_OPERATIONS = 1000



def spot(node_or_instance: dict) -> bool:
    scheduling = node_or_instance.get("schedulingConfig") or node_or_instance.get("scheduling") or {}
    return bool(scheduling.get("spot") or scheduling.get("preemptible")
                or scheduling.get("provisioningModel") == "SPOT")


class Cloud(ComputeMixin):
    def __init__(self, store: Store, backend: Backend) -> None:
        self.store = store
        self.backend = backend
        self.state = store.load()
        self.tasks: set[asyncio.Task] = set()
        self._dirty = False

    # -- bookkeeping ------------------------------------------------------------------------
    def save(self) -> None:
        """Mark the state changed. It is written once per loop turn (a burst of changes costs one write), and
        before any answer leaves (the server calls flush), so what a client was told survives a restart."""
        if self._dirty:
            return
        self._dirty = True
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no loop: write now
            self.flush()

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self._prune_operations()
            self.store.save(self.state)

    def _prune_operations(self) -> None:
        """Keep the last KEPT_OPERATIONS finished operations, as the real APIs forget old ones."""
        operations = self.state["operations"]
        done = [name for name, operation in operations.items() if operation.get("work") is None]
        for name in done[: max(0, len(done) - KEPT_OPERATIONS)]:
            del operations[name]

    def _id(self) -> str:
        self.state["next_id"] += 1
        return str(self.state["next_id"])

    def resume(self) -> None:
        """Start the work of every operation that had not finished when the stand-in stopped."""
        for name, operation in self.state["operations"].items():
            if operation.get("work") is not None:
                self._schedule(name)

    def _schedule(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(name))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        """Wait until no operation is running (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _run(self, name: str) -> None:
        operation = self.state["operations"][name]
        work = operation["work"]
        try:
            response = await getattr(self, "_do_" + work["kind"])(work)
            self._finish(name, response=response)
        except ApiError as exc:
            self._finish(name, error=exc)
        except BackendError as exc:
            LOG.error("operation %s failed in the backend: %s", name, exc)
            self._settle_failed(work)
            self._finish(name, error=ApiError(500, "INTERNAL", str(exc), "internalError"))
        except Exception:  # a stand-in bug: the operation still ends, and says so
            LOG.exception("operation %s failed", name)
            self._settle_failed(work)
            self._finish(name, error=ApiError(500, "INTERNAL", "Internal error of the fleetwarden stand-in"))

    def _settle_failed(self, work: dict) -> None:
        """A resource whose change failed half-way leaves its transitional state, so it can be acted on again."""
        node = self.state["nodes"].get(work.get("node"))
        if node is not None and node.get("state") in ("STOPPING", "STARTING", "DELETING"):
            node["state"] = "STOPPED" if work["kind"] == "node_start" else "UNKNOWN"
        instance = self.state["instances"].get(work.get("instance"))
        if instance is not None and instance.get("status") in ("STOPPING", "STAGING", "PROVISIONING"):
            instance["status"] = "TERMINATED" if work["kind"] == "instance_start" else "RUNNING"

    async def _backend(self, function, *args):
        return await asyncio.to_thread(function, *args)

    # -- operations -------------------------------------------------------------------------
    def _tpu_operation(self, project: str, zone: str, verb: str, target: str, work: dict) -> dict:
        short = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(8)}"
        name = f"projects/{project}/locations/{zone}/operations/{short}"
        body = {
            "name": name,
            "metadata": {"@type": TPU_TYPE + "OperationMetadata", "createTime": now(), "target": target,
                         "verb": verb, "cancelRequested": False, "apiVersion": "v2"},
            "done": False,
        }
        return self._start(name, "tpu", body, work)

    def _start(self, name: str, api: str, body: dict, work: dict) -> dict:
        self.state["operations"][name] = {"api": api, "body": body, "work": work}
        self.save()
        self._schedule(name)
        return copy.deepcopy(body)

    def _finish(self, name: str, response: dict | None = None, error: ApiError | None = None) -> None:
        operation = self.state["operations"][name]
        body = operation["body"]
        operation["work"] = None
        if operation["api"] == "tpu":
            body["done"] = True
            body["metadata"]["endTime"] = now()
            if error is not None:
                body["error"] = {"code": grpc_code(error.status), "message": error.message}
            else:
                body["response"] = response or {"@type": "type.googleapis.com/google.protobuf.Empty"}
        else:
            body.update(status="DONE", progress=100, endTime=now())
            if error is not None:
                body["error"] = {"errors": [{"code": error.reason or error.status, "message": error.message}]}
                body["httpErrorStatusCode"] = error.code
                body["httpErrorMessage"] = HTTPStatus(error.code).phrase.upper()
        self.save()

    def operation(self, name: str) -> dict:
        operation = self.state["operations"].get(name)
        if operation is None:
            raise not_found(name)
        return copy.deepcopy(operation["body"])

    # -- faults: capacity and API errors ---------------------------------------------------------
    def _take_stockout(self, zone: str, name: str) -> bool:
        for stockout in self.state["stockouts"]:
            if stockout["remaining"] > 0 and stockout["zone"] in (zone, "*") and stockout["name"] in (name, "*"):
                stockout["remaining"] -= 1
                LOG.warning("fault: stockout answers the creation of %s in %s (%d left)", name, zone,
                            stockout["remaining"])
                self.state["stockouts"] = [s for s in self.state["stockouts"] if s["remaining"] > 0]
                return True
        return False

    def take_api_error(self, project: str | None) -> int | None:
        """The status to answer instead of this call, when an api-errors fault covers its project."""
        for fault in self.state["api_errors"]:
            if fault["remaining"] > 0 and fault["project"] in (project, "*"):
                fault["remaining"] -= 1
                self.state["api_errors"] = [f for f in self.state["api_errors"] if f["remaining"] > 0]
                self.save()
                LOG.warning("fault: HTTP %d answers a call on project %s", fault["status"], project)
                return fault["status"]
        return None

    async def inject(self, kind: str, target: str, count: int = 1, status: int = 503) -> dict:
        """One fault, logged; a TARGET is an inventory host name (a slice's worker means the slice) or a zone."""
        if kind not in FAULT_KINDS:
            raise bad_request(f"kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
            raise bad_request(f"count must be a whole number from 1 to 1000, got {count!r}")
        if not isinstance(target, str) or not target or len(target) > 300:
            raise bad_request("target must name an inventory host, a resource, or a zone")
        record = {"time": now(), "kind": kind, "target": target}
        if kind == "stockout" and (target == "*" or ZONE_RE.match(target)):
            self.state["stockouts"].append({"zone": target, "name": "*", "remaining": count})
            record.update(count=count, scope=f"zone {target}")
        else:
            what, name = resolve_target(target, self.state["nodes"], self.state["instances"], worker_count)
            record["resource"] = name
            if kind == "preempt":
                if what != "node":
                    raise bad_request(f"{target} is a Compute Engine instance; preempt takes a TPU node (terminate "
                                      "takes a spot VM)")
                await self._preempt(name)
            elif kind == "terminate":
                await (self._terminate(name) if what == "instance" else self._preempt(name, "TERMINATED"))
            elif kind == "stockout":
                _project, zone, resource = parts(name)
                self.state["stockouts"].append({"zone": zone, "name": resource, "remaining": count})
                record["count"] = count
            else:
                if status not in FAULT_STATUSES:
                    raise bad_request(f"status must be one of {', '.join(map(str, FAULT_STATUSES))}, got {status!r}")
                self.state["api_errors"].append({"project": parts(name)[0], "status": status, "remaining": count})
                record.update(count=count, status=status, scope=f"project {parts(name)[0]}")
        self.state["fault_log"].append(record)
        self.save()
        LOG.warning("fault injected: %s", record)
        return record

    async def _preempt(self, name: str, state: str = "PREEMPTED") -> None:
        """Stop every worker of a node; it becomes PREEMPTED (spot or preemptible only) or TERMINATED."""
        node = self.state["nodes"][name]
        if state == "PREEMPTED" and not spot(node):
            raise bad_request(f"{name} is not a spot or preemptible node: the cloud does not preempt it")
        if node.get("state") not in ("READY", "STOPPED"):
            raise bad_request(f"{name} is {node.get('state')}: only a READY or STOPPED node can be {state.lower()}")
        for host in self.state["node_hosts"].get(name, []):
            await self._backend(self.backend.stop, host)
        node["state"] = state
        for key in ("networkEndpoints", "health"):
            node.pop(key, None)
        queued = self.state["queued"].get(node.get("queuedResource"))
        if queued is not None:
            queued["state"] = {"state": "SUSPENDED", "stateInitiator": "SERVICE"}

    async def _terminate(self, path: str) -> None:
        instance = self.state["instances"][path]
        if not spot(instance):
            raise bad_request(f"{path} is not a spot VM: the cloud does not terminate it")
        if instance["status"] != "RUNNING":
            raise bad_request(f"{path} is {instance['status']}: only a running VM can be terminated")
        await self._backend(self.backend.stop, instance["name"])
        instance.update(status="TERMINATED", lastStopTimestamp=now())

    # -- TPU nodes --------------------------------------------------------------------------
    # The list methods return the state's own dicts, not copies: the server serializes them at once.
    def nodes(self, project: str, zone: str) -> list[dict]:
        prefix = f"projects/{project}/locations/"
        return [node for name, node in sorted(self.state["nodes"].items())
                if name.startswith(prefix) and (zone == "-" or parts(name)[1] == zone)]

    def node(self, name: str) -> dict:
        if name not in self.state["nodes"]:
            raise not_found(name)
        return copy.deepcopy(self.state["nodes"][name])

    def _new_node(self, project: str, zone: str, node_id: str, body: dict, queued: str | None = None) -> dict:
        check_zone(zone)
        check_name("nodeId", node_id)
        name = f"projects/{project}/locations/{zone}/nodes/{node_id}"
        if name in self.state["nodes"]:
            raise ApiError(409, "ALREADY_EXISTS", f"Resource '{name}' already exists", "alreadyExists")
        if not isinstance(body, dict) or not (body.get("acceleratorType") or body.get("acceleratorConfig")):
            raise bad_request("Node needs acceleratorType or acceleratorConfig")
        if not isinstance(body.get("runtimeVersion"), str):
            raise bad_request("Node needs runtimeVersion")
        node = {key: copy.deepcopy(body[key]) for key in NODE_FIELDS if key in body}
        node.update(name=name, id=self._id(), state="CREATING", createTime=now(), apiVersion="V2")
        node.setdefault("networkConfig", {"network": f"projects/{project}/global/networks/default",
                                          "subnetwork": f"projects/{project}/regions/{zone[:-2]}/subnetworks/default",
                                          "enableExternalIps": False})
        node.setdefault("schedulingConfig", {})
        if queued:
            node["queuedResource"] = queued
        workers = worker_count(node)
        hosts = [node_id] if workers == 1 else [f"{node_id}-w{index}" for index in range(workers)]
        self._check_hosts_free(hosts, name)
        self.state["nodes"][name] = node
        self.state["node_hosts"][name] = hosts
        return node

    def _check_hosts_free(self, hosts: list[str], owner: str) -> None:
        taken = {host for hosts_of in self.state["node_hosts"].values() for host in hosts_of}
        taken |= {instance["name"] for instance in self.state["instances"].values()}
        clash = sorted(taken & set(hosts))
        if clash:
            raise ApiError(409, "ALREADY_EXISTS", f"the lab names hosts by resource name, and {clash[0]} is taken: "
                           f"choose another name for {owner}", "alreadyExists")

    def create_node(self, project: str, zone: str, node_id: str, body: dict) -> dict:
        node = self._new_node(project, zone, node_id, body)
        return self._tpu_operation(project, zone, "create", node["name"], {"kind": "node_create", "node": node["name"]})

    def _specs(self, name: str) -> list[HostSpec]:
        node = self.state["nodes"][name]
        role = "head" if (node.get("labels") or {}).get(ROLE_LABEL) == "head" else "worker"
        return [HostSpec(host, role, "tpu") for host in self.state["node_hosts"][name]]

    async def _do_node_create(self, work: dict) -> dict:
        name = work["node"]
        _project, zone, node_id = parts(name)
        if self._take_stockout(zone, node_id):
            self._drop_node(name)
            raise ApiError(429, "RESOURCE_EXHAUSTED", f'There is no more capacity in the zone "{zone}"; you can try '
                           "in another zone where Cloud TPU Nodes are offered (see "
                           f"https://cloud.google.com/tpu/docs/regions) [EID: 0x{secrets.token_hex(8)}]")
        try:
            infos = await asyncio.gather(*(self._backend(self.backend.create, spec) for spec in self._specs(name)))
        except BackendError:
            for host in self.state["node_hosts"].get(name, []):
                await self._backend(self.backend.remove, host)
            self._drop_node(name)
            raise
        return self._node_ready(name, infos)

    def _node_ready(self, name: str, infos) -> dict:
        node = self.state["nodes"][name]
        node["networkEndpoints"] = [{"ipAddress": info.address, "port": TPU_PORT} for info in infos]
        for host, info in zip(self.state["node_hosts"][name], infos, strict=True):
            self.state["host_keys"][host] = dict(info.host_keys)
        node.update(state="READY", health="HEALTHY")
        return {"@type": TPU_TYPE + "Node", **copy.deepcopy(node)}

    def _drop_node(self, name: str) -> None:
        for host in self.state["node_hosts"].pop(name, []):
            self.state["host_keys"].pop(host, None)
        self.state["nodes"].pop(name, None)

    def node_action(self, name: str, action: str) -> dict:
        node = self.state["nodes"].get(name)
        if node is None:
            raise not_found(name)
        allowed = {"delete": None, "stop": ("READY",), "start": ("STOPPED",)}[action]
        if allowed and node["state"] not in allowed:
            raise ApiError(400, "FAILED_PRECONDITION", f"Cannot {action} node {name} in state {node['state']}")
        if node["state"] in ("CREATING", "DELETING", "STOPPING", "STARTING"):
            raise ApiError(400, "FAILED_PRECONDITION", f"Node {name} is {node['state']}; try again when it is done")
        node["state"] = {"delete": "DELETING", "stop": "STOPPING", "start": "STARTING"}[action]
        project, zone, _ = parts(name)
        return self._tpu_operation(project, zone, action, name, {"kind": "node_" + action, "node": name})

    async def _do_node_delete(self, work: dict) -> None:
        name = work["node"]
        for host in self.state["node_hosts"].get(name, []):
            await self._backend(self.backend.remove, host)
        self._drop_node(name)

    async def _do_node_stop(self, work: dict) -> dict:
        name = work["node"]
        for host in self.state["node_hosts"][name]:
            await self._backend(self.backend.stop, host)
        self.state["nodes"][name].update(state="STOPPED")
        self.state["nodes"][name].pop("health", None)
        return {"@type": TPU_TYPE + "Node", **copy.deepcopy(self.state["nodes"][name])}

    async def _do_node_start(self, work: dict) -> dict:
        name = work["node"]
        infos = await asyncio.gather(*(self._backend(self.backend.start, h) for h in self.state["node_hosts"][name]))
        return self._node_ready(name, infos)

    def guest_attributes(self, hosts: list[str], query_path: str) -> list[list[dict]]:
        """Per host, the guest attribute entries under query_path (only `hostkeys/` is published)."""
        namespace, _, key = (query_path or "").partition("/")
        result = []
        for host in hosts:
            entries = [{"namespace": "hostkeys", "key": kind, "value": blob}
                       for kind, blob in sorted(self.state["host_keys"].get(host, {}).items())]
            result.append([entry for entry in entries if (not namespace or entry["namespace"] == namespace)
                           and (not key or entry["key"] == key)])
        return result

    def node_guest_attributes(self, name: str, query_path: str, worker_ids) -> dict:
        node = self.node(name)
        hosts = self.state["node_hosts"][name]
        ids = [str(index) for index in range(len(hosts))] if not worker_ids else [str(i) for i in worker_ids]
        if any(not index.isdigit() or int(index) >= len(hosts) for index in ids):
            raise bad_request(f"workerIds must be worker numbers from 0 to {len(hosts) - 1}")
        entries = self.guest_attributes([hosts[int(index)] for index in ids], query_path)
        if node["state"] != "READY":  # a stopped or preempted VM publishes nothing
            entries = [[] for _ in ids]
        return {"guestAttributes": [{"queryPath": query_path or "", "queryValue": {"items": items}}
                                    for items in entries]}

    # -- queued resources -----------------------------------------------------------------------
    def queued_resources(self, project: str, zone: str) -> list[dict]:
        prefix = f"projects/{project}/locations/"
        return [queued for name, queued in sorted(self.state["queued"].items())
                if name.startswith(prefix) and (zone == "-" or parts(name)[1] == zone)]

    def queued_resource(self, name: str) -> dict:
        if name not in self.state["queued"]:
            raise not_found(name)
        return copy.deepcopy(self.state["queued"][name])

    def create_queued_resource(self, project: str, zone: str, queued_id: str, body: dict) -> dict:
        check_zone(zone)
        check_name("queuedResourceId", queued_id)
        name = f"projects/{project}/locations/{zone}/queuedResources/{queued_id}"
        if name in self.state["queued"]:
            raise ApiError(409, "ALREADY_EXISTS", f"Resource '{name}' already exists", "alreadyExists")
        specs = ((body or {}).get("tpu") or {}).get("nodeSpec") if isinstance(body, dict) else None
        if not specs or not all(isinstance(spec, dict) and spec.get("nodeId") for spec in specs):
            raise bad_request("QueuedResource needs tpu.nodeSpec with a nodeId each (multislice is not served)")
        for spec in specs:
            if spec.get("parent") != f"projects/{project}/locations/{zone}":
                raise bad_request(f"nodeSpec.parent must be projects/{project}/locations/{zone}")
        queued = {key: copy.deepcopy(body[key]) for key in ("tpu", "spot", "guaranteed", "queueingPolicy",
                                                             "reservationName") if key in body}
        queued.update(name=name, createTime=now(), state={"state": "CREATING"})
        self.state["queued"][name] = queued
        return self._tpu_operation(project, zone, "create", name, {"kind": "queued_create", "queued": name})

    async def _do_queued_create(self, work: dict) -> dict:
        name = work["queued"]
        queued = self.state["queued"][name]
        project, zone, queued_id = parts(name)
        if self._take_stockout(zone, queued_id) or any(
            self._take_stockout(zone, spec["nodeId"]) for spec in queued["tpu"]["nodeSpec"]
        ):
            queued["state"] = {"state": "WAITING_FOR_RESOURCES", "stateInitiator": "SERVICE"}
            return {"@type": TPU_TYPE + "QueuedResource", **copy.deepcopy(queued)}
        queued["state"] = {"state": "PROVISIONING", "stateInitiator": "USER"}
        created = []
        try:
            for spec in queued["tpu"]["nodeSpec"]:
                node = self._new_node(project, zone, spec["nodeId"], spec.get("node") or {}, queued=name)
                created.append(node["name"])
                infos = await asyncio.gather(*(self._backend(self.backend.create, host)
                                               for host in self._specs(node["name"])))
                self._node_ready(node["name"], infos)
        except (ApiError, BackendError) as exc:
            queued["state"] = {"state": "FAILED", "stateInitiator": "SERVICE",
                               "failedData": {"error": {"code": 13, "message": str(exc)}}}
            return {"@type": TPU_TYPE + "QueuedResource", **copy.deepcopy(queued)}
        queued["state"] = {"state": "ACTIVE", "stateInitiator": "USER"}
        return {"@type": TPU_TYPE + "QueuedResource", **copy.deepcopy(queued)}

    def delete_queued_resource(self, name: str, force: bool) -> dict:
        queued = self.state["queued"].get(name)
        if queued is None:
            raise not_found(name)
        owned = [node for node, body in self.state["nodes"].items() if body.get("queuedResource") == name]
        if owned and not force:
            raise ApiError(400, "FAILED_PRECONDITION", f"Queued resource {name} has nodes; delete with force=true")
        queued["state"] = {"state": "DELETING", "stateInitiator": "USER"}
        project, zone, _ = parts(name)
        return self._tpu_operation(project, zone, "delete", name, {"kind": "queued_delete", "queued": name})

    async def _do_queued_delete(self, work: dict) -> None:
        name = work["queued"]
        for node in [n for n, body in self.state["nodes"].items() if body.get("queuedResource") == name]:
            await self._do_node_delete({"node": node})
        self.state["queued"].pop(name, None)

GRPC_CODES = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "RESOURCE_EXHAUSTED": 8,
              "FAILED_PRECONDITION": 9, "ABORTED": 10, "INTERNAL": 13, "UNAVAILABLE": 14}


def grpc_code(status: str) -> int:
    return GRPC_CODES.get(status, 2)
