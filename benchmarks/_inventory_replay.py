"""Shared pieces of the inventory benchmarks: generated API pages, and timing.

The pages are shaped like real Cloud TPU v2 `nodes.list` and Compute Engine `instances.aggregatedList`
answers (the same fields as the recorded fixtures in tests/fixtures/gcp), generated so that any size
can be served. fleetwarden_testing.replay.ReplayServer (the one the inventory tests use too) answers them from
memory by (path, pageToken), over HTTP/1.1 keep-alive. Plugins are loaded through ansible's own plugin
loader, as ansible-inventory does.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

from fleetwarden_testing.replay import ReplayServer, paged_routes

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "fw-bench"
TOKEN = "bench-token"  # noqa: S105 - the loopback server's own fake bearer token
COMPUTE = "https://www.googleapis.com/compute/v1/projects/" + PROJECT


def zones(count):
    regions = ["us-central1", "us-central2", "us-east1", "us-east4", "us-west1", "us-west4", "europe-west4"]
    return [f"{regions[index % len(regions)]}-{'abcdf'[index // len(regions) % 5]}" for index in range(count)]


def chunk(items, size):
    return [items[start : start + size] for start in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------
# Generated pages
# ---------------------------------------------------------------------------------------------


def tpu_node(index, zone, rng):
    multi_host = index % 10 == 0  # every tenth node is a v4-16 slice with two workers
    state = rng.choices(["READY", "PREEMPTED", "CREATING", "TERMINATED"], weights=[85, 5, 5, 5])[0]
    region = zone.rsplit("-", 1)[0]
    endpoints = [] if state == "CREATING" else [
        {
            "ipAddress": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
            "port": 8470,
            "accessConfig": {"externalIp": f"34.{worker}.{index // 256 % 256}.{index % 256}"},
        }
        for worker in range(2 if multi_host else 1)
    ]
    node = {
        "name": f"projects/{PROJECT}/locations/{zone}/nodes/tpu-{index:05d}",
        "acceleratorType": "v4-16" if multi_host else "v4-8",
        "state": state,
        "runtimeVersion": "tpu-ubuntu2204-base",
        "cidrBlock": "10.130.0.0/20",
        "serviceAccount": {"email": "412345678901-compute@developer.gserviceaccount.com", "scope": ["cloud-platform"]},
        "createTime": "2025-08-11T18:02:11.532790562Z",
        "labels": {"fleet": "ray", "team": rng.choice(["ml", "eval", "serving"])},
        "metadata": {"enable-oslogin": "TRUE"},
        "id": str(5432109876543210000 + index),
        "networkConfig": {
            "network": f"projects/{PROJECT}/global/networks/default",
            "subnetwork": f"projects/{PROJECT}/regions/{region}/subnetworks/default",
            "enableExternalIps": True,
        },
        "apiVersion": "V2",
        "acceleratorConfig": {"type": "V4", "topology": "2x2x2" if multi_host else "2x2x1"},
        "schedulingConfig": {"spot": True} if index % 3 else {},
        "tags": ["ray-worker"],
    }
    if endpoints:
        node["networkEndpoints"] = endpoints
    if state == "READY":
        node["health"] = "HEALTHY"
    return node


def tpu_pages(count=5000, zone_count=20, page_size=500, seed=0):
    """ListNodesResponse pages over `count` nodes spread evenly across `zone_count` zones."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    names = zones(zone_count)
    nodes = [tpu_node(index, names[index % zone_count], rng) for index in range(count)]
    pages = [{"nodes": part} for part in chunk(nodes, page_size)]
    for number, page in enumerate(pages[:-1], 1):
        page["nextPageToken"] = f"page-{number + 1}"
    return pages


