# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: gcp_tpu
short_description: Cloud TPU VMs as inventory hosts, one per worker
description:
  - Lists Cloud TPU v2 nodes of the configured projects across all zones (C(locations/-)) and makes one
    host per TPU VM worker, so a multi-host slice such as v4-16 gives one host per worker.
  - When the all-zones listing is refused (HTTP 400) or a backend fails (5xx), lists the zones one by one
    instead. Never after a 429, when the quota is spent; that request is retried with backoff instead.
  - Follows pagination and warns about unreachable locations, whose nodes are then missing.
  - Lists the queued resources of the same projects and zones (O(queued_resources)).
  - Uses google-api-python-client with its bundled static discovery document C(tpu v2).
  - The config file name must end in C(gcp_tpu.yml) or C(gcp_tpu.yaml), as with aws_ec2, for example
    C(inventory/prod/fleet.gcp_tpu.yml) or C(inventory/sample/gcp_tpu.yml).
  - The inventory hostname follows O(hostnames). A multi-host slice names its workers C(<node>-w<index>)
    (then qualified, for example C(train-v4-16-b-w1.us-central2-b.ml-prod)) whatever its state, with the worker
    count from C(networkEndpoints), or from C(acceleratorType) / C(acceleratorConfig) while it has none.
  - "Host vars: C(tpu_node_name), C(tpu_project), C(tpu_zone), C(tpu_worker_index), C(tpu_worker_count),
    C(tpu_accelerator_type), C(tpu_state), C(tpu_health), C(tpu_provisioning_model) (V(SPOT), V(PREEMPTIBLE),
    V(RESERVED) or V(STANDARD)), C(tpu_labels), C(tpu_internal_ip), C(tpu_external_ip), C(tpu_runtime_version);
    for a node that a queued resource owns also C(tpu_queued_resource) and C(tpu_queued_resource_state)."
  - "Groups: C(gcp_tpu) (every host), C(tpu_state_<state>), C(tpu_accelerator_<type>), C(tpu_zone_<zone>),
    C(tpu_queued_state_<state>), C(tpu_slice_<node>) for each multi-host slice (its node name qualified as
    its host names are), and C(tpu_queued_waiting) for nodes whose queued resource still waits for capacity;
    all lower case with C(_) for other characters, for example C(tpu_state_preempted)."
author: fleetwarden maintainers (@fleetwarden)
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
  queued_resources:
    description:
      - List queued resources too. Their state becomes a host var of the nodes they own, and nodes they
        still wait for become hosts without a C(tpu_state), in group C(tpu_queued_waiting).
    type: bool
    default: true
  slice_groups:
    description: Put the workers of each multi-host slice in a group C(tpu_slice_<node>) of their own.
    type: bool
    default: true
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
hostnames: [name_zone]
addresses: [internal_ip]
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

import concurrent.futures  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    RETRYABLE_EXCEPTIONS,
    GcpError,
    HttpError,
    TimeBudgetSpent,
    build_service,
    describe_http_error,
    iterate_pages,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._tpu import location_path, node_path  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._gcp_inventory import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    FALLBACK_HOSTNAME,
    GcpInventoryMixin,
    describe_project_failure,
    is_credential_error,
    project_failure,
    short_name,
    zone_failure,
)
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._inventory import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    NAME_SCHEMES,
    group_name,
    pick_hostname,
)
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._tpu_inventory import WAITING_STATES, shape  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

API = "tpu.googleapis.com"
VIEWER_ROLE = "roles/tpu.viewer"
PAGE_SIZE = 1000
ALL_ZONES = "-"
# ---------------------------------------------------------------------------------------------
# Paging: module-level functions, each with its own unit test (shaping is in plugin_utils/_tpu_inventory.py)
# ---------------------------------------------------------------------------------------------


def node_pages(service, execute, project, zone):
    """Every ListNodesResponse page of one project and one zone (`-` for all zones)."""
    nodes = service.projects().locations().nodes()
    first = nodes.list(parent=location_path(project, zone), pageSize=PAGE_SIZE)
    return iterate_pages(first, nodes.list_next, execute)


def queued_resource_pages(service, execute, project, zone):
    """Every ListQueuedResourcesResponse page of one project and one zone (`-` for all zones)."""
    queued = service.projects().locations().queuedResources()
    first = queued.list(parent=location_path(project, zone), pageSize=PAGE_SIZE)
    return iterate_pages(first, queued.list_next, execute)


def zone_pages(service, execute, project):
    """Every ListLocationsResponse page of one project: the zones to list one by one."""
    locations = service.projects().locations()
    first = locations.list(name="projects/%s" % project, pageSize=PAGE_SIZE)
    return iterate_pages(first, locations.list_next, execute)


