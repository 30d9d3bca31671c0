# Copyright: fleetwarden maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure parsers of node state: /proc/meminfo, /proc/vmstat, statvfs, mountinfo, kernel OOM lines.

Runs on managed hosts: Python 3.9+ standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import re

_KIB = 1024

# Docker prints RFC 3339 with nanoseconds and "Z"; journalctl -o short-iso prints "+0000" (systemd < 250)
# or "+00:00"; dmesg --time-format iso prints "2024-03-05T14:22:30,512345+00:00".
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*(Z|[+-]\d\d:?\d\d)?$"
)
_JOURNAL_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\S+)\s+\S+\s+kernel:\s?(.*)$")
_DMESG_ISO_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.,]\d+[+-]\d\d:?\d\d)\s(.*)$")
_DMESG_RAW_LINE = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")
_OOM_SUMMARY = re.compile(r"oom-kill:(\S+)")
_KILLED = re.compile(
    r"(?:(Memory cgroup out of memory|Out of memory(?: \(oom_kill_allocating_task\))?): )?"
    r"Killed process (\d+) \(([^)]*)\)"
)
# systemd cgroup driver: /system.slice/docker-<id>.scope; cgroupfs driver: /docker/<id>
_DOCKER_CGROUP = re.compile(r"docker[-/]([0-9a-f]{64})")


def parse_timestamp(text):
    """Return seconds since the epoch (float, UTC) for an ISO 8601 / RFC 3339 timestamp, or None.

    Docker's zero time (0001-01-01T00:00:00Z, "never") is None too.
    """
    if not text:
        return None
    match = _TIMESTAMP.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if int(year) < 1970:
        return None
    epoch = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, 0))
    if fraction:
        epoch += int(fraction) / (10.0 ** len(fraction))
    if zone and zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        digits = zone[1:].replace(":", "")
        epoch += sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch


def parse_meminfo(text):
    """Parse /proc/meminfo into {field: value}; kB values become bytes, counts stay counts."""
    values = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        value = int(parts[0])
        if len(parts) > 1 and parts[1] == "kB":
            value *= _KIB
        values[key.strip()] = value
    return values


def _pct(part, whole):
    if not whole:
        return 0.0
    return round(100.0 * part / whole, 1)


def memory_summary(meminfo):
    """Memory and swap figures, in bytes, from parse_meminfo() output."""
    total = meminfo.get("MemTotal", 0)
    free = meminfo.get("MemFree", 0)
    available = meminfo.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = free + meminfo.get("Buffers", 0) + meminfo.get("Cached", 0)
    swap_total = meminfo.get("SwapTotal", 0)
    swap_free = meminfo.get("SwapFree", 0)
    return {
        "memory": {
            "total_bytes": total,
            "available_bytes": available,
            "free_bytes": free,
            "used_bytes": total - available,
            "used_pct": _pct(total - available, total),
        },
        "swap": {
            "total_bytes": swap_total,
            "free_bytes": swap_free,
            "used_bytes": swap_total - swap_free,
            "used_pct": _pct(swap_total - swap_free, swap_total),
        },
    }


