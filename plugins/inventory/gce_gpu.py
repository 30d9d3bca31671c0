# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: gce_gpu
short_description: Compute Engine VMs with GPUs as inventory hosts
description:
  - Lists Compute Engine instances of the configured projects with one C(instances.aggregatedList) call chain
    per project (all zones at once), following C(aggregatedList_next), and keeps those with C(guestAccelerators).
  - Uses google-api-python-client with its bundled static discovery document C(compute v1).
  - Warns about unreachable zones, whose instances are then missing.
  - The config file name must end in C(gce_gpu.yml) or C(gce_gpu.yaml), as with aws_ec2, for example
    C(inventory/prod/fleet.gce_gpu.yml) or C(inventory/sample/gce_gpu.yml).
  - The inventory hostname follows O(hostnames); by default C(<instance>.<zone>.<project>).
  - A project that cannot be listed is left out with a warning (see O(strict_permissions)).
  - "Host vars: C(gce_name), C(gce_project), C(gce_zone), C(gce_machine_type), C(gce_status),
    C(gce_accelerator_type), C(gce_accelerator_count) (the sum over all attached accelerators),
    C(gce_provisioning_model) (V(STANDARD), V(SPOT), V(FLEX_START), ...), C(gce_labels), C(gce_internal_ip),
    C(gce_external_ip)."
  - "Groups: C(gce_gpu) (every host), C(gce_status_<status>), C(gce_accelerator_<type>), C(gce_zone_<zone>),
    for example C(gce_status_running), C(gce_accelerator_nvidia_h100_80gb)."
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
    choices: [fleetwarden.fleet.gce_gpu]
  projects:
    description: Project IDs to list instances in.
    required: true
    type: list
    elements: str
  api_filter:
    description:
      - A Compute Engine list filter sent with the request, for example C(status = RUNNING) or
        C(labels.fleet = ray). The server applies it, so less data comes back.
    type: str
  accelerators_only:
    description:
      - Keep only instances with C(guestAccelerators). Set V(false) to take every instance that
        O(api_filter) and O(filters) let through.
    type: bool
    default: true
  endpoint:
    description:
      - Base URL of the Compute Engine API including its version path, for a private endpoint or a local
        emulator, for example C(https://compute.googleapis.com/compute/v1/).
        Empty means the discovery document's.
    type: str
"""

EXAMPLES = r"""
# inventory/prod.gce_gpu.yml
plugin: fleetwarden.fleet.gce_gpu
projects: [ml-prod]
api_filter: status = RUNNING
hostnames: [name_zone]
addresses: [internal_ip]
keyed_groups:
  - key: gce_labels.fleet | default('none')
    prefix: fleet
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
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._gcp_inventory import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    GcpInventoryMixin,
    describe_project_failure,
    is_credential_error,
    project_failure,
    short_name,
    zone_failure,
)

API = "compute.googleapis.com"
VIEWER_ROLE = "roles/compute.viewer"
MAX_RESULTS = 500


# ---------------------------------------------------------------------------------------------
# Paging and shaping: module-level functions, each with its own unit test
# ---------------------------------------------------------------------------------------------


def aggregated_pages(service, execute, project, api_filter=None):
    """Every InstanceAggregatedList page of one project."""
    instances = service.instances()
    first = instances.aggregatedList(project=project, maxResults=MAX_RESULTS, filter=api_filter or None)
    return iterate_pages(first, instances.aggregatedList_next, execute)


def collect_instances(pages):
    """(instances, unreachable zones) from aggregatedList pages."""
    instances = []
    unreachable = []
    for page in pages:
        for scope, scoped in (page.get("items") or {}).items():
            instances.extend(scoped.get("instances") or [])
            if (scoped.get("warning") or {}).get("code") == "UNREACHABLE":
                unreachable.append(short_name(scope))
        unreachable.extend(short_name(scope) for scope in page.get("unreachables") or [])
    return instances, sorted(set(unreachable))


def provisioning_model(scheduling):
    """The scheduling.provisioningModel, or SPOT for a legacy preemptible VM, else STANDARD."""
    scheduling = scheduling or {}
    if scheduling.get("provisioningModel"):
        return scheduling["provisioningModel"]
    return "SPOT" if scheduling.get("preemptible") else "STANDARD"


