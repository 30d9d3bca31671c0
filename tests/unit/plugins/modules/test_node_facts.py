"""Unit tests for the node_facts module: main() over recorded /proc files and fake statvfs results."""

import errno
import os
from pathlib import Path
from unittest import mock

import pytest
from ansible_collections.fleetwarden.fleet.plugins.modules import node_facts

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "diagnosis"
PROC = {
    "/proc/meminfo": (FIXTURES / "proc-meminfo.txt").read_text(),
    "/proc/vmstat": (FIXTURES / "proc-vmstat.txt").read_text(),
    "/proc/uptime": "86400.51 5528700.12\n",
}
FILESYSTEMS = {
    "/": (52428800, 41943040, 39321600, 13107200, 12451840),  # 20% of blocks used: 21.1% as df counts
    "/var/lib/docker": (262144000, 5242880, 2621440, 16384000, 15564800),  # 99.0% as df counts
}


def statvfs(path):
    if path not in FILESYSTEMS:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    blocks, bfree, bavail, files, ffree = FILESYSTEMS[path]
    return os.statvfs_result((4096, 4096, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


@pytest.fixture
def run_module(run_main):
    def run(params, proc=None):
        proc = PROC if proc is None else proc
        with mock.patch.multiple(node_facts, read_text=lambda path: proc.get(path, ""), statvfs=statvfs):
            return run_main(node_facts, params)
    return run


def test_node_facts_from_recorded_proc_files(run_module):
    result = run_module({})
    assert result["changed"] is False
    assert result["memory"]["total_bytes"] == 1056629604 * 1024
    assert result["memory"]["available_bytes"] == 25165824 * 1024
    assert result["memory"]["used_pct"] == 97.6
    assert result["swap"]["used_pct"] == 75.0
    assert result["oom_kill_count"] == 3
    assert result["uptime_s"] == 86400.51
    root, docker = result["disks"]
    assert (root["path"], root["used_pct"], root["full"]) == ("/", 21.1, False)
    assert (docker["path"], docker["used_pct"], docker["full"]) == ("/var/lib/docker", 99.0, True)
    assert result["ansible_facts"]["fleet_node"]["oom_kill_count"] == 3


def test_missing_path_is_reported_not_fatal(run_module):
    result = run_module({"paths": ["/", "/mnt/data"]})
    assert result["disks"][1] == {"path": "/mnt/data", "error": "No such file or directory"}


def test_threshold_is_a_parameter(run_module):
    result = run_module({"paths": ["/"], "disk_full_threshold_pct": 20})
    assert result["disks"][0]["full"] is True


def test_unreadable_proc_gives_empty_facts_not_a_failure(run_module):
    result = run_module({"paths": []}, proc={})
    assert result["memory"]["total_bytes"] == 0
    assert result["oom_kill_count"] is None
    assert result["uptime_s"] is None
    assert result["disks"] == []
