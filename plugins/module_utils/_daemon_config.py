# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure helpers for /etc/docker/daemon.json: merge, validate, render, and log-option drift.

The rules mirror what dockerd 20.10+ accepts, so that a bad value fails here, naming the key,
instead of leaving dockerd unable to start. Runs on managed hosts: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import re

# Log drivers of dockerd on Linux (etwlogs is Windows-only).
LOG_DRIVERS = (
    "awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "logentries", "none",
    "splunk", "syslog",
)
# Log options each file-backed driver knows. dockerd refuses to start on any other key for these
# drivers; for the remote drivers the option sets are large and not checked here.
LOG_OPTS_BY_DRIVER = {
    "json-file": ("compress", "env", "env-regex", "labels", "labels-regex", "max-file", "max-size", "tag"),
    "local": ("compress", "max-file", "max-size"),
    "journald": ("env", "env-regex", "labels", "labels-regex", "tag"),
    "none": (),
}
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")

# Keys dockerd re-reads on SIGHUP (see "Configuration reload behavior" in the dockerd reference).
# A change to any other key needs a restart.
RELOADABLE_KEYS = frozenset((
    "authorization-plugins", "debug", "default-runtime", "features", "insecure-registries", "labels",
    "live-restore", "max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts",
    "registry-mirrors", "runtimes", "shutdown-timeout",
))

# Top-level keys with a simple type, checked wherever they come from.
_BOOL_KEYS = ("debug", "experimental", "icc", "ip-forward", "ip-masq", "iptables", "ip6tables", "ipv6",
              "live-restore", "no-new-privileges", "selinux-enabled", "userland-proxy")
_STRING_KEYS = ("data-root", "default-runtime", "exec-root", "storage-driver", "cgroup-parent")
_STRING_LIST_KEYS = ("dns", "dns-opts", "dns-search", "exec-opts", "insecure-registries", "labels",
                     "registry-mirrors", "storage-opts")
_INT_KEYS = ("max-concurrent-downloads", "max-concurrent-uploads", "shutdown-timeout")

# docker/go-units: a number, an optional space, an optional unit letter, an optional "i", an optional "b".
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_SIZE_FACTORS = {"": 1, "k": 1000, "m": 1000 ** 2, "g": 1000 ** 3, "t": 1000 ** 4, "p": 1000 ** 5}
# strconv.ParseBool
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


