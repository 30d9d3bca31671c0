#!/usr/bin/python
# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


DOCUMENTATION = r"""
module: container_diagnosis
short_description: Tell why a worker container died, with the evidence and the remediation to apply
description:
  - Reads C(docker inspect), the last log lines, kernel OOM kills near the death (C(journalctl -k), else
    C(dmesg)), space and inodes of docker's root and C(/), daemon health, mounts, and the Ray head's port.
  - Returns one RV(cause), the RV(findings) behind it, a RV(recommendation) and the RV(remediation) id that
    C(playbooks/recover.yml) applies. Read-only. Causes, precedence and remediation ids are in C(docs/diagnosis.md).
version_added: 0.1.0
author:
  - fleetwarden maintainers (@fleetwarden)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - fleetwarden.fleet.docker
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  name:
    description:
      - Name or ID of the container.
    type: str
  workers:
    description:
      - Diagnose several workers in one call (one remote round trip for a host's workers). Each item
        takes the per-worker options C(name) (required), C(unit), C(image), C(mounts), C(ray_head_address) and
        C(history); the other options apply to every worker. The daemon is asked once for all of them.
      - The results are in RV(workers), one per item in its order. One of O(name), O(workers) and
        O(declarations_dir) is required.
    type: list
    elements: dict
  declarations_dir:
    description:
      - Diagnose every worker declared on the host, as C(fleetwarden.fleet.worker_service) wrote them
        (C(<dir>/<name>.json), read as C(fleetwarden.fleet.worker_declarations) reads them), in one call like
        O(workers). O(ray_head_address) is the Ray head of the workers whose declaration names none.
      - The declarations are in RV(declared), the files that are not readable declarations in
        RV(declaration_errors).
    type: path
  node_facts:
    description:
      - Also return RV(node), what C(fleetwarden.fleet.node_facts) returns (paths C(/) and C(/var/lib/docker),
        O(disk_full_threshold_pct)), in the same call (recover.yml's one round trip for the diagnosis).
    type: bool
    default: false
  gpu_facts:
    description:
      - Also return RV(gpu), what C(fleetwarden.fleet.gpu_facts) returns with its defaults (nvidia-smi's XML), in
        the same call.
    type: bool
    default: false
  history_file:
    description:
      - "The host's death records of every worker, C({worker: [record, ...]}) (C(incident_evidence) keeps it);
        each worker's records are added to its O(history). Missing or unreadable: no records."
    type: path
  unit:
    description: The systemd unit that supervises the container; for evidence only (state, restart count).
    type: str
  image:
    description: The worker's image; tells V(image_missing) from V(unknown) when the container does not exist.
    type: str
  log_lines:
    description: How many of the container's last log lines (stdout and stderr, interleaved) to read.
    type: int
    default: 50
  mounts:
    description: Mount points the worker needs (its gcsfuse mounts); each must be mounted and answer C(stat).
    type: list
    elements: str
    default: []
  mount_namespace:
    description: Check O(mounts) on the V(host), or inside the running V(container) (a dead one's went with it).
    type: str
    choices: [host, container]
    default: host
  ray_head_address:
    description: Ray head (GCS) as C(host:port), C([v6addr]:port), or C(host) for port 6379. Checked with a TCP connect.
    type: str
  connect_timeout:
    description: Seconds to wait for the Ray head TCP connect and for each mount's C(stat).
    type: float
    default: 3
  docker_timeout:
    description: Seconds C(docker info) may take before the daemon counts as hung (needs C(timeout) from coreutils).
    type: int
    default: 20
  disk_full_threshold_pct:
    description: Block or inode use, in percent, at or above which docker's root or C(/) counts as full.
    type: int
    default: 95
  incident_root:
    description:
      - Where the worker's supervisor records each death (module_utils/_death_record.py).
      - The newest record's cause is reported as C(evidence.last_death).
    type: path
  oom_window_s:
    description: Kernel OOM kills up to this many seconds before the container finished count as its death.
    type: int
    default: 300
  repeat_window_s:
    description: Window, in seconds, in which deaths of any cause are counted for RV(repeat).
    type: int
    default: 3600
  repeat_threshold:
    description: Deaths of any cause within O(repeat_window_s) (this one too) that make the remediation V(report_only).
    type: int
    default: 3
  history:
    description: Earlier RV(record)s of this worker, kept by the caller (C(recover.yml)), to count repeated deaths.
    type: list
    elements: dict
    default: []
  include_sensitive:
    description: Return env values and log lines unredacted. Off by default; secrets are replaced by C(<redacted>).
    type: bool
    default: false
requirements:
  - the docker CLI on the host
seealso:
  - module: fleetwarden.fleet.gpu_facts
  - module: fleetwarden.fleet.node_facts
"""

