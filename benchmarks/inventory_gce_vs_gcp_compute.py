#!/usr/bin/env python3
"""fleetwarden.fleet.gce_gpu against google.cloud.gcp_compute on the same 5,000 GPU instances.

Usage: .venv/bin/python benchmarks/inventory_gce_vs_gcp_compute.py [--trials 7] [--instances 5000] [--zones 20]
       [--plugin-alone]

One loopback server replays generated `instances.aggregatedList` pages (500 instances each, every field a
real instance has). Both load in this one process, alternating trial by trial, with the same access-token
auth and no cache.
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
- its defaults (with hostnames: name, so that both inventories have the same hosts; gce_gpu is given
  hostnames: [name] too, its own default being <name>.<zone>.<project>);
- with keyed_groups that produce the groups gce_gpu makes by default (status, accelerator type, zone).
Each plugin is timed loaded by InventoryManager, as ansible-inventory does (ansible-core 2.19 tags every
host var with its origin on the way in), and alone: its parse() on a plain InventoryData.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _inventory_replay import PROJECT, TOKEN, gce_pages, plugin_runner, replay, routes_for, summary

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
    parser.add_argument(
        "--plugin-alone", action="store_true", help="time only the two plugins' parse() alone (minutes less under load)"
    )
    args = parser.parse_args()
    os.environ["GCP_ACCESS_TOKEN"] = TOKEN
    pages = gce_pages(args.instances, args.zones)
    manager, bare = plugin_runner()

    from ansible.plugins.loader import inventory_loader

    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-gce-"))
    with replay(routes_for(PATH, pages)) as server:
        compute_class = type(inventory_loader.get(GCP_COMPUTE))  # the class the loader hands to InventoryManager
        compute_class._instances = server.url + "/compute/v1/projects/%s/aggregated/instances"
        ours = workdir / "bench.gce_gpu.yml"
        ours.write_text(
            f"plugin: {GCE_GPU}\nprojects: [{PROJECT}]\nauth_kind: accesstoken\nendpoint: {server.url}/compute/v1/\n"
            "hostnames: [name]\n"
        )
        theirs = workdir / "bench.gcp_compute.yml"
        theirs.write_text(
            f"plugin: {GCP_COMPUTE}\nprojects: [{PROJECT}]\nauth_kind: accesstoken\naccess_token: {TOKEN}\n"
            "hostnames: [name]\n"
        )
        theirs_grouped = workdir / "grouped.gcp_compute.yml"
        theirs_grouped.write_text(theirs.read_text() + SAME_GROUPS)

        # (label, how it is loaded, config); trials alternate between them
        runs = [
            ("gce_gpu", "InventoryManager", manager, ours),
            ("gcp_compute", "InventoryManager", manager, theirs),
            ("gcp_compute + keyed_groups", "InventoryManager", manager, theirs_grouped),
            ("gce_gpu", "plugin parse() alone", bare, ours),
            ("gcp_compute", "plugin parse() alone", bare, theirs),
        ]
        if args.plugin_alone:
            runs = [run for run in runs if run[1] == "plugin parse() alone"]
        times = {(label, mode): [] for label, mode, _, _ in runs}
        cpu = {(label, mode): [] for label, mode, _, _ in runs}
        inventories = {}
        for label, mode, run, path in runs:  # warm-up: imports, discovery document
            inventories[label, mode] = run(path)[1]
        for _ in range(args.trials):
            for label, mode, run, path in runs:
                started = time.process_time()
                elapsed, inventories[label, mode] = run(path)
                times[label, mode].append(elapsed)
                cpu[label, mode].append(time.process_time() - started)

    hosts = {key: set(inventory.hosts) for key, inventory in inventories.items()}
    assert len({frozenset(names) for names in hosts.values()}) == 1, "the inventories hold different hosts"
    managed = "InventoryManager"
    if not args.plugin_alone:
        ours_groups = {group for group in inventories["gce_gpu", managed].groups if group.startswith("gce_")}
        theirs_groups = set(inventories["gcp_compute + keyed_groups", managed].groups)
        assert ours_groups - {"gce_gpu"} <= theirs_groups, sorted(ours_groups - theirs_groups)[:5]

    print(f"{args.instances} instances in {args.zones} zones, {len(pages)} pages, "
          f"{len(next(iter(hosts.values())))} hosts each; {args.trials} trials, alternating")
    print("| plugin, loaded by | trials | median (s) | max (s) | median CPU (s) |\n|---|---|---|---|---|")
    for key in times:
        print(summary(f"{key[0]}, {key[1]}", times[key], f"{statistics.median(cpu[key]):.3f}"))
    for label, mode in (("gcp_compute", managed), ("gcp_compute + keyed_groups", managed),
                        ("gcp_compute", "plugin parse() alone")):
        if (label, mode) not in times:
            continue
        ratio = statistics.median(times[label, mode]) / statistics.median(times["gce_gpu", mode])
        cpu_ratio = statistics.median(cpu[label, mode]) / statistics.median(cpu["gce_gpu", mode])
        print(f"{label} / gce_gpu, {mode}: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (goal >= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