def collect_nodes(pages, key="nodes"):
    """(items, unreachable zones) from list pages; unreachable are short zone names."""
    items = []
    unreachable = []
    for page in pages:
        items.extend(page.get(key) or [])
        unreachable.extend(short_name(location) for location in page.get("unreachable") or [])
    return items, sorted(set(unreachable))


def collect_zones(pages):
    """Zone IDs from ListLocationsResponse pages."""
    return sorted(location["locationId"] for page in pages for location in page.get("locations") or [])


def falls_back_to_zones(exc):
    """Whether an all-zones failure is worth listing zone by zone.

    Only when the wildcard itself is refused (400) or a backend fails (5xx). Never after a 429: the
    quota is spent, and one request per zone would spend it again many times over. Never for 401,
    403 or 404, which every zone would answer alike.
    """
    status = exc.resp.status
    return status == 400 or 500 <= status <= 599


# ---------------------------------------------------------------------------------------------
# Listing: runs in worker threads, so failures are returned, not printed
# ---------------------------------------------------------------------------------------------

# A sum, not *unpacking: ansible-test's pylint takes a starred element for a non-exception.
LOSES_A_PROJECT = (HttpError, TimeBudgetSpent) + RETRYABLE_EXCEPTIONS  # noqa: RUF005


def lost_project(exc, project, action):
    if is_credential_error(exc):
        raise GcpError(describe_http_error(exc, API, project, action)) from None
    return project_failure(project, describe_project_failure(exc, API, project, action, VIEWER_ROLE))


def list_all_zones(service, caller, project):
    """(nodes, failures) through `locations/-`; nodes is None when listing zone by zone may still work."""
    action = "listing TPU nodes in all zones"
    try:
        nodes, unreachable = collect_nodes(node_pages(service, caller.execute, project, ALL_ZONES))
    except HttpError as exc:
        if not is_credential_error(exc) and falls_back_to_zones(exc):
            notice = "%s; listing zone by zone instead" % describe_http_error(exc, API, project, action)
            return None, [{"scope": "notice", "project": project, "message": notice}]
        return [], [lost_project(exc, project, action)]
    except LOSES_A_PROJECT as exc:
        return [], [lost_project(exc, project, action)]
    return nodes, [zone_failure(project, unreachable, what="TPU nodes")] if unreachable else []


def list_zones(service, caller, project):
    """(zones, failures) of one project."""
    try:
        return collect_zones(zone_pages(service, caller.execute, project)), []
    except LOSES_A_PROJECT as exc:
        return [], [lost_project(exc, project, "listing TPU locations")]


def list_one_zone(service, caller, project, zone):
    """(nodes, failures) of one zone: a zone that fails is unreachable, unless the whole project is refused."""
    try:
        nodes, unreachable = collect_nodes(node_pages(service, caller.execute, project, zone))
    except HttpError as exc:
        if exc.resp.status in (401, 403, 404):
            return [], [lost_project(exc, project, "listing TPU nodes in %s" % zone)]
        return [], [zone_failure(project, [zone], "HTTP %s" % exc.resp.status, what="TPU nodes")]
    except (TimeBudgetSpent, *RETRYABLE_EXCEPTIONS) as exc:
        reason = "time budget spent" if isinstance(exc, TimeBudgetSpent) else type(exc).__name__
        return [], [zone_failure(project, [zone], reason, what="TPU nodes")]
    return nodes, [zone_failure(project, unreachable, what="TPU nodes")] if unreachable else []


def list_queued_resources(service, caller, project, zone):
    """(queued resources, failures); a failure here loses only their states, never a node.

    Queued resources is None when the all-zones listing was refused (400) and zones must be listed one by one.
    """
    try:
        queued, unreachable = collect_nodes(
            queued_resource_pages(service, caller.execute, project, zone), key="queuedResources"
        )
    except LOSES_A_PROJECT as exc:
        if is_credential_error(exc):
            raise GcpError(describe_http_error(exc, API, project, "listing TPU queued resources")) from None
        if zone == ALL_ZONES and isinstance(exc, HttpError) and exc.resp.status == 400:
            return None, []  # the wildcard is refused: list zone by zone
        reason = "HTTP %s" % exc.resp.status if isinstance(exc, HttpError) else str(exc)
        message = "project %s: queued resources in %s could not be listed (%s); their states are missing" % (
            project,
            "all zones" if zone == ALL_ZONES else zone,
            reason,
        )
        return [], [{"scope": "notice", "project": project, "message": message}]
    return queued, [zone_failure(project, unreachable, what="queued resources")] if unreachable else []