EXAMPLES = r"""
- name: Diagnose the Ray worker
  fleetwarden.fleet.container_diagnosis:
    name: ray-worker
    unit: ray-worker.service
    image: "{{ worker_image }}"
    mounts: [/mnt/gcsfuse]
    ray_head_address: "{{ ray_head_ip }}:6379"
    history: "{{ worker_diagnoses | default([]) }}"
  register: diagnosis

- name: Say what happened
  ansible.builtin.debug:
    msg: "{{ diagnosis.cause }} -> {{ diagnosis.remediation }}: {{ diagnosis.recommendation }}"
"""

RETURN = r"""
workers:
  description: With O(workers), one result per worker, in its order, each with C(name) and the keys below.
  returned: when O(workers) is given
  type: list
  elements: dict
node:
  description: With O(node_facts), the node's memory, swap, disks, OOM kills and uptime (as C(node_facts) returns).
  returned: when O(node_facts) is true
  type: dict
gpu:
  description: With O(gpu_facts), the GPUs' health (as C(gpu_facts) returns).
  returned: when O(gpu_facts) is true
  type: dict
declared:
  description: With O(declarations_dir), the host's worker declarations (env values and setup commands never
    read back), in the order of RV(workers).
  returned: when O(declarations_dir) is given
  type: list
  elements: dict
declaration_errors:
  description: With O(declarations_dir), one line per file that is not a readable declaration (left out).
  returned: when O(declarations_dir) is given
  type: list
  elements: str
exists:
  description: Whether the container exists.
  returned: when O(name) is given
  type: bool
container_id:
  description: Full container ID, or V(null).
  returned: always
  type: str
cause:
  description: One of running, normal_exit, oom_killed, gpu_oom, segfault, sigterm, sigkill, disk_full,
    daemon_down, mount_lost, head_unreachable, image_missing, config_error, unknown.
  returned: always
  type: str
  sample: oom_killed
findings:
  description: Every cause that matched, in precedence order (the first is RV(cause)), each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{cause: oom_killed, reason: docker inspect State.OOMKilled is true (exit status 137)}]
remediation:
  description: What recover.yml does - none, recreate_worker, prune_and_recreate, start_docker,
    remount_and_restart, wait_for_head_and_rejoin, or report_only (no automatic action).
  returned: always
  type: str
  sample: recreate_worker
recommendation:
  description: What happened and what to do, for a person.
  returned: always
  type: str
repeat:
  description: Deaths of any cause counted in the window; C(repeated) turns the remediation into V(report_only).
  returned: always
  type: dict
  sample: {count: 1, window_s: 3600, threshold: 3, repeated: false}
record:
  description: This diagnosis in the shape O(history) takes; append it to the worker's history.
  returned: always
  type: dict
  sample: {cause: oom_killed, at: 1709648551.567, container_id: 3f1c...}
evidence:
  description: The facts behind the cause (docker inspect State, exit meaning, limits, redacted env, log lines,
    kernel OOM events, disks, daemon, mounts, Ray head, unit); every key is described in docs/diagnosis.md.
  returned: always
  type: dict
"""

# Module anatomy (community.docker): imports follow DOCUMENTATION, EXAMPLES and RETURN.
import os  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import socket  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import threading  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
import time  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _death_record as death_record  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _diagnosis as diag  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _docker_cli as docker_cli  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _incident as incident  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _node as node  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _nvidia_smi as nvidia_smi  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as worker_state  # noqa: E402 - modules keep DOCUMENTATION/EXAMPLES/RETURN above imports (validate-modules)


# Host access, kept in small functions so that tests can replace them.
def now():
    return time.time()


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def statvfs(path):
    return os.statvfs(path)


