#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Keep dead workers' evidence in one round trip (the recovery role's step 2)."""

DOCUMENTATION = r"""
---
module: incident_evidence
short_description: Keep a worker container's evidence in an incident directory before anything is removed
description:
  - Writes C(diagnosis.json), C(inspect.json) (docker inspect) and C(logs.txt) (docker logs, stdout and stderr
    interleaved by time) into O(dir), and C(dockerd-journal.txt) when the daemon does not answer.
  - Env values, arguments and log lines are redacted as container_diagnosis redacts them, unless
    O(include_sensitive).
  - Appends O(record) to the worker's list in O(history_file) (a record of the same death is kept once, records
    older than O(history_keep_s) are dropped), and keeps only the last O(keep) incident directories of the worker.
  - The recovery role calls it from C(playbooks/recover.yml), step 2, once for all of a host's faulty workers
    (O(workers)). See C(docs/recovery.md).
options:
  name:
    description: Name of the container, the worker's name. One of O(name) and O(workers) is required.
    type: str
  dir:
    description: The incident directory; its parent holds the worker's incidents. Required with O(name).
    type: path
  diagnosis:
    description: The worker's report entry; written as diagnosis.json.
    type: dict
    default: {}
  workers:
    description:
      - Keep several workers' evidence in one call (one remote round trip for a host's faulty workers).
        Each item takes the per-worker options; the other options apply to every worker, and the history
        file is read and written once.
      - The results are in RV(workers), one per item in its order.
    type: list
    elements: dict
    suboptions:
      name:
        description: The worker's name.
        type: str
        required: true
      dir:
        description: The worker's incident directory, as O(dir).
        type: path
        required: true
      diagnosis:
        description: The worker's report entry, as O(diagnosis).
        type: dict
        default: {}
      record:
        description: The worker's death record, as O(record).
        type: dict
  include_sensitive:
    description: Keep env values and log lines unredacted.
    type: bool
    default: false
  log_lines:
    description: How many of the last log lines to keep.
    type: int
    default: 500
  keep:
    description: Incident directories of this worker to keep, this one included.
    type: int
    default: 20
  history_file:
    description: "JSON file with every worker's death records on this host: C({worker: [record, ...]})."
    type: path
  record:
    description: This death's record (container_diagnosis's C(record)); omitted, the history is left alone.
    type: dict
  history_keep_s:
    description: Records older than this many seconds are dropped.
    type: int
    default: 86400
attributes:
  check_mode: {support: full, description: Reports what it would write and writes nothing.}
  diff_mode:
    support: none
    description: Returns details of what has changed (or would change in check mode) when run with diff mode.
extends_documentation_fragment:
  - fleetwarden.fleet.docker
author: fleetwarden maintainers (@fleetwarden)
"""

EXAMPLES = r"""
- name: Keep the evidence of a dead worker
  fleetwarden.fleet.incident_evidence:
    name: ray-worker
    dir: /var/lib/fleetwarden/incidents/ray-worker/20250305T142231Z
    diagnosis: "{{ diagnosis }}"
    history_file: /var/lib/fleetwarden/incidents/history.json
    record: "{{ diagnosis.record }}"
"""

RETURN = r"""
dir: {description: The incident directory., returned: with O(name), type: str}
files: {description: Files written in it., returned: with O(name), type: list, elements: str}
removed: {description: Older incident directories removed by the retention limit., returned: with O(name),
          type: list, elements: str}
history_count: {description: Records kept for this worker in the history file., returned: with O(name), type: int}
running:
  description:
    - Whether docker inspect says the container runs, now that the evidence was kept; null when dockerd did not
      answer or the container does not exist. recover.yml leaves a worker whose container ran through dockerd's
      outage (live-restore) running.
  returned: with O(name)
  type: bool
container_id: {description: The container's ID as inspected; null when not inspected., returned: with O(name),
               type: str}
workers:
  description: With O(workers), per item in its order, C(name), C(changed) and the keys above.
  returned: with O(workers)
  type: list
  elements: dict
"""

import json  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import os  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import shutil  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import time  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._diagnosis import merge_docker_logs, redact_secrets  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._docker_cli import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    DOCKER_CLI_ARGUMENT_SPEC,
    find_docker_cli,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._incident import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    incidents_to_remove,
    inspect_secrets,
    merge_history,
    redact_inspect,
)


