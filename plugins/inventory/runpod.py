# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import random
import time
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from ansible.errors import AnsibleParserError
from ansible.module_utils.urls import open_url
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

DOCUMENTATION = r"""
name: runpod
short_description: RunPod pods as inventory hosts
description:
  - Lists the pods of one RunPod account with a single GraphQL query over HTTPS. No RunPod SDK is needed.
  - C(ansible_host) and C(ansible_port) come from the runtime port mapping whose private port is 22 over TCP;
    a public IP is preferred over a private one.
  - A pod that is not running (its desired status is not V(RUNNING), or it has no runtime yet) goes into the
    C(stopped) group and gets no connection vars.
  - The config file name must end in C(runpod.yml) or C(runpod.yaml), as with aws_ec2, for example
    C(inventory/prod/fleet.runpod.yml) or C(inventory/sample/runpod.yml).
  - The inventory hostname is the pod name; pods that share a name are told apart as C(<name>-<pod id>).
  - "Host vars: C(runpod_id), C(runpod_name), C(runpod_desired_status), C(runpod_gpu_type), C(runpod_gpu_count),
    C(runpod_image), C(runpod_cost_per_hr), C(runpod_uptime_seconds)."
  - "Groups: C(runpod) (every pod), C(stopped), C(runpod_gpu_<type>), for example C(runpod_gpu_a100_80gb_pcie)."
  - The API key travels only in the C(Authorization) header. It never becomes a host var and is never printed.
author: fleetwarden maintainers
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
"""

EXAMPLES = r"""
# inventory/prod.runpod.yml; the key comes from RUNPOD_API_KEY
plugin: fleetwarden.fleet.runpod
compose:
  ansible_user: "'root'"
keyed_groups:
  - key: runpod_gpu_count
    prefix: gpus
"""

PODS_QUERY = (
    "query Pods { myself { pods { id name desiredStatus imageName gpuCount costPerHr "
    "machine { gpuDisplayName } "
    "runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } } } } }"
)
RETRYABLE_STATUS = frozenset((429, 500, 502, 503, 504))
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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


def is_running(pod):
    return pod.get("desiredStatus") == "RUNNING" and bool(pod.get("runtime"))


def ssh_address(ports):
    """(ip, port) of the mapping for private port 22 over TCP, public IP first; None when absent."""
    candidates = [
        port
        for port in ports or []
        if port.get("privatePort") == 22 and (port.get("type") or "").lower() == "tcp" and port.get("ip")
    ]
    if not candidates:
        return None
    best = sorted(candidates, key=lambda port: not port.get("isIpPublic"))[0]
    return best["ip"], best.get("publicPort") or 22


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


def group_name(prefix, value):
    return "%s_%s" % (prefix, "".join(char if char.isalnum() else "_" for char in str(value).lower()))


def host_records(pods):
    """[inventory_hostname, host_vars, connection_vars, running] per pod, sorted by hostname.

    connection_vars is empty for a pod that is not running, or that maps no SSH port.
    """
    hostnames = assign_hostnames(pods)
    records = []
    for pod in pods:
        runtime = pod.get("runtime") or {}
        host_vars = {
            "runpod_id": pod["id"],
            "runpod_name": pod.get("name"),
            "runpod_desired_status": pod.get("desiredStatus"),
            "runpod_gpu_type": (pod.get("machine") or {}).get("gpuDisplayName"),
            "runpod_gpu_count": pod.get("gpuCount"),
            "runpod_image": pod.get("imageName"),
            "runpod_cost_per_hr": pod.get("costPerHr"),
            "runpod_uptime_seconds": runtime.get("uptimeInSeconds"),
        }
        connection = {}
        running = is_running(pod)
        if running:
            address = ssh_address(runtime.get("ports"))
            if address:
                connection = {"ansible_host": address[0], "ansible_port": address[1]}
        records.append([hostnames[pod["id"]], host_vars, connection, running])
    records.sort(key=lambda record: record[0])
    return records


def check_endpoint(url):
    """The key is a bearer token: refuse to send it in clear text anywhere but to this machine."""
    parts = urlsplit(url or "")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return
    raise RunPodError("endpoint must be an https:// URL (plain http only to a loopback address), got %r" % url)


def backoff_delay(attempt, base=1.0, cap=16.0, rand=random.random):
    ceiling = min(cap, base * (2**attempt))
    return ceiling / 2 + rand() * ceiling / 2


def make_unsafe(value):
    """Mark API strings that hold template syntax as unsafe; pod names and images are user-controlled."""
    if isinstance(value, str):
        return wrap_var(value) if "{" in value else value
    if isinstance(value, dict):
        return {key: make_unsafe(item) for key, item in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


def fetch_pods(endpoint, api_key, timeout=30, retries=4, sleep=time.sleep, opener=open_url):
    """POST the pods query; retry 429/5xx and connection errors a bounded number of times."""
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
        except URLError as exc:
            if attempt >= retries:
                raise RunPodError("Cannot reach RunPod at %s: %s" % (endpoint, exc.reason)) from None
        except ValueError as exc:
            raise RunPodError("RunPod answered with invalid JSON: %s" % exc) from None
        sleep(backoff_delay(attempt))
        attempt += 1


# ---------------------------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------------------------


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "fleetwarden.fleet.runpod"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("runpod.yml", "runpod.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path)
        config = self._read_config_data(path)
        unknown = sorted(key for key in config if key not in self._options)
        if unknown:
            raise AnsibleParserError(
                "%s: unknown option(s) %s; see `ansible-doc -t inventory %s`"
                % (self.NAME, ", ".join(unknown), self.NAME)
            )
        try:
            check_endpoint(self.get_option("endpoint"))
        except RunPodError as exc:
            raise AnsibleParserError("%s: %s" % (self.NAME, exc)) from None
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache")
        records = None
        cache_needs_update = use_cache and not cache
        if use_cache and cache:
            try:
                records = self._cache[cache_key]
            except KeyError:
                cache_needs_update = True
        if records is None:
            records = self._query()
        self._populate(records)
        if cache_needs_update:
            self._cache[cache_key] = records

    def _query(self):
        try:
            pods = fetch_pods(
                self.get_option("endpoint"),
                self.get_option("api_key"),
                timeout=self.get_option("request_timeout"),
                retries=self.get_option("retries"),
            )
        except RunPodError as exc:
            raise AnsibleParserError("%s: %s" % (self.NAME, exc)) from None
        return host_records(pods)

    def _populate(self, records):
        strict = self.get_option("strict")
        inventory = self.inventory
        inventory.add_group("runpod")
        inventory.add_group("stopped")
        for hostname, host_vars, connection, running in records:
            host_vars = make_unsafe(dict(host_vars, **connection))
            inventory.add_host(hostname, group="runpod")
            for key, value in host_vars.items():
                inventory.set_variable(hostname, key, value)
            if not running:
                inventory.add_child("stopped", hostname)
            elif not connection:
                self.display.warning("%s: pod %s runs but maps no TCP port 22; no ansible_host" % (self.NAME, hostname))
            if host_vars.get("runpod_gpu_type"):
                group = group_name("runpod_gpu", host_vars["runpod_gpu_type"])
                inventory.add_group(group)
                inventory.add_child(group, hostname)
            if self.get_option("use_extra_vars"):
                host_vars = dict(host_vars, **self._vars)
            self._set_composite_vars(self.get_option("compose"), host_vars, hostname, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), host_vars, hostname, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), host_vars, hostname, strict=strict)
