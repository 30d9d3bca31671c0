# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure pieces of the fleet metrics collector (roles/fleet_metrics): what each metric is, and the samples
one collector run exports, computed from what the collector read (worker declarations, systemctl show,
docker inspect and events, nvidia-smi, the kernel log, statvfs).

- ``METRICS``: the one home of every metric's name, type, help and labels (docs/monitoring.md and the
  alert rules use these names; tests/unit hold them together).
- ``worker_samples`` / ``gpu_samples`` / ``node_samples``: (name, labels, value) tuples.
- ``parse_docker_events``, ``parse_xid_events``: parsers of command output.
- ``restart_window``, ``count_events``: the small state kept between runs (restarts per hour, OOM kills).

What a worker is (its declarations, unit properties, container, whether its restarts are exhausted, the restart
window) is ``_worker_state``'s: the collector asks it.

Runs on managed hosts (imported by the collector) and in unit tests: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import (
    RESTART_WINDOW_S,
    restarts_exhausted,
)

MIB = 1024 * 1024

# name -> (type, help, labels). Counters end in _total; units are in the name.
METRICS = {
    "fleetwarden_worker_up": (
        "gauge", "1 when the worker's container runs and its probe passes (or it declares none), else 0.",
        ("worker",)),
    "fleetwarden_worker_unit_active": (
        "gauge", "1 when the worker's systemd unit is active.", ("worker",)),
    "fleetwarden_worker_container_running": (
        "gauge", "1 when the worker's container is running.", ("worker",)),
    "fleetwarden_worker_restarts_total": (
        "counter", "Automatic restarts of the worker's unit (systemd NRestarts).", ("worker",)),
    "fleetwarden_worker_restart_budget_remaining": (
        "gauge", "Restarts left before systemd's start limit (StartLimitBurst per hour) stops the worker.",
        ("worker",)),
    "fleetwarden_worker_start_limit_hit": (
        "gauge", "1 when systemd gave up restarting the worker: its restarts are exhausted.", ("worker",)),
    "fleetwarden_worker_last_exit_code": (
        "gauge", "Exit code of the worker container's last death.", ("worker",)),
    "fleetwarden_worker_last_oom_killed": (
        "gauge", "1 when the worker container's last death was an OOM kill.", ("worker",)),
    "fleetwarden_worker_container_start_time_seconds": (
        "gauge", "Unix time the worker's current container started.", ("worker",)),
    "fleetwarden_worker_heartbeat_age_seconds": (
        "gauge", "Age of the worker's declared heartbeat file (+Inf when missing).", ("worker",)),
    "fleetwarden_worker_heartbeat_max_age_seconds": (
        "gauge", "The heartbeat age the worker's declaration allows.", ("worker",)),
    "fleetwarden_worker_probe_success": (
        "gauge", "1 when the worker's declared probe (heartbeat, raylet port, command) passed this run.",
        ("worker",)),
    "fleetwarden_worker_mounts_healthy": (
        "gauge", "1 when every gcsfuse mount the worker declares is mounted.", ("worker",)),
    "fleetwarden_gpu_info": (
        "gauge", "One series per GPU; value 1. Identity labels for joins.", ("gpu", "uuid", "model", "pci_bus_id")),
    "fleetwarden_gpu_memory_used_bytes": ("gauge", "GPU framebuffer memory used.", ("gpu",)),
    "fleetwarden_gpu_memory_total_bytes": ("gauge", "GPU framebuffer memory in total.", ("gpu",)),
    "fleetwarden_gpu_utilization_ratio": ("gauge", "GPU utilization over the driver's last sample period, 0 to 1.",
                                          ("gpu",)),
    "fleetwarden_gpu_temperature_celsius": ("gauge", "GPU core temperature.", ("gpu",)),
    "fleetwarden_gpu_power_watts": ("gauge", "GPU power draw.", ("gpu",)),
    "fleetwarden_gpu_ecc_uncorrected_volatile_errors_total": (
        "counter", "Uncorrectable ECC errors since the driver loaded.", ("gpu",)),
    "fleetwarden_gpu_retired_pages_pending": ("gauge", "1 when a page retirement waits for a GPU reset.", ("gpu",)),
    "fleetwarden_gpu_remapped_rows_pending": ("gauge", "1 when a row remap waits for a GPU reset.", ("gpu",)),
    "fleetwarden_gpu_xid_errors_total": (
        "counter", "NVIDIA XID events in the kernel log since the collector began reading it.", ("gpu", "xid")),
    "fleetwarden_docker_up": ("gauge", "1 when dockerd answers.", ()),
    "fleetwarden_filesystem_avail_bytes": (
        "gauge", "Bytes free to unprivileged users.", ("filesystem", "path")),
    "fleetwarden_filesystem_size_bytes": ("gauge", "Size of the filesystem.", ("filesystem", "path")),
    "fleetwarden_filesystem_avail_min_bytes": (
        "gauge", "Free bytes below which DiskAlmostFull fires (fleet_metrics_disk_min_free).", ("filesystem", "path")),
    "fleetwarden_filesystem_files_free": ("gauge", "Inodes free to unprivileged users.", ("filesystem", "path")),
    "fleetwarden_filesystem_files": ("gauge", "Inodes in total.", ("filesystem", "path")),
    "fleetwarden_container_oom_kills_total": (
        "counter", "OOM kills per container (docker oom events; worker is set for declared workers).",
        ("container", "worker")),
    "fleetwarden_collector_last_run_timestamp_seconds": ("gauge", "Unix time the collector last finished.", ()),
    "fleetwarden_collector_duration_seconds": ("gauge", "How long the collector's last run took.", ()),
    "fleetwarden_collector_source_up": (
        "gauge", "1 when the collector could read a source (declarations, systemd, docker, nvidia-smi, kernel log).",
        ("source",)),
}

# NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.
_XID = re.compile(r"NVRM: Xid \((?:PCI:)?([0-9a-fA-F:.]+)\): (\d+)")


def sample(name, value, **labels):
    if name not in METRICS:
        raise KeyError("unknown metric %s" % name)
    return (name, labels, value)


def _flag(value):
    return 1 if value else 0


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def restart_window(previous, nrestarts, now, window=RESTART_WINDOW_S, exhausted=False, active=False):
    """Restarts seen in the last ``window`` seconds, from NRestarts read run after run.

    ``previous`` is {"nrestarts": last value read, "increments": [[time, count], ...], "exhausted": bool} (or None
    on the first run). systemd keeps its start-limit count to itself; this counts what the collector saw (a drop
    of NRestarts is a manual restart, which resets NRestarts but not systemd's count). A unit seen exhausted
    (``exhausted``: systemd gave up) and now ``active`` again, whatever it was in between (activating while it
    starts), was started after `systemctl reset-failed`, which resets systemd's count: the window starts afresh.
    Returns (state to keep, restarts in the window).
    """
    previous = previous or {}
    increments = [list(i) for i in previous.get("increments", []) if now - i[0] < window]
    if previous.get("exhausted") and active:
        increments = []
    last = previous.get("nrestarts")
    if nrestarts is not None:
        if last is not None and nrestarts > last:
            increments.append([now, nrestarts - last])
        elif last is None and nrestarts > 0:
            increments.append([now, nrestarts])  # first run: restarts since the unit started, time unknown
        elif last is not None and nrestarts < last and nrestarts > 0:
            increments.append([now, nrestarts])
        last = nrestarts
    # Seen exhausted stays so until seen active: the start after reset-failed passes through `activating`.
    state = {"nrestarts": last, "increments": increments,
             "exhausted": bool(exhausted or (previous.get("exhausted") and not active))}
    return state, sum(count for _unit, count in increments)


def parse_docker_events(text):
    """`docker events --format '{{json .}}'` lines -> [{action, id, name, time, exit_code}] (bad lines skipped)."""
    events = []
    for line in (text or "").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        events.append({"action": event.get("Action") or event.get("status"), "id": actor.get("ID") or event.get("id"),
                       "name": attributes.get("name"), "time": event.get("time"),
                       "exit_code": _int(attributes.get("exitCode"))})
    return events


