"""Unit tests for the container_diagnosis module: main() driven by the YAML cases in
tests/fixtures/diagnosis/module-cases.yml (params, host, expected run_command calls, expected result).
"""

import json
import socket
from pathlib import Path

import pytest
import yaml
from ansible_collections.fleetwarden.fleet.plugins.module_utils._diagnosis import CAUSES
from ansible_collections.fleetwarden.fleet.plugins.module_utils._recovery_plan import REMEDIATION_IDS
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


# --- every worker of a host in one call (workers, history_file) --------------------------------------------------
def _case(case_id):
    return next(case for case in CASES if case["id"] == case_id)


def test_workers_in_one_call_ask_the_daemon_once_and_match_one_call_each(run_diagnosis_case):
    single = _case("oom_killed")
    alone, _made = run_diagnosis_case(single)
    calls = single["calls"]
    assert "info" in calls[0]["command"]
    twice = {"params": {"workers": [dict(single["params"]), dict(single["params"], name="ray-worker")]},
             "host": single["host"], "calls": [calls[0], *calls[1:], *calls[1:]]}
    result, made = run_diagnosis_case(twice)
    assert not result.get("failed"), result
    assert sum("info" in argv for argv in made) == 1
    assert [w["name"] for w in result["workers"]] == ["ray-worker", "ray-worker"]
    for worker in result["workers"]:
        assert {k: v for k, v in worker.items() if k != "name"} == {k: v for k, v in alone.items() if k != "changed"}
    assert set(result) == {"changed", "workers"}


def test_the_history_file_adds_each_workers_earlier_deaths(run_diagnosis_case):
    case = _case("oom_killed_third_in_an_hour_is_report_only")
    # Short records: the fake host reads a file's text from the fixture of that name when there is one.
    history = {"ray-worker": [{k: v for k, v in r.items() if k != "container_id"}
                              for r in case["params"]["history"]],
               "other": [{"cause": "sigkill", "at": 1709646900.0}]}
    params = {"workers": [{"name": "ray-worker"}], "history_file": "/var/lib/fleetwarden/incidents/history.json"}
    text = json.dumps(history, separators=(",", ":"))
    result, _made = run_diagnosis_case({"params": params, "calls": case["calls"],
                                        "host": {"files": {params["history_file"]: text}}})
    worker = result["workers"][0]
    assert worker["remediation"] == "report_only" and worker["repeat"]["count"] == 3
    broken, _made = run_diagnosis_case({"params": params, "calls": case["calls"],
                                        "host": {"files": {params["history_file"]: "not json"}}})
    assert broken["workers"][0]["remediation"] == "recreate_worker"


@pytest.mark.parametrize("params, message", [
    ({"workers": [{"name": "a", "colour": "red"}]}, "unknown keys colour"),
    ({"workers": [{"unit": "a.service"}]}, "needs a name"),
    ({"name": "a", "workers": [{"name": "a"}]}, "mutually exclusive"),
    ({}, "one of the following is required"),
])
def test_bad_workers_fail_naming_the_field_before_any_command(run_diagnosis_case, params, message):
    result, made = run_diagnosis_case({"params": params, "calls": []})
    assert result["failed"] is True and message in result["msg"]
    assert made == []


def test_no_workers_is_an_empty_answer_with_no_command(run_diagnosis_case):
    result, made = run_diagnosis_case({"params": {"workers": []}, "calls": []})
    assert result == {"changed": False, "workers": []} and made == []


def test_the_hosts_declarations_are_read_and_diagnosed_in_the_same_call(run_diagnosis_case, tmp_path):
    single = _case("oom_killed")
    declaration = {"name": "ray-worker", "image": "fleet/ray-worker:2.9.3-cu121",
                   "gcsfuse_mounts": [{"bucket": "b", "mountpoint": "/mnt/gcsfuse"}],
                   "ray_head_address": "10.130.0.115:6379", "env": {"HF_TOKEN": "never-read-back"}}
    (tmp_path / "ray-worker.json").write_text(json.dumps(declaration))
    (tmp_path / "broken.json").write_text("{")
    calls = [dict(call) for call in single["calls"]]
    calls[-1]["command"] = [*calls[-1]["command"][:-1], "fleetwarden-worker-ray-worker.service"]
    result, made = run_diagnosis_case({"params": {"declarations_dir": str(tmp_path)}, "host": single["host"],
                                       "calls": calls})
    assert not result.get("failed"), result
    assert [w["name"] for w in result["declared"]] == ["ray-worker"]
    assert "never-read-back" not in json.dumps(result["declared"])
    assert len(result["declaration_errors"]) == 1 and "broken.json" in result["declaration_errors"][0]
    worker = result["workers"][0]
    assert worker["cause"] == "oom_killed" and worker["evidence"]["ray_head"]["address"] == "10.130.0.115:6379"
    assert [m["path"] for m in worker["evidence"]["mounts"]] == ["/mnt/gcsfuse"]
    assert made == [c["command"] for c in calls]


def test_no_declarations_directory_is_no_workers(run_diagnosis_case, tmp_path):
    result, made = run_diagnosis_case({"params": {"declarations_dir": str(tmp_path / "none")}, "calls": []})
    assert result == {"changed": False, "workers": [], "declared": [], "declaration_errors": []} and made == []


def test_node_and_gpu_facts_come_in_the_same_call_as_their_modules_give_them(run_diagnosis_case):
    meminfo = "MemTotal:       16384000 kB\nMemAvailable:    8192000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"
    case = {"params": {"workers": [], "node_facts": True, "gpu_facts": True},
            "host": {"files": {"/proc/meminfo": meminfo, "/proc/vmstat": "oom_kill 4\n", "/proc/uptime": "99.5 1\n"},
                     "missing_bins": ["nvidia-smi"]},
            "calls": []}
    result, made = run_diagnosis_case(case)
    assert result["workers"] == [] and made == []
    assert result["node"]["oom_kill_count"] == 4 and result["node"]["uptime_s"] == 99.5
    assert [d["path"] for d in result["node"]["disks"]] == ["/", "/var/lib/docker"]
    assert result["gpu"]["health"] == "absent" and result["gpu"]["gpu_count"] == 0
    plain, _made = run_diagnosis_case({"params": {"workers": []}, "calls": []})
    assert "node" not in plain and "gpu" not in plain
