"""Unit tests for module_utils/_container_fs.py: a container's size-bounded filesystems from docker inspect."""

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _container_fs as fs


@pytest.mark.parametrize(("text", "size"), [("16m", 16 << 20), ("1g", 1 << 30), ("4096", 4096), ("512k", 512 << 10),
                                            ("2MB", 2 << 20), ("50%", None), ("", None), (None, None)])
def test_parse_size(text, size):
    assert fs.parse_size(text) == size


@pytest.mark.parametrize(("options", "size"), [("size=16m", 16 << 20), ("rw,noexec,size=1g,mode=1777", 1 << 30),
                                               ("rw,mode=1777", None), ("", None), (None, None)])
def test_tmpfs_size(options, size):
    assert fs.tmpfs_size(options) == size


def test_bounded_filesystems_reads_tmpfs_flags_and_tmpfs_mounts():
    # As `docker inspect` shows `--tmpfs /scratch:size=16m`, `--tmpfs /run` and
    # `--mount type=tmpfs,destination=/cache,tmpfs-size=1048576`.
    container = {"HostConfig": {
        "Tmpfs": {"/scratch": "size=16m", "/run": ""},
        "Mounts": [{"Type": "tmpfs", "Target": "/cache", "TmpfsOptions": {"SizeBytes": 1048576}},
                   {"Type": "bind", "Source": "/data", "Target": "/data"}],
        "ShmSize": 67108864}}
    assert fs.bounded_filesystems(container) == [
        {"path": "/cache", "kind": "tmpfs", "size_bytes": 1 << 20},
        {"path": "/scratch", "kind": "tmpfs", "size_bytes": 16 << 20}]


def test_a_container_without_bounded_filesystems_has_none():
    assert fs.bounded_filesystems({"HostConfig": {"ShmSize": 67108864}}) == []
    assert fs.bounded_filesystems(None) == []


def test_the_reason_names_each_bounded_filesystem_and_the_log_line():
    reason = fs.full_filesystem_reason("OSError: [Errno 28] No space left on device ",
                                       [{"path": "/scratch", "kind": "tmpfs", "size_bytes": 16 << 20}])
    assert reason.startswith("the log says 'OSError: [Errno 28] No space left on device' and docker's root")
    assert reason.endswith("filled up: /scratch (tmpfs, 16 MiB)")