def gce_instance(index, zone, rng):
    region = zone.rsplit("-", 1)[0]
    name = f"gpu-{index:05d}"
    spot = index % 3 == 0
    accelerator = rng.choice([("nvidia-tesla-a100", 8, "a2-highgpu-8g"), ("nvidia-h100-80gb", 8, "a3-highgpu-8g"),
                              ("nvidia-l4", 1, "g2-standard-8")])
    nic = {
        "kind": "compute#networkInterface",
        "network": f"{COMPUTE}/global/networks/default",
        "subnetwork": f"{COMPUTE}/regions/{region}/subnetworks/default",
        "networkIP": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
        "name": "nic0",
        "fingerprint": "pQxB6bLx3Uk=",
        "stackType": "IPV4_ONLY",
        "accessConfigs": [
            {
                "kind": "compute#accessConfig",
                "type": "ONE_TO_ONE_NAT",
                "name": "External NAT",
                "natIP": f"34.66.{index // 256 % 256}.{index % 256}",
                "networkTier": "PREMIUM",
            }
        ],
    }
    return {
        "kind": "compute#instance",
        "id": str(7000000000000000000 + index),
        "creationTimestamp": "2025-08-11T14:02:11.532-07:00",
        "name": name,
        "tags": {"items": ["ray-worker"], "fingerprint": "kaZy9mzC0Ms="},
        "machineType": f"{COMPUTE}/zones/{zone}/machineTypes/{accelerator[2]}",
        "status": rng.choices(["RUNNING", "TERMINATED", "STAGING"], weights=[90, 7, 3])[0],
        "zone": f"{COMPUTE}/zones/{zone}",
        "canIpForward": False,
        "networkInterfaces": [nic],
        "disks": [
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": "READ_WRITE",
                "source": f"{COMPUTE}/zones/{zone}/disks/{name}",
                "deviceName": "persistent-disk-0",
                "index": 0,
                "boot": True,
                "autoDelete": True,
                "interface": "SCSI",
                "guestOsFeatures": [{"type": "VIRTIO_SCSI_MULTIQUEUE"}, {"type": "UEFI_COMPATIBLE"}, {"type": "GVNIC"}],
                "diskSizeGb": "200",
                "architecture": "X86_64",
            }
        ],
        "metadata": {"kind": "compute#metadata", "fingerprint": "Bv3nE5aV8Fk=",
                     "items": [{"key": "install-nvidia-driver", "value": "True"}]},
        "serviceAccounts": [{"email": "412345678901-compute@developer.gserviceaccount.com",
                             "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
        "selfLink": f"{COMPUTE}/zones/{zone}/instances/{name}",
        "scheduling": {"onHostMaintenance": "TERMINATE", "automaticRestart": not spot, "preemptible": spot,
                       "provisioningModel": "SPOT" if spot else "STANDARD"},
        "cpuPlatform": "Intel Cascade Lake",
        "labels": {"fleet": "ray", "team": rng.choice(["ml", "eval", "serving"])},
        "labelFingerprint": "42WmSpB8rSM=",
        "startRestricted": False,
        "deletionProtection": False,
        "reservationAffinity": {"consumeReservationType": "ANY_RESERVATION"},
        "displayDevice": {"enableDisplay": False},
        "shieldedInstanceConfig": {"enableSecureBoot": False, "enableVtpm": True, "enableIntegrityMonitoring": True},
        "shieldedInstanceIntegrityPolicy": {"updateAutoLearnPolicy": True},
        "fingerprint": "Yt1mVb2r0vY=",
        "lastStartTimestamp": "2025-08-11T14:02:20.118-07:00",
        "satisfiesPzi": True,
        "guestAccelerators": [
            {"acceleratorType": f"{COMPUTE}/zones/{zone}/acceleratorTypes/{accelerator[0]}",
             "acceleratorCount": accelerator[1]}
        ],
    }


def gce_pages(count=5000, zone_count=20, page_size=500, seed=0):
    """InstanceAggregatedList pages over `count` GPU instances spread across `zone_count` zones."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    names = zones(zone_count)
    instances = [gce_instance(index, names[index % zone_count], rng) for index in range(count)]
    pages = []
    for part in chunk(instances, page_size):
        items = {}
        for instance in part:
            items.setdefault("zones/" + instance["zone"].rsplit("/", 1)[1], {"instances": []})["instances"].append(
                instance
            )
        pages.append({"kind": "compute#instanceAggregatedList", "id": f"projects/{PROJECT}/aggregated/instances",
                      "items": items, "selfLink": f"{COMPUTE}/aggregated/instances"})
    for number, page in enumerate(pages[:-1], 1):
        page["nextPageToken"] = f"page-{number + 1}"
    return pages


def routes_for(path, pages):
    """Routes answering each page, pre-encoded: the first without a token, the others by the previous page's token."""
    bodies = [json.dumps(page).encode() for page in pages]
    return paged_routes(path, bodies, [page.get("nextPageToken") for page in pages])


def replay(routes):
    """The loopback server for these routes, expecting the benchmarks' bearer token."""
    return ReplayServer(routes, "Bearer " + TOKEN)


# ---------------------------------------------------------------------------------------------
# Running plugins the way ansible-inventory does
# ---------------------------------------------------------------------------------------------


def plugin_runner():
    """Two timed ways to load an inventory source: (manager, bare), each (path, cache) -> (seconds, inventory).

    manager: what ansible-inventory and ansible-playbook do. InventoryManager tries the enabled plugins
    (`auto` reads `plugin:` and hands over), passes the plugin ansible-core 2.19's wrapper that tags every
    variable with its origin, lets it parse, writes its cache, and reconciles groups.
    bare: the plugin's own work: its parse() on a plain InventoryData, then the cache write (untimed).
    """
    from ansible.inventory.data import InventoryData
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader, inventory_loader

    init_plugin_loader([str(REPO_ROOT / "collections")])
    loader = DataLoader()

    def manager(path, cache=False):
        started = time.perf_counter()
        inventory = InventoryManager(loader, sources=[str(path)], cache=cache)
        return time.perf_counter() - started, inventory

    def bare(path, cache=False):
        plugin_name = loader.load_from_file(str(path))["plugin"]
        plugin = inventory_loader.get(plugin_name)
        inventory = InventoryData()
        started = time.perf_counter()
        plugin.parse(inventory, loader, str(path), cache=cache)
        elapsed = time.perf_counter() - started
        if getattr(plugin, "_cache", None) is not None:
            plugin.update_cache_if_changed()
        return elapsed, inventory

    return manager, bare


def summary(name, values, goal=None):
    line = f"| {name} | {len(values)} | {statistics.median(values):.3f} | {max(values):.3f} |"
    return line + (f" {goal} |" if goal is not None else "")