def probe_path(path, timeout):
    """None when stat(path) answers within timeout, else the error: a dead FUSE mount hangs or says ENOTCONN."""
    outcome = {}

    def stat():
        try:
            os.stat(path)
            outcome["error"] = None
        except OSError as exc:
            outcome["error"] = exc.strerror or str(exc)

    worker = threading.Thread(target=stat)
    worker.daemon = True
    worker.start()
    worker.join(timeout)
    return outcome.get("error", "stat did not answer within {0} s".format(timeout))


def probe_tcp(host, port, timeout):
    try:
        socket.create_connection((host, port), timeout).close()
        return None
    except (OSError, socket.timeout) as exc:
        return str(exc) or exc.__class__.__name__


class ContainerDiagnosis:
    """Collects the observation, hands it to _diagnosis.diagnose() and shapes the result."""

    def __init__(self, module, params=None, daemon=None):
        self.module = module
        self.params = params or module.params
        self.docker = docker_cli.find_docker_cli(module, required=True)
        self.daemon = daemon

    def run(self):
        params = self.params
        daemon = self.daemon or self.check_daemon()
        if not daemon["healthy"] and diag.daemon_error_kind(daemon["error"]) == "permission":
            self.module.fail_json(msg="No access to the Docker daemon (run with become): " + daemon["error"])
        container = self.inspect() if daemon["healthy"] else None
        state = (container or {}).get("State") or {}
        container_id = (container or {}).get("Id")
        image_present = None
        if daemon["healthy"] and container is None and params["image"]:
            image_present = self.image_present(params["image"])
        log_tail, log_error, log_text = self.logs(container)

        running = diag.is_running(state)
        at = (None if running else node.parse_timestamp(state.get("FinishedAt"))) or now()
        kernel_source, events = self.kernel_oom_events(at)
        near, kernel_kills = diag.select_oom_events(events, container_id, at, params["oom_window_s"],
                                                    params["repeat_window_s"])
        evidence = diag.container_evidence(container, params["include_sensitive"])
        evidence.update(
            image=evidence["image"] or params["image"], image_present=image_present, log_tail=log_tail,
            log_error=log_error, log_matches=diag.find_gpu_oom(log_text) + diag.find_enospc(log_text),
            kernel_log_source=kernel_source, kernel_oom_events=events, daemon=daemon,
            disks=self.check_disks(daemon["root_dir"] or docker_cli.DEFAULT_DOCKER_ROOT),
            mounts=self.check_mounts(state.get("Pid") if running else None),
            ray_head=self.check_head(), unit=self.unit_status())
        observation = {
            "name": params["name"], "exists": container is not None, "container_id": container_id,
            "image": evidence["image"], "image_present": image_present, "daemon": daemon, "state": state,
            "log_lines": log_text, "oom_events": near, "disks": evidence["disks"], "mounts": evidence["mounts"],
            "ray_head": evidence["ray_head"], "memory_limit": evidence["memory_limit_bytes"],
            "shm_size": evidence["shm_size_bytes"], "bounded_filesystems": evidence["bounded_filesystems"],
        }
        result = diag.diagnose(observation, params["history"], params["repeat_window_s"], params["repeat_threshold"],
                               at, kernel_kills)
        result["evidence"] = evidence
        if params["incident_root"]:  # the last death that the worker's supervisor recorded (_death_record.py)
            evidence["last_death"] = death_record.summarize(death_record.newest(
                death_record.directory(params["incident_root"], params["name"]))[1])
        result.update(
            exists=container is not None, container_id=container_id,
            record={"cause": result["cause"], "at": at, "container_id": container_id})
        return result

    def logs(self, container):
        """(the log tail as the evidence shows it, why it could not be read, its lines without timestamps); secrets
        in the container's env are redacted unless include_sensitive."""
        log_tail, log_error = self.read_logs() if container else ([], None)
        if not self.params["include_sensitive"]:
            secrets = diag.env_secrets(((container or {}).get("Config") or {}).get("Env"))
            log_tail = [diag.redact_secrets(line, secrets) for line in log_tail]
        return log_tail, log_error, [diag.strip_docker_timestamp(line)[1] for line in log_tail]

    def _docker(self, *args):
        return self.module.run_command([self.docker, *args])

    def check_daemon(self):
        argv = [self.docker, "info", "--format", "{{json .}}"]
        timeout = self.module.get_bin_path("timeout")
        if timeout:
            argv = [timeout, str(self.params["docker_timeout"]), *argv]
        rc, out, err = self.module.run_command(argv)
        if rc == 124 and timeout:
            err = "docker info did not answer within {0} s".format(self.params["docker_timeout"])
        return diag.parse_docker_info(rc, out, err)

    def inspect(self):
        rc, out, err = self._docker("inspect", "--type", "container", self.params["name"])
        container, error = docker_cli.inspected_container(rc, out, err)
        if error is not None:
            self.module.fail_json(msg="docker inspect failed: " + error, rc=rc)
        return container

    def image_present(self, image):
        rc, _out, err = self._docker("image", "inspect", "--format", "{{.Id}}", image)
        return docker_cli.image_present(rc, err)

    def read_logs(self):
        rc, out, err = self._docker("logs", "--tail", str(self.params["log_lines"]), "--timestamps",
                                    self.params["name"])
        if rc != 0:
            return [], (err or out).strip()
        return diag.merge_docker_logs(out, err, self.params["log_lines"]), None

    def kernel_oom_events(self, at):
        since = int(at - max(self.params["oom_window_s"], self.params["repeat_window_s"]))
        journalctl = self.module.get_bin_path("journalctl")
        if journalctl:
            rc, out, _err = self.module.run_command([
                journalctl, "-k", "-q", "--no-pager", "-o", "short-iso",
                "--since", "@{0}".format(since), "--until", "@{0}".format(int(at) + 60)])
            if rc == 0 and out.strip():  # empty where journald does not read the kernel ring (containers)
                return "journalctl", node.parse_kernel_oom_events(out)
        dmesg = self.module.get_bin_path("dmesg")
        if dmesg:
            rc, out, _err = self.module.run_command([dmesg, "--time-format", "iso"])
            if rc == 0:
                return "dmesg", node.events_between(node.parse_kernel_oom_events(out), since, at + 60)
        return "none", []

    def check_disks(self, docker_root):
        disks = []
        for path in (docker_root, "/"):
            if any(disk["path"] == path for disk in disks):
                continue
            try:
                disks.append(node.disk_usage(path, statvfs(path), self.params["disk_full_threshold_pct"]))
            except OSError as exc:
                disks.append({"path": path, "error": exc.strerror or str(exc), "full": False})
        return disks

    def check_mounts(self, pid):
        in_container = self.params["mount_namespace"] == "container"
        if in_container and not pid:
            return node.mounts_not_checked(self.params["mounts"], "container is not running; its mounts went with it")
        prefix = "/proc/{0}".format(pid) if in_container else "/proc/self"
        table = node.parse_mountinfo(read_text(prefix + "/mountinfo")) if self.params["mounts"] else []
        results = []
        for path in self.params["mounts"]:
            mount = node.find_mount(table, path)
            error = None if mount is None else probe_path(
                (prefix + "/root" if in_container else "") + path, self.params["connect_timeout"])
            results.append(node.mount_check(path, mount, error))
        return results

    def check_head(self):
        address = self.params["ray_head_address"]
        if not address:
            return None
        try:
            host, port = diag.parse_host_port(address)
        except ValueError as exc:
            self.module.fail_json(msg="ray_head_address {0!r}: {1}".format(address, exc))
        error = probe_tcp(host, port, self.params["connect_timeout"])
        return {"address": address, "reachable": error is None, "error": error}

    def unit_status(self):
        unit = self.params["unit"]
        systemctl = self.module.get_bin_path("systemctl") if unit else None
        if not systemctl:
            return None
        found, error = worker_state.read_units([unit], self.module.run_command, systemctl=systemctl,
                                               journalctl=self.module.get_bin_path("journalctl") or "journalctl")
        if error:
            return {"error": error, "name": unit}
        status = found.get(unit) or {}
        return dict(status, name=unit, restarts_exhausted=worker_state.restarts_exhausted(status))