def count_events(state, events):
    """Fold container events into the kept state: OOM kills per container name, and each name's last death.

    state: {"oom_kills": {name: n}, "deaths": {name: {"exit_code", "oom_killed", "time"}}}. A die after an oom
    event of the same container id is an OOM death.
    """
    oom_kills = dict(state.get("oom_kills") or {})
    deaths = dict(state.get("deaths") or {})
    oom_ids = set(state.get("oom_ids") or [])
    for event in events:
        name = event.get("name")
        if not name:
            continue
        if event["action"] == "oom":
            oom_kills[name] = oom_kills.get(name, 0) + 1
            oom_ids.add(event["id"])
        elif event["action"] == "die":
            deaths[name] = {"exit_code": event.get("exit_code"), "oom_killed": event["id"] in oom_ids,
                            "time": event.get("time")}
    # ids matter only until their die arrives; keep the newest few
    return {"oom_kills": oom_kills, "deaths": deaths, "oom_ids": sorted(oom_ids)[-64:]}


def parse_xid_events(text):
    """Kernel log text -> [(pci bus id as printed, xid)] for each NVRM Xid line."""
    return [(match.group(1), int(match.group(2))) for match in (_XID.search(line) for line in (text or "").splitlines())
            if match]


def pci_key(bus_id):
    """'00000000:3B:00.0' (nvidia-smi) and '0000:3b:00' (NVRM) -> '3b:00': bus and device, lower case."""
    parts = (bus_id or "").lower().split(":")
    if len(parts) < 2:
        return (bus_id or "").lower()
    return "%s:%s" % (parts[-2], parts[-1].split(".")[0])


def count_xids(counts, events, gpus):
    """Add XID events to {"<gpu>|<xid>": n}; an event names its GPU by PCI address (the GPU's index when known)."""
    counts = dict(counts or {})
    by_pci = dict((pci_key(gpu.get("pci_bus_id")), str(gpu["index"])) for gpu in gpus)
    for bus_id, xid in events:
        key = "%s|%d" % (by_pci.get(pci_key(bus_id), pci_key(bus_id)), xid)
        counts[key] = counts.get(key, 0) + 1
    return counts


def worker_samples(decl, unit, container, death=None, restarts_in_window=0, heartbeat_age=None, probe_ok=None,
                   mounts_ok=True):
    """Samples of one worker.

    decl: the declaration JSON; unit: its worker unit's properties (parse_systemctl_show_units) or {}; container:
    _worker_state.container_summary() or None; death: the last die event seen for it (count_events) or None;
    heartbeat_age: seconds (float('inf') when the file is missing) or None; probe_ok: the probe's verdict this
    run, None when no probe is declared or the container is not running.
    """
    name = decl["name"]
    running = bool(container and container["running"])
    budget = int(decl["restart"]["max_per_hour"])
    out = [
        sample("fleetwarden_worker_unit_active", _flag(unit.get("ActiveState") == "active"), worker=name),
        sample("fleetwarden_worker_container_running", _flag(running), worker=name),
        sample("fleetwarden_worker_up", _flag(running and probe_ok is not False), worker=name),
        sample("fleetwarden_worker_restarts_total", _int(unit.get("NRestarts"), 0), worker=name),
        sample("fleetwarden_worker_restart_budget_remaining", max(0, budget - restarts_in_window), worker=name),
        sample("fleetwarden_worker_start_limit_hit", _flag(restarts_exhausted(unit, decl)), worker=name),
        sample("fleetwarden_worker_mounts_healthy", _flag(mounts_ok), worker=name),
    ]
    if container and not running and container.get("exit_code") is not None:
        death = {"exit_code": container["exit_code"], "oom_killed": container["oom_killed"]}
    if death and death.get("exit_code") is not None:
        out.append(sample("fleetwarden_worker_last_exit_code", death["exit_code"], worker=name))
        out.append(sample("fleetwarden_worker_last_oom_killed", _flag(death.get("oom_killed")), worker=name))
    if container and container.get("started_at") is not None:
        out.append(sample("fleetwarden_worker_container_start_time_seconds", container["started_at"], worker=name))
    heartbeat = (decl.get("probe") or {}).get("heartbeat")
    if heartbeat:
        out.append(sample("fleetwarden_worker_heartbeat_max_age_seconds", heartbeat["max_age"], worker=name))
        if heartbeat_age is not None:
            out.append(sample("fleetwarden_worker_heartbeat_age_seconds", heartbeat_age, worker=name))
    if probe_ok is not None:
        out.append(sample("fleetwarden_worker_probe_success", _flag(probe_ok), worker=name))
    return out


