# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: runpod
short_description: RunPod pods as inventory hosts
description:
  - Lists the pods of one RunPod account with a single GraphQL query over HTTPS. No RunPod SDK is needed.
  - C(ansible_host) and C(ansible_port) come from the runtime port mapping whose private port is 22 over TCP,
    public or private as O(addresses) prefers.
  - "Each pod has a status, in host var C(runpod_status) and group C(runpod_status_<status>): V(running)
    (desired status V(RUNNING) and a runtime), V(starting) (desired status V(RUNNING), no runtime yet),
    or the desired status in lower case (V(exited), V(terminated), ...)."
  - A pod that is not running gets no connection vars. Pods neither running nor starting are also in group
    C(stopped). A starting pod, and a running pod that maps no SSH port, give a warning.
  - The config file name must end in C(runpod.yml) or C(runpod.yaml), as with aws_ec2, for example
    C(inventory/prod/fleet.runpod.yml) or C(inventory/sample/runpod.yml).
  - The inventory hostname is the pod name; pods that share a name are told apart as C(<name>-<pod id>),
    and a pod without a name is its pod id.
  - "Host vars: C(runpod_id), C(runpod_name), C(runpod_status), C(runpod_desired_status), C(runpod_gpu_type),
    C(runpod_gpu_count), C(runpod_image), C(runpod_cost_per_hr), C(runpod_uptime_seconds), C(runpod_public_ip),
    C(runpod_public_ssh_port), C(runpod_private_ip), C(runpod_private_ssh_port)."
  - "Groups: C(runpod) (every pod), C(runpod_status_<status>), C(stopped), C(runpod_gpu_<type>), for example
    C(runpod_status_starting), C(runpod_gpu_a100_80gb_pcie)."
  - The API key travels only in the C(Authorization) header. It never becomes a host var and is never printed.
author: fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin.
    required: true
    type: str
    choices: [fleetwarden.fleet.runpod]
  api_key:
    description: A RunPod API key with read access. Prefer the environment variable over the config file.
    type: str
    required: true
    env:
      - name: RUNPOD_API_KEY
  endpoint:
    description: The GraphQL endpoint; change it for a proxy or a local stub.
    type: str
    default: https://api.runpod.io/graphql
  retries:
    description: How many times to retry HTTP 429 and 5xx answers, with exponential backoff.
    type: int
    default: 4
  request_timeout:
    description: Seconds to wait for the answer.
    type: int
    default: 30
  total_timeout:
    description: Seconds the listing may take, retries and backoff included; then it fails.
    type: int
    default: 60
  addresses:
    description:
      - Which SSH mapping gives C(ansible_host) and C(ansible_port), in order of preference; the first one a
        running pod has wins. An empty list sets neither.
    type: list
    elements: str
    choices: [public_ip, private_ip]
    default: [public_ip, private_ip]
  filters:
    description:
      - Keep only pods whose host vars match. Keys are host var names; values are a glob or a list of globs.
      - Keys are ANDed, the globs of one key are ORed. Applied after the cache, so edits take effect at once.
    type: dict
    default: {}
"""

EXAMPLES = r"""
# inventory/prod.runpod.yml; the key comes from RUNPOD_API_KEY
plugin: fleetwarden.fleet.runpod
addresses: [private_ip]
filters:
  runpod_status: [running, starting]
compose:
  ansible_user: "'root'"
keyed_groups:
  - key: runpod_gpu_count
    prefix: gpus
