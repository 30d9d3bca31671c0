# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for gcsfuse mounts and systemd units; the logic is in module_utils._gcsfuse and _systemd.

- ``fleetwarden.fleet.gcsfuse_unit_name``: mount point -> ``fleetwarden-gcsfuse-<escaped>.service``. A unit that
  uses a mount (the worker service) declares ``Requires=`` and ``After=`` on this name (not ``BindsTo=``).
- ``fleetwarden.fleet.gcsfuse_exec_start``: mount dict -> quoted ``ExecStart=`` value.
- ``fleetwarden.fleet.gcsfuse_mounts_errors``: list of mounts -> list of problems (for preflight asserts).
- ``fleetwarden.fleet.systemd_exec_line``: argv list -> quoted ``ExecStart=`` value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcsfuse import (
    gcsfuse_exec_start,
    gcsfuse_unit_name,
    mount_errors,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._systemd import (
    normalize_path,
    systemd_exec_line,
)


def _wrap(func):
    def filter_func(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise AnsibleFilterError("%s: %s" % (func.__name__, exc)) from exc

    filter_func.__name__ = func.__name__
    filter_func.__doc__ = func.__doc__
    return filter_func


def gcsfuse_mounts_errors(mounts, defaults=None):
    """Problems with a list of mounts: each entry's, plus mount points declared twice."""
    if not isinstance(mounts, list):
        return ["gcsfuse_mounts must be a list of dicts"]
    errors = []
    seen = set()
    for mount in mounts:
        merged = dict(defaults or {}, **mount) if isinstance(mount, dict) else mount
        errors.extend(mount_errors(merged))
        if isinstance(mount, dict) and isinstance(mount.get("mountpoint"), str):
            point = normalize_path(mount["mountpoint"])
            if point in seen:
                errors.append("%s: declared twice" % point)
            seen.add(point)
    return errors


class FilterModule(object):
    def filters(self):
        return {
            "gcsfuse_unit_name": _wrap(gcsfuse_unit_name),
            "gcsfuse_exec_start": _wrap(gcsfuse_exec_start),
            "gcsfuse_mounts_errors": _wrap(gcsfuse_mounts_errors),
            "systemd_exec_line": _wrap(systemd_exec_line),
        }
