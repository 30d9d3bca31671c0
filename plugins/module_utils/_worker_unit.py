# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure rendering of a supervised worker: declaration -> docker argv, env file, systemd units, probe config.

- ``workers_errors``: every problem with ``worker_service_workers``, one line each naming the field.
- ``normalize``: a declaration with every default filled in (role defaults, then the accelerator profile).
- ``docker_create_argv``: the full ``docker create`` argv. Env values never appear in it: they go to an
  env file (``--env-file``), so ``ps`` and ``systemctl status`` do not show them.
- ``env_file_text``: that env file. Setup commands travel in it base64-encoded, one variable each, and the
  entrypoint runs each byte-exact with ``bash -c "$cmd"``: no shell string is ever built from user data.
- ``worker_unit_text`` / ``probe_unit_text``: the systemd units (the alert unit is the role's template
  ``fleetwarden-alert@.service.j2``).
- ``restart_lines``: backoff per systemd version (RestartSteps/RestartMaxDelaySec from 254, a fixed delay before).

Runs on managed hosts and the controller: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import hashlib
import json
import re

from ansible_collections.fleetwarden.fleet.plugins.module_utils._docker_cli import DEFAULT_DOCKER_CLI
from ansible_collections.fleetwarden.fleet.plugins.module_utils._fleet_groups import TPU_GROUP
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcsfuse import gcsfuse_unit_name
from ansible_collections.fleetwarden.fleet.plugins.module_utils._systemd import systemd_exec_line
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import PATHS as _STATE_PATHS
from ansible_collections.fleetwarden.fleet.plugins.module_utils._worker_state import (
    RESTART_WINDOW_S,
    config_paths,
    start_limit_burst,
    unit_names,
)

RESTART_STEPS_MIN_SYSTEMD = 254
# The worker_unit module replaces "docker" with the absolute path of its docker_cli option (_docker_cli).
PATHS = dict(_STATE_PATHS, docker=DEFAULT_DOCKER_CLI)
WORKER_KEYS = ("name", "state", "image", "pull", "command", "env", "volumes", "gcsfuse_mounts", "devices",
               "shm_size", "memory", "ulimits", "host_network", "accelerator", "setup_commands",
               "setup_continue_on_error", "probe", "restart", "alert", "wait_for", "docker_args",
               "ray_head_address", "metadata")
PROBE_KEYS = ("enabled", "interval", "timeout", "failure_threshold", "start_period", "heartbeat", "command", "raylet")
RESTART_KEYS = ("policy", "max_per_hour", "delay", "max_delay", "steps", "stop_timeout", "start_timeout")
PROFILE_KEYS = ("runtime", "env", "devices", "device_globs", "privileged", "cap_add", "ulimits", "host_network")
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
           "rtprio", "rttime", "sigpending", "stack")
DEFAULTS = {
    "state": "present", "pull": "missing", "command": [], "env": {}, "volumes": [], "gcsfuse_mounts": [],
    "devices": [], "shm_size": None, "memory": None, "ulimits": {}, "host_network": False, "accelerator": "cpu",
    "setup_commands": [], "setup_continue_on_error": False, "wait_for": [], "docker_args": [],
    "ray_head_address": None, "metadata": {}, "alert": {},
    "probe": {"enabled": True, "interval": 3, "timeout": 2, "failure_threshold": 3, "start_period": 30},
    "restart": {"policy": "always", "max_per_hour": 10, "delay": 0.1, "max_delay": 60, "steps": 5,
                "stop_timeout": 30, "start_timeout": 900},
}
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^[0-9]+[bkmgBKMG]?$")
_ULIMIT = re.compile(r"^(-1|unlimited|[0-9]+)(:(-1|unlimited|[0-9]+))?$")
_URL = re.compile(r"^https?://[^\s]+$")
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9_./+-]+$")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str_list(value, allow_empty=True):
    return isinstance(value, list) and all(isinstance(v, str) for v in value) and (allow_empty or bool(value))


