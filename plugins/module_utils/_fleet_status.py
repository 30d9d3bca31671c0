# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure shaping of what fleetwarden.fleet.fleet_status reads on a host, for `fleetwarden status` and `doctor`.

- ``restarts_by_unit``: journal entries of systemd's "Scheduled restart job" message -> {unit: [epoch, ...]}.
- ``unit_summary``: a worker unit's ``systemctl show`` properties -> its status row part (``_worker_state`` decides
  whether its restarts are exhausted; the container is ``_worker_state.container_summary``).
- ``worker_summary``: a declaration document plus what was read about it -> one status row.
- ``ray_nodes``: the dashboard's ``/api/v0/nodes`` answer -> [{node_id, ip, state, is_head}].
- ``authorized_key_summary``: an authorized_keys file -> fingerprints and types (public data only).
- ``gpu_rows``: gpu_facts' parsed GPUs plus the kernel log's XID counts -> one health row per GPU (ECC, retired
  pages, XID), and a row for a GPU the kernel logged XIDs for that nvidia-smi no longer lists (fallen off the bus).

Runs on managed hosts: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.fleetwarden.fleet.plugins.module_utils._nvidia_smi import assess_gpu
from ansible_collections.fleetwarden.fleet.plugins.module_utils._ssh_keys import SshKeyError, parse_public_key
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import restarts_exhausted

# systemd's SD_MESSAGE_UNIT_RESTART_SCHEDULED: "Scheduled restart job, restart counter is at N."
RESTART_SCHEDULED_MESSAGE_ID = "5eb03494b6584870a536b337290809b3"
# ExecMainCode is a CLD_* code: how the main process ended.
_EXIT_CODES = {"1": "exited", "2": "killed", "3": "dumped"}


def unit_summary(props, uptime_s, decl=None):
    """The unit's state as a status row shows it; the age of its last state change in seconds when known.
    ``decl``: the worker's declaration (its restart policy and budget), for ``restarts_exhausted``."""
    if not props:
        return {"load": "unknown", "active": "unknown", "sub": "unknown", "result": None, "restarts": None,
                "main_status": None, "main_code": None, "since_s": None, "start_limit_burst": None,
                "restarts_exhausted": False}
    changed_us = _int(props.get("StateChangeTimestampMonotonic"))
    since = None
    if changed_us and uptime_s is not None:
        since = max(0.0, round(uptime_s - changed_us / 1e6, 1))
    return {"load": props.get("LoadState") or "unknown", "active": props.get("ActiveState") or "unknown",
            "sub": props.get("SubState") or "unknown", "result": props.get("Result") or None,
            "restarts": _int(props.get("NRestarts")), "main_status": _int(props.get("ExecMainStatus")),
            "main_code": _EXIT_CODES.get(props.get("ExecMainCode", "")),
            "since_s": since, "start_limit_burst": _int(props.get("StartLimitBurst")),
            "restarts_exhausted": restarts_exhausted(props, decl)}


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def restarts_by_unit(journal_json_lines, units, since_epoch):
    """{unit: count} of restarts systemd scheduled since ``since_epoch``, from ``journalctl -o json`` lines."""
    counts = dict((unit, 0) for unit in units)
    for line in (journal_json_lines or "").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        unit = entry.get("UNIT")
        if unit not in counts or entry.get("MESSAGE_ID") != RESTART_SCHEDULED_MESSAGE_ID:
            continue
        stamp = _int(entry.get("__REALTIME_TIMESTAMP"))
        if stamp is None or stamp / 1e6 >= since_epoch:
            counts[unit] += 1
    return counts


def heartbeat_age(mtime, now):
    return None if mtime is None else round(max(0.0, now - mtime), 1)


