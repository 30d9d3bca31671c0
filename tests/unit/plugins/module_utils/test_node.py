"""Unit tests for plugins/module_utils/_node.py: /proc, statvfs, mountinfo and kernel OOM parsers."""

import os
from pathlib import Path

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _node

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "diagnosis"
OOM_CONTAINER = "5f5fbbfadc198f2d1012b7bf2dcbb5155039b7880c85ce788c085060186a5050"
OTHER_CONTAINER = "9b1e4c0d2a7f3e8b6c5d4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d"


def fixture(name):
    return (FIXTURES / name).read_text()


def statvfs(blocks, bfree, bavail, files=1000, ffree=900, frsize=4096):
    return os.statvfs_result((frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-05T14:22:31.567890123Z", 1709648551.567890123),  # docker inspect, RFC 3339 nanoseconds
    ("2024-03-05T14:22:30+0000", 1709648550.0),  # journalctl -o short-iso, systemd < 250
    ("2024-03-05T14:22:30+00:00", 1709648550.0),  # journalctl -o short-iso, systemd >= 250
    ("2024-03-05T14:22:29,882101+00:00", 1709648549.882101),  # dmesg --time-format iso
    ("2024-03-05T19:52:30+05:30", 1709648550.0),
    ("2024-03-05T09:22:30-0500", 1709648550.0),
    ("2024-03-05T14:22:30", 1709648550.0),  # no zone: UTC
    ("0001-01-01T00:00:00Z", None),  # docker's "never"
    ("", None),
    (None, None),
    ("yesterday", None),
])
def test_parse_timestamp(text, expected):
    result = _node.parse_timestamp(text)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-6)


def test_parse_meminfo_turns_kb_into_bytes_and_keeps_counts():
    meminfo = _node.parse_meminfo(fixture("proc-meminfo.txt"))
    assert meminfo["MemTotal"] == 1056629604 * 1024
    assert meminfo["MemAvailable"] == 25165824 * 1024
    assert meminfo["Active(anon)"] == 975000000 * 1024
    assert meminfo["HugePages_Total"] == 0
    assert meminfo["Hugepagesize"] == 2048 * 1024


def test_memory_summary_from_meminfo():
    summary = _node.memory_summary(_node.parse_meminfo(fixture("proc-meminfo.txt")))
    assert summary["memory"] == {
        "total_bytes": 1056629604 * 1024,
        "available_bytes": 25165824 * 1024,
        "free_bytes": 12582912 * 1024,
        "used_bytes": (1056629604 - 25165824) * 1024,
        "used_pct": 97.6,
    }
    assert summary["swap"] == {
        "total_bytes": 8388604 * 1024,
        "free_bytes": 2097152 * 1024,
        "used_bytes": (8388604 - 2097152) * 1024,
        "used_pct": 75.0,
    }


def test_memory_summary_estimates_available_on_old_kernels_and_handles_no_swap():
    summary = _node.memory_summary(_node.parse_meminfo(
        "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"))
    assert summary["memory"]["available_bytes"] == 400 * 1024
    assert summary["memory"]["used_pct"] == 60.0
    assert summary["swap"]["used_pct"] == 0.0


@pytest.mark.parametrize(("text", "expected"), [
    (None, 3),  # the fixture
    ("pgfault 12\noom_kill 0\n", 0),
    ("pgfault 12\npgmajfault 1\n", None),  # kernels before 4.13 lack the counter
    ("", None),
])
def test_parse_vmstat_oom_kills(text, expected):
    assert _node.parse_vmstat_oom_kills(fixture("proc-vmstat.txt") if text is None else text) == expected


@pytest.mark.parametrize(("text", "expected"), [("86400.51 1234567.89\n", 86400.51), ("", None), ("x y", None)])
def test_parse_uptime(text, expected):
    assert _node.parse_uptime(text) == expected