def parse_vmstat_oom_kills(text):
    """OOM kills since boot from /proc/vmstat (kernel 4.13+), or None where the counter is missing."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "oom_kill" and parts[1].isdigit():
            return int(parts[1])
    return None


def parse_uptime(text):
    """Seconds since boot from /proc/uptime, or None."""
    parts = text.split()
    try:
        return float(parts[0])
    except (IndexError, ValueError):
        return None


def disk_usage(path, st, full_threshold_pct):
    """Shape an os.statvfs() result like df does: Use% = used / (used + available to non-root)."""
    frsize = st.f_frsize or st.f_bsize
    used_blocks = st.f_blocks - st.f_bfree
    used_inodes = st.f_files - st.f_ffree
    used_pct = _pct(used_blocks, used_blocks + st.f_bavail)
    inodes_used_pct = _pct(used_inodes, st.f_files)
    return {
        "path": path,
        "total_bytes": st.f_blocks * frsize,
        "used_bytes": used_blocks * frsize,
        "available_bytes": st.f_bavail * frsize,
        "used_pct": used_pct,
        "inodes_total": st.f_files,
        "inodes_free": st.f_ffree,
        "inodes_used_pct": inodes_used_pct,
        "full": used_pct >= full_threshold_pct or inodes_used_pct >= full_threshold_pct,
    }


def _unescape_mount_field(field):
    # mountinfo escapes space, tab, newline and backslash as octal: \040 \011 \012 \134
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Parse /proc/<pid>/mountinfo into a list of {mount_point, fstype, source, options}."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 7:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 3:
            continue
        mounts.append({
            "mount_point": _unescape_mount_field(fields[4]),
            "options": fields[5],
            "fstype": fields[sep + 1],
            "source": _unescape_mount_field(fields[sep + 2]),
        })
    return mounts


def find_mount(mounts, mount_point):
    """The last (topmost) mount at mount_point, or None."""
    found = None
    wanted = mount_point.rstrip("/") or "/"
    for mount in mounts:
        if mount["mount_point"] == wanted:
            found = mount
    return found


def mount_check(path, mount, error):
    """One checked mount point: ``mount`` is its find_mount() entry (None: not mounted), ``error`` what stat said."""
    if mount is None:
        error = "not mounted"
    return {"path": path, "checked": True, "healthy": error is None, "mounted": mount is not None,
            "fstype": mount["fstype"] if mount else None, "error": error}


def mounts_not_checked(paths, reason):
    """Mount points that could not be checked, each saying why."""
    return [{"path": path, "checked": False, "healthy": None, "mounted": None, "fstype": None, "error": reason}
            for path in paths]


def parse_kernel_log(text):
    """Split kernel log output into (epoch or None, message) pairs.

    Accepts journalctl -k -o short-iso, dmesg --time-format iso, and plain dmesg (no wall-clock time).
    """
    entries = []
    for line in text.splitlines():
        for pattern in (_JOURNAL_LINE, _DMESG_ISO_LINE):
            match = pattern.match(line)
            if match:
                entries.append((parse_timestamp(match.group(1)), match.group(2)))
                break
        else:
            match = _DMESG_RAW_LINE.match(line)
            if match:
                entries.append((None, match.group(2)))
            elif line.strip() and not line.startswith("-- "):
                entries.append((None, line))
    return entries


def container_id_from_cgroup(path):
    """The 64-hex Docker container ID in a cgroup path, or None."""
    match = _DOCKER_CGROUP.search(path or "")
    return match.group(1) if match else None


def _parse_oom_summary(fields):
    summary = {}
    for pair in fields.split(","):
        key, sep, value = pair.partition("=")
        if sep:
            summary[key] = value
    return summary


def parse_kernel_oom_events(text):
    """Kernel OOM-killer kills from kernel log text, oldest first.

    Each event: time (epoch or None), pid, process, scope ("memcg" or "global"), constraint,
    memcg (the victim's cgroup), container_id (from the cgroup, or None) and the exact kernel line.
    The oom-kill: summary line (kernel 4.19+) that precedes a kill names the victim's cgroup.
    """
    events = []
    summary = {}
    for epoch, message in parse_kernel_log(text):
        match = _OOM_SUMMARY.search(message)
        if match:
            summary = _parse_oom_summary(match.group(1))
            continue
        match = _KILLED.search(message)
        if not match:
            continue
        kind, pid, process = match.groups()
        memcg = summary.get("task_memcg") if summary.get("pid") == pid else None
        constraint = summary.get("constraint") if summary.get("pid") == pid else None
        if (kind or "").startswith("Memory cgroup") or constraint == "CONSTRAINT_MEMCG":
            scope = "memcg"
        else:
            scope = "global"
        events.append({
            "time": epoch,
            "pid": int(pid),
            "process": process,
            "scope": scope,
            "constraint": constraint,
            "memcg": memcg,
            "container_id": container_id_from_cgroup(memcg),
            "line": message,
        })
        summary = {}
    return events


def events_between(events, since, until):
    """The events from ``since`` to ``until`` (epoch seconds); an event whose time is unknown is kept."""
    return [event for event in events if event["time"] is None or since <= event["time"] <= until]


# node_facts' default paths; container_diagnosis (node_facts=true) reads the same.
NODE_FACT_PATHS = ("/", "/var/lib/docker")


def node_facts(read_text, statvfs, paths, full_threshold_pct):
    """Memory, swap, disks (``paths``), OOM kills since boot and uptime, read through ``read_text(path)`` and
    ``statvfs(path)``: the node_facts module, and container_diagnosis (node_facts=true) in its one call."""
    facts = memory_summary(parse_meminfo(read_text("/proc/meminfo")))
    disks = []
    for path in paths:
        try:
            disks.append(disk_usage(path, statvfs(path), full_threshold_pct))
        except OSError as exc:
            disks.append({"path": path, "error": exc.strerror or str(exc)})
    facts["disks"] = disks
    facts["oom_kill_count"] = parse_vmstat_oom_kills(read_text("/proc/vmstat"))
    facts["uptime_s"] = parse_uptime(read_text("/proc/uptime"))
    return facts
