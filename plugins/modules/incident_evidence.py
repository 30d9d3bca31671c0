#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Keep a dead worker's evidence in one round trip (the recovery role's step 2)."""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetwarden.fleet.plugins.module_utils._diagnosis import merge_docker_logs, redact_secrets
from ansible_collections.fleetwarden.fleet.plugins.module_utils._docker_cli import (
    DOCKER_CLI_ARGUMENT_SPEC,
    find_docker_cli,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._incident import (
    incidents_to_remove,
    inspect_secrets,
    merge_history,
    redact_inspect,
)

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
  - The recovery role calls it from C(playbooks/recover.yml), step 2. See C(docs/recovery.md).
options:
  name:
    description: Name of the container, the worker's name.
    type: str
    required: true
  dir:
    description: The incident directory; its parent holds the worker's incidents.
    type: path
    required: true
  diagnosis:
    description: The worker's report entry; written as diagnosis.json.
    type: dict
    default: {}
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
  diff_mode: {support: none}
extends_documentation_fragment:
  - fleetwarden.fleet.docker
author: fleetwarden maintainers
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
dir: {description: The incident directory., returned: always, type: str}
files: {description: Files written in it., returned: always, type: list, elements: str}
removed: {description: Older incident directories removed by the retention limit., returned: always, type: list,
          elements: str}
history_count: {description: Records kept for this worker in the history file., returned: always, type: int}
"""

class IncidentEvidence:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.files = {}

    def docker(self, *args):
        return self.module.run_command([find_docker_cli(self.module, required=True), *args])

    def collect(self):
        p = self.params
        sensitive = p["include_sensitive"]
        secrets = []
        rc, out, _err = self.docker("inspect", p["name"])
        if rc == 0:
            inspect = json.loads(out)
            secrets = inspect_secrets(inspect)
            self.files["inspect.json"] = json.dumps(inspect if sensitive else redact_inspect(inspect, secrets),
                                                    indent=2) + "\n"
        diagnosis = json.dumps(p["diagnosis"], indent=2, sort_keys=True)
        self.files["diagnosis.json"] = (diagnosis if sensitive else redact_secrets(diagnosis, secrets)) + "\n"
        rc, out, err = self.docker("logs", "--timestamps", "--tail", str(p["log_lines"]), p["name"])
        if rc == 0:
            lines = merge_docker_logs(out, err, p["log_lines"])
            self.files["logs.txt"] = "".join((line if sensitive else redact_secrets(line, secrets)) + "\n"
                                             for line in lines)
        rc, _out, _err = self.docker("info", "--format", "{{.ServerVersion}}")
        if rc != 0:
            journalctl = self.module.get_bin_path("journalctl")
            if journalctl:
                rc, out, _err = self.module.run_command([journalctl, "--unit", "docker.service", "--lines", "200",
                                                         "--no-pager"])
                self.files["dockerd-journal.txt"] = out if sensitive else "\n".join(
                    redact_secrets(line, secrets) for line in out.splitlines()) + "\n"

    def changed_files(self):
        changed = []
        for name, content in sorted(self.files.items()):
            path = os.path.join(self.params["dir"], name)
            try:
                with open(path) as handle:
                    if handle.read() == content:
                        continue
            except OSError:
                pass
            changed.append(name)
        return changed

    def write(self, name, content, path=None):
        path = path or os.path.join(self.params["dir"], name)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.rename(tmp, path)

    def retention(self):
        parent = os.path.dirname(self.params["dir"].rstrip("/"))
        incidents = [d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))]
        return [os.path.join(parent, d) for d in incidents_to_remove(incidents, self.params["keep"])]

    def run(self):
        p = self.params
        self.collect()
        changed_files = self.changed_files()
        history, history_changed = {}, False
        if p["history_file"] and p["record"] is not None:
            try:
                with open(p["history_file"]) as handle:
                    history = json.load(handle)
            except (OSError, ValueError):
                history = {}
            before = json.dumps(history.get(p["name"]), sort_keys=True)
            records = merge_history(history if isinstance(history, dict) else {}, p["name"], p["record"], time.time(),
                                    p["history_keep_s"])
            history_changed = json.dumps(records, sort_keys=True) != before
        if not self.module.check_mode:
            if not os.path.isdir(p["dir"]):
                os.makedirs(p["dir"], 0o700)
            for name in changed_files:
                self.write(name, self.files[name])
            if history_changed:
                self.write(None, json.dumps(history, sort_keys=True) + "\n", path=p["history_file"])
        removed = self.retention() if os.path.isdir(p["dir"]) else []
        if not self.module.check_mode:
            for path in removed:
                shutil.rmtree(path, ignore_errors=True)
        self.module.exit_json(changed=bool(changed_files or history_changed or removed), dir=p["dir"],
                              files=sorted(self.files), removed=removed,
                              history_count=len(history.get(p["name"], [])) if isinstance(history, dict) else 0)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            dir=dict(type="path", required=True),
            diagnosis=dict(type="dict", default={}),
            include_sensitive=dict(type="bool", default=False),
            log_lines=dict(type="int", default=500),
            keep=dict(type="int", default=20),
            history_file=dict(type="path"),
            record=dict(type="dict"),
            history_keep_s=dict(type="int", default=86400),
            **DOCKER_CLI_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
    )
    if module.params["keep"] < 1:
        module.fail_json(msg="keep must be at least 1")
    IncidentEvidence(module).run()


if __name__ == "__main__":
    main()