@pytest.mark.parametrize(("st", "threshold", "used_pct", "inodes_used_pct", "full"), [
    # df: used / (used + available to non-root); reserved blocks count as neither
    (statvfs(1000, 100, 50), 95, 94.7, 10.0, False),
    (statvfs(1000, 100, 50), 90, 94.7, 10.0, True),
    (statvfs(1000, 0, 0), 95, 100.0, 10.0, True),
    (statvfs(1000, 800, 800, files=1000, ffree=10), 95, 20.0, 99.0, True),  # out of inodes
    (statvfs(1000, 800, 800, files=0, ffree=0), 95, 20.0, 0.0, False),  # no inode accounting (btrfs)
])
def test_disk_usage(st, threshold, used_pct, inodes_used_pct, full):
    usage = _node.disk_usage("/var/lib/docker", st, threshold)
    assert usage["path"] == "/var/lib/docker"
    assert usage["used_pct"] == used_pct
    assert usage["inodes_used_pct"] == inodes_used_pct
    assert usage["full"] is full


def test_disk_usage_bytes():
    usage = _node.disk_usage("/", statvfs(1000, 100, 50), 95)
    assert (usage["total_bytes"], usage["used_bytes"], usage["available_bytes"]) == (
        1000 * 4096, 900 * 4096, 50 * 4096)
    assert (usage["inodes_total"], usage["inodes_free"]) == (1000, 900)


def test_parse_mountinfo_reads_fstype_source_and_escaped_paths():
    mounts = _node.parse_mountinfo(fixture("mountinfo-gcsfuse.txt"))
    by_point = dict((mount["mount_point"], mount) for mount in mounts)
    assert by_point["/mnt/gcsfuse"]["fstype"] == "fuse.gcsfuse"
    assert by_point["/mnt/gcsfuse"]["source"] == "fleet-training-data"
    assert by_point["/mnt/model cache"]["source"] == "fleet-model-cache"  # \040 is a space
    assert by_point["/"]["fstype"] == "ext4"
    assert len(mounts) == 8


@pytest.mark.parametrize(("path", "source"), [
    ("/mnt/gcsfuse", "fleet-training-data"),
    ("/mnt/gcsfuse/", "fleet-training-data"),
    ("/mnt/model cache", "fleet-model-cache"),
    ("/mnt/absent", None),
])
def test_find_mount(path, source):
    found = _node.find_mount(_node.parse_mountinfo(fixture("mountinfo-gcsfuse.txt")), path)
    assert (found["source"] if found else None) == source


def test_find_mount_returns_the_topmost_of_stacked_mounts():
    text = ("40 28 0:50 / /mnt/data rw - ext4 /dev/sdc1 rw\n"
            "41 40 0:51 / /mnt/data rw - fuse.gcsfuse bucket rw\n")
    assert _node.find_mount(_node.parse_mountinfo(text), "/mnt/data")["fstype"] == "fuse.gcsfuse"


def test_mount_check_says_whether_the_mount_answers():
    mount = _node.find_mount(_node.parse_mountinfo(fixture("mountinfo-gcsfuse.txt")), "/mnt/gcsfuse")
    assert _node.mount_check("/mnt/gcsfuse", mount, None) == {
        "path": "/mnt/gcsfuse", "checked": True, "healthy": True, "mounted": True, "fstype": "fuse.gcsfuse",
        "error": None}
    hung = _node.mount_check("/mnt/gcsfuse", mount, "Transport endpoint is not connected")
    assert (hung["healthy"], hung["mounted"], hung["error"]) == (False, True, "Transport endpoint is not connected")
    assert _node.mount_check("/mnt/gone", None, None) == {
        "path": "/mnt/gone", "checked": True, "healthy": False, "mounted": False, "fstype": None,
        "error": "not mounted"}


def test_mounts_not_checked_say_why():
    assert _node.mounts_not_checked(["/a", "/b"], "container is not running") == [
        {"path": path, "checked": False, "healthy": None, "mounted": None, "fstype": None,
         "error": "container is not running"} for path in ("/a", "/b")]


