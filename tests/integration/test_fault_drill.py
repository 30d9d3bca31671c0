"""Fault drill: real faults on a lab of its own, recovered by playbooks/recover.yml (docs/recovery.md).

For each fault: inject it on the worker host, run recover.yml with target set to that host, and assert that
the worker is healthy again (probe passes, the head sees the node ALIVE), the report names the cause, the
incident directory holds the dead container's logs, and nothing else on the host changed.
"""

import json
import time

import jsonschema
import pytest

from tests.integration.drill.faults import BYSTANDER, FAULTS, REPO, WORKER, Drill, run_fault, unexpected_changes

pytestmark = pytest.mark.lab

SCHEMA = json.loads((REPO / "schemas" / "diagnosis-report.schema.json").read_text())


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    lab = Drill(tmp_path_factory.mktemp("drill"))
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def test_recover_refuses_an_unset_or_unmatched_target(drill):
    for extra in ([], ["-e", "target=no-such-host"], ["-e", "target="]):
        run = drill.playbook(REPO / "playbooks" / "recover.yml", *extra, check=False)
        assert run.returncode != 0
        assert "recover.yml needs -e target=" in run.stdout
        assert f"{drill.worker_host} " not in run.stdout.split("PLAY RECAP")[-1]


def test_recover_on_a_healthy_host_changes_nothing(drill):
    drill.wait_healthy()
    before = drill.snapshot()
    run, report, _seconds = drill.recover()
    assert run.returncode == 0, run.stdout[-4000:]
    recap = next(line for line in run.stdout.splitlines() if line.startswith(drill.worker_host + " "))
    assert "changed=0" in recap and "failed=0" in recap
    assert drill.snapshot() == before
    assert [e["cause"] for e in report["workers"]] == ["running", "running"]
    jsonschema.validate(report, SCHEMA)


def test_diagnose_is_read_only_in_check_mode_and_reports_the_fleet(drill):
    before = drill.snapshot()
    run = drill.playbook(REPO / "playbooks" / "diagnose.yml", "--check", "-e", f"target={drill.worker_host}")
    assert "changed=0" in run.stdout.split("PLAY RECAP")[-1]
    assert drill.snapshot() == before
    fleet = json.loads(sorted(drill.report_dir.glob("*/fleet.json"))[-1].read_text())
    jsonschema.validate(fleet, SCHEMA)
    assert {(w["host"], w["worker"]) for w in fleet["workers"]} == {(drill.worker_host, WORKER),
                                                                    (drill.worker_host, BYSTANDER)}
    summary = (drill.report_dir / fleet["run_id"] / "summary.txt").read_text()
    assert f"{drill.worker_host}  {WORKER}  running" in summary


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_recovered(drill, fault):
    result = run_fault(drill, fault)
    run, report, entry = result["run"], result["report"], result["entry"]
    assert run.returncode == 0, run.stdout[-6000:]
    jsonschema.validate(report, SCHEMA)
    # The report names the cause, and the worker is healthy again.
    assert entry["cause"] == fault.cause, entry["findings"]
    assert entry["healthy"] is True and result["healthy_now"]
    # The incident directory holds the dead container's logs, secrets redacted.
    assert "worker started" in result["logs"]
    inspect = drill.sh(drill.worker_host, f"cat {entry['incident_dir']}/inspect.json")
    assert "HF_TOKEN=<redacted>" in inspect and "hf_drill" not in inspect
    assert json.loads(inspect)[0]["Name"] == f"/{WORKER}"
    if fault.cause != "daemon_down":  # docker could not name the container while it was down
        assert entry["container_id"] == json.loads(inspect)[0]["Id"]
    # Nothing else on the host changed.
    assert unexpected_changes(result) == []
    if fault.name == "disk_full":
        assert "drill-filler" not in result["after"]["containers"]


def test_repeated_oom_is_reported_not_recreated(drill):
    drill.wait_healthy()
    now = time.time()
    drill.reset_history([{"cause": "oom_killed", "at": now - 600 * i, "container_id": f"earlier{i}"} for i in (1, 2)])
    try:
        drill.sh(drill.worker_host, f"docker kill --signal USR1 {WORKER}")
        deadline = time.monotonic() + 60
        while drill.container_state(WORKER) == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
        dead_id = drill.snapshot()["containers"][WORKER][0]
        run, report, _seconds = drill.recover()
        # The host fails on purpose: a person must look, and serial stops a fleet-wide run here.
        assert run.returncode != 0
        assert "need a person" in run.stdout
        entry = drill.entry(report)
        assert entry["cause"] == "oom_killed" and entry["remediation"] == "report_only"
        assert entry["repeat"]["repeated"] is True and entry["repeat"]["count"] >= 3
        assert entry["action"] == "report_only"
        assert report["needs_attention"] == [WORKER]
        assert drill.snapshot()["containers"][WORKER][0] == dead_id
    finally:
        drill.reset_history()
        drill.sh(drill.worker_host, f"systemctl restart fleetwarden-worker-{WORKER}.service")
        drill.wait_healthy()
