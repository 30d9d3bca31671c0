"""_worker_state: the one home of what a worker is on its host. The doctor, the metric behind the
WorkerRestartsExhausted alert and diagnosis must give the same answer about the same unit."""

import json

import pytest
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _fleet_metrics as fm
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _fleet_status as shape
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_state as worker_state
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _worker_unit as wu
from ansible_collections.fleetwarden.fleet.plugins.modules import container_diagnosis

from fleetwarden.doctor.host_checks import worker_checks

UNIT = "fleetwarden-worker-trainer.service"
REFUSED = json.dumps({"MESSAGE": f"{UNIT}: Start request repeated too quickly.", "__MONOTONIC_TIMESTAMP": "9000000"})
STARTED_LATER = "InactiveExitTimestampMonotonic=9500000\n"  # the unit was started again after that refusal

# (what happened, declared restart, systemctl show of the unit, systemd's journal lines about it, exhausted?)
UNIT_STATES = [
    ("the start limit refused a restart on systemd 252: Result stays the last exit's", {},
     "ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=10\nStartLimitBurst=11\n", [REFUSED], True),
    ("that refusal after the journal lost it: the restart count says it", {},
     "ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=10\nStartLimitBurst=11\n", [], True),
    ("systemd 252 gave up after fewer automatic restarts: starts that a person, recovery or the probe asked for "
     "spent the start limit too", {},
     "ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=4\nStartLimitBurst=11\n"
     "InactiveExitTimestampMonotonic=1000000\n", [json.dumps({"MESSAGE": "Scheduled restart job"}), REFUSED], True),
    ("the start limit refused a restart on newer systemd", {},
     "ActiveState=failed\nSubState=failed\nResult=start-limit-hit\nNRestarts=10\nStartLimitBurst=11\n", [], True),
    ("its restart failed on a dependency (the mount it requires failed)", {},
     "ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=1\nStartLimitBurst=11\n", [], False),
    ("a refusal before the unit was started again is not its failure now", {},
     "ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=1\nStartLimitBurst=11\n" + STARTED_LATER,
     [REFUSED], False),
    ("a dependency failed before the first start", {},
     "ActiveState=inactive\nSubState=dead\nResult=success\nNRestarts=0\nStartLimitBurst=11\n", [], False),
    ("policy no: systemd never restarts it", {"policy": "no"},
     "ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=0\nStartLimitBurst=11\n", [REFUSED], False),
    ("a person stopped it", {},
     "ActiveState=inactive\nSubState=dead\nResult=success\nNRestarts=3\nStartLimitBurst=11\n", [REFUSED], False),
    ("a person stopped it and its process exited non-zero", {},
     "ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=3\nStartLimitBurst=11\n", [], False),
]


def _declaration(restart):
    decl = wu.normalize({"name": "trainer", "image": "img:1", "restart": restart})
    return wu.declaration_document(decl, 252)


class _Host:
    """systemctl and journalctl as a host answers them about the one unit; every argv asked is kept."""

    def __init__(self, show, journal):
        self.show, self.journal, self.asked = show, journal, []

    def run_command(self, argv):
        self.asked.append(argv)
        if argv[0].endswith("systemctl"):
            return 0, f"Id={UNIT}\nLoadState=loaded\n{self.show}", ""
        assert argv == worker_state.start_limit_query(UNIT, argv[0])
        return 0, "\n".join(self.journal) + "\n", ""

    def get_bin_path(self, name):
        return "/usr/bin/" + name


def doctor_says(props, decl):
    unit = shape.unit_summary(props, uptime_s=1000.0, decl=decl)
    worker = {"name": "trainer", "unit": unit, "probe": {}, "restart_budget": None,
              "container": worker_state.container_summary(None, 0)}
    checks = worker_checks({"name": "h1", "result": {"workers": [worker]}}, None, None)
    [check] = [c for c in checks if c.id == "worker.unit"]
    return unit["restarts_exhausted"] and "restarts are exhausted" in check.summary


def metric_says(props, decl):
    samples = dict((name, value) for name, _, value in fm.worker_samples(decl, props, None))
    return samples["fleetwarden_worker_start_limit_hit"] == 1


def diagnosis_says(host):
    diagnosis = object.__new__(container_diagnosis.ContainerDiagnosis)
    diagnosis.module, diagnosis.params = host, {"unit": UNIT}
    status = diagnosis.unit_status()
    assert host.asked[0][2] == "--property=" + ",".join(worker_state.UNIT_PROPERTIES)
    return status["restarts_exhausted"]


@pytest.mark.parametrize(("case", "restart", "show", "journal", "exhausted"), UNIT_STATES,
                         ids=[c[0] for c in UNIT_STATES])
