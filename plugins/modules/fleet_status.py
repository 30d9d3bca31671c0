#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: fleet_status
short_description: Everything `fleetwarden status` and `fleetwarden doctor` need from one host, in one call
description:
  - Reads every worker declaration in C(/etc/fleetwarden/workers/*.json) and, for all of them at once, the
    systemd units (one C(systemctl show)), the containers (one C(docker inspect)), the images (one
    C(docker image inspect)), the restarts systemd scheduled in the last hour (one C(journalctl) query),
    heartbeat ages, the probe's last failure, and the declared mounts.
  - Also the host, once (dockerd's settings (C(docker info)), disk and inodes of C(/) and docker's root,
    memory, OOM kills since boot, versions of python3, systemd and docker, the GPUs where C(nvidia-smi)
    exists (with the NVIDIA XIDs the kernel logged since boot, read by C(journalctl --dmesg)), the public keys
    in the given users' C(authorized_keys), and on a Ray head the nodes its dashboard's state API lists).
  - Read-only. No environment value of a worker is ever read or returned. Shaping lives in
    C(plugins/module_utils/_fleet_status.py).
version_added: 0.2.0
author:
  - fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - fleetwarden.fleet.docker
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  config_dir:
    description: Where fleetwarden.fleet.worker_service writes the declarations.
    type: path
    default: /etc/fleetwarden/workers
  state_dir:
    description: Where the probe records its last failure (C(NAME.probe-failure.json)).
    type: path
    default: /run/fleetwarden/workers
  authorized_keys_users:
    description: Users whose C(~/.ssh/authorized_keys) to summarize (fingerprints only).
    type: list
    elements: str
    default: []
  ray_dashboard:
    description: Ask a Ray head's dashboard (on this host) which nodes it knows.
    type: bool
    default: true
  timeout:
    description: Seconds each command or request may take.
    type: int
    default: 15
seealso:
  - module: fleetwarden.fleet.node_facts
  - module: fleetwarden.fleet.container_diagnosis
"""

EXAMPLES = r"""
- name: Read the host's workers and health in one round
  fleetwarden.fleet.fleet_status:
    authorized_keys_users: [root]
  register: status
"""

RETURN = r"""
host:
  description: The host's hostname, addresses, uptime_s, versions, memory, swap, disks, oom_kill_count, docker,
    gpus, authorized_keys and errors.
  returned: always
  type: dict
workers:
  description: One row per declaration (see C(worker_summary) in module_utils/_fleet_status.py).
  returned: always
  type: list
  elements: dict
ray:
  description: On a Ray head, C(nodes) as its dashboard lists them, or C(error); V(null) elsewhere.
  returned: always
  type: dict
"""

# Module anatomy (community.docker): imports follow DOCUMENTATION, EXAMPLES and RETURN.
import json  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import os  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import platform  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import pwd  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import time  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible.module_utils.urls import open_url  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _fleet_status as shape  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as worker_state  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._docker_cli import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    DOCKER_CLI_ARGUMENT_SPEC,
    docker_cli_path,
    missing_images,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._fleet_metrics import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    count_xids,
    parse_xid_events,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._node import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    disk_usage,
    find_mount,
    memory_summary,
    parse_meminfo,
    parse_mountinfo,
    parse_uptime,
    parse_vmstat_oom_kills,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._nvidia_smi import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    QUERY_GPU_FIELDS,
    gpu_from_query_row,
    parse_csv,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_unit import (  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
    parse_systemd_version,
)


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


class FleetStatus:
    """One gathering round: a fixed number of commands however many workers the host runs."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.errors = []
        self.now = time.time()
        self.docker = docker_cli_path(module)  # a missing CLI is reported as docker not answering

    def _run(self, argv):
        try:
            rc, out, err = self.module.run_command(argv, environ_update={"LC_ALL": "C"})
        except OSError as exc:  # the command is missing
            return 127, "", str(exc)
        return rc, out, err

    def run(self):
        uptime = parse_uptime(read_text("/proc/uptime") or "")
        docs = self._declarations()
        docker = self._docker_info()
        units = [d["units"]["worker"] for d in docs] + [d["units"]["probe"] for d in docs]
        props = self._units(units)
        restarts = self._restarts([d["units"]["worker"] for d in docs])
        inspected = self._inspect([d["container"] for d in docs]) if docker["answers"] else {}
        images = self._images(sorted(set(d["image"] for d in docs))) if docker["answers"] else {}
        mounts = parse_mountinfo(read_text("/proc/self/mountinfo") or "")
        workers = [self._worker(doc, props, restarts, inspected, images, mounts, uptime) for doc in docs]
        host = self._host(uptime, docker)
        ray = self._ray(docs) if self.params["ray_dashboard"] else None
        host["errors"] = self.errors
        return {"host": host, "workers": workers, "ray": ray}

    def _declarations(self):
        docs, errors = worker_state.read_declarations(self.params["config_dir"])
        self.errors.extend(errors)
        return [dict(d, units=worker_state.worker_units(d), container=worker_state.worker_container(d)) for d in docs]

    def _docker_info(self):
        rc, out, err = self._run([self.docker, "info", "--format", "{{json .}}"])
        try:
            info = json.loads(out) if rc == 0 and out.strip() else {}
        except ValueError:
            info = {}
        summary = shape.docker_summary(info)
        summary["answers"] = rc == 0 and bool(summary["version"]) and not info.get("ServerErrors")
        summary["error"] = None if summary["answers"] else (err.strip() or "; ".join(info.get("ServerErrors") or [])
                                                            or "docker info exited %d" % rc)[:500]
        summary["daemon_json"] = self._daemon_json()
        return summary

    def _daemon_json(self):
        text = read_text("/etc/docker/daemon.json")
        if text is None:
            return None
        try:
            config = json.loads(text)
        except ValueError as exc:
            return {"error": "unreadable: %s" % exc}
        return {"live-restore": config.get("live-restore"), "log-driver": config.get("log-driver"),
                "log-opts": config.get("log-opts")}

    def _units(self, units):
        if not units:
            return {}
        found, error = worker_state.read_units(units, self._run)
        if error:
            self.errors.append(error)
        return found

    def _restarts(self, units):
        if not units:
            return {}
        since = self.now - worker_state.RESTART_WINDOW_S
        rc, out, err = self._run(["journalctl", "--no-pager", "--quiet", "--output=json",
                                  "--output-fields=UNIT,MESSAGE_ID", "--since=@%d" % int(since),
                                  "MESSAGE_ID=" + shape.RESTART_SCHEDULED_MESSAGE_ID])
        if rc != 0:
            self.errors.append("journalctl failed: %s" % err.strip()[:300])
            return {}
        return shape.restarts_by_unit(out, units, since)

    def _inspect(self, names):
        if not names:
            return {}
        _rc, out, _err = self._run([self.docker, "inspect", "--type", "container", *names])
        try:
            found = json.loads(out) if out.strip() else []
        except ValueError:
            found = []
        return dict(((item.get("Name") or "").lstrip("/"), item) for item in found)

    def _images(self, images):
        if not images:
            return {}
        _rc, _out, err = self._run([self.docker, "image", "inspect", "--format", "{{.Id}}", *images])
        missing = missing_images(err)
        return dict((image, image not in missing) for image in images)

    def _worker(self, doc, props, restarts, inspected, images, mounts, uptime):
        units = doc["units"]
        container = worker_state.container_summary(inspected.get(doc["container"]), self.now)
        heartbeat = (doc.get("probe") or {}).get("heartbeat")
        age = None
        if heartbeat and container["running"] and container["pid"]:
            try:
                mtime = os.stat("/proc/%d/root%s" % (container["pid"], heartbeat["path"])).st_mtime
                age = shape.heartbeat_age(mtime, self.now)
            except OSError:
                age = -1  # the file is missing
        failure = None
        text = read_text(os.path.join(self.params["state_dir"], doc["name"] + ".probe-failure.json"))
        if text:
            try:
                record = json.loads(text)
                failure = {"ago_s": round(self.now - float(record["time"]), 1), "reason": str(record["reason"])[:300]}
            except (ValueError, KeyError, TypeError):
                failure = None
        worker_mounts = []
        for mount in doc.get("gcsfuse_mounts") or []:
            found = find_mount(mounts, mount["mountpoint"])
            worker_mounts.append({"mountpoint": mount["mountpoint"], "mounted": bool(found),
                                  "fstype": found["fstype"] if found else None})
        return shape.worker_summary(
            doc, shape.unit_summary(props.get(units["worker"]), uptime, doc),
            shape.unit_summary(props.get(units["probe"]), uptime) if units.get("probe") in props else None,
            container, restarts.get(units["worker"]), age, failure, worker_mounts, images.get(doc["image"]))

    def _host(self, uptime, docker):
        facts = memory_summary(parse_meminfo(read_text("/proc/meminfo") or ""))
        paths = ["/"] + ([docker["root_dir"]] if docker.get("root_dir") else [])
        disks = []
        for path in paths:
            try:
                disks.append(disk_usage(path, os.statvfs(path), 100))
            except OSError as exc:
                disks.append({"path": path, "error": exc.strerror or str(exc)})
        rc, out, _err = self._run(["systemctl", "--version"])
        try:
            systemd = parse_systemd_version(out) if rc == 0 else None
        except ValueError:
            systemd = None
        rc, addresses, _err = self._run(["hostname", "--all-ip-addresses"])
        return {
            "hostname": platform.node(), "addresses": addresses.split() if rc == 0 else [], "uptime_s": uptime,
            "versions": {"python": platform.python_version(), "systemd": systemd, "docker": docker["version"],
                         "kernel": platform.release()},
            "memory": facts["memory"], "swap": facts["swap"], "disks": disks,
            "oom_kill_count": parse_vmstat_oom_kills(read_text("/proc/vmstat") or ""),
            "docker": docker, "gpus": self._gpus(), "authorized_keys": self._authorized_keys(),
        }

    def _gpus(self):
        path = self.module.get_bin_path("nvidia-smi")
        if not path:
            return None
        rc, out, err = self._run([path, "--query-gpu=" + ",".join(QUERY_GPU_FIELDS), "--format=csv"])
        gpus = [gpu_from_query_row(row) for row in parse_csv(out)] if rc == 0 else []
        # The kernel log of this boot: a GPU that fell off the bus is gone from nvidia-smi but not from here.
        krc, kernel, kerr = self._run(["journalctl", "--dmesg", "--no-pager", "--quiet", "--output=cat"])
        if krc != 0:
            self.errors.append("cannot read the kernel log for XIDs: %s" % (kerr.strip() or "rc %d" % krc)[:300])
        rows = shape.gpu_rows(gpus, count_xids(None, parse_xid_events(kernel if krc == 0 else ""), gpus))
        if rc != 0:
            rows.insert(0, {"error": (err or out).strip()[:300]})
        return rows

    def _authorized_keys(self):
        result = {}
        for user in self.params["authorized_keys_users"]:
            try:
                path = os.path.join(pwd.getpwnam(user).pw_dir, ".ssh", "authorized_keys")
            except KeyError:
                result[user] = {"error": "no such user", "keys": []}
                continue
            text = read_text(path)
            result[user] = {"path": path, "keys": shape.authorized_key_summary(text or ""),
                            "error": None if text is not None else "missing"}
        return result

    def _ray(self, docs):
        heads = [d for d in docs if (d.get("metadata") or {}).get("ray_role") == "head"]
        if not heads:
            return None
        url = "http://127.0.0.1:%d/api/v0/nodes?limit=10000" % shape.dashboard_port(heads[0].get("command"))
        try:
            answer = open_url(url, timeout=self.params["timeout"], validate_certs=False)
            return {"nodes": shape.ray_nodes(json.loads(answer.read())), "error": None}
        except Exception as exc:
            return {"nodes": [], "error": "%s: %s" % (url, str(exc)[:300])}


def main():
    argument_spec = dict(
        config_dir=dict(type="path", default="/etc/fleetwarden/workers"),
        state_dir=dict(type="path", default="/run/fleetwarden/workers"),
        authorized_keys_users=dict(type="list", elements="str", default=[], no_log=False),
        ray_dashboard=dict(type="bool", default=True),
        timeout=dict(type="int", default=15),
        **DOCKER_CLI_ARGUMENT_SPEC,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(changed=False, **FleetStatus(module).run())


if __name__ == "__main__":
    main()
