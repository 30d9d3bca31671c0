"""The Compute Engine v1 part of the stand-in's cloud: VMs, their operations and guest attributes.

A mixin of engine.Cloud: it uses the Cloud's state, operations, stockouts and backend.
"""

from __future__ import annotations

import copy
import secrets
import time

from fleetwarden.cloud.backend import BackendError, HostSpec
from fleetwarden.cloud.shapes import (
    COMPUTE_BASE,
    ROLE_LABEL,
    ApiError,
    bad_request,
    check_name,
    check_zone,
    not_found,
    now,
    parts,
)

INSTANCE_FIELDS = ("description", "labels", "metadata", "tags", "guestAccelerators", "scheduling", "serviceAccounts")



class ComputeMixin:
    def _compute_operation(self, instance_path: str, verb: str, work: dict) -> dict:
        project, zone, _ = parts(instance_path)
        short = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(8)}"
        name = f"projects/{project}/zones/{zone}/operations/{short}"
        instance = self.state["instances"].get(instance_path) or {}
        stamp = now()
        body = {
            "kind": "compute#operation", "id": self._id(), "name": short, "operationType": verb,
            "zone": f"{COMPUTE_BASE}projects/{project}/zones/{zone}", "targetLink": COMPUTE_BASE + instance_path,
            "targetId": instance.get("id", "0"), "status": "RUNNING", "user": "lab@fleetwarden.invalid",
            "progress": 0, "insertTime": stamp, "startTime": stamp, "selfLink": COMPUTE_BASE + name,
        }
        return self._start(name, "compute", body, work)

    # -- Compute Engine instances ------------------------------------------------------------------
    def instances(self, project: str) -> list[dict]:
        prefix = f"projects/{project}/zones/"
        return [body for path, body in sorted(self.state["instances"].items()) if path.startswith(prefix)]

    def instance(self, path: str) -> dict:
        if path not in self.state["instances"]:
            raise not_found(path)
        return copy.deepcopy(self.state["instances"][path])

    def insert_instance(self, project: str, zone: str, body: dict) -> dict:
        check_zone(zone)
        if not isinstance(body, dict):
            raise bad_request("Instance body must be an object")
        name = check_name("resource.name", body.get("name"))
        path = f"projects/{project}/zones/{zone}/instances/{name}"
        if path in self.state["instances"]:
            raise ApiError(409, "ALREADY_EXISTS", f"The resource '{path}' already exists", "alreadyExists")
        machine_type = body.get("machineType")
        if not isinstance(machine_type, str) or not machine_type:
            raise bad_request("Invalid value for field 'resource.machineType': ''. Machine type is required")
        self._check_hosts_free([name], path)
        instance = {key: copy.deepcopy(body[key]) for key in INSTANCE_FIELDS if key in body}
        zone_url = f"{COMPUTE_BASE}projects/{project}/zones/{zone}"
        for accelerator in instance.get("guestAccelerators") or []:
            kind = str(accelerator.get("acceleratorType") or "").rsplit("/", 1)[-1]
            accelerator["acceleratorType"] = f"{zone_url}/acceleratorTypes/{kind}"
        instance.update(
            kind="compute#instance", id=self._id(), name=name, creationTimestamp=now(), status="PROVISIONING",
            zone=zone_url, machineType=f"{zone_url}/machineTypes/{machine_type.rsplit('/', 1)[-1]}",
            selfLink=COMPUTE_BASE + path, networkInterfaces=[], cpuPlatform="Unknown CPU Platform",
        )
        instance.setdefault("scheduling", {"provisioningModel": "STANDARD", "automaticRestart": True,
                                           "onHostMaintenance": "MIGRATE", "preemptible": False})
        self.state["instances"][path] = instance
        return self._compute_operation(path, "insert", {"kind": "instance_start", "instance": path, "insert": True})

    def _instance_spec(self, path: str) -> HostSpec:
        instance = self.state["instances"][path]
        role = "head" if (instance.get("labels") or {}).get(ROLE_LABEL) == "head" else "worker"
        return HostSpec(instance["name"], role, "gpu" if instance.get("guestAccelerators") else "cpu")

    async def _do_instance_start(self, work: dict) -> None:
        path = work["instance"]
        project, zone, name = parts(path)
        if self._take_stockout(zone, name):
            if work.get("insert"):
                self.state["instances"].pop(path, None)
            else:
                self.state["instances"][path]["status"] = "TERMINATED"
            raise ApiError(503, "ZONE_RESOURCE_POOL_EXHAUSTED", f"The zone 'projects/{project}/zones/{zone}' does not "
                           "have enough resources available to fulfill the request.  Try a different zone, or try "
                           "again later.", "ZONE_RESOURCE_POOL_EXHAUSTED")
        instance = self.state["instances"][path]
        instance["status"] = "STAGING"
        spec = self._instance_spec(path)
        try:
            info = await self._backend(self.backend.create if work.get("insert") else self.backend.start,
                                       *((spec,) if work.get("insert") else (spec.name,)))
        except BackendError:
            if work.get("insert"):
                await self._backend(self.backend.remove, spec.name)
                self.state["instances"].pop(path, None)
            else:
                instance["status"] = "TERMINATED"
            raise
        self.state["host_keys"][spec.name] = dict(info.host_keys)
        instance.update(status="RUNNING", lastStartTimestamp=now(), networkInterfaces=[{
            "kind": "compute#networkInterface", "name": "nic0", "networkIP": info.address,
            "network": f"{COMPUTE_BASE}projects/{project}/global/networks/default",
            "subnetwork": f"{COMPUTE_BASE}projects/{project}/regions/{zone[:-2]}/subnetworks/default",
            "stackType": "IPV4_ONLY",
        }])

    def instance_action(self, path: str, action: str) -> dict:
        instance = self.state["instances"].get(path)
        if instance is None:
            raise not_found(path)
        busy = ("PROVISIONING", "STAGING", "STOPPING")
        if instance["status"] in busy:
            raise ApiError(400, "FAILED_PRECONDITION", f"The instance {path} is {instance['status']}; try again later",
                           "resourceNotReady")
        if action == "start":
            if instance["status"] == "RUNNING":
                return self._compute_operation(path, "start", {"kind": "noop"})
            return self._compute_operation(path, "start", {"kind": "instance_start", "instance": path})
        if action == "stop":
            if instance["status"] != "RUNNING":
                return self._compute_operation(path, "stop", {"kind": "noop"})
            instance["status"] = "STOPPING"
            return self._compute_operation(path, "stop", {"kind": "instance_stop", "instance": path})
        instance["status"] = "STOPPING"
        return self._compute_operation(path, "delete", {"kind": "instance_delete", "instance": path})

    async def _do_noop(self, work: dict) -> None:
        return None

    async def _do_instance_stop(self, work: dict) -> None:
        path = work["instance"]
        await self._backend(self.backend.stop, self.state["instances"][path]["name"])
        self.state["instances"][path].update(status="TERMINATED", lastStopTimestamp=now())

    async def _do_instance_delete(self, work: dict) -> None:
        path = work["instance"]
        name = parts(path)[2]
        await self._backend(self.backend.remove, name)
        self.state["host_keys"].pop(name, None)
        self.state["instances"].pop(path, None)

    def instance_guest_attributes(self, path: str, query_path: str | None, variable_key: str | None) -> dict:
        instance = self.instance(path)
        items = self.guest_attributes([instance["name"]], query_path or variable_key or "")[0]
        if instance["status"] != "RUNNING" or not items:
            raise not_found(f"{path}/guestAttributes/{query_path or variable_key or ''}")
        answer = {"kind": "compute#guestAttributes", "selfLink": f"{COMPUTE_BASE}{path}/guestAttributes"}
        if variable_key:
            answer.update(variableKey=variable_key, variableValue=items[0]["value"])
        else:
            answer.update(queryPath=query_path, queryValue={"items": items})
        return answer


