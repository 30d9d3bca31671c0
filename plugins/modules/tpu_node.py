#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tpu_node
short_description: Create, delete, restart or recreate one Cloud TPU VM node
description:
  - Level-1 (system level) recovery for TPU VMs. A PREEMPTED or TERMINATED spot or preemptible node cannot be
    started again; O(state=recreated) deletes it and creates it with the same spec (accelerator type, runtime
    version, network, service account, labels, metadata, scheduling, tags, disks).
  - Waits for each long-running operation, up to O(timeout) seconds for the whole run.
  - "Runs on the controller (C(delegate_to: localhost)); it talks to the Cloud TPU API, not to the node."
  - O(accelerator_type), O(runtime_version) and the other spec options are used only to create a node that does
    not exist. An existing node keeps its spec; use O(state=recreated) with O(force=true) to rebuild it.
  - A node that a queued resource owns (its C(queuedResource) field) is recreated through that queued resource,
    not with C(nodes.create). The queued resource is deleted with its nodes (C(force)) and created again with
    the same request (node specs, spot or guaranteed tier, reservation, queueing durations). Its capacity then
    comes back when the queued resource is served.
  - "Authentication: the same options as the gcp_tpu inventory, with the same environment variables.
    playbooks/recover_preempted_tpu.yml passes it the options of the inventory source that listed the node."
author: fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - fleetwarden.fleet.gcp
attributes:
  check_mode:
    support: full
    description: Reads the node and reports the actions it would take, without changing anything.
  diff_mode:
    support: full
    description: Shows the node's state and spec before and after.
options:
  name:
    description: The node ID, without the C(projects/.../nodes/) prefix.
    type: str
    required: true
  project:
    description: The project ID.
    type: str
    required: true
  zone:
    description: The zone, for example C(us-central2-b).
    type: str
    required: true
  state:
    description:
      - V(present) creates the node if it does not exist.
      - V(absent) deletes it if it exists.
      - V(restarted) stops and starts a running node, or starts a stopped one. Fails for PREEMPTED or TERMINATED nodes.
      - V(recreated) deletes and creates a PREEMPTED or TERMINATED node (any node with O(force=true)), or creates a
        missing one from the spec options.
    type: str
    choices: [present, absent, restarted, recreated]
    default: present
  force:
    description: With O(state=recreated), recreate the node whatever its state.
    type: bool
    default: false
  accelerator_type:
    description: Accelerator type for a new node, for example C(v4-8).
    type: str
  runtime_version:
    description: Runtime (software) version for a new node, for example C(tpu-ubuntu2204-base).
    type: str
  provisioning_model:
    description: Scheduling of a new node.
    type: str
    choices: [STANDARD, SPOT, PREEMPTIBLE, RESERVED]
  network:
    description: VPC network of a new node.
    type: str
  subnetwork:
    description: Subnetwork of a new node.
    type: str
  enable_external_ips:
    description: Whether a new node's workers get external IPs.
    type: bool
  labels:
    description: Labels of a new node.
    type: dict
  metadata:
    description: Metadata of a new node.
    type: dict
  tags:
    description: Network tags of a new node.
    type: list
    elements: str
  description:
    description: Description of a new node.
    type: str
  wait:
    description: Wait for the last operation to finish. A recreate always waits for the delete.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for all operations of this run together.
    type: int
    default: 1800
  poll_interval:
    description: Seconds between two looks at a running operation.
    type: int
    default: 10
  endpoint:
    description: Base URL of the Cloud TPU API, for a private endpoint or a local emulator.
    type: str
"""

EXAMPLES = r"""
- name: Recreate a preempted spot TPU VM with its old spec
  fleetwarden.fleet.tpu_node:
    project: ml-prod
    zone: us-central2-b
    name: train-v4-8-c
    state: recreated
  delegate_to: localhost

- name: Make sure a node exists
  fleetwarden.fleet.tpu_node:
    project: ml-prod
    zone: us-central2-b
    name: train-v4-8-d
    accelerator_type: v4-8
    runtime_version: tpu-ubuntu2204-base
    provisioning_model: SPOT
    labels:
      fleet: ray
  delegate_to: localhost
"""

RETURN = r"""
actions:
  description:
    - The API calls made, or that would be made in check mode, in order.
    - V(delete_queued_resource) and V(create_queued_resource) for a node that a queued resource owns.
  returned: always
  type: list
  elements: str
  sample: [delete, create]
node:
  description: The node after the run (before it, in check mode); empty when it does not exist.
  returned: always
  type: dict
  sample:
    name: train-v4-8-c
    zone: us-central2-b
    state: READY
    provisioning_model: SPOT
    spec: {acceleratorType: v4-8, runtimeVersion: tpu-ubuntu2204-base}
