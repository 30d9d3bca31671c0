# -*- coding: utf-8 -*-
# Copyright: fleetwarden contributors
# Apache License 2.0 (see LICENSE)
"""The size-bounded filesystems a container writes to, read from its `docker inspect`.

A worker declared with a tmpfs of bounded size (`docker_args: [--tmpfs, /scratch:size=16m]`, or
`--mount type=tmpfs,...,tmpfs-size=N`) can fill it while docker's root and / stay far from full. When the dead
container's log says ENOSPC, the diagnosis names such a filesystem as the full disk. Pure functions: no I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_SIZE = re.compile(r"^\s*([0-9]+)\s*([kmgt]?)b?\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_size(text):
    """A tmpfs size ("16m", "1g", "4096") -> bytes; None when absent or not a byte count (e.g. "50%")."""
    match = _SIZE.match(str(text or ""))
    return int(match.group(1)) * _UNITS[match.group(2).lower()] if match else None


def tmpfs_size(options):
    """The size= of a tmpfs option string ("rw,size=16m,mode=1777") in bytes; None when unbounded."""
    for option in (options or "").split(","):
        key, _sep, value = option.partition("=")
        if key.strip() == "size":
            return parse_size(value)
    return None


def bounded_filesystems(container):
    """[{path, kind, size_bytes}] of the container's tmpfs mounts that have a size, sorted by path."""
    host_config = (container or {}).get("HostConfig") or {}
    found = {}
    for path, options in (host_config.get("Tmpfs") or {}).items():
        size = tmpfs_size(options)
        if size:
            found[path] = {"path": path, "kind": "tmpfs", "size_bytes": size}
    for mount in host_config.get("Mounts") or []:
        size = ((mount.get("TmpfsOptions") or {}).get("SizeBytes")) if mount.get("Type") == "tmpfs" else None
        if size and mount.get("Target"):
            found[mount["Target"]] = {"path": mount["Target"], "kind": "tmpfs", "size_bytes": int(size)}
    return [found[path] for path in sorted(found)]


def human_size(size):
    """16777216 -> "16 MiB"."""
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if size >= scale:
            return "{0:g} {1}".format(round(size / float(scale), 1), unit)
    return "{0} bytes".format(size)


def full_filesystem_reason(line, bounded):
    """The disk_full reason for an ENOSPC log line of a container that writes to size-bounded filesystems."""
    names = ", ".join("{0} ({1}, {2})".format(fs["path"], fs["kind"], human_size(fs["size_bytes"])) for fs in bounded)
    return ("the log says '{0}' and docker's root and / are below the threshold: the container's size-bounded "
            "filesystem filled up: {1}".format(line.strip(), names))