"""

import json  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import time  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from urllib.error import HTTPError, URLError  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.errors import AnsibleParserError  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible.module_utils.urls import open_url  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible.utils.unsafe_proxy import wrap_var  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._http_retry import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    RETRYABLE_STATUS,
    backoff_delay,
    endpoint_problem,
    retry_after_seconds,
)
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._inventory import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    FleetInventoryMixin,
    InventoryError,
    cache_entry,
    choose_address,
    group_name,
    make_unsafe_vars,
    matches_filters,
    validate_addresses,
    validate_filters,
)

PODS_QUERY = (
    "query Pods { myself { pods { id name desiredStatus imageName gpuCount costPerHr "
    "machine { gpuDisplayName } "
    "runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } } } } }"
)
ADDRESS_CHOICES = ("public_ip", "private_ip")


class RunPodError(Exception):
    """An API failure, already worded for a person and free of the API key."""


# ---------------------------------------------------------------------------------------------
# Pure functions, each with its own unit test
# ---------------------------------------------------------------------------------------------


def pods_from_response(document):
    """The pod list of a GraphQL answer, or RunPodError with the server's messages."""
    if not isinstance(document, dict):
        raise RunPodError("RunPod answered with something that is not a JSON object")
    if document.get("errors"):
        messages = "; ".join(str(error.get("message", error)) for error in document["errors"])
        raise RunPodError("RunPod GraphQL error: %s" % messages)
    myself = (document.get("data") or {}).get("myself")
    if myself is None:
        raise RunPodError("RunPod answered without data.myself; is the API key valid?")
    return myself.get("pods") or []


def pod_status(pod):
    """running, starting (RUNNING without a runtime yet), or the desired status in lower case."""
    desired = pod.get("desiredStatus")
    if desired == "RUNNING":
        return "running" if pod.get("runtime") else "starting"
    return (desired or "unknown").lower()


def is_running(pod):
    return pod_status(pod) == "running"


def ssh_addresses(ports):
    """{"public_ip": (ip, port), "private_ip": (ip, port)} of the TCP mappings for private port 22."""
    found = {}
    for port in ports or []:
        if port.get("privatePort") == 22 and (port.get("type") or "").lower() == "tcp" and port.get("ip"):
            kind = "public_ip" if port.get("isIpPublic") else "private_ip"
            found.setdefault(kind, (port["ip"], port.get("publicPort") or 22))
    return found


def assign_hostnames(pods):
    """{pod id: inventory hostname}; names used by several pods get the pod id appended."""
    counts = {}
    for pod in pods:
        counts[pod.get("name")] = counts.get(pod.get("name"), 0) + 1
    hostnames = {}
    for pod in pods:
        name = pod.get("name")
        hostnames[pod["id"]] = pod["id"] if not name else name if counts[name] == 1 else "%s-%s" % (name, pod["id"])
    return hostnames


def host_records(pods):
    """[inventory_hostname, host_vars] per pod, sorted by hostname; connection vars are chosen later."""
    hostnames = assign_hostnames(pods)
    records = []
    for pod in pods:
        runtime = pod.get("runtime") or {}
        ssh = ssh_addresses(runtime.get("ports"))
        public, private = ssh.get("public_ip") or (None, None), ssh.get("private_ip") or (None, None)
        host_vars = {
            "runpod_id": pod["id"],
            "runpod_name": pod.get("name"),
            "runpod_status": pod_status(pod),
            "runpod_desired_status": pod.get("desiredStatus"),
            "runpod_gpu_type": (pod.get("machine") or {}).get("gpuDisplayName"),
            "runpod_gpu_count": pod.get("gpuCount"),
            "runpod_image": pod.get("imageName"),
            "runpod_cost_per_hr": pod.get("costPerHr"),
            "runpod_uptime_seconds": runtime.get("uptimeInSeconds"),
            "runpod_public_ip": public[0],
            "runpod_public_ssh_port": public[1],
            "runpod_private_ip": private[0],
            "runpod_private_ssh_port": private[1],
        }
        records.append([hostnames[pod["id"]], host_vars])
    records.sort(key=lambda record: record[0])
    return records


def connection_vars(host_vars, order):
    """ansible_host and ansible_port of a running pod, from the first SSH mapping in `order`; {} otherwise."""
    if host_vars["runpod_status"] != "running":
        return {}
    mappings = {
        "public_ip": host_vars["runpod_public_ip"]
        and (host_vars["runpod_public_ip"], host_vars["runpod_public_ssh_port"]),
        "private_ip": host_vars["runpod_private_ip"]
        and (host_vars["runpod_private_ip"], host_vars["runpod_private_ssh_port"]),
    }
    chosen = choose_address(order, mappings)
    return {"ansible_host": chosen[0], "ansible_port": chosen[1]} if chosen else {}


def check_endpoint(url):
    """The key is a bearer token: refuse to send it in clear text anywhere but to this machine."""
    problem = endpoint_problem(url)
    if problem:
        raise RunPodError(problem)


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


