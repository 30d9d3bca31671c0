"""The record of a dead worker container, kept by the supervisor before its unit replaces the container.

What a record holds, where it goes and how it is redacted: module_utils/_death_record.py, which the role copies
beside this package (with the _diagnosis rules it uses), so the record and the diagnosis share one set of rules.
"""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from fleetwarden_worker import common
from fleetwarden_worker.common import INFO, WARNING, log

# recovery_incident_root's default (roles/recovery); a test holds the two together.
INCIDENT_ROOT = os.environ.get("FLEETWARDEN_INCIDENT_ROOT", "/var/lib/fleetwarden/incidents")
LOG_LINES = 50


def record(name, stopped_by_unit, incident_root=None):
    """Writes the record of the container `name`, which has just ended; returns its path, or None (logged)."""
    try:
        from ansible_collections.fleetwarden.fleet.plugins.module_utils import _death_record as death_record
        from ansible_collections.fleetwarden.fleet.plugins.module_utils import _diagnosis as diag

        # Both at once: the unit replaces the container only after this record, so it is on the restart's path.
        with ThreadPoolExecutor(max_workers=1) as pool:
            asking_logs = pool.submit(common.docker, "logs", "--tail", str(LOG_LINES), "--timestamps", name,
                                      timeout=20)
            inspected = common.docker("inspect", "--type", "container", name, timeout=20)
            logs = asking_logs.result()
        if inspected.returncode != 0:
            log(WARNING, f"cannot record the death of {name}: docker inspect: {inspected.stderr.strip()[:300]}")
            return None
        container = json.loads(inspected.stdout)[0]
        lines = diag.merge_docker_logs(logs.stdout, logs.stderr, LOG_LINES) if logs.returncode == 0 else []
        entry = death_record.build(container, lines, stopped_by_unit, time.time())
        directory = death_record.directory(incident_root or INCIDENT_ROOT, name)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, death_record.file_name(entry))
        handle = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(handle, "w") as out:
            json.dump(entry, out, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)
        for old in death_record.to_prune(os.listdir(directory)):
            os.remove(os.path.join(directory, old))
    except (OSError, ValueError, IndexError, ImportError) as exc:
        log(WARNING, f"cannot record the death of {name}: {exc}")
        return None
    log(INFO, f"recorded the death of {name} ({entry['exit']['meaning']}) in {path}")
    return path