@pytest.mark.parametrize(("line", "epoch", "message"), [
    ("2024-03-05T14:22:30+0000 gpu-node-07 kernel: oom_reaper: reaped", 1709648550.0, "oom_reaper: reaped"),
    ("2024-03-05T14:22:29,882101+00:00 Killed process 1 (x)", 1709648549.882101, "Killed process 1 (x)"),
    ("[ 1234.567890] Killed process 1 (x)", None, "Killed process 1 (x)"),
    ("[Tue Mar  5 14:22:30 2024] Killed process 1 (x)", None, "[Tue Mar  5 14:22:30 2024] Killed process 1 (x)"),
])
def test_parse_kernel_log_formats(line, epoch, message):
    ((got_epoch, got_message),) = _node.parse_kernel_log(line)
    assert got_message == message
    assert got_epoch == (pytest.approx(epoch) if epoch else None)


def test_parse_kernel_log_skips_journal_markers():
    assert _node.parse_kernel_log("-- No entries --\n\n") == []


@pytest.mark.parametrize(("path", "expected"), [
    ("/system.slice/docker-" + OOM_CONTAINER + ".scope", OOM_CONTAINER),  # systemd cgroup driver
    ("/docker/" + OOM_CONTAINER, OOM_CONTAINER),  # cgroupfs driver
    ("/user.slice/user-1000.slice/session-3.scope", None),
    (None, None),
])
def test_container_id_from_cgroup(path, expected):
    assert _node.container_id_from_cgroup(path) == expected


def test_parse_kernel_oom_events_from_journal():
    events = _node.parse_kernel_oom_events(fixture("kernel-oom-memcg.journal"))
    assert [(event["pid"], event["process"], event["container_id"]) for event in events] == [
        (51877, "ray::IDLE", OOM_CONTAINER),
        (2231, "node_exporter", OTHER_CONTAINER),
        (48390, "python3", OOM_CONTAINER),
    ]
    last = events[-1]
    assert last["time"] == 1709648550.0
    assert last["scope"] == "memcg"
    assert last["constraint"] == "CONSTRAINT_MEMCG"
    assert last["memcg"] == "/system.slice/docker-" + OOM_CONTAINER + ".scope"
    assert last["line"].startswith("Memory cgroup out of memory: Killed process 48390 (python3) total-vm:98765432kB")


def test_parse_kernel_oom_events_from_old_kernel_dmesg_has_no_cgroup():
    (event,) = _node.parse_kernel_oom_events(fixture("kernel-oom-global.dmesg"))
    assert event["pid"] == 48390
    assert event["process"] == "python3"
    assert event["scope"] == "global"
    assert event["memcg"] is None and event["container_id"] is None
    assert event["time"] == pytest.approx(1709648549.882101)


def test_oom_summary_of_another_pid_is_not_attached():
    text = ("2024-03-05T14:22:30+0000 h kernel: oom-kill:constraint=CONSTRAINT_NONE,task_memcg=/docker/"
            + OOM_CONTAINER + ",task=a,pid=1\n"
            "2024-03-05T14:22:30+0000 h kernel: Out of memory: Killed process 2 (b) total-vm:1kB\n")
    (event,) = _node.parse_kernel_oom_events(text)
    assert (event["pid"], event["container_id"], event["scope"]) == (2, None, "global")


def test_parse_kernel_oom_events_without_oom_lines():
    assert _node.parse_kernel_oom_events(fixture("kernel-quiet.journal")) == []


def test_events_between_keeps_the_window_ends_and_the_undated():
    events = [{"time": t, "pid": n} for n, t in enumerate((99.9, 100, 150, 160, 160.1, None))]
    assert [event["pid"] for event in _node.events_between(events, 100, 160)] == [1, 2, 3, 5]
