# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import (
    GOOGLE_IMPORT_ERROR,
    HAS_GOOGLE_LIBRARIES,
    GcpError,
    GcpInventoryMixin,
    HttpError,
    build_service,
    describe_http_error,
    iterate_pages,
    make_unsafe_vars,
    paused_gc,
    short_name,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._tpu import (
    location_path,
    parse_node_name,
    provisioning_model,
)

DOCUMENTATION = r"""
name: gcp_tpu
short_description: Cloud TPU VMs as inventory hosts, one per worker
description:
  - Lists Cloud TPU v2 nodes of the configured projects across all zones (C(locations/-)) and makes one
    host per TPU VM worker, so a multi-host slice such as v4-16 gives one host per C(networkEndpoints) entry.
  - When the all-zones listing fails (other than for permissions), lists the zones one by one instead.
  - Follows pagination and warns about unreachable locations, whose nodes are then missing.
  - Uses google-api-python-client with its bundled static discovery document C(tpu v2).
  - The config file name must end in C(gcp_tpu.yml) or C(gcp_tpu.yaml), as with aws_ec2, for example
    C(inventory/prod/fleet.gcp_tpu.yml) or C(inventory/sample/gcp_tpu.yml).
  - The inventory hostname is the node name for a single-host node and C(<node>-w<index>) for each worker of a
    multi-host slice. A node with no endpoints yet (creating, preempted) still gets one host, worker 0.
  - "Host vars: C(tpu_node_name), C(tpu_project), C(tpu_zone), C(tpu_worker_index), C(tpu_worker_count),
    C(tpu_accelerator_type), C(tpu_state), C(tpu_health), C(tpu_provisioning_model) (V(SPOT), V(PREEMPTIBLE),
    V(RESERVED) or V(STANDARD)), C(tpu_labels), C(tpu_internal_ip), C(tpu_external_ip), C(tpu_runtime_version)."
  - "Groups: C(gcp_tpu) (every host), C(tpu_state_<state>), C(tpu_accelerator_<type>), C(tpu_zone_<zone>),
    all lower case with C(_) for other characters, for example C(tpu_state_preempted), C(tpu_accelerator_v4_16)."
author: fleetwarden maintainers
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - fleetwarden.fleet.gcp.inventory
options:
  plugin:
    description: The name of this plugin.
    required: true
    type: str
    choices: [fleetwarden.fleet.gcp_tpu]
  projects:
    description: Project IDs to list TPU nodes in.
    required: true
    type: list
    elements: str
  zones:
    description:
      - Zones to list, one call each. Empty means every zone at once through C(locations/-).
    type: list
    elements: str
    default: []
  endpoint:
    description:
      - Base URL of the Cloud TPU API, for a private endpoint or a local emulator.
        Empty means the discovery document's C(https://tpu.googleapis.com/).
    type: str
"""

EXAMPLES = r"""
# inventory/prod.gcp_tpu.yml
plugin: fleetwarden.fleet.gcp_tpu
projects: [ml-prod]
hostnames: [internal_ip]
filters:
  tpu_labels.fleet: ray
keyed_groups:
  - key: tpu_labels.role | default('none')
    prefix: role
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/fleetwarden/inventory
cache_timeout: 300
"""

API = "tpu.googleapis.com"
PAGE_SIZE = 1000
ALL_ZONES = "-"


# ---------------------------------------------------------------------------------------------
# Paging and shaping: module-level functions, each with its own unit test
# ---------------------------------------------------------------------------------------------


def node_pages(service, execute, project, zone):
    """Every ListNodesResponse page of one project and one zone (`-` for all zones)."""
    nodes = service.projects().locations().nodes()
    first = nodes.list(parent=location_path(project, zone), pageSize=PAGE_SIZE)
    return iterate_pages(first, nodes.list_next, execute)


def zone_pages(service, execute, project):
    """Every ListLocationsResponse page of one project: the zones to list one by one."""
    locations = service.projects().locations()
    first = locations.list(name="projects/%s" % project, pageSize=PAGE_SIZE)
    return iterate_pages(first, locations.list_next, execute)


def collect_nodes(pages):
    """(nodes, unreachable zones) from ListNodesResponse pages; unreachable are short zone names."""
    nodes = []
    unreachable = []
    for page in pages:
        nodes.extend(page.get("nodes") or [])
        unreachable.extend(short_name(location) for location in page.get("unreachable") or [])
    return nodes, sorted(set(unreachable))


def collect_zones(pages):
    """Zone IDs from ListLocationsResponse pages."""
    return sorted(location["locationId"] for page in pages for location in page.get("locations") or [])


def falls_back_to_zones(exc):
    """Whether an all-zones failure is worth listing zone by zone; auth and permission errors are not."""
    return exc.resp.status not in (401, 403)