def addresses(network_interfaces):
    """(internal IP of the first interface, first external NAT IP of any interface)."""
    internal = (network_interfaces[0].get("networkIP") if network_interfaces else None) or None
    external = None
    for interface in network_interfaces:
        for access in interface.get("accessConfigs") or []:
            if access.get("natIP"):
                external = access["natIP"]
                break
        if external:
            break
    return internal, external


def instance_record(instance):
    """The host var record of one instance."""
    accelerators = instance.get("guestAccelerators") or []
    internal, external = addresses(instance.get("networkInterfaces") or [])
    self_link = instance.get("selfLink") or ""
    project = self_link.split("/projects/", 1)[1].split("/", 1)[0] if "/projects/" in self_link else None
    return {
        "gce_name": instance["name"],
        "gce_project": project,
        "gce_zone": short_name(instance.get("zone")),
        "gce_machine_type": short_name(instance.get("machineType")),
        "gce_status": instance.get("status"),
        "gce_accelerator_type": short_name(accelerators[0].get("acceleratorType")) if accelerators else None,
        "gce_accelerator_count": sum(int(item.get("acceleratorCount") or 0) for item in accelerators),
        "gce_provisioning_model": provisioning_model(instance.get("scheduling")),
        "gce_labels": instance.get("labels") or {},
        "gce_internal_ip": internal,
        "gce_external_ip": external,
    }


def shape(instances, accelerators_only=True):
    """Records for the instances to keep, sorted so that output is stable across runs."""
    records = [
        instance_record(instance)
        for instance in instances
        if instance.get("guestAccelerators") or not accelerators_only
    ]
    records.sort(key=lambda host: (host["gce_project"] or "", host["gce_zone"] or "", host["gce_name"]))
    return records


def list_project(service, caller, project, api_filter=None):
    """(instances, failures) of one project; runs in a worker thread, so it does not print."""
    action = "listing instances"
    try:
        instances, unreachable = collect_instances(aggregated_pages(service, caller.execute, project, api_filter))
    except (HttpError, TimeBudgetSpent, *RETRYABLE_EXCEPTIONS) as exc:
        if is_credential_error(exc):
            raise GcpError(describe_http_error(exc, API, project, action)) from None
        return [], [project_failure(project, describe_project_failure(exc, API, project, action, VIEWER_ROLE))]
    return instances, [zone_failure(project, unreachable, what="instances", word="zone(s)")] if unreachable else []


# ---------------------------------------------------------------------------------------------
# The plugin: parse() and the populate loop are GcpInventoryMixin's
# ---------------------------------------------------------------------------------------------


class InventoryModule(GcpInventoryMixin, BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "fleetwarden.fleet.gce_gpu"
    CONFIG_SUFFIXES = ("gce_gpu.yml", "gce_gpu.yaml")
    ALL_GROUP = "gce_gpu"
    DEFAULT_GROUPS = (
        ("gce_status", "gce_status"),
        ("gce_accelerator_type", "gce_accelerator"),
        ("gce_zone", "gce_zone"),
    )
    ADDRESS_VARS = (("external_ip", "gce_external_ip"), ("internal_ip", "gce_internal_ip"))

    def _naming(self, host_vars):
        return (
            host_vars["gce_name"],
            {"zone": host_vars["gce_zone"], "project": host_vars["gce_project"]},
            host_vars["gce_labels"],
            "",
        )

    def _resource(self, host_vars):
        return "projects/%s/zones/%s/instances/%s" % (
            host_vars["gce_project"],
            host_vars["gce_zone"],
            host_vars["gce_name"],
        )

    def _query(self, caller):
        service = build_service("compute", "v1", caller.make_http(), endpoint=self.get_option("endpoint"))
        api_filter = self.get_option("api_filter")
        instances, failures = [], []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.get_option("concurrency"))) as pool:
            for listed, found in pool.map(
                lambda project: list_project(service, caller, project, api_filter), self.get_option("projects")
            ):
                failures.extend(found)
                instances.extend(listed)
        return shape(instances, self.get_option("accelerators_only")), failures