# The options each item of `workers` may set; the rest apply to every worker.
PER_WORKER = ("name", "unit", "image", "mounts", "ray_head_address", "history")


def worker_params(params, worker, histories):
    """The parameters of one diagnosis: the module's, with the worker's own options, and the history file's
    records of it added to its history."""
    unknown = sorted(set(worker) - set(PER_WORKER))
    if unknown:
        raise ValueError("workers item {0!r}: unknown keys {1}".format(worker.get("name"), ", ".join(unknown)))
    if not isinstance(worker.get("name"), str) or not worker["name"]:
        raise ValueError("workers item needs a name: {0!r}".format(worker))
    merged = dict(params, workers=None, unit=None, image=None, mounts=[], ray_head_address=None, history=[])
    merged.update((k, v) for k, v in worker.items() if v is not None)
    if not isinstance(merged["mounts"], list) or not isinstance(merged["history"], list):
        raise ValueError("workers item {0!r}: mounts and history must be lists".format(worker["name"]))
    merged["history"] = list(merged["history"]) + histories.get(worker["name"], [])
    return merged


def diagnose(module):
    """The module's result: one diagnosis (name), or one per worker (workers), the daemon asked once."""
    params = module.params
    histories = incident.parse_histories(read_text(params["history_file"])) if params["history_file"] else {}
    if params["workers"] is None and not params["declarations_dir"]:
        request = worker_params(params, {"name": params["name"], "unit": params["unit"], "image": params["image"],
                                         "mounts": params["mounts"], "ray_head_address": params["ray_head_address"],
                                         "history": params["history"]}, histories)
        return dict(ContainerDiagnosis(module, request).run(), **host_facts(module))
    extra = {}
    workers = params["workers"]
    if params["declarations_dir"]:
        declared, errors = worker_state.read_declarations(params["declarations_dir"])
        extra = {"declared": declared, "declaration_errors": errors}
        try:
            workers = [diag.diagnosis_request(worker, params["ray_head_address"]) for worker in declared]
        except ValueError as exc:
            module.fail_json(msg="declaration in {0}: {1}".format(params["declarations_dir"], exc), **extra)
    try:
        requests = [worker_params(params, worker, histories) for worker in workers]
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    daemon = ContainerDiagnosis(module).check_daemon() if requests else None
    results = []
    for request in requests:
        result = ContainerDiagnosis(module, request, daemon).run()
        results.append(dict(result, name=request["name"]))
    return dict(extra, workers=results, **host_facts(module))