def _list_errors(where, value, element_check, what):
    if not isinstance(value, list):
        return ["%s must be a list of %s, got %s" % (where, what, type(value).__name__)]
    return ["%s[%d] must be %s, got %r" % (where, i, what, v) for i, v in enumerate(value) if not element_check(v)]


def _probe_rhythm_errors(where, probe):
    errors = ["%s.%s must be a number of seconds above 0, got %r" % (where, key, probe[key])
              for key in ("interval", "timeout") if key in probe and not (_is_number(probe[key]) and probe[key] > 0)]
    if "failure_threshold" in probe and not (_is_int(probe["failure_threshold"]) and probe["failure_threshold"] >= 1):
        errors.append("%s.failure_threshold must be a whole number of at least 1, got %r"
                      % (where, probe["failure_threshold"]))
    if "start_period" in probe and not (_is_number(probe["start_period"]) and probe["start_period"] >= 0):
        errors.append("%s.start_period must be a number of seconds, 0 or more, got %r" % (where, probe["start_period"]))
    if "enabled" in probe and not isinstance(probe["enabled"], bool):
        errors.append("%s.enabled must be true or false" % where)
    return errors


def _heartbeat_ok(heartbeat):
    return (isinstance(heartbeat, dict) and isinstance(heartbeat.get("path"), str)
            and heartbeat["path"].startswith("/") and _is_number(heartbeat.get("max_age"))
            and heartbeat["max_age"] > 0)


def _raylet_ok(raylet):
    return isinstance(raylet, dict) and _is_int(raylet.get("port")) and 0 < raylet["port"] < 65536


def _probe_errors(where, probe):
    if not isinstance(probe, dict):
        return ["%s must be a dict" % where]
    errors = ["%s: unknown key %s (known: %s)" % (where, k, ", ".join(PROBE_KEYS))
              for k in sorted(set(probe) - set(PROBE_KEYS))]
    errors += _probe_rhythm_errors(where, probe)
    if probe.get("heartbeat") is not None and not _heartbeat_ok(probe["heartbeat"]):
        errors.append("%s.heartbeat must be {path: /absolute/path/in/container, max_age: seconds}" % where)
    if probe.get("command") is not None and not _is_str_list(probe["command"], allow_empty=False):
        errors.append("%s.command must be a non-empty argv list of strings (run with docker exec)" % where)
    if probe.get("raylet") is not None and not _raylet_ok(probe["raylet"]):
        errors.append("%s.raylet must be {port: the raylet's --node-manager-port}" % where)
    return errors


def _restart_errors(where, restart):
    if not isinstance(restart, dict):
        return ["%s must be a dict (policy, max_per_hour, delay, max_delay, steps, stop_timeout)" % where]
    errors = ["%s: unknown key %s (known: %s)" % (where, k, ", ".join(RESTART_KEYS))
              for k in sorted(set(restart) - set(RESTART_KEYS))]
    if "policy" in restart and restart["policy"] not in ("always", "on-failure", "no"):
        errors.append("%s.policy must be always, on-failure or no, got %r" % (where, restart["policy"]))
    if "max_per_hour" in restart and not (_is_int(restart["max_per_hour"]) and restart["max_per_hour"] >= 1):
        errors.append("%s.max_per_hour must be a whole number of at least 1, got %r" % (where, restart["max_per_hour"]))
    for key in ("delay", "max_delay"):
        if key in restart and not (_is_number(restart[key]) and restart[key] > 0):
            errors.append("%s.%s must be a number of seconds above 0, got %r" % (where, key, restart[key]))
    for key in ("steps", "stop_timeout", "start_timeout"):
        if key in restart and not (_is_int(restart[key]) and restart[key] >= 0):
            errors.append("%s.%s must be a whole number, 0 or more, got %r" % (where, key, restart[key]))
    return errors


def _mount_ok(mount):
    if isinstance(mount, str):
        return mount.startswith("/")
    return (isinstance(mount, dict) and isinstance(mount.get("mountpoint"), str) and mount["mountpoint"].startswith("/")
            and isinstance(mount.get("container_path", "/"), str) and mount.get("container_path", "/").startswith("/")
            and isinstance(mount.get("read_only", False), bool)
            and not set(mount) - {"mountpoint", "container_path", "read_only", "bucket"})


