#!/usr/bin/env python3
"""fleetwarden.fleet.gcp_tpu on 5,000 generated TPU nodes across 20 zones: parse, and parse on a cache hit.

Usage: .venv/bin/python benchmarks/inventory_gcp_tpu.py [--trials 7] [--nodes 5000] [--zones 20] [--cli]

A loopback server replays generated `nodes.list` pages (500 nodes each; every tenth node is a v4-16
slice with two workers, whatever its state, so 5,000 nodes give 5,500 hosts) and an empty
`queuedResources.list` page. The plugin reaches it through its `endpoint` option with an access token.
Timed: loading the source with InventoryManager, exactly what
ansible-inventory does before it prints (plugin lookup, parse through ansible-core's origin-tagging
wrapper, cache write, group reconciliation). Goals: parse <= 2 s, cache hit <= 0.5 s.
--cli also times a whole `ansible-inventory --list` (interpreter start, imports, JSON output).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _inventory_replay import PROJECT, REPO_ROOT, TOKEN, plugin_runner, replay, routes_for, summary, tpu_pages

PLUGIN = "fleetwarden.fleet.gcp_tpu"


def core_floor(pages, trials):
    """Time InventoryData alone building what the plugin builds: what any plugin would pay for it."""
    from ansible.inventory.data import InventoryData
    from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._tpu_inventory import shape

    records = shape([node for page in pages for node in page["nodes"]])
    families = ("tpu_state", "tpu_accelerator_type", "tpu_zone")
    wall, cpu = [], []
    for _ in range(trials):
        started, started_cpu = time.perf_counter(), time.process_time()
        inventory = InventoryData()
        inventory.add_group("gcp_tpu")
        for host_vars in records:
            node, index, zone = host_vars["tpu_node_name"], host_vars["tpu_worker_index"], host_vars["tpu_zone"]
            hostname = f"{node}-w{index}.{zone}.{PROJECT}"
            inventory.add_host(hostname)
            for key, value in host_vars.items():
                inventory.set_variable(hostname, key, value)
            inventory.set_variable(hostname, "ansible_host", host_vars["tpu_external_ip"])
            for family in families:
                if host_vars[family]:
                    group = inventory.add_group(f"{family}_{host_vars[family]}".lower().replace("-", "_"))
                    inventory.add_child(group, hostname)
            if host_vars["tpu_worker_count"] > 1:
                inventory.add_child(inventory.add_group(f"tpu_slice_{node}".replace("-", "_")), hostname)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--zones", type=int, default=20)
    parser.add_argument("--cli", action="store_true", help="also time ansible-inventory --list")
    args = parser.parse_args()
    os.environ["GCP_ACCESS_TOKEN"] = TOKEN
    pages = tpu_pages(args.nodes, args.zones)
    routes = routes_for(f"/v2/projects/{PROJECT}/locations/-/nodes", pages)
    routes.update(routes_for(f"/v2/projects/{PROJECT}/locations/-/queuedResources", [{}]))
    manager, bare = plugin_runner()
    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-tpu-"))
    results = {}  # figure -> (wall times, CPU times)
    with replay(routes) as server:
        base = f"plugin: {PLUGIN}\nprojects: [fw-bench]\nauth_kind: accesstoken\nendpoint: {server.url}/\n"
        plain = workdir / "plain.gcp_tpu.yml"
        plain.write_text(base)
        cached = workdir / "cached.gcp_tpu.yml"
        cache_options = f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {workdir}/cache\n"
        cached.write_text(base + cache_options)
        manager(plain)  # warm-up: imports and the discovery document's first read
        hosts = 0
        for mode, run in (("InventoryManager", manager), ("plugin parse() alone", bare)):
            parse_times, parse_cpu, hit_times, hit_cpu = [], [], [], []
            for _ in range(args.trials):
                started = time.process_time()
                elapsed, inventory = run(plain)
                parse_cpu.append(time.process_time() - started)
                parse_times.append(elapsed)
                hosts = len(inventory.hosts)
            run(cached, cache=False)  # fills the cache
            requests_before = len(server.requests)
            for _ in range(args.trials):
                started = time.process_time()
                elapsed, cached_inventory = run(cached, cache=True)
                hit_cpu.append(time.process_time() - started)
                hit_times.append(elapsed)
            assert len(server.requests) == requests_before, "a cache hit must not call the API"
            assert set(cached_inventory.hosts) == set(inventory.hosts)
            results[f"parse, {mode}"] = (parse_times, parse_cpu, "<= 2 s")
            results[f"cache hit, {mode}"] = (hit_times, hit_cpu, "<= 0.5 s")

        floor = core_floor(pages, args.trials)
        results["ansible-core floor: InventoryData calls alone"] = (*floor, "-")

        if args.cli:
            env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
            for option in ("--graph", "--list"):
                command = [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(plain), option]
                times = []
                for _ in range(args.trials):
                    started = time.perf_counter()
                    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, capture_output=True)
                    times.append(time.perf_counter() - started)
                results[f"ansible-inventory {option}, whole command"] = (times, None, "-")

    print(f"{args.nodes} nodes in {args.zones} zones, {len(pages)} pages -> {hosts} hosts; {args.trials} trials")
    print("| figure | trials | median (s) | max (s) | median CPU (s) | goal |\n|---|---|---|---|---|---|")
    for figure, (times, cpu, goal) in results.items():
        cpu_text = f"{statistics.median(cpu):.3f}" if cpu else "-"
        print(summary(figure, times, f"{cpu_text} | {goal}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
