"""The reports diagnose.yml and recover.yml write validate against schemas/diagnosis-report.schema.json.

Host reports are built by the report filters from container_diagnosis's real results on every fixture case of
tests/fixtures/diagnosis/module-cases.yml, as diagnose.yml and recover.yml build them.
"""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from ansible_collections.fleetwarden.fleet.plugins.filter import report_shaping as report
from ansible_collections.fleetwarden.fleet.plugins.module_utils import _recovery_plan as recovery_plan

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "schemas" / "diagnosis-report.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


CASES = [case for case in yaml.safe_load((REPO / "tests" / "fixtures" / "diagnosis" / "module-cases.yml").read_text())
         if not case["expect"].get("failed")]
RUN = "20250305T142231Z"


@pytest.fixture
def registered(run_diagnosis_case):
    def register(case):
        """The module's result as a looped `register` holds it: with the worker declaration as `item`."""
        result, _calls = run_diagnosis_case(case)
        return dict(result, item={"name": case["params"]["name"], "image": "fleet/ray-worker:2.9"},
                    ansible_loop_var="item")
    return register


def host_report(results, playbook="recover", **kwargs):
    return report.recovery_host_report(
        results, host="gpu-1", playbook=playbook, run_id=RUN, report_path=f"/srv/reports/{RUN}/gpu-1.json",
        generated_at="2025-03-05T14:22:31.123456+00:00", **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
@pytest.mark.parametrize("playbook", ["diagnose", "recover"])
def test_host_report_of_each_diagnosis_validates(case, playbook, registered):
    result = registered(case)
    doc = host_report([result], playbook=playbook, recovered=playbook == "recover",
                      healthy={result["item"]["name"]: True}, seconds=4.2,
                      incident_dirs={result["item"]["name"]: "/var/lib/fleetwarden/incidents/x/" + RUN},
                      node={"memory": {"total_bytes": 1}, "changed": False}, gpu={"gpu_count": 0})
    VALIDATOR.validate(doc)


def test_fleet_report_validates(registered):
    results = [registered(case) for case in CASES]
    doc = host_report(results, recovered=True)
    fleet = report.recovery_fleet_report([doc], playbook="recover", run_id=RUN,
                                         report_path=f"/srv/reports/{RUN}/fleet.json",
                                         generated_at="2025-03-05T14:22:31+00:00", target="gpu-1")
    VALIDATOR.validate(doc)
    VALIDATOR.validate(fleet)
    assert len(fleet["workers"]) == len(CASES)


@pytest.mark.parametrize("breakage", [
    lambda doc: doc.pop("report_path"),
    lambda doc: doc["workers"][0].update(cause="exploded"),
    lambda doc: doc["workers"][0].update(action="rebooted"),
    lambda doc: doc["workers"][0].update(surprise=1),
    lambda doc: doc.update(run_id="yesterday"),
    lambda doc: doc.update(kind="fleet"),
])
def test_schema_rejects_broken_reports(breakage, registered):
    doc = host_report([registered(CASES[0])], recovered=True)
    VALIDATOR.validate(doc)
    broken = copy.deepcopy(doc)
    breakage(broken)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(broken)


def test_reports_carry_no_secret_from_the_fixtures(registered):
    for case in CASES:
        dumped = json.dumps(host_report([registered(case)]))
        for secret in case.get("secrets") or []:
            assert secret not in dumped


def test_the_schemas_actions_and_remediations_are_the_recovery_plans():
    assert sorted(recovery_plan.reported_actions()) == sorted(SCHEMA["$defs"]["action"]["enum"])
    assert list(recovery_plan.REMEDIATION_IDS) == SCHEMA["$defs"]["remediation"]["enum"]