def host_facts(module):
    """node and gpu, as node_facts and gpu_facts return them, when asked for."""
    facts = {}
    if module.params["node_facts"]:
        facts["node"] = node.node_facts(read_text, statvfs, list(node.NODE_FACT_PATHS),
                                        module.params["disk_full_threshold_pct"])
    if module.params["gpu_facts"]:
        facts["gpu"] = nvidia_smi.GpuFacts(module, nvidia_smi.GPU_FACTS_DEFAULTS).run()
    return facts


def main():
    argument_spec = dict(
        name=dict(type="str"),
        workers=dict(type="list", elements="dict"),
        declarations_dir=dict(type="path"),
        history_file=dict(type="path"),
        node_facts=dict(type="bool", default=False),
        gpu_facts=dict(type="bool", default=False),
        unit=dict(type="str"),
        image=dict(type="str"),
        log_lines=dict(type="int", default=50),
        mounts=dict(type="list", elements="str", default=[]),
        mount_namespace=dict(type="str", choices=["host", "container"], default="host"),
        ray_head_address=dict(type="str"),
        connect_timeout=dict(type="float", default=3),
        docker_timeout=dict(type="int", default=20),
        disk_full_threshold_pct=dict(type="int", default=95),
        incident_root=dict(type="path"),
        oom_window_s=dict(type="int", default=300),
        repeat_window_s=dict(type="int", default=3600),
        repeat_threshold=dict(type="int", default=3),
        history=dict(type="list", elements="dict", default=[]),
        include_sensitive=dict(type="bool", default=False),
        **docker_cli.DOCKER_CLI_ARGUMENT_SPEC,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[("name", "workers", "declarations_dir")],
                           mutually_exclusive=[("name", "workers", "declarations_dir")])
    module.exit_json(changed=False, **diagnose(module))


if __name__ == "__main__":
    main()
