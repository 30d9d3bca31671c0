# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure helpers for gcsfuse mounts run as systemd services.

- ``gcsfuse_unit_name``: the one naming rule, ``fleetwarden-gcsfuse-<systemd-escape --path MOUNTPOINT>.service``.
  A unit that uses a mount (the worker service) derives the name from the mount point alone.
- ``mount_errors``: what is wrong with one entry of ``gcsfuse_mounts``, naming the field.
- ``gcsfuse_argv`` / ``gcsfuse_exec_start``: the command line, as a list and as a quoted ``ExecStart=`` value.

Runs on managed hosts and the controller: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.fleetwarden.fleet.plugins.module_utils._systemd import (
    normalize_path,
    systemd_escape_path,
    systemd_exec_line,
)

UNIT_PREFIX = "fleetwarden-gcsfuse-"
MOUNT_KEYS = ("bucket", "mountpoint", "only_dir", "implicit_dirs", "uid", "gid", "file_mode", "dir_mode",
              "stat_cache_ttl", "type_cache_ttl", "extra_args", "state")
# Cloud Storage bucket names: 3-222 characters of a-z 0-9 - _ . starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_MODE = re.compile(r"^[0-7]{3,4}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Go's time.ParseDuration, as gcsfuse reads --stat-cache-ttl and --type-cache-ttl.
_DURATION = re.compile(r"^(0|([0-9]+(\.[0-9]+)?(ns|us|\u00b5s|ms|s|m|h))+)$")


def gcsfuse_unit_name(mountpoint):
    """The systemd unit that mounts ``mountpoint``: fleetwarden-gcsfuse-<escaped path>.service."""
    return UNIT_PREFIX + systemd_escape_path(mountpoint) + ".service"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _location_errors(name, mount):
    """The bucket, the mount point and the directory of the bucket to mount."""
    errors = []
    bucket = mount.get("bucket")
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        errors.append("%s: bucket %r is not a Cloud Storage bucket name" % (name, bucket))
    for key in ("mountpoint", "only_dir"):
        if isinstance(mount.get(key), str) and _CONTROL.search(mount[key]):
            errors.append("%s: %s must not contain control characters" % (name, key))
    mountpoint = mount.get("mountpoint")
    if not isinstance(mountpoint, str) or not mountpoint.startswith("/"):
        errors.append("%s: mountpoint must be an absolute path" % name)
    elif normalize_path(mountpoint) != mountpoint or mountpoint == "/":
        errors.append("%s: mountpoint must be normalized, without a trailing slash, and not /" % name)
    only_dir = mount.get("only_dir")
    if only_dir is not None and (not isinstance(only_dir, str) or not only_dir or only_dir.startswith("/")
                                 or ".." in only_dir.split("/")):
        errors.append("%s: only_dir must be a relative path inside the bucket, got %r" % (name, only_dir))
    return errors


# Optional settings, each checked when set: (keys, valid?, what it must be).
_OPTION_CHECKS = (
    (("uid", "gid"), lambda v: _is_int(v) and v >= 0, "a number (gcsfuse takes no user names)"),
    (("file_mode", "dir_mode"), lambda v: isinstance(v, str) and _MODE.match(v), "an octal string such as \"644\""),
    (("stat_cache_ttl", "type_cache_ttl"), lambda v: isinstance(v, str) and _DURATION.match(v),
     "a duration such as 60s or 1m"),
)


def _option_errors(name, mount):
    errors = []
    if "implicit_dirs" in mount and not isinstance(mount["implicit_dirs"], bool):
        errors.append("%s: implicit_dirs must be true or false" % name)
    for keys, valid, what in _OPTION_CHECKS:
        errors += ["%s: %s must be %s, got %r" % (name, key, what, mount[key]) for key in keys
                   if mount.get(key) is not None and not valid(mount[key])]
    extra = mount.get("extra_args", [])
    if not isinstance(extra, list) or not all(isinstance(arg, str) for arg in extra):
        errors.append("%s: extra_args must be a list of strings" % name)
    if mount.get("state", "present") not in ("present", "absent"):
        errors.append("%s: state must be present or absent" % name)
    return errors


def mount_errors(mount):
    """Every problem with one mount entry, one line each naming the field; [] when it is valid."""
    if not isinstance(mount, dict):
        return ["a mount must be a dict with at least bucket and mountpoint, got %r" % (mount,)]
    name = mount.get("mountpoint") or mount.get("bucket") or "?"
    errors = ["%s: unknown key %s (known: %s)" % (name, key, ", ".join(MOUNT_KEYS))
              for key in sorted(set(mount) - set(MOUNT_KEYS))]
    return errors + _location_errors(name, mount) + _option_errors(name, mount)


def gcsfuse_argv(mount, binary="/usr/bin/gcsfuse", defaults=None):
    """The gcsfuse command line for one mount, as a list, in the foreground so systemd supervises it.

    ``defaults`` fills keys the mount leaves out (the role's gcsfuse_default_* variables).
    Raises ValueError when the mount is invalid.
    """
    merged = dict(defaults or {}, **{key: value for key, value in mount.items() if value is not None})
    errors = mount_errors(merged)
    if errors:
        raise ValueError("; ".join(errors))
    argv = [binary, "--foreground"]
    if merged.get("implicit_dirs"):
        argv.append("--implicit-dirs")
    if merged.get("only_dir"):
        argv += ["--only-dir", merged["only_dir"]]
    for key in ("uid", "gid"):
        if merged.get(key) is not None:
            argv += ["--" + key, str(merged[key])]
    for key in ("file_mode", "dir_mode", "stat_cache_ttl", "type_cache_ttl"):
        if merged.get(key) is not None:
            argv += ["--" + key.replace("_", "-"), merged[key]]
    argv += list(merged.get("extra_args") or [])
    argv += [merged["bucket"], merged["mountpoint"]]
    return argv


def gcsfuse_exec_start(mount, binary="/usr/bin/gcsfuse", defaults=None):
    """The ``ExecStart=`` value for one mount, each argument quoted for systemd."""
    return systemd_exec_line(gcsfuse_argv(mount, binary, defaults))