class DaemonConfigError(ValueError):
    """daemon.json cannot be read or would be invalid; ``errors`` holds one line per bad key."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(DaemonConfigError, self).__init__("; ".join(self.errors))


def parse_size(text):
    """Bytes in a docker size string such as 500m, 1g, 10MB or 100 (as dockerd's json-file driver reads it).

    Raises ValueError for anything dockerd would refuse, zero included.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError("must be a size string such as 500m or 1g")
    match = _SIZE.match(str(text).strip())
    if not match:
        raise ValueError("%r is not a size: use a number with an optional unit k, m or g, such as 500m" % (text,))
    number, unit = match.groups()
    size = int(float(number) * _SIZE_FACTORS[(unit or "").lower()])
    if size <= 0:
        raise ValueError("must be a positive size, got %r" % (text,))
    return size


def parse_go_bool(text):
    """strconv.ParseBool: the strings dockerd accepts for a boolean log option."""
    if text in _GO_BOOLS:
        return _GO_BOOLS[text]
    raise ValueError("%r is not a boolean: use true or false" % (text,))


def load_daemon_config(text):
    """Parse daemon.json text; an empty file is an empty config. Raises DaemonConfigError."""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise DaemonConfigError(["daemon.json is not valid JSON (%s)" % exc]) from exc
    if not isinstance(config, dict):
        raise DaemonConfigError(["daemon.json must hold a JSON object, found %s" % type(config).__name__])
    return config


def render_daemon_config(config):
    """The file content: stable key order and a trailing newline, so an unchanged config renders the same."""
    return json.dumps(config, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def normalize_log_opts(log_opts):
    """dockerd wants every log-opt value as a string: write true/false and 3, never JSON booleans or numbers."""
    normalized = {}
    for key, value in log_opts.items():
        if isinstance(value, bool):
            normalized[key] = "true" if value else "false"
        elif isinstance(value, int):
            normalized[key] = str(value)
        else:
            normalized[key] = value
    return normalized


def merge_daemon_config(current, settings, merge_keys=("runtimes",)):
    """Return a new config: ``current`` with each key of ``settings`` set.

    Keys that are not in ``settings`` survive untouched. For keys in ``merge_keys`` (dict values such as
    ``runtimes``) the entries are merged one level deep, so a runtime someone else declared stays.
    A setting whose value is None removes the key.
    """
    merged = copy.deepcopy(current)
    for key, value in settings.items():
        if value is None:
            merged.pop(key, None)
        elif key in merge_keys and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = dict(merged[key], **copy.deepcopy(value))
        else:
            merged[key] = copy.deepcopy(value)
    if isinstance(merged.get("log-opts"), dict):
        merged["log-opts"] = normalize_log_opts(merged["log-opts"])
    return merged


def changed_keys(before, after):
    """Top-level keys whose value differs between two configs, sorted."""
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


def restart_required(keys):
    """Whether changing these top-level keys needs a dockerd restart (a reload is not enough)."""
    return any(key not in RELOADABLE_KEYS for key in keys)


def _rotation(log_opts, errors):
    """(max-size in bytes, max-file) as parsed, None where absent or bad; what is bad is added to ``errors``."""
    max_size = max_file = None
    if "max-size" in log_opts:
        try:
            max_size = parse_size(log_opts["max-size"])
        except ValueError as exc:
            errors.append("log-opts.max-size: %s" % exc)
    if "max-file" in log_opts:
        text = log_opts["max-file"]
        if not re.match(r"^[0-9]+$", text) or int(text) < 1:
            errors.append("log-opts.max-file: must be a whole number of at least 1, got %r" % (text,))
        else:
            max_file = int(text)
    return max_size, max_file


def _compress_errors(driver, log_opts, max_size, max_file):
    try:
        compress = parse_go_bool(log_opts["compress"])
    except ValueError as exc:
        return ["log-opts.compress: %s" % exc]
    # Only judged when max-size and max-file parsed: a bad value is reported once, by _rotation.
    unparsed = (max_size is None and "max-size" in log_opts) or (max_file is None and "max-file" in log_opts)
    if compress and driver == "json-file" and not unparsed and ((max_file or 1) < 2 or max_size is None):
        return ["log-opts.compress: json-file compresses rotated files only, so it needs "
                "max-size and a max-file of at least 2"]
    return []


def _validate_log_opts(driver, log_opts):
    if not isinstance(log_opts, dict):
        return ["log-opts: must be an object of option names to strings"]
    errors = ["log-opts.%s: must be a string (dockerd rejects %s values), got %r" % (key, type(value).__name__, value)
              for key, value in sorted(log_opts.items()) if not isinstance(value, str)]
    if errors:
        return errors
    known = LOG_OPTS_BY_DRIVER.get(driver)
    if known is not None:
        errors += ["log-opts.%s: not an option of the %s log driver (known: %s)"
                   % (key, driver, ", ".join(known) or "none") for key in sorted(set(log_opts) - set(known))]
    max_size, max_file = _rotation(log_opts, errors)
    if "compress" in log_opts:
        errors += _compress_errors(driver, log_opts, max_size, max_file)
    return errors


def _validate_runtimes(runtimes):
    if not isinstance(runtimes, dict):
        return ["runtimes: must be an object of runtime names to {path, runtimeArgs}"]
    errors = []
    for name, runtime in sorted(runtimes.items()):
        if not isinstance(runtime, dict) or not isinstance(runtime.get("path"), str) or not runtime["path"]:
            errors.append("runtimes.%s: must be an object with a non-empty string path" % name)
            continue
        for key in sorted(set(runtime) - {"path", "runtimeArgs"}):
            errors.append("runtimes.%s.%s: unknown key (known: path, runtimeArgs)" % (name, key))
        args = runtime.get("runtimeArgs", [])
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            errors.append("runtimes.%s.runtimeArgs: must be a list of strings" % name)
    return errors


def _type_errors(config):
    """Keys whose value is not of the type dockerd wants."""
    errors = ["%s: must be true or false, got %r" % (key, config[key]) for key in _BOOL_KEYS
              if key in config and not isinstance(config[key], bool)]
    errors += ["%s: must be a string, got %r" % (key, config[key]) for key in _STRING_KEYS
               if key in config and not isinstance(config[key], str)]
    for key in _STRING_LIST_KEYS:
        value = config.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            errors.append("%s: must be a list of strings, got %r" % (key, value))
    errors += ["%s: must be a whole number, got %r" % (key, config[key]) for key in _INT_KEYS
               if key in config and (isinstance(config[key], bool) or not isinstance(config[key], int))]
    return errors


def validate_daemon_config(config):
    """Every problem dockerd would have with this config, one line each, naming the key. [] when valid."""
    errors = _type_errors(config)
    if "log-level" in config and config["log-level"] not in LOG_LEVELS:
        errors.append("log-level: %r is not one of %s" % (config["log-level"], ", ".join(LOG_LEVELS)))

    driver = config.get("log-driver", "json-file")
    if driver not in LOG_DRIVERS:
        errors.append("log-driver: %r is not a log driver dockerd knows (%s)" % (driver, ", ".join(LOG_DRIVERS)))
    elif "log-opts" in config:
        errors.extend(_validate_log_opts(driver, config["log-opts"]))

    runtimes = config.get("runtimes", {})
    errors.extend(_validate_runtimes(runtimes))
    default_runtime = config.get("default-runtime")
    if isinstance(default_runtime, str) and default_runtime != "runc" and (
            not isinstance(runtimes, dict) or default_runtime not in runtimes):
        errors.append("default-runtime: %r is neither runc nor a key of runtimes" % default_runtime)
    return errors


def _daemon_log_config(config):
    return config.get("log-driver", "json-file"), normalize_log_opts(config.get("log-opts") or {})


def containers_with_other_log_opts(inspected, config):
    """Running containers whose log driver or options differ from the daemon's ``config``.

    ``inspected`` is ``docker inspect`` output (a list). dockerd copies its log-opts into a container when it
    creates it, so a container created under other daemon settings keeps them until it is re-created.
    """
    driver, opts = _daemon_log_config(config)
    drifted = []
    for container in inspected:
        log_config = (container.get("HostConfig") or {}).get("LogConfig") or {}
        their_driver = log_config.get("Type") or driver
        their_opts = log_config.get("Config") or {}
        if their_driver != driver or their_opts != opts:
            drifted.append({
                "id": container.get("Id", ""),
                "name": (container.get("Name") or "").lstrip("/"),
                "log_driver": their_driver,
                "log_opts": their_opts,
            })
    return drifted