def test_the_doctor_the_metric_and_diagnosis_agree_whether_restarts_are_exhausted(case, restart, show, journal,
                                                                                  exhausted):
    decl = _declaration(restart)
    host = _Host(show, journal)
    found, error = worker_state.read_units([UNIT], host.run_command)
    props = found[UNIT]
    assert error is None
    # The journal is asked only about a failed unit whose Result does not already say it.
    assert (len(host.asked) == 2) is (props["ActiveState"] == "failed" and props["Result"] != "start-limit-hit")
    assert worker_state.restarts_exhausted(props, decl) is exhausted, case
    assert doctor_says(props, decl) is exhausted, case
    assert metric_says(props, decl) is exhausted, case
    # Diagnosis reads the unit itself, the same way (it has no declaration: the restart policy is not its to know).
    if restart.get("policy") != "no":
        assert diagnosis_says(_Host(show, journal)) is exhausted, case


def test_a_journal_that_cannot_be_read_leaves_the_restart_count_to_say_it():
    def run(argv):
        if argv[0] == "journalctl":
            return 1, "", "No journal files were found."
        return 0, f"Id={UNIT}\nActiveState=failed\nResult=exit-code\nNRestarts=4\nStartLimitBurst=11\n", ""

    found, _ = worker_state.read_units([UNIT], run)
    assert found[UNIT][worker_state.START_LIMIT_REFUSED] == "no"
    assert not worker_state.restarts_exhausted(found[UNIT])
    # Lines that are not journal entries are passed over, not fatal.
    assert not worker_state.start_limit_refused("not json\n[1]\n{\"MESSAGE\": 3}\n", {})


def test_without_start_limit_burst_the_declared_budget_gives_it():
    props = {"ActiveState": "failed", "Result": "exit-code", "NRestarts": "3"}
    assert worker_state.restarts_exhausted(props, _declaration({"max_per_hour": 3}))
    assert not worker_state.restarts_exhausted(props, _declaration({"max_per_hour": 10}))
    assert not worker_state.restarts_exhausted(props)  # nothing says what the budget is


def test_the_unit_names_the_tool_and_the_unit_file_agree():
    decl = wu.normalize({"name": "trainer", "image": "img:1", "restart": {"max_per_hour": 4}})
    unit = wu.worker_unit_text(decl, 252, paths={"docker": "/usr/bin/docker"})
    assert f"StartLimitIntervalSec={worker_state.RESTART_WINDOW_S}\n" in unit
    assert f"StartLimitBurst={worker_state.start_limit_burst(4)}\n" in unit
    assert worker_state.PATHS["tool"] in unit
    assert worker_state.worker_of_unit(worker_state.unit_names("trainer")["worker"]) == "trainer"
    assert worker_state.worker_of_unit("docker.service") == ""


def test_one_reader_and_one_filter_for_every_declaration(tmp_path):
    for name, doc in {"a": {"name": "a", "image": "i", "env": {"TOKEN": "s3cr3t"}},
                      "gone": {"name": "gone", "image": "i", "state": "absent"},
                      "other": {"name": "renamed", "image": "i"}}.items():
        (tmp_path / (name + ".json")).write_text(__import__("json").dumps(doc))
    (tmp_path / "bad.json").write_text("{")
    workers, errors = worker_state.read_declarations(str(tmp_path))
    assert [w["name"] for w in workers] == ["a"]
    assert "s3cr3t" not in repr(workers) and workers[0]["env_names"] == ["TOKEN"]
    assert [e.split(":")[0].rsplit("/", 1)[1] for e in errors] == ["bad.json", "other.json"]


def test_a_container_is_shaped_once_for_status_and_metrics():
    inspected = {"Id": "c1", "Image": "sha256:1", "State": {"Running": False, "Status": "exited", "ExitCode": 137,
                                                             "OOMKilled": True, "StartedAt": "0001-01-01T00:00:00Z",
                                                             "FinishedAt": "2026-11-27T10:00:00Z", "Pid": 0},
                 "Config": {"Env": ["TOKEN=s3cr3t"], "Labels": {"io.fleetwarden.declaration": "d1"}},
                 "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}}}
    summary = worker_state.container_summary(inspected, now=1795773610.0)
    assert (summary["exit_code"], summary["oom_killed"], summary["started_at"], summary["address"]) == \
        (137, True, None, "172.17.0.2")
    assert summary["exit"]["signal"] == "SIGKILL" and "OOM killer" in summary["exit"]["meaning"]
    assert summary["finished_ago_s"] == 10.0 and summary["digest"] == "d1"
    assert "s3cr3t" not in repr(summary)
    assert set(worker_state.container_summary(None, 0)) == set(summary)
