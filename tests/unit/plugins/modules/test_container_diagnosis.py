"""Unit tests for the container_diagnosis module: main() driven by the YAML cases in
tests/fixtures/diagnosis/module-cases.yml (params, host, expected run_command calls, expected result).
"""

import json
import socket
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.fleetwarden.fleet.plugins.module_utils._diagnosis import CAUSES, REMEDIATION_IDS
from ansible_collections.fleetwarden.fleet.plugins.modules import container_diagnosis

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "diagnosis"
CASES = yaml.safe_load((FIXTURES / "module-cases.yml").read_text())
HEALTHY_DISK = [1000000, 600000, 550000, 1000000, 950000]  # 4 KiB blocks: 42% used


class ModuleExit(Exception):
    pass


def _text(call, key):
    if key + "_file" in call:
        return (FIXTURES / call[key + "_file"]).read_text()
    return call.get(key, "")


def _fake_statvfs(table):
    def statvfs(path):
        blocks, bfree, bavail, files, ffree = table.get(path, HEALTHY_DISK)
        return container_diagnosis.os.statvfs_result((4096, 4096, blocks, bfree, bavail, files, ffree, ffree, 0, 255))
    return statvfs


def run_case(case, check_mode=False):
    """Run main() for one case; return (result, argv of every run_command call)."""
    host = case.get("host") or {}
    calls = list(case.get("calls") or [])
    made = []
    missing = set(host.get("missing_bins") or [])
    files = dict((path, (FIXTURES / name).read_text() if (FIXTURES / name).is_file() else name)
                 for path, name in (host.get("files") or {}).items())

    def run_command(self, argv, **kwargs):
        made.append(list(argv))
        assert calls, f"unexpected run_command call: {argv}"
        call = calls.pop(0)
        assert list(argv) == call["command"]
        return call.get("rc", 0), _text(call, "out"), _text(call, "err")

    def get_bin_path(self, name, required=False, opt_dirs=None):
        if name in missing:
            if required:
                self.fail_json(msg="Failed to find required executable " + name)
            return None
        return "/usr/bin/" + name

    def exit_json(self, **result):
        raise ModuleExit(result)

    def fail_json(self, **result):
        result["failed"] = True
        raise ModuleExit(result)

    def probe_tcp(host_name, port, timeout):
        return (host.get("tcp_errors") or {}).get(f"{host_name}:{port}")

    args = dict(case["params"], _ansible_check_mode=check_mode)
    with patch_module_args(args), mock.patch.multiple(
            basic.AnsibleModule, run_command=run_command, get_bin_path=get_bin_path, exit_json=exit_json,
            fail_json=fail_json), mock.patch.multiple(
            container_diagnosis, now=lambda: host.get("now", 1709990000),
            read_text=lambda path: files.get(path, ""), statvfs=_fake_statvfs(host.get("statvfs") or {}),
            probe_path=lambda path, timeout: (host.get("stat_errors") or {}).get(path.replace("/proc/48102/root", "")),
            probe_tcp=probe_tcp):
        with pytest.raises(ModuleExit) as raised:
            container_diagnosis.main()
    result = raised.value.args[0]
    if not result.get("failed"):
        assert not calls, f"expected run_command calls not made: {calls}"
    return result, made


def lookup(result, dotted):
    value = result
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_container_diagnosis(case):
    result, _made = run_case(case)
    assert bool(result.get("failed")) is bool(case["expect"].get("failed"))
    for path, expected in case["expect"].items():
        got = lookup(result, path)
        if isinstance(expected, float):
            assert got == pytest.approx(expected), path
        else:
            assert got == expected, path
    for path, expected in (case.get("expect_in") or {}).items():
        assert expected in lookup(result, path), path
    dumped = json.dumps(result)
    for secret in case.get("secrets") or []:
        assert secret not in dumped


def test_every_successful_case_returns_the_documented_shape():
    for case in CASES:
        if not case["expect"].get("failed"):
            result, _made = run_case(case)
            assert result["cause"] in CAUSES
            assert result["remediation"] in REMEDIATION_IDS
            assert result["findings"] == [] or result["findings"][0]["cause"] == result["cause"]
            assert set(result) == {"changed", "exists", "container_id", "cause", "findings", "remediation",
                                   "recommendation", "repeat", "record", "evidence"}
            assert set(result["evidence"]) == {
                "state", "exit", "restart_count", "memory_limit_bytes", "memory_swap_bytes", "shm_size_bytes",
                "image", "image_present", "env", "log_tail", "log_error", "log_matches", "kernel_log_source",
                "kernel_oom_events", "disks", "daemon", "mounts", "ray_head", "unit"}


def test_check_mode_gives_the_same_read_only_result():
    case = next(case for case in CASES if case["id"] == "oom_killed")
    normal, normal_calls = run_case(case)
    checked, checked_calls = run_case(case, check_mode=True)
    assert checked == normal
    assert checked_calls == normal_calls
    assert checked["changed"] is False


def test_missing_docker_cli_fails():
    case = {"params": {"name": "ray-worker"}, "host": {"missing_bins": ["docker"]}, "calls": []}
    result, made = run_case(case)
    assert result["failed"] is True
    assert result["msg"] == "Failed to find required executable docker"
    assert made == []


def test_probe_tcp_reports_refused_connections():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.listen(1)
    try:
        assert container_diagnosis.probe_tcp("127.0.0.1", port, 1) is None
    finally:
        server.close()
    assert container_diagnosis.probe_tcp("127.0.0.1", port, 1)


def test_probe_path_reports_missing_paths(tmp_path):
    assert container_diagnosis.probe_path(str(tmp_path), 1) is None
    assert container_diagnosis.probe_path(str(tmp_path / "absent"), 1) == "No such file or directory"