class IncidentEvidence:
    """One worker's evidence: `spec` holds its name, dir, diagnosis and record; `params` the options shared by all."""

    def __init__(self, module, spec):
        self.module = module
        self.params = module.params
        self.spec = spec
        self.files = {}
        self.inspected = None

    def docker(self, *args):
        return self.module.run_command([find_docker_cli(self.module, required=True), *args])

    def collect(self, daemon_up):
        p, name = self.params, self.spec["name"]
        sensitive = p["include_sensitive"]
        secrets = []
        rc, out, _err = self.docker("inspect", name)
        if rc == 0:
            inspect = json.loads(out)
            self.inspected = inspect[0] if inspect and isinstance(inspect[0], dict) else None
            secrets = inspect_secrets(inspect)
            self.files["inspect.json"] = json.dumps(inspect if sensitive else redact_inspect(inspect, secrets),
                                                    indent=2) + "\n"
        diagnosis = json.dumps(self.spec["diagnosis"], indent=2, sort_keys=True)
        self.files["diagnosis.json"] = (diagnosis if sensitive else redact_secrets(diagnosis, secrets)) + "\n"
        rc, out, err = self.docker("logs", "--timestamps", "--tail", str(p["log_lines"]), name)
        if rc == 0:
            lines = merge_docker_logs(out, err, p["log_lines"])
            self.files["logs.txt"] = "".join((line if sensitive else redact_secrets(line, secrets)) + "\n"
                                             for line in lines)
        if not daemon_up():
            journalctl = self.module.get_bin_path("journalctl")
            if journalctl:
                rc, out, _err = self.module.run_command([journalctl, "--unit", "docker.service", "--lines", "200",
                                                         "--no-pager"])
                self.files["dockerd-journal.txt"] = out if sensitive else "\n".join(
                    redact_secrets(line, secrets) for line in out.splitlines()) + "\n"

    def changed_files(self):
        changed = []
        for name, content in sorted(self.files.items()):
            path = os.path.join(self.spec["dir"], name)
            try:
                with open(path) as handle:
                    if handle.read() == content:
                        continue
            except OSError:
                pass
            changed.append(name)
        return changed

    def retention(self):
        parent = os.path.dirname(self.spec["dir"].rstrip("/"))
        incidents = [d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))]
        return [os.path.join(parent, d) for d in incidents_to_remove(incidents, self.params["keep"])]

    def keep(self, daemon_up):
        """Collects and writes this worker's files and prunes its old incidents; returns its result."""
        self.collect(daemon_up)
        changed_files = self.changed_files()
        directory = self.spec["dir"]
        if not self.module.check_mode:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            for name in changed_files:
                write(os.path.join(directory, name), self.files[name])
        removed = self.retention() if os.path.isdir(directory) else []
        if not self.module.check_mode:
            for path in removed:
                shutil.rmtree(path, ignore_errors=True)
        state = (self.inspected or {}).get("State") or {}
        return {"name": self.spec["name"], "changed": bool(changed_files or removed), "dir": directory,
                "files": sorted(self.files), "removed": removed,
                "running": bool(state.get("Running")) if self.inspected else None,
                "container_id": (self.inspected or {}).get("Id")}


def write(path, content):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.rename(tmp, path)


def worker_specs(module):
    """The workers whose evidence to keep (the single worker's options, or ``workers``), checked."""
    p = module.params
    specs = p["workers"] if p["workers"] is not None else [
        {"name": p["name"], "dir": p["dir"], "diagnosis": p["diagnosis"], "record": p["record"]}]
    for spec in specs:  # the argument spec checks each item (name and dir required, dir a path)
        spec["diagnosis"] = spec.get("diagnosis") or {}
    return specs


def update_history(module, records):
    """Adds the records to the history file once for all of them; returns (history, whether it changed)."""
    p = module.params
    if not (p["history_file"] and records):
        return {}, False
    try:
        with open(p["history_file"]) as handle:
            history = json.load(handle)
    except (OSError, ValueError):
        history = {}
    history = history if isinstance(history, dict) else {}
    before = json.dumps(history, sort_keys=True)
    for spec in records:
        merge_history(history, spec["name"], spec["record"], time.time(), p["history_keep_s"])
    changed = json.dumps(history, sort_keys=True) != before
    if changed and not module.check_mode:
        write(p["history_file"], json.dumps(history, sort_keys=True) + "\n")
    return history, changed


def run(module):
    """Every worker's evidence, then the history file once for all of their records."""
    p = module.params
    specs = worker_specs(module)
    daemon = {}

    def daemon_up():
        """Asked once, for the first worker that needs to know: the journal is kept when dockerd does not answer."""
        if "up" not in daemon:
            docker = find_docker_cli(module, required=True)
            daemon["up"] = module.run_command([docker, "info", "--format", "{{.ServerVersion}}"])[0] == 0
        return daemon["up"]

    results = [IncidentEvidence(module, spec).keep(daemon_up) for spec in specs]
    records = [spec for spec in specs if spec.get("record") is not None]
    history, history_changed = update_history(module, records)
    for result in results:
        result["history_count"] = len(history.get(result["name"], [])) if isinstance(history, dict) else 0
        result["changed"] = result["changed"] or (history_changed and any(
            spec["name"] == result["name"] for spec in records))
    if p["workers"] is not None:
        module.exit_json(changed=any(r["changed"] for r in results) or history_changed, workers=results)
    single = results[0]
    module.exit_json(**dict((k, v) for k, v in single.items() if k != "name"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            dir=dict(type="path"),
            diagnosis=dict(type="dict", default={}),
            workers=dict(type="list", elements="dict", options=dict(
                name=dict(type="str", required=True),
                dir=dict(type="path", required=True),
                diagnosis=dict(type="dict", default={}),
                record=dict(type="dict"),
            )),
            include_sensitive=dict(type="bool", default=False),
            log_lines=dict(type="int", default=500),
            keep=dict(type="int", default=20),
            history_file=dict(type="path"),
            record=dict(type="dict"),
            history_keep_s=dict(type="int", default=86400),
            **DOCKER_CLI_ARGUMENT_SPEC,
        ),
        mutually_exclusive=[("name", "workers")],
        required_one_of=[("name", "workers")],
        required_by={"name": "dir"},
        supports_check_mode=True,
    )
    if module.params["keep"] < 1:
        module.fail_json(msg="keep must be at least 1")
    run(module)


if __name__ == "__main__":
    main()
