#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: worker_unit
short_description: Render one supervised worker into its systemd units, env file and declaration file
description:
  - Validates a worker declaration (the shape of C(worker_service_workers)), fills its defaults and accelerator
    profile, and writes, atomically and only where the content changed
    C(fleetwarden-worker-<name>.service), C(fleetwarden-probe-<name>.service), the env file
    C(/etc/fleetwarden/workers/<name>.env) (mode 0600) and the declaration C(/etc/fleetwarden/workers/<name>.json)
    (mode 0600).
  - Reports RV(restart_required) when anything the worker runs from changed, so the caller restarts exactly that
    worker. The module never starts, stops or restarts a running worker (except with C(state=absent) in O(worker)).
  - Env values never leave the host in the result or the diff; they are masked.
  - The rendering lives in C(plugins/module_utils/_worker_unit.py).
version_added: 0.1.0
author:
  - fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - fleetwarden.fleet.docker
attributes:
  check_mode:
    support: full
    details: Reports the change and the diff without writing.
  diff_mode:
    support: full
    details: Units and the declaration before and after, env values masked; the env file is never shown.
  platform:
    platforms: linux
options:
  worker:
    description: One declaration without its env (see the worker_service role's README for the keys).
    type: dict
    required: true
  env:
    description: The worker's environment. May hold secrets; never logged.
    type: dict
    default: {}
  defaults:
    description: Role-wide defaults merged under the declaration (probe, restart, alert, pull).
    type: dict
    default: {}
  profiles:
    description:
      - Accelerator profiles by name, each with runtime, env, devices, device_globs, privileged, cap_add, ulimits
        and host_network.
    type: dict
    default: {}
  groups:
    description: The host's groups, for the rule that a C(tpu) worker needs a host in O(tpu_group).
    type: list
    elements: str
    default: []
  tpu_group:
    description: The inventory group of TPU hosts.
    type: str
    default: tpu
  systemd_version:
    description: The host's systemd version; 0 reads it from C(systemctl --version).
    type: int
    default: 0
  unit_dir:
    description: Where unit files go.
    type: path
    default: /etc/systemd/system
  paths:
    description:
      - Overrides of the host paths (python, tool, entrypoint, config_dir).
      - The docker CLI is O(docker_cli), resolved to an absolute path for the units.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Render a worker
  fleetwarden.fleet.worker_unit:
    worker:
      name: trainer
      image: fleet/trainer:1.4
      command: [python3, -m, trainer]
      setup_commands: ["mkdir -p /data/ckpt"]
      restart: {max_per_hour: 10}
    env: {HF_TOKEN: "{{ vault_hf_token }}"}
  register: rendered
"""

RETURN = r"""
restart_required:
  description: Something the worker runs from changed (unit, env file or declaration); restart that worker.
  type: bool
  returned: always
daemon_reload_required:
  description: A unit file changed.
  type: bool
  returned: always
unit:
  description: The worker's unit name.
  type: str
  returned: always
  sample: fleetwarden-worker-trainer.service
probe_unit:
  description: The probe's unit name, or null when the worker declares no probe.
  type: str
  returned: always
files:
  description: The files written (or that would be written in check mode).
  type: list
  elements: str
  returned: always
declaration:
  description: The normalized declaration, env values masked.
  type: dict
  returned: when state is present
"""

import glob  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import json  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import os  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import tempfile  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._docker_cli import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    DOCKER_CLI_ARGUMENT_SPEC,
    docker_cli_path,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_unit import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    PATHS,
    config_paths,
    declaration_document,
    env_file_text,
    normalize,
    parse_systemd_version,
    probe_unit_text,
    unit_names,
    worker_errors,
    worker_unit_text,
)

MASK = "********"


class WorkerUnit:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.paths = dict(PATHS, **(self.params["paths"] or {}))
        self.paths["docker"] = docker_cli_path(module)
        self.changed_files = []
        self.diffs = []

    def run(self):
        worker = dict(self.params["worker"], env=self.params["env"] or {})
        errors = worker_errors(worker, self.params["groups"], self.params["profiles"] or None, self.params["tpu_group"])
        if errors:
            self.module.fail_json(msg="invalid worker declaration: " + "; ".join(errors), errors=errors)
        name = worker["name"]
        units = unit_names(name)
        files = self._files(name)
        if worker.get("state", "present") == "absent":
            return self.absent(name, units, files)
        decl = normalize(worker, self.params["defaults"], self.params["profiles"])
        version = self.params["systemd_version"] or self._systemd_version()
        devices = sorted(d for pattern in decl["profile"]["device_globs"] for d in glob.glob(pattern))
        doc = declaration_document(decl, version, self.paths, devices, image_id=self._image_id(decl["image"]))
        has_probe = doc["probe"]["enabled"]
        self._ensure_dir(self.paths["config_dir"], 0o700)
        reload_needed = self._put(files["unit"], worker_unit_text(decl, version, self.paths, devices), 0o644, diff=True)
        probe_changed = self._put(files["probe"], probe_unit_text(decl, self.paths) if has_probe else None, 0o644,
                                  diff=True)
        env_changed = self._put(files["env_file"], env_file_text(decl), 0o600, diff=False)
        doc_changed = self._put(files["declaration"], json.dumps(doc, indent=2, sort_keys=True) + "\n", 0o600,
                                diff=True, masked=json.dumps(_masked(doc), indent=2, sort_keys=True) + "\n")
        self.module.exit_json(
            changed=bool(self.changed_files),
            restart_required=bool(reload_needed or probe_changed or env_changed or doc_changed),
            daemon_reload_required=bool(reload_needed or probe_changed), unit=units["worker"],
            probe_unit=units["probe"] if has_probe else None, container=name, files=self.changed_files,
            declaration=_masked(decl), diff=self.diffs)

    def absent(self, name, units, files):
        present = [path for path in files.values() if os.path.exists(path)]
        if present and not self.module.check_mode:
            for unit in (units["probe"], units["worker"]):
                self.module.run_command(["systemctl", "disable", "--now", unit])
                # A worker whose restarts ran out stays listed as failed until this.
                self.module.run_command(["systemctl", "reset-failed", unit])
            self.module.run_command([self.paths["docker"], "rm", "--force", name])
            for path in present:
                os.unlink(path)
        self.module.exit_json(changed=bool(present), restart_required=False, daemon_reload_required=bool(present),
                              unit=units["worker"], probe_unit=None, container=name, files=present)

    def _files(self, name):
        unit_dir = self.params["unit_dir"]
        units = unit_names(name)
        return dict(config_paths(name, self.paths), unit=os.path.join(unit_dir, units["worker"]),
                    probe=os.path.join(unit_dir, units["probe"]))

    def _systemd_version(self):
        _rc, out, err = self.module.run_command(["systemctl", "--version"])
        try:
            return parse_systemd_version(out)
        except ValueError as exc:
            self.module.fail_json(msg="cannot tell the systemd version: %s %s" % (exc, err))

    def _image_id(self, image):
        # Part of the declaration file, so a new image under the same tag restarts the worker.
        rc, out, _err = self.module.run_command([self.paths["docker"], "image", "inspect", "--format", "{{.Id}}",
                                                 image])
        return out.strip() if rc == 0 else None

    def _ensure_dir(self, path, mode):
        if not os.path.isdir(path) and not self.module.check_mode:
            os.makedirs(path, mode)
            os.chmod(path, mode)

    def _put(self, path, content, mode, diff, masked=None):
        """Writes content (None removes the file) when it differs. Returns whether it changed."""
        before = None
        if os.path.exists(path):
            with open(path) as handle:
                before = handle.read()
            if content is not None and before == content and (os.stat(path).st_mode & 0o777) == mode:
                return False
        if content is None and before is None:
            return False
        self.changed_files.append(path)
        if diff and self.module._diff:
            shown_before = before if masked is None or before is None else _mask_text(before)
            self.diffs.append({"before_header": path, "after_header": path, "before": shown_before or "",
                               "after": (masked if masked is not None else content) or ""})
        if self.module.check_mode:
            return True
        if content is None:
            os.unlink(path)
            return True
        directory = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return True


def _masked(decl):
    masked = dict(decl)
    masked["env"] = dict((key, MASK) for key in decl.get("env", {}))
    return masked


def _mask_text(text):
    try:
        return json.dumps(_masked(json.loads(text)), indent=2, sort_keys=True) + "\n"
    except ValueError:
        return MASK


def main():
    module = AnsibleModule(
        argument_spec=dict(
            worker=dict(type="dict", required=True),
            env=dict(type="dict", default={}, no_log=True),
            defaults=dict(type="dict", default={}),
            profiles=dict(type="dict", default={}),
            groups=dict(type="list", elements="str", default=[]),
            tpu_group=dict(type="str", default="tpu"),
            systemd_version=dict(type="int", default=0),
            unit_dir=dict(type="path", default="/etc/systemd/system"),
            paths=dict(type="dict", default={}),
            **DOCKER_CLI_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
    )
    WorkerUnit(module).run()


if __name__ == "__main__":
    main()