def _wait_ok(item):
    return (isinstance(item, dict) and isinstance(item.get("host"), str) and item["host"]
            and _is_int(item.get("port")) and 0 < item["port"] < 65536 and item.get("check", "tcp") in ("tcp", "grpc")
            and _is_number(item.get("timeout", 0)) and item.get("timeout", 0) >= 0
            and not set(item) - {"host", "port", "check", "timeout"})


def _identity_errors(where, worker):
    name = worker.get("name")
    errors = ["%s: unknown key %s" % (where, k) for k in sorted(set(worker) - set(WORKER_KEYS))]
    if not isinstance(name, str) or not _NAME.match(name):
        errors.append("%s: name must match %s (it names the container and the unit), got %r"
                      % (where, _NAME.pattern, name))
    if worker.get("state", "present") not in ("present", "absent"):
        errors.append("%s: state must be present or absent" % where)
    return errors


def _image_errors(where, worker):
    """The image, its pull policy, and the container's argv lists and devices."""
    errors = []
    image = worker.get("image")
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        errors.append("%s: image is required: a docker image reference, got %r" % (where, image))
    if worker.get("pull", "missing") not in ("missing", "always", "never"):
        errors.append("%s: pull must be missing, always or never" % where)
    for key in ("command", "docker_args", "devices"):
        if key in worker and not _is_str_list(worker[key]):
            errors += _list_errors("%s: %s" % (where, key), worker[key], lambda v: isinstance(v, str), "a string")
    for index, device in enumerate(worker.get("devices") or []):
        if isinstance(device, str) and not device.startswith("/dev/"):
            errors.append("%s: devices[%d] must be a /dev path, got %r" % (where, index, device))
    return errors


def _env_variable_error(where, key, value):
    if not isinstance(key, str) or not _ENV_NAME.match(key):
        return "%s: env name %r is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*)" % (where, key)
    if key.startswith("FLEETWARDEN_"):
        return "%s: env name %s is reserved (FLEETWARDEN_ variables carry the setup commands)" % (where, key)
    if not isinstance(value, (str, int, float, bool)):
        return "%s: env %s must be a string or a number" % (where, key)
    if any(c in str(value) for c in "\n\r\x00"):
        # The value itself is never printed: it may be a secret.
        return ("%s: env %s holds a newline, carriage return or NUL, which an env file cannot carry "
                "(docker strips a trailing \\r, so the worker would restart on every run)" % (where, key))
    return None


def _env_errors(where, worker):
    env = worker.get("env", {})
    if not isinstance(env, dict):
        return ["%s: env must be a dict of NAME: value" % where]
    return [error for error in (_env_variable_error(where, key, env[key]) for key in env) if error]


def _storage_errors(where, worker):
    """Volumes, gcsfuse mounts and the container's sizes."""
    errors = _list_errors("%s: volumes" % where, worker.get("volumes", []),
                          lambda v: (isinstance(v, str) and len(v.split(":")) in (2, 3)
                                     and v.split(":")[1].startswith("/")),
                          "SOURCE:/container/path[:ro]")
    errors += _list_errors("%s: gcsfuse_mounts" % where, worker.get("gcsfuse_mounts", []), _mount_ok,
                           "a host mount point or {mountpoint, container_path, read_only}")
    for key in ("shm_size", "memory"):
        value = worker.get(key)
        size_ok = (_is_int(value) and value > 0) or (isinstance(value, str) and _SIZE.match(value))
        if value is not None and not size_ok:
            errors.append("%s: %s must be a size such as 512m or 16g, got %r" % (where, key, value))
    return errors


