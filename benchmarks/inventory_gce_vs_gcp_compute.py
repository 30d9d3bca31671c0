#!/usr/bin/env python3
"""fleetwarden.fleet.gce_gpu against google.cloud.gcp_compute on the same 5,000 GPU instances.

Usage: .venv/bin/python benchmarks/inventory_gce_vs_gcp_compute.py [--trials 7] [--instances 5000] [--zones 20]

One loopback server replays generated `instances.aggregatedList` pages (500 instances each, every field a
real instance has). Both load in this one process, alternating trial by trial, with the same access-token
auth and no cache. Timed: loading the source with InventoryManager, what ansible-inventory does before
it prints (plugin lookup, parse through ansible-core's origin-tagging wrapper, group reconciliation).
Goal: gce_gpu at least 2x faster (ratio of medians).

How each plugin reaches the server:
- gce_gpu: its `endpoint` option (the google-api-python-client `api_endpoint`).
- gcp_compute has no endpoint setting. It builds its URL from the class attribute
  `InventoryModule._instances = "https://www.googleapis.com/compute/v1/projects/%s/aggregated/instances"`
  and GcpSession sends it through a requests AuthorizedSession; no option or environment variable
  changes the host. The only outside lever is HTTPS_PROXY, which needs a TLS-intercepting CONNECT proxy
  and a forged certificate for www.googleapis.com trusted through REQUESTS_CA_BUNDLE: that adds a TLS
  handshake and a proxy hop to gcp_compute's side only, and would measure the proxy as much as the plugin.
  So this script does the next best honest thing: it sets that class attribute, in this process only,
  to the same URL on the loopback server. gcp_compute's code runs unmodified otherwise.

Two gcp_compute configurations are timed:
- as configured by its users by default (hostnames: name, so that both inventories have the same hosts);
- with keyed_groups that produce the groups gce_gpu makes by default (status, accelerator type, zone).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _inventory_replay import PROJECT, TOKEN, ReplayServer, gce_pages, plugin_runner, routes_for, summary

GCE_GPU = "fleetwarden.fleet.gce_gpu"
GCP_COMPUTE = "google.cloud.gcp_compute"
PATH = f"/compute/v1/projects/{PROJECT}/aggregated/instances"
SAME_GROUPS = """keyed_groups:
  - key: status | lower
    prefix: gce_status
  - key: guestAccelerators[0].acceleratorType.split('/')[-1]
    prefix: gce_accelerator
  - key: zone
    prefix: gce_zone
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--zones", type=int, default=20)
    args = parser.parse_args()
    os.environ["GCP_ACCESS_TOKEN"] = TOKEN
    pages = gce_pages(args.instances, args.zones)
    run, _bare = plugin_runner()

    from ansible.plugins.loader import inventory_loader

    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-gce-"))
    with ReplayServer(routes_for(PATH, pages)) as server:
        compute_class = type(inventory_loader.get(GCP_COMPUTE))  # the class the loader hands to InventoryManager
        compute_class._instances = server.url + "/compute/v1/projects/%s/aggregated/instances"
        ours = workdir / "bench.gce_gpu.yml"
        ours.write_text(
            f"plugin: {GCE_GPU}\nprojects: [{PROJECT}]\nauth_kind: accesstoken\nendpoint: {server.url}/compute/v1/\n"
        )
        theirs = workdir / "bench.gcp_compute.yml"
        theirs.write_text(
            f"plugin: {GCP_COMPUTE}\nprojects: [{PROJECT}]\nauth_kind: accesstoken\naccess_token: {TOKEN}\n"
            "hostnames: [name]\n"
        )
        theirs_grouped = workdir / "grouped.gcp_compute.yml"
        theirs_grouped.write_text(theirs.read_text() + SAME_GROUPS)

        configs = {"gce_gpu": (GCE_GPU, ours), "gcp_compute": (GCP_COMPUTE, theirs),
                   "gcp_compute + keyed_groups": (GCP_COMPUTE, theirs_grouped)}
        times = {label: [] for label in configs}
        cpu = {label: [] for label in configs}
        inventories = {}
        for label, (_name, path) in configs.items():  # warm-up: imports, discovery document
            inventories[label] = run(path)[1]
        for _ in range(args.trials):
            for label, (_name, path) in configs.items():
                started = time.process_time()
                elapsed, inventories[label] = run(path)
                times[label].append(elapsed)
                cpu[label].append(time.process_time() - started)

    hosts = {label: set(inventory.hosts) for label, inventory in inventories.items()}
    assert hosts["gce_gpu"] == hosts["gcp_compute"] == hosts["gcp_compute + keyed_groups"], "different hosts"
    ours_groups = {group for group in inventories["gce_gpu"].groups if group.startswith("gce_")} - {"gce_gpu"}
    theirs_groups = set(inventories["gcp_compute + keyed_groups"].groups)
    assert ours_groups <= theirs_groups, sorted(ours_groups - theirs_groups)[:5]

    print(f"{args.instances} instances in {args.zones} zones, {len(pages)} pages, {len(hosts['gce_gpu'])} hosts each;"
          f" {args.trials} trials, alternating")
    print("| plugin | trials | median (s) | max (s) | median CPU (s) |\n|---|---|---|---|---|")
    for label in configs:
        print(summary(label, times[label], f"{statistics.median(cpu[label]):.3f}"))
    ours_median = statistics.median(times["gce_gpu"])
    for label in ("gcp_compute", "gcp_compute + keyed_groups"):
        ratio = statistics.median(times[label]) / ours_median
        cpu_ratio = statistics.median(cpu[label]) / statistics.median(cpu["gce_gpu"])
        print(f"{label} / gce_gpu: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (goal >= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
