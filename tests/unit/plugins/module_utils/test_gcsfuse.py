"""Unit tests for gcsfuse: module_utils/_gcsfuse.py, the filter plugin, the mount-point helper the units run,
and the contract between the argv the role builds and the test stand-in's parser."""

import errno
import importlib.machinery
import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.fleetwarden.fleet.plugins.filter import gcsfuse as gcsfuse_filter
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _gcsfuse

REPO = Path(__file__).resolve().parents[4]


def load_script(path, name):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


helper = load_script(REPO / "roles" / "gcsfuse" / "files" / "fleetwarden-gcsfuse-mountpoint", "gcsfuse_helper")
standin = load_script(REPO / "tests" / "standins" / "gcsfuse", "gcsfuse_standin")

FULL = {"bucket": "marin-us-central2", "mountpoint": "/opt/gcsfuse_mount", "only_dir": "gcsfuse_mount",
        "implicit_dirs": True, "uid": 1000, "gid": 1000, "file_mode": "644", "dir_mode": "755",
        "stat_cache_ttl": "1m", "type_cache_ttl": "60s", "extra_args": ["--rename-dir-limit", "200"]}


@pytest.mark.parametrize(("mountpoint", "unit"), [
    ("/opt/gcsfuse_mount", "fleetwarden-gcsfuse-opt-gcsfuse_mount.service"),
    ("/mnt/gcs/marin", "fleetwarden-gcsfuse-mnt-gcs-marin.service"),
    ("/mnt/my-bucket", "fleetwarden-gcsfuse-mnt-my\\x2dbucket.service"),
])
def test_unit_name(mountpoint, unit):
    assert _gcsfuse.gcsfuse_unit_name(mountpoint) == unit


def test_full_argv():
    assert _gcsfuse.gcsfuse_argv(FULL) == [
        "/usr/bin/gcsfuse", "--foreground", "--implicit-dirs", "--only-dir", "gcsfuse_mount", "--uid", "1000",
        "--gid", "1000", "--file-mode", "644", "--dir-mode", "755", "--stat-cache-ttl", "1m",
        "--type-cache-ttl", "60s", "--rename-dir-limit", "200", "marin-us-central2", "/opt/gcsfuse_mount"]


def test_minimal_argv_and_defaults():
    mount = {"bucket": "b-1", "mountpoint": "/mnt/b"}
    assert _gcsfuse.gcsfuse_argv(mount, "/usr/local/bin/gcsfuse-standin") == [
        "/usr/local/bin/gcsfuse-standin", "--foreground", "b-1", "/mnt/b"]
    defaults = {"implicit_dirs": True, "file_mode": "640", "uid": None}
    argv = _gcsfuse.gcsfuse_argv(dict(mount, file_mode="600", implicit_dirs=False), defaults=defaults)
    assert argv == ["/usr/bin/gcsfuse", "--foreground", "--file-mode", "600", "b-1", "/mnt/b"]
    assert "--implicit-dirs" in _gcsfuse.gcsfuse_argv(mount, defaults=defaults)


def test_exec_start_quotes_user_data():
    line = _gcsfuse.gcsfuse_exec_start(dict(FULL, only_dir="runs/$USER 100%"))
    assert '--only-dir "runs/$$USER 100%%"' in line
    assert line.startswith("/usr/bin/gcsfuse --foreground --implicit-dirs")


@pytest.mark.parametrize(("change", "fragment"), [
    ({"bucket": "UPPER"}, "bucket 'UPPER'"),
    ({"bucket": "ab"}, "bucket 'ab'"),
    ({"bucket": None}, "bucket None"),
    ({"mountpoint": "relative/path"}, "absolute"),
    ({"mountpoint": "/mnt/gcs/"}, "normalized"),
    ({"mountpoint": "/"}, "normalized"),
    ({"only_dir": "/abs"}, "only_dir"),
    ({"only_dir": "a/../../b"}, "only_dir"),
    ({"implicit_dirs": "yes"}, "implicit_dirs"),
    ({"uid": "ray"}, "uid must be a number"),
    ({"gid": -1}, "gid must be a number"),
    ({"file_mode": 644}, "file_mode must be an octal string"),
    ({"dir_mode": "0999"}, "dir_mode"),
    ({"stat_cache_ttl": "1 minute"}, "stat_cache_ttl"),
    ({"type_cache_ttl": 60}, "type_cache_ttl"),
    ({"extra_args": "--debug_fuse"}, "extra_args"),
    ({"state": "mounted"}, "state"),
    ({"uuid": 5}, "unknown key uuid"),
    ({"only_dir": "a\nb"}, "control characters"),
    ({"mountpoint": "/mnt/a\tb"}, "control characters"),
])
def test_mount_errors_name_the_field(change, fragment):
    errors = _gcsfuse.mount_errors(dict(FULL, **change))
    assert any(fragment in error for error in errors), errors
    with pytest.raises(ValueError):
        _gcsfuse.gcsfuse_argv(dict(FULL, **change))


@pytest.mark.parametrize("ttl", ["0", "60s", "1m", "1h30m", "1.5h", "500ms", "10us"])
def test_durations_go_accepts(ttl):
    assert _gcsfuse.mount_errors(dict(FULL, stat_cache_ttl=ttl)) == []