def _ulimit_errors(where, worker):
    ulimits = worker.get("ulimits", {})
    if not isinstance(ulimits, dict):
        return ["%s: ulimits must be a dict such as {memlock: -1}" % where]
    errors = []
    for key, value in ulimits.items():
        if key not in ULIMITS:
            errors.append("%s: ulimits.%s is not a ulimit (known: %s)" % (where, key, ", ".join(ULIMITS)))
        elif not (_is_int(value) or (isinstance(value, str) and _ULIMIT.match(value))):
            errors.append("%s: ulimits.%s must be a number, -1 or SOFT:HARD, got %r" % (where, key, value))
    return errors


def _accelerator_errors(where, worker, groups, profiles, tpu_group):
    errors = ["%s: %s must be true or false" % (where, key) for key in ("host_network", "setup_continue_on_error")
              if key in worker and not isinstance(worker[key], bool)]
    accelerator = worker.get("accelerator", "cpu")
    known = sorted(profiles) if profiles else ["cpu", "gpu", "tpu"]
    if accelerator not in known:
        errors.append("%s: accelerator %r is not a profile (known: %s)" % (where, accelerator, ", ".join(known)))
    elif accelerator == "tpu" and tpu_group not in (groups or ()):
        errors.append("%s: accelerator tpu needs a host in group %s; this host is in: %s"
                      % (where, tpu_group, ", ".join(groups or ()) or "no groups"))
    return errors


def _alert_errors(where, alert):
    if not isinstance(alert, dict) or set(alert) - {"command", "webhook"}:
        return ["%s: alert must be a dict with command (argv list) and/or webhook (URL)" % where]
    errors = []
    if alert.get("command") is not None and not _is_str_list(alert["command"], allow_empty=False):
        errors.append("%s: alert.command must be a non-empty argv list of strings" % where)
    webhook = alert.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and _URL.match(webhook)):
        errors.append("%s: alert.webhook must be an http(s) URL" % where)
    return errors


def _supervision_errors(where, worker):
    """Setup commands, probe, restart, alert, waits and the Ray head."""
    errors = _list_errors("%s: setup_commands" % where, worker.get("setup_commands", []),
                          lambda v: isinstance(v, str) and "\x00" not in v, "a string (one shell command)")
    errors += _probe_errors("%s: probe" % where, worker.get("probe", {}))
    errors += _restart_errors("%s: restart" % where, worker.get("restart", {}))
    errors += _alert_errors(where, worker.get("alert", {}))
    errors += _list_errors("%s: wait_for" % where, worker.get("wait_for", []), _wait_ok,
                           "{host, port, check: tcp|grpc, timeout: seconds (0 waits forever)}")
    if worker.get("ray_head_address") is not None and not isinstance(worker["ray_head_address"], str):
        errors.append("%s: ray_head_address must be HOST:PORT" % where)
    if not isinstance(worker.get("metadata", {}), dict):
        errors.append("%s: metadata must be a dict" % where)
    return errors


def worker_errors(worker, groups=(), profiles=None, tpu_group=TPU_GROUP, where=None):
    """Every problem with one declaration, one line each naming the field; [] when it is valid."""
    if not isinstance(worker, dict):
        return ["%s must be a dict with at least name and image, got %r" % (where or "worker", worker)]
    name = worker.get("name")
    where = "worker %s" % (name if isinstance(name, str) and name else where or "?")
    errors = _identity_errors(where, worker)
    if worker.get("state", "present") == "absent":
        return errors
    for check in (_image_errors, _env_errors, _storage_errors, _ulimit_errors):
        errors += check(where, worker)
    errors += _accelerator_errors(where, worker, groups, profiles, tpu_group)
    return errors + _supervision_errors(where, worker)


def workers_errors(workers, groups=(), profiles=None, tpu_group=TPU_GROUP):
    """Problems with the whole list: each declaration's, plus names declared twice."""
    if not isinstance(workers, list):
        return ["worker_service_workers must be a list of worker declarations"]
    errors, seen = [], set()
    for index, worker in enumerate(workers):
        errors += worker_errors(worker, groups, profiles, tpu_group, where="worker #%d" % index)
        name = worker.get("name") if isinstance(worker, dict) else None
        if isinstance(name, str) and name in seen:
            errors.append("worker %s: name is declared twice" % name)
        seen.add(name)
    if profiles is not None:
        for profile, values in sorted(profiles.items()):
            unknown = set(values or {}) - set(PROFILE_KEYS)
            if unknown:
                errors.append("accelerator profile %s: unknown key %s (known: %s)"
                              % (profile, ", ".join(sorted(unknown)), ", ".join(PROFILE_KEYS)))
    return errors