def worker_summary(doc, unit, probe_unit, container, restarts_last_hour, heartbeat_age_s, probe_failure, mounts,
                   image_present):
    """One status row for a worker: its declaration's public parts and what the host says about it."""
    restart = doc.get("restart") or {}
    probe = doc.get("probe") or {}
    heartbeat = probe.get("heartbeat") or None
    return {
        "name": doc.get("name"),
        "image": doc.get("image"),
        "image_present": image_present,
        "accelerator": doc.get("accelerator"),
        "role": (doc.get("metadata") or {}).get("ray_role"),
        "digest": doc.get("digest"),
        "unit_name": (doc.get("units") or {}).get("worker"),
        "unit": unit,
        "probe": {"enabled": bool(probe.get("enabled")), "active": probe_unit.get("active") if probe_unit else None,
                  "last_failure": probe_failure,
                  "heartbeat_max_age_s": heartbeat.get("max_age") if heartbeat else None},
        "container": container,
        "restarts_last_hour": restarts_last_hour,
        "restart_budget": restart.get("max_per_hour"),
        "heartbeat_age_s": heartbeat_age_s,
        "mounts": mounts,
    }


def ray_nodes(document):
    """The Ray state API's node list (``GET /api/v0/nodes``) -> [{node_id, ip, state, is_head}]; raises ValueError."""
    if not isinstance(document, dict) or not document.get("result"):
        raise ValueError("the dashboard answered without a result: %s" % str(document)[:200])
    rows = (((document.get("data") or {}).get("result") or {}).get("result")) or []
    return [{"node_id": row.get("node_id"), "ip": row.get("node_ip"), "state": row.get("state"),
             "is_head": bool(row.get("is_head_node"))} for row in rows]


def dashboard_port(command, default=8265):
    """The --dashboard-port of a `ray start --head` argv."""
    for arg in command or []:
        if isinstance(arg, str) and arg.startswith("--dashboard-port="):
            return _int(arg.split("=", 1)[1]) or default
    return default


def authorized_key_summary(text):
    """Every key line of an authorized_keys file: {fingerprint, type, bits, comment} or {error, line}."""
    keys = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            parsed = parse_public_key(line)
        except SshKeyError as exc:
            keys.append({"line": number, "error": str(exc)})
            continue
        keys.append({"line": number, "fingerprint": parsed["fingerprint"], "type": parsed["type"],
                     "bits": parsed["bits"], "comment": parsed["comment"]})
    return keys


def docker_summary(info):
    """`docker info --format '{{json .}}'` (parsed) -> the daemon settings the doctor compares with the fleet's."""
    return {"version": info.get("ServerVersion") or None, "root_dir": info.get("DockerRootDir") or None,
            "live_restore": info.get("LiveRestoreEnabled"), "log_driver": info.get("LoggingDriver") or None,
            "containers_running": info.get("ContainersRunning"), "runtimes": sorted(info.get("Runtimes") or {})}


def gpu_rows(gpus, xid_counts):
    """Health rows for the doctor and status from gpu_facts' GPUs (gpu_from_query_row) and ``count_xids``' counts
    ({"<gpu index or PCI address>|<xid>": n}). Each row keeps its evidence: ECC, retired pages and XIDs."""
    xids = {}
    for key, count in (xid_counts or {}).items():
        gpu, _sep, xid = key.partition("|")
        xids.setdefault(gpu, {})[xid] = xids.get(gpu, {}).get(xid, 0) + count
    rows = []
    for gpu in gpus:
        if gpu.get("error"):
            rows.append(gpu)
            continue
        gpu = dict(gpu, xids=xids.pop(str(gpu.get("index")), {}))
        health, reasons = assess_gpu(gpu)
        rows.append({"index": gpu["index"], "uuid": gpu.get("uuid"), "name": gpu.get("name"),
                     "pci_bus_id": gpu.get("pci_bus_id"), "memory_used_mib": gpu.get("memory_used_mib"),
                     "memory_total_mib": gpu.get("memory_total_mib"),
                     "ecc_volatile_uncorrected": gpu.get("ecc_volatile_uncorrected"),
                     "retired_pages_pending": gpu.get("retired_pages_pending"), "xids": gpu["xids"],
                     "health": health, "reasons": reasons})
    for address in sorted(xids):  # XIDs of a PCI address no listed GPU has: the GPU may have left the bus
        health, reasons = assess_gpu({"xids": xids[address]})
        rows.append({"index": None, "uuid": None, "name": "GPU at PCI %s (not listed by nvidia-smi)" % address,
                     "pci_bus_id": address, "xids": xids[address], "health": health, "reasons": reasons})
    return rows