def fetch_pods(
    endpoint, api_key, timeout=30, retries=4, sleep=time.sleep, opener=open_url, deadline=None, clock=time.monotonic
):
    """POST the pods query; retry 429/5xx and connection errors a bounded number of times, within `deadline`."""
    body = json.dumps({"query": PODS_QUERY})
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": "Bearer %s" % api_key,
    }
    attempt = 0
    while True:
        try:
            response = opener(
                endpoint,
                data=body,
                headers=headers,
                method="POST",
                timeout=timeout,
                http_agent="fleetwarden-inventory",
                follow_redirects="none",
            )
            return pods_from_response(json.loads(response.read()))
        except HTTPError as exc:
            if exc.code in (401, 403):
                raise RunPodError("RunPod rejected the API key (HTTP %s)" % exc.code) from None
            if exc.code not in RETRYABLE_STATUS or attempt >= retries:
                raise RunPodError("RunPod answered HTTP %s at %s" % (exc.code, endpoint)) from None
            delay = retry_after_seconds(exc.headers) or backoff_delay(attempt)
            reason = "HTTP %s" % exc.code
        except URLError as exc:
            if attempt >= retries:
                raise RunPodError("Cannot reach RunPod at %s: %s" % (endpoint, exc.reason)) from None
            delay = backoff_delay(attempt)
            reason = str(exc.reason)
        except ValueError as exc:
            raise RunPodError("RunPod answered with invalid JSON: %s" % exc) from None
        if deadline is not None and clock() + delay >= deadline:
            raise RunPodError("RunPod: total_timeout spent while retrying (last answer: %s)" % reason)
        sleep(delay)
        attempt += 1


# ---------------------------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------------------------


class InventoryModule(FleetInventoryMixin, BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "fleetwarden.fleet.runpod"
    CONFIG_SUFFIXES = ("runpod.yml", "runpod.yaml")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path)
        config = self._read_config_data(path)
        try:
            self._refuse_unknown_options(config)
            check_endpoint(self.get_option("endpoint"))
            validate_addresses(self.get_option("addresses"), ADDRESS_CHOICES)
            validate_filters(self.get_option("filters"))
        except (InventoryError, RunPodError) as exc:
            raise AnsibleParserError("%s: %s" % (self.NAME, exc)) from None
        entry, cache_needs_update = self._cached_result(path, cache)
        if entry is None:
            entry = cache_entry(self._query(), [])
        self._populate(entry["records"])
        if cache_needs_update:
            self._cache[self.get_cache_key(path)] = entry

    def _query(self):
        try:
            pods = fetch_pods(
                self.get_option("endpoint"),
                self.get_option("api_key"),
                timeout=min(self.get_option("request_timeout"), self.get_option("total_timeout")),
                retries=self.get_option("retries"),
                deadline=time.monotonic() + self.get_option("total_timeout"),
            )
        except RunPodError as exc:
            raise AnsibleParserError("%s: %s" % (self.NAME, exc)) from None
        return host_records(pods)

    def _populate(self, records):
        inventory = self.inventory
        order = self.get_option("addresses")
        filters = self.get_option("filters")
        inventory.add_group("runpod")
        inventory.add_group("stopped")
        for hostname, host_vars in records:
            if filters and not matches_filters(host_vars, filters):
                continue
            status = host_vars["runpod_status"]
            host_vars = make_unsafe_vars(dict(host_vars, **connection_vars(host_vars, order)), wrap_var)
            inventory.add_host(hostname, group="runpod")
            for key, value in host_vars.items():
                inventory.set_variable(hostname, key, value)
            inventory.add_child(inventory.add_group(group_name("runpod_status", status)), hostname)
            if status not in ("running", "starting"):
                inventory.add_child("stopped", hostname)
            elif status == "starting":
                self._warn("pod %s is starting (no runtime yet); no ansible_host until it runs" % hostname)
            elif "ansible_host" not in host_vars:
                self._warn("pod %s runs but maps no TCP port 22 of the chosen addresses; no ansible_host" % hostname)
            if host_vars.get("runpod_gpu_type"):
                inventory.add_child(
                    inventory.add_group(group_name("runpod_gpu", host_vars["runpod_gpu_type"])), hostname
                )
            self._add_constructed(hostname, host_vars)