def unpullable_errors(workers, missing_images, default_pull="missing", host="this host"):
    """One line per present worker whose image is not on the host and whose pull policy forbids a pull."""
    missing = set(missing_images or ())
    return ["%s: worker %s needs image %s, which is not on the host, and its pull policy is never"
            % (host, w.get("name"), w.get("image")) for w in workers or []
            if isinstance(w, dict) and w.get("state", "present") == "present"
            and w.get("pull", default_pull) == "never" and w.get("image") in missing]


def _merge(base, override):
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def normalize(worker, defaults=None, profiles=None):
    """The declaration with every default filled: built-ins, then role ``defaults``, then the worker's own keys.

    The accelerator profile adds its env, devices, ulimits and network, which the worker's own values override.
    Env values become strings (an env file holds text).
    """
    decl = _merge(_merge(DEFAULTS, defaults), worker)
    profile = dict((profiles or {}).get(decl["accelerator"]) or {})
    decl["env"] = dict((k, _env_value(v)) for k, v in _merge(profile.get("env") or {}, decl["env"]).items())
    decl["ulimits"] = _merge(profile.get("ulimits") or {}, decl["ulimits"])
    profile_devices = list(profile.get("devices") or [])
    decl["devices"] = profile_devices + [d for d in decl["devices"] if d not in profile_devices]
    if "host_network" not in worker and profile.get("host_network") is not None:
        decl["host_network"] = bool(profile["host_network"])
    decl["profile"] = {"runtime": profile.get("runtime") or None, "privileged": bool(profile.get("privileged")),
                       "cap_add": list(profile.get("cap_add") or []),
                       "device_globs": list(profile.get("device_globs") or [])}
    decl["gcsfuse_mounts"] = [_mount(m) for m in decl["gcsfuse_mounts"]]
    decl["wait_for"] = [dict({"check": "tcp", "timeout": 0}, **w) for w in decl["wait_for"]]
    return decl


def _env_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mount(mount):
    if isinstance(mount, str):
        mount = {"mountpoint": mount}
    return {"mountpoint": mount["mountpoint"], "container_path": mount.get("container_path") or mount["mountpoint"],
            "read_only": bool(mount.get("read_only", False)), "bucket": mount.get("bucket"),
            "unit": gcsfuse_unit_name(mount["mountpoint"])}


def _ulimit(value):
    text = str(value).replace("unlimited", "-1")
    return text if ":" in text else "%s:%s" % (text, text)


def docker_create_argv(decl, paths=None, devices=()):
    """``docker create`` with the whole declaration. ``devices`` adds nodes found on the host (profile globs)."""
    paths = dict(PATHS, **(paths or {}))
    name = decl["name"]
    argv = [paths["docker"], "create", "--name", name, "--init", "--restart", "no", "--pull", decl["pull"],
            "--label", "io.fleetwarden.worker=" + name,
            "--label", "io.fleetwarden.declaration=" + declaration_digest(decl),
            "--env-file", config_paths(name, paths)["env_file"],
            "--volume", "%s:%s:ro" % (paths["entrypoint"], paths["entrypoint"]), "--entrypoint", paths["entrypoint"]]
    if decl["host_network"]:
        argv += ["--network", "host"]
    profile = decl["profile"]
    if profile["runtime"]:
        argv += ["--runtime", profile["runtime"]]
    if profile["privileged"]:
        argv.append("--privileged")
    for cap in profile["cap_add"]:
        argv += ["--cap-add", cap]
    for device in list(decl["devices"]) + [d for d in devices if d not in decl["devices"]]:
        argv += ["--device", device]
    if decl["shm_size"] is not None:
        argv += ["--shm-size", str(decl["shm_size"])]
    if decl["memory"] is not None:
        argv += ["--memory", str(decl["memory"])]
    for key in sorted(decl["ulimits"]):
        argv += ["--ulimit", "%s=%s" % (key, _ulimit(decl["ulimits"][key]))]
    for volume in decl["volumes"]:
        argv += ["--volume", volume]
    for mount in decl["gcsfuse_mounts"]:
        spec = "type=bind,source=%s,target=%s" % (mount["mountpoint"], mount["container_path"])
        argv += ["--mount", spec + (",readonly" if mount["read_only"] else "")]
    argv += list(decl["docker_args"])
    return [*argv, decl["image"], *decl["command"]]