operations:
  description: Names of the long-running operations started.
  returned: always
  type: list
  elements: str
spec:
  description: The spec used to create the node, or the queued resource, when one was created.
  returned: when a node or a queued resource is or would be created
  type: dict
queued_resource:
  description: The full name of the queued resource that owns the node, when one does.
  returned: when the node belongs to a queued resource
  type: str
  sample: projects/ml-prod/locations/us-central2-b/queuedResources/train-qr
"""

import time  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    GOOGLE_IMPORT_ERROR,
    HAS_GOOGLE_LIBRARIES,
    ApiCaller,
    GcpError,
    HttpError,
    build_service,
    describe_http_error,
    http_factory,
    load_credentials,
    refresh_credentials,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._lab_credentials import credential_problem  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._tpu import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    can_restart,
    location_path,
    needs_recreate,
    node_path,
    node_spec,
    node_summary,
    parse_queued_resource_name,
    queued_resource_spec,
    spec_from_params,
)

API = "tpu.googleapis.com"


class OperationTimeout(Exception):
    pass


class TpuNodeManager:
    """Plans and runs the API calls for one node. `caller.execute` retries; `sleep`/`clock` are injectable."""

    def __init__(self, module, service, caller, sleep=time.sleep, clock=time.monotonic):
        self.module = module
        self.params = module.params
        self.nodes = service.projects().locations().nodes()
        self.operations = service.projects().locations().operations()
        self.queued_resources = service.projects().locations().queuedResources()
        self.caller = caller
        self.sleep = sleep
        self.clock = clock
        self.path = node_path(self.params["project"], self.params["zone"], self.params["name"])
        self.deadline = None
        self.started = []
        self.spec = None
        self.queued_resource = None  # full name, when a queued resource owns the node

    def get(self):
        try:
            return self.caller.execute(self.nodes.get(name=self.path))
        except HttpError as exc:
            if exc.resp.status == 404:
                return None
            raise

    def plan(self, node):
        """(actions, spec): what to call, and the spec of a node to create. Fails for impossible requests."""
        state = self.params["state"]
        if state == "absent":
            return (["delete"], None) if node else ([], None)
        if node is None:
            if state == "restarted":
                self.module.fail_json(msg="TPU node %s does not exist, so it cannot be restarted" % self.path)
            return ["create"], self.spec_for_missing_node()
        if state == "present":
            return [], None
        if state == "restarted":
            if not can_restart(node):
                self.module.fail_json(
                    msg="TPU node %s is %s: a preempted or terminated node cannot be restarted; use state=recreated"
                    % (self.path, node.get("state"))
                )
            return (["start"] if node.get("state") == "STOPPED" else ["stop", "start"]), None
        if needs_recreate(node, self.params["force"]):
            if node.get("queuedResource"):
                self.queued_resource = node["queuedResource"]
                queued = self.caller.execute(self.queued_resources.get(name=self.queued_resource))
                return ["delete_queued_resource", "create_queued_resource"], queued_resource_spec(queued)
            return ["delete", "create"], node_spec(node)
        return [], None

    def spec_for_missing_node(self):
        spec = spec_from_params(self.params)
        missing = [key for key in ("acceleratorType", "runtimeVersion") if key not in spec]
        if missing:
            self.module.fail_json(
                msg="TPU node %s does not exist; creating it needs accelerator_type and runtime_version" % self.path
            )
        return spec

    def call(self, action, spec):
        if action == "create_queued_resource":
            project, zone, queued_id = parse_queued_resource_name(self.queued_resource)
            request = self.queued_resources.create(
                parent=location_path(project, zone), queuedResourceId=queued_id, body=spec
            )
        elif action == "delete_queued_resource":
            request = self.queued_resources.delete(name=self.queued_resource, force=True)
        elif action == "create":
            request = self.nodes.create(
                parent=location_path(self.params["project"], self.params["zone"]), nodeId=self.params["name"], body=spec
            )
        else:
            body = {"body": {}} if action in ("stop", "start") else {}
            request = getattr(self.nodes, action)(name=self.path, **body)
        operation = self.caller.execute(request)
        self.started.append(operation.get("name"))
        return operation

    def wait(self, operation, action):
        """Poll the operation until done; fail on its error; OperationTimeout past the deadline."""
        while not operation.get("done"):
            remaining = self.deadline - self.clock()
            if remaining <= 0:
                raise OperationTimeout(
                    "timed out after %ss waiting for %s of %s (operation %s still running)"
                    % (self.params["timeout"], action, self.path, operation.get("name"))
                )
            self.sleep(min(self.params["poll_interval"], remaining))
            operation = self.caller.execute(self.operations.get(name=operation["name"]))
        if operation.get("error"):
            error = operation["error"]
            self.module.fail_json(
                msg="%s of TPU node %s failed: %s" % (action, self.path, error.get("message", error)),
                actions=[action],
                operations=self.started,
                error=error,
                spec=self.spec,
            )
        return operation

    def run(self):
        self.deadline = self.clock() + self.params["timeout"]
        node = self.get()
        actions, spec = self.plan(node)
        self.spec = spec
        before = node_summary(node)
        result = {"changed": bool(actions), "actions": actions, "node": before, "operations": self.started}
        if spec is not None:
            result["spec"] = spec
        if self.queued_resource:
            result["queued_resource"] = self.queued_resource
        if actions:
            result["diff"] = {
                "before": {"state": node.get("state") if node else "absent", "spec": node_spec(node) if node else {}},
                "after": {
                    "state": "absent" if actions == ["delete"] else "QUEUED" if self.queued_resource else "READY",
                    "spec": spec or node_spec(node),
                },
            }
        if not actions or self.module.check_mode:
            return result
        for position, action in enumerate(actions):
            operation = self.call(action, spec)
            last = position == len(actions) - 1
            if not last or self.params["wait"]:
                self.wait(operation, action)
        if self.params["wait"]:
            result["node"] = node_summary(self.get())
        return result


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        project=dict(type="str", required=True),
        zone=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent", "restarted", "recreated"]),
        force=dict(type="bool", default=False),
        accelerator_type=dict(type="str"),
        runtime_version=dict(type="str"),
        provisioning_model=dict(type="str", choices=["STANDARD", "SPOT", "PREEMPTIBLE", "RESERVED"]),
        network=dict(type="str"),
        subnetwork=dict(type="str"),
        enable_external_ips=dict(type="bool"),
        labels=dict(type="dict"),
        metadata=dict(type="dict"),
        tags=dict(type="list", elements="str"),
        description=dict(type="str"),
        wait=dict(type="bool", default=True),
        timeout=dict(type="int", default=1800),
        poll_interval=dict(type="int", default=10),
        endpoint=dict(type="str"),
        auth_kind=dict(
            type="str",
            default="application",
            choices=["application", "serviceaccount", "accesstoken"],
            fallback=(env_fallback, ["GCP_AUTH_KIND"]),
        ),
        service_account_file=dict(type="path", fallback=(env_fallback, ["GCP_SERVICE_ACCOUNT_FILE"])),
        service_account_contents=dict(
            type="jsonarg", no_log=True, fallback=(env_fallback, ["GCP_SERVICE_ACCOUNT_CONTENTS"])
        ),
        access_token=dict(type="str", no_log=True, fallback=(env_fallback, ["GCP_ACCESS_TOKEN"])),
        scopes=dict(type="list", elements="str", default=["https://www.googleapis.com/auth/cloud-platform"]),
        retries=dict(type="int", default=5),
        request_timeout=dict(type="int", default=60),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[
            ("auth_kind", "serviceaccount", ["service_account_file", "service_account_contents"], True),
            ("auth_kind", "accesstoken", ["access_token"]),
        ],
        mutually_exclusive=[("service_account_file", "service_account_contents")],
    )
    if not HAS_GOOGLE_LIBRARIES:
        module.fail_json(msg=missing_required_lib("google-api-python-client"), exception=str(GOOGLE_IMPORT_ERROR))
    params = module.params
    problem = credential_problem(
        params["endpoint"],
        params["auth_kind"],
        params["access_token"],
        params["service_account_file"],
        params["service_account_contents"],
    )
    if problem:
        module.fail_json(msg=problem)
    try:
        credentials = load_credentials(
            params["auth_kind"],
            params["service_account_file"],
            params["access_token"],
            params["scopes"],
            params["service_account_contents"],
        )
        credentials = refresh_credentials(credentials, params["request_timeout"])
        caller = ApiCaller(http_factory(credentials, params["request_timeout"]), retries=params["retries"])
        service = build_service("tpu", "v2", caller.make_http(), endpoint=params["endpoint"])
        result = TpuNodeManager(module, service, caller).run()
    except GcpError as exc:
        module.fail_json(msg=str(exc))
    except HttpError as exc:
        action = "managing TPU node %s" % params["name"]
        module.fail_json(msg=describe_http_error(exc, API, params["project"], action))
    except OperationTimeout as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