def test_filter_plugin():
    filters = gcsfuse_filter.FilterModule().filters()
    assert filters["gcsfuse_unit_name"]("/mnt/gcs") == "fleetwarden-gcsfuse-mnt-gcs.service"
    assert filters["systemd_exec_line"](["/bin/echo", "a b"]) == '/bin/echo "a b"'
    assert filters["gcsfuse_exec_start"]({"bucket": "b-1", "mountpoint": "/m"}, "/x/gcsfuse") == (
        "/x/gcsfuse --foreground b-1 /m")
    with pytest.raises(AnsibleFilterError, match="gcsfuse_exec_start"):
        filters["gcsfuse_exec_start"]({"bucket": "B", "mountpoint": "/m"})
    assert set(filters) == {"gcsfuse_unit_name", "gcsfuse_exec_start", "gcsfuse_mounts_errors", "systemd_exec_line"}


def test_mounts_errors_filter_finds_duplicates_and_uses_defaults():
    mounts = [{"bucket": "b-1", "mountpoint": "/mnt/a"}, {"bucket": "b-2", "mountpoint": "/mnt/a/"},
              {"bucket": "b-3", "mountpoint": "/mnt/c"}]
    errors = gcsfuse_filter.gcsfuse_mounts_errors(mounts, {"file_mode": 644})
    assert "/mnt/a: declared twice" in errors
    assert sum("file_mode" in error for error in errors) == 3
    assert gcsfuse_filter.gcsfuse_mounts_errors([], {}) == []
    assert gcsfuse_filter.gcsfuse_mounts_errors({"bucket": "x"}) == ["gcsfuse_mounts must be a list of dicts"]


# --- the contract with gcsfuse's command line, through the stand-in's parser --------------------------------


def test_standin_accepts_the_argv_the_role_builds():
    flags, bucket, mountpoint = standin.parse(_gcsfuse.gcsfuse_argv(FULL)[1:])
    assert (bucket, mountpoint) == ("marin-us-central2", "/opt/gcsfuse_mount")
    assert flags == {"foreground": True, "implicit-dirs": True, "only-dir": "gcsfuse_mount", "uid": "1000",
                     "gid": "1000", "file-mode": "644", "dir-mode": "755", "stat-cache-ttl": "1m",
                     "type-cache-ttl": "60s", "rename-dir-limit": "200"}


@pytest.mark.parametrize("argv", [["--no-such-flag", "b", "/m"], ["b"], ["--uid"], ["--foreground=maybe", "b", "/m"]])
def test_standin_rejects_what_gcsfuse_rejects(argv):
    with pytest.raises(SystemExit) as raised:
        standin.parse(argv)
    assert raised.value.code == 2


def test_standin_accepts_equals_form_and_repeated_o():
    argv = ["--uid=5", "-o", "ro", "-o", "allow_other", "--foreground=false", "b", "/m"]
    flags, _bucket, _point = standin.parse(argv)
    assert flags == {"uid": "5", "o": ["ro", "allow_other"], "foreground": False}


# --- the mount-point helper ----------------------------------------------------------------------------------

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
98 22 0:52 / /opt/gcsfuse_mount rw,nosuid,nodev,relatime shared:50 - fuse.gcsfuse marin rw,user_id=0,group_id=0
99 22 8:1 /var/lib/x /mnt/with\\040space rw,relatime shared:1 - ext4 /dev/sda1 rw
100 22 8:1 /var/lib/y /mnt/back\\134slash rw - ext4 /dev/sda1 rw
"""


def test_mount_points_unescape_mountinfo():
    assert helper.mount_points(MOUNTINFO) == ["/", "/opt/gcsfuse_mount", "/mnt/with space", "/mnt/back\\slash"]


@pytest.mark.parametrize(("path", "stat_result", "state"), [
    ("/opt/gcsfuse_mount", 0, "mounted"),
    ("/opt/gcsfuse_mount", errno.ENOTCONN, "stale"),  # "Transport endpoint is not connected"
    ("/opt/gcsfuse_mount", errno.ECONNABORTED, "stale"),
    ("/opt/gcsfuse_mount", errno.ETIMEDOUT, "stale"),  # stat hung: a wedged FUSE daemon
    ("/mnt/other", errno.ENOTCONN, "stale"),  # dead FUSE mount not (or no longer) listed
    ("/mnt/other", 0, "absent"),  # a plain directory, nothing mounted
    ("/mnt/other", errno.ENOENT, "absent"),
    ("/mnt/with space", errno.EACCES, "error:EACCES"),
])
def test_classify(path, stat_result, state):
    assert helper.classify(path, MOUNTINFO, stat_result) == state


def test_stat_errno_on_real_paths(tmp_path):
    assert helper.stat_errno(str(tmp_path)) == 0
    assert helper.stat_errno(str(tmp_path / "missing")) == errno.ENOENT


def test_watchdog_restarts_only_active_units_with_unusable_mounts():
    states = {"/mnt/ok": "mounted", "/mnt/stale": "stale", "/mnt/gone": "absent", "/mnt/stopped": "absent"}
    restarted, logged = [], []
    result = helper.watchdog(
        [("u-ok", "/mnt/ok"), ("u-stale", "/mnt/stale"), ("u-gone", "/mnt/gone"), ("u-stopped", "/mnt/stopped")],
        is_active=lambda unit: unit != "u-stopped", restart=restarted.append, probe_mount=states.get,
        log=logged.append)
    assert result == restarted == ["u-stale", "u-gone"]
    assert logged[0] == "u-stale: /mnt/stale is stale, restarting u-stale"


def test_helper_usage_errors():
    assert helper.main([]) == 2
    assert helper.main(["watchdog", "unit-without-path"]) == 2
    assert helper.main(["frobnicate", "/mnt"]) == 2