def env_file_text(decl):
    """The ``--env-file``: declared env, then each setup command base64-encoded (byte-exact, any quoting)."""
    lines = ["# Managed by fleetwarden.fleet.worker_service; may hold secrets (mode 0600)."]
    lines += ["%s=%s" % (key, decl["env"][key]) for key in sorted(decl["env"])]
    commands = decl["setup_commands"]
    lines.append("FLEETWARDEN_WORKER=%s" % decl["name"])
    lines.append("FLEETWARDEN_SETUP_COUNT=%d" % len(commands))
    lines.append("FLEETWARDEN_SETUP_CONTINUE_ON_ERROR=%d" % (1 if decl["setup_continue_on_error"] else 0))
    for index, command in enumerate(commands):
        lines.append("FLEETWARDEN_SETUP_%d=%s" % (index, base64.b64encode(command.encode("utf-8")).decode("ascii")))
    return "\n".join(lines) + "\n"


def restart_lines(restart, systemd_version):
    """Restart= and its delay: exponential backoff where systemd has RestartSteps (254+), a fixed delay before."""
    lines = ["Restart=%s" % restart["policy"], "RestartSec=%gs" % restart["delay"]]
    backoff = restart["steps"] > 0 and restart["max_delay"] > restart["delay"]
    if systemd_version >= RESTART_STEPS_MIN_SYSTEMD and backoff:
        lines += ["RestartSteps=%d" % restart["steps"], "RestartMaxDelaySec=%gs" % restart["max_delay"]]
    return lines


def _tool_environment(paths):
    """The worker tool runs the docker CLI the units run (fleetwarden_worker.py reads FLEETWARDEN_DOCKER)."""
    if not _PLAIN_PATH.match(paths["docker"]):
        raise ValueError("the docker CLI must be an absolute path of plain characters, got %r" % (paths["docker"],))
    return "Environment=FLEETWARDEN_DOCKER=" + paths["docker"]


def _tool(paths, *args):
    return systemd_exec_line([paths["python"], paths["tool"], *args])


