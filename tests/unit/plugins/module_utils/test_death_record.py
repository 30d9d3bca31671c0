"""Unit tests for module_utils/_death_record.py: the record a worker's supervisor keeps of each container death,
and the cause container_diagnosis reports from it."""

import base64
import json

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _death_record as death_record

SECRET = "drill-fake-secret-0123456789"  # noqa: S105 - a fake token
CONTAINER_ID = "a" * 64


def dead(exit_code, oom=False, env=("PATH=/usr/bin", "DRILL_API_TOKEN=" + SECRET), tmpfs=None, finished=None):
    return {
        "Id": CONTAINER_ID, "Config": {"Image": "fleetwarden/ray-worker:lab", "Env": list(env)},
        "State": {"Status": "exited", "Running": False, "Restarting": False, "OOMKilled": oom, "Pid": 0,
                  "ExitCode": exit_code, "Error": "", "StartedAt": "2026-11-27T22:00:00.000000000Z",
                  "FinishedAt": finished or "2026-11-27T22:01:00.500000000Z"},
        "HostConfig": {"ShmSize": 67108864, "Tmpfs": tmpfs or {}},
    }


def test_the_record_keeps_the_state_and_redacts_the_log_in_every_encoding():
    lines = ["2026-11-27T22:00:59.000000000Z token " + SECRET,
             "2026-11-27T22:00:59.500000000Z b64 " + base64.b64encode(SECRET.encode()).decode(),
             "2026-11-27T22:01:00.000000000Z Killed"]
    record = death_record.build(dead(137), lines, stopped_by_unit=False, recorded_at=1.0)
    assert record["container_id"] == CONTAINER_ID and record["state"]["ExitCode"] == 137
    assert record["exit"]["signal"] == "SIGKILL" and record["stopped_by_unit"] is False
    assert len(record["log_tail"]) == 3 and record["log_tail"][-1].endswith("Killed")
    assert SECRET not in json.dumps(record)
    assert base64.b64encode(SECRET.encode()).decode() not in json.dumps(record)
    assert "Env" not in json.dumps(record)  # the env is never in a record
    shown = death_record.build(dead(137), lines, False, 1.0, include_sensitive=True)
    assert SECRET in shown["log_tail"][0]


@pytest.mark.parametrize(("container", "lines", "cause"), [
    (dead(137), ["Killed"], "sigkill"),
    (dead(137, oom=True), [], "oom_killed"),
    (dead(139), ["dereferencing NULL"], "segfault"),
    (dead(143), [], "sigterm"),
    (dead(1, tmpfs={"/scratch": "size=16m"}), ["OSError: [Errno 28] No space left on device"], "disk_full"),
    (dead(1), ["Traceback", "RuntimeError: boom"], "unknown"),
])
def test_summarize_names_the_cause_by_the_rules_of_a_dead_container(container, lines, cause):
    stamped = ["2026-11-27T22:01:00.000000000Z " + line for line in lines]
    summary = death_record.summarize(death_record.build(container, stamped, False, 1.0))
    assert summary["cause"] == cause, summary
    assert summary["container_id"] == CONTAINER_ID and summary["finished_at"] == "2026-11-27T22:01:00.500000000Z"


@pytest.mark.parametrize(("code", "oom", "cause"), [(143, False, "sigterm"), (1, False, "sigterm"),
                                                   (0, False, "sigterm"), (137, True, "oom_killed")])
def test_a_container_its_unit_stopped_died_of_sigterm_unless_of_something_worse(code, oom, cause):
    # Ray drains on SIGTERM and exits 1; a container OOM-killed while stopping keeps that cause.
    summary = death_record.summarize(death_record.build(dead(code, oom=oom), [], True, 1.0))
    assert summary["cause"] == cause and summary["stopped_by_unit"] is True
    assert summary["reason"].startswith("stopped by its unit")
    assert death_record.summarize(None) is None


def test_file_names_sort_by_time_of_death_and_only_the_newest_are_kept():
    early = death_record.build(dead(1, finished="2026-11-27T22:00:00Z"), [], False, 5.0)
    late = death_record.build(dict(dead(1, finished="2026-11-27T23:00:00Z"), Id="b" * 64), [], False, 1.0)
    names = [death_record.file_name(late), death_record.file_name(early)]
    assert sorted(names) == names[::-1] and names[0].endswith("-bbbbbbbbbbbb.json")
    many = [f"{i:02d}.json" for i in range(15)] + ["x.json.tmp"]
    assert death_record.to_prune(many, keep=10) == [f"{i:02d}.json" for i in range(5)]
    assert death_record.to_prune(many[:3], keep=10) == []


def test_newest_reads_the_latest_readable_record(tmp_path):
    assert death_record.newest(str(tmp_path / "absent")) == (None, None)
    (tmp_path / "1.json").write_text(json.dumps({"n": 1}))
    (tmp_path / "2.json").write_text("{torn")  # a torn write is skipped
    assert death_record.newest(str(tmp_path)) == (str(tmp_path / "1.json"), {"n": 1})
    assert death_record.directory("/var/lib/fleetwarden/incidents", "drill") == (
        "/var/lib/fleetwarden/incidents/_deaths/drill")