# ---------------------------------------------------------------------------------------------
# The plugin: parse() and the populate loop are GcpInventoryMixin's
# ---------------------------------------------------------------------------------------------


class InventoryModule(GcpInventoryMixin, BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "fleetwarden.fleet.gcp_tpu"
    CONFIG_SUFFIXES = ("gcp_tpu.yml", "gcp_tpu.yaml")
    ALL_GROUP = "gcp_tpu"
    DEFAULT_GROUPS = (
        ("tpu_state", "tpu_state"),
        ("tpu_accelerator_type", "tpu_accelerator"),
        ("tpu_zone", "tpu_zone"),
        ("tpu_queued_resource_state", "tpu_queued_state"),
    )
    ADDRESS_VARS = (("external_ip", "tpu_external_ip"), ("internal_ip", "tpu_internal_ip"))

    def _naming(self, host_vars):
        return (
            host_vars["tpu_node_name"],
            {"zone": host_vars["tpu_zone"], "project": host_vars["tpu_project"]},
            host_vars["tpu_labels"],
            "-w%d" % host_vars["tpu_worker_index"] if host_vars["tpu_worker_count"] > 1 else "",
        )

    def _resource(self, host_vars):
        path = node_path(host_vars["tpu_project"], host_vars["tpu_zone"], host_vars["tpu_node_name"])
        if host_vars["tpu_worker_count"] > 1:
            return "%s (worker %d)" % (path, host_vars["tpu_worker_index"])
        return path

    def _own_groups(self, host_vars, choice):
        groups = []
        if host_vars["tpu_worker_count"] > 1 and self.get_option("slice_groups"):
            scheme = choice if choice in NAME_SCHEMES else FALLBACK_HOSTNAME
            name, qualifiers = (
                host_vars["tpu_node_name"],
                {"zone": host_vars["tpu_zone"], "project": host_vars["tpu_project"]},
            )
            groups.append(group_name("tpu_slice", pick_hostname((scheme,), name, qualifiers)[0]))
        if host_vars.get("tpu_queued_resource_state") in WAITING_STATES:
            groups.append("tpu_queued_waiting")
        return groups

    def _query(self, caller):
        service = build_service("tpu", "v2", caller.make_http(), endpoint=self.get_option("endpoint"))
        projects = self.get_option("projects")
        zones = self.get_option("zones")
        want_queued = self.get_option("queued_resources")
        nodes, queued, failures = [], [], []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.get_option("concurrency"))) as pool:
            fell_back = set()
            if zones:
                targets = [(project, zone) for project in projects for zone in zones]
            else:
                targets = []
                for project, (listed, found) in zip(
                    projects, pool.map(lambda project: list_all_zones(service, caller, project), projects), strict=True
                ):
                    failures.extend(found)
                    if listed is None:
                        fell_back.add(project)
                        zone_ids, found = list_zones(service, caller, project)
                        failures.extend(found)
                        targets.extend((project, zone) for zone in zone_ids)
                    else:
                        nodes.extend(listed)
            for listed, found in pool.map(lambda target: list_one_zone(service, caller, *target), targets):
                failures.extend(found)
                nodes.extend(listed)
            if want_queued:
                lost = {failure["project"] for failure in failures if failure["scope"] == "project"}
                scopes = [(project, ALL_ZONES) for project in projects if not zones and project not in lost | fell_back]
                scopes += [(project, zone) for project, zone in targets if project not in lost]
                refused = []
                for scope, (listed, found) in zip(
                    scopes, pool.map(lambda scope: list_queued_resources(service, caller, *scope), scopes), strict=True
                ):
                    failures.extend(found)
                    if listed is None:
                        refused.append(scope[0])
                    else:
                        queued.extend(listed)
                zone_scopes = []
                for project in refused:
                    zone_ids, found = list_zones(service, caller, project)
                    failures.extend(dict(failure, scope="notice") for failure in found)  # nodes are listed already
                    zone_scopes.extend((project, zone) for zone in zone_ids)
                for listed, found in pool.map(
                    lambda scope: list_queued_resources(service, caller, *scope), zone_scopes
                ):
                    failures.extend(found)
                    queued.extend(listed)
        return shape(nodes, queued), one_per_project(failures)


def one_per_project(failures):
    """Failures in order, with one project failure per project (each zone of a refused project says the same)."""
    seen = set()
    kept = []
    for failure in failures:
        if failure["scope"] == "project":
            if failure["project"] in seen:
                continue
            seen.add(failure["project"])
        kept.append(failure)
    return kept