def worker_unit_text(decl, systemd_version, paths=None, devices=()):
    paths = dict(PATHS, **(paths or {}))
    name, restart = decl["name"], decl["restart"]
    units = unit_names(name)
    probe = _probe_enabled(decl)
    lines = ["# Managed by fleetwarden.fleet.worker_service: edit the declaration, not this file.",
             "# Declaration: %s" % config_paths(name, paths)["declaration"],
             "[Unit]", "Description=fleetwarden worker %s (%s)" % (name, decl["image"].replace("%", "%%")),
             # Wants, not Requires: restarting dockerd (live-restore) must not stop the worker.
             "Wants=docker.service network-online.target", "After=docker.service network-online.target"]
    for mount in decl["gcsfuse_mounts"]:
        # Requires, not BindsTo (roles/gcsfuse/README.md): the worker restarts whenever its mount's service
        # restarts, after a crash of the mount process too, so the new container bind-mounts the new mount.
        # With BindsTo (systemd 252) a crash stops the worker and the mount's automatic restart leaves it down.
        lines += ["Requires=%s" % mount["unit"], "After=%s" % mount["unit"]]
    if probe:
        lines.append("Wants=%s" % units["probe"])
    # One start plus max_per_hour restarts per hour; the next failure leaves the unit failed and fires the alert.
    lines += ["OnFailure=fleetwarden-alert@%n.service", "StartLimitIntervalSec=%d" % RESTART_WINDOW_S,
              "StartLimitBurst=%d" % start_limit_burst(restart["max_per_hour"]), "", "[Service]", "Type=notify",
              "NotifyAccess=main",
              _tool_environment(paths)]
    # The leftover container of the last run goes first; where the worker waits for others, the first wait
    # removes it meanwhile (--remove), so a restart spends the longer of the two, not their sum.
    if not decl["wait_for"]:
        lines.append("ExecStartPre=-" + systemd_exec_line([paths["docker"], "rm", "--force", name]))
    for index, item in enumerate(decl["wait_for"]):
        lines.append("ExecStartPre=" + _tool(paths, "wait-for", "--check", item["check"], "--timeout",
                                             "%g" % item["timeout"], *(["--remove", name] if index == 0 else []),
                                             "%s:%d" % (item["host"], item["port"])))
    lines.append("ExecStartPre=" + systemd_exec_line(docker_create_argv(decl, paths, devices)))
    lines.append("ExecStart=" + _tool(paths, "supervise", "--stop-timeout", str(restart["stop_timeout"]), name))
    waits_forever = any(item["timeout"] == 0 for item in decl["wait_for"])
    start_timeout = "infinity" if waits_forever or not restart["start_timeout"] else restart["start_timeout"]
    lines += ["KillMode=mixed", "TimeoutStartSec=%s" % start_timeout,
              "TimeoutStopSec=%d" % (restart["stop_timeout"] + 30)]
    lines += restart_lines(restart, systemd_version)
    lines += ["", "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


def _probe_enabled(decl):
    probe = decl["probe"]
    return bool(probe.get("enabled", True) and (probe.get("heartbeat") or probe.get("command") or probe.get("raylet")))


def probe_unit_text(decl, paths=None):
    """The liveness probe: a long-running service bound to the worker (stops and restarts with it)."""
    paths = dict(PATHS, **(paths or {}))
    units = unit_names(decl["name"])
    lines = ["# Managed by fleetwarden.fleet.worker_service: edit the declaration, not this file.",
             "[Unit]", "Description=fleetwarden liveness probe for worker %s" % decl["name"],
             "BindsTo=%s" % units["worker"], "After=%s" % units["worker"], "",
             "[Service]", "Type=simple", _tool_environment(paths), "ExecStart=" + _tool(paths, "probe", decl["name"]),
             "Restart=on-failure", "RestartSec=1s"]
    return "\n".join(lines) + "\n"


def probe_config(decl):
    """What the probe service reads from the declaration file."""
    probe = dict(decl["probe"])
    probe["enabled"] = _probe_enabled(decl)
    probe["host_network"] = decl["host_network"]
    return probe


def declaration_digest(decl):
    """A hash of the declaration as rendered, labelling the container. Env is left out: a label is public, and a
    hash of a short secret can be guessed. An env change still restarts the worker through its env file."""
    data = dict((k, v) for k, v in decl.items() if k not in ("image_id", "env"))
    data["env_names"] = sorted(decl.get("env", {}))
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def declaration_document(decl, systemd_version, paths=None, devices=(), image_id=None):
    """The JSON written to /etc/fleetwarden/workers/<name>.json for the tools and the diagnosis playbooks."""
    paths = dict(PATHS, **(paths or {}))
    doc = copy.deepcopy(decl)
    doc.update({"container": decl["name"], "units": unit_names(decl["name"]), "image_id": image_id,
                "paths": config_paths(decl["name"], paths), "probe": probe_config(decl),
                "docker_argv": docker_create_argv(decl, paths, devices), "systemd_version": systemd_version,
                "digest": declaration_digest(decl)})
    return doc


def parse_systemd_version(text):
    """``systemctl --version`` output -> 252. Raises ValueError when it is not there."""
    match = re.match(r"^\s*systemd\s+(\d+)", text or "")
    if not match:
        raise ValueError("cannot read a systemd version from %r" % (text or "")[:80])
    return int(match.group(1))
