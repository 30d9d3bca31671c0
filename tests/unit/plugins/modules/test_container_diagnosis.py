"""Unit tests for the container_diagnosis module: main() driven by the YAML cases in
tests/fixtures/diagnosis/module-cases.yml (params, host, expected run_command calls, expected result).
"""

import json
import socket
from pathlib import Path

import pytest
import yaml
from ansible_collections.fleetwarden.fleet.plugins.module_utils._diagnosis import CAUSES, REMEDIATION_IDS
from ansible_collections.fleetwarden.fleet.plugins.modules import container_diagnosis

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "diagnosis"
CASES = yaml.safe_load((FIXTURES / "module-cases.yml").read_text())


def lookup(result, dotted):
    value = result
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_container_diagnosis(case, run_diagnosis_case):
    result, _made = run_diagnosis_case(case)
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


def test_every_successful_case_returns_the_documented_shape(run_diagnosis_case):
    for case in CASES:
        if not case["expect"].get("failed"):
            result, _made = run_diagnosis_case(case)
            assert result["cause"] in CAUSES
            assert result["remediation"] in REMEDIATION_IDS
            assert result["findings"] == [] or result["findings"][0]["cause"] == result["cause"]
            assert set(result) == {"changed", "exists", "container_id", "cause", "findings", "remediation",
                                   "recommendation", "repeat", "record", "evidence"}
            assert set(result["evidence"]) == {
                "state", "exit", "restart_count", "memory_limit_bytes", "memory_swap_bytes", "shm_size_bytes",
                "bounded_filesystems", "image", "image_present", "env", "log_tail", "log_error", "log_matches",
                "kernel_log_source", "kernel_oom_events", "disks", "daemon", "mounts", "ray_head", "unit"}


def test_check_mode_gives_the_same_read_only_result(run_diagnosis_case):
    case = next(case for case in CASES if case["id"] == "oom_killed")
    normal, normal_calls = run_diagnosis_case(case)
    checked, checked_calls = run_diagnosis_case(case, check_mode=True)
    assert checked == normal
    assert checked_calls == normal_calls
    assert checked["changed"] is False


def test_missing_docker_cli_fails(run_diagnosis_case):
    case = {"params": {"name": "ray-worker"}, "host": {"missing_bins": ["docker"]}, "calls": []}
    result, made = run_diagnosis_case(case)
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


def test_a_running_worker_reports_the_last_death_its_supervisor_recorded(run_diagnosis_case, tmp_path):
    # systemd already replaced the killed container: the cause comes from the record the supervisor kept.
    from ansible_collections.fleetwarden.fleet.plugins.module_utils import _death_record as death_record

    case = next(case for case in CASES if case["id"] == "running_and_healthy")
    killed = {"Id": "d" * 64, "Config": {"Image": "img", "Env": []},
              "State": {"Status": "exited", "ExitCode": 137, "OOMKilled": False,
                        "StartedAt": "2026-11-27T22:00:00Z", "FinishedAt": "2026-11-27T22:01:00Z"}}
    record = death_record.build(killed, ["2026-11-27T22:00:59Z working"], False, 1.0)
    directory = Path(death_record.directory(str(tmp_path), case["params"]["name"]))
    directory.mkdir(parents=True)
    (directory / death_record.file_name(record)).write_text(json.dumps(record))
    result, _made = run_diagnosis_case(dict(case, params=dict(case["params"], incident_root=str(tmp_path))))
    assert result["cause"] == "running"
    last = result["evidence"]["last_death"]
    assert (last["cause"], last["container_id"], last["stopped_by_unit"]) == ("sigkill", "d" * 64, False)
    # Without an incident root, nothing is read.
    assert "last_death" not in run_diagnosis_case(case)[0]["evidence"]