def host_records(node):
    """One [inventory_hostname, host_vars] record per TPU VM worker of a node."""
    project, zone, name = parse_node_name(node["name"])
    endpoints = node.get("networkEndpoints") or []
    base = {
        "tpu_node_name": name,
        "tpu_project": project,
        "tpu_zone": zone,
        "tpu_worker_count": len(endpoints),
        "tpu_accelerator_type": node.get("acceleratorType"),
        "tpu_state": node.get("state"),
        "tpu_health": node.get("health"),
        "tpu_provisioning_model": provisioning_model(node.get("schedulingConfig")),
        "tpu_labels": node.get("labels") or {},
        "tpu_runtime_version": node.get("runtimeVersion"),
    }
    records = []
    for index, endpoint in enumerate(endpoints or [{}]):
        host_vars = dict(base)
        host_vars["tpu_worker_index"] = index
        host_vars["tpu_internal_ip"] = endpoint.get("ipAddress")
        host_vars["tpu_external_ip"] = (endpoint.get("accessConfig") or {}).get("externalIp")
        hostname = "%s-w%d" % (name, index) if len(endpoints) > 1 else name
        records.append([hostname, host_vars])
    return records


def shape(nodes):
    """Records for every worker of every node, sorted so that output is stable across runs."""
    records = [record for node in nodes for record in host_records(node)]
    records.sort(key=lambda record: (record[1]["tpu_project"], record[1]["tpu_zone"], record[0]))
    return records


# ---------------------------------------------------------------------------------------------
# Listing: runs in worker threads, so warnings are returned, not printed
# ---------------------------------------------------------------------------------------------


def unreachable_warning(project, zones, reason=None):
    return "project %s: location(s) %s unreachable%s; their TPU nodes are missing from the inventory" % (
        project,
        ", ".join(zones),
        " (%s)" % reason if reason else "",
    )


def list_all_zones(service, caller, project):
    """(nodes, warnings) through `locations/-`; nodes is None when listing zone by zone may still work."""
    try:
        nodes, unreachable = collect_nodes(node_pages(service, caller.execute, project, ALL_ZONES))
    except HttpError as exc:
        reason = describe_http_error(exc, API, project, "listing TPU nodes in all zones")
        if not falls_back_to_zones(exc):
            raise GcpError(reason) from None
        return None, ["%s; listing zone by zone instead" % reason]
    return nodes, [unreachable_warning(project, unreachable)] if unreachable else []


def list_zones(service, caller, project):
    try:
        return collect_zones(zone_pages(service, caller.execute, project))
    except HttpError as exc:
        raise GcpError(describe_http_error(exc, API, project, "listing TPU locations")) from None


def list_one_zone(service, caller, project, zone):
    """(nodes, warnings) of one zone; a zone that fails for other reasons than auth is unreachable."""
    try:
        nodes, unreachable = collect_nodes(node_pages(service, caller.execute, project, zone))
    except HttpError as exc:
        if not falls_back_to_zones(exc):
            raise GcpError(describe_http_error(exc, API, project, "listing TPU nodes in %s" % zone)) from None
        return [], [unreachable_warning(project, [zone], "HTTP %s" % exc.resp.status)]
    return nodes, [unreachable_warning(project, unreachable)] if unreachable else []


# ---------------------------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------------------------


class InventoryModule(GcpInventoryMixin, BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "fleetwarden.fleet.gcp_tpu"
    ALL_GROUP = "gcp_tpu"
    DEFAULT_GROUPS = (
        ("tpu_state", "tpu_state"),
        ("tpu_accelerator_type", "tpu_accelerator"),
        ("tpu_zone", "tpu_zone"),
    )
    HOSTNAME_VARS = (("external_ip", "tpu_external_ip"), ("internal_ip", "tpu_internal_ip"))

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("gcp_tpu.yml", "gcp_tpu.yaml"))

    def make_unsafe(self, value):
        return make_unsafe_vars(value, wrap_var)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path)
        if not HAS_GOOGLE_LIBRARIES:
            raise AnsibleParserError("%s needs google-api-python-client: %s" % (self.NAME, GOOGLE_IMPORT_ERROR))
        try:
            self._check_config(self._read_config_data(path))
            with paused_gc():
                records, cache_needs_update = self._cached_records(path, cache)
                if records is None:
                    records = shape(self._query())
                self._populate(records)
        except GcpError as exc:
            raise AnsibleParserError(str(exc)) from None
        if cache_needs_update:
            self._cache[self.get_cache_key(path)] = records

    def _query(self):
        caller = self._api_caller(self._credentials())
        service = build_service("tpu", "v2", caller.make_http(), endpoint=self.get_option("endpoint"))
        projects = self.get_option("projects")
        zones = self.get_option("zones")
        nodes = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.get_option("concurrency"))) as pool:
            if zones:
                targets = [(project, zone) for project in projects for zone in zones]
            else:
                targets = []
                for project, (listed, warnings) in zip(
                    projects, pool.map(lambda project: list_all_zones(service, caller, project), projects), strict=True
                ):
                    self._warn(warnings)
                    if listed is None:
                        targets.extend((project, zone) for zone in list_zones(service, caller, project))
                    else:
                        nodes.extend(listed)
            for listed, warnings in pool.map(lambda target: list_one_zone(service, caller, *target), targets):
                self._warn(warnings)
                nodes.extend(listed)
        return nodes

    def _warn(self, warnings):
        for warning in warnings:
            self.display.warning("%s: %s" % (self.NAME, warning))
