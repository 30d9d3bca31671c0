# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The pure parts of keeping a dead worker's evidence (the incident_evidence module does the I/O).

- ``inspect_secrets`` / ``redact_inspect``: the secrets in ``docker inspect`` output and that output redacted, as
  container_diagnosis redacts (the rules are in ``_diagnosis``).
- ``merge_history``: a worker's death records with this death added once, the expired ones dropped.
- ``incidents_to_remove``: which of a worker's incident directories the retention limit removes.
- ``parse_histories``: every worker's death records from the text of the host's history file.

Runs on managed hosts: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.fleetwarden.fleet.plugins.module_utils._diagnosis import (
    env_secrets,
    redact_env,
    redact_secrets,
)


def inspect_secrets(inspect):
    """Every secret of the inspected containers' env (setup commands decoded), for redacting free text."""
    secrets = set()
    for item in inspect if isinstance(inspect, list) else []:
        secrets.update(env_secrets((item.get("Config") or {}).get("Env")))
    return sorted(secrets)


def redact_inspect(inspect, secrets=()):
    """``docker inspect`` output with env values redacted and secrets cut from the arguments (changed in place)."""
    for item in inspect if isinstance(inspect, list) else []:
        config = item.get("Config") or {}
        if isinstance(config.get("Env"), list):
            config["Env"] = ["%s=%s" % (key, value) for key, value in redact_env(config["Env"]).items()]
        for holder, key in ((item, "Args"), (config, "Cmd"), (config, "Entrypoint")):
            if isinstance(holder.get(key), list):
                holder[key] = [redact_secrets(a, secrets) if isinstance(a, str) else a for a in holder[key]]
    return inspect


def merge_history(history, name, record, now, keep_s):
    """The worker's records in ``history`` (changed in place): ``record`` added unless the same death (container
    and time) is there, and records older than ``keep_s`` seconds before ``now`` dropped."""
    records = [r for r in history.get(name, []) if isinstance(r, dict)]
    if record and not any(r.get("container_id") == record.get("container_id") and r.get("at") == record.get("at")
                          for r in records):
        records.append(record)
    records = [r for r in records if isinstance(r.get("at"), (int, float)) and r["at"] > now - keep_s]
    history[name] = records
    return records


def incidents_to_remove(names, keep):
    """The incident directory names (timestamps, which sort by time) beyond the newest ``keep``."""
    return sorted(names)[:-keep]


def parse_histories(text):
    """``{worker: [record, ...]}`` from the text of the history file (``{worker: [records]}``, what
    ``merge_history`` keeps); an empty, broken or misshapen file gives ``{}``, records that are not dicts are
    dropped."""
    try:
        history = json.loads(text) if text and text.strip() else {}
    except ValueError:
        return {}
    if not isinstance(history, dict):
        return {}
    return {name: [r for r in records if isinstance(r, dict)] for name, records in history.items()
            if isinstance(records, list)}
