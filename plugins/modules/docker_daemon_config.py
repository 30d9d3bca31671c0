#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: docker_daemon_config
short_description: Merge settings into /etc/docker/daemon.json, validated, written atomically
description:
  - Reads the daemon configuration file, sets the keys given in O(settings) and keeps every other key, validates
    the merged result the way dockerd would, and only then writes it, atomically (a temporary file renamed over
    the old one). An invalid result fails, naming each bad key, and the file stays untouched.
  - Reports which top-level keys changed and whether dockerd needs a restart (RV(restart_required)) or a reload
    (C(SIGHUP)) is enough. The module never restarts dockerd.
  - Optionally lists the running containers whose log driver or options differ from the new daemon defaults;
    dockerd applies C(log-opts) only to containers created after the change. They are reported, never restarted.
  - Merge and validation live in C(plugins/module_utils/_daemon_config.py).
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
    details: The diff is the rendered JSON before and after.
  platform:
    platforms: linux
options:
  path:
    description: The daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - Top-level keys this caller owns, with their values. A value of V(null) removes the key.
      - C(log-opts) values may be given as numbers or booleans; they are written as the strings dockerd wants.
    type: dict
    required: true
  merge_keys:
    description:
      - Keys of O(settings) whose object value is merged one level deep into the existing one instead of
        replacing it, so entries declared by someone else survive.
    type: list
    elements: str
    default: [runtimes]
  mode:
    description: File mode of a newly created file; an existing file keeps its mode.
    type: raw
    default: "0644"
  check_containers:
    description:
      - List the running containers whose log driver or options differ from the merged config, with the docker
        CLI O(docker_cli). Skipped, with RV(containers_checked=false), when the daemon does not answer.
    type: bool
    default: true
seealso:
  - name: dockerd configuration file reference
    description: The keys and their meaning.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Rotate container logs and keep containers up across daemon restarts
  fleetwarden.fleet.docker_daemon_config:
    settings:
      log-driver: json-file
      log-opts: {max-size: 500m, max-file: 3, compress: true}
      live-restore: true
  register: daemon_config

- name: Restart dockerd only when a key that needs it changed
  ansible.builtin.systemd_service:
    name: docker
    state: restarted
  when: daemon_config.restart_required

- name: Add the NVIDIA runtime next to any runtime already declared
  fleetwarden.fleet.docker_daemon_config:
    settings:
      runtimes:
        nvidia: {path: /usr/bin/nvidia-container-runtime, runtimeArgs: []}
"""

RETURN = r"""
before:
  description: The configuration found on disk ({} when the file did not exist).
  returned: always
  type: dict
after:
  description: The merged configuration, as written (or as it would be written in check mode).
  returned: always
  type: dict
  sample: {"debug": false, "live-restore": true, "log-driver": "json-file",
           "log-opts": {"compress": "true", "max-file": "3", "max-size": "500m"}}
changed_keys:
  description: Top-level keys whose value changed.
  returned: always
  type: list
  elements: str
  sample: [live-restore, log-opts]
restart_required:
  description: Whether a changed key needs a dockerd restart; V(false) when only reloadable keys changed.
  returned: always
  type: bool
containers_checked:
  description: Whether running containers were inspected for RV(containers_with_other_log_opts).
  returned: always
  type: bool
containers_with_other_log_opts:
  description:
    - Running containers whose log driver or options differ from the merged configuration. They keep the
      settings they were created with until they are re-created.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: 3f4e..., name: ray-worker, log_driver: json-file,
       log_opts: {max-size: 100m, max-file: "1"}}
"""

import json  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import os  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import tempfile  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible.module_utils.common.text.converters import to_native  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._daemon_config import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    DaemonConfigError,
    changed_keys,
    containers_with_other_log_opts,
    load_daemon_config,
    merge_daemon_config,
    render_daemon_config,
    restart_required,
    validate_daemon_config,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._docker_cli import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    DOCKER_CLI_ARGUMENT_SPEC,
    find_docker_cli,
)


class DaemonConfig:
    """Reads, merges, validates and writes daemon.json; the rules are in module_utils._daemon_config."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.path = self.params["path"]

    def read(self):
        if not os.path.exists(self.path):
            return "", {}
        with open(self.path) as handle:
            text = handle.read()
        return text, load_daemon_config(text)

    def write(self, content):
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        existed = os.path.exists(self.path)
        handle, tmp_path = tempfile.mkstemp(prefix=".daemon.json.", dir=directory)
        try:
            with os.fdopen(handle, "w") as tmp:
                tmp.write(content)
                tmp.flush()
                os.fsync(tmp.fileno())
            self.module.atomic_move(tmp_path, self.path)
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
        if not existed:
            self.module.set_mode_if_different(self.path, self.params["mode"], False)

    def running_containers(self):
        """docker inspect of the running containers, or None when the daemon does not answer."""
        cli = find_docker_cli(self.module)
        if cli is None:
            return None
        rc, out, _err = self.module.run_command([cli, "ps", "--quiet", "--no-trunc"])
        if rc != 0:
            return None
        ids = out.split()
        if not ids:
            return []
        rc, out, err = self.module.run_command([cli, "inspect", *ids])
        if rc != 0:
            # A container that exited between ps and inspect: inspect still prints the others.
            self.module.warn("docker inspect: %s" % err.strip())
        try:
            return json.loads(out or "[]")
        except ValueError:
            return None

    def run(self):
        try:
            old_text, before = self.read()
        except DaemonConfigError as exc:
            self.module.fail_json(msg="%s: %s; fix or remove it first" % (self.path, exc), errors=exc.errors)
        after = merge_daemon_config(before, self.params["settings"], tuple(self.params["merge_keys"]))
        errors = validate_daemon_config(after)
        if errors:
            self.module.fail_json(
                msg="%s was not written: the merged configuration is invalid: %s" % (self.path, "; ".join(errors)),
                errors=errors, before=before, after=after)

        keys = changed_keys(before, after)
        new_text = render_daemon_config(after)
        result = dict(changed=bool(keys), before=before, after=after, changed_keys=keys,
                      restart_required=restart_required(keys))
        if keys and self.module._diff:
            result["diff"] = dict(before=old_text, after=new_text,
                                  before_header=self.path, after_header=self.path)
        if keys and not self.module.check_mode:
            try:
                self.write(new_text)
            except (IOError, OSError) as exc:
                self.module.fail_json(msg="cannot write %s: %s" % (self.path, to_native(exc)), **result)

        inspected = self.running_containers() if self.params["check_containers"] else None
        result["containers_checked"] = inspected is not None
        result["containers_with_other_log_opts"] = containers_with_other_log_opts(inspected or [], after)
        for container in result["containers_with_other_log_opts"]:
            self.module.warn(
                "container %s (%s) still logs with %s %s; daemon log-opts apply only to containers created "
                "after the change, re-create it to pick them up"
                % (container["name"], container["id"][:12], container["log_driver"],
                   json.dumps(container["log_opts"], sort_keys=True)))
        return result


def main():
    argument_spec = dict(
        path=dict(type="path", default="/etc/docker/daemon.json"),
        settings=dict(type="dict", required=True),
        merge_keys=dict(type="list", elements="str", default=["runtimes"], no_log=False),
        mode=dict(type="raw", default="0644"),
        check_containers=dict(type="bool", default=True),
        **DOCKER_CLI_ARGUMENT_SPEC,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(**DaemonConfig(module).run())


if __name__ == "__main__":
    main()