def probe_targets(decl):
    """What the collector checks of a worker's declared probe: {heartbeat, raylet_port, command} (None = not set)."""
    probe = decl.get("probe") or {}
    if not probe.get("enabled", True):
        return None
    raylet = probe.get("raylet") or {}
    targets = {"heartbeat": probe.get("heartbeat"), "raylet_port": raylet.get("port"), "command": probe.get("command"),
               "timeout": probe.get("timeout", 2), "host_network": bool(probe.get("host_network"))}
    if not (targets["heartbeat"] or targets["raylet_port"] or targets["command"]):
        return None
    return targets


def mounts_ok(decl, mounted_points):
    """True when every gcsfuse mount point the worker declares is in ``mounted_points`` (from mountinfo)."""
    wanted = [(m.get("mountpoint") if isinstance(m, dict) else m) for m in decl.get("gcsfuse_mounts") or []]
    return all((point.rstrip("/") or "/") in mounted_points for point in wanted)


def gpu_samples(gpus, xid_counts=None):
    """Samples of each GPU (parse_xml / gpu_from_query_row shape); none for a host without GPUs."""
    out = []
    for gpu in gpus:
        index = str(gpu["index"])
        out.append(sample("fleetwarden_gpu_info", 1, gpu=index, uuid=gpu.get("uuid") or "",
                          model=gpu.get("name") or "", pci_bus_id=gpu.get("pci_bus_id") or ""))
        values = (
            ("fleetwarden_gpu_memory_used_bytes", gpu.get("memory_used_mib"), MIB),
            ("fleetwarden_gpu_memory_total_bytes", gpu.get("memory_total_mib"), MIB),
            ("fleetwarden_gpu_utilization_ratio", gpu.get("utilization_gpu_pct"), 0.01),
            ("fleetwarden_gpu_temperature_celsius", gpu.get("temperature_c"), 1),
            ("fleetwarden_gpu_power_watts", gpu.get("power_draw_w"), 1),
            ("fleetwarden_gpu_ecc_uncorrected_volatile_errors_total", gpu.get("ecc_volatile_uncorrected"), 1),
        )
        for name, value, scale in values:
            if value is not None:
                out.append(sample(name, value * scale, gpu=index))
        for name, key in (("fleetwarden_gpu_retired_pages_pending", "retired_pages_pending"),
                          ("fleetwarden_gpu_remapped_rows_pending", "remapped_rows_pending")):
            if gpu.get(key) is not None:
                out.append(sample(name, _flag(gpu[key]), gpu=index))
    if gpus:
        for key, count in sorted((xid_counts or {}).items()):
            gpu, xid = key.split("|", 1)
            out.append(sample("fleetwarden_gpu_xid_errors_total", count, gpu=gpu, xid=xid))
    return out


def filesystem_samples(kind, path, st, min_free_ratio, min_free_bytes):
    """Samples of one filesystem from os.statvfs(); the threshold is the larger of the ratio and the bytes."""
    size = st.f_blocks * st.f_frsize
    threshold = max(int(size * min_free_ratio), int(min_free_bytes))
    labels = {"filesystem": kind, "path": path}
    return [
        sample("fleetwarden_filesystem_avail_bytes", st.f_bavail * st.f_frsize, **labels),
        sample("fleetwarden_filesystem_size_bytes", size, **labels),
        sample("fleetwarden_filesystem_avail_min_bytes", threshold, **labels),
        sample("fleetwarden_filesystem_files_free", st.f_favail, **labels),
        sample("fleetwarden_filesystem_files", st.f_files, **labels),
    ]


def oom_samples(oom_kills, workers):
    """fleetwarden_container_oom_kills_total: every declared worker (0 until its first OOM), and any container
    docker reported an OOM kill for."""
    counts = dict((name, 0) for name in workers)
    counts.update(oom_kills or {})
    return [sample("fleetwarden_container_oom_kills_total", count, container=name,
                   worker=name if name in workers else "") for name, count in sorted(counts.items())]
