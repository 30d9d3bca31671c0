# -*- coding: utf-8 -*-
# Copyright: fleetwarden contributors
# Apache License 2.0 (see LICENSE)
"""The record of a worker container's death, kept before systemd replaces the container.

When a worker dies and its unit restarts it at once (a killed container, a mount that came back, a head that
restarted), the dead container is removed by the next start and recover.yml later finds a running worker and
nothing to say why. So the worker tool's supervisor (roles/worker_service, `fleetwarden-worker supervise`) writes
a record of each death into the incident root as soon as the container ends:
<incident root>/_deaths/<worker>/<finished>-<id12>.json, the newest DEATH_RECORDS_KEPT kept (`_deaths` cannot be
a worker's name, whose incidents live in <incident root>/<worker>/). container_diagnosis
reads the newest and reports its cause (evidence.last_death), classified by the same rules as a dead container.

build() and summarize() are pure; newest() only reads files. Secrets are redacted by _diagnosis's rules: the log
lines lose every env value of the container (in each encoding) and every secret-shaped token.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.fleetwarden.fleet.plugins.module_utils import _container_fs as container_fs
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _diagnosis as diag

DEATH_RECORDS_KEPT = 10
RECORD_DIR = "_deaths"


def directory(incident_root, worker):
    """Where a worker's death records live."""
    return os.path.join(incident_root, RECORD_DIR, worker)


def build(container, log_lines, stopped_by_unit, recorded_at, include_sensitive=False):
    """The record of a dead container from its `docker inspect` and its last `docker logs --timestamps` lines."""
    container = container or {}
    state = container.get("State") or {}
    host_config = container.get("HostConfig") or {}
    lines = list(log_lines or [])
    if not include_sensitive:
        secrets = diag.env_secrets((container.get("Config") or {}).get("Env"))
        lines = [diag.redact_secrets(line, secrets) for line in lines]
    return {
        "container_id": container.get("Id"),
        "image": (container.get("Config") or {}).get("Image"),
        "state": dict((key, state.get(key)) for key in diag.STATE_FIELDS),
        "exit": diag.interpret_exit_code(state.get("ExitCode")),
        "stopped_by_unit": bool(stopped_by_unit),
        "shm_size_bytes": host_config.get("ShmSize"),
        "bounded_filesystems": container_fs.bounded_filesystems(container),
        "log_tail": lines,
        "recorded_at": recorded_at,
    }


def file_name(record):
    """<FinishedAt, sortable>-<id12>.json: names sort by time of death."""
    finished = diag.parse_timestamp((record.get("state") or {}).get("FinishedAt")) or record.get("recorded_at") or 0
    return "%017.6f-%s.json" % (finished, (record.get("container_id") or "unknown")[:12])


def summarize(record):
    """{cause, reason, container_id, finished_at, exit, stopped_by_unit} of a record, by the rules of
    _diagnosis.classify for a dead container (no kernel log, disks or mounts: they are read at diagnosis time
    for the container that runs now). None without a record."""
    if not record:
        return None
    observation = {
        "name": None, "exists": True, "container_id": record.get("container_id"),
        "daemon": {"healthy": True}, "state": dict(record.get("state") or {}, Running=False, Restarting=False),
        "log_lines": [diag.strip_docker_timestamp(line)[1] for line in record.get("log_tail") or []],
        "oom_events": [], "disks": [], "mounts": [], "ray_head": None,
        "shm_size": record.get("shm_size_bytes"), "bounded_filesystems": record.get("bounded_filesystems") or [],
    }
    findings = diag.classify(observation)
    cause, reason = (findings[0]["cause"], findings[0]["reason"]) if findings else ("unknown", "no finding")
    if record.get("stopped_by_unit"):
        # docker stop sent SIGTERM: however the process then exited (Ray drains and exits 1), that is the cause,
        # unless the container had died of something worse first.
        if cause in ("unknown", "normal_exit", "sigterm"):
            cause = "sigterm"
        reason = "stopped by its unit (a systemd stop or restart: docker stop, SIGTERM); " + reason
    return {"cause": cause, "reason": reason, "container_id": record.get("container_id"),
            "finished_at": (record.get("state") or {}).get("FinishedAt"), "exit": record.get("exit"),
            "stopped_by_unit": bool(record.get("stopped_by_unit"))}


def to_prune(names, keep=DEATH_RECORDS_KEPT):
    """The record file names beyond the newest `keep`."""
    records = sorted(name for name in names if name.endswith(".json"))
    return records[:-keep] if keep and len(records) > keep else ([] if keep else records)


def newest(directory):
    """(path, record) of the newest record in a worker's deaths directory; (None, None) when there is none."""
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(".json"))
    except OSError:
        return None, None
    for name in reversed(names):
        path = os.path.join(directory, name)
        try:
            with open(path) as handle:
                return path, json.load(handle)
        except (OSError, ValueError):
            continue
    return None, None
